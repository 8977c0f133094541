//! The schedule table: which secret is due when.
//!
//! Compact by design (a million schedules fit in well under 256 MiB): one
//! 56-byte slot per schedule in a `Vec`, the path interned once as an
//! `Arc<str>` shared by the slot and the path index, policies shared through
//! `Arc`, times as nanoseconds since the Unix epoch (the full precision of
//! the stores' version times, so a schedule reports exactly the time the
//! store does; representable from 1677 to 2262). Due times live in a min-heap of
//! `(due, slot, generation)`; a rescheduled or removed slot bumps its
//! generation, so its old heap entries are skipped when popped (lazy
//! invalidation) and the heap is rebuilt when stale entries outnumber live
//! ones. Finding the due secrets costs O(due · log n).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::SecretPath;
use crate::policy::{RotationPolicy, jitter_key};

/// Why a schedule is quarantined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantine {
    /// Since when.
    pub since: DateTime<Utc>,
    /// Failed rotations in a row.
    pub failures: u32,
    /// The last error.
    pub reason: String,
}

/// What [`refresh_schedule`](super::RotationManager::refresh_schedule)
/// found and changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScheduleRefresh {
    /// The secret was rotated elsewhere: its next rotation moved.
    pub moved: bool,
    /// A quarantine recorded elsewhere now holds the schedule.
    pub quarantined: bool,
    /// A retire step is recorded beside the secret (noted for the retire
    /// pass).
    pub retire_noted: bool,
}

/// The last failed rotation of a scheduled secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastFailure {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// Why it failed (the error's message; never a secret).
    pub reason: String,
}

/// A snapshot of one schedule.
///
/// [`ScheduleInfo::new`] builds the snapshot a fresh schedule has, so a test
/// can compare what the manager reports with `assert_eq!`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ScheduleInfo {
    /// The secret.
    pub path: SecretPath,
    /// The policy's name.
    pub policy_name: String,
    /// The policy.
    #[serde(skip)]
    pub policy: Arc<RotationPolicy>,
    /// When the secret was last rotated (its current version's creation
    /// time, as the store reports it).
    pub last_rotation: DateTime<Utc>,
    /// When it is due next (`None`: manual policy, paused or quarantined).
    pub next_rotation: Option<DateTime<Utc>>,
    /// Whether automatic rotation is on (not paused and not quarantined).
    pub enabled: bool,
    /// Paused by [`pause_schedule`](crate::RotationManager::pause_schedule).
    pub paused: bool,
    /// Failed automatic rotations in a row.
    pub consecutive_failures: u32,
    /// Set when quarantined.
    pub quarantine: Option<Quarantine>,
    /// Rotations this schedule performed (scheduled rotations that made a
    /// new value current) since it was scheduled.
    pub rotation_count: u32,
    /// The last rotation of the secret that failed (scheduled, manual or
    /// emergency) since it was scheduled; kept after later successes — compare
    /// its time with `last_rotation`.
    pub last_failure: Option<LastFailure>,
}

impl ScheduleInfo {
    /// The snapshot of a schedule of `path` under `policy` that was just
    /// made, the secret last rotated at `last_rotation`: due at
    /// [`RotationPolicy::next_due`] (with the path's jitter), enabled, no
    /// failures, no rotations yet — what
    /// [`schedule_rotation`](crate::RotationManager::schedule_rotation)
    /// returns. Set the public fields to describe any other state.
    pub fn new(path: SecretPath, policy: impl Into<Arc<RotationPolicy>>, last_rotation: DateTime<Utc>) -> Self {
        let policy = policy.into();
        let next_rotation = policy.next_due(last_rotation, jitter_key(&path));
        Self {
            policy_name: policy.name().to_owned(),
            path,
            policy,
            last_rotation,
            next_rotation,
            enabled: true,
            paused: false,
            consecutive_failures: 0,
            quarantine: None,
            rotation_count: 0,
            last_failure: None,
        }
    }
}

pub(crate) const PAUSED: u8 = 1;
pub(crate) const QUARANTINED: u8 = 2;
pub(crate) const RUNNING: u8 = 4;

/// One schedule. 56 bytes.
pub(crate) struct Slot {
    pub(crate) path: Option<Arc<str>>,
    pub(crate) policy: Option<Arc<RotationPolicy>>,
    pub(crate) last_ns: i64,
    pub(crate) next_ns: i64,
    pub(crate) generation: u32,
    /// Scheduled rotations that made a new value current.
    pub(crate) rotations: u32,
    pub(crate) failures: u16,
    pub(crate) flags: u8,
}

pub(crate) const NEVER: i64 = i64::MAX;

/// A time as nanoseconds since the Unix epoch; times past 2262 are
/// [`NEVER`], times before 1677 the earliest representable one.
pub(crate) fn to_ns(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 { i64::MIN } else { NEVER })
}

pub(crate) fn from_ns(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    due_ns: i64,
    slot: u32,
    generation: u32,
}

/// A due schedule taken out of the table to run.
pub(crate) struct Job {
    pub(crate) slot: u32,
    pub(crate) path: Arc<str>,
    pub(crate) policy: Arc<RotationPolicy>,
    pub(crate) last_ns: i64,
}

#[derive(Default)]
pub(crate) struct ScheduleTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: FxHashMap<Arc<str>, u32>,
    heap: BinaryHeap<Reverse<Entry>>,
    quarantines: FxHashMap<u32, Quarantine>,
    /// The last failure of each schedule that has had one.
    last_failures: FxHashMap<u32, LastFailure>,
    live: usize,
    paused: usize,
}

impl ScheduleTable {
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn quarantined(&self) -> usize {
        self.quarantines.len()
    }

    /// Schedules paused now.
    pub(crate) fn paused(&self) -> usize {
        self.paused
    }

    pub(crate) fn lookup(&self, path: &str) -> Option<u32> {
        self.index.get(path).copied()
    }

    pub(crate) fn slot(&self, id: u32) -> Option<&Slot> {
        self.slots.get(id as usize).filter(|s| s.path.is_some())
    }

    fn slot_mut(&mut self, id: u32) -> Option<&mut Slot> {
        self.slots.get_mut(id as usize).filter(|s| s.path.is_some())
    }

    /// Adds or replaces the schedule of `path`; returns its slot.
    pub(crate) fn upsert(&mut self, path: &SecretPath, policy: Arc<RotationPolicy>, last_ns: i64) -> u32 {
        if let Some(id) = self.lookup(path.as_str())
            && let Some(s) = self.slot_mut(id)
        {
            let was_paused = s.flags & PAUSED != 0;
            s.policy = Some(policy);
            s.last_ns = last_ns;
            s.failures = 0;
            s.rotations = 0;
            s.flags &= RUNNING;
            self.paused -= usize::from(was_paused);
            self.quarantines.remove(&id);
            self.last_failures.remove(&id);
            return id;
        }
        let key: Arc<str> = Arc::from(path.as_str());
        let slot = Slot {
            path: Some(key.clone()),
            policy: Some(policy),
            last_ns,
            next_ns: NEVER,
            generation: 0,
            rotations: 0,
            failures: 0,
            flags: 0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(s) = self.slots.get_mut(id as usize) {
                    let generation = s.generation.wrapping_add(1);
                    *s = Slot { generation, ..slot };
                }
                id
            }
            None => {
                self.slots.push(slot);
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.index.insert(key, id);
        self.live += 1;
        id
    }

    /// Sets a slot's next due time (`None`: never) and queues it.
    pub(crate) fn set_next(&mut self, id: u32, next: Option<DateTime<Utc>>) {
        let Some(s) = self.slot_mut(id) else { return };
        s.generation = s.generation.wrapping_add(1);
        s.next_ns = next.map(to_ns).unwrap_or(NEVER);
        let entry = Entry { due_ns: s.next_ns, slot: id, generation: s.generation };
        if entry.due_ns != NEVER && s.flags & (PAUSED | QUARANTINED) == 0 {
            self.heap.push(Reverse(entry));
        }
        self.maybe_compact();
    }

    pub(crate) fn remove(&mut self, path: &str) -> bool {
        let Some(id) = self.index.remove(path) else { return false };
        if let Some(s) = self.slots.get_mut(id as usize) {
            self.paused -= usize::from(s.flags & PAUSED != 0);
            s.path = None;
            s.policy = None;
            s.generation = s.generation.wrapping_add(1);
            s.flags = 0;
        }
        self.quarantines.remove(&id);
        self.last_failures.remove(&id);
        self.free.push(id);
        self.live -= 1;
        self.maybe_compact();
        true
    }

    pub(crate) fn set_flag(&mut self, id: u32, flag: u8, on: bool) {
        let Some(s) = self.slot_mut(id) else { return };
        let was_paused = s.flags & PAUSED != 0;
        if on {
            s.flags |= flag;
        } else {
            s.flags &= !flag;
        }
        let paused = s.flags & PAUSED != 0;
        if paused != was_paused {
            if paused {
                self.paused += 1;
            } else {
                self.paused -= 1;
            }
        }
    }

    /// Counts a scheduled rotation that made a new value current.
    pub(crate) fn count_rotation(&mut self, id: u32) {
        if let Some(s) = self.slot_mut(id) {
            s.rotations = s.rotations.saturating_add(1);
        }
    }

    /// Records a failed rotation of the secret.
    pub(crate) fn note_failure(&mut self, id: u32, at: DateTime<Utc>, reason: String) {
        if self.slot(id).is_some() {
            self.last_failures.insert(id, LastFailure { at, reason });
        }
    }

    pub(crate) fn set_failures(&mut self, id: u32, failures: u32) {
        if let Some(s) = self.slot_mut(id) {
            s.failures = u16::try_from(failures).unwrap_or(u16::MAX);
        }
    }

    pub(crate) fn set_last(&mut self, id: u32, last_ns: i64) {
        if let Some(s) = self.slot_mut(id) {
            s.last_ns = last_ns;
        }
    }

    pub(crate) fn quarantine(&mut self, id: u32, q: Quarantine) {
        self.set_flag(id, QUARANTINED, true);
        self.quarantines.insert(id, q);
    }

    pub(crate) fn quarantine_of(&self, id: u32) -> Option<&Quarantine> {
        self.quarantines.get(&id)
    }

    /// The ids of the quarantined schedules.
    pub(crate) fn quarantined_ids(&self) -> Vec<u32> {
        self.quarantines.keys().copied().collect()
    }

    pub(crate) fn unquarantine(&mut self, id: u32) -> bool {
        self.set_flag(id, QUARANTINED, false);
        self.quarantines.remove(&id).is_some()
    }

    /// Pops the valid heap top if it is due at `now_ns`.
    fn pop_due(&mut self, now_ns: i64) -> Option<Entry> {
        while let Some(Reverse(top)) = self.heap.peek().copied() {
            if !self.valid(top) {
                self.heap.pop();
                continue;
            }
            if top.due_ns > now_ns {
                return None;
            }
            self.heap.pop();
            return Some(top);
        }
        None
    }

    fn valid(&self, e: Entry) -> bool {
        self.slot(e.slot)
            .is_some_and(|s| s.generation == e.generation && s.flags & (PAUSED | QUARANTINED | RUNNING) == 0)
    }

    /// Takes every due schedule out of the queue and marks it running.
    pub(crate) fn take_due(&mut self, now_ns: i64) -> Vec<Job> {
        let mut jobs = Vec::new();
        while let Some(e) = self.pop_due(now_ns) {
            if let Some(s) = self.slot_mut(e.slot)
                && let (Some(path), Some(policy)) = (s.path.clone(), s.policy.clone())
            {
                s.flags |= RUNNING;
                s.generation = s.generation.wrapping_add(1);
                jobs.push(Job { slot: e.slot, path, policy, last_ns: s.last_ns });
            }
        }
        jobs
    }

    /// The earliest valid due time.
    pub(crate) fn next_due(&mut self) -> Option<i64> {
        while let Some(Reverse(top)) = self.heap.peek().copied() {
            if self.valid(top) {
                return Some(top.due_ns);
            }
            self.heap.pop();
        }
        None
    }

    fn maybe_compact(&mut self) {
        if self.heap.len() > 2 * self.live + 1024 {
            let mut entries = std::mem::take(&mut self.heap).into_vec();
            entries.retain(|Reverse(e)| self.valid(*e));
            self.heap = BinaryHeap::from(entries);
        }
    }

    pub(crate) fn info(&self, id: u32) -> Option<ScheduleInfo> {
        let s = self.slot(id)?;
        let path = SecretPath::new(s.path.as_deref()?).ok()?;
        let policy = s.policy.clone()?;
        let quarantine = self.quarantines.get(&id).cloned();
        let paused = s.flags & PAUSED != 0;
        let enabled = !paused && quarantine.is_none();
        Some(ScheduleInfo {
            path,
            policy_name: policy.name().to_owned(),
            policy,
            last_rotation: from_ns(s.last_ns),
            next_rotation: (enabled && s.next_ns != NEVER).then(|| from_ns(s.next_ns)),
            enabled,
            paused,
            consecutive_failures: u32::from(s.failures),
            quarantine,
            rotation_count: s.rotations,
            last_failure: self.last_failures.get(&id).cloned(),
        })
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.index.values().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_is_compact() {
        assert!(std::mem::size_of::<Slot>() <= 56, "{}", std::mem::size_of::<Slot>());
        assert_eq!(std::mem::size_of::<Entry>(), 16);
    }
}
