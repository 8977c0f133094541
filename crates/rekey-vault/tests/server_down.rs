//! The server going away mid-run: a separate OpenBao with file storage,
//! started, killed (by its pid) and restarted by this test, so the value
//! can be read back after the restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rekey_core::{RotationId, SecretData, SecretStore, SecretStoreExt, StoreError};
use rekey_vault::VaultStore;
use serde_json::json;
use tokio::process::{Child, Command};

/// One `bao server` with file storage in a temp dir, on a fixed port.
struct Bao {
    bin: String,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Bao {
    fn new(bin: String) -> Self {
        let dir = std::env::temp_dir().join(format!("rekey-vault-down-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (port, cluster) = (free(), free());
        // OpenBao 2.x keeps only integrated storage (raft) for a single node.
        let config = format!(
            "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"rekey-test\"\n}}\n\
             listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
             api_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"http://127.0.0.1:{cluster}\"\n",
            dir.join("data").display()
        );
        std::fs::write(dir.join("bao.hcl"), config).unwrap();
        Self { bin, dir, port, child: None }
    }

    fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn start(&mut self) {
        let log = std::fs::File::create(self.dir.join("bao.log")).unwrap();
        let child = Command::new(&self.bin)
            .arg("server")
            .arg(format!("-config={}", self.dir.join("bao.hcl").display()))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start bao");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            // Any answer (501 uninitialised, 503 sealed, 200) means it listens.
            if client.get(format!("{}/v1/sys/health", self.addr())).send().await.is_ok() {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("bao exited ({status}); log: {}", log_of(&self.dir));
            }
            assert!(Instant::now() < deadline, "bao did not start; log: {}", log_of(&self.dir));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the server by its pid (SIGKILL: no graceful shutdown) and waits.
    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("bao.log")).unwrap_or_default()
}

/// Unseals and waits until the node is the active one (raft elects itself).
async fn unseal(addr: &str, key: &str) {
    let (s, body) = common::raw(addr, "", "PUT", "sys/unseal", Some(json!({ "key": key }))).await;
    assert_eq!(s, 200, "unseal: {body}");
    assert_eq!(body["sealed"], false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::raw(addr, "", "GET", "sys/health", None).await.0 != 200 {
        assert!(Instant::now() < deadline, "bao did not become active");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stopped_mid_run_gives_retryable_errors_and_keeps_the_value() {
    let Some(bin) = rekey_testkit::env::require("REKEY_TEST_BAO_BIN", "OpenBao") else { return };
    let mut bao = Bao::new(bin);
    bao.start().await;
    let addr = bao.addr();
    let (s, init) =
        common::raw(&addr, "", "PUT", "sys/init", Some(json!({"secret_shares": 1, "secret_threshold": 1}))).await;
    assert_eq!(s, 200, "init: {init}");
    let key = init["keys"][0].as_str().unwrap().to_owned();
    let root = init["root_token"].as_str().unwrap().to_owned();
    unseal(&addr, &key).await;
    common::admin_post(&addr, &root, "sys/mounts/secret", json!({"type": "kv", "options": {"version": "2"}})).await;

    let store =
        VaultStore::connect(common::config(&addr, &root).with_request_timeout(Duration::from_secs(2))).await.unwrap();
    let p: rekey_core::SecretPath = "apps/down/api-key".parse().unwrap();
    let mut cur = loop {
        // The KV mount upgrades itself for a moment after mounting.
        match store.create(&p, SecretData::text("s3cr3t-down-0")).await {
            Ok(v) => break v,
            Err(e) if e.is_retryable() || matches!(e, StoreError::InvalidInput { .. }) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("create: {e}"),
        }
    };

    // Rotations run in a loop; the server is killed while they run.
    let rotator = {
        let store = store.clone();
        let p = p.clone();
        let start = cur.clone();
        tokio::spawn(async move {
            let mut cur = start;
            let mut last_ok = "s3cr3t-down-0".to_owned();
            let mut in_doubt = None;
            for i in 1..10_000 {
                let value = format!("s3cr3t-down-{i}");
                let staged = match store.stage(&p, SecretData::text(value.clone()), RotationId::new()).await {
                    Ok(s) => s,
                    Err(e) => return (last_ok, in_doubt, e, i),
                };
                match store.promote(&p, &staged.id, &cur.id).await {
                    Ok(v) => {
                        cur = v;
                        last_ok = value;
                    }
                    // The write may or may not have reached the disk.
                    Err(e) => return (last_ok, Some(value), e, i),
                }
                in_doubt = None;
            }
            panic!("the server was never killed");
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    bao.kill().await;
    let (last_ok, in_doubt, err, rotations) =
        tokio::time::timeout(Duration::from_secs(10), rotator).await.unwrap().unwrap();
    assert!(rotations > 1, "no rotation finished before the kill");
    assert!(err.is_retryable(), "the failure while the server was down is not retryable: {err}");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    assert!(!err.to_string().contains("s3cr3t-down"), "{err}");
    // And while it stays down, every call is a retryable error.
    for e in [
        store.current(&p).await.err().unwrap(),
        store.stage(&p, SecretData::text("s3cr3t-down-x"), RotationId::new()).await.err().unwrap(),
        store.put(&p, SecretData::text("s3cr3t-down-y"), rekey_core::PutOptions::overwrite()).await.err().unwrap(),
    ] {
        assert!(matches!(e, StoreError::Unavailable { .. }) && e.is_retryable(), "{e}");
    }

    // Restart on the same storage: the current value is the last promoted one
    // (or the one whose promote was cut off, if its write had landed).
    bao.start().await;
    unseal(&addr, &key).await;
    let now = loop {
        match store.current(&p).await {
            Ok(v) => break v,
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("read after restart: {e}"),
        }
    };
    let value = now.data.as_text().map(|s| rekey_core::ExposeSecret::expose_secret(s).to_owned()).unwrap();
    assert!(
        value == last_ok || Some(&value) == in_doubt.as_ref(),
        "after the restart the current value is neither the last promoted one nor the one in doubt"
    );
    eprintln!(
        "{rotations} rotations before the kill; current after restart is the {} one",
        if value == last_ok { "last promoted" } else { "in-doubt" }
    );
    // The store works again.
    cur = now.meta.clone();
    let staged = store.stage(&p, SecretData::text("s3cr3t-down-after"), RotationId::new()).await.unwrap();
    store.promote(&p, &staged.id, &cur.id).await.unwrap();

    // A sealed server: 503 "Vault is sealed" -> Unavailable, retryable.
    common::raw(&addr, &root, "PUT", "sys/seal", None).await;
    let e = store.current(&p).await.err().unwrap();
    assert!(matches!(e, StoreError::Unavailable { .. }) && e.is_retryable(), "{e}");
    assert!(e.to_string().contains("sealed"), "{e}");
    unseal(&addr, &key).await;
    let after = loop {
        match store.current(&p).await {
            Ok(v) => break v,
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("read after unseal: {e}"),
        }
    };
    assert!(after.data.same_as(&SecretData::text("s3cr3t-down-after")));
    bao.kill().await;
}
