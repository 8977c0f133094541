//! "Swap backends in tests", as a test: one scenario suite, written once as
//! async functions over `Arc<rekey::DynSecretStore>` and run through the
//! facade on every store this build enables — the in-memory store always,
//! OpenBao with `--features vault` and moto with `--features aws` (real
//! servers; `scripts/servers.sh start openbao moto`, then
//! `source .test-servers/env`). A server that is not running fails the test
//! in CI (`CI=true`) and skips it, saying so, elsewhere.
//!
//! Each test is named `<store>::<scenario>` (`memory::rollback_staged`,
//! `vault::crash_and_recovery`, ...).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use rekey::{
    AuditEventKind, MemoryAuditSink, RotationError, RotationOutcome, RotationPolicy, RotationStrategy, RotationTrigger,
    ScheduleInfo, SecretBinding, SecretData, SecretStoreExt, SecretString, Verifier,
};
use support::{Backend, Checker, Hangs, RejectsBad};

const DAY: Duration = Duration::from_secs(86_400);

fn policy(strategy: RotationStrategy) -> RotationPolicy {
    RotationPolicy::builder("e2e").strategy(strategy).build().expect("a policy")
}

fn verified(strategy: RotationStrategy) -> RotationPolicy {
    RotationPolicy::builder("e2e-verified")
        .strategy(strategy)
        .verification_tests([RejectsBad::NAME])
        .build()
        .expect("a policy")
}

fn value(v: &str) -> Option<SecretString> {
    Some(SecretString::from(v.to_owned()))
}

/// Nothing staged and no rotation journal left beside the secret.
async fn clean(b: &Backend, path: &rekey::SecretPath) {
    assert!(b.store.pending(path).await.unwrap().is_none(), "{}: a candidate was left staged", b.name);
    let meta = b.store.read_metadata(path).await.unwrap();
    assert!(!meta.contains_key(rekey::journal::JOURNAL_KEY), "{}: the journal was left behind", b.name);
}

// ── Each strategy ────────────────────────────────────────────────────────

/// Immediate: the new value is current at once, the old one is the previous.
async fn rotate_immediate(b: &Backend) {
    let path = b.path("immediate");
    let v1 = b.seed(&path, "immediate-initial-value").await;
    let m = b.manager(&MemoryAuditSink::new(), &[]);
    let r = m.rotate_secret(&path, &policy(RotationStrategy::Immediate), value("immediate-second-value")).await;
    assert!(r.success(), "{}: {r}", b.name);
    assert_eq!(r.old_version.as_ref(), Some(&v1.id));
    assert_eq!(b.text(&path).await, "immediate-second-value");
    assert_eq!(b.store.current(&path).await.unwrap().meta.id, r.new_version.clone().unwrap());
    let previous = b.store.previous(&path).await.unwrap();
    assert!(previous.data.same_as(&SecretData::text("immediate-initial-value")), "{}", b.name);
    clean(b, &path).await;
}

/// Staged: the verifier sees the candidate before it is current, and what it
/// saw is what becomes current.
async fn rotate_staged(b: &Backend) {
    let path = b.path("staged");
    b.seed(&path, "staged-initial-value").await;
    let verifier = Arc::new(RejectsBad::default());
    let m = b.manager(&MemoryAuditSink::new(), &[verifier.clone() as Arc<dyn Verifier>]);
    let r = m.rotate_secret(&path, &verified(RotationStrategy::Staged), None).await;
    assert!(r.success() && r.verification_passed, "{}: {r}", b.name);
    let seen = verifier.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(b.text(&path).await, seen[0], "{}: the verified value is the current one", b.name);
    clean(b, &path).await;
}

/// Dual-write: old and new valid together until the grace period ends; the
/// retire pass then revokes the old one; a rotation before that is deferred.
async fn rotate_dual_write(b: &Backend) {
    let path = b.path("dual-write");
    b.seed(&path, "dual-old-credential").await;
    let old = SecretData::text("dual-old-credential");
    let checker = Checker::new(true, &[&old]);
    let m = b.manager(&MemoryAuditSink::new(), &[]);
    m.bind(path.clone(), SecretBinding::new().target(checker.clone()));
    let policy = RotationPolicy::builder("dual")
        .strategy(RotationStrategy::DualWrite)
        .grace_period(Duration::from_secs(3600))
        .build()
        .unwrap();

    let r = m.rotate_secret(&path, &policy, value("dual-new-credential")).await;
    assert!(r.success(), "{}: {r}", b.name);
    let new = SecretData::text("dual-new-credential");
    assert_eq!(b.text(&path).await, "dual-new-credential");
    assert!(checker.accepts(&old) && checker.accepts(&new), "{}: both valid during the grace period", b.name);

    // Within the grace period: nothing is retired, and a rotation waits.
    assert!(m.process_retirements().await.is_empty(), "{}: retired before the deadline", b.name);
    let early = m.rotate_secret(&path, &policy, value("dual-third-credential")).await;
    assert_eq!(early.outcome, RotationOutcome::Deferred, "{}: {early}", b.name);
    assert!(matches!(early.error, Some(RotationError::RetirePending { .. })), "{}: {early}", b.name);
    assert_eq!(b.text(&path).await, "dual-new-credential");

    // After it: the old credential is revoked, the new one stays.
    b.clock.advance(Duration::from_secs(3601));
    let retired = m.process_retirements().await;
    assert_eq!(retired.len(), 1, "{}: {retired:?}", b.name);
    assert!(retired[0].success() && retired[0].revoked, "{}: {retired:?}", b.name);
    assert!(!checker.accepts(&old) && checker.accepts(&new), "{}", b.name);
    clean(b, &path).await;
}

/// Blue-green: two credential sets in a fields secret; each rotation re-keys
/// the inactive set and switches to it, the other set staying valid.
async fn rotate_blue_green(b: &Backend) {
    let path = b.path("blue-green");
    let blue0 = SecretData::fields([("username", "app_blue"), ("password", "blue-password-0")]);
    b.store.create(&path, blue0.clone()).await.unwrap();
    let checker = Checker::new(false, &[&blue0]);
    let m = b.manager(&MemoryAuditSink::new(), &[]);
    m.bind(path.clone(), SecretBinding::new().credential_sets("app_blue", "app_green").target(checker.clone()));
    let policy = RotationPolicy::builder("bg")
        .strategy(RotationStrategy::BlueGreen)
        .grace_period(Duration::from_secs(3600))
        .build()
        .unwrap();

    let user = |d: &SecretData| rekey::ExposeSecret::expose_secret(d.field("username").unwrap()).to_owned();
    let r1 = m.rotate_secret(&path, &policy, None).await;
    assert!(r1.success(), "{}: {r1}", b.name);
    let green1 = b.store.current(&path).await.unwrap().data;
    assert_eq!(user(&green1), "app_green", "{}: switched to the inactive set", b.name);
    assert!(checker.accepts(&green1) && checker.accepts(&blue0), "{}: both sets valid", b.name);

    let r2 = m.rotate_secret(&path, &policy, None).await;
    assert!(r2.success(), "{}: {r2}", b.name);
    let blue2 = b.store.current(&path).await.unwrap().data;
    assert_eq!(user(&blue2), "app_blue", "{}: switched back", b.name);
    assert!(!blue2.same_as(&blue0), "{}: the blue set was re-keyed", b.name);
    assert!(b.store.previous(&path).await.unwrap().data.same_as(&green1), "{}: green is the previous", b.name);
    assert!(checker.accepts(&blue2) && checker.accepts(&green1), "{}: both sets valid", b.name);
    assert!(!checker.accepts(&blue0), "{}: the old blue password is gone", b.name);
    clean(b, &path).await;
}

// ── Failed verification, rollback ────────────────────────────────────────

/// A candidate that fails verification is rolled back and never current;
/// an operator's rollback afterwards never restores it.
async fn rollback(b: &Backend, strategy: RotationStrategy) {
    let path = b.path(&format!("rollback-{strategy}"));
    b.seed(&path, "good-0-initial").await;
    let verifier = Arc::new(RejectsBad::default());
    let m = b.manager(&MemoryAuditSink::new(), &[verifier.clone() as Arc<dyn Verifier>]);
    let policy = verified(strategy);

    let failed = m.rotate_secret(&path, &policy, value("bad-1-refused-by-the-service")).await;
    assert_eq!(failed.outcome, RotationOutcome::RolledBack, "{}: {failed}", b.name);
    assert!(failed.rollback_performed && !failed.verification_passed, "{}: {failed}", b.name);
    assert!(matches!(failed.error, Some(RotationError::Verification { .. })), "{}: {failed}", b.name);
    assert_eq!(b.text(&path).await, "good-0-initial", "{}: the old value is current", b.name);
    clean(b, &path).await;

    // Nothing good to go back to: the only other value failed.
    let refused = m.rollback(&path).await;
    assert!(matches!(refused, Err(RotationError::NothingToRollBack { .. })), "{}: {refused:?}", b.name);
    assert_eq!(b.text(&path).await, "good-0-initial");

    let ok = m.rotate_secret(&path, &policy, value("good-2-accepted")).await;
    assert!(ok.success(), "{}: {ok}", b.name);
    assert_eq!(b.text(&path).await, "good-2-accepted");

    // Back to the last good value — not the failed candidate in between.
    let back = m.rollback(&path).await.expect("a rollback to the last good value");
    assert_eq!(b.text(&path).await, "good-0-initial", "{}: {back:?}", b.name);
    assert_ne!(Some(&back.restored), failed.new_version.as_ref(), "{}", b.name);
    assert_eq!(verifier.seen(), ["bad-1-refused-by-the-service", "good-2-accepted"]);
}

async fn rollback_staged(b: &Backend) {
    rollback(b, RotationStrategy::Staged).await;
}

async fn rollback_immediate(b: &Backend) {
    rollback(b, RotationStrategy::Immediate).await;
}

// ── A crash, and recovery ────────────────────────────────────────────────

/// A process dies while it verifies a candidate (its rotation future is
/// dropped); a new process finds the journal, cleans up — the candidate is
/// never made current — and rotates.
async fn crash_and_recovery(b: &Backend, strategy: RotationStrategy) {
    let path = b.path(&format!("crash-{strategy}"));
    b.seed(&path, "before-the-crash").await;
    let audit = MemoryAuditSink::new();
    let hangs = Arc::new(Hangs::default());
    let policy =
        RotationPolicy::builder("crashy").strategy(strategy).verification_tests([Hangs::NAME]).build().unwrap();
    // The first process: its clock stands still, so the verifier's timeout
    // never fires; the rotation hangs in the verifier until dropped.
    b.clock.set_auto_advance(false);
    let first = b.manager_with(&audit, &[hangs.clone() as Arc<dyn Verifier>]);
    let rotation = first.rotate_secret(&path, &policy, value("written-by-the-dead-process"));
    let reached = async {
        tokio::time::timeout(Duration::from_secs(60), hangs.entered.notified())
            .await
            .expect("the rotation reaches its verifier");
    };
    tokio::select! {
        r = rotation => panic!("{}: the rotation ended: {r}", b.name),
        () = reached => {}
    }
    drop(first); // the process is gone
    // The crash left its journal: the journal line beside the secret, or
    // (a staged rotation on a store whose candidate is its own journal:
    // Vault's staging entry, AWS's AWSPENDING with the rotation's token) the
    // pending candidate itself.
    let meta = b.store.read_metadata(&path).await.unwrap();
    let native = strategy != RotationStrategy::Immediate && b.store.pending(&path).await.unwrap().is_some();
    assert!(meta.contains_key(rekey::journal::JOURNAL_KEY) || native, "{}: the crash left its journal", b.name);
    let crashed = match strategy {
        RotationStrategy::Immediate => b.store.current(&path).await.unwrap(),
        _ => b.store.pending(&path).await.unwrap().expect("the crash left its candidate staged"),
    };
    assert!(crashed.data.same_as(&SecretData::text("written-by-the-dead-process")), "{}", b.name);

    // Later, another process: the journal is stale, so it is cleaned up.
    b.clock.advance(Duration::from_secs(3600));
    let second = b.manager(&audit, &[Arc::new(RejectsBad::default()) as Arc<dyn Verifier>]);
    let r = second.rotate_secret(&path, &verified(strategy), value("after-recovery")).await;
    assert!(r.success(), "{}: {r}", b.name);
    assert!(audit.kinds().contains(&AuditEventKind::Recovered), "{}: {:?}", b.name, audit.kinds());
    assert_eq!(b.text(&path).await, "after-recovery");
    clean(b, &path).await;
    // The unchecked value is never restored: the value before the crash is.
    let back = second.rollback(&path).await.expect("a rollback");
    assert_ne!(back.restored, crashed.meta.id, "{}", b.name);
    assert_eq!(b.text(&path).await, "before-the-crash", "{}", b.name);
}

async fn crash_and_recovery_staged(b: &Backend) {
    crash_and_recovery(b, RotationStrategy::Staged).await;
}

async fn crash_and_recovery_immediate(b: &Backend) {
    crash_and_recovery(b, RotationStrategy::Immediate).await;
}

// ── A schedule ───────────────────────────────────────────────────────────

fn monthly() -> Arc<RotationPolicy> {
    Arc::new(RotationPolicy::builder("monthly").interval(30 * DAY).strategy(RotationStrategy::Staged).build().unwrap())
}

/// Due → rotated once → not due again until the interval has passed.
async fn schedule(b: &Backend) {
    let path = b.path("schedule");
    b.seed(&path, "scheduled-initial").await;
    // The schedule starts from the version time the store reports.
    let first = b.store.current(&path).await.unwrap().meta;
    let m = b.manager(&MemoryAuditSink::new(), &[]);
    let policy = monthly();
    let info = m.schedule_rotation(&path, policy.clone()).await.unwrap();
    assert_eq!(info, ScheduleInfo::new(path.clone(), policy.clone(), first.created_at), "{}", b.name);
    assert!(m.process_scheduled_rotations().await.is_empty(), "{}: due at once", b.name);

    // Due: rotated once.
    let due = info.next_rotation.expect("an interval schedule is due some time");
    b.clock.set(due);
    let results = m.process_scheduled_rotations().await;
    assert_eq!(results.len(), 1, "{}: {results:?}", b.name);
    assert!(results[0].success() && results[0].trigger == RotationTrigger::Schedule, "{}", b.name);
    assert_ne!(b.text(&path).await, "scheduled-initial");
    let after = m.get_schedule(&path).expect("still scheduled");
    assert_eq!(after.rotation_count, 1, "{}", b.name);
    assert!(after.last_rotation > first.created_at, "{}: {after:?}", b.name);
    assert_eq!(after.next_rotation, after.last_rotation.checked_add_signed(rekey::chrono::Duration::days(30)));

    // Not due again until the interval has passed since the rotation.
    let next = after.next_rotation.expect("due again some time");
    b.clock.set(next - rekey::chrono::Duration::milliseconds(1));
    assert!(m.process_scheduled_rotations().await.is_empty(), "{}: rotated again too early", b.name);
    b.clock.set(next);
    let again = m.process_scheduled_rotations().await;
    assert_eq!(again.len(), 1, "{}: {again:?}", b.name);
    assert!(again[0].success(), "{}: {}", b.name, again[0]);
    assert_eq!(m.get_schedule(&path).map(|s| s.rotation_count), Some(2));
    assert_eq!(m.statistics().successful_rotations, 2);
}

/// After a scheduled rotation, a second process (or this one restarted)
/// that schedules the same secret agrees on when it is next due: both count
/// from the new version's creation time as the store reports it, to the
/// store's full precision.
async fn schedule_second_process_agrees(b: &Backend) {
    let path = b.path("schedule-agrees");
    b.seed(&path, "scheduled-initial").await;
    let first = b.manager(&MemoryAuditSink::new(), &[]);
    let info = first.schedule_rotation(&path, monthly()).await.unwrap();
    b.clock.set(info.next_rotation.expect("due some time"));
    assert_eq!(first.process_scheduled_rotations().await.len(), 1, "{}", b.name);
    let ours = first.get_schedule(&path).expect("still scheduled");

    let second = b.manager(&MemoryAuditSink::new(), &[]);
    let theirs = second.schedule_rotation(&path, monthly()).await.unwrap();
    let current = b.store.current(&path).await.unwrap().meta;
    assert_eq!(theirs.last_rotation, current.created_at, "{}", b.name);
    // AWS dates a version when it is staged (PutSecretValue), and its answers
    // carry no date: the rotating process knows only when it promoted, a
    // rotation's length later (and moto keeps whole seconds). Both due times
    // then differ by at most that; the compare-and-swap still makes the slot
    // rotate once. The other stores date a version when it becomes current.
    let skew = if b.name == "aws" { rekey::chrono::Duration::seconds(5) } else { rekey::chrono::Duration::zero() };
    let (a, z) = (ours.next_rotation.unwrap(), theirs.next_rotation.unwrap());
    assert!(
        (a - z).abs() <= skew && (ours.last_rotation - theirs.last_rotation).abs() <= skew,
        "{}: the rotating process and a second one disagree on the last rotation ({} vs {}; the store reports {})",
        b.name,
        ours.last_rotation.to_rfc3339_opts(rekey::chrono::SecondsFormat::Nanos, true),
        theirs.last_rotation.to_rfc3339_opts(rekey::chrono::SecondsFormat::Nanos, true),
        current.created_at.to_rfc3339_opts(rekey::chrono::SecondsFormat::Nanos, true),
    );
}

// ── Every scenario on every store ────────────────────────────────────────

macro_rules! on_every_store {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(&super::support::memory()).await;
                }
            )*
        }

        #[cfg(feature = "vault")]
        mod vault {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let Some(b) = super::support::vault().await else { return };
                    super::$scenario(&b).await;
                }
            )*
        }

        #[cfg(feature = "aws")]
        mod aws {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let Some(b) = super::support::aws().await else { return };
                    super::$scenario(&b).await;
                }
            )*
        }
    };
}

on_every_store!(
    rotate_immediate,
    rotate_staged,
    rotate_dual_write,
    rotate_blue_green,
    rollback_staged,
    rollback_immediate,
    crash_and_recovery_staged,
    crash_and_recovery_immediate,
    schedule,
    schedule_second_process_agrees,
);
