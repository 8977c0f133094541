//! Rotation policy: defaults, every validation rule, schedules, windows,
//! backoff, due times and the configuration formats.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rekey_core::{
    PolicyError, RetryPolicy, RotationPolicy, RotationPolicyBuilder, RotationPolicyConfig, RotationStatus,
    RotationStrategy, RotationWindow, Schedule, SecretPath, jitter_key,
};

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn b() -> RotationPolicyBuilder {
    RotationPolicy::builder("db-password")
}

fn err(builder: RotationPolicyBuilder) -> PolicyError {
    builder.build().unwrap_err()
}

#[test]
fn defaults_follow_the_seed() {
    let p = b().build().unwrap();
    assert_eq!(p.name(), "db-password");
    assert_eq!(p.schedule(), &Schedule::Interval(90 * DAY));
    assert_eq!(p.strategy(), RotationStrategy::Staged);
    assert!(!p.require_verification());
    assert!(p.verification_tests().is_empty());
    assert!(p.auto_rollback());
    assert_eq!(p.max_retries(), 3);
    assert_eq!(
        p.retry(),
        &RetryPolicy { max_retries: 3, initial_backoff: Duration::from_secs(1), max_backoff: 5 * MIN, multiplier: 2.0 }
    );
    assert_eq!(p.verification_timeout(), Duration::from_secs(30));
    assert_eq!(p.jitter(), Duration::ZERO);
    assert_eq!(p.window(), None);
    assert_eq!(p.grace_period(), None);
    assert_eq!(p.quarantine_after(), 3);
}

#[test]
fn every_setter_is_kept() {
    let w: RotationWindow = "Sat,Sun 01:00-05:00".parse().unwrap();
    let p = b()
        .cron("0 3 * * *")
        .strategy(RotationStrategy::DualWrite)
        .require_verification(true)
        .verification_tests(["connect", "query"])
        .auto_rollback(false)
        .max_retries(10)
        .backoff(Duration::from_millis(500), MIN)
        .backoff_multiplier(1.5)
        .window(w)
        .jitter(10 * MIN)
        .grace_period(2 * HOUR)
        .verification_timeout(HOUR)
        .quarantine_after(1)
        .build()
        .unwrap();
    assert_eq!(p.schedule().to_string(), "cron: 0 3 * * *");
    assert_eq!(p.strategy(), RotationStrategy::DualWrite);
    assert!(p.require_verification());
    assert_eq!(p.verification_tests(), ["connect".to_owned(), "query".to_owned()]);
    assert!(!p.auto_rollback());
    assert_eq!(p.max_retries(), 10);
    assert_eq!(p.retry().initial_backoff, Duration::from_millis(500));
    assert_eq!(p.retry().max_backoff, MIN);
    assert_eq!(p.retry().multiplier, 1.5);
    assert_eq!(p.window(), Some(&w));
    assert_eq!(p.jitter(), 10 * MIN);
    assert_eq!(p.grace_period(), Some(2 * HOUR));
    assert_eq!(p.verification_timeout(), HOUR);
    assert_eq!(p.quarantine_after(), 1);
}

// ---- one test per validation rule -------------------------------------------

#[test]
fn empty_or_blank_name() {
    for name in ["", "   ", "\t\n"] {
        let e = RotationPolicy::builder(name).build().unwrap_err();
        assert_eq!(e, PolicyError::EmptyName);
        assert_eq!(e.field(), "name");
    }
}

#[test]
fn overlong_name() {
    let e = RotationPolicy::builder("x".repeat(129)).build().unwrap_err();
    assert_eq!(e, PolicyError::NameTooLong { len: 129, max: 128 });
    assert_eq!(e.field(), "name");
    assert!(RotationPolicy::builder("x".repeat(128)).build().is_ok());
}

#[test]
fn name_with_control_char() {
    let e = RotationPolicy::builder("db\u{7}").build().unwrap_err();
    assert_eq!(e, PolicyError::NameHasControlChar);
    assert_eq!(e.field(), "name");
}

#[test]
fn invalid_schedule_text() {
    for s in ["", "sometimes", "every", "every banana", "90 fortnights", "-5d"] {
        let e = s.parse::<Schedule>().unwrap_err();
        assert!(matches!(e, PolicyError::InvalidSchedule { .. }), "{s:?}: {e:?}");
        assert_eq!(e.field(), "schedule");
    }
}

#[test]
fn invalid_cron() {
    for expr in ["", "not a cron", "61 * * * *", "* * * * * * * *", "0 25 * * *", "0 0 30 2 *"] {
        let e = err(b().cron(expr));
        assert!(matches!(e, PolicyError::InvalidCron { .. }), "{expr:?}: {e:?}");
        assert_eq!(e.field(), "schedule");
        assert!(e.to_string().starts_with("schedule: invalid cron expression"), "{e}");
    }
    // A later valid schedule replaces an earlier invalid one.
    assert!(b().cron("nope").interval(DAY).build().is_ok());
}

#[test]
fn zero_interval() {
    let e = err(b().interval(Duration::ZERO));
    assert_eq!(e, PolicyError::ZeroInterval);
    assert_eq!(e.field(), "schedule");
    assert_eq!("every 0s".parse::<Schedule>().unwrap_err(), PolicyError::ZeroInterval);
    assert_eq!(Schedule::interval(Duration::ZERO).unwrap_err(), PolicyError::ZeroInterval);
}

#[test]
fn verification_required_without_tests() {
    let e = err(b().require_verification(true));
    assert_eq!(e, PolicyError::VerificationWithoutTests);
    assert_eq!(e.field(), "verification_tests");
    assert!(b().require_verification(true).verification_tests(["connect"]).build().is_ok());
}

#[test]
fn duplicate_verification_test() {
    let e = err(b().verification_tests(["connect", "query", "connect"]));
    assert_eq!(e, PolicyError::DuplicateVerificationTest { name: "connect".into() });
    assert_eq!(e.field(), "verification_tests");
}

#[test]
fn empty_verification_test_name() {
    let e = err(b().verification_tests(["connect", " "]));
    assert_eq!(e, PolicyError::EmptyVerificationTest);
    assert_eq!(e.field(), "verification_tests");
}

#[test]
fn max_retries_out_of_range() {
    for n in [11, 100, u32::MAX] {
        let e = err(b().max_retries(n));
        assert_eq!(e, PolicyError::MaxRetriesOutOfRange { value: n, max: 10 });
        assert_eq!(e.field(), "max_retries");
    }
    assert!(b().max_retries(0).build().is_ok());
    assert!(b().max_retries(10).build().is_ok());
}

#[test]
fn zero_initial_backoff() {
    let e = err(b().backoff(Duration::ZERO, MIN));
    assert_eq!(e, PolicyError::ZeroInitialBackoff);
    assert_eq!(e.field(), "initial_backoff");
}

#[test]
fn initial_backoff_above_max() {
    let e = err(b().backoff(2 * MIN, MIN));
    assert_eq!(e, PolicyError::BackoffInitialExceedsMax { initial: 2 * MIN, max: MIN });
    assert_eq!(e.field(), "initial_backoff");
    assert!(e.to_string().contains("(2m)") && e.to_string().contains("(1m)"), "{e}");
}

#[test]
fn bad_backoff_multiplier() {
    for m in [0.0, 0.5, -2.0, f64::NAN, f64::INFINITY] {
        let e = err(b().backoff_multiplier(m));
        assert!(matches!(e, PolicyError::InvalidBackoffMultiplier { .. }), "{m}: {e:?}");
        assert_eq!(e.field(), "backoff_multiplier");
    }
    assert!(b().backoff_multiplier(1.0).build().is_ok());
}

#[test]
fn invalid_window_text() {
    for s in ["", "2-5", "02:00", "25:00-01:00", "02:60-03:00", "Funday 02:00-03:00", "02:00-24:30", "24:00-01:00"] {
        let e = s.parse::<RotationWindow>().unwrap_err();
        assert!(matches!(e, PolicyError::InvalidWindow { .. }), "{s:?}: {e:?}");
        assert_eq!(e.field(), "window");
    }
}

#[test]
fn empty_window() {
    for s in ["02:00-02:00", "00:00-00:00", "Mon 13:37-13:37"] {
        let e = s.parse::<RotationWindow>().unwrap_err();
        assert_eq!(e, PolicyError::EmptyWindow, "{s:?}");
        assert_eq!(e.field(), "window");
    }
}

#[test]
fn jitter_not_shorter_than_interval() {
    let e = err(b().interval(HOUR).jitter(HOUR));
    assert_eq!(e, PolicyError::JitterTooLarge { jitter: HOUR, interval: HOUR });
    assert_eq!(e.field(), "jitter");
    assert!(b().interval(HOUR).jitter(HOUR - Duration::from_secs(1)).build().is_ok());
    // For cron schedules the shortest gap between runs counts.
    let e = err(b().cron("*/15 * * * *").jitter(20 * MIN));
    assert_eq!(e, PolicyError::JitterTooLarge { jitter: 20 * MIN, interval: 15 * MIN });
    // Manual schedules have no interval to compare with.
    assert!(b().manual().jitter(HOUR).build().is_ok());
}

#[test]
fn verification_timeout_out_of_range() {
    for d in [Duration::ZERO, HOUR + Duration::from_secs(1), DAY] {
        let e = err(b().verification_timeout(d));
        assert_eq!(e, PolicyError::VerificationTimeoutOutOfRange { value: d });
        assert_eq!(e.field(), "verification_timeout");
    }
    assert!(b().verification_timeout(HOUR).build().is_ok());
}

#[test]
fn zero_quarantine_after() {
    let e = err(b().quarantine_after(0));
    assert_eq!(e, PolicyError::ZeroQuarantineAfter);
    assert_eq!(e.field(), "quarantine_after");
}

#[test]
fn dual_write_and_blue_green_need_a_grace_period() {
    for s in [RotationStrategy::DualWrite, RotationStrategy::BlueGreen] {
        let e = err(b().strategy(s));
        assert_eq!(e, PolicyError::GracePeriodRequired { strategy: s });
        assert_eq!(e.field(), "grace_period");
        assert!(b().strategy(s).grace_period(DAY).build().is_ok());
    }
    // Other strategies do not.
    assert!(b().strategy(RotationStrategy::Immediate).build().is_ok());
}

#[test]
fn zero_grace_period() {
    let e = err(b().strategy(RotationStrategy::DualWrite).grace_period(Duration::ZERO));
    assert_eq!(e, PolicyError::ZeroGracePeriod);
    assert_eq!(e.field(), "grace_period");
}

#[test]
fn grace_period_too_long_for_the_interval() {
    let e = err(b().interval(DAY).strategy(RotationStrategy::BlueGreen).grace_period(13 * HOUR));
    assert_eq!(
        e,
        PolicyError::GracePeriodTooLong { strategy: RotationStrategy::BlueGreen, grace: 13 * HOUR, gap: DAY }
    );
    assert_eq!(e.field(), "grace_period");
    let msg = e.to_string();
    assert!(msg.contains("2 x grace_period") && msg.contains("outage"), "{msg}");
    assert!(b().interval(DAY).strategy(RotationStrategy::BlueGreen).grace_period(12 * HOUR).build().is_ok());
}

#[test]
fn grace_period_too_long_for_the_cron_gap() {
    // Weekdays at 03:00: Mon-Fri the gap is one day (Fri->Mon is three).
    let e = err(b().cron("0 3 * * MON-FRI").strategy(RotationStrategy::DualWrite).grace_period(DAY));
    assert_eq!(e, PolicyError::GracePeriodTooLong { strategy: RotationStrategy::DualWrite, grace: DAY, gap: DAY });
    // Twice a day with an uneven split: 03:00 and 05:00, the gap is 2h.
    let e = err(b().cron("0 3,5 * * *").strategy(RotationStrategy::DualWrite).grace_period(90 * MIN));
    assert!(matches!(e, PolicyError::GracePeriodTooLong { gap, .. } if gap == 2 * HOUR), "{e:?}");
    assert!(b().cron("0 3,5 * * *").strategy(RotationStrategy::DualWrite).grace_period(HOUR).build().is_ok());
}

#[test]
fn manual_schedule_accepts_any_grace_period() {
    assert!(b().manual().strategy(RotationStrategy::DualWrite).grace_period(365 * DAY).build().is_ok());
}

#[test]
fn unknown_strategy() {
    let e = "sideways".parse::<RotationStrategy>().unwrap_err();
    assert_eq!(e, PolicyError::UnknownStrategy { input: "sideways".into() });
    assert_eq!(e.field(), "strategy");
}

// ---- enums ---------------------------------------------------------------------

#[test]
fn strategy_names_round_trip() {
    for s in RotationStrategy::ALL {
        assert_eq!(s.to_string().parse::<RotationStrategy>().unwrap(), s);
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<RotationStrategy>(&format!("\"{s}\"")).unwrap(), s);
    }
    assert_eq!("Blue-Green".parse::<RotationStrategy>().unwrap(), RotationStrategy::BlueGreen);
}

#[test]
fn status_names() {
    use RotationStatus::*;
    let names = [
        (Pending, "pending"),
        (InProgress, "in_progress"),
        (Verifying, "verifying"),
        (Success, "success"),
        (Failed, "failed"),
        (RolledBack, "rolled_back"),
    ];
    for (s, name) in names {
        assert_eq!(s.to_string(), name);
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{name}\""));
        assert_eq!(serde_json::from_str::<RotationStatus>(&format!("\"{name}\"")).unwrap(), s);
    }
}

// ---- schedules -----------------------------------------------------------------

#[test]
fn schedule_text_forms() {
    let cases = [
        ("manual", Schedule::Manual),
        ("MANUAL", Schedule::Manual),
        ("every 90 days", Schedule::Interval(90 * DAY)),
        ("every 12h", Schedule::Interval(12 * HOUR)),
        ("90d", Schedule::Interval(90 * DAY)),
        ("  every 1h 30m ", Schedule::Interval(90 * MIN)),
    ];
    for (text, want) in cases {
        assert_eq!(text.parse::<Schedule>().unwrap(), want, "{text:?}");
    }
    let c: Schedule = "cron: 0 3 * * *".parse().unwrap();
    assert!(matches!(&c, Schedule::Cron(cs) if cs.as_str() == "0 3 * * *"));
    let c6: Schedule = "cron:30 0 3 * * *".parse().unwrap();
    assert_eq!(c6.next_after(t(2025, 1, 1, 0, 0, 0)), Some(t(2025, 1, 1, 3, 0, 30)));
}

#[test]
fn schedule_display_round_trips() {
    for text in [
        "manual",
        "every 90 days",
        "every 1 day",
        "every 12 hours",
        "every 90 minutes",
        "every 61 seconds",
        "every 1s 500ms",
        "cron: 0 3 * * *",
        "cron: 0 0 3 * * MON-FRI",
    ] {
        let s: Schedule = text.parse().unwrap();
        assert_eq!(s.to_string(), text);
        assert_eq!(s.to_string().parse::<Schedule>().unwrap(), s);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
    }
    assert_eq!("90d".parse::<Schedule>().unwrap().to_string(), "every 90 days");
    assert_eq!("36h".parse::<Schedule>().unwrap().to_string(), "every 36 hours");
}

#[test]
fn manual_is_never_due() {
    let p = b().manual().build().unwrap();
    assert_eq!(p.schedule().next_after(t(2025, 1, 1, 0, 0, 0)), None);
    assert_eq!(p.next_due(t(2025, 1, 1, 0, 0, 0), 7), None);
    assert!(!p.is_due(DateTime::<Utc>::MIN_UTC, 7, DateTime::<Utc>::MAX_UTC));
}

#[test]
fn interval_next_after() {
    let s = Schedule::Interval(DAY);
    assert_eq!(s.next_after(t(2025, 2, 28, 12, 0, 0)), Some(t(2025, 3, 1, 12, 0, 0)));
    assert_eq!(s.next_after(DateTime::<Utc>::MAX_UTC), None);
}

#[test]
fn cron_next_after_is_strictly_after() {
    let s: Schedule = "cron: 0 3 * * *".parse().unwrap();
    let at = t(2025, 1, 1, 3, 0, 0);
    assert_eq!(s.next_after(at), Some(t(2025, 1, 2, 3, 0, 0)));
    let just_after = at + chrono::TimeDelta::milliseconds(500);
    assert_eq!(s.next_after(just_after), Some(t(2025, 1, 2, 3, 0, 0)));
    let just_before = at - chrono::TimeDelta::milliseconds(500);
    assert_eq!(s.next_after(just_before), Some(at));
}

#[test]
fn cron_min_gap() {
    let s: Schedule = "cron: 0 3 * * *".parse().unwrap();
    assert_eq!(s.min_gap(), Some(DAY));
    assert_eq!(Schedule::Interval(HOUR).min_gap(), Some(HOUR));
    assert_eq!(Schedule::Manual.min_gap(), None);
}

// ---- windows -------------------------------------------------------------------

#[test]
fn window_contains_and_next_open() {
    let w: RotationWindow = "02:00-05:00".parse().unwrap();
    assert!(w.contains(t(2025, 1, 1, 2, 0, 0)));
    assert!(w.contains(t(2025, 1, 1, 4, 59, 59)));
    assert!(!w.contains(t(2025, 1, 1, 5, 0, 0)));
    assert!(!w.contains(t(2025, 1, 1, 1, 59, 59)));
    assert_eq!(w.next_open(t(2025, 1, 1, 3, 0, 0)), t(2025, 1, 1, 3, 0, 0));
    assert_eq!(w.next_open(t(2025, 1, 1, 1, 0, 0)), t(2025, 1, 1, 2, 0, 0));
    assert_eq!(w.next_open(t(2025, 1, 1, 6, 0, 0)), t(2025, 1, 2, 2, 0, 0));
    assert_eq!(w.length(), 3 * HOUR);
    assert_eq!(w.closes_after(t(2025, 1, 1, 3, 0, 0)), Some(t(2025, 1, 1, 5, 0, 0)));
    assert_eq!(w.closes_after(t(2025, 1, 1, 6, 0, 0)), None);
}

#[test]
fn window_wrapping_midnight() {
    let w: RotationWindow = "22:00-02:00".parse().unwrap();
    assert!(w.contains(t(2025, 1, 1, 23, 0, 0)));
    assert!(w.contains(t(2025, 1, 2, 1, 59, 0)));
    assert!(!w.contains(t(2025, 1, 2, 2, 0, 0)));
    assert!(!w.contains(t(2025, 1, 2, 12, 0, 0)));
    assert_eq!(w.next_open(t(2025, 1, 2, 12, 0, 0)), t(2025, 1, 2, 22, 0, 0));
    assert_eq!(w.length(), 4 * HOUR);
    assert_eq!(w.closes_after(t(2025, 1, 1, 23, 0, 0)), Some(t(2025, 1, 2, 2, 0, 0)));
    assert_eq!(w.closes_after(t(2025, 1, 2, 1, 0, 0)), Some(t(2025, 1, 2, 2, 0, 0)));
}

#[test]
fn window_weekdays() {
    // 2025-01-03 is a Friday.
    let w: RotationWindow = "Mon-Fri 22:00-02:00".parse().unwrap();
    assert!(w.contains(t(2025, 1, 3, 23, 0, 0))); // Fri night
    assert!(w.contains(t(2025, 1, 4, 1, 0, 0))); // early Sat, opened Fri
    assert!(!w.contains(t(2025, 1, 4, 23, 0, 0))); // Sat night
    assert!(!w.contains(t(2025, 1, 6, 1, 0, 0))); // early Mon, Sun did not open
    assert_eq!(w.next_open(t(2025, 1, 4, 3, 0, 0)), t(2025, 1, 6, 22, 0, 0));
    let weekend: RotationWindow = "sat,SUNDAY 00:00-24:00".parse().unwrap();
    assert!(weekend.contains(t(2025, 1, 5, 23, 59, 59)));
    assert!(!weekend.contains(t(2025, 1, 6, 0, 0, 0)));
    assert_eq!(weekend.next_open(t(2025, 1, 6, 0, 0, 0)), t(2025, 1, 11, 0, 0, 0));
    let wrap_days: RotationWindow = "Fri-Mon 10:00-11:00".parse().unwrap();
    assert_eq!(wrap_days.weekdays().count(), 4);
}

#[test]
fn window_display_round_trips() {
    for text in ["02:00-05:00", "22:00-02:00", "Mon-Fri 02:00-05:00", "Sat,Sun 00:00-24:00", "Mon,Wed,Fri 01:30-01:45"]
    {
        let w: RotationWindow = text.parse().unwrap();
        assert_eq!(w.to_string(), text);
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(serde_json::from_str::<RotationWindow>(&json).unwrap(), w);
    }
    assert_eq!("mon-sun 22:00-00:00".parse::<RotationWindow>().unwrap().to_string(), "22:00-24:00");
    assert_eq!("Fri-Mon 1:00-2:00".parse::<RotationWindow>().unwrap().to_string(), "Mon,Fri-Sun 01:00-02:00");
}

// ---- backoff -------------------------------------------------------------------

#[test]
fn backoff_is_exponential_capped_and_jittered() {
    let r = RetryPolicy::default();
    let just_under_one = 1.0 - f64::EPSILON;
    let ceil = |n| r.ceiling(n);
    assert_eq!(ceil(1), Duration::from_secs(1));
    assert_eq!(ceil(2), Duration::from_secs(2));
    assert_eq!(ceil(4), Duration::from_secs(8));
    assert_eq!(ceil(9), 256 * Duration::from_secs(1));
    assert_eq!(ceil(10), 5 * MIN);
    assert_eq!(ceil(u32::MAX), 5 * MIN);
    assert_eq!(r.backoff(0, 0.5), r.backoff(1, 0.5));
    assert_eq!(r.backoff(3, 0.0), Duration::ZERO);
    assert_eq!(r.backoff(3, 0.5), Duration::from_secs(2));
    assert!(r.backoff(3, just_under_one) <= Duration::from_secs(4));
    assert!(r.backoff(3, 0.999) < Duration::from_secs(4));
    assert!(r.backoff(u32::MAX, just_under_one) <= 5 * MIN);
    // Out-of-range jitter units are clamped, NaN counts as 0.
    assert_eq!(r.backoff(3, 7.0), Duration::from_secs(4));
    assert_eq!(r.backoff(3, -1.0), Duration::ZERO);
    assert_eq!(r.backoff(3, f64::NAN), Duration::ZERO);
}

#[test]
fn backoff_survives_invalid_fields() {
    let r = RetryPolicy {
        max_retries: 99,
        initial_backoff: Duration::MAX,
        max_backoff: Duration::from_secs(1),
        multiplier: f64::NAN,
    };
    assert!(r.validate().is_err());
    assert_eq!(r.backoff(5, 0.99), Duration::from_secs(1).mul_f64(0.99));
}

// ---- due times -----------------------------------------------------------------

#[test]
fn next_due_without_jitter_or_window() {
    let p = b().interval(30 * DAY).build().unwrap();
    assert_eq!(p.next_due(t(2025, 1, 1, 0, 0, 0), 123), Some(t(2025, 1, 31, 0, 0, 0)));
    assert!(p.is_due(t(2025, 1, 1, 0, 0, 0), 123, t(2025, 1, 31, 0, 0, 0)));
    assert!(!p.is_due(t(2025, 1, 1, 0, 0, 0), 123, t(2025, 1, 30, 23, 59, 59)));
}

#[test]
fn next_due_jitter_is_deterministic_and_bounded() {
    let p = b().interval(DAY).jitter(HOUR).build().unwrap();
    let last = t(2025, 1, 1, 0, 0, 0);
    let base = t(2025, 1, 2, 0, 0, 0);
    let mut distinct = std::collections::BTreeSet::new();
    for i in 0..200u32 {
        let path: SecretPath = format!("apps/svc-{i}/password").parse().unwrap();
        let key = jitter_key(&path);
        let due = p.next_due(last, key).unwrap();
        assert_eq!(p.next_due(last, key), Some(due), "deterministic");
        assert!(due >= base && due < base + chrono::TimeDelta::hours(1), "{due}");
        distinct.insert(due);
    }
    assert!(distinct.len() > 150, "jitter spreads secrets apart: {}", distinct.len());
}

#[test]
fn jitter_key_is_stable() {
    // FNV-1a 64 of the normalised path: fixed forever.
    let p: SecretPath = "a".parse().unwrap();
    assert_eq!(jitter_key(&p), 0xaf63_dc4c_8601_ec8c);
    let q: SecretPath = "/secrets/api_key".parse().unwrap();
    let r: SecretPath = "secrets/api_key".parse().unwrap();
    assert_eq!(jitter_key(&q), jitter_key(&r));
}

#[test]
fn next_due_moves_into_the_window() {
    let p = b().interval(DAY).window("02:00-05:00".parse().unwrap()).build().unwrap();
    assert_eq!(p.next_due(t(2025, 1, 1, 12, 0, 0), 0), Some(t(2025, 1, 3, 2, 0, 0)));
    assert_eq!(p.next_due(t(2025, 1, 1, 3, 0, 0), 0), Some(t(2025, 1, 2, 3, 0, 0)));
}

#[test]
fn next_due_at_the_end_of_time() {
    let p = b().interval(DAY).jitter(HOUR).window("Mon 02:00-03:00".parse().unwrap()).build().unwrap();
    assert_eq!(p.next_due(DateTime::<Utc>::MAX_UTC, u64::MAX), None);
    let c = b().cron("0 3 * * *").build().unwrap();
    assert_eq!(c.next_due(DateTime::<Utc>::MAX_UTC, 1), None);
    let _ = c.next_due(DateTime::<Utc>::MIN_UTC, 1); // any answer, no panic
}

// ---- configuration -------------------------------------------------------------

#[test]
fn from_toml_with_every_field() {
    let p: RotationPolicy = toml::from_str(
        r#"
        name = "orders-db"
        schedule = "cron: 0 3 * * *"
        strategy = "blue_green"
        require_verification = true
        verification_tests = ["connect", "select_1"]
        auto_rollback = false
        max_retries = 5
        initial_backoff = "2s"
        max_backoff = "10m"
        backoff_multiplier = 3.0
        window = "Mon-Fri 01:00-06:00"
        jitter = "15m"
        grace_period = "6h"
        verification_timeout = "45s"
        quarantine_after = 2
        "#,
    )
    .unwrap();
    let want = RotationPolicy::builder("orders-db")
        .cron("0 3 * * *")
        .strategy(RotationStrategy::BlueGreen)
        .require_verification(true)
        .verification_tests(["connect", "select_1"])
        .auto_rollback(false)
        .max_retries(5)
        .backoff(Duration::from_secs(2), 10 * MIN)
        .backoff_multiplier(3.0)
        .window("Mon-Fri 01:00-06:00".parse().unwrap())
        .jitter(15 * MIN)
        .grace_period(6 * HOUR)
        .verification_timeout(Duration::from_secs(45))
        .quarantine_after(2)
        .build()
        .unwrap();
    assert_eq!(p, want);
}

#[test]
fn from_json_minimal_uses_defaults() {
    let p: RotationPolicy = serde_json::from_str(r#"{"name":"x"}"#).unwrap();
    assert_eq!(p, RotationPolicy::builder("x").build().unwrap());
}

#[test]
fn serde_round_trips() {
    let p = b()
        .cron("*/30 * * * *")
        .strategy(RotationStrategy::DualWrite)
        .grace_period(10 * MIN)
        .jitter(Duration::from_millis(1500))
        .window("Sat 00:00-06:00".parse().unwrap())
        .verification_tests(["a", "b"])
        .build()
        .unwrap();
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<RotationPolicy>(&json).unwrap(), p);
    let toml_text = toml::to_string(&p).unwrap();
    assert_eq!(toml::from_str::<RotationPolicy>(&toml_text).unwrap(), p);
    assert!(json.contains(r#""jitter":"1s 500ms""#), "{json}");
}

#[test]
fn config_rejects_unknown_fields() {
    let e = toml::from_str::<RotationPolicy>("name = \"x\"\ninterval_days = 0\n").unwrap_err();
    assert!(e.to_string().contains("interval_days"), "{e}");
    assert!(serde_json::from_str::<RotationPolicy>(r#"{"name":"x","stratgy":"staged"}"#).is_err());
}

#[test]
fn config_validation_is_the_builders() {
    let cases: [(&str, &str); 8] = [
        (r#"{"name":""}"#, "name"),
        (r#"{"name":"x","strategy":"sideways"}"#, "strategy"),
        (r#"{"name":"x","schedule":"cron: 99 * * * *"}"#, "schedule"),
        (r#"{"name":"x","schedule":"every 0d"}"#, "schedule"),
        (r#"{"name":"x","jitter":"soon"}"#, "jitter"),
        (r#"{"name":"x","max_retries":11}"#, "max_retries"),
        (r#"{"name":"x","window":"02:00-02:00"}"#, "window"),
        (r#"{"name":"x","strategy":"dual_write"}"#, "grace_period"),
    ];
    for (json, field) in cases {
        let cfg: RotationPolicyConfig = serde_json::from_str(json).unwrap();
        let e = RotationPolicy::try_from(cfg).unwrap_err();
        assert_eq!(e.field(), field, "{json}: {e}");
        // Through serde the same rule fails, with the field named in the text.
        let serde_err = serde_json::from_str::<RotationPolicy>(json).unwrap_err();
        assert!(serde_err.to_string().starts_with(&format!("{field}:")), "{serde_err}");
    }
}

#[test]
fn invalid_duration_in_config_names_its_field() {
    for field in ["initial_backoff", "max_backoff", "jitter", "grace_period", "verification_timeout"] {
        let json = format!(r#"{{"name":"x","{field}":"ten"}}"#);
        let cfg: RotationPolicyConfig = serde_json::from_str(&json).unwrap();
        let e = RotationPolicy::try_from(cfg).unwrap_err();
        assert!(matches!(e, PolicyError::InvalidDuration { .. }), "{e:?}");
        assert_eq!(e.field(), field);
    }
}

#[test]
fn window_constructors() {
    use chrono::{NaiveTime, Weekday};
    let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
    let w = RotationWindow::daily(hm(22, 0), hm(2, 0)).unwrap();
    assert_eq!(w, "22:00-02:00".parse().unwrap());
    let w = RotationWindow::daily(hm(22, 0), hm(0, 0)).unwrap();
    assert_eq!(w.to_string(), "22:00-24:00");
    assert_eq!(RotationWindow::daily(hm(3, 0), hm(3, 0)).unwrap_err(), PolicyError::EmptyWindow);
    let weekdays = w.on_days([Weekday::Mon, Weekday::Tue, Weekday::Wed]).unwrap();
    assert_eq!(weekdays.to_string(), "Mon-Wed 22:00-24:00");
    assert_eq!(weekdays.weekdays().collect::<Vec<_>>(), [Weekday::Mon, Weekday::Tue, Weekday::Wed]);
    let e = w.on_days([]).unwrap_err();
    assert!(matches!(e, PolicyError::InvalidWindow { .. }));
    assert_eq!(e.field(), "window");
}

#[test]
fn jitter_offset_of_the_largest_jitter() {
    let p = b().manual().jitter(Duration::MAX).build().unwrap();
    for key in [0, 1, u64::MAX, 0xdead_beef] {
        assert!(p.jitter_offset(key) < Duration::MAX);
    }
}

#[test]
fn cron_nicknames_and_names() {
    let daily: Schedule = "cron: @daily".parse().unwrap();
    assert_eq!(daily.next_after(t(2025, 1, 1, 12, 0, 0)), Some(t(2025, 1, 2, 0, 0, 0)));
    let weekly: Schedule = "cron: 0 4 * * SUN".parse().unwrap();
    assert_eq!(weekly.next_after(t(2025, 1, 1, 0, 0, 0)), Some(t(2025, 1, 5, 4, 0, 0)));
    assert_eq!(weekly.min_gap(), Some(7 * DAY));
    let monthly: Schedule = "cron: 0 0 1 JAN,JUL *".parse().unwrap();
    assert_eq!(monthly.next_after(t(2025, 1, 1, 0, 0, 0)), Some(t(2025, 7, 1, 0, 0, 0)));
}

#[test]
fn cron_day_of_month_or_day_of_week() {
    // As in Vixie cron: when both are restricted, either one matching fires.
    let s: Schedule = "cron: 0 0 13 * FRI".parse().unwrap();
    // 2025-01-03 is a Friday, before the 13th.
    assert_eq!(s.next_after(t(2025, 1, 1, 0, 0, 0)), Some(t(2025, 1, 3, 0, 0, 0)));
}
