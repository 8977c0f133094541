//! Dual-write and blue-green through the store contract only: the same
//! rotations with OpenBao (Vault KV v2) and AWS Secrets Manager (moto) as the
//! store — versions, staging, compare-and-swap promote, the retire record and
//! consumer acknowledgements in custom metadata / tags — against real Redis
//! and PostgreSQL targets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rekey_core::{
    ConsumerRegistry, CredentialTarget, DynSecretStore, ExposeSecret, RetireReason, RotationPolicy, RotationStrategy,
    SecretBinding, SecretData, SecretStoreExt, TargetError,
};
use rekey_vault::{VaultAuth, VaultConfig, VaultStore};

async fn vault() -> Option<Arc<DynSecretStore>> {
    let addr = rekey_testkit::env::require("REKEY_TEST_VAULT_ADDR", "OpenBao")?;
    let token = rekey_testkit::env::require("REKEY_TEST_VAULT_TOKEN", "OpenBao")?;
    let cfg = VaultConfig::new(addr, VaultAuth::Token(token.into()));
    Some(Arc::new(VaultStore::connect(cfg).await.expect("connect")))
}

async fn aws() -> Option<Arc<DynSecretStore>> {
    let endpoint = rekey_testkit::env::require("REKEY_TEST_AWS_ENDPOINT", "moto (AWS Secrets Manager emulator)")?;
    let cfg = rekey_aws::AwsConfig::default()
        .with_region("us-east-1")
        .with_endpoint_url(endpoint)
        .with_static_credentials("test", "test")
        .for_moto();
    Some(Arc::new(rekey_aws::AwsSecretsStore::from_config(&cfg).await.expect("aws store")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_write_on_redis_with_openbao_as_the_store() {
    let Some(store) = vault().await else { return };
    dual_write(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_write_on_redis_with_aws_as_the_store() {
    let Some(store) = aws().await else { return };
    dual_write(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_on_postgres_with_openbao_as_the_store() {
    let Some(store) = vault().await else { return };
    blue_green(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_on_postgres_with_aws_as_the_store() {
    let Some(store) = aws().await else { return };
    blue_green(store).await;
}

async fn dual_write(store: Arc<DynSecretStore>) {
    let Some(url) = rekey_testkit::env::require("REKEY_TEST_REDIS_URL", "Redis") else { return };
    let user = unique("zd_bao_dw");
    let target = Arc::new(rekey_redis::RedisAclTarget::new(&url, user.clone()).unwrap());
    let path = path(&format!("zd/bao/{user}"));
    let first = SecretData::text(password());
    target.apply(&first, None).await.unwrap();
    store.create(&path, first.clone()).await.unwrap();
    let (manager, _audit) = manager(store.clone());
    manager.bind(path.clone(), SecretBinding::new().target(target.clone()));
    let policy = RotationPolicy::builder("dw")
        .strategy(RotationStrategy::DualWrite)
        .interval(Duration::from_secs(3600))
        .grace_period(Duration::from_secs(600))
        .build()
        .unwrap();
    let consumers = ConsumerRegistry::new(store.clone(), path.clone());
    consumers.register("app-1").await.unwrap();
    let mut old = first;
    for _ in 0..3 {
        let r = manager.rotate_secret(&path, &policy, None).await;
        expect_ok(&r);
        let cur = store.current(&path).await.unwrap();
        assert!(store.previous(&path).await.unwrap().data.same_as(&old), "old readable as previous");
        target.test(&old).await.expect("old still valid");
        assert!(manager.process_retirements().await.is_empty(), "app-1 has not moved");
        consumers.acknowledge("app-1", &cur.meta.id).await.unwrap();
        let done = manager.process_retirements().await;
        assert_eq!(done.len(), 1, "{done:?}");
        assert_eq!(done[0].reason, RetireReason::AllAcknowledged);
        let r = target.test(&old).await;
        assert!(matches!(r, Err(TargetError::Rejected { .. })), "{r:?}");
        target.test(&cur.data).await.unwrap();
        old = cur.data;
    }
}

async fn blue_green(store: Arc<DynSecretStore>) {
    let Some(url) = rekey_testkit::env::require("REKEY_TEST_PG_URL", "PostgreSQL") else { return };
    let admin = rekey_postgres::PostgresConfig::from_url(&url).unwrap();
    let group = unique("zd_bao_bg");
    let (blue, green) = (format!("{group}_blue"), format!("{group}_green"));
    let target = Arc::new(rekey_postgres::PostgresTarget::alternating(admin, [&blue, &green], &group).unwrap());
    target.ensure_roles().await.unwrap();
    let path = path(&format!("zd/bao/{group}"));
    let first = SecretData::fields([("username", blue.clone()), ("password", password())]);
    target.apply(&first, None).await.unwrap();
    store.create(&path, first).await.unwrap();
    let (manager, _audit) = manager(store.clone());
    manager.bind(
        path.clone(),
        SecretBinding::new().field("password").credential_sets(&blue, &green).target(target.clone()),
    );
    let policy = RotationPolicy::builder("bg")
        .strategy(RotationStrategy::BlueGreen)
        .interval(Duration::from_secs(3600))
        .grace_period(Duration::from_secs(600))
        .build()
        .unwrap();
    let mut users = Vec::new();
    for _ in 0..4 {
        expect_ok(&manager.rotate_secret(&path, &policy, None).await);
        let cur = store.current(&path).await.unwrap().data;
        let prev = store.previous(&path).await.unwrap().data;
        target.test(&cur).await.unwrap();
        target.test(&prev).await.expect("the formerly active set stays valid");
        users.push(cur.field("username").map(|u| u.expose_secret().to_owned()).unwrap_or_default());
    }
    assert_eq!(users, [green.clone(), blue.clone(), green, blue]);
}
