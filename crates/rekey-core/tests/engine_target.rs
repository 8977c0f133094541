//! A bound credential target: the candidate is applied on it, tested as a
//! built-in verification, confirmed after promotion, and every undo brings
//! it back to the store's current value.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use engine_support::*;
use rekey_core::*;

const STAGED: RotationStrategy = RotationStrategy::Staged;
const IMMEDIATE: RotationStrategy = RotationStrategy::Immediate;

/// A single-credential target (like a PostgreSQL role): it accepts exactly
/// one password, the last applied. It can be told to fail a method.
#[derive(Debug, Default)]
struct FakeTarget {
    password: Mutex<String>,
    calls: Mutex<Vec<&'static str>>,
    fail: Mutex<Option<(&'static str, usize)>>,
}

impl FakeTarget {
    fn new(password: &str) -> Arc<Self> {
        let t = Self::default();
        *t.password.lock().unwrap() = password.to_owned();
        Arc::new(t)
    }
    /// The `n`-th call (1-based) of `method` fails.
    fn fail_nth(&self, method: &'static str, n: usize) {
        *self.fail.lock().unwrap() = Some((method, n));
    }
    fn password(&self) -> String {
        self.password.lock().unwrap().clone()
    }
    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }
    fn enter(&self, method: &'static str) -> Result<(), TargetError> {
        let mut calls = self.calls.lock().unwrap();
        calls.push(method);
        let n = calls.iter().filter(|m| **m == method).count();
        if *self.fail.lock().unwrap() == Some((method, n)) {
            return Err(TargetError::Rejected { message: format!("injected {method} failure") });
        }
        Ok(())
    }
}

fn pw(d: &SecretData) -> String {
    d.get(Some("password")).map(|s| s.expose_secret().to_owned()).unwrap_or_default()
}

#[async_trait]
impl CredentialTarget for FakeTarget {
    fn name(&self) -> &str {
        "fake-db"
    }
    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities::default()
    }
    async fn apply(&self, candidate: &SecretData, _current: Option<&SecretData>) -> Result<(), TargetError> {
        self.enter("apply")?;
        *self.password.lock().unwrap() = pw(candidate);
        Ok(())
    }
    async fn test(&self, credential: &SecretData) -> Result<(), TargetError> {
        self.enter("test")?;
        if pw(credential) == self.password() {
            Ok(())
        } else {
            Err(TargetError::Rejected { message: "password authentication failed".into() })
        }
    }
    async fn revoke(&self, _revoked: &SecretData, keep: &SecretData) -> Result<(), TargetError> {
        self.enter("revoke")?;
        *self.password.lock().unwrap() = pw(keep);
        Ok(())
    }
}

async fn setup(strategy_value: &str) -> (Env, SecretPath, Arc<FakeTarget>) {
    let e = env();
    let p = path("db/app");
    e.store.create(&p, SecretData::fields([("username", "app"), ("password", strategy_value)])).await.unwrap();
    let target = FakeTarget::new(strategy_value);
    e.manager.bind(p.clone(), SecretBinding::new().field("password").target(target.clone()));
    (e, p, target)
}

async fn store_pw(e: &Env, p: &SecretPath) -> String {
    pw(&e.current(p).await.data)
}

#[tokio::test]
async fn staged_with_a_target_applies_tests_promotes_and_confirms() {
    let (e, p, target) = setup("old-pw").await;
    let r = e.manager.rotate_secret(&p, &policy(STAGED), Some(SecretString::from("new-pw"))).await;
    assert!(r.success(), "{r}");
    assert!(r.verification_passed, "the target's test is a verification");
    assert_eq!(target.calls(), ["apply", "test", "test"]);
    assert_eq!(store_pw(&e, &p).await, "new-pw");
    assert_eq!(target.password(), "new-pw");
    assert_eq!(e.current(&p).await.data.field("username").unwrap().expose_secret(), "app", "other fields kept");
    use AuditEventKind::*;
    let kinds: Vec<_> = e.audit.for_rotation(r.rotation_id).iter().map(|ev| ev.kind).collect();
    assert_eq!(kinds, [Started, Staged, Applied, Verifying, Verified, Promoted, Confirmed, CleanedUp, Succeeded]);
}

#[tokio::test]
async fn every_target_failure_leaves_store_and_target_agreeing() {
    for strategy in [STAGED, IMMEDIATE] {
        for (method, n) in [("apply", 1), ("test", 1), ("test", 2)] {
            if strategy == IMMEDIATE && (method, n) == ("test", 2) {
                continue; // immediate tests once
            }
            let (e, p, target) = setup("old-pw").await;
            target.fail_nth(method, n);
            let r = e.manager.rotate_secret(&p, &policy(strategy), Some(SecretString::from("new-pw"))).await;
            let ctx = format!("{strategy} {method}#{n}: {r}");
            assert!(!r.success(), "{ctx}");
            assert_eq!(r.outcome, RotationOutcome::RolledBack, "{ctx}");
            assert!(r.rollback_performed, "{ctx}");
            assert_eq!(store_pw(&e, &p).await, "old-pw", "{ctx}");
            assert_eq!(target.password(), "old-pw", "{ctx}: the target accepts the store's value again");
            assert!(
                matches!(r.error, Some(RotationError::Target { .. }) | Some(RotationError::Verification { .. })),
                "{ctx}"
            );
            assert!(e.pending(&p).await.is_none(), "{ctx}");
        }
    }
}

#[tokio::test]
async fn immediate_with_a_target_rolls_back_even_without_auto_rollback_when_the_target_never_took_it() {
    let (e, p, target) = setup("old-pw").await;
    target.fail_nth("apply", 1);
    let no_rollback = RotationPolicy::builder("nr").strategy(IMMEDIATE).manual().auto_rollback(false).build().unwrap();
    let r = e.manager.rotate_secret(&p, &no_rollback, Some(SecretString::from("new-pw"))).await;
    assert_eq!(r.outcome, RotationOutcome::RolledBack, "{r}");
    assert_eq!(store_pw(&e, &p).await, "old-pw");
    assert_eq!(target.password(), "old-pw");
}

#[tokio::test]
async fn a_failed_revoke_is_reported() {
    let (e, p, target) = setup("old-pw").await;
    target.fail_nth("test", 1);
    target.calls.lock().unwrap().clear();
    *target.fail.lock().unwrap() = Some(("test", 1));
    let r = e.manager.rotate_secret(&p, &policy(STAGED), Some(SecretString::from("new-pw"))).await;
    assert_eq!(r.outcome, RotationOutcome::RolledBack);
    // Now make the undo itself fail.
    let (e, p, target) = setup("old-pw").await;
    #[derive(Debug)]
    struct Both(Arc<FakeTarget>);
    #[async_trait]
    impl CredentialTarget for Both {
        fn name(&self) -> &str {
            "both"
        }
        fn capabilities(&self) -> TargetCapabilities {
            TargetCapabilities::default()
        }
        async fn apply(&self, c: &SecretData, cur: Option<&SecretData>) -> Result<(), TargetError> {
            self.0.apply(c, cur).await
        }
        async fn test(&self, _: &SecretData) -> Result<(), TargetError> {
            Err(TargetError::Rejected { message: "no".into() })
        }
        async fn revoke(&self, _: &SecretData, _: &SecretData) -> Result<(), TargetError> {
            Err(TargetError::PermissionDenied { message: "cannot alter role".into() })
        }
    }
    e.manager.bind(p.clone(), SecretBinding::new().field("password").target(Arc::new(Both(target.clone()))));
    let r = e.manager.rotate_secret(&p, &policy(STAGED), Some(SecretString::from("new-pw"))).await;
    assert_eq!(r.outcome, RotationOutcome::Failed, "{r}");
    let Some(RotationError::UndoFailed { undo, .. }) = &r.error else { panic!("{r}") };
    assert!(matches!(**undo, RotationError::Target { step: RotationStep::Revoke, .. }));
    assert_eq!(store_pw(&e, &p).await, "old-pw", "the store's current value never changed");
}

#[tokio::test]
async fn a_crashed_rotation_with_a_target_is_reverted_on_the_target() {
    let (e, p, target) = setup("old-pw").await;
    // Simulate a crash after apply: stage + journal + target, as a dead
    // rotation of this manager would leave them.
    let crashed = RotationId::new();
    e.store.stage(&p, SecretData::fields([("username", "app"), ("password", "crashed-pw")]), crashed).await.unwrap();
    let mut meta = Metadata::new();
    meta.insert(
        "rekey.rotation".into(),
        format!("id={crashed};step=stage;strategy=staged;started=2029-12-31T00:00:00.000Z;owner=gone;base=x"),
    );
    e.store.write_metadata(&p, meta).await.unwrap();
    *target.password.lock().unwrap() = "crashed-pw".into();
    let r = e.manager.rotate_secret(&p, &policy(STAGED), Some(SecretString::from("new-pw"))).await;
    assert!(r.success(), "{r}");
    assert_eq!(target.calls()[0], "revoke", "recovery first brings the target back");
    assert_eq!(target.password(), "new-pw");
    assert_eq!(store_pw(&e, &p).await, "new-pw");
}

/// A target whose apply fails in a chosen way: after the new password has
/// landed (the answer was lost), or before anything changed (rekey's own
/// login was refused), and whose revoke can be made to fail.
#[derive(Debug)]
struct Faulty {
    inner: Arc<FakeTarget>,
    apply_lands: bool,
    says_nothing_changed: bool,
    revoke_fails: bool,
}

#[async_trait]
impl CredentialTarget for Faulty {
    fn name(&self) -> &str {
        "faulty-db"
    }
    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities::default()
    }
    async fn apply(&self, c: &SecretData, cur: Option<&SecretData>) -> Result<(), TargetError> {
        if self.apply_lands {
            self.inner.apply(c, cur).await?;
            // Not retryable, so that the test needs no clock: one apply, one error.
            return Err(TargetError::Other { message: "the server closed the connection after ALTER ROLE".into() });
        }
        self.inner.calls.lock().unwrap().push("apply");
        let e = TargetError::PermissionDenied { message: "admin login refused".into() };
        Err(if self.says_nothing_changed { e.nothing_changed() } else { e })
    }
    async fn test(&self, c: &SecretData) -> Result<(), TargetError> {
        self.inner.test(c).await
    }
    async fn revoke(&self, r: &SecretData, keep: &SecretData) -> Result<(), TargetError> {
        if self.revoke_fails {
            self.inner.calls.lock().unwrap().push("revoke");
            return Err(TargetError::PermissionDenied { message: "admin login refused".into() });
        }
        self.inner.revoke(r, keep).await
    }
}

fn bind_faulty(e: &Env, p: &SecretPath, inner: &Arc<FakeTarget>, lands: bool, nothing: bool, revoke_fails: bool) {
    let t = Faulty { inner: inner.clone(), apply_lands: lands, says_nothing_changed: nothing, revoke_fails };
    e.manager.bind(p.clone(), SecretBinding::new().field("password").target(Arc::new(t)));
}

#[tokio::test]
async fn an_apply_that_landed_before_its_error_is_revoked_for_every_strategy() {
    for strategy in [STAGED, IMMEDIATE] {
        let (e, p, target) = setup("old-pw").await;
        bind_faulty(&e, &p, &target, true, false, false);
        let r = e.manager.rotate_secret(&p, &policy(strategy), Some(SecretString::from("new-pw"))).await;
        assert_eq!(r.outcome, RotationOutcome::RolledBack, "{strategy}: {r}");
        assert_eq!(target.calls(), ["apply", "revoke"], "{strategy}: the undo reaches the target");
        assert_eq!(target.password(), "old-pw", "{strategy}: the target accepts the store's value again");
        assert_eq!(store_pw(&e, &p).await, "old-pw", "{strategy}");
    }
}

#[tokio::test]
async fn an_apply_that_changed_nothing_needs_no_undo_and_leaves_no_journal() {
    for strategy in [STAGED, IMMEDIATE] {
        let (e, p, target) = setup("old-pw").await;
        // rekey's own login is refused: for apply and for any undo alike.
        bind_faulty(&e, &p, &target, false, true, true);
        let r = e.manager.rotate_secret(&p, &policy(strategy), Some(SecretString::from("new-pw"))).await;
        assert_eq!(r.outcome, RotationOutcome::RolledBack, "{strategy}: {r}");
        assert!(
            matches!(&r.error, Some(RotationError::Target { step: RotationStep::Apply, .. })),
            "{strategy}: the apply's own error, not an undo failure: {r}"
        );
        assert_eq!(target.calls(), ["apply"], "{strategy}: no revoke of what never landed");
        assert_eq!(store_pw(&e, &p).await, "old-pw", "{strategy}");
        assert!(e.pending(&p).await.is_none(), "{strategy}");
        let meta = e.store.read_metadata(&p).await.unwrap();
        assert!(!meta.contains_key("rekey.rotation"), "{strategy}: journal cleared: {meta:?}");

        // Once the target is fixed the next rotation goes ahead at once.
        e.manager.bind(p.clone(), SecretBinding::new().field("password").target(target.clone()));
        let r = e.manager.rotate_secret(&p, &policy(strategy), Some(SecretString::from("newer-pw"))).await;
        assert!(r.success(), "{strategy}: {r}");
        assert_eq!(target.password(), "newer-pw");
    }
}

#[tokio::test]
async fn an_apply_that_may_have_landed_keeps_its_journal_when_the_undo_fails() {
    // The contrast: without the target's word, a failed undo is reported
    // and the journal stays so that recovery tries the revoke again.
    let (e, p, target) = setup("old-pw").await;
    bind_faulty(&e, &p, &target, false, false, true);
    let r = e.manager.rotate_secret(&p, &policy(STAGED), Some(SecretString::from("new-pw"))).await;
    assert_eq!(r.outcome, RotationOutcome::Failed, "{r}");
    assert!(matches!(&r.error, Some(RotationError::UndoFailed { .. })), "{r}");
    assert_eq!(target.calls(), ["apply", "revoke"]);
    let meta = e.store.read_metadata(&p).await.unwrap();
    assert!(meta.contains_key("rekey.rotation"), "{meta:?}");
}

/// A target whose first apply lands before its error, after which the
/// server is away (every call fails without changing anything) until
/// `back` is set.
#[derive(Debug)]
struct LandsOnceThenDown {
    inner: Arc<FakeTarget>,
    applies: Mutex<u32>,
    back: Mutex<bool>,
}

impl LandsOnceThenDown {
    fn away(&self) -> Result<(), TargetError> {
        if *self.back.lock().unwrap() {
            Ok(())
        } else {
            Err(TargetError::Other { message: "the server went away".into() })
        }
    }
}

#[async_trait]
impl CredentialTarget for LandsOnceThenDown {
    fn name(&self) -> &str {
        "flaky-db"
    }
    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities::default()
    }
    async fn apply(&self, c: &SecretData, cur: Option<&SecretData>) -> Result<(), TargetError> {
        let n = {
            let mut n = self.applies.lock().unwrap();
            *n += 1;
            *n
        };
        if n == 1 {
            self.inner.apply(c, cur).await?;
            return Err(TargetError::Other { message: "the server went away".into() });
        }
        self.away()?;
        self.inner.apply(c, cur).await
    }
    async fn test(&self, c: &SecretData) -> Result<(), TargetError> {
        self.away()?;
        self.inner.test(c).await
    }
    async fn revoke(&self, r: &SecretData, keep: &SecretData) -> Result<(), TargetError> {
        self.away()?;
        self.inner.revoke(r, keep).await
    }
}

#[tokio::test]
async fn a_manual_rollback_whose_undo_fails_keeps_a_journal_that_recovery_finishes() {
    let (e, p, target) = setup("pw-1").await;
    let r = e.manager.rotate_secret(&p, &policy(STAGED), Some(SecretString::from("pw-2"))).await;
    assert!(r.success(), "{r}");
    assert_eq!(target.password(), "pw-2");

    // The rollback's apply lands (the target now takes pw-1), its undo
    // cannot reach the target: store and target differ, and the journal
    // says so.
    let flaky = Arc::new(LandsOnceThenDown { inner: target.clone(), applies: Mutex::new(0), back: Mutex::new(false) });
    e.manager.bind(p.clone(), SecretBinding::new().field("password").target(flaky.clone()));
    let err = e.manager.rollback(&p).await.unwrap_err();
    assert!(matches!(err, RotationError::UndoFailed { .. }), "{err}");
    assert_eq!(target.password(), "pw-1");
    assert_eq!(store_pw(&e, &p).await, "pw-2");
    let meta = e.store.read_metadata(&p).await.unwrap();
    let journal = RotationJournal::read(&meta).expect("the rollback keeps its journal");
    assert_eq!(journal.step, Some(RotationStep::Rollback), "{meta:?}");
    assert!(journal.restore.is_some(), "{meta:?}");

    // Once the server is back, recovery (what the next rotation or
    // rollback, or `rekey run` scheduling the secret does) gives the target
    // the store's value again.
    *flaky.back.lock().unwrap() = true;
    assert_eq!(e.manager.recover(&p).await.unwrap(), Recovery::CleanedUp);
    assert_eq!(target.password(), "pw-2");
    let meta = e.store.read_metadata(&p).await.unwrap();
    assert!(RotationJournal::read(&meta).is_none(), "{meta:?}");

    // With the target back, the rollback goes through and ends its journal.
    e.manager.bind(p.clone(), SecretBinding::new().field("password").target(target.clone()));
    e.manager.rollback(&p).await.unwrap();
    assert_eq!(store_pw(&e, &p).await, "pw-1");
    assert_eq!(target.password(), "pw-1");
    let meta = e.store.read_metadata(&p).await.unwrap();
    assert!(RotationJournal::read(&meta).is_none(), "{meta:?}");
}

/// A target that keeps several credentials at once (like a Redis ACL
/// user): apply adds a password, revoke removes one and keeps another.
#[derive(Debug, Default)]
struct MultiTarget {
    passwords: Mutex<Vec<String>>,
    revoke_fails: Mutex<u32>,
}

impl MultiTarget {
    fn accepted(&self) -> Vec<String> {
        let mut p = self.passwords.lock().unwrap().clone();
        p.sort();
        p
    }
}

#[async_trait]
impl CredentialTarget for MultiTarget {
    fn name(&self) -> &str {
        "multi-db"
    }
    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities { concurrent_credentials: true }
    }
    async fn apply(&self, candidate: &SecretData, _current: Option<&SecretData>) -> Result<(), TargetError> {
        let mut p = self.passwords.lock().unwrap();
        if !p.contains(&pw(candidate)) {
            p.push(pw(candidate));
        }
        Ok(())
    }
    async fn test(&self, credential: &SecretData) -> Result<(), TargetError> {
        if self.passwords.lock().unwrap().contains(&pw(credential)) {
            Ok(())
        } else {
            Err(TargetError::Rejected { message: "password authentication failed".into() })
        }
    }
    async fn revoke(&self, revoked: &SecretData, keep: &SecretData) -> Result<(), TargetError> {
        {
            let mut fails = self.revoke_fails.lock().unwrap();
            if *fails > 0 {
                *fails -= 1;
                return Err(TargetError::Other { message: "the server went away".into() });
            }
        }
        let mut p = self.passwords.lock().unwrap();
        p.retain(|x| *x != pw(revoked));
        if !p.contains(&pw(keep)) {
            p.push(pw(keep));
        }
        Ok(())
    }
}

#[tokio::test]
async fn on_a_target_with_several_credentials_staged_and_immediate_revoke_the_replaced_one() {
    for strategy in [STAGED, IMMEDIATE] {
        let e = env();
        let p = path("db/multi");
        e.store.create(&p, SecretData::fields([("username", "app"), ("password", "pw-1")])).await.unwrap();
        let target = Arc::new(MultiTarget::default());
        target.passwords.lock().unwrap().push("pw-1".into());
        e.manager.bind(p.clone(), SecretBinding::new().field("password").target(target.clone()));

        let store_calls = |e: &Env| e.store.inner().request_counts().iter().map(|(_, n)| n).sum::<u64>();
        let before = store_calls(&e);
        let r = e.manager.rotate_secret(&p, &policy(strategy), Some(SecretString::from("pw-2"))).await;
        assert!(r.success(), "{strategy}: {r}");
        assert_eq!(target.accepted(), ["pw-2"], "{strategy}: the replaced password no longer works");
        // The revoke costs the store nothing: as many calls as the same
        // rotation on a target with one password.
        let multi_calls = store_calls(&e) - before;
        let (single, sp, _) = setup("pw-1").await;
        let before = store_calls(&single);
        let r = single.manager.rotate_secret(&sp, &policy(strategy), Some(SecretString::from("pw-2"))).await;
        assert!(r.success(), "{strategy}: {r}");
        assert_eq!(multi_calls, store_calls(&single) - before, "{strategy}");
        let meta = e.store.read_metadata(&p).await.unwrap();
        assert!(!meta.keys().any(|k| k.starts_with("rekey.retire")), "{strategy}: nothing left to retire: {meta:?}");

        // A revoke that fails does not fail the rotation: the retire step
        // stays recorded and the retire pass finishes it.
        *target.revoke_fails.lock().unwrap() = 2;
        let r = e.manager.rotate_secret(&p, &policy(strategy), Some(SecretString::from("pw-3"))).await;
        assert!(r.success(), "{strategy}: {r}");
        assert_eq!(target.accepted(), ["pw-2", "pw-3"], "{strategy}");
        let meta = e.store.read_metadata(&p).await.unwrap();
        assert!(meta.keys().any(|k| k.starts_with("rekey.retire")), "{strategy}: recorded: {meta:?}");
        // Tried again later, not at once: a worker loop that sleeps until
        // `next_due` would otherwise spin against a target that is down.
        let now = e.clock.now();
        assert!(e.manager.next_due().is_some_and(|t| t > now), "{strategy}: {:?}", e.manager.next_due());
        let retired = e.manager.process_retirements().await;
        assert!(retired.len() == 1 && retired[0].error.is_some(), "{strategy}: {retired:?}");
        assert!(e.manager.next_due().is_some_and(|t| t > now), "{strategy}: {:?}", e.manager.next_due());
        let retired = e.manager.process_retirements().await;
        assert_eq!(retired.len(), 1, "{strategy}: {retired:?}");
        assert!(retired[0].revoked && retired[0].error.is_none(), "{strategy}: {retired:?}");
        assert_eq!(target.accepted(), ["pw-3"], "{strategy}");
        let meta = e.store.read_metadata(&p).await.unwrap();
        assert!(!meta.keys().any(|k| k.starts_with("rekey.retire")), "{strategy}: {meta:?}");
    }
}

#[tokio::test]
async fn an_emergency_dual_write_rotation_revokes_the_leaked_credential_at_once() {
    let e = env();
    let p = path("db/leaky");
    e.store.create(&p, SecretData::fields([("username", "app"), ("password", "pw-1")])).await.unwrap();
    let target = Arc::new(MultiTarget::default());
    target.passwords.lock().unwrap().push("pw-1".into());
    e.manager.bind(p.clone(), SecretBinding::new().field("password").target(target.clone()));
    let dual = RotationPolicy::builder("dual")
        .strategy(RotationStrategy::DualWrite)
        .grace_period(std::time::Duration::from_secs(3600))
        .manual()
        .build()
        .unwrap();

    // A scheduled-style dual-write rotation keeps the old password for its
    // grace period.
    let r = e.manager.rotate_secret(&p, &dual, Some(SecretString::from("pw-2"))).await;
    assert!(r.success(), "{r}");
    assert_eq!(target.accepted(), ["pw-1", "pw-2"]);
    e.clock.advance(std::time::Duration::from_secs(7200));
    e.manager.process_retirements().await;
    assert_eq!(target.accepted(), ["pw-2"]);

    // An emergency rotation is a leak: the credential it replaces stops
    // working at once, whatever the grace period.
    let r = e
        .manager
        .rotate(RotationRequest::new(&p, &dual).trigger(RotationTrigger::Emergency { reason: "leaked".into() }))
        .await;
    assert!(r.success(), "{r}");
    let now_pw = pw(&e.current(&p).await.data);
    assert_eq!(target.accepted(), [now_pw], "the leaked pw-2 no longer works");
    let meta = e.store.read_metadata(&p).await.unwrap();
    assert!(!meta.keys().any(|k| k.starts_with("rekey.retire")), "nothing left to retire: {meta:?}");
}
