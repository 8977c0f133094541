//! [`RotationManagerBuilder`]: how a [`RotationManager`] is put together.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::audit::{AuditSink, TracingAuditSink};
use super::clock::Clock;
use super::health::DEFAULT_PROBE_INTERVAL;
use super::manager::RotationManager;
use super::schedule::ScheduleTable;
use super::shared::{HealthState, Inner};
use super::stats::Counters;
use crate::generator::{GenerateSecret, SecretGenerator};
use crate::policy::RotationPolicy;
use crate::{DynSecretStore, RotationId, Verifier};
use rustc_hash::{FxHashMap, FxHashSet};

/// Why a [`RotationManager`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerBuildError {
    /// No clock was given. Core has no timer of its own: pass a
    /// [`SystemClock`](crate::SystemClock) built on your runtime's sleep, or
    /// a [`ManualClock`](crate::ManualClock) in tests.
    #[error("no clock: pass .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d))))) or a ManualClock")]
    MissingClock,
    /// Two verifiers share a name.
    #[error("two verifiers are named {0:?}")]
    DuplicateVerifier(String),
    /// `max_concurrency` is zero.
    #[error("max_concurrency must be at least 1")]
    ZeroConcurrency,
    /// The default policy names an unknown verifier or strategy.
    #[error("default policy: {0}")]
    DefaultPolicy(String),
}

/// Builds a [`RotationManager`]; see [`RotationManager::builder`].
#[must_use]
pub struct RotationManagerBuilder {
    store: Arc<DynSecretStore>,
    clock: Option<Arc<dyn Clock>>,
    generator: Option<Arc<dyn GenerateSecret>>,
    verifiers: Vec<Arc<dyn Verifier>>,
    sinks: Vec<Arc<dyn AuditSink>>,
    max_concurrency: usize,
    stale_after: Option<Duration>,
    default_policy: Option<Arc<RotationPolicy>>,
    probe_interval: Duration,
}

impl fmt::Debug for RotationManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotationManagerBuilder")
            .field("store", &self.store)
            .field("verifiers", &self.verifiers.iter().map(|v| v.name().to_owned()).collect::<Vec<_>>())
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

impl RotationManagerBuilder {
    /// The clock (required): every timestamp and every wait comes from it.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The default generator (default: 32 random characters from the
    /// default charset). A [`SecretBinding`](crate::SecretBinding) can
    /// override it per secret. A value supplied for a rotation instead of a
    /// generated one must meet the constraints of the generator it replaces
    /// ([`GenerateSecret::check`]); with no generator configured, it need
    /// only be non-empty and free of control characters.
    pub fn generator(mut self, generator: Arc<dyn GenerateSecret>) -> Self {
        self.generator = Some(generator);
        self
    }

    /// Registers a verifier under its [`name`](Verifier::name).
    pub fn verifier(mut self, verifier: Arc<dyn Verifier>) -> Self {
        self.verifiers.push(verifier);
        self
    }

    /// Adds an audit sink (default: [`TracingAuditSink`] when none is added).
    pub fn audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// How many scheduled rotations run at once (default 16).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n;
        self
    }

    /// After how long a rotation journal left by another process counts as
    /// crashed. Default: per policy, `2 × verification_timeout × (tests + 1)
    /// + 2 × max_backoff + 60 s`.
    pub fn stale_rotation_after(mut self, limit: Duration) -> Self {
        self.stale_after = Some(limit);
        self
    }

    /// The policy [`emergency_rotate`](RotationManager::emergency_rotate)
    /// uses for a secret that has no schedule.
    pub fn default_policy(mut self, policy: impl Into<Arc<RotationPolicy>>) -> Self {
        self.default_policy = Some(policy.into());
        self
    }

    /// While the store is unavailable (unreachable, sealed, throttled), how
    /// often the scheduler probes it with one rotation instead of running
    /// every due one (default 5 s). Due secrets stay due and all run in the
    /// pass where the store answers again.
    pub fn store_probe_interval(mut self, every: Duration) -> Self {
        self.probe_interval = every;
        self
    }

    /// Builds the manager.
    pub fn build(self) -> Result<RotationManager, ManagerBuildError> {
        let clock = self.clock.ok_or(ManagerBuildError::MissingClock)?;
        if self.max_concurrency == 0 {
            return Err(ManagerBuildError::ZeroConcurrency);
        }
        let mut verifiers = HashMap::new();
        for v in self.verifiers {
            let name = v.name().to_owned();
            if verifiers.insert(name.clone(), v).is_some() {
                return Err(ManagerBuildError::DuplicateVerifier(name));
            }
        }
        let generator: Arc<dyn GenerateSecret> = match self.generator {
            Some(g) => g,
            None => match SecretGenerator::random(32) {
                Ok(g) => Arc::new(Unconfigured(g)),
                Err(_) => Arc::new(Unconfigured(SecretGenerator::uuid())),
            },
        };
        let sinks =
            if self.sinks.is_empty() { vec![Arc::new(TracingAuditSink) as Arc<dyn AuditSink>] } else { self.sinks };
        let inner = Inner {
            store: self.store,
            clock,
            generator,
            verifiers,
            sinks,
            max_concurrency: self.max_concurrency,
            stale_after: self.stale_after,
            default_policy: None,
            instance: RotationId::new().to_string(),
            active: Mutex::new(FxHashSet::default()),
            bindings: RwLock::new(FxHashMap::default()),
            schedules: Mutex::new(ScheduleTable::default()),
            stats: Mutex::new(Counters::new()),
            retiring: Mutex::new(HashMap::new()),
            health: Mutex::new(HealthState::default()),
            probe_interval: self.probe_interval,
        };
        let mut inner = inner;
        if let Some(p) = self.default_policy {
            inner.validate(&p).map_err(|e| ManagerBuildError::DefaultPolicy(e.to_string()))?;
            inner.default_policy = Some(p);
        }
        Ok(RotationManager { inner: Arc::new(inner) })
    }
}

impl RotationManager {
    /// Starts building a manager over `store`.
    pub fn builder(store: Arc<DynSecretStore>) -> RotationManagerBuilder {
        RotationManagerBuilder {
            store,
            clock: None,
            generator: None,
            verifiers: Vec::new(),
            sinks: Vec::new(),
            max_concurrency: 16,
            stale_after: None,
            default_policy: None,
            probe_interval: DEFAULT_PROBE_INTERVAL,
        }
    }
}

/// The generator used when none is configured (32 random characters). No
/// shape was asked for, so a value supplied for a rotation is only checked
/// to be non-empty and free of control characters (the trait's default
/// [`check`](GenerateSecret::check)).
#[derive(Debug)]
struct Unconfigured(SecretGenerator);

impl GenerateSecret for Unconfigured {
    fn generate(&self) -> Result<secrecy::SecretString, crate::generator::GeneratorError> {
        self.0.generate()
    }
}
