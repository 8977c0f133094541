//! [`RotationStatistics`]: counters and duration percentiles.

use std::time::Duration;

use serde::Serialize;

use super::RotationOutcome;

/// A snapshot of the manager's counters since it was built (or since
/// [`reset_statistics`](crate::RotationManager::reset_statistics)).
///
/// `RotationStatistics::default()` is all zeros; set the public fields to
/// build one in a test.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RotationStatistics {
    /// Rotations that ran to an end: successful + failed.
    pub total_rotations: u64,
    /// Rotations whose new value became current.
    pub successful_rotations: u64,
    /// Rotations that failed (rolled back or not).
    pub failed_rotations: u64,
    /// Failed rotations that undid their writes.
    pub rollbacks: u64,
    /// `successful / total`, 0 when nothing ran.
    pub success_rate: f64,
    /// Schedules registered now and not paused (quarantined ones included:
    /// see `quarantined`).
    pub active_schedules: usize,
    /// Schedules registered now and paused
    /// ([`pause_schedule`](crate::RotationManager::pause_schedule)).
    pub paused_schedules: usize,
    /// Rotations running now.
    pub active_rotations: usize,
    /// Schedules quarantined now.
    pub quarantined: usize,
    /// Rotations that lost a compare-and-swap to another process.
    pub conflicts: u64,
    /// Calls that found the secret already being rotated (here or in
    /// another process).
    pub already_rotating: u64,
    /// Calls refused because the rotation window was closed.
    pub outside_window: u64,
    /// Rotations that could not reach the store (not failures).
    pub store_unavailable: u64,
    /// Rotations deferred (a dual-write retire step still pending; not
    /// failures).
    pub deferred: u64,
    /// Scheduled rotations skipped because the secret is quarantined.
    pub skipped_quarantined: u64,
    /// Median duration of the rotations counted in `total_rotations`.
    #[serde(serialize_with = "ser_opt_ms")]
    pub p50_duration: Option<Duration>,
    /// 99th percentile duration.
    #[serde(serialize_with = "ser_opt_ms")]
    pub p99_duration: Option<Duration>,
}

fn ser_opt_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64() * 1000.0),
        None => s.serialize_none(),
    }
}

/// Sub-buckets per power of two: relative error below 1/16 (6.25 %).
const SUB: usize = 16;
/// Powers of two covered, in nanoseconds: 1 ns .. 2^48 ns (~3.3 days).
const OCTAVES: usize = 48;

/// A fixed-size log-linear histogram of durations (like HdrHistogram, 6 %
/// precision): memory stays 6 KiB whatever the number of rotations.
#[derive(Debug, Clone)]
pub(crate) struct DurationHistogram {
    counts: Box<[u64]>,
    total: u64,
}

impl DurationHistogram {
    pub(crate) fn new() -> Self {
        Self { counts: vec![0; OCTAVES * SUB + SUB].into_boxed_slice(), total: 0 }
    }

    fn index(nanos: u64) -> usize {
        if nanos < SUB as u64 {
            return nanos as usize;
        }
        let octave = 63 - nanos.leading_zeros() as usize; // >= 4
        let shift = octave - 4; // SUB = 2^4
        let sub = ((nanos >> shift) as usize) & (SUB - 1);
        let i = (octave - 3) * SUB + sub;
        i.min(OCTAVES * SUB + SUB - 1)
    }

    /// The upper bound (in ns) of bucket `i`, as reported for a percentile.
    fn value(i: usize) -> u64 {
        if i < SUB {
            return i as u64;
        }
        let octave = i / SUB + 3;
        let sub = (i % SUB) as u64;
        let shift = octave - 4;
        ((SUB as u64 + sub) << shift) + ((1u64 << shift) - 1)
    }

    pub(crate) fn record(&mut self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = Self::index(nanos);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
            self.total += 1;
        }
    }

    pub(crate) fn percentile(&self, p: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Duration::from_nanos(Self::value(i)));
            }
        }
        None
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Counters {
    pub(crate) successful: u64,
    pub(crate) failed: u64,
    pub(crate) rollbacks: u64,
    pub(crate) conflicts: u64,
    pub(crate) already_rotating: u64,
    pub(crate) outside_window: u64,
    pub(crate) store_unavailable: u64,
    pub(crate) deferred: u64,
    pub(crate) skipped_quarantined: u64,
    pub(crate) durations: DurationHistogram,
}

impl Counters {
    pub(crate) fn new() -> Self {
        Self {
            successful: 0,
            failed: 0,
            rollbacks: 0,
            conflicts: 0,
            already_rotating: 0,
            outside_window: 0,
            store_unavailable: 0,
            deferred: 0,
            skipped_quarantined: 0,
            durations: DurationHistogram::new(),
        }
    }

    pub(crate) fn record(&mut self, outcome: RotationOutcome, rolled_back: bool, duration: Duration) {
        match outcome {
            RotationOutcome::Rotated => self.successful += 1,
            RotationOutcome::RolledBack | RotationOutcome::Failed => self.failed += 1,
            RotationOutcome::AlreadyRotating | RotationOutcome::InProgressElsewhere => {
                self.already_rotating += 1;
                return;
            }
            RotationOutcome::RotatedElsewhere => {
                self.conflicts += 1;
                return;
            }
            RotationOutcome::OutsideWindow => {
                self.outside_window += 1;
                return;
            }
            RotationOutcome::StoreUnavailable => {
                self.store_unavailable += 1;
                return;
            }
            RotationOutcome::Deferred => {
                self.deferred += 1;
                return;
            }
            RotationOutcome::Quarantined => {
                self.skipped_quarantined += 1;
                return;
            }
        }
        if rolled_back && outcome.is_failure() {
            self.rollbacks += 1;
        }
        self.durations.record(duration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_are_close() {
        let mut h = DurationHistogram::new();
        assert_eq!(h.percentile(50.0), None);
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.percentile(50.0).unwrap_or_default().as_secs_f64() * 1000.0;
        let p99 = h.percentile(99.0).unwrap_or_default().as_secs_f64() * 1000.0;
        assert!((p50 - 500.0).abs() / 500.0 < 0.07, "{p50}");
        assert!((p99 - 990.0).abs() / 990.0 < 0.07, "{p99}");
        h.record(Duration::ZERO);
        h.record(Duration::MAX);
        assert!(h.percentile(100.0).is_some());
    }

    #[test]
    fn bucket_bounds_are_monotonic() {
        let mut last = 0;
        for i in 0..(OCTAVES * SUB + SUB) {
            let v = DurationHistogram::value(i);
            assert!(v >= last, "{i}");
            last = v;
            if i >= SUB && v < (1 << 40) {
                assert_eq!(DurationHistogram::index(v), i, "{i} {v}");
            }
        }
    }
}
