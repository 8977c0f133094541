//! Dual-write retirement: revoking the old credential once its grace period ends or every consumer moved.

use std::sync::{Arc, PoisonError};

use futures::StreamExt;
use futures::future::BoxFuture;

use super::audit::AuditEventKind;
use super::consumers::{RetireDecision, RetireReason, RetireRecord, RetireResult, retire_decision};
use super::context::{Executor, Run};
use super::error::{RotationError, RotationStep};
use super::manager::RotationManager;
use super::shared::{Inner, lock};
use crate::policy::{RotationPolicy, RotationStrategy};
use crate::{Metadata, MetadataPatch, SecretData, SecretPath, SecretVersion, StoreError, VersionId, VersionSelector};

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

/// Whether a rotation with `strategy` leaves the credential it replaced to
/// a retire step (a [`RetireRecord`] beside the secret until the target has
/// revoked it): dual-write always, after its grace period; staged and
/// immediate on a target that keeps several credentials at once (a Redis ACL
/// user), at once — so that, as on a target with one credential, only the
/// current value stays valid; blue-green only after an emergency (the other
/// set otherwise stays valid until the next rotation re-keys it, by design).
pub(super) fn retires_old(
    strategy: RotationStrategy,
    target: Option<&dyn crate::CredentialTarget>,
    emergency: bool,
) -> bool {
    match strategy {
        RotationStrategy::DualWrite => true,
        RotationStrategy::Staged | RotationStrategy::Immediate => {
            target.is_some_and(|t| t.capabilities().concurrent_credentials)
        }
        RotationStrategy::BlueGreen => emergency && target.is_some(),
    }
}

/// Whether `run` is an emergency rotation.
pub(super) fn emergency(run: &Run<'_>) -> bool {
    matches!(run.trigger, super::audit::RotationTrigger::Emergency { .. })
}

/// How long the credential a rotation with `strategy` replaced stays valid:
/// the policy's grace period for dual-write, none otherwise — and none
/// after an emergency rotation (the replaced credential is the one that
/// leaked).
pub(super) fn retire_grace(
    strategy: RotationStrategy,
    policy: &RotationPolicy,
    emergency: bool,
) -> std::time::Duration {
    match strategy {
        RotationStrategy::DualWrite if !emergency => policy.grace_period().unwrap_or_default(),
        _ => std::time::Duration::ZERO,
    }
}

/// Whether `run` revokes the credential it replaced before its last write
/// (rather than leaving a retire step for later): when it has one to retire
/// and no grace to give it.
pub(super) fn retires_at_once(run: &Run<'_>, target: Option<&dyn crate::CredentialTarget>) -> bool {
    let (strategy, emergency) = (run.policy.strategy(), emergency(run));
    target.is_some()
        && retires_old(strategy, target, emergency)
        && retire_grace(strategy, run.policy, emergency).is_zero()
}

/// Dual-write retirement.
impl Inner {
    /// Whether `target`, bound to `path`, keeps a replaced credential valid
    /// beside the new one: several passwords at once, or blue-green's two
    /// credential sets. Undoing or rolling back there must revoke it.
    pub(super) fn keeps_both(&self, path: &crate::SecretPath, target: &dyn crate::CredentialTarget) -> bool {
        target.capabilities().concurrent_credentials
            || self
                .bindings
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(path)
                .is_some_and(|b| b.credential_sets_ref().is_some())
    }

    /// Just before the last write of a successful staged or immediate
    /// rotation on a target that keeps several credentials: the credential
    /// it replaced is revoked now, so that its last write records no retire
    /// step and the rotation costs no store call more. If the revoke fails,
    /// that write records the step (no grace) for the retire pass, and the
    /// rotation itself has still succeeded. A crash in between leaves the
    /// journal: recovery records the step.
    pub(super) async fn retire_before_last_write(&self, run: &mut Run<'_>, x: &mut Executor<'_>) {
        let (Some(t), Some(old)) = (x.target.clone(), x.current_data.as_ref()) else { return };
        if old.same_as(&x.candidate) {
            x.retired_at_once = true;
            return;
        }
        let step = RotationStep::Retire;
        let secrets = [old.secret_parts(), x.candidate.secret_parts()].concat();
        let (candidate, base) = (&x.candidate, x.base.clone());
        match self.retry_target(run, step, &secrets, || t.revoke(old, candidate)).await {
            Ok(()) => {
                x.retired_at_once = true;
                let detail =
                    format!("revoked the replaced version {base} on the target; only the new value stays valid");
                self.emit_detail(run, AuditEventKind::Retired, Some(step), detail);
            }
            Err(e) => x.retire_error = Some(RotationError::target(step, t.name(), e)),
        }
    }

    /// A retire step failed: reported, and tried again after the policy's
    /// failure backoff (its wake-up in [`RotationManager::next_due`] moves
    /// there; a retire pass before then still tries it) — never in a loop
    /// against a target that is down.
    pub(super) fn retire_failed(&self, run: &Run<'_>, e: &RotationError) {
        self.emit(run, AuditEventKind::RetireFailed, Some(RotationStep::Retire), Some(e));
        let later = chrono::Duration::from_std(run.policy.failure_backoff())
            .ok()
            .and_then(|b| self.clock.now().checked_add_signed(b));
        if let Some(r) = lock(&self.retiring).get_mut(run.path) {
            r.deadline = later.or(r.deadline);
        }
    }

    /// The retire record a successful rotation leaves when it clears its
    /// journal (see [`retires_old`]).
    ///
    /// `keep` is the version that replaced the old one: the one made current
    /// (`None` when nothing was), or, for a record the promotion itself
    /// carries, the candidate (the store sets the promoted version's id in
    /// its place: `RecordWrite::new_version_keys`).
    pub(super) fn retire_record(
        &self,
        run: &Run<'_>,
        x: &Executor<'_>,
        keep: Option<VersionId>,
    ) -> Option<RetireRecord> {
        let emergency = emergency(run);
        if !retires_old(run.policy.strategy(), x.target.as_deref(), emergency) || x.rolled_back || x.retired_at_once {
            return None;
        }
        let keep = keep?;
        let now = self.clock.now();
        let grace = chrono::Duration::from_std(retire_grace(run.policy.strategy(), run.policy, emergency)).ok();
        let deadline = grace.and_then(|g| now.checked_add_signed(g)).unwrap_or(now);
        Some(RetireRecord::new(x.base.clone(), keep, deadline, run.id))
    }

    /// The target to retire `path`'s old credential on: the rotation's, else
    /// the registered binding's.
    pub(super) fn retire_target(&self, path: &SecretPath) -> Option<Arc<dyn crate::CredentialTarget>> {
        lock(&self.retiring)
            .get(path)
            .and_then(|r| r.target.clone())
            .or_else(|| self.bindings.read().unwrap_or_else(PoisonError::into_inner).get(path)?.target_ref().cloned())
    }

    /// Performs one retire step: revokes `record.retired` on `target`
    /// keeping `current`, then removes the record (unless it was replaced).
    /// Leaves the metadata as written in `meta`. Returns whether it revoked.
    pub(super) async fn retire_step(
        &self,
        run: &mut Run<'_>,
        record: &RetireRecord,
        reason: RetireReason,
        target: Option<&dyn crate::CredentialTarget>,
        current: &SecretVersion,
        meta: &mut Metadata,
    ) -> Result<bool, RotationError> {
        self.retire_step_with(run, record, reason, target, &current.meta, Some(&current.data), meta).await
    }

    /// [`retire_step`](Self::retire_step) when the current value may not be
    /// at hand (it is read only if a target needs it).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn retire_step_with(
        &self,
        run: &mut Run<'_>,
        record: &RetireRecord,
        reason: RetireReason,
        target: Option<&dyn crate::CredentialTarget>,
        current_meta: &crate::VersionMeta,
        current_data: Option<&SecretData>,
        meta: &mut Metadata,
    ) -> Result<bool, RotationError> {
        let path = run.path;
        let step = RotationStep::Retire;
        let mut revoked = false;
        // A retired version that is current again (rolled back by hand) is
        // not revoked: the store serves it.
        if let Some(t) = target
            && record.retired != current_meta.id
        {
            let id = VersionSelector::Id(record.retired.clone());
            let old = self
                .retry_store(run, step, || self.store.read(path, &id))
                .await
                .map_err(|e| RotationError::store(step, e))?;
            let read;
            let current_data = match current_data {
                Some(d) => d,
                None => {
                    read = self
                        .retry_store(run, step, || self.store.read(path, &VersionSelector::Current))
                        .await
                        .map_err(|e| RotationError::store(step, e))?;
                    &read.data
                }
            };
            if !old.data.same_as(current_data) {
                let secrets = [old.data.secret_parts(), current_data.secret_parts()].concat();
                self.retry_target(run, step, &secrets, || t.revoke(&old.data, current_data))
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
            let before = fresh.clone();
            RetireRecord::clear(&mut fresh);
            let patch = MetadataPatch::diff(&before, &fresh);
            self.retry_store(run, step, || self.store.update_metadata(path, patch.clone()))
                .await
                .map_err(|e| RotationError::store(step, e))?;
        }
        *meta = fresh;
        let detail = format!(
            "retired version {} ({reason}){}; {} stays valid",
            record.retired,
            if revoked { ", revoked on the target" } else { "" },
            current_meta.id,
        );
        self.emit_detail(run, AuditEventKind::Retired, Some(step), detail);
        Ok(revoked)
    }

    /// The retire pass for one secret; `None` when nothing was due.
    pub(super) async fn retire_one(
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
        let failed = |run: &Run<'_>, e: &RotationError| self.retire_failed(run, e);
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
