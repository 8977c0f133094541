//! The JSON contract for scripts: every `--json` output is one line in the
//! envelope `{"version": 1, "ok": ..., "command": ..., ...}`, and the exact
//! shape of each command's document is pinned by a golden file
//! (`tests/golden/*.json`, times, ids and timings replaced). A change in the
//! library's serde shapes cannot change these: the CLI builds them itself.
//! `REKEY_UPDATE_GOLDEN=1` rewrites the golden files after a deliberate
//! change (then docs/cli.md and the envelope's version need a look).
#![cfg(all(feature = "memory", feature = "vault"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Runs one command and returns its JSON, checking the envelope: one line,
/// `version` 1, `ok` a boolean matching the exit code, `command` its name.
async fn doc(cfg: &std::path::Path, args: &[&str], env: &[(&str, &str)], code: i32) -> Value {
    let r = rekey(cfg, args, env).await;
    assert_eq!(r.code, code, "{args:?}: {}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.trim_end().lines().count(), 1, "{args:?}: compact, one line:\n{}", r.stdout);
    let j = r.json();
    assert_eq!(j["version"], 1, "{j}");
    assert_eq!(j["ok"], code == 0, "{args:?}: {j}");
    let command = args.iter().find(|a| !a.starts_with('-')).copied();
    assert_eq!(j["command"].as_str(), command, "{j}");
    assert!(
        r.stdout.starts_with(&format!("{{\"version\":1,\"ok\":{},\"command\":", code == 0)),
        "the envelope's keys come first: {}",
        r.stdout
    );
    j
}

#[tokio::test]
async fn every_command_prints_one_pinned_envelope() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("json");
    let dir = scratch("json");
    let dir_s = dir.display().to_string();
    let path = format!("{prefix}/api-key");
    bao.put(&path, json!({ "value": "json-initial-s3cr3t-0001" })).await;
    let cfg = write_config(
        &dir,
        &format!(
            "{}[policies.hourly]\nschedule = \"every 1h\"\nstrategy = \"staged\"\nmax_retries = 0\n\
             [[secret]]\npath = \"{path}\"\npolicy = \"hourly\"\ngenerator = {{ type = \"hex\", length = 32 }}\n",
            vault_store(&bao)
        ),
    );
    let env = [("VAULT_TOKEN", bao.token.as_str())];
    let n = |v: &Value| normalize(v, &prefix, &dir_s);

    assert_golden("check", &n(&doc(&cfg, &["check", "--json"], &env, 0).await));
    assert_golden("plan", &n(&doc(&cfg, &["plan", "--json", "--next", "2"], &env, 0).await));
    assert_golden("rotate_dry_run", &n(&doc(&cfg, &["rotate", "--all", "--dry-run", "--json"], &env, 0).await));
    let rotated = doc(&cfg, &["rotate", "--all", "--json"], &env, 0).await;
    // max_retries = 0: no retry is reported, and no "attempts" count.
    assert_eq!(rotated["results"][0]["retries"], 0, "{rotated}");
    assert!(!rotated.to_string().contains("attempts"), "{rotated}");
    assert_golden("rotate", &n(&rotated));
    let text = rekey(&cfg, &["status"], &env).await;
    assert!(
        text.stdout.contains("(in 59m") || text.stdout.contains("(in 1h"),
        "next due with a unit:\n{}",
        text.stdout
    );
    assert_golden("emergency", &n(&doc(&cfg, &["emergency", &path, "--reason", "drill", "--json"], &env, 0).await));
    assert_golden("status", &n(&doc(&cfg, &["status", "--json"], &env, 0).await));
    assert_golden("rollback", &n(&doc(&cfg, &["rollback", &path, "--json"], &env, 0).await));
    assert_golden("history", &n(&doc(&cfg, &["history", &path, "--json"], &env, 0).await));
    assert_golden("resume", &n(&doc(&cfg, &["resume", &path, "--json"], &env, 0).await));

    // --pretty: the same document over several lines.
    let r = rekey(&cfg, &["status", "--json", "--pretty"], &env).await;
    assert!(r.stdout.lines().count() > 3, "{}", r.stdout);
    assert_eq!(n(&r.json())["secrets"], n(&doc(&cfg, &["status", "--json"], &env, 0).await)["secrets"]);

    // Errors: a config error with its diagnostics, a store error.
    let bad = write_config(
        &scratch("json-bad"),
        "[store]\ntype = \"memory\"\ncolour = \"x\"\n[[secret]]\npath = \"a\"\npolicy = \"p\"\n",
    );
    let bad_dir = bad.parent().unwrap().display().to_string();
    assert_golden("error_config", &normalize(&doc(&bad, &["check", "--json"], &[], 2).await, &prefix, &bad_dir));
    assert_golden("error_unconfigured_secret", &n(&doc(&cfg, &["history", "no/such", "--json"], &env, 2).await));
    assert_no_leak(&["json-initial-s3cr3t-0001".to_owned()]);
}

/// `rekey run --json` prints its summary in the envelope when it stops.
#[tokio::test]
async fn run_prints_its_summary_in_the_envelope() {
    let dir = scratch("json-run");
    let cfg =
        write_config(&dir, &format!("{}[policies.p]\n[[secret]]\npath = \"a/b\"\npolicy = \"p\"\n", memory_store()));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = command(&cfg, &["run", "--json", "--listen", &listen], &[]);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("rekey run starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the daemon did not listen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    let r = keep_output(&out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim_end().lines().count(), 1, "{}", r.stdout);
    assert_golden("run", &normalize(&r.json(), "", &dir.display().to_string()));
}

/// Usage errors (clap's) are JSON too when `--json` is on the command line,
/// exit 2; without it, text only. Help is not an error.
#[tokio::test]
async fn usage_errors_are_json_with_json() {
    let dir = scratch("json-usage");
    let cfg = dir.join("absent.toml");
    for (args, command) in [
        (&["rotate", "--json", "--no-such-flag"][..], json!("rotate")),
        (&["--json", "rotate"][..], json!("rotate")),
        (&["--json", "frobnicate"][..], Value::Null),
        (&["plan", "--next", "0", "--json"][..], json!("plan")),
    ] {
        let r = rekey(&cfg, args, &[]).await;
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout.trim_end().lines().count(), 1, "{args:?}: {}", r.stdout);
        let j = r.json();
        assert_eq!(j["version"], 1);
        assert_eq!(j["ok"], false);
        assert_eq!(j["command"], command, "{j}");
        assert_eq!(j["error"]["kind"], "usage", "{j}");
        assert_eq!(j["error"]["exit_code"], 2, "{j}");
        assert!(!j["error"]["message"].as_str().unwrap().is_empty(), "{j}");
        assert!(!r.stderr.is_empty(), "the text is on stderr too");
    }
    let r = rekey(&cfg, &["rotate", "--no-such-flag"], &[]).await;
    assert_eq!(r.code, 2);
    assert!(r.stdout.is_empty(), "no JSON without --json: {}", r.stdout);
    let r = rekey(&cfg, &["--json", "rotate", "--help"], &[]).await;
    assert_eq!(r.code, 0, "help is not an error");
    let r = rekey(&cfg, &["--json", "--pretty", "frobnicate"], &[]).await;
    assert!(r.stdout.lines().count() > 3, "--pretty applies: {}", r.stdout);
}
