//! Every log line written while rekey talks to OpenBao — rekey's, vaultrs's,
//! rustify's, reqwest's and hyper's, at TRACE level — is searched for the
//! tokens and secret values in play.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use rekey_core::{
    DynSecretStore, PutOptions, RotationId, RotationManager, RotationPolicy, RotationStrategy, SecretBinding,
    SecretData, SecretStore, SecretStoreExt, SystemClock,
};
use rekey_vault::VaultStore;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_token_or_value_in_any_log_line() {
    let Some((addr, root)) = common::server() else { return };
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let values: Vec<String> = (0..4).map(|i| format!("s3cr3t-log-{i}-{}", uuid::Uuid::new_v4().simple())).collect();
    let store = VaultStore::connect(common::config(&addr, &root)).await.unwrap();
    let p = common::path(&rekey_testkit::unique_prefix("vault-logs"), "s");
    let v1 = store.create(&p, SecretData::fields([("user", "app"), ("password", values[0].as_str())])).await.unwrap();
    let cur = store.current(&p).await.unwrap();
    let next = cur.data.with_field(Some("password"), values[1].clone().into()).unwrap();
    let staged = store.stage(&p, next, RotationId::new()).await.unwrap();
    let _ = store.pending(&p).await.unwrap();
    let v2 = store.promote(&p, &staged.id, &v1.id).await.unwrap();
    let _ = store.put(&p, SecretData::text(values[2].clone()), PutOptions::if_current(v1.id.clone())).await;
    let _ = store
        .put(&p, SecretData::text(values[2].clone()), PutOptions::if_current(v2.id).with_rotation(RotationId::new()))
        .await;
    store.rollback(&p).await.unwrap();

    // The engine, with its tracing audit sink.
    let manager = RotationManager::builder(Arc::new(store.clone()) as Arc<DynSecretStore>)
        .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .build()
        .unwrap();
    manager.bind(p.clone(), SecretBinding::new().field("password"));
    let policy = RotationPolicy::builder("logs").strategy(RotationStrategy::Staged).build().unwrap();
    let r = manager.rotate_secret(&p, &policy, Some(values[3].clone().into())).await;
    assert!(r.success(), "{r}");

    // Failures: a bad token, a server that is not there.
    let bogus = format!("hvs.{}", uuid::Uuid::new_v4().simple());
    let bad = VaultStore::connect(common::config(&addr, &bogus)).await.unwrap();
    let _ = bad.stage(&p, SecretData::text(values[0].clone()), RotationId::new()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = VaultStore::connect(common::config(&format!("http://127.0.0.1:{port}"), &root)).await.unwrap();
    let _ = dead.put(&p, SecretData::text(values[1].clone()), PutOptions::overwrite()).await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.lines().count() > 20, "too few log lines captured to mean anything:\n{text}");
    // The capture does see the requests about this secret (its path is not secret).
    assert!(text.contains(p.as_str()) && text.contains("TRACE"), "the capture missed the requests");
    for needle in values.iter().chain([&root, &bogus]) {
        assert!(!text.contains(needle.as_str()), "a log line shows a secret or a token");
    }
}
