//! Rotation policies: what to rotate how, and when.
//!
//! A [`RotationPolicy`] is built with [`RotationPolicy::builder`] or loaded
//! from TOML/JSON; both paths run the same validation, and every broken rule
//! is a [`PolicyError`] naming its field. Scheduling decisions are pure
//! functions ([`RotationPolicy::next_due`], [`Schedule::next_after`],
//! [`RotationWindow::next_open`], [`RetryPolicy::backoff`]) that the engine
//! calls with the time from its clock.
//!
//! ```
//! use std::time::Duration;
//! use chrono::{TimeZone, Utc};
//! use rekey_core::{RotationPolicy, RotationStrategy};
//!
//! let policy = RotationPolicy::builder("db-password")
//!     .cron("0 3 * * *")
//!     .strategy(RotationStrategy::Staged)
//!     .require_verification(true)
//!     .verification_tests(["connect", "select_1"])
//!     .window("Mon-Fri 02:00-05:00".parse()?)
//!     .jitter(Duration::from_secs(600))
//!     .build()?;
//!
//! let last = Utc.with_ymd_and_hms(2025, 1, 3, 3, 0, 0).unwrap(); // a Friday
//! let due = policy.next_due(last, 42).unwrap();
//! assert_eq!(due, Utc.with_ymd_and_hms(2025, 1, 6, 2, 0, 0).unwrap()); // window opens Monday
//! # Ok::<(), rekey_core::PolicyError>(())
//! ```
//!
//! From a configuration file (durations as humantime strings):
//!
//! ```
//! # use rekey_core::RotationPolicy;
//! let policy: RotationPolicy = serde_json::from_str(r#"{
//!     "name": "api-key",
//!     "schedule": "every 30 days",
//!     "strategy": "dual_write",
//!     "grace_period": "1d",
//!     "verification_timeout": "10s"
//! }"#)?;
//! assert_eq!(policy.grace_period(), Some(std::time::Duration::from_secs(86_400)));
//! # Ok::<(), serde_json::Error>(())
//! ```

mod duration;
mod error;
mod retry;
mod schedule;
mod text;
mod window;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

pub use duration::serde_duration;
pub use error::PolicyError;
pub use retry::{MAX_RETRIES, RetryPolicy};
pub use schedule::{CronSchedule, Schedule};
pub use window::RotationWindow;

use crate::SecretPath;
use duration::parse_duration;
use text::{clip, format_duration};

/// The longest accepted policy name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// The longest accepted verification timeout.
pub const MAX_VERIFICATION_TIMEOUT: Duration = Duration::from_secs(3600);

/// How a rotation replaces the old value. See DESIGN.md's strategy table.
///
/// Text and serde form: `immediate`, `staged`, `dual_write`, `blue_green`
/// (parsing also accepts `-` for `_` and any ASCII case).
///
/// ```
/// use rekey_core::RotationStrategy;
/// assert_eq!("dual_write".parse::<RotationStrategy>()?, RotationStrategy::DualWrite);
/// assert_eq!(RotationStrategy::BlueGreen.to_string(), "blue_green");
/// assert_eq!(RotationStrategy::default(), RotationStrategy::Staged);
/// assert_eq!("sideways".parse::<RotationStrategy>().unwrap_err().field(), "strategy");
/// # Ok::<(), rekey_core::PolicyError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationStrategy {
    /// Write the new value as current, verify, roll back on failure.
    Immediate,
    /// Stage the new value, verify it, then promote it (compare-and-swap).
    #[default]
    Staged,
    /// Make the new value current while the old one stays valid for a grace period.
    DualWrite,
    /// Alternate between two credential sets; re-key the inactive one and switch.
    BlueGreen,
}

impl RotationStrategy {
    /// Every strategy, in declaration order.
    pub const ALL: [RotationStrategy; 4] = [Self::Immediate, Self::Staged, Self::DualWrite, Self::BlueGreen];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Immediate => "immediate",
            Self::Staged => "staged",
            Self::DualWrite => "dual_write",
            Self::BlueGreen => "blue_green",
        }
    }

    /// Whether the strategy keeps the previous credential valid after the
    /// switch, and so needs a [grace period](RotationPolicy::grace_period).
    pub fn needs_grace_period(self) -> bool {
        matches!(self, Self::DualWrite | Self::BlueGreen)
    }
}

impl fmt::Display for RotationStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RotationStrategy {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == norm)
            .ok_or_else(|| PolicyError::UnknownStrategy { input: clip(s) })
    }
}

/// The state of one rotation.
///
/// ```
/// use rekey_core::RotationStatus;
/// assert_eq!(RotationStatus::RolledBack.to_string(), "rolled_back");
/// assert!(RotationStatus::Success.is_terminal());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationStatus {
    /// Queued or scheduled, not started.
    Pending,
    /// Generating, applying or writing the new value.
    InProgress,
    /// Verifying the new value.
    Verifying,
    /// Finished: the new value is current.
    Success,
    /// Finished: the rotation failed (the old value is still current).
    Failed,
    /// Finished: the rotation failed and its changes were undone.
    RolledBack,
}

impl RotationStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Verifying => "verifying",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
        }
    }

    /// Whether the rotation has finished (success, failed or rolled back).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Success | Self::Failed | Self::RolledBack)
    }
}

impl fmt::Display for RotationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stable 64-bit key for a path, for [`RotationPolicy::next_due`]'s jitter.
///
/// FNV-1a over the path's bytes: the same in every process, on every
/// platform and with every Rust version (unlike `DefaultHasher`).
///
/// ```
/// use rekey_core::{jitter_key, SecretPath};
/// let p: SecretPath = "apps/db".parse()?;
/// assert_eq!(jitter_key(&p), jitter_key(&"/apps/db".parse()?));
/// # Ok::<(), rekey_core::PathError>(())
/// ```
pub fn jitter_key(path: &SecretPath) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    path.as_str().bytes().fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// SplitMix64 finaliser: spreads FNV's output over all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A validated rotation policy. Build with [`RotationPolicy::builder`] or
/// deserialize (same validation); see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RotationPolicyConfig", into = "RotationPolicyConfig")]
pub struct RotationPolicy {
    name: String,
    schedule: Schedule,
    strategy: RotationStrategy,
    require_verification: bool,
    verification_tests: Vec<String>,
    auto_rollback: bool,
    retry: RetryPolicy,
    window: Option<RotationWindow>,
    jitter: Duration,
    grace_period: Option<Duration>,
    verification_timeout: Duration,
    quarantine_after: u32,
    failure_backoff: Duration,
    max_failure_backoff: Duration,
}

impl RotationPolicy {
    /// A builder with the defaults: every 90 days, staged, no required
    /// verification, auto-rollback, 3 retries with backoff 1s..5min ×2,
    /// verification timeout 30s, no jitter, no window, no grace period,
    /// quarantine after 3 failed scheduled rotations.
    pub fn builder(name: impl Into<String>) -> RotationPolicyBuilder {
        RotationPolicyBuilder::new(name)
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the secret is rotated automatically.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// How the old value is replaced.
    pub fn strategy(&self) -> RotationStrategy {
        self.strategy
    }

    /// Whether the new value must pass verification before it counts:
    /// exactly when verification tests are named (a named test always runs
    /// and gates promotion).
    pub fn require_verification(&self) -> bool {
        self.require_verification
    }

    /// The names of the verification tests to run, in order (unique).
    pub fn verification_tests(&self) -> &[String] {
        &self.verification_tests
    }

    /// Whether a failed rotation is rolled back automatically.
    pub fn auto_rollback(&self) -> bool {
        self.auto_rollback
    }

    /// Retry count and backoff.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Retries after the first attempt (`retry().max_retries`).
    pub fn max_retries(&self) -> u32 {
        self.retry.max_retries
    }

    /// The window in which scheduled rotations may start, if any.
    pub fn window(&self) -> Option<&RotationWindow> {
        self.window.as_ref()
    }

    /// The upper bound (exclusive) of the deterministic delay added to each
    /// due time, spreading secrets with the same schedule apart.
    pub fn jitter(&self) -> Duration {
        self.jitter
    }

    /// How long the previous credential stays valid after a dual-write or
    /// blue-green switch. Always set for those strategies.
    pub fn grace_period(&self) -> Option<Duration> {
        self.grace_period
    }

    /// How long verification may take before it counts as failed.
    pub fn verification_timeout(&self) -> Duration {
        self.verification_timeout
    }

    /// Consecutive failed scheduled rotations before the secret is
    /// quarantined (no longer rotated on schedule); at least 1.
    pub fn quarantine_after(&self) -> u32 {
        self.quarantine_after
    }

    /// How long after a failed scheduled rotation the scheduler tries again:
    /// `failure_backoff` after the first failure, doubling (times the retry
    /// policy's multiplier) per consecutive failure up to
    /// [`max_failure_backoff`](Self::max_failure_backoff). In the schedule's
    /// terms (minutes by default), unlike [`retry`](Self::retry), which
    /// spaces the calls of one rotation. A store outage is not a failure and
    /// uses neither.
    pub fn failure_backoff(&self) -> Duration {
        self.failure_backoff
    }

    /// The longest wait between failed scheduled rotations.
    pub fn max_failure_backoff(&self) -> Duration {
        self.max_failure_backoff
    }

    /// The wait before the next scheduled attempt after `failures`
    /// consecutive failures (1-based), with `jitter_unit` in `[0, 1)` spreading
    /// it over its upper half. Pure and total.
    pub fn failure_retry_delay(&self, failures: u32, jitter_unit: f64) -> Duration {
        let r = RetryPolicy {
            max_retries: 0,
            initial_backoff: self.failure_backoff,
            max_backoff: self.max_failure_backoff,
            multiplier: self.retry.multiplier,
        };
        let ceiling = r.ceiling(failures.max(1));
        let unit = if jitter_unit.is_nan() { 0.0 } else { jitter_unit.clamp(0.0, 1.0) };
        ceiling.mul_f64(0.5 + unit / 2.0).min(self.max_failure_backoff)
    }

    /// The jitter offset for `jitter_key`: deterministic, in `[0, jitter)`.
    pub fn jitter_offset(&self, jitter_key: u64) -> Duration {
        let nanos = self.jitter.as_nanos();
        if nanos == 0 {
            return Duration::ZERO;
        }
        // (mix(key) / 2^64) × jitter, in integers: always < jitter. `nanos`
        // can exceed 2^64, so multiply its two halves separately.
        let m = u128::from(mix(jitter_key));
        let (hi, lo) = (nanos >> 64, nanos & u128::from(u64::MAX));
        let offset = ((m * lo) >> 64) + m * hi;
        let secs = u64::try_from(offset / 1_000_000_000).unwrap_or(u64::MAX);
        let sub = u32::try_from(offset % 1_000_000_000).unwrap_or(0);
        Duration::new(secs, sub)
    }

    /// When the secret is next due, given when it was last rotated.
    ///
    /// `schedule().next_after(last_rotated)`, plus a deterministic jitter in
    /// `[0, jitter)` derived from `jitter_key` (use [`jitter_key`] of the
    /// path, so every process computes the same time), then moved to the
    /// window's next opening. `None` for a manual schedule, or if the time
    /// is out of range.
    pub fn next_due(&self, last_rotated: DateTime<Utc>, jitter_key: u64) -> Option<DateTime<Utc>> {
        let base = self.schedule.next_after(last_rotated)?;
        let offset = TimeDelta::from_std(self.jitter_offset(jitter_key)).ok()?;
        let t = base.checked_add_signed(offset)?;
        Some(match &self.window {
            Some(w) => w.next_open(t),
            None => t,
        })
    }

    /// Whether the secret is due at `now`.
    pub fn is_due(&self, last_rotated: DateTime<Utc>, jitter_key: u64, now: DateTime<Utc>) -> bool {
        self.next_due(last_rotated, jitter_key).is_some_and(|due| due <= now)
    }

    fn validate(&self) -> Result<(), PolicyError> {
        validate_name(&self.name)?;
        if let Schedule::Interval(d) = self.schedule
            && d.is_zero()
        {
            return Err(PolicyError::ZeroInterval);
        }
        if self.require_verification && self.verification_tests.is_empty() {
            return Err(PolicyError::VerificationWithoutTests);
        }
        for (i, t) in self.verification_tests.iter().enumerate() {
            if t.trim().is_empty() {
                return Err(PolicyError::EmptyVerificationTest);
            }
            if self.verification_tests.iter().take(i).any(|prev| prev == t) {
                return Err(PolicyError::DuplicateVerificationTest { name: clip(t) });
            }
        }
        self.retry.validate()?;
        if self.verification_timeout.is_zero() || self.verification_timeout > MAX_VERIFICATION_TIMEOUT {
            return Err(PolicyError::VerificationTimeoutOutOfRange { value: self.verification_timeout });
        }
        if self.quarantine_after == 0 {
            return Err(PolicyError::ZeroQuarantineAfter);
        }
        if self.failure_backoff.is_zero() || self.failure_backoff > self.max_failure_backoff {
            return Err(PolicyError::FailureBackoffOutOfRange {
                initial: self.failure_backoff,
                max: self.max_failure_backoff,
            });
        }
        let needs_gap = !self.jitter.is_zero() || self.strategy.needs_grace_period();
        let gap = if needs_gap { self.schedule.min_gap() } else { None };
        if let Some(gap) = gap
            && !self.jitter.is_zero()
            && self.jitter >= gap
        {
            return Err(PolicyError::JitterTooLarge { jitter: self.jitter, interval: gap });
        }
        match (self.strategy.needs_grace_period(), self.grace_period) {
            (true, None) => return Err(PolicyError::GracePeriodRequired { strategy: self.strategy }),
            (_, Some(g)) if g.is_zero() => return Err(PolicyError::ZeroGracePeriod),
            (true, Some(g)) => {
                if let Some(gap) = gap
                    && gap < g.saturating_mul(2)
                {
                    return Err(PolicyError::GracePeriodTooLong { strategy: self.strategy, grace: g, gap });
                }
            }
            (false, Some(_)) | (false, None) => {}
        }
        Ok(())
    }
}

fn validate_name(name: &str) -> Result<(), PolicyError> {
    if name.trim().is_empty() {
        return Err(PolicyError::EmptyName);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(PolicyError::NameTooLong { len: name.len(), max: MAX_NAME_LEN });
    }
    if name.chars().any(char::is_control) {
        return Err(PolicyError::NameHasControlChar);
    }
    Ok(())
}

/// Builds a [`RotationPolicy`]; [`build`](Self::build) validates.
///
/// Setters never fail; text that must be parsed (a cron expression) is
/// checked by `build`, which reports the first broken rule.
///
/// ```
/// use std::time::Duration;
/// use rekey_core::{PolicyError, RotationPolicy, RotationStrategy};
/// let err = RotationPolicy::builder("cache")
///     .interval(Duration::from_secs(3600))
///     .strategy(RotationStrategy::BlueGreen)
///     .grace_period(Duration::from_secs(3600))
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, PolicyError::GracePeriodTooLong { .. }));
/// assert_eq!(err.field(), "grace_period");
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct RotationPolicyBuilder {
    policy: RotationPolicy,
    schedule_error: Option<PolicyError>,
    /// `require_verification` as set by the caller, if set.
    require_verification: Option<bool>,
}

impl RotationPolicyBuilder {
    fn new(name: impl Into<String>) -> Self {
        Self {
            policy: RotationPolicy {
                name: name.into(),
                schedule: Schedule::default(),
                strategy: RotationStrategy::default(),
                require_verification: false,
                verification_tests: Vec::new(),
                auto_rollback: true,
                retry: RetryPolicy::default(),
                window: None,
                jitter: Duration::ZERO,
                grace_period: None,
                verification_timeout: Duration::from_secs(30),
                quarantine_after: 3,
                failure_backoff: Duration::from_secs(300),
                max_failure_backoff: Duration::from_secs(6 * 3600),
            },
            schedule_error: None,
            require_verification: None,
        }
    }

    /// Sets the schedule.
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.policy.schedule = schedule;
        self.schedule_error = None;
        self
    }

    /// Rotates every `every` (zero is rejected by `build`).
    pub fn interval(self, every: Duration) -> Self {
        self.schedule(Schedule::Interval(every))
    }

    /// Rotates on a cron expression (UTC; checked by `build`).
    pub fn cron(mut self, expr: &str) -> Self {
        match CronSchedule::parse(expr) {
            Ok(c) => self = self.schedule(Schedule::Cron(c)),
            Err(e) => self.schedule_error = Some(e),
        }
        self
    }

    /// Never rotates on schedule, only on demand.
    pub fn manual(self) -> Self {
        self.schedule(Schedule::Manual)
    }

    /// Sets the strategy.
    pub fn strategy(mut self, strategy: RotationStrategy) -> Self {
        self.policy.strategy = strategy;
        self
    }

    /// Requires verification to pass before the new value counts.
    ///
    /// Naming verification tests already requires them (a named test always
    /// runs and gates promotion); `true` with no test named is refused, and
    /// so is `false` with tests named.
    pub fn require_verification(mut self, yes: bool) -> Self {
        self.require_verification = Some(yes);
        self
    }

    /// Sets the verification tests to run (replacing any set before). Every
    /// named test runs on every rotation and must pass before the new value
    /// becomes current (or stays current, for the immediate strategy).
    pub fn verification_tests<I, S>(mut self, tests: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.policy.verification_tests = tests.into_iter().map(Into::into).collect();
        self
    }

    /// Rolls back automatically on failure.
    pub fn auto_rollback(mut self, yes: bool) -> Self {
        self.policy.auto_rollback = yes;
        self
    }

    /// Sets the number of retries after the first attempt (`0..=10`).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.policy.retry.max_retries = n;
        self
    }

    /// Sets the first and the largest backoff ceiling.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.policy.retry.initial_backoff = initial;
        self.policy.retry.max_backoff = max;
        self
    }

    /// Sets the factor by which the backoff grows per retry (finite, `>= 1`).
    pub fn backoff_multiplier(mut self, multiplier: f64) -> Self {
        self.policy.retry.multiplier = multiplier;
        self
    }

    /// Sets the whole retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.policy.retry = retry;
        self
    }

    /// Restricts scheduled rotations to a window.
    pub fn window(mut self, window: RotationWindow) -> Self {
        self.policy.window = Some(window);
        self
    }

    /// Sets the jitter bound (shorter than the interval).
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.policy.jitter = jitter;
        self
    }

    /// Sets the grace period (required for dual-write and blue-green).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.policy.grace_period = Some(grace);
        self
    }

    /// Sets the wait before a failed scheduled rotation is tried again
    /// (`initial`, growing per consecutive failure up to `max`; default 5
    /// minutes up to 6 hours). `initial` must be above zero and at most
    /// `max`.
    pub fn failure_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.policy.failure_backoff = initial;
        self.policy.max_failure_backoff = max;
        self
    }

    /// Sets the verification timeout (`(0, 1h]`).
    pub fn verification_timeout(mut self, timeout: Duration) -> Self {
        self.policy.verification_timeout = timeout;
        self
    }

    /// Sets how many consecutive failed scheduled rotations quarantine the secret (`>= 1`).
    pub fn quarantine_after(mut self, failures: u32) -> Self {
        self.policy.quarantine_after = failures;
        self
    }

    /// Validates and returns the policy.
    pub fn build(self) -> Result<RotationPolicy, PolicyError> {
        validate_name(&self.policy.name)?;
        if let Some(e) = self.schedule_error {
            return Err(e);
        }
        let mut policy = self.policy;
        let named = policy.verification_tests.len();
        policy.require_verification = match self.require_verification {
            Some(false) if named > 0 => return Err(PolicyError::VerificationTestsNotRequired { count: named }),
            Some(yes) => yes,
            None => named > 0,
        };
        policy.validate()?;
        Ok(policy)
    }
}

/// The configuration-file form of a [`RotationPolicy`]: every field but
/// `name` optional, durations as humantime strings (`30s`, `5m`, `90d`).
///
/// Deserializing into this type checks only syntax (and rejects unknown
/// fields); `RotationPolicy::try_from(config)` then runs the validation and
/// returns a typed [`PolicyError`]. Deserializing a `RotationPolicy`
/// directly does both, with the error as text.
///
/// ```
/// use rekey_core::{PolicyError, RotationPolicy, RotationPolicyConfig};
/// let cfg: RotationPolicyConfig = toml::from_str(r#"
///     name = "db"
///     schedule = "cron: 0 3 * * *"
///     require_verification = true
/// "#).unwrap();
/// let err = RotationPolicy::try_from(cfg).unwrap_err();
/// assert_eq!(err, PolicyError::VerificationWithoutTests);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationPolicyConfig {
    /// The policy name.
    pub name: String,
    /// `manual`, `every 90 days`, `12h`, `cron: 0 3 * * *`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// `immediate`, `staged`, `dual_write` or `blue_green`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Require verification before the new value counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_verification: Option<bool>,
    /// Verification test names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_tests: Option<Vec<String>>,
    /// Roll back automatically on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_rollback: Option<bool>,
    /// Retries after the first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// First backoff ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_backoff: Option<String>,
    /// Largest backoff ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<String>,
    /// Backoff growth factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_multiplier: Option<f64>,
    /// Rotation window, e.g. `Mon-Fri 02:00-05:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Jitter bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// Grace period for dual-write and blue-green.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<String>,
    /// Verification timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_timeout: Option<String>,
    /// Failed scheduled rotations before quarantine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_after: Option<u32>,
    /// Wait before retrying a failed scheduled rotation (default `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_backoff: Option<String>,
    /// Longest wait between failed scheduled rotations (default `6h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_backoff: Option<String>,
}

impl TryFrom<RotationPolicyConfig> for RotationPolicy {
    type Error = PolicyError;
    fn try_from(c: RotationPolicyConfig) -> Result<Self, Self::Error> {
        validate_name(&c.name)?;
        let mut b = RotationPolicy::builder(c.name);
        if let Some(s) = c.schedule {
            b = b.schedule(s.parse()?);
        }
        if let Some(s) = c.strategy {
            b = b.strategy(s.parse()?);
        }
        if let Some(v) = c.require_verification {
            b = b.require_verification(v);
        }
        if let Some(v) = c.verification_tests {
            b = b.verification_tests(v);
        }
        if let Some(v) = c.auto_rollback {
            b = b.auto_rollback(v);
        }
        if let Some(v) = c.max_retries {
            b = b.max_retries(v);
        }
        let mut retry = b.policy.retry.clone();
        if let Some(s) = c.initial_backoff {
            retry.initial_backoff = parse_duration("initial_backoff", &s)?;
        }
        if let Some(s) = c.max_backoff {
            retry.max_backoff = parse_duration("max_backoff", &s)?;
        }
        if let Some(m) = c.backoff_multiplier {
            retry.multiplier = m;
        }
        b = b.retry(retry);
        if let Some(s) = c.window {
            b = b.window(s.parse()?);
        }
        if let Some(s) = c.jitter {
            b = b.jitter(parse_duration("jitter", &s)?);
        }
        if let Some(s) = c.grace_period {
            b = b.grace_period(parse_duration("grace_period", &s)?);
        }
        if let Some(s) = c.verification_timeout {
            b = b.verification_timeout(parse_duration("verification_timeout", &s)?);
        }
        if let Some(v) = c.quarantine_after {
            b = b.quarantine_after(v);
        }
        if c.failure_backoff.is_some() || c.max_failure_backoff.is_some() {
            let (mut initial, mut max) = (b.policy.failure_backoff, b.policy.max_failure_backoff);
            if let Some(s) = c.failure_backoff {
                initial = parse_duration("failure_backoff", &s)?;
            }
            if let Some(s) = c.max_failure_backoff {
                max = parse_duration("max_failure_backoff", &s)?;
            }
            b = b.failure_backoff(initial, max);
        }
        b.build()
    }
}

impl From<RotationPolicy> for RotationPolicyConfig {
    fn from(p: RotationPolicy) -> Self {
        Self {
            name: p.name,
            schedule: Some(p.schedule.to_string()),
            strategy: Some(p.strategy.to_string()),
            require_verification: Some(p.require_verification),
            verification_tests: Some(p.verification_tests),
            auto_rollback: Some(p.auto_rollback),
            max_retries: Some(p.retry.max_retries),
            initial_backoff: Some(format_duration(p.retry.initial_backoff)),
            max_backoff: Some(format_duration(p.retry.max_backoff)),
            backoff_multiplier: Some(p.retry.multiplier),
            window: p.window.map(|w| w.to_string()),
            jitter: Some(format_duration(p.jitter)),
            grace_period: p.grace_period.map(format_duration),
            verification_timeout: Some(format_duration(p.verification_timeout)),
            quarantine_after: Some(p.quarantine_after),
            failure_backoff: Some(format_duration(p.failure_backoff)),
            max_failure_backoff: Some(format_duration(p.max_failure_backoff)),
        }
    }
}
