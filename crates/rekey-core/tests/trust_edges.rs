//! Regression tests for the edge defects of issue 11, one group per point,
//! each through the public API. Each failed on the code before its fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use engine_support::*;
use rekey_core::*;

// ---- point 1: a named verifier always runs and gates promotion ----

#[tokio::test]
async fn p1_named_verifier_runs_without_require_verification() {
    for strategy in [RotationStrategy::Immediate, RotationStrategy::Staged] {
        let e = env();
        let p = path("apps/p1");
        e.seed(&p, "initial").await;
        // Only the tests are named; `require_verification` is left alone.
        let policy = RotationPolicy::builder("named").strategy(strategy).verification_tests(["always_fails"]).build();
        let policy = policy.unwrap();
        assert!(policy.require_verification(), "naming a test requires it");
        let r = e.manager.rotate_secret(&p, &policy, None).await;
        assert!(!r.success(), "{strategy}: an unverified value became current: {r}");
        assert!(matches!(r.error, Some(RotationError::Verification { .. })), "{r}");
        assert_eq!(e.current_text(&p).await, "initial", "{strategy}");
    }
}

#[test]
fn p1_named_verifier_from_config_is_required() {
    let cfg: RotationPolicyConfig = toml::from_str("name = \"db\"\nverification_tests = [\"login\"]\n").unwrap();
    let p = RotationPolicy::try_from(cfg).unwrap();
    assert!(p.require_verification());
    // Named tests with verification explicitly off: refused, naming the field.
    let cfg: RotationPolicyConfig =
        toml::from_str("name = \"db\"\nrequire_verification = false\nverification_tests = [\"login\"]\n").unwrap();
    let e = RotationPolicy::try_from(cfg).unwrap_err();
    assert_eq!(e, PolicyError::VerificationTestsNotRequired { count: 1 });
    assert_eq!(e.field(), "require_verification");
    let e = RotationPolicy::builder("x").require_verification(false).verification_tests(["a"]).build().unwrap_err();
    assert!(matches!(e, PolicyError::VerificationTestsNotRequired { .. }));
    // Nothing named, nothing required.
    assert!(!RotationPolicy::builder("x").build().unwrap().require_verification());
}

// ---- point 7: a supplied value is validated; nothing is written ----

#[tokio::test]
async fn p7_supplied_values_are_checked_and_nothing_is_written() {
    let e = env();
    let p = path("apps/p7");
    e.seed(&p, "initial").await;
    let policy = policy(RotationStrategy::Staged);
    let calls_before = e.store.total_calls();
    // No generator configured: an empty value (or one with a control
    // character) is refused.
    for bad in ["", "line\nbreak"] {
        let r = e.manager.rotate_secret(&p, &policy, Some(bad.to_owned().into())).await;
        assert!(matches!(r.error, Some(RotationError::InvalidValue { .. })), "{r}");
        assert_eq!(r.outcome, RotationOutcome::Failed);
    }
    assert_eq!(e.store.total_calls(), calls_before, "a refused value reached the store");
    // The secret's own generator: 24 characters of hex.
    let g = SecretGenerator::hex(24).unwrap();
    e.manager.bind(p.clone(), SecretBinding::new().generator(std::sync::Arc::new(g)));
    for bad in ["abc", "0123456789abcdef0123456g", "0123456789abcdef0123456789"] {
        let r = e.manager.rotate_secret(&p, &policy, Some(bad.to_owned().into())).await;
        let Some(RotationError::InvalidValue { source, .. }) = &r.error else { panic!("{r}") };
        assert!(!source.to_string().contains(bad), "the error shows the value: {source}");
    }
    assert_eq!(e.store.total_calls(), calls_before);
    assert_eq!(e.current_text(&p).await, "initial");
    let ok = "0123456789abcdef01234567";
    let r = e.manager.rotate_secret(&p, &policy, Some(ok.to_owned().into())).await;
    assert!(r.success(), "{r}");
    assert_eq!(e.current_text(&p).await, ok);
}

#[test]
fn p7_generator_checks_follow_the_generator() {
    let check = |g: &SecretGenerator, v: &str| g.check(&SecretString::from(v.to_owned()));
    let pw = SecretGenerator::password(
        12,
        PasswordRules { min_lower: 1, min_upper: 1, min_digits: 1, min_symbols: 1, ..PasswordRules::default() },
    )
    .unwrap();
    assert!(check(&pw, "aB3!aaaaaaaa").is_ok());
    assert!(check(&pw, "aB3aaaaaaaaa").is_err(), "no symbol");
    assert!(check(&pw, "aB3!aaaaaaa").is_err(), "too short");
    let uuid = SecretGenerator::uuid();
    assert!(check(&uuid, "0f8fad5b-d9cb-469f-a165-70867728950e").is_ok());
    assert!(check(&uuid, "0f8fad5bd9cb469fa16570867728950e0000").is_err());
    let random = SecretGenerator::with_charset(8, "ab").unwrap();
    assert!(check(&random, "abbaabba").is_ok());
    assert!(check(&random, "abcdabba").is_err());
    assert!(check(&random, "ab\u{e9}aabba").is_err());
}

// ---- point 8: derived forms of the candidate never leave a verifier ----

/// Fails, echoing the candidate in every form a real service might.
#[derive(Debug)]
struct Echo;

#[async_trait::async_trait]
impl Verifier for Echo {
    fn name(&self) -> &str {
        "echo"
    }
    async fn verify(&self, ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        use base64::Engine;
        let v = ctx.candidate.get(ctx.field).map(|s| s.expose_secret().to_owned()).unwrap_or_default();
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("app:{v}"));
        let url: String = v.bytes().map(|b| format!("%{b:02X}")).collect();
        let hex: String = v.bytes().map(|b| format!("{b:02x}")).collect();
        Err(VerifyError::Failed(format!(
            "401 for Authorization: Basic {b64}; query pw={url}; dump {hex}; body starts {}",
            &v[..16]
        )))
    }
}

#[tokio::test]
async fn p8_encoded_candidate_never_reaches_results_or_audit() {
    let e = env_with(|b| b.verifier(std::sync::Arc::new(Echo)));
    let p = path("apps/p8");
    e.seed(&p, "initial").await;
    let value = "Zq9-candidate-Value-7hK2mP4xW8";
    let policy = verified(RotationStrategy::Staged, &["echo"]);
    let r = e.manager.rotate_secret(&p, &policy, Some(value.to_owned().into())).await;
    assert!(!r.success());
    let mut texts = vec![r.to_string(), format!("{r:?}"), serde_json::to_string(&r).unwrap()];
    for ev in e.audit.events() {
        texts.push(serde_json::to_string(&ev).unwrap());
        texts.push(format!("{ev:?}"));
    }
    use base64::Engine;
    let forms = [
        value.to_owned(),
        value[..12].to_owned(),
        base64::engine::general_purpose::STANDARD.encode(format!("app:{value}"))[..16].to_owned(),
        value.bytes().map(|b| format!("%{b:02X}")).collect::<String>()[..24].to_owned(),
        value.bytes().map(|b| format!("{b:02x}")).collect::<String>()[..24].to_owned(),
    ];
    for t in &texts {
        for f in &forms {
            assert!(!t.contains(f.as_str()), "{f:?} leaked in {t}");
        }
    }
    assert!(texts[0].contains("[REDACTED]"), "{}", texts[0]);
}

// ---- point 2: rollback never restores a candidate that failed ----

#[tokio::test]
async fn p2_rollback_after_a_failed_immediate_rotation_never_restores_the_candidate() {
    let e = env();
    let p = path("apps/p2");
    let v1 = e.seed(&p, "first").await;
    // A good rotation v1 -> v2, then an immediate one that fails its
    // verification and is rolled back automatically.
    let r = e.manager.rotate_secret(&p, &policy(RotationStrategy::Staged), None).await;
    assert!(r.success(), "{r}");
    let good = e.current(&p).await;
    let failing = verified(RotationStrategy::Immediate, &["always_fails"]);
    let r = e.manager.rotate_secret(&p, &failing, None).await;
    assert_eq!(r.outcome, RotationOutcome::RolledBack, "{r}");
    let failed = r.new_version.clone().unwrap();
    assert_eq!(
        e.current(&p).await.data.as_text().map(|s| s.expose_secret().to_owned()),
        good.data.as_text().map(|s| s.expose_secret().to_owned())
    );
    // History marks the failed candidate.
    let record = SecretRecord::read(&e.store.read_metadata(&p).await.unwrap());
    assert!(record.is_failed(&failed), "{record:?}");
    assert!(record.history.iter().any(|h| h.event == "rolled_back"), "{:?}", record.history);
    // A manual rollback restores the value current and good before v2 (v1),
    // not the failed candidate.
    let back = e.manager.rollback(&p).await.unwrap();
    assert_eq!(back.restored, v1.id);
    assert_ne!(back.restored, failed);
    assert_eq!(e.current_text(&p).await, "first");
    assert!(back.restored_was_current_since.is_some());
    // Nothing older is known good: a second rollback is refused and changes nothing.
    let before = e.current(&p).await.meta.id;
    let err = e.manager.rollback(&p).await.unwrap_err();
    assert!(matches!(err, RotationError::NothingToRollBack { .. }), "{err}");
    assert_eq!(e.current(&p).await.meta.id, before);
}

#[tokio::test]
async fn p2_store_level_rollback_refuses_a_failed_previous_version() {
    let e = env();
    let p = path("apps/p2-store");
    e.seed(&p, "first").await;
    let failing = verified(RotationStrategy::Immediate, &["always_fails"]);
    let r = e.manager.rotate_secret(&p, &failing, None).await;
    assert_eq!(r.outcome, RotationOutcome::RolledBack, "{r}");
    // The store's previous version is the failed candidate: refused.
    let err = e.store.rollback(&p).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("failed"), "{err}");
    assert_eq!(e.current_text(&p).await, "first");
}

// ---- point 3: a store outage never quarantines; rotation resumes ----

#[tokio::test]
async fn p3_store_outage_does_not_quarantine_and_rotation_resumes() {
    let clock = ManualClock::new(t0());
    let c = clock.clone();
    let store = std::sync::Arc::new(
        rekey_memory::FaultInjectingStore::new(rekey_memory::MemoryStore::new().with_clock(move || c.now()))
            .with_clock(std::sync::Arc::new(clock.clone())),
    );
    let audit = MemoryAuditSink::new();
    let manager = manager_on(store.clone(), &clock, &audit, |b| b);
    let day = std::time::Duration::from_secs(86_400);
    let policy = std::sync::Arc::new(
        RotationPolicy::builder("daily").interval(day).max_retries(0).quarantine_after(2).build().unwrap(),
    );
    let paths: Vec<SecretPath> = (0..5).map(|i| path(&format!("apps/p3/{i}"))).collect();
    for p in &paths {
        store.create(p, SecretData::text("initial")).await.unwrap();
        manager.schedule_rotation(p, policy.clone()).await.unwrap();
    }
    // Due tomorrow; the store is away from then for an hour.
    clock.set_auto_advance(false);
    clock.advance(day);
    let outage_end = clock.now() + chrono::Duration::hours(1);
    store.outage(clock.now(), outage_end);
    let calls_before = store.total_calls();
    let mut ticks = 0;
    while clock.now() < outage_end {
        // A few seconds per tick, as a daemon would.
        let ran = manager.process_scheduled_rotations().await;
        assert!(ran.iter().all(|r| r.outcome == RotationOutcome::StoreUnavailable), "{ran:?}");
        assert!(!manager.store_health().available);
        ticks += 1;
        clock.advance(std::time::Duration::from_secs(3));
    }
    let during = store.total_calls() - calls_before;
    // One probe (one read) per probe interval (5 s); never one call per
    // secret per tick.
    assert!(during <= 3600 / 5 + 2, "{during} store calls in {ticks} ticks during the outage");
    for p in &paths {
        let info = manager.get_schedule(p).unwrap();
        assert!(info.quarantine.is_none() && info.consecutive_failures == 0, "{info:?}");
    }
    assert_eq!(manager.statistics().failed_rotations, 0);
    // The store answers again: every overdue secret rotates in one pass.
    clock.advance(std::time::Duration::from_secs(5));
    let ran = manager.process_scheduled_rotations().await;
    assert_eq!(ran.iter().filter(|r| r.success()).count(), paths.len(), "{ran:?}");
    assert!(manager.store_health().available);
    assert_eq!(manager.statistics().quarantined, 0);
}

#[tokio::test]
async fn p3_quarantine_counts_target_and_verifier_failures_and_resume_lifts_it_everywhere() {
    let (switch, failing) = Switch::new("login");
    let clock = ManualClock::new(t0());
    let store = shared_store(&clock);
    let audit = MemoryAuditSink::new();
    let daemon_a = manager_on(store.clone(), &clock, &audit, |b| b.verifier(switch.clone()));
    let daemon_b = manager_on(store.clone(), &clock, &audit, |b| b.verifier(switch.clone()));
    let day = std::time::Duration::from_secs(86_400);
    let policy = RotationPolicy::builder("daily")
        .interval(day)
        .max_retries(0)
        .quarantine_after(2)
        .verification_tests(["login"])
        .build()
        .unwrap();
    let p = path("apps/p3-q");
    store.create(&p, SecretData::text("initial")).await.unwrap();
    daemon_a.schedule_rotation(&p, policy.clone()).await.unwrap();
    daemon_b.schedule_rotation(&p, policy.clone()).await.unwrap();
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    clock.set_auto_advance(false);
    clock.advance(day);
    for _ in 0..2 {
        let r = daemon_a.process_scheduled_rotations().await;
        assert_eq!(r.len(), 1);
        assert!(r[0].counts_towards_quarantine(), "{}", r[0]);
        if let Some(next) = daemon_a.get_schedule(&p).unwrap().next_rotation {
            // Retried after the failure backoff, in minutes, not milliseconds.
            assert!(next - clock.now() >= chrono::Duration::minutes(2), "{next}");
            clock.set(next);
        }
    }
    assert!(daemon_a.get_schedule(&p).unwrap().quarantine.is_some());
    assert!(SecretRecord::read(&store.read_metadata(&p).await.unwrap()).quarantine.is_some(), "held in the store");
    // Daemon B sees the quarantine in the store and does nothing.
    let r = daemon_b.process_scheduled_rotations().await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].outcome, RotationOutcome::Quarantined);
    assert_eq!(store.calls(rekey_memory::Method::Stage), 2, "no attempt while quarantined");
    // An operator fixes the target and resumes from another process.
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let lifted = record::lift_quarantine(&*store, &p, clock.now(), "cli").await.unwrap();
    assert!(lifted.is_some());
    for d in [&daemon_a, &daemon_b] {
        assert_eq!(d.sync_quarantines().await, 1);
    }
    let r = daemon_a.process_scheduled_rotations().await;
    assert!(r.len() == 1 && r[0].success(), "{r:?}");
}

// ---- point 4: a pending dual-write retirement defers, it does not fail ----

#[tokio::test]
async fn p4_pending_retirement_is_deferred_not_failed() {
    let e = env();
    let p = path("apps/p4");
    e.seed(&p, "initial").await;
    let grace = std::time::Duration::from_secs(3600);
    let dw = RotationPolicy::builder("dw").strategy(RotationStrategy::DualWrite).grace_period(grace).manual().build();
    let dw = dw.unwrap();
    assert!(e.manager.rotate_secret(&p, &dw, None).await.success());
    let r = e.manager.rotate_secret(&p, &dw, None).await;
    assert_eq!(r.outcome, RotationOutcome::Deferred, "{r}");
    assert!(!r.outcome.is_failure() && !r.counts_towards_quarantine());
    let Some(RotationError::RetirePending { until, .. }) = &r.error else { panic!("{r}") };
    assert!(*until > e.clock.now());
    let s = e.manager.statistics();
    assert_eq!((s.failed_rotations, s.deferred, s.successful_rotations), (0, 1, 1));
    assert_eq!(SecretRecord::read(&e.store.read_metadata(&p).await.unwrap()).failures, 0);
}

// ---- point 5: a lost race is never a failure ----

#[tokio::test]
async fn p5_a_lost_staging_race_is_in_progress_elsewhere() {
    let e = env();
    let p = path("apps/p5");
    e.seed(&p, "initial").await;
    // What OpenBao answered when another daemon's candidate won the staging
    // entry's check-and-set: a conflict with nothing known.
    e.store.add_rule(rekey_memory::Rule::on(rekey_memory::Method::Stage).nth(1).fail(rekey_memory::Fault::error(
        || StoreError::Conflict { path: "apps/p5".into(), expected: None, actual: None },
    )));
    let r = e.manager.rotate_secret(&p, &policy(RotationStrategy::Staged), None).await;
    assert_eq!(r.outcome, RotationOutcome::InProgressElsewhere, "{r}");
    assert!(!r.outcome.is_failure());
    assert_eq!(e.manager.statistics().failed_rotations, 0);
    assert_eq!(e.current_text(&p).await, "initial");
}

#[tokio::test]
async fn p5_racing_managers_never_report_a_failure() {
    let clock = ManualClock::new(t0());
    let store = shared_store(&clock);
    let audit = MemoryAuditSink::new();
    let managers: Vec<_> = (0..3).map(|_| manager_on(store.clone(), &clock, &audit, |b| b)).collect();
    let p = path("apps/p5-race");
    store.create(&p, SecretData::text("initial")).await.unwrap();
    for strategy in [RotationStrategy::Staged, RotationStrategy::Immediate, RotationStrategy::Staged] {
        let pol = policy(strategy);
        for _ in 0..20 {
            let runs = managers.iter().map(|m| m.rotate_secret(&p, &pol, None));
            for r in futures::future::join_all(runs).await {
                assert!(!r.outcome.is_failure(), "{r}");
            }
        }
    }
}
