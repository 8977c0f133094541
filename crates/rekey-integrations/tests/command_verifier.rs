//! CommandVerifier with /bin/sh scripts.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::capture_logs;
use rekey_core::{RotationId, SecretData, SecretPath, Verifier, VerifyContext, VerifyError};
use rekey_integrations::{CommandVerifier, CommandVerifierConfig, IntegrationError, VerifierConfig};

const SECRET: &str = "cand-8d1e2f4a6b0c9e77";

fn sh(script: &str) -> CommandVerifierConfig {
    let script = script.replace('\'', "''");
    toml::from_str(&format!(
        r#"
        name = "check"
        program = "/bin/sh"
        args = ["-c", '{script}']
        timeout = "5s"
        "#
    ))
    .unwrap()
}

async fn run(v: &CommandVerifier, candidate: &SecretData, field: Option<&str>) -> Result<(), VerifyError> {
    let path: SecretPath = "db/app".parse().unwrap();
    v.verify(VerifyContext { path: &path, rotation_id: RotationId::new(), candidate, field }).await
}

#[tokio::test]
async fn exit_zero_passes_and_nonzero_fails() {
    let v = CommandVerifier::new(&sh(&format!(r#"test "$REKEY_CANDIDATE" = "{SECRET}""#))).unwrap();
    run(&v, &SecretData::text(SECRET), None).await.unwrap();
    let err = run(&v, &SecretData::text("cand-wrong-123456"), None).await.unwrap_err();
    assert!(matches!(&err, VerifyError::Failed(m) if m.contains("exited with status 1")), "{err:?}");

    let v = CommandVerifier::new(&sh("exit 7")).unwrap();
    let err = run(&v, &SecretData::text(SECRET), None).await.unwrap_err();
    assert!(matches!(&err, VerifyError::Failed(m) if m.contains("status 7")), "{err:?}");
}

#[tokio::test]
async fn candidate_is_not_in_argv() {
    // The program sees its own argv: the candidate must not be there.
    let v =
        CommandVerifier::new(&sh(r#"case "$0 $*" in *"$REKEY_CANDIDATE"*) exit 1;; esac; test -n "$REKEY_CANDIDATE""#))
            .unwrap();
    run(&v, &SecretData::text(SECRET), None).await.unwrap();
}

#[tokio::test]
async fn echoed_candidate_never_reaches_the_error_or_logs() {
    let logs = capture_logs();
    let v = CommandVerifier::new(&sh(
        r#"echo "login failed for password $REKEY_CANDIDATE (field $REKEY_FIELD_USERNAME)" >&2; echo "$REKEY_CANDIDATE"; exit 3"#,
    ))
    .unwrap();
    let err = run(&v, &SecretData::text(SECRET), None).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("status 3") && msg.contains("login failed for password [REDACTED]"), "{msg}");
    assert!(!msg.contains(SECRET), "{msg}");

    // Exported fields are redacted too.
    let mut config = sh(r#"echo "user=$REKEY_FIELD_USERNAME pw=$REKEY_CANDIDATE" >&2; exit 1"#);
    config.export_fields = true;
    let v = CommandVerifier::new(&config).unwrap();
    let data = SecretData::fields([("username", "svc-user-4471"), ("password", SECRET)]);
    let err = run(&v, &data, Some("password")).await.unwrap_err().to_string();
    assert!(err.contains("user=[REDACTED] pw=[REDACTED]"), "{err}");
    assert!(!err.contains(SECRET) && !err.contains("svc-user-4471"), "{err}");
    assert!(!logs.text().contains(SECRET), "{}", logs.text());
    assert!(!format!("{v:?}").contains(SECRET));
}

#[tokio::test]
async fn fields_env_and_context_variables() {
    let mut config = sh(
        r#"test "$REKEY_CANDIDATE" = pw1 && test "$REKEY_FIELD_USERNAME" = app && test "$REKEY_FIELD_API_KEY" = k && test "$REKEY_PATH" = db/app && test -n "$REKEY_ROTATION_ID" && test "$EXTRA" = yes"#,
    );
    config.export_fields = true;
    config.env.insert("EXTRA".into(), "yes".into());
    let v = CommandVerifier::new(&config).unwrap();
    let data = SecretData::fields([("username", "app"), ("password", "pw1"), ("api-key", "k")]);
    run(&v, &data, Some("password")).await.unwrap();

    // A custom variable name; fields not exported by default.
    let mut config = sh(r#"test "$PGPASSWORD" = pw1 && test -z "$REKEY_CANDIDATE" && test -z "$REKEY_FIELD_USERNAME""#);
    config.env_var = "PGPASSWORD".into();
    let v = CommandVerifier::new(&config).unwrap();
    run(&v, &data, Some("password")).await.unwrap();
}

#[tokio::test]
async fn rekeys_environment_is_not_inherited_by_default() {
    // CARGO_MANIFEST_DIR is set for this test process (by cargo) and is not on
    // the pass list: it stands for VAULT_TOKEN and friends.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let v = CommandVerifier::new(&sh(r#"test -z "$CARGO_MANIFEST_DIR" && test -n "$PATH""#)).unwrap();
    run(&v, &SecretData::text(SECRET), None).await.unwrap();
    let mut config = sh(r#"test -n "$CARGO_MANIFEST_DIR""#);
    config.inherit_env = true;
    let v = CommandVerifier::new(&config).unwrap();
    run(&v, &SecretData::text(SECRET), None).await.unwrap();
}

#[tokio::test]
async fn timeout_kills_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("still-running");
    let mut config = sh(&format!("sleep 2; touch {}", marker.display()));
    config.timeout = Duration::from_millis(300);
    let v = CommandVerifier::new(&config).unwrap();
    let started = Instant::now();
    let err = run(&v, &SecretData::text(SECRET), None).await.unwrap_err();
    assert_eq!(err, VerifyError::TimedOut(Duration::from_millis(300)));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!marker.exists(), "the shell was killed, so it never got to `touch`");
}

#[tokio::test]
async fn missing_or_unexecutable_program_is_unavailable() {
    let config: CommandVerifierConfig = toml::from_str("name = \"x\"\nprogram = \"/nonexistent/rekey-check\"").unwrap();
    let v = CommandVerifier::new(&config).unwrap();
    let err = run(&v, &SecretData::text(SECRET), None).await.unwrap_err();
    assert!(
        matches!(&err, VerifyError::Unavailable(m) if m.contains("not found") && m.contains("/nonexistent/rekey-check")),
        "{err:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-executable");
    std::fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
    let config = CommandVerifierConfig { program: file, ..config };
    let err = run(&CommandVerifier::new(&config).unwrap(), &SecretData::text(SECRET), None).await.unwrap_err();
    assert!(matches!(&err, VerifyError::Unavailable(m) if m.contains("not executable")), "{err:?}");
}

#[tokio::test]
async fn lots_of_output_does_not_hang() {
    let v = CommandVerifier::new(&sh("head -c 1000000 /dev/zero; head -c 1000000 /dev/zero >&2; exit 0")).unwrap();
    run(&v, &SecretData::text(SECRET), None).await.unwrap();
}

#[test]
fn bad_configs_name_the_field() {
    let base = sh("true");
    let cases = [
        (CommandVerifierConfig { name: String::new(), ..base.clone() }, "name"),
        (CommandVerifierConfig { program: "".into(), ..base.clone() }, "program"),
        (CommandVerifierConfig { env_var: "A=B".into(), ..base.clone() }, "env_var"),
        (CommandVerifierConfig { timeout: Duration::ZERO, ..base.clone() }, "timeout"),
        (
            CommandVerifierConfig { env: [("REKEY_CANDIDATE".to_owned(), "x".to_owned())].into(), ..base.clone() },
            "env.REKEY_CANDIDATE",
        ),
    ];
    for (config, field) in cases {
        let err = CommandVerifier::new(&config).unwrap_err();
        assert!(matches!(&err, IntegrationError::InvalidConfig { .. }), "{err}");
        assert_eq!(err.field(), Some(field), "{err}");
    }
    let v: VerifierConfig = toml::from_str("type = \"command\"\nname = \"c\"\nprogram = \"true\"").unwrap();
    assert_eq!(v.name(), "c");
    assert_eq!(v.build().unwrap().name(), "c");
    assert!(
        toml::from_str::<VerifierConfig>("type = \"command\"\nname = \"c\"\nprogram = \"true\"\nshell = true").is_err()
    );
    assert!(toml::from_str::<VerifierConfig>("type = \"smtp\"\nname = \"c\"").is_err());
}
