//! Consumer tracking and the dual-write retire record, on the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rekey_core::engine::consumers::{
    self, MAX_CONSUMERS, RETIRE_DEADLINE, RETIRE_VERSION, pending_retire_decision, retire_decision,
};
use rekey_core::engine::journal::JOURNAL_KEY;
use rekey_core::{
    AckOutcome, ConsumerError, ConsumerRegistry, DynSecretStore, PendingRetire, RetireDecision, RetireReason,
    RetireRecord, RotationId, SecretData, SecretPath, SecretStore, SecretStoreExt, VersionId,
};
use rekey_memory::MemoryStore;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn setup() -> (Arc<DynSecretStore>, SecretPath, VersionId) {
    let store: Arc<DynSecretStore> = Arc::new(MemoryStore::new());
    let path: SecretPath = "apps/cache/password".parse().unwrap();
    let v = store.create(&path, SecretData::text("first-secret-value")).await.unwrap().id;
    (store, path, v)
}

#[tokio::test]
async fn register_acknowledge_status() {
    let (store, path, v1) = setup().await;
    let reg = ConsumerRegistry::new(store.clone(), path.clone());
    reg.register("web-1").await.unwrap();
    reg.register("web-2").await.unwrap();
    reg.register("web-1").await.unwrap(); // idempotent

    let s = reg.status().await.unwrap();
    assert_eq!(s.current, v1);
    assert_eq!(s.consumers.len(), 2);
    assert_eq!(s.behind().count(), 2, "registered but not acknowledged counts as behind");
    assert!(!s.all_on_current());

    assert_eq!(reg.acknowledge("web-1", &v1).await.unwrap(), AckOutcome::Recorded);
    assert_eq!(reg.acknowledge("web-1", &v1).await.unwrap(), AckOutcome::Unchanged);
    assert_eq!(reg.acknowledge("web-2", &v1).await.unwrap(), AckOutcome::Recorded);
    assert!(reg.status().await.unwrap().all_on_current());

    // A new version: both behind until they acknowledge it.
    let v2 = store
        .put(&path, SecretData::text("second-secret-value"), rekey_core::PutOptions::if_current(v1.clone()))
        .await
        .unwrap()
        .id;
    let s = reg.status().await.unwrap();
    assert_eq!(s.behind().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["web-1", "web-2"]);
    reg.acknowledge("web-2", &v2).await.unwrap();
    let s = reg.status().await.unwrap();
    assert_eq!(s.on_current().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["web-2"]);
    assert_eq!(s.behind().map(|c| (c.name.as_str(), c.version.clone())).collect::<Vec<_>>(), [("web-1", Some(v1))]);

    // Another process sees the same.
    let other = ConsumerRegistry::new(store.clone(), path.clone());
    assert_eq!(other.status().await.unwrap(), s);

    assert!(reg.deregister("web-1").await.unwrap());
    assert!(!reg.deregister("web-1").await.unwrap());
    assert!(reg.status().await.unwrap().all_on_current());
}

#[tokio::test]
async fn bad_input_is_typed() {
    let (store, path, v1) = setup().await;
    let reg = ConsumerRegistry::new(store.clone(), path.clone());
    assert!(matches!(reg.register("").await, Err(ConsumerError::InvalidName { .. })));
    assert!(matches!(reg.register("has space").await, Err(ConsumerError::InvalidName { .. })));
    assert!(matches!(reg.acknowledge("nobody", &v1).await, Err(ConsumerError::NotRegistered { .. })));
    let missing = ConsumerRegistry::new(store.clone(), "apps/none".parse().unwrap());
    assert!(matches!(missing.register("a").await, Err(ConsumerError::Store(rekey_core::StoreError::NotFound { .. }))));
    for i in 0..MAX_CONSUMERS {
        reg.register(&format!("c{i}")).await.unwrap();
    }
    assert!(matches!(reg.register("one-too-many").await, Err(ConsumerError::TooMany { .. })));
    // Nothing about the secret's value in any message.
    let e = reg.register("one-too-many").await.unwrap_err();
    assert!(!e.to_string().contains("first-secret-value"));
}

#[tokio::test]
async fn acknowledgements_wait_while_a_rotation_is_journalled() {
    let (store, path, v1) = setup().await;
    let reg = ConsumerRegistry::new(store.clone(), path.clone());
    reg.register("a").await.unwrap();
    let mut m = store.read_metadata(&path).await.unwrap();
    m.insert(JOURNAL_KEY.into(), format!("id={}", RotationId::new()));
    store.write_metadata(&path, m.clone()).await.unwrap();
    assert_eq!(reg.acknowledge("a", &v1).await.unwrap(), AckOutcome::Deferred);
    assert_eq!(store.read_metadata(&path).await.unwrap(), m, "nothing written");
    m.remove(JOURNAL_KEY);
    store.write_metadata(&path, m).await.unwrap();
    assert_eq!(reg.acknowledge("a", &v1).await.unwrap(), AckOutcome::Recorded);
}

#[tokio::test]
async fn concurrent_acknowledgements_all_land() {
    let (store, path, v1) = setup().await;
    let reg = ConsumerRegistry::new(store.clone(), path.clone());
    let names: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    for n in &names {
        reg.register(n).await.unwrap();
    }
    let tasks: Vec<_> = names
        .iter()
        .map(|n| {
            let (reg, n, v) = (reg.clone(), n.clone(), v1.clone());
            tokio::spawn(async move {
                // Contention is retryable; a consumer acknowledges at every refresh.
                for _ in 0..20 {
                    match reg.acknowledge(&n, &v).await {
                        Ok(_) => return,
                        Err(e) if e.is_retryable() => tokio::task::yield_now().await,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Each consumer re-acknowledges at its next refresh; after that pass every one is recorded.
    for n in &names {
        reg.acknowledge(n, &v1).await.unwrap();
    }
    assert!(reg.status().await.unwrap().all_on_current());
}

#[tokio::test]
async fn retire_record_in_the_store() {
    let (store, path, v1) = setup().await;
    let reg = ConsumerRegistry::new(store.clone(), path.clone());
    let v2 = VersionId::new("v2");
    let rec = RetireRecord::new(v1.clone(), v2.clone(), t("2030-01-01T01:00:00Z"), RotationId::new());
    let mut m = store.read_metadata(&path).await.unwrap();
    rec.write_into(&mut m);
    store.write_metadata(&path, m).await.unwrap();

    let m = store.read_metadata(&path).await.unwrap();
    assert_eq!(m.get(RETIRE_VERSION), Some(&v1.to_string()));
    assert_eq!(m.get(RETIRE_DEADLINE).map(String::as_str), Some("2030-01-01T01:00:00+00:00"));
    assert_eq!(reg.status().await.unwrap().retire, Some(rec.clone()));

    let before = t("2030-01-01T00:59:59Z");
    assert!(matches!(retire_decision(&m, before), RetireDecision::Wait { .. }));
    assert!(matches!(pending_retire_decision(&m, before, false), PendingRetire::Refuse { .. }));
    assert!(matches!(
        retire_decision(&m, t("2030-01-01T01:00:00Z")),
        RetireDecision::Retire { reason: RetireReason::GraceEnded, .. }
    ));

    reg.register("a").await.unwrap();
    reg.register("b").await.unwrap();
    reg.acknowledge("a", &v2).await.unwrap();
    let m = store.read_metadata(&path).await.unwrap();
    assert!(matches!(retire_decision(&m, before), RetireDecision::Wait { ref behind, .. } if behind == &["b"]));
    reg.acknowledge("b", &v2).await.unwrap();
    let m = store.read_metadata(&path).await.unwrap();
    assert_eq!(
        retire_decision(&m, before),
        RetireDecision::Retire { record: rec.clone(), reason: RetireReason::AllAcknowledged }
    );
    assert_eq!(
        pending_retire_decision(&m, before, false),
        PendingRetire::RetireFirst { record: rec, reason: RetireReason::AllAcknowledged }
    );
    assert_eq!(consumers::consumers(&m).len(), 2);
}
