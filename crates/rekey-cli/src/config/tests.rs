//! Tests of `parse`: every section, positions, and no panic on any text.

use super::*;
use super::{audit, generator, keys, policy, store, verifier};

fn env_with(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
}

const GOOD: &str = r#"
[store]
type = "memory"

[policies.fast]
schedule = "every 2s"
strategy = "staged"

[[secret]]
path = "app/db"
policy = "fast"
generator = { type = "random", length = 24 }
"#;

#[cfg(feature = "memory")] // its config uses the in-memory store
#[test]
fn good_config_loads() {
    let c = parse(GOOD, &env_with(&[])).expect("valid");
    assert_eq!(c.secrets.len(), 1);
    assert_eq!(c.secrets[0].path.as_str(), "app/db");
    assert_eq!(c.store_kind, "memory");
}

#[cfg(all(feature = "memory", feature = "vault"))] // its configs use both stores
#[test]
fn every_problem_is_reported_with_position() {
    let src = r#"
[store]
type = "vault"
address = "http://127.0.0.1:8200"

[policies.fast]
schedule = "cron: 99 * * * *"
stratgy = "staged"

[policies.slow]
max_retries = "three"
verification_tests = ["nope"]

[[secret]]
path = "app/db"
policy = "fsat"
colour = "blue"
"#;
    let diags = parse(src, &env_with(&[])).expect_err("invalid");
    let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
    let all = text.join("\n");
    assert!(all.contains("8:1: policies.fast.stratgy: unknown key `stratgy` (did you mean `strategy`?)"), "{all}");
    assert!(all.contains("11:15: policies.slow.max_retries: expected an integer, found a string"), "{all}");
    assert!(all.contains("16:10: secret[1].policy: unknown policy \"fsat\" (did you mean `fast`?)"), "{all}");
    assert!(all.contains("17:1: secret[1].colour: unknown key"), "{all}");
    assert!(all.contains("store.auth: missing credentials"), "{all}");
    assert!(all.contains("verification_tests: unknown verifier \"nope\""), "{all}");
    let cron = parse(
        "[store]\ntype = \"memory\"\n[policies.p]\nschedule = \"cron: 99 * * * *\"\n[[secret]]\npath = \"a\"\npolicy = \"p\"\n",
        &env_with(&[]),
    )
    .expect_err("bad cron");
    assert_eq!(cron.len(), 1, "{cron:?}");
    assert_eq!((cron[0].line, cron[0].column, cron[0].field.as_str()), (4, 12, "policies.p.schedule"));
    assert!(cron[0].message.contains("invalid cron"), "{cron:?}");
}

#[cfg(feature = "vault")] // its config uses the vault store
#[test]
fn token_in_file_is_refused() {
    let src = "[store]\ntype = \"vault\"\naddress = \"http://127.0.0.1:1\"\nauth = { method = \"token\", token = \"s3cr3t\" }\n[[secret]]\npath = \"a\"\npolicy = \"p\"\n";
    let diags = parse(src, &env_with(&[("VAULT_TOKEN", "x")])).expect_err("token in file");
    let all: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert!(all.iter().any(|d| d.contains("never read from the configuration file")), "{all:?}");
    assert!(!all.iter().any(|d| d.contains("s3cr3t")), "{all:?}");
}

#[cfg(feature = "vault")] // its config uses the vault store
#[test]
fn the_documented_example_is_valid() {
    let doc = include_str!("../../../../docs/cli.md");
    let start = doc.find("```toml\n").expect("an example") + "```toml\n".len();
    let end = start + doc[start..].find("```").expect("closed");
    let env = env_with(&[
        ("VAULT_TOKEN", "t"),
        ("BILLING_PG_ADMIN_URL", "postgres://admin:pw@127.0.0.1/postgres"),
        ("REKEY_WEBHOOK_KEY", "k"),
    ]);
    let c = parse(&doc[start..end], &env).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(c.secrets.len(), 2);
    assert_eq!(c.verifiers.len(), 2);
    assert_eq!(c.audit.len(), 2);
    assert_eq!(c.secrets[1].policy.verification_tests(), ["api-whoami"]);
}

#[cfg(feature = "memory")] // its config uses the in-memory store
#[test]
fn non_loopback_listen_needs_opt_in() {
    let src = format!("{GOOD}\n[daemon]\nlisten = \"0.0.0.0:9464\"\n");
    let d = parse(&src, &env_with(&[])).expect_err("non-loopback");
    assert!(d[0].message.contains("not a loopback"), "{d:?}");
    let src = format!("{GOOD}\n[daemon]\nlisten = \"0.0.0.0:9464\"\nallow_non_loopback = true\n");
    assert!(parse(&src, &env_with(&[])).is_ok());
}

#[cfg(feature = "memory")] // its config uses the in-memory store
#[test]
fn recheck_interval_defaults_to_an_hour_and_can_be_turned_off() {
    let c = parse(GOOD, &env_with(&[])).expect("valid");
    assert_eq!(c.daemon.recheck_interval, Some(std::time::Duration::from_secs(3600)));
    let src = format!("{GOOD}\n[daemon]\nrecheck_interval = \"10m\"\n");
    assert_eq!(
        parse(&src, &env_with(&[])).expect("valid").daemon.recheck_interval,
        Some(std::time::Duration::from_secs(600))
    );
    let src = format!("{GOOD}\n[daemon]\nrecheck_interval = \"off\"\n");
    assert_eq!(parse(&src, &env_with(&[])).expect("valid").daemon.recheck_interval, None);
    for bad in ["0s", "soon"] {
        let src = format!("{GOOD}\n[daemon]\nrecheck_interval = \"{bad}\"\n");
        let d = parse(&src, &env_with(&[])).expect_err(bad);
        let line = src.lines().position(|l| l.starts_with("recheck_interval")).map(|i| i + 1);
        assert_eq!(Some(d[0].line), line, "{d:?}");
        assert_eq!(d[0].field, "daemon.recheck_interval", "{d:?}");
    }
}

#[cfg(feature = "memory")] // its config uses the in-memory store
#[test]
fn a_command_target_is_read_and_its_mistakes_reported_at_their_keys() {
    let with = |target: &str| format!("{GOOD}target = {{ {target} }}\n");
    let c = parse(&with(r#"type = "command", program = "/bin/hook", concurrent_credentials = true"#), &env_with(&[]))
        .expect("valid");
    let t = c.secrets[0].target.as_ref().expect("a target");
    assert_eq!((t.kind(), t.concurrent_credentials(), t.transport_warning()), ("command", true, None));
    for (target, field, message) in [
        (r#"type = "command""#, "secret[1].target.program", "missing required key `program`"),
        (r#"type = "command", program = "/bin/hook", shell = true"#, "secret[1].target.shell", "unknown key"),
        (r#"type = "command", program = "/bin/hook", timeout = "0s""#, "secret[1].target.timeout", "more than zero"),
        (
            r#"type = "command", program = "/bin/hook", env = { REKEY_KEEP = "x" }"#,
            "secret[1].target.env",
            "set by rekey",
        ),
    ] {
        let d = parse(&with(target), &env_with(&[])).expect_err(target);
        assert_eq!(d[0].field, field, "{target}: {d:?}");
        assert!(d[0].message.contains(message), "{target}: {d:?}");
    }
}

#[test]
fn syntax_error_has_position_and_no_panic() {
    for src in ["[store", "a = ", "[[secret]]\npath = 1\n", "store = 3", "\u{feff}x=1", ""] {
        let _ = parse(src, &env_with(&[]));
    }
    let d = parse("[store]\ntype = \"memory\"\n[[secret]\n", &env_with(&[])).expect_err("syntax");
    assert_eq!(d[0].line, 3, "{d:?}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Any text: a list of problems or a config, never a panic.
    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,300}") {
        let _ = parse(&src, &env_with(&[("VAULT_TOKEN", "t")]));
    }

    /// A valid file with one byte range replaced: never a panic, and
    /// every diagnostic points inside the file.
    #[test]
    fn mutated_config_never_panics(at in 0usize..200, len in 0usize..20, with in "[\\[\\]{}=\",.a-z0-9 \n*:-]{0,12}") {
        let at = at.min(GOOD.len());
        let end = (at + len).min(GOOD.len());
        if GOOD.is_char_boundary(at) && GOOD.is_char_boundary(end) {
            let src = format!("{}{}{}", &GOOD[..at], with, &GOOD[end..]);
            if let Err(diags) = parse(&src, &env_with(&[])) {
                let lines = src.lines().count().max(1) + 1;
                for d in diags {
                    proptest::prop_assert!(d.line >= 1 && d.line <= lines, "{d} in {src:?}");
                    proptest::prop_assert!(d.column >= 1);
                }
            }
        }
    }
}

/// The CLI types every key the library's config types accept, and no key
/// they do not: fails when a library struct gains (or loses) a key, so the
/// CLI's tables are updated with it.
#[test]
fn every_library_key_has_a_type_in_the_cli() {
    /// A section's name, the library's keys, the CLI's types, keys to skip.
    type Section = (&'static str, &'static [&'static str], &'static [(&'static str, Kind)], &'static [&'static str]);
    let mut sections: Vec<Section> = vec![
        ("[policies.NAME]", keys::fields::<rekey::RotationPolicyConfig>(), policy::POLICY_KINDS, &["name"]),
        ("generator", keys::fields::<rekey::GeneratorConfig>(), generator::GENERATOR_KINDS, &[]),
        (
            "[[verifier]] type = \"http\"",
            keys::fields::<rekey_integrations::HttpVerifierConfig>(),
            verifier::HTTP_KINDS,
            &[],
        ),
        (
            "[[verifier]] type = \"command\"",
            keys::fields::<rekey_integrations::CommandVerifierConfig>(),
            verifier::COMMAND_KINDS,
            &[],
        ),
        (
            "[[audit]] type = \"json_lines\"",
            keys::fields::<rekey_integrations::JsonLinesConfig>(),
            audit::JSON_LINES_KINDS,
            &[],
        ),
        (
            "[[audit]] type = \"webhook\"",
            keys::fields::<rekey_integrations::WebhookConfig>(),
            audit::WEBHOOK_KINDS,
            &[],
        ),
    ];
    if cfg!(feature = "vault") {
        sections.push(("[store] type = \"vault\"", store::vault_fields(), store::VAULT_KINDS, &[]));
    }
    if cfg!(feature = "aws") {
        sections.push(("[store] type = \"aws\"", store::aws_fields(), store::AWS_KINDS, &[]));
    }
    for (section, lib, kinds, skip) in sections {
        assert!(!lib.is_empty(), "{section}: no keys read from the library type");
        for k in lib.iter().filter(|k| !skip.contains(k)) {
            assert!(
                kinds.iter().any(|(n, _)| n == k),
                "{section}: the library accepts `{k}` but the CLI has no type for it: add it to the CLI's table \
                 (and to docs/cli.md)"
            );
        }
        for (k, _) in kinds {
            assert!(lib.contains(k), "{section}: the CLI types `{k}`, which the library does not accept");
        }
    }
    assert_eq!(keys::variants::<rekey_integrations::VerifierConfig>("type"), ["http", "command"]);
}

#[test]
fn invalid_utf8_is_reported_at_the_first_bad_byte() {
    let text: Vec<u8> = b"[store]\ntype = \"memory\"\n# caf\xc3\xa9 \xff\xfe\n".to_vec();
    let valid = String::from_utf8(text.clone()).expect_err("not UTF-8").utf8_error().valid_up_to();
    let d = not_utf8(&text, valid);
    assert_eq!((d.line, d.column, d.field.as_str()), (3, 8, "(encoding)"), "{d}");
    assert!(d.message.contains("0xff"), "{d}");
}

#[cfg(feature = "vault")] // its config uses the vault store
#[test]
fn malformed_urls_are_reported_at_their_value() {
    let src = "[store]\ntype = \"vault\"\naddress = \"http//127.0.0.1:8200\"\n[policies.p]\n[[secret]]\npath = \"a\"\npolicy = \"p\"\n[[audit]]\ntype = \"webhook\"\nurl = \"ht!tp://x\"\n";
    let d = parse(src, &env_with(&[("VAULT_TOKEN", "t"), ("REKEY_WEBHOOK_KEY", "k")])).expect_err("bad URLs");
    let all: Vec<String> = d.iter().map(ToString::to_string).collect();
    assert!(
        all.iter().any(|l| l.starts_with("3:11: store.address: \"http//127.0.0.1:8200\" is not a valid URL")),
        "{all:#?}"
    );
    assert!(all.iter().any(|l| l.starts_with("10:7: audit[1].url: \"ht!tp://x\" is not a valid URL")), "{all:#?}");
}

#[cfg(feature = "memory")] // its config uses the in-memory store
#[test]
fn key_env_is_refused_with_the_right_name() {
    let src = format!("{GOOD}\n[[audit]]\ntype = \"webhook\"\nurl = \"https://hooks.example/x\"\nkey_env = \"K\"\n");
    let d = parse(&src, &env_with(&[("K", "k"), ("REKEY_WEBHOOK_KEY", "k")])).expect_err("key_env");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].line, d[0].column), (17, 1), "{d:?}");
    assert!(d[0].message.contains("`secret_env"), "{d:?}");
}

/// In a build without every store (`--no-default-features --features
/// vault`, or `aws`), a config naming a missing one is refused at `type`.
#[cfg(not(all(feature = "memory", feature = "vault", feature = "aws")))]
#[test]
fn a_store_not_compiled_in_is_refused_at_its_type() {
    let missing = ["memory", "vault", "aws"]
        .into_iter()
        .find(|k| match *k {
            "memory" => !cfg!(feature = "memory"),
            "vault" => !cfg!(feature = "vault"),
            _ => !cfg!(feature = "aws"),
        })
        .expect("a store is missing from this build");
    let src = format!("[store]\ntype = \"{missing}\"\n[policies.p]\n[[secret]]\npath = \"a\"\npolicy = \"p\"\n");
    let d = parse(&src, &env_with(&[("VAULT_TOKEN", "t"), ("AWS_ACCESS_KEY_ID", "k")])).expect_err("not compiled in");
    assert_eq!((d[0].line, d[0].column, d[0].field.as_str()), (2, 8, "store.type"), "{d:?}");
    assert!(d[0].message.contains(&format!("--features {missing}")), "{d:?}");
}

#[cfg(feature = "memory")] // its config uses the in-memory store
#[test]
fn an_http_verifier_to_a_remote_host_needs_https_or_the_opt_out() {
    let verifier = "\n[[verifier]]\nname = \"api\"\ntype = \"http\"\nurl = \"http://billing.internal/v1/me\"\nplacement = { type = \"header\", name = \"Authorization\" }\n";
    let src = format!("{GOOD}{verifier}");
    let d = parse(&src, &env_with(&[])).expect_err("plain http to a remote host");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        (d[0].line, d[0].field.as_str()),
        (src.lines().position(|l| l.starts_with("url")).unwrap() + 1, "verifier[1].url"),
        "{d:?}"
    );
    assert!(d[0].message.contains("unencrypted") && d[0].message.contains("allow_insecure_http"), "{d:?}");
    let src = format!("{GOOD}{verifier}allow_insecure_http = true\n");
    let c = parse(&src, &env_with(&[])).unwrap_or_else(|d| panic!("{d:#?}"));
    let rekey_integrations::VerifierConfig::Http(h) = &c.verifiers[0].settings else { panic!("http") };
    assert!(h.transport_warning().is_some_and(|w| w.contains("billing.internal")));
}
