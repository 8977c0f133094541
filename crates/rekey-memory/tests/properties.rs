//! Property tests: any sequence of operations keeps the store's invariants,
//! and every operation that fails leaves the secret exactly as it was.
#![allow(clippy::unwrap_used)]

use futures::executor::block_on;
use proptest::prelude::*;
use rekey_core::{
    ExposeSecret, Metadata, PutOptions, RotationId, SecretData, SecretPath, SecretStore, SecretStoreExt, StoreError,
    VersionId, VersionSelector,
};
use rekey_memory::MemoryStore;
use uuid::Uuid;

/// Which version id an operation names.
#[derive(Debug, Clone)]
enum Pick {
    Current,
    Previous,
    Pending,
    /// The nth id seen so far (modulo), or an unknown id if none.
    Seen(usize),
    Unknown,
}

#[derive(Debug, Clone)]
enum Op {
    Create(u8, Option<u8>),
    PutIfCurrent(Pick, u8, Option<u8>),
    Overwrite(u8, Option<u8>),
    Stage(u8, u8),
    Promote(Pick, Pick),
    Rollback,
    Discard(Pick),
    Read(Pick),
    WriteMetadata(u8),
    Delete,
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        3 => Just(Pick::Current),
        2 => Just(Pick::Previous),
        3 => Just(Pick::Pending),
        3 => any::<usize>().prop_map(Pick::Seen),
        1 => Just(Pick::Unknown),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let rot = proptest::option::of(0u8..4);
    prop_oneof![
        2 => (any::<u8>(), rot.clone()).prop_map(|(v, r)| Op::Create(v, r)),
        4 => (pick(), any::<u8>(), rot.clone()).prop_map(|(p, v, r)| Op::PutIfCurrent(p, v, r)),
        1 => (any::<u8>(), rot).prop_map(|(v, r)| Op::Overwrite(v, r)),
        4 => (any::<u8>(), 0u8..4).prop_map(|(v, r)| Op::Stage(v, r)),
        4 => (pick(), pick()).prop_map(|(a, b)| Op::Promote(a, b)),
        1 => Just(Op::Rollback),
        2 => pick().prop_map(Op::Discard),
        2 => pick().prop_map(Op::Read),
        1 => any::<u8>().prop_map(Op::WriteMetadata),
        1 => Just(Op::Delete),
    ]
}

/// Everything observable about one secret.
#[derive(Debug, PartialEq)]
struct Snapshot {
    versions: Vec<(rekey_core::VersionMeta, String)>,
    metadata: Option<Metadata>,
}

fn value_text(d: &SecretData) -> String {
    d.as_text().map(|s| s.expose_secret().to_owned()).unwrap_or_default()
}

async fn snapshot(store: &MemoryStore, p: &SecretPath) -> Snapshot {
    let list = store.list_versions(p).await.unwrap_or_default();
    let mut versions = Vec::new();
    for m in list {
        let v = store.read(p, &VersionSelector::Id(m.id.clone())).await.unwrap();
        assert_eq!(v.meta, m, "read by id and list_versions disagree");
        versions.push((m, value_text(&v.data)));
    }
    Snapshot { versions, metadata: store.read_metadata(p).await.ok() }
}

async fn check_invariants(store: &MemoryStore, p: &SecretPath, snap: &Snapshot) {
    if snap.metadata.is_none() {
        assert!(snap.versions.is_empty());
        assert!(matches!(store.current(p).await, Err(StoreError::NotFound { .. })));
        return;
    }
    let metas: Vec<_> = snap.versions.iter().map(|(m, _)| m).collect();
    assert_eq!(metas.iter().filter(|m| m.stages.current).count(), 1);
    assert!(metas.iter().filter(|m| m.stages.previous).count() <= 1);
    assert!(metas.iter().filter(|m| m.stages.pending).count() <= 1);
    for m in &metas {
        let s = m.stages;
        assert!(u8::from(s.current) + u8::from(s.previous) + u8::from(s.pending) <= 1);
    }
    assert!(metas.windows(2).all(|w| w[0].created_at <= w[1].created_at));
    type Flag = fn(&rekey_core::VersionMeta) -> bool;
    let selectors: [(VersionSelector, Flag); 3] = [
        (VersionSelector::Current, |m| m.stages.current),
        (VersionSelector::Previous, |m| m.stages.previous),
        (VersionSelector::Pending, |m| m.stages.pending),
    ];
    for (sel, flag) in selectors {
        let listed = metas.iter().find(|m| flag(m));
        match (store.read(p, &sel).await, listed) {
            (Ok(v), Some(m)) => assert_eq!(v.meta, **m),
            (Err(StoreError::NotFound { .. }), None) => {}
            (r, l) => panic!("read {sel:?} gave {:?}, list says {:?}", r.map(|v| v.meta), l),
        }
    }
}

fn resolve(p: &Pick, snap: &Snapshot, seen: &[VersionId]) -> VersionId {
    let by = |f: fn(&rekey_core::Stages) -> bool| {
        snap.versions.iter().find(|(m, _)| f(&m.stages)).map(|(m, _)| m.id.clone())
    };
    let unknown = || VersionId::new(Uuid::new_v4().to_string());
    match p {
        Pick::Current => by(|s| s.current).unwrap_or_else(unknown),
        Pick::Previous => by(|s| s.previous).unwrap_or_else(unknown),
        Pick::Pending => by(|s| s.pending).unwrap_or_else(unknown),
        Pick::Seen(i) if !seen.is_empty() => seen[i % seen.len()].clone(),
        Pick::Seen(_) | Pick::Unknown => unknown(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_and_failures_change_nothing(ops in proptest::collection::vec(op(), 1..40)) {
        block_on(async {
            let store = MemoryStore::new().with_max_versions(8);
            let p = SecretPath::new("prop/s").unwrap();
            let rotations: Vec<RotationId> = (0..4).map(|_| RotationId::new()).collect();
            let rot = |r: &u8| rotations[usize::from(*r) % rotations.len()];
            let with = |opts: PutOptions, r: &Option<u8>| match r { Some(r) => opts.with_rotation(rot(r)), None => opts };
            let mut seen: Vec<VersionId> = Vec::new();
            for op in &ops {
                let before = snapshot(&store, &p).await;
                let val = |v: &u8| SecretData::text(format!("value-{v}"));
                let result: Result<Option<VersionId>, StoreError> = match op {
                    Op::Create(v, r) => store.put(&p, val(v), with(PutOptions::create(), r)).await.map(|m| Some(m.id)),
                    Op::PutIfCurrent(e, v, r) => {
                        let e = resolve(e, &before, &seen);
                        store.put(&p, val(v), with(PutOptions::if_current(e), r)).await.map(|m| Some(m.id))
                    }
                    Op::Overwrite(v, r) => store.put(&p, val(v), with(PutOptions::overwrite(), r)).await.map(|m| Some(m.id)),
                    Op::Stage(v, r) => store.stage(&p, val(v), rot(r)).await.map(|m| Some(m.id)),
                    Op::Promote(a, b) => {
                        let (a, b) = (resolve(a, &before, &seen), resolve(b, &before, &seen));
                        store.promote(&p, &a, &b).await.map(|m| Some(m.id))
                    }
                    Op::Rollback => store.rollback(&p).await.map(|m| Some(m.id)),
                    Op::Discard(a) => store.discard(&p, &resolve(a, &before, &seen)).await.map(|_| None),
                    Op::Read(a) => store.read(&p, &VersionSelector::Id(resolve(a, &before, &seen))).await.map(|_| None),
                    Op::WriteMetadata(v) => store
                        .write_metadata(&p, [("rekey.k".to_owned(), v.to_string())].into())
                        .await
                        .map(|_| None),
                    Op::Delete => store.delete(&p).await.map(|_| None),
                };
                let after = snapshot(&store, &p).await;
                match result {
                    Ok(id) => seen.extend(id),
                    Err(e) => {
                        assert!(!e.is_retryable(), "the memory store never fails transiently: {e}");
                        assert_eq!(before, after, "{op:?} failed with {e} but changed the secret");
                    }
                }
                check_invariants(&store, &p, &after).await;
                // Reads never change anything.
                assert_eq!(after, snapshot(&store, &p).await);
            }
        });
    }

    #[test]
    fn a_successful_promote_makes_exactly_that_value_current(vals in proptest::collection::vec(any::<u8>(), 2..10), pick in any::<usize>()) {
        block_on(async {
            let store = MemoryStore::new();
            let p = SecretPath::new("prop/promote").unwrap();
            let mut ids = vec![store.create(&p, SecretData::text(format!("v{}", vals[0]))).await.unwrap().id];
            for v in &vals[1..] {
                let cur = ids[ids.len() - 1].clone();
                ids.push(store.put(&p, SecretData::text(format!("v{v}")), PutOptions::if_current(cur)).await.unwrap().id);
            }
            let i = pick % ids.len();
            let cur = ids[ids.len() - 1].clone();
            let m = store.promote(&p, &ids[i], &cur).await.unwrap();
            let now = store.current(&p).await.unwrap();
            assert_eq!(now.meta.id, m.id);
            assert_eq!(value_text(&now.data), format!("v{}", vals[i]));
            if i + 1 != ids.len() {
                assert_eq!(store.previous(&p).await.unwrap().meta.id, cur);
            }
        });
    }
}
