//! The behaviours of the original design's 32-test suite (its "Testing"
//! section), one test per item, through the Rust engine. Items covered in
//! more depth elsewhere say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use engine_support::*;
use rekey_core::*;

const STAGED: RotationStrategy = RotationStrategy::Staged;
const IMMEDIATE: RotationStrategy = RotationStrategy::Immediate;

// 1. Enum tests

#[test]
fn rotation_status_values() {
    let all = [
        RotationStatus::Pending,
        RotationStatus::InProgress,
        RotationStatus::Verifying,
        RotationStatus::Success,
        RotationStatus::Failed,
        RotationStatus::RolledBack,
    ];
    let names: Vec<String> = all.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["pending", "in_progress", "verifying", "success", "failed", "rolled_back"]);
}

#[test]
fn rotation_strategy_values() {
    let names: Vec<&str> = RotationStrategy::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["immediate", "staged", "dual_write", "blue_green"]);
}

// 2. Model tests

#[test]
fn rotation_policy_creation_and_defaults() {
    let p = RotationPolicy::builder("production").build().unwrap();
    assert_eq!(p.name(), "production");
    assert_eq!(p.strategy(), STAGED);
    assert!(!p.require_verification());
    assert!(p.auto_rollback());
    assert_eq!(p.max_retries(), 3);
    let p = verified(STAGED, &["api_test", "connectivity_test"]);
    assert_eq!(p.verification_tests(), ["api_test", "connectivity_test"]);
}

#[tokio::test]
async fn rotation_result_creation() {
    let e = env();
    let p = path("seed/result");
    let v1 = e.seed(&p, "initial").await;
    let r = e.manager.rotate_secret(&p, &policy(STAGED), None).await;
    assert_eq!(r.path, p);
    assert_eq!(r.status, RotationStatus::Success);
    assert_eq!(r.old_version, Some(v1.id));
    assert!(r.new_version.is_some());
    assert!(r.completed_at >= r.started_at);
    // Stage (reporting what was current, with the journal) and promote
    // (with the record): issue 12's protocol minimum on memory.
    assert_eq!(r.calls, 2);
    assert!(r.error.is_none() && !r.rollback_performed && r.success());
}

// 3. SecretGenerator tests, through the manager

async fn rotate_with(generator: SecretGenerator) -> String {
    let e = env_with(|b| b.generator(Arc::new(generator)));
    let p = path("seed/gen");
    e.seed(&p, "initial").await;
    assert!(e.manager.rotate_secret(&p, &policy(STAGED), None).await.success());
    e.current_text(&p).await
}

#[tokio::test]
async fn random_generation() {
    let v = rotate_with(SecretGenerator::random(32).unwrap()).await;
    assert_eq!(v.len(), 32);
    assert!(v.chars().all(|c| c.is_ascii_graphic()), "{}", v.len());
}

#[tokio::test]
async fn uuid_generation() {
    let v = rotate_with(SecretGenerator::uuid()).await;
    assert!(uuid::Uuid::parse_str(&v).is_ok_and(|u| u.get_version_num() == 4));
}

#[tokio::test]
async fn hex_generation() {
    let v = rotate_with(SecretGenerator::hex(64).unwrap()).await;
    assert_eq!(v.len(), 64);
    assert!(v.chars().all(|c| c.is_ascii_hexdigit()));
}

#[tokio::test]
async fn generated_values_are_unique() {
    let e = env();
    let p = path("seed/unique");
    e.seed(&p, "initial").await;
    let mut seen = HashSet::new();
    for _ in 0..100 {
        assert!(e.manager.rotate_secret(&p, &policy(IMMEDIATE), None).await.success());
        assert!(seen.insert(e.current_text(&p).await));
    }
}

// 4. Manager tests

#[test]
fn initialization_and_configuration() {
    let clock = ManualClock::new(t0());
    let store = shared_store(&clock);
    let err = RotationManager::builder(store.clone()).build().unwrap_err();
    assert_eq!(err, ManagerBuildError::MissingClock);
    let err = RotationManager::builder(store.clone())
        .clock(Arc::new(clock.clone()))
        .verifier(Arc::new(Pass("x")))
        .verifier(Arc::new(Fail("x")))
        .build()
        .unwrap_err();
    assert_eq!(err, ManagerBuildError::DuplicateVerifier("x".into()));
    let err =
        RotationManager::builder(store.clone()).clock(Arc::new(clock.clone())).max_concurrency(0).build().unwrap_err();
    assert_eq!(err, ManagerBuildError::ZeroConcurrency);
    let err = RotationManager::builder(store.clone())
        .clock(Arc::new(clock.clone()))
        .default_policy(verified(STAGED, &["nope"]))
        .build()
        .unwrap_err();
    assert!(matches!(err, ManagerBuildError::DefaultPolicy(_)));
    let m = RotationManager::builder(store)
        .clock(Arc::new(clock))
        .verifier(Arc::new(Pass("b")))
        .verifier(Arc::new(Pass("a")))
        .build()
        .unwrap();
    assert_eq!(m.verifier_names(), ["a", "b"]);
    let s = m.statistics();
    assert_eq!((s.total_rotations, s.active_schedules, s.active_rotations), (0, 0, 0));
    assert_eq!(s.success_rate, 0.0);
    assert!(s.p50_duration.is_none());
    assert!(format!("{m:?}").contains("RotationManager"));
}

#[tokio::test]
async fn staged_rotation_strategy() {
    let e = env();
    let p = path("seed/staged");
    e.seed(&p, "initial").await;
    let r = e.manager.rotate_secret(&p, &verified(STAGED, &["api_test"]), None).await;
    assert!(r.success() && r.verification_passed);
    assert!(e.pending(&p).await.is_none());
    assert_eq!(e.store.calls(rekey_memory::Method::Stage), 1);
    assert_eq!(e.store.calls(rekey_memory::Method::Promote), 1);
    assert_eq!(e.store.calls(rekey_memory::Method::Put), 1, "only the seed");
}

#[tokio::test]
async fn immediate_rotation_strategy() {
    let e = env();
    let p = path("seed/immediate");
    e.seed(&p, "initial").await;
    let r = e.manager.rotate_secret(&p, &policy(IMMEDIATE), None).await;
    assert!(r.success());
    assert_eq!(e.store.calls(rekey_memory::Method::Stage), 0);
    assert_eq!(e.store.calls(rekey_memory::Method::Put), 2);
}

#[tokio::test]
async fn custom_value_rotation() {
    let e = env();
    let p = path("seed/custom");
    e.seed(&p, "initial").await;
    let r = e.manager.rotate_secret(&p, &policy(STAGED), Some(SecretString::from("custom_secret_value_123"))).await;
    assert!(r.success());
    assert_eq!(e.current_text(&p).await, "custom_secret_value_123");
}

#[tokio::test]
async fn concurrent_rotation_prevention() {
    // In depth: engine_concurrency.rs.
    let e = env_with(|b| b.verifier(Arc::new(Hang("slow"))));
    let p = path("seed/concurrent");
    e.seed(&p, "initial").await;
    let policy = verified(STAGED, &["slow"]);
    let first = e.manager.rotate_secret(&p, &policy, None);
    let second = async {
        tokio::task::yield_now().await;
        e.manager.rotate_secret(&p, &policy, None).await
    };
    tokio::pin!(first);
    let second = tokio::select! {
        _ = &mut first => panic!("the first never finishes"),
        r = second => r,
    };
    assert_eq!(second.outcome, RotationOutcome::AlreadyRotating);
}

#[tokio::test]
async fn statistics_tracking() {
    let e = env();
    let p = path("seed/stats");
    e.seed(&p, "initial").await;
    for _ in 0..3 {
        assert!(e.manager.rotate_secret(&p, &policy(STAGED), None).await.success());
    }
    assert!(!e.manager.rotate_secret(&p, &verified(STAGED, &["always_fails"]), None).await.success());
    let s = e.manager.statistics();
    assert_eq!((s.total_rotations, s.successful_rotations, s.failed_rotations, s.rollbacks), (4, 3, 1, 1));
    assert!((s.success_rate - 0.75).abs() < 1e-9);
    e.manager.reset_statistics();
    let s = e.manager.statistics();
    assert_eq!((s.total_rotations, s.successful_rotations, s.failed_rotations), (0, 0, 0));
}

/// Takes `millis` of (manual-clock) time to pass.
#[derive(Debug)]
struct Takes(ManualClock, u64);

#[async_trait]
impl Verifier for Takes {
    fn name(&self) -> &str {
        "takes"
    }
    async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        self.0.advance(Duration::from_millis(self.1));
        Ok(())
    }
}

#[tokio::test]
async fn duration_tracking() {
    let clock = ManualClock::new(t0());
    let c = clock.clone();
    let store = shared_store(&clock);
    let audit = MemoryAuditSink::new();
    let m = manager_on(store.clone(), &clock, &audit, move |b| b.verifier(Arc::new(Takes(c, 250))));
    let p = path("seed/duration");
    store.create(&p, SecretData::text("x")).await.unwrap();
    for _ in 0..10 {
        let r = m.rotate_secret(&p, &verified(STAGED, &["takes"]), None).await;
        assert_eq!(r.duration, Duration::from_millis(250));
        assert!((r.duration_ms() - 250.0).abs() < 1e-9);
        assert_eq!(r.completed_at - r.started_at, chrono::Duration::milliseconds(250));
    }
    let s = m.statistics();
    let p50 = s.p50_duration.unwrap().as_secs_f64();
    assert!((p50 - 0.25).abs() / 0.25 < 0.07, "{p50}");
}

#[tokio::test]
async fn schedule_management_add_remove_list() {
    // In depth: engine_schedule.rs.
    let e = env();
    let (a, b) = (path("seed/a"), path("seed/b"));
    e.seed(&a, "x").await;
    e.seed(&b, "x").await;
    let info = e.manager.schedule_rotation(&a, every(90, STAGED)).await.unwrap();
    assert_eq!(info.next_rotation, Some(t0() + chrono::Duration::days(90)));
    e.manager.schedule_rotation(&b, every(30, STAGED)).await.unwrap();
    assert_eq!(e.manager.list_schedules().len(), 2);
    assert!(e.manager.unschedule_rotation(&a));
    assert_eq!(e.manager.list_schedules().len(), 1);
}

#[tokio::test]
async fn processing_scheduled_rotations() {
    let e = env();
    let p = path("seed/process");
    e.seed(&p, "x").await;
    e.manager.schedule_rotation(&p, every(30, STAGED)).await.unwrap();
    assert!(e.manager.process_scheduled_rotations().await.is_empty());
    e.clock.advance(Duration::from_secs(30 * 86_400));
    let r = e.manager.process_scheduled_rotations().await;
    assert_eq!(r.len(), 1);
    assert!(r[0].success());
}

#[tokio::test]
async fn disabled_schedules() {
    let e = env();
    let p = path("seed/disabled");
    e.seed(&p, "x").await;
    e.manager.schedule_rotation(&p, every(1, STAGED)).await.unwrap();
    e.manager.pause_schedule(&p).unwrap();
    e.clock.advance(Duration::from_secs(10 * 86_400));
    assert!(e.manager.process_scheduled_rotations().await.is_empty());
    assert!(!e.manager.get_schedule(&p).unwrap().enabled);
}

#[tokio::test]
async fn version_identifiers() {
    let e = env();
    let p = path("seed/versions");
    let v1 = e.seed(&p, "x").await;
    let r1 = e.manager.rotate_secret(&p, &policy(STAGED), None).await;
    let r2 = e.manager.rotate_secret(&p, &policy(IMMEDIATE), None).await;
    assert_eq!(r1.old_version.as_ref(), Some(&v1.id));
    assert_eq!(r2.old_version, r1.new_version, "each rotation starts from the last one's version");
    assert_ne!(r1.new_version, r2.new_version);
    assert_eq!(r2.new_version.as_ref(), Some(&e.current(&p).await.meta.id));
    assert_eq!(e.store.previous(&p).await.unwrap().meta.id, r1.new_version.unwrap());
}

// 5. Integration tests

#[tokio::test]
async fn end_to_end_rotation_workflow() {
    let e = env();
    let p = path("seed/e2e");
    e.seed(&p, "initial").await;
    let policy = verified(STAGED, &["api_test", "connectivity_test"]);
    e.manager.schedule_rotation(&p, Arc::new(policy.clone())).await.unwrap();
    let manual = e.manager.rotate_secret(&p, &policy, None).await;
    assert!(manual.success());
    let failed = e.manager.rotate_secret(&p, &verified(STAGED, &["always_fails"]), None).await;
    assert_eq!(failed.outcome, RotationOutcome::RolledBack);
    assert_eq!(e.current(&p).await.meta.id, manual.new_version.clone().unwrap());
    let emergency = e.manager.emergency_rotate(&p, "incident 42").await;
    assert!(emergency.success());
    let s = e.manager.statistics();
    assert_eq!((s.successful_rotations, s.failed_rotations, s.active_schedules), (2, 1, 1));
    assert!(
        e.audit.kinds().contains(&AuditEventKind::RolledBack) || e.audit.kinds().contains(&AuditEventKind::Discarded)
    );
}

#[tokio::test]
async fn multiple_scheduled_rotations() {
    let e = env();
    let policy = Arc::new(every(7, STAGED));
    for i in 0..10 {
        let p = path(&format!("seed/multi/{i}"));
        e.seed(&p, "x").await;
        e.manager.schedule_rotation(&p, policy.clone()).await.unwrap();
    }
    for week in 1..=4 {
        e.clock.advance(Duration::from_secs(7 * 86_400));
        let r = e.manager.process_scheduled_rotations().await;
        assert_eq!(r.len(), 10, "week {week}");
        assert!(r.iter().all(RotationResult::success));
    }
    assert_eq!(e.manager.statistics().successful_rotations, 40);
}

// Multi-field secrets and per-secret options

#[tokio::test]
async fn a_bound_field_is_rotated_and_the_others_kept() {
    let e = env();
    let p = path("seed/fields");
    e.store.create(&p, SecretData::fields([("username", "app"), ("password", "old")])).await.unwrap();
    let r = e.manager.rotate_secret(&p, &policy(STAGED), None).await;
    assert!(matches!(r.error, Some(RotationError::InvalidBinding { .. })), "no field bound: {r}");
    assert_eq!(e.store.write_calls(), 1);
    e.manager
        .bind(p.clone(), SecretBinding::new().field("password").generator(Arc::new(SecretGenerator::hex(16).unwrap())));
    let r = e.manager.rotate_secret(&p, &policy(STAGED), None).await;
    assert!(r.success(), "{r}");
    let cur = e.current(&p).await.data;
    assert_eq!(cur.field("username").unwrap().expose_secret(), "app");
    assert_eq!(cur.field("password").unwrap().expose_secret().len(), 16);
    assert!(e.manager.unbind(&p));

    let t = path("seed/text");
    e.seed(&t, "x").await;
    let binding = Arc::new(SecretBinding::new().field("password"));
    let r = e.manager.rotate(RotationRequest::new(&t, &policy(STAGED)).binding(binding)).await;
    assert!(matches!(r.error, Some(RotationError::InvalidBinding { .. })), "{r}");
    assert_eq!(e.current_text(&t).await, "x");
}
