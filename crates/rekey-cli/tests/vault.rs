//! `rekey` against a real OpenBao: rotate, read back over plain HTTP, status
//! and history agree with the store, rollback, emergency, quarantine and
//! resume, bad configurations, an unreachable store — and no secret value
//! in any output.
#![cfg(feature = "vault")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use serde_json::json;

fn config(bao: &Bao, prefix: &str, extra: &str) -> String {
    format!(
        r#"{store}
[policies.staged]
schedule = "every 1h"
strategy = "staged"

[policies.imm]
schedule = "cron: 0 3 * * *"
strategy = "immediate"

[[secret]]
path = "{prefix}/api-key"
policy = "staged"
generator = {{ type = "random", length = 40 }}

[[secret]]
path = "{prefix}/db"
policy = "imm"
field = "password"
generator = {{ type = "password", length = 20 }}
{extra}"#,
        store = vault_store(bao)
    )
}

#[tokio::test]
async fn rotate_status_history_rollback_emergency() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("e2e");
    let dir = scratch("e2e");
    let cfg = write_config(&dir, &config(&bao, &prefix, ""));
    let token = bao.token.clone();
    let env = [("VAULT_TOKEN", token.as_str())];
    let api = format!("{prefix}/api-key");
    let db = format!("{prefix}/db");
    bao.put(&api, json!({ "value": "initial-api-key-s3cr3t-0001" })).await;
    bao.put(&db, json!({ "username": "app", "password": "initial-db-pw-s3cr3t-0002" })).await;
    let mut seen = vec!["initial-api-key-s3cr3t-0001".to_owned(), "initial-db-pw-s3cr3t-0002".to_owned()];

    let r = rekey(&cfg, &["check"], &env).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // rotate --all: both rotated; read back with a plain HTTP request.
    let r = rekey(&cfg, &["rotate", "--all", "--json"], &env).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["summary"]["rotated"], 2, "{j}");
    let api_now = bao.read(&api).await;
    let key = api_now["value"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 40);
    assert_ne!(key, "initial-api-key-s3cr3t-0001");
    let db_now = bao.read(&db).await;
    assert_eq!(db_now["username"], "app", "other fields are kept");
    let pw = db_now["password"].as_str().unwrap().to_owned();
    assert_eq!(pw.len(), 20);
    assert_ne!(pw, "initial-db-pw-s3cr3t-0002");
    seen.push(key.clone());
    seen.push(pw.clone());

    // status --json agrees with the store's own metadata.
    let r = rekey(&cfg, &["status", "--json"], &env).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    for (path, s) in [(&api, &j["secrets"][0]), (&db, &j["secrets"][1])] {
        let (current, versions, _) = bao.metadata(path).await;
        assert_eq!(s["path"], path.as_str());
        assert_eq!(s["current_version"], current.to_string(), "{s}");
        assert_eq!(s["last_result"], "rotated");
        assert_eq!(s["quarantined"], false);
        let created = versions.iter().find(|v| v.0 == current).unwrap().1;
        let reported = parse_time(s["last_rotated"].as_str().unwrap());
        assert!((created - reported).abs() < 0.001, "last_rotated {reported} vs KV {created}");
        assert!(s["next_due"].is_string());
    }

    // history lists every KV version and the rotation event.
    let r = rekey(&cfg, &["history", &api, "--json"], &env).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let h = r.json();
    let (current, versions, _) = bao.metadata(&api).await;
    let listed: Vec<String> =
        h["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap().to_owned()).collect();
    let kv: Vec<String> = versions.iter().map(|v| v.0.to_string()).collect();
    assert_eq!(listed, kv);
    let cur: Vec<&serde_json::Value> =
        h["versions"].as_array().unwrap().iter().filter(|v| v["current"] == true).collect();
    assert_eq!(cur.len(), 1);
    assert_eq!(cur[0]["version"], current.to_string());
    assert_eq!(h["events"][0]["event"], "rotated");
    assert_eq!(h["events"][0]["new_version"], current.to_string());
    let text = rekey(&cfg, &["history", &api], &env).await;
    assert!(text.stdout.contains("rotated") && text.stdout.contains("current"), "{}", text.stdout);

    // rollback: the previous value is current again (seen over HTTP).
    let r = rekey(&cfg, &["rollback", &api, "--json"], &env).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(bao.read(&api).await["value"], "initial-api-key-s3cr3t-0001");
    let r = rekey(&cfg, &["history", &api, "--json"], &env).await;
    assert_eq!(r.json()["events"][0]["event"], "rollback");
    // status names the rollback as the secret's last change.
    let r = rekey(&cfg, &["status", "--json"], &env).await;
    assert_eq!(r.json()["secrets"][0]["last_result"], "rollback", "{}", r.stdout);
    let r = rekey(&cfg, &["status"], &env).await;
    let row = r.stdout.lines().find(|l| l.starts_with(api.as_str())).unwrap_or_default();
    assert!(row.contains("rollback"), "{}", r.stdout);
    assert!(!row.contains("ms)"), "relative times in whole units: {row}");

    // emergency: rotated, and in the history as the version it wrote, with
    // its trigger and reason (the engine records an emergency's reason in
    // the promotion's own metadata write; other successes are their
    // version and rotation id).
    let r = rekey(&cfg, &["emergency", &db, "--reason", "leaked in CI log 4711", "--json"], &env).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = &r.json()["results"][0];
    assert_eq!(res["trigger"], "emergency", "{res}");
    let pw2 = bao.read(&db).await["password"].as_str().unwrap().to_owned();
    assert_ne!(pw2, pw);
    seen.push(pw2);
    let r = rekey(&cfg, &["history", &db, "--json"], &env).await;
    let ev = &r.json()["events"][0];
    assert_eq!(ev["event"], "rotated", "{ev}");
    assert_eq!(ev["rotation_id"], res["rotation_id"], "{ev}");
    assert_eq!(ev["new_version"], bao.metadata(&db).await.0.to_string(), "{ev}");
    assert_eq!(ev["trigger"], "emergency", "{ev}");
    assert!(ev["detail"].as_str().unwrap_or_default().contains("leaked in CI log 4711"), "{ev}");

    // dry run writes nothing.
    let (before, _, _) = bao.metadata(&api).await;
    let r = rekey(&cfg, &["rotate", "--all", "--dry-run"], &env).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(bao.metadata(&api).await.0, before);

    // plan shows due times and warns about the unverified set-up.
    let r = rekey(&cfg, &["plan", "--next", "2", "--json"], &env).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let p = r.json();
    assert_eq!(p["secrets"][0]["next_due"].as_array().unwrap().len(), 2);
    assert!(p["secrets"][0]["warnings"].to_string().contains("no verifier"), "{p}");

    // unknown secret on the command line: usage error.
    let r = rekey(&cfg, &["rotate", "no/such/secret"], &env).await;
    assert_eq!(r.code, 2, "{}", r.stderr);

    assert_no_leak(&seen);
}

#[tokio::test]
async fn failing_verifier_rolls_back_then_quarantines_and_resume_lifts_it() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("quarantine");
    let dir = scratch("quarantine");
    let extra = format!(
        r#"
[policies.checked]
schedule = "every 1h"
strategy = "staged"
require_verification = true
verification_tests = ["always-fails"]
quarantine_after = 2
max_retries = 0

[[verifier]]
name = "always-fails"
type = "command"
program = "/bin/false"
timeout = "5s"

[[secret]]
path = "{prefix}/checked"
policy = "checked"
"#
    );
    let cfg = write_config(&dir, &config(&bao, &prefix, &extra));
    let env = [("VAULT_TOKEN", bao.token.as_str())];
    let path = format!("{prefix}/checked");
    bao.put(&path, json!({ "value": "checked-initial-s3cr3t-77" })).await;

    for round in 0..2 {
        let r = rekey(&cfg, &["rotate", &path], &env).await;
        assert_eq!(r.code, 1, "round {round}: a failed rotation exits 1: {}{}", r.stdout, r.stderr);
        assert_eq!(bao.read(&path).await["value"], "checked-initial-s3cr3t-77", "the current value is untouched");
        assert!(!bao.staged(&path).await, "no candidate left staged");
    }
    let (current, _, _) = bao.metadata(&path).await;
    assert_eq!(current, 1, "failed rotations create no version");
    let r = rekey(&cfg, &["status", "--json"], &env).await;
    let s = r.json()["secrets"].as_array().unwrap().iter().find(|s| s["path"] == path.as_str()).cloned().unwrap();
    assert_eq!(s["quarantined"], true, "{s}");
    assert_eq!(s["consecutive_failures"], 2);
    assert!(s["next_due"].is_null());
    let text = rekey(&cfg, &["status"], &env).await;
    assert!(text.stdout.lines().any(|l| l.starts_with(&path) && l.trim_end().ends_with("yes")), "{}", text.stdout);

    let r = rekey(&cfg, &["resume", &path, "--json"], &env).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["was_quarantined"], true);
    let r = rekey(&cfg, &["status", "--json"], &env).await;
    let s = r.json()["secrets"].as_array().unwrap().iter().find(|s| s["path"] == path.as_str()).cloned().unwrap();
    assert_eq!(s["quarantined"], false, "{s}");
    assert!(s["next_due"].is_string());
    assert_no_leak(&["checked-initial-s3cr3t-77".to_owned()]);
}

/// Each bad configuration: exit code 2, the promised message at the promised
/// line:column, and nothing changed in the store.
#[tokio::test]
async fn bad_configs_are_reported_all_at_once_and_change_nothing() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("badcfg");
    let dir = scratch("badcfg");
    let path = format!("{prefix}/s");
    bao.put(&path, json!({ "value": "badcfg-initial-s3cr3t-9" })).await;
    let store = vault_store(&bao); // lines 1-4
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown keys",
            format!(
                "{store}colour = \"x\"\n[policies.p]\nschedule = \"every 1h\"\nstratgy = \"staged\"\n[[secret]]\npath = \"{path}\"\npolicy = \"p\"\nfeild = \"x\"\n"
            ),
            vec![
                "rekey.toml:5:1: store.colour: unknown key `colour`",
                "rekey.toml:8:1: policies.p.stratgy: unknown key `stratgy` (did you mean `strategy`?)",
                "rekey.toml:12:1: secret[1].feild: unknown key `feild` (did you mean `field`?)",
            ],
        ),
        (
            "wrong types",
            format!(
                "{store}[policies.p]\nschedule = 5\nmax_retries = \"3\"\n[[secret]]\npath = \"{path}\"\npolicy = \"p\"\ngenerator = {{ type = \"random\", length = \"long\" }}\n"
            ),
            vec![
                "rekey.toml:6:12: policies.p.schedule: expected a string, found an integer",
                "rekey.toml:7:15: policies.p.max_retries: expected an integer, found a string",
                "rekey.toml:11:41: secret[1].generator.length: expected an integer, found a string",
            ],
        ),
        (
            "invalid cron",
            format!(
                "{store}[policies.p]\nschedule = \"cron: 61 * * * *\"\n[[secret]]\npath = \"{path}\"\npolicy = \"p\"\n"
            ),
            vec!["rekey.toml:6:12: policies.p.schedule: invalid cron expression \"61 * * * *\""],
        ),
        (
            "unknown policy and verifier names",
            format!(
                "{store}[policies.p]\nschedule = \"every 1h\"\nrequire_verification = true\nverification_tests = [\"smoke\"]\n[[secret]]\npath = \"{path}\"\npolicy = \"q\"\nverifiers = [\"login\"]\n"
            ),
            vec![
                "rekey.toml:8:22: policies.p.verification_tests: unknown verifier \"smoke\"; no `[[verifier]]` is configured",
                "rekey.toml:11:10: secret[1].policy: unknown policy \"q\"",
                "rekey.toml:12:13: secret[1].verifiers: unknown verifier \"login\"",
            ],
        ),
        (
            "missing credentials",
            format!("{store}[policies.p]\nschedule = \"every 1h\"\n[[secret]]\npath = \"{path}\"\npolicy = \"p\"\n"),
            vec![
                "rekey.toml:1:1: store.auth: missing credentials: the vault store uses token auth but neither VAULT_TOKEN nor BAO_TOKEN is set",
            ],
        ),
        (
            "token in the file",
            format!(
                "{store}auth = {{ method = \"token\", token = \"{}\" }}\n[policies.p]\n[[secret]]\npath = \"{path}\"\npolicy = \"p\"\n",
                bao.token
            ),
            vec!["rekey.toml:5:28: store.auth.token: credentials are never read from the configuration file"],
        ),
        ("syntax error", format!("{store}[policies.p\n"), vec!["rekey.toml:5:12: (syntax): not valid TOML"]),
    ];
    let (before, versions_before, meta_before) = bao.metadata(&path).await;
    for (name, text, expected) in &cases {
        let cfg = write_config(&dir, text);
        // "missing credentials" runs without a token; the others with one.
        let env: Vec<(&str, &str)> =
            if *name == "missing credentials" { vec![] } else { vec![("VAULT_TOKEN", bao.token.as_str())] };
        for args in [&["rotate", "--all"][..], &["check"][..], &["run"][..]] {
            let r = rekey(&cfg, args, &env).await;
            assert_eq!(r.code, 2, "{name} / {args:?}: exit code\n{}", r.stderr);
            for e in expected {
                assert!(r.stderr.contains(e), "{name}: expected `{e}` in:\n{}", r.stderr);
            }
            assert!(r.stderr.contains("nothing was run"), "{}", r.stderr);
            assert!(r.stdout.is_empty(), "{name}: nothing on stdout: {}", r.stdout);
        }
        let r = rekey(&cfg, &["check", "--json"], &env).await;
        assert_eq!(r.code, 2);
        let j = r.json();
        assert_eq!(j["error"]["kind"], "config");
        assert_eq!(j["diagnostics"].as_array().unwrap().len(), expected.len(), "{name}: {j}");
        assert!(j["diagnostics"][0]["line"].as_u64().unwrap() > 0);
    }
    let (after, versions_after, meta_after) = bao.metadata(&path).await;
    assert_eq!((before, versions_before, meta_before), (after, versions_after, meta_after), "the store is unchanged");
    let mut no_leak = vec!["badcfg-initial-s3cr3t-9".to_owned()];
    if bao.token.len() >= 8 {
        no_leak.push(bao.token.clone());
    }
    assert_no_leak(&no_leak);
}

#[tokio::test]
async fn unreachable_store_exits_3_and_bad_token_too() {
    let Some(bao) = Bao::from_env() else { return };
    let dir = scratch("unreachable");
    let port = free_port();
    let cfg = write_config(
        &dir,
        &format!(
            "[store]\ntype = \"vault\"\naddress = \"http://127.0.0.1:{port}\"\nrequest_timeout = \"2s\"\n[policies.p]\n[[secret]]\npath = \"x/y\"\npolicy = \"p\"\n"
        ),
    );
    for args in [&["check"][..], &["status"][..], &["rotate", "--all"][..]] {
        let r = rekey(&cfg, args, &[("VAULT_TOKEN", "some-token-value-123")]).await;
        assert_eq!(r.code, 3, "{args:?}: {}{}", r.stdout, r.stderr);
    }
    let cfg =
        write_config(&dir, &format!("{}[policies.p]\n[[secret]]\npath = \"x/y\"\npolicy = \"p\"\n", vault_store(&bao)));
    let r = rekey(&cfg, &["check"], &[("VAULT_TOKEN", "not-a-valid-token-xyz")]).await;
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert_no_leak(&["not-a-valid-token-xyz".to_owned(), "some-token-value-123".to_owned()]);
}

#[tokio::test]
async fn help_has_an_example_for_every_command() {
    let dir = scratch("help");
    let cfg = dir.join("absent.toml");
    for cmd in ["check", "plan", "rotate", "emergency", "status", "history", "rollback", "resume", "run"] {
        let r = rekey(&cfg, &[cmd, "--help"], &[]).await;
        assert_eq!(r.code, 0, "{cmd}");
        assert!(r.stdout.contains("Example:"), "{cmd} --help has no example:\n{}", r.stdout);
    }
    let r = rekey(&cfg, &["--help"], &[]).await;
    assert!(r.stdout.contains("Exit codes") && r.stdout.contains("Example:"));
    // A missing config file is a config error.
    let r = rekey(&cfg, &["status"], &[]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[tokio::test]
async fn dry_run_tells_a_live_rotation_elsewhere_from_a_crashed_one() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("dryjournal");
    let dir = scratch("dryjournal");
    let cfg = write_config(&dir, &config(&bao, &prefix, ""));
    let env = [("VAULT_TOKEN", bao.token.as_str())];
    let api = format!("{prefix}/api-key");
    let db = format!("{prefix}/db");
    bao.put(&api, json!({ "value": "dry-journal-api-s3cr3t-1" })).await;
    bao.put(&db, json!({ "username": "app", "password": "dry-journal-db-s3cr3t-2" })).await;
    let journal = |started: &str| {
        format!(
            "id=0b9d6c1e-6f0e-4a43-9d3c-6a4f4f0e2b11 step=stage strategy=staged started={started} owner=other-process checks=no base=1"
        )
    };
    // A rotation another process started (its journal is fresh), and one
    // that crashed long ago.
    bao.patch_custom_metadata(&api, json!({ "rekey.rotation": journal("2099-01-01T00:00:00.000Z") })).await;
    bao.patch_custom_metadata(&db, json!({ "rekey.rotation": journal("2020-01-01T00:00:00.000Z") })).await;
    let r = rekey(&cfg, &["rotate", "--all", "--dry-run", "--json"], &env).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let j = r.json();
    let would = |i: usize| j["secrets"][i]["would"].as_str().unwrap_or_default().to_owned();
    assert!(would(0).starts_with("wait: a rotation is in progress in another process"), "{j}");
    assert!(would(0).contains("counts as crashed from 2099-01-01"), "{j}");
    assert_eq!(would(1), "rotate after cleaning up a crashed rotation", "{j}");
    // Nothing was written.
    assert!(bao.metadata(&db).await.2.get("rekey.rotation").is_some());
}
