//! Failures injected at every step of a rotation (through
//! `FaultInjectingStore`), retries on the manual clock, conflicts with other
//! writers: whatever fails, the current value stays valid and readable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use std::sync::Arc;
use std::time::Duration;

use engine_support::*;
use rekey_core::*;
use rekey_memory::{Fault, Method, Rule};

const STAGED: RotationStrategy = RotationStrategy::Staged;
const IMMEDIATE: RotationStrategy = RotationStrategy::Immediate;

fn verified_staged() -> RotationPolicy {
    verified(STAGED, &["api_test"])
}

/// The current value is the seeded one, readable, and nothing is staged.
async fn assert_untouched(e: &Env, p: &SecretPath, v1: &VersionMeta) {
    let cur = e.current(p).await;
    assert_eq!(cur.meta.id, v1.id, "current version changed");
    assert_eq!(text(&cur.data), "initial");
    assert!(e.pending(p).await.is_none(), "a candidate was left staged");
}

async fn journal_keys(e: &Env, p: &SecretPath) -> usize {
    e.store.read_metadata(p).await.unwrap().keys().filter(|k| k.starts_with("rekey.rotation")).count()
}

#[tokio::test]
async fn stage_failure_leaves_current_untouched() {
    let e = env();
    let p = path("f/stage");
    let v1 = e.seed(&p, "initial").await;
    e.store.fail_every(Method::Stage, Fault::permission_denied());
    let r = e.manager.rotate_secret(&p, &verified_staged(), None).await;
    assert_eq!(r.outcome, RotationOutcome::Failed, "{r}");
    assert!(!r.rollback_performed);
    assert!(matches!(r.error, Some(RotationError::Store { step: RotationStep::Stage, .. })), "{r}");
    assert_eq!(e.store.calls(Method::Stage), 1, "a permission error is not retried");
    assert_untouched(&e, &p, &v1).await;
    assert_eq!(journal_keys(&e, &p).await, 0);
}

#[tokio::test]
async fn journal_and_prepare_failures_write_nothing() {
    // Issue 12 moved the first calls: a staged rotation's first call stages
    // (reporting what was current); an immediate one with checks reads a
    // snapshot, then writes its journal. A failure of any of them writes
    // nothing.
    let immediate = verified(IMMEDIATE, &["api_test"]);
    for (method, policy) in
        [(Method::Read, &immediate), (Method::WriteMetadata, &immediate), (Method::Stage, &verified_staged())]
    {
        let e = env();
        let p = path("f/prepare");
        let v1 = e.seed(&p, "initial").await;
        let rule = e.store.add_rule(Rule::on(method).nth(1).fail(Fault::permission_denied()));
        let r = e.manager.rotate_secret(&p, policy, None).await;
        assert_eq!(r.outcome, RotationOutcome::Failed, "{method:?}: {r}");
        assert_eq!(e.store.calls(Method::Put), 1, "{method:?}: only the seed");
        e.store.remove_rule(rule);
        assert_untouched(&e, &p, &v1).await;
    }
}

#[tokio::test]
async fn verification_failure_discards_the_candidate() {
    let e = env();
    let p = path("f/verify");
    let v1 = e.seed(&p, "initial").await;
    let r = e.manager.rotate_secret(&p, &verified(STAGED, &["api_test", "always_fails"]), None).await;
    assert_eq!(r.outcome, RotationOutcome::RolledBack, "{r}");
    assert_eq!(e.store.calls(Method::Discard), 1);
    assert_eq!(e.store.calls(Method::Promote), 0);
    assert_untouched(&e, &p, &v1).await;
    assert_eq!(journal_keys(&e, &p).await, 0);
}

#[tokio::test]
async fn verifier_timeout_is_a_failure_measured_on_the_clock() {
    let e = env();
    e.clock.set_auto_advance(true);
    let p = path("f/timeout");
    let v1 = e.seed(&p, "initial").await;
    let policy = RotationPolicy::builder("slow")
        .strategy(STAGED)
        .manual()
        .require_verification(true)
        .verification_tests(["hangs"])
        .verification_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = e.manager.rotate_secret(&p, &policy, None).await;
    assert_eq!(r.outcome, RotationOutcome::RolledBack, "{r}");
    assert!(matches!(
        r.error,
        Some(RotationError::Verification { source: VerifyError::TimedOut(d), .. }) if d == Duration::from_secs(5)
    ));
    assert_eq!(e.clock.now() - t0(), chrono::Duration::seconds(5));
    assert_untouched(&e, &p, &v1).await;
}

#[tokio::test]
async fn promote_failure_discards_the_candidate() {
    let e = env();
    let p = path("f/promote");
    let v1 = e.seed(&p, "initial").await;
    e.store.fail_every(Method::Promote, Fault::permission_denied());
    let r = e.manager.rotate_secret(&p, &verified_staged(), None).await;
    assert_eq!(r.outcome, RotationOutcome::RolledBack, "{r}");
    assert!(r.rollback_performed);
    assert!(r.verification_passed);
    assert!(matches!(r.error, Some(RotationError::Store { step: RotationStep::Promote, .. })), "{r}");
    assert_untouched(&e, &p, &v1).await;
}

#[tokio::test]
async fn cleanup_failure_does_not_fail_the_rotation_and_is_cleaned_next_time() {
    let e = env();
    let p = path("f/cleanup");
    e.seed(&p, "initial").await;
    // Writes of metadata: 1st = journal, 2nd = clear (an immediate rotation
    // with checks journals apart; a staged one's journal goes with its
    // candidate since issue 12).
    e.store.add_rule(Rule::on(Method::WriteMetadata).skip(1).times(1).fail(Fault::permission_denied()));
    let r = e.manager.rotate_secret(&p, &verified(IMMEDIATE, &["api_test"]), None).await;
    assert!(r.success(), "{r}");
    let new = e.current(&p).await;
    assert_eq!(r.new_version.as_ref(), Some(&new.meta.id));
    assert!(journal_keys(&e, &p).await > 0, "the journal is left behind");
    assert!(e.audit.kinds().contains(&AuditEventKind::StepFailed));
    // The next rotation recognises the leftover journal as this manager's
    // dead rotation, clears it and rotates.
    let r2 = e.manager.rotate_secret(&p, &verified_staged(), None).await;
    assert!(r2.success(), "{r2}");
    assert!(e.audit.for_rotation(r2.rotation_id).iter().any(|ev| ev.kind == AuditEventKind::Recovered));
    assert_eq!(journal_keys(&e, &p).await, 0);
}

#[tokio::test]
async fn discard_failure_keeps_current_and_the_next_run_cleans_up() {
    let e = env();
    let p = path("f/discard");
    let v1 = e.seed(&p, "initial").await;
    let rule = e.store.fail_every(Method::Discard, Fault::permission_denied());
    let r = e.manager.rotate_secret(&p, &verified(STAGED, &["always_fails"]), None).await;
    assert_eq!(r.outcome, RotationOutcome::Failed, "{r}");
    assert!(matches!(r.error, Some(RotationError::UndoFailed { .. })), "{r}");
    let cur = e.current(&p).await;
    assert_eq!((cur.meta.id.clone(), text(&cur.data)), (v1.id.clone(), "initial".to_owned()));
    assert!(e.pending(&p).await.is_some(), "the candidate could not be discarded");
    assert!(journal_keys(&e, &p).await > 0, "the journal stays for the next run");
    e.store.remove_rule(rule);
    let r2 = e.manager.rotate_secret(&p, &verified_staged(), None).await;
    assert!(r2.success(), "{r2}");
    assert!(e.pending(&p).await.is_none());
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff_on_the_clock() {
    let e = env();
    e.clock.set_auto_advance(true);
    let p = path("f/retry");
    e.seed(&p, "initial").await;
    e.store.add_rule(Rule::on(Method::Stage).times(2).fail(Fault::unavailable()));
    e.store.add_rule(Rule::on(Method::Promote).times(1).fail(Fault::rate_limited()));
    let policy = RotationPolicy::builder("retrying")
        .strategy(STAGED)
        .manual()
        .max_retries(3)
        .backoff(Duration::from_secs(10), Duration::from_secs(60))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let r = e.manager.rotate_secret(&p, &policy, None).await;
    assert!(r.success(), "{r}");
    assert_eq!(r.retries, 3);
    assert_eq!(e.store.calls(Method::Stage), 3);
    assert_eq!(e.store.calls(Method::Promote), 2);
    // 3 stages (each with the journal and what was current) + 2 promotes
    // (each with the record): issue 12's fast path.
    assert_eq!(r.calls, 5);
    assert!(e.clock.now() >= t0(), "time only moves forward");
    assert!(started.elapsed() < Duration::from_secs(1), "no real sleeping");
    let retrying: Vec<_> = e.audit.events().into_iter().filter(|ev| ev.kind == AuditEventKind::Retrying).collect();
    assert_eq!(retrying.len(), 3);
    assert_eq!(retrying[1].attempt, Some(2));
}

#[tokio::test]
async fn retries_wait_for_the_clock() {
    let e = env();
    let p = path("f/wait");
    e.seed(&p, "initial").await;
    e.store.add_rule(Rule::on(Method::Stage).times(1).fail(Fault::unavailable()));
    let policy = RotationPolicy::builder("retrying")
        .strategy(STAGED)
        .manual()
        .max_retries(1)
        .backoff(Duration::from_secs(10), Duration::from_secs(10))
        .build()
        .unwrap();
    let m = e.manager.clone();
    let p2 = p.clone();
    let task = tokio::spawn(async move { m.rotate_secret(&p2, &policy, None).await });
    // Wait until the rotation sleeps on the clock, then move the clock.
    while e.clock.sleepers() == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(e.store.calls(Method::Promote), 0, "waiting, not retrying yet");
    e.clock.advance(Duration::from_secs(10));
    let r = task.await.unwrap();
    assert!(r.success(), "{r}");
    assert_eq!(r.retries, 1);
}

#[tokio::test]
async fn retries_are_bounded_by_max_retries() {
    let e = env();
    e.clock.set_auto_advance(true);
    let p = path("f/exhausted");
    let v1 = e.seed(&p, "initial").await;
    e.store.fail_every(Method::Stage, Fault::unavailable());
    let policy = RotationPolicy::builder("two").strategy(STAGED).manual().max_retries(2).build().unwrap();
    let r = e.manager.rotate_secret(&p, &policy, None).await;
    // An exhausted retry of an unavailable store is not a failure of the
    // secret (issue 11, point 3).
    assert_eq!(r.outcome, RotationOutcome::StoreUnavailable, "{r}");
    assert!(!r.outcome.is_failure());
    assert_eq!(e.store.calls(Method::Stage), 3);
    assert_eq!(r.retries, 2);
    assert!(r.error.as_ref().and_then(RotationError::store_error).is_some_and(StoreError::is_retryable));
    assert_untouched(&e, &p, &v1).await;
}

#[tokio::test]
async fn lost_responses_are_settled_without_duplicates() {
    for (strategy, method) in [(STAGED, Method::Stage), (STAGED, Method::Promote), (IMMEDIATE, Method::Put)] {
        let e = env();
        e.clock.set_auto_advance(true);
        let p = path("f/lost");
        e.seed(&p, "initial").await;
        e.store.add_rule(Rule::on(method).nth(1).fail(Fault::lost_response()));
        let r = e.manager.rotate_secret(&p, &policy(strategy), Some(SecretString::from("next"))).await;
        assert!(r.success(), "{method:?}: {r}");
        assert_eq!(e.current_text(&p).await, "next");
        assert_eq!(r.new_version.as_ref(), Some(&e.current(&p).await.meta.id));
        let versions = e.store.list_versions(&p).await.unwrap();
        assert_eq!(versions.len(), 2, "{method:?}: exactly one new version: {versions:?}");
    }
}

/// A generator that, while generating, lets "another process" write a new
/// current value: the rotation's compare-and-swap must lose.
#[derive(Debug)]
struct RacingGenerator {
    store: Arc<Store>,
    path: SecretPath,
}

impl GenerateSecret for RacingGenerator {
    fn generate(&self) -> Result<SecretString, GeneratorError> {
        futures::executor::block_on(self.store.put(&self.path, SecretData::text("theirs"), PutOptions::overwrite()))
            .map_err(|e| GeneratorError::Custom(e.to_string()))?;
        Ok(SecretString::from("ours"))
    }
}

/// A verifier that, while verifying, lets "another process" write a new
/// current value: the staged rotation's compare-and-swap must lose. (Since
/// issue 12 a staged rotation stages before it reads, so the other writer
/// must come after the stage to race it.)
#[derive(Debug)]
struct RacingVerifier {
    store: Arc<Store>,
    path: SecretPath,
}

#[async_trait::async_trait]
impl Verifier for RacingVerifier {
    fn name(&self) -> &str {
        "racing"
    }
    async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        self.store
            .put(&self.path, SecretData::text("theirs"), PutOptions::overwrite())
            .await
            .map(|_| ())
            .map_err(|e| VerifyError::Unavailable(e.to_string()))
    }
}

#[tokio::test]
async fn a_lost_compare_and_swap_reports_rotated_elsewhere_and_keeps_theirs() {
    for strategy in [IMMEDIATE, STAGED] {
        let e = env();
        let p = path("f/race");
        let v1 = e.seed(&p, "initial").await;
        let r = if strategy == STAGED {
            let m = manager_on(e.store.clone(), &e.clock, &e.audit, |b| {
                b.verifier(Arc::new(RacingVerifier { store: e.store.clone(), path: p.clone() }))
            });
            let pol = verified(STAGED, &["racing"]);
            let r = m.rotate_secret(&p, &pol, None).await;
            let s = m.statistics();
            assert_eq!((s.conflicts, s.failed_rotations, s.total_rotations), (1, 0, 0));
            r
        } else {
            let binding =
                SecretBinding::new().generator(Arc::new(RacingGenerator { store: e.store.clone(), path: p.clone() }));
            e.manager.rotate(RotationRequest::new(&p, &policy(strategy)).binding(Arc::new(binding))).await
        };
        assert_eq!(r.outcome, RotationOutcome::RotatedElsewhere, "{strategy}: {r}");
        assert_eq!(r.status, RotationStatus::Pending);
        assert!(!r.success());
        let Some(RotationError::RotatedElsewhere { expected, actual, .. }) = &r.error else { panic!("{r}") };
        assert_eq!(expected, &v1.id);
        let cur = e.current(&p).await;
        assert_eq!(actual.as_ref(), Some(&cur.meta.id));
        assert_eq!(text(&cur.data), "theirs", "the other writer's value is kept");
        assert!(e.pending(&p).await.is_none());
        assert_eq!(
            e.store.calls(Method::Put),
            2 + u64::from(strategy == IMMEDIATE),
            "seed + theirs (+ ours): a conflict is not retried"
        );
        if strategy == IMMEDIATE {
            let s = e.manager.statistics();
            assert_eq!((s.conflicts, s.failed_rotations, s.total_rotations), (1, 0, 0));
        }
    }
}

#[tokio::test]
async fn immediate_never_keeps_a_value_that_failed_verification() {
    // `auto_rollback = false` cannot keep a value that failed its checks
    // current (the safety rule; before issue 11 it did).
    let e = env();
    let p = path("f/noroll");
    e.seed(&p, "initial").await;
    let policy = RotationPolicy::builder("no-rollback")
        .strategy(IMMEDIATE)
        .manual()
        .require_verification(true)
        .verification_tests(["always_fails"])
        .auto_rollback(false)
        .build()
        .unwrap();
    let r = e.manager.rotate_secret(&p, &policy, Some(SecretString::from("next"))).await;
    assert_eq!(r.outcome, RotationOutcome::RolledBack, "{r}");
    assert!(r.rollback_performed);
    assert_eq!(e.current_text(&p).await, "initial");
}

#[tokio::test]
async fn immediate_rollback_failure_is_reported_and_current_stays_readable() {
    let e = env();
    let p = path("f/rollback");
    e.seed(&p, "initial").await;
    e.store.fail_every(Method::Promote, Fault::permission_denied());
    let r =
        e.manager.rotate_secret(&p, &verified(IMMEDIATE, &["always_fails"]), Some(SecretString::from("next"))).await;
    assert_eq!(r.outcome, RotationOutcome::Failed, "{r}");
    let Some(RotationError::UndoFailed { cause, undo }) = &r.error else { panic!("{r}") };
    assert!(matches!(**cause, RotationError::Verification { .. }));
    assert!(matches!(**undo, RotationError::Store { step: RotationStep::Rollback, .. }));
    assert_eq!(e.current_text(&p).await, "next", "readable");
}

#[tokio::test]
async fn immediate_write_failure_changes_nothing() {
    let e = env();
    let p = path("f/put");
    let v1 = e.seed(&p, "initial").await;
    e.store.fail_every(Method::Put, Fault::permission_denied());
    let r = e.manager.rotate_secret(&p, &policy(IMMEDIATE), None).await;
    assert_eq!(r.outcome, RotationOutcome::Failed, "{r}");
    assert_untouched(&e, &p, &v1).await;
}

#[tokio::test]
async fn missing_secret_is_a_typed_failure() {
    let e = env();
    let r = e.manager.rotate_secret(&path("nope/missing"), &policy(STAGED), None).await;
    assert_eq!(r.outcome, RotationOutcome::Failed);
    assert!(matches!(r.error.as_ref().and_then(RotationError::store_error), Some(StoreError::NotFound { .. })), "{r}");
}

/// Any single injected failure, at any call of a staged or immediate
/// rotation, leaves a current value that is readable and is either the old
/// value or the new one (never anything else), and nothing staged after the
/// next rotation.
#[tokio::test]
async fn any_single_failure_leaves_a_valid_current_value() {
    for strategy in [STAGED, IMMEDIATE] {
        for nth in 1..=10u64 {
            for fault in [Fault::permission_denied(), Fault::lost_response(), Fault::conflict()] {
                let e = env();
                e.clock.set_auto_advance(true);
                let p = path("f/any");
                e.seed(&p, "initial").await;
                e.store.add_rule(Rule::any().nth(nth).fail(fault));
                let policy = verified(strategy, &["api_test"]);
                let r = e.manager.rotate_secret(&p, &policy, Some(SecretString::from("next"))).await;
                e.store.clear_rules();
                let cur = e.current_text(&p).await;
                if r.success() {
                    assert_eq!(cur, "next", "{strategy} nth={nth}: {r}");
                } else {
                    assert!(cur == "initial" || cur == "next", "{strategy} nth={nth}: {cur}");
                    if r.rollback_performed && r.outcome == RotationOutcome::RolledBack {
                        assert_eq!(cur, "initial", "{strategy} nth={nth}: {r}");
                    }
                }
                let again = e.manager.rotate_secret(&p, &policy, Some(SecretString::from("third"))).await;
                assert!(again.success(), "{strategy} nth={nth}: after {r}: {again}");
                assert!(e.pending(&p).await.is_none());
                assert_eq!(journal_keys(&e, &p).await, 0);
            }
        }
    }
}
