//! The raw write rate of an OpenBao/Vault KV v2 mount, for
//! `bench/throughput.sh`: `N` plain `POST /v1/secret/data/<prefix>/w<i>`
//! requests, `CONCURRENCY` in flight, over one keep-alive HTTP client (as
//! rekey's own store client uses). No rekey code on this path.
//!
//! ```text
//! REKEY_TEST_VAULT_ADDR=... REKEY_TEST_VAULT_TOKEN=... \
//!   cargo run --release -p rekey-cli --example kv_write_rate -- N CONCURRENCY PREFIX
//! ```
//!
//! Prints one line: `writes=N failed=F seconds=S per_second=R`.

use std::time::Instant;

use futures::StreamExt;

fn arg(i: usize, name: &str) -> Result<String, String> {
    std::env::args().nth(i).ok_or_else(|| format!("usage: kv_write_rate N CONCURRENCY PREFIX (missing {name})"))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let n: usize = arg(1, "N")?.parse().map_err(|e| format!("N: {e}"))?;
    let concurrency: usize = arg(2, "CONCURRENCY")?.parse().map_err(|e| format!("CONCURRENCY: {e}"))?;
    let prefix = arg(3, "PREFIX")?;
    let addr = std::env::var("REKEY_TEST_VAULT_ADDR").map_err(|_| "REKEY_TEST_VAULT_ADDR is not set".to_owned())?;
    let token = std::env::var("REKEY_TEST_VAULT_TOKEN").map_err(|_| "REKEY_TEST_VAULT_TOKEN is not set".to_owned())?;
    let http = reqwest::Client::new();
    let (http, addr, token, prefix) = (&http, &addr, &token, &prefix);
    let started = Instant::now();
    let failed = futures::stream::iter(0..n)
        .map(|i| async move {
            let body = format!("{{\"data\":{{\"value\":\"raw-write-{i}\"}}}}");
            let r = http
                .post(format!("{addr}/v1/secret/data/{prefix}/w{i}"))
                .header("X-Vault-Token", token.as_str())
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await;
            match r {
                Ok(resp) => {
                    let ok = resp.status().is_success();
                    // Read the body so the connection goes back to the pool.
                    let _ = resp.bytes().await;
                    usize::from(!ok)
                }
                Err(_) => 1,
            }
        })
        .buffer_unordered(concurrency.max(1))
        .fold(0usize, |acc, f| async move { acc + f })
        .await;
    let secs = started.elapsed().as_secs_f64();
    let ok = n - failed;
    println!("writes={n} failed={failed} seconds={secs:.3} per_second={:.1}", ok as f64 / secs.max(1e-9));
    if failed > 0 {
        return Err(format!("{failed} of {n} writes failed"));
    }
    Ok(())
}
