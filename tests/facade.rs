//! What the facade gives a user beyond rotating (issue 13, point 4), through
//! `rekey` alone: schedules that report the store's times exactly and count
//! their rotations and failures, statistics that tell paused schedules
//! apart, and one call to read a current value.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rekey::memory::MemoryStore;
use rekey::{
    ExposeSecret, ManualClock, RotationManager, RotationOutcome, RotationPolicy, SecretData, SecretPath,
    SecretStoreExt, StoreError, Utc, Verifier, VerifyContext, VerifyError,
};

const DAY: Duration = Duration::from_secs(86_400);

/// Fails while `fail` is set, saying why.
#[derive(Debug, Default)]
struct Switch {
    fail: std::sync::atomic::AtomicBool,
}

#[rekey::async_trait]
impl Verifier for Switch {
    fn name(&self) -> &str {
        "switch"
    }
    async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            Err(VerifyError::Failed("the login was refused".into()))
        } else {
            Ok(())
        }
    }
}

struct Env {
    store: Arc<MemoryStore>,
    clock: ManualClock,
    manager: RotationManager,
    switch: Arc<Switch>,
}

/// A store and manager on a clock with nanoseconds in it.
fn env() -> Env {
    let clock = ManualClock::new("2030-05-06T07:08:09.123456789Z".parse::<rekey::DateTime<Utc>>().unwrap());
    clock.set_auto_advance(true);
    let store = Arc::new(MemoryStore::new().with_clock_source(Arc::new(clock.clone())));
    let switch = Arc::new(Switch::default());
    let manager = RotationManager::builder(store.clone())
        .clock(Arc::new(clock.clone()))
        .verifier(switch.clone())
        .build()
        .unwrap();
    Env { store, clock, manager, switch }
}

async fn secret(e: &Env, name: &str) -> SecretPath {
    let p: SecretPath = format!("facade/{name}").parse().unwrap();
    e.store.create(&p, SecretData::text("first-value")).await.unwrap();
    p
}

fn monthly() -> RotationPolicy {
    RotationPolicy::builder("monthly").interval(30 * DAY).verification_tests(["switch"]).build().unwrap()
}

/// Schedules report the store's version time to the nanosecond (the table
/// kept microseconds, so `last_rotation` differed from the store's time and
/// the due time was early by the lost nanoseconds).
#[tokio::test]
async fn schedule_times_are_the_stores_to_the_nanosecond() {
    let e = env();
    let p = secret(&e, "precise").await;
    let created = e.store.current(&p).await.unwrap().meta.created_at;
    assert_eq!(created.timestamp_subsec_nanos() % 1000, 789, "the store keeps nanoseconds");
    let info = e.manager.schedule_rotation(&p, monthly()).await.unwrap();
    assert_eq!(info.last_rotation, created);
    let due = created + rekey::chrono::Duration::days(30);
    assert_eq!(info.next_rotation, Some(due));
    assert_eq!(e.manager.next_due(), Some(due));
    assert_eq!(e.manager.list_schedules()[0].last_rotation, created);
}

/// `rotation_count` counts the rotations the schedule performed: not
/// manual ones, not failed ones.
#[tokio::test]
async fn rotation_count_counts_the_schedules_rotations() {
    let e = env();
    let p = secret(&e, "counted").await;
    e.manager.schedule_rotation(&p, monthly()).await.unwrap();
    assert_eq!(e.manager.get_schedule(&p).unwrap().rotation_count, 0);

    e.clock.advance(30 * DAY);
    assert!(e.manager.process_scheduled_rotations().await[0].success());
    assert_eq!(e.manager.get_schedule(&p).unwrap().rotation_count, 1);

    assert!(e.manager.rotate_secret(&p, &monthly(), None).await.success(), "a manual rotation");
    assert_eq!(e.manager.get_schedule(&p).unwrap().rotation_count, 1, "manual rotations are not the schedule's");

    e.switch.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    e.clock.advance(30 * DAY);
    let failed = e.manager.process_scheduled_rotations().await;
    assert_eq!(failed[0].outcome, RotationOutcome::RolledBack, "{}", failed[0]);
    assert_eq!(e.manager.get_schedule(&p).unwrap().rotation_count, 1, "a failed rotation does not count");

    e.switch.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    e.clock.advance(30 * DAY);
    assert!(e.manager.process_scheduled_rotations().await[0].success());
    assert_eq!(e.manager.get_schedule(&p).unwrap().rotation_count, 2);

    // Scheduling the secret again makes a new schedule.
    e.manager.schedule_rotation(&p, monthly()).await.unwrap();
    assert_eq!(e.manager.get_schedule(&p).unwrap().rotation_count, 0);
}

/// `last_failure` says when and why the last rotation failed, scheduled or
/// manual, and stays after a success (its time tells it is older).
#[tokio::test]
async fn last_failure_says_when_and_why() {
    let e = env();
    let p = secret(&e, "failing").await;
    e.manager.schedule_rotation(&p, monthly()).await.unwrap();
    assert_eq!(e.manager.get_schedule(&p).unwrap().last_failure, None);

    e.switch.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    e.clock.advance(30 * DAY);
    let r = e.manager.process_scheduled_rotations().await.remove(0);
    let failure = e.manager.get_schedule(&p).unwrap().last_failure.expect("a failure recorded");
    assert_eq!(failure.at, r.completed_at);
    assert!(failure.reason.contains("the login was refused"), "{}", failure.reason);
    assert_eq!(failure.reason, r.error.as_ref().unwrap().to_string());

    let manual = e.manager.rotate_secret(&p, &monthly(), None).await;
    assert!(!manual.success());
    assert_eq!(e.manager.get_schedule(&p).unwrap().last_failure.unwrap().at, manual.completed_at, "manual too");

    e.switch.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let ok = e.manager.rotate_secret(&p, &monthly(), None).await;
    assert!(ok.success());
    let info = e.manager.get_schedule(&p).unwrap();
    assert_eq!(info.last_failure.map(|f| f.at), Some(manual.completed_at), "kept after a success");
    assert_eq!(info.consecutive_failures, 0);
}

/// `active_schedules` counts the schedules that are not paused;
/// `paused_schedules` the others.
#[tokio::test]
async fn statistics_count_paused_schedules_apart() {
    let e = env();
    let a = secret(&e, "a").await;
    let b = secret(&e, "b").await;
    let c = secret(&e, "c").await;
    for p in [&a, &b, &c] {
        e.manager.schedule_rotation(p, monthly()).await.unwrap();
    }
    let counts = |m: &RotationManager| {
        let s = m.statistics();
        (s.active_schedules, s.paused_schedules)
    };
    assert_eq!(counts(&e.manager), (3, 0));
    e.manager.pause_schedule(&a).unwrap();
    e.manager.pause_schedule(&a).unwrap(); // pausing twice is one pause
    e.manager.pause_schedule(&b).unwrap();
    assert_eq!(counts(&e.manager), (1, 2));
    e.manager.resume(&b).await.unwrap();
    assert_eq!(counts(&e.manager), (2, 1));
    e.manager.schedule_rotation(&a, monthly()).await.unwrap(); // a new schedule is not paused
    assert_eq!(counts(&e.manager), (3, 0));
    e.manager.pause_schedule(&c).unwrap();
    assert!(e.manager.unschedule_rotation(&c));
    assert_eq!(counts(&e.manager), (2, 0));
}

/// Reading what consumers use is one call; a secret of several fields is
/// a typed error that names its fields and shows no value.
#[tokio::test]
async fn current_text_is_one_call() {
    let e = env();
    let p = secret(&e, "text").await;
    assert_eq!(e.store.current_text(&p).await.unwrap().expose_secret(), "first-value");
    assert!(e.manager.rotate_secret(&p, &monthly(), None).await.success());
    let now = e.store.current_text(&p).await.unwrap();
    assert_ne!(now.expose_secret(), "first-value");
    assert_eq!(now.expose_secret(), e.store.current(&p).await.unwrap().data.as_text().unwrap().expose_secret());

    let f: SecretPath = "facade/fields".parse().unwrap();
    e.store.create(&f, SecretData::fields([("username", "app"), ("password", "hunter2-secret")])).await.unwrap();
    let err = e.store.current_text(&f).await.expect_err("several fields");
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("password") && shown.contains("username"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");

    let missing = e.store.current_text(&"facade/missing".parse().unwrap()).await.expect_err("no such secret");
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing:?}");
}

/// A generator and an audit sink of the user's own, with `rekey` alone: the
/// generated value is what becomes current, and no event shows it.
#[tokio::test]
async fn a_users_generator_and_audit_sink() {
    #[derive(Debug)]
    struct Fixed;
    impl rekey::GenerateSecret for Fixed {
        fn generate(&self) -> Result<rekey::SecretString, rekey::GeneratorError> {
            Ok(rekey::SecretString::from("made-by-the-users-generator-42".to_owned()))
        }
    }

    #[derive(Debug, Default)]
    struct Lines(std::sync::Mutex<Vec<String>>);
    impl rekey::AuditSink for Lines {
        fn record(&self, event: &rekey::AuditEvent) {
            let at: rekey::DateTime<Utc> = event.at;
            self.0.lock().unwrap().push(format!("{} {} {event:?}", at.to_rfc3339(), event.kind));
        }
    }

    let e = env();
    let lines = Arc::new(Lines::default());
    let manager = RotationManager::builder(e.store.clone())
        .clock(Arc::new(e.clock.clone()))
        .generator(Arc::new(Fixed))
        .audit_sink(lines.clone())
        .build()
        .unwrap();
    let p = secret(&e, "generated").await;
    let r = manager.rotate_secret(&p, &RotationPolicy::builder("p").build().unwrap(), None).await;
    assert!(r.success(), "{r}");
    assert_eq!(e.store.current_text(&p).await.unwrap().expose_secret(), "made-by-the-users-generator-42");
    let lines = lines.0.lock().unwrap();
    assert!(lines.iter().any(|l| l.contains("succeeded")), "{lines:?}");
    assert!(lines.iter().all(|l| !l.contains("made-by-the-users") && !l.contains("first-value")), "{lines:?}");
}
