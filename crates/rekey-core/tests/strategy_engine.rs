//! DUAL_WRITE and BLUE_GREEN through the engine, on the in-memory store with
//! a manual clock and an in-memory credential target: pre-flight refusals,
//! the retire record and pass (grace deadline, consumer acknowledgements,
//! idempotence, failures), pending retire steps, recovery, and the
//! blue-green alternation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rekey_core::*;
use rekey_memory::MemoryStore;

fn t0() -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse().unwrap()
}

const GRACE: Duration = Duration::from_secs(600);

/// Valid credentials as (user, password) pairs; a test-only stand-in for a
/// Redis ACL user (several passwords) or two PostgreSQL roles.
#[derive(Debug)]
struct FakeTarget {
    concurrent: bool,
    valid: Mutex<BTreeSet<(String, String)>>,
    fail_revoke: AtomicBool,
}

impl FakeTarget {
    fn new(concurrent: bool) -> Arc<Self> {
        Arc::new(Self { concurrent, valid: Mutex::default(), fail_revoke: AtomicBool::new(false) })
    }
    fn key(d: &SecretData) -> (String, String) {
        match d {
            SecretData::Text(p) => (String::new(), p.expose_secret().to_owned()),
            SecretData::Fields(_) => (
                d.field("username").map(|u| u.expose_secret().to_owned()).unwrap_or_default(),
                d.field("password").map(|u| u.expose_secret().to_owned()).unwrap_or_default(),
            ),
        }
    }
    fn works(&self, d: &SecretData) -> bool {
        self.valid.lock().unwrap().contains(&Self::key(d))
    }
    fn count(&self) -> usize {
        self.valid.lock().unwrap().len()
    }
}

#[async_trait]
impl CredentialTarget for FakeTarget {
    fn name(&self) -> &str {
        "fake"
    }
    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities { concurrent_credentials: self.concurrent }
    }
    async fn apply(&self, candidate: &SecretData, _current: Option<&SecretData>) -> Result<(), TargetError> {
        let (u, p) = Self::key(candidate);
        let mut v = self.valid.lock().unwrap();
        if !self.concurrent {
            v.retain(|(x, _)| *x != u);
        }
        v.insert((u, p));
        Ok(())
    }
    async fn test(&self, credential: &SecretData) -> Result<(), TargetError> {
        if self.works(credential) { Ok(()) } else { Err(TargetError::Rejected { message: "nope".into() }) }
    }
    async fn revoke(&self, revoked: &SecretData, keep: &SecretData) -> Result<(), TargetError> {
        if self.fail_revoke.load(Ordering::SeqCst) {
            return Err(TargetError::Other { message: "revoke refused (test)".into() });
        }
        let mut v = self.valid.lock().unwrap();
        v.remove(&Self::key(revoked));
        v.insert(Self::key(keep));
        Ok(())
    }
}

struct Env {
    store: Arc<MemoryStore>,
    clock: ManualClock,
    audit: MemoryAuditSink,
    manager: RotationManager,
    path: SecretPath,
}

fn env() -> Env {
    let clock = ManualClock::new(t0());
    let c = clock.clone();
    let store = Arc::new(MemoryStore::new().with_clock(move || c.now()));
    let audit = MemoryAuditSink::new();
    let manager = RotationManager::builder(store.clone())
        .clock(Arc::new(clock.clone()))
        .audit_sink(Arc::new(audit.clone()))
        .build()
        .unwrap();
    Env { store, clock, audit, manager, path: "apps/cache/password".parse().unwrap() }
}

fn policy(strategy: RotationStrategy) -> RotationPolicy {
    RotationPolicy::builder("p")
        .strategy(strategy)
        .interval(Duration::from_secs(86_400))
        .grace_period(GRACE)
        .auto_rollback(true)
        .build()
        .unwrap()
}

fn no_leak(e: &Env, secrets: &[String], results: &[String]) {
    let mut texts: Vec<String> = e.audit.events().iter().map(|x| format!("{x:?}")).collect();
    texts.extend(results.iter().cloned());
    for s in secrets {
        for t in &texts {
            assert!(!t.contains(s.as_str()), "secret in {t}");
        }
    }
}

#[tokio::test]
async fn dual_write_refuses_a_single_credential_target_before_writing() {
    let e = env();
    let v1 = e.store.create(&e.path, SecretData::text("old-secret")).await.unwrap();
    let target = FakeTarget::new(false);
    e.manager.bind(e.path.clone(), SecretBinding::new().target(target.clone()));
    let r = e.manager.rotate_secret(&e.path, &policy(RotationStrategy::DualWrite), None).await;
    assert_eq!(r.outcome, RotationOutcome::Failed);
    let msg = r.error.as_ref().unwrap().to_string();
    assert!(matches!(r.error, Some(RotationError::InvalidBinding { .. })), "{msg}");
    assert!(msg.contains("blue-green"), "{msg}");
    assert_eq!(e.store.list_versions(&e.path).await.unwrap().len(), 1);
    assert_eq!(e.store.current(&e.path).await.unwrap().meta.id, v1.id);
    assert!(e.store.read_metadata(&e.path).await.unwrap().is_empty());
    assert_eq!(target.count(), 0, "the target was not touched");
}

#[tokio::test]
async fn dual_write_keeps_the_old_credential_until_the_grace_deadline() {
    let e = env();
    let target = FakeTarget::new(true);
    let old = SecretData::text("old-secret");
    target.apply(&old, None).await.unwrap();
    let v1 = e.store.create(&e.path, old.clone()).await.unwrap().id;
    e.manager.bind(e.path.clone(), SecretBinding::new().target(target.clone()));
    let r = e.manager.rotate_secret(&e.path, &policy(RotationStrategy::DualWrite), None).await;
    assert!(r.success(), "{r}");
    let new = e.store.current(&e.path).await.unwrap();
    assert!(target.works(&old) && target.works(&new.data), "both valid during the grace period");
    assert!(e.store.previous(&e.path).await.unwrap().data.same_as(&old), "old readable as previous");

    let meta = e.store.read_metadata(&e.path).await.unwrap();
    let rec = RetireRecord::read(&meta).expect("retire record");
    assert_eq!(rec.retired, v1);
    assert_eq!(rec.keep.as_ref(), Some(&new.meta.id));
    assert_eq!(rec.deadline, Some(t0() + chrono::Duration::seconds(600)));
    assert_eq!(rec.rotation_id, Some(r.rotation_id));
    assert!(RotationJournal::read(&meta).is_none(), "journal replaced by the record");

    // Not due yet.
    e.clock.advance(GRACE - Duration::from_secs(1));
    assert!(e.manager.process_retirements().await.is_empty());
    assert!(target.works(&old));
    // Due: revoked, record gone; again: nothing to do.
    e.clock.advance(Duration::from_secs(1));
    let done = e.manager.process_retirements().await;
    assert_eq!(done.len(), 1);
    assert!(done[0].success() && done[0].revoked, "{done:?}");
    assert_eq!(done[0].reason, RetireReason::GraceEnded);
    assert!(!target.works(&old) && target.works(&new.data));
    assert!(RetireRecord::read(&e.store.read_metadata(&e.path).await.unwrap()).is_none());
    assert!(e.manager.process_retirements().await.is_empty());
    assert!(e.audit.kinds().contains(&AuditEventKind::Retired));
    no_leak(&e, &["old-secret".into(), FakeTarget::key(&new.data).1], &[format!("{r:?} {r}"), format!("{done:?}")]);
}

#[tokio::test]
async fn dual_write_retires_early_once_every_consumer_moved() {
    let e = env();
    let target = FakeTarget::new(true);
    let old = SecretData::text("old-secret");
    target.apply(&old, None).await.unwrap();
    let v1 = e.store.create(&e.path, old.clone()).await.unwrap().id;
    e.manager.bind(e.path.clone(), SecretBinding::new().target(target.clone()));
    let consumers = ConsumerRegistry::new(e.store.clone(), e.path.clone());
    for n in ["web-1", "web-2"] {
        consumers.register(n).await.unwrap();
        consumers.acknowledge(n, &v1).await.unwrap();
    }
    let r = e.manager.rotate_secret(&e.path, &policy(RotationStrategy::DualWrite), None).await;
    assert!(r.success(), "{r}");
    let v2 = e.store.current(&e.path).await.unwrap().meta.id;
    assert_eq!(consumers.status().await.unwrap().consumers.len(), 2, "registrations survive the rotation");

    consumers.acknowledge("web-1", &v2).await.unwrap();
    assert!(e.manager.process_retirements().await.is_empty(), "web-2 still on the old version");
    assert!(target.works(&old));
    let status = consumers.status().await.unwrap();
    assert_eq!(status.behind().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["web-2"]);

    consumers.acknowledge("web-2", &v2).await.unwrap();
    let done = e.manager.process_retirements().await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].reason, RetireReason::AllAcknowledged);
    assert!(!target.works(&old));
}

#[tokio::test]
async fn dual_write_store_only_retires_by_removing_the_record() {
    let e = env();
    e.store.create(&e.path, SecretData::text("old-secret")).await.unwrap();
    let r = e.manager.rotate_secret(&e.path, &policy(RotationStrategy::DualWrite), None).await;
    assert!(r.success(), "{r}");
    assert!(e.store.previous(&e.path).await.unwrap().data.same_as(&SecretData::text("old-secret")));
    e.clock.advance(GRACE);
    let done = e.manager.process_retirements().await;
    assert_eq!(done.len(), 1);
    assert!(done[0].success() && !done[0].revoked);
    assert!(RetireRecord::read(&e.store.read_metadata(&e.path).await.unwrap()).is_none());
}

#[tokio::test]
async fn a_pending_retire_step_is_done_first_or_refuses_the_rotation() {
    let e = env();
    let target = FakeTarget::new(true);
    let old = SecretData::text("old-secret");
    target.apply(&old, None).await.unwrap();
    e.store.create(&e.path, old.clone()).await.unwrap();
    e.manager.bind(e.path.clone(), SecretBinding::new().target(target.clone()));
    let p = policy(RotationStrategy::DualWrite);
    assert!(e.manager.rotate_secret(&e.path, &p, None).await.success());
    let v2 = e.store.current(&e.path).await.unwrap();

    // Within the grace period a manual rotation is refused; nothing changes.
    let r = e.manager.rotate_secret(&e.path, &p, None).await;
    assert!(matches!(r.error, Some(RotationError::RetirePending { .. })), "{r}");
    assert_eq!(e.store.current(&e.path).await.unwrap().meta.id, v2.meta.id);
    assert!(target.works(&old), "the old credential keeps its grace");

    // An emergency rotation retires first, then rotates.
    let r = e.manager.emergency_rotate(&e.path, "leaked").await;
    // No schedule and no default policy here: use a request with the trigger.
    assert!(matches!(r.error, Some(RotationError::NoPolicy { .. })), "{r}");
    let r = e
        .manager
        .rotate(RotationRequest::new(&e.path, &p).trigger(RotationTrigger::Emergency { reason: "leaked".into() }))
        .await;
    assert!(r.success(), "{r}");
    assert!(!target.works(&old), "retired before the emergency rotation");
    // The credential an emergency rotation replaces is the one that leaked:
    // it gets no grace period.
    assert!(!target.works(&v2.data), "the leaked credential is revoked at once");
    assert!(target.works(&e.store.current(&e.path).await.unwrap().data));
    assert!(RetireRecord::read(&e.store.read_metadata(&e.path).await.unwrap()).is_none());

    // The next ordinary rotation gives its old credential the grace period
    // again; after the deadline a rotation retires first by itself.
    let v3 = e.store.current(&e.path).await.unwrap();
    assert!(e.manager.rotate_secret(&e.path, &p, None).await.success());
    assert!(target.works(&v3.data), "an ordinary rotation keeps the grace");
    e.clock.advance(GRACE);
    assert!(e.manager.rotate_secret(&e.path, &p, None).await.success());
    assert!(!target.works(&v3.data));
}

#[tokio::test]
async fn a_failed_retire_keeps_the_record_and_the_next_pass_finishes() {
    let e = env();
    let target = FakeTarget::new(true);
    let old = SecretData::text("old-secret");
    target.apply(&old, None).await.unwrap();
    e.store.create(&e.path, old.clone()).await.unwrap();
    e.manager.bind(e.path.clone(), SecretBinding::new().target(target.clone()));
    assert!(e.manager.rotate_secret(&e.path, &policy(RotationStrategy::DualWrite), None).await.success());
    e.clock.advance(GRACE);
    target.fail_revoke.store(true, Ordering::SeqCst);
    let done = e.manager.process_retirements().await;
    assert_eq!(done.len(), 1);
    assert!(matches!(done[0].error, Some(RotationError::Target { step: RotationStep::Retire, .. })), "{done:?}");
    assert!(RetireRecord::read(&e.store.read_metadata(&e.path).await.unwrap()).is_some());
    assert!(e.audit.kinds().contains(&AuditEventKind::RetireFailed));
    assert!(target.works(&old));
    target.fail_revoke.store(false, Ordering::SeqCst);
    // The scheduler's pass runs it too.
    e.manager.process_scheduled_rotations().await;
    assert!(!target.works(&old));
    assert!(RetireRecord::read(&e.store.read_metadata(&e.path).await.unwrap()).is_none());
}

#[tokio::test]
async fn a_second_process_retires_what_the_first_recorded() {
    let e = env();
    let target = FakeTarget::new(true);
    let old = SecretData::text("old-secret");
    target.apply(&old, None).await.unwrap();
    e.store.create(&e.path, old.clone()).await.unwrap();
    e.manager.bind(e.path.clone(), SecretBinding::new().target(target.clone()));
    let p = policy(RotationStrategy::DualWrite);
    assert!(e.manager.rotate_secret(&e.path, &p, None).await.success());

    // Another manager on the same store, with the secret scheduled there.
    let other = RotationManager::builder(e.store.clone()).clock(Arc::new(e.clock.clone())).build().unwrap();
    other.bind(e.path.clone(), SecretBinding::new().target(target.clone()));
    other.schedule_rotation(&e.path, p.clone()).await.unwrap();
    assert!(other.process_retirements().await.is_empty(), "not due");
    e.clock.advance(GRACE);
    let done = other.process_retirements().await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(!target.works(&old));
    // The first one finds nothing left (idempotent).
    assert!(e.manager.process_retirements().await.is_empty());
}

#[tokio::test]
async fn a_process_that_scheduled_the_secret_first_retires_what_a_later_rotation_elsewhere_recorded() {
    let e = env();
    let target = FakeTarget::new(true);
    let old = SecretData::text("old-secret");
    target.apply(&old, None).await.unwrap();
    e.store.create(&e.path, old.clone()).await.unwrap();
    e.manager.bind(e.path.clone(), SecretBinding::new().target(target.clone()));
    let p = policy(RotationStrategy::Staged);
    // A daemon schedules the secret (due in a day)...
    let daemon = RotationManager::builder(e.store.clone()).clock(Arc::new(e.clock.clone())).build().unwrap();
    daemon.bind(e.path.clone(), SecretBinding::new().target(target.clone()));
    daemon.schedule_rotation(&e.path, p.clone()).await.unwrap();
    // ...then a one-shot process rotates it by hand; the target keeps
    // several passwords and refuses to revoke the old one just then, so the
    // retire step is recorded beside the secret, and the process exits.
    e.clock.advance(Duration::from_secs(86_400 - 60));
    target.fail_revoke.store(true, Ordering::SeqCst);
    assert!(e.manager.rotate_secret(&e.path, &p, None).await.success());
    target.fail_revoke.store(false, Ordering::SeqCst);
    assert!(target.works(&old));
    assert!(RetireRecord::read(&e.store.read_metadata(&e.path).await.unwrap()).is_some());
    // When the daemon's schedule comes due the secret turns out rotated
    // elsewhere, with no store call more; the retire step it found there is
    // now the daemon's.
    e.clock.advance(Duration::from_secs(120));
    assert!(daemon.process_scheduled_rotations().await.is_empty(), "rotated elsewhere");
    assert!(daemon.next_due().is_some_and(|t| t <= e.clock.now()), "{:?}", daemon.next_due());
    let done = daemon.process_retirements().await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(!target.works(&old), "retired by the daemon");
}

#[tokio::test]
async fn dual_write_failure_before_promote_revokes_only_the_candidate() {
    let e = env();
    let target = FakeTarget::new(true);
    let old = SecretData::text("old-secret");
    target.apply(&old, None).await.unwrap();
    let v1 = e.store.create(&e.path, old.clone()).await.unwrap().id;
    e.manager.bind(e.path.clone(), SecretBinding::new().target(target.clone()));
    #[derive(Debug)]
    struct No;
    #[async_trait]
    impl Verifier for No {
        fn name(&self) -> &str {
            "no"
        }
        async fn verify(&self, _: VerifyContext<'_>) -> Result<(), VerifyError> {
            Err(VerifyError::Failed("no".into()))
        }
    }
    let m = RotationManager::builder(e.store.clone())
        .clock(Arc::new(e.clock.clone()))
        .verifier(Arc::new(No))
        .build()
        .unwrap();
    m.bind(e.path.clone(), SecretBinding::new().target(target.clone()));
    let p = RotationPolicy::builder("v")
        .strategy(RotationStrategy::DualWrite)
        .interval(Duration::from_secs(86_400))
        .grace_period(GRACE)
        .require_verification(true)
        .verification_tests(["no"])
        .build()
        .unwrap();
    let r = m.rotate_secret(&e.path, &p, None).await;
    assert_eq!(r.outcome, RotationOutcome::RolledBack, "{r}");
    assert_eq!(e.store.current(&e.path).await.unwrap().meta.id, v1);
    assert!(target.works(&old));
    assert_eq!(target.count(), 1, "the candidate is gone from the target");
    assert!(RetireRecord::read(&e.store.read_metadata(&e.path).await.unwrap()).is_none());
}

fn set(user: &str, pw: &str) -> SecretData {
    SecretData::fields([("username", user), ("password", pw), ("host", "db.internal")])
}

fn user(d: &SecretData) -> String {
    d.field("username").map(|u| u.expose_secret().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn blue_green_alternates_the_two_sets() {
    let e = env();
    let target = FakeTarget::new(false);
    let blue = set("app_blue", "blue-secret");
    target.apply(&blue, None).await.unwrap();
    e.store.create(&e.path, blue.clone()).await.unwrap();
    let p = policy(RotationStrategy::BlueGreen);

    // First rotation: no previous version names the other set.
    e.manager.bind(e.path.clone(), SecretBinding::new().target(target.clone()));
    let r = e.manager.rotate_secret(&e.path, &p, None).await;
    assert!(matches!(r.error, Some(RotationError::InvalidBinding { .. })), "{r}");
    assert!(r.error.as_ref().unwrap().to_string().contains("credential sets"), "{r}");
    assert_eq!(e.store.list_versions(&e.path).await.unwrap().len(), 1, "nothing written");

    e.manager
        .bind(e.path.clone(), SecretBinding::new().credential_sets("app_blue", "app_green").target(target.clone()));
    let mut history = vec![blue.clone()];
    for i in 0..4 {
        let r = e.manager.rotate_secret(&e.path, &p, None).await;
        assert!(r.success(), "{r}");
        let cur = e.store.current(&e.path).await.unwrap().data;
        let prev = e.store.previous(&e.path).await.unwrap().data;
        assert_eq!(user(&cur), if i % 2 == 0 { "app_green" } else { "app_blue" });
        assert!(prev.same_as(history.last().unwrap()), "previous = the formerly active set");
        assert_eq!(cur.field("host").map(|h| h.expose_secret().to_owned()).as_deref(), Some("db.internal"));
        assert!(target.works(&cur) && target.works(&prev), "both sets valid until the next rotation");
        if history.len() >= 2 {
            assert!(!target.works(&history[history.len() - 2]), "the re-keyed set's old password is gone");
        }
        history.push(cur);
    }
    // Without the sets, the previous version names the inactive set.
    e.manager.bind(e.path.clone(), SecretBinding::new().target(target.clone()));
    assert!(e.manager.rotate_secret(&e.path, &p, None).await.success());
    let secrets: Vec<String> = history.iter().map(|d| FakeTarget::key(d).1).collect();
    no_leak(&e, &secrets, &[]);
}

#[tokio::test]
async fn an_emergency_blue_green_rotation_revokes_the_leaked_set_at_once() {
    let e = env();
    let target = FakeTarget::new(false);
    let blue = set("app_blue", "blue-secret");
    target.apply(&blue, None).await.unwrap();
    e.store.create(&e.path, blue.clone()).await.unwrap();
    let p = policy(RotationStrategy::BlueGreen);
    e.manager
        .bind(e.path.clone(), SecretBinding::new().credential_sets("app_blue", "app_green").target(target.clone()));
    // An ordinary rotation leaves the other set valid until the next one.
    assert!(e.manager.rotate_secret(&e.path, &p, None).await.success());
    let green = e.store.current(&e.path).await.unwrap().data;
    assert!(target.works(&blue) && target.works(&green));
    // An emergency rotation: the set it replaces (green, the one that
    // leaked) stops working at once; the new blue works.
    let r = e
        .manager
        .rotate(RotationRequest::new(&e.path, &p).trigger(RotationTrigger::Emergency { reason: "leaked".into() }))
        .await;
    assert!(r.success(), "{r}");
    let new_blue = e.store.current(&e.path).await.unwrap().data;
    assert_eq!(user(&new_blue), "app_blue");
    assert!(target.works(&new_blue));
    assert!(!target.works(&green), "the leaked set is revoked");
    assert!(RetireRecord::read(&e.store.read_metadata(&e.path).await.unwrap()).is_none());
    // The next ordinary rotation re-keys green and goes on as before.
    assert!(e.manager.rotate_secret(&e.path, &p, None).await.success());
    let new_green = e.store.current(&e.path).await.unwrap().data;
    assert_eq!(user(&new_green), "app_green");
    assert!(target.works(&new_green) && target.works(&new_blue));
}

#[tokio::test]
async fn a_blue_green_rollback_revokes_the_set_it_rolls_back_from() {
    let e = env();
    let target = FakeTarget::new(false);
    let blue = set("app_blue", "blue-secret");
    target.apply(&blue, None).await.unwrap();
    e.store.create(&e.path, blue.clone()).await.unwrap();
    let p = policy(RotationStrategy::BlueGreen);
    e.manager
        .bind(e.path.clone(), SecretBinding::new().credential_sets("app_blue", "app_green").target(target.clone()));
    assert!(e.manager.rotate_secret(&e.path, &p, None).await.success());
    let green = e.store.current(&e.path).await.unwrap().data;
    assert!(target.works(&blue) && target.works(&green));
    // The operator distrusts green: blue is current again, and green's
    // password no longer works (it would otherwise stay valid until the
    // next rotation re-keys green).
    e.manager.rollback(&e.path).await.unwrap();
    assert!(e.store.current(&e.path).await.unwrap().data.same_as(&blue));
    assert!(target.works(&blue));
    assert!(!target.works(&green), "the set rolled back from is revoked");
    // The next rotation re-keys green as usual.
    assert!(e.manager.rotate_secret(&e.path, &p, None).await.success());
    let new_green = e.store.current(&e.path).await.unwrap().data;
    assert_eq!(user(&new_green), "app_green");
    assert!(target.works(&new_green) && target.works(&blue));
}

#[tokio::test]
async fn blue_green_rejects_bad_shapes_before_writing() {
    let e = env();
    e.store.create(&e.path, SecretData::text("just-a-password")).await.unwrap();
    let p = policy(RotationStrategy::BlueGreen);
    e.manager.bind(e.path.clone(), SecretBinding::new().credential_sets("a", "b"));
    let r = e.manager.rotate_secret(&e.path, &p, None).await;
    assert!(matches!(r.error, Some(RotationError::InvalidBinding { .. })), "{r}");
    let other: SecretPath = "apps/x".parse().unwrap();
    e.store.create(&other, set("intruder", "pw")).await.unwrap();
    e.manager.bind(other.clone(), SecretBinding::new().credential_sets("a", "b"));
    let r = e.manager.rotate_secret(&other, &p, None).await;
    assert!(r.error.as_ref().unwrap().to_string().contains("intruder"), "{r}");
    assert_eq!(e.store.list_versions(&other).await.unwrap().len(), 1);
}

#[tokio::test]
async fn blue_green_failure_after_promote_rolls_back_store_and_target() {
    let e = env();
    #[derive(Debug)]
    struct ConfirmFails(Arc<FakeTarget>, AtomicBool);
    #[async_trait]
    impl CredentialTarget for ConfirmFails {
        fn name(&self) -> &str {
            "confirm-fails"
        }
        fn capabilities(&self) -> TargetCapabilities {
            self.0.capabilities()
        }
        async fn apply(&self, c: &SecretData, cur: Option<&SecretData>) -> Result<(), TargetError> {
            self.0.apply(c, cur).await
        }
        async fn test(&self, c: &SecretData) -> Result<(), TargetError> {
            // The first test (verify) passes, the second (confirm) fails.
            if self.1.swap(true, Ordering::SeqCst) {
                return Err(TargetError::Unavailable { message: "gone".into() });
            }
            self.0.test(c).await
        }
        async fn revoke(&self, r: &SecretData, k: &SecretData) -> Result<(), TargetError> {
            self.0.revoke(r, k).await
        }
    }
    let fake = FakeTarget::new(false);
    let blue = set("app_blue", "blue-secret");
    fake.apply(&blue, None).await.unwrap();
    let v1 = e.store.create(&e.path, blue.clone()).await.unwrap().id;
    let target = Arc::new(ConfirmFails(fake.clone(), AtomicBool::new(false)));
    e.manager.bind(e.path.clone(), SecretBinding::new().credential_sets("app_blue", "app_green").target(target));
    let p = RotationPolicy::builder("p")
        .strategy(RotationStrategy::BlueGreen)
        .interval(Duration::from_secs(86_400))
        .grace_period(GRACE)
        .auto_rollback(true)
        .max_retries(0)
        .build()
        .unwrap();
    let r = e.manager.rotate_secret(&e.path, &p, None).await;
    assert_eq!(r.outcome, RotationOutcome::RolledBack, "{r}");
    assert!(r.rollback_performed);
    let cur = e.store.current(&e.path).await.unwrap();
    assert!(cur.data.same_as(&blue), "the store serves the active set again (version {})", cur.meta.id);
    let _ = v1;
    assert!(fake.works(&blue));
    assert_eq!(fake.count(), 1, "the green candidate was revoked");
}

#[tokio::test]
async fn a_dual_write_rotation_that_crashed_after_promote_gets_its_retire_step() {
    use rekey_memory::{Fault, FaultInjectingStore, Method, Rule};
    let clock = ManualClock::new(t0());
    let c = clock.clone();
    let store = Arc::new(FaultInjectingStore::new(MemoryStore::new().with_clock(move || c.now())));
    let manager = RotationManager::builder(store.clone()).clock(Arc::new(clock.clone())).build().unwrap();
    let path: SecretPath = "apps/cache/password".parse().unwrap();
    let target = FakeTarget::new(true);
    let old = SecretData::text("old-secret");
    target.apply(&old, None).await.unwrap();
    let v1 = store.create(&path, old.clone()).await.unwrap().id;
    manager.bind(path.clone(), SecretBinding::new().target(target.clone()));
    let p = policy(RotationStrategy::DualWrite);

    // The journal write works, the write that clears it (and records the
    // retire step) fails for good: like a crash right after promotion.
    store.add_rule(Rule::on(Method::WriteMetadata).skip(1).fail(Fault::permission_denied()));
    let r = manager.rotate_secret(&path, &p, None).await;
    store.clear_rules();
    assert!(r.success(), "the new value is current: {r}");
    let meta = store.read_metadata(&path).await.unwrap();
    assert!(RotationJournal::read(&meta).is_some() && RetireRecord::read(&meta).is_none());
    assert!(target.works(&old));

    // The next run recovers: it records the retire step (grace counted from
    // the promotion), which refuses a rotation inside the grace period...
    clock.advance(Duration::from_secs(60));
    let r = manager.rotate_secret(&path, &p, None).await;
    assert!(matches!(r.error, Some(RotationError::RetirePending { .. })), "{r}");
    let rec = RetireRecord::read(&store.read_metadata(&path).await.unwrap()).expect("recorded by recovery");
    assert_eq!(rec.retired, v1);
    assert_eq!(rec.deadline, Some(t0() + chrono::Duration::seconds(600)));
    // ... and the retire pass finishes it once due.
    clock.advance(GRACE);
    let done = manager.process_retirements().await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(!target.works(&old));
    assert!(manager.rotate_secret(&path, &p, None).await.success());
}

#[tokio::test]
async fn next_due_includes_known_retire_deadlines() {
    let e = env();
    let target = FakeTarget::new(true);
    let old = SecretData::text("old-secret");
    target.apply(&old, None).await.unwrap();
    e.store.create(&e.path, old.clone()).await.unwrap();
    e.manager.bind(e.path.clone(), SecretBinding::new().target(target.clone()));
    let p = policy(RotationStrategy::DualWrite);
    e.manager.schedule_rotation(&e.path, p.clone()).await.unwrap();
    assert_eq!(e.manager.next_due(), Some(t0() + chrono::Duration::days(1)));
    assert!(e.manager.rotate_secret(&e.path, &p, None).await.success());
    assert_eq!(e.manager.next_due(), Some(t0() + chrono::Duration::seconds(600)));
    e.clock.advance(GRACE);
    e.manager.process_scheduled_rotations().await;
    assert!(!target.works(&old));
    assert_eq!(e.manager.next_due(), Some(t0() + chrono::Duration::days(1)));
    // A deleted secret's entry goes away quietly.
    assert!(e.manager.rotate_secret(&e.path, &p, None).await.success());
    e.manager.unschedule_rotation(&e.path);
    e.store.delete(&e.path).await.unwrap();
    assert!(e.manager.process_retirements().await.is_empty());
    assert_eq!(e.manager.next_due(), None);
}
