//! Tests against a real Redis (`scripts/servers.sh start redis`, then source
//! its env file for `REKEY_TEST_REDIS_URL`).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rekey_core::{
    CredentialTarget, RotationId, SecretData, SecretPath, TargetError, Verifier, VerifyContext, VerifyError,
};
use rekey_redis::{PasswordMode, RedisAclTarget, RedisVerifier};

fn admin_url() -> Option<String> {
    rekey_testkit::env::require("REKEY_TEST_REDIS_URL", "Redis")
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn text(s: &str) -> SecretData {
    SecretData::text(s)
}

fn assert_rejected(r: Result<(), TargetError>) {
    assert!(matches!(r.as_ref().map_err(TargetError::unmarked), Err(TargetError::Rejected { .. })), "{r:?}");
}

/// Runs a command as the admin (for checks the target does not offer).
async fn admin_cmd(cmd: &redis::Cmd) -> redis::Value {
    let client = redis::Client::open(admin_url().unwrap()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    cmd.query_async(&mut conn).await.unwrap()
}

#[tokio::test]
async fn dual_write_adds_beside_the_old_password_then_revoke_removes_it() {
    let Some(url) = admin_url() else { return };
    let target = RedisAclTarget::new(&url, unique("rk-app")).unwrap();
    assert!(target.capabilities().concurrent_credentials);
    assert_eq!(target.password_count().await.unwrap(), None);
    let (old, new) = (unique("old-pw"), unique("new-pw"));

    // The first apply creates the user (with the creation rules).
    target.apply(&text(&old), None).await.unwrap();
    target.test(&text(&old)).await.unwrap();
    assert_eq!(target.password_count().await.unwrap(), Some(1));

    // Dual write: both work.
    target.apply(&text(&new), Some(&text(&old))).await.unwrap();
    target.test(&text(&new)).await.unwrap();
    target.test(&text(&old)).await.unwrap();
    assert_eq!(target.password_count().await.unwrap(), Some(2));
    target.apply(&text(&new), Some(&text(&old))).await.unwrap(); // idempotent
    assert_eq!(target.password_count().await.unwrap(), Some(2));

    // Retire the old one: it is rejected, the new one still works.
    target.revoke(&text(&old), &text(&new)).await.unwrap();
    assert_rejected(target.test(&text(&old)).await);
    target.test(&text(&new)).await.unwrap();
    assert_eq!(target.password_count().await.unwrap(), Some(1));
    target.revoke(&text(&old), &text(&new)).await.unwrap(); // idempotent
    target.test(&text(&new)).await.unwrap();
    assert_eq!(target.password_count().await.unwrap(), Some(1));

    // Revoking the one to keep is refused.
    let r = target.revoke(&text(&new), &text(&new)).await;
    assert!(matches!(r.as_ref().map_err(TargetError::unmarked), Err(TargetError::InvalidInput { .. })), "{r:?}");

    // Revoke also makes sure `keep` is valid (rollback after a partial step).
    let other = unique("other-pw");
    target.revoke(&text(&new), &text(&other)).await.unwrap();
    target.test(&text(&other)).await.unwrap();
    assert_rejected(target.test(&text(&new)).await);

    // Fields values: `password`, with a `username` that must be the user.
    let f = SecretData::fields([("username", target.user()), ("password", other.as_str())]);
    target.test(&f).await.unwrap();
    let wrong = SecretData::fields([("username", "someone"), ("password", other.as_str())]);
    assert!(matches!(
        target.apply(&wrong, None).await.as_ref().map_err(TargetError::unmarked),
        Err(TargetError::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn creation_rules_apply_to_new_users_and_hashes_hide_the_password() {
    let Some(url) = admin_url() else { return };
    let user = unique("rk-rules");
    let target = RedisAclTarget::new(&url, &user).unwrap().with_creation_rules(["~app:*", "+get", "+ping"]).unwrap();
    let pw = unique("pw");
    target.apply(&text(&pw), None).await.unwrap();
    let info = admin_cmd(redis::cmd("ACL").arg("GETUSER").arg(&user)).await;
    let shown = format!("{info:?}");
    assert!(shown.contains("+get") && shown.contains("~app:*"), "{shown}");
    assert!(!shown.contains(&pw));

    // The plain mode works too.
    let plain = RedisAclTarget::new(&url, unique("rk-plain")).unwrap().with_password_mode(PasswordMode::Plain);
    let (a, b) = (unique("a"), unique("b"));
    plain.apply(&text(&a), None).await.unwrap();
    plain.apply(&text(&b), Some(&text(&a))).await.unwrap();
    plain.test(&text(&a)).await.unwrap();
    plain.revoke(&text(&a), &text(&b)).await.unwrap();
    assert_rejected(plain.test(&text(&a)).await);
    plain.test(&text(&b)).await.unwrap();

    // ACL SAVE on a server without an ACL file: a typed error, after the
    // password was added.
    let saving = RedisAclTarget::new(&url, &user).unwrap().with_acl_save(true);
    let pw2 = unique("pw2");
    let e = saving.apply(&text(&pw2), Some(&text(&pw))).await.unwrap_err();
    assert!(matches!(e.unmarked(), TargetError::Other { .. }), "{e:?}");
    assert!(!format!("{e:?}").contains(&pw2));
    target.test(&text(&pw2)).await.unwrap();

    // A disabled user is switched back on by apply.
    admin_cmd(redis::cmd("ACL").arg("SETUSER").arg(&user).arg("off")).await;
    assert_rejected(target.test(&text(&pw)).await);
    target.apply(&text(&pw), None).await.unwrap();
    target.test(&text(&pw)).await.unwrap();
}

#[tokio::test]
async fn errors_are_typed_and_never_hold_a_secret() {
    let Some(url) = admin_url() else { return };
    let admin_pw = url.rsplit_once('@').unwrap().0.rsplit_once(':').unwrap().1.to_owned();
    let port = std::env::var("REKEY_TEST_REDIS_PORT").unwrap();
    let user = unique("rk-err");
    let (pw, wrong) = (unique("good-pw"), unique("wrong-pw"));
    let target = RedisAclTarget::new(&url, &user).unwrap();
    target.apply(&text(&pw), None).await.unwrap();
    let mut shown = vec![format!("{target:?} {:?}", target.verifier())];

    // A wrong password for the user: rejected.
    let e = target.test(&text(&wrong)).await.unwrap_err();
    assert!(matches!(e.unmarked(), TargetError::Rejected { .. }), "{e:?}");
    shown.push(format!("{e} {e:?}"));

    // A wrong admin password: permission denied, not retryable.
    let bad_admin = format!("redis://default:{wrong}@127.0.0.1:{port}");
    let t = RedisAclTarget::new(&bad_admin, &user).unwrap();
    for r in [t.apply(&text(&pw), None).await, t.revoke(&text(&pw), &text(&wrong)).await] {
        let e = r.unwrap_err();
        assert!(matches!(e.unmarked(), TargetError::PermissionDenied { .. }) && !e.is_retryable(), "{e:?}");
        shown.push(format!("{e} {e:?}"));
    }

    // An admin that may not run ACL commands: permission denied (NOPERM).
    let weak = RedisAclTarget::new(&url, unique("rk-weak-admin")).unwrap();
    let weak_pw = unique("weak-pw");
    weak.apply(&text(&weak_pw), None).await.unwrap();
    let weak_url = format!("redis://{}:{weak_pw}@127.0.0.1:{port}", weak.user());
    let t = RedisAclTarget::new(&weak_url, &user).unwrap();
    let e = t.apply(&text(&wrong), None).await.unwrap_err();
    assert!(matches!(e.unmarked(), TargetError::PermissionDenied { .. }), "{e:?}");
    shown.push(format!("{e} {e:?}"));

    // Nothing listening: unavailable, retryable, for every method.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = RedisAclTarget::new(&format!("redis://:{admin_pw}@127.0.0.1:{free}"), &user)
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    for r in [
        down.apply(&text(&pw), None).await,
        down.test(&text(&pw)).await,
        down.revoke(&text(&wrong), &text(&pw)).await,
        down.password_count().await.map(|_| ()),
    ] {
        let e = r.unwrap_err();
        assert!(matches!(e.unmarked(), TargetError::Unavailable { .. }) && e.is_retryable(), "{e:?}");
        shown.push(format!("{e} {e:?}"));
    }

    // The server refuses a rule (unknown command) in the same ACL SETUSER
    // that carries the password: its reply echoes rules, ours does not.
    for mode in [PasswordMode::Hashed, PasswordMode::Plain] {
        let t = RedisAclTarget::new(&url, unique("rk-badrule"))
            .unwrap()
            .with_creation_rules(["+no-such-command"])
            .unwrap()
            .with_password_mode(mode);
        let e = t.apply(&text(&pw), None).await.unwrap_err();
        assert!(matches!(e.unmarked(), TargetError::Other { .. }), "{e:?}");
        shown.push(format!("{e} {e:?}"));
    }

    let hash = |s: &str| -> String {
        use sha2::Digest;
        sha2::Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    };
    let secrets = [pw.clone(), wrong.clone(), admin_pw.clone(), weak_pw.clone(), hash(&pw), hash(&wrong)];
    for s in &shown {
        eprintln!("{s}");
        for secret in &secrets {
            assert!(!s.contains(secret.as_str()), "a secret leaked into: {s}");
        }
    }
}

#[tokio::test]
async fn verifier_passes_the_right_password_and_fails_a_wrong_one() {
    let Some(url) = admin_url() else { return };
    let port = std::env::var("REKEY_TEST_REDIS_PORT").unwrap();
    let target = RedisAclTarget::new(&url, unique("rk-verify")).unwrap();
    let pw = unique("pw");
    target.apply(&text(&pw), None).await.unwrap();
    let path = SecretPath::new("app/cache").unwrap();
    let check = async |v: &RedisVerifier, data: SecretData, field: Option<&str>| {
        v.verify(VerifyContext { path: &path, rotation_id: RotationId::new(), candidate: &data, field }).await
    };

    let v = target.verifier();
    assert_eq!(v.name(), "redis");
    check(&v, text(&pw), None).await.unwrap();
    let r = check(&v, text("wrong-password"), None).await;
    assert!(matches!(r, Err(VerifyError::Failed(_))), "{r:?}");

    // From a URL (credentials in it are dropped); user from the candidate.
    let plain = RedisVerifier::new(&url).unwrap().with_name("cache");
    assert_eq!(plain.name(), "cache");
    let creds = SecretData::fields([("username", target.user()), ("password", pw.as_str())]);
    check(&plain, creds, Some("password")).await.unwrap();
    assert!(matches!(check(&plain, text(&pw), None).await, Err(VerifyError::Failed(_))));
    let by_user = RedisVerifier::new(&format!("redis://127.0.0.1:{port}")).unwrap().with_user(target.user()).unwrap();
    check(&by_user, text(&pw), None).await.unwrap();

    // Nothing listening: unavailable.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = RedisVerifier::new(&format!("redis://127.0.0.1:{free}")).unwrap().with_user("x").unwrap();
    let r = check(&down, text(&pw), None).await;
    assert!(matches!(r, Err(VerifyError::Unavailable(_))), "{r:?}");
}

#[tokio::test]
async fn a_consumer_on_the_old_password_never_fails_while_passwords_are_added_and_retired() {
    let Some(url) = admin_url() else { return };
    let target = std::sync::Arc::new(RedisAclTarget::new(&url, unique("rk-live")).unwrap());
    let old = unique("old");
    target.apply(&text(&old), None).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumer = {
        let (target, stop, old) = (target.clone(), stop.clone(), old.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                match target.test(&text(&old)).await {
                    Ok(()) => ok += 1,
                    Err(_) => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    let mut previous: Option<String> = None;
    for i in 0..20 {
        let new = unique(&format!("new{i}"));
        target.apply(&text(&new), Some(&text(&old))).await.unwrap();
        target.test(&text(&new)).await.unwrap();
        if let Some(p) = previous.replace(new) {
            target.revoke(&text(&p), &text(&old)).await.unwrap();
            assert_rejected(target.test(&text(&p)).await);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = consumer.await.unwrap();
    assert_eq!(failed, 0);
    assert!(ok > 0);
    assert_eq!(target.password_count().await.unwrap(), Some(2));
}
