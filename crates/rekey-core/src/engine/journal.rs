//! The rotation journal: a rotation's progress, recorded in the metadata
//! beside the secret (keys `rekey.rotation.*`) before its first write and
//! cleared after its last, so that the next run — in this process or another
//! — can tell a live rotation from one that crashed.
//!
//! | key | value |
//! |---|---|
//! | `rekey.rotation.id` | the rotation id |
//! | `rekey.rotation.step` | the first write step (`stage` or `write`) |
//! | `rekey.rotation.strategy` | the strategy |
//! | `rekey.rotation.base` | the version current when it started |
//! | `rekey.rotation.started` | RFC 3339 start time |
//! | `rekey.rotation.owner` | the id of the manager instance running it |
//!
//! Recovery ([`recovery_decision`]) is a pure function of the journal, the
//! time and the pending candidate: a journal that is fresh and owned by
//! another manager means "in progress elsewhere, do not touch"; a journal
//! that is stale, or owned by this manager (which is not running it, since
//! the caller holds the in-process guard), belongs to a crashed rotation: its
//! candidate is discarded (never promoted: its verification cannot be
//! trusted any more — the new rotation starts from scratch) and, when a
//! target is bound, the target is brought back to the store's current value.

use chrono::{DateTime, Utc};

use super::RotationStep;
use crate::{Metadata, RotationId, VersionId, VersionMeta};

/// Metadata key: rotation id.
pub const JOURNAL_ID: &str = "rekey.rotation.id";
/// Metadata key: step.
pub const JOURNAL_STEP: &str = "rekey.rotation.step";
/// Metadata key: strategy.
pub const JOURNAL_STRATEGY: &str = "rekey.rotation.strategy";
/// Metadata key: base (expected current) version.
pub const JOURNAL_BASE: &str = "rekey.rotation.base";
/// Metadata key: start time.
pub const JOURNAL_STARTED: &str = "rekey.rotation.started";
/// Metadata key: owning manager instance.
pub const JOURNAL_OWNER: &str = "rekey.rotation.owner";

const KEYS: [&str; 6] = [JOURNAL_ID, JOURNAL_STEP, JOURNAL_STRATEGY, JOURNAL_BASE, JOURNAL_STARTED, JOURNAL_OWNER];

/// A rotation's journal entry, as read back from metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationJournal {
    /// The rotation.
    pub rotation_id: Option<RotationId>,
    /// Its recorded step.
    pub step: Option<RotationStep>,
    /// Its strategy, as text.
    pub strategy: Option<String>,
    /// The version current when it started.
    pub base: Option<VersionId>,
    /// When it started (`None` if missing or malformed: treated as stale).
    pub started: Option<DateTime<Utc>>,
    /// The manager instance running it.
    pub owner: Option<String>,
}

impl RotationJournal {
    /// Reads the journal from metadata; `None` when there is none.
    pub fn read(meta: &Metadata) -> Option<Self> {
        if !KEYS.iter().any(|k| meta.contains_key(*k)) {
            return None;
        }
        Some(Self {
            rotation_id: meta.get(JOURNAL_ID).and_then(|s| RotationId::parse(s).ok()),
            step: meta.get(JOURNAL_STEP).and_then(|s| RotationStep::parse(s)),
            strategy: meta.get(JOURNAL_STRATEGY).cloned(),
            base: meta.get(JOURNAL_BASE).map(VersionId::new),
            started: meta
                .get(JOURNAL_STARTED)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc)),
            owner: meta.get(JOURNAL_OWNER).cloned(),
        })
    }

    /// Writes this journal into `meta` (other keys kept).
    pub(crate) fn write_into(
        meta: &mut Metadata,
        id: RotationId,
        step: RotationStep,
        strategy: &str,
        base: &VersionId,
        started: DateTime<Utc>,
        owner: &str,
    ) {
        meta.insert(JOURNAL_ID.to_owned(), id.to_string());
        meta.insert(JOURNAL_STEP.to_owned(), step.as_str().to_owned());
        meta.insert(JOURNAL_STRATEGY.to_owned(), strategy.to_owned());
        meta.insert(JOURNAL_BASE.to_owned(), base.as_str().to_owned());
        meta.insert(JOURNAL_STARTED.to_owned(), started.to_rfc3339());
        meta.insert(JOURNAL_OWNER.to_owned(), owner.to_owned());
    }

    /// Removes every journal key from `meta`; whether there was any.
    pub fn clear(meta: &mut Metadata) -> bool {
        let mut any = false;
        for k in KEYS {
            any |= meta.remove(k).is_some();
        }
        any
    }
}

/// What to do about a journal found at the start of a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryDecision {
    /// Nothing recorded: go ahead.
    Proceed,
    /// A live rotation in another process: touch nothing.
    InProgressElsewhere {
        /// Its id, if readable.
        rotation_id: Option<RotationId>,
        /// When it started.
        since: Option<DateTime<Utc>>,
    },
    /// A crashed rotation: clean up, then go ahead.
    CleanUp {
        /// The crashed rotation's id, if readable.
        rotation_id: Option<RotationId>,
        /// The pending candidate to discard (the crashed rotation's, or one
        /// with no rotation id), if any.
        discard: Option<VersionId>,
        /// Whether the crashed rotation's value is the current one (it
        /// crashed after writing or promoting).
        went_current: bool,
    },
}

/// Decides what to do about `journal` (pure).
///
/// * `now`, `stale_after`: a journal older than this belongs to a crashed
///   rotation whoever owns it.
/// * `me`: this manager's instance id; a journal it owns is dead (the caller
///   holds the in-process guard, so no live rotation of this manager has it).
/// * `current`, `pending`: the secret's current and pending versions.
pub fn recovery_decision(
    journal: Option<&RotationJournal>,
    now: DateTime<Utc>,
    stale_after: std::time::Duration,
    me: &str,
    current: &VersionMeta,
    pending: Option<&VersionMeta>,
) -> RecoveryDecision {
    let Some(j) = journal else {
        return RecoveryDecision::Proceed;
    };
    let mine = j.owner.as_deref() == Some(me);
    let stale = match j.started {
        Some(started) => {
            let age = now.signed_duration_since(started);
            chrono::Duration::from_std(stale_after).map(|limit| age >= limit).unwrap_or(false)
        }
        None => true,
    };
    if !mine && !stale {
        return RecoveryDecision::InProgressElsewhere { rotation_id: j.rotation_id, since: j.started };
    }
    let discard = pending.filter(|p| p.rotation_id.is_none() || p.rotation_id == j.rotation_id).map(|p| p.id.clone());
    let went_current = j.rotation_id.is_some() && current.rotation_id == j.rotation_id;
    RecoveryDecision::CleanUp { rotation_id: j.rotation_id, discard, went_current }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Stages;

    fn meta(id: &str, rot: Option<RotationId>, pending: bool) -> VersionMeta {
        VersionMeta {
            id: VersionId::new(id),
            created_at: Utc::now(),
            stages: Stages { current: !pending, previous: false, pending },
            rotation_id: rot,
        }
    }

    #[test]
    fn decisions() {
        let now = Utc::now();
        let r = RotationId::new();
        let mut m = Metadata::new();
        assert!(RotationJournal::read(&m).is_none());
        RotationJournal::write_into(&mut m, r, RotationStep::Stage, "staged", &VersionId::new("1"), now, "other");
        m.insert("rekey.other".into(), "kept".into());
        let j = RotationJournal::read(&m);
        let cur = meta("1", None, false);
        let pend = meta("2", Some(r), true);
        let limit = std::time::Duration::from_secs(60);
        assert_eq!(
            recovery_decision(j.as_ref(), now, limit, "me", &cur, Some(&pend)),
            RecoveryDecision::InProgressElsewhere { rotation_id: Some(r), since: j.as_ref().and_then(|j| j.started) }
        );
        let later = now + chrono::Duration::seconds(61);
        assert_eq!(
            recovery_decision(j.as_ref(), later, limit, "me", &cur, Some(&pend)),
            RecoveryDecision::CleanUp { rotation_id: Some(r), discard: Some(VersionId::new("2")), went_current: false }
        );
        assert!(matches!(
            recovery_decision(j.as_ref(), now, limit, "other", &cur, None),
            RecoveryDecision::CleanUp { discard: None, .. }
        ));
        assert!(RotationJournal::clear(&mut m));
        assert_eq!(m.len(), 1);
        assert_eq!(recovery_decision(None, now, limit, "me", &cur, None), RecoveryDecision::Proceed);
    }
}
