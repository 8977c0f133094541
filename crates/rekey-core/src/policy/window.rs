//! Rotation windows: the times of day (and week) when rotations may start.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, NaiveTime, TimeDelta, Timelike, Utc, Weekday};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::PolicyError;
use super::text::clip;

const MINUTES_PER_DAY: u16 = 24 * 60;
const ALL_DAYS: u8 = 0b111_1111;
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A daily window, in UTC, during which scheduled rotations may start.
///
/// Text form (also the serde form): `HH:MM-HH:MM`, optionally preceded by
/// the weekdays on which the window opens: `Mon-Fri 02:00-05:00`,
/// `Sat,Sun 00:00-06:00`, `Fri-Mon 22:00-02:00`. The start is inclusive,
/// the end exclusive; `24:00` may be used as an end. A window whose end is
/// before its start wraps past midnight and belongs to the day it opens on
/// (`Fri 22:00-02:00` includes Saturday 01:00). Start and end must differ.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use rekey_core::RotationWindow;
/// let w: RotationWindow = "Mon-Fri 22:00-02:00".parse()?;
/// let sat_1am = Utc.with_ymd_and_hms(2025, 1, 4, 1, 0, 0).unwrap(); // a Saturday
/// assert!(w.contains(sat_1am)); // opened on Friday
/// let sat_noon = Utc.with_ymd_and_hms(2025, 1, 4, 12, 0, 0).unwrap();
/// assert_eq!(w.next_open(sat_noon), Utc.with_ymd_and_hms(2025, 1, 6, 22, 0, 0).unwrap()); // Monday
/// assert_eq!(w.to_string(), "Mon-Fri 22:00-02:00");
/// # Ok::<(), rekey_core::PolicyError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RotationWindow {
    /// Bit `i` set: the window opens on weekday `i` (0 = Monday).
    days: u8,
    /// Minutes after midnight, `0..1440`.
    start: u16,
    /// Minutes after midnight, `0..=1440`, never equal to `start`.
    end: u16,
}

impl RotationWindow {
    /// A window open every day from `start` to `end` (UTC); `end` before
    /// `start` wraps past midnight. Seconds are ignored.
    pub fn daily(start: NaiveTime, end: NaiveTime) -> Result<Self, PolicyError> {
        let s = (start.hour() * 60 + start.minute()) as u16;
        let mut e = (end.hour() * 60 + end.minute()) as u16;
        if e == 0 && s != 0 {
            e = MINUTES_PER_DAY;
        }
        Self::from_parts(ALL_DAYS, s, e)
    }

    /// The same window, opening only on `days`.
    ///
    /// An empty set of days is [`PolicyError::InvalidWindow`].
    pub fn on_days(self, days: impl IntoIterator<Item = Weekday>) -> Result<Self, PolicyError> {
        let mask = days.into_iter().fold(0u8, |m, d| m | (1 << d.num_days_from_monday()));
        Self::from_parts(mask, self.start, self.end)
    }

    fn from_parts(days: u8, start: u16, end: u16) -> Result<Self, PolicyError> {
        if days & ALL_DAYS == 0 {
            return Err(PolicyError::InvalidWindow { input: String::new(), reason: "no weekday given".into() });
        }
        if start >= MINUTES_PER_DAY || end > MINUTES_PER_DAY {
            return Err(PolicyError::InvalidWindow { input: String::new(), reason: "time out of range".into() });
        }
        if start == end {
            return Err(PolicyError::EmptyWindow);
        }
        Ok(Self { days: days & ALL_DAYS, start, end })
    }

    fn opens_on(&self, day: Weekday) -> bool {
        self.days & (1 << day.num_days_from_monday()) != 0
    }

    fn wraps(&self) -> bool {
        self.end < self.start
    }

    /// The weekdays on which the window opens, Monday first.
    pub fn weekdays(&self) -> impl Iterator<Item = Weekday> + '_ {
        (0u8..7).filter(|i| self.days & (1 << i) != 0).filter_map(|i| Weekday::try_from(i).ok())
    }

    /// The length of the window.
    pub fn length(&self) -> std::time::Duration {
        let minutes = if self.wraps() { MINUTES_PER_DAY - self.start + self.end } else { self.end - self.start };
        std::time::Duration::from_secs(u64::from(minutes) * 60)
    }

    /// Whether `t` is inside the window.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let secs = t.num_seconds_from_midnight();
        let (start, end) = (u32::from(self.start) * 60, u32::from(self.end) * 60);
        let today = t.weekday();
        if self.wraps() {
            (secs >= start && self.opens_on(today)) || (secs < end && self.opens_on(today.pred()))
        } else {
            secs >= start && secs < end && self.opens_on(today)
        }
    }

    /// `t` if it is inside the window, otherwise the next time the window
    /// opens. If that time cannot be represented (the very end of chrono's
    /// range), `t` is returned.
    pub fn next_open(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        if self.contains(t) {
            return t;
        }
        let Some(start) = NaiveTime::from_num_seconds_from_midnight_opt(u32::from(self.start) * 60, 0) else {
            return t;
        };
        let date = t.date_naive();
        for offset in 0..=7u64 {
            let Some(day) = date.checked_add_days(Days::new(offset)) else { return t };
            let candidate = day.and_time(start).and_utc();
            if candidate > t && self.opens_on(day.weekday()) {
                return candidate;
            }
        }
        t
    }

    /// When the window that contains `t` closes, if `t` is inside it.
    pub fn closes_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.contains(t) {
            return None;
        }
        let secs = i64::from(t.num_seconds_from_midnight());
        let end = i64::from(self.end) * 60;
        let remaining = if !self.wraps() || secs < end { end - secs } else { end + 86_400 - secs };
        t.with_nanosecond(0)?.checked_add_signed(TimeDelta::seconds(remaining))
    }
}

impl fmt::Debug for RotationWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RotationWindow({:?})", self.to_string())
    }
}

impl fmt::Display for RotationWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.days != ALL_DAYS {
            let mut first = true;
            let mut i = 0usize;
            while i < 7 {
                if self.days & (1 << i) == 0 {
                    i += 1;
                    continue;
                }
                let mut j = i;
                while j + 1 < 7 && self.days & (1 << (j + 1)) != 0 {
                    j += 1;
                }
                if !first {
                    f.write_str(",")?;
                }
                first = false;
                let name = |k: usize| DAY_NAMES.get(k).copied().unwrap_or("?");
                match j - i {
                    0 => f.write_str(name(i))?,
                    1 => write!(f, "{},{}", name(i), name(j))?,
                    _ => write!(f, "{}-{}", name(i), name(j))?,
                }
                i = j + 1;
            }
            f.write_str(" ")?;
        }
        write!(f, "{:02}:{:02}-{:02}:{:02}", self.start / 60, self.start % 60, self.end / 60, self.end % 60)
    }
}

fn parse_hhmm(s: &str, allow_24: bool) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    if !h.bytes().all(|b| b.is_ascii_digit()) || !m.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
    if m >= 60 {
        return None;
    }
    match h {
        0..=23 => Some(h * 60 + m),
        24 if allow_24 && m == 0 => Some(MINUTES_PER_DAY),
        _ => None,
    }
}

fn parse_day(s: &str) -> Option<u8> {
    let s = s.trim();
    if s.len() < 3 {
        return None;
    }
    let full = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    full.iter().position(|f| f.starts_with(&s.to_ascii_lowercase())).and_then(|i| u8::try_from(i).ok())
}

fn parse_days(s: &str) -> Result<u8, String> {
    let mut mask = 0u8;
    for part in s.split(',') {
        let part = part.trim();
        let bad = || format!("{:?} is not a weekday or weekday range (use Mon..Sun)", clip(part));
        if let Some((a, b)) = part.split_once('-') {
            let (a, b) = (parse_day(a).ok_or_else(bad)?, parse_day(b).ok_or_else(bad)?);
            let mut d = a;
            loop {
                mask |= 1 << d;
                if d == b {
                    break;
                }
                d = (d + 1) % 7;
            }
        } else {
            mask |= 1 << parse_day(part).ok_or_else(bad)?;
        }
    }
    Ok(mask)
}

impl FromStr for RotationWindow {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| PolicyError::InvalidWindow { input: clip(s), reason };
        let t = s.trim();
        if t.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        let (days_text, times) = match t.rsplit_once(char::is_whitespace) {
            Some((d, times)) => (Some(d.trim()), times),
            None => (None, t),
        };
        let days = match days_text {
            Some(d) => parse_days(d).map_err(invalid)?,
            None => ALL_DAYS,
        };
        let (a, b) = times.split_once('-').ok_or_else(|| invalid("expected a time range HH:MM-HH:MM".into()))?;
        let start =
            parse_hhmm(a.trim(), false).ok_or_else(|| invalid(format!("{:?} is not a time 00:00..23:59", clip(a))))?;
        let end =
            parse_hhmm(b.trim(), true).ok_or_else(|| invalid(format!("{:?} is not a time 00:00..24:00", clip(b))))?;
        let end = if end == 0 && start != 0 { MINUTES_PER_DAY } else { end };
        Self::from_parts(days, start, end).map_err(|e| match e {
            PolicyError::InvalidWindow { reason, .. } => invalid(reason),
            other => other,
        })
    }
}

impl Serialize for RotationWindow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RotationWindow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
