//! The usage examples of the design document rekey grew from
//! (`harombe.security.rotation`, its "API" block and "Usage Examples" 1–5),
//! as written there, through the facade on the in-memory store. Each test
//! quotes the Python it follows; where Python printed, the test also checks
//! what was printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rekey::memory::MemoryStore;
use rekey::{
    AuditEventKind, ExposeSecret, ManualClock, MemoryAuditSink, RotationManager, RotationPolicy, RotationStatus,
    RotationStrategy, SecretData, SecretGenerator, SecretPath, SecretStoreExt, SecretString, Utc, Verifier,
    VerifyContext, VerifyError,
};

const DAY: Duration = Duration::from_secs(86_400);

/// A verification test by name that passes (or fails, with `pass: false`).
#[derive(Debug)]
struct Named {
    name: &'static str,
    pass: bool,
}

#[rekey::async_trait]
impl Verifier for Named {
    fn name(&self) -> &str {
        self.name
    }
    async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        if self.pass { Ok(()) } else { Err(VerifyError::Failed("the provider answered 401".into())) }
    }
}

/// `vault`: an in-memory store on a clock the test moves.
fn vault() -> (Arc<MemoryStore>, ManualClock) {
    let clock = ManualClock::new("2030-01-01T00:00:00Z".parse::<rekey::DateTime<Utc>>().unwrap());
    clock.set_auto_advance(true);
    (Arc::new(MemoryStore::new().with_clock_source(Arc::new(clock.clone()))), clock)
}

async fn secret(store: &MemoryStore, path: &str) -> SecretPath {
    let p: SecretPath = path.parse().unwrap();
    store.create(&p, SecretData::text("initial value")).await.unwrap();
    p
}

/// ```python
/// manager = SecretRotationManager(vault_backend=vault,
///     generator=SecretGenerator(generator_type="random", length=32), audit_logger=audit_logger)
/// policy = RotationPolicy(name="production", interval_days=90, strategy=RotationStrategy.STAGED,
///     require_verification=True, verification_tests=["api_test", "connectivity_test"])
/// result = await manager.rotate_secret("/secrets/api_key", policy)
/// if result.success:
///     print(f"Rotated {result.secret_path}: {result.old_version} → {result.new_version}")
/// schedule = manager.schedule_rotation("/secrets/api_key", policy)
/// results = await manager.process_scheduled_rotations()
/// ```
#[tokio::test]
async fn api_overview() {
    let (vault, clock) = vault();
    let audit_logger = MemoryAuditSink::new();
    let manager = RotationManager::builder(vault.clone())
        .clock(Arc::new(clock.clone()))
        .generator(Arc::new(SecretGenerator::random(32).unwrap()))
        .audit_sink(Arc::new(audit_logger.clone()))
        .verifier(Arc::new(Named { name: "api_test", pass: true }))
        .verifier(Arc::new(Named { name: "connectivity_test", pass: true }))
        .build()
        .unwrap();
    let policy = RotationPolicy::builder("production")
        .interval(90 * DAY)
        .strategy(RotationStrategy::Staged)
        .require_verification(true)
        .verification_tests(["api_test", "connectivity_test"])
        .build()
        .unwrap();
    let path = secret(&vault, "/secrets/api_key").await;

    let result = manager.rotate_secret(&path, &policy, None).await;
    assert!(result.success(), "{result}");
    let line = format!("Rotated {}: {:?} → {:?}", result.path, result.old_version, result.new_version);
    assert!(line.starts_with("Rotated secrets/api_key: Some("), "{line}");
    assert_eq!(vault.current_text(&path).await.unwrap().expose_secret().len(), 32);
    assert!(audit_logger.kinds().contains(&AuditEventKind::Succeeded));

    let schedule = manager.schedule_rotation(&path, policy).await.unwrap();
    assert_eq!(schedule.next_rotation, Some(schedule.last_rotation + rekey::chrono::Duration::days(90)));
    let results = manager.process_scheduled_rotations().await;
    assert!(results.is_empty(), "just rotated: nothing is due");
}

/// Example 1: basic manual rotation.
///
/// ```python
/// policy = RotationPolicy(name="manual", interval_days=0, strategy=RotationStrategy.IMMEDIATE,
///     require_verification=False)
/// result = await manager.rotate_secret("/secrets/database_password", policy)
/// if result.success:
///     print(f"Password rotated successfully in {result.duration_ms:.1f}ms")
/// ```
#[tokio::test]
async fn example_1_basic_manual_rotation() {
    let (vault, clock) = vault();
    let manager = RotationManager::builder(vault.clone()).clock(Arc::new(clock)).build().unwrap();
    let policy = RotationPolicy::builder("manual")
        .manual()
        .strategy(RotationStrategy::Immediate)
        .require_verification(false)
        .build()
        .unwrap();
    let path = secret(&vault, "/secrets/database_password").await;
    let result = manager.rotate_secret(&path, &policy, None).await;
    assert!(result.success(), "Failed: {result}");
    let line = format!("Password rotated successfully in {:.1}ms", result.duration_ms());
    assert_eq!(line, "Password rotated successfully in 0.0ms", "the manual clock did not move");
    assert_ne!(vault.current_text(&path).await.unwrap().expose_secret(), "initial value");
    // `interval_days=0` means manual only: never scheduled.
    assert_eq!(manager.schedule_rotation(&path, policy).await.unwrap().next_rotation, None);
}

/// Example 2: scheduled rotation, with the worker's `asyncio.sleep(3600)`
/// replaced by moving the clock.
///
/// ```python
/// policy = RotationPolicy(name="monthly", interval_days=30, strategy=RotationStrategy.STAGED)
/// schedule = manager.schedule_rotation("/secrets/api_key", policy)
/// print(f"Next rotation: {schedule.next_rotation}")
/// async def rotation_worker():
///     while True:
///         results = await manager.process_scheduled_rotations()
///         for result in results:
///             if result.success: print(f"✓ Rotated {result.secret_path}")
///             else: print(f"✗ Failed {result.secret_path}: {result.error}")
///         await asyncio.sleep(3600)
/// ```
#[tokio::test]
async fn example_2_scheduled_rotation() {
    let (vault, clock) = vault();
    let manager = RotationManager::builder(vault.clone()).clock(Arc::new(clock.clone())).build().unwrap();
    let policy =
        RotationPolicy::builder("monthly").interval(30 * DAY).strategy(RotationStrategy::Staged).build().unwrap();
    let path = secret(&vault, "/secrets/api_key").await;
    let schedule = manager.schedule_rotation(&path, policy).await.unwrap();
    assert_eq!(format!("Next rotation: {:?}", schedule.next_rotation), "Next rotation: Some(2030-01-31T00:00:00Z)");

    let mut printed = Vec::new();
    for _hour in 0..(31 * 24) {
        for result in manager.process_scheduled_rotations().await {
            if result.success() {
                printed.push(format!("✓ Rotated {}", result.path));
            } else {
                printed.push(format!("✗ Failed {}: {:?}", result.path, result.error));
            }
        }
        clock.advance(Duration::from_secs(3600));
    }
    assert_eq!(printed, ["✓ Rotated secrets/api_key"], "rotated once in 31 days");
    assert_eq!(manager.get_schedule(&path).map(|s| s.rotation_count), Some(1));
}

/// Example 3: custom secret generators and a custom value.
///
/// ```python
/// uuid_generator = SecretGenerator(generator_type="uuid")
/// manager = SecretRotationManager(vault_backend=vault, generator=uuid_generator)
/// hex_generator = SecretGenerator(generator_type="hex", length=64)
/// result = await manager.rotate_secret("/secrets/webhook_secret", policy, new_value="custom_secret_value_123")
/// ```
#[tokio::test]
async fn example_3_custom_secret_generator() {
    let (vault, clock) = vault();
    let policy = RotationPolicy::builder("manual").manual().build().unwrap();
    let text = |s: SecretString| s.expose_secret().to_owned();

    let uuid_generator = Arc::new(SecretGenerator::uuid());
    let manager = RotationManager::builder(vault.clone())
        .clock(Arc::new(clock.clone()))
        .generator(uuid_generator)
        .build()
        .unwrap();
    let path = secret(&vault, "/secrets/session").await;
    assert!(manager.rotate_secret(&path, &policy, None).await.success());
    let v = text(vault.current_text(&path).await.unwrap());
    assert_eq!((v.len(), v.matches('-').count(), v.chars().nth(14)), (36, 4, Some('4')), "a UUID v4");

    let hex_generator = Arc::new(SecretGenerator::hex(64).unwrap());
    let manager = RotationManager::builder(vault.clone())
        .clock(Arc::new(clock.clone()))
        .generator(hex_generator)
        .build()
        .unwrap();
    let path = secret(&vault, "/secrets/token").await;
    assert!(manager.rotate_secret(&path, &policy, None).await.success());
    let v = text(vault.current_text(&path).await.unwrap());
    assert!(v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()), "64 hex characters");

    let manager = RotationManager::builder(vault.clone()).clock(Arc::new(clock)).build().unwrap();
    let path = secret(&vault, "/secrets/webhook_secret").await;
    let result =
        manager.rotate_secret(&path, &policy, Some(SecretString::from("custom_secret_value_123".to_owned()))).await;
    assert!(result.success(), "{result}");
    assert_eq!(text(vault.current_text(&path).await.unwrap()), "custom_secret_value_123");
}

/// Example 4: staged rotation with a verification that fails.
///
/// ```python
/// policy = RotationPolicy(name="verified", interval_days=90, strategy=RotationStrategy.STAGED,
///     require_verification=True, verification_tests=["anthropic_api_test"], auto_rollback=True)
/// result = await manager.rotate_secret("/secrets/anthropic_api_key", policy)
/// if not result.success and result.rollback_performed:
///     print("Rotation failed, rolled back to previous value")
/// ```
#[tokio::test]
async fn example_4_staged_rotation_with_verification() {
    let (vault, clock) = vault();
    let manager = RotationManager::builder(vault.clone())
        .clock(Arc::new(clock))
        .verifier(Arc::new(Named { name: "anthropic_api_test", pass: false }))
        .build()
        .unwrap();
    let policy = RotationPolicy::builder("verified")
        .interval(90 * DAY)
        .strategy(RotationStrategy::Staged)
        .require_verification(true)
        .verification_tests(["anthropic_api_test"])
        .auto_rollback(true)
        .build()
        .unwrap();
    let path = secret(&vault, "/secrets/anthropic_api_key").await;
    let result = manager.rotate_secret(&path, &policy, None).await;
    assert!(!result.success() && result.rollback_performed, "{result}");
    assert_eq!(result.status, RotationStatus::RolledBack);
    assert_eq!(vault.current_text(&path).await.unwrap().expose_secret(), "initial value");
    assert!(vault.pending(&path).await.unwrap().is_none(), "the candidate was discarded");
}

/// Example 5: statistics and monitoring.
///
/// ```python
/// stats = manager.get_statistics()
/// print(f"Total Rotations: {stats['total_rotations']} ... Active Schedules: {stats['active_schedules']} ...")
/// manager.reset_statistics()
/// ```
#[tokio::test]
async fn example_5_statistics_and_monitoring() {
    let (vault, clock) = vault();
    let manager = RotationManager::builder(vault.clone())
        .clock(Arc::new(clock))
        .verifier(Arc::new(Named { name: "fails", pass: false }))
        .build()
        .unwrap();
    let plain = RotationPolicy::builder("plain").build().unwrap();
    let failing = RotationPolicy::builder("failing").verification_tests(["fails"]).build().unwrap();
    let a = secret(&vault, "/secrets/a").await;
    let b = secret(&vault, "/secrets/b").await;
    assert!(manager.rotate_secret(&a, &plain, None).await.success());
    assert!(manager.rotate_secret(&a, &plain, None).await.success());
    assert!(!manager.rotate_secret(&b, &failing, None).await.success());
    manager.schedule_rotation(&a, RotationPolicy::builder("q").interval(90 * DAY).build().unwrap()).await.unwrap();

    let stats = manager.statistics(); // the seed's get_statistics()
    let printed = format!(
        "Total Rotations: {}\nSuccessful: {}\nFailed: {}\nRollbacks: {}\nSuccess Rate: {:.1}%\n\
         Active Schedules: {}\nCurrently Rotating: {}",
        stats.total_rotations,
        stats.successful_rotations,
        stats.failed_rotations,
        stats.rollbacks,
        stats.success_rate * 100.0,
        stats.active_schedules,
        stats.active_rotations,
    );
    assert_eq!(
        printed,
        "Total Rotations: 3\nSuccessful: 2\nFailed: 1\nRollbacks: 1\nSuccess Rate: 66.7%\n\
         Active Schedules: 1\nCurrently Rotating: 0"
    );
    manager.reset_statistics();
    assert_eq!(manager.statistics().total_rotations, 0);
}
