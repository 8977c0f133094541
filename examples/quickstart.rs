//! rekey quickstart: the five usage examples of the original design, on the
//! in-memory store. No server needed:
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Secret values are never printed — only version ids, lengths and shapes.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use rekey::memory::MemoryStore;
use rekey::{
    Clock, ExposeSecret, ManualClock, RotationManager, RotationPolicy, RotationStrategy, SecretBinding, SecretData,
    SecretGenerator, SecretPath, SecretStoreExt, SecretString, Verifier, VerifyContext, VerifyError,
};

/// Stands in for a call to the provider's API with the candidate key. This
/// one always answers "401 Unauthorized", to show a rollback.
#[derive(Debug)]
struct AnthropicApiTest;

#[rekey::async_trait]
impl Verifier for AnthropicApiTest {
    fn name(&self) -> &str {
        "anthropic_api_test"
    }
    async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        Err(VerifyError::Failed("the provider answered 401 Unauthorized".into()))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let store = Arc::new(MemoryStore::new());
    let manager = RotationManager::builder(store.clone())
        .clock(rekey::tokio_clock())
        .verifier(Arc::new(AnthropicApiTest))
        .build()?;

    // ── Example 1: basic manual rotation ──────────────────────────────────
    println!("== 1. Basic manual rotation");
    let db: SecretPath = "/secrets/database_password".parse()?;
    store.create(&db, SecretData::text("initial password")).await?;
    let manual = RotationPolicy::builder("manual").manual().strategy(RotationStrategy::Immediate).build()?;
    let result = manager.rotate_secret(&db, &manual, None).await;
    if result.success() {
        println!(
            "Password rotated successfully in {:.3} ms: version {} -> {}",
            result.duration_ms(),
            short(result.old_version.as_ref()),
            short(result.new_version.as_ref()),
        );
    } else {
        println!("Failed: {}", result.error.map(|e| e.to_string()).unwrap_or_default());
    }

    // ── Example 2: scheduled rotation (a manual clock stands in for 30 days) ─
    println!("\n== 2. Scheduled rotation");
    let clock = ManualClock::new(rekey::Utc::now());
    let c = clock.clone();
    let scheduled_store = Arc::new(MemoryStore::new().with_clock(move || c.now()));
    let scheduler = RotationManager::builder(scheduled_store.clone()).clock(Arc::new(clock.clone())).build()?;
    let api_key: SecretPath = "/secrets/api_key".parse()?;
    scheduled_store.create(&api_key, SecretData::text("initial api key")).await?;
    let monthly = RotationPolicy::builder("monthly")
        .interval(Duration::from_secs(30 * 86_400))
        .strategy(RotationStrategy::Staged)
        .build()?;
    let schedule = scheduler.schedule_rotation(&api_key, monthly).await?;
    println!("Next rotation: {}", fmt_time(schedule.next_rotation));
    println!("Due now? {} rotation(s) run", scheduler.process_scheduled_rotations().await.len());
    clock.advance(Duration::from_secs(30 * 86_400));
    println!("... 30 days later (on the manual clock) ...");
    for r in scheduler.process_scheduled_rotations().await {
        if r.success() {
            println!(
                "✓ Rotated {} (version {} -> {})",
                r.path,
                short(r.old_version.as_ref()),
                short(r.new_version.as_ref())
            );
        } else {
            println!("✗ Failed {}: {}", r.path, r.error.map(|e| e.to_string()).unwrap_or_default());
        }
    }
    println!("Next rotation: {}", fmt_time(scheduler.get_schedule(&api_key).and_then(|s| s.next_rotation)));

    // ── Example 3: custom generators and a custom value ───────────────────
    println!("\n== 3. Custom secret generator");
    let uuid_manager = RotationManager::builder(store.clone())
        .clock(rekey::tokio_clock())
        .generator(Arc::new(SecretGenerator::uuid()))
        .build()?;
    let session: SecretPath = "/secrets/session_id".parse()?;
    store.create(&session, SecretData::text("initial")).await?;
    let r = uuid_manager.rotate_secret(&session, &manual, None).await;
    let v = store.current(&session).await?;
    let is_uuid = v.data.as_text().is_some_and(|s| {
        let s = s.expose_secret();
        s.len() == 36 && s.matches('-').count() == 4
    });
    println!(
        "uuid generator: {} -> version {}, value is a UUID: {is_uuid}",
        outcome(r.success()),
        short(r.new_version.as_ref())
    );

    let token: SecretPath = "/secrets/signing_token".parse()?;
    store.create(&token, SecretData::text("initial")).await?;
    manager.bind(token.clone(), SecretBinding::new().generator(Arc::new(SecretGenerator::hex(64)?)));
    let r = manager.rotate_secret(&token, &manual, None).await;
    let v = store.current(&token).await?;
    let hex_len = v.data.as_text().map(|s| s.expose_secret().len()).unwrap_or(0);
    println!("hex generator (bound to {token}): {} -> {hex_len} hex characters", outcome(r.success()));

    let webhook: SecretPath = "/secrets/webhook_secret".parse()?;
    store.create(&webhook, SecretData::text("initial")).await?;
    let r = manager.rotate_secret(&webhook, &manual, Some(SecretString::from("custom_secret_value_123"))).await;
    println!("custom value: {} -> version {}", outcome(r.success()), short(r.new_version.as_ref()));

    // ── Example 4: staged rotation whose verification fails ───────────────
    println!("\n== 4. Staged rotation with verification");
    let anthropic: SecretPath = "/secrets/anthropic_api_key".parse()?;
    store.create(&anthropic, SecretData::text("the key in use")).await?;
    let before = store.current(&anthropic).await?.meta.id;
    let verified = RotationPolicy::builder("verified")
        .interval(Duration::from_secs(90 * 86_400))
        .strategy(RotationStrategy::Staged)
        .require_verification(true)
        .verification_tests(["anthropic_api_test"])
        .auto_rollback(true)
        .build()?;
    let result = manager.rotate_secret(&anthropic, &verified, None).await;
    if !result.success() && result.rollback_performed {
        println!("Rotation failed, rolled back to previous value ({})", result.status);
        println!("  why: {}", result.error.map(|e| e.to_string()).unwrap_or_default());
    }
    let after = store.current(&anthropic).await?.meta.id;
    println!(
        "  current version before {} / after {}: unchanged = {}",
        short(Some(&before)),
        short(Some(&after)),
        before == after
    );
    println!("  candidate left staged: {}", store.pending(&anthropic).await?.is_some());

    // ── Example 5: statistics and monitoring ──────────────────────────────
    println!("\n== 5. Statistics");
    manager
        .schedule_rotation(
            &db,
            RotationPolicy::builder("quarterly").interval(Duration::from_secs(90 * 86_400)).build()?,
        )
        .await?;
    let stats = manager.statistics();
    println!(
        "Rotation Statistics:
  Total Rotations: {}
  Successful: {}
  Failed: {}
  Rollbacks: {}
  Success Rate: {:.1}%
  Active Schedules: {}
  Currently Rotating: {}
  p50 / p99 duration: {} / {}",
        stats.total_rotations,
        stats.successful_rotations,
        stats.failed_rotations,
        stats.rollbacks,
        stats.success_rate * 100.0,
        stats.active_schedules,
        stats.active_rotations,
        fmt_ms(stats.p50_duration),
        fmt_ms(stats.p99_duration),
    );
    manager.reset_statistics();
    println!("After reset_statistics(): total = {}", manager.statistics().total_rotations);
    Ok(())
}

fn short(v: Option<&rekey::VersionId>) -> String {
    v.map(|v| v.as_str().chars().take(8).collect()).unwrap_or_else(|| "-".into())
}

fn outcome(ok: bool) -> &'static str {
    if ok { "rotated" } else { "failed" }
}

fn fmt_time(t: Option<rekey::DateTime<rekey::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| "never".into())
}

fn fmt_ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.3} ms", d.as_secs_f64() * 1000.0)).unwrap_or_else(|| "-".into())
}
