//! A failure at every step of a dual-write (Redis) and a blue-green
//! (PostgreSQL) rotation rolls back both the store and the target: afterwards
//! the old credential still works and the store's current value is the old
//! one. Target failures come from [`FaultyTarget`] (a real server cannot fail
//! on demand), store failures from `rekey_memory::FaultInjectingStore`, and
//! a verification failure from a verifier that always says no.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use rekey_core::{
    CredentialTarget, DynSecretStore, RotationManager, RotationOutcome, RotationPolicy, RotationStrategy,
    SecretBinding, SecretData, SecretPath, SecretStoreExt, SystemClock, Verifier, VerifyContext, VerifyError,
};
use rekey_memory::{Fault, FaultInjectingStore, MemoryStore, Method, Rule};
use rekey_zero_downtime::{FaultyTarget, TargetOp};

#[derive(Debug)]
struct AlwaysFails;

#[async_trait]
impl Verifier for AlwaysFails {
    fn name(&self) -> &str {
        "always-fails"
    }
    async fn verify(&self, _: VerifyContext<'_>) -> Result<(), VerifyError> {
        Err(VerifyError::Failed("injected verification failure".into()))
    }
}

/// Where a failure is injected.
#[derive(Debug, Clone, Copy)]
enum Step {
    Verifier,
    Target(TargetOp, u64),
    Store(Method),
    /// Verification fails on the target, then so does the undo's revoke.
    UndoFails,
}

const STEPS: &[(&str, Step)] = &[
    ("verifier", Step::Verifier),
    ("apply", Step::Target(TargetOp::Apply, 1)),
    ("verify-test", Step::Target(TargetOp::Test, 1)),
    ("confirm-test", Step::Target(TargetOp::Test, 2)),
    ("journal", Step::Store(Method::WriteMetadata)),
    ("stage", Step::Store(Method::Stage)),
    ("promote", Step::Store(Method::Promote)),
    ("verify-test+revoke", Step::UndoFails),
];

struct Setup {
    store: Arc<FaultInjectingStore<MemoryStore>>,
    path: SecretPath,
    real: Arc<dyn CredentialTarget>,
    binding: SecretBinding,
    policy: RotationPolicy,
    strategy: RotationStrategy,
}

async fn every_step_rolls_back(s: Setup, check_target: impl AsyncFn(&SecretData)) {
    let dyn_store: Arc<DynSecretStore> = s.store.clone();
    let manager = RotationManager::builder(dyn_store)
        .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .verifier(Arc::new(AlwaysFails))
        .build()
        .unwrap();
    for (name, step) in STEPS {
        let before = s.store.current(&s.path).await.unwrap();
        let faulty = Arc::new(FaultyTarget::new(s.real.clone()));
        let mut policy = s.policy.clone();
        match *step {
            Step::Verifier => {
                policy = RotationPolicy::builder("fails")
                    .strategy(s.strategy)
                    .interval(Duration::from_secs(3600))
                    .grace_period(Duration::from_secs(60))
                    .require_verification(true)
                    .verification_tests(["always-fails"])
                    .build()
                    .unwrap();
            }
            Step::Target(op, n) => faulty.fail_nth(op, n),
            Step::UndoFails => {
                faulty.fail_nth(TargetOp::Test, 1);
                faulty.fail_nth(TargetOp::Revoke, 1);
            }
            Step::Store(m) => {
                s.store.add_rule(Rule::on(m).nth(1).fail(Fault::permission_denied()));
            }
        }
        let binding = s.binding.clone().target(faulty.clone());
        let r = manager.rotate(rekey_core::RotationRequest::new(&s.path, &policy).binding(Arc::new(binding))).await;
        s.store.clear_rules();
        assert!(!r.success(), "{name}: the rotation must fail: {r}");
        // A failed stage wrote nothing, so there is nothing to undo.
        // A failed undo is a failure (the journal stays for the next run to
        // clean up), but the old credential works whatever happened.
        let expected = match step {
            Step::Store(Method::Stage | Method::WriteMetadata) | Step::UndoFails => RotationOutcome::Failed,
            _ => RotationOutcome::RolledBack,
        };
        assert_eq!(r.outcome, expected, "{name}: {r}");
        let after = s.store.current(&s.path).await.unwrap();
        assert_eq!(after.meta.id, before.meta.id, "{name}: the store's current version is the old one");
        assert!(after.data.same_as(&before.data), "{name}");
        let pending = s.store.pending(&s.path).await.unwrap();
        if matches!(step, Step::UndoFails) {
            // The candidate could not be revoked on the target, so it stays
            // staged (and journalled) for the next run's recovery to revoke.
            assert!(pending.is_some(), "{name}: the candidate stays for recovery");
        } else {
            assert!(pending.is_none(), "{name}: no candidate left");
        }
        s.real.test(&before.data).await.unwrap_or_else(|e| panic!("{name}: the old credential fails: {e}"));
        if !matches!(step, Step::UndoFails) {
            check_target(&before.data).await;
        }
        println!("ROLLBACK strategy={} step={name} outcome={} old_credential=ok", s.strategy, r.outcome);
    }
    // And a rotation without faults succeeds afterwards, after recovering
    // what the failed undo left.
    let binding = s.binding.clone().target(s.real.clone());
    let r = manager.rotate(rekey_core::RotationRequest::new(&s.path, &s.policy).binding(Arc::new(binding))).await;
    expect_ok(&r);
    assert!(s.store.pending(&s.path).await.unwrap().is_none());
    s.real.test(&s.store.current(&s.path).await.unwrap().data).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_write_on_redis_rolls_back_at_every_step() {
    let Some(url) = rekey_testkit::env::require("REKEY_TEST_REDIS_URL", "Redis") else { return };
    let user = unique("zd_dw_rb");
    let redis = Arc::new(rekey_redis::RedisAclTarget::new(&url, user.clone()).unwrap());
    let store = Arc::new(FaultInjectingStore::new(MemoryStore::new()));
    let path = path(&format!("zd/rollback/{user}"));
    let first = SecretData::text(password());
    redis.apply(&first, None).await.unwrap();
    store.create(&path, first).await.unwrap();
    let policy = RotationPolicy::builder("dw")
        .strategy(RotationStrategy::DualWrite)
        .interval(Duration::from_secs(3600))
        .grace_period(Duration::from_secs(60))
        .auto_rollback(true)
        .build()
        .unwrap();
    let r2 = redis.clone();
    let r3 = redis.clone();
    let setup = Setup {
        store,
        path,
        real: redis,
        binding: SecretBinding::new(),
        policy,
        strategy: RotationStrategy::DualWrite,
    };
    every_step_rolls_back(setup, async move |_| {
        // Exactly the old password: the candidate was removed again.
        assert_eq!(r2.password_count().await.unwrap(), Some(1));
    })
    .await;
    // Old and new (in its grace period); the candidate whose revoke failed
    // was revoked by the recovery.
    assert_eq!(r3.password_count().await.unwrap(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_on_postgres_rolls_back_at_every_step() {
    let Some(url) = rekey_testkit::env::require("REKEY_TEST_PG_URL", "PostgreSQL") else { return };
    let admin = rekey_postgres::PostgresConfig::from_url(&url).unwrap();
    let group = unique("zd_bg_rb");
    let (blue, green) = (format!("{group}_blue"), format!("{group}_green"));
    let pg =
        Arc::new(rekey_postgres::PostgresTarget::alternating(admin, [blue.clone(), green.clone()], group).unwrap());
    pg.ensure_roles().await.unwrap();
    let store = Arc::new(FaultInjectingStore::new(MemoryStore::new()));
    let path = path(&format!("zd/rollback/{blue}"));
    let first = SecretData::fields([("username", blue.clone()), ("password", password())]);
    pg.apply(&first, None).await.unwrap();
    store.create(&path, first).await.unwrap();
    let policy = RotationPolicy::builder("bg")
        .strategy(RotationStrategy::BlueGreen)
        .interval(Duration::from_secs(3600))
        .grace_period(Duration::from_secs(60))
        .auto_rollback(true)
        .build()
        .unwrap();
    let setup = Setup {
        store,
        path,
        real: pg,
        binding: SecretBinding::new().field("password").credential_sets(blue, green),
        policy,
        strategy: RotationStrategy::BlueGreen,
    };
    every_step_rolls_back(setup, async |_| {}).await;
}
