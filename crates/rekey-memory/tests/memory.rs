//! `MemoryStore` behaviour beyond the conformance suite: clock, version cap,
//! limits, the choices the contract leaves open, real parallel races, and
//! `Debug` redaction.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use rekey_core::{
    DynSecretStore, ExposeSecret, Metadata, PutOptions, RotationId, SecretData, SecretPath, SecretStore,
    SecretStoreExt, StoreError, VersionId, VersionSelector,
};
use rekey_memory::{MAX_METADATA_ENTRIES, MAX_VALUE_BYTES, MemoryStore};

fn path(s: &str) -> SecretPath {
    SecretPath::new(s).expect("valid path")
}

fn text(v: &SecretData) -> String {
    v.as_text().map(|s| s.expose_secret().to_owned()).unwrap_or_default()
}

/// A clock tests set by hand (seconds since the epoch).
fn manual_clock() -> (Arc<AtomicI64>, impl Fn() -> DateTime<Utc> + Send + Sync + 'static) {
    let secs = Arc::new(AtomicI64::new(1_900_000_000));
    let s = secs.clone();
    (secs, move || Utc.timestamp_opt(s.load(Ordering::SeqCst), 0).single().unwrap_or_default())
}

#[tokio::test]
async fn debug_shows_counts_never_values() {
    let store = MemoryStore::new();
    let p = path("app/db");
    store.create(&p, SecretData::fields([("user", "u-s3cr3t"), ("password", "p-s3cr3t")])).await.unwrap();
    store.stage(&p, SecretData::text("staged-s3cr3t"), RotationId::new()).await.unwrap();
    store.write_metadata(&p, [("rekey.k".to_owned(), "v".to_owned())].into()).await.unwrap();
    let shown = format!("{store:?} {store:#?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(shown.contains("secrets: 1") && shown.contains("versions: 2"), "{shown}");
    let v = store.current(&p).await.unwrap();
    assert!(!format!("{v:?}").contains("s3cr3t"));
}

#[tokio::test]
async fn created_at_comes_from_the_clock_and_never_decreases() {
    let (secs, clock) = manual_clock();
    let store = MemoryStore::new().with_clock(clock);
    let p = path("a");
    let v1 = store.create(&p, SecretData::text("1")).await.unwrap();
    assert_eq!(v1.created_at.timestamp(), 1_900_000_000);
    secs.fetch_add(3600, Ordering::SeqCst);
    let v2 = store.put(&p, SecretData::text("2"), PutOptions::if_current(v1.id.clone())).await.unwrap();
    assert_eq!(v2.created_at.timestamp(), 1_900_003_600);
    // The clock goes back: creation times stay non-decreasing.
    secs.store(1_000_000_000, Ordering::SeqCst);
    let c = store.stage(&p, SecretData::text("3"), RotationId::new()).await.unwrap();
    assert_eq!(c.created_at, v2.created_at);
    // Promote does not create a version, so no new time.
    let v3 = store.promote(&p, &c.id, &v2.id).await.unwrap();
    assert_eq!(v3.created_at, c.created_at);
}

#[tokio::test]
async fn version_ids_are_rotation_ids_when_given() {
    let store = MemoryStore::new();
    let p = path("a");
    let r = RotationId::new();
    let v1 = store.put(&p, SecretData::text("1"), PutOptions::create().with_rotation(r)).await.unwrap();
    assert_eq!(v1.id, VersionId::new(r.to_string()));
    assert_eq!(v1.rotation_id, Some(r));
    let r2 = RotationId::new();
    let c = store.stage(&p, SecretData::text("2"), r2).await.unwrap();
    assert_eq!(c.id.as_str(), r2.to_string());
    let v3 = store.put(&p, SecretData::text("3"), PutOptions::overwrite()).await.unwrap();
    assert!(uuid::Uuid::parse_str(v3.id.as_str()).is_ok());
    assert_eq!(v3.rotation_id, None);
}

#[tokio::test]
async fn history_is_capped_but_stages_are_kept() {
    let store = MemoryStore::new().with_max_versions(5);
    let p = path("a");
    let first = store.create(&p, SecretData::text("v0")).await.unwrap();
    let staged = store.stage(&p, SecretData::text("candidate"), RotationId::new()).await.unwrap();
    let mut cur = first.id;
    for i in 1..=20 {
        cur = store.put(&p, SecretData::text(format!("v{i}")), PutOptions::if_current(cur)).await.unwrap().id;
    }
    let list = store.list_versions(&p).await.unwrap();
    assert_eq!(list.len(), 5);
    // The old pending candidate survived eviction; current and previous too.
    assert_eq!(list[0].id, staged.id);
    assert!(list[0].stages.pending);
    assert_eq!(text(&store.current(&p).await.unwrap().data), "v20");
    assert_eq!(text(&store.previous(&p).await.unwrap().data), "v19");
    // The oldest unlabelled versions are gone.
    let names: Vec<_> = list.iter().map(|v| v.created_at).collect();
    assert!(names.windows(2).all(|w| w[0] <= w[1]));
}

#[tokio::test]
async fn oversized_values_and_metadata_are_invalid_input() {
    let store = MemoryStore::new();
    let p = path("a");
    let big = SecretData::text("x".repeat(MAX_VALUE_BYTES + 1));
    assert!(matches!(store.create(&p, big.clone()).await, Err(StoreError::InvalidInput { .. })));
    assert!(store.is_empty());
    store.create(&p, SecretData::text("x".repeat(MAX_VALUE_BYTES))).await.unwrap();
    assert!(matches!(store.stage(&p, big, RotationId::new()).await, Err(StoreError::InvalidInput { .. })));

    let too_many: Metadata = (0..=MAX_METADATA_ENTRIES).map(|i| (format!("rekey.k{i}"), "v".to_owned())).collect();
    assert!(matches!(store.write_metadata(&p, too_many).await, Err(StoreError::InvalidInput { .. })));
    for bad in ["owner", "rekey.", "rekey.a,b", "rekey.new\nline", ""] {
        let m: Metadata = [(bad.to_owned(), "v".to_owned())].into();
        assert!(matches!(store.write_metadata(&p, m).await, Err(StoreError::InvalidInput { .. })), "{bad:?}");
    }
    let ok: Metadata =
        [("rekey.rotation.step:1/a=b+c-d@e f_g".to_owned(), "any value, even = , ; \n".to_owned())].into();
    store.write_metadata(&p, ok.clone()).await.unwrap();
    assert_eq!(store.read_metadata(&p).await.unwrap(), ok);
    store.write_metadata(&p, Metadata::new()).await.unwrap();
    let long_key: Metadata = [(format!("rekey.{}", "k".repeat(123)), "v".to_owned())].into();
    assert!(matches!(store.write_metadata(&p, long_key).await, Err(StoreError::InvalidInput { .. })));
    let long_value: Metadata = [("rekey.k".to_owned(), "v".repeat(257))].into();
    let e = store.write_metadata(&p, long_value).await.unwrap_err();
    assert!(matches!(e, StoreError::InvalidInput { .. }));
    assert!(!e.to_string().contains("vvvv"), "the error repeats the metadata value: {e}");
    assert!(store.read_metadata(&p).await.unwrap().is_empty());
}

#[tokio::test]
async fn operations_on_a_missing_secret_are_not_found() {
    let store = MemoryStore::new();
    let p = path("missing");
    let id = VersionId::new("x");
    let nf = |r: Result<(), StoreError>| matches!(r, Err(StoreError::NotFound { .. }));
    assert!(nf(store.list_versions(&p).await.map(|_| ())));
    assert!(nf(store.read_metadata(&p).await.map(|_| ())));
    assert!(nf(store.write_metadata(&p, Metadata::new()).await));
    assert!(nf(store.discard(&p, &id).await));
    assert!(nf(store.delete(&p).await));
    assert!(nf(store.promote(&p, &id, &id).await.map(|_| ())));
    assert!(nf(store.put(&p, SecretData::text("v"), PutOptions::if_current(id.clone())).await.map(|_| ())));
    assert!(store.is_empty());
    match store.read(&p, &VersionSelector::Previous).await {
        Err(StoreError::NotFound { path, .. }) => assert_eq!(path, "missing"),
        other => panic!("expected NotFound, got {:?}", other.map(|v| v.meta)),
    }
}

#[tokio::test]
async fn replaced_candidate_is_gone_and_discard_of_others_is_a_no_op() {
    let store = MemoryStore::new();
    let p = path("a");
    let v1 = store.create(&p, SecretData::text("1")).await.unwrap();
    let c1 = store.stage(&p, SecretData::text("c1"), RotationId::new()).await.unwrap();
    let c2 = store.stage(&p, SecretData::text("c2"), RotationId::new()).await.unwrap();
    assert!(matches!(
        store.read(&p, &VersionSelector::Id(c1.id.clone())).await,
        Err(StoreError::NotFound { what: Some(_), .. })
    ));
    assert_eq!(store.list_versions(&p).await.unwrap().len(), 2);
    let v2 = store.promote(&p, &c2.id, &v1.id).await.unwrap();
    // Discarding the previous version is not a discard of a candidate: no-op.
    store.discard(&p, &v1.id).await.unwrap();
    assert_eq!(text(&store.previous(&p).await.unwrap().data), "1");
    // Discarding the promoted (now current) version is refused.
    assert!(matches!(store.discard(&p, &v2.id).await, Err(StoreError::InvalidInput { .. })));
}

#[tokio::test]
async fn promote_of_the_current_version_and_retries() {
    let store = MemoryStore::new();
    let p = path("a");
    let v1 = store.create(&p, SecretData::text("1")).await.unwrap();
    // Promoting the current version onto itself changes nothing.
    let same = store.promote(&p, &v1.id, &v1.id).await.unwrap();
    assert_eq!(same.id, v1.id);
    assert!(store.previous(&p).await.is_err());
    let c = store.stage(&p, SecretData::text("2"), RotationId::new()).await.unwrap();
    store.promote(&p, &c.id, &v1.id).await.unwrap();
    // A retried promote (response lost) sees a conflict that names the
    // promoted version as the actual current one, so the caller can tell
    // it already won.
    match store.promote(&p, &c.id, &v1.id).await {
        Err(StoreError::Conflict { expected, actual, .. }) => {
            assert_eq!(expected, Some(v1.id.clone()));
            assert_eq!(actual, Some(c.id.clone()));
        }
        other => panic!("expected Conflict, got {:?}", other),
    }
    // A resumed stage with the same rotation id finds the promoted version
    // and stages nothing new.
    let r = store.list_versions(&p).await.unwrap()[1].rotation_id.unwrap();
    let again = store.stage(&p, SecretData::text("2"), r).await.unwrap();
    assert_eq!(again.id, c.id);
    assert!(again.stages.current && !again.stages.pending);
    assert!(store.pending(&p).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_racers_on_threads_exactly_one_wins() {
    let store: Arc<DynSecretStore> = Arc::new(MemoryStore::new());
    for round in 0..200 {
        let p = path(&format!("race/{round}"));
        let base = store.create(&p, SecretData::text("base")).await.unwrap();
        let c = store.stage(&p, SecretData::text("candidate"), RotationId::new()).await.unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (store, p, base, c, barrier) =
                    (store.clone(), p.clone(), base.id.clone(), c.id.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    if i % 2 == 0 {
                        store.promote(&p, &c, &base).await.map(|_| ())
                    } else {
                        store.put(&p, SecretData::text(format!("w{i}")), PutOptions::if_current(base)).await.map(|_| ())
                    }
                })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => wins += 1,
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
        let list = store.list_versions(&p).await.unwrap();
        assert_eq!(list.iter().filter(|v| v.stages.current).count(), 1);
        assert_eq!(store.previous(&p).await.unwrap().meta.id, base.id);
    }
}

#[tokio::test]
async fn many_secrets_stay_independent() {
    let store = MemoryStore::new();
    for i in 0..2000 {
        let p = path(&format!("bulk/{i}"));
        let v = store.create(&p, SecretData::text(format!("{i}"))).await.unwrap();
        let c = store.stage(&p, SecretData::text(format!("{i}-next")), RotationId::new()).await.unwrap();
        store.promote(&p, &c.id, &v.id).await.unwrap();
    }
    assert_eq!(store.len(), 2000);
    assert_eq!(text(&store.current(&path("bulk/1234")).await.unwrap().data), "1234-next");
    store.delete(&path("bulk/7")).await.unwrap();
    assert_eq!(store.len(), 1999);
}
