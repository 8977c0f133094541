//! When a secret is due: [`Schedule`] and [`CronSchedule`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::PolicyError;
use super::text::clip;
use super::text::format_duration;

/// How many occurrences of a cron schedule [`CronSchedule::min_gap`] looks at.
const GAP_SAMPLES: usize = 400;

/// A parsed cron expression, evaluated in UTC.
///
/// Five fields (`min hour day-of-month month day-of-week`) or six with a
/// leading seconds field; names (`MON`, `JAN`), ranges, steps, lists and the
/// `@daily`-style nicknames are accepted. When both day-of-month and
/// day-of-week are restricted, either one matching fires (as in Vixie cron).
/// An expression that never fires
/// (such as `0 0 30 2 *`) is rejected when parsed.
///
/// ```
/// use rekey_core::CronSchedule;
/// let c: CronSchedule = "0 3 * * MON-FRI".parse()?;
/// assert_eq!(c.as_str(), "0 3 * * MON-FRI");
/// assert!("0 0 30 2 *".parse::<CronSchedule>().is_err());
/// # Ok::<(), rekey_core::PolicyError>(())
/// ```
#[derive(Clone)]
pub struct CronSchedule {
    expr: String,
    cron: std::sync::Arc<croner::Cron>,
}

impl CronSchedule {
    /// Parses and checks a cron expression.
    pub fn parse(expr: &str) -> Result<Self, PolicyError> {
        let expr = expr.split_whitespace().collect::<Vec<_>>().join(" ");
        let invalid = |reason: String| PolicyError::InvalidCron { expr: clip(&expr), reason };
        if expr.is_empty() {
            return Err(invalid("the expression is empty".into()));
        }
        if !expr.is_ascii() {
            return Err(invalid("the expression contains non-ASCII characters".into()));
        }
        let cron = croner::Cron::new(&expr).with_seconds_optional().parse().map_err(|e| invalid(e.to_string()))?;
        let never = invalid("the expression never fires".into());
        let this = Self { expr, cron: std::sync::Arc::new(cron) };
        if this.next_after(reference_time()).is_none() {
            return Err(never);
        }
        Ok(this)
    }

    /// The expression, with whitespace normalised.
    pub fn as_str(&self) -> &str {
        &self.expr
    }

    /// The first time the expression fires strictly after `after`, at a
    /// whole second; `None` if it never does (or the time is out of range).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // croner panics on date arithmetic near the ends of chrono's range,
        // and gives up at the year 5000 anyway: search only inside years
        // 1..5000 (a time before year 1 searches from its start, which is
        // still strictly after it).
        let (lowest, highest) = cron_search_range()?;
        if after >= highest {
            return None;
        }
        let floor = after.with_nanosecond(0)?.max(lowest);
        self.cron.find_next_occurrence(&floor, false).ok().filter(|t| *t > after)
    }

    /// An estimate of the shortest gap between two consecutive runs: the
    /// smallest gap among the first few hundred runs after a fixed reference
    /// time. `None` if the expression fires fewer than twice.
    pub fn min_gap(&self) -> Option<Duration> {
        let mut prev = self.next_after(reference_time())?;
        let mut min: Option<Duration> = None;
        for _ in 0..GAP_SAMPLES {
            let Some(next) = self.next_after(prev) else { break };
            let gap = (next - prev).to_std().ok()?;
            min = Some(min.map_or(gap, |m| m.min(gap)));
            prev = next;
        }
        min
    }
}

/// The times `CronSchedule::next_after` searches between.
fn cron_search_range() -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    Some((Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).single()?, Utc.with_ymd_and_hms(5000, 1, 1, 0, 0, 0).single()?))
}

/// A fixed, deterministic starting point for checks on cron expressions.
fn reference_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSchedule({:?})", self.expr)
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}

impl Eq for CronSchedule {}

impl std::hash::Hash for CronSchedule {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.expr.hash(state);
    }
}

impl FromStr for CronSchedule {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// When a secret is rotated automatically.
///
/// Text form (also the serde form): `manual`, `every 90 days`, `every 12h`,
/// `90d` (any [humantime](https://docs.rs/humantime) duration, optionally
/// after `every`), or `cron: 0 3 * * *`. `Display` gives text that parses
/// back to the same schedule.
///
/// `Manual` is never due: such a secret is rotated only on demand. (The
/// original design rotated an `interval_days = 0` policy on every tick.)
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use rekey_core::Schedule;
/// let s: Schedule = "every 90 days".parse()?;
/// assert_eq!(s.to_string(), "every 90 days");
/// let t = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
/// assert_eq!(s.next_after(t), Some(Utc.with_ymd_and_hms(2025, 4, 1, 0, 0, 0).unwrap()));
///
/// let nightly: Schedule = "cron: 0 3 * * *".parse()?;
/// assert_eq!(nightly.next_after(t), Some(Utc.with_ymd_and_hms(2025, 1, 1, 3, 0, 0).unwrap()));
/// assert_eq!("manual".parse::<Schedule>()?.next_after(t), None);
/// assert!("every 0s".parse::<Schedule>().is_err());
/// # Ok::<(), rekey_core::PolicyError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Schedule {
    /// Never due; rotated only on demand.
    Manual,
    /// A fixed interval after the last rotation (never zero).
    Interval(Duration),
    /// A cron expression in UTC.
    Cron(CronSchedule),
}

impl Default for Schedule {
    /// Every 90 days.
    fn default() -> Self {
        Schedule::Interval(Duration::from_secs(90 * 86_400))
    }
}

impl Schedule {
    /// An interval schedule; an interval of zero is [`PolicyError::ZeroInterval`].
    pub fn interval(every: Duration) -> Result<Self, PolicyError> {
        if every.is_zero() { Err(PolicyError::ZeroInterval) } else { Ok(Schedule::Interval(every)) }
    }

    /// A cron schedule; see [`CronSchedule`].
    pub fn cron(expr: &str) -> Result<Self, PolicyError> {
        CronSchedule::parse(expr).map(Schedule::Cron)
    }

    /// The next time this schedule fires strictly after `after`.
    ///
    /// `None` for [`Schedule::Manual`], and when the time would be out of
    /// the representable range.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Manual => None,
            Schedule::Interval(d) => {
                // A zero interval cannot be built through the API, but the
                // variant is public: never return a time that is not after.
                let d = TimeDelta::from_std(*d).ok()?;
                if d <= TimeDelta::zero() {
                    return None;
                }
                after.checked_add_signed(d)
            }
            Schedule::Cron(c) => c.next_after(after),
        }
    }

    /// The shortest time between two consecutive rotations: the interval,
    /// or an estimate for a cron schedule ([`CronSchedule::min_gap`]);
    /// `None` for `Manual`.
    pub fn min_gap(&self) -> Option<Duration> {
        match self {
            Schedule::Manual => None,
            Schedule::Interval(d) => Some(*d),
            Schedule::Cron(c) => c.min_gap(),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Manual => f.write_str("manual"),
            Schedule::Interval(d) => {
                let secs = d.as_secs();
                if d.subsec_nanos() != 0 || secs == 0 {
                    return write!(f, "every {}", format_duration(*d));
                }
                let (n, unit) = match secs {
                    s if s % 86_400 == 0 => (s / 86_400, "day"),
                    s if s % 3_600 == 0 => (s / 3_600, "hour"),
                    s if s % 60 == 0 => (s / 60, "minute"),
                    s => (s, "second"),
                };
                write!(f, "every {n} {unit}{}", if n == 1 { "" } else { "s" })
            }
            Schedule::Cron(c) => write!(f, "cron: {c}"),
        }
    }
}

impl FromStr for Schedule {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let invalid = |reason: &str| PolicyError::InvalidSchedule { input: clip(s), reason: reason.to_owned() };
        if t.is_empty() {
            return Err(invalid("it is empty"));
        }
        if t.eq_ignore_ascii_case("manual") {
            return Ok(Schedule::Manual);
        }
        if let Some(expr) = strip_prefix_ci(t, "cron:") {
            return Schedule::cron(expr);
        }
        let text = strip_prefix_ci(t, "every ").unwrap_or(t).trim();
        let d = humantime::parse_duration(text).map_err(|e| invalid(&e.to_string()))?;
        Schedule::interval(d)
    }
}

/// `s` without `prefix` (matched ASCII-case-insensitively), if it has it.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) { s.get(prefix.len()..) } else { None }
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
