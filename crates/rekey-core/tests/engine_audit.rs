//! The audit trail (every state change, structured, serializable) and the
//! rule that no secret value ever appears in an event, a log line, a
//! result, an error or a `Debug` output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use engine_support::*;
use rekey_core::*;
use rekey_memory::{Fault, Method, Rule};

const STAGED: RotationStrategy = RotationStrategy::Staged;
const IMMEDIATE: RotationStrategy = RotationStrategy::Immediate;

#[tokio::test]
async fn a_verified_staged_rotation_records_every_step() {
    let e = env();
    let p = path("a/steps");
    let v1 = e.seed(&p, "initial").await;
    let r = e.manager.rotate_secret(&p, &verified(STAGED, &["api_test", "connectivity_test"]), None).await;
    assert!(r.success());
    let events = e.audit.for_rotation(r.rotation_id);
    let kinds: Vec<_> = events.iter().map(|ev| ev.kind).collect();
    use AuditEventKind::*;
    assert_eq!(kinds, [Started, Staged, Verifying, Verified, Promoted, CleanedUp, Succeeded]);
    for ev in &events {
        assert_eq!(ev.path, p);
        assert_eq!(ev.strategy, Some(STAGED));
        assert_eq!(ev.trigger, Some(RotationTrigger::Manual));
        assert_eq!(ev.old_version.as_ref(), Some(&v1.id));
        assert!(ev.error.is_none());
        assert!(ev.elapsed.is_some());
    }
    assert_eq!(events[1].new_version, r.new_version);
    assert_eq!(events[1].step, Some(RotationStep::Stage));
    assert_eq!(events[6].new_version, r.new_version);
}

#[tokio::test]
async fn failures_record_their_step_and_error() {
    let e = env();
    let p = path("a/fail");
    e.seed(&p, "initial").await;
    let r = e.manager.rotate_secret(&p, &verified(IMMEDIATE, &["always_fails"]), None).await;
    let events = e.audit.for_rotation(r.rotation_id);
    let kinds: Vec<_> = events.iter().map(|ev| ev.kind).collect();
    use AuditEventKind::*;
    assert_eq!(kinds, [Started, Written, Verifying, VerificationFailed, RolledBack, CleanedUp, Failed]);
    let vf = &events[3];
    assert_eq!(vf.step, Some(RotationStep::Verify));
    let err = vf.error.as_ref().unwrap();
    assert_eq!(err.kind, "verification");
    assert!(err.message.contains("always_fails"));
    assert!(events[6].error.is_some());
    assert!(events[6].detail.as_deref().unwrap().contains("rolled back"));
}

#[tokio::test]
async fn events_and_results_serialize_to_json() {
    let e = env();
    let p = path("a/json");
    e.seed(&p, "initial").await;
    let r = e.manager.emergency_rotate(&p, "leaked").await; // no policy: NoPolicy
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["outcome"], "failed");
    assert_eq!(json["status"], "failed");
    assert_eq!(json["error"]["kind"], "no_policy");
    assert_eq!(json["trigger"]["type"], "emergency");
    assert_eq!(json["trigger"]["reason"], "leaked");

    let r = e.manager.rotate_secret(&p, &policy(STAGED), None).await;
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["outcome"], "rotated");
    assert_eq!(json["strategy"], "staged");
    assert!(json["error"].is_null());
    assert!(json["duration"].is_number());
    let ev = e.audit.for_rotation(r.rotation_id).into_iter().find(|ev| ev.kind == AuditEventKind::Promoted).unwrap();
    let json = serde_json::to_value(&ev).unwrap();
    assert_eq!(json["kind"], "promoted");
    assert_eq!(json["path"], "a/json");
    assert_eq!(json["rotation_id"], r.rotation_id.to_string());
    assert_eq!(json["step"], "promote");
    assert!(json.get("error").is_none(), "None fields are left out");
    let stats = serde_json::to_value(e.manager.statistics()).unwrap();
    assert_eq!(stats["successful_rotations"], 1);
    let sched = e.manager.schedule_rotation(&p, every(3, STAGED)).await.unwrap();
    assert_eq!(serde_json::to_value(&sched).unwrap()["policy_name"], "every-3d");
}

/// A `tracing` subscriber that writes every event's fields into a string.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let _ = write!(self.0, "{}={} ", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut out = self.0.lock().unwrap();
        span.record(&mut Fields(&mut out));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut out = self.0.lock().unwrap();
        let _ = write!(out, "[{}] ", event.metadata().target());
        event.record(&mut Fields(&mut out));
        out.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A target that accepts anything but fails its test for one value, with an
/// error message that (correctly) does not include the value.
#[derive(Debug, Default)]
struct PickyTarget {
    applied: Mutex<Vec<String>>,
}

#[async_trait]
impl CredentialTarget for PickyTarget {
    fn name(&self) -> &str {
        "picky"
    }
    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities::default()
    }
    async fn apply(&self, candidate: &SecretData, _current: Option<&SecretData>) -> Result<(), TargetError> {
        self.applied.lock().unwrap().push(text(candidate));
        Ok(())
    }
    async fn test(&self, credential: &SecretData) -> Result<(), TargetError> {
        let value = credential.get(Some("password")).or(credential.as_text()).map(|s| s.expose_secret().to_owned());
        if value.unwrap_or_default().contains("REJECT") {
            return Err(TargetError::Rejected { message: "password authentication failed".into() });
        }
        Ok(())
    }
    async fn revoke(&self, _revoked: &SecretData, keep: &SecretData) -> Result<(), TargetError> {
        self.applied.lock().unwrap().push(text(keep));
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_value_appears_in_events_logs_results_or_errors() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());

    let clock = ManualClock::new(t0());
    clock.set_auto_advance(true);
    let store = shared_store(&clock);
    let memory = MemoryAuditSink::new();
    let manager = RotationManager::builder(store.clone())
        .clock(Arc::new(clock.clone()))
        .audit_sink(Arc::new(memory.clone()))
        .audit_sink(Arc::new(TracingAuditSink))
        .verifier(Arc::new(Pass("api_test")))
        .verifier(Arc::new(Fail("always_fails")))
        .build()
        .unwrap();

    let mut secrets: Vec<String> = vec!["S3CRET-initial-value-0001".into(), "S3CRET-field-password-0002".into()];
    let a = path("leak/text");
    let b = path("leak/fields");
    store.create(&a, SecretData::text(secrets[0].clone())).await.unwrap();
    store.create(&b, SecretData::fields([("username", "app"), ("password", secrets[1].as_str())])).await.unwrap();
    manager.bind(b.clone(), SecretBinding::new().field("password").target(Arc::new(PickyTarget::default())));

    let mut results = Vec::new();
    // Successes, generated and custom, both strategies.
    for (i, strategy) in [STAGED, IMMEDIATE, STAGED].into_iter().enumerate() {
        let custom = format!("S3CRET-custom-{i}-value");
        secrets.push(custom.clone());
        results.push(
            manager.rotate_secret(&a, &verified(strategy, &["api_test"]), Some(SecretString::from(custom))).await,
        );
        results.push(manager.rotate_secret(&a, &policy(strategy), None).await);
        secrets.push(text(&store.current(&a).await.unwrap().data));
    }
    // A verification failure, a target rejection, retries, a conflict.
    results.push(
        manager
            .rotate_secret(&a, &verified(STAGED, &["always_fails"]), Some(SecretString::from("S3CRET-rejected-1")))
            .await,
    );
    results.push(manager.rotate_secret(&b, &policy(STAGED), Some(SecretString::from("S3CRET-REJECT-by-target"))).await);
    results
        .push(manager.rotate_secret(&b, &policy(IMMEDIATE), Some(SecretString::from("S3CRET-REJECT-immediate"))).await);
    results.push(manager.rotate_secret(&b, &policy(STAGED), None).await);
    secrets.push(store.current(&b).await.unwrap().data.field("password").unwrap().expose_secret().to_owned());
    store.add_rule(Rule::on(Method::Stage).times(2).fail(Fault::unavailable()));
    results.push(manager.rotate_secret(&a, &policy(STAGED), Some(SecretString::from("S3CRET-after-retries"))).await);
    store.fail_every(Method::Promote, Fault::conflict());
    results.push(manager.rotate_secret(&a, &policy(STAGED), Some(SecretString::from("S3CRET-conflicted"))).await);
    results.push(manager.emergency_rotate(&a, "drill").await);
    secrets.extend(
        [
            "S3CRET-rejected-1",
            "S3CRET-REJECT-by-target",
            "S3CRET-REJECT-immediate",
            "S3CRET-after-retries",
            "S3CRET-conflicted",
        ]
        .map(String::from),
    );
    manager.schedule_rotation(&a, every(1, STAGED)).await.unwrap();
    let _ = clock.now();

    let mut everything = capture.0.lock().unwrap().clone();
    for ev in memory.events() {
        let _ = write!(everything, "{ev:?} {}", serde_json::to_string(&ev).unwrap());
    }
    for r in &results {
        let _ = write!(everything, "{r:?} {r} {}", serde_json::to_string(r).unwrap());
        if let Some(e) = &r.error {
            let _ = write!(everything, "{e} {e:?}");
        }
    }
    let _ = write!(everything, "{manager:?} {:?} {:?}", manager.statistics(), manager.list_schedules());
    let _ = write!(everything, "{:?}", manager.binding(&b));

    assert!(
        everything.contains("rotation succeeded"),
        "the tracing sink wrote: {}",
        &everything[..everything.len().min(500)]
    );
    assert!(everything.contains("password authentication failed"), "{results:#?}");
    assert!(results.iter().any(|r| r.outcome == RotationOutcome::RolledBack));
    assert!(results.iter().any(|r| r.retries > 0));
    for s in &secrets {
        assert!(s.len() >= 16, "{s:?}");
        assert!(!everything.contains(s.as_str()), "secret value {s:?} leaked");
    }
}
