//! What rekey keeps beside each secret about its rotations — in the store's
//! metadata (Vault `custom_metadata`, AWS tags), so every process and every
//! later run sees the same state, with no database of its own.
//!
//! | key | value |
//! |---|---|
//! | `rekey.last` | the last rotation attempt: `outcome=… at=… trigger=… id=…` |
//! | `rekey.good` | the version known good now (by id, or by the rotation that wrote it), since when, and the good version before it (what a rollback restores): `version=… rotation=… since=… prev=… prev_since=…` |
//! | `rekey.failed` | versions that failed (verification, or rolled back by hand), newest first, space-separated |
//! | `rekey.failures` | consecutive failed attempts that reached the target or the verifiers |
//! | `rekey.quarantine` | `since=… failures=… reason …` while scheduled rotation is stopped |
//! | `rekey.h.0` … `rekey.h.7` | the last events, newest first |
//!
//! Every value uses only the characters AWS tags allow and fits in 256
//! bytes; none holds a secret (outcomes, times, version and rotation ids,
//! redacted error texts).
//!
//! [`SecretRecord::read`] parses the keys; [`rollback_plan`] decides, from
//! the record and the store's versions, which version a rollback may
//! restore: the last value that was current and good — never a candidate
//! that failed.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::{MAX_METADATA_VALUE_BYTES, Metadata, RotationId, StoreError, VersionId, VersionMeta};

/// The last rotation attempt.
pub const LAST_KEY: &str = "rekey.last";
/// The version known good now and the good version before it.
pub const GOOD_KEY: &str = "rekey.good";
/// Versions that failed, newest first.
pub const FAILED_KEY: &str = "rekey.failed";
/// Consecutive counted failures.
pub const FAILURES_KEY: &str = "rekey.failures";
/// The quarantine marker.
pub const QUARANTINE_KEY: &str = "rekey.quarantine";
/// Prefix of the history keys (`rekey.h.0` is the newest).
pub const HISTORY_PREFIX: &str = "rekey.h.";
/// How many events are kept.
pub const HISTORY_KEPT: usize = 8;

/// Everything recorded beside one secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SecretRecord {
    /// The last rotation attempt.
    pub last: Option<Attempt>,
    /// The version known good now, and the one before it.
    pub good: Option<GoodVersion>,
    /// Versions that failed, newest first (never restored by a rollback).
    pub failed: Vec<VersionId>,
    /// Consecutive failed attempts that reached the target or the
    /// verifiers (what quarantine counts).
    pub failures: u32,
    /// Set while the secret is quarantined.
    pub quarantine: Option<QuarantineRecord>,
    /// The last events, newest first.
    pub history: Vec<HistoryEvent>,
    /// The rotation whose journal is present: one in progress, or one that
    /// crashed and awaits recovery. What it wrote is never restored by a
    /// rollback.
    pub unfinished: Option<RotationId>,
}

/// One rotation attempt (or manual rollback), as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The outcome's snake_case name (`rotated`, `rolled_back`, `failed`,
    /// ...; `rollback` for a manual rollback).
    pub outcome: String,
    /// When it ended.
    pub at: DateTime<Utc>,
    /// What started it (`manual`, `schedule`, `emergency`).
    pub trigger: String,
    /// The rotation.
    pub rotation_id: Option<RotationId>,
}

/// The version known good now, and the good version before it.
///
/// The good version is named by its id, or by the rotation that wrote it
/// (a rotation records its result with the write that makes its value
/// current, before a store that promotes by copying has told it the new
/// version's id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoodVersion {
    /// The version current and good (verified when verifiers are named),
    /// when its id is known.
    pub version: Option<VersionId>,
    /// The rotation that wrote it, when a rotation did.
    pub rotation_id: Option<RotationId>,
    /// Since when it has been current, when recorded (a rotation's own
    /// record leaves it out: the version's creation time says it).
    pub since: Option<DateTime<Utc>>,
    /// The version that was current and good before it: what a rollback
    /// restores.
    pub previous: Option<VersionId>,
    /// Since when that one had been current, when known.
    pub previous_since: Option<DateTime<Utc>>,
}

/// Why and since when a secret is quarantined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantineRecord {
    /// Since when.
    pub since: DateTime<Utc>,
    /// The failures in a row that caused it.
    pub failures: u32,
    /// The last failure's reason.
    pub reason: String,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEvent {
    /// When (RFC 3339).
    pub at: String,
    /// What happened (`rotated`, `failed`, `rolled_back`, `rollback`,
    /// `quarantined`, `resumed`, `recovered`, ...).
    pub event: String,
    /// Who asked (`manual`, `schedule`, `emergency`, `cli`).
    pub trigger: String,
    /// Version before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_version: Option<String>,
    /// Version after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_version: Option<String>,
    /// The rotation id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_id: Option<String>,
    /// Free text (reason, error), never a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl HistoryEvent {
    /// An event at `at`.
    pub fn new(at: DateTime<Utc>, event: &str, trigger: &str) -> Self {
        Self {
            at: time(at),
            event: event.to_owned(),
            trigger: trigger.to_owned(),
            old_version: None,
            new_version: None,
            rotation_id: None,
            detail: None,
        }
    }
}

/// Keeps the characters AWS tag values allow (others become spaces, runs of
/// spaces collapse) and clips to `max` bytes.
pub fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = if c.is_alphanumeric() && c.is_ascii() || " _.:/=+-@".contains(c) { c } else { ' ' };
        if out.len() + c.len_utf8() > max {
            break;
        }
        if c == ' ' && out.ends_with(' ') {
            continue;
        }
        out.push(c);
    }
    out.trim().to_owned()
}

/// Whether an id can be recorded as it is (only tag characters, no space).
fn recordable(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| RECORDABLE[usize::from(b)])
}

/// The bytes a version id may hold to be written in the record (letters,
/// digits and `_.:/=+-@`), as a table: checked on every rotation.
static RECORDABLE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'/' | b'=' | b'+' | b'-' | b'@');
        b += 1;
    }
    t
};

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// `key=value` fields separated by spaces; the field named `rest` (if any)
/// takes everything after it. Read in place (no allocation): the record is
/// read on every rotation.
#[derive(Clone, Copy)]
struct Fields<'a> {
    s: &'a str,
    rest: Option<&'a str>,
}

fn fields<'a>(s: &'a str, rest: Option<&'a str>) -> Fields<'a> {
    Fields { s, rest }
}

impl<'a> Fields<'a> {
    fn iter(self) -> impl Iterator<Item = (&'a str, &'a str)> {
        // Byte searches (the separators are ASCII, so every split falls on
        // a character boundary).
        let mut tail = Some(self.s);
        std::iter::from_fn(move || {
            let t = tail?;
            let eq = t.bytes().position(|b| b == b'=')?;
            let (k, after) = (t.get(..eq)?.trim_ascii(), t.get(eq + 1..)?);
            if Some(k) == self.rest {
                tail = None;
                return Some((k, after.trim_ascii()));
            }
            match after.bytes().position(|b| b == b' ') {
                Some(sp) => {
                    tail = after.get(sp + 1..);
                    Some((k, after.get(..sp)?))
                }
                None => {
                    tail = Some("");
                    Some((k, after))
                }
            }
        })
    }

    fn iter_find(self, key: &str) -> Option<(&'a str, &'a str)> {
        self.iter().find(|(n, _)| *n == key)
    }
}

fn encode_event(e: &HistoryEvent) -> String {
    // `at event trigger old=new rid : detail`, spaces separate fields.
    let mut s = format!(
        "{} {} {} {}={} {}",
        e.at,
        e.event,
        e.trigger,
        e.old_version.as_deref().filter(|v| recordable(v)).unwrap_or("-"),
        e.new_version.as_deref().filter(|v| recordable(v)).unwrap_or("-"),
        e.rotation_id.as_deref().unwrap_or("-"),
    );
    if let Some(d) = &e.detail {
        s.push_str(" : ");
        s.push_str(d);
    }
    sanitize(&s, MAX_METADATA_VALUE_BYTES)
}

fn decode_event(s: &str) -> Option<HistoryEvent> {
    let (head, detail) = match s.split_once(" : ") {
        Some((h, d)) => (h, Some(d.to_owned())),
        None => (s, None),
    };
    let mut it = head.split(' ');
    let at = it.next()?.to_owned();
    let event = it.next()?.to_owned();
    let trigger = it.next()?.to_owned();
    let (old, new) = it.next()?.split_once('=')?;
    let rid = it.next()?;
    let opt = |x: &str| (x != "-").then(|| x.to_owned());
    Some(HistoryEvent {
        at,
        event,
        trigger,
        old_version: opt(old),
        new_version: opt(new),
        rotation_id: opt(rid),
        detail,
    })
}

impl GoodVersion {
    /// Whether `version` is this good version (by id, or by the rotation
    /// that wrote it).
    pub fn names(&self, version: &VersionMeta) -> bool {
        self.version.as_ref() == Some(&version.id)
            || (self.rotation_id.is_some() && version.rotation_id == self.rotation_id)
    }
}

impl SecretRecord {
    /// Reads the record from a secret's metadata (missing or unreadable
    /// entries are absent: the record never fails to read).
    pub fn read(meta: &Metadata) -> Self {
        Self::read_parts(meta, true, true)
    }

    /// What a rotation reads before it writes: [`read_brief`](Self::read_brief)
    /// without the good version, which only a failed rotation that rolled
    /// back needs (it reads it then).
    pub(crate) fn read_for_rotation(meta: &Metadata) -> Self {
        Self::read_parts(meta, false, false)
    }

    fn read_parts(meta: &Metadata, with_history: bool, with_good: bool) -> Self {
        // Each value is read in one pass over its fields (the record is read
        // on every rotation).
        let last = meta.get(LAST_KEY).and_then(|s| {
            let (mut outcome, mut at, mut trigger, mut id) = (None, None, None, None);
            for (k, v) in fields(s, None).iter() {
                match k {
                    "outcome" => outcome = outcome.or(Some(v)),
                    "at" => at = at.or(Some(v)),
                    "trigger" => trigger = trigger.or(Some(v)),
                    "id" => id = id.or(Some(v)),
                    _ => {}
                }
            }
            Some(Attempt {
                outcome: outcome?.to_owned(),
                at: parse_time(at?)?,
                trigger: trigger.unwrap_or("manual").to_owned(),
                rotation_id: id.and_then(|r| RotationId::parse(r).ok()),
            })
        });
        let good = meta.get(GOOD_KEY).filter(|_| with_good).and_then(|s| {
            let (mut version, mut rotation, mut since, mut prev, mut prev_since) = (None, None, None, None, None);
            for (k, v) in fields(s, None).iter() {
                match k {
                    "version" => version = version.or(Some(v)),
                    "rotation" => rotation = rotation.or(Some(v)),
                    "since" => since = since.or(Some(v)),
                    "prev" => prev = prev.or(Some(v)),
                    "prev_since" => prev_since = prev_since.or(Some(v)),
                    _ => {}
                }
            }
            let version = version.map(VersionId::new);
            let rotation_id = rotation.and_then(|r| RotationId::parse(r).ok());
            if version.is_none() && rotation_id.is_none() {
                return None;
            }
            Some(GoodVersion {
                version,
                rotation_id,
                since: since.and_then(parse_time),
                previous: prev.map(VersionId::new),
                previous_since: prev_since.and_then(parse_time),
            })
        });
        let failed = meta
            .get(FAILED_KEY)
            .map(|s| s.split(' ').filter(|v| !v.is_empty()).map(VersionId::new).collect())
            .unwrap_or_default();
        let failures = meta.get(FAILURES_KEY).and_then(|s| s.parse().ok()).unwrap_or(0);
        let quarantine = meta.get(QUARANTINE_KEY).map(|s| {
            let f = fields(s, Some("reason"));
            let get = |k: &str| f.iter_find(k).map(|(_, v)| v);
            QuarantineRecord {
                // An unreadable marker still quarantines (fail closed).
                since: get("since").and_then(parse_time).unwrap_or(DateTime::<Utc>::MIN_UTC),
                failures: get("failures").and_then(|n| n.parse().ok()).unwrap_or(0),
                reason: get("reason").unwrap_or(s).to_owned(),
            }
        });
        let history = if with_history {
            (0..HISTORY_KEPT)
                .filter_map(|i| meta.get(&format!("{HISTORY_PREFIX}{i}")).and_then(|s| decode_event(s)))
                .collect()
        } else {
            Vec::new()
        };
        let unfinished = crate::engine::journal::RotationJournal::read(meta).and_then(|j| j.rotation_id);
        Self { last, good, failed, failures, quarantine, history, unfinished }
    }

    /// [`read`](Self::read) without the history (what a rotation needs,
    /// parsed at the cost of a few keys).
    pub fn read_brief(meta: &Metadata) -> Self {
        Self::read_parts(meta, false, true)
    }

    /// Since when `current`'s value has been current: the time recorded
    /// for it as the good version (a rollback's, or the value's own time
    /// carried over to the copy a store that promotes by copying wrote to
    /// undo a failed rotation), else its creation time. Schedules count from
    /// it, so a failed rotation's undo never passes for a rotation.
    ///
    /// ```
    /// use rekey_core::record::SecretRecord;
    /// use rekey_core::{Metadata, Stages, VersionId, VersionMeta};
    /// let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    /// let copy = VersionMeta {
    ///     id: VersionId::new("5"),
    ///     created_at: t("2030-02-01T00:00:00Z"),
    ///     stages: Stages { current: true, ..Stages::default() },
    ///     rotation_id: None,
    /// };
    /// let mut meta = Metadata::new();
    /// assert_eq!(SecretRecord::read_brief(&meta).current_since(&copy), copy.created_at);
    /// meta.insert("rekey.good".into(), "version=5 since=2030-01-01T00:00:00.000Z".into());
    /// assert_eq!(SecretRecord::read_brief(&meta).current_since(&copy), t("2030-01-01T00:00:00Z"));
    /// ```
    pub fn current_since(&self, current: &VersionMeta) -> DateTime<Utc> {
        let created = current.created_at;
        let recorded = self
            .good
            .as_ref()
            .filter(|g| g.names(current))
            // A version the recorded rotation wrote itself went current when
            // it was created.
            .filter(|g| g.rotation_id.is_none() || g.rotation_id != current.rotation_id)
            .and_then(|g| g.since);
        match recorded {
            // Recorded to the millisecond: within the version's own
            // millisecond it is the version's own time.
            Some(since) if since.timestamp_millis() != created.timestamp_millis() => since,
            _ => created,
        }
    }

    /// The good version once `copy`, a newer version holding `base`'s
    /// value, is current (a store that promotes by copying wrote it to
    /// restore `base`): what the record said of `base`, now of the copy,
    /// current since `base`'s value was.
    pub(crate) fn good_for_copy(&self, base: &VersionMeta, copy: &VersionId) -> GoodVersion {
        let since = self.current_since(base);
        match self.good.as_ref().filter(|g| g.names(base)) {
            Some(g) => GoodVersion { version: Some(copy.clone()), since: Some(since), ..g.clone() },
            None => GoodVersion {
                version: Some(copy.clone()),
                rotation_id: None,
                since: Some(since),
                previous: None,
                previous_since: None,
            },
        }
    }

    /// Whether `version` is recorded as failed.
    pub fn is_failed(&self, version: &VersionId) -> bool {
        self.failed.contains(version)
    }

    /// Whether `version` may not be restored by a rollback: recorded as
    /// failed, or written by a rotation that has not finished.
    fn never_restore(&self, version: &VersionMeta) -> bool {
        self.is_failed(&version.id) || (self.unfinished.is_some() && version.rotation_id == self.unfinished)
    }
}

/// Changes to a record, applied to metadata with [`RecordUpdate::apply`].
/// Only the keys an update touches change.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordUpdate {
    pub(crate) last: Option<Attempt>,
    pub(crate) good: Option<GoodVersion>,
    pub(crate) failed: Option<VersionId>,
    pub(crate) failures: Option<u32>,
    /// `Some(None)` lifts a quarantine.
    pub(crate) quarantine: Option<Option<QuarantineRecord>>,
    pub(crate) events: Vec<HistoryEvent>,
}

impl RecordUpdate {
    /// Sets (or, naming nothing, removes) the good-version key in `patch`.
    pub(crate) fn write_good(&self, patch: &mut crate::MetadataPatch) {
        let Some(g) = &self.good else { return };
        let mut s = String::with_capacity(128);
        if let Some(v) = g.version.as_ref().filter(|v| recordable(v.as_str())) {
            s.push_str("version=");
            s.push_str(v.as_str());
        }
        if let Some(r) = g.rotation_id {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str("rotation=");
            s.push_str(r.as_uuid().hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()));
        }
        if s.is_empty() {
            patch.remove(GOOD_KEY);
            return;
        }
        if let Some(t) = g.since {
            s.push_str(" since=");
            s.push_str(&time(t));
        }
        if let Some(p) = g.previous.as_ref().filter(|p| recordable(p.as_str())) {
            s.push_str(" prev=");
            s.push_str(p.as_str());
            if let Some(t) = g.previous_since {
                s.push_str(" prev_since=");
                s.push_str(&time(t));
            }
        }
        patch.set(GOOD_KEY, s);
    }

    /// The metadata patch that makes these changes to `snapshot` (the
    /// metadata as read): only the record's keys.
    pub(crate) fn patch(&self, snapshot: &Metadata) -> crate::MetadataPatch {
        let mut after = snapshot.clone();
        self.apply(&mut after);
        crate::MetadataPatch::diff(snapshot, &after)
    }

    /// Writes the changes into `meta` (the other keys are kept).
    pub(crate) fn apply(&self, meta: &mut Metadata) {
        if let Some(a) = &self.last {
            let mut s = format!("outcome={} at={} trigger={}", a.outcome, time(a.at), a.trigger);
            if let Some(r) = a.rotation_id {
                s.push_str(&format!(" id={r}"));
            }
            meta.insert(LAST_KEY.to_owned(), sanitize(&s, MAX_METADATA_VALUE_BYTES));
        }
        if self.good.is_some() {
            let mut p = crate::MetadataPatch::new();
            self.write_good(&mut p);
            p.apply(meta);
        }
        if let Some(v) = self.failed.as_ref().filter(|v| recordable(v.as_str())) {
            let mut list = vec![v.as_str().to_owned()];
            if let Some(old) = meta.get(FAILED_KEY) {
                list.extend(old.split(' ').filter(|o| !o.is_empty() && *o != v.as_str()).map(str::to_owned));
            }
            let mut s = String::new();
            for id in list {
                if s.len() + 1 + id.len() > MAX_METADATA_VALUE_BYTES {
                    break;
                }
                if !s.is_empty() {
                    s.push(' ');
                }
                s.push_str(&id);
            }
            meta.insert(FAILED_KEY.to_owned(), s);
        }
        match self.failures {
            Some(0) => {
                meta.remove(FAILURES_KEY);
            }
            Some(n) => {
                meta.insert(FAILURES_KEY.to_owned(), n.to_string());
            }
            None => {}
        }
        match &self.quarantine {
            Some(Some(q)) => {
                let s = format!("since={} failures={} reason={}", time(q.since), q.failures, q.reason);
                meta.insert(QUARANTINE_KEY.to_owned(), sanitize(&s, MAX_METADATA_VALUE_BYTES));
            }
            Some(None) => {
                meta.remove(QUARANTINE_KEY);
            }
            None => {}
        }
        // Oldest of the new events first, so the last one ends up newest.
        for e in &self.events {
            push_event(meta, e);
        }
    }
}

fn push_event(meta: &mut Metadata, e: &HistoryEvent) {
    for i in (1..HISTORY_KEPT).rev() {
        match meta.remove(&format!("{HISTORY_PREFIX}{}", i - 1)) {
            Some(v) => {
                meta.insert(format!("{HISTORY_PREFIX}{i}"), v);
            }
            None => {
                meta.remove(&format!("{HISTORY_PREFIX}{i}"));
            }
        }
    }
    meta.insert(format!("{HISTORY_PREFIX}0"), encode_event(e));
}

/// How a [`rollback_plan`] refusal's `what` starts.
pub(crate) const REFUSAL: &str = "an earlier good version to restore";

/// Which version a rollback restores, decided by [`rollback_plan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackPlan {
    /// The version current now, which the rollback replaces (the
    /// compare-and-swap's expected version).
    pub replace: VersionId,
    /// The version whose value becomes current again.
    pub restore: VersionId,
    /// Since when `restore` had been current before it was replaced, when
    /// known.
    pub restore_was_current_since: Option<DateTime<Utc>>,
}

/// Decides which version a rollback of a secret restores: the last value
/// that was current and good before the current one — never a candidate
/// that failed.
///
/// * With a [`GoodVersion`] record for the current version, the good
///   version before it (unless it failed since).
/// * Otherwise (no record yet, or the current version was written outside
///   rekey), the store's previous version, unless it is recorded as failed
///   or is the current value's own copy.
///
/// `versions` are the store's versions ([`list_versions`]). A refusal is
/// [`StoreError::NotFound`] whose text says why.
///
/// [`list_versions`]: crate::SecretStore::list_versions
pub fn rollback_plan(path: &str, versions: &[VersionMeta], record: &SecretRecord) -> Result<RollbackPlan, StoreError> {
    let refuse = |why: &str| StoreError::not_found(path, Some(format!("{REFUSAL}: {why}")));
    let current =
        versions.iter().find(|v| v.stages.current).ok_or_else(|| refuse("the secret has no current version"))?;
    let live = |id: &VersionId| versions.iter().any(|v| &v.id == id && !v.stages.pending);
    if let Some(g) = record.good.as_ref().filter(|g| g.names(current)) {
        let unfinished = |p: &VersionId| versions.iter().any(|v| &v.id == p && record.never_restore(v));
        return match &g.previous {
            Some(p) if record.is_failed(p) => Err(refuse(&format!("version {p} failed since"))),
            Some(p) if unfinished(p) => Err(refuse(&format!("version {p} belongs to an unfinished rotation"))),
            Some(p) if !live(p) => Err(refuse(&format!("version {p} is no longer kept by the store"))),
            Some(p) => Ok(RollbackPlan {
                replace: current.id.clone(),
                restore: p.clone(),
                // Recorded, or the version's own time (when it was written).
                restore_was_current_since: g
                    .previous_since
                    .or_else(|| versions.iter().find(|v| &v.id == p).map(|v| v.created_at)),
            }),
            None => Err(refuse(&format!(
                "version {} is the first good version rekey recorded (it was itself restored by a rollback, or \
                 no rotation has succeeded since the record began)",
                current.id
            ))),
        };
    }
    let previous = versions.iter().find(|v| v.stages.previous).ok_or_else(|| refuse("there is no previous version"))?;
    if record.is_failed(&previous.id) {
        return Err(refuse(&format!("the previous version {} is a candidate that failed", previous.id)));
    }
    if record.never_restore(previous) {
        return Err(refuse(&format!(
            "the previous version {} was written by a rotation that has not finished (recover it first)",
            previous.id
        )));
    }
    Ok(RollbackPlan {
        replace: current.id.clone(),
        restore: previous.id.clone(),
        restore_was_current_since: Some(previous.created_at),
    })
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Rollback {
    /// The version that was current and was replaced.
    pub replaced: VersionId,
    /// The version whose value is current again.
    pub restored: VersionId,
    /// Since when the restored value had been current before it was
    /// replaced, when recorded.
    pub restored_was_current_since: Option<DateTime<Utc>>,
    /// The new current version (`restored` itself, or a copy of it on
    /// stores that promote by copying, such as Vault KV v2).
    pub current: VersionMeta,
}

/// Rolls `path` back to the last value that was current and good
/// ([`rollback_plan`]) with compare-and-swap against the current version,
/// then records it (the replaced version counts as failed from then on, so
/// a second rollback does not bring it back). A refusal is
/// [`StoreError::NotFound`] saying why; a lost race is
/// [`StoreError::Conflict`].
///
/// The record is written after the promotion; if that write fails the
/// rollback still happened and is returned (the failure is logged).
pub async fn rollback_to_last_good<S: crate::SecretStore + ?Sized>(
    store: &S,
    path: &crate::SecretPath,
    now: DateTime<Utc>,
    trigger: &str,
) -> Result<Rollback, StoreError> {
    let versions = store.list_versions(path).await?;
    let meta = store.read_metadata(path).await?;
    let plan = rollback_plan(path.as_str(), &versions, &SecretRecord::read(&meta))?;
    let current = store.promote(path, &plan.restore, &plan.replace).await?;
    let patch = after_rollback(&plan, &current.id, now, trigger).patch(&meta);
    if let Err(e) = store.update_metadata(path, patch).await {
        tracing::warn!(path = path.as_str(), error = %e, "rolled back, but could not record it beside the secret");
    }
    Ok(Rollback {
        replaced: plan.replace,
        restored: plan.restore,
        restored_was_current_since: plan.restore_was_current_since,
        current,
    })
}

/// The record update of a rollback that made `restored_as` (the new
/// current version: `plan.restore` itself, or a copy of it on stores that
/// promote by copying) current at `now`.
pub(crate) fn after_rollback(
    plan: &RollbackPlan,
    restored_as: &VersionId,
    now: DateTime<Utc>,
    trigger: &str,
) -> RecordUpdate {
    let mut e = HistoryEvent::new(now, "rollback", trigger);
    e.old_version = Some(plan.replace.as_str().to_owned());
    e.new_version = Some(restored_as.as_str().to_owned());
    e.detail = Some(sanitize(&format!("restored the value of version {}", plan.restore), 120));
    RecordUpdate {
        // What the secret's status shows as its last change (the next
        // successful rotation replaces it).
        last: Some(Attempt { outcome: "rollback".to_owned(), at: now, trigger: trigger.to_owned(), rotation_id: None }),
        good: Some(GoodVersion {
            version: Some(restored_as.clone()),
            rotation_id: None,
            since: Some(now),
            previous: None,
            previous_since: None,
        }),
        failed: Some(plan.replace.clone()),
        events: vec![e],
        ..RecordUpdate::default()
    }
}

/// Lifts a quarantine recorded beside `path` (and forgets the failures
/// counted towards it), recording a `resumed` event. Returns the lifted
/// quarantine, or `None` when there was none (nothing is written when
/// there was neither a quarantine nor a failure count).
///
/// Every process sees the change: a daemon that holds the secret in
/// quarantine in memory lifts it at its next resync
/// ([`RotationManager::sync_quarantines`](crate::RotationManager::sync_quarantines)).
pub async fn lift_quarantine(
    store: &crate::DynSecretStore,
    path: &crate::SecretPath,
    now: DateTime<Utc>,
    trigger: &str,
) -> Result<Option<QuarantineRecord>, StoreError> {
    let meta = store.read_metadata(path).await?;
    let rec = SecretRecord::read(&meta);
    if rec.quarantine.is_none() && rec.failures == 0 {
        return Ok(None);
    }
    let mut e = HistoryEvent::new(now, "resumed", trigger);
    e.detail = rec.quarantine.as_ref().map(|q| sanitize(&format!("quarantined since {}", time(q.since)), 120));
    let patch = RecordUpdate { failures: Some(0), quarantine: Some(None), events: vec![e], ..RecordUpdate::default() }
        .patch(&meta);
    store.update_metadata(path, patch).await?;
    Ok(rec.quarantine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Stages;

    /// Since when a value is current: its version's creation, unless the
    /// record says otherwise for a version no recorded rotation wrote (a
    /// rollback's, or an undo's copy of an older value).
    #[test]
    fn since_when_the_current_value_is_current() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap_or_default();
        let r = RotationId::new();
        let mut current = v("7", true, false);
        current.created_at = t("2030-01-10T00:00:00.000500Z");
        let good = |version: Option<&str>, rotation_id, since: &str| SecretRecord {
            good: Some(GoodVersion {
                version: version.map(VersionId::new),
                rotation_id,
                since: Some(t(since)),
                previous: None,
                previous_since: None,
            }),
            ..SecretRecord::default()
        };
        let created = current.created_at;
        assert_eq!(SecretRecord::default().current_since(&current), created, "no record");
        // A copy of an older value, or a rollback: the recorded time.
        assert_eq!(good(Some("7"), None, "2030-01-01T00:00:00Z").current_since(&current), t("2030-01-01T00:00:00Z"));
        assert_eq!(good(Some("7"), None, "2030-01-20T00:00:00Z").current_since(&current), t("2030-01-20T00:00:00Z"));
        // Another version's record says nothing of this one.
        assert_eq!(good(Some("6"), None, "2030-01-01T00:00:00Z").current_since(&current), created);
        // The same millisecond (the record keeps milliseconds): the version's.
        assert_eq!(good(Some("7"), None, "2030-01-10T00:00:00.000Z").current_since(&current), created);
        // Written by the rotation the record names: its creation.
        current.rotation_id = Some(r);
        assert_eq!(good(None, Some(r), "2030-01-10T00:00:00.009Z").current_since(&current), created);
        // The copy keeps the rotation of the version it copies, not its own.
        let mut copy = current.clone();
        copy.rotation_id = None;
        assert_eq!(good(Some("7"), Some(r), "2030-01-01T00:00:00Z").current_since(&copy), t("2030-01-01T00:00:00Z"));
    }

    fn v(id: &str, current: bool, previous: bool) -> VersionMeta {
        VersionMeta {
            id: VersionId::new(id),
            created_at: Utc::now(),
            stages: Stages { current, previous, pending: false },
            rotation_id: None,
        }
    }

    #[test]
    fn events_round_trip_and_stay_in_tag_charset() {
        let mut e = HistoryEvent::new(Utc::now(), "rotated", "emergency");
        e.old_version = Some("3".into());
        e.new_version = Some("4".into());
        e.rotation_id = Some(RotationId::new().to_string());
        e.detail = Some(sanitize("reason leaked key (ticket #42), <now>!", 160));
        let s = encode_event(&e);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c)), "{s}");
        assert!(s.len() <= MAX_METADATA_VALUE_BYTES);
        assert_eq!(decode_event(&s), Some(e));
    }

    #[test]
    fn updates_round_trip() {
        let now: DateTime<Utc> = "2030-01-01T00:00:00.123Z".parse().unwrap_or_default();
        let mut m = Metadata::new();
        let r = RotationId::new();
        RecordUpdate {
            last: Some(Attempt {
                outcome: "rotated".into(),
                at: now,
                trigger: "schedule".into(),
                rotation_id: Some(r),
            }),
            good: Some(GoodVersion {
                version: Some(VersionId::new("7")),
                rotation_id: Some(r),
                since: Some(now),
                previous: Some(VersionId::new("6")),
                previous_since: Some(now),
            }),
            failed: Some(VersionId::new("5")),
            failures: Some(2),
            quarantine: Some(Some(QuarantineRecord {
                since: now,
                failures: 2,
                reason: "bad: password rejected".into(),
            })),
            events: (0..12).map(|i| HistoryEvent::new(now, &format!("e{i}"), "cli")).collect(),
        }
        .apply(&mut m);
        let rec = SecretRecord::read(&m);
        assert_eq!(rec.last.as_ref().map(|a| (a.outcome.as_str(), a.rotation_id)), Some(("rotated", Some(r))));
        assert_eq!(rec.good.as_ref().and_then(|g| g.previous.clone()), Some(VersionId::new("6")));
        assert_eq!(rec.failed, [VersionId::new("5")]);
        assert_eq!(rec.failures, 2);
        assert_eq!(rec.quarantine.as_ref().map(|q| q.reason.as_str()), Some("bad: password rejected"));
        assert_eq!(rec.history.len(), HISTORY_KEPT);
        assert_eq!(rec.history[0].event, "e11");
        for v in m.values() {
            assert!(v.len() <= MAX_METADATA_VALUE_BYTES);
        }
        RecordUpdate { failures: Some(0), quarantine: Some(None), ..RecordUpdate::default() }.apply(&mut m);
        let rec = SecretRecord::read(&m);
        assert_eq!((rec.failures, rec.quarantine), (0, None));
    }

    #[test]
    fn failed_list_is_newest_first_and_bounded() {
        let mut m = Metadata::new();
        for i in 0..40 {
            RecordUpdate { failed: Some(VersionId::new(uuid::Uuid::new_v4().to_string())), ..Default::default() }
                .apply(&mut m);
            let _ = i;
        }
        let last = VersionId::new("newest");
        RecordUpdate { failed: Some(last.clone()), ..Default::default() }.apply(&mut m);
        let rec = SecretRecord::read(&m);
        assert_eq!(rec.failed.first(), Some(&last));
        assert!(m[FAILED_KEY].len() <= MAX_METADATA_VALUE_BYTES);
    }

    #[test]
    fn rollback_never_restores_a_failed_candidate() {
        // After a rotation from 1 to 2, rollback restores 1.
        let now = Utc::now();
        let versions = [v("1", false, true), v("2", true, false)];
        let mut rec = SecretRecord {
            good: Some(GoodVersion {
                version: Some(VersionId::new("2")),
                rotation_id: None,
                since: Some(now),
                previous: Some(VersionId::new("1")),
                previous_since: Some(now),
            }),
            ..SecretRecord::default()
        };
        let plan = rollback_plan("p", &versions, &rec).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.restore, VersionId::new("1"));
        assert_eq!(plan.restore_was_current_since, Some(now));
        // 1 failed later (rolled back by hand): refused.
        rec.failed.push(VersionId::new("1"));
        assert!(matches!(rollback_plan("p", &versions, &rec), Err(StoreError::NotFound { .. })));
        // No record: the previous version, unless it failed.
        let versions = [v("1", true, false), v("2", false, true)];
        let rec = SecretRecord { failed: vec![VersionId::new("2")], ..SecretRecord::default() };
        let e = rollback_plan("p", &versions, &rec).unwrap_err();
        assert!(e.to_string().contains("failed"), "{e}");
        let rec = SecretRecord::default();
        assert_eq!(rollback_plan("p", &versions, &rec).map(|p| p.restore).ok(), Some(VersionId::new("2")));
        // Nothing before.
        assert!(rollback_plan("p", &[v("1", true, false)], &rec).is_err());
    }
}
