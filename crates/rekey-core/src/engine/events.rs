//! Audit events: building them from a rotation's bookkeeping and sending them to every sink.

use chrono::{DateTime, Utc};

use super::audit::{AuditError, AuditEvent, AuditEventKind, RotationTrigger};
use super::context::Run;
use super::error::{RotationError, RotationStep};
use super::result::{RotationOutcome, RotationResult};
use super::shared::{Inner, fresh_rotation_id};
use crate::SecretPath;
use crate::policy::RotationStrategy;

impl Inner {
    pub(super) fn any_sink(&self) -> bool {
        self.sinks.iter().any(|s| s.enabled())
    }

    pub(super) fn emit_with(&self, make: impl FnOnce() -> AuditEvent) {
        if self.any_sink() {
            let e = make();
            for s in &self.sinks {
                s.record(&e);
            }
        }
    }

    pub(super) fn event(&self, run: &Run<'_>, kind: AuditEventKind) -> Option<AuditEvent> {
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

    pub(super) fn emit(
        &self,
        run: &Run<'_>,
        kind: AuditEventKind,
        step: Option<RotationStep>,
        error: Option<&RotationError>,
    ) {
        if let Some(mut e) = self.event(run, kind) {
            e.step = step;
            e.error = error.map(|x| AuditError { kind: x.kind().to_owned(), message: x.to_string() });
            for s in &self.sinks {
                s.record(&e);
            }
        }
    }

    pub(super) fn emit_detail(&self, run: &Run<'_>, kind: AuditEventKind, step: Option<RotationStep>, detail: String) {
        if let Some(mut e) = self.event(run, kind) {
            e.step = step;
            e.detail = Some(detail);
            for s in &self.sinks {
                s.record(&e);
            }
        }
    }

    /// A result for a rotation that stopped before doing anything.
    pub(super) fn early(
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
            calls: 0,
            retries: 0,
            rollback_performed: false,
            error: Some(error),
            consecutive_failures: None,
            quarantined: false,
            current_created_at: None,
            up_to_date: false,
        };
        let kind = match outcome {
            RotationOutcome::AlreadyRotating => AuditEventKind::AlreadyRotating,
            RotationOutcome::OutsideWindow => AuditEventKind::OutsideWindow,
            RotationOutcome::StoreUnavailable => AuditEventKind::StoreUnavailable,
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
}
