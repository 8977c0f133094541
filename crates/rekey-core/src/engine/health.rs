//! Whether the store is answering: a store that is unreachable, sealed or
//! throttled is not a failure of any secret. While it is away the scheduler
//! keeps every due secret due, sends one probe rotation per
//! [`store_probe_interval`](crate::RotationManagerBuilder::store_probe_interval)
//! instead of one call per secret, and rotates everything overdue in the
//! pass where the store answers again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::manager::RotationManager;
use super::result::{RotationOutcome, RotationResult};
use super::shared::{Inner, lock};

/// The store's availability as the engine last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StoreHealth {
    /// Whether the last rotation that needed the store reached it (`true`
    /// before any did).
    pub available: bool,
    /// Since when the store has been unavailable.
    pub unavailable_since: Option<DateTime<Utc>>,
    /// The last unavailability error (no secret in it).
    pub last_error: Option<String>,
    /// When a rotation last reached (or failed to reach) the store.
    pub checked_at: Option<DateTime<Utc>>,
}

/// The default wait between probes while the store is unavailable.
pub(super) const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(5);

impl Inner {
    /// Notes what a rotation learnt about the store.
    pub(super) fn note_store(&self, r: &RotationResult) {
        let mut h = lock(&self.health);
        if r.outcome == RotationOutcome::StoreUnavailable {
            h.down_since.get_or_insert(r.completed_at);
            h.last_error = r.error.as_ref().map(ToString::to_string);
            h.checked_at = Some(r.completed_at);
            let wait = chrono::Duration::from_std(self.probe_interval).unwrap_or(chrono::Duration::seconds(5));
            h.next_probe = r.completed_at.checked_add_signed(wait);
        } else if r.old_version.is_some() || r.up_to_date {
            // The rotation read the secret: the store answers.
            h.down_since = None;
            h.last_error = None;
            h.next_probe = None;
            h.checked_at = Some(r.completed_at);
        }
    }

    /// Whether the store is known to be away.
    pub(super) fn store_down(&self) -> bool {
        lock(&self.health).down_since.is_some()
    }

    /// While the store is away: the earliest time to probe it again.
    pub(super) fn next_probe(&self) -> Option<DateTime<Utc>> {
        let h = lock(&self.health);
        h.down_since.and(h.next_probe)
    }
}

impl RotationManager {
    /// Whether the store answered the last rotation that needed it. A
    /// daemon reports `degraded` while it does not; no secret is failed or
    /// quarantined because of it.
    pub fn store_health(&self) -> StoreHealth {
        let h = lock(&self.inner.health);
        StoreHealth {
            available: h.down_since.is_none(),
            unavailable_since: h.down_since,
            last_error: h.last_error.clone(),
            checked_at: h.checked_at,
        }
    }
}
