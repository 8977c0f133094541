//! [`RotationResult`]: what one rotation did.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{RotationError, RotationTrigger};
use crate::policy::{RotationStatus, RotationStrategy};
use crate::{RotationId, SecretPath, VersionId};

/// How a rotation call ended, in one word.
///
/// | outcome | `status` | counts as |
/// |---|---|---|
/// | `Rotated` | `Success` | successful |
/// | `RolledBack` | `RolledBack` | failed (and a rollback) |
/// | `Failed` | `Failed` | failed |
/// | `AlreadyRotating` | `InProgress` | neither (`already_rotating`) |
/// | `InProgressElsewhere` | `InProgress` | neither (`already_rotating`) |
/// | `RotatedElsewhere` | `Pending` | neither (`conflicts`) |
/// | `OutsideWindow` | `Pending` | neither |
/// | `StoreUnavailable` | `Pending` | neither (`store_unavailable`) |
/// | `Deferred` | `Pending` | neither (`deferred`) |
/// | `Quarantined` | `Pending` | neither |
///
/// Only `Failed` and `RolledBack` are failures; of those, only the ones
/// that reached the credential target or the verifiers count towards
/// quarantine ([`RotationResult::counts_towards_quarantine`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RotationOutcome {
    /// The new value is current.
    Rotated,
    /// The rotation failed and was undone: the old value is current.
    RolledBack,
    /// The rotation failed (see the error for what is current).
    Failed,
    /// This process is already rotating the secret.
    AlreadyRotating,
    /// Another process is rotating the secret.
    InProgressElsewhere,
    /// Another process rotated the secret first (a lost compare-and-swap).
    RotatedElsewhere,
    /// The policy's rotation window is closed.
    OutsideWindow,
    /// The store could not be reached (unreachable, sealed, throttled,
    /// 5xx): not a failure of the secret. Nothing became current; anything
    /// left behind is cleaned up by the next run.
    StoreUnavailable,
    /// The rotation cannot proceed yet (a dual-write rotation's old
    /// credential still awaits retirement); the error says until when.
    Deferred,
    /// A scheduled rotation found the secret quarantined in the store (by
    /// another process): nothing was attempted.
    Quarantined,
}

impl RotationOutcome {
    /// The snake_case name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rotated => "rotated",
            Self::RolledBack => "rolled_back",
            Self::Failed => "failed",
            Self::AlreadyRotating => "already_rotating",
            Self::InProgressElsewhere => "in_progress_elsewhere",
            Self::RotatedElsewhere => "rotated_elsewhere",
            Self::OutsideWindow => "outside_window",
            Self::StoreUnavailable => "store_unavailable",
            Self::Deferred => "deferred",
            Self::Quarantined => "quarantined",
        }
    }

    /// The status that goes with the outcome (see the table above).
    pub fn status(self) -> RotationStatus {
        match self {
            Self::Rotated => RotationStatus::Success,
            Self::RolledBack => RotationStatus::RolledBack,
            Self::Failed => RotationStatus::Failed,
            Self::AlreadyRotating | Self::InProgressElsewhere => RotationStatus::InProgress,
            Self::RotatedElsewhere
            | Self::OutsideWindow
            | Self::StoreUnavailable
            | Self::Deferred
            | Self::Quarantined => RotationStatus::Pending,
        }
    }

    /// Whether it counts as a failed rotation.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::RolledBack | Self::Failed)
    }
}

impl fmt::Display for RotationOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rotated => "rotated",
            Self::RolledBack => "rolled back",
            Self::Failed => "failed",
            Self::AlreadyRotating => "already rotating",
            Self::InProgressElsewhere => "in progress elsewhere",
            Self::RotatedElsewhere => "rotated elsewhere",
            Self::OutsideWindow => "outside window",
            Self::StoreUnavailable => "store unavailable",
            Self::Deferred => "deferred",
            Self::Quarantined => "quarantined",
        })
    }
}

/// What one rotation did. Holds no secret value; serializes to JSON (the
/// error as `{kind, message}`, the duration in milliseconds).
///
/// Two results are equal when every public field is; errors are compared as
/// they serialize, by [`kind`](RotationError::kind) and message.
/// [`RotationResult::new`] builds one (for a test, or code that reports
/// results).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RotationResult {
    /// The rotation's id (also on every write it made and every audit event).
    pub rotation_id: RotationId,
    /// The secret.
    pub path: SecretPath,
    /// The strategy used.
    pub strategy: RotationStrategy,
    /// What started it.
    pub trigger: RotationTrigger,
    /// How it ended.
    pub outcome: RotationOutcome,
    /// The status ([`RotationOutcome::status`]).
    pub status: RotationStatus,
    /// The version current when the rotation started.
    pub old_version: Option<VersionId>,
    /// The new current version (on success), or the candidate that was
    /// written and then undone.
    pub new_version: Option<VersionId>,
    /// When it started (manager clock).
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub completed_at: DateTime<Utc>,
    /// How long it took.
    #[serde(serialize_with = "ser_ms")]
    pub duration: Duration,
    /// Whether every verification test (and the target's test) passed.
    /// `false` when none ran.
    pub verification_passed: bool,
    /// Store and target calls made, retries included (not the number of
    /// rotation attempts: one rotation makes several calls).
    pub calls: u32,
    /// Retries performed after transient failures.
    pub retries: u32,
    /// Whether the rotation undid its own writes (discarded its candidate,
    /// made the previous value current again, or restored the target).
    pub rollback_performed: bool,
    /// Why it did not succeed.
    #[serde(serialize_with = "super::error::serialize_error")]
    pub error: Option<RotationError>,
    /// Consecutive failed attempts that reached the target or the verifiers,
    /// as recorded beside the secret after this one (0 after a success);
    /// `None` when the rotation stopped before reading the record.
    pub consecutive_failures: Option<u32>,
    /// Whether the secret is quarantined after this rotation (this one put
    /// it there, or it already was).
    pub quarantined: bool,
    /// Creation time of the version current at the end, when known (used to
    /// reschedule).
    #[serde(skip)]
    pub(crate) current_created_at: Option<DateTime<Utc>>,
    /// A scheduled run found the secret already rotated since its schedule's
    /// record (by another process): nothing was attempted.
    #[serde(skip)]
    pub(crate) up_to_date: bool,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl RotationResult {
    /// A rotation of `path` under `strategy`, started and ended at `at`, that
    /// ended with `outcome` (status to match): a fresh rotation id, a manual
    /// trigger, no versions, no error, nothing verified, retried or rolled
    /// back. Set the public fields to describe the rest.
    ///
    /// ```
    /// use rekey_core::{RotationOutcome, RotationResult, RotationStrategy};
    /// let at = "2030-01-01T00:00:00Z".parse().unwrap();
    /// let mut r = RotationResult::new("apps/api-key".parse().unwrap(), RotationStrategy::Staged, RotationOutcome::Rotated, at);
    /// r.new_version = Some(rekey_core::VersionId::new("2"));
    /// assert!(r.success());
    /// assert_eq!(r.clone(), r);
    /// ```
    pub fn new(path: SecretPath, strategy: RotationStrategy, outcome: RotationOutcome, at: DateTime<Utc>) -> Self {
        Self {
            rotation_id: RotationId::new(),
            path,
            strategy,
            trigger: RotationTrigger::Manual,
            outcome,
            status: outcome.status(),
            old_version: None,
            new_version: None,
            started_at: at,
            completed_at: at,
            duration: Duration::ZERO,
            verification_passed: false,
            calls: 0,
            retries: 0,
            rollback_performed: false,
            error: None,
            consecutive_failures: None,
            quarantined: false,
            current_created_at: None,
            up_to_date: false,
        }
    }

    /// Why it did not succeed, as one line: the error's message, else the
    /// outcome.
    pub(crate) fn failure_reason(&self) -> String {
        self.error.as_ref().map(ToString::to_string).unwrap_or_else(|| self.outcome.to_string())
    }

    /// Whether the new value is current.
    pub fn success(&self) -> bool {
        self.outcome == RotationOutcome::Rotated
    }

    /// Whether this result counts towards quarantine: a failure that reached
    /// the credential target or the verifiers. A store outage, a lost race,
    /// a configuration problem or a deferral never does.
    pub fn counts_towards_quarantine(&self) -> bool {
        self.outcome.is_failure() && self.error.as_ref().is_some_and(RotationError::reached_target_or_verifier)
    }

    /// The duration in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        self.duration.as_secs_f64() * 1000.0
    }
}

impl PartialEq for RotationResult {
    fn eq(&self, other: &Self) -> bool {
        let same_error = match (&self.error, &other.error) {
            (None, None) => true,
            (Some(a), Some(b)) => a.kind() == b.kind() && a.to_string() == b.to_string(),
            _ => false,
        };
        // Every public field (the crate-private bookkeeping is left out).
        self.rotation_id == other.rotation_id
            && self.path == other.path
            && self.strategy == other.strategy
            && self.trigger == other.trigger
            && self.outcome == other.outcome
            && self.status == other.status
            && self.old_version == other.old_version
            && self.new_version == other.new_version
            && self.started_at == other.started_at
            && self.completed_at == other.completed_at
            && self.duration == other.duration
            && self.verification_passed == other.verification_passed
            && self.calls == other.calls
            && self.retries == other.retries
            && self.rollback_performed == other.rollback_performed
            && same_error
            && self.consecutive_failures == other.consecutive_failures
            && self.quarantined == other.quarantined
    }
}

impl fmt::Display for RotationResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.strategy, self.path, self.outcome)?;
        if let (Some(o), Some(n)) = (&self.old_version, &self.new_version) {
            write!(f, " ({o} -> {n})")?;
        }
        if let Some(e) = &self.error {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}
