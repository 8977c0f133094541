//! What one rotation carries while it runs: its bookkeeping ([`Run`]) and the executor's values ([`Executor`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::audit::RotationTrigger;
use super::error::RotationError;
use super::result::RotationOutcome;
use crate::policy::RotationPolicy;
use crate::record::{RecordUpdate, SecretRecord};
use crate::{Metadata, RecordWrite, RotationId, SecretData, SecretPath, VersionId, VersionMeta};

/// The per-rotation bookkeeping of the executor.
pub(super) struct Run<'a> {
    pub(super) id: RotationId,
    pub(super) path: &'a SecretPath,
    pub(super) policy: &'a RotationPolicy,
    pub(super) trigger: &'a RotationTrigger,
    pub(super) started: DateTime<Utc>,
    /// When it started, on this process's monotonic clock: how long it has
    /// run, whatever the engine's clock says (see `Inner::overran`).
    pub(super) began: std::time::Instant,
    pub(super) old_version: Option<VersionId>,
    pub(super) new_version: Option<VersionId>,
    pub(super) calls: u32,
    pub(super) retries: u32,
    pub(super) verification_passed: bool,
    pub(super) error: Option<RotationError>,
    pub(super) undo_error: Option<RotationError>,
    pub(super) current_created_at: Option<DateTime<Utc>>,
    /// What is recorded beside the secret, as read at the start.
    pub(super) record: SecretRecord,
    /// The consecutive counted failures recorded at the end, when a record
    /// was written.
    pub(super) consecutive_failures: Option<u32>,
    /// Whether the secret is quarantined at the end.
    pub(super) quarantined: bool,
}

/// How `execute` ended.
pub(super) enum Exec {
    /// A scheduled run found the secret rotated since (by another process).
    UpToDate,
    /// The outcome, and whether the rotation undid its own writes.
    Outcome(RotationOutcome, bool),
}

/// What the executor carries between actions.
pub(super) struct Executor<'f> {
    pub(super) candidate: SecretData,
    pub(super) field: Option<&'f str>,
    /// The version current when the rotation started (the compare-and-swap
    /// base).
    pub(super) base: VersionId,
    /// Its metadata.
    pub(super) current_meta: VersionMeta,
    /// Its value, when the rotation read it (the fast path does not).
    pub(super) current_data: Option<SecretData>,
    /// The metadata as read at the start, kept up to date with this
    /// rotation's own writes.
    pub(super) meta: Metadata,
    pub(super) target: Option<Arc<dyn crate::CredentialTarget>>,
    /// The version current after `Write`/`Promote` (rollback's CAS value).
    pub(super) now_current: Option<VersionId>,
    pub(super) conflict_actual: Option<VersionId>,
    /// The previous value was made current again.
    pub(super) rolled_back: bool,
    /// The version current after a rollback (the base itself, or its copy
    /// on stores that promote by copying).
    pub(super) restored_as: Option<VersionId>,
    /// What the final metadata write records (decided when the state
    /// machine asks to clear the journal).
    pub(super) record_update: Option<RecordUpdate>,
    /// The journal line not written yet: it goes with the candidate.
    pub(super) journal_line: Option<String>,
    /// Whether the store keeps this rotation's journal line in the metadata
    /// (so the rotation's last write removes it).
    pub(super) journal_kept: bool,
    /// The record that the write making the candidate current carries (when
    /// nothing follows that write), and whether it was written.
    pub(super) carry: Option<RecordWrite>,
    pub(super) carried: bool,
    /// The last `Apply` failed and the target said it changed nothing.
    pub(super) apply_changed_nothing: bool,
    /// The credential this rotation replaced was revoked on the target
    /// before its last write (so that write records no retire step).
    pub(super) retired_at_once: bool,
    /// Why that revoke failed (the last write then records the step).
    pub(super) retire_error: Option<super::error::RotationError>,
}
