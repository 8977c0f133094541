//! Your own verifier, with nothing but `rekey` (and a runtime) in your
//! Cargo.toml: no `async-trait`, no `chrono` — the facade re-exports what its
//! signatures use. Implements a [`Verifier`], rotates under a schedule on a
//! manual clock, reads the value back in one call, and compares what the
//! manager reports with values built by hand (`assert_eq!`). No server:
//!
//! ```text
//! cargo run --example custom_verifier
//! ```
//!
//! It prints version ids and lengths, never a secret value.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rekey::memory::MemoryStore;
use rekey::{
    Clock, ExposeSecret, ManualClock, RotationManager, RotationOutcome, RotationPolicy, RotationResult,
    RotationStatistics, RotationStrategy, RotationTrigger, ScheduleInfo, SecretData, SecretPath, SecretStoreExt, Utc,
    Verifier, VerifyContext, VerifyError,
};

/// Accepts a candidate of at least `min_len` characters; counts its calls.
#[derive(Debug)]
struct MinLength {
    min_len: usize,
    calls: AtomicUsize,
}

#[rekey::async_trait]
impl Verifier for MinLength {
    fn name(&self) -> &str {
        "min_length"
    }

    async fn verify(&self, ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let len = ctx.candidate.as_text().map(|v| v.expose_secret().chars().count()).unwrap_or(0);
        if len >= self.min_len {
            Ok(())
        } else {
            // Say what is wrong, never the value.
            Err(VerifyError::Failed(format!("{len} characters, fewer than {}", self.min_len)))
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    // One clock for the manager and the store's version times, moved by hand.
    let clock = ManualClock::new("2030-01-01T09:00:00.123456789Z".parse::<rekey::DateTime<Utc>>()?);
    let store = Arc::new(MemoryStore::new().with_clock_source(Arc::new(clock.clone())));
    let verifier = Arc::new(MinLength { min_len: 24, calls: AtomicUsize::new(0) });
    let manager =
        RotationManager::builder(store.clone()).clock(Arc::new(clock.clone())).verifier(verifier.clone()).build()?;

    let path: SecretPath = "apps/billing/api-key".parse()?;
    let first = store.create(&path, SecretData::text("the value in use today")).await?;
    let policy = Arc::new(
        RotationPolicy::builder("monthly")
            .interval(Duration::from_secs(30 * 86_400))
            .strategy(RotationStrategy::Staged)
            .verification_tests(["min_length"])
            .build()?,
    );

    // The schedule the manager reports is the one built by hand.
    let schedule = manager.schedule_rotation(&path, policy.clone()).await?;
    assert_eq!(schedule, ScheduleInfo::new(path.clone(), policy.clone(), first.created_at));
    println!("scheduled {path}: next rotation {:?}", schedule.next_rotation);

    // Thirty days later it is due, rotates once, and the verifier ran.
    clock.advance(Duration::from_secs(30 * 86_400));
    let results = manager.process_scheduled_rotations().await;
    assert_eq!(results.len(), 1);
    let result = &results[0];
    assert!(result.success(), "{result}");
    assert_eq!(verifier.calls.load(Ordering::SeqCst), 1);

    // Reading the value consumers use is one call.
    let value = store.current_text(&path).await?;
    assert_ne!(value.expose_secret(), "the value in use today");
    println!("rotated {path}: new value of {} characters", value.expose_secret().len());

    // A result built by hand equals the one the manager returned: the clock
    // did not move during the rotation, so it started and ended at `now`.
    let current = store.current(&path).await?;
    let mut expected =
        RotationResult::new(path.clone(), RotationStrategy::Staged, RotationOutcome::Rotated, clock.now());
    expected.rotation_id = result.rotation_id;
    expected.trigger = RotationTrigger::Schedule;
    expected.old_version = Some(first.id.clone());
    expected.new_version = Some(current.meta.id.clone());
    expected.verification_passed = true;
    expected.calls = result.calls; // store and target calls, an engine detail
    expected.consecutive_failures = Some(0);
    assert_eq!(*result, expected);

    // So does the schedule after it: rotated once, due again in 30 days,
    // counted from the new version's time (kept to the nanosecond).
    let mut after = ScheduleInfo::new(path.clone(), policy.clone(), current.meta.created_at);
    after.rotation_count = 1;
    assert_eq!(manager.get_schedule(&path), Some(after));
    assert!(manager.process_scheduled_rotations().await.is_empty(), "not due again yet");

    // And the statistics.
    let mut stats = RotationStatistics::default();
    stats.total_rotations = 1;
    stats.successful_rotations = 1;
    stats.success_rate = 1.0;
    stats.active_schedules = 1;
    stats.p50_duration = Some(Duration::ZERO);
    stats.p99_duration = Some(Duration::ZERO);
    assert_eq!(manager.statistics(), stats);

    println!("version {} -> {}: every comparison held", first.id, current.meta.id);
    Ok(())
}
