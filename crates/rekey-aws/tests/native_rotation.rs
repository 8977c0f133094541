//! The native rotation calls under the engine, against moto: rotations
//! racing from several processes (independent stores, no shared in-process
//! lock) have one winner per base version, and a candidate left by a
//! rotation that crashed after staging is taken over by the next one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use rekey_core::{
    AuditEventKind, DynSecretStore, MemoryAuditSink, RotationId, RotationManager, RotationOutcome, RotationPolicy,
    RotationStrategy, SecretData, SecretStore, SecretStoreExt, SystemClock, VersionId,
};

fn manager(store: Arc<DynSecretStore>) -> RotationManager {
    RotationManager::builder(store)
        .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .build()
        .unwrap()
}

fn policy(strategy: RotationStrategy) -> RotationPolicy {
    RotationPolicy::builder("native").strategy(strategy).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_rotations_across_processes_have_one_winner_per_base() {
    let Some(ep) = common::endpoint() else { return };
    for strategy in [RotationStrategy::Staged, RotationStrategy::Immediate] {
        let seed = common::store(&ep).await;
        let path = common::name("native-race");
        seed.create(&path, SecretData::text("initial-value-0123456789")).await.unwrap();
        let mut managers = Vec::new();
        for _ in 0..8 {
            managers.push(manager(Arc::new(common::store(&ep).await)));
        }
        let pol = policy(strategy);
        let results = futures::future::join_all(managers.iter().map(|m| m.rotate_secret(&path, &pol, None))).await;
        let mut winners_by_base: BTreeMap<VersionId, usize> = BTreeMap::new();
        for r in &results {
            match r.outcome {
                RotationOutcome::Rotated => {
                    *winners_by_base.entry(r.old_version.clone().unwrap()).or_default() += 1;
                }
                RotationOutcome::RotatedElsewhere | RotationOutcome::InProgressElsewhere => {}
                _ => panic!("{strategy:?}: {r}"),
            }
        }
        assert!(!winners_by_base.is_empty(), "{strategy:?}: nobody won");
        assert!(
            winners_by_base.values().all(|n| *n == 1),
            "{strategy:?}: two winners over one base {winners_by_base:?}"
        );
        let current = seed.current(&path).await.unwrap();
        assert!(
            results
                .iter()
                .any(|r| r.outcome == RotationOutcome::Rotated && r.new_version.as_ref() == Some(&current.meta.id)),
            "{strategy:?}: the current version is no winner's"
        );
        let versions = seed.list_versions(&path).await.unwrap();
        assert_eq!(versions.iter().filter(|v| v.stages.current).count(), 1);
        assert!(seed.pending(&path).await.unwrap().is_none(), "{strategy:?}: a candidate is left pending");
        seed.delete(&path).await.unwrap();
    }
}

#[tokio::test]
async fn a_candidate_left_by_a_crashed_rotation_is_taken_over() {
    let Some(ep) = common::endpoint() else { return };
    let store = common::store(&ep).await;
    let path = common::name("native-takeover");
    let v1 = store.create(&path, SecretData::text("initial-value-0123456789")).await.unwrap();
    // A rotation that staged and crashed: its pending candidate (the
    // journal of a rotation with no target) is all it left.
    let crashed = RotationId::new();
    let left = store.stage(&path, SecretData::text("never-promoted-0123456789"), crashed).await.unwrap();
    let audit = MemoryAuditSink::new();
    let m = RotationManager::builder(Arc::new(store.clone()) as Arc<DynSecretStore>)
        .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .audit_sink(Arc::new(audit.clone()))
        .build()
        .unwrap();
    let r = m.rotate_secret(&path, &policy(RotationStrategy::Staged), None).await;
    assert_eq!(r.outcome, RotationOutcome::Rotated, "{r}");
    assert_eq!(r.old_version.as_ref(), Some(&v1.id));
    let current = store.current(&path).await.unwrap();
    assert_eq!(Some(&current.meta.id), r.new_version.as_ref());
    assert_eq!(current.meta.rotation_id, Some(r.rotation_id));
    assert!(store.pending(&path).await.unwrap().is_none());
    // The crashed rotation's candidate never became current, and the
    // takeover is in the audit trail.
    assert_ne!(current.meta.id, left.id);
    let events = audit.for_rotation(r.rotation_id);
    assert!(events.iter().any(|e| e.kind == AuditEventKind::Recovered), "{events:?}");
    store.delete(&path).await.unwrap();
}
