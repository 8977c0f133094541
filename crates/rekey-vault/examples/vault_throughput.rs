//! Measures rekey on Vault / OpenBao and prints the figures:
//!
//! * the HTTP requests of one staged rotation (store level, and through the
//!   rotation engine with its journal);
//! * staged rotations per second with 1 and 32 concurrent rotations (store
//!   level: read current + stage + promote; and engine level:
//!   `RotationManager::rotate_secret` with the staged strategy);
//! * the raw KV v2 writes per second of the same server, in the same run,
//!   as the baseline.
//!
//! ```text
//! REKEY_TEST_VAULT_ADDR=http://127.0.0.1:8200 REKEY_TEST_VAULT_TOKEN=... \
//!   cargo run -p rekey-vault --release --example vault_throughput
//! ```
//!
//! `REKEY_BENCH_SECS` sets the length of each measurement (default 3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rekey_core::{
    DynSecretStore, RotationId, RotationManager, RotationPolicy, RotationStrategy, SecretData, SecretPath, SecretStore,
    SecretStoreExt, SystemClock,
};
use rekey_memory::{FaultInjectingStore, Method};
use rekey_vault::{VaultAuth, VaultConfig, VaultStore};
use vaultrs::client::{VaultClient, VaultClientSettings};

fn env(a: &str, b: &str) -> String {
    std::env::var(a).or_else(|_| std::env::var(b)).unwrap_or_else(|_| panic!("set {a} (or {b})"))
}

/// Runs `per_task(task, i)` in `tasks` concurrent loops for `secs`; returns
/// operations per second.
async fn rate<F, Fut>(tasks: usize, secs: Duration, per_task: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(per_task);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let f = f.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed() < secs {
                    f(t, n).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let addr = env("REKEY_TEST_VAULT_ADDR", "VAULT_ADDR");
    let token = env("REKEY_TEST_VAULT_TOKEN", "VAULT_TOKEN");
    let secs = Duration::from_secs(std::env::var("REKEY_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3));
    let prefix = format!("rekey-bench/{}", uuid::Uuid::new_v4().simple());
    let store =
        VaultStore::connect(VaultConfig::new(&addr, VaultAuth::Token(token.clone().into()))).await.expect("connect");
    let path = |t: usize| -> SecretPath { format!("{prefix}/s{t}").parse().unwrap() };
    for t in 0..32 {
        store.create(&path(t), SecretData::text(format!("initial-{t}"))).await.unwrap();
    }

    // Round trips of one staged rotation, store level.
    let p = path(0);
    let n0 = store.requests_sent();
    let cur = store.current(&p).await.unwrap();
    let staged = store.stage(&p, SecretData::text("next"), RotationId::new()).await.unwrap();
    store.promote(&p, &staged.id, &cur.meta.id).await.unwrap();
    let store_trips = store.requests_sent() - n0;

    // Through the engine (journal included), counted per store method.
    let counting = Arc::new(FaultInjectingStore::new(store.clone()));
    let dyn_store: Arc<DynSecretStore> = counting.clone();
    let manager = RotationManager::builder(dyn_store)
        .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .max_concurrency(32)
        .build()
        .unwrap();
    let policy = Arc::new(RotationPolicy::builder("bench").strategy(RotationStrategy::Staged).build().unwrap());
    let n0 = store.requests_sent();
    let r = manager.rotate_secret(&p, &policy, None).await;
    assert!(r.success(), "{r}");
    let engine_trips = store.requests_sent() - n0;
    let calls: Vec<String> = Method::ALL
        .iter()
        .filter(|m| counting.calls(**m) > 0)
        .map(|m| format!("{} {}", m.as_str(), counting.calls(*m)))
        .collect();

    println!("server {addr}, {}s per measurement", secs.as_secs());
    println!("one staged rotation, store level (read current + stage + promote): {store_trips} HTTP requests");
    println!(
        "one staged rotation, engine (RotationManager, journal included): {engine_trips} HTTP requests; store calls: {}",
        calls.join(", ")
    );

    // Baseline: raw KV v2 writes through vaultrs, no rekey.
    let raw = Arc::new(
        VaultClient::new(VaultClientSettings {
            address: addr.parse().unwrap(),
            ca_certs: vec![],
            identity: None,
            timeout: Some(Duration::from_secs(30)),
            token: token.clone(),
            verify: true,
            version: 1,
            wrapping: false,
            namespace: None,
            proxy: None,
        })
        .unwrap(),
    );
    let mut rows = Vec::new();
    for conc in [1usize, 32] {
        let (c, pre) = (raw.clone(), prefix.clone());
        let kv = rate(conc, secs, move |t, i| {
            let (c, pre) = (c.clone(), pre.clone());
            async move {
                let mut data = std::collections::HashMap::new();
                data.insert("value", format!("raw-{i}"));
                vaultrs::kv2::set(&*c, "secret", &format!("{pre}/raw{t}"), &data).await.unwrap();
            }
        })
        .await;

        let s = store.clone();
        let pfx = prefix.clone();
        let n0 = store.requests_sent();
        let t0 = Instant::now();
        let store_rate = rate(conc, secs, move |t, i| {
            let s = s.clone();
            let p: SecretPath = format!("{pfx}/s{t}").parse().unwrap();
            async move {
                let cur = s.current(&p).await.unwrap();
                let staged = s.stage(&p, SecretData::text(format!("v{i}")), RotationId::new()).await.unwrap();
                s.promote(&p, &staged.id, &cur.meta.id).await.unwrap();
            }
        })
        .await;
        let store_rps = (store.requests_sent() - n0) as f64 / t0.elapsed().as_secs_f64();

        let (m, pol, pfx) = (manager.clone(), policy.clone(), prefix.clone());
        let engine_rate = rate(conc, secs, move |t, _| {
            let (m, pol) = (m.clone(), pol.clone());
            let p: SecretPath = format!("{pfx}/s{t}").parse().unwrap();
            async move {
                let r = m.rotate_secret(&p, &pol, None).await;
                assert!(r.success(), "{r}");
            }
        })
        .await;
        rows.push((conc, kv, store_rate, store_rps, engine_rate));
    }
    println!();
    println!(
        "concurrency | raw KV writes/s | store-level rotations/s (ratio to raw) | store req/s | engine rotations/s (ratio to raw)"
    );
    for (conc, kv, st, rps, en) in rows {
        println!(
            "{conc:>11} | {kv:>15.0} | {st:>10.0} ({:>5.3}) | {rps:>11.0} | {en:>10.0} ({:>5.3})",
            st / kv,
            en / kv
        );
    }
    // Clean up what the run wrote.
    for t in 0..32 {
        let _ = store.delete(&path(t)).await;
        let _ = vaultrs::kv2::delete_metadata(&*raw, "secret", &format!("{prefix}/raw{t}")).await;
    }
}
