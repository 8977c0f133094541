//! The Secrets Manager API calls one rotation costs against moto, by
//! operation, through the engine (`rotate_secret`, no verifier, no target),
//! as the store's own `request_counts` report them. Pinned exactly: a change
//! that adds a call fails here, one that removes a call updates the numbers
//! (and the table in the crate docs). Printed with `--nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rekey_core::{
    DynSecretStore, RotationManager, RotationPolicy, RotationStrategy, SecretData, SecretStore, SecretStoreExt,
    SystemClock,
};

fn counts(store: &dyn SecretStore) -> BTreeMap<&'static str, u64> {
    store.request_counts().into_iter().collect()
}

#[tokio::test]
async fn each_strategy_costs_a_pinned_number_of_calls() {
    let Some(endpoint) = common::endpoint() else { return };
    let aws = common::store(&endpoint).await;
    let store: Arc<DynSecretStore> = Arc::new(aws.clone());
    let manager = RotationManager::builder(store.clone())
        .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .build()
        .unwrap();

    // Staged and dual-write: GetSecretValue + DescribeSecret (value, then
    // the tags that hold the record), ListSecretVersionIds (the token
    // pre-check moto needs: it overwrites a version whose token is reused),
    // PutSecretValue into AWSPENDING with the rotation's token, at
    // promotion GetSecretValue of the candidate, UpdateSecretVersionStage
    // moving AWSCURRENT then removing AWSPENDING, TagResource (the record).
    let staged: &[(&str, u64)] = &[
        ("DescribeSecret", 1),
        ("GetSecretValue", 2),
        ("ListSecretVersionIds", 1),
        ("PutSecretValue", 1),
        ("TagResource", 1),
        ("UpdateSecretVersionStage", 2),
    ];
    // Immediate: the same reads and pre-check, one PutSecretValue, one
    // stage move, one TagResource.
    let immediate: &[(&str, u64)] = &[
        ("DescribeSecret", 1),
        ("GetSecretValue", 1),
        ("ListSecretVersionIds", 1),
        ("PutSecretValue", 1),
        ("TagResource", 1),
        ("UpdateSecretVersionStage", 1),
    ];
    let cases: [(RotationStrategy, &[(&str, u64)]); 3] = [
        (RotationStrategy::Staged, staged),
        (RotationStrategy::Immediate, immediate),
        (RotationStrategy::DualWrite, staged),
    ];
    let mut report = Vec::new();
    let mut mismatches = Vec::new();
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
            let got: BTreeMap<&str, u64> = counts(&aws)
                .into_iter()
                .map(|(op, n)| (op, n - before.get(op).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect();
            let total: u64 = got.values().sum();
            report.push(format!("{name:<10} round {round}: {total:>2} calls {got:?}"));
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
    assert!(mismatches.is_empty(), "calls by operation differ:\n{}", mismatches.join("\n"));
}
