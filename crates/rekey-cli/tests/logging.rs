//! Log noise: a healthy run is free of ERROR lines. Three `rekey run`
//! daemons share one OpenBao and race for the same secrets on a 2-second
//! schedule, so the Vault client meets what rekey expects in such a run
//! (404s for a missing staged candidate, lost compare-and-swaps, rotations
//! in progress elsewhere) — once with `RUST_LOG` unset and once with
//! `RUST_LOG=info`, as `rekey run --help` suggests; the same against AWS
//! Secrets Manager (moto). Only a directive naming the Vault client
//! (`RUST_LOG=vaultrs=debug`) shows its lines.
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

/// The moto server (AWS Secrets Manager), through plain HTTP.
struct Moto {
    endpoint: String,
    http: reqwest::Client,
}

impl Moto {
    fn from_env() -> Option<Self> {
        let endpoint = rekey_testkit::env::require("REKEY_TEST_AWS_ENDPOINT", "moto")?;
        Some(Self { endpoint, http: reqwest::Client::new() })
    }

    async fn call(&self, action: &str, body: Value) -> Value {
        let r = self
            .http
            .post(&self.endpoint)
            .header("X-Amz-Target", format!("secretsmanager.{action}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .expect("moto answers");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert!(status.is_success(), "{action}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// Where a group's secrets live.
#[derive(Clone, Copy)]
enum Backend<'a> {
    Bao(&'a Bao),
    Moto(&'a Moto),
}

impl Backend<'_> {
    fn store(self) -> String {
        match self {
            Self::Bao(bao) => vault_store(bao),
            Self::Moto(m) => {
                format!("[store]\ntype = \"aws\"\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n", m.endpoint)
            }
        }
    }

    fn env(self) -> Vec<(&'static str, String)> {
        match self {
            Self::Bao(bao) => vec![("VAULT_TOKEN", bao.token.clone())],
            Self::Moto(_) => vec![
                ("AWS_ACCESS_KEY_ID", "testing-access-key".to_owned()),
                ("AWS_SECRET_ACCESS_KEY", "testing-secret-access-key-xyz".to_owned()),
                ("AWS_REGION", "us-east-1".to_owned()),
            ],
        }
    }

    async fn seed(self, path: &str, value: &str) {
        match self {
            Self::Bao(bao) => bao.put(path, json!({ "value": value })).await,
            Self::Moto(m) => {
                m.call("CreateSecret", json!({ "Name": path, "SecretString": value })).await;
            }
        }
    }

    async fn current(self, path: &str) -> String {
        match self {
            Self::Bao(bao) => bao.read(path).await["value"].as_str().unwrap().to_owned(),
            Self::Moto(m) => {
                let v = m.call("GetSecretValue", json!({ "SecretId": path, "VersionStage": "AWSCURRENT" })).await;
                v["SecretString"].as_str().unwrap().to_owned()
            }
        }
    }

    /// Rotations the store counts (KV versions after the first); `None` where
    /// versions are no count of rotations (AWS keeps staged candidates that lost).
    async fn rotations(self, path: &str) -> Option<u64> {
        match self {
            Self::Bao(bao) => Some(bao.metadata(path).await.0 - 1),
            Self::Moto(_) => None,
        }
    }
}

/// Three daemons over `secrets` fresh secrets, each with `rust_log` (unset
/// when `None`; the third one logs JSON).
struct Group<'a> {
    name: &'static str,
    backend: Backend<'a>,
    paths: Vec<String>,
    children: Vec<tokio::process::Child>,
}

impl<'a> Group<'a> {
    async fn start(backend: Backend<'a>, name: &'static str, rust_log: Option<&str>, secrets: usize) -> Self {
        let prefix = unique(name);
        let dir = scratch(name);
        let paths: Vec<String> = (0..secrets).map(|i| format!("{prefix}/s{i}")).collect();
        let mut cfg = format!("{}[policies.tick]\nschedule = \"every 2s\"\nstrategy = \"staged\"\n", backend.store());
        for p in &paths {
            cfg.push_str(&format!("[[secret]]\npath = \"{p}\"\npolicy = \"tick\"\n"));
            backend.seed(p, &format!("{name}-initial-value-{p}")).await;
        }
        let cfg = write_config(&dir, &cfg);
        let mut children = Vec::new();
        let mut ports = Vec::new();
        let vars = backend.env();
        for i in 0..3 {
            let port = free_port();
            let listen = format!("127.0.0.1:{port}");
            let mut env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
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
        Self { name, backend, paths, children }
    }

    /// Stops the daemons; checks their logs and that they rotated and met each other.
    async fn stop_and_check(self) {
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
        let mut versions = Some(0);
        let mut values = Vec::new();
        for p in &self.paths {
            versions = match (versions, self.backend.rotations(p).await) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
            values.push(self.backend.current(p).await);
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
        if let Some(versions) = versions {
            assert_eq!(rotated, versions, "{}: the daemons' count matches the store's versions", self.name);
        }
        assert!(elsewhere >= 3, "{}: the daemons hardly met ({elsewhere} lost races)", self.name);
        assert_no_leak(&values);
    }
}

#[tokio::test]
async fn three_racing_daemons_log_no_error_lines_with_or_without_rust_log() {
    let Some(bao) = Bao::from_env() else { return };
    let started = Instant::now();
    // Both groups at once, on their own secrets, to keep the wall time short.
    let vault = Backend::Bao(&bao);
    let (unset, info) =
        tokio::join!(Group::start(vault, "log-unset", None, 4), Group::start(vault, "log-info", Some("info"), 4));
    tokio::time::sleep(Duration::from_secs(12)).await;
    unset.stop_and_check().await;
    info.stop_and_check().await;
    eprintln!("took {:?}", started.elapsed());
}

/// The AWS SDK logs no error for what rekey expects either (a lost race on
/// the AWSPENDING stage, a missing pending version).
#[tokio::test]
async fn three_racing_daemons_on_aws_log_no_error_lines() {
    let Some(moto) = Moto::from_env() else { return };
    let started = Instant::now();
    let group = Group::start(Backend::Moto(&moto), "log-aws", Some("info"), 3).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    group.stop_and_check().await;
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
