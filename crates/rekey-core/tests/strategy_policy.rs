//! Dual-write and blue-green policies: a schedule shorter than twice the
//! grace period is refused at validation, with an error that says why —
//! whether the policy is built in code or loaded from configuration, before
//! the engine can schedule it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rekey_core::{PolicyError, RotationPolicy, RotationStrategy};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn schedule_shorter_than_twice_the_grace_is_refused() {
    for strategy in [RotationStrategy::DualWrite, RotationStrategy::BlueGreen] {
        let err = RotationPolicy::builder("too-close")
            .strategy(strategy)
            .interval(HOUR)
            .grace_period(HOUR / 2 + Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert!(matches!(err, PolicyError::GracePeriodTooLong { .. }), "{err:?}");
        assert_eq!(err.field(), "grace_period");
        let msg = err.to_string();
        assert!(msg.contains("2 x grace_period") && msg.contains("outage"), "{msg}");

        // Exactly twice is fine; no grace at all is refused too.
        RotationPolicy::builder("ok").strategy(strategy).interval(HOUR).grace_period(HOUR / 2).build().unwrap();
        let err = RotationPolicy::builder("none").strategy(strategy).interval(HOUR).build().unwrap_err();
        assert!(matches!(err, PolicyError::GracePeriodRequired { .. }), "{err:?}");
    }
}

#[test]
fn cron_schedules_count_their_shortest_gap() {
    // Every 10 minutes, grace 6 minutes: two rotations 10 minutes apart
    // would retire a credential consumers had only 4 minutes to leave.
    let err = RotationPolicy::builder("cron")
        .strategy(RotationStrategy::BlueGreen)
        .cron("*/10 * * * *")
        .grace_period(Duration::from_secs(360))
        .build()
        .unwrap_err();
    assert!(matches!(err, PolicyError::GracePeriodTooLong { .. }), "{err:?}");
}

#[test]
fn configuration_files_are_refused_the_same_way() {
    let cfg: rekey_core::RotationPolicyConfig = toml::from_str(
        r#"
        name = "db"
        schedule = "1h"
        strategy = "blue_green"
        grace_period = "45m"
        "#,
    )
    .unwrap();
    let err = RotationPolicy::try_from(cfg).unwrap_err();
    assert!(matches!(err, PolicyError::GracePeriodTooLong { .. }), "{err:?}");
}
