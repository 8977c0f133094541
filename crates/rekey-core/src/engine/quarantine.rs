//! Quarantine and resume: a secret whose rotations keep failing at the
//! target or the verifiers stops being rotated on schedule until it is
//! resumed. The quarantine is recorded beside the secret (see
//! [`crate::record`]), so every process sees it; the schedule table holds a
//! copy that [`RotationManager::sync_quarantines`] refreshes.

use super::audit::{AuditEvent, AuditEventKind};
use super::error::{RotationError, RotationStep};
use super::manager::RotationManager;
use super::schedule::{self, PAUSED, ScheduleInfo};
use super::shared::lock;
use crate::SecretPath;
use crate::policy::jitter_key;
use crate::record::{SecretRecord, lift_quarantine};

impl RotationManager {
    /// Turns automatic rotation of `path` back on after a quarantine or a
    /// pause: the quarantine recorded beside the secret is lifted (for every
    /// process), failures are forgotten, and the next due time is recomputed
    /// from the last rotation (so an overdue secret is due at once).
    ///
    /// Returns the schedule, or `None` when this manager does not schedule
    /// `path` (the quarantine in the store is lifted all the same).
    pub async fn resume(&self, path: &SecretPath) -> Result<Option<ScheduleInfo>, RotationError> {
        let now = self.inner.clock.now();
        let lifted = lift_quarantine(&*self.inner.store, path, now, "manual")
            .await
            .map_err(|e| RotationError::store(RotationStep::Prepare, e))?;
        let (info, was_quarantined) = {
            let mut t = lock(&self.inner.schedules);
            match t.lookup(path.as_str()) {
                None => (None, false),
                Some(id) => {
                    let was = t.unquarantine(id);
                    t.set_flag(id, PAUSED, false);
                    t.set_failures(id, 0);
                    let next = t.slot(id).and_then(|s| {
                        let policy = s.policy.clone()?;
                        policy.next_due(schedule::from_ns(s.last_ns), jitter_key(path))
                    });
                    t.set_next(id, next);
                    (t.info(id), was)
                }
            }
        };
        if was_quarantined || lifted.is_some() {
            self.inner.emit_with(|| AuditEvent::new(now, AuditEventKind::Resumed, path.clone()));
        }
        Ok(info)
    }

    /// Re-reads the record of every schedule quarantined here and lifts the
    /// quarantines that were lifted in the store (by `rekey resume`, or by
    /// another process's successful rotation): those secrets are due at
    /// once. One metadata read per quarantined schedule; returns how many
    /// were lifted. A daemon calls it on its resync interval.
    pub async fn sync_quarantines(&self) -> usize {
        let ids = lock(&self.inner.schedules).quarantined_ids();
        let mut lifted = 0;
        for id in ids {
            let Some(path) = lock(&self.inner.schedules).slot(id).and_then(|s| s.path.clone()) else { continue };
            let Ok(path) = SecretPath::new(&*path) else { continue };
            let Ok(meta) = self.inner.store.read_metadata(&path).await else { continue };
            // Lifted in the store means: no quarantine *and* no failure
            // counted — what `resume` and a successful rotation leave. A
            // record that still counts failures (its quarantine entry not
            // written, e.g. that write failed and this process quarantined
            // on its own count) keeps the quarantine here.
            let rec = SecretRecord::read(&meta);
            if rec.quarantine.is_some() || rec.failures > 0 {
                continue;
            }
            let now = self.inner.clock.now();
            let mut t = lock(&self.inner.schedules);
            if t.lookup(path.as_str()) == Some(id) && t.unquarantine(id) {
                t.set_failures(id, 0);
                t.set_next(id, Some(now));
                lifted += 1;
                drop(t);
                self.inner.emit_with(|| {
                    let mut e = AuditEvent::new(now, AuditEventKind::Resumed, path.clone());
                    e.detail = Some("quarantine lifted in the store".to_owned());
                    e
                });
            }
        }
        lifted
    }
}
