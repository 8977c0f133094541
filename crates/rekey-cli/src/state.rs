//! What the `rekey` command records beside each secret, in the store's
//! metadata (so every process and every later run sees the same state):
//!
//! | key | value |
//! |---|---|
//! | `rekey.cli.last` | `<outcome> <RFC 3339 time> <trigger>` of the last rotation attempt |
//! | `rekey.cli.failures` | consecutive failed rotations |
//! | `rekey.cli.quarantine` | `<RFC 3339 time> <reason>` while quarantined |
//! | `rekey.cli.h.0` .. `rekey.cli.h.7` | the last rotation events, newest first |
//!
//! Values hold only the characters AWS tags allow and at most 256 bytes;
//! none holds a secret (outcomes, times, version ids, rotation ids and
//! secret-free error texts only).

use crate::error::rotation_message;
use chrono::{DateTime, SecondsFormat, Utc};
use rekey::{DynSecretStore, Metadata, RotationOutcome, RotationResult, RotationTrigger, SecretPath, StoreError};

/// Last attempt.
pub const LAST: &str = "rekey.cli.last";
/// Consecutive failures.
pub const FAILURES: &str = "rekey.cli.failures";
/// Quarantine marker.
pub const QUARANTINE: &str = "rekey.cli.quarantine";
const HISTORY_PREFIX: &str = "rekey.cli.h.";
/// How many events are kept beside a secret.
pub const HISTORY_KEPT: usize = 8;
const MAX_VALUE: usize = 256;

/// One recorded rotation event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    /// When.
    pub at: String,
    /// What happened (`rotated`, `failed`, `rolled_back`, `rollback`, `resumed`, `quarantined`, ...).
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
    /// Free text (reason, error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The state read back from metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SecretState {
    /// Outcome of the last attempt.
    pub last_result: Option<String>,
    /// When it was.
    pub last_attempt: Option<String>,
    /// Consecutive failures.
    pub failures: u32,
    /// Since when and why quarantined.
    pub quarantined: Option<String>,
    /// Whether a rotation journal is present (a rotation in progress, or a crashed one).
    pub in_progress: bool,
    /// Recorded events, newest first.
    pub history: Vec<Event>,
}

/// Keeps the characters AWS tag values allow; clips to `max` bytes.
pub fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = if c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c) { c } else { ' ' };
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

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The trigger's short name.
pub fn trigger_name(t: &RotationTrigger) -> &'static str {
    match t {
        RotationTrigger::Manual => "manual",
        RotationTrigger::Schedule => "schedule",
        RotationTrigger::Emergency { .. } => "emergency",
        _ => "other",
    }
}

/// The outcome's snake_case name.
pub fn outcome_name(o: RotationOutcome) -> &'static str {
    match o {
        RotationOutcome::Rotated => "rotated",
        RotationOutcome::RolledBack => "rolled_back",
        RotationOutcome::Failed => "failed",
        RotationOutcome::AlreadyRotating => "already_rotating",
        RotationOutcome::InProgressElsewhere => "in_progress_elsewhere",
        RotationOutcome::RotatedElsewhere => "rotated_elsewhere",
        RotationOutcome::OutsideWindow => "outside_window",
        RotationOutcome::StoreUnavailable => "store_unavailable",
        RotationOutcome::Deferred => "deferred",
        RotationOutcome::Quarantined => "quarantined",
        _ => "other",
    }
}

fn encode(e: &Event) -> String {
    // `at event trigger old=new rid=... | detail`, spaces separate fields.
    let mut s = format!(
        "{} {} {} {}={} {}",
        e.at,
        e.event,
        e.trigger,
        e.old_version.as_deref().unwrap_or("-"),
        e.new_version.as_deref().unwrap_or("-"),
        e.rotation_id.as_deref().unwrap_or("-"),
    );
    if let Some(d) = &e.detail {
        s.push_str(" : ");
        s.push_str(d);
    }
    sanitize(&s, MAX_VALUE)
}

fn decode(s: &str) -> Option<Event> {
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
    Some(Event { at, event, trigger, old_version: opt(old), new_version: opt(new), rotation_id: opt(rid), detail })
}

/// Reads the state from metadata.
pub fn read(meta: &Metadata) -> SecretState {
    let mut st = SecretState::default();
    if let Some(l) = meta.get(LAST) {
        let mut it = l.splitn(3, ' ');
        st.last_result = it.next().map(str::to_owned);
        st.last_attempt = it.next().map(str::to_owned);
    }
    st.failures = meta.get(FAILURES).and_then(|f| f.parse().ok()).unwrap_or(0);
    st.quarantined = meta.get(QUARANTINE).cloned();
    st.in_progress = meta.keys().any(|k| k == "rekey.rotation" || k.starts_with("rekey.rotation."));
    st.history =
        (0..HISTORY_KEPT).filter_map(|i| meta.get(&format!("{HISTORY_PREFIX}{i}")).and_then(|s| decode(s))).collect();
    st
}

fn push_event(meta: &mut Metadata, e: &Event) {
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
    meta.insert(format!("{HISTORY_PREFIX}0"), encode(e));
}

/// What recording a result decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Nothing changed about quarantine.
    Normal,
    /// This result put the secret into quarantine.
    Quarantined,
    /// Nothing was recorded (another process's rotation, no change).
    Skipped,
}

/// Records a rotation result beside the secret (read-modify-write).
/// `quarantine_after` is the policy's threshold of consecutive failures.
pub async fn record(store: &DynSecretStore, r: &RotationResult, quarantine_after: u32) -> Result<Recorded, StoreError> {
    let counts = matches!(r.outcome, RotationOutcome::Rotated | RotationOutcome::RolledBack | RotationOutcome::Failed);
    if !counts {
        return Ok(Recorded::Skipped);
    }
    let mut meta = match store.read_metadata(&r.path).await {
        Ok(m) => m,
        Err(StoreError::NotFound { .. }) => return Ok(Recorded::Skipped),
        Err(e) => return Err(e),
    };
    let at = time(r.completed_at);
    let outcome = outcome_name(r.outcome);
    let trigger = trigger_name(&r.trigger);
    meta.insert(LAST.to_owned(), sanitize(&format!("{outcome} {at} {trigger}"), MAX_VALUE));
    let detail = match (&r.trigger, &r.error) {
        (RotationTrigger::Emergency { reason }, Some(e)) => Some(format!("reason {reason}; {}", rotation_message(e))),
        (RotationTrigger::Emergency { reason }, None) => Some(format!("reason {reason}")),
        (_, Some(e)) => Some(rotation_message(e)),
        _ => None,
    };
    push_event(
        &mut meta,
        &Event {
            at: at.clone(),
            event: outcome.to_owned(),
            trigger: trigger.to_owned(),
            old_version: r.old_version.as_ref().map(|v| v.as_str().to_owned()),
            new_version: r.new_version.as_ref().map(|v| v.as_str().to_owned()),
            rotation_id: Some(r.rotation_id.to_string()),
            detail: detail.map(|d| sanitize(&d, 160)),
        },
    );
    let mut result = Recorded::Normal;
    if r.outcome == RotationOutcome::Rotated {
        meta.remove(FAILURES);
        meta.remove(QUARANTINE);
    } else {
        let failures = meta.get(FAILURES).and_then(|f| f.parse::<u32>().ok()).unwrap_or(0).saturating_add(1);
        meta.insert(FAILURES.to_owned(), failures.to_string());
        if failures >= quarantine_after && !meta.contains_key(QUARANTINE) {
            let reason = r.error.as_ref().map(rotation_message).unwrap_or_else(|| outcome.to_owned());
            let q = sanitize(&format!("{at} {failures} failed rotations in a row: {reason}"), MAX_VALUE);
            meta.insert(QUARANTINE.to_owned(), q);
            push_event(
                &mut meta,
                &Event {
                    at,
                    event: "quarantined".into(),
                    trigger: trigger.to_owned(),
                    old_version: None,
                    new_version: None,
                    rotation_id: Some(r.rotation_id.to_string()),
                    detail: Some(sanitize(&format!("{failures} failures"), 80)),
                },
            );
            result = Recorded::Quarantined;
        }
    }
    store.write_metadata(&r.path, meta).await?;
    Ok(result)
}

/// Records an event that is not a rotation (rollback, resume).
pub async fn record_event(
    store: &DynSecretStore,
    path: &SecretPath,
    e: Event,
    clear_quarantine: bool,
) -> Result<(), StoreError> {
    let mut meta = store.read_metadata(path).await?;
    if clear_quarantine {
        meta.remove(QUARANTINE);
        meta.remove(FAILURES);
    }
    push_event(&mut meta, &e);
    store.write_metadata(path, meta).await
}

/// An event stamped now.
pub fn event_now(event: &str, trigger: &str) -> Event {
    Event {
        at: time(Utc::now()),
        event: event.to_owned(),
        trigger: trigger.to_owned(),
        old_version: None,
        new_version: None,
        rotation_id: None,
        detail: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_stay_in_tag_charset() {
        let e = Event {
            at: "2026-01-01T00:00:00Z".into(),
            event: "rotated".into(),
            trigger: "emergency".into(),
            old_version: Some("3".into()),
            new_version: Some("4".into()),
            rotation_id: Some("0b9e-1".into()),
            detail: Some(sanitize("reason leaked key (ticket #42), <now>!", 160)),
        };
        let s = encode(&e);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c)), "{s}");
        assert!(s.len() <= MAX_VALUE);
        assert_eq!(decode(&s), Some(e));
    }

    #[test]
    fn history_keeps_newest_first() {
        let mut m = Metadata::new();
        for i in 0..12 {
            push_event(&mut m, &event_now(&format!("e{i}"), "cli"));
        }
        let st = read(&m);
        assert_eq!(st.history.len(), HISTORY_KEPT);
        assert_eq!(st.history[0].event, "e11");
        assert_eq!(st.history[7].event, "e4");
    }
}
