//! TLS against the real PostgreSQL of `scripts/servers.sh start postgres`,
//! which serves TLS with a throw-away CA (`REKEY_TEST_TLS_CA`) and a
//! certificate that names only `localhost`.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rekey_core::{
    CredentialTarget, RotationId, SecretData, SecretPath, TargetError, Verifier, VerifyContext, VerifyError,
};
use rekey_postgres::{PostgresConfig, PostgresTarget, PostgresVerifier, SslMode};

/// The TLS URL (host `localhost`, `sslmode=verify-full`, no CA in it) and
/// the CA file.
fn tls_env() -> Option<(String, String)> {
    let url = rekey_testkit::env::require("REKEY_TEST_PG_TLS_URL", "PostgreSQL")?;
    let ca = rekey_testkit::env::require("REKEY_TEST_TLS_CA", "PostgreSQL (its TLS CA)")?;
    Some((url, ca))
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

async fn verify(v: &PostgresVerifier, data: &SecretData) -> Result<(), VerifyError> {
    let path = SecretPath::new("app/db").unwrap();
    v.verify(VerifyContext { path: &path, rotation_id: RotationId::new(), candidate: data, field: None }).await
}

/// Every message of a refused TLS connection: the target's apply and test,
/// and the verifier's.
async fn refusals(cfg: PostgresConfig, role: &str) -> Vec<String> {
    let target = PostgresTarget::single_user(cfg, role).unwrap();
    let pw = SecretData::text("never-set-pw-1234567890");
    let mut out = Vec::new();
    for r in [target.apply(&pw, None).await, target.test(&pw).await] {
        let e = r.unwrap_err();
        assert!(matches!(e.unmarked(), TargetError::Other { .. }) && !e.is_retryable(), "{e:?}");
        out.push(e.to_string());
    }
    match verify(&target.verifier(), &pw).await {
        Err(VerifyError::Failed(m)) => out.push(m),
        other => panic!("the verifier must fail closed: {other:?}"),
    }
    out
}

#[tokio::test]
async fn rotates_and_verifies_over_tls_with_the_ca_file() {
    let Some((url, ca)) = tls_env() else { return };
    // The CA file as an option, and as `sslrootcert` in the URL.
    let by_option = PostgresConfig::from_url(&url).unwrap().with_ca_file(&ca).unwrap();
    let by_url = PostgresConfig::from_url(&format!("{url}&sslrootcert={ca}")).unwrap();
    for cfg in [by_option, by_url] {
        assert_eq!((cfg.host(), cfg.ssl_mode()), ("localhost", SslMode::VerifyFull));
        assert_eq!(cfg.ca_file().unwrap().to_str(), Some(ca.as_str()));
        assert_eq!(cfg.transport_warning(), None);
        let role = unique("rk_tls");
        let target = PostgresTarget::single_user(cfg.clone(), &role).unwrap();
        target.ensure_roles().await.unwrap();
        let (old, new) = (SecretData::text(unique("pw-old")), SecretData::text(unique("pw-new")));
        target.apply(&old, None).await.unwrap();
        target.apply(&new, Some(&old)).await.unwrap();
        target.test(&new).await.unwrap();
        assert!(matches!(target.test(&old).await, Err(TargetError::Rejected { .. })));
        let v = target.verifier();
        verify(&v, &new).await.unwrap();
        assert!(matches!(verify(&v, &old).await, Err(VerifyError::Failed(_))));
    }
}

#[tokio::test]
async fn a_certificate_another_ca_signed_is_refused_naming_the_problem() {
    let Some((url, _)) = tls_env() else { return };
    let Some(other_ca) = rekey_testkit::env::require("REKEY_TEST_TLS_OTHER_CA", "PostgreSQL (a second CA)") else {
        return;
    };
    let admin_pw = std::env::var("REKEY_TEST_PG_ADMIN_PASSWORD").unwrap();
    let role = unique("rk_tls_ca");
    let wrong_ca = PostgresConfig::from_url(&url).unwrap().with_ca_file(&other_ca).unwrap();
    for m in refusals(wrong_ca.clone(), &role).await {
        assert!(m.contains("not signed by a trusted CA") && m.contains(&other_ca), "{m}");
        assert!(!m.contains(&admin_pw), "{m}");
    }
    // verify-ca skips the host name, never the chain.
    for m in refusals(wrong_ca.with_ssl_mode(SslMode::VerifyCa), &role).await {
        assert!(m.contains(&format!("not signed by a trusted CA (trusted: the CA file {other_ca})")), "{m}");
    }
    // Without a CA file the platform's roots are used: a private CA's
    // certificate is refused the same way.
    for m in refusals(PostgresConfig::from_url(&url).unwrap(), &role).await {
        assert!(m.contains("not signed by a trusted CA") && m.contains("platform"), "{m}");
    }
}

#[tokio::test]
async fn a_host_name_the_certificate_does_not_name_is_refused() {
    let Some((url, ca)) = tls_env() else { return };
    // Same server, reached as 127.0.0.1: the certificate names only localhost.
    let by_ip = url.replace("@localhost:", "@127.0.0.1:");
    assert_ne!(by_ip, url);
    let cfg = PostgresConfig::from_url(&by_ip).unwrap().with_ca_file(&ca).unwrap();
    assert_eq!(cfg.ssl_mode(), SslMode::VerifyFull);
    for m in refusals(cfg.clone(), &unique("rk_tls_name")).await {
        assert!(m.contains("not valid for the host name 127.0.0.1"), "{m}");
    }
    // verify-ca checks the chain only: accepted, and warned about.
    let chain_only = cfg.with_ssl_mode(SslMode::VerifyCa);
    assert!(chain_only.transport_warning().unwrap().contains("verify-ca"));
    let role = unique("rk_tls_ca_only");
    let target = PostgresTarget::single_user(chain_only, &role).unwrap();
    target.ensure_roles().await.unwrap();
    let pw = SecretData::text(unique("pw"));
    target.apply(&pw, None).await.unwrap();
    target.test(&pw).await.unwrap();
}

#[tokio::test]
async fn a_server_that_does_not_offer_tls_is_refused_when_tls_is_required() {
    let Some((url, _)) = tls_env() else { return };
    // PostgreSQL never offers TLS on its Unix socket.
    let Some(dir) = rekey_testkit::env::require("REKEY_TEST_PG_SOCKET_DIR", "PostgreSQL") else { return };
    let port = std::env::var("REKEY_TEST_PG_PORT").unwrap();
    let pw = std::env::var("REKEY_TEST_PG_ADMIN_PASSWORD").unwrap();
    let socket =
        |mode: &str| format!("host={dir} port={port} user=postgres password={pw} dbname=postgres sslmode={mode}");
    let required = PostgresConfig::from_url(&socket("require")).unwrap();
    for m in refusals(required, &unique("rk_tls_none")).await {
        assert!(m.contains("TLS is required but the server") && m.contains("does not offer it"), "{m}");
        assert!(!m.contains(&pw), "{m}");
    }
    // The same socket without TLS is local: allowed without an opt-out.
    let plain = PostgresConfig::from_url(&socket("disable")).unwrap();
    assert_eq!(plain.transport_warning(), None);
    PostgresTarget::single_user(plain, unique("rk_sock")).unwrap().ensure_roles().await.unwrap();
    drop(url);
}

#[tokio::test]
async fn unusable_tls_settings_are_refused_before_connecting() {
    let Some((url, _)) = tls_env() else { return };
    let pw = std::env::var("REKEY_TEST_PG_ADMIN_PASSWORD").unwrap();
    let not_a_ca = std::env::temp_dir().join(format!("rekey-pg-not-a-ca-{}.pem", std::process::id()));
    std::fs::write(&not_a_ca, b"hello").unwrap();
    for bad in [format!("{url}&sslrootcert=/nonexistent/ca.pem"), format!("{url}&sslrootcert={}", not_a_ca.display())] {
        let e = PostgresConfig::from_url(&bad).unwrap_err();
        assert!(matches!(e.unmarked(), TargetError::InvalidInput { message } if message.contains("CA file")), "{e:?}");
        assert!(!e.to_string().contains(&pw));
    }
    let e = PostgresConfig::from_url(&url.replace("verify-full", "prefer")).unwrap_err();
    assert!(e.to_string().contains("sslmode=prefer is refused"), "{e}");
    let no_ca = PostgresConfig::from_url(&url).unwrap().with_ssl_mode(SslMode::VerifyCa);
    let e = PostgresTarget::single_user(no_ca, "app").unwrap_err();
    assert!(e.to_string().contains("verify-ca needs a CA file"), "{e}");
    std::fs::remove_file(not_a_ca).unwrap();
}
