//! The audit trail: a structured [`AuditEvent`] for every state change,
//! delivered to [`AuditSink`]s.
//!
//! Events carry ids, paths, versions, steps, timings and error kinds — never a
//! secret value (no field can hold one: there is no [`SecretString`](crate::SecretString)
//! in an event, and error messages are secret-free by contract).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::RotationStep;
use crate::policy::RotationStrategy;
use crate::{RotationId, SecretPath, VersionId};

/// What started a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RotationTrigger {
    /// A direct call (`rotate_secret`).
    Manual,
    /// The scheduler found the secret due.
    Schedule,
    /// An emergency rotation, with its reason.
    Emergency {
        /// Why (e.g. "key leaked in CI log #4411").
        reason: String,
    },
}

impl fmt::Display for RotationTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Manual => f.write_str("manual"),
            Self::Schedule => f.write_str("schedule"),
            Self::Emergency { reason } => write!(f, "emergency ({reason})"),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEventKind {
    /// A rotation started (nothing written yet).
    Started,
    /// A rotation left behind by a crash was cleaned up.
    Recovered,
    /// The candidate was staged.
    Staged,
    /// The new value was written as current (immediate strategy).
    Written,
    /// The candidate was applied on the credential target.
    Applied,
    /// Verification started.
    Verifying,
    /// Every verification test passed.
    Verified,
    /// A verification test failed or timed out.
    VerificationFailed,
    /// The staged candidate was promoted to current.
    Promoted,
    /// The target accepted the new current value after promotion.
    Confirmed,
    /// A failed candidate was discarded.
    Discarded,
    /// The previous value was made current again.
    RolledBack,
    /// The target was brought back to the store's current value.
    Revoked,
    /// The rotation journal was cleared.
    CleanedUp,
    /// A store or target call failed transiently and will be retried.
    Retrying,
    /// A step failed (the rotation will undo what it did).
    StepFailed,
    /// The rotation succeeded.
    Succeeded,
    /// The rotation failed (see `error`).
    Failed,
    /// A compare-and-swap lost: another process rotated the secret.
    Conflict,
    /// This process is already rotating the secret.
    AlreadyRotating,
    /// Another process is rotating the secret.
    InProgressElsewhere,
    /// The rotation window is closed.
    OutsideWindow,
    /// A schedule was added or replaced.
    Scheduled,
    /// A schedule was removed.
    Unscheduled,
    /// A due secret was found already rotated (by another process), or its
    /// rotation was postponed; its next due time was recomputed.
    Rescheduled,
    /// A scheduled secret failed too many times in a row and is quarantined.
    Quarantined,
    /// A quarantined secret was resumed.
    Resumed,
    /// A dual-write rotation's old credential was retired (revoked on the
    /// target) after its grace period or once every consumer moved.
    Retired,
    /// A retire step failed; the record stays and the next pass retries.
    RetireFailed,
    /// The rotation could not reach the store (unreachable, sealed,
    /// throttled): not a failure of the secret; it is tried again when the
    /// store answers.
    StoreUnavailable,
    /// The rotation was deferred (a dual-write retire step is still
    /// pending); the error says until when.
    Deferred,
    /// A scheduled rotation found the secret quarantined in the store and
    /// did nothing.
    SkippedQuarantined,
}

impl AuditEventKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Recovered => "recovered",
            Self::Staged => "staged",
            Self::Written => "written",
            Self::Applied => "applied",
            Self::Verifying => "verifying",
            Self::Verified => "verified",
            Self::VerificationFailed => "verification_failed",
            Self::Promoted => "promoted",
            Self::Confirmed => "confirmed",
            Self::Discarded => "discarded",
            Self::RolledBack => "rolled_back",
            Self::Revoked => "revoked",
            Self::CleanedUp => "cleaned_up",
            Self::Retrying => "retrying",
            Self::StepFailed => "step_failed",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Conflict => "conflict",
            Self::AlreadyRotating => "already_rotating",
            Self::InProgressElsewhere => "in_progress_elsewhere",
            Self::OutsideWindow => "outside_window",
            Self::Scheduled => "scheduled",
            Self::Unscheduled => "unscheduled",
            Self::Rescheduled => "rescheduled",
            Self::Quarantined => "quarantined",
            Self::Resumed => "resumed",
            Self::Retired => "retired",
            Self::RetireFailed => "retire_failed",
            Self::StoreUnavailable => "store_unavailable",
            Self::Deferred => "deferred",
            Self::SkippedQuarantined => "skipped_quarantined",
        }
    }
}

impl fmt::Display for AuditEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as recorded in an event: its kind and its (secret-free) message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AuditError {
    /// [`RotationError::kind`](crate::RotationError::kind) or
    /// [`StoreError::kind`](crate::StoreError::kind).
    pub kind: String,
    /// The message.
    pub message: String,
}

/// One state change. Serializes to a flat JSON object; `None` fields are
/// left out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AuditEvent {
    /// When (on the manager's clock).
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: AuditEventKind,
    /// The secret.
    pub path: SecretPath,
    /// The rotation, for rotation events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_id: Option<RotationId>,
    /// The strategy, for rotation events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<RotationStrategy>,
    /// What started the rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<RotationTrigger>,
    /// The step the event is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<RotationStep>,
    /// The version current when the rotation started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_version: Option<VersionId>,
    /// The candidate / new current version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_version: Option<VersionId>,
    /// Time since the rotation started, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_ms")]
    pub elapsed: Option<Duration>,
    /// Retry attempt number, for `retrying`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The error, for failure events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<AuditError>,
    /// Free text: a verifier's name, a quarantine reason, a recovery summary.
    /// Never a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

fn ser_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64() * 1000.0),
        None => s.serialize_none(),
    }
}

impl AuditEvent {
    /// An event with only the time, kind and path set.
    pub fn new(at: DateTime<Utc>, kind: AuditEventKind, path: SecretPath) -> Self {
        Self {
            at,
            kind,
            path,
            rotation_id: None,
            strategy: None,
            trigger: None,
            step: None,
            old_version: None,
            new_version: None,
            elapsed: None,
            attempt: None,
            error: None,
            detail: None,
        }
    }
}

/// Receives audit events. Object safe; must not block (an async sink hands
/// the event to a channel or task of its own).
pub trait AuditSink: fmt::Debug + Send + Sync + 'static {
    /// Records one event.
    fn record(&self, event: &AuditEvent);

    /// Whether this sink wants events at all right now. When every sink says
    /// no, the manager does not even build them.
    fn enabled(&self) -> bool {
        true
    }
}

/// Writes each event as a `tracing` event (target `rekey::audit`, level INFO,
/// WARN for failures), with structured fields. The default sink.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingAuditSink;

impl AuditSink for TracingAuditSink {
    fn record(&self, e: &AuditEvent) {
        let rotation_id = e.rotation_id.map(|r| r.to_string());
        let strategy = e.strategy.map(|s| s.to_string());
        let trigger = e.trigger.as_ref().map(ToString::to_string);
        let old = e.old_version.as_ref().map(VersionId::as_str);
        let new = e.new_version.as_ref().map(VersionId::as_str);
        let step = e.step.map(RotationStep::as_str);
        let elapsed_ms = e.elapsed.map(|d| d.as_secs_f64() * 1000.0);
        let error_kind = e.error.as_ref().map(|x| x.kind.as_str());
        let error = e.error.as_ref().map(|x| x.message.as_str());
        let failure = matches!(
            e.kind,
            AuditEventKind::Failed
                | AuditEventKind::StepFailed
                | AuditEventKind::VerificationFailed
                | AuditEventKind::Quarantined
                | AuditEventKind::Retrying
        );
        macro_rules! emit {
            ($lvl:expr) => {
                tracing::event!(
                    target: "rekey::audit",
                    $lvl,
                    event = e.kind.as_str(),
                    path = e.path.as_str(),
                    rotation_id,
                    strategy,
                    trigger,
                    step,
                    old_version = old,
                    new_version = new,
                    elapsed_ms,
                    attempt = e.attempt,
                    error_kind,
                    error,
                    detail = e.detail.as_deref(),
                    "rotation {}", e.kind.as_str()
                )
            };
        }
        if failure {
            emit!(tracing::Level::WARN);
        } else {
            emit!(tracing::Level::INFO);
        }
    }

    fn enabled(&self) -> bool {
        tracing::enabled!(target: "rekey::audit", tracing::Level::WARN)
    }
}

/// Keeps every event in memory, for tests and for showing recent history.
///
/// ```
/// use rekey_core::{AuditEvent, AuditEventKind, AuditSink, MemoryAuditSink};
/// let sink = MemoryAuditSink::new();
/// sink.record(&AuditEvent::new(chrono::Utc::now(), AuditEventKind::Started, "a/b".parse().unwrap()));
/// assert_eq!(sink.kinds(), [AuditEventKind::Started]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryAuditSink {
    events: Arc<Mutex<Vec<AuditEvent>>>,
}

impl MemoryAuditSink {
    /// An empty sink. Clones share the same events.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every event so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The kinds of every event so far, in order.
    pub fn kinds(&self) -> Vec<AuditEventKind> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|e| e.kind).collect()
    }

    /// The events of one rotation, in order.
    pub fn for_rotation(&self, id: RotationId) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|e| e.rotation_id == Some(id))
            .cloned()
            .collect()
    }

    /// Forgets every event.
    pub fn clear(&self) {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

impl AuditSink for MemoryAuditSink {
    fn record(&self, event: &AuditEvent) {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).push(event.clone());
    }
}
