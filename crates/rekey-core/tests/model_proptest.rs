//! Property tests over the policy and generator models: no input panics,
//! every accepted value keeps its invariants.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use rekey_core::{
    ExposeSecret, GenerateSecret, GeneratorConfig, GeneratorKind, PasswordRules, RetryPolicy, RotationPolicy,
    RotationPolicyConfig, RotationStrategy, RotationWindow, Schedule, SecretGenerator,
};

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        (0u64..100_000_000).prop_map(Duration::from_secs),
        (0u64..10_000_000_000).prop_map(Duration::from_millis),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

/// Between 1 ms and 1 h: valid for most duration fields.
fn small_duration() -> impl Strategy<Value = Duration> {
    (1u64..3_600_000).prop_map(Duration::from_millis)
}

fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
    let (min, max) = (DateTime::<Utc>::MIN_UTC.timestamp(), DateTime::<Utc>::MAX_UTC.timestamp());
    prop_oneof![
        (min..=max, 0u32..1_000_000_000).prop_map(|(s, n)| Utc.timestamp_opt(s, n).single().unwrap()),
        // Mostly realistic times, where schedules actually fire.
        (946_684_800i64..4_102_444_800, 0u32..1_000_000_000)
            .prop_map(|(s, n)| Utc.timestamp_opt(s, n).single().unwrap()),
        Just(DateTime::<Utc>::MAX_UTC),
        Just(DateTime::<Utc>::MIN_UTC),
    ]
}

fn cron_text() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("*".to_owned()),
        (0u32..70).prop_map(|n| n.to_string()),
        (0u32..70, 0u32..70).prop_map(|(a, b)| format!("{a}-{b}")),
        (0u32..70).prop_map(|n| format!("*/{n}")),
        (0u32..40, 0u32..40).prop_map(|(a, b)| format!("{a},{b}")),
        "[A-Z]{3}",
        "[0-9LW#?*/,-]{1,4}",
    ];
    prop::collection::vec(field, 0..8).prop_map(|v| v.join(" "))
}

fn schedule_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "(every )?[0-9]{1,25} ?(s|m|h|d|days|weeks|years|ms|ns)",
        cron_text().prop_map(|c| format!("cron: {c}")),
        Just("manual".to_owned()),
    ]
}

fn valid_schedule_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "every [1-9][0-9]{0,3} (minutes|hours|days)",
        "[1-9][0-9]{0,2}(h|d)",
        "cron: [0-5]?[0-9] ([0-9]|1[0-9]|2[0-3]|\\*/[1-6]) \\* \\* (\\*|MON-FRI|SUN)",
        Just("manual".to_owned()),
    ]
}

fn valid_window_text() -> impl Strategy<Value = String> {
    "(Mon-Fri |Sat,Sun |Fri-Mon |)([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]"
}

fn window_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,30}",
        "((Mon|Tue|Wed|Thu|Fri|Sat|Sun|xyz)([-,](Mon|Tue|Fri|Sun))? )?[0-9]{1,3}:[0-9]{1,3}-[0-9]{1,3}:[0-9]{1,3}",
    ]
}

#[derive(Debug, Clone)]
struct Inputs {
    name: String,
    schedule: Option<String>,
    interval: Option<Duration>,
    strategy: RotationStrategy,
    require_verification: bool,
    tests: Vec<String>,
    auto_rollback: bool,
    max_retries: u32,
    backoff: (Duration, Duration),
    multiplier: f64,
    window: Option<String>,
    jitter: Duration,
    grace: Option<Duration>,
    timeout: Duration,
    quarantine_after: u32,
}

fn inputs() -> impl Strategy<Value = Inputs> {
    (
        (
            prop_oneof![12 => "[a-z][a-z0-9_-]{0,30}", 1 => "\\PC{0,10}|.{0,140}"],
            prop::option::of(prop_oneof![12 => valid_schedule_text(), 1 => schedule_text()]),
            prop::option::of(prop_oneof![1 => small_duration(), 1 => any_duration()]),
        ),
        (
            prop::sample::select(RotationStrategy::ALL.to_vec()),
            any::<bool>(),
            prop_oneof![
                12 => prop::collection::btree_set("[a-z]{3,8}", 1..4).prop_map(|s| s.into_iter().collect::<Vec<_>>()),
                1 => prop::collection::vec("[a-c ]{0,2}", 0..4),
            ],
        ),
        (
            any::<bool>(),
            prop_oneof![12 => 0u32..=10, 1 => any::<u32>()],
            prop_oneof![12 => (small_duration(), 301u64..100_000).prop_map(|(a, b)| (a, Duration::from_secs(b))), 1 => (any_duration(), any_duration())],
            prop_oneof![12 => 1.0f64..4.0, 1 => any::<f64>()],
        ),
        (
            prop::option::of(prop_oneof![12 => valid_window_text(), 1 => window_text()]),
            prop_oneof![6 => Just(Duration::ZERO), 6 => small_duration(), 1 => any_duration()],
            prop_oneof![1 => Just(None), 3 => small_duration().prop_map(Some), 1 => any_duration().prop_map(Some)],
        ),
        (prop_oneof![12 => small_duration(), 1 => any_duration()], prop_oneof![3 => 1u32..5, 1 => any::<u32>()]),
    )
        .prop_map(|(a, b, c, d, e)| Inputs {
            name: a.0,
            schedule: a.1,
            interval: a.2,
            strategy: b.0,
            require_verification: b.1,
            tests: b.2,
            auto_rollback: c.0,
            max_retries: c.1,
            backoff: c.2,
            multiplier: c.3,
            window: d.0,
            jitter: d.1,
            grace: d.2,
            timeout: e.0,
            quarantine_after: e.1,
        })
}

fn build(i: &Inputs) -> Option<RotationPolicy> {
    let mut b = RotationPolicy::builder(i.name.clone())
        .strategy(i.strategy)
        .require_verification(i.require_verification)
        .verification_tests(i.tests.clone())
        .auto_rollback(i.auto_rollback)
        .max_retries(i.max_retries)
        .backoff(i.backoff.0, i.backoff.1)
        .backoff_multiplier(i.multiplier)
        .jitter(i.jitter)
        .verification_timeout(i.timeout)
        .quarantine_after(i.quarantine_after);
    if let Some(s) = &i.schedule {
        match s.parse::<Schedule>() {
            Ok(s) => b = b.schedule(s),
            Err(e) => {
                assert_eq!(e.field(), "schedule");
                return None;
            }
        }
    }
    if let Some(d) = i.interval {
        b = b.interval(d);
    }
    if let Some(w) = &i.window {
        match w.parse::<RotationWindow>() {
            Ok(w) => b = b.window(w),
            Err(e) => {
                assert_eq!(e.field(), "window");
                return None;
            }
        }
    }
    if let Some(g) = i.grace {
        b = b.grace_period(g);
    }
    match b.build() {
        Ok(p) => Some(p),
        Err(e) => {
            // Typed, with a field and a message that names it.
            assert!(e.to_string().starts_with(e.field()), "{e}");
            None
        }
    }
}

proptest! {
    // 256 cases each (proptest's default); PROPTEST_CASES=N runs more.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn policy_builder_never_panics(i in inputs(), times in prop::collection::vec(any_time(), 1..4), key in any::<u64>()) {
        if let Some(p) = build(&i) {
            prop_assert!(p.max_retries() <= 10);
            prop_assert!(p.quarantine_after() >= 1);
            prop_assert!(!p.verification_timeout().is_zero());
            prop_assert!(p.retry().validate().is_ok());
            prop_assert_eq!(p.require_verification(), !p.verification_tests().is_empty());
            prop_assert!(!p.strategy().needs_grace_period() || p.grace_period().is_some());
            for t in times {
                if let Some(due) = p.next_due(t, key) {
                    prop_assert!(due > t, "due {due} not after {t}");
                    if let Some(w) = p.window() {
                        prop_assert!(w.contains(due));
                    }
                }
            }
            // Serde round trips keep the policy (TOML exactly; serde_json's
            // default float parsing may move the multiplier by an ulp).
            let text = toml::to_string(&p).unwrap();
            let back: RotationPolicy = toml::from_str(&text).unwrap();
            prop_assert_eq!(&back, &p);
            let json = serde_json::to_string(&p).unwrap();
            let back: RotationPolicy = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back.schedule(), p.schedule());
            prop_assert_eq!(back.window(), p.window());
            prop_assert!((back.retry().multiplier - p.retry().multiplier).abs() <= 1e-12 * p.retry().multiplier);
        }
    }

    #[test]
    fn policy_config_never_panics(
        name in ".{0,20}",
        schedule in prop::option::of(schedule_text()),
        strategy in prop::option::of("[a-z_]{0,12}|dual_write|blue_green"),
        durations in prop::collection::vec(prop::option::of("[0-9]{0,6} ?[a-z]{0,5}"), 5),
    ) {
        let cfg = RotationPolicyConfig {
            name,
            schedule,
            strategy,
            initial_backoff: durations[0].clone(),
            max_backoff: durations[1].clone(),
            jitter: durations[2].clone(),
            grace_period: durations[3].clone(),
            verification_timeout: durations[4].clone(),
            ..RotationPolicyConfig::default()
        };
        let _ = RotationPolicy::try_from(cfg);
    }

    #[test]
    fn schedule_parsing_never_panics(s in schedule_text(), t in any_time()) {
        if let Ok(sched) = s.parse::<Schedule>() {
            prop_assert_eq!(sched.to_string().parse::<Schedule>().unwrap(), sched.clone());
            if let Some(next) = sched.next_after(t) {
                prop_assert!(next > t);
            }
            let _ = sched.min_gap();
        }
    }

    #[test]
    fn window_parsing_never_panics(s in window_text(), t in any_time()) {
        if let Ok(w) = s.parse::<RotationWindow>() {
            prop_assert_eq!(w.to_string().parse::<RotationWindow>().unwrap(), w);
            let open = w.next_open(t);
            prop_assert!(open >= t);
            if open != t || w.contains(t) {
                // Representable: the result is inside the window.
                prop_assert!(w.contains(open) || open == t);
            }
            if let Some(close) = w.closes_after(t) {
                prop_assert!(close > t);
            }
        }
    }

    #[test]
    fn jitter_offset_is_below_the_jitter(jitter in any_duration(), key in any::<u64>()) {
        let p = RotationPolicy::builder("j").manual().jitter(jitter).build().unwrap();
        let offset = p.jitter_offset(key);
        prop_assert!(offset < jitter || (jitter.is_zero() && offset.is_zero()));
        prop_assert_eq!(p.jitter_offset(key), offset);
    }

    #[test]
    fn strategy_parsing_never_panics(s in ".{0,20}") {
        if let Ok(st) = s.parse::<RotationStrategy>() {
            prop_assert_eq!(st.to_string().parse::<RotationStrategy>().unwrap(), st);
        }
    }

    #[test]
    fn backoff_never_panics_and_is_capped(
        max_retries in any::<u32>(),
        initial in any_duration(),
        max in any_duration(),
        multiplier in prop_oneof![any::<f64>(), 1.0f64..10.0],
        attempt in prop_oneof![any::<u32>(), 0u32..20, Just(u32::MAX)],
        unit in prop_oneof![0.0f64..1.0, any::<f64>()],
    ) {
        let r = RetryPolicy { max_retries, initial_backoff: initial, max_backoff: max, multiplier };
        let d = r.backoff(attempt, unit);
        prop_assert!(d <= max);
        prop_assert!(d <= r.ceiling(attempt.max(1)));
        if r.validate().is_ok() && attempt > 0 {
            // Monotone ceilings for valid policies.
            prop_assert!(r.ceiling(attempt) <= r.ceiling(attempt.saturating_add(1)));
        }
    }

    #[test]
    fn generator_params_never_panic(
        kind in prop::sample::select(vec![
            GeneratorKind::Random, GeneratorKind::Uuid, GeneratorKind::Hex, GeneratorKind::Base64url, GeneratorKind::Password,
        ]),
        length in prop_oneof![0usize..80, any::<usize>()],
        charset in prop::option::of(prop_oneof!["[ -~]{0,12}", ".{0,6}", "[a-f0-9]{2,16}"]),
        mins in prop::collection::vec(prop::option::of(prop_oneof![0usize..6, any::<usize>()]), 4),
        symbols in prop::option::of(prop_oneof!["[!-/]{0,6}", ".{0,4}"]),
    ) {
        let cfg = GeneratorConfig {
            kind,
            length: Some(length),
            charset: charset.clone(),
            min_lower: mins[0],
            min_upper: mins[1],
            min_digits: mins[2],
            min_symbols: mins[3],
            symbols: symbols.clone(),
        };
        if let Ok(g) = SecretGenerator::from_config(&cfg) {
            let v = g.generate().unwrap();
            let v = v.expose_secret();
            prop_assert_eq!(v.chars().count(), g.length());
            match kind {
                GeneratorKind::Random => {
                    let cs = charset.unwrap_or_else(|| {
                        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&()*+,-./:;<=>?@[]^_{|}~".into()
                    });
                    prop_assert!(v.chars().all(|c| cs.contains(c)));
                }
                GeneratorKind::Hex => prop_assert!(v.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())),
                GeneratorKind::Base64url => {
                    prop_assert!(v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
                }
                GeneratorKind::Uuid => prop_assert!(uuid::Uuid::parse_str(v).is_ok()),
                GeneratorKind::Password => {
                    let sy = symbols.unwrap_or_else(|| PasswordRules::default().symbols);
                    prop_assert!(v.chars().all(|c| c.is_ascii_alphanumeric() || sy.contains(c)));
                    let count = |f: &dyn Fn(char) -> bool| v.chars().filter(|c| f(*c)).count();
                    prop_assert!(count(&|c| c.is_ascii_lowercase()) >= mins[0].unwrap_or(1));
                    prop_assert!(count(&|c| c.is_ascii_uppercase()) >= mins[1].unwrap_or(1));
                    prop_assert!(count(&|c| c.is_ascii_digit()) >= mins[2].unwrap_or(1));
                    prop_assert!(count(&|c| sy.contains(c)) >= mins[3].unwrap_or(1));
                }
            }
        }
    }
}
