//! One rotation from start to finish: pre-flight, prepare the candidate, drive the state machine, settle the result.

use std::sync::{Arc, PoisonError};

use secrecy::SecretString;

use super::audit::{AuditError, AuditEvent, AuditEventKind, RotationTrigger};
use super::binding::SecretBinding;
use super::consumers::{PendingRetire, RetireRecord, pending_retire_decision};
use super::context::{Exec, Executor, Run};
use super::error::{RotationError, RotationStep};
use super::journal::RotationJournal;
use super::machine::{ActionOutcome, RotationAction, RotationState, RotationVerdict};
use super::request::RotationRequest;
use super::result::{RotationOutcome, RotationResult};
use super::schedule::{self};
use super::shared::{Inner, fresh_rotation_id, lock};
use super::strategy;
use super::strategy::next_action;
use crate::generator::GenerateSecret;
use crate::policy::{RotationPolicy, RotationStrategy, jitter_key};
use crate::record::SecretRecord;
use crate::{
    JOURNAL_KEY, MetadataPatch, SecretData, SecretPath, SecretVersion, Snapshot, StageOutcome, StageRequest, Staged,
    StoreError, VersionSelector,
};

impl Inner {
    pub(super) fn detached_run<'a>(&self, path: &'a SecretPath, policy: &'a RotationPolicy) -> Run<'a> {
        static MANUAL: RotationTrigger = RotationTrigger::Manual;
        Run {
            id: fresh_rotation_id(),
            path,
            policy,
            trigger: &MANUAL,
            started: self.clock.now(),
            began: std::time::Instant::now(),
            old_version: None,
            new_version: None,
            calls: 0,
            retries: 0,
            verification_passed: false,
            error: None,
            undo_error: None,
            current_created_at: None,
            record: SecretRecord::default(),
            consecutive_failures: None,
            quarantined: false,
        }
    }

    pub(super) async fn rotate_inner(&self, req: RotationRequest<'_>) -> RotationResult {
        let RotationRequest { path, policy, new_value, trigger, binding, rotated_before_ns } = req;
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
        let binding = binding.or_else(|| {
            let bindings = self.bindings.read().unwrap_or_else(PoisonError::into_inner);
            if bindings.is_empty() { None } else { bindings.get(path).cloned() }
        });
        // A supplied value must meet the constraints of the generator it
        // replaces (never empty, never weaker or differently shaped).
        if let Some(v) = &new_value {
            let generator = binding.as_deref().and_then(SecretBinding::generator_ref).unwrap_or(&self.generator);
            if let Err(e) = generator.check(v) {
                let e = RotationError::InvalidValue { path: path.clone(), source: Arc::new(e) };
                return self.early(path, strategy, &trigger, started, e, RotationOutcome::Failed);
            }
        }
        let Some(_guard) = self.try_guard(path) else {
            let e = RotationError::AlreadyRotating { path: path.clone() };
            return self.early(path, strategy, &trigger, started, e, RotationOutcome::AlreadyRotating);
        };

        let mut run = Run {
            id: fresh_rotation_id(),
            path,
            policy,
            trigger: &trigger,
            started,
            began: std::time::Instant::now(),
            old_version: None,
            new_version: None,
            calls: 0,
            retries: 0,
            verification_passed: false,
            error: None,
            undo_error: None,
            current_created_at: None,
            record: SecretRecord::default(),
            consecutive_failures: None,
            quarantined: false,
        };
        let outcome = self.execute(&mut run, binding.as_deref(), new_value, rotated_before_ns).await;
        self.finish(run, outcome)
    }

    pub(super) fn finish(&self, run: Run<'_>, outcome: Exec) -> RotationResult {
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
            calls: run.calls,
            retries: run.retries,
            rollback_performed,
            error,
            consecutive_failures: run.consecutive_failures,
            quarantined: run.quarantined,
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
                RotationOutcome::StoreUnavailable => AuditEventKind::StoreUnavailable,
                RotationOutcome::Deferred => AuditEventKind::Deferred,
                RotationOutcome::Quarantined => AuditEventKind::SkippedQuarantined,
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
                e.detail =
                    Some(format!("{}; {} store and target calls, {} of them retries", r.outcome, r.calls, r.retries));
                e
            });
        }
        r
    }
}

/// The executor: performs what the state machine decides.
impl Inner {
    /// Ends a rotation before anything was written. A store that is
    /// unavailable and a pending retire step are not failures.
    pub(super) fn fail_early(&self, run: &mut Run<'_>, error: RotationError) -> Exec {
        let outcome = if error.is_store_unavailable() {
            RotationOutcome::StoreUnavailable
        } else if matches!(error, RotationError::RetirePending { .. }) {
            RotationOutcome::Deferred
        } else {
            self.emit(run, AuditEventKind::StepFailed, None, Some(&error));
            RotationOutcome::Failed
        };
        run.error = Some(error);
        Exec::Outcome(outcome, false)
    }

    pub(super) async fn execute(
        &self,
        run: &mut Run<'_>,
        binding: Option<&SecretBinding>,
        mut new_value: Option<SecretString>,
        rotated_before_ns: Option<i64>,
    ) -> Exec {
        let path = run.path;
        let policy = run.policy;
        let target = binding.and_then(SecretBinding::target_ref).cloned();
        if policy.strategy() == RotationStrategy::DualWrite
            && let Some(t) = &target
            && let Some(message) = strategy::dual_write::target_refusal(t.name(), t.capabilities())
        {
            return self.fail_early(run, RotationError::InvalidBinding { path: path.clone(), message });
        }
        let field = binding.and_then(SecretBinding::field_name);

        // The fast path: a staged rotation asked for now, of a whole text
        // value with no target, stages before it reads anything — the store
        // reports what was current (and refuses over a journal or a secret
        // with fields), so a rotation costs a stage and a promotion.
        let fast = rotated_before_ns.is_none()
            && matches!(policy.strategy(), RotationStrategy::Staged | RotationStrategy::DualWrite)
            && field.is_none()
            && target.is_none();
        let mut journalled = None;
        if fast {
            let value = match new_value.take() {
                Some(v) => v,
                None => match binding.and_then(SecretBinding::generator_ref).unwrap_or(&self.generator).generate() {
                    Ok(v) => v,
                    Err(e) => return self.fail_early(run, RotationError::Generation(Arc::new(e))),
                },
            };
            let candidate = SecretData::Text(value);
            let line = RotationJournal::line(
                run.id,
                RotationStep::Stage,
                policy.strategy().as_str(),
                None,
                run.started,
                &self.instance,
                !policy.verification_tests().is_empty(),
            );
            // The first attempt hands the store its own copies; a retry makes
            // new ones (the engine keeps the candidate and the line).
            let c = &candidate;
            let mut first = Some((c.clone(), StageRequest::new(run.id).journal(line.clone(), false)));
            let id = run.id;
            let l = &line;
            match self
                .retry_store(run, RotationStep::Stage, || {
                    let (data, req) =
                        first.take().unwrap_or_else(|| (c.clone(), StageRequest::new(id).journal(l.clone(), false)));
                    self.store.stage_rotation(path, data, req)
                })
                .await
            {
                Ok(StageOutcome::Staged(s)) => {
                    return self.drive_staged(run, binding, candidate, line, s).await;
                }
                // A journal: recover first, on the slow path.
                Ok(StageOutcome::Journalled(snapshot)) => {
                    journalled = Some(snapshot);
                    if let SecretData::Text(value) = candidate {
                        new_value = Some(value);
                    }
                }
                Err(StoreError::InvalidInput { message }) => {
                    let e = RotationError::InvalidBinding { path: path.clone(), message };
                    return self.fail_early(run, e);
                }
                // Another rotation's candidate won the staging: a lost race,
                // never a failure. Nothing of ours was written.
                Err(StoreError::Conflict { .. }) => {
                    let e = self.staged_elsewhere(run, RotationStep::Stage).await;
                    self.emit(run, AuditEventKind::InProgressElsewhere, Some(RotationStep::Stage), Some(&e));
                    run.error = Some(e);
                    return Exec::Outcome(RotationOutcome::InProgressElsewhere, false);
                }
                Err(e) => return self.fail_early(run, RotationError::store(RotationStep::Stage, e)),
            }
        }

        // Prepare: the version every write is compared against, its value
        // and the metadata, in one snapshot.
        let snapshot = match journalled.filter(|s| s.data.is_some()) {
            Some(s) => s,
            None => match self.retry_store(run, RotationStep::Prepare, || self.store.snapshot(path, true)).await {
                Ok(s) => s,
                Err(e) => return self.fail_early(run, RotationError::store(RotationStep::Prepare, e)),
            },
        };
        let Snapshot { current: current_meta, data, metadata: mut meta, .. } = snapshot;
        let Some(data) = data else {
            let e = RotationError::store(RotationStep::Prepare, StoreError::unavailable("the snapshot has no value"));
            return self.fail_early(run, e);
        };
        let mut current = SecretVersion { meta: current_meta, data };
        run.old_version = Some(current.meta.id.clone());
        // Since when its value has been current (a failed rotation's undo
        // on a store that promotes by copying writes a newer version with
        // the old value: not a rotation).
        let since = SecretRecord::read_brief(&meta).current_since(&current.meta);
        run.current_created_at = Some(since);
        // Rotated since the schedule's record (by another process, or by
        // hand): move on — unless that rotation is itself due again.
        if let Some(before) = rotated_before_ns
            && schedule::to_ns(since) > before
            && !policy.is_due(since, jitter_key(path), self.clock.now())
        {
            // What that rotation left beside the secret is this manager's to
            // finish too: a crashed one's journal now, a retire step when
            // due (a one-shot process that recorded it is gone).
            if let Some(journal) = RotationJournal::read(&meta) {
                match Box::pin(self.recover(run, &journal, &mut current, &mut meta, target.as_deref())).await {
                    Ok(None) => {}
                    Ok(Some(exec)) => return exec,
                    Err(e) => return self.fail_early(run, e),
                }
            }
            self.note_retire(path, &meta, target.as_ref());
            return Exec::UpToDate;
        }
        self.emit(run, AuditEventKind::Started, Some(RotationStep::Prepare), None);
        run.record = SecretRecord::read_for_rotation(&meta);
        run.consecutive_failures = Some(run.record.failures);
        run.quarantined = run.record.quarantine.is_some();
        // Quarantine, wherever it was decided, stops scheduled rotations
        // (manual and emergency ones go ahead: a success lifts it).
        if *run.trigger == RotationTrigger::Schedule
            && let Some(q) = &run.record.quarantine
        {
            run.error = Some(RotationError::Quarantined { path: path.clone(), reason: q.reason.clone() });
            return Exec::Outcome(RotationOutcome::Quarantined, false);
        }
        if let Some(journal) = RotationJournal::read(&meta) {
            match self.recover(run, &journal, &mut current, &mut meta, target.as_deref()).await {
                Ok(None) => {}
                Ok(Some(exec)) => return exec,
                Err(e) => return self.fail_early(run, e),
            }
        }
        if let Err(e) = self.before_rotating(run, target.as_ref(), &current.meta, Some(&current.data), &mut meta).await
        {
            return e;
        }

        let candidate = match self.candidate(run, binding, &current, new_value).await {
            Ok(c) => c,
            Err(e) => return self.fail_early(run, e),
        };
        let state = RotationState::new(
            policy.strategy(),
            !policy.verification_tests().is_empty(),
            target.is_some(),
            policy.auto_rollback(),
        );
        let exec = Executor {
            candidate,
            field,
            base: current.meta.id.clone(),
            current_meta: current.meta,
            current_data: Some(current.data),
            meta,
            target,
            now_current: None,
            conflict_actual: None,
            rolled_back: false,
            restored_as: None,
            record_update: None,
            journal_line: None,
            journal_kept: false,
            carry: None,
            carried: false,
            apply_changed_nothing: false,
            retired_at_once: false,
            retire_error: None,
        };
        self.drive(run, state, exec).await
    }

    /// The fast path after its candidate is staged: the checks the slow path
    /// makes before writing, on the metadata the store reported, then the
    /// rest of the rotation.
    async fn drive_staged(
        &self,
        run: &mut Run<'_>,
        binding: Option<&SecretBinding>,
        candidate: SecretData,
        line: String,
        mut s: Staged,
    ) -> Exec {
        let policy = run.policy;
        run.old_version = Some(s.base.id.clone());
        run.current_created_at = Some(s.base.created_at);
        self.emit(run, AuditEventKind::Started, Some(RotationStep::Prepare), None);
        run.record = SecretRecord::read_for_rotation(&s.metadata);
        run.consecutive_failures = Some(run.record.failures);
        run.quarantined = run.record.quarantine.is_some();
        let mut state = RotationState::new(
            policy.strategy(),
            !policy.verification_tests().is_empty(),
            false,
            policy.auto_rollback(),
        );
        let mut exec = Executor {
            candidate,
            field: binding.and_then(SecretBinding::field_name),
            base: s.base.id.clone(),
            current_meta: s.base.clone(),
            current_data: None,
            meta: std::mem::take(&mut s.metadata),
            target: None,
            now_current: None,
            conflict_actual: None,
            rolled_back: false,
            restored_as: None,
            record_update: None,
            journal_line: Some(line),
            journal_kept: false,
            carry: None,
            carried: false,
            apply_changed_nothing: false,
            retired_at_once: false,
            retire_error: None,
        };
        self.staged(run, &mut exec, &s);
        state.record(RotationAction::Journal, ActionOutcome::Done);
        state.record(RotationAction::Stage, ActionOutcome::Done);
        // A pending dual-write retire step changes the metadata before this
        // rotation writes; without one (the common case) nothing is copied.
        let retire_pending = exec.meta.keys().any(|k| k.starts_with(super::consumers::RETIRE_PREFIX));
        let mut meta = if retire_pending { exec.meta.clone() } else { crate::Metadata::new() };
        let settle = if retire_pending {
            self.before_rotating(run, None, &s.base, None, &mut meta).await
        } else {
            self.before_rotating(run, None, &s.base, None, &mut exec.meta).await
        };
        if let Err(end) = settle {
            // Not now after all: the candidate goes (and its journal line).
            let id = s.candidate.id.clone();
            let path = run.path;
            let _ = self.retry_store(run, RotationStep::Discard, || self.store.discard(path, &id)).await;
            if exec.journal_kept {
                let mut patch = MetadataPatch::new();
                patch.remove(JOURNAL_KEY);
                let _ = self
                    .retry_store(run, RotationStep::Cleanup, || self.store.update_metadata(path, patch.clone()))
                    .await;
            }
            return end;
        }
        if retire_pending {
            // A retire step done first changed the metadata.
            for (k, v) in &meta {
                exec.meta.insert(k.clone(), v.clone());
            }
            exec.meta.retain(|k, _| meta.contains_key(k) || k == JOURNAL_KEY);
        }
        self.drive(run, state, exec).await
    }

    /// What a rotation settles before its first write: the dual-write retire
    /// step still pending (performed first when due or in an emergency, else
    /// the rotation is deferred). `Err` ends the rotation.
    async fn before_rotating(
        &self,
        run: &mut Run<'_>,
        target: Option<&Arc<dyn crate::CredentialTarget>>,
        current: &crate::VersionMeta,
        current_data: Option<&SecretData>,
        meta: &mut crate::Metadata,
    ) -> Result<(), Exec> {
        let path = run.path;
        self.note_retire(path, meta, target);
        // See `consumers::pending_retire_decision`.
        match pending_retire_decision(meta, self.clock.now(), super::retire::emergency(run)) {
            PendingRetire::None => Ok(()),
            PendingRetire::Refuse { until, behind } => {
                Err(self.fail_early(run, RotationError::RetirePending { path: path.clone(), until, behind }))
            }
            PendingRetire::RetireFirst { record, reason } => {
                let target = target.cloned().or_else(|| self.retire_target(path));
                self.retire_step_with(run, &record, reason, target.as_deref(), current, current_data, meta)
                    .await
                    .map(|_| ())
                    .map_err(|e| self.fail_early(run, e))
            }
        }
    }

    /// Remembers a retire step recorded beside `path` (for the retire pass
    /// and [`next_due`](super::RotationManager::next_due)); whether there
    /// is one.
    pub(super) fn note_retire(
        &self,
        path: &SecretPath,
        meta: &crate::Metadata,
        target: Option<&Arc<dyn crate::CredentialTarget>>,
    ) -> bool {
        let Some(record) = RetireRecord::read(meta) else { return false };
        let mut r = lock(&self.retiring);
        let entry = r.entry(path.clone()).or_default();
        entry.target = entry.target.take().or_else(|| target.cloned());
        entry.deadline = record.deadline;
        true
    }

    /// Drives the state machine to its end and names the outcome.
    async fn drive(&self, run: &mut Run<'_>, mut state: RotationState, mut exec: Executor<'_>) -> Exec {
        let path = run.path;
        let verdict = loop {
            let action = next_action(&state);
            if let RotationAction::Finish(v) = action {
                break v;
            }
            // The write that makes the candidate current carries the record
            // when nothing follows it (no target to confirm, no checks after
            // an immediate write); otherwise the journal's clearing write does.
            let last_write = match action {
                RotationAction::Promote => !state.has_target,
                RotationAction::Write => !state.has_target && !state.verify,
                _ => false,
            };
            if last_write {
                let mut done = state;
                done.record(action, ActionOutcome::Done);
                exec.carry = self.carry_record(run, &exec, &done);
            }
            if action == RotationAction::ClearJournal {
                if state.failure.is_none() && super::retire::retires_at_once(run, exec.target.as_deref()) {
                    // The credential it replaced, on a target that keeps
                    // several, with no grace (or after an emergency).
                    self.retire_before_last_write(run, &mut exec).await;
                }
                // The journal's clearing write also records the result.
                exec.record_update = self.record_update(run, &exec, &state);
            }
            let outcome = self.perform(run, &mut exec, action).await;
            state.record(action, outcome);
            state.apply_changed_nothing |= exec.apply_changed_nothing;
            if exec.carried {
                state.record(RotationAction::ClearJournal, ActionOutcome::Done);
                exec.carried = false;
            }
        };
        if let Some(e) = exec.retire_error.take() {
            // Recorded by the last write: the retire pass tries it again.
            self.retire_failed(run, &e);
        }
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
            // The store went away mid-way: not a failure of the secret (its
            // leftovers are cleaned up by the next run).
            _ if run.error.as_ref().is_some_and(RotationError::is_store_unavailable) => {
                RotationOutcome::StoreUnavailable
            }
            (RotationVerdict::RolledBack, _) => RotationOutcome::RolledBack,
            (RotationVerdict::Failed, _) => RotationOutcome::Failed,
        };
        Exec::Outcome(outcome, undone)
    }

    /// The candidate value: the supplied or generated value in the bound
    /// field (or the whole value), or for blue-green the inactive set.
    async fn candidate(
        &self,
        run: &mut Run<'_>,
        binding: Option<&SecretBinding>,
        current: &crate::SecretVersion,
        new_value: Option<SecretString>,
    ) -> Result<SecretData, RotationError> {
        let path = run.path;
        let field = binding.and_then(SecretBinding::field_name);
        let blue_green = run.policy.strategy() == RotationStrategy::BlueGreen;
        if !blue_green && field.is_none() && matches!(current.data, SecretData::Fields(_)) {
            let names: Vec<&str> = current.data.field_names().collect();
            return Err(RotationError::InvalidBinding {
                path: path.clone(),
                message: format!(
                    "the secret has several fields ({}); name the one to rotate (the binding's field)",
                    names.join(", ")
                ),
            });
        }
        let value = match new_value {
            Some(v) => v,
            None => {
                let generator = binding.and_then(SecretBinding::generator_ref).unwrap_or(&self.generator);
                generator.generate().map_err(|e| RotationError::Generation(Arc::new(e)))?
            }
        };
        let invalid =
            |e: &dyn std::fmt::Display| RotationError::InvalidBinding { path: path.clone(), message: e.to_string() };
        if blue_green {
            // The inactive set, named by the previous version (or the
            // binding's two sets), gets the new password.
            let previous = match self
                .retry_store(run, RotationStep::Prepare, || self.store.read(path, &VersionSelector::Previous))
                .await
            {
                Ok(p) => Some(p.data),
                Err(StoreError::NotFound { .. }) => None,
                Err(e) => return Err(RotationError::store(RotationStep::Prepare, e)),
            };
            let sets = binding.and_then(SecretBinding::credential_sets_ref);
            strategy::blue_green::candidate(&current.data, previous.as_ref(), sets, field, value)
                .map_err(|e| invalid(&e))
        } else {
            current.data.with_field(field, value).map_err(|e| invalid(&e))
        }
    }
}
