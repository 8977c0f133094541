//! Measures rekey's AWS store against a Secrets Manager endpoint (moto in
//! the project's tests), through the engine (`RotationManager`, no
//! verifier, no target), per strategy:
//!
//! * the API calls of one rotation, by operation, and the calls per
//!   rotation over the whole throughput run;
//! * rotations per second at concurrency 1 and 32 (each worker rotates its
//!   own secret);
//! * the server's raw `PutSecretValue` rate in the same run, at the same
//!   concurrency (same client, same secrets count);
//! * the ratio rotations/s ÷ (raw rate ÷ calls per rotation): 1.0 means a
//!   rotation costs no more than its calls would if each were a raw write.
//!
//! ```text
//! REKEY_TEST_STATE=$PWD/.test-servers scripts/servers.sh start moto && source .test-servers/env
//! cargo run -p rekey-aws --release --example aws_throughput
//! ```
//!
//! `REKEY_BENCH_SCALE` (default 1) multiplies the number of operations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use futures::future::join_all;
use rekey_aws::{AwsConfig, AwsSecretsStore};
use rekey_core::{
    DynSecretStore, RotationManager, RotationPolicy, RotationStrategy, SecretData, SecretPath, SecretStore,
    SecretStoreExt, SystemClock,
};

fn calls(store: &AwsSecretsStore) -> BTreeMap<&'static str, u64> {
    store.request_counts().into_iter().collect()
}

fn total(m: &BTreeMap<&'static str, u64>) -> u64 {
    m.values().sum()
}

fn since(store: &AwsSecretsStore, before: &BTreeMap<&'static str, u64>) -> BTreeMap<&'static str, u64> {
    calls(store)
        .into_iter()
        .map(|(op, n)| (op, n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn manager(store: Arc<DynSecretStore>) -> RotationManager {
    RotationManager::builder(store)
        .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .max_concurrency(64)
        .build()
        .expect("manager")
}

fn policy(strategy: RotationStrategy) -> RotationPolicy {
    let mut b = RotationPolicy::builder("bench").strategy(strategy);
    if strategy == RotationStrategy::DualWrite {
        b = b.grace_period(Duration::from_secs(3600));
    }
    b.build().expect("policy")
}

/// `workers` concurrent workers, each doing `per_worker` operations;
/// operations per second.
async fn run<F, Fut>(workers: usize, per_worker: usize, op: F) -> f64
where
    F: Fn(usize, usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    join_all((0..workers).map(|w| {
        let op = &op;
        async move {
            for i in 0..per_worker {
                op(w, i).await;
            }
        }
    }))
    .await;
    (workers * per_worker) as f64 / started.elapsed().as_secs_f64()
}

async fn seed(store: &AwsSecretsStore, prefix: &str, tag: &str, n: usize) -> Vec<SecretPath> {
    let paths: Vec<SecretPath> = (0..n).map(|i| format!("{prefix}/{tag}-{i}").parse().expect("path")).collect();
    join_all(paths.iter().map(|p| store.create(p, SecretData::text("initial-value-0123456789")))).await;
    paths
}

async fn clean(store: &AwsSecretsStore, paths: &[SecretPath]) {
    join_all(paths.iter().map(|p| store.delete(p))).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Ok(endpoint) = std::env::var("REKEY_TEST_AWS_ENDPOINT") else {
        eprintln!("REKEY_TEST_AWS_ENDPOINT is not set: start moto with scripts/servers.sh start moto");
        std::process::exit(2);
    };
    let scale: usize = std::env::var("REKEY_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let cfg = AwsConfig::default()
        .with_region("us-east-1")
        .with_endpoint_url(&endpoint)
        .with_static_credentials("test", "test")
        .with_max_attempts(1)
        .for_moto();
    let store = AwsSecretsStore::from_config(&cfg).await.expect("store");
    // The raw client: the same SDK configuration, no rekey in between.
    let raw = Client::new(&cfg.sdk_config().await.expect("sdk config"));
    let prefix = format!("rekey-bench/{}", uuid::Uuid::new_v4().simple());
    println!("endpoint {endpoint} (moto unless told otherwise), scale {scale}");

    // Default store (the protocol's minimum: AWSPENDING left on the promoted
    // version) and with the clean-up on (see `with_pending_cleanup`).
    let variants = [("default", store.clone()), ("cleanup", store.clone().with_pending_cleanup(true))];

    // --- the calls of one rotation, per strategy ---------------------------
    for (label, store) in &variants {
        let mgr = manager(Arc::new(store.clone()));
        for strategy in [RotationStrategy::Staged, RotationStrategy::DualWrite, RotationStrategy::Immediate] {
            let p = seed(store, &prefix, &format!("calls-{label}-{}", strategy.as_str()), 1).await;
            let before = calls(store);
            let r = mgr.rotate_secret(&p[0], &policy(strategy), None).await;
            assert!(r.success(), "{r}");
            let got = since(store, &before);
            println!("{:<10} {label:<7} one rotation: {} API calls {got:?}", strategy.as_str(), total(&got));
            clean(store, &p).await;
        }
    }

    // --- throughput ----------------------------------------------------------
    println!();
    println!(
        "strategy   | store   | conc | rotations/s | calls/rotation | raw PutSecretValue/s | raw/calls | ratio rot/s ÷ (raw/calls)"
    );
    let runs = [(RotationStrategy::Staged, 0), (RotationStrategy::Staged, 1), (RotationStrategy::Immediate, 0)];
    for (strategy, variant) in runs {
        let (label, store) = &variants[variant];
        let mgr = manager(Arc::new(store.clone()));
        let pol = policy(strategy);
        for workers in [1usize, 32] {
            let per = scale * if workers == 1 { 100 } else { 10 };
            let tag = format!("{}-{label}-{workers}", strategy.as_str());

            let rot = seed(store, &prefix, &format!("rot-{tag}"), workers).await;
            let before = calls(store);
            let (mgr, pol, rot_paths) = (&mgr, &pol, &rot);
            let rot_rate = run(workers, per, |w, _| async move {
                let r = mgr.rotate_secret(&rot_paths[w], pol, None).await;
                assert!(r.success(), "{r}");
            })
            .await;
            let used = total(&since(store, &before)) as f64 / (workers * per) as f64;

            let puts = seed(store, &prefix, &format!("raw-{tag}"), workers).await;
            let (raw, put_paths) = (&raw, &puts);
            let put_rate = run(workers, per, |w, i| async move {
                raw.put_secret_value()
                    .secret_id(put_paths[w].as_str())
                    .secret_string(format!("raw-value-{i:08}-0123456789"))
                    .send()
                    .await
                    .expect("PutSecretValue");
            })
            .await;

            let ideal = put_rate / used;
            println!(
                "{:<10} | {label:<7} | {workers:>4} | {rot_rate:>11.1} | {used:>14.2} | {put_rate:>20.1} | {ideal:>9.1} | {:>5.2}",
                strategy.as_str(),
                rot_rate / ideal
            );
            clean(store, &rot).await;
            clean(store, &puts).await;
        }
    }
}
