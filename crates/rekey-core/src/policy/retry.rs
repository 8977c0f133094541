//! Retry with capped exponential backoff and full jitter.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::serde_duration;
use super::error::PolicyError;

/// The largest accepted [`RetryPolicy::max_retries`].
pub const MAX_RETRIES: u32 = 10;

/// How often, and how long apart, a failed rotation is retried.
///
/// The fields are public for reading and for building by hand;
/// [`RetryPolicy::validate`] checks them (the policy builder does).
/// [`RetryPolicy::backoff`] is total over every value, valid or not.
///
/// ```
/// use std::time::Duration;
/// use rekey_core::RetryPolicy;
/// let r = RetryPolicy::default(); // 3 retries, 1s, 2s, 4s ... capped at 5 min
/// assert_eq!(r.backoff(1, 0.999_999), Duration::from_secs(1).mul_f64(0.999_999));
/// assert!(r.backoff(3, 0.5) <= Duration::from_secs(2)); // half of 4s
/// assert_eq!(r.backoff(u32::MAX, 0.0), Duration::ZERO);
/// assert!(r.backoff(u32::MAX, 0.999) <= r.max_backoff);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Retries after the first attempt, `0..=`[`MAX_RETRIES`].
    pub max_retries: u32,
    /// The backoff ceiling before the first retry (greater than zero).
    #[serde(with = "serde_duration")]
    pub initial_backoff: Duration,
    /// The largest backoff ceiling (at least `initial_backoff`).
    #[serde(with = "serde_duration")]
    pub max_backoff: Duration,
    /// The factor by which the ceiling grows per retry (finite, at least 1).
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    /// 3 retries; backoff 1s, doubling, capped at 5 minutes.
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// Checks every field; the first broken rule is returned.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.max_retries > MAX_RETRIES {
            return Err(PolicyError::MaxRetriesOutOfRange { value: self.max_retries, max: MAX_RETRIES });
        }
        if self.initial_backoff.is_zero() {
            return Err(PolicyError::ZeroInitialBackoff);
        }
        if self.initial_backoff > self.max_backoff {
            return Err(PolicyError::BackoffInitialExceedsMax { initial: self.initial_backoff, max: self.max_backoff });
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(PolicyError::InvalidBackoffMultiplier { value: self.multiplier });
        }
        Ok(())
    }

    /// The ceiling for retry number `attempt` (1-based):
    /// `min(max_backoff, initial_backoff × multiplier^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let cap = self.max_backoff;
        let multiplier = if self.multiplier.is_finite() && self.multiplier >= 1.0 { self.multiplier } else { 1.0 };
        // Past 2^11 the factor is infinite or the cap is reached long before.
        let exp = i32::try_from(attempt.saturating_sub(1).min(2048)).unwrap_or(2048);
        let secs = self.initial_backoff.as_secs_f64() * multiplier.powi(exp);
        let raw = Duration::try_from_secs_f64(secs).unwrap_or(cap);
        raw.min(cap)
    }

    /// The delay before retry number `attempt` (1-based; 0 is treated as 1)
    /// with "full jitter": `ceiling(attempt) × jitter_unit`.
    ///
    /// `jitter_unit` is a uniform random number in `[0, 1)` supplied by the
    /// caller, so this function stays pure and testable; values outside
    /// `[0, 1]` (or NaN) are clamped. The result never exceeds
    /// `max_backoff`, and the function never panics or overflows.
    pub fn backoff(&self, attempt: u32, jitter_unit: f64) -> Duration {
        let unit = if jitter_unit.is_nan() { 0.0 } else { jitter_unit.clamp(0.0, 1.0) };
        let ceiling = self.ceiling(attempt.max(1));
        let d = Duration::try_from_secs_f64(ceiling.as_secs_f64() * unit).unwrap_or(ceiling);
        d.min(ceiling).min(self.max_backoff)
    }

    /// Like [`backoff`](Self::backoff), but never below half the ceiling:
    /// `ceiling(attempt) × (½ + ½ × jitter_unit)` ("equal jitter"), for a
    /// caller that must not retry almost at once (a rescheduled rotation, a
    /// webhook delivery).
    ///
    /// `jitter_unit` is clamped to `[0, 1]`; NaN counts as 0 (half).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rekey_core::RetryPolicy;
    /// let r = RetryPolicy::default(); // 1s, 2s, 4s ... capped at 5 min
    /// assert_eq!(r.backoff_equal_jitter(3, 0.0), Duration::from_secs(2)); // half of 4s
    /// assert_eq!(r.backoff_equal_jitter(3, 1.0), Duration::from_secs(4));
    /// assert_eq!(r.backoff_equal_jitter(u32::MAX, f64::NAN), Duration::from_secs(150));
    /// ```
    pub fn backoff_equal_jitter(&self, attempt: u32, jitter_unit: f64) -> Duration {
        let unit = if jitter_unit.is_nan() { 0.0 } else { jitter_unit.clamp(0.0, 1.0) };
        self.backoff(attempt, 0.5 + unit / 2.0)
    }
}
