//! Manual rotations: immediate and staged, custom values, generators,
//! verification, rollback, results.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use engine_support::*;
use rekey_core::*;

#[tokio::test]
async fn immediate_rotation_replaces_the_value() {
    let e = env();
    let p = path("secrets/database_password");
    let v1 = e.seed(&p, "initial").await;
    let r = e.manager.rotate_secret(&p, &policy(RotationStrategy::Immediate), None).await;
    assert!(r.success(), "{r}");
    assert_eq!(r.status, RotationStatus::Success);
    assert_eq!(r.outcome, RotationOutcome::Rotated);
    assert_eq!(r.old_version.as_ref(), Some(&v1.id));
    let cur = e.current(&p).await;
    assert_eq!(r.new_version.as_ref(), Some(&cur.meta.id));
    assert_ne!(text(&cur.data), "initial");
    assert_eq!(text(&e.store.previous(&p).await.unwrap().data), "initial");
    assert!(!r.rollback_performed);
    assert!(r.error.is_none());
    assert_eq!(r.strategy, RotationStrategy::Immediate);
    assert_eq!(r.trigger, RotationTrigger::Manual);
}

#[tokio::test]
async fn staged_rotation_stages_then_promotes() {
    let e = env();
    let p = path("secrets/api_key");
    let v1 = e.seed(&p, "initial").await;
    let r = e.manager.rotate_secret(&p, &policy(RotationStrategy::Staged), None).await;
    assert!(r.success(), "{r}");
    assert_eq!(r.old_version.as_ref(), Some(&v1.id));
    assert_eq!(r.new_version.as_ref(), Some(&e.current(&p).await.meta.id));
    assert!(e.pending(&p).await.is_none(), "nothing left staged");
    assert!(e.store.read_metadata(&p).await.unwrap().keys().all(|k| !k.starts_with("rekey.rotation")));
    let kinds = e.audit.kinds();
    use AuditEventKind::*;
    assert_eq!(kinds, [Started, Staged, Promoted, CleanedUp, Succeeded], "{kinds:?}");
}

#[tokio::test]
async fn custom_value_is_used() {
    let e = env();
    let p = path("secrets/webhook_secret");
    e.seed(&p, "initial").await;
    for s in [RotationStrategy::Immediate, RotationStrategy::Staged] {
        let v = format!("custom_secret_value_{s}");
        let r = e.manager.rotate_secret(&p, &policy(s), Some(SecretString::from(v.clone()))).await;
        assert!(r.success(), "{r}");
        assert_eq!(e.current_text(&p).await, v);
    }
}

#[tokio::test]
async fn staged_verification_failure_rolls_back_and_keeps_current() {
    let e = env();
    let p = path("secrets/anthropic_api_key");
    let v1 = e.seed(&p, "initial").await;
    let r = e.manager.rotate_secret(&p, &verified(RotationStrategy::Staged, &["always_fails"]), None).await;
    assert!(!r.success());
    assert_eq!(r.status, RotationStatus::RolledBack);
    assert!(r.rollback_performed);
    assert!(!r.verification_passed);
    assert!(matches!(r.error, Some(RotationError::Verification { ref verifier, .. }) if verifier == "always_fails"));
    let cur = e.current(&p).await;
    assert_eq!(cur.meta.id, v1.id);
    assert_eq!(text(&cur.data), "initial");
    assert!(e.pending(&p).await.is_none(), "the candidate was discarded");
}

#[tokio::test]
async fn immediate_verification_failure_rolls_back() {
    let e = env();
    let p = path("secrets/db");
    e.seed(&p, "initial").await;
    let r = e.manager.rotate_secret(&p, &verified(RotationStrategy::Immediate, &["always_fails"]), None).await;
    assert_eq!(r.outcome, RotationOutcome::RolledBack, "{r}");
    assert!(r.rollback_performed);
    assert_eq!(e.current_text(&p).await, "initial");
}
