//! One secret is never rotated twice at once; different secrets rotate in
//! parallel; a rotation that crashed half-way is cleaned up by the next run
//! (in this process or another), and a live one in another process is left
//! alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use engine_support::*;
use rekey_core::*;
use rekey_memory::Method;
use tokio::sync::{Notify, Semaphore};

const STAGED: RotationStrategy = RotationStrategy::Staged;
const IMMEDIATE: RotationStrategy = RotationStrategy::Immediate;

/// A verifier that reports when a candidate reaches it and then waits for a
/// permit (or forever).
#[derive(Debug)]
struct Gate {
    entered: Arc<Notify>,
    permits: Arc<Semaphore>,
}

impl Gate {
    fn new() -> Self {
        Self { entered: Arc::new(Notify::new()), permits: Arc::new(Semaphore::new(0)) }
    }
}

#[async_trait]
impl Verifier for Gate {
    fn name(&self) -> &str {
        "gate"
    }
    async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        self.entered.notify_one();
        let permit = self.permits.acquire().await.map_err(|_| VerifyError::Unavailable("closed".into()))?;
        permit.forget();
        Ok(())
    }
}

fn gated(strategy: RotationStrategy) -> RotationPolicy {
    verified(strategy, &["gate"])
}

fn gated_env() -> (Env, Arc<Notify>, Arc<Semaphore>) {
    let gate = Gate::new();
    let (entered, permits) = (gate.entered.clone(), gate.permits.clone());
    (env_with(move |b| b.verifier(Arc::new(gate))), entered, permits)
}

#[tokio::test]
async fn a_second_rotation_of_the_same_secret_is_already_rotating() {
    let (e, entered, permits) = gated_env();
    let p = path("c/same");
    e.seed(&p, "initial").await;
    let m = e.manager.clone();
    let p2 = p.clone();
    let first = tokio::spawn(async move { m.rotate_secret(&p2, &gated(STAGED), None).await });
    entered.notified().await;
    assert_eq!(e.manager.statistics().active_rotations, 1);

    let second = e.manager.rotate_secret(&p, &gated(STAGED), None).await;
    assert_eq!(second.outcome, RotationOutcome::AlreadyRotating);
    assert_eq!(second.status, RotationStatus::InProgress);
    assert!(matches!(second.error, Some(RotationError::AlreadyRotating { .. })));
    assert!(!second.outcome.is_failure());
    let emergency = e.manager.emergency_rotate(&p, "even an emergency waits its turn").await;
    assert!(matches!(emergency.outcome, RotationOutcome::AlreadyRotating | RotationOutcome::Failed));

    permits.add_permits(1);
    let first = first.await.unwrap();
    assert!(first.success(), "{first}");
    let s = e.manager.statistics();
    assert_eq!((s.total_rotations, s.successful_rotations, s.failed_rotations), (1, 1, 0));
    assert!(s.already_rotating >= 1);
    assert_eq!(s.active_rotations, 0);
    assert_eq!(e.store.list_versions(&p).await.unwrap().len(), 2, "one rotation happened");
}

#[tokio::test]
async fn different_secrets_rotate_in_parallel() {
    let (e, entered, permits) = gated_env();
    let (a, b) = (path("c/a"), path("c/b"));
    e.seed(&a, "a").await;
    e.seed(&b, "b").await;
    let (ma, mb) = (e.manager.clone(), e.manager.clone());
    let (pa, pb) = (a.clone(), b.clone());
    let ta = tokio::spawn(async move { ma.rotate_secret(&pa, &gated(STAGED), None).await });
    let tb = tokio::spawn(async move { mb.rotate_secret(&pb, &gated(IMMEDIATE), None).await });
    entered.notified().await;
    entered.notified().await;
    // Both are inside verification at the same time.
    assert_eq!(e.manager.statistics().active_rotations, 2);
    permits.add_permits(2);
    assert!(ta.await.unwrap().success());
    assert!(tb.await.unwrap().success());
}

#[tokio::test]
async fn a_crashed_staged_rotation_is_cleaned_up_by_the_next_run() {
    let (e, entered, permits) = gated_env();
    let p = path("c/crash");
    let v1 = e.seed(&p, "initial").await;
    let m = e.manager.clone();
    let p2 = p.clone();
    let task = tokio::spawn(async move { m.rotate_secret(&p2, &gated(STAGED), None).await });
    entered.notified().await;
    task.abort(); // the process "crashes" mid-verification
    assert!(task.await.unwrap_err().is_cancelled());
    let stuck = e.pending(&p).await.expect("a candidate is left staged");
    let meta = e.store.read_metadata(&p).await.unwrap();
    assert!(meta.contains_key("rekey.rotation"));
    assert_eq!(e.current(&p).await.meta.id, v1.id, "current untouched by the crash");

    permits.add_permits(1);
    let r = e.manager.rotate_secret(&p, &gated(STAGED), None).await;
    assert!(r.success(), "{r}");
    let recovered: Vec<_> =
        e.audit.for_rotation(r.rotation_id).into_iter().filter(|ev| ev.kind == AuditEventKind::Recovered).collect();
    assert_eq!(recovered.len(), 1);
    assert!(recovered[0].detail.as_deref().unwrap_or("").contains(stuck.meta.id.as_str()));
    assert!(e.pending(&p).await.is_none());
    assert!(
        e.store.list_versions(&p).await.unwrap().iter().all(|v| v.id != stuck.meta.id),
        "the stuck candidate was discarded"
    );
    assert!(e.store.read_metadata(&p).await.unwrap().keys().all(|k| !k.starts_with("rekey.rotation")));
}

#[tokio::test]
async fn a_crashed_immediate_rotation_is_cleaned_up_by_the_next_run() {
    let (e, entered, permits) = gated_env();
    let p = path("c/crash-immediate");
    e.seed(&p, "initial").await;
    let m = e.manager.clone();
    let p2 = p.clone();
    let task =
        tokio::spawn(async move { m.rotate_secret(&p2, &gated(IMMEDIATE), Some(SecretString::from("crashed"))).await });
    entered.notified().await;
    task.abort();
    let _ = task.await;
    assert_eq!(e.current_text(&p).await, "crashed", "the write happened before the crash");
    permits.add_permits(1);
    let r = e.manager.rotate_secret(&p, &gated(IMMEDIATE), Some(SecretString::from("next"))).await;
    assert!(r.success(), "{r}");
    assert_eq!(e.current_text(&p).await, "next");
    assert!(e.audit.for_rotation(r.rotation_id).iter().any(|ev| ev.kind == AuditEventKind::Recovered));
}

#[tokio::test]
async fn a_live_rotation_in_another_process_is_left_alone_until_stale() {
    let (e, entered, _permits) = gated_env();
    let other = manager_on(e.store.clone(), &e.clock, &e.audit, |b| b);
    let p = path("c/elsewhere");
    e.seed(&p, "initial").await;
    let m = e.manager.clone();
    let p2 = p.clone();
    // Process A is mid-rotation (and then dies without cleaning up).
    let task = tokio::spawn(async move { m.rotate_secret(&p2, &gated(STAGED), None).await });
    entered.notified().await;
    task.abort();
    let _ = task.await;
    let pending = e.pending(&p).await.unwrap();

    // Process B: A's journal is fresh, so B touches nothing.
    let writes = e.store.write_calls();
    let r = other.rotate_secret(&p, &policy(STAGED), None).await;
    assert_eq!(r.outcome, RotationOutcome::InProgressElsewhere, "{r}");
    assert_eq!(r.status, RotationStatus::InProgress);
    assert!(!r.outcome.is_failure());
    assert_eq!(e.store.write_calls(), writes, "nothing written");
    assert_eq!(e.pending(&p).await.unwrap().meta.id, pending.meta.id);
    assert_eq!(other.statistics().already_rotating, 1);

    // Once A's journal is older than the staleness limit, B cleans up.
    e.clock.advance(Duration::from_secs(3600));
    let r = other.rotate_secret(&p, &policy(STAGED), None).await;
    assert!(r.success(), "{r}");
    assert!(e.pending(&p).await.is_none());
}

#[tokio::test]
async fn the_staleness_limit_can_be_configured() {
    let (e, entered, _permits) = gated_env();
    let other = manager_on(e.store.clone(), &e.clock, &e.audit, |b| b.stale_rotation_after(Duration::from_secs(10)));
    let p = path("c/stale");
    e.seed(&p, "initial").await;
    let m = e.manager.clone();
    let p2 = p.clone();
    let started = e.clock.now();
    let task = tokio::spawn(async move { m.rotate_secret(&p2, &gated(STAGED), None).await });
    entered.notified().await;
    task.abort();
    let _ = task.await;
    e.clock.advance(Duration::from_secs(9));
    let r = other.rotate_secret(&p, &policy(STAGED), None).await;
    assert_eq!(r.outcome, RotationOutcome::InProgressElsewhere);
    // The refusal says from when the other process's journal counts as
    // crashed (for the operator of a process that is gone).
    let stale_at = started + chrono::Duration::seconds(10);
    assert!(
        matches!(&r.error, Some(RotationError::InProgressElsewhere { stale_at: Some(t), .. }) if *t == stale_at),
        "{r}"
    );
    let message = r.error.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(
        message.contains(&format!(
            "counts as crashed from {}",
            stale_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
        "{message}"
    );
    e.clock.advance(Duration::from_secs(1));
    assert!(other.rotate_secret(&p, &policy(STAGED), None).await.success());
}

#[tokio::test]
async fn concurrent_calls_in_one_task_are_guarded_too() {
    let (e, _entered, permits) = gated_env();
    let p = path("c/join");
    e.seed(&p, "initial").await;
    let policy = gated(STAGED);
    let calls = (0..5).map(|_| e.manager.rotate_secret(&p, &policy, None));
    let release = async {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        permits.add_permits(10);
    };
    let (results, ()) = tokio::join!(futures::future::join_all(calls), release);
    let rotated = results.iter().filter(|r| r.success()).count();
    let busy = results.iter().filter(|r| r.outcome == RotationOutcome::AlreadyRotating).count();
    assert_eq!((rotated, busy), (1, 4), "{results:?}");
    assert_eq!(e.store.calls(Method::Stage), 1);
}

#[tokio::test]
async fn dropping_a_scheduling_pass_puts_its_jobs_back() {
    let (e, entered, permits) = gated_env();
    let policy = Arc::new(
        RotationPolicy::builder("gated-daily")
            .strategy(STAGED)
            .interval(Duration::from_secs(86_400))
            .require_verification(true)
            .verification_tests(["gate"])
            .build()
            .unwrap(),
    );
    for i in 0..3 {
        let p = path(&format!("c/shutdown/{i}"));
        e.seed(&p, "initial").await;
        e.manager.schedule_rotation(&p, policy.clone()).await.unwrap();
    }
    e.clock.advance(Duration::from_secs(86_400));
    {
        let pass = e.manager.process_scheduled_rotations();
        tokio::pin!(pass);
        tokio::select! {
            _ = &mut pass => panic!("the gate is closed"),
            _ = entered.notified() => {}
        }
        // Shutdown: the pass is dropped mid-rotation.
    }
    assert_eq!(e.manager.statistics().active_rotations, 0);
    for s in e.manager.list_schedules() {
        assert_eq!(s.next_rotation, Some(e.clock.now()), "{} is due again at once", s.path);
    }
    permits.add_permits(3);
    let r = e.manager.process_scheduled_rotations().await;
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(RotationResult::success), "{r:?}");
    for i in 0..3 {
        assert!(e.pending(&path(&format!("c/shutdown/{i}"))).await.is_none());
    }
}

/// A rotation that has run past three quarters of the stale-rotation limit
/// (on the monotonic clock) never makes its candidate current: by then
/// another process may have judged it crashed and taken it over (undone its
/// target, discarded or replaced its candidate). Here a second manager does
/// take it over and rotates; the first, released afterwards, is refused at
/// its promote and leaves the second's value alone.
#[tokio::test]
async fn a_rotation_past_the_stale_limit_never_promotes_after_a_takeover() {
    let limit = Duration::from_millis(400);
    let gate = Gate::new();
    let (entered, permits) = (gate.entered.clone(), gate.permits.clone());
    let e = env_with(move |b| b.verifier(Arc::new(gate)).stale_rotation_after(limit));
    let other = manager_on(e.store.clone(), &e.clock, &e.audit, |b| b.stale_rotation_after(limit));
    {
        let strategy = STAGED;
        let p = path("c/overran");
        e.seed(&p, "initial").await;
        let m = e.manager.clone();
        let p2 = p.clone();
        let first = tokio::spawn(async move { m.rotate_secret(&p2, &gated(strategy), None).await });
        entered.notified().await;
        // Real time past the first rotation's guard; the engine clock past
        // the second manager's judgement of staleness.
        tokio::time::sleep(limit).await;
        e.clock.advance(Duration::from_secs(1));
        let taken = other.rotate_secret(&p, &policy(strategy), None).await;
        assert!(taken.success(), "{strategy}: the takeover: {taken}");
        let theirs = e.current_text(&p).await;
        assert_ne!(theirs, "initial");
        permits.add_permits(1);
        let r = first.await.unwrap();
        assert!(matches!(r.error, Some(RotationError::Overran { .. })), "{strategy}: {r}");
        assert!(r.outcome.is_failure(), "{strategy}: {r}");
        assert!(r.to_string().contains("treats it as crashed"), "{r}");
        assert_eq!(e.current_text(&p).await, theirs, "{strategy}: the overrun rotation changed the value");
        assert!(e.pending(&p).await.is_none(), "{strategy}");
    }
    // A rotation within the limit is not affected.
    let p = path("c/overran-not");
    e.seed(&p, "initial").await;
    permits.add_permits(1);
    let r = e.manager.rotate_secret(&p, &gated(STAGED), None).await;
    assert!(r.success(), "{r}");
}

#[tokio::test]
async fn a_schedule_waits_for_a_live_rotation_elsewhere_until_its_journal_would_be_stale() {
    let (e, entered, _permits) = gated_env();
    let other = manager_on(e.store.clone(), &e.clock, &e.audit, |b| b.stale_rotation_after(Duration::from_secs(120)));
    let p = path("c/sched");
    e.seed(&p, "initial").await;
    e.clock.advance(Duration::from_secs(2 * 86_400));
    // Process A rotates by hand and is held at its verification.
    let m = e.manager.clone();
    let p2 = p.clone();
    let started = e.clock.now();
    let task = tokio::spawn(async move { m.rotate_secret(&p2, &gated(STAGED), None).await });
    entered.notified().await;
    // Process B's schedule is due (the value is two days old).
    other.schedule_rotation(&p, every(1, STAGED)).await.unwrap();
    let results = other.process_scheduled_rotations().await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome, RotationOutcome::InProgressElsewhere, "{}", results[0]);
    // Not again in a second (a store call per try for minutes): when A's
    // journal would count as crashed.
    let stale_at = started + chrono::Duration::seconds(120);
    assert_eq!(other.next_due(), Some(stale_at));
    task.abort();
    let _ = task.await;
}
