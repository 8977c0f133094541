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
