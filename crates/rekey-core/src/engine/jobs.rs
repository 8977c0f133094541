//! Scheduled rotations: the schedule API, due jobs, retries and quarantine bookkeeping.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::audit::{AuditError, AuditEvent, AuditEventKind, RotationTrigger};
use super::error::{RotationError, RotationStep};
use super::manager::RotationManager;
use super::request::RotationRequest;
use super::result::{RotationOutcome, RotationResult};
use super::schedule::{self, Job, PAUSED, QUARANTINED, Quarantine, RUNNING, ScheduleInfo, ScheduleRefresh};
use super::shared::{Inner, lock};
use crate::SecretPath;
use crate::policy::{RotationPolicy, RotationStrategy, jitter_key};
use crate::record::SecretRecord;

/// Scheduling.
impl RotationManager {
    /// Schedules automatic rotation of `path` under `policy` (replacing an
    /// existing schedule, and clearing its quarantine). The last rotation
    /// time is since when the secret's current value has been current, read
    /// from the store ([`SecretRecord::current_since`]: the current
    /// version's creation, or what the record says of a rollback), so a
    /// restarted process — or another process — computes the same next due
    /// time. One store call (a snapshot without the value).
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
        let retry_run = &mut self.inner.detached_run(path, &policy);
        let snapshot = self
            .inner
            .retry_store(retry_run, RotationStep::Prepare, || self.inner.store.snapshot(path, false))
            .await
            .map_err(|e| RotationError::store(RotationStep::Prepare, e))?;
        self.schedule_rotation_from(path, policy, &snapshot)
    }

    /// [`schedule_rotation`](Self::schedule_rotation) from a
    /// [`snapshot`](crate::SecretStore::snapshot) of the secret the caller
    /// has just read (for example to check its record first): no store call
    /// of its own. The last rotation time is since when the snapshot's
    /// current value has been current ([`SecretRecord::current_since`]).
    pub fn schedule_rotation_from(
        &self,
        path: &SecretPath,
        policy: impl Into<Arc<RotationPolicy>>,
        snapshot: &crate::Snapshot,
    ) -> Result<ScheduleInfo, RotationError> {
        let policy = policy.into();
        self.inner.validate(&policy)?;
        let since = SecretRecord::read_brief(&snapshot.metadata).current_since(&snapshot.current);
        self.schedule_at(path, policy, since, Some(&snapshot.metadata))
    }

    /// Brings `path`'s schedule up to date with a [`snapshot`](crate::SecretStore::snapshot)
    /// the caller has just read (a daemon's periodic recheck of secrets it
    /// already schedules), with no store call of its own:
    ///
    /// - a rotation made elsewhere (a newer current version) moves the next
    ///   due time;
    /// - a quarantine recorded elsewhere holds the schedule, until
    ///   [`sync_quarantines`](Self::sync_quarantines) finds it lifted;
    /// - a retire step recorded elsewhere is noted for the retire pass and
    ///   [`next_due`](Self::next_due) (its credential is revoked at its
    ///   deadline, not at the secret's next rotation).
    ///
    /// Nothing else changes: a pause, a failure count or a quarantine
    /// decided here stay. A journal in the snapshot is the caller's to
    /// [`recover`](Self::recover). `None` when `path` is not scheduled.
    pub fn refresh_schedule(&self, path: &SecretPath, snapshot: &crate::Snapshot) -> Option<ScheduleRefresh> {
        let mut refresh = ScheduleRefresh::default();
        {
            let mut t = lock(&self.inner.schedules);
            let id = t.lookup(path.as_str())?;
            let s = t.slot(id)?;
            // A rotation of it here brings the schedule up to date itself.
            if s.flags & RUNNING != 0 {
                return Some(refresh);
            }
            let (policy, last_ns, held) = (s.policy.clone(), s.last_ns, s.flags & (PAUSED | QUARANTINED) != 0);
            let record = SecretRecord::read_brief(&snapshot.metadata);
            let created = record.current_since(&snapshot.current);
            if schedule::to_ns(created) > last_ns {
                t.set_last(id, schedule::to_ns(created));
                if !held {
                    t.set_next(id, policy.and_then(|p| p.next_due(created, jitter_key(path))));
                }
                refresh.moved = true;
            }
            if let Some(q) = record.quarantine
                && t.quarantine_of(id).is_none()
            {
                t.set_failures(id, q.failures);
                t.quarantine(id, Quarantine { since: q.since, failures: q.failures, reason: q.reason });
                t.set_next(id, None);
                refresh.quarantined = true;
            }
        }
        refresh.retire_noted = self.inner.note_retire(path, &snapshot.metadata, None);
        Some(refresh)
    }

    fn schedule_at(
        &self,
        path: &SecretPath,
        policy: Arc<RotationPolicy>,
        last: DateTime<Utc>,
        metadata: Option<&crate::Metadata>,
    ) -> Result<ScheduleInfo, RotationError> {
        if policy.strategy() == RotationStrategy::DualWrite {
            // A retire step another process left behind is this one's now:
            // noted from the metadata just read, else found by the retire
            // pass's own read.
            match metadata {
                Some(m) => {
                    self.inner.note_retire(path, m, None);
                }
                None => {
                    lock(&self.inner.retiring).entry(path.clone()).or_default();
                }
            }
        }
        let next = policy.next_due(last, jitter_key(path));
        let info = {
            let mut t = lock(&self.inner.schedules);
            let id = t.upsert(path, policy, schedule::to_ns(last));
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
    ///
    /// While the store is unavailable, nothing is due before the next probe
    /// (see [`store_health`](Self::store_health)).
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let rotation = lock(&self.inner.schedules).next_due().map(schedule::from_ns);
        let retire = lock(&self.inner.retiring).values().filter_map(|r| r.deadline).min();
        let due = match (rotation, retire) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match self.inner.next_probe() {
            Some(probe) => due.map(|d| d.max(probe)),
            None => due,
        }
    }

    /// How long a rotation's journal with `policy` counts as live: a
    /// journal of another process older than this belongs to a crashed
    /// rotation, which the next rotation (or [`recover`](Self::recover))
    /// cleans up. The builder's `stale_rotation_after`, else derived from the
    /// policy's verification timeouts and retry backoff.
    pub fn stale_limit(&self, policy: &RotationPolicy) -> std::time::Duration {
        self.inner.stale_limit(policy)
    }

    /// Stops automatic rotation of `path` until [`resume`](Self::resume).
    pub fn pause_schedule(&self, path: &SecretPath) -> Result<(), RotationError> {
        let mut t = lock(&self.inner.schedules);
        let id = t.lookup(path.as_str()).ok_or_else(|| RotationError::NotScheduled { path: path.clone() })?;
        t.set_flag(id, PAUSED, true);
        Ok(())
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
        let inner = &*self.inner;
        let now = inner.clock.now();
        // While the store is away, due secrets stay due and only one probe
        // rotation runs per probe interval.
        let down = inner.store_down();
        if down && inner.next_probe().is_some_and(|t| now < t) {
            return Vec::new();
        }
        if !down {
            self.process_retirements().await;
        }
        let mut jobs = lock(&inner.schedules).take_due(schedule::to_ns(now));
        if jobs.is_empty() {
            return Vec::new();
        }
        let mut results = Vec::new();
        if down {
            let probe = JobGuard { inner, job: Some(jobs.remove(0)) };
            let rest: Vec<JobGuard<'_>> = jobs.drain(..).map(|job| JobGuard { inner, job: Some(job) }).collect();
            results.extend(run_guarded(probe).await);
            if inner.store_down() {
                // Still away: the others go back into the queue, due now
                // (dropping their guards does that).
                drop(rest);
                return results;
            }
            jobs = rest.into_iter().filter_map(|mut g| g.job.take()).collect();
            self.process_retirements().await;
        }
        // Each job is guarded from here on: if this future is dropped (a
        // shutdown), jobs not finished are put back in the queue, due now.
        // The guards are mapped by a named function, not a closure: a closure
        // over `JobGuard<'_>` trips rustc's higher-ranked lifetime inference
        // and the future is then not `Send` enough for `tokio::spawn` (the
        // facade's tests/spawn.rs checks this). Futures are created lazily,
        // as `buffer_unordered` has room.
        let jobs: Vec<JobGuard<'_>> = jobs.into_iter().map(|job| JobGuard { inner, job: Some(job) }).collect();
        let ran: Vec<RotationResult> = futures::stream::iter(jobs)
            .take_until(stop)
            .map(run_guarded)
            .buffer_unordered(inner.max_concurrency)
            .filter_map(futures::future::ready)
            .collect()
            .await;
        results.extend(ran);
        results
    }
}

/// A due job taken out of the queue. Dropped before its rotation finished
/// (the `process_scheduled_rotations` future was dropped), it puts the
/// schedule back, due at once, so that a shutdown never strands a secret.
/// Runs one guarded job (a named function so that its signature is properly
/// higher-ranked; see `process_scheduled_rotations`).
pub(super) fn run_guarded(guard: JobGuard<'_>) -> impl Future<Output = Option<RotationResult>> + Send + '_ {
    let inner = guard.inner;
    inner.run_job(guard)
}

pub(super) struct JobGuard<'a> {
    pub(super) inner: &'a Inner,
    pub(super) job: Option<Job>,
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
    pub(super) fn record_stats(&self, r: &RotationResult) {
        if !r.up_to_date {
            lock(&self.stats).record(r.outcome, r.rollback_performed, r.duration);
        }
    }

    /// After a manual or emergency rotation: count it, note what it learnt
    /// about the store, and bring a schedule of the same secret up to date:
    /// moved on after a success (clearing a quarantine), quarantined when
    /// the record says so.
    pub(super) fn after_manual(&self, r: &RotationResult) {
        self.record_stats(r);
        self.note_store(r);
        let resumed = {
            let mut t = lock(&self.schedules);
            let Some(id) = t.lookup(r.path.as_str()) else { return };
            let Some(s) = t.slot(id) else { return };
            if s.flags & RUNNING != 0 {
                return;
            }
            let policy = s.policy.clone();
            if r.success() {
                let last = r.current_created_at.unwrap_or(r.completed_at);
                t.set_last(id, schedule::to_ns(last));
                t.set_failures(id, 0);
                let resumed = t.unquarantine(id);
                let next = policy.and_then(|p| p.next_due(last, jitter_key(&r.path)));
                t.set_next(id, next);
                resumed
            } else {
                if r.outcome.is_failure() {
                    t.note_failure(id, r.completed_at, r.failure_reason());
                }
                if let Some(n) = r.consecutive_failures {
                    t.set_failures(id, n);
                }
                if r.quarantined && t.quarantine_of(id).is_none() {
                    let reason = r.error.as_ref().map(ToString::to_string).unwrap_or_else(|| r.outcome.to_string());
                    let failures = r.consecutive_failures.unwrap_or(0);
                    t.quarantine(id, Quarantine { since: r.completed_at, failures, reason });
                    t.set_next(id, None);
                }
                false
            }
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
    pub(super) async fn run_job(&self, mut guard: JobGuard<'_>) -> Option<RotationResult> {
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
            rotated_before_ns: Some(job.last_ns),
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
                let at =
                    |d: std::time::Duration| chrono::Duration::from_std(d).ok().and_then(|d| now.checked_add_signed(d));
                let soon = |n: u32| at(policy.retry().backoff_equal_jitter(n, rand::random::<f64>()));
                match r.outcome {
                    RotationOutcome::Rotated | RotationOutcome::RotatedElsewhere => {
                        if r.success() {
                            t.count_rotation(job.slot);
                        }
                        let last = r.current_created_at.unwrap_or(now);
                        t.set_last(job.slot, schedule::to_ns(last));
                        t.set_failures(job.slot, 0);
                        t.set_next(job.slot, policy.next_due(last, key));
                    }
                    RotationOutcome::AlreadyRotating => t.set_next(job.slot, soon(1)),
                    // Looked at again when the other process's journal would
                    // count as crashed: a live rotation is done well before
                    // (the secret then turns out rotated elsewhere, no call
                    // wasted on it meanwhile), and a dead one's leftovers are
                    // cleaned up as soon as they may be.
                    RotationOutcome::InProgressElsewhere => {
                        let stale_at = match &r.error {
                            Some(RotationError::InProgressElsewhere { stale_at, .. }) => *stale_at,
                            _ => None,
                        };
                        t.set_next(job.slot, stale_at.filter(|s| *s > now).or_else(|| soon(1)));
                    }
                    RotationOutcome::OutsideWindow => {
                        t.set_next(job.slot, policy.window().map(|w| w.next_open(now)).or_else(|| soon(1)));
                    }
                    // Not the secret's failure: it stays due, and the
                    // scheduler probes the store until it answers.
                    RotationOutcome::StoreUnavailable => t.set_next(job.slot, Some(now)),
                    RotationOutcome::Deferred => {
                        let until = match &r.error {
                            Some(RotationError::RetirePending { until, .. }) => Some(*until),
                            _ => at(policy.failure_retry_delay(1, rand::random::<f64>())),
                        };
                        t.set_next(job.slot, until);
                    }
                    RotationOutcome::Quarantined | RotationOutcome::Failed | RotationOutcome::RolledBack => {
                        // The record beside the secret counts failures (only
                        // those that reached the target or the verifiers)
                        // and decides quarantine for every process; without
                        // one (its write failed), count here.
                        if r.outcome.is_failure() {
                            t.note_failure(job.slot, r.completed_at, r.failure_reason());
                        }
                        let counted = failures.saturating_add(u32::from(r.counts_towards_quarantine()));
                        let failures = r.consecutive_failures.unwrap_or(counted);
                        t.set_failures(job.slot, failures);
                        let quarantine = r.quarantined
                            || r.outcome == RotationOutcome::Quarantined
                            || (r.consecutive_failures.is_none() && failures >= policy.quarantine_after());
                        if quarantine {
                            let reason =
                                r.error.as_ref().map(ToString::to_string).unwrap_or_else(|| r.outcome.to_string());
                            if t.quarantine_of(job.slot).is_none() {
                                quarantined = Some((failures, reason.clone()));
                            }
                            t.quarantine(job.slot, Quarantine { since: now, failures, reason });
                            t.set_next(job.slot, None);
                        } else {
                            let delay = policy.failure_retry_delay(failures.max(1), rand::random::<f64>());
                            t.set_next(job.slot, at(delay));
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
        self.note_store(&r);
        Some(r)
    }
}
