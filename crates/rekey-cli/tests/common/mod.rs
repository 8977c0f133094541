//! Helpers for the end-to-end tests: the built `rekey` binary, a plain HTTP
//! client for OpenBao (no rekey code on the read-back path), and a check that
//! no secret value ever reaches the command's output.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::process::Output;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// The binary under test: this build's, or `REKEY_CLI_TEST_BIN` (to run the
/// tests against another build, e.g. to see a regression test fail on the
/// code before a fix).
pub fn bin() -> String {
    std::env::var("REKEY_CLI_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_rekey").to_owned())
}

/// OpenBao through plain HTTP.
pub struct Bao {
    pub addr: String,
    pub token: String,
    http: reqwest::Client,
}

impl Bao {
    /// `None` (test skipped) when no OpenBao is running; panics in CI.
    pub fn from_env() -> Option<Self> {
        let addr = rekey_testkit::env::require("REKEY_TEST_VAULT_ADDR", "OpenBao")?;
        let token = rekey_testkit::env::require("REKEY_TEST_VAULT_TOKEN", "OpenBao")?;
        Some(Self { addr, token, http: reqwest::Client::new() })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req =
            self.http.request(method, format!("{}/v1/{path}", self.addr)).header("X-Vault-Token", &self.token);
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.expect("OpenBao answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Writes a new version of `path` (KV v2 at `secret/`).
    pub async fn put(&self, path: &str, data: Value) {
        let (s, b) =
            self.call(reqwest::Method::POST, &format!("secret/data/{path}"), Some(json!({ "data": data }))).await;
        assert_eq!(s, 200, "seeding {path}: {b}");
    }

    /// Sets keys of `path`'s custom metadata (the others are kept).
    pub async fn patch_custom_metadata(&self, path: &str, custom: Value) {
        let (_, b) = self.call(reqwest::Method::GET, &format!("secret/metadata/{path}"), None).await;
        let mut all = b["data"]["custom_metadata"].as_object().cloned().unwrap_or_default();
        all.extend(custom.as_object().cloned().unwrap_or_default());
        let body = json!({ "custom_metadata": all });
        let (s, b) = self.call(reqwest::Method::POST, &format!("secret/metadata/{path}"), Some(body)).await;
        assert!(s == 200 || s == 204, "writing the metadata of {path}: {s} {b}");
    }

    /// The current value's fields.
    pub async fn read(&self, path: &str) -> Value {
        let (s, b) = self.call(reqwest::Method::GET, &format!("secret/data/{path}"), None).await;
        assert_eq!(s, 200, "reading {path}: {b}");
        b["data"]["data"].clone()
    }

    /// One version's fields.
    pub async fn read_version(&self, path: &str, version: u64) -> Value {
        let (s, b) = self.call(reqwest::Method::GET, &format!("secret/data/{path}?version={version}"), None).await;
        assert_eq!(s, 200, "reading {path} v{version}: {b}");
        b["data"]["data"].clone()
    }

    /// KV metadata: current version, every version's creation time (seconds
    /// since the epoch, fractional), custom_metadata.
    pub async fn metadata(&self, path: &str) -> (u64, Vec<(u64, f64)>, Value) {
        let (s, b) = self.call(reqwest::Method::GET, &format!("secret/metadata/{path}"), None).await;
        assert_eq!(s, 200, "metadata of {path}: {b}");
        let d = &b["data"];
        let mut versions: Vec<(u64, f64)> = d["versions"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let t = v["created_time"].as_str().unwrap_or_default();
                        (k.parse().unwrap_or(0), parse_time(t))
                    })
                    .collect()
            })
            .unwrap_or_default();
        versions.sort_by_key(|v| v.0);
        (d["current_version"].as_u64().unwrap_or(0), versions, d["custom_metadata"].clone())
    }

    /// Whether anything is at the staging location of `path`.
    pub async fn staged(&self, path: &str) -> bool {
        let (s, b) = self.call(reqwest::Method::GET, &format!("secret/metadata/rekey-staging/{path}"), None).await;
        if s == 404 {
            return false;
        }
        // Destroyed/deleted versions do not count.
        b["data"]["versions"].as_object().is_some_and(|m| {
            m.values().any(|v| {
                !v["destroyed"].as_bool().unwrap_or(false) && v["deletion_time"].as_str().unwrap_or("").is_empty()
            })
        })
    }
}

/// RFC 3339 to seconds since the epoch (enough for ordering and gaps).
pub fn parse_time(t: &str) -> f64 {
    chrono_like(t).unwrap_or(0.0)
}

fn chrono_like(t: &str) -> Option<f64> {
    // 2026-11-27T03:35:37.479888Z
    let (date, rest) = t.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let rest = rest.trim_end_matches('Z');
    let mut hms = rest.split(':');
    let h: f64 = hms.next()?.parse().ok()?;
    let mi: f64 = hms.next()?.parse().ok()?;
    let s: f64 = hms.next()?.parse().ok()?;
    // days from civil (Howard Hinnant)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + mi * 60.0 + s)
}

/// A prefix no other test run uses.
pub fn unique(name: &str) -> String {
    let n = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("cli-test/{name}-{}-{n}", std::process::id())
}

/// A scratch directory.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(name).replace('/', "-"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Everything the binary printed in this test process, for the leak check.
static CAPTURED: Mutex<String> = Mutex::new(String::new());

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

fn keep(o: &Output) -> Run {
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let mut c = CAPTURED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    c.push_str(&stdout);
    c.push_str(&stderr);
    Run { code: o.status.code().unwrap_or(-1), stdout, stderr }
}

/// Runs `rekey -c CONFIG ARGS...` with `env` added (and VAULT_TOKEN et al.
/// removed unless given).
pub async fn rekey(config: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = command(config, args, env);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("rekey finishes")
        .expect("rekey runs");
    keep(&out)
}

/// The command, for spawning.
pub fn command(config: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin());
    cmd.arg("-c").arg(config).args(args);
    for k in ["VAULT_TOKEN", "BAO_TOKEN", "VAULT_ADDR", "BAO_ADDR", "REKEY_CONFIG", "RUST_LOG"] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true);
    cmd
}

/// Records a spawned process's output for the leak check.
pub fn keep_output(o: &Output) -> Run {
    keep(o)
}

/// Asserts that none of `values` appears in anything the binary printed.
pub fn assert_no_leak(values: &[String]) {
    let c = CAPTURED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    assert!(!c.is_empty(), "nothing captured");
    for v in values {
        assert!(v.len() >= 8, "a secret to look for is too short to be meaningful: {v:?}");
        assert!(!c.contains(v.as_str()), "a secret value appeared in the output of rekey");
    }
}

/// Every string value of a KV data map.
pub fn values(data: &Value) -> Vec<String> {
    data.as_object().map(|m| m.values().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// Writes a config file.
pub fn write_config(dir: &std::path::Path, text: &str) -> PathBuf {
    let p = dir.join("rekey.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `[store]` for the test OpenBao.
pub fn vault_store(bao: &Bao) -> String {
    format!("[store]\ntype = \"vault\"\naddress = \"{}\"\nmount = \"secret\"\n", bao.addr)
}

/// Replaces what changes from run to run in a JSON document: RFC 3339 times
/// (`<time>`), UUIDs (`<uuid>`), `prefix` (`<prefix>`), `dir` (`<dir>`),
/// and the numbers of timing keys and of `store_calls` (the engine's cost,
/// pinned by its own tests) (`0`).
pub fn normalize(v: &Value, prefix: &str, dir: &str) -> Value {
    const TIMINGS: [&str; 6] =
        ["duration_ms", "elapsed_ms", "per_second", "next_due_in_seconds", "store_calls", "store_calls_per_rotation"];
    match v {
        Value::String(s) => {
            let mut s = s.clone();
            for (from, to) in [(prefix, "<prefix>"), (dir, "<dir>")] {
                if !from.is_empty() {
                    s = s.replace(from, to);
                }
            }
            Value::String(normalize_text(&s))
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| normalize(x, prefix, dir)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let x = if TIMINGS.contains(&k.as_str()) && x.is_number() {
                        json!(0)
                    } else {
                        normalize(x, prefix, dir)
                    };
                    (k.clone(), x)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Times and UUIDs in a text replaced by `<time>` and `<uuid>`.
fn normalize_text(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        // 2026-12-03T08:14:14[.123456]Z
        if b.len() - i >= 20
            && b[i..i + 4].iter().all(u8::is_ascii_digit)
            && b[i + 4] == b'-'
            && b[i + 10] == b'T'
            && b[i + 13] == b':'
        {
            let mut j = i + 19;
            while j < b.len() && (b[j] == b'.' || b[j].is_ascii_digit()) {
                j += 1;
            }
            if j < b.len() && (b[j] == b'Z' || b[j] == b'+') {
                j += if b[j] == b'Z' { 1 } else { 6.min(b.len() - j) };
                out.push_str("<time>");
                i = j;
                continue;
            }
        }
        // 8-4-4-4-12 hex
        if b.len() - i >= 36 {
            let cand = &s[i..i + 36];
            let shape = cand
                .char_indices()
                .all(|(k, c)| if [8, 13, 18, 23].contains(&k) { c == '-' } else { c.is_ascii_hexdigit() });
            if shape {
                out.push_str("<uuid>");
                i += 36;
                continue;
            }
        }
        let c = s[i..].chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Compares `actual` with `tests/golden/NAME.json`; `REKEY_UPDATE_GOLDEN=1`
/// writes the file instead.
pub fn assert_golden(name: &str, actual: &Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var("REKEY_UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (REKEY_UPDATE_GOLDEN=1 writes it)", path.display()));
    let expected: Value = serde_json::from_str(&expected).unwrap();
    assert_eq!(&expected, actual, "the JSON of `{name}` changed shape:\n{text}");
}

/// A config with the in-memory store.
pub fn memory_store() -> String {
    "[store]\ntype = \"memory\"\n".to_owned()
}
