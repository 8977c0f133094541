//! The raw-read floor of `rekey status` on Vault / OpenBao: one plain HTTP
//! GET per secret, with no rekey code at all, on one `reqwest` client (the
//! HTTP stack the store uses), at a given concurrency, bodies read and
//! dropped.
//!
//! ```text
//! REKEY_TEST_VAULT_ADDR=http://127.0.0.1:8200 REKEY_TEST_VAULT_TOKEN=... \
//!   cargo run -p rekey-vault --release --example raw_reads -- \
//!     <prefix> <n> [concurrency=64] [endpoint=metadata|data] [rounds=1]
//! ```
//!
//! Reads `<mount>/<endpoint>/<prefix>/sNNNNN` for NNNNN = 00001..n (the
//! names `crates/rekey-cli/bench/scale.sh` seeds; mount `secret` unless
//! `REKEY_BENCH_MOUNT` says otherwise) and prints, per round, one line:
//! `raw <endpoint> reads: <n> in <secs> s (<rate>/s) at concurrency <c>`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use futures::StreamExt;

fn env(a: &str, b: &str) -> String {
    std::env::var(a).or_else(|_| std::env::var(b)).unwrap_or_else(|_| panic!("set {a} (or {b})"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let prefix = args.first().expect("usage: raw_reads <prefix> <n> [concurrency] [endpoint] [rounds]").clone();
    let n: usize = args.get(1).map_or(10_000, |s| s.parse().expect("n"));
    let conc: usize = args.get(2).map_or(64, |s| s.parse().expect("concurrency"));
    let endpoint = args.get(3).cloned().unwrap_or_else(|| "metadata".to_owned());
    assert!(endpoint == "metadata" || endpoint == "data", "endpoint is metadata or data");
    let rounds: usize = args.get(4).map_or(1, |s| s.parse().expect("rounds"));
    let addr = env("REKEY_TEST_VAULT_ADDR", "VAULT_ADDR");
    let token = env("REKEY_TEST_VAULT_TOKEN", "VAULT_TOKEN");
    let mount = std::env::var("REKEY_BENCH_MOUNT").unwrap_or_else(|_| "secret".to_owned());
    // The same runtime the `rekey` binary runs on (REKEY_BENCH_RUNTIME=current
    // for a single-threaded one, to compare).
    let rt = match std::env::var("REKEY_BENCH_RUNTIME").as_deref() {
        Ok("current") => tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap(),
    };
    rt.block_on(async move {
        let client = reqwest::Client::new();
        let urls: Vec<String> =
            (1..=n).map(|i| format!("{}/v1/{mount}/{endpoint}/{prefix}/s{i:05}", addr.trim_end_matches('/'))).collect();
        for _ in 0..rounds {
            let start = Instant::now();
            let failed = futures::stream::iter(&urls)
                .map(|u| {
                    let req = client.get(u).header("X-Vault-Token", &token);
                    async move {
                        match req.send().await {
                            Ok(r) => !r.status().is_success() | r.bytes().await.is_err(),
                            Err(_) => true,
                        }
                    }
                })
                .buffer_unordered(conc)
                .filter(|failed| std::future::ready(*failed))
                .count()
                .await;
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(failed, 0, "{failed} of {n} reads failed (wrong prefix, token or address?)");
            println!("raw {endpoint} reads: {n} in {secs:.3} s ({:.0}/s) at concurrency {conc}", n as f64 / secs);
        }
    });
}
