//! `MemoryStore`'s rotation calls (`stage_rotation`, `promote_rotation`,
//! `put_rotation`) on the paths a rotation takes: a fresh stage with its
//! journal, staging over a crashed candidate, an idempotent re-stage, a lost
//! compare-and-swap, bad input that changes nothing, and the number of heap
//! allocations a staged rotation's two calls make.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::executor::block_on;
use rekey_core::{
    ExposeSecret, JOURNAL_KEY, Metadata, MetadataPatch, PromoteRequest, PutOptions, RecordWrite, RotationId,
    SecretData, SecretPath, SecretStore, SecretStoreExt, StageOutcome, StageRequest, Staged, StoreError, VersionId,
    VersionMeta, VersionSelector,
};
use rekey_memory::{MAX_METADATA_ENTRIES, MAX_METADATA_VALUE_BYTES, MemoryStore};

fn path(s: &str) -> SecretPath {
    SecretPath::new(s).expect("valid path")
}

fn text(v: &SecretData) -> String {
    v.as_text().map(|s| s.expose_secret().to_owned()).unwrap_or_default()
}

fn staged(outcome: StageOutcome) -> Staged {
    match outcome {
        StageOutcome::Staged(s) => s,
        StageOutcome::Journalled(_) => panic!("stage_rotation found a journal"),
    }
}

/// The record a winning promotion writes: the journal cleared, a result
/// key, and a key naming the new current version.
fn record(result: &str) -> RecordWrite {
    let mut must = MetadataPatch::new();
    must.remove(JOURNAL_KEY).set("rekey.result", result);
    let mut may = MetadataPatch::new();
    may.set("rekey.note", format!("note {result}"));
    RecordWrite { must, may, new_version_keys: vec!["rekey.keep".to_owned()] }
}

fn promote<'a>(s: &'a Staged, record: &'a RecordWrite) -> PromoteRequest<'a> {
    PromoteRequest { candidate: &s.candidate.id, expected: &s.base.id, value: None, record }
}

async fn ids(store: &MemoryStore, p: &SecretPath) -> Vec<VersionId> {
    store.list_versions(p).await.unwrap().into_iter().map(|v| v.id).collect()
}

#[tokio::test]
async fn a_staged_rotation_keeps_its_journal_until_it_wins() {
    let store = MemoryStore::new();
    let p = path("app/token");
    let v1 = store.create(&p, SecretData::text("one")).await.unwrap();
    store.write_metadata(&p, [("rekey.owner".to_owned(), "team".to_owned())].into()).await.unwrap();
    let before = store.read_metadata(&p).await.unwrap();

    let r = RotationId::new();
    let s = staged(
        store.stage_rotation(&p, SecretData::text("two"), StageRequest::new(r).journal("line-1", false)).await.unwrap(),
    );
    assert_eq!(s.base.id, v1.id);
    assert_eq!(s.metadata, before, "Staged.metadata is the metadata before the call");
    assert!(s.journal_kept);
    assert_eq!(s.replaced, None);
    assert_eq!(s.candidate.rotation_id, Some(r));
    assert!(s.candidate.stages.pending && !s.candidate.stages.current);
    assert_eq!(s.candidate.id, VersionId::of_rotation(r), "a staged version is named by its rotation");
    let m = store.read_metadata(&p).await.unwrap();
    assert_eq!(m.get(JOURNAL_KEY).map(String::as_str), Some("line-1"));
    assert_eq!(store.current(&p).await.unwrap().meta.id, v1.id, "staging changed the current version");

    // A second rotation finds the journal and stages nothing.
    let other = RotationId::new();
    match store.stage_rotation(&p, SecretData::text("three"), StageRequest::new(other)).await.unwrap() {
        StageOutcome::Journalled(snap) => {
            assert_eq!(snap.current.id, v1.id);
            assert_eq!(snap.data.as_ref().map(text).as_deref(), Some("one"));
            assert!(snap.journalled());
        }
        StageOutcome::Staged(_) => panic!("staged over a journal"),
    }

    // The winner clears the journal and writes its record, in place on
    // later rotations.
    let w = record("first");
    let now = store.promote_rotation(&p, promote(&s, &w)).await.unwrap();
    assert_eq!(now.id, s.candidate.id);
    assert!(now.stages.current);
    let m = store.read_metadata(&p).await.unwrap();
    let expect: Metadata = [
        ("rekey.owner", "team"),
        ("rekey.result", "first"),
        ("rekey.note", "note first"),
        ("rekey.keep", now.id.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(m, expect);
    assert_eq!(store.pending(&p).await.unwrap().map(|v| v.meta.id), None);
    assert_eq!(store.previous(&p).await.unwrap().meta.id, v1.id);

    let s2 = staged(
        store
            .stage_rotation(&p, SecretData::text("x"), StageRequest::new(RotationId::new()).journal("line-2", true))
            .await
            .unwrap(),
    );
    assert_eq!(s2.metadata, expect);
    let w2 = record("second, longer than the first value");
    let now2 = store.promote_rotation(&p, promote(&s2, &w2)).await.unwrap();
    let m = store.read_metadata(&p).await.unwrap();
    assert_eq!(m.get("rekey.result").map(String::as_str), Some("second, longer than the first value"));
    assert_eq!(m.get("rekey.note").map(String::as_str), Some("note second, longer than the first value"));
    assert_eq!(m.get("rekey.keep").map(String::as_str), Some(now2.id.as_str()));
    assert!(!m.contains_key(JOURNAL_KEY));
}

#[tokio::test]
async fn staging_replaces_a_crashed_candidate_and_a_retry_is_idempotent() {
    let store = MemoryStore::new();
    let p = path("app/db");
    let v1 = store.create(&p, SecretData::text("one")).await.unwrap();

    // A rotation stages, then "crashes": its candidate and journal stay.
    let crashed = RotationId::new();
    let c = staged(
        store
            .stage_rotation(&p, SecretData::text("lost"), StageRequest::new(crashed).journal("crashed", false))
            .await
            .unwrap(),
    );
    // Recovery reads the secret and stages over it (with a base: no journal check).
    let snap = store.snapshot(&p, false).await.unwrap();
    assert!(snap.journalled());
    let r = RotationId::new();
    let req = || {
        let mut req = StageRequest::new(r).journal("recovering", false);
        req.base = Some(snap.current.clone());
        req
    };
    let s = staged(store.stage_rotation(&p, SecretData::text("two"), req()).await.unwrap());
    let replaced: &VersionMeta = s.replaced.as_ref().expect("the crashed candidate is reported");
    assert_eq!(replaced.id, c.candidate.id);
    assert_eq!(replaced.rotation_id, Some(crashed));
    assert!(replaced.stages.pending);
    assert_eq!(s.metadata.get(JOURNAL_KEY).map(String::as_str), Some("crashed"), "metadata before the call");
    let e = store.read(&p, &VersionSelector::Id(c.candidate.id.clone())).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "the crashed candidate is still there: {e:?}");
    assert_eq!(ids(&store, &p).await, vec![v1.id.clone(), s.candidate.id.clone()]);
    assert_eq!(store.read_metadata(&p).await.unwrap().get(JOURNAL_KEY).map(String::as_str), Some("recovering"));

    // The same rotation again (a lost response): the same candidate, no new
    // version, nothing reported replaced.
    let again = staged(store.stage_rotation(&p, SecretData::text("two"), req()).await.unwrap());
    assert_eq!(again.candidate, s.candidate);
    assert_eq!(again.replaced, None);
    assert_eq!(ids(&store, &p).await, vec![v1.id.clone(), s.candidate.id.clone()]);
    assert_eq!(text(&store.pending(&p).await.unwrap().unwrap().data), "two");
}

#[tokio::test]
async fn a_lost_compare_and_swap_changes_nothing() {
    let store = MemoryStore::new();
    let p = path("app/key");
    store.create(&p, SecretData::text("one")).await.unwrap();
    let s = staged(
        store
            .stage_rotation(&p, SecretData::text("two"), StageRequest::new(RotationId::new()).journal("j", false))
            .await
            .unwrap(),
    );
    // Someone else writes first.
    let theirs = store.put(&p, SecretData::text("theirs"), PutOptions::if_current(s.base.id.clone())).await.unwrap();
    let before = store.read_metadata(&p).await.unwrap();
    let w = record("mine");
    match store.promote_rotation(&p, promote(&s, &w)).await {
        Err(StoreError::Conflict { expected, actual, .. }) => {
            assert_eq!(expected, Some(s.base.id.clone()));
            assert_eq!(actual, Some(theirs.id.clone()));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.read_metadata(&p).await.unwrap(), before, "a lost promotion wrote metadata");
    assert_eq!(store.current(&p).await.unwrap().meta.id, theirs.id);
    assert_eq!(store.pending(&p).await.unwrap().map(|v| v.meta.id), Some(s.candidate.id.clone()));
    // A missing candidate is NotFound, also before any change.
    let ghost = VersionId::new("never-staged");
    let req = PromoteRequest { candidate: &ghost, expected: &theirs.id, value: None, record: &w };
    assert!(matches!(store.promote_rotation(&p, req).await, Err(StoreError::NotFound { .. })));
    assert_eq!(store.read_metadata(&p).await.unwrap(), before);
}

#[tokio::test]
async fn bad_input_to_a_rotation_call_changes_nothing() {
    let store = MemoryStore::new();
    let p = path("app/limits");
    let v1 = store.create(&p, SecretData::text("one")).await.unwrap();
    // Leave room for exactly one more entry.
    let full: Metadata = (1..MAX_METADATA_ENTRIES).map(|i| (format!("rekey.k{i}"), "v".to_owned())).collect();
    store.write_metadata(&p, full.clone()).await.unwrap();

    // A journal line too long for a metadata value: nothing staged.
    let long = "l".repeat(MAX_METADATA_VALUE_BYTES + 1);
    let e = store
        .stage_rotation(&p, SecretData::text("two"), StageRequest::new(RotationId::new()).journal(long, true))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidInput { .. }), "{e:?}");
    assert!(!e.to_string().contains("llll"), "the error repeats the line: {e}");
    assert_eq!(store.pending(&p).await.unwrap().map(|v| v.meta.id), None);
    assert_eq!(store.read_metadata(&p).await.unwrap(), full);

    // The journal fills the last entry; a record adding two more keys is
    // refused before the promotion.
    let s = staged(
        store
            .stage_rotation(&p, SecretData::text("two"), StageRequest::new(RotationId::new()).journal("j", true))
            .await
            .unwrap(),
    );
    let mut may = MetadataPatch::new();
    may.set("rekey.extra1", "a").set("rekey.extra2", "b");
    let over = RecordWrite { must: MetadataPatch::new(), may, new_version_keys: Vec::new() };
    let e = store.promote_rotation(&p, promote(&s, &over)).await.unwrap_err();
    assert!(matches!(e, StoreError::InvalidInput { .. }), "{e:?}");
    assert_eq!(store.current(&p).await.unwrap().meta.id, v1.id, "a refused record still promoted");
    // Clearing the journal makes room for one: exactly at the limit is fine.
    let mut must = MetadataPatch::new();
    must.remove(JOURNAL_KEY);
    let mut may = MetadataPatch::new();
    may.set("rekey.extra1", "a");
    let fits = RecordWrite { must, may, new_version_keys: Vec::new() };
    store.promote_rotation(&p, promote(&s, &fits)).await.unwrap();
    assert_eq!(store.read_metadata(&p).await.unwrap().len(), MAX_METADATA_ENTRIES);

    // put_rotation: a record over the limit writes no version.
    let versions = ids(&store, &p).await;
    let cur = store.current(&p).await.unwrap().meta.id;
    let opts = PutOptions::if_current(cur.clone()).with_rotation(RotationId::new());
    let e = store.put_rotation(&p, SecretData::text("three"), opts, &over).await.unwrap_err();
    assert!(matches!(e, StoreError::InvalidInput { .. }), "{e:?}");
    assert_eq!(ids(&store, &p).await, versions, "a refused record still wrote a version");
    // An invalid key anywhere in the record is refused whole.
    let mut bad = MetadataPatch::new();
    bad.set("not-rekey", "x");
    let bad = RecordWrite { must: bad, may: MetadataPatch::new(), new_version_keys: Vec::new() };
    let before = store.read_metadata(&p).await.unwrap();
    let opts = PutOptions::if_current(cur).with_rotation(RotationId::new());
    let e = store.put_rotation(&p, SecretData::text("3"), opts, &bad).await.unwrap_err();
    assert!(matches!(e, StoreError::InvalidInput { .. }), "{e:?}");
    assert_eq!(ids(&store, &p).await, versions);
    assert_eq!(store.read_metadata(&p).await.unwrap(), before);
}

/// One staged rotation on a secret that has rotated before: the two calls
/// allocate only the candidate's id, the copy of the metadata that
/// `Staged.metadata` owns (a node, and a string per key and per value), and
/// the two boxed futures of `async_trait`; the journal line's key is reused.
/// The implementation before made 20.
#[test]
fn a_staged_rotation_allocates_little() {
    let store = MemoryStore::new().with_max_versions(4);
    let p = path("bench/allocations");
    block_on(store.create(&p, SecretData::text("initial"))).unwrap();
    let mut w = RecordWrite::default();
    w.must.remove(JOURNAL_KEY);
    w.may.set("rekey.good", "yes");
    let mut worst = (0, 0);
    for round in 0..20 {
        let data = SecretData::text("0123456789abcdef0123456789abcdef");
        let req = StageRequest::new(RotationId::new()).journal("id=x;step=stage", false);
        let mut out = None;
        let stage = allocation_counter::measure(|| out = Some(block_on(store.stage_rotation(&p, data, req))));
        let s = staged(out.unwrap().unwrap());
        let promoted = allocation_counter::measure(|| {
            block_on(store.promote_rotation(&p, promote(&s, &w))).unwrap();
        });
        // From the fifth round on, the metadata is {rekey.good} and the version
        // history is at its cap (its buffer has grown).
        if round >= 5 {
            worst = (worst.0.max(stage.count_total), worst.1.max(promoted.count_total));
        }
    }
    assert!(worst.0 <= 5, "stage_rotation made {} allocations (expected at most 5)", worst.0);
    assert!(worst.1 <= 1, "promote_rotation made {} allocations (expected at most 1)", worst.1);
}
