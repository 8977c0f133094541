//! TLS against the real Redis of `scripts/servers.sh start redis`, which
//! serves TLS on a second port with a throw-away CA (`REKEY_TEST_TLS_CA`)
//! and a certificate that names only `localhost`.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rekey_core::{
    CredentialTarget, RotationId, SecretData, SecretPath, TargetError, Verifier, VerifyContext, VerifyError,
};
use rekey_redis::{RedisAclTarget, RedisConfig, RedisVerifier};

/// The TLS URL (`rediss://default:...@localhost:TLS_PORT`) and the CA file.
fn tls_env() -> Option<(String, String)> {
    let url = rekey_testkit::env::require("REKEY_TEST_REDIS_TLS_URL", "Redis")?;
    let ca = rekey_testkit::env::require("REKEY_TEST_TLS_CA", "Redis (its TLS CA)")?;
    Some((url, ca))
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// The admin password in a `rediss://default:PW@host:port` URL.
fn admin_password(url: &str) -> String {
    url.split_once("default:").unwrap().1.split_once('@').unwrap().0.to_owned()
}

async fn verify(v: &RedisVerifier, data: &SecretData) -> Result<(), VerifyError> {
    let path = SecretPath::new("app/cache").unwrap();
    v.verify(VerifyContext { path: &path, rotation_id: RotationId::new(), candidate: data, field: None }).await
}

/// Every message of a refused TLS connection: the target's apply and test,
/// and the verifier's. Each is `TargetError::Other` (not retried) or a
/// failed check, and none holds the admin password.
async fn refusals(cfg: RedisConfig, admin_pw: &str) -> Vec<String> {
    let target = RedisAclTarget::from_config(cfg, unique("rk-tls-no")).unwrap();
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
    for m in &out {
        assert!(!m.contains(admin_pw), "{m}");
    }
    out
}

#[tokio::test]
async fn rotates_and_verifies_over_tls_with_the_ca_file() {
    let Some((url, ca)) = tls_env() else { return };
    let cfg = RedisConfig::from_url(&url).unwrap().with_ca_file(&ca).unwrap();
    assert!(cfg.uses_tls());
    assert_eq!(cfg.transport_warning(), None);
    let target = RedisAclTarget::from_config(cfg.clone(), unique("rk-tls")).unwrap();
    let (old, new) = (SecretData::text(unique("old-pw")), SecretData::text(unique("new-pw")));
    target.apply(&old, None).await.unwrap();
    target.apply(&new, Some(&old)).await.unwrap();
    assert_eq!(target.password_count().await.unwrap(), Some(2));
    target.test(&new).await.unwrap();
    target.revoke(&old, &new).await.unwrap();
    assert!(matches!(target.test(&old).await, Err(TargetError::Rejected { .. })));

    // The target's verifier and one built from the config alone.
    let standalone = RedisVerifier::from_config(&cfg).unwrap().with_user(target.user()).unwrap();
    for v in [target.verifier(), standalone] {
        assert_eq!(v.transport_warning(), None);
        verify(&v, &new).await.unwrap();
        assert!(matches!(verify(&v, &old).await, Err(VerifyError::Failed(_))));
    }
}

#[tokio::test]
async fn a_certificate_another_ca_signed_is_refused_naming_the_problem() {
    let Some((url, _)) = tls_env() else { return };
    let Some(other_ca) = rekey_testkit::env::require("REKEY_TEST_TLS_OTHER_CA", "Redis (a second CA)") else {
        return;
    };
    let pw = admin_password(&url);
    let wrong_ca = RedisConfig::from_url(&url).unwrap().with_ca_file(&other_ca).unwrap();
    for m in refusals(wrong_ca, &pw).await {
        assert!(m.contains("not signed by a trusted CA") && m.contains(&other_ca), "{m}");
    }
    for m in refusals(RedisConfig::from_url(&url).unwrap(), &pw).await {
        assert!(m.contains("not signed by a trusted CA") && m.contains("platform"), "{m}");
    }
}

#[tokio::test]
async fn a_host_name_the_certificate_does_not_name_is_refused() {
    let Some((url, ca)) = tls_env() else { return };
    // Same server, reached as 127.0.0.1: the certificate names only localhost.
    let by_ip = url.replace("@localhost:", "@127.0.0.1:");
    assert_ne!(by_ip, url);
    let cfg = RedisConfig::from_url(&by_ip).unwrap().with_ca_file(&ca).unwrap();
    for m in refusals(cfg, &admin_password(&url)).await {
        assert!(m.contains("not valid for the host name 127.0.0.1 (it names localhost)"), "{m}");
    }
}

#[tokio::test]
async fn a_port_without_tls_is_refused_when_tls_is_required() {
    let Some((url, ca)) = tls_env() else { return };
    let Some(plain_port) = rekey_testkit::env::require("REKEY_TEST_REDIS_PORT", "Redis") else { return };
    let tls_port = url.rsplit_once(':').unwrap().1;
    let to_plain_port = url.replace(&format!(":{tls_port}"), &format!(":{plain_port}"));
    let cfg = RedisConfig::from_url(&to_plain_port)
        .unwrap()
        .with_ca_file(&ca)
        .unwrap()
        .with_timeout(std::time::Duration::from_secs(2));
    let target = RedisAclTarget::from_config(cfg, unique("rk-tls-plain")).unwrap();
    // A plaintext Redis either answers the ClientHello with an error (when
    // its random bytes hold a line end) or waits for the rest of the line:
    // "not TLS" or a handshake timeout, both saying to check TLS, never the
    // operation's bare timeout.
    let pw = SecretData::text("never-set-pw-1234567890");
    for r in [target.apply(&pw, None).await, target.test(&pw).await] {
        let e = r.unwrap_err();
        let m = e.to_string();
        match e.unmarked() {
            TargetError::Other { .. } => assert!(m.contains("did not answer in TLS"), "{m}"),
            TargetError::Unavailable { .. } => {
                assert!(m.contains("no TLS answer from") && m.contains("is TLS enabled"), "{m}")
            }
            _ => panic!("{e:?}"),
        }
        assert!(!m.contains(&admin_password(&url)), "{m}");
    }
    match verify(&target.verifier(), &pw).await {
        Err(VerifyError::Failed(m) | VerifyError::Unavailable(m)) => assert!(m.contains("TLS"), "{m}"),
        other => panic!("the verifier must fail closed: {other:?}"),
    }
}

#[tokio::test]
async fn a_ca_file_without_tls_is_refused_before_connecting() {
    let Some((_, ca)) = tls_env() else { return };
    let Some(plain) = rekey_testkit::env::require("REKEY_TEST_REDIS_URL", "Redis") else { return };
    let cfg = RedisConfig::from_url(&plain).unwrap().with_ca_file(&ca).unwrap();
    for e in
        [RedisAclTarget::from_config(cfg.clone(), "app").unwrap_err(), RedisVerifier::from_config(&cfg).unwrap_err()]
    {
        assert!(
            matches!(e.unmarked(), TargetError::InvalidInput { message } if message.contains("use rediss://")),
            "{e:?}"
        );
    }
}
