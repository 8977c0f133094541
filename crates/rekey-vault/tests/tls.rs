//! TLS against a real OpenBao (`bao server -dev -dev-tls`, started and
//! killed by this test): the custom CA option works, and a certificate the
//! store cannot verify is refused with a non-retryable error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use rekey_core::{SecretData, SecretStore, SecretStoreExt, StoreError};
use rekey_vault::{VaultAuth, VaultConfig, VaultStore};
use tokio::process::Command;

#[tokio::test]
async fn https_with_custom_ca_and_refused_certificate() {
    let Some(bin) = rekey_testkit::env::require("REKEY_TEST_BAO_BIN", "OpenBao") else { return };
    let dir = std::env::temp_dir().join(format!("rekey-vault-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let token = uuid::Uuid::new_v4().to_string();
    let log = std::fs::File::create(dir.join("bao.log")).unwrap();
    let mut child = Command::new(bin)
        .args(["server", "-dev", "-dev-tls"])
        .arg(format!("-dev-tls-cert-dir={}", dir.display()))
        .arg(format!("-dev-root-token-id={token}"))
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start bao -dev-tls");
    let ca = dir.join("vault-ca.pem");
    let addr = format!("https://127.0.0.1:{port}");
    let p: rekey_core::SecretPath = "apps/tls/api-key".parse().unwrap();

    // Wait for the CA file and the listener.
    let deadline = Instant::now() + Duration::from_secs(30);
    let store = loop {
        if ca.is_file() {
            let cfg = VaultConfig::new(&addr, VaultAuth::Token(token.clone().into())).with_ca_cert(&ca);
            let store = VaultStore::connect(cfg).await.unwrap();
            match store.put(&p, SecretData::text("s3cr3t-tls"), rekey_core::PutOptions::overwrite()).await {
                Ok(_) => break store,
                Err(e) if e.is_retryable() => {}
                Err(e) => panic!("over https with the CA: {e}"),
            }
        }
        assert!(Instant::now() < deadline, "bao -dev-tls did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(store.current(&p).await.unwrap().data.same_as(&SecretData::text("s3cr3t-tls")));

    // Without the CA: the server's certificate is refused, not retried.
    let untrusted = VaultStore::connect(VaultConfig::new(&addr, VaultAuth::Token(token.clone().into()))).await.unwrap();
    let e = untrusted.current(&p).await.expect_err("an unverifiable certificate must be refused");
    eprintln!("without the CA: {e}");
    assert!(!e.is_retryable(), "{e}");
    assert!(matches!(e, StoreError::Other { .. }), "{e}");
    assert!(e.to_string().contains("certificate"), "{e}");
    assert!(!format!("{e:?}").contains(&token));

    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
