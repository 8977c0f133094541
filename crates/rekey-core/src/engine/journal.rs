//! The rotation journal: a rotation's progress, recorded in the metadata
//! beside the secret before its first write and cleared after its last, so
//! that the next run — in this process or another — can tell a live rotation
//! from one that crashed.
//!
//! One metadata key, [`JOURNAL_KEY`] (`rekey.rotation`), holds the whole
//! entry — one key rather than six keeps within the stores' limits (AWS
//! allows 50 tags per secret, 256 characters each; Vault 64 custom metadata
//! keys) and costs one map entry per write:
//!
//! ```text
//! rekey.rotation = id=<rotation id> step=<stage|write> strategy=<strategy> started=<RFC 3339> owner=<manager id> checks=<yes|no> base=<version id>
//! ```
//!
//! Fields are separated by spaces, which every store keeps as they are (a
//! `;` is not a character AWS allows in tags, so the AWS store would have to
//! base64-encode the value, and the longest entries — dual-write, AWS version
//! ids — would then pass AWS's 256-character limit). Entries separated by
//! `;`, written by earlier versions, are read too.
//!
//! | field | meaning |
//! |---|---|
//! | `id` | the rotation id (also on every version it writes) |
//! | `step` | its first write step (`stage` or `write`) |
//! | `strategy` | the strategy |
//! | `started` | when it started |
//! | `owner` | the id of the manager instance running it |
//! | `checks` | whether the candidate still had checks to pass after its write (`yes`/`no`): an immediate rotation that crashed after making its candidate current is rolled back when it did |
//! | `restore` | a manual rollback only (`step=rollback`): the version whose value it gives the target before the store |
//! | `base` | the version current when it started (last: may contain anything) |
//!
//! A manual rollback with a credential target bound journals itself the
//! same way (`step=rollback`, with `restore`): the target accepts the
//! restored value before the store serves it, so a crash or a failed undo
//! in between leaves the journal, and recovery gives the target the store's
//! current value again.
//!
//! Recovery ([`recovery_decision`]) is a pure function of the journal, the
//! time and the pending candidate: a journal that is fresh and owned by
//! another manager means "in progress elsewhere, do not touch"; a journal
//! that is stale, or owned by this manager (which is not running it, since
//! the caller holds the in-process guard), belongs to a crashed rotation: its
//! candidate is discarded (never promoted: its verification cannot be
//! trusted any more — the new rotation starts from scratch) and, when a
//! target is bound, the target is brought back to the store's current value.
//! An unreadable entry counts as stale.

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::RotationStep;
use crate::{Metadata, RotationId, VersionId, VersionMeta};

/// The metadata key holding the journal.
pub use crate::store::JOURNAL_KEY;

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
    /// Whether the candidate still had checks to pass (verifiers, the
    /// target) after being written; `None` in journals that predate the
    /// field (treated as `true`).
    pub checks: Option<bool>,
    /// A manual rollback's version to restore (it gave the target that
    /// value first).
    pub restore: Option<VersionId>,
}

impl RotationJournal {
    /// Reads the journal from metadata; `None` when there is none.
    pub fn read(meta: &Metadata) -> Option<Self> {
        let raw = meta.get(JOURNAL_KEY)?;
        let mut j = Self {
            rotation_id: None,
            step: None,
            strategy: None,
            base: None,
            started: None,
            owner: None,
            checks: None,
            restore: None,
        };
        let mut rest = raw.as_str();
        while !rest.is_empty() {
            let (field, tail) = match rest.split_once('=') {
                Some(x) => x,
                None => break,
            };
            if field == "base" {
                j.base = Some(VersionId::new(tail));
                break;
            }
            let (value, tail) = tail.split_once([' ', ';']).unwrap_or((tail, ""));
            match field {
                "id" => j.rotation_id = RotationId::parse(value).ok(),
                "step" => j.step = RotationStep::parse(value),
                "strategy" => j.strategy = Some(value.to_owned()),
                "started" => j.started = DateTime::parse_from_rfc3339(value).ok().map(|t| t.with_timezone(&Utc)),
                "owner" => j.owner = Some(value.to_owned()),
                "checks" => j.checks = Some(value == "yes"),
                "restore" => j.restore = Some(VersionId::new(value)),
                _ => {}
            }
            rest = tail;
        }
        Some(j)
    }

    /// Whether `meta` holds the journal of rotation `id`.
    pub fn is_rotation(meta: &Metadata, id: RotationId) -> bool {
        meta.get(JOURNAL_KEY)
            .and_then(|v| v.strip_prefix("id="))
            .and_then(|v| v.split([' ', ';']).next())
            .and_then(|v| RotationId::parse(v).ok())
            == Some(id)
    }

    /// The journal line of a rotation (the value of [`JOURNAL_KEY`]). `base`
    /// is absent when the rotation stages before it knows the current
    /// version (the store reports it with the staged candidate); an empty
    /// `strategy` is left out.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn line(
        id: RotationId,
        step: RotationStep,
        strategy: &str,
        base: Option<&VersionId>,
        started: DateTime<Utc>,
        owner: &str,
        checks: bool,
    ) -> String {
        // One allocation and no formatting machinery: the line is written on
        // every rotation.
        let mut line = String::with_capacity(160 + owner.len() + base.map_or(0, |b| b.as_str().len()));
        line.push_str("id=");
        line.push_str(id.as_uuid().hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()));
        line.push_str(" step=");
        line.push_str(step.as_str());
        if !strategy.is_empty() {
            line.push_str(" strategy=");
            line.push_str(strategy);
        }
        line.push_str(" started=");
        // RFC 3339 in milliseconds, as `to_rfc3339_opts(Millis, true)` writes
        // it (years 0 to 9999).
        let (d, t) = (started.date_naive(), started.time());
        push_digits(&mut line, d.year().clamp(0, 9999).unsigned_abs(), 4);
        line.push('-');
        push_digits(&mut line, d.month(), 2);
        line.push('-');
        push_digits(&mut line, d.day(), 2);
        line.push('T');
        push_digits(&mut line, t.hour(), 2);
        line.push(':');
        push_digits(&mut line, t.minute(), 2);
        line.push(':');
        push_digits(&mut line, t.second(), 2);
        line.push('.');
        push_digits(&mut line, (t.nanosecond() / 1_000_000).min(999), 3);
        line.push_str("Z owner=");
        line.push_str(owner);
        line.push_str(if checks { " checks=yes" } else { " checks=no" });
        if let Some(base) = base {
            line.push_str(" base=");
            line.push_str(base.as_str());
        }
        line
    }

    /// The journal line of a manual rollback that gives a credential target
    /// the value of `restore` before the store makes it current again,
    /// replacing `base`. `None` when `restore` cannot be written in a
    /// space-separated field (no store's ids contain whitespace).
    pub(crate) fn rollback_line(
        id: RotationId,
        restore: &VersionId,
        base: &VersionId,
        started: DateTime<Utc>,
        owner: &str,
    ) -> Option<String> {
        if restore.as_str().is_empty() || restore.as_str().contains(char::is_whitespace) {
            return None;
        }
        // No strategy: a rollback is none of them.
        let mut line = Self::line(id, RotationStep::Rollback, "", None, started, owner, true);
        line.push_str(" restore=");
        line.push_str(restore.as_str());
        line.push_str(" base=");
        line.push_str(base.as_str());
        Some(line)
    }

    /// Writes a journal entry into `meta` (other keys kept).
    #[cfg(test)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_into(
        meta: &mut Metadata,
        id: RotationId,
        step: RotationStep,
        strategy: &str,
        base: &VersionId,
        started: DateTime<Utc>,
        owner: &str,
        checks: bool,
    ) {
        meta.insert(JOURNAL_KEY.to_owned(), Self::line(id, step, strategy, Some(base), started, owner, checks));
    }

    /// Removes the journal from `meta`; whether there was one.
    pub fn clear(meta: &mut Metadata) -> bool {
        meta.remove(JOURNAL_KEY).is_some()
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

/// Appends `n` in decimal, zero-padded to `width` digits.
fn push_digits(out: &mut String, n: u32, width: u32) {
    let mut div = 10u32.pow(width.saturating_sub(1));
    while div > 0 {
        out.push(char::from(b'0' + ((n / div) % 10) as u8));
        div /= 10;
    }
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
    fn entries_fit_every_store_and_old_entries_are_read() {
        let (r, now) = (RotationId::new(), Utc::now());
        let base = VersionId::new(uuid::Uuid::new_v4().to_string());
        let mut m = Metadata::new();
        let owner = RotationId::new().to_string();
        RotationJournal::write_into(&mut m, r, RotationStep::Stage, "dual_write", &base, now, &owner, true);
        let v = m.get(JOURNAL_KEY).cloned().unwrap_or_default();
        // Only characters AWS allows in tags, so no store re-encodes it.
        assert!(v.len() <= 200 && !v.contains(';'), "{v}");
        assert!(v.bytes().all(|b| b.is_ascii_alphanumeric() || b" _.:/=+-@".contains(&b)), "{v}");
        let j = RotationJournal::read(&m);
        assert_eq!(j.as_ref().and_then(|j| j.base.clone()), Some(base));
        assert_eq!(j.as_ref().and_then(|j| j.strategy.clone()).as_deref(), Some("dual_write"));
        assert!(RotationJournal::is_rotation(&m, r));
        m.insert(
            JOURNAL_KEY.into(),
            format!("id={r};step=stage;strategy=staged;started=2030-01-01T00:00:00.000Z;owner=o;base=7"),
        );
        let j = RotationJournal::read(&m);
        assert_eq!(j.as_ref().and_then(|j| j.owner.clone()).as_deref(), Some("o"));
        assert_eq!(j.as_ref().and_then(|j| j.base.clone()), Some(VersionId::new("7")));
        assert!(RotationJournal::is_rotation(&m, r));
    }

    #[test]
    fn a_rollback_line_names_the_version_it_restores_and_fits_every_store() {
        let (r, now) = (RotationId::new(), Utc::now());
        let restore = VersionId::new(uuid::Uuid::new_v4().to_string());
        let base = VersionId::new(format!("staged-{}", uuid::Uuid::new_v4()));
        let owner = RotationId::new().to_string();
        let line = RotationJournal::rollback_line(r, &restore, &base, now, &owner).unwrap_or_default();
        // AWS tag values: at most 256 characters, and only these.
        assert!(line.len() <= 256, "{} characters: {line}", line.len());
        assert!(line.bytes().all(|b| b.is_ascii_alphanumeric() || b" _.:/=+-@".contains(&b)), "{line}");
        let mut m = Metadata::new();
        m.insert(JOURNAL_KEY.into(), line);
        let j = RotationJournal::read(&m).unwrap_or_else(|| unreachable!());
        assert_eq!(j.step, Some(RotationStep::Rollback));
        assert_eq!(j.restore, Some(restore));
        assert_eq!(j.base, Some(base.clone()));
        assert_eq!(j.strategy, None);
        assert_eq!(j.rotation_id, Some(r));
        // An id that cannot be written in a field gives no line: the
        // rollback then goes without a journal, as before.
        assert!(RotationJournal::rollback_line(r, &VersionId::new("a b"), &base, now, &owner).is_none());
    }

    #[test]
    fn the_start_time_is_written_as_rfc3339_in_milliseconds() {
        for t in ["2030-01-01T00:00:00.000Z", "1999-12-31T23:59:59.999Z", "2026-02-03T04:05:06.007Z"] {
            let at: DateTime<Utc> = t.parse().unwrap_or_default();
            let line = RotationJournal::line(RotationId::new(), RotationStep::Stage, "staged", None, at, "o", false);
            assert!(line.contains(&format!(" started={} ", at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))));
            let mut m = Metadata::new();
            m.insert(JOURNAL_KEY.into(), line);
            assert_eq!(RotationJournal::read(&m).and_then(|j| j.started), Some(at));
        }
    }

    #[test]
    fn decisions() {
        let now = Utc::now();
        let r = RotationId::new();
        let mut m = Metadata::new();
        assert!(RotationJournal::read(&m).is_none());
        RotationJournal::write_into(
            &mut m,
            r,
            RotationStep::Stage,
            "staged",
            &VersionId::new("1"),
            now,
            "other",
            false,
        );
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
        assert!(RotationJournal::is_rotation(&m, r));
        assert!(!RotationJournal::is_rotation(&m, RotationId::new()));
        let back = j.clone().unwrap_or_else(|| unreachable!());
        assert_eq!(back.base, Some(VersionId::new("1")));
        assert_eq!(back.owner.as_deref(), Some("other"));
        assert_eq!(back.strategy.as_deref(), Some("staged"));
        assert_eq!(back.step, Some(RotationStep::Stage));
        assert!(RotationJournal::clear(&mut m));
        assert_eq!(m.len(), 1);
        assert_eq!(recovery_decision(None, now, limit, "me", &cur, None), RecoveryDecision::Proceed);
    }
}
