//! `FaultInjectingStore`: rules, faults, delays, lost responses, counters.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rekey_core::{
    DynSecretStore, PutOptions, RotationId, SecretData, SecretPath, SecretStore, SecretStoreExt, StoreError,
    VersionSelector,
};
use rekey_memory::{Fault, FaultInjectingStore, MemoryStore, Method, Rule};

fn path(s: &str) -> SecretPath {
    SecretPath::new(s).expect("valid path")
}

fn store() -> FaultInjectingStore<MemoryStore> {
    FaultInjectingStore::new(MemoryStore::new())
}

#[tokio::test]
async fn fails_the_nth_call_overall() {
    let s = store();
    let p = path("a");
    let v1 = s.create(&p, SecretData::text("1")).await.unwrap();
    s.fail_nth(3, Fault::unavailable());
    s.read(&p, &VersionSelector::Current).await.unwrap();
    s.list_versions(&p).await.unwrap();
    let e = s.put(&p, SecretData::text("2"), PutOptions::if_current(v1.id.clone())).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable { .. }) && e.is_retryable());
    assert!(e.to_string().contains("put") && e.to_string().contains("a"));
    // Not performed, and only once.
    assert_eq!(s.current(&p).await.unwrap().meta.id, v1.id);
    s.put(&p, SecretData::text("2"), PutOptions::if_current(v1.id)).await.unwrap();
    assert_eq!(s.total_calls(), 6);
    assert_eq!(s.total_injected(), 1);
    assert_eq!(s.injected(Method::Put), 1);
}

#[tokio::test]
async fn fails_the_nth_call_of_one_method() {
    let s = store();
    let p = path("a");
    s.create(&p, SecretData::text("1")).await.unwrap();
    let rule = s.fail_nth_of(Method::Stage, 2, Fault::conflict());
    let r = RotationId::new();
    s.read(&p, &VersionSelector::Current).await.unwrap();
    s.stage(&p, SecretData::text("2"), r).await.unwrap();
    match s.stage(&p, SecretData::text("2"), r).await {
        Err(StoreError::Conflict { path, expected: None, actual: None }) => assert_eq!(path, "a"),
        other => panic!("expected the injected conflict, got {other:?}"),
    }
    s.stage(&p, SecretData::text("2"), r).await.unwrap();
    assert_eq!(s.fired(rule), Some(1));
    assert_eq!(s.calls(Method::Stage), 3);
    assert_eq!(s.calls(Method::Read), 1);
}

#[tokio::test]
async fn fails_every_call_of_a_method_until_removed() {
    let s = store();
    let p = path("a");
    let v1 = s.create(&p, SecretData::text("1")).await.unwrap();
    let c = s.stage(&p, SecretData::text("2"), RotationId::new()).await.unwrap();
    let rule = s.fail_every(Method::Promote, Fault::error(|| StoreError::NotSupported { message: "nope".into() }));
    for _ in 0..3 {
        assert!(matches!(s.promote(&p, &c.id, &v1.id).await, Err(StoreError::NotSupported { .. })));
    }
    // Other methods are untouched.
    s.read(&p, &VersionSelector::Pending).await.unwrap();
    assert!(s.remove_rule(rule));
    assert!(!s.remove_rule(rule));
    s.promote(&p, &c.id, &v1.id).await.unwrap();
    assert_eq!(s.injected(Method::Promote), 3);
}

#[tokio::test]
async fn lost_response_performs_the_write_and_a_retry_is_idempotent() {
    let s = store();
    let p = path("a");
    let v1 = s.create(&p, SecretData::text("1")).await.unwrap();
    s.add_rule(Rule::on(Method::Put).nth(1).fail(Fault::lost_response()));
    let opts = PutOptions::if_current(v1.id.clone()).with_rotation(RotationId::new());
    let e = s.put(&p, SecretData::text("2"), opts.clone()).await.unwrap_err();
    assert!(e.is_retryable());
    // The write happened although the caller saw an error...
    let cur = s.current(&p).await.unwrap();
    assert_ne!(cur.meta.id, v1.id);
    // ...and the retry with the same rotation id returns it, not a conflict.
    let again = s.put(&p, SecretData::text("2"), opts).await.unwrap();
    assert_eq!(again.id, cur.meta.id);
    assert_eq!(s.inner().list_versions(&p).await.unwrap().len(), 2);
    let log = s.call_log();
    let puts: Vec<_> = log.iter().filter(|c| c.method == Method::Put).collect();
    assert_eq!(puts.len(), 3);
    assert!(puts[1].reached_inner && puts[1].injected && puts[1].error == Some("unavailable"));
    assert!(puts[2].reached_inner && !puts[2].injected && puts[2].error.is_none());
}

#[tokio::test]
async fn lost_response_of_a_promote_then_the_retry_sees_who_won() {
    let s = store();
    let p = path("a");
    let v1 = s.create(&p, SecretData::text("1")).await.unwrap();
    let c = s.stage(&p, SecretData::text("2"), RotationId::new()).await.unwrap();
    s.fail_nth_of(Method::Promote, 1, Fault::lost_response());
    assert!(s.promote(&p, &c.id, &v1.id).await.is_err());
    match s.promote(&p, &c.id, &v1.id).await {
        Err(StoreError::Conflict { actual: Some(a), .. }) => assert_eq!(a, c.id),
        other => panic!("expected a conflict naming the promoted version, got {other:?}"),
    }
}

#[tokio::test]
async fn skip_times_and_path_select_calls() {
    let s = store();
    let (a, b) = (path("a"), path("b"));
    s.create(&a, SecretData::text("1")).await.unwrap();
    s.create(&b, SecretData::text("1")).await.unwrap();
    s.add_rule(Rule::on(Method::Read).path(a.clone()).skip(1).times(2).fail(Fault::rate_limited()));
    let results: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(s.read(&a, &VersionSelector::Current).await.is_ok());
            // Reads of another path neither fail nor count for the rule.
            assert!(s.read(&b, &VersionSelector::Current).await.is_ok());
        }
        v
    };
    assert_eq!(results, [true, false, false, true]);
    assert_eq!(s.injected(Method::Read), 2);
}

#[tokio::test]
async fn delays_use_the_injected_sleep() {
    let slept = Arc::new(Mutex::new(Vec::new()));
    let rec = slept.clone();
    let s = store().with_sleep(move |d| {
        rec.lock().push(d);
        Box::pin(async {})
    });
    let p = path("a");
    s.delay_every(Method::Put, Duration::from_secs(5));
    s.add_rule(Rule::any().nth(2).delay(Duration::from_millis(250)));
    s.create(&p, SecretData::text("1")).await.unwrap();
    s.read(&p, &VersionSelector::Current).await.unwrap();
    s.put(&p, SecretData::text("2"), PutOptions::overwrite()).await.unwrap();
    assert_eq!(*slept.lock(), [Duration::from_secs(5), Duration::from_millis(250), Duration::from_secs(5)]);
}

#[tokio::test(start_paused = true)]
async fn delays_default_to_tokio_sleep() {
    let s = store();
    let p = path("a");
    s.add_rule(Rule::on(Method::Put).delay(Duration::from_secs(30)).fail(Fault::unavailable()));
    let t0 = tokio::time::Instant::now();
    assert!(s.create(&p, SecretData::text("1")).await.is_err());
    assert!(t0.elapsed() >= Duration::from_secs(30));
    // Fails after the delay, without writing.
    assert!(s.inner().is_empty());
}

#[tokio::test]
async fn counters_log_and_reset() {
    let s = store();
    let p = path("a");
    let v1 = s.create(&p, SecretData::text("1")).await.unwrap();
    let c = s.stage(&p, SecretData::text("2"), RotationId::new()).await.unwrap();
    s.promote(&p, &c.id, &v1.id).await.unwrap();
    // A staged rotation's store round trips, counted.
    assert_eq!((s.calls(Method::Put), s.calls(Method::Stage), s.calls(Method::Promote)), (1, 1, 1));
    assert_eq!(s.write_calls(), 3);
    let log = s.call_log();
    assert_eq!(log.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(log.iter().map(|c| c.method).collect::<Vec<_>>(), [Method::Put, Method::Stage, Method::Promote]);
    assert!(log.iter().all(|c| c.path == p && c.reached_inner && !c.injected && c.error.is_none()));
    // A real error of the inner store is logged with its kind.
    assert!(s.create(&p, SecretData::text("x")).await.is_err());
    assert_eq!(s.call_log().last().map(|c| (c.injected, c.error)), Some((false, Some("already_exists"))));
    s.reset_counters();
    assert_eq!(s.total_calls(), 0);
    assert!(s.call_log().is_empty());
    s.set_log(false);
    s.read(&p, &VersionSelector::Current).await.unwrap();
    assert_eq!(s.total_calls(), 1);
    assert!(s.call_log().is_empty());
    assert_eq!(Method::ALL.iter().map(|m| s.calls(*m)).sum::<u64>(), 1);
}

#[tokio::test]
async fn wraps_any_store_and_is_one() {
    let inner: Arc<DynSecretStore> = Arc::new(MemoryStore::new());
    let layered: Arc<DynSecretStore> = Arc::new(FaultInjectingStore::new(inner.clone()));
    let p = path("a");
    layered.create(&p, SecretData::text("visible-through-both")).await.unwrap();
    assert!(inner.current(&p).await.is_ok());
    let shown = format!("{layered:?}");
    assert!(shown.contains("FaultInjectingStore") && shown.contains("MemoryStore"), "{shown}");
    assert!(!shown.contains("visible-through-both"), "{shown}");
}

#[test]
fn method_names() {
    assert_eq!(Method::ALL.len(), 9);
    assert_eq!(Method::ListVersions.to_string(), "list_versions");
    assert!(Method::Stage.is_write() && !Method::Read.is_write());
    assert!(!format!("{:?}", Fault::unavailable().after_inner()).is_empty());
}

#[tokio::test]
async fn delays_and_times_follow_an_engine_manual_clock() {
    use rekey_core::{Clock, ManualClock};
    let start = chrono::Utc::now();
    let clock = Arc::new(ManualClock::new(start));
    clock.set_auto_advance(true);
    let s = FaultInjectingStore::new(MemoryStore::new().with_clock_source(clock.clone())).with_clock(clock.clone());
    s.delay_every(Method::Put, Duration::from_secs(3600));
    let p = path("a");
    let v1 = s.create(&p, SecretData::text("1")).await.unwrap();
    // The delay ran on the manual clock (advancing it), then the write took
    // its time from the same clock.
    assert_eq!(v1.created_at, start + chrono::Duration::hours(1));
    assert_eq!(clock.now(), start + chrono::Duration::hours(1));
}
