//! A model-based test of the engine with a credential target bound: random
//! sequences of rotations, manual rollbacks (journalled like rotations
//! while the target is ahead of the store), recoveries, retire passes and
//! clock jumps, with target faults (an apply refused before it changed
//! anything, an apply that landed before its error, a plain failed apply, a
//! refused test login, a failed revoke) and store faults (unavailable, or
//! the answer lost after the call happened) in between. Three targets: one
//! that holds a single password (like a PostgreSQL role; staged and
//! immediate), one that holds several at once (like a Redis ACL user;
//! staged, immediate and dual-write), and two users with one password each
//! (PostgreSQL's alternating roles; blue-green). Checked after every step:
//!
//! * whenever no rotation is journalled beside the secret, the target
//!   accepts the store's current value — and nothing else, except the
//!   credential a recorded retire step is still to revoke (dual-write's
//!   grace, or a revoke that failed) and, for blue-green, the other set (the
//!   previous version, valid until the next rotation): no failed candidate,
//!   replaced value or rolled-back value stays valid;
//! * after a successful emergency rotation or manual rollback the
//!   credential it replaced no longer works (unless a retire step for it is
//!   recorded);
//! * a rotation that reports `RolledBack` or `Rotated` leaves no journal;
//! * one manager working alone never finds its secret "in progress
//!   elsewhere" when nothing was journalled before it started;
//! * at the end, with every fault gone and the grace period over, recovery
//!   and the retire pass leave nothing journalled or recorded, and the target
//!   accepts exactly the store's current value.
//!
//! `REKEY_MODEL_CASES` sets the number of sequences per target (default 300).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use engine_support::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rekey_core::*;
use rekey_memory::{Fault, Method, Rule};

/// What the target does on its next call of one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetFault {
    /// `apply` is refused before anything changes, and says so.
    ApplyChangedNothing,
    /// `apply` sets the password, then its answer is lost.
    ApplyLandedThenFailed,
    /// `apply` fails without changing anything, and does not say so.
    ApplyFailed,
    /// `test` refuses the login.
    TestFails,
    /// `revoke` fails without changing anything.
    RevokeFails,
}

#[derive(Debug, Clone)]
enum Op {
    Rotate(RotationStrategy),
    /// An emergency rotation (the replaced credential leaked).
    Emergency(RotationStrategy),
    Target(TargetFault),
    Store {
        method: Method,
        nth: u64,
        lost_response: bool,
    },
    Rollback,
    Recover,
    /// The retire pass (what a daemon runs before each batch).
    Retire,
    /// Time passes beyond the dual-write grace period.
    Later,
}

/// The kind of target the secret is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Kind {
    /// One password (like a PostgreSQL role).
    #[default]
    Single,
    /// Several passwords at once (like a Redis ACL user).
    Multi,
    /// Two users, one password each, alternated (PostgreSQL blue-green).
    BlueGreen,
}

fn op(kind: Kind) -> impl Strategy<Value = Op> {
    let strategy = match kind {
        Kind::Multi => prop_oneof![
            Just(RotationStrategy::Staged),
            Just(RotationStrategy::Immediate),
            Just(RotationStrategy::DualWrite)
        ]
        .boxed(),
        Kind::Single => prop_oneof![Just(RotationStrategy::Staged), Just(RotationStrategy::Immediate)].boxed(),
        Kind::BlueGreen => Just(RotationStrategy::BlueGreen).boxed(),
    };
    let fault = prop_oneof![
        Just(TargetFault::ApplyChangedNothing),
        Just(TargetFault::ApplyLandedThenFailed),
        Just(TargetFault::ApplyFailed),
        Just(TargetFault::TestFails),
        Just(TargetFault::RevokeFails),
    ];
    let method = prop_oneof![
        Just(Method::Read),
        Just(Method::Stage),
        Just(Method::Promote),
        Just(Method::Put),
        Just(Method::Discard),
        Just(Method::ReadMetadata),
        Just(Method::WriteMetadata),
    ];
    prop_oneof![
        6 => strategy.clone().prop_map(Op::Rotate),
        1 => strategy.prop_map(Op::Emergency),
        4 => fault.prop_map(Op::Target),
        3 => (method, 1u64..3, any::<bool>()).prop_map(|(method, nth, lost_response)| Op::Store { method, nth, lost_response }),
        2 => Just(Op::Rollback),
        1 => Just(Op::Recover),
        1 => Just(Op::Retire),
        1 => Just(Op::Later),
    ]
}

/// A target of one [`Kind`], with one scripted fault per method at a
/// time. It accepts credentials written `user:password` (`password` alone
/// for a text secret).
#[derive(Debug, Default)]
struct Target {
    kind: Kind,
    passwords: Mutex<Vec<String>>,
    faults: Mutex<Vec<TargetFault>>,
}

/// The user part of a credential.
fn user_of(credential: &str) -> &str {
    credential.split_once(':').map_or("", |(u, _)| u)
}

impl Target {
    /// The passwords it accepts, sorted.
    fn accepted(&self) -> Vec<String> {
        let mut p = self.passwords.lock().unwrap().clone();
        p.sort();
        p
    }
    fn add(&self, pw: String) {
        let mut p = self.passwords.lock().unwrap();
        match self.kind {
            Kind::Single => p.clear(),
            Kind::Multi => {}
            // A user has one password.
            Kind::BlueGreen => p.retain(|x| user_of(x) != user_of(&pw)),
        }
        if !p.contains(&pw) {
            p.push(pw);
        }
    }
    /// Takes the pending fault among `kinds`, if any.
    fn take(&self, kinds: &[TargetFault]) -> Option<TargetFault> {
        let mut f = self.faults.lock().unwrap();
        let i = f.iter().position(|k| kinds.contains(k))?;
        Some(f.remove(i))
    }
}

fn pw(d: &SecretData) -> String {
    match d {
        SecretData::Text(_) => text(d),
        SecretData::Fields(_) => {
            let f = |k| d.field(k).map(|v| v.expose_secret().to_owned()).unwrap_or_default();
            format!("{}:{}", f("username"), f("password"))
        }
    }
}

#[async_trait]
impl CredentialTarget for Target {
    fn name(&self) -> &str {
        "model-db"
    }
    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities { concurrent_credentials: self.kind == Kind::Multi }
    }
    async fn apply(&self, candidate: &SecretData, _current: Option<&SecretData>) -> Result<(), TargetError> {
        use TargetFault::*;
        match self.take(&[ApplyChangedNothing, ApplyLandedThenFailed, ApplyFailed]) {
            Some(ApplyChangedNothing) => {
                Err(TargetError::PermissionDenied { message: "admin login refused".into() }.nothing_changed())
            }
            Some(ApplyLandedThenFailed) => {
                self.add(pw(candidate));
                Err(TargetError::Other { message: "connection closed after ALTER ROLE".into() })
            }
            Some(_) => Err(TargetError::Other { message: "the server went away".into() }),
            None => {
                self.add(pw(candidate));
                Ok(())
            }
        }
    }
    async fn test(&self, credential: &SecretData) -> Result<(), TargetError> {
        if self.take(&[TargetFault::TestFails]).is_some() || !self.passwords.lock().unwrap().contains(&pw(credential)) {
            return Err(TargetError::Rejected { message: "password authentication failed".into() });
        }
        Ok(())
    }
    async fn revoke(&self, revoked: &SecretData, keep: &SecretData) -> Result<(), TargetError> {
        if self.take(&[TargetFault::RevokeFails]).is_some() {
            return Err(TargetError::Other { message: "the server went away".into() });
        }
        let (revoked, keep) = (pw(revoked), pw(keep));
        if self.kind == Kind::BlueGreen && user_of(&revoked) != user_of(&keep) {
            // Another user: only that password goes (as PostgreSQL's
            // alternating roles do); the kept one is not touched.
            self.passwords.lock().unwrap().retain(|p| *p != revoked);
            return Ok(());
        }
        self.passwords.lock().unwrap().retain(|p| *p != revoked);
        self.add(keep);
        Ok(())
    }
}

/// The dual-write grace period; `Op::Later` jumps past it.
const GRACE: Duration = Duration::from_secs(600);

fn policy(strategy: RotationStrategy) -> RotationPolicy {
    let b = RotationPolicy::builder(strategy.as_str()).strategy(strategy).manual().max_retries(1);
    let alternating = matches!(strategy, RotationStrategy::DualWrite | RotationStrategy::BlueGreen);
    let b = if alternating { b.grace_period(GRACE) } else { b };
    b.build().unwrap()
}

struct World {
    e: Env,
    p: SecretPath,
    target: Arc<Target>,
}

impl World {
    async fn new(kind: Kind) -> Self {
        let e = env();
        e.clock.set_auto_advance(true);
        let p = path("model/db");
        let target = Arc::new(Target { kind, ..Target::default() });
        let initial = if kind == Kind::BlueGreen {
            SecretData::fields([("username", "blue"), ("password", "initial-pw-0123456789")])
        } else {
            SecretData::text("initial-pw-0123456789")
        };
        target.add(pw(&initial));
        e.store.inner().create(&p, initial).await.unwrap();
        let binding = SecretBinding::new().target(target.clone());
        let binding = if kind == Kind::BlueGreen { binding.credential_sets("blue", "green") } else { binding };
        e.manager.bind(p.clone(), binding);
        Self { e, p, target }
    }

    /// The credential of the version before the current one, when it is the
    /// other blue-green set (which stays valid until the next rotation).
    async fn other_set(&self) -> Option<String> {
        if self.target.kind != Kind::BlueGreen {
            return None;
        }
        let prev = self.e.store.inner().read(&self.p, &VersionSelector::Previous).await.ok()?;
        let (prev, current) = (pw(&prev.data), self.current().await);
        (user_of(&prev) != user_of(&current)).then_some(prev)
    }

    /// After an emergency rotation or a rollback: the credential it
    /// replaced no longer works, unless a recorded retire step is still to
    /// revoke it.
    async fn replaced_is_gone(&self, replaced: &str, what: &str) -> Result<(), String> {
        if self.target.accepted().iter().any(|p| p == replaced) && self.retiring().await.as_deref() != Some(replaced) {
            return Err(format!("{what}: the credential it replaced still works"));
        }
        Ok(())
    }

    /// The value of the credential a recorded retire step is still to
    /// revoke, read past the fault layer.
    async fn retiring(&self) -> Option<String> {
        let meta = self.e.store.inner().read_metadata(&self.p).await.unwrap();
        let record = RetireRecord::read(&meta)?;
        let v = self.e.store.inner().read(&self.p, &VersionSelector::Id(record.retired)).await.ok()?;
        Some(pw(&v.data))
    }

    /// Whether a rotation is journalled beside the secret, read past the
    /// fault layer. With a target bound the journal is always written
    /// before the target is touched; a staged candidate without one (its
    /// journal write lost) never reached the target.
    async fn journalled(&self) -> bool {
        let meta = self.e.store.inner().read_metadata(&self.p).await.unwrap();
        RotationJournal::read(&meta).is_some()
    }

    async fn current(&self) -> String {
        pw(&self.e.store.inner().current(&self.p).await.unwrap().data)
    }

    async fn apply(&mut self, op: &Op) -> Result<(), String> {
        let journalled_before = self.journalled().await;
        match op {
            Op::Rotate(strategy) | Op::Emergency(strategy) => {
                let policy = policy(*strategy);
                let mut req = RotationRequest::new(&self.p, &policy);
                if let Op::Emergency(_) = op {
                    req = req.trigger(RotationTrigger::Emergency { reason: "leaked".into() });
                }
                let replaced = self.current().await;
                let r = self.e.manager.rotate(req).await;
                if let Op::Emergency(_) = op
                    && r.success()
                {
                    if !self.journalled().await {
                        self.replaced_is_gone(&replaced, "an emergency rotation").await?;
                    }
                    // The replaced credential leaked: revoked, or due for
                    // revocation now — never given a grace period.
                    let meta = self.e.store.inner().read_metadata(&self.p).await.unwrap();
                    let now = self.e.clock.now();
                    if RetireRecord::read(&meta).and_then(|rec| rec.deadline).is_some_and(|d| d > now) {
                        return Err(format!("an emergency rotation gave the leaked credential a grace period: {r}"));
                    }
                }
                if matches!(r.outcome, RotationOutcome::Rotated | RotationOutcome::RolledBack)
                    && self.journalled().await
                {
                    return Err(format!("{} left a journal: {r}", r.outcome.as_str()));
                }
                if !journalled_before
                    && matches!(r.outcome, RotationOutcome::InProgressElsewhere | RotationOutcome::AlreadyRotating)
                {
                    return Err(format!("nothing was journalled, yet: {r}"));
                }
            }
            Op::Target(f) => self.target.faults.lock().unwrap().push(*f),
            Op::Store { method, nth, lost_response } => {
                let fault = if *lost_response { Fault::lost_response() } else { Fault::unavailable() };
                self.e.store.add_rule(Rule::on(*method).nth(*nth).fail(fault));
            }
            Op::Rollback => {
                // A rollback that fails — even with its undo on the target
                // failing too — leaves either agreement or its journal. One
                // that succeeds leaves the credential it replaced invalid.
                let replaced = self.current().await;
                if self.e.manager.rollback(&self.p).await.is_ok() && !self.journalled().await {
                    self.replaced_is_gone(&replaced, "a rollback").await?;
                }
            }
            Op::Recover => {
                let _ = self.e.manager.recover(&self.p).await;
            }
            Op::Retire => {
                let _ = self.e.manager.process_retirements().await;
            }
            Op::Later => self.e.clock.advance(GRACE * 2),
        }
        Ok(())
    }

    async fn check(&self) -> Result<(), String> {
        if self.journalled().await {
            return Ok(());
        }
        let (current, accepted) = (self.current().await, self.target.accepted());
        if !accepted.contains(&current) {
            return Err("nothing journalled, but the target does not accept the store's current value".into());
        }
        let retiring = self.retiring().await;
        let other_set = self.other_set().await;
        if let Some(other) =
            accepted.iter().find(|p| **p != current && Some(*p) != retiring.as_ref() && Some(*p) != other_set.as_ref())
        {
            let i = accepted.iter().position(|p| p == other).unwrap_or(0);
            return Err(format!(
                "nothing journalled, but the target still accepts a value that is neither current nor being retired \
                 (accepted #{i} of {}; retiring: {})",
                accepted.len(),
                retiring.is_some()
            ));
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), String> {
        self.e.store.clear_rules();
        self.target.faults.lock().unwrap().clear();
        self.e.clock.advance(Duration::from_secs(3600));
        self.e.manager.recover(&self.p).await.map_err(|e| format!("final recovery: {e}"))?;
        for r in self.e.manager.process_retirements().await {
            if let Some(e) = r.error {
                return Err(format!("final retire pass: {e}"));
            }
        }
        if self.retiring().await.is_some() {
            return Err("the final retire pass left a retire step".into());
        }
        if self.journalled().await {
            return Err("the final recovery left a journal".into());
        }
        self.check().await?;
        // And the secret rotates normally afterwards.
        let last =
            if self.target.kind == Kind::BlueGreen { RotationStrategy::BlueGreen } else { RotationStrategy::Staged };
        let r = self.e.manager.rotate_secret(&self.p, &policy(last), None).await;
        if !r.success() {
            return Err(format!("the rotation after recovery failed: {r}"));
        }
        self.check().await
    }
}

fn run_model(kind: Kind) {
    let cases = std::env::var("REKEY_MODEL_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(300);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let result = runner.run(&proptest::collection::vec(op(kind), 5..30), |ops| {
        runtime.block_on(async {
            let mut w = World::new(kind).await;
            for (step, op) in ops.iter().enumerate() {
                w.apply(op).await.map_err(|e| TestCaseError::fail(format!("step {step} {op:?}: {e}")))?;
                w.check().await.map_err(|e| TestCaseError::fail(format!("after step {step} {op:?}: {e}")))?;
            }
            w.finish().await.map_err(TestCaseError::fail)
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn a_single_password_target_agrees_with_the_store_whenever_nothing_is_journalled() {
    run_model(Kind::Single);
}

#[test]
fn a_target_with_several_passwords_accepts_only_the_current_and_the_retiring_one() {
    run_model(Kind::Multi);
}

#[test]
fn a_blue_green_target_accepts_only_the_current_and_the_other_set() {
    run_model(Kind::BlueGreen);
}
