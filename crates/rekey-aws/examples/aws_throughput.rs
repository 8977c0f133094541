//! Measures rekey's AWS store against a Secrets Manager endpoint (moto in
//! the project's tests):
//!
//! * the API calls of one staged rotation, by operation: the store protocol
//!   alone (read current, stage, promote) with and without the token
//!   pre-check, and a whole `RotationManager` rotation (journal included);
//! * rotations per second with 1 and with 32 concurrent rotations (each on
//!   its own secret), through the engine and through the bare protocol;
//! * a baseline of raw `PutSecretValue` calls per second in the same run,
//!   and the ratios.
//!
//! ```text
//! REKEY_TEST_STATE=/tmp/s scripts/servers.sh start moto && source /tmp/s/env
//! cargo run -p rekey-aws --release --example aws_throughput
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use futures::future::join_all;
use rekey_aws::{ApiCallCounter, AwsConfig, AwsSecretsStore};
use rekey_core::{
    DynSecretStore, RotationId, RotationManager, RotationPolicy, RotationStrategy, SecretData, SecretPath, SecretStore,
    SecretStoreExt, SystemClock, Verifier, VerifyContext, VerifyError,
};

#[derive(Debug)]
struct AlwaysOk;

#[async_trait]
impl Verifier for AlwaysOk {
    fn name(&self) -> &str {
        "ok"
    }
    async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        Ok(())
    }
}

struct Setup {
    store: AwsSecretsStore,
    counter: ApiCallCounter,
    client: Client,
    prefix: String,
}

async fn setup(endpoint: &str) -> Setup {
    let cfg = AwsConfig::default()
        .with_region("us-east-1")
        .with_endpoint_url(endpoint)
        .with_static_credentials("test", "test")
        .with_max_attempts(1)
        .for_moto();
    let counter = ApiCallCounter::new();
    let sdk = cfg.sdk_config().await.expect("sdk config");
    let conf = aws_sdk_secretsmanager::config::Builder::from(&sdk).interceptor(counter.clone()).build();
    let client = Client::from_conf(conf);
    let store = AwsSecretsStore::new(client.clone()).with_version_dates_from_reads(true);
    let prefix = format!("rekey-bench/{}", uuid::Uuid::new_v4().simple());
    Setup { store, counter, client, prefix }
}

fn path(prefix: &str, name: &str) -> SecretPath {
    format!("{prefix}/{name}").parse().expect("path")
}

/// One staged rotation through the bare store protocol.
async fn protocol_rotation(store: &AwsSecretsStore, p: &SecretPath, n: usize) {
    let current = store.current(p).await.expect("read current");
    let candidate = store.stage(p, SecretData::text(format!("value-{n}")), RotationId::new()).await.expect("stage");
    store.promote(p, &candidate.id, &current.meta.id).await.expect("promote");
}

fn manager(store: Arc<DynSecretStore>) -> RotationManager {
    RotationManager::builder(store)
        .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .verifier(Arc::new(AlwaysOk))
        .max_concurrency(64)
        .build()
        .expect("manager")
}

fn policy() -> RotationPolicy {
    RotationPolicy::builder("bench")
        .strategy(RotationStrategy::Staged)
        .require_verification(true)
        .verification_tests(["ok"])
        .build()
        .expect("policy")
}

/// `workers` concurrent workers, each doing `per_worker` operations on its
/// own secret; operations per second.
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
    let paths: Vec<_> = (0..n).map(|i| path(prefix, &format!("{tag}-{i}"))).collect();
    for p in &paths {
        store.create(p, SecretData::text("initial")).await.expect("create");
    }
    paths
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Ok(endpoint) = std::env::var("REKEY_TEST_AWS_ENDPOINT") else {
        eprintln!("REKEY_TEST_AWS_ENDPOINT is not set: start moto with scripts/servers.sh start moto");
        std::process::exit(2);
    };
    let s = setup(&endpoint).await;
    println!("endpoint {endpoint} (moto unless told otherwise)");

    // --- API calls of one staged rotation ---------------------------------
    let one = seed(&s.store, &s.prefix, "calls", 1).await;
    for precheck in [true, false] {
        let store = s.store.clone().with_token_precheck(precheck);
        s.counter.reset();
        protocol_rotation(&store, &one[0], 0).await;
        println!(
            "API calls, store protocol (read current, stage, promote), token pre-check {}: {} {:?}",
            if precheck { "on " } else { "off" },
            s.counter.total(),
            s.counter.by_operation()
        );
    }
    let store_dyn: Arc<DynSecretStore> = Arc::new(s.store.clone());
    let mgr = manager(store_dyn.clone());
    let pol = policy();
    s.counter.reset();
    let r = mgr.rotate_secret(&one[0], &pol, None).await;
    assert!(r.success(), "{r}");
    println!(
        "API calls, RotationManager staged rotation with verifier (journal included): {} {:?}",
        s.counter.total(),
        s.counter.by_operation()
    );

    // --- throughput ---------------------------------------------------------
    const PER_WORKER_1: usize = 60;
    const PER_WORKER_32: usize = 6;
    let mut rows = Vec::new();
    for workers in [1usize, 32] {
        let per = if workers == 1 { PER_WORKER_1 } else { PER_WORKER_32 };

        let puts = seed(&s.store, &s.prefix, &format!("put{workers}"), workers).await;
        let client = &s.client;
        let put_rate = run(workers, per * 3, |w, i| {
            let name = puts[w].as_str().to_owned();
            async move {
                client.put_secret_value().secret_id(name).secret_string(format!("raw-{i}")).send().await.expect("put");
            }
        })
        .await;

        let proto = seed(&s.store, &s.prefix, &format!("proto{workers}"), workers).await;
        let store = &s.store;
        let proto_rate = run(workers, per, |w, i| protocol_rotation(store, &proto[w], i)).await;

        let eng = seed(&s.store, &s.prefix, &format!("engine{workers}"), workers).await;
        let (mgr, pol) = (&mgr, &pol);
        let engine_rate = run(workers, per, |w, _| {
            let p = eng[w].clone();
            async move {
                let r = mgr.rotate_secret(&p, pol, None).await;
                assert!(r.success(), "{r}");
            }
        })
        .await;
        rows.push((workers, put_rate, proto_rate, engine_rate));
        for p in puts.iter().chain(&proto).chain(&eng) {
            let _ = s.store.delete(p).await;
        }
    }
    println!();
    println!("concurrency | raw PutSecretValue/s | protocol rotations/s (ratio) | engine rotations/s (ratio)");
    for (w, put, proto, eng) in rows {
        println!("{w:>11} | {put:>20.1} | {proto:>15.1} ({:>5.3}) | {eng:>13.1} ({:>5.3})", proto / put, eng / put);
    }
    let _ = s.store.delete(&one[0]).await;
}
