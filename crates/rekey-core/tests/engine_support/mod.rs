//! Shared set-up for the engine tests: a fault-injecting in-memory store, a
//! manual clock, an in-memory audit sink and a few verifiers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rekey_core::*;
use rekey_memory::{FaultInjectingStore, MemoryStore};

pub type Store = FaultInjectingStore<MemoryStore>;

pub fn t0() -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse().unwrap()
}

pub fn path(p: &str) -> SecretPath {
    p.parse().unwrap()
}

pub fn text(d: &SecretData) -> String {
    d.as_text().map(|s| s.expose_secret().to_owned()).unwrap_or_default()
}

pub struct Env {
    pub store: Arc<Store>,
    pub clock: ManualClock,
    pub audit: MemoryAuditSink,
    pub manager: RotationManager,
}

impl Env {
    pub async fn current(&self, p: &SecretPath) -> SecretVersion {
        self.store.current(p).await.unwrap()
    }

    pub async fn current_text(&self, p: &SecretPath) -> String {
        text(&self.current(p).await.data)
    }

    pub async fn seed(&self, p: &SecretPath, value: &str) -> VersionMeta {
        self.store.create(p, SecretData::text(value)).await.unwrap()
    }

    pub async fn pending(&self, p: &SecretPath) -> Option<SecretVersion> {
        self.store.pending(p).await.unwrap()
    }
}

/// A store + clock + audit shared by several managers.
pub fn shared_store(clock: &ManualClock) -> Arc<Store> {
    let c = clock.clone();
    Arc::new(FaultInjectingStore::new(MemoryStore::new().with_clock(move || c.now())))
}

pub fn manager_on(
    store: Arc<Store>,
    clock: &ManualClock,
    audit: &MemoryAuditSink,
    configure: impl FnOnce(RotationManagerBuilder) -> RotationManagerBuilder,
) -> RotationManager {
    let b = RotationManager::builder(store)
        .clock(Arc::new(clock.clone()))
        .audit_sink(Arc::new(audit.clone()))
        .verifier(Arc::new(Pass("api_test")))
        .verifier(Arc::new(Pass("connectivity_test")))
        .verifier(Arc::new(Fail("always_fails")))
        .verifier(Arc::new(Hang("hangs")));
    configure(b).build().unwrap()
}

pub fn env() -> Env {
    env_with(|b| b)
}

pub fn env_with(configure: impl FnOnce(RotationManagerBuilder) -> RotationManagerBuilder) -> Env {
    let clock = ManualClock::new(t0());
    let store = shared_store(&clock);
    let audit = MemoryAuditSink::new();
    let manager = manager_on(store.clone(), &clock, &audit, configure);
    Env { store, clock, audit, manager }
}

pub fn policy(strategy: RotationStrategy) -> RotationPolicy {
    RotationPolicy::builder(strategy.as_str()).strategy(strategy).manual().build().unwrap()
}

pub fn verified(strategy: RotationStrategy, tests: &[&str]) -> RotationPolicy {
    RotationPolicy::builder("verified")
        .strategy(strategy)
        .manual()
        .require_verification(true)
        .verification_tests(tests.iter().copied())
        .auto_rollback(true)
        .build()
        .unwrap()
}

pub fn every(days: u64, strategy: RotationStrategy) -> RotationPolicy {
    RotationPolicy::builder(format!("every-{days}d"))
        .strategy(strategy)
        .interval(Duration::from_secs(days * 86_400))
        .build()
        .unwrap()
}

/// Always passes.
#[derive(Debug)]
pub struct Pass(pub &'static str);

#[async_trait]
impl Verifier for Pass {
    fn name(&self) -> &str {
        self.0
    }
    async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        Ok(())
    }
}

/// Always fails.
#[derive(Debug)]
pub struct Fail(pub &'static str);

#[async_trait]
impl Verifier for Fail {
    fn name(&self) -> &str {
        self.0
    }
    async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        Err(VerifyError::Failed("the candidate was rejected".into()))
    }
}

/// Never answers.
#[derive(Debug)]
pub struct Hang(pub &'static str);

#[async_trait]
impl Verifier for Hang {
    fn name(&self) -> &str {
        self.0
    }
    async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        futures::future::pending::<()>().await;
        Ok(())
    }
}

/// Records the candidates it saw and passes.
#[derive(Debug, Default)]
pub struct Recorder {
    pub name: &'static str,
    pub seen: std::sync::Mutex<Vec<String>>,
    pub calls: AtomicUsize,
}

#[async_trait]
impl Verifier for Recorder {
    fn name(&self) -> &str {
        self.name
    }
    async fn verify(&self, ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let v = ctx.candidate.get(ctx.field).map(|s| s.expose_secret().to_owned()).unwrap_or_default();
        self.seen.lock().unwrap().push(v);
        Ok(())
    }
}

/// Fails while its switch is on (a credential the target rejects until an
/// operator fixes it).
#[derive(Debug)]
pub struct Switch {
    pub name: &'static str,
    pub failing: Arc<std::sync::atomic::AtomicBool>,
}

impl Switch {
    pub fn new(name: &'static str) -> (Arc<Self>, Arc<std::sync::atomic::AtomicBool>) {
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        (Arc::new(Self { name, failing: failing.clone() }), failing)
    }
}

#[async_trait]
impl Verifier for Switch {
    fn name(&self) -> &str {
        self.name
    }
    async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(VerifyError::Failed("the candidate was rejected".into()))
        } else {
            Ok(())
        }
    }
}
