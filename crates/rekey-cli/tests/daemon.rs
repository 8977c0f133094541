//! `rekey run` against a real OpenBao: scheduled rotations, /metrics,
//! SIGTERM in the middle of a rotation, a crashed rotation cleaned up at
//! start-up, and three daemons sharing one store
//! (each due secret rotated exactly once per due time, counted in KV
//! versions, with no lock beyond the store's compare-and-swap).
#![cfg(feature = "vault")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(url: &str) -> Option<(u16, String)> {
    let r = reqwest::Client::new().get(url).timeout(Duration::from_secs(2)).send().await.ok()?;
    let s = r.status().as_u16();
    Some((s, r.text().await.unwrap_or_default()))
}

async fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some((200, _)) = get(&format!("http://127.0.0.1:{port}/healthz")).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the daemon did not come up on port {port}");
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

/// Sends SIGTERM to a process this test started, by its pid.
fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let ok = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs").success();
    assert!(ok, "kill -TERM {pid}");
}

async fn stop(child: tokio::process::Child) -> Run {
    sigterm(&child);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the daemon exits after SIGTERM")
        .expect("output");
    keep_output(&out)
}

fn spawn(cfg: &std::path::Path, port: u16, token: &str) -> tokio::process::Child {
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = command(cfg, &["run", "--json", "--listen", &listen], &[("VAULT_TOKEN", token)]);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    cmd.spawn().expect("rekey run starts")
}

#[tokio::test]
async fn run_rotates_on_schedule_serves_metrics_and_stops_on_sigterm() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("daemon");
    let dir = scratch("daemon");
    let paths: Vec<String> = (0..2).map(|i| format!("{prefix}/s{i}")).collect();
    let mut cfg = format!("{}[policies.fast]\nschedule = \"every 2s\"\nstrategy = \"staged\"\n", vault_store(&bao));
    for p in &paths {
        cfg.push_str(&format!("[[secret]]\npath = \"{p}\"\npolicy = \"fast\"\n"));
        bao.put(p, json!({ "value": format!("daemon-initial-{p}") })).await;
    }
    let cfg = write_config(&dir, &cfg);
    let port = free_port();
    let child = spawn(&cfg, port, &bao.token);
    wait_healthy(port).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (status, metrics) = get(&format!("http://127.0.0.1:{port}/metrics")).await.expect("metrics");
    assert_eq!(status, 200);
    let rotated = metric(&metrics, "rekey_rotations_total{outcome=\"rotated\"}");
    assert_eq!(metric(&metrics, "rekey_rotations_total{outcome=\"failed\"}"), 0.0);
    assert_eq!(metric(&metrics, "rekey_scheduled_secrets"), 2.0);
    assert!(metric(&metrics, "rekey_next_due_timestamp_seconds") > 0.0);
    assert_eq!(metric(&metrics, "rekey_rotation_duration_seconds_count"), rotated);
    // The store's requests by operation: a staged rotation writes twice
    // (the candidate to the staging path, then the new version).
    assert!(metric(&metrics, "rekey_store_requests_total{op=\"kv_write\"}") >= 2.0 * rotated);
    assert_eq!(metric(&metrics, "rekey_store_up"), 1.0);
    assert!(metric(&metrics, "rekey_resyncs_total") >= 1.0);
    let (status, health) = get(&format!("http://127.0.0.1:{port}/healthz")).await.expect("healthz");
    assert_eq!(status, 200, "{health}");
    assert!(health.contains(r#""available":true"#), "{health}");
    assert_eq!(get(&format!("http://127.0.0.1:{port}/livez")).await.map(|r| r.0), Some(200));
    let run = stop(child).await;
    assert_eq!(run.code, 0, "clean exit after SIGTERM\n{}", run.stderr);
    let summary = run.json();
    let total_rotated = summary["rotations"]["rotated"].as_u64().unwrap_or(0);
    assert!(total_rotated as f64 >= rotated);

    let mut new_versions = 0;
    let mut secrets_seen = Vec::new();
    for p in &paths {
        let (current, versions, custom) = bao.metadata(p).await;
        new_versions += current - 1;
        // ~7 s at one rotation per 2 s: 3 (or 4) each, never two per due time.
        assert!((2..=5).contains(&(current - 1)), "{p}: {} rotations", current - 1);
        for w in versions.windows(2) {
            assert!(
                w[1].1 - w[0].1 >= 1.99,
                "{p}: versions {} and {} only {:.3}s apart",
                w[0].0,
                w[1].0,
                w[1].1 - w[0].1
            );
        }
        assert!(!bao.staged(p).await, "{p}: no candidate left staged");
        assert!(custom.get("rekey.rotation").is_none_or(serde_json::Value::is_null), "{p}: no journal left: {custom}");
        secrets_seen.push(bao.read(p).await["value"].as_str().unwrap().to_owned());
        secrets_seen.push(format!("daemon-initial-{p}"));
    }
    assert_eq!(new_versions, total_rotated, "the daemon's own count matches the store's versions");
    eprintln!(
        "daemon: {total_rotated} rotations in ~7 s over 2 secrets at every 2s; /metrics said {rotated} before SIGTERM"
    );
    assert_no_leak(&secrets_seen);
}

#[tokio::test]
async fn sigterm_mid_rotation_lets_it_finish_and_leaves_nothing_pending() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("sigterm");
    let dir = scratch("sigterm");
    let path = format!("{prefix}/slow");
    let cfg = format!(
        r#"{store}
[policies.slow]
schedule = "every 1s"
strategy = "staged"
require_verification = true
verification_tests = ["slow-check"]

[[verifier]]
name = "slow-check"
type = "command"
program = "/bin/sleep"
args = ["3"]
timeout = "20s"

[[secret]]
path = "{path}"
policy = "slow"

[daemon]
shutdown_timeout = "20s"
"#,
        store = vault_store(&bao)
    );
    bao.put(&path, json!({ "value": "sigterm-initial-s3cr3t-1" })).await;
    let cfg = write_config(&dir, &cfg);
    let port = free_port();
    let child = spawn(&cfg, port, &bao.token);
    wait_healthy(port).await;
    // Wait until a rotation is in its (3 s) verification.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, m) = get(&format!("http://127.0.0.1:{port}/metrics")).await.expect("metrics");
        if metric(&m, "rekey_rotations_in_flight") >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no rotation started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // In flight counts from the rotation's start; the candidate is staged a
    // moment later, then verified for 3 s.
    while !bao.staged(&path).await {
        assert!(Instant::now() < deadline, "the candidate is staged while it is verified");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (before, _, _) = bao.metadata(&path).await;
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = get(&format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(matches!(health, Some((503, ref b)) if b.contains("stopping")), "{health:?}");
    let out =
        tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.expect("exits").expect("output");
    let run = keep_output(&out);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["interrupted"], false);
    let (after, _, custom) = bao.metadata(&path).await;
    assert_eq!(after, before + 1, "the in-flight rotation finished and was promoted; no new one started");
    assert!(!bao.staged(&path).await, "no candidate left pending");
    assert!(custom.get("rekey.rotation").is_none_or(serde_json::Value::is_null), "no journal left: {custom}");
    let now = bao.read(&path).await["value"].as_str().unwrap().to_owned();
    assert_no_leak(&["sigterm-initial-s3cr3t-1".to_owned(), now]);
}

#[tokio::test]
async fn sigterm_past_the_deadline_leaves_work_for_the_next_run_to_clean_up() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("deadline");
    let dir = scratch("deadline");
    let path = format!("{prefix}/slow");
    let cfg = format!(
        r#"{store}
[policies.slow]
schedule = "every 1s"
strategy = "staged"
require_verification = true
verification_tests = ["slow-check"]

[[verifier]]
name = "slow-check"
type = "command"
program = "/bin/sleep"
args = ["30"]
timeout = "60s"

[[secret]]
path = "{path}"
policy = "slow"

[daemon]
shutdown_timeout = "1s"
"#,
        store = vault_store(&bao)
    );
    bao.put(&path, json!({ "value": "deadline-initial-s3cr3t-1" })).await;
    let cfg = write_config(&dir, &cfg);
    let port = free_port();
    let child = spawn(&cfg, port, &bao.token);
    wait_healthy(port).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !bao.staged(&path).await {
        assert!(Instant::now() < deadline, "no rotation started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let run = stop(child).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(10), "the daemon honours its shutdown deadline");
    assert_eq!(run.json()["interrupted"], true);
    assert_eq!(bao.read(&path).await["value"], "deadline-initial-s3cr3t-1", "the current value is untouched");
    // The next run (here: a manual rotation with a fast verifier) cleans up.
    let fast = std::fs::read_to_string(&cfg).unwrap().replace("args = [\"30\"]", "args = [\"0\"]");
    let cfg = write_config(&dir, &fast);
    let r = rekey(&cfg, &["rotate", &path, "--json"], &[("VAULT_TOKEN", bao.token.as_str())]).await;
    // The interrupted rotation's journal is fresh and owned by the dead
    // process: the engine reports it in progress elsewhere until it is stale.
    let outcome = r.json()["results"][0]["outcome"].as_str().unwrap_or_default().to_owned();
    assert!(outcome == "rotated" || outcome == "in_progress_elsewhere", "{}", r.stdout);
    assert_no_leak(&["deadline-initial-s3cr3t-1".to_owned()]);
}

/// Three daemons, one config, one OpenBao: every due time of every secret
/// produces exactly one KV version.
#[tokio::test]
async fn three_daemons_rotate_each_due_secret_exactly_once() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("three");
    let dir = scratch("three");
    const SECRETS: usize = 5;
    const PERIOD: f64 = 3.0;
    let paths: Vec<String> = (0..SECRETS).map(|i| format!("{prefix}/s{i}")).collect();
    let mut cfg =
        format!("{}[policies.tick]\nschedule = \"cron: */3 * * * * *\"\nstrategy = \"staged\"\n", vault_store(&bao));
    for p in &paths {
        cfg.push_str(&format!("[[secret]]\npath = \"{p}\"\npolicy = \"tick\"\n"));
        bao.put(p, json!({ "value": format!("three-initial-{p}") })).await;
    }
    let cfg = write_config(&dir, &cfg);
    let ports = [free_port(), free_port(), free_port()];
    let children: Vec<_> = ports.iter().map(|p| spawn(&cfg, *p, &bao.token)).collect();
    for p in ports {
        wait_healthy(p).await;
    }
    let t0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(16)).await;
    let mut by_daemon = Vec::new();
    for c in children {
        let run = stop(c).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        let j = run.json();
        by_daemon.push(j["rotations"].clone());
    }
    let t1 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let rotated_by_daemons: u64 = by_daemon.iter().map(|r| r["rotated"].as_u64().unwrap_or(0)).sum();
    let mut total = 0u64;
    let mut per_secret = Vec::new();
    for p in &paths {
        let (current, versions, _) = bao.metadata(p).await;
        let rotations: Vec<f64> = versions.iter().skip(1).map(|v| v.1).collect();
        assert_eq!(rotations.len() as u64, current - 1);
        // Each rotation belongs to the due time (a multiple of 3 s) before it.
        let mut ticks: Vec<i64> = rotations.iter().map(|t| (t / PERIOD).floor() as i64).collect();
        let n = ticks.len();
        ticks.dedup();
        assert_eq!(ticks.len(), n, "{p}: two rotations for one due time: {rotations:?}");
        // Every due time while all three ran was served (first and last may straddle the window).
        let due_in_window = ((t1 / PERIOD).floor() - (t0 / PERIOD).ceil()) as i64 + 1;
        let served = ticks.iter().filter(|t| (**t as f64) * PERIOD >= t0 && (**t as f64) * PERIOD <= t1).count() as i64;
        assert!(served >= due_in_window - 1, "{p}: {served} of {due_in_window} due times rotated");
        total += current - 1;
        per_secret.push(current - 1);
    }
    assert_eq!(rotated_by_daemons, total, "the daemons' counts add up to the store's versions: {by_daemon:?}");
    eprintln!(
        "three daemons, {SECRETS} secrets, cron every 3 s, {:.1} s: KV versions per secret {per_secret:?} \
         (total {total}); rotations per daemon {:?}",
        t1 - t0,
        by_daemon.iter().map(|r| r["rotated"].as_u64().unwrap_or(0)).collect::<Vec<_>>()
    );
}

/// A secret that keeps failing is quarantined by the daemon (and stays so
/// in the store, for every process); `rekey resume` makes the daemon pick it
/// up again.
#[tokio::test]
async fn daemon_quarantines_a_failing_secret_and_resume_reschedules_it() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("dq");
    let dir = scratch("dq");
    let path = format!("{prefix}/bad");
    let cfg = format!(
        r#"{store}
[policies.failing]
schedule = "every 1s"
strategy = "staged"
require_verification = true
verification_tests = ["never"]
quarantine_after = 2
max_retries = 0
initial_backoff = "100ms"
max_backoff = "200ms"
failure_backoff = "200ms"
max_failure_backoff = "400ms"

[[verifier]]
name = "never"
type = "command"
program = "/bin/false"

[[secret]]
path = "{path}"
policy = "failing"

[daemon]
resync_interval = "1s"
"#,
        store = vault_store(&bao)
    );
    bao.put(&path, json!({ "value": "dq-initial-s3cr3t-value" })).await;
    let cfg = write_config(&dir, &cfg);
    let port = free_port();
    let child = spawn(&cfg, port, &bao.token);
    wait_healthy(port).await;
    let url = format!("http://127.0.0.1:{port}/metrics");
    let wait_for = |want_failed: f64| {
        let url = url.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (_, m) = get(&url).await.expect("metrics");
                if metric(&m, "rekey_rotations_total{outcome=\"rolled_back\"}")
                    + metric(&m, "rekey_rotations_total{outcome=\"failed\"}")
                    >= want_failed
                    && metric(&m, "rekey_quarantined_secrets") == 1.0
                {
                    return m;
                }
                assert!(Instant::now() < deadline, "not quarantined after {want_failed} failures:\n{m}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let m = wait_for(2.0).await;
    assert_eq!(metric(&m, "rekey_scheduled_secrets"), 0.0);
    // Quarantined: no more attempts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, m2) = get(&url).await.unwrap();
    let failures = |m: &str| {
        metric(m, "rekey_rotations_total{outcome=\"rolled_back\"}")
            + metric(m, "rekey_rotations_total{outcome=\"failed\"}")
    };
    assert_eq!(failures(&m2), 2.0, "no attempts while quarantined");
    let env = [("VAULT_TOKEN", bao.token.as_str())];
    let r = rekey(&cfg, &["status", "--json"], &env).await;
    assert_eq!(r.json()["secrets"][0]["quarantined"], true);

    let r = rekey(&cfg, &["resume", &path], &env).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The daemon re-reads the store, schedules it again, fails twice more.
    let m3 = wait_for(4.0).await;
    assert!(failures(&m3) >= 4.0);
    let run = stop(child).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(bao.metadata(&path).await.0, 1, "no failed rotation created a version");
    assert!(!bao.staged(&path).await);
    assert_no_leak(&["dq-initial-s3cr3t-value".to_owned()]);
}

/// A TCP forwarder to the store that can be switched off (connections
/// refused by closing them at once): a store outage on demand.
struct Switch {
    port: u16,
    on: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Switch {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let on = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = on.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !flag.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self { port, on }
    }

    fn set(&self, on: bool) {
        self.on.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Issue 11 point 3: a daemon that starts while its store cannot be reached
/// says so (`/healthz` 503 `degraded` with the error, `rekey_store_up` 0,
/// `/livez` still 200), quarantines nothing, and once the store answers
/// schedules and rotates the overdue secret within a resync.
#[tokio::test]
async fn a_store_outage_is_reported_degraded_and_rotation_resumes_when_it_ends() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("outage");
    let dir = scratch("outage");
    let path = format!("{prefix}/s");
    bao.put(&path, json!({ "value": "outage-initial" })).await;
    let target = bao.addr.trim_start_matches("http://").to_owned();
    let switch = Switch::start(target).await;
    let cfg = format!(
        "[store]\ntype = \"vault\"\naddress = \"http://127.0.0.1:{}\"\nmount = \"secret\"\n\
         [daemon]\nresync_interval = \"1s\"\n\
         [policies.fast]\nschedule = \"every 2s\"\nstrategy = \"staged\"\n\
         [[secret]]\npath = \"{path}\"\npolicy = \"fast\"\n",
        switch.port
    );
    let cfg = write_config(&dir, &cfg);
    let port = free_port();
    let child = spawn(&cfg, port, &bao.token);
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        if let Some((503, body)) = get(&url("/healthz")).await
            && body.contains("degraded")
        {
            break body;
        }
        assert!(Instant::now() < deadline, "/healthz never said degraded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(health.contains(r#""available":false"#) && health.contains(r#""error":""#), "{health}");
    assert_eq!(get(&url("/livez")).await.map(|r| r.0), Some(200));
    let (_, metrics) = get(&url("/metrics")).await.expect("metrics");
    assert_eq!(metric(&metrics, "rekey_store_up"), 0.0);
    assert!(metric(&metrics, "rekey_store_unavailable_since_timestamp_seconds") > 0.0);
    assert_eq!(metric(&metrics, "rekey_quarantined_secrets"), 0.0);
    // Several resyncs fail; none of them counts against the secret.
    tokio::time::sleep(Duration::from_secs(3)).await;

    switch.set(true);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (current, _, _) = bao.metadata(&path).await;
        if current >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no rotation within 20 s after the store came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, health) = get(&url("/healthz")).await.expect("healthz");
    assert_eq!(status, 200, "{health}");
    let (_, metrics) = get(&url("/metrics")).await.expect("metrics");
    assert_eq!(metric(&metrics, "rekey_store_up"), 1.0);
    assert_eq!(metric(&metrics, "rekey_quarantined_secrets"), 0.0);
    let run = stop(child).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[tokio::test]
async fn a_crashed_rotation_is_cleaned_up_at_start_up_not_at_its_next_due_time() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("crashed");
    let dir = scratch("crashed");
    let path = format!("{prefix}/k");
    bao.put(&path, json!({ "value": "crashed-initial-s3cr3t-0001" })).await;
    // What a rotation of another process leaves when it dies after its
    // journal (a credential target may then hold a value the store does not
    // serve): long stale.
    let journal = "id=0b9d6c1e-6f0e-4a43-9d3c-6a4f4f0e2b11 step=stage strategy=staged \
                   started=2020-01-01T00:00:00.000Z owner=crashed-process checks=yes base=1";
    bao.patch_custom_metadata(&path, json!({ "rekey.rotation": journal })).await;
    let cfg = format!(
        "{}[policies.slow]\nschedule = \"every 90d\"\nstrategy = \"staged\"\n[[secret]]\npath = \"{path}\"\npolicy = \"slow\"\n",
        vault_store(&bao)
    );
    let cfg = write_config(&dir, &cfg);
    let port = free_port();
    let child = spawn(&cfg, port, &bao.token);
    wait_healthy(port).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut custom = json!({});
    while Instant::now() < deadline {
        custom = bao.metadata(&path).await.2;
        if custom.get("rekey.rotation").is_none_or(serde_json::Value::is_null) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, metrics) = get(&format!("http://127.0.0.1:{port}/metrics")).await.expect("metrics");
    assert_eq!(status, 200);
    let run = stop(child).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        custom.get("rekey.rotation").is_none_or(serde_json::Value::is_null),
        "the daemon cleaned up the crashed rotation at start-up: {custom}\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("cleaned up a crashed rotation before scheduling"), "{}", run.stderr);
    // Cleaned up, not rotated (the secret is not due for 90 days), and
    // scheduled in the same pass.
    assert_eq!(bao.metadata(&path).await.0, 1, "no rotation");
    assert_eq!(metric(&metrics, "rekey_scheduled_secrets"), 1.0, "{metrics}");
    assert_eq!(metric(&metrics, "rekey_rotations_total{outcome=\"rotated\"}"), 0.0);
}

/// What another process leaves beside a secret the daemon already schedules
/// is acted on within `recheck_interval`, not at the secret's next due time
/// (90 days here): a crashed rotation's journal is cleaned up, and the
/// credential a one-shot dual-write `rekey rotate` replaced is retired once
/// its grace period ends. The recheck reads each secret once per interval.
#[tokio::test]
async fn what_another_process_leaves_is_acted_on_within_the_recheck_interval() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("recheck");
    let dir = scratch("recheck");
    let (crashed, dual) = (format!("{prefix}/crashed"), format!("{prefix}/dual"));
    bao.put(&crashed, json!({ "value": "recheck-initial-s3cr3t-0001" })).await;
    bao.put(&dual, json!({ "value": "recheck-initial-s3cr3t-0002" })).await;
    let cfg = format!(
        "{}[daemon]\nresync_interval = \"1s\"\nrecheck_interval = \"2s\"\n\
         [policies.slow]\nschedule = \"every 90d\"\nstrategy = \"staged\"\n\
         [policies.dual]\nschedule = \"every 90d\"\nstrategy = \"dual_write\"\ngrace_period = \"2s\"\n\
         [[secret]]\npath = \"{crashed}\"\npolicy = \"slow\"\n[[secret]]\npath = \"{dual}\"\npolicy = \"dual\"\n",
        vault_store(&bao)
    );
    let cfg = write_config(&dir, &cfg);
    let port = free_port();
    let child = spawn(&cfg, port, &bao.token);
    wait_healthy(port).await;

    // After the daemon has scheduled both: another process dies mid-rotation
    // of one, and a one-shot rotation of the other leaves a retire step.
    let journal = "id=5d0c1a8e-7b61-4f39-a2c4-0c9e6c1f2b22 step=stage strategy=staged \
                   started=2020-01-01T00:00:00.000Z owner=crashed-process checks=yes base=1";
    bao.patch_custom_metadata(&crashed, json!({ "rekey.rotation": journal })).await;
    let r = rekey(&cfg, &["rotate", &dual, "--json"], &[("VAULT_TOKEN", bao.token.as_str())]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let left = bao.metadata(&dual).await.2;
    assert!(left.get("rekey.retire.deadline").is_some_and(|v| !v.is_null()), "a retire step: {left}");

    let gone = |custom: &serde_json::Value, key: &str| custom.get(key).is_none_or(serde_json::Value::is_null);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut a, mut b) = (json!({}), json!({}));
    while Instant::now() < deadline {
        (a, b) = (bao.metadata(&crashed).await.2, bao.metadata(&dual).await.2);
        if gone(&a, "rekey.rotation") && gone(&b, "rekey.retire.deadline") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, metrics) = get(&format!("http://127.0.0.1:{port}/metrics")).await.expect("metrics");
    let run = stop(child).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(gone(&a, "rekey.rotation"), "the crashed rotation was cleaned up: {a}\n{}", run.stderr);
    assert!(gone(&b, "rekey.retire.deadline"), "the replaced credential was retired: {b}\n{}", run.stderr);
    assert!(run.stderr.contains("cleaned up a crashed rotation found by the recheck"), "{}", run.stderr);
    assert!(run.stderr.contains("recheck: the secret changed outside this daemon"), "{}", run.stderr);
    assert!(metric(&metrics, "rekey_rechecks_total") >= 2.0, "{metrics}");
    // Cleaned up and retired, not rotated: neither is due for 90 days.
    assert_eq!(bao.metadata(&crashed).await.0, 1, "no rotation of the crashed secret");
    assert_eq!(bao.metadata(&dual).await.0, 2, "only the one-shot rotation");
    assert_eq!(metric(&metrics, "rekey_rotations_total{outcome=\"rotated\"}"), 0.0);
}

/// A TCP relay to `upstream` (`host:port`) that holds every chunk a client
/// sends for `delay` (a store that far away) and records the most
/// connections waiting for an answer at once.
async fn slow_relay(upstream: String, delay: Duration) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("relay binds");
    let port = listener.local_addr().expect("relay address").port();
    let (waiting, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let max = most.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            // Whether this connection has a request out (HTTP/1.1: one at a time).
            let out = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (w, m, o) = (waiting.clone(), most.clone(), out.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = cr.read(&mut buf).await {
                    if !o.swap(true, Ordering::SeqCst) {
                        let now = w.fetch_add(1, Ordering::SeqCst) + 1;
                        m.fetch_max(now, Ordering::SeqCst);
                    }
                    tokio::time::sleep(delay).await;
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            let w = waiting.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = sr.read(&mut buf).await {
                    if out.swap(false, Ordering::SeqCst) {
                        w.fetch_sub(1, Ordering::SeqCst);
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, max)
}

/// Start-up reads every secret once to schedule it: with `max_concurrency`
/// of them in flight, not one after another (10,000 secrets 20 ms away
/// would take over three minutes to schedule).
#[tokio::test]
async fn start_up_reads_the_secrets_with_requests_in_flight_at_once() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("startup");
    let dir = scratch("startup");
    let n = 40;
    let upstream = bao.addr.trim_start_matches("http://").to_owned();
    let (relay, most) = slow_relay(upstream, Duration::from_millis(50)).await;
    let mut cfg = format!("[store]\ntype = \"vault\"\naddress = \"http://127.0.0.1:{relay}\"\nmount = \"secret\"\n");
    cfg.push_str("[daemon]\nmax_concurrency = 8\n[policies.slow]\nschedule = \"every 90d\"\nstrategy = \"staged\"\n");
    for i in 0..n {
        let path = format!("{prefix}/s{i:02}");
        bao.put(&path, json!({ "value": format!("startup-initial-s3cr3t-{i:04}") })).await;
        cfg.push_str(&format!("[[secret]]\npath = \"{path}\"\npolicy = \"slow\"\n"));
    }
    let cfg = write_config(&dir, &cfg);
    let listen_port = free_port();
    let started = Instant::now();
    let child = spawn(&cfg, listen_port, &bao.token);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut scheduled = 0.0;
    while Instant::now() < deadline && scheduled < n as f64 {
        if let Some((200, m)) = get(&format!("http://127.0.0.1:{listen_port}/metrics")).await {
            scheduled = metric(&m, "rekey_scheduled_secrets");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    let run = stop(child).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(scheduled, n as f64, "every secret scheduled: {}", run.stderr);
    let most = most.load(Ordering::SeqCst);
    println!("{n} secrets 50 ms away scheduled {took:?} after start, up to {most} requests in flight");
    // One after another would never have more than one out.
    assert!(most >= 4, "start-up had at most {most} requests in flight at once (max_concurrency = 8)");
    assert!(most <= 8 + 1, "start-up had {most} requests in flight, more than max_concurrency (8) and a token lookup");
}
