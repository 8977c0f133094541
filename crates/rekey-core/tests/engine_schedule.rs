//! Scheduling: due times from the store's version timestamps, processing,
//! windows, quarantine and resume, several processes sharing one store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveTime;
use engine_support::*;
use rekey_core::*;
use rekey_memory::Method;

const STAGED: RotationStrategy = RotationStrategy::Staged;
const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn schedule_computes_next_rotation_from_the_store() {
    let e = env();
    let p = path("secrets/api_key");
    e.seed(&p, "initial").await;
    e.clock.advance(DAY); // the schedule is registered a day after the secret was created
    let info = e.manager.schedule_rotation(&p, every(30, STAGED)).await.unwrap();
    assert_eq!(info.path, p);
    assert_eq!(info.policy_name, "every-30d");
    assert_eq!(info.last_rotation, t0());
    assert_eq!(info.next_rotation, Some(t0() + chrono::Duration::days(30)));
    assert!(info.enabled);
    assert_eq!(e.manager.next_due(), info.next_rotation);
    assert_eq!(e.manager.get_schedule(&p).unwrap().next_rotation, info.next_rotation);
    assert_eq!(e.manager.statistics().active_schedules, 1);
}

#[tokio::test]
async fn schedules_are_added_listed_and_removed() {
    let e = env();
    let a = path("s/a");
    let b = path("s/b");
    e.seed(&a, "a").await;
    e.seed(&b, "b").await;
    e.manager.schedule_rotation(&b, every(10, STAGED)).await.unwrap();
    e.manager.schedule_rotation(&a, every(20, STAGED)).await.unwrap();
    let list: Vec<_> = e.manager.list_schedules().into_iter().map(|s| s.path).collect();
    assert_eq!(list, [a.clone(), b.clone()]);
    // Re-scheduling replaces.
    e.manager.schedule_rotation(&a, every(5, STAGED)).await.unwrap();
    assert_eq!(e.manager.list_schedules().len(), 2);
    assert_eq!(e.manager.get_schedule(&a).unwrap().policy_name, "every-5d");
    assert!(e.manager.unschedule_rotation(&a));
    assert!(!e.manager.unschedule_rotation(&a));
    assert!(e.manager.get_schedule(&a).is_none());
    assert_eq!(e.manager.list_schedules().len(), 1);
    assert_eq!(e.manager.next_due(), Some(t0() + chrono::Duration::days(10)));
    let kinds = e.audit.kinds();
    assert!(kinds.contains(&AuditEventKind::Scheduled) && kinds.contains(&AuditEventKind::Unscheduled));
}

#[tokio::test]
async fn scheduling_a_missing_secret_fails() {
    let e = env();
    let err = e.manager.schedule_rotation(&path("s/none"), every(1, STAGED)).await.unwrap_err();
    assert!(matches!(err.store_error(), Some(StoreError::NotFound { .. })), "{err}");
    assert!(e.manager.list_schedules().is_empty());
}

#[tokio::test]
async fn due_secrets_are_rotated_and_rescheduled() {
    let e = env();
    let p = path("secrets/api_key");
    e.seed(&p, "initial").await;
    e.manager.schedule_rotation(&p, every(30, STAGED)).await.unwrap();
    assert!(e.manager.process_scheduled_rotations().await.is_empty(), "not due yet");
    e.clock.advance(30 * DAY - Duration::from_secs(1));
    assert!(e.manager.process_scheduled_rotations().await.is_empty(), "one second early");
    e.clock.advance(Duration::from_secs(1));
    let results = e.manager.process_scheduled_rotations().await;
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert!(r.success(), "{r}");
    assert_eq!(r.trigger, RotationTrigger::Schedule);
    assert_ne!(e.current_text(&p).await, "initial");
    let info = e.manager.get_schedule(&p).unwrap();
    let now = t0() + chrono::Duration::days(30);
    assert_eq!(info.last_rotation, now);
    assert_eq!(info.next_rotation, Some(now + chrono::Duration::days(30)));
    assert!(e.manager.process_scheduled_rotations().await.is_empty(), "not due twice");
}

#[tokio::test]
async fn several_due_secrets_rotate_in_one_pass() {
    let e = env();
    for i in 0..5 {
        let p = path(&format!("multi/{i}"));
        e.seed(&p, "initial").await;
        e.manager.schedule_rotation(&p, every(1 + i, STAGED)).await.unwrap();
    }
    e.clock.advance(3 * DAY);
    let mut rotated: Vec<_> = e.manager.process_scheduled_rotations().await.into_iter().map(|r| r.path).collect();
    rotated.sort();
    assert_eq!(rotated, [path("multi/0"), path("multi/1"), path("multi/2")]);
    let s = e.manager.statistics();
    assert_eq!((s.total_rotations, s.successful_rotations, s.active_schedules), (3, 3, 5));
}

#[tokio::test]
async fn manual_policies_and_paused_schedules_are_never_due() {
    let e = env();
    let m = path("s/manual");
    let d = path("s/disabled");
    e.seed(&m, "x").await;
    e.seed(&d, "x").await;
    let info = e.manager.schedule_rotation(&m, policy(STAGED)).await.unwrap();
    assert_eq!(info.next_rotation, None);
    e.manager.schedule_rotation(&d, every(1, STAGED)).await.unwrap();
    e.manager.pause_schedule(&d).unwrap();
    let info = e.manager.get_schedule(&d).unwrap();
    assert!(!info.enabled && info.paused && info.next_rotation.is_none());
    assert_eq!(e.manager.next_due(), None);
    e.clock.advance(400 * DAY);
    assert!(e.manager.process_scheduled_rotations().await.is_empty());
    // Resuming makes the overdue secret due at once.
    e.manager.resume(&d).await.unwrap();
    let r = e.manager.process_scheduled_rotations().await;
    assert_eq!(r.len(), 1);
    assert!(r[0].success());
    assert!(matches!(e.manager.pause_schedule(&path("s/other")), Err(RotationError::NotScheduled { .. })));
}

#[tokio::test]
async fn a_manual_rotation_moves_the_schedule_on() {
    let e = env();
    let p = path("s/moved");
    e.seed(&p, "x").await;
    e.manager.schedule_rotation(&p, every(30, STAGED)).await.unwrap();
    e.clock.advance(10 * DAY);
    assert!(e.manager.rotate_secret(&p, &policy(STAGED), None).await.success());
    let next = e.manager.get_schedule(&p).unwrap().next_rotation;
    assert_eq!(next, Some(t0() + chrono::Duration::days(40)));
}

#[tokio::test]
async fn a_restarted_process_computes_the_same_schedule() {
    let clock = ManualClock::new(t0());
    let store = shared_store(&clock);
    let audit = MemoryAuditSink::new();
    let p = path("s/restart");
    store.create(&p, SecretData::text("x")).await.unwrap();
    let policy = RotationPolicy::builder("jittered")
        .strategy(STAGED)
        .interval(30 * DAY)
        .jitter(Duration::from_secs(3600))
        .build()
        .unwrap();
    let first = manager_on(store.clone(), &clock, &audit, |b| b);
    first.schedule_rotation(&p, policy.clone()).await.unwrap();
    clock.advance(31 * DAY);
    assert_eq!(first.process_scheduled_rotations().await.len(), 1);
    let expected = first.get_schedule(&p).unwrap();
    drop(first);
    clock.advance(DAY);
    let second = manager_on(store, &clock, &audit, |b| b);
    let info = second.schedule_rotation(&p, policy).await.unwrap();
    assert_eq!(info.last_rotation, expected.last_rotation);
    assert_eq!(info.next_rotation, expected.next_rotation);
}

#[tokio::test]
async fn two_processes_sharing_a_store_rotate_each_due_secret_once() {
    let clock = ManualClock::new(t0());
    let c = clock.clone();
    // Every store call yields once, so the two processes interleave.
    let store = Arc::new(
        rekey_memory::FaultInjectingStore::new(rekey_memory::MemoryStore::new().with_clock(move || c.now()))
            .with_sleep(|_| Box::pin(tokio::task::yield_now())),
    );
    store.add_rule(rekey_memory::Rule::any().delay(Duration::from_millis(1)));
    let audit = MemoryAuditSink::new();
    let a = manager_on(store.clone(), &clock, &audit, |b| b);
    let b = manager_on(store.clone(), &clock, &audit, |b| b);
    let policy = Arc::new(every(7, STAGED));
    let n = 20;
    for i in 0..n {
        let p = path(&format!("shared/{i}"));
        store.create(&p, SecretData::text("x")).await.unwrap();
        a.schedule_rotation(&p, policy.clone()).await.unwrap();
        b.schedule_rotation(&p, policy.clone()).await.unwrap();
    }
    for round in 1..=3 {
        clock.advance(7 * DAY);
        // Both processes run at the same time.
        let (ra, rb) = futures::join!(a.process_scheduled_rotations(), b.process_scheduled_rotations());
        let all: Vec<_> = ra.iter().chain(rb.iter()).collect();
        let rotated = all.iter().filter(|r| r.success()).count();
        assert_eq!(rotated, n, "round {round}: each due secret rotated exactly once");
        assert!(all.iter().all(|r| !r.outcome.is_failure()), "round {round}: {all:?}");
        // A process that found the other one mid-rotation looks again a
        // little later, finds the secret rotated and moves on.
        clock.advance(Duration::from_secs(600));
        let again: Vec<_> =
            a.process_scheduled_rotations().await.into_iter().chain(b.process_scheduled_rotations().await).collect();
        assert!(again.is_empty(), "round {round}: {again:?}");
        for i in 0..n {
            let p = path(&format!("shared/{i}"));
            assert_eq!(store.list_versions(&p).await.unwrap().len(), 1 + round, "{p}");
            assert_eq!(a.get_schedule(&p).unwrap().next_rotation, b.get_schedule(&p).unwrap().next_rotation);
        }
    }
}

#[tokio::test]
async fn the_second_process_sees_the_first_ones_rotation() {
    let clock = ManualClock::new(t0());
    let store = shared_store(&clock);
    let audit = MemoryAuditSink::new();
    let a = manager_on(store.clone(), &clock, &audit, |b| b);
    let b = manager_on(store.clone(), &clock, &audit, |b| b);
    let p = path("shared/one");
    store.create(&p, SecretData::text("x")).await.unwrap();
    a.schedule_rotation(&p, every(7, STAGED)).await.unwrap();
    b.schedule_rotation(&p, every(7, STAGED)).await.unwrap();
    clock.advance(7 * DAY);
    assert_eq!(a.process_scheduled_rotations().await.len(), 1);
    let reads = store.calls(Method::Read);
    assert!(b.process_scheduled_rotations().await.is_empty(), "b just reschedules");
    assert_eq!(store.calls(Method::Read) - reads, 1, "one read to find out");
    assert_eq!(store.calls(Method::Stage), 1);
    assert!(audit.kinds().contains(&AuditEventKind::Rescheduled));
    assert_eq!(b.get_schedule(&p).unwrap().next_rotation, Some(t0() + chrono::Duration::days(14)));
}

#[tokio::test]
async fn repeated_failures_quarantine_until_resumed() {
    // Quarantine counts failures at the verifiers or the target (a store
    // error never quarantines: see trust_edges.rs, point 3).
    let (switch, failing) = Switch::new("flaky_login");
    let e = env_with(|b| b.verifier(switch));
    e.clock.set_auto_advance(false);
    let p = path("s/flaky");
    let v1 = e.seed(&p, "initial").await;
    let policy = RotationPolicy::builder("q")
        .strategy(STAGED)
        .interval(DAY)
        .max_retries(0)
        .quarantine_after(3)
        .verification_tests(["flaky_login"])
        .build()
        .unwrap();
    e.manager.schedule_rotation(&p, policy).await.unwrap();
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    e.clock.advance(DAY);
    for attempt in 1..=3u32 {
        let r = e.manager.process_scheduled_rotations().await;
        assert_eq!(r.len(), 1, "attempt {attempt}");
        assert_eq!(r[0].outcome, RotationOutcome::RolledBack, "the failed candidate was discarded");
        let info = e.manager.get_schedule(&p).unwrap();
        assert_eq!(info.consecutive_failures, attempt);
        if attempt < 3 {
            assert!(info.quarantine.is_none());
            let next = info.next_rotation.unwrap();
            assert!(next > e.clock.now(), "retried later, after a backoff");
            e.clock.set(next);
        }
    }
    let info = e.manager.get_schedule(&p).unwrap();
    let q = info.quarantine.clone().unwrap();
    assert!(!info.enabled && info.next_rotation.is_none());
    assert_eq!(q.failures, 3);
    assert!(q.reason.contains("rejected"), "{}", q.reason);
    assert_eq!(e.manager.statistics().quarantined, 1);
    assert!(e.audit.kinds().contains(&AuditEventKind::Quarantined));
    e.clock.advance(30 * DAY);
    assert!(e.manager.process_scheduled_rotations().await.is_empty(), "no automatic attempt");
    assert_eq!(e.current(&p).await.meta.id, v1.id);

    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let info = e.manager.resume(&p).await.unwrap().unwrap();
    assert!(info.enabled && info.quarantine.is_none() && info.consecutive_failures == 0);
    assert!(e.audit.kinds().contains(&AuditEventKind::Resumed));
    let r = e.manager.process_scheduled_rotations().await;
    assert!(r.len() == 1 && r[0].success());
    assert_eq!(e.manager.statistics().quarantined, 0);
}

#[tokio::test]
async fn a_successful_manual_rotation_lifts_a_quarantine() {
    let (switch, failing) = Switch::new("flaky_login");
    let e = env_with(|b| b.verifier(switch));
    let p = path("s/lift");
    e.seed(&p, "initial").await;
    let policy = RotationPolicy::builder("q")
        .strategy(STAGED)
        .interval(DAY)
        .quarantine_after(1)
        .max_retries(0)
        .verification_tests(["flaky_login"])
        .build()
        .unwrap();
    e.manager.schedule_rotation(&p, policy.clone()).await.unwrap();
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    e.clock.advance(DAY);
    e.manager.process_scheduled_rotations().await;
    assert!(e.manager.get_schedule(&p).unwrap().quarantine.is_some());
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(e.manager.emergency_rotate(&p, "manual fix").await.success());
    let info = e.manager.get_schedule(&p).unwrap();
    assert!(info.quarantine.is_none() && info.enabled);
}

fn windowed() -> RotationPolicy {
    RotationPolicy::builder("nightly")
        .strategy(STAGED)
        .interval(DAY)
        .window(
            RotationWindow::daily(NaiveTime::from_hms_opt(2, 0, 0).unwrap(), NaiveTime::from_hms_opt(4, 0, 0).unwrap())
                .unwrap(),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn rotation_windows_are_respected_and_emergencies_bypass_them() {
    let e = env();
    let p = path("s/window");
    e.seed(&p, "initial").await;
    e.clock.advance(Duration::from_secs(12 * 3600)); // noon: window closed
    let r = e.manager.rotate_secret(&p, &windowed(), None).await;
    assert_eq!(r.outcome, RotationOutcome::OutsideWindow);
    assert!(!r.outcome.is_failure());
    let Some(RotationError::OutsideWindow { next_open, .. }) = r.error else { panic!() };
    assert_eq!(next_open, Some(t0() + chrono::Duration::hours(26)));
    assert_eq!(e.current_text(&p).await, "initial");
    assert_eq!(e.manager.statistics().outside_window, 1);

    let info = e.manager.schedule_rotation(&p, windowed()).await.unwrap();
    assert_eq!(info.next_rotation, Some(t0() + chrono::Duration::hours(26)), "due moved into the window");
    let r = e.manager.emergency_rotate(&p, "key leaked in CI log #4411").await;
    assert!(r.success(), "{r}");
    assert_eq!(r.trigger, RotationTrigger::Emergency { reason: "key leaked in CI log #4411".into() });
    let events = e.audit.for_rotation(r.rotation_id);
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .all(|ev| matches!(&ev.trigger, Some(RotationTrigger::Emergency { reason }) if reason.contains("#4411")))
    );
}

#[tokio::test]
async fn emergency_rotation_needs_a_policy() {
    let e = env();
    let p = path("s/emergency");
    e.seed(&p, "initial").await;
    let r = e.manager.emergency_rotate(&p, "leak").await;
    assert!(matches!(r.error, Some(RotationError::NoPolicy { .. })), "{r}");
    assert_eq!(e.current_text(&p).await, "initial");
    let e2 = env_with(|b| b.default_policy(policy(RotationStrategy::Immediate)));
    e2.seed(&p, "initial").await;
    let r = e2.manager.emergency_rotate(&p, "leak").await;
    assert!(r.success(), "{r}");
    assert_eq!(r.strategy, RotationStrategy::Immediate);
}

#[tokio::test]
async fn unknown_verifiers_and_unsupported_strategies_fail_closed() {
    let e = env();
    let p = path("s/closed");
    let v1 = e.seed(&p, "initial").await;
    let typo = verified(STAGED, &["api_tset"]);
    let err = e.manager.schedule_rotation(&p, typo.clone()).await.unwrap_err();
    assert!(matches!(&err, RotationError::UnknownVerifier { name, .. } if name == "api_tset"), "{err}");
    assert!(e.manager.validate_policy(&typo).is_err());
    let r = e.manager.rotate_secret(&p, &typo, None).await;
    assert!(matches!(r.error, Some(RotationError::UnknownVerifier { .. })));
    assert_eq!(r.outcome, RotationOutcome::Failed);
    // Blue-green on a secret that names no credential set fails closed too.
    let pol = RotationPolicy::builder("zd")
        .strategy(RotationStrategy::BlueGreen)
        .interval(30 * DAY)
        .grace_period(DAY)
        .build()
        .unwrap();
    let r = e.manager.rotate_secret(&p, &pol, None).await;
    assert!(matches!(r.error, Some(RotationError::InvalidBinding { .. })), "{r}");
    assert_eq!(e.store.write_calls(), 1, "only the seed wrote");
    assert_eq!(e.current(&p).await.meta.id, v1.id);
    assert!(e.manager.list_schedules().is_empty());
}

#[tokio::test]
async fn finding_due_secrets_does_not_scan_every_schedule() {
    let e = env();
    let policy = Arc::new(every(30, STAGED));
    for i in 0..2000 {
        let p = path(&format!("many/{i}"));
        e.seed(&p, "x").await;
        e.manager.schedule_rotation(&p, policy.clone()).await.unwrap();
    }
    let due = path("many/due");
    e.seed(&due, "x").await;
    e.manager.schedule_rotation(&due, every(1, STAGED)).await.unwrap();
    e.store.reset_counters();
    e.clock.advance(DAY);
    let r = e.manager.process_scheduled_rotations().await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].path, due);
    // Only the due secret was touched in the store.
    assert_eq!(e.store.calls(Method::Read), 1);
    assert!(e.manager.process_scheduled_rotations().await.is_empty());
}

#[tokio::test]
async fn scheduled_rotations_run_concurrently_within_the_bound() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    #[derive(Debug, Default)]
    struct Gauge {
        now: AtomicUsize,
        max: AtomicUsize,
    }
    #[async_trait::async_trait]
    impl Verifier for Gauge {
        fn name(&self) -> &str {
            "gauge"
        }
        async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(n, Ordering::SeqCst);
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    }
    let gauge = Arc::new(Gauge::default());
    let g = gauge.clone();
    let e = env_with(move |b| b.verifier(g).max_concurrency(3));
    let policy = Arc::new(
        RotationPolicy::builder("gauged")
            .strategy(STAGED)
            .interval(DAY)
            .require_verification(true)
            .verification_tests(["gauge"])
            .build()
            .unwrap(),
    );
    for i in 0..10 {
        let p = path(&format!("par/{i}"));
        e.seed(&p, "x").await;
        e.manager.schedule_rotation(&p, policy.clone()).await.unwrap();
    }
    e.clock.advance(DAY);
    let r = e.manager.process_scheduled_rotations().await;
    assert_eq!(r.len(), 10);
    assert!(r.iter().all(RotationResult::success));
    assert_eq!(gauge.max.load(Ordering::SeqCst), 3, "three at once, never more");
}

/// A daemon's periodic recheck: from a snapshot it reads, a schedule learns
/// what another process did to the secret without waiting for its own due
/// time (which may be months away) — a rotation moves the next due time, a
/// quarantine holds the schedule, a dual-write retire step is noted so its
/// credential is revoked at its deadline. A pause decided here stays, and a
/// snapshot that shows nothing new changes nothing.
#[tokio::test]
async fn a_refresh_learns_what_another_process_did() {
    let e = env();
    let other = manager_on(e.store.clone(), &e.clock, &e.audit, |b| b);
    let (a, b, c, d) = (path("r/a"), path("r/b"), path("r/c"), path("r/d"));
    for p in [&a, &b, &c, &d] {
        e.seed(p, "v0").await;
    }
    let failing = RotationPolicy::builder("failing")
        .interval(30 * DAY)
        .require_verification(true)
        .verification_tests(["always_fails"])
        .max_retries(0)
        .quarantine_after(1)
        .build()
        .unwrap();
    let dual = RotationPolicy::builder("dual")
        .strategy(RotationStrategy::DualWrite)
        .interval(30 * DAY)
        .grace_period(Duration::from_secs(3600))
        .build()
        .unwrap();
    for (p, pol) in [(&a, every(30, STAGED)), (&b, failing.clone()), (&c, dual.clone()), (&d, every(30, STAGED))] {
        e.manager.schedule_rotation(p, pol).await.unwrap();
    }
    e.manager.pause_schedule(&d).unwrap();
    let snap = |p: SecretPath| {
        let store = e.store.clone();
        async move { store.snapshot(&p, false).await.unwrap() }
    };

    // Nothing new: nothing changes.
    let before = e.manager.get_schedule(&a).unwrap();
    assert_eq!(e.manager.refresh_schedule(&a, &snap(a.clone()).await), Some(ScheduleRefresh::default()));
    assert_eq!(e.manager.get_schedule(&a).unwrap(), before);
    assert_eq!(e.manager.refresh_schedule(&path("r/unknown"), &snap(a.clone()).await), None);

    // Another process rotates a, quarantines b, rotates c with dual-write
    // (leaving a retire step) and rotates the paused d, a day later.
    e.clock.advance(DAY);
    assert!(other.rotate_secret(&a, &every(30, STAGED), None).await.success());
    let r = other.rotate_secret(&b, &failing, None).await;
    assert!(r.quarantined, "{r}");
    assert!(other.rotate_secret(&c, &dual, None).await.success());
    assert!(other.rotate_secret(&d, &every(30, STAGED), None).await.success());
    let rotated = e.current(&a).await.meta.created_at;

    let ra = e.manager.refresh_schedule(&a, &snap(a.clone()).await).unwrap();
    assert!(ra.moved && !ra.quarantined && !ra.retire_noted, "{ra:?}");
    let info = e.manager.get_schedule(&a).unwrap();
    assert_eq!(info.last_rotation, rotated);
    assert_eq!(info.next_rotation, Some(rotated + chrono::Duration::days(30)));

    let rb = e.manager.refresh_schedule(&b, &snap(b.clone()).await).unwrap();
    assert!(rb.quarantined && !rb.moved, "{rb:?}");
    let info = e.manager.get_schedule(&b).unwrap();
    assert!(info.quarantine.is_some() && info.next_rotation.is_none(), "{info:?}");
    // Held until the store says otherwise.
    assert_eq!(e.manager.sync_quarantines().await, 0);

    let rc = e.manager.refresh_schedule(&c, &snap(c.clone()).await).unwrap();
    assert!(rc.moved && rc.retire_noted, "{rc:?}");
    assert_eq!(e.manager.next_due(), Some(e.clock.now() + chrono::Duration::hours(1)), "the grace deadline");

    let rd = e.manager.refresh_schedule(&d, &snap(d.clone()).await).unwrap();
    assert!(rd.moved, "{rd:?}");
    assert!(!e.manager.get_schedule(&d).unwrap().enabled, "still paused");

    // At the deadline the retire pass removes the record (no target here).
    e.clock.advance(Duration::from_secs(3601));
    let retired = e.manager.process_retirements().await;
    assert_eq!(retired.len(), 1, "{retired:?}");
    assert!(RetireRecord::read(&e.store.read_metadata(&c).await.unwrap()).is_none());
}

/// A rollback by hand is an operator's decision: the schedule counts from
/// it, on every store. (On a store that relabels versions, as this one and
/// AWS do, the restored version keeps its old creation time and the secret
/// used to be due again at once; on one that copies, as Vault does, the copy
/// is new.) A restarted process agrees.
#[tokio::test]
async fn a_manual_rollback_counts_from_the_rollback() {
    let e = env();
    let p = path("s/rolled-back");
    let v1 = e.seed(&p, "initial").await;
    let policy = every(30, STAGED);
    e.manager.schedule_rotation(&p, policy.clone()).await.unwrap();
    e.clock.advance(29 * DAY);
    assert!(e.manager.rotate_secret(&p, &policy, None).await.success());
    e.clock.advance(2 * DAY);
    let rb = e.manager.rollback(&p).await.unwrap();
    let at = e.clock.now();
    assert_eq!(rb.current.id, v1.id, "the store relabels: the first version is current again");
    assert!(rb.current.created_at + chrono::Duration::days(30) < at, "and it is 31 days old");

    let after = |info: ScheduleInfo| {
        let off = (info.last_rotation - at).num_seconds().abs();
        assert!(off <= 1, "the schedule counts from {}, not from the rollback at {at}", info.last_rotation);
        assert!(info.next_rotation.is_some_and(|t| t > at + chrono::Duration::days(29)), "{:?}", info.next_rotation);
    };
    let restarted = manager_on(e.store.clone(), &e.clock, &e.audit, |b| b);
    after(restarted.schedule_rotation(&p, policy.clone()).await.unwrap());
    let snapshot = e.store.snapshot(&p, false).await.unwrap();
    after(restarted.schedule_rotation_from(&p, policy.clone(), &snapshot).unwrap());
    assert!(restarted.process_scheduled_rotations().await.is_empty(), "not rotated again at once");
    assert_eq!(e.current(&p).await.meta.id, v1.id);
}
