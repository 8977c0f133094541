//! The values the engine reports can be built, cloned, compared and
//! serialized in a user's own tests, through the facade alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rekey::{
    AuditEvent, AuditEventKind, DateTime, LastFailure, RotationError, RotationOutcome, RotationPolicy, RotationResult,
    RotationStatistics, RotationStatus, RotationStrategy, ScheduleInfo, SecretPath, Utc, VersionId,
};

fn at() -> DateTime<Utc> {
    "2030-01-01T00:00:00.000000001Z".parse().unwrap()
}

fn path() -> SecretPath {
    "apps/api-key".parse().unwrap()
}

#[test]
fn a_rotation_result_is_built_compared_and_serialized() {
    let mut r = RotationResult::new(path(), RotationStrategy::Staged, RotationOutcome::RolledBack, at());
    assert_eq!(r.status, RotationStatus::RolledBack, "the status goes with the outcome");
    r.old_version = Some(VersionId::new("1"));
    r.new_version = Some(VersionId::new("2"));
    r.rollback_performed = true;
    r.error = Some(RotationError::NoPolicy { path: path() });
    let copy = r.clone();
    assert_eq!(copy, r);

    let mut other = r.clone();
    other.new_version = Some(VersionId::new("3"));
    assert_ne!(other, r);
    let mut other = r.clone();
    other.error = None;
    assert_ne!(other, r, "errors count");
    let mut other = r.clone();
    other.error = Some(RotationError::NoPolicy { path: "apps/other".parse().unwrap() });
    assert_ne!(other, r, "errors compare by message");
    let mut other = r.clone();
    other.rotation_id = rekey::RotationId::new();
    assert_ne!(other, r, "each rotation has its own id");

    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["outcome"], "rolled_back");
    assert_eq!(json["new_version"], "2");
    assert_eq!(json["started_at"], "2030-01-01T00:00:00.000000001Z");
    assert_eq!(json["error"]["kind"], r.error.as_ref().unwrap().kind());
}

#[test]
fn a_schedule_info_is_built_compared_and_serialized() {
    let policy =
        Arc::new(RotationPolicy::builder("monthly").interval(Duration::from_secs(30 * 86_400)).build().unwrap());
    let mut s = ScheduleInfo::new(path(), policy.clone(), at());
    assert_eq!(s.policy_name, "monthly");
    assert_eq!(s.next_rotation, Some(at() + rekey::chrono::Duration::days(30)));
    assert!(s.enabled && !s.paused && s.rotation_count == 0 && s.last_failure.is_none());
    s.rotation_count = 3;
    s.last_failure = Some(LastFailure { at: at(), reason: "verification failed: refused".into() });
    assert_eq!(s.clone(), s);
    let mut other = s.clone();
    other.rotation_count = 4;
    assert_ne!(other, s);

    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["rotation_count"], 3);
    assert_eq!(json["last_failure"]["reason"], "verification failed: refused");
    assert_eq!(json["next_rotation"], "2030-01-31T00:00:00.000000001Z");
    let manual = ScheduleInfo::new(path(), RotationPolicy::builder("m").manual().build().unwrap(), at());
    assert_eq!(manual.next_rotation, None);
}

#[test]
fn statistics_are_built_compared_and_serialized() {
    let zero = RotationStatistics::default();
    assert_eq!((zero.total_rotations, zero.success_rate, zero.p50_duration), (0, 0.0, None));
    let mut s = zero.clone();
    s.active_schedules = 2;
    s.paused_schedules = 1;
    assert_ne!(s, zero);
    assert_eq!(s.clone(), s);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!((json["active_schedules"].as_u64(), json["paused_schedules"].as_u64()), (Some(2), Some(1)));
}

#[test]
fn an_audit_event_is_built_compared_and_serialized() {
    let mut e = AuditEvent::new(at(), AuditEventKind::RolledBack, path());
    e.detail = Some("manual rollback".into());
    assert_eq!(e.clone(), e);
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["kind"], "rolled_back");
    assert_eq!(json["detail"], "manual rollback");
    assert!(json.get("rotation_id").is_none(), "unset fields are left out");
}
