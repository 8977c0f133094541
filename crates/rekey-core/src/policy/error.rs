//! The error of every policy validation rule.

use std::time::Duration;

use super::RotationStrategy;
use super::text::format_duration as fd;

/// Why a rotation policy (or one of its parts) is invalid.
///
/// One variant per rule; [`PolicyError::field`] names the field at fault,
/// the `Display` text says what is wrong and what is accepted. No variant
/// holds a secret: policies contain none.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy name is empty or only whitespace.
    #[error("name: the policy name is empty")]
    EmptyName,
    /// The policy name is longer than [`MAX_NAME_LEN`](super::MAX_NAME_LEN) bytes.
    #[error("name: the policy name is {len} bytes long; the limit is {max}")]
    NameTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The policy name contains a control character.
    #[error("name: the policy name contains a control character")]
    NameHasControlChar,
    /// The schedule text is not `manual`, `every <duration>`, `<duration>` or `cron: <expression>`.
    #[error(
        "schedule: {input:?} is not a schedule ({reason}); expected `manual`, `every 90 days`, `12h` or `cron: 0 3 * * *`"
    )]
    InvalidSchedule {
        /// The text (shortened if very long).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The cron expression does not parse, or never fires.
    #[error("schedule: invalid cron expression {expr:?}: {reason}")]
    InvalidCron {
        /// The expression (shortened if very long).
        expr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An interval schedule of zero: use `manual` for "never automatically".
    #[error("schedule: the rotation interval is zero (use `manual` for secrets that are only rotated on demand)")]
    ZeroInterval,
    /// The strategy name is not one of `immediate`, `staged`, `dual_write`, `blue_green`.
    #[error("strategy: unknown strategy {input:?}; expected immediate, staged, dual_write or blue_green")]
    UnknownStrategy {
        /// The text (shortened if very long).
        input: String,
    },
    /// `require_verification` is set but no verification test is named.
    #[error("verification_tests: require_verification is set but no verification test is named")]
    VerificationWithoutTests,
    /// Verification tests are named while `require_verification` is
    /// explicitly off. A named test always runs and gates promotion, so the
    /// combination is refused rather than silently resolved either way.
    #[error(
        "require_verification: set to false while verification_tests names {count} test(s); a named verification \
         test always runs and must pass before the new value becomes current: remove `require_verification = false` \
         (or the tests)"
    )]
    VerificationTestsNotRequired {
        /// How many tests are named.
        count: usize,
    },
    /// A verification test name is empty or only whitespace.
    #[error("verification_tests: a verification test name is empty")]
    EmptyVerificationTest,
    /// The same verification test is named twice.
    #[error("verification_tests: the verification test {name:?} is listed twice")]
    DuplicateVerificationTest {
        /// The repeated name.
        name: String,
    },
    /// `max_retries` is above [`MAX_RETRIES`](super::MAX_RETRIES).
    #[error("max_retries: {value} is out of range 0..={max}")]
    MaxRetriesOutOfRange {
        /// The value given.
        value: u32,
        /// The largest value accepted.
        max: u32,
    },
    /// The initial backoff is zero.
    #[error("initial_backoff: the initial retry backoff must be greater than zero")]
    ZeroInitialBackoff,
    /// The initial backoff is longer than the maximum backoff.
    #[error("initial_backoff: the initial retry backoff ({}) is longer than max_backoff ({})", fd(*.initial), fd(*.max))]
    BackoffInitialExceedsMax {
        /// The initial backoff.
        initial: Duration,
        /// The maximum backoff.
        max: Duration,
    },
    /// The backoff multiplier is below 1 or not a finite number.
    #[error("backoff_multiplier: {value} is not a finite number >= 1")]
    InvalidBackoffMultiplier {
        /// The value given.
        value: f64,
    },
    /// The rotation window text does not parse.
    #[error(
        "window: {input:?} is not a rotation window ({reason}); expected e.g. `02:00-05:00` or `Mon-Fri 22:00-02:00` (UTC)"
    )]
    InvalidWindow {
        /// The text (shortened if very long).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The rotation window opens and closes at the same minute.
    #[error("window: the rotation window is empty (it starts and ends at the same time)")]
    EmptyWindow,
    /// The jitter is not shorter than the interval between rotations.
    #[error("jitter: the jitter ({}) must be shorter than the interval between rotations ({})", fd(*.jitter), fd(*.interval))]
    JitterTooLarge {
        /// The jitter.
        jitter: Duration,
        /// The interval (for cron schedules: the shortest gap between two runs).
        interval: Duration,
    },
    /// The verification timeout is zero or longer than [`MAX_VERIFICATION_TIMEOUT`](super::MAX_VERIFICATION_TIMEOUT).
    #[error("verification_timeout: {} is out of range (greater than zero, at most 1h)", fd(*.value))]
    VerificationTimeoutOutOfRange {
        /// The value given.
        value: Duration,
    },
    /// The strategy keeps two credentials valid, so it needs a grace period.
    #[error(
        "grace_period: the {strategy} strategy keeps the old credential valid for a grace period; set grace_period"
    )]
    GracePeriodRequired {
        /// The strategy.
        strategy: RotationStrategy,
    },
    /// The grace period is zero.
    #[error("grace_period: the grace period must be greater than zero")]
    ZeroGracePeriod,
    /// Rotations come closer together than twice the grace period.
    #[error(
        "grace_period: with the {strategy} strategy, rotations must be at least 2 x grace_period ({}) apart, \
         but the schedule can rotate every {}: two alternating credentials rotated closer together than \
         consumers need to switch would retire a credential some consumers still use, causing an outage",
        fd(*.grace),
        fd(*.gap)
    )]
    GracePeriodTooLong {
        /// The strategy.
        strategy: RotationStrategy,
        /// The grace period.
        grace: Duration,
        /// The interval (for cron schedules: the shortest gap between two runs).
        gap: Duration,
    },
    /// `failure_backoff` is zero or above `max_failure_backoff`.
    #[error(
        "failure_backoff: {} must be above zero and at most max_failure_backoff ({})",
        fd(*.initial),
        fd(*.max)
    )]
    FailureBackoffOutOfRange {
        /// The first wait.
        initial: Duration,
        /// The longest wait.
        max: Duration,
    },
    /// `quarantine_after` is zero.
    #[error("quarantine_after: must be at least 1 (consecutive failed rotations before quarantine)")]
    ZeroQuarantineAfter,
    /// A duration field in a configuration does not parse.
    #[error("{field}: {input:?} is not a duration ({reason}); expected e.g. `30s`, `5m`, `12h`, `90d`")]
    InvalidDuration {
        /// The field.
        field: &'static str,
        /// The text (shortened if very long).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl PolicyError {
    /// The name of the field at fault, as spelled in a configuration file.
    ///
    /// ```
    /// use rekey_core::{PolicyError, RotationPolicy};
    /// let err = RotationPolicy::builder("db").max_retries(11).build().unwrap_err();
    /// assert_eq!(err.field(), "max_retries");
    /// ```
    pub fn field(&self) -> &'static str {
        match self {
            Self::EmptyName | Self::NameTooLong { .. } | Self::NameHasControlChar => "name",
            Self::InvalidSchedule { .. } | Self::InvalidCron { .. } | Self::ZeroInterval => "schedule",
            Self::UnknownStrategy { .. } => "strategy",
            Self::VerificationWithoutTests | Self::EmptyVerificationTest | Self::DuplicateVerificationTest { .. } => {
                "verification_tests"
            }
            Self::MaxRetriesOutOfRange { .. } => "max_retries",
            Self::ZeroInitialBackoff | Self::BackoffInitialExceedsMax { .. } => "initial_backoff",
            Self::InvalidBackoffMultiplier { .. } => "backoff_multiplier",
            Self::InvalidWindow { .. } | Self::EmptyWindow => "window",
            Self::JitterTooLarge { .. } => "jitter",
            Self::VerificationTimeoutOutOfRange { .. } => "verification_timeout",
            Self::GracePeriodRequired { .. } | Self::ZeroGracePeriod | Self::GracePeriodTooLong { .. } => {
                "grace_period"
            }
            Self::ZeroQuarantineAfter => "quarantine_after",
            Self::FailureBackoffOutOfRange { .. } => "failure_backoff",
            Self::VerificationTestsNotRequired { .. } => "require_verification",
            Self::InvalidDuration { field, .. } => field,
        }
    }
}
