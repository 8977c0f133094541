//! What a rotation records beside the secret when it ends (see
//! [`crate::record`]): the attempt, the good version a rollback restores,
//! failed candidates, consecutive failures and quarantine, a history event.
//! Written by the same metadata write that clears the rotation's journal.

use super::audit::RotationTrigger;
use super::consumers::RETIRE_KEEP;
use super::context::{Executor, Run};
use super::machine::{RotationAction, RotationState};
use super::shared::Inner;
use crate::record::{
    Attempt, FAILURES_KEY, GoodVersion, HistoryEvent, LAST_KEY, QuarantineRecord, RecordUpdate, SecretRecord, sanitize,
};
use crate::{JOURNAL_KEY, MetadataPatch, RecordWrite};

/// The trigger's short name, as recorded.
pub(crate) fn trigger_name(t: &RotationTrigger) -> &'static str {
    match t {
        RotationTrigger::Manual => "manual",
        RotationTrigger::Schedule => "schedule",
        RotationTrigger::Emergency { .. } => "emergency",
    }
}

impl Inner {
    /// The record of a rotation whose state machine is about to clear its
    /// journal (its last write). `None` for a lost race or a store outage:
    /// those say nothing about the secret.
    pub(super) fn record_update(&self, run: &mut Run<'_>, x: &Executor<'_>, s: &RotationState) -> Option<RecordUpdate> {
        let now = self.clock.now();
        let trigger = trigger_name(run.trigger);
        let failure = s.failure;
        if failure.is_some_and(|f| f.conflict) || run.error.as_ref().is_some_and(|e| e.is_store_unavailable()) {
            return None;
        }
        let rec = &run.record;
        let mut u = RecordUpdate::default();
        let outcome = match failure {
            None => "rotated",
            Some(_) if s.discarded || s.rolled_back => "rolled_back",
            Some(_) => "failed",
        };
        u.last = Some(Attempt {
            outcome: outcome.to_owned(),
            at: now,
            trigger: trigger.to_owned(),
            rotation_id: Some(run.id),
        });
        let mut event = HistoryEvent::new(now, outcome, trigger);
        event.old_version = Some(x.base.as_str().to_owned());
        event.new_version = run.new_version.as_ref().map(|v| v.as_str().to_owned());
        event.rotation_id = Some(run.id.to_string());
        let reason = match run.trigger {
            RotationTrigger::Emergency { reason } => Some(format!("reason {reason}")),
            _ => None,
        };
        let error = run.error.as_ref().map(ToString::to_string);
        event.detail = match (reason, &error) {
            (Some(r), Some(e)) => Some(format!("{r}; {e}")),
            (r, e) => r.or_else(|| e.clone()),
        }
        .map(|d| sanitize(&d, 160));
        let mut events = vec![event];
        match failure {
            None => {
                // Before the write that makes it current (a carried record),
                // the new version is named by this rotation.
                let new = x.now_current.clone();
                let previous_since = rec
                    .good
                    .as_ref()
                    .filter(|g| g.names(&x.current_meta))
                    .and_then(|g| g.since)
                    .unwrap_or(x.current_meta.created_at);
                u.good = Some(GoodVersion {
                    version: new,
                    rotation_id: Some(run.id),
                    since: Some(now),
                    previous: Some(x.base.clone()),
                    previous_since: Some(previous_since),
                });
                if rec.failures > 0 {
                    u.failures = Some(0);
                }
                if rec.quarantine.is_some() {
                    u.quarantine = Some(None);
                    let mut e = HistoryEvent::new(now, "resumed", trigger);
                    e.detail = Some("quarantine lifted by a successful rotation".to_owned());
                    events.push(e);
                }
                run.consecutive_failures = Some(0);
                run.quarantined = false;
            }
            Some(f) => {
                // A candidate that failed and had been current (so it is now
                // the store's previous version) is never restored by a
                // rollback. One that was discarded before it went current
                // cannot be restored anyway and takes no room in the list.
                if s.candidate_went_current() {
                    u.failed = run.new_version.clone();
                }
                // A rollback on a store that promotes by copying made a new
                // version with the good value: it is the good version now.
                // (The good version is read only here: the metadata still
                // holds it as read, as no write of this rotation touched it.)
                // It holds the value since that value's own time (the copy's
                // creation is not a rotation: schedules count from this).
                if let Some(restored) = &x.restored_as
                    && *restored != x.base
                {
                    u.good = Some(SecretRecord::read_brief(&x.meta).good_for_copy(&x.current_meta, restored));
                }
                let counts =
                    matches!(f.action, RotationAction::Apply | RotationAction::Verify | RotationAction::Confirm);
                if counts {
                    let failures = rec.failures.saturating_add(1);
                    u.failures = Some(failures);
                    run.consecutive_failures = Some(failures);
                    if failures >= run.policy.quarantine_after() && rec.quarantine.is_none() {
                        let reason = sanitize(error.as_deref().unwrap_or(outcome), 160);
                        u.quarantine = Some(Some(QuarantineRecord { since: now, failures, reason }));
                        let mut e = HistoryEvent::new(now, "quarantined", trigger);
                        e.rotation_id = Some(run.id.to_string());
                        e.detail = Some(format!("{failures} failed rotations in a row"));
                        events.push(e);
                        run.quarantined = true;
                    }
                }
            }
        }
        u.events = events;
        Some(u)
    }

    /// The record a successful rotation writes with the call that makes its
    /// candidate current (when nothing follows that call), built directly
    /// as a patch — the hot path of every rotation, so no time is formatted
    /// and the metadata is not copied:
    ///
    /// * must: the journal removed if the store kept it, a failure count
    ///   reset, a quarantine lifted, a failed last attempt replaced, a
    ///   dual-write retire record;
    /// * may: the good version (named by this rotation) and the one before
    ///   it (what a rollback restores).
    ///
    /// A success adds no history event of its own (the store's versions are
    /// the history of successes); lifting a quarantine does.
    pub(super) fn carry_record(&self, run: &mut Run<'_>, x: &Executor<'_>, _s: &RotationState) -> Option<RecordWrite> {
        let rec = &run.record;
        let mut w = RecordWrite::default();
        if x.journal_kept {
            w.must.remove(JOURNAL_KEY);
        }
        if rec.failures > 0 {
            w.must.remove(FAILURES_KEY);
        }
        if rec.last.as_ref().is_some_and(|a| a.outcome != "rotated") {
            w.must.remove(LAST_KEY);
        }
        if rec.quarantine.is_some() {
            let now = self.clock.now();
            let mut u = RecordUpdate { quarantine: Some(None), ..RecordUpdate::default() };
            let mut e = HistoryEvent::new(now, "resumed", trigger_name(run.trigger));
            e.rotation_id = Some(run.id.to_string());
            e.detail = Some("quarantine lifted by a successful rotation".to_owned());
            u.events.push(e);
            w.must.extend(u.patch(&x.meta));
        }
        if let Some(retire) = self.retire_record(run, x, run.new_version.clone()) {
            let mut after = x.meta.clone();
            retire.write_into(&mut after);
            for (k, v) in MetadataPatch::diff(&x.meta, &after).iter() {
                match v {
                    Some(v) => w.must.set(k, v),
                    None => w.must.remove(k),
                };
            }
            // The version that replaced the retired one: the promoted one,
            // whose id only the store knows on stores that copy.
            w.new_version_keys.push(RETIRE_KEEP.to_owned());
        }
        if let RotationTrigger::Emergency { reason } = run.trigger {
            // Why an emergency rotation happened is worth keeping beside the
            // secret, where it costs nothing (the `may` part rides the
            // promotion's own metadata write on stores that have one).
            let mut e = HistoryEvent::new(self.clock.now(), "rotated", "emergency");
            e.rotation_id = Some(run.id.to_string());
            e.old_version = Some(x.base.as_str().to_owned());
            e.new_version = run.new_version.as_ref().map(|v| v.as_str().to_owned());
            e.detail = Some(crate::record::sanitize(&format!("reason: {reason}"), 160));
            let u = RecordUpdate { events: vec![e], ..RecordUpdate::default() };
            w.may.extend(u.patch(&x.meta));
        }
        let good = GoodVersion {
            version: None,
            rotation_id: Some(run.id),
            since: None,
            previous: Some(x.base.clone()),
            previous_since: None,
        };
        RecordUpdate { good: Some(good), ..RecordUpdate::default() }.write_good(&mut w.may);
        run.consecutive_failures = Some(0);
        run.quarantined = false;
        Some(w)
    }
}
