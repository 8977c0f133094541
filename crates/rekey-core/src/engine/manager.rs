//! [`RotationManager`]: runs rotations, schedules and statistics.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::future::BoxFuture;
use secrecy::SecretString;

use super::audit::{AuditError, AuditEvent, AuditEventKind, AuditSink, RotationTrigger, TracingAuditSink};
use super::binding::SecretBinding;
use super::clock::{Clock, timeout};
use super::consumers::{
    PendingRetire, RetireDecision, RetireReason, RetireRecord, RetireResult, pending_retire_decision, retire_decision,
};
use super::error::{RotationError, RotationStep};
use super::fxhash::{FxHashMap, FxHashSet};
use super::journal::{RecoveryDecision, RotationJournal, recovery_decision};
use super::machine::{ActionOutcome, RotationAction, RotationState, RotationVerdict, next_action};
use super::result::{RotationOutcome, RotationResult};
use super::schedule::{self, Job, PAUSED, Quarantine, RUNNING, ScheduleInfo, ScheduleTable};
use super::stats::{Counters, RotationStatistics};
use super::strategy;
use crate::generator::{GenerateSecret, SecretGenerator};
use crate::policy::{RotationPolicy, RotationStrategy, jitter_key};
use crate::{
    DynSecretStore, Metadata, PutOptions, RotationId, SecretData, SecretPath, SecretVersion, StoreError, TargetError,
    Verifier, VerifyContext, VerifyError, VersionId, VersionMeta, VersionSelector,
};

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
    /// default charset). A [`SecretBinding`] can override it per secret.
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
                Ok(g) => Arc::new(g),
                Err(_) => Arc::new(SecretGenerator::uuid()),
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
        };
        let mut inner = inner;
        if let Some(p) = self.default_policy {
            inner.validate(&p).map_err(|e| ManagerBuildError::DefaultPolicy(e.to_string()))?;
            inner.default_policy = Some(p);
        }
        Ok(RotationManager { inner: Arc::new(inner) })
    }
}

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
    inner: Arc<Inner>,
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

struct Inner {
    store: Arc<DynSecretStore>,
    clock: Arc<dyn Clock>,
    generator: Arc<dyn GenerateSecret>,
    verifiers: HashMap<String, Arc<dyn Verifier>>,
    sinks: Vec<Arc<dyn AuditSink>>,
    max_concurrency: usize,
    stale_after: Option<Duration>,
    default_policy: Option<Arc<RotationPolicy>>,
    /// This manager's id in rotation journals.
    instance: String,
    active: Mutex<FxHashSet<SecretPath>>,
    bindings: RwLock<FxHashMap<SecretPath, Arc<SecretBinding>>>,
    schedules: Mutex<ScheduleTable>,
    stats: Mutex<Counters>,
    /// Secrets that may have a dual-write retire step pending, with the
    /// target of the rotation that recorded it (the registered binding's
    /// target is used when there is none).
    retiring: Mutex<HashMap<SecretPath, Retiring>>,
}

/// A secret that may have a dual-write retire step pending.
#[derive(Clone, Default)]
struct Retiring {
    /// The target of the rotation that recorded it.
    target: Option<Arc<dyn crate::CredentialTarget>>,
    /// Its deadline, when known.
    deadline: Option<DateTime<Utc>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One rotation to run; see [`RotationManager::rotate`].
#[derive(Debug)]
#[must_use]
pub struct RotationRequest<'a> {
    path: &'a SecretPath,
    policy: &'a RotationPolicy,
    new_value: Option<SecretString>,
    trigger: RotationTrigger,
    binding: Option<Arc<SecretBinding>>,
    /// Scheduled runs: skip if the current version is newer than this.
    rotated_before_us: Option<i64>,
}

impl<'a> RotationRequest<'a> {
    /// A manual rotation of `path` under `policy`, with a generated value.
    pub fn new(path: &'a SecretPath, policy: &'a RotationPolicy) -> Self {
        Self { path, policy, new_value: None, trigger: RotationTrigger::Manual, binding: None, rotated_before_us: None }
    }

    /// Use this value instead of generating one (the whole value, or the
    /// binding's field).
    pub fn value(mut self, value: SecretString) -> Self {
        self.new_value = Some(value);
        self
    }

    /// What started the rotation. An emergency trigger ignores the policy's
    /// window.
    pub fn trigger(mut self, trigger: RotationTrigger) -> Self {
        self.trigger = trigger;
        self
    }

    /// Per-secret options for this rotation (instead of the binding
    /// registered with [`RotationManager::bind`]).
    pub fn binding(mut self, binding: Arc<SecretBinding>) -> Self {
        self.binding = Some(binding);
        self
    }
}

/// The per-rotation bookkeeping of the executor.
struct Run<'a> {
    id: RotationId,
    path: &'a SecretPath,
    policy: &'a RotationPolicy,
    trigger: &'a RotationTrigger,
    started: DateTime<Utc>,
    old_version: Option<VersionId>,
    new_version: Option<VersionId>,
    attempts: u32,
    retries: u32,
    verification_passed: bool,
    error: Option<RotationError>,
    undo_error: Option<RotationError>,
    current_created_at: Option<DateTime<Utc>>,
}

/// RAII in-process guard: removes the path from the active set on drop (also
/// when the rotation future is dropped mid-way).
struct Guard<'a> {
    inner: &'a Inner,
    path: SecretPath,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        lock(&self.inner.active).remove(&self.path);
    }
}

fn fresh_rotation_id() -> RotationId {
    let bytes: [u8; 16] = rand::random();
    RotationId::from_uuid(uuid::Builder::from_random_bytes(bytes).into_uuid())
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
        }
    }

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
    /// says, recording `reason` in every audit event. Uses the secret's
    /// scheduled policy, else the manager's default policy, else fails with
    /// [`RotationError::NoPolicy`].
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

/// Scheduling.
impl RotationManager {
    /// Schedules automatic rotation of `path` under `policy` (replacing an
    /// existing schedule, and clearing its quarantine). The last rotation
    /// time is the creation time of the secret's current version in the
    /// store, so a restarted process — or another process — computes the
    /// same next due time.
    ///
    /// Pass an `Arc<RotationPolicy>` to share one policy between many
    /// schedules.
    pub async fn schedule_rotation(
        &self,
        path: &SecretPath,
        policy: impl Into<Arc<RotationPolicy>>,
    ) -> Result<ScheduleInfo, RotationError> {
        let policy = policy.into();
        self.inner.validate(&policy)?;
        if policy.strategy() == RotationStrategy::DualWrite {
            // A retire step another process left behind is this one's now.
            lock(&self.inner.retiring).entry(path.clone()).or_default();
        }
        let retry_run = &mut self.inner.detached_run(path, &policy);
        let current = self
            .inner
            .retry_store(retry_run, RotationStep::Prepare, || self.inner.store.read(path, &VersionSelector::Current))
            .await
            .map_err(|e| RotationError::store(RotationStep::Prepare, e))?;
        let last = current.meta.created_at;
        let next = policy.next_due(last, jitter_key(path));
        let info = {
            let mut t = lock(&self.inner.schedules);
            let id = t.upsert(path, policy, schedule::to_us(last));
            t.set_next(id, next);
            t.info(id)
        };
        let mut e = AuditEvent::new(self.inner.clock.now(), AuditEventKind::Scheduled, path.clone());
        e.detail = Some(match next {
            Some(t) => format!("next rotation {}", t.to_rfc3339()),
            None => "manual policy: no automatic rotation".to_owned(),
        });
        self.inner.emit_with(|| e);
        info.ok_or_else(|| RotationError::NotScheduled { path: path.clone() })
    }

    /// Removes `path`'s schedule; whether there was one.
    pub fn unschedule_rotation(&self, path: &SecretPath) -> bool {
        let removed = lock(&self.inner.schedules).remove(path.as_str());
        if removed {
            self.inner.emit_with(|| AuditEvent::new(self.inner.clock.now(), AuditEventKind::Unscheduled, path.clone()));
        }
        removed
    }

    /// `path`'s schedule.
    pub fn get_schedule(&self, path: &SecretPath) -> Option<ScheduleInfo> {
        let t = lock(&self.inner.schedules);
        t.lookup(path.as_str()).and_then(|id| t.info(id))
    }

    /// Every schedule, sorted by path.
    pub fn list_schedules(&self) -> Vec<ScheduleInfo> {
        let t = lock(&self.inner.schedules);
        let mut v: Vec<_> = t.ids().filter_map(|id| t.info(id)).collect();
        drop(t);
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// The earliest time a schedule is due, or a known dual-write retire
    /// step (for a worker loop: sleep until then, then call
    /// [`process_scheduled_rotations`](Self::process_scheduled_rotations)).
    /// A retire step can become due earlier, when every consumer
    /// acknowledges the new version: wake up regularly too.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let rotation = lock(&self.inner.schedules).next_due().map(schedule::from_us);
        let retire = lock(&self.inner.retiring).values().filter_map(|r| r.deadline).min();
        match (rotation, retire) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Stops automatic rotation of `path` until [`resume`](Self::resume).
    pub fn pause_schedule(&self, path: &SecretPath) -> Result<(), RotationError> {
        let mut t = lock(&self.inner.schedules);
        let id = t.lookup(path.as_str()).ok_or_else(|| RotationError::NotScheduled { path: path.clone() })?;
        t.set_flag(id, PAUSED, true);
        Ok(())
    }

    /// Turns automatic rotation of `path` back on after a quarantine or a
    /// pause: failures are forgotten and the next due time is recomputed
    /// from the last rotation (so an overdue secret is due at once).
    pub fn resume(&self, path: &SecretPath) -> Result<ScheduleInfo, RotationError> {
        let (info, was_quarantined) = {
            let mut t = lock(&self.inner.schedules);
            let id = t.lookup(path.as_str()).ok_or_else(|| RotationError::NotScheduled { path: path.clone() })?;
            let was = t.unquarantine(id);
            t.set_flag(id, PAUSED, false);
            t.set_failures(id, 0);
            let next = t.slot(id).and_then(|s| {
                let policy = s.policy.clone()?;
                policy.next_due(schedule::from_us(s.last_us), jitter_key(path))
            });
            t.set_next(id, next);
            (t.info(id), was)
        };
        if was_quarantined {
            self.inner.emit_with(|| AuditEvent::new(self.inner.clock.now(), AuditEventKind::Resumed, path.clone()));
        }
        info.ok_or_else(|| RotationError::NotScheduled { path: path.clone() })
    }

    /// Runs every due rotation — at most `max_concurrency` at once, one per
    /// secret — and returns their results (in completion order).
    ///
    /// Before rotating, each due secret's current version is re-read: if it
    /// is newer than the schedule's record (another process rotated it), the
    /// schedule just moves on and no result is returned for it. This is how
    /// several processes sharing a store rotate each due secret once.
    /// Failures count towards quarantine (`policy.quarantine_after()` in a
    /// row); a failed secret is retried after the policy's backoff.
    ///
    /// Runs the dual-write retire pass first
    /// ([`process_retirements`](Self::process_retirements)): a worker loop that
    /// calls this at least every minute retires dual-write credentials at most
    /// a minute after they are due.
    ///
    /// A worker loop, waiting on the manager's clock:
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn worker(manager: rekey_core::RotationManager) {
    /// loop {
    ///     for r in manager.process_scheduled_rotations().await {
    ///         if r.success() {
    ///             println!("rotated {}", r.path);
    ///         } else {
    ///             println!("{r}");
    ///         }
    ///     }
    ///     // Until the next due time, but look again at least every minute
    ///     // (schedules added meanwhile may be due sooner).
    ///     let until_due = manager
    ///         .next_due()
    ///         .and_then(|t| (t - manager.clock().now()).to_std().ok())
    ///         .unwrap_or(Duration::MAX);
    ///     manager.clock().sleep(until_due.min(Duration::from_secs(60))).await;
    /// }
    /// # }
    /// ```
    pub async fn process_scheduled_rotations(&self) -> Vec<RotationResult> {
        self.process_scheduled_rotations_until(futures::future::pending()).await
    }

    /// [`process_scheduled_rotations`](Self::process_scheduled_rotations)
    /// that starts no new rotation once `stop` completes (a shutdown
    /// signal): rotations already running finish, and due secrets not
    /// started yet stay in the queue, due now, for the next pass or the next
    /// process. Returns the results of the rotations that ran.
    ///
    /// ```
    /// # use rekey_core::RotationManager;
    /// # async fn demo(manager: &RotationManager, shutdown: tokio::sync::watch::Receiver<bool>) {
    /// let mut shutdown = shutdown.clone();
    /// let stop = async move {
    ///     let _ = shutdown.wait_for(|stopping| *stopping).await;
    /// };
    /// let results = manager.process_scheduled_rotations_until(stop).await;
    /// # let _ = results; }
    /// ```
    pub async fn process_scheduled_rotations_until<F>(&self, stop: F) -> Vec<RotationResult>
    where
        F: Future<Output = ()> + Send,
    {
        self.process_retirements().await;
        let now = self.inner.clock.now();
        let jobs = lock(&self.inner.schedules).take_due(schedule::to_us(now));
        if jobs.is_empty() {
            return Vec::new();
        }
        let inner = &*self.inner;
        // Each job is guarded from here on: if this future is dropped (a
        // shutdown), jobs not finished are put back in the queue, due now.
        // The guards are mapped by a named function, not a closure: a closure
        // over `JobGuard<'_>` trips rustc's higher-ranked lifetime inference
        // and the future is then not `Send` enough for `tokio::spawn` (the
        // facade's tests/spawn.rs checks this). Futures are created lazily,
        // as `buffer_unordered` has room.
        let jobs: Vec<JobGuard<'_>> = jobs.into_iter().map(|job| JobGuard { inner, job: Some(job) }).collect();
        futures::stream::iter(jobs)
            .take_until(stop)
            .map(run_guarded)
            .buffer_unordered(inner.max_concurrency)
            .filter_map(futures::future::ready)
            .collect()
            .await
    }
}

/// Dual-write retirement.
impl RotationManager {
    /// The retire pass: for every secret with a pending dual-write retire
    /// step (recorded by a rotation of this manager, or found in the
    /// metadata of a secret scheduled here), revokes the old credential on
    /// the target once the grace deadline has passed or every registered
    /// consumer has acknowledged the new version, then removes the record.
    ///
    /// Crash-safe and idempotent: the record stays until the revocation is
    /// done, revoking twice is harmless, and a record replaced meanwhile is
    /// left alone. A secret being rotated by this process is skipped (the
    /// rotation retires first). The target is the one the rotation used,
    /// else the binding registered for the secret; without a target the
    /// record is just removed. [`process_scheduled_rotations`](Self::process_scheduled_rotations)
    /// runs this pass first; every retirement is an audit event
    /// ([`Retired`](AuditEventKind::Retired) or
    /// [`RetireFailed`](AuditEventKind::RetireFailed)).
    pub async fn process_retirements(&self) -> Vec<RetireResult> {
        let paths: Vec<_> = lock(&self.inner.retiring).iter().map(|(p, r)| (p.clone(), r.target.clone())).collect();
        let inner = &*self.inner;
        // Boxed for the same reason as in `process_scheduled_rotations`.
        let retires: Vec<BoxFuture<'_, Option<RetireResult>>> = paths
            .into_iter()
            .map(|(path, target)| Box::pin(async move { inner.retire_one(&path, target).await }) as BoxFuture<'_, _>)
            .collect();
        futures::stream::iter(retires)
            .buffer_unordered(inner.max_concurrency)
            .filter_map(futures::future::ready)
            .collect()
            .await
    }
}

/// Statistics.
impl RotationManager {
    /// A snapshot of the counters.
    pub fn statistics(&self) -> RotationStatistics {
        let (active_schedules, quarantined) = {
            let t = lock(&self.inner.schedules);
            (t.len(), t.quarantined())
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
            active_rotations,
            quarantined,
            conflicts: c.conflicts,
            already_rotating: c.already_rotating,
            outside_window: c.outside_window,
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

impl Inner {
    fn validate(&self, policy: &RotationPolicy) -> Result<(), RotationError> {
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

    fn stale_limit(&self, policy: &RotationPolicy) -> Duration {
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

    fn any_sink(&self) -> bool {
        self.sinks.iter().any(|s| s.enabled())
    }

    fn emit_with(&self, make: impl FnOnce() -> AuditEvent) {
        if self.any_sink() {
            let e = make();
            for s in &self.sinks {
                s.record(&e);
            }
        }
    }

    fn event(&self, run: &Run<'_>, kind: AuditEventKind) -> Option<AuditEvent> {
        if !self.any_sink() {
            return None;
        }
        let now = self.clock.now();
        let mut e = AuditEvent::new(now, kind, run.path.clone());
        e.rotation_id = Some(run.id);
        e.strategy = Some(run.policy.strategy());
        e.trigger = Some(run.trigger.clone());
        e.old_version = run.old_version.clone();
        e.new_version = run.new_version.clone();
        e.elapsed = now.signed_duration_since(run.started).to_std().ok();
        Some(e)
    }

    fn emit(&self, run: &Run<'_>, kind: AuditEventKind, step: Option<RotationStep>, error: Option<&RotationError>) {
        if let Some(mut e) = self.event(run, kind) {
            e.step = step;
            e.error = error.map(|x| AuditError { kind: x.kind().to_owned(), message: x.to_string() });
            for s in &self.sinks {
                s.record(&e);
            }
        }
    }

    fn emit_detail(&self, run: &Run<'_>, kind: AuditEventKind, step: Option<RotationStep>, detail: String) {
        if let Some(mut e) = self.event(run, kind) {
            e.step = step;
            e.detail = Some(detail);
            for s in &self.sinks {
                s.record(&e);
            }
        }
    }

    fn detached_run<'a>(&self, path: &'a SecretPath, policy: &'a RotationPolicy) -> Run<'a> {
        static MANUAL: RotationTrigger = RotationTrigger::Manual;
        Run {
            id: fresh_rotation_id(),
            path,
            policy,
            trigger: &MANUAL,
            started: self.clock.now(),
            old_version: None,
            new_version: None,
            attempts: 0,
            retries: 0,
            verification_passed: false,
            error: None,
            undo_error: None,
            current_created_at: None,
        }
    }

    /// A result for a rotation that stopped before doing anything.
    fn early(
        &self,
        path: &SecretPath,
        strategy: RotationStrategy,
        trigger: &RotationTrigger,
        started: DateTime<Utc>,
        error: RotationError,
        outcome: RotationOutcome,
    ) -> RotationResult {
        let completed = self.clock.now();
        let r = RotationResult {
            rotation_id: fresh_rotation_id(),
            path: path.clone(),
            strategy,
            trigger: trigger.clone(),
            outcome,
            status: outcome.status(),
            old_version: None,
            new_version: None,
            started_at: started,
            completed_at: completed,
            duration: completed.signed_duration_since(started).to_std().unwrap_or_default(),
            verification_passed: false,
            attempts: 0,
            retries: 0,
            rollback_performed: false,
            error: Some(error),
            current_created_at: None,
            up_to_date: false,
        };
        let kind = match outcome {
            RotationOutcome::AlreadyRotating => AuditEventKind::AlreadyRotating,
            RotationOutcome::OutsideWindow => AuditEventKind::OutsideWindow,
            _ => AuditEventKind::Failed,
        };
        self.emit_with(|| {
            let mut e = AuditEvent::new(completed, kind, path.clone());
            e.rotation_id = Some(r.rotation_id);
            e.strategy = Some(strategy);
            e.trigger = Some(trigger.clone());
            e.error = r.error.as_ref().map(|x| AuditError { kind: x.kind().to_owned(), message: x.to_string() });
            e
        });
        r
    }

    fn try_guard(&self, path: &SecretPath) -> Option<Guard<'_>> {
        let mut active = lock(&self.active);
        if active.contains(path) {
            return None;
        }
        active.insert(path.clone());
        Some(Guard { inner: self, path: path.clone() })
    }

    /// Runs `call` until it succeeds, fails for good, or the policy's
    /// retries are spent; retryable errors wait the policy's backoff (full
    /// jitter, at least a rate limit's `retry_after`) on the clock.
    async fn retry_store<T, F, Fut>(&self, run: &mut Run<'_>, step: RotationStep, mut call: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let retry = run.policy.retry();
        let mut attempt = 0u32;
        loop {
            run.attempts = run.attempts.saturating_add(1);
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt < retry.max_retries => {
                    attempt += 1;
                    run.retries = run.retries.saturating_add(1);
                    let mut delay = retry.backoff(attempt, rand::random::<f64>());
                    if let StoreError::RateLimited { retry_after: Some(after), .. } = &e {
                        delay = delay.max(*after);
                    }
                    if let Some(mut ev) = self.event(run, AuditEventKind::Retrying) {
                        ev.step = Some(step);
                        ev.attempt = Some(attempt);
                        ev.error = Some(AuditError { kind: e.kind().to_owned(), message: e.to_string() });
                        ev.detail = Some(format!("retrying in {} ms", delay.as_millis()));
                        for s in &self.sinks {
                            s.record(&ev);
                        }
                    }
                    self.clock.sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Like [`retry_store`](Self::retry_store) for a credential target.
    async fn retry_target<F, Fut>(&self, run: &mut Run<'_>, step: RotationStep, mut call: F) -> Result<(), TargetError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), TargetError>>,
    {
        let retry = run.policy.retry();
        let mut attempt = 0u32;
        loop {
            run.attempts = run.attempts.saturating_add(1);
            match call().await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() && attempt < retry.max_retries => {
                    attempt += 1;
                    run.retries = run.retries.saturating_add(1);
                    let delay = retry.backoff(attempt, rand::random::<f64>());
                    if let Some(mut ev) = self.event(run, AuditEventKind::Retrying) {
                        ev.step = Some(step);
                        ev.attempt = Some(attempt);
                        ev.error = Some(AuditError { kind: "target".to_owned(), message: e.to_string() });
                        for s in &self.sinks {
                            s.record(&ev);
                        }
                    }
                    self.clock.sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the current version (with retries), to settle what an
    /// ambiguous or conflicting write did.
    async fn reread_current(&self, run: &mut Run<'_>, step: RotationStep) -> Option<SecretVersion> {
        let path = run.path;
        self.retry_store(run, step, || self.store.read(path, &VersionSelector::Current)).await.ok()
    }

    async fn rotate_inner(&self, req: RotationRequest<'_>) -> RotationResult {
        let RotationRequest { path, policy, new_value, trigger, binding, rotated_before_us } = req;
        let started = self.clock.now();
        let strategy = policy.strategy();

        // Pre-flight: nothing is written before these pass (fail closed).
        if let Err(e) = self.validate(policy) {
            return self.early(path, strategy, &trigger, started, e, RotationOutcome::Failed);
        }
        let emergency = matches!(trigger, RotationTrigger::Emergency { .. });
        if !emergency
            && let Some(w) = policy.window()
            && !w.contains(started)
        {
            let e = RotationError::OutsideWindow { path: path.clone(), next_open: Some(w.next_open(started)) };
            return self.early(path, strategy, &trigger, started, e, RotationOutcome::OutsideWindow);
        }
        let Some(_guard) = self.try_guard(path) else {
            let e = RotationError::AlreadyRotating { path: path.clone() };
            return self.early(path, strategy, &trigger, started, e, RotationOutcome::AlreadyRotating);
        };
        let binding = binding.or_else(|| {
            let bindings = self.bindings.read().unwrap_or_else(PoisonError::into_inner);
            if bindings.is_empty() { None } else { bindings.get(path).cloned() }
        });

        let mut run = Run {
            id: fresh_rotation_id(),
            path,
            policy,
            trigger: &trigger,
            started,
            old_version: None,
            new_version: None,
            attempts: 0,
            retries: 0,
            verification_passed: false,
            error: None,
            undo_error: None,
            current_created_at: None,
        };
        let outcome = self.execute(&mut run, binding.as_deref(), new_value, rotated_before_us).await;
        self.finish(run, outcome)
    }

    fn finish(&self, run: Run<'_>, outcome: Exec) -> RotationResult {
        let completed = self.clock.now();
        let (outcome, rollback_performed, up_to_date) = match outcome {
            Exec::UpToDate => (RotationOutcome::RotatedElsewhere, false, true),
            Exec::Outcome(o, rb) => (o, rb, false),
        };
        let error = match (run.error, run.undo_error) {
            (Some(cause), Some(undo)) => {
                Some(RotationError::UndoFailed { cause: Box::new(cause), undo: Box::new(undo) })
            }
            (e, _) => e,
        };
        let duration = completed.signed_duration_since(run.started).to_std().unwrap_or_default();
        let r = RotationResult {
            rotation_id: run.id,
            path: run.path.clone(),
            strategy: run.policy.strategy(),
            trigger: run.trigger.clone(),
            outcome,
            status: outcome.status(),
            old_version: run.old_version,
            new_version: run.new_version,
            started_at: run.started,
            completed_at: completed,
            duration,
            verification_passed: run.verification_passed,
            attempts: run.attempts,
            retries: run.retries,
            rollback_performed,
            error,
            current_created_at: run.current_created_at,
            up_to_date,
        };
        if !up_to_date {
            let kind = match outcome {
                RotationOutcome::Rotated => AuditEventKind::Succeeded,
                RotationOutcome::RotatedElsewhere => AuditEventKind::Conflict,
                RotationOutcome::InProgressElsewhere => AuditEventKind::InProgressElsewhere,
                RotationOutcome::AlreadyRotating => AuditEventKind::AlreadyRotating,
                RotationOutcome::OutsideWindow => AuditEventKind::OutsideWindow,
                RotationOutcome::RolledBack | RotationOutcome::Failed => AuditEventKind::Failed,
            };
            self.emit_with(|| {
                let mut e = AuditEvent::new(completed, kind, r.path.clone());
                e.rotation_id = Some(r.rotation_id);
                e.strategy = Some(r.strategy);
                e.trigger = Some(r.trigger.clone());
                e.old_version = r.old_version.clone();
                e.new_version = r.new_version.clone();
                e.elapsed = Some(duration);
                e.error = r.error.as_ref().map(|x| AuditError { kind: x.kind().to_owned(), message: x.to_string() });
                e.detail = Some(format!("{}; attempts {}, retries {}", r.outcome, r.attempts, r.retries));
                e
            });
        }
        r
    }
}

/// How `execute` ended.
enum Exec {
    /// A scheduled run found the secret rotated since (by another process).
    UpToDate,
    /// The outcome, and whether the rotation undid its own writes.
    Outcome(RotationOutcome, bool),
}

/// The executor: performs what the state machine decides.
impl Inner {
    fn fail_early(&self, run: &mut Run<'_>, error: RotationError) -> Exec {
        self.emit(run, AuditEventKind::StepFailed, None, Some(&error));
        run.error = Some(error);
        Exec::Outcome(RotationOutcome::Failed, false)
    }

    async fn execute(
        &self,
        run: &mut Run<'_>,
        binding: Option<&SecretBinding>,
        new_value: Option<SecretString>,
        rotated_before_us: Option<i64>,
    ) -> Exec {
        let path = run.path;
        let policy = run.policy;

        // Prepare: the version every write is compared against.
        let current = match self
            .retry_store(run, RotationStep::Prepare, || self.store.read(path, &VersionSelector::Current))
            .await
        {
            Ok(c) => c,
            Err(e) => return self.fail_early(run, RotationError::store(RotationStep::Prepare, e)),
        };
        run.old_version = Some(current.meta.id.clone());
        run.current_created_at = Some(current.meta.created_at);
        if let Some(before) = rotated_before_us
            && schedule::to_us(current.meta.created_at) > before
        {
            return Exec::UpToDate;
        }
        self.emit(run, AuditEventKind::Started, Some(RotationStep::Prepare), None);

        let target = binding.and_then(SecretBinding::target_ref).cloned();
        if policy.strategy() == RotationStrategy::DualWrite
            && let Some(t) = &target
            && let Some(message) = strategy::dual_write::target_refusal(t.name(), t.capabilities())
        {
            return self.fail_early(run, RotationError::InvalidBinding { path: path.clone(), message });
        }
        let mut meta = match self.retry_store(run, RotationStep::Prepare, || self.store.read_metadata(path)).await {
            Ok(m) => m,
            Err(e) => return self.fail_early(run, RotationError::store(RotationStep::Prepare, e)),
        };
        if let Some(journal) = RotationJournal::read(&meta) {
            match self.recover(run, &journal, &current, &mut meta, target.as_deref()).await {
                Ok(None) => {}
                Ok(Some(exec)) => return exec,
                Err(e) => return self.fail_early(run, e),
            }
        }
        if let Some(record) = RetireRecord::read(&meta) {
            let mut r = lock(&self.retiring);
            let entry = r.entry(path.clone()).or_default();
            entry.target = entry.target.take().or_else(|| target.clone());
            entry.deadline = record.deadline;
        }
        // A dual-write retire step still pending: perform it first when it
        // is due (or this is an emergency), else refuse (see
        // `consumers::pending_retire_decision`).
        let emergency = matches!(run.trigger, RotationTrigger::Emergency { .. });
        match pending_retire_decision(&meta, self.clock.now(), emergency) {
            PendingRetire::None => {}
            PendingRetire::Refuse { until, behind } => {
                return self.fail_early(run, RotationError::RetirePending { path: path.clone(), until, behind });
            }
            PendingRetire::RetireFirst { record, reason } => {
                let target = target.clone().or_else(|| self.retire_target(path));
                if let Err(e) = self.retire_step(run, &record, reason, target.as_deref(), &current, &mut meta).await {
                    return self.fail_early(run, e);
                }
            }
        }

        // The candidate.
        let field = binding.and_then(SecretBinding::field_name);
        let blue_green = policy.strategy() == RotationStrategy::BlueGreen;
        if !blue_green && field.is_none() && matches!(current.data, SecretData::Fields(_)) {
            let names: Vec<&str> = current.data.field_names().collect();
            let e = RotationError::InvalidBinding {
                path: path.clone(),
                message: format!(
                    "the secret has fields ({}): bind the field to rotate with SecretBinding::field",
                    names.join(", ")
                ),
            };
            return self.fail_early(run, e);
        }
        let value = match new_value {
            Some(v) => v,
            None => {
                let generator = binding.and_then(SecretBinding::generator_ref).unwrap_or(&self.generator);
                match generator.generate() {
                    Ok(v) => v,
                    Err(e) => return self.fail_early(run, RotationError::Generation(Arc::new(e))),
                }
            }
        };
        let candidate = if blue_green {
            // The inactive set, named by the previous version (or the
            // binding's two sets), gets the new password.
            let previous = match self
                .retry_store(run, RotationStep::Prepare, || self.store.read(path, &VersionSelector::Previous))
                .await
            {
                Ok(p) => Some(p.data),
                Err(StoreError::NotFound { .. }) => None,
                Err(e) => return self.fail_early(run, RotationError::store(RotationStep::Prepare, e)),
            };
            let sets = binding.and_then(SecretBinding::credential_sets_ref);
            match strategy::blue_green::candidate(&current.data, previous.as_ref(), sets, field, value) {
                Ok(d) => d,
                Err(e) => {
                    let e = RotationError::InvalidBinding { path: path.clone(), message: e.to_string() };
                    return self.fail_early(run, e);
                }
            }
        } else {
            match current.data.with_field(field, value) {
                Ok(d) => d,
                Err(e) => {
                    let e = RotationError::InvalidBinding { path: path.clone(), message: e.to_string() };
                    return self.fail_early(run, e);
                }
            }
        };

        let base = current.meta.id.clone();
        let mut state = RotationState::new(
            policy.strategy(),
            policy.require_verification(),
            target.is_some(),
            policy.auto_rollback(),
        );
        let mut exec = Executor {
            candidate,
            field,
            base,
            current,
            meta,
            target,
            now_current: None,
            conflict_actual: None,
            rolled_back: false,
        };
        let verdict = loop {
            let action = next_action(&state);
            if let RotationAction::Finish(v) = action {
                break v;
            }
            let outcome = self.perform(run, &mut exec, action).await;
            state.record(action, outcome);
        };
        let undone = state.discarded || state.rolled_back || state.revoked;
        let outcome = match (verdict, state.failure) {
            (RotationVerdict::Succeeded, _) => RotationOutcome::Rotated,
            (_, Some(f)) if f.conflict && !state.undo_failed => {
                if let Some(RotationError::InProgressElsewhere { .. }) = run.error {
                    RotationOutcome::InProgressElsewhere
                } else {
                    run.error = Some(RotationError::RotatedElsewhere {
                        path: path.clone(),
                        expected: exec.base.clone(),
                        actual: exec.conflict_actual.clone(),
                    });
                    RotationOutcome::RotatedElsewhere
                }
            }
            (RotationVerdict::RolledBack, _) => RotationOutcome::RolledBack,
            (RotationVerdict::Failed, _) => RotationOutcome::Failed,
        };
        Exec::Outcome(outcome, undone)
    }

    /// Deals with a journal found at the start: `Ok(Some(_))` ends the
    /// rotation (in progress elsewhere), `Ok(None)` goes ahead.
    async fn recover(
        &self,
        run: &mut Run<'_>,
        journal: &RotationJournal,
        current: &SecretVersion,
        meta: &mut Metadata,
        target: Option<&dyn crate::CredentialTarget>,
    ) -> Result<Option<Exec>, RotationError> {
        let path = run.path;
        let pending = match self
            .retry_store(run, RotationStep::Recover, || self.store.read(path, &VersionSelector::Pending))
            .await
        {
            Ok(v) => Some(v),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(RotationError::store(RotationStep::Recover, e)),
        };
        let now = self.clock.now();
        let decision = recovery_decision(
            Some(journal),
            now,
            self.stale_limit(run.policy),
            &self.instance,
            &current.meta,
            pending.as_ref().map(|p| &p.meta),
        );
        match decision {
            RecoveryDecision::Proceed => Ok(None),
            RecoveryDecision::InProgressElsewhere { rotation_id, since } => {
                run.error = Some(RotationError::InProgressElsewhere { path: path.clone(), rotation_id, since });
                Ok(Some(Exec::Outcome(RotationOutcome::InProgressElsewhere, false)))
            }
            RecoveryDecision::CleanUp { rotation_id, discard, went_current } => {
                if let Some(v) = &discard {
                    self.retry_store(run, RotationStep::Recover, || self.store.discard(path, v))
                        .await
                        .map_err(|e| RotationError::store(RotationStep::Recover, e))?;
                    if let (Some(t), Some(p)) = (target, &pending) {
                        self.retry_target(run, RotationStep::Recover, || t.revoke(&p.data, &current.data))
                            .await
                            .map_err(|e| RotationError::target(RotationStep::Recover, t.name(), e))?;
                    }
                }
                RotationJournal::clear(meta);
                if went_current
                    && journal.strategy.as_deref() == Some(RotationStrategy::DualWrite.as_str())
                    && let Some(base) = &journal.base
                    && *base != current.meta.id
                    && RetireRecord::read(meta).is_none()
                {
                    // Its old credential is still valid on the target: record
                    // the retire step it did not get to record, with the
                    // grace counted from when its value became current.
                    let grace = run.policy.grace_period().unwrap_or_default();
                    let since = current.meta.created_at.min(now);
                    let deadline =
                        chrono::Duration::from_std(grace).ok().and_then(|g| since.checked_add_signed(g)).unwrap_or(now);
                    let rid = rotation_id.unwrap_or_else(fresh_rotation_id);
                    RetireRecord::new(base.clone(), current.meta.id.clone(), deadline, rid).write_into(meta);
                }
                let m = meta.clone();
                self.retry_store(run, RotationStep::Recover, || self.store.write_metadata(path, m.clone()))
                    .await
                    .map_err(|e| RotationError::store(RotationStep::Recover, e))?;
                let detail = format!(
                    "cleaned up crashed rotation {} (step {}, started {}): {}{}",
                    rotation_id.map(|r| r.to_string()).unwrap_or_else(|| "<unknown>".to_owned()),
                    journal.step.map(RotationStep::as_str).unwrap_or("<unknown>"),
                    journal.started.map(|t| t.to_rfc3339()).unwrap_or_else(|| "<unknown>".to_owned()),
                    match &discard {
                        Some(v) => format!("discarded its candidate {v}"),
                        None => "no candidate left".to_owned(),
                    },
                    if went_current { "; its value had become current and stays so" } else { "" },
                );
                self.emit_detail(run, AuditEventKind::Recovered, Some(RotationStep::Recover), detail);
                Ok(None)
            }
        }
    }

    fn step_failed(&self, run: &mut Run<'_>, action: RotationAction, error: RotationError) {
        let undo = matches!(action, RotationAction::Discard | RotationAction::Rollback | RotationAction::Revoke);
        let kind = if action == RotationAction::Verify {
            AuditEventKind::VerificationFailed
        } else {
            AuditEventKind::StepFailed
        };
        self.emit(run, kind, Some(action.step()), Some(&error));
        if undo {
            run.undo_error.get_or_insert(error);
        } else if action != RotationAction::ClearJournal {
            run.error.get_or_insert(error);
        }
    }

    async fn perform(&self, run: &mut Run<'_>, x: &mut Executor<'_>, action: RotationAction) -> ActionOutcome {
        let path = run.path;
        let step = action.step();
        match action {
            RotationAction::Journal | RotationAction::ClearJournal => {
                // The metadata read at the start, with the journal added or
                // removed. No re-read before clearing: while a journal is
                // present nothing else of rekey's writes metadata (consumer
                // acknowledgements wait), so the snapshot is what is there —
                // except when two processes start the same rotation at the
                // same instant, where clearing may also drop the other's
                // journal: that only weakens crash detection for it, the
                // compare-and-swap still decides who wins.
                if action == RotationAction::Journal {
                    let first = if run.policy.strategy() == RotationStrategy::Immediate {
                        RotationStep::Write
                    } else {
                        RotationStep::Stage
                    };
                    RotationJournal::write_into(
                        &mut x.meta,
                        run.id,
                        first,
                        run.policy.strategy().as_str(),
                        &x.base,
                        run.started,
                        &self.instance,
                    );
                } else {
                    RotationJournal::clear(&mut x.meta);
                    // Dual-write: the retire step replaces the journal in
                    // the same write (see `strategy::dual_write`).
                    if let Some(record) = self.retire_record(run, x) {
                        record.write_into(&mut x.meta);
                    }
                }
                let m = &x.meta;
                match self.retry_store(run, step, || self.store.write_metadata(path, m.clone())).await {
                    Ok(()) => {
                        if action == RotationAction::ClearJournal {
                            if let Some(record) = RetireRecord::read(&x.meta) {
                                let r = Retiring { target: x.target.clone(), deadline: record.deadline };
                                lock(&self.retiring).insert(path.clone(), r);
                            }
                            self.emit(run, AuditEventKind::CleanedUp, Some(step), None);
                        }
                        ActionOutcome::Done
                    }
                    Err(e) => {
                        self.step_failed(run, action, RotationError::store(step, e));
                        ActionOutcome::Failed
                    }
                }
            }
            RotationAction::Stage => {
                let id = run.id;
                let c = &x.candidate;
                match self.retry_store(run, step, || self.store.stage(path, c.clone(), id)).await {
                    Ok(m) => {
                        run.new_version = Some(m.id);
                        self.emit(run, AuditEventKind::Staged, Some(step), None);
                        ActionOutcome::Done
                    }
                    Err(e) => {
                        self.step_failed(run, action, RotationError::store(step, e));
                        ActionOutcome::Failed
                    }
                }
            }
            RotationAction::Write => {
                let opts = PutOptions::if_current(x.base.clone()).with_rotation(run.id);
                let c = &x.candidate;
                let res = self.retry_store(run, step, || self.store.put(path, c.clone(), opts.clone())).await;
                match res {
                    Ok(m) => {
                        x.now_current = Some(m.id.clone());
                        self.became_current(run, m);
                        self.emit(run, AuditEventKind::Written, Some(step), None);
                        ActionOutcome::Done
                    }
                    Err(e) => self.settle(run, x, action, e, None).await,
                }
            }
            RotationAction::Promote => {
                let Some(candidate_id) = run.new_version.clone() else {
                    return ActionOutcome::Failed;
                };
                let base = x.base.clone();
                let res = self.retry_store(run, step, || self.store.promote(path, &candidate_id, &base)).await;
                match res {
                    Ok(m) => {
                        x.now_current = Some(m.id.clone());
                        self.became_current(run, m);
                        self.emit(run, AuditEventKind::Promoted, Some(step), None);
                        ActionOutcome::Done
                    }
                    Err(e) => self.settle(run, x, action, e, Some(candidate_id)).await,
                }
            }
            RotationAction::Apply | RotationAction::Confirm => {
                let Some(t) = x.target.clone() else { return ActionOutcome::Done };
                let c = &x.candidate;
                let old = &x.current.data;
                let res = if action == RotationAction::Apply {
                    self.retry_target(run, step, || t.apply(c, Some(old))).await
                } else {
                    self.retry_target(run, step, || t.test(c)).await
                };
                match res {
                    Ok(()) => {
                        let kind = if action == RotationAction::Apply {
                            AuditEventKind::Applied
                        } else {
                            AuditEventKind::Confirmed
                        };
                        self.emit(run, kind, Some(step), None);
                        ActionOutcome::Done
                    }
                    Err(e) => {
                        self.step_failed(run, action, RotationError::target(step, t.name(), e));
                        ActionOutcome::Failed
                    }
                }
            }
            RotationAction::Verify => {
                self.emit(run, AuditEventKind::Verifying, Some(step), None);
                match self.verify(run, &x.candidate, x.field, x.target.as_deref()).await {
                    Ok(()) => {
                        run.verification_passed = true;
                        self.emit(run, AuditEventKind::Verified, Some(step), None);
                        ActionOutcome::Done
                    }
                    Err(e) => {
                        self.step_failed(run, action, e);
                        ActionOutcome::Failed
                    }
                }
            }
            RotationAction::Discard => {
                let Some(v) = run.new_version.clone() else { return ActionOutcome::Done };
                match self.retry_store(run, step, || self.store.discard(path, &v)).await {
                    Ok(()) => {
                        self.emit(run, AuditEventKind::Discarded, Some(step), None);
                        ActionOutcome::Done
                    }
                    Err(e) => {
                        self.step_failed(run, action, RotationError::store(step, e));
                        ActionOutcome::Failed
                    }
                }
            }
            RotationAction::Rollback => {
                let Some(now_current) = x.now_current.clone() else { return ActionOutcome::Failed };
                let base = x.base.clone();
                let res = self.retry_store(run, step, || self.store.promote(path, &base, &now_current)).await;
                let ok = match res {
                    Ok(m) => {
                        run.current_created_at = Some(m.created_at);
                        true
                    }
                    Err(e) => {
                        // Settle an ambiguous or conflicting rollback by looking.
                        match self.reread_current(run, step).await {
                            Some(c)
                                if c.meta.id == x.base
                                    || (c.meta.rotation_id != Some(run.id) && c.data.same_as(&x.current.data)) =>
                            {
                                run.current_created_at = Some(c.meta.created_at);
                                true
                            }
                            _ => {
                                self.step_failed(run, action, RotationError::store(step, e));
                                false
                            }
                        }
                    }
                };
                if ok {
                    x.rolled_back = true;
                    self.emit(run, AuditEventKind::RolledBack, Some(step), None);
                    ActionOutcome::Done
                } else {
                    ActionOutcome::Failed
                }
            }
            RotationAction::Revoke => {
                let Some(t) = x.target.clone() else { return ActionOutcome::Done };
                // The target must accept what the store serves now.
                let keep = match self.reread_current(run, step).await {
                    Some(c) => c.data,
                    None => x.current.data.clone(),
                };
                let c = &x.candidate;
                match self.retry_target(run, step, || t.revoke(c, &keep)).await {
                    Ok(()) => {
                        self.emit(run, AuditEventKind::Revoked, Some(step), None);
                        ActionOutcome::Done
                    }
                    Err(e) => {
                        self.step_failed(run, action, RotationError::target(step, t.name(), e));
                        ActionOutcome::Failed
                    }
                }
            }
            RotationAction::Finish(_) => ActionOutcome::Done,
        }
    }

    fn became_current(&self, run: &mut Run<'_>, m: VersionMeta) {
        run.current_created_at = Some(m.created_at);
        run.new_version = Some(m.id);
    }

    /// A write (`Write`) or promotion failed or lost its compare-and-swap:
    /// look at what is current to tell "it happened after all" (a retried
    /// call whose first attempt landed) from "someone else won" from "it
    /// failed".
    async fn settle(
        &self,
        run: &mut Run<'_>,
        x: &mut Executor<'_>,
        action: RotationAction,
        error: StoreError,
        candidate: Option<VersionId>,
    ) -> ActionOutcome {
        let step = action.step();
        let Some(c) = self.reread_current(run, step).await else {
            self.step_failed(run, action, RotationError::store(step, error));
            return ActionOutcome::Failed;
        };
        let ours = c.meta.rotation_id == Some(run.id) || candidate.as_ref() == Some(&c.meta.id);
        if ours {
            x.now_current = Some(c.meta.id.clone());
            self.became_current(run, c.meta);
            let kind = if action == RotationAction::Write { AuditEventKind::Written } else { AuditEventKind::Promoted };
            self.emit(run, kind, Some(step), None);
            return ActionOutcome::Done;
        }
        if c.meta.id != x.base {
            // Another writer moved the secret on.
            run.current_created_at = Some(c.meta.created_at);
            x.conflict_actual = Some(c.meta.id.clone());
            let e = RotationError::RotatedElsewhere {
                path: run.path.clone(),
                expected: x.base.clone(),
                actual: Some(c.meta.id),
            };
            self.emit(run, AuditEventKind::Conflict, Some(step), Some(&e));
            run.error.get_or_insert(e);
            return ActionOutcome::Conflict;
        }
        if let Some(version) = candidate
            && matches!(error, StoreError::NotFound { .. })
        {
            // Our candidate is gone: another rotation staged over it (two
            // processes started at the same moment). Theirs goes on.
            let path = run.path;
            let pending = self.retry_store(run, step, || self.store.read(path, &VersionSelector::Pending)).await;
            if let Ok(p) = pending
                && p.meta.rotation_id != Some(run.id)
            {
                let e = RotationError::InProgressElsewhere {
                    path: run.path.clone(),
                    rotation_id: p.meta.rotation_id,
                    since: Some(p.meta.created_at),
                };
                self.emit(run, AuditEventKind::InProgressElsewhere, Some(step), Some(&e));
                run.error.get_or_insert(e);
                return ActionOutcome::Conflict;
            }
            self.step_failed(run, action, RotationError::CandidateLost { path: run.path.clone(), version });
            return ActionOutcome::Failed;
        }
        self.step_failed(run, action, RotationError::store(step, error));
        ActionOutcome::Failed
    }

    /// Runs every verification (the policy's tests and the target's own
    /// test) concurrently, each within the policy's verification timeout;
    /// the first failure wins and cancels the others.
    async fn verify(
        &self,
        run: &Run<'_>,
        candidate: &SecretData,
        field: Option<&str>,
        target: Option<&dyn crate::CredentialTarget>,
    ) -> Result<(), RotationError> {
        let limit = run.policy.verification_timeout();
        let ctx = VerifyContext { path: run.path, rotation_id: run.id, candidate, field };
        let tests: &[String] = if run.policy.require_verification() { run.policy.verification_tests() } else { &[] };
        let mut checks: Vec<futures::future::BoxFuture<'_, Result<(), RotationError>>> = Vec::new();
        for name in tests {
            let verifier = self.verifiers.get(name).cloned();
            let clock = &*self.clock;
            checks.push(Box::pin(async move {
                let Some(v) = verifier else {
                    return Err(RotationError::UnknownVerifier {
                        policy: run.policy.name().to_owned(),
                        name: name.clone(),
                    });
                };
                match timeout(clock, limit, v.verify(ctx)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(source)) => Err(RotationError::Verification { verifier: name.clone(), source }),
                    Err(_) => Err(RotationError::Verification {
                        verifier: name.clone(),
                        source: VerifyError::TimedOut(limit),
                    }),
                }
            }));
        }
        if let Some(t) = target {
            let clock = &*self.clock;
            checks.push(Box::pin(async move {
                let verifier = format!("target:{}", t.name());
                match timeout(clock, limit, t.test(candidate)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => {
                        let source = if e.is_retryable() {
                            VerifyError::Unavailable(e.to_string())
                        } else {
                            VerifyError::Failed(e.to_string())
                        };
                        Err(RotationError::Verification { verifier, source })
                    }
                    Err(_) => Err(RotationError::Verification { verifier, source: VerifyError::TimedOut(limit) }),
                }
            }));
        }
        futures::future::try_join_all(checks).await.map(|_| ())
    }
}

/// Dual-write retirement.
impl Inner {
    /// The retire record a successful dual-write rotation leaves when it
    /// clears its journal.
    fn retire_record(&self, run: &Run<'_>, x: &Executor<'_>) -> Option<RetireRecord> {
        if run.policy.strategy() != RotationStrategy::DualWrite || x.rolled_back {
            return None;
        }
        let keep = x.now_current.clone()?;
        let now = self.clock.now();
        let grace = chrono::Duration::from_std(run.policy.grace_period().unwrap_or_default()).ok();
        let deadline = grace.and_then(|g| now.checked_add_signed(g)).unwrap_or(now);
        Some(RetireRecord::new(x.base.clone(), keep, deadline, run.id))
    }

    /// The target to retire `path`'s old credential on: the rotation's, else
    /// the registered binding's.
    fn retire_target(&self, path: &SecretPath) -> Option<Arc<dyn crate::CredentialTarget>> {
        lock(&self.retiring)
            .get(path)
            .and_then(|r| r.target.clone())
            .or_else(|| self.bindings.read().unwrap_or_else(PoisonError::into_inner).get(path)?.target_ref().cloned())
    }

    /// Performs one retire step: revokes `record.retired` on `target`
    /// keeping `current`, then removes the record (unless it was replaced).
    /// Leaves the metadata as written in `meta`. Returns whether it revoked.
    async fn retire_step(
        &self,
        run: &mut Run<'_>,
        record: &RetireRecord,
        reason: RetireReason,
        target: Option<&dyn crate::CredentialTarget>,
        current: &SecretVersion,
        meta: &mut Metadata,
    ) -> Result<bool, RotationError> {
        let path = run.path;
        let step = RotationStep::Retire;
        let mut revoked = false;
        // A retired version that is current again (rolled back by hand) is
        // not revoked: the store serves it.
        if let Some(t) = target
            && record.retired != current.meta.id
        {
            let id = VersionSelector::Id(record.retired.clone());
            let old = self
                .retry_store(run, step, || self.store.read(path, &id))
                .await
                .map_err(|e| RotationError::store(step, e))?;
            if !old.data.same_as(&current.data) {
                self.retry_target(run, step, || t.revoke(&old.data, &current.data))
                    .await
                    .map_err(|e| RotationError::target(step, t.name(), e))?;
                revoked = true;
            }
        }
        let mut fresh = self
            .retry_store(run, step, || self.store.read_metadata(path))
            .await
            .map_err(|e| RotationError::store(step, e))?;
        if RetireRecord::read(&fresh).is_some_and(|r| r.retired == record.retired) {
            RetireRecord::clear(&mut fresh);
            let m = fresh.clone();
            self.retry_store(run, step, || self.store.write_metadata(path, m.clone()))
                .await
                .map_err(|e| RotationError::store(step, e))?;
        }
        *meta = fresh;
        let detail = format!(
            "retired version {} ({reason}){}; {} stays valid",
            record.retired,
            if revoked { ", revoked on the target" } else { "" },
            current.meta.id,
        );
        self.emit_detail(run, AuditEventKind::Retired, Some(step), detail);
        Ok(revoked)
    }

    /// The retire pass for one secret; `None` when nothing was due.
    async fn retire_one(
        &self,
        path: &SecretPath,
        target: Option<Arc<dyn crate::CredentialTarget>>,
    ) -> Option<RetireResult> {
        // A rotation of this secret in this process retires first itself.
        let _guard = self.try_guard(path)?;
        let scheduled = {
            let t = lock(&self.schedules);
            t.lookup(path.as_str()).and_then(|id| t.slot(id)).and_then(|s| s.policy.clone())
        };
        let policy = match scheduled.or_else(|| self.default_policy.clone()) {
            Some(p) => p,
            None => Arc::new(RotationPolicy::builder("retire").build().ok()?),
        };
        let mut run = self.detached_run(path, &policy);
        let step = RotationStep::Retire;
        let failed = |run: &Run<'_>, e: &RotationError| {
            self.emit(run, AuditEventKind::RetireFailed, Some(step), Some(e));
        };
        let meta = match self.retry_store(&mut run, step, || self.store.read_metadata(path)).await {
            Ok(m) => m,
            Err(StoreError::NotFound { .. }) => {
                // The secret is gone, and its record with it.
                lock(&self.retiring).remove(path);
                return None;
            }
            Err(e) => {
                failed(&run, &RotationError::store(step, e));
                return None;
            }
        };
        let (record, reason) = match retire_decision(&meta, self.clock.now()) {
            RetireDecision::Nothing => {
                lock(&self.retiring).remove(path);
                return None;
            }
            RetireDecision::Wait { until, .. } => {
                if let Some(r) = lock(&self.retiring).get_mut(path) {
                    r.deadline = Some(until);
                }
                return None;
            }
            RetireDecision::Retire { record, reason } => (record, reason),
        };
        let target = target.or_else(|| self.retire_target(path));
        let mut result = RetireResult {
            path: path.clone(),
            retired: record.retired.clone(),
            keep: record.keep.clone(),
            reason,
            revoked: false,
            error: None,
        };
        let current = match self.retry_store(&mut run, step, || self.store.read(path, &VersionSelector::Current)).await
        {
            Ok(c) => c,
            Err(e) => {
                let e = RotationError::store(step, e);
                failed(&run, &e);
                result.error = Some(e);
                return Some(result);
            }
        };
        result.keep = Some(current.meta.id.clone());
        let mut meta = meta;
        match self.retire_step(&mut run, &record, reason, target.as_deref(), &current, &mut meta).await {
            Ok(revoked) => {
                result.revoked = revoked;
                if RetireRecord::read(&meta).is_none() {
                    lock(&self.retiring).remove(path);
                }
            }
            Err(e) => {
                failed(&run, &e);
                result.error = Some(e);
            }
        }
        Some(result)
    }
}

/// What the executor carries between actions.
struct Executor<'f> {
    candidate: SecretData,
    field: Option<&'f str>,
    base: VersionId,
    current: SecretVersion,
    meta: Metadata,
    target: Option<Arc<dyn crate::CredentialTarget>>,
    /// The version current after `Write`/`Promote` (rollback's CAS value).
    now_current: Option<VersionId>,
    conflict_actual: Option<VersionId>,
    /// The previous value was made current again.
    rolled_back: bool,
}

/// A due job taken out of the queue. Dropped before its rotation finished
/// (the `process_scheduled_rotations` future was dropped), it puts the
/// schedule back, due at once, so that a shutdown never strands a secret.
/// Runs one guarded job (a named function so that its signature is properly
/// higher-ranked; see `process_scheduled_rotations`).
fn run_guarded(guard: JobGuard<'_>) -> impl Future<Output = Option<RotationResult>> + Send + '_ {
    let inner = guard.inner;
    inner.run_job(guard)
}

struct JobGuard<'a> {
    inner: &'a Inner,
    job: Option<Job>,
}

impl Drop for JobGuard<'_> {
    fn drop(&mut self) {
        let Some(job) = self.job.take() else { return };
        let now = self.inner.clock.now();
        let mut t = lock(&self.inner.schedules);
        let same = t.slot(job.slot).is_some_and(|s| s.path.as_deref() == Some(&*job.path) && s.flags & RUNNING != 0);
        if same {
            t.set_flag(job.slot, RUNNING, false);
            t.set_next(job.slot, Some(now));
        }
    }
}

/// Bookkeeping after a rotation.
impl Inner {
    fn record_stats(&self, r: &RotationResult) {
        if !r.up_to_date {
            lock(&self.stats).record(r.outcome, r.rollback_performed, r.duration);
        }
    }

    /// After a manual or emergency rotation: count it, and move a schedule
    /// of the same secret on when it succeeded (clearing a quarantine).
    fn after_manual(&self, r: &RotationResult) {
        self.record_stats(r);
        if !r.success() {
            return;
        }
        let resumed = {
            let mut t = lock(&self.schedules);
            let Some(id) = t.lookup(r.path.as_str()) else { return };
            let Some(s) = t.slot(id) else { return };
            if s.flags & RUNNING != 0 {
                return;
            }
            let policy = s.policy.clone();
            let last = r.current_created_at.unwrap_or(r.completed_at);
            t.set_last(id, schedule::to_us(last));
            t.set_failures(id, 0);
            let resumed = t.unquarantine(id);
            let next = policy.and_then(|p| p.next_due(last, jitter_key(&r.path)));
            t.set_next(id, next);
            resumed
        };
        if resumed {
            self.emit_with(|| {
                let mut e = AuditEvent::new(self.clock.now(), AuditEventKind::Resumed, r.path.clone());
                e.rotation_id = Some(r.rotation_id);
                e.detail = Some(format!("quarantine lifted by a successful {} rotation", r.trigger));
                e
            });
        }
    }

    /// Runs one due schedule and moves it on.
    async fn run_job(&self, mut guard: JobGuard<'_>) -> Option<RotationResult> {
        let job = guard.job.as_ref()?;
        let Ok(path) = SecretPath::new(&*job.path) else {
            lock(&self.schedules).remove(&job.path);
            return None;
        };
        let req = RotationRequest {
            path: &path,
            policy: &job.policy,
            new_value: None,
            trigger: RotationTrigger::Schedule,
            binding: None,
            rotated_before_us: Some(job.last_us),
        };
        let r = self.rotate_inner(req).await;
        let now = self.clock.now();
        let policy = &job.policy;
        let key = jitter_key(&path);
        let mut quarantined = None;
        {
            let mut t = lock(&self.schedules);
            let same =
                t.slot(job.slot).is_some_and(|s| s.path.as_deref() == Some(&*job.path) && s.flags & RUNNING != 0);
            if same {
                t.set_flag(job.slot, RUNNING, false);
                let failures = t.slot(job.slot).map(|s| u32::from(s.failures)).unwrap_or(0);
                let soon = |n: u32| {
                    let d = policy.retry().backoff(n, 0.5 + rand::random::<f64>() / 2.0);
                    chrono::Duration::from_std(d).ok().and_then(|d| now.checked_add_signed(d))
                };
                match r.outcome {
                    RotationOutcome::Rotated | RotationOutcome::RotatedElsewhere => {
                        let last = r.current_created_at.unwrap_or(now);
                        t.set_last(job.slot, schedule::to_us(last));
                        t.set_failures(job.slot, 0);
                        t.set_next(job.slot, policy.next_due(last, key));
                    }
                    RotationOutcome::AlreadyRotating | RotationOutcome::InProgressElsewhere => {
                        t.set_next(job.slot, soon(1));
                    }
                    RotationOutcome::OutsideWindow => {
                        t.set_next(job.slot, policy.window().map(|w| w.next_open(now)).or_else(|| soon(1)));
                    }
                    RotationOutcome::Failed | RotationOutcome::RolledBack => {
                        let failures = failures.saturating_add(1);
                        t.set_failures(job.slot, failures);
                        if failures >= policy.quarantine_after() {
                            let reason =
                                r.error.as_ref().map(ToString::to_string).unwrap_or_else(|| r.outcome.to_string());
                            t.quarantine(job.slot, Quarantine { since: now, failures, reason: reason.clone() });
                            t.set_next(job.slot, None);
                            quarantined = Some((failures, reason));
                        } else {
                            t.set_next(job.slot, soon(failures));
                        }
                    }
                }
            }
        }
        guard.job = None; // the schedule has been moved on
        if let Some((failures, reason)) = quarantined {
            self.emit_with(|| {
                let mut e = AuditEvent::new(now, AuditEventKind::Quarantined, path.clone());
                e.rotation_id = Some(r.rotation_id);
                e.strategy = Some(r.strategy);
                e.trigger = Some(RotationTrigger::Schedule);
                e.error = r.error.as_ref().map(|x| AuditError { kind: x.kind().to_owned(), message: x.to_string() });
                e.detail = Some(format!("{failures} failed rotations in a row: {reason}"));
                e
            });
        }
        if r.up_to_date {
            self.emit_with(|| {
                let mut e = AuditEvent::new(now, AuditEventKind::Rescheduled, path.clone());
                e.trigger = Some(RotationTrigger::Schedule);
                e.detail = Some("already rotated since the schedule's record (by another process)".to_owned());
                e
            });
            return None;
        }
        self.record_stats(&r);
        Some(r)
    }
}
