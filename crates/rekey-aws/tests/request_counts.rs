//! The Secrets Manager API calls one rotation costs against moto, by
//! operation, through the engine (`rotate_secret`, no verifier, no target)
//! and call by call at the store (`snapshot`, `stage_rotation`,
//! `promote_rotation`, `put_rotation`), as the store's own `request_counts`
//! report them. Pinned exactly: a change
//! that adds a call fails here, one that removes a call updates the numbers
//! (and the table in the crate docs). Printed with `--nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rekey_core::{
    DynSecretStore, MetadataPatch, PromoteRequest, PutOptions, RecordWrite, RotationId, RotationManager,
    RotationPolicy, RotationStrategy, SecretData, SecretStore, SecretStoreExt, StageOutcome, StageRequest, Staged,
    SystemClock, VersionSelector,
};

fn counts(store: &dyn SecretStore) -> BTreeMap<&'static str, u64> {
    store.request_counts().into_iter().collect()
}

/// The calls `store` made since `before`, by operation.
fn since(store: &dyn SecretStore, before: &BTreeMap<&'static str, u64>) -> BTreeMap<&'static str, u64> {
    counts(store)
        .into_iter()
        .map(|(op, n)| (op, n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn want(pairs: &[(&'static str, u64)]) -> BTreeMap<&'static str, u64> {
    pairs.iter().copied().collect()
}

fn staged(outcome: StageOutcome) -> Staged {
    match outcome {
        StageOutcome::Staged(s) => s,
        StageOutcome::Journalled(_) => panic!("no journal was written"),
    }
}

/// A record with only a `may` part (the result, a history event).
fn may_only() -> RecordWrite {
    let mut may = MetadataPatch::new();
    may.set("rekey.note", "optional");
    RecordWrite { may, ..RecordWrite::default() }
}

/// Each rotation call at the store, pinned: what the engine's totals are
/// made of, and what the rarer paths (a retry, a stale candidate, a record
/// that must be written, a required journal) add.
#[tokio::test]
async fn each_rotation_call_costs_a_pinned_number_of_calls() {
    let Some(endpoint) = common::endpoint() else { return };
    let store = common::store(&endpoint).await;
    let p = common::name("counts-store");
    let v1 = store.create(&p, SecretData::text("initial-value-0123456789")).await.unwrap();

    // snapshot: both reads.
    let before = counts(&store);
    let snap = store.snapshot(&p, true).await.unwrap();
    assert_eq!(since(&store, &before), want(&[("DescribeSecret", 1), ("GetSecretValue", 1)]));
    assert_eq!(snap.current.id, v1.id);

    // stage_rotation without a base: the two reads and the write.
    let r = RotationId::new();
    let value = SecretData::text("candidate-value-0123456789");
    let before = counts(&store);
    let s = staged(store.stage_rotation(&p, value.clone(), StageRequest::new(r).journal("line", false)).await.unwrap());
    assert_eq!(since(&store, &before), want(&[("DescribeSecret", 1), ("GetSecretValue", 1), ("PutSecretValue", 1)]));
    assert_eq!(s.base.id, v1.id);
    assert!(!s.journal_kept, "a journal that is not required costs nothing and is not kept");
    assert!(s.replaced.is_none());

    // The same stage again (a retry whose response was lost): the two reads
    // find the rotation's version in the stage map and write nothing.
    let before = counts(&store);
    let again = staged(store.stage_rotation(&p, value.clone(), StageRequest::new(r)).await.unwrap());
    assert_eq!(since(&store, &before), want(&[("DescribeSecret", 1), ("GetSecretValue", 2)]));
    assert_eq!(again.candidate.id, s.candidate.id);
    assert_eq!(store.list_versions(&p).await.unwrap().len(), 2, "the retry made no version");

    // promote_rotation with only a `may` record: the compare-and-swap, and
    // (with the pending clean-up on; off by default) AWSPENDING taken off
    // the new current version.
    let before = counts(&store);
    let record = may_only();
    let req = PromoteRequest { candidate: &s.candidate.id, expected: &v1.id, value: Some(&value), record: &record };
    let now = store.clone().with_pending_cleanup(true).promote_rotation(&p, req).await.unwrap();
    assert_eq!(since(&store, &before), want(&[("UpdateSecretVersionStage", 2)]));
    assert_eq!(now.id, s.candidate.id);
    let raw = common::raw_client(&endpoint).await;
    let stages = common::raw_stages(&raw, p.as_str()).await;
    assert!(stages.iter().all(|(_, l)| !l.iter().any(|x| x == "AWSPENDING")), "{stages:?}");
    assert!(!store.read_metadata(&p).await.unwrap().contains_key("rekey.note"), "the `may` part was dropped");
    assert!(store.pending(&p).await.unwrap().is_none());
    assert_eq!(store.read(&p, &VersionSelector::Previous).await.unwrap().meta.id, v1.id);

    // A stale candidate (a rotation that crashed after staging): the next
    // stage reads it once to report it, then replaces it.
    let crashed = RotationId::new();
    store.stage(&p, SecretData::text("crashed-candidate-012345"), crashed).await.unwrap();
    let r2 = RotationId::new();
    let before = counts(&store);
    let s2 = staged(
        store.stage_rotation(&p, SecretData::text("third-value-0123456789"), StageRequest::new(r2)).await.unwrap(),
    );
    assert_eq!(since(&store, &before), want(&[("DescribeSecret", 1), ("GetSecretValue", 2), ("PutSecretValue", 1)]));
    assert_eq!(s2.replaced.as_ref().and_then(|m| m.rotation_id), Some(crashed));
    assert_eq!(store.pending(&p).await.unwrap().unwrap().meta.rotation_id, Some(r2));

    // promote_rotation with a `must` record (a journal to clear, a retire
    // record): one TagResource more. Without the pending clean-up, the
    // compare-and-swap is the only stage move, and AWSPENDING stays on the
    // new current version, which is not pending.
    let mut must = MetadataPatch::new();
    must.set("rekey.done", "yes");
    let record = RecordWrite { must, ..RecordWrite::default() };
    let minimal = store.clone(); // the default: no clean-up
    let before = counts(&store);
    let req = PromoteRequest { candidate: &s2.candidate.id, expected: &now.id, value: None, record: &record };
    let third = minimal.promote_rotation(&p, req).await.unwrap();
    assert_eq!(since(&store, &before), want(&[("TagResource", 1), ("UpdateSecretVersionStage", 1)]));
    let stages = common::raw_stages(&raw, p.as_str()).await;
    let on_current: Vec<_> = stages.iter().filter(|(id, _)| *id == third.id.as_str()).collect();
    assert_eq!(on_current, [&(third.id.as_str().to_owned(), vec!["AWSCURRENT".to_owned(), "AWSPENDING".to_owned()])]);
    assert!(store.pending(&p).await.unwrap().is_none());
    assert_eq!(store.read_metadata(&p).await.unwrap().get("rekey.done").map(String::as_str), Some("yes"));

    // stage_rotation after a snapshot (the engine's slow path): the write
    // alone; a required journal adds its TagResource.
    let snap = store.snapshot(&p, true).await.unwrap();
    let before = counts(&store);
    let r3 = RotationId::new();
    let req = StageRequest::new(r3).after(&snap).journal("id=x", true);
    let s3 = staged(store.stage_rotation(&p, SecretData::text("fourth-value-0123456789"), req).await.unwrap());
    assert_eq!(since(&store, &before), want(&[("PutSecretValue", 1), ("TagResource", 1)]));
    assert!(s3.journal_kept);
    store.discard(&p, &s3.candidate.id).await.unwrap();

    // put_rotation (immediate): the write and the compare-and-swap; a
    // retry of it (same rotation, same value) writes no second version.
    let r4 = RotationId::new();
    let opts = PutOptions::if_current(third.id.clone()).with_rotation(r4);
    let v = SecretData::text("fifth-value-0123456789");
    let before = counts(&store);
    let w = store.put_rotation(&p, v.clone(), opts.clone(), &may_only()).await.unwrap();
    assert_eq!(since(&store, &before), want(&[("PutSecretValue", 1), ("UpdateSecretVersionStage", 1)]));
    assert_eq!(store.current(&p).await.unwrap().meta.id, w.id);
    let n = store.list_versions(&p).await.unwrap().len();
    let before = counts(&store);
    let again = store.put_rotation(&p, v, opts, &RecordWrite::default()).await.unwrap();
    assert_eq!(since(&store, &before), want(&[("PutSecretValue", 1)]));
    assert_eq!(again.id, w.id);
    assert_eq!(store.list_versions(&p).await.unwrap().len(), n, "the retry made no version");
    store.delete(&p).await.unwrap();
}

#[tokio::test]
async fn each_strategy_costs_a_pinned_number_of_calls() {
    let Some(endpoint) = common::endpoint() else { return };
    let mut report = Vec::new();
    let mut mismatches = Vec::new();
    for cleanup in [true, false] {
        let aws = common::store(&endpoint).await.with_pending_cleanup(cleanup);
        let store: Arc<DynSecretStore> = Arc::new(aws.clone());
        let manager = RotationManager::builder(store.clone())
            .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
            .build()
            .unwrap();
        // The clean-up of AWSPENDING on the promoted version (off by default):
        // one UpdateSecretVersionStage more per staged promotion.
        let moves = 1 + u64::from(cleanup);
        // Staged (the engine's fast path: stage first): GetSecretValue and
        // DescribeSecret (the current version and value; the tags that hold
        // the record and a journal, and the stage map: a retry of this
        // rotation, a stale candidate), PutSecretValue into AWSPENDING with
        // the rotation's token, UpdateSecretVersionStage moving AWSCURRENT
        // with compare-and-swap. The result record's `may` part is dropped
        // (it would cost a TagResource).
        let staged = want(&[
            ("DescribeSecret", 1),
            ("GetSecretValue", 1),
            ("PutSecretValue", 1),
            ("UpdateSecretVersionStage", moves),
        ]);
        // Dual-write: the same, plus TagResource for the retire record (a
        // `must` part: the protocol has no place for the grace deadline).
        let mut dual = staged.clone();
        dual.insert("TagResource", 1);
        // Immediate: the snapshot's two reads, PutSecretValue under
        // rekey-writing with the rotation's token, UpdateSecretVersionStage
        // moving AWSCURRENT with compare-and-swap (nothing to clean up).
        let immediate = want(&[
            ("DescribeSecret", 1),
            ("GetSecretValue", 1),
            ("PutSecretValue", 1),
            ("UpdateSecretVersionStage", 1),
        ]);
        let cases = [
            (RotationStrategy::Staged, staged),
            (RotationStrategy::Immediate, immediate),
            (RotationStrategy::DualWrite, dual),
        ];
        for (strategy, expected) in cases {
            let name = format!("{strategy:?}").to_lowercase();
            let p = common::name(&format!("counts-{name}"));
            store.create(&p, SecretData::text("initial-value-0123456789")).await.unwrap();
            let mut policy = RotationPolicy::builder("counts").strategy(strategy);
            if strategy == RotationStrategy::DualWrite {
                policy = policy.grace_period(Duration::from_secs(3600));
            }
            let policy = policy.build().unwrap();
            // A dual-write secret's second rotation waits for the grace period.
            let rounds = if strategy == RotationStrategy::DualWrite { 1 } else { 2 };
            for round in 0..rounds {
                let before = counts(&aws);
                let result = manager.rotate_secret(&p, &policy, None).await;
                assert!(result.success(), "{name} round {round}: {result}");
                let got = since(&aws, &before);
                let total: u64 = got.values().sum();
                report.push(format!("{name:<10} cleanup {cleanup:<5} round {round}: {total:>2} calls {got:?}"));
                if got != expected {
                    mismatches.push(format!("{name} cleanup {cleanup} round {round}: got {got:?}, want {expected:?}"));
                }
                assert!(store.pending(&p).await.unwrap().is_none(), "{name}: nothing left pending");
            }
            store.delete(&p).await.unwrap();
        }
    }
    for line in &report {
        println!("{line}");
    }
    assert!(mismatches.is_empty(), "calls by operation differ:\n{}", mismatches.join("\n"));
}
