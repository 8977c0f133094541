//! Log noise: a healthy run is free of ERROR lines. Three `rekey run`
//! daemons share one OpenBao and race for the same secrets on a 2-second
//! schedule, so the Vault client meets what rekey expects in such a run
//! (404s for a missing staged candidate, lost compare-and-swaps, rotations
//! in progress elsewhere) — once with `RUST_LOG` unset and once with
//! `RUST_LOG=info`, as `rekey run --help` suggests. Only a directive naming
//! the Vault client (`RUST_LOG=vaultrs=debug`) shows its lines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// Lines logged at ERROR level, in the text or the JSON format.
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| match serde_json::from_str::<Value>(l) {
            Ok(v) => v["level"] == "ERROR",
            Err(_) => l.split_whitespace().nth(1) == Some("ERROR"),
        })
        .collect()
}

/// Lines from the Vault client's crates.
fn vault_client_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("vaultrs::") || l.contains("rustify::")).collect()
}

async fn healthy(port: u16) -> bool {
    let url = format!("http://127.0.0.1:{port}/healthz");
    let r = reqwest::Client::new().get(url).timeout(Duration::from_secs(2)).send().await;
    r.is_ok_and(|r| r.status().as_u16() == 200)
}

/// Sends SIGTERM to a process this test started, by its pid.
fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let ok = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs").success();
    assert!(ok, "kill -TERM {pid}");
}

/// Three daemons over `secrets` fresh secrets, each with `rust_log` (unset
/// when `None`; the third one logs JSON).
struct Group {
    name: &'static str,
    paths: Vec<String>,
    children: Vec<tokio::process::Child>,
}

impl Group {
    async fn start(bao: &Bao, name: &'static str, rust_log: Option<&str>, secrets: usize) -> Self {
        let prefix = unique(name);
        let dir = scratch(name);
        let paths: Vec<String> = (0..secrets).map(|i| format!("{prefix}/s{i}")).collect();
        let mut cfg = format!("{}[policies.tick]\nschedule = \"every 2s\"\nstrategy = \"staged\"\n", vault_store(bao));
        for p in &paths {
            cfg.push_str(&format!("[[secret]]\npath = \"{p}\"\npolicy = \"tick\"\n"));
            bao.put(p, json!({ "value": format!("{name}-initial-value-{p}") })).await;
        }
        let cfg = write_config(&dir, &cfg);
        let mut children = Vec::new();
        let mut ports = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let listen = format!("127.0.0.1:{port}");
            let mut env = vec![("VAULT_TOKEN", bao.token.as_str())];
            if let Some(l) = rust_log {
                env.push(("RUST_LOG", l));
            }
            let format = if i == 2 { "json" } else { "text" };
            let mut cmd = command(&cfg, &["run", "--json", "--log-format", format, "--listen", &listen], &env);
            cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            children.push(cmd.spawn().expect("rekey run starts"));
            ports.push(port);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in ports {
            while !healthy(port).await {
                assert!(Instant::now() < deadline, "{name}: a daemon did not come up");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Self { name, paths, children }
    }

    /// Stops the daemons; checks their logs and that they rotated and met each other.
    async fn stop_and_check(self, bao: &Bao) {
        let mut rotated = 0;
        let mut elsewhere = 0;
        let mut errors = Vec::new();
        let mut lines = 0;
        let mut vault = Vec::new();
        for c in &self.children {
            sigterm(c);
        }
        for c in self.children {
            let out = tokio::time::timeout(Duration::from_secs(30), c.wait_with_output())
                .await
                .expect("the daemon exits after SIGTERM")
                .expect("output");
            let run = keep_output(&out);
            assert_eq!(run.code, 0, "{}: {}", self.name, run.stderr);
            let r = &run.json()["rotations"];
            rotated += r["rotated"].as_u64().unwrap_or(0);
            elsewhere +=
                r["rotated_elsewhere"].as_u64().unwrap_or(0) + r["in_progress_elsewhere"].as_u64().unwrap_or(0);
            lines += run.stderr.lines().count();
            errors.extend(error_lines(&run.stderr).into_iter().map(str::to_owned));
            vault.extend(vault_client_lines(&run.stderr).into_iter().map(str::to_owned));
        }
        let mut versions = 0;
        let mut values = Vec::new();
        for p in &self.paths {
            let (current, _, _) = bao.metadata(p).await;
            versions += current - 1;
            values.push(bao.read(p).await["value"].as_str().unwrap().to_owned());
            values.push(format!("{}-initial-value-{p}", self.name));
        }
        eprintln!(
            "{}: {rotated} rotations, {elsewhere} lost races, {lines} log lines, {} at ERROR",
            self.name,
            errors.len()
        );
        assert!(
            errors.is_empty(),
            "{}: {} ERROR lines, e.g. {:?}",
            self.name,
            errors.len(),
            &errors[..errors.len().min(3)]
        );
        assert!(vault.is_empty(), "{}: the Vault client's lines appear: {:?}", self.name, &vault[..vault.len().min(3)]);
        assert!(rotated >= self.paths.len() as u64 * 2, "{}: only {rotated} rotations", self.name);
        assert_eq!(rotated, versions, "{}: the daemons' count matches the store's versions", self.name);
        assert!(elsewhere >= 3, "{}: the daemons hardly met ({elsewhere} lost races)", self.name);
        assert_no_leak(&values);
    }
}

#[tokio::test]
async fn three_racing_daemons_log_no_error_lines_with_or_without_rust_log() {
    let Some(bao) = Bao::from_env() else { return };
    let started = Instant::now();
    // Both groups at once, on their own secrets, to keep the wall time short.
    let (unset, info) =
        tokio::join!(Group::start(&bao, "log-unset", None, 4), Group::start(&bao, "log-info", Some("info"), 4));
    tokio::time::sleep(Duration::from_secs(12)).await;
    unset.stop_and_check(&bao).await;
    info.stop_and_check(&bao).await;
    eprintln!("took {:?}", started.elapsed());
}

async fn history(cfg: &std::path::Path, path: &str, token: &str, rust_log: &str) -> Run {
    rekey(cfg, &["history", path], &[("VAULT_TOKEN", token), ("RUST_LOG", rust_log)]).await
}

#[tokio::test]
async fn naming_the_vault_client_in_rust_log_shows_its_lines() {
    let Some(bao) = Bao::from_env() else { return };
    let path = format!("{}/s", unique("log-named"));
    bao.put(&path, json!({ "value": "log-named-initial-value" })).await;
    let dir = scratch("log-named");
    let cfg = write_config(
        &dir,
        &format!(
            "{}[policies.p]\nstrategy = \"staged\"\n[[secret]]\npath = \"{path}\"\npolicy = \"p\"\n",
            vault_store(&bao)
        ),
    );
    let token = bao.token.as_str();
    let r = rekey(&cfg, &["rotate", &path], &[("VAULT_TOKEN", token)]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    // `history` looks for a staged candidate: none, a 404 that the Vault
    // client reports as an error.
    let r = history(&cfg, &path, token, "vaultrs=debug").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let vault = vault_client_lines(&r.stderr);
    assert!(
        vault.iter().any(|l| l.contains("vaultrs::")),
        "no vaultrs lines with RUST_LOG=vaultrs=debug:\n{}",
        r.stderr
    );
    assert!(vault.iter().all(|l| !l.contains("rustify::")), "rustify was not named:\n{}", r.stderr);
    // The counter of the test above sees them: they are ERROR lines.
    assert!(!error_lines(&r.stderr).is_empty(), "the 404 is logged at ERROR by vaultrs:\n{}", r.stderr);
    // Without a directive naming it, the same command is quiet at any level.
    for rust_log in ["info", "debug"] {
        let r = history(&cfg, &path, token, rust_log).await;
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(vault_client_lines(&r.stderr).is_empty(), "RUST_LOG={rust_log}:\n{}", r.stderr);
        assert!(error_lines(&r.stderr).is_empty(), "RUST_LOG={rust_log}:\n{}", r.stderr);
    }
    let now = bao.read(&path).await["value"].as_str().unwrap().to_owned();
    assert_no_leak(&["log-named-initial-value".to_owned(), now]);
}
