//! Scheduling reads: the secrets the daemon schedules at start-up and on
//! each resync, and the periodic recheck of those it already schedules.

use std::time::Duration;

use futures::StreamExt;

use tokio::time::Instant;

use crate::app;
use crate::config::SecretConfig;

/// Reads `s` for scheduling: one snapshot, plus the recovery of a rotation
/// or rollback that crashed (a credential target may hold a value the
/// store does not serve), finished now rather than at the secret's next due
/// time, which may be months away. `Err` when it is to be looked at again
/// later: with the error when the store cannot be reached.
async fn read_for_schedule(
    app: &app::App,
    s: &SecretConfig,
    when: &'static str,
) -> Result<rekey::Snapshot, Option<String>> {
    let mut read = app.store.snapshot(&s.path, false).await;
    if let Ok(snap) = &read
        && rekey::SecretRecord::read_brief(&snap.metadata).unfinished.is_some()
    {
        match app.manager.recover(&s.path).await {
            Ok(rekey::Recovery::CleanedUp) => {
                tracing::info!(path = %s.path, "cleaned up a crashed rotation {when}");
                read = app.store.snapshot(&s.path, false).await;
            }
            // Finished in the meantime.
            Ok(rekey::Recovery::Nothing) => read = app.store.snapshot(&s.path, false).await,
            // A live one elsewhere, or one not stale yet.
            Ok(_) => {
                tracing::info!(path = %s.path, "a rotation is in progress elsewhere; looking again later");
                return Err(None);
            }
            Err(e) => {
                tracing::warn!(path = %s.path, error = %e, "cannot clean up a crashed rotation yet");
                return Err(None);
            }
        }
    }
    read.map_err(|e| {
        tracing::warn!(path = %s.path, error = %e, "cannot read the secret from the store yet");
        crate::error::unreachable(&e).then(|| e.to_string())
    })
}

/// Reads `secrets` for scheduling, up to `[daemon] max_concurrency` at a
/// time (a store round trip each: one after another, 10,000 secrets on a
/// store 20 ms away would take over three minutes to schedule), in order.
fn read_all<'a>(
    app: &'a app::App,
    secrets: impl IntoIterator<Item = &'a SecretConfig> + 'a,
    when: &'static str,
) -> impl futures::Stream<Item = (&'a SecretConfig, Result<rekey::Snapshot, Option<String>>)> + 'a {
    futures::stream::iter(secrets)
        .map(move |s| async move { (s, read_for_schedule(app, s, when).await) })
        .buffered(app.config.daemon.max_concurrency.max(1))
}

/// Schedules the secrets that are not yet; returns those still unscheduled,
/// how many of them are quarantined, and the store's error when it cannot
/// be reached.
pub(super) async fn sync(app: &app::App, pending: Vec<SecretConfig>) -> (Vec<SecretConfig>, usize, Option<String>) {
    let mut left = Vec::new();
    let mut quarantined = 0;
    let mut unreachable = None;
    // One read gives the record (is it quarantined? is a rotation or a
    // rollback journalled?) and the current version's time the schedule
    // starts from.
    let mut reads = std::pin::pin!(read_all(app, &pending, "before scheduling"));
    while let Some((s, read)) = reads.next().await {
        let snapshot = match read {
            Ok(snap) => snap,
            Err(down) => {
                unreachable = down.or(unreachable);
                left.push(s.clone());
                continue;
            }
        };
        if rekey::SecretRecord::read_brief(&snapshot.metadata).quarantine.is_some() {
            quarantined += 1;
            left.push(s.clone());
            continue;
        }
        match app.manager.schedule_rotation_from(&s.path, s.policy.clone(), &snapshot) {
            Ok(info) => tracing::debug!(path = %s.path, next = ?info.next_rotation, "scheduled"),
            Err(e) => {
                tracing::warn!(path = %s.path, error = %e, "cannot schedule the secret yet");
                left.push(s.clone());
            }
        }
    }
    (left, quarantined, unreachable)
}

/// The periodic recheck of the secrets already scheduled: every one is read
/// again once per `[daemon] recheck_interval`, spread evenly over it (a few
/// on each resync, never all at once), so that what other processes left
/// beside a secret is acted on within that interval instead of at the
/// secret's next due time: a crashed rotation's journal is cleaned up, a
/// dual-write retire step is revoked at its deadline, a rotation made
/// elsewhere moves the schedule, a quarantine recorded elsewhere holds it.
/// Costs one metadata read per secret per interval.
pub(super) struct Recheck {
    interval: Option<Duration>,
    /// Where the next recheck starts in the configured secrets.
    cursor: usize,
    /// Secrets owed since the last one (a fraction carries over).
    owed: f64,
    last: Instant,
}

impl Recheck {
    pub(super) fn new(interval: Option<Duration>, now: Instant) -> Self {
        Self { interval, cursor: 0, owed: 0.0, last: now }
    }

    /// The next slice of `secrets` due for a recheck at `now`.
    pub(super) fn take<'a, T>(&mut self, secrets: &'a [T], now: Instant) -> Vec<&'a T> {
        let Some(interval) = self.interval.filter(|_| !secrets.is_empty()) else { return Vec::new() };
        let n = secrets.len();
        self.owed += n as f64 * now.duration_since(self.last).as_secs_f64() / interval.as_secs_f64();
        self.last = now;
        // Never more than the whole set at once.
        let count = (self.owed.floor() as usize).min(n);
        self.owed = (self.owed - count as f64).min(n as f64);
        let slice = (0..count).filter_map(|i| secrets.get((self.cursor + i) % n)).collect();
        self.cursor = (self.cursor + count) % n;
        slice
    }
}

/// Rechecks `due` (see [`Recheck`]), skipping the secrets not scheduled yet
/// (the resync reads those anyway); returns how many were read.
pub(super) async fn recheck(app: &app::App, due: Vec<&SecretConfig>, unscheduled: &[SecretConfig]) -> u64 {
    let due: Vec<&SecretConfig> = due.into_iter().filter(|s| !unscheduled.iter().any(|u| u.path == s.path)).collect();
    let read = due.len() as u64;
    let mut reads = std::pin::pin!(read_all(app, due, "found by the recheck"));
    while let Some((s, snapshot)) = reads.next().await {
        let Ok(snapshot) = snapshot else { continue };
        match app.manager.refresh_schedule(&s.path, &snapshot) {
            Some(r) if r.moved || r.quarantined || r.retire_noted => tracing::info!(
                path = %s.path,
                rotated_elsewhere = r.moved,
                quarantined_elsewhere = r.quarantined,
                retire_step = r.retire_noted,
                "recheck: the secret changed outside this daemon"
            ),
            _ => {}
        }
    }
    read
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Every secret once per interval, a few at a time in turn, never all
    /// at once, none at all when turned off.
    #[test]
    fn the_recheck_reads_each_secret_once_per_interval_spread_over_it() {
        let secrets: Vec<u32> = (0..100).collect();
        let mut now = Instant::now();
        let mut r = Recheck::new(Some(Duration::from_secs(100)), now);
        let mut seen = Vec::new();
        for _ in 0..10 {
            now += Duration::from_secs(10);
            let slice = r.take(&secrets, now);
            assert_eq!(slice.len(), 10, "a tenth of the interval, a tenth of the secrets");
            seen.extend(slice.into_iter().copied());
        }
        assert_eq!(seen, secrets, "each once, in turn");
        // A fraction carries over; a long stall reads the set once, not twice.
        now += Duration::from_millis(1500);
        assert_eq!(r.take(&secrets, now), [&0]);
        now += Duration::from_millis(1500);
        assert_eq!(r.take(&secrets, now), [&1, &2]);
        now += Duration::from_secs(1000);
        assert_eq!(r.take(&secrets, now).len(), 100);
        let mut off = Recheck::new(None, now);
        assert!(off.take(&secrets, now + Duration::from_secs(1000)).is_empty());
        assert!(
            Recheck::new(Some(Duration::from_secs(1)), now).take::<u32>(&[], now + Duration::from_secs(5)).is_empty()
        );
    }
}
