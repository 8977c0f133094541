//! The HTTP requests one rotation costs on OpenBao KV v2, by operation,
//! through the engine (`rotate_secret`, no verifier, no target). The counts
//! are pinned exactly: a change that adds a request fails here, and one that
//! removes a request updates the numbers (and the table in the crate docs).
//! Printed with `--nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rekey_core::{
    DynSecretStore, RotationManager, RotationPolicy, RotationStrategy, SecretData, SecretStore, SecretStoreExt,
    SystemClock,
};
use rekey_vault::{REQUEST_OPS, VaultStore};

fn delta(store: &VaultStore, before: &BTreeMap<&'static str, u64>) -> BTreeMap<&'static str, u64> {
    store
        .request_counts()
        .into_iter()
        .map(|(op, n)| (op, n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test]
async fn each_strategy_costs_a_pinned_number_of_requests() {
    let Some((addr, root)) = common::server() else { return };
    let vault = VaultStore::connect(common::config(&addr, &root)).await.unwrap();
    let store: Arc<DynSecretStore> = Arc::new(vault.clone());
    let manager = RotationManager::builder(store.clone())
        .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .build()
        .unwrap();
    assert_eq!(vault.request_counts().len(), REQUEST_OPS.len());

    // Staged and dual-write: read the current value (with its version and
    // record), write the candidate to the staging path; at promotion
    // CAS-write the value the engine staged as the new version (not read
    // back), one PATCH for the rotation id and the record (journal
    // cleared), delete the staging entry. Immediate: read, CAS-write, one
    // PATCH.
    const STAGED: &[(&str, u64)] = &[("kv_read", 1), ("kv_write", 2), ("metadata_patch", 1), ("metadata_delete", 1)];
    let cases: [(RotationStrategy, &[(&str, u64)]); 3] = [
        (RotationStrategy::Staged, STAGED),
        (RotationStrategy::Immediate, &[("kv_read", 1), ("kv_write", 1), ("metadata_patch", 1)]),
        (RotationStrategy::DualWrite, STAGED),
    ];
    let mut report = Vec::new();
    let mut mismatches = Vec::new();
    for (strategy, expected) in cases {
        let name = format!("{strategy:?}").to_lowercase();
        let p = common::path(&rekey_testkit::unique_prefix("vault-counts"), &name);
        store.create(&p, SecretData::text("initial-value-0123456789")).await.unwrap();
        let mut policy = RotationPolicy::builder("counts").strategy(strategy);
        if strategy == RotationStrategy::DualWrite {
            policy = policy.grace_period(Duration::from_secs(3600));
        }
        let policy = policy.build().unwrap();
        // A dual-write secret's second rotation waits for the grace period.
        let rounds = if strategy == RotationStrategy::DualWrite { 1 } else { 2 };
        // Twice: the second rotation of a secret (with a record and history
        // beside it) costs the same as the first.
        for round in 0..rounds {
            let before: BTreeMap<_, _> = vault.request_counts().into_iter().collect();
            let result = manager.rotate_secret(&p, &policy, None).await;
            assert!(result.success(), "{name} round {round}: {result}");
            let got = delta(&vault, &before);
            let total: u64 = got.values().sum();
            report.push(format!("{name:<10} round {round}: {total:>2} requests {got:?}"));
            let want: BTreeMap<&str, u64> = expected.iter().copied().collect();
            if got != want {
                mismatches.push(format!("{name} round {round}: got {got:?}, want {want:?}"));
            }
            assert!(store.pending(&p).await.unwrap().is_none(), "{name}: nothing left pending");
        }
    }
    for line in &report {
        println!("{line}");
    }
    assert!(mismatches.is_empty(), "requests by operation differ:\n{}", mismatches.join("\n"));
}

/// `snapshot(path, false)` (what `rekey status` and the daemon's start-up
/// make per secret) is one metadata read and says what the data read of
/// `snapshot(path, true)` says, but the value: the same current version,
/// creation time, rotation id and `rekey.*` metadata, and the same
/// `NotFound` when the current version cannot be read.
#[tokio::test]
async fn snapshot_without_value_is_one_metadata_read_and_agrees_with_the_data_read() {
    let Some((addr, root)) = common::server() else { return };
    let vault = VaultStore::connect(common::config(&addr, &root)).await.unwrap();
    let store: Arc<DynSecretStore> = Arc::new(vault.clone());
    let manager = RotationManager::builder(store.clone())
        .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .build()
        .unwrap();
    let prefix = rekey_testkit::unique_prefix("vault-snapshot");
    let counted = |op: &'static str| move |got: BTreeMap<&'static str, u64>| assert_eq!(got, BTreeMap::from([(op, 1)]));
    let both = async |p: &rekey_core::SecretPath| {
        let before: BTreeMap<_, _> = vault.request_counts().into_iter().collect();
        let brief = store.snapshot(p, false).await;
        counted("metadata_read")(delta(&vault, &before));
        let before: BTreeMap<_, _> = vault.request_counts().into_iter().collect();
        let full = store.snapshot(p, true).await;
        counted("kv_read")(delta(&vault, &before));
        (brief, full)
    };
    let same = async |p: &rekey_core::SecretPath, what: &str| {
        let (brief, full) = both(p).await;
        let (brief, full) = (brief.unwrap(), full.unwrap());
        assert!(brief.data.is_none(), "{what}: no value without with_value");
        assert!(full.data.is_some(), "{what}: the value with with_value");
        assert_eq!(brief.current, full.current, "{what}: current version");
        assert_eq!(brief.metadata, full.metadata, "{what}: metadata");
        brief
    };

    // A plain secret, with a key of its owners beside it (never shown).
    let p = common::path(&prefix, "plain");
    store.create(&p, SecretData::text("initial-value-0123456789")).await.unwrap();
    let api = format!("secret/metadata/{}", p.as_str());
    common::admin_post(&addr, &root, &api, serde_json::json!({"custom_metadata": {"owner": "team-a"}})).await;
    let s = same(&p, "plain").await;
    assert_eq!(s.current.id.as_str(), "1");
    assert!(s.current.rotation_id.is_none() && s.metadata.is_empty());

    // After rotations: the rotation id of the current version and the
    // engine's record come back the same way.
    let policy = RotationPolicy::builder("snap").strategy(RotationStrategy::Staged).build().unwrap();
    for round in 0..2 {
        let result = manager.rotate_secret(&p, &policy, None).await;
        assert!(result.success(), "round {round}: {result}");
        let s = same(&p, "rotated").await;
        assert_eq!(Some(s.current.id.to_string()), result.new_version.map(|v| v.to_string()));
        assert_eq!(s.current.rotation_id, Some(result.rotation_id), "round {round}");
        assert!(!s.metadata.is_empty() && s.metadata.keys().all(|k| k.starts_with("rekey.")), "{:?}", s.metadata);
    }

    // Versions that delete themselves later (`delete_version_after`): the
    // current one is still current until then.
    let p = common::path(&prefix, "expiring");
    store.create(&p, SecretData::text("v1-0123456789")).await.unwrap();
    let api = format!("secret/metadata/{}", p.as_str());
    common::admin_post(&addr, &root, &api, serde_json::json!({"delete_version_after": "1h"})).await;
    store.put(&p, SecretData::text("v2-0123456789"), rekey_core::PutOptions::overwrite()).await.unwrap();
    assert_eq!(same(&p, "expiring").await.current.id.as_str(), "2");

    // Not found, the same way: no secret; metadata with no version; the
    // current version deleted; the current version destroyed.
    let not_found = async |p: &rekey_core::SecretPath, what: &str| {
        let (brief, full) = both(p).await;
        let kinds = (brief.err().map(|e| e.kind()), full.err().map(|e| e.kind()));
        assert_eq!(kinds, (Some("not_found"), Some("not_found")), "{what}");
    };
    not_found(&common::path(&prefix, "missing"), "missing").await;
    let p = common::path(&prefix, "no-version");
    let api = format!("secret/metadata/{}", p.as_str());
    common::admin_post(&addr, &root, &api, serde_json::json!({"custom_metadata": {"owner": "team-a"}})).await;
    not_found(&p, "metadata with no version").await;
    let p = common::path(&prefix, "deleted");
    store.create(&p, SecretData::text("v1-0123456789")).await.unwrap();
    let (code, _) = common::raw(&addr, &root, "DELETE", &format!("secret/data/{}", p.as_str()), None).await;
    assert_eq!(code, 204);
    not_found(&p, "current version deleted").await;
    let p = common::path(&prefix, "destroyed");
    store.create(&p, SecretData::text("v1-0123456789")).await.unwrap();
    let api = format!("secret/destroy/{}", p.as_str());
    common::admin_post(&addr, &root, &api, serde_json::json!({"versions": [1]})).await;
    not_found(&p, "current version destroyed").await;
}
