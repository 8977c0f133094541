//! [`RotationError`]: why a rotation did not happen or did not succeed.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::generator::GeneratorError;
use crate::policy::RotationStrategy;
use crate::{RotationId, SecretPath, StoreError, TargetError, VerifyError, VersionId};

/// One step of a rotation, as named in audit events, journals and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RotationStep {
    /// Reading the current version and the rotation journal.
    Prepare,
    /// Cleaning up after a rotation that crashed earlier.
    Recover,
    /// Generating the new value.
    Generate,
    /// Recording the rotation's progress beside the secret.
    Journal,
    /// Staging the candidate (staged strategy).
    Stage,
    /// Writing the new value as current with compare-and-swap (immediate
    /// strategy).
    Write,
    /// Making the candidate valid on the credential target.
    Apply,
    /// Running the verification tests.
    Verify,
    /// Making the staged candidate current with compare-and-swap.
    Promote,
    /// Testing the new current credential on the target after promotion.
    Confirm,
    /// Removing the candidate after a failure.
    Discard,
    /// Making the previous value current again.
    Rollback,
    /// Making a failed candidate invalid on the credential target again.
    Revoke,
    /// Clearing the rotation journal.
    Cleanup,
    /// Revoking a dual-write rotation's old credential after its grace
    /// period (the scheduler's retire pass).
    Retire,
}

impl RotationStep {
    /// The step's snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepare => "prepare",
            Self::Recover => "recover",
            Self::Generate => "generate",
            Self::Journal => "journal",
            Self::Stage => "stage",
            Self::Write => "write",
            Self::Apply => "apply",
            Self::Verify => "verify",
            Self::Promote => "promote",
            Self::Confirm => "confirm",
            Self::Discard => "discard",
            Self::Rollback => "rollback",
            Self::Revoke => "revoke",
            Self::Cleanup => "cleanup",
            Self::Retire => "retire",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "prepare" => Self::Prepare,
            "recover" => Self::Recover,
            "generate" => Self::Generate,
            "journal" => Self::Journal,
            "stage" => Self::Stage,
            "write" => Self::Write,
            "apply" => Self::Apply,
            "verify" => Self::Verify,
            "promote" => Self::Promote,
            "confirm" => Self::Confirm,
            "discard" => Self::Discard,
            "rollback" => Self::Rollback,
            "revoke" => Self::Revoke,
            "cleanup" => Self::Cleanup,
            "retire" => Self::Retire,
            _ => return None,
        })
    }
}

impl fmt::Display for RotationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a rotation did not happen or did not succeed.
///
/// Some variants are *outcomes* rather than failures
/// ([`is_failure`](Self::is_failure) is `false`): somebody else is rotating
/// the secret or already did, or the policy's window is closed. No variant
/// ever holds a secret value: messages are built from paths, version ids,
/// names and the underlying errors (which are secret-free by contract).
///
/// Cheap to clone: underlying errors are shared.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// This process is already rotating the secret; nothing was done.
    #[error("{path} is already being rotated by this process")]
    AlreadyRotating {
        /// The secret.
        path: SecretPath,
    },
    /// Another process is rotating (or rolling back) the secret right now
    /// (its journal is fresh); nothing was done.
    #[error("{path} is being rotated by another process{}{}",
        rotation_id.map(|r| format!(" (rotation {r})")).unwrap_or_default(),
        stale_at.map(|t| format!("; if that process has stopped, its journal counts as crashed from {} \
            and the next rotation or rollback cleans it up", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
            .unwrap_or_default())]
    InProgressElsewhere {
        /// The secret.
        path: SecretPath,
        /// The other rotation, when its journal names it.
        rotation_id: Option<RotationId>,
        /// When it last recorded progress.
        since: Option<DateTime<Utc>>,
        /// When its journal counts as crashed (stale), when known: from
        /// then on the next rotation or rollback cleans it up.
        stale_at: Option<DateTime<Utc>>,
    },
    /// A compare-and-swap lost: another process rotated (or wrote) the
    /// secret since this rotation read it. This rotation's candidate was
    /// discarded and the other process's value was left current.
    #[error("conflict: {path} was rotated by another process (expected current version {expected}, found {})",
        actual.as_ref().map(VersionId::as_str).unwrap_or("<unknown>"))]
    RotatedElsewhere {
        /// The secret.
        path: SecretPath,
        /// The version this rotation started from.
        expected: VersionId,
        /// The version that was current instead, when known.
        actual: Option<VersionId>,
    },
    /// The policy's rotation window is closed now; nothing was done (an
    /// emergency rotation ignores windows).
    #[error("{path}: outside the policy's rotation window{}",
        next_open.map(|t| format!(" (next opens {})", t.to_rfc3339())).unwrap_or_default())]
    OutsideWindow {
        /// The secret.
        path: SecretPath,
        /// When the window opens next.
        next_open: Option<DateTime<Utc>>,
    },
    /// The strategy has no engine yet; nothing was done.
    #[error("the {strategy} strategy is not supported by this version of the engine")]
    StrategyNotSupported {
        /// The strategy.
        strategy: RotationStrategy,
    },
    /// The policy names a verification test no verifier is registered for.
    /// Checked before anything is written (fail closed).
    #[error("policy {policy:?} names the verification test {name:?}, but no verifier with that name is registered")]
    UnknownVerifier {
        /// The policy.
        policy: String,
        /// The unknown name.
        name: String,
    },
    /// An emergency rotation of a secret that has no schedule, with no
    /// default policy configured.
    #[error("{path} has no rotation policy (schedule it or configure a default policy)")]
    NoPolicy {
        /// The secret.
        path: SecretPath,
    },
    /// The secret has no schedule.
    #[error("{path} is not scheduled")]
    NotScheduled {
        /// The secret.
        path: SecretPath,
    },
    /// The secret is quarantined after repeated failures; no automatic
    /// rotation until it is resumed.
    #[error("{path} is quarantined: {reason}")]
    Quarantined {
        /// The secret.
        path: SecretPath,
        /// Why.
        reason: String,
    },
    /// The binding does not fit the secret (e.g. a field is configured but
    /// the secret is a single text value).
    #[error("{path}: {message}")]
    InvalidBinding {
        /// The secret.
        path: SecretPath,
        /// What does not fit.
        message: String,
    },
    /// A dual-write rotation's old credential is still in its grace period
    /// and some registered consumers have not moved to the current version:
    /// rotating again now would retire a credential they use. Nothing was
    /// done; rotate after `until` (the scheduler's retire pass runs then),
    /// or use an emergency rotation, which retires it first.
    #[error("{path}: the previous rotation's old credential stays valid until {} for consumers still on it ({}); \
             rotate after that, or use an emergency rotation", until.to_rfc3339(),
             if behind.is_empty() { "none registered".to_owned() } else { behind.join(", ") })]
    RetirePending {
        /// The secret.
        path: SecretPath,
        /// When the grace period ends.
        until: DateTime<Utc>,
        /// The registered consumers not yet on the current version.
        behind: Vec<String>,
    },
    /// A rollback found no earlier good version to restore (the previous
    /// version failed, or none is recorded).
    #[error("{path}: no earlier good version to roll back to: {reason}")]
    NothingToRollBack {
        /// The secret.
        path: SecretPath,
        /// Why (from the store's refusal).
        reason: String,
    },
    /// The value supplied for the rotation (instead of a generated one)
    /// does not meet the secret's generator constraints; nothing was
    /// written.
    #[error("{path}: {source}")]
    InvalidValue {
        /// The secret.
        path: SecretPath,
        /// Why the value was refused (never the value).
        #[source]
        source: Arc<GeneratorError>,
    },
    /// The generator could not produce a value.
    #[error("generating the new value failed: {0}")]
    Generation(#[source] Arc<GeneratorError>),
    /// A store call failed (after the policy's retries, when retryable).
    #[error("{step} step failed: {source}")]
    Store {
        /// The step.
        step: RotationStep,
        /// The store's error.
        #[source]
        source: Arc<StoreError>,
    },
    /// A verification test did not pass (or timed out).
    #[error("verification {verifier:?} did not pass: {source}")]
    Verification {
        /// The verifier's name (`target:<name>` for a credential target's
        /// built-in test).
        verifier: String,
        /// Why.
        #[source]
        source: VerifyError,
    },
    /// The credential target failed.
    #[error("{step} step failed on target {target:?}: {source}")]
    Target {
        /// The step.
        step: RotationStep,
        /// The target's name.
        target: String,
        /// The target's error.
        #[source]
        source: Arc<TargetError>,
    },
    /// The staged candidate disappeared before it could be promoted (another
    /// rotation replaced it).
    #[error("{path}: the staged candidate {version} is gone (replaced by another rotation?)")]
    CandidateLost {
        /// The secret.
        path: SecretPath,
        /// The candidate's version.
        version: VersionId,
    },
    /// The rotation ran so long that another process may already treat it
    /// as crashed and take it over (its journal or candidate counts as stale
    /// after the stale-rotation limit), so it did not make its candidate
    /// current. Checked before the promote or write, at three quarters of
    /// that limit.
    #[error(
        "{path}: the rotation ran for {}s, past three quarters of the {}s after which another process treats it as crashed; its candidate was not made current",
        elapsed.as_secs(),
        limit.as_secs()
    )]
    Overran {
        /// The secret.
        path: SecretPath,
        /// How long it had run.
        elapsed: std::time::Duration,
        /// The stale-rotation limit.
        limit: std::time::Duration,
    },
    /// The rotation (or rollback) failed, and undoing it failed too. The
    /// cause comes first; the audit trail has both. Its journal stays
    /// beside the secret, so recovery finishes the undo.
    #[error(
        "{cause}; undoing it also failed: {undo} (its journal stays beside the secret: the next rotation, \
             rollback or recovery of the secret finishes the undo)"
    )]
    UndoFailed {
        /// Why the rotation failed.
        cause: Box<RotationError>,
        /// Why undoing it failed.
        undo: Box<RotationError>,
    },
}

impl RotationError {
    /// Whether this counts as a failed rotation. `false` for the outcomes
    /// that mean "not now" or "someone else did it":
    /// [`AlreadyRotating`](Self::AlreadyRotating),
    /// [`InProgressElsewhere`](Self::InProgressElsewhere),
    /// [`RotatedElsewhere`](Self::RotatedElsewhere),
    /// [`OutsideWindow`](Self::OutsideWindow),
    /// [`RetirePending`](Self::RetirePending) (deferred) and a store that is
    /// unavailable ([`is_store_unavailable`](Self::is_store_unavailable)).
    pub fn is_failure(&self) -> bool {
        !matches!(
            self,
            Self::AlreadyRotating { .. }
                | Self::InProgressElsewhere { .. }
                | Self::RotatedElsewhere { .. }
                | Self::OutsideWindow { .. }
                | Self::RetirePending { .. }
        ) && !self.is_store_unavailable()
    }

    /// A short stable name for the variant, for metrics and audit events.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AlreadyRotating { .. } => "already_rotating",
            Self::InProgressElsewhere { .. } => "in_progress_elsewhere",
            Self::RotatedElsewhere { .. } => "rotated_elsewhere",
            Self::OutsideWindow { .. } => "outside_window",
            Self::StrategyNotSupported { .. } => "strategy_not_supported",
            Self::UnknownVerifier { .. } => "unknown_verifier",
            Self::NoPolicy { .. } => "no_policy",
            Self::NotScheduled { .. } => "not_scheduled",
            Self::Quarantined { .. } => "quarantined",
            Self::InvalidBinding { .. } => "invalid_binding",
            Self::RetirePending { .. } => "retire_pending",
            Self::InvalidValue { .. } => "invalid_value",
            Self::NothingToRollBack { .. } => "nothing_to_roll_back",
            Self::Generation(_) => "generation",
            Self::Store { .. } => "store",
            Self::Verification { .. } => "verification",
            Self::Target { .. } => "target",
            Self::CandidateLost { .. } => "candidate_lost",
            Self::Overran { .. } => "overran",
            Self::UndoFailed { .. } => "undo_failed",
        }
    }

    /// The underlying store error, if this is (or was caused by) one.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Store { source, .. } => Some(source),
            Self::UndoFailed { cause, .. } => cause.store_error(),
            _ => None,
        }
    }

    /// Whether the failure happened at the credential target or in a
    /// verifier (what quarantine counts), rather than in the store, the
    /// configuration or a race.
    pub fn reached_target_or_verifier(&self) -> bool {
        match self {
            Self::Verification { .. } | Self::Target { .. } => true,
            Self::UndoFailed { cause, .. } => cause.reached_target_or_verifier(),
            _ => false,
        }
    }

    /// Whether the failure is the store being unavailable (unreachable,
    /// sealed, throttled, 5xx): not a failure of the secret.
    pub fn is_store_unavailable(&self) -> bool {
        self.store_error().is_some_and(StoreError::is_retryable)
    }

    pub(crate) fn store(step: RotationStep, e: StoreError) -> Self {
        Self::Store { step, source: Arc::new(e) }
    }

    pub(crate) fn target(step: RotationStep, target: &str, e: TargetError) -> Self {
        Self::Target { step, target: target.to_owned(), source: Arc::new(e) }
    }
}

/// Serializes an error as `{ "kind": ..., "message": ... }`.
pub(crate) fn serialize_error<S: serde::Serializer>(e: &Option<RotationError>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    match e {
        None => s.serialize_none(),
        Some(e) => {
            let mut st = s.serialize_struct("RotationError", 2)?;
            st.serialize_field("kind", e.kind())?;
            st.serialize_field("message", &e.to_string())?;
            st.end()
        }
    }
}
