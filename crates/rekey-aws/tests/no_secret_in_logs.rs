//! With every log on (TRACE, the SDK's included), no secret value and no
//! secret key ever reaches the log output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use rekey_aws::{AwsConfig, AwsSecretsStore};
use rekey_core::{Metadata, PutOptions, RotationId, SecretData, SecretStore, SecretStoreExt, VersionSelector};

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

#[tokio::test]
async fn trace_logs_show_no_value_and_no_secret_key() {
    let Some(ep) = common::endpoint() else { return };
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let cfg = AwsConfig::default()
        .with_region("us-east-1")
        .with_endpoint_url(&ep)
        .with_static_credentials("AKIDLOGTEST0001", "secretKeyThatMustNotBeLogged")
        .for_moto();
    let store = AwsSecretsStore::from_config(&cfg).await.unwrap();
    let path = common::name("aws-logs");
    let v1 =
        store.create(&path, SecretData::fields([("username", "u"), ("password", "log-marker-one")])).await.unwrap();
    let v2 = store.put(&path, SecretData::text("log-marker-two"), PutOptions::if_current(v1.id.clone())).await.unwrap();
    let staged = store.stage(&path, SecretData::text("log-marker-three"), RotationId::new()).await.unwrap();
    store.read(&path, &VersionSelector::Pending).await.unwrap();
    store.promote(&path, &staged.id, &v2.id).await.unwrap();
    store.current(&path).await.unwrap();
    store.list_versions(&path).await.unwrap();
    store.write_metadata(&path, Metadata::from([("rekey.k".to_owned(), "not-secret".to_owned())])).await.unwrap();
    let _ = store.put(&path, SecretData::text("log-marker-four"), PutOptions::if_current(v1.id.clone())).await;
    store.delete(&path).await.unwrap();

    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("transmitting request"), "the SDK's TRACE logs were not captured");
    assert!(out.contains("PutSecretValue"), "the SDK's TRACE logs were not captured");
    for secret in ["log-marker", "secretKeyThatMustNotBeLogged"] {
        assert!(!out.contains(secret), "the logs show {secret:?}");
    }
}
