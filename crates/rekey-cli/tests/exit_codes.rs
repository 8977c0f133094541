//! One test per row of the exit-code table in docs/cli.md, through the
//! binary, and the precedence of `rotate --all` with mixed results
//! (3 > 2 > 1 > 4 > 0). The in-memory store where one invocation is enough;
//! OpenBao where a test needs state across invocations; an OpenBao address
//! with nothing listening for "unreachable".
#![cfg(all(feature = "memory", feature = "vault"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use chrono::{Timelike, Utc};
use common::*;
use serde_json::json;

/// A rotation window that is closed now: it opens in two hours (UTC).
fn closed_window() -> String {
    let h = Utc::now().hour();
    format!("{:02}:00-{:02}:00", (h + 2) % 24, (h + 3) % 24)
}

/// 0: success — and a skipped rotation (outside its window) is not a
/// failure: exit 0 with the outcome shown.
#[tokio::test]
async fn exit_0_for_a_rotation_and_for_a_skipped_one() {
    let dir = scratch("exit0");
    let cfg = write_config(
        &dir,
        &format!(
            "{}[policies.later]\nwindow = \"{}\"\n[[secret]]\npath = \"app/windowed\"\npolicy = \"later\"\n",
            memory_store(),
            closed_window()
        ),
    );
    let r = rekey(&cfg, &["rotate", "app/windowed", "--json"], &[]).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["ok"], true, "{j}");
    assert_eq!(j["results"][0]["outcome"], "outside_window", "{j}");
    assert_eq!(j["summary"]["skipped"], 1, "{j}");
    let text = rekey(&cfg, &["rotate", "app/windowed"], &[]).await;
    assert_eq!(text.code, 0);
    assert!(text.stdout.contains("outside window"), "{}", text.stdout);

    let Some(bao) = Bao::from_env() else { return };
    let path = format!("{}/ok", unique("exit0"));
    bao.put(&path, json!({ "value": "exit0-initial-s3cr3t" })).await;
    let cfg = write_config(
        &dir,
        &format!("{}[policies.p]\n[[secret]]\npath = \"{path}\"\npolicy = \"p\"\n", vault_store(&bao)),
    );
    let r = rekey(&cfg, &["rotate", &path], &[("VAULT_TOKEN", bao.token.as_str())]).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_no_leak(&["exit0-initial-s3cr3t".to_owned()]);
}

/// 1: a rotation failed (its verifier refused the candidate).
#[tokio::test]
async fn exit_1_when_a_rotation_fails() {
    let Some(bao) = Bao::from_env() else { return };
    let path = format!("{}/fails", unique("exit1"));
    bao.put(&path, json!({ "value": "exit1-initial-s3cr3t" })).await;
    let dir = scratch("exit1");
    let cfg = write_config(&dir, &failing_config(&bao, &[&path]));
    let r = rekey(&cfg, &["rotate", &path, "--json"], &[("VAULT_TOKEN", bao.token.as_str())]).await;
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["results"][0]["exit_code"], 1);
}

fn failing_config(bao: &Bao, failing: &[&str]) -> String {
    let mut c = format!(
        "{}[policies.checked]\nrequire_verification = true\nverification_tests = [\"no\"]\nmax_retries = 0\n\
         [policies.plain]\n[[verifier]]\nname = \"no\"\ntype = \"command\"\nprogram = \"/bin/false\"\n",
        vault_store(bao)
    );
    for p in failing {
        c.push_str(&format!("[[secret]]\npath = \"{p}\"\npolicy = \"checked\"\n"));
    }
    c
}

/// 2: the command line or the configuration is wrong — including settings
/// that do not fit the stored value (`field` missing for a secret with
/// fields), which `check` and `rotate` used to report as 1.
#[tokio::test]
async fn exit_2_for_a_wrong_command_line_or_settings_that_do_not_fit() {
    let dir = scratch("exit2");
    let cfg =
        write_config(&dir, &format!("{}[policies.p]\n[[secret]]\npath = \"a/b\"\npolicy = \"p\"\n", memory_store()));
    let r = rekey(&cfg, &["rotate", "--no-such-flag"], &[]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = rekey(&cfg, &["rotate"], &[]).await;
    assert_eq!(r.code, 2, "a missing PATH: {}", r.stderr);
    let bad = write_config(&dir, "[store]\ntype = \"memory\"\ncolour = 1\n");
    let r = rekey(&bad, &["check"], &[]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);

    let Some(bao) = Bao::from_env() else { return };
    let path = format!("{}/fields", unique("exit2"));
    bao.put(&path, json!({ "username": "app", "password": "exit2-initial-s3cr3t" })).await;
    let cfg = write_config(
        &dir,
        &format!("{}[policies.p]\n[[secret]]\npath = \"{path}\"\npolicy = \"p\"\n", vault_store(&bao)),
    );
    let env = [("VAULT_TOKEN", bao.token.as_str())];
    let r = rekey(&cfg, &["check", "--json"], &env).await;
    assert_eq!(r.code, 2, "check of a misconfigured secret: {}{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["secrets"][0]["state"], "misconfigured", "{j}");
    let r = rekey(&cfg, &["rotate", &path, "--json"], &env).await;
    assert_eq!(r.code, 2, "rotate of a misconfigured secret: {}{}", r.stdout, r.stderr);
    let msg = r.json()["results"][0]["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("field = \"NAME\"") && !msg.contains("SecretBinding"), "{msg}");
    let text = rekey(&cfg, &["rotate", &path], &env).await;
    assert!(!text.stdout.contains("SecretBinding") && !text.stderr.contains("SecretBinding"), "{}", text.stdout);
    assert_eq!(bao.metadata(&path).await.0, 1, "nothing was written");
    assert_no_leak(&["exit2-initial-s3cr3t".to_owned()]);
}

/// 3: the store cannot be reached (nothing listens at its address).
#[tokio::test]
async fn exit_3_when_the_store_is_unreachable() {
    let dir = scratch("exit3");
    let port = free_port();
    let cfg = write_config(
        &dir,
        &format!(
            "[store]\ntype = \"vault\"\naddress = \"http://127.0.0.1:{port}\"\nrequest_timeout = \"2s\"\n\
             [policies.p]\n[[secret]]\npath = \"x/y\"\npolicy = \"p\"\n"
        ),
    );
    let env = [("VAULT_TOKEN", "exit3-token-value-1")];
    for args in [&["rotate", "--all", "--json"][..], &["check", "--json"][..], &["plan", "--json"][..]] {
        let r = rekey(&cfg, args, &env).await;
        assert_eq!(r.code, 3, "{args:?}: {}{}", r.stdout, r.stderr);
        let j = r.json();
        assert_eq!(j["error"]["kind"], "store_unreachable", "{j}");
        assert_eq!(j["error"]["exit_code"], 3, "{j}");
    }
}

/// 4: a configured secret that is not in the store (`rotate` and `rollback`
/// used to exit 1), and a rollback with no earlier version.
#[tokio::test]
async fn exit_4_when_the_secret_or_its_previous_version_is_missing() {
    let dir = scratch("exit4");
    let cfg = write_config(
        &dir,
        &format!("{}[policies.p]\n[[secret]]\npath = \"app/absent\"\npolicy = \"p\"\n", memory_store()),
    );
    let r = rekey(&cfg, &["rotate", "app/absent", "--json"], &[]).await;
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["results"][0]["exit_code"], 4);
    let r = rekey(&cfg, &["emergency", "app/absent", "--reason", "test"], &[]).await;
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    // Every command that names the secret, `rollback` included (it exited 1:
    // the recovery it starts with found the secret missing).
    for cmd in [
        &["check"][..],
        &["status"][..],
        &["plan"][..],
        &["rotate", "--all", "--dry-run"][..],
        &["rollback", "app/absent"][..],
        &["history", "app/absent"][..],
        &["resume", "app/absent"][..],
    ] {
        let r = rekey(&cfg, cmd, &[]).await;
        assert_eq!(r.code, 4, "{cmd:?}: {}{}", r.stdout, r.stderr);
    }

    let Some(bao) = Bao::from_env() else { return };
    let path = format!("{}/one-version", unique("exit4"));
    bao.put(&path, json!({ "value": "exit4-initial-s3cr3t" })).await;
    let cfg = write_config(
        &dir,
        &format!("{}[policies.p]\n[[secret]]\npath = \"{path}\"\npolicy = \"p\"\n", vault_store(&bao)),
    );
    let r = rekey(&cfg, &["rollback", &path], &[("VAULT_TOKEN", bao.token.as_str())]).await;
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert_eq!(bao.read(&path).await["value"], "exit4-initial-s3cr3t");

    // An immediate rotation whose verifier refuses the candidate is rolled
    // back by the engine; the candidate is still a version in the store. A
    // manual rollback must not bring it back: nothing earlier was good, so
    // it is refused with 4 (the old command restored the failed value).
    let imm = format!("{}/immediate", unique("exit4"));
    bao.put(&imm, json!({ "value": "exit4-imm-initial-s3cr3t" })).await;
    let cfg = write_config(
        &dir,
        &format!(
            "{}[policies.imm]\nstrategy = \"immediate\"\nrequire_verification = true\nverification_tests = [\"no\"]\n\
             max_retries = 0\n[[verifier]]\nname = \"no\"\ntype = \"command\"\nprogram = \"/bin/false\"\n\
             [[secret]]\npath = \"{imm}\"\npolicy = \"imm\"\n",
            vault_store(&bao)
        ),
    );
    let env = [("VAULT_TOKEN", bao.token.as_str())];
    let r = rekey(&cfg, &["rotate", &imm], &env).await;
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(bao.read(&imm).await["value"], "exit4-imm-initial-s3cr3t", "rolled back by the engine");
    let r = rekey(&cfg, &["rollback", &imm, "--json"], &env).await;
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["error"]["kind"], "not_found", "{}", r.stdout);
    assert_eq!(bao.read(&imm).await["value"], "exit4-imm-initial-s3cr3t", "the failed candidate is not restored");
}

/// `rotate --all` with mixed results exits with the most severe code:
/// 3 > 2 > 1 > 4 > 0.
#[tokio::test]
async fn rotate_all_exits_with_the_most_severe_code() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("mixed");
    let (ok, missing, failing, misfit) =
        (format!("{prefix}/ok"), format!("{prefix}/missing"), format!("{prefix}/failing"), format!("{prefix}/misfit"));
    bao.put(&ok, json!({ "value": "mixed-ok-s3cr3t-1" })).await;
    bao.put(&failing, json!({ "value": "mixed-failing-s3cr3t-2" })).await;
    bao.put(&misfit, json!({ "user": "u", "pw": "mixed-misfit-s3cr3t-3" })).await;
    let dir = scratch("mixed");
    let env = [("VAULT_TOKEN", bao.token.as_str())];
    let secret = |p: &str, policy: &str| format!("[[secret]]\npath = \"{p}\"\npolicy = \"{policy}\"\n");

    // ok + missing: 4 (the old code said 1).
    let base = failing_config(&bao, &[]);
    let cfg = write_config(&dir, &format!("{base}{}{}", secret(&ok, "plain"), secret(&missing, "plain")));
    let r = rekey(&cfg, &["rotate", "--all", "--json"], &env).await;
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["summary"]["rotated"], 1, "{j}");
    assert_eq!(j["exit_code"], 4, "{j}");

    // + a failed rotation: 1 wins over 4.
    let cfg = write_config(
        &dir,
        &format!("{base}{}{}{}", secret(&ok, "plain"), secret(&missing, "plain"), secret(&failing, "checked")),
    );
    let r = rekey(&cfg, &["rotate", "--all"], &env).await;
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);

    // + settings that do not fit the stored value: 2 wins over 1 and 4.
    let cfg = write_config(
        &dir,
        &format!(
            "{base}{}{}{}{}",
            secret(&ok, "plain"),
            secret(&missing, "plain"),
            secret(&failing, "checked"),
            secret(&misfit, "plain")
        ),
    );
    let r = rekey(&cfg, &["rotate", "--all", "--json"], &env).await;
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let codes: Vec<u64> =
        r.json()["results"].as_array().unwrap().iter().map(|x| x["exit_code"].as_u64().unwrap()).collect();
    assert_eq!(codes.iter().copied().collect::<std::collections::BTreeSet<_>>(), [0, 1, 2, 4].into(), "{codes:?}");
    assert_no_leak(&[
        "mixed-ok-s3cr3t-1".to_owned(),
        "mixed-failing-s3cr3t-2".to_owned(),
        "mixed-misfit-s3cr3t-3".to_owned(),
    ]);
}
