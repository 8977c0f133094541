//! Recovering from a rotation journal found at the start: in progress elsewhere, or a crashed rotation to clean up.

use super::audit::AuditEventKind;
use super::consumers::RetireRecord;
use super::context::{Exec, Run};
use super::error::{RotationError, RotationStep};
use super::journal::{RecoveryDecision, RotationJournal, recovery_decision};
use super::manager::RotationManager;
use super::result::RotationOutcome;
use super::shared::{Inner, fresh_rotation_id};
use crate::policy::RotationStrategy;
use crate::record::{HistoryEvent, RecordUpdate, SecretRecord};
use crate::{Metadata, MetadataPatch, SecretVersion, StoreError, VersionSelector};

/// What [`RotationManager::recover`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recovery {
    /// No rotation journal: nothing to do.
    Nothing,
    /// A crashed rotation was cleaned up (its candidate discarded, an
    /// unchecked immediate value rolled back, the target brought back).
    CleanedUp,
    /// A live rotation of another process holds the journal; nothing was
    /// touched.
    InProgressElsewhere,
}

impl RotationManager {
    /// Cleans up after a rotation of `path` that crashed (this process's, or
    /// another's whose journal is stale): what every rotation does first,
    /// without rotating. A daemon can call it at start-up for every secret
    /// it schedules. Uses the secret's binding (for the target) and its
    /// scheduled policy, else the default policy, else the defaults, for the
    /// stale limit and retries.
    pub async fn recover(&self, path: &crate::SecretPath) -> Result<Recovery, RotationError> {
        let Some(_guard) = self.inner.try_guard(path) else {
            return Ok(Recovery::InProgressElsewhere);
        };
        self.recover_held(path).await.map(|(r, _)| r)
    }

    /// [`recover`](Self::recover) for a caller that holds the secret's
    /// in-process guard; with the reason when a rotation is in progress
    /// elsewhere.
    pub(super) async fn recover_held(
        &self,
        path: &crate::SecretPath,
    ) -> Result<(Recovery, Option<RotationError>), RotationError> {
        let inner = &*self.inner;
        let policy = inner.policy_for(path);
        let mut run = inner.detached_run(path, &policy);
        let step = RotationStep::Recover;
        let mut current = inner
            .retry_store(&mut run, step, || inner.store.read(path, &VersionSelector::Current))
            .await
            .map_err(|e| RotationError::store(step, e))?;
        let mut meta = inner
            .retry_store(&mut run, step, || inner.store.read_metadata(path))
            .await
            .map_err(|e| RotationError::store(step, e))?;
        let Some(journal) = RotationJournal::read(&meta) else { return Ok((Recovery::Nothing, None)) };
        let target = self.binding(path).and_then(|b| b.target_ref().cloned());
        match inner.recover(&mut run, &journal, &mut current, &mut meta, target.as_deref()).await? {
            Some(_) => Ok((Recovery::InProgressElsewhere, run.error.take())),
            None => Ok((Recovery::CleanedUp, None)),
        }
    }
}

impl Inner {
    /// Deals with a journal found at the start: `Ok(Some(_))` ends the
    /// rotation (in progress elsewhere), `Ok(None)` goes ahead.
    pub(super) async fn recover(
        &self,
        run: &mut Run<'_>,
        journal: &RotationJournal,
        current: &mut SecretVersion,
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
                run.error = Some(self.in_progress_elsewhere(run, rotation_id, since));
                Ok(Some(Exec::Outcome(RotationOutcome::InProgressElsewhere, false)))
            }
            RecoveryDecision::CleanUp { rotation_id, discard, went_current } => {
                // Whether the crashed rotation's candidate was taken off the
                // target by this recovery.
                let mut revoked = false;
                // A manual rollback gave the target the value it restores
                // before the store: the target keeps what the store serves.
                let rollback = journal.step == Some(RotationStep::Rollback);
                if rollback && let Some(t) = target {
                    self.undo_rollback(run, journal, current, t).await?;
                    revoked = true;
                }
                if let Some(v) = &discard {
                    // The target first: a revoke that fails leaves the
                    // candidate staged and journalled for the next attempt
                    // (discarded first, it could never be revoked again).
                    if let (Some(t), Some(p)) = (target, &pending) {
                        let secrets = [p.data.secret_parts(), current.data.secret_parts()].concat();
                        self.retry_target(run, RotationStep::Recover, &secrets, || t.revoke(&p.data, &current.data))
                            .await
                            .map_err(|e| RotationError::target(RotationStep::Recover, t.name(), e))?;
                        revoked = true;
                    }
                    self.retry_store(run, RotationStep::Recover, || self.store.discard(path, v))
                        .await
                        .map_err(|e| RotationError::store(RotationStep::Recover, e))?;
                }
                let before = meta.clone();
                RotationJournal::clear(meta);
                // An immediate rotation that crashed after its write, with
                // checks still to pass: its value is current but never
                // proved good, so it is rolled back (a value that has not
                // passed its checks never stays current).
                let unchecked = went_current
                    && journal.strategy.as_deref() == Some(RotationStrategy::Immediate.as_str())
                    && journal.checks != Some(false);
                let mut rolled_back = None;
                if unchecked
                    && let Some(base) = journal.base.clone()
                    && base != current.meta.id
                {
                    let step = RotationStep::Recover;
                    let candidate = current.clone();
                    let expected = candidate.meta.id.clone();
                    let promoted = self.retry_store(run, step, || self.store.promote(path, &base, &expected)).await;
                    // Settle a lost or conflicting answer by looking: the base
                    // value current again is what was wanted.
                    *current = self
                        .retry_store(run, step, || self.store.read(path, &VersionSelector::Current))
                        .await
                        .map_err(|e| RotationError::store(step, e))?;
                    if let Err(e) = promoted
                        && current.meta.id == expected
                    {
                        return Err(RotationError::store(step, e));
                    }
                    if let Some(t) = target {
                        let secrets = [candidate.data.secret_parts(), current.data.secret_parts()].concat();
                        let keep = &current.data;
                        self.retry_target(run, step, &secrets, || t.revoke(&candidate.data, keep))
                            .await
                            .map_err(|e| RotationError::target(step, t.name(), e))?;
                        revoked = true;
                    }
                    let mut e = HistoryEvent::new(now, "rolled_back", "recovery");
                    e.old_version = Some(expected.as_str().to_owned());
                    e.new_version = Some(current.meta.id.as_str().to_owned());
                    e.rotation_id = rotation_id.map(|r| r.to_string());
                    e.detail = Some("a crashed immediate rotation's unchecked value was rolled back".to_owned());
                    let mut u =
                        RecordUpdate { failed: Some(expected.clone()), events: vec![e], ..RecordUpdate::default() };
                    // A store that promotes by copying wrote a newer version
                    // with the base's value: it holds the value since the
                    // base did (schedules count from that, not from the copy).
                    if current.meta.id != base
                        && let Ok(versions) = self.retry_store(run, step, || self.store.list_versions(path)).await
                        && let Some(b) = versions.iter().find(|v| v.id == base)
                    {
                        u.good = Some(SecretRecord::read_brief(meta).good_for_copy(b, &current.meta.id));
                    }
                    u.apply(meta);
                    run.current_created_at = Some(SecretRecord::read_brief(meta).current_since(&current.meta));
                    run.old_version = Some(current.meta.id.clone());
                    rolled_back = Some(expected);
                }
                // Whatever the crashed rotation wrote that is not current now
                // (an immediate candidate that was rolled back, a staged one
                // that was discarded but is still listed) never passed its
                // checks as far as anyone knows: a rollback must never
                // restore it.
                if let Some(rid) = rotation_id {
                    let step = RotationStep::Recover;
                    let versions = self
                        .retry_store(run, step, || self.store.list_versions(path))
                        .await
                        .map_err(|e| RotationError::store(step, e))?;
                    // Only the previous version can be restored; a discarded
                    // candidate (still listed on AWS) cannot.
                    for v in versions.iter().filter(|v| v.rotation_id == Some(rid) && v.stages.previous) {
                        if rolled_back.as_ref() != Some(&v.id) {
                            RecordUpdate { failed: Some(v.id.clone()), ..RecordUpdate::default() }.apply(meta);
                        }
                    }
                    // A value it wrote that is not current (an immediate
                    // candidate its own undo already took out of the store)
                    // may still be on the target, if that undo could not
                    // reach the target: the target keeps the current value.
                    if let Some(t) = target
                        && !revoked
                        && let Some(v) =
                            versions.iter().rev().find(|v| v.rotation_id == Some(rid) && v.id != current.meta.id)
                        && let selector = VersionSelector::Id(v.id.clone())
                        && let Ok(candidate) = self.retry_store(run, step, || self.store.read(path, &selector)).await
                    {
                        let secrets = [candidate.data.secret_parts(), current.data.secret_parts()].concat();
                        let keep = &current.data;
                        self.retry_target(run, step, &secrets, || t.revoke(&candidate.data, keep))
                            .await
                            .map_err(|e| RotationError::target(step, t.name(), e))?;
                    }
                }
                let crashed_strategy = journal.strategy.as_deref().and_then(|s| s.parse::<RotationStrategy>().ok());
                if went_current
                    && rolled_back.is_none()
                    && let Some(strategy) = crashed_strategy.filter(|s| super::retire::retires_old(*s, target, false))
                    && let Some(base) = &journal.base
                    && *base != current.meta.id
                    && RetireRecord::read(meta).is_none()
                {
                    // Its old credential is still valid on the target: record
                    // the retire step it did not get to record, with the
                    // grace counted from when its value became current (none
                    // but dual-write's: the retire pass does it at once).
                    let grace = super::retire::retire_grace(strategy, run.policy, false);
                    let since = current.meta.created_at.min(now);
                    let deadline =
                        chrono::Duration::from_std(grace).ok().and_then(|g| since.checked_add_signed(g)).unwrap_or(now);
                    let rid = rotation_id.unwrap_or_else(fresh_rotation_id);
                    RetireRecord::new(base.clone(), current.meta.id.clone(), deadline, rid).write_into(meta);
                }
                let patch = MetadataPatch::diff(&before, meta);
                self.retry_store(run, RotationStep::Recover, || self.store.update_metadata(path, patch.clone()))
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
                    match (&rolled_back, went_current) {
                        (Some(v), _) => format!("; its unchecked value {v} had become current and was rolled back"),
                        (None, true) => "; its value had become current and stays so".to_owned(),
                        (None, false) if rollback && revoked => {
                            "; a manual rollback's target now accepts the store's current value".to_owned()
                        }
                        (None, false) => String::new(),
                    },
                );
                self.emit_detail(run, AuditEventKind::Recovered, Some(RotationStep::Recover), detail);
                Ok(None)
            }
        }
    }

    /// Recovery of a manual rollback's journal: the target gave the
    /// restored value before the store served it, and the rollback ended
    /// (crashed, or its undo failed) before the two agreed. The target keeps
    /// the store's current value and loses the restored one — unless the
    /// store serves the restored value now (the promotion happened).
    async fn undo_rollback(
        &self,
        run: &mut Run<'_>,
        journal: &RotationJournal,
        current: &SecretVersion,
        t: &dyn crate::CredentialTarget,
    ) -> Result<(), RotationError> {
        let step = RotationStep::Recover;
        let path = run.path;
        let restored = match &journal.restore {
            Some(id) => {
                let selector = VersionSelector::Id(id.clone());
                match self.retry_store(run, step, || self.store.read(path, &selector)).await {
                    Ok(v) => Some(v.data),
                    Err(StoreError::NotFound { .. }) => None,
                    Err(e) => return Err(RotationError::store(step, e)),
                }
            }
            None => None,
        };
        let keep = &current.data;
        let undone = match &restored {
            // The promotion happened: on a target that keeps several
            // credentials the replaced one goes, as the rollback would have
            // revoked it.
            Some(r) if r.same_as(keep) => {
                let Some(replaced) = journal.base.clone().filter(|_| self.keeps_both(path, t)) else {
                    return Ok(());
                };
                let selector = VersionSelector::Id(replaced);
                let old = match self.retry_store(run, step, || self.store.read(path, &selector)).await {
                    Ok(v) => v.data,
                    Err(StoreError::NotFound { .. }) => return Ok(()),
                    Err(e) => return Err(RotationError::store(step, e)),
                };
                if old.same_as(keep) {
                    return Ok(());
                }
                let secrets = [old.secret_parts(), keep.secret_parts()].concat();
                self.retry_target(run, step, &secrets, || t.revoke(&old, keep)).await
            }
            Some(r) => {
                let secrets = [r.secret_parts(), keep.secret_parts()].concat();
                self.retry_target(run, step, &secrets, || t.revoke(r, keep)).await
            }
            // The restored version is gone: the target is given the current
            // value (the restored one stays valid on a target that keeps
            // several credentials until the next rotation retires it).
            None => self.retry_target(run, step, &keep.secret_parts(), || t.apply(keep, None)).await,
        };
        undone.map_err(|e| RotationError::target(step, t.name(), e))
    }
}
