//! Performing one state-machine action against the store or the target, and settling ambiguous writes.

use super::audit::AuditEventKind;
use super::consumers::RetireRecord;
use super::context::{Executor, Run};
use super::error::{RotationError, RotationStep};
use super::journal::RotationJournal;
use super::machine::{ActionOutcome, RotationAction};
use super::shared::{Inner, Retiring, lock};
use crate::policy::RotationStrategy;
use crate::{
    JOURNAL_KEY, MetadataPatch, PromoteRequest, PutOptions, RecordWrite, StageOutcome, StageRequest, Staged,
    StoreError, VersionId, VersionMeta, VersionSelector,
};

impl Inner {
    pub(super) fn step_failed(&self, run: &mut Run<'_>, action: RotationAction, error: RotationError) {
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

    /// Whether the rotation has run so long (three quarters of the
    /// stale-rotation limit, on the monotonic clock) that another process
    /// may treat it as crashed: it then takes the rotation over (undoes the
    /// target, discards or replaces the candidate), so this one must not
    /// make its candidate current. This is what lets a store promote the
    /// value the caller staged without reading the candidate back
    /// ([`PromoteRequest::value`]): the only process that may replace a
    /// live rotation's candidate is one that judged it stale.
    fn overran(&self, run: &Run<'_>) -> Option<RotationError> {
        let limit = self.stale_limit(run.policy);
        let elapsed = run.began.elapsed();
        (elapsed >= limit / 4 * 3).then(|| RotationError::Overran { path: run.path.clone(), elapsed, limit })
    }

    pub(super) async fn perform(
        &self,
        run: &mut Run<'_>,
        x: &mut Executor<'_>,
        action: RotationAction,
    ) -> ActionOutcome {
        let path = run.path;
        let step = action.step();
        match action {
            RotationAction::Journal | RotationAction::ClearJournal => {
                // A patch of the metadata read at the start: the journal added,
                // or removed with the result recorded. No re-read: the patch
                // touches only this rotation's keys. When two processes start
                // the same rotation at the same instant, clearing may also drop
                // the other's journal (one key): that only weakens crash
                // detection for it; the compare-and-swap still decides who
                // wins, and the loser records nothing.
                let before = x.meta.clone();
                if action == RotationAction::Journal {
                    let first = if run.policy.strategy() == RotationStrategy::Immediate {
                        RotationStep::Write
                    } else {
                        RotationStep::Stage
                    };
                    // Whether the candidate must still pass checks (the
                    // verifiers, the target) after it is written: recovery
                    // of an immediate rotation then rolls it back.
                    let checks = !run.policy.verification_tests().is_empty() || x.target.is_some();
                    let line = RotationJournal::line(
                        run.id,
                        first,
                        run.policy.strategy().as_str(),
                        Some(&x.base),
                        run.started,
                        &self.instance,
                        checks,
                    );
                    if !journal_required(run, x) {
                        // The candidate is journal enough: the line goes with
                        // it, for a store that keeps it at no cost.
                        x.journal_line = Some(line);
                        return ActionOutcome::Done;
                    }
                    x.meta.insert(JOURNAL_KEY.to_owned(), line);
                    x.journal_kept = true;
                } else {
                    RotationJournal::clear(&mut x.meta);
                    if let Some(u) = &x.record_update {
                        u.apply(&mut x.meta);
                    }
                    // Dual-write: the retire step replaces the journal in
                    // the same write (see `strategy::dual_write`).
                    if let Some(record) = self.retire_record(run, x, x.now_current.clone()) {
                        record.write_into(&mut x.meta);
                    }
                }
                // Only the keys this rotation changes: a concurrent writer's
                // other keys (another rotation's record, an acknowledgement)
                // survive.
                let patch = MetadataPatch::diff(&before, &x.meta);
                let written = if patch.is_empty() {
                    Ok(())
                } else {
                    self.retry_store(run, step, || self.store.update_metadata(path, patch.clone())).await
                };
                match written {
                    Ok(()) => {
                        if action == RotationAction::ClearJournal {
                            self.recorded(run, x);
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
                let mut req = StageRequest::new(run.id);
                req.base = Some(x.current_meta.clone());
                req.metadata = Some(x.meta.clone());
                if let Some(line) = x.journal_line.clone() {
                    req = req.journal(line, false);
                }
                let c = &x.candidate;
                match self.retry_store(run, step, || self.store.stage_rotation(path, c.clone(), req.clone())).await {
                    Ok(StageOutcome::Staged(s)) => {
                        self.staged(run, x, &s);
                        ActionOutcome::Done
                    }
                    // Never with a base; a store that says so anyway has a
                    // rotation in flight.
                    Ok(StageOutcome::Journalled(_)) => {
                        let e = self.in_progress_elsewhere(run, None, None);
                        self.emit(run, AuditEventKind::InProgressElsewhere, Some(step), Some(&e));
                        run.error.get_or_insert(e);
                        ActionOutcome::Conflict
                    }
                    // Another rotation staged first (or the secret moved on):
                    // a lost race, never a failure.
                    Err(e @ StoreError::Conflict { .. }) => self.settle_stage(run, x, e).await,
                    Err(e) => {
                        self.step_failed(run, action, RotationError::store(step, e));
                        ActionOutcome::Failed
                    }
                }
            }
            RotationAction::Write => {
                if let Some(e) = self.overran(run) {
                    self.step_failed(run, action, e);
                    return ActionOutcome::Failed;
                }
                let opts = PutOptions::if_current(x.base.clone()).with_rotation(run.id);
                let c = &x.candidate;
                let nothing = RecordWrite::default();
                let record = x.carry.as_ref().unwrap_or(&nothing);
                let res = self
                    .retry_store(run, step, || self.store.put_rotation(path, c.clone(), opts.clone(), record))
                    .await;
                match res {
                    Ok(m) => {
                        x.now_current = Some(m.id.clone());
                        self.became_current(run, m);
                        self.emit(run, AuditEventKind::Written, Some(step), None);
                        self.carried(run, x);
                        ActionOutcome::Done
                    }
                    Err(e) => self.settle(run, x, action, e, None).await,
                }
            }
            RotationAction::Promote => {
                let Some(candidate_id) = run.new_version.clone() else {
                    return ActionOutcome::Failed;
                };
                if let Some(e) = self.overran(run) {
                    self.step_failed(run, action, e);
                    return ActionOutcome::Failed;
                }
                let nothing = RecordWrite::default();
                let base = &x.base;
                let record = x.carry.as_ref().unwrap_or(&nothing);
                let value = &x.candidate;
                let res = self
                    .retry_store(run, step, || {
                        let req =
                            PromoteRequest { candidate: &candidate_id, expected: base, value: Some(value), record };
                        self.store.promote_rotation(path, req)
                    })
                    .await;
                match res {
                    Ok(m) => {
                        x.now_current = Some(m.id.clone());
                        self.became_current(run, m);
                        self.emit(run, AuditEventKind::Promoted, Some(step), None);
                        self.carried(run, x);
                        ActionOutcome::Done
                    }
                    Err(e) => self.settle(run, x, action, e, Some(candidate_id)).await,
                }
            }
            RotationAction::Apply | RotationAction::Confirm => {
                let Some(t) = x.target.clone() else { return ActionOutcome::Done };
                let c = &x.candidate;
                let Some(old) = x.current_data.as_ref() else {
                    // Never: a target makes the rotation read the value.
                    self.step_failed(
                        run,
                        action,
                        RotationError::InvalidBinding {
                            path: path.clone(),
                            message: "the current value was not read".into(),
                        },
                    );
                    return ActionOutcome::Failed;
                };
                let res = if action == RotationAction::Apply {
                    let secrets = [c.secret_parts(), old.secret_parts()].concat();
                    self.retry_target(run, step, &secrets, || t.apply(c, Some(old))).await
                } else {
                    self.retry_target(run, step, &c.secret_parts(), || t.test(c)).await
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
                        x.apply_changed_nothing = action == RotationAction::Apply && e.changed_nothing();
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
                        x.restored_as = Some(m.id);
                        true
                    }
                    Err(e) => {
                        // Settle an ambiguous or conflicting rollback by looking.
                        match self.reread_current(run, step).await {
                            Some(c)
                                if c.meta.id == x.base
                                    || (c.meta.rotation_id != Some(run.id)
                                        && x.current_data.as_ref().is_some_and(|d| c.data.same_as(d))) =>
                            {
                                run.current_created_at = Some(c.meta.created_at);
                                x.restored_as = Some(c.meta.id);
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
                    None => match x.current_data.clone() {
                        Some(d) => d,
                        None => {
                            let e = RotationError::store(
                                step,
                                StoreError::unavailable("the current value could not be read"),
                            );
                            self.step_failed(run, action, e);
                            return ActionOutcome::Failed;
                        }
                    },
                };
                let c = &x.candidate;
                let secrets = [c.secret_parts(), keep.secret_parts()].concat();
                match self.retry_target(run, step, &secrets, || t.revoke(c, &keep)).await {
                    Ok(()) => {
                        self.emit(run, AuditEventKind::Revoked, Some(step), None);
                        ActionOutcome::Done
                    }
                    Err(e) => {
                        x.apply_changed_nothing = action == RotationAction::Apply && e.changed_nothing();
                        self.step_failed(run, action, RotationError::target(step, t.name(), e));
                        ActionOutcome::Failed
                    }
                }
            }
            RotationAction::Finish(_) => ActionOutcome::Done,
        }
    }

    /// Another process's rotation holds the secret: `rotation_id`, which
    /// started (or staged its candidate) at `since`, counts as crashed once
    /// the stale-rotation limit has passed since then.
    pub(super) fn in_progress_elsewhere(
        &self,
        run: &Run<'_>,
        rotation_id: Option<crate::RotationId>,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> RotationError {
        let limit = chrono::Duration::from_std(self.stale_limit(run.policy)).ok();
        RotationError::InProgressElsewhere {
            path: run.path.clone(),
            rotation_id: rotation_id.filter(|r| *r != run.id),
            stale_at: since.zip(limit).and_then(|(s, l)| s.checked_add_signed(l)),
            since,
        }
    }

    /// Staging found another rotation's candidate in the way: that
    /// rotation, as its candidate names it.
    pub(super) async fn staged_elsewhere(&self, run: &mut Run<'_>, step: RotationStep) -> RotationError {
        let path = run.path;
        let pending = self.retry_store(run, step, || self.store.read(path, &VersionSelector::Pending)).await.ok();
        let rotation_id = pending.as_ref().and_then(|p| p.meta.rotation_id);
        self.in_progress_elsewhere(run, rotation_id, pending.map(|p| p.meta.created_at))
    }

    pub(super) fn became_current(&self, run: &mut Run<'_>, m: VersionMeta) {
        run.current_created_at = Some(m.created_at);
        run.new_version = Some(m.id);
    }

    /// Staging lost a race: another rotation's candidate is staged, or the
    /// secret moved on. Either way the other rotation goes on and this one
    /// reports it — never as a failure.
    pub(super) async fn settle_stage(
        &self,
        run: &mut Run<'_>,
        x: &mut Executor<'_>,
        error: StoreError,
    ) -> ActionOutcome {
        let step = RotationStep::Stage;
        let path = run.path;
        let Some(c) = self.reread_current(run, step).await else {
            self.step_failed(run, RotationAction::Stage, RotationError::store(step, error));
            return ActionOutcome::Failed;
        };
        if c.meta.id != x.base {
            run.current_created_at = Some(c.meta.created_at);
            x.conflict_actual = Some(c.meta.id.clone());
            let e = RotationError::RotatedElsewhere {
                path: path.clone(),
                expected: x.base.clone(),
                actual: Some(c.meta.id),
            };
            self.emit(run, AuditEventKind::Conflict, Some(step), Some(&e));
            run.error.get_or_insert(e);
            return ActionOutcome::Conflict;
        }
        let e = self.staged_elsewhere(run, step).await;
        self.emit(run, AuditEventKind::InProgressElsewhere, Some(step), Some(&e));
        run.error.get_or_insert(e);
        ActionOutcome::Conflict
    }

    /// A write (`Write`) or promotion failed or lost its compare-and-swap:
    /// look at what is current to tell "it happened after all" (a retried
    /// call whose first attempt landed) from "someone else won" from "it
    /// failed".
    pub(super) async fn settle(
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
                let e = self.in_progress_elsewhere(run, p.meta.rotation_id, Some(p.meta.created_at));
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

    /// A candidate staged: what the store reported.
    pub(super) fn staged(&self, run: &mut Run<'_>, x: &mut Executor<'_>, s: &Staged) {
        run.new_version = Some(s.candidate.id.clone());
        if s.journal_kept
            && let Some(line) = x.journal_line.take()
        {
            // This rotation's last write removes it.
            x.meta.insert(JOURNAL_KEY.to_owned(), line);
            x.journal_kept = true;
        }
        if let Some(old) = &s.replaced {
            // The candidate a crashed rotation left (its own journal): gone.
            let detail = format!(
                "replaced the candidate {} left by rotation {} (staged {})",
                old.id,
                old.rotation_id.map(|r| r.to_string()).unwrap_or_else(|| "<unknown>".to_owned()),
                old.created_at.to_rfc3339()
            );
            self.emit_detail(run, AuditEventKind::Recovered, Some(RotationStep::Recover), detail);
        }
        self.emit(run, AuditEventKind::Staged, Some(RotationStep::Stage), None);
    }

    /// The write that made the candidate current also wrote the record.
    fn carried(&self, run: &mut Run<'_>, x: &mut Executor<'_>) {
        let Some(record) = x.carry.take() else { return };
        // After the last write, only its retire record is read from the
        // metadata (`recorded`): applying the rest would be copying for
        // nothing.
        let retire = |k: &str| k.starts_with(super::consumers::RETIRE_PREFIX);
        let touches_retire = !record.new_version_keys.is_empty()
            || record.must.iter().chain(record.may.iter()).any(|(k, _)| retire(k))
            || x.meta.keys().any(|k| retire(k));
        if let Some(id) = &x.now_current
            && touches_retire
        {
            record.apply_owned(id, &mut x.meta);
        }
        x.carried = true;
        self.recorded(run, x);
    }

    /// After the write that ends the rotation: the retire step it recorded
    /// is this manager's to do, and the audit trail says it is done.
    fn recorded(&self, run: &mut Run<'_>, x: &mut Executor<'_>) {
        if let Some(record) = RetireRecord::read(&x.meta) {
            let r = Retiring { target: x.target.clone(), deadline: record.deadline };
            lock(&self.retiring).insert(run.path.clone(), r);
        }
        self.emit(run, AuditEventKind::CleanedUp, Some(RotationStep::Cleanup), None);
    }
}

/// Whether a rotation must write its journal before its first write (even
/// at the cost of a call): when a crash would leave more than the store's
/// candidate to clean up — a credential target to bring back, or an
/// immediate rotation's unchecked value to roll back.
pub(super) fn journal_required(run: &Run<'_>, x: &Executor<'_>) -> bool {
    let checks = !run.policy.verification_tests().is_empty() || x.target.is_some();
    x.target.is_some() || (run.policy.strategy() == RotationStrategy::Immediate && checks)
}
