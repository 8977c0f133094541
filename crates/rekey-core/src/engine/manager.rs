//! [`RotationManager`]: the face of the engine — on-demand rotations, bindings and statistics.

use std::fmt;
use std::sync::{Arc, PoisonError};

use secrecy::SecretString;

use super::audit::RotationTrigger;
use super::binding::SecretBinding;
use super::clock::Clock;
use super::error::RotationError;
use super::request::RotationRequest;
use super::result::{RotationOutcome, RotationResult};
use super::shared::{Inner, lock};
use super::stats::{Counters, RotationStatistics};
use crate::policy::{RotationPolicy, RotationStrategy};
use crate::{DynSecretStore, SecretPath};

/// Rotates secrets: on demand ([`rotate_secret`](Self::rotate_secret),
/// [`emergency_rotate`](Self::emergency_rotate)) and on schedule
/// ([`schedule_rotation`](Self::schedule_rotation) +
/// [`process_scheduled_rotations`](Self::process_scheduled_rotations)).
///
/// Cheap to clone (shared state); share one manager between tasks.
///
/// ```
/// use std::sync::Arc;
/// use rekey_core::*;
/// use rekey_memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(MemoryStore::new());
/// let path: SecretPath = "apps/billing/api-key".parse()?;
/// store.create(&path, SecretData::text("first value")).await?;
///
/// let manager = RotationManager::builder(store.clone())
///     .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
///     .build()?;
/// let policy = RotationPolicy::builder("quick").strategy(RotationStrategy::Staged).build()?;
/// let result = manager.rotate_secret(&path, &policy, None).await;
/// assert!(result.success(), "{result}");
/// assert_eq!(store.current(&path).await?.meta.id, result.new_version.unwrap());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RotationManager {
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for RotationManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotationManager")
            .field("store", &self.inner.store)
            .field("clock", &self.inner.clock)
            .field("verifiers", &self.inner.verifiers.keys().collect::<Vec<_>>())
            .field("max_concurrency", &self.inner.max_concurrency)
            .finish_non_exhaustive()
    }
}

impl RotationManager {
    /// The store.
    pub fn store(&self) -> &Arc<DynSecretStore> {
        &self.inner.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The registered verifiers' names, sorted.
    pub fn verifier_names(&self) -> Vec<String> {
        let mut v: Vec<_> = self.inner.verifiers.keys().cloned().collect();
        v.sort();
        v
    }

    /// Checks that this manager can run `policy`: its strategy has an
    /// engine and every verification test it names is registered. Done
    /// again before every rotation, before anything is written.
    pub fn validate_policy(&self, policy: &RotationPolicy) -> Result<(), RotationError> {
        self.inner.validate(policy)
    }

    /// Registers per-secret options for `path` (replacing any).
    pub fn bind(&self, path: SecretPath, binding: SecretBinding) {
        self.inner.bindings.write().unwrap_or_else(PoisonError::into_inner).insert(path, Arc::new(binding));
    }

    /// Removes `path`'s binding; whether there was one.
    pub fn unbind(&self, path: &SecretPath) -> bool {
        self.inner.bindings.write().unwrap_or_else(PoisonError::into_inner).remove(path).is_some()
    }

    /// `path`'s binding, if any.
    pub fn binding(&self, path: &SecretPath) -> Option<Arc<SecretBinding>> {
        self.inner.bindings.read().unwrap_or_else(PoisonError::into_inner).get(path).cloned()
    }

    /// Rotates `path` now under `policy`, with `new_value` or a generated
    /// value. Respects the policy's window (see
    /// [`emergency_rotate`](Self::emergency_rotate) for the bypass).
    pub async fn rotate_secret(
        &self,
        path: &SecretPath,
        policy: &RotationPolicy,
        new_value: Option<SecretString>,
    ) -> RotationResult {
        let mut req = RotationRequest::new(path, policy);
        req.new_value = new_value;
        self.rotate(req).await
    }

    /// Rotates `path` now, whatever its schedule, window or quarantine
    /// says, recording `reason` in every audit event. The replaced
    /// credential is treated as leaked: a dual-write rotation gives it no
    /// grace period and a blue-green one does not leave the replaced set
    /// valid (either is revoked on the target before the rotation's last
    /// write). Uses the secret's scheduled policy, else the manager's default
    /// policy, else fails with [`RotationError::NoPolicy`].
    pub async fn emergency_rotate(&self, path: &SecretPath, reason: impl Into<String>) -> RotationResult {
        let trigger = RotationTrigger::Emergency { reason: reason.into() };
        let scheduled = {
            let t = lock(&self.inner.schedules);
            t.lookup(path.as_str()).and_then(|id| t.slot(id)).and_then(|s| s.policy.clone())
        };
        let Some(policy) = scheduled.or_else(|| self.inner.default_policy.clone()) else {
            let now = self.inner.clock.now();
            let err = RotationError::NoPolicy { path: path.clone() };
            return self.inner.early(path, RotationStrategy::default(), &trigger, now, err, RotationOutcome::Failed);
        };
        self.rotate(RotationRequest::new(path, &policy).trigger(trigger)).await
    }

    /// Runs one rotation request.
    pub async fn rotate(&self, req: RotationRequest<'_>) -> RotationResult {
        let r = self.inner.rotate_inner(req).await;
        self.inner.after_manual(&r);
        r
    }
}

/// Statistics.
impl RotationManager {
    /// A snapshot of the counters.
    pub fn statistics(&self) -> RotationStatistics {
        let (active_schedules, paused_schedules, quarantined) = {
            let t = lock(&self.inner.schedules);
            (t.len().saturating_sub(t.paused()), t.paused(), t.quarantined())
        };
        let active_rotations = lock(&self.inner.active).len();
        let c = lock(&self.inner.stats).clone();
        let total = c.successful + c.failed;
        RotationStatistics {
            total_rotations: total,
            successful_rotations: c.successful,
            failed_rotations: c.failed,
            rollbacks: c.rollbacks,
            success_rate: if total == 0 { 0.0 } else { c.successful as f64 / total as f64 },
            active_schedules,
            paused_schedules,
            active_rotations,
            quarantined,
            conflicts: c.conflicts,
            already_rotating: c.already_rotating,
            outside_window: c.outside_window,
            store_unavailable: c.store_unavailable,
            deferred: c.deferred,
            skipped_quarantined: c.skipped_quarantined,
            p50_duration: c.durations.percentile(50.0),
            p99_duration: c.durations.percentile(99.0),
        }
    }

    /// Zeroes the counters (schedules and running rotations are not
    /// counters and stay).
    pub fn reset_statistics(&self) {
        *lock(&self.inner.stats) = Counters::new();
    }
}
