//! On a store that promotes by copying (Vault KV v2), undoing a failed
//! rotation writes a newer version holding the old value. That copy is not
//! a rotation: schedules count from when its value became current, so a
//! failed rotation is tried again after its backoff (and counts towards
//! quarantine) instead of passing for a rotation made elsewhere and waiting
//! a whole interval. Against a real OpenBao.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rekey_core::record::SecretRecord;
use rekey_core::{
    DynSecretStore, ExposeSecret, RotationManager, RotationOutcome, RotationPolicy, RotationStrategy, SecretData,
    SecretStore, SecretStoreExt, SystemClock, Verifier, VerifyContext, VerifyError,
};
use rekey_vault::VaultStore;

#[derive(Debug)]
struct Refuse;

#[async_trait]
impl Verifier for Refuse {
    fn name(&self) -> &str {
        "refuse"
    }

    async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        Err(VerifyError::Failed("refused on purpose".into()))
    }
}

/// The record keeps times to the millisecond.
fn assert_close(actual: DateTime<Utc>, expected: DateTime<Utc>, what: &str) {
    let off = (actual - expected).num_milliseconds().abs();
    assert!(off <= 1, "{what}: {actual} is not the value's own time {expected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undoing_a_failed_rotation_by_a_copy_is_not_a_rotation() {
    let Some((addr, root)) = common::server() else { return };
    let store: Arc<DynSecretStore> = Arc::new(VaultStore::connect(common::config(&addr, &root)).await.unwrap());
    let p = common::path(&rekey_testkit::unique_prefix("vault-anchor"), "db");
    let v1 = store.create(&p, SecretData::text("anchor-initial-s3cr3t")).await.unwrap();
    // So that a copy is visibly newer than the value it restores.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let clock = || Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d))));
    let manager = RotationManager::builder(store.clone()).clock(clock()).verifier(Arc::new(Refuse)).build().unwrap();
    let policy = RotationPolicy::builder("monthly")
        .strategy(RotationStrategy::Immediate)
        .interval(Duration::from_secs(30 * 86_400))
        .require_verification(true)
        .verification_tests(["refuse"])
        .max_retries(0)
        .build()
        .unwrap();
    manager.schedule_rotation(&p, policy.clone()).await.unwrap();
    assert_eq!(manager.get_schedule(&p).unwrap().last_rotation, v1.created_at);

    for attempt in 1..=2 {
        let r = manager.rotate_secret(&p, &policy, None).await;
        assert_eq!(r.outcome, RotationOutcome::RolledBack, "attempt {attempt}: {r}");
        let snap = store.snapshot(&p, false).await.unwrap();
        assert_ne!(snap.current.id, v1.id, "OpenBao restores by writing a copy");
        assert!(snap.current.created_at > v1.created_at + chrono::Duration::seconds(1), "the copy is newer");
        assert_eq!(store.current_text(&p).await.unwrap().expose_secret(), "anchor-initial-s3cr3t", "the old value");

        // The copy holds the value since the value's own time ...
        let since = SecretRecord::read_brief(&snap.metadata).current_since(&snap.current);
        assert_close(since, v1.created_at, &format!("attempt {attempt}: since when the value is current"));
        // ... so the schedule of this process does not move (it was not
        // rotated elsewhere: the failure is retried after its backoff) ...
        let refresh = manager.refresh_schedule(&p, &snap).unwrap();
        assert!(!refresh.moved, "attempt {attempt}: the undo passed for a rotation made elsewhere");
        assert_eq!(manager.get_schedule(&p).unwrap().last_rotation, v1.created_at);
        // ... and another process (a restarted daemon) schedules from it too.
        let other = RotationManager::builder(store.clone()).clock(clock()).verifier(Arc::new(Refuse)).build().unwrap();
        let from = other.schedule_rotation_from(&p, policy.clone(), &snap).unwrap();
        assert_close(from.last_rotation, v1.created_at, "scheduled from a snapshot");
        let read = other.schedule_rotation(&p, policy.clone()).await.unwrap();
        assert_close(read.last_rotation, v1.created_at, "scheduled by reading the store");
    }

    let _ = store.delete(&p).await;
}

#[derive(Debug)]
struct Hang;

#[async_trait]
impl Verifier for Hang {
    fn name(&self) -> &str {
        "hangs"
    }

    async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        std::future::pending().await
    }
}

/// The same for the rollback a recovery makes of an immediate rotation
/// that crashed before its checks passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovering_a_crashed_immediate_rotation_by_a_copy_is_not_a_rotation() {
    let Some((addr, root)) = common::server() else { return };
    let store: Arc<DynSecretStore> = Arc::new(VaultStore::connect(common::config(&addr, &root)).await.unwrap());
    let p = common::path(&rekey_testkit::unique_prefix("vault-anchor"), "crashed");
    let v1 = store.create(&p, SecretData::text("anchor-crash-initial-s3cr3t")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let manager = RotationManager::builder(store.clone())
        .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .verifier(Arc::new(Hang))
        .build()
        .unwrap();
    let policy = RotationPolicy::builder("monthly")
        .strategy(RotationStrategy::Immediate)
        .interval(Duration::from_secs(30 * 86_400))
        .require_verification(true)
        .verification_tests(["hangs"])
        .build()
        .unwrap();
    // The process dies while the written value is being checked.
    let rotation = manager.rotate_secret(&p, &policy, None);
    assert!(tokio::time::timeout(Duration::from_secs(2), rotation).await.is_err(), "the verifier hangs");
    assert_ne!(store.current(&p).await.unwrap().meta.id, v1.id, "the unchecked value is current");

    let recovered = manager.recover(&p).await.unwrap();
    assert_eq!(recovered, rekey_core::Recovery::CleanedUp);
    let snap = store.snapshot(&p, false).await.unwrap();
    assert_eq!(store.current_text(&p).await.unwrap().expose_secret(), "anchor-crash-initial-s3cr3t");
    assert!(snap.current.created_at > v1.created_at + chrono::Duration::seconds(1), "restored by a copy");
    let since = SecretRecord::read_brief(&snap.metadata).current_since(&snap.current);
    assert_close(since, v1.created_at, "since when the value is current after the recovery");
    let _ = store.delete(&p).await;
}
