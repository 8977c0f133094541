//! Errors and texts through the binary: every configuration error has its
//! file:line:column (a file that is not UTF-8, a malformed URL); control
//! and bidi characters never reach the terminal raw; the help, the docs and
//! the code say the same (webhook `secret_env`, the stale-journal takeover
//! time); durations carry their unit.
#![cfg(feature = "memory")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;

const DOCS: &str = include_str!("../../../docs/cli.md");

/// Bytes a terminal would act on: ESC, BEL, CR, C1 CSI, and the bidi
/// override U+202E.
fn raw_controls(s: &str) -> Vec<char> {
    s.chars().filter(|c| matches!(c, '\u{1b}' | '\u{7}' | '\r' | '\u{9b}' | '\u{202e}' | '\u{2066}')).collect()
}

#[tokio::test]
async fn a_file_that_is_not_utf8_is_reported_at_its_first_bad_byte() {
    let dir = scratch("utf8");
    let cfg = dir.join("rekey.toml");
    std::fs::write(&cfg, b"[store]\ntype = \"memory\"\n# caf\xc3\xa9 \xff\n[[secret]]\n").unwrap();
    let r = rekey(&cfg, &["check"], &[]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("rekey.toml:3:8: (encoding): not valid UTF-8 (byte 0xff)"), "{}", r.stderr);
    let r = rekey(&cfg, &["check", "--json"], &[]).await;
    let j = r.json();
    assert_eq!(
        (j["diagnostics"][0]["line"].as_u64(), j["diagnostics"][0]["column"].as_u64()),
        (Some(3), Some(8)),
        "{j}"
    );
}

#[tokio::test]
async fn malformed_urls_are_reported_at_their_line_and_column() {
    let dir = scratch("urls");
    let cfg = write_config(
        &dir,
        "[store]\ntype = \"vault\"\naddress = \"http//127.0.0.1:8200\"\n[policies.p]\n[[secret]]\npath = \"a\"\npolicy = \"p\"\n\
         [[audit]]\ntype = \"webhook\"\nurl = \"https://exa mple.com/hook\"\n",
    );
    let r = rekey(&cfg, &["check"], &[("VAULT_TOKEN", "urls-token-123"), ("REKEY_WEBHOOK_KEY", "k")]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("rekey.toml:3:11: store.address: \"http//127.0.0.1:8200\" is not a valid URL"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("rekey.toml:10:7: audit[1].url: \"https://exa mple.com/hook\" is not a valid URL"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn control_characters_in_config_names_are_escaped() {
    let dir = scratch("ctl-config");
    let cfg = write_config(
        &dir,
        "[store]\ntype = \"memory\"\n\"\\u001b[2Jcol\\u0007our\\r\\u202e\" = 1\n[policies.p]\n[[secret]]\npath = \"a\"\npolicy = \"p\"\n",
    );
    let r = rekey(&cfg, &["check"], &[]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(raw_controls(&r.stderr).is_empty(), "raw control characters: {:?}", r.stderr);
    assert!(r.stderr.contains("\\u{1b}[2Jcol\\u{7}our\\u{d}\\u{202e}"), "{}", r.stderr);

    // A policy name with control characters is refused (by the library),
    // and the message shows the name escaped.
    let cfg = write_config(
        &dir,
        "[store]\ntype = \"memory\"\n[policies.\"p\\u001b]0;x\\u0007\"]\n[[secret]]\npath = \"a\"\npolicy = \"p\\u001b]0;x\\u0007\"\n",
    );
    let r = rekey(&cfg, &["plan"], &[]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(raw_controls(&r.stderr).is_empty(), "{:?}", r.stderr);
    assert!(r.stderr.contains("policies.p\\u{1b}]0;x\\u{7}"), "{}", r.stderr);

    // A verifier's name reaches `check`'s text.
    let cfg = write_config(
        &dir,
        "[store]\ntype = \"memory\"\n[policies.p]\n[[secret]]\npath = \"a\"\npolicy = \"p\"\n\
         [[verifier]]\nname = \"v\\u001b[8m\\u202e\"\ntype = \"command\"\nprogram = \"/bin/true\"\n",
    );
    let r = rekey(&cfg, &["check"], &[]).await;
    assert!(raw_controls(&r.stdout).is_empty() && raw_controls(&r.stderr).is_empty(), "{:?}{:?}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("v\\u{1b}[8m\\u{202e}") || r.stderr.contains("v\\u{1b}[8m\\u{202e}"),
        "{}{}",
        r.stdout,
        r.stderr
    );
}

/// A verifier's message (its program's first line of stderr) with control
/// and bidi characters: escaped in the table, the history and the logs;
/// plain JSON escapes in `--json`.
#[cfg(feature = "vault")]
#[tokio::test]
async fn control_characters_in_verifier_output_are_escaped() {
    let Some(bao) = Bao::from_env() else { return };
    let path = format!("{}/ctl", unique("ctl"));
    bao.put(&path, serde_json::json!({ "value": "ctl-initial-s3cr3t-01" })).await;
    let dir = scratch("ctl");
    let cfg = write_config(
        &dir,
        &format!(
            "{}[policies.p]\nrequire_verification = true\nverification_tests = [\"loud\"]\nmax_retries = 0\n\
             [[verifier]]\nname = \"loud\"\ntype = \"command\"\nprogram = \"/bin/sh\"\n\
             args = [\"-c\", \"printf '\\\\033]0;pwned\\\\007 x\\\\r y \\\\342\\\\200\\\\256 z' >&2; exit 1\"]\n\
             [[secret]]\npath = \"{path}\"\npolicy = \"p\"\n",
            vault_store(&bao)
        ),
    );
    let env = [("VAULT_TOKEN", bao.token.as_str()), ("RUST_LOG", "info")];
    let r = rekey(&cfg, &["rotate", &path], &env).await;
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("pwned") && r.stdout.contains("\\u{202e}"), "{}", r.stdout);
    for (what, text) in [("stdout", &r.stdout), ("logs", &r.stderr)] {
        assert!(raw_controls(text).is_empty(), "{what}: raw control characters in {text:?}");
    }
    let r = rekey(&cfg, &["history", &path], &env).await;
    assert!(raw_controls(&r.stdout).is_empty(), "{:?}", r.stdout);
    let r = rekey(&cfg, &["rotate", &path, "--json"], &env).await;
    assert!(raw_controls(&r.stdout).is_empty(), "{:?}", r.stdout);
    assert!(r.stdout.contains("\\u202e"), "a JSON escape: {}", r.stdout);
    let msg = r.json()["results"][0]["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("pwned") && msg.contains('\u{202e}'), "the JSON string holds the text: {msg:?}");
    assert_no_leak(&["ctl-initial-s3cr3t-01".to_owned()]);
}

#[tokio::test]
async fn help_docs_and_config_agree_on_secret_env() {
    let dir = scratch("secret-env");
    let cfg = dir.join("absent.toml");
    let r = rekey(&cfg, &["--help"], &[]).await;
    assert!(r.stdout.contains("webhook's `secret_env`"), "{}", r.stdout);
    assert!(!r.stdout.contains("key_env"), "{}", r.stdout);
    assert!(DOCS.contains("secret_env") && !DOCS.contains("key_env ="), "docs/cli.md");
    let cfg = write_config(
        &dir,
        "[store]\ntype = \"memory\"\n[policies.p]\n[[secret]]\npath = \"a\"\npolicy = \"p\"\n\
         [[audit]]\ntype = \"webhook\"\nurl = \"https://hooks.example/x\"\nkey_env = \"HOOK_KEY\"\n",
    );
    let r = rekey(&cfg, &["check"], &[("HOOK_KEY", "k"), ("REKEY_WEBHOOK_KEY", "k")]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("rekey.toml:10:1: audit[1].key_env: unknown key `key_env`"), "{}", r.stderr);
    assert!(r.stderr.contains("secret_env = \"VAR\""), "names the right key: {}", r.stderr);
}

/// The takeover time of a stale journal, as the engine computes it
/// (`stale_limit` in rekey-core's manager): the same formula in `run
/// --help` and in docs/cli.md.
#[tokio::test]
async fn help_and_docs_state_the_engines_stale_journal_formula() {
    let dir = scratch("stale");
    let r = rekey(&dir.join("absent.toml"), &["run", "--help"], &[]).await;
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let formula = "2 x verification_timeout x (number of verification_tests + 1) + 2 x max_backoff + 60 s";
    assert!(flat(&r.stdout).contains(formula), "run --help:\n{}", r.stdout);
    assert!(flat(DOCS).contains(formula), "docs/cli.md does not state `{formula}`");
    assert!(!flat(DOCS).contains("twice the verification time plus backoff plus 60 s"), "the old text is gone");
}

/// Durations printed for people have a unit: the rotation table's TIME and
/// the summary; `status` shows how far off the next rotation is.
#[tokio::test]
async fn durations_have_units() {
    let dir = scratch("units");
    let cfg =
        write_config(&dir, &format!("{}[policies.p]\n[[secret]]\npath = \"a/b\"\npolicy = \"p\"\n", memory_store()));
    let r = rekey(&cfg, &["rotate", "a/b"], &[]).await;
    let row = r.stdout.lines().nth(1).unwrap_or_default().to_owned();
    assert!(row.split_whitespace().any(|w| w.ends_with("ms") && w[..w.len() - 2].parse::<u64>().is_ok()), "{row}");
    let summary = r.stdout.lines().last().unwrap_or_default();
    assert!(summary.contains(" in ") && (summary.contains("ms (") || summary.contains("s (")), "{summary}");
    let r = rekey(&cfg, &["rotate", "a/b", "--json"], &[]).await;
    let j = r.json();
    assert!(j["results"][0]["duration_ms"].is_number(), "{j}");
    assert!(j["results"][0].get("duration").is_none(), "a bare `duration` has no unit: {j}");
}

/// Issue 11 point 1 through the binary: a policy that names a verifier and
/// leaves `require_verification` at its default runs it (a failing verifier
/// fails the rotation, exit 1, the value unchanged); switching verification
/// off while naming verifiers is refused at the key (exit 2) by `check`.
#[cfg(feature = "vault")]
#[tokio::test]
async fn named_verifiers_run_by_default_and_cannot_be_switched_off() {
    let Some(bao) = Bao::from_env() else { return };
    let path = format!("{}/named", unique("named"));
    bao.put(&path, serde_json::json!({ "value": "named-initial-s3cr3t-01" })).await;
    let dir = scratch("named");
    let verifier = "[[verifier]]\nname = \"no\"\ntype = \"command\"\nprogram = \"/bin/false\"\n";
    let secret = format!("[[secret]]\npath = \"{path}\"\npolicy = \"p\"\n");
    let env = [("VAULT_TOKEN", bao.token.as_str())];

    let cfg = write_config(
        &dir,
        &format!(
            "{}[policies.p]\nverification_tests = [\"no\"]\nmax_retries = 0\n{verifier}{secret}",
            vault_store(&bao)
        ),
    );
    let r = rekey(&cfg, &["rotate", &path], &env).await;
    assert_eq!(r.code, 1, "the named verifier ran and failed\n{}{}", r.stdout, r.stderr);
    assert_eq!(bao.read(&path).await["value"], "named-initial-s3cr3t-01", "the unverified value never became current");

    let cfg = write_config(
        &dir,
        &format!(
            "{}[policies.p]\nrequire_verification = false\nverification_tests = [\"no\"]\n{verifier}{secret}",
            vault_store(&bao)
        ),
    );
    let r = rekey(&cfg, &["check"], &env).await;
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(":6:") || r.stdout.contains(":6:"), "refused at its line\n{}{}", r.stdout, r.stderr);
}
