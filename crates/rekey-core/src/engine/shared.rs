//! The state every clone of a [`RotationManager`](super::RotationManager) shares, and the in-process guard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::audit::AuditSink;
use super::binding::SecretBinding;
use super::clock::Clock;
use super::error::RotationError;
use super::schedule::ScheduleTable;
use super::stats::Counters;
use super::strategy;
use crate::generator::GenerateSecret;
use crate::policy::RotationPolicy;
use crate::{DynSecretStore, RotationId, SecretPath, Verifier};
use rustc_hash::{FxHashMap, FxHashSet};

pub(super) struct Inner {
    pub(super) store: Arc<DynSecretStore>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) generator: Arc<dyn GenerateSecret>,
    pub(super) verifiers: HashMap<String, Arc<dyn Verifier>>,
    pub(super) sinks: Vec<Arc<dyn AuditSink>>,
    pub(super) max_concurrency: usize,
    pub(super) stale_after: Option<Duration>,
    pub(super) default_policy: Option<Arc<RotationPolicy>>,
    /// This manager's id in rotation journals.
    pub(super) instance: String,
    pub(super) active: Mutex<FxHashSet<SecretPath>>,
    pub(super) bindings: RwLock<FxHashMap<SecretPath, Arc<SecretBinding>>>,
    pub(super) schedules: Mutex<ScheduleTable>,
    pub(super) stats: Mutex<Counters>,
    /// Secrets that may have a dual-write retire step pending, with the
    /// target of the rotation that recorded it (the registered binding's
    /// target is used when there is none).
    pub(super) retiring: Mutex<HashMap<SecretPath, Retiring>>,
    /// Whether the store answers (see `health`).
    pub(super) health: Mutex<HealthState>,
    /// How often an unavailable store is probed.
    pub(super) probe_interval: Duration,
}

/// A secret that may have a dual-write retire step pending.
#[derive(Clone, Default)]
pub(super) struct Retiring {
    /// The target of the rotation that recorded it.
    pub(super) target: Option<Arc<dyn crate::CredentialTarget>>,
    /// Its deadline, when known.
    pub(super) deadline: Option<DateTime<Utc>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// RAII in-process guard: removes the path from the active set on drop (also
/// when the rotation future is dropped mid-way).
pub(super) struct Guard<'a> {
    pub(super) inner: &'a Inner,
    pub(super) path: SecretPath,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        lock(&self.inner.active).remove(&self.path);
    }
}

pub(super) fn fresh_rotation_id() -> RotationId {
    let bytes: [u8; 16] = rand::random();
    RotationId::from_uuid(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

impl Inner {
    pub(super) fn validate(&self, policy: &RotationPolicy) -> Result<(), RotationError> {
        if !strategy::supported(policy.strategy()) {
            return Err(RotationError::StrategyNotSupported { strategy: policy.strategy() });
        }
        for name in policy.verification_tests() {
            if !self.verifiers.contains_key(name) {
                return Err(RotationError::UnknownVerifier { policy: policy.name().to_owned(), name: name.clone() });
            }
        }
        Ok(())
    }

    /// The policy for work on `path` outside a rotation request (recovery,
    /// retirement): its schedule's, else the default policy, else the
    /// defaults.
    pub(super) fn policy_for(&self, path: &SecretPath) -> Arc<RotationPolicy> {
        let scheduled = {
            let t = lock(&self.schedules);
            t.lookup(path.as_str()).and_then(|id| t.slot(id)).and_then(|s| s.policy.clone())
        };
        scheduled.or_else(|| self.default_policy.clone()).unwrap_or_else(|| {
            Arc::new(
                RotationPolicy::builder("default").build().unwrap_or_else(|_| unreachable!("the defaults are valid")),
            )
        })
    }

    pub(super) fn stale_limit(&self, policy: &RotationPolicy) -> Duration {
        if let Some(d) = self.stale_after {
            return d;
        }
        let tests = u32::try_from(policy.verification_tests().len()).unwrap_or(u32::MAX).saturating_add(1);
        let verify = policy.verification_timeout().saturating_mul(tests);
        verify
            .saturating_mul(2)
            .saturating_add(policy.retry().max_backoff.saturating_mul(2))
            .saturating_add(Duration::from_secs(60))
    }

    pub(super) fn try_guard(&self, path: &SecretPath) -> Option<Guard<'_>> {
        let mut active = lock(&self.active);
        if active.contains(path) {
            return None;
        }
        active.insert(path.clone());
        Some(Guard { inner: self, path: path.clone() })
    }
}

/// The engine's bookkeeping behind [`StoreHealth`](super::StoreHealth).
#[derive(Debug, Default)]
pub(super) struct HealthState {
    pub(super) down_since: Option<DateTime<Utc>>,
    pub(super) last_error: Option<String>,
    pub(super) checked_at: Option<DateTime<Utc>>,
    /// While down: when the scheduler may probe again.
    pub(super) next_probe: Option<DateTime<Utc>>,
}
