//! Tests against a real PostgreSQL (`scripts/servers.sh start postgres`, then
//! source its env file for `REKEY_TEST_PG_URL`).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rekey_core::{
    CredentialTarget, RotationId, SecretData, SecretPath, SecretString, TargetError, Verifier, VerifyContext,
    VerifyError,
};
use rekey_postgres::{PostgresConfig, PostgresTarget, PostgresVerifier};

fn admin() -> Option<PostgresConfig> {
    let url = rekey_testkit::env::require("REKEY_TEST_PG_URL", "PostgreSQL")?;
    Some(PostgresConfig::from_url(&url).unwrap())
}

/// A role name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A password no other test uses, easy to search for in messages.
fn password(tag: &str) -> String {
    format!("pw-{tag}-{}", unique("x"))
}

/// An admin session for checks the target does not offer.
async fn admin_client() -> tokio_postgres::Client {
    let url = std::env::var("REKEY_TEST_PG_URL").unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

fn creds(user: &str, pw: &str) -> SecretData {
    SecretData::fields([("username", user), ("password", pw)])
}

fn assert_rejected(r: Result<(), TargetError>) {
    assert!(matches!(r.as_ref().map_err(TargetError::unmarked), Err(TargetError::Rejected { .. })), "{r:?}");
}

fn assert_no_secret(shown: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!shown.contains(s), "a secret leaked into: {shown}");
    }
}

#[tokio::test]
async fn single_user_apply_replaces_the_password_with_a_scram_verifier() {
    let Some(cfg) = admin() else { return };
    let role = unique("rk_single");
    let target = PostgresTarget::single_user(cfg, &role).unwrap();
    target.ensure_roles().await.unwrap();
    target.ensure_roles().await.unwrap();
    assert!(!target.capabilities().concurrent_credentials);

    let (old, new) = (password("old"), password("new"));
    target.apply(&SecretData::text(&old), None).await.unwrap();
    target.test(&SecretData::text(&old)).await.unwrap();

    target.apply(&SecretData::text(&new), Some(&SecretData::text(&old))).await.unwrap();
    target.test(&SecretData::text(&new)).await.unwrap();
    assert_rejected(target.test(&SecretData::text(&old)).await);

    // Stored as a SCRAM verifier computed client-side, never as the password.
    let row =
        admin_client().await.query_one("SELECT rolpassword FROM pg_authid WHERE rolname = $1", &[&role]).await.unwrap();
    let stored: String = row.get(0);
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
    assert!(!stored.contains(&new));

    // Idempotent: applying the same candidate again leaves the same valid set.
    target.apply(&SecretData::text(&new), Some(&SecretData::text(&old))).await.unwrap();
    target.test(&SecretData::text(&new)).await.unwrap();
    assert_rejected(target.test(&SecretData::text(&old)).await);

    // A fields value: `password`, and `username` if present must be the role.
    let f = creds(&role, &old);
    target.apply(&f, None).await.unwrap();
    target.test(&SecretData::fields([("password", old.as_str())])).await.unwrap();
    let wrong = target.apply(&creds("someone_else", &new), None).await;
    assert!(
        matches!(wrong.as_ref().map_err(TargetError::unmarked), Err(TargetError::InvalidInput { .. })),
        "{wrong:?}"
    );
    for bad in [SecretData::text(""), SecretData::fields([("user", "x")]), SecretData::text("a\0b")] {
        let r = target.apply(&bad, None).await;
        assert!(matches!(r.as_ref().map_err(TargetError::unmarked), Err(TargetError::InvalidInput { .. })), "{r:?}");
    }

    // Revoke on a one-password role: `keep` is applied again.
    target.revoke(&SecretData::text(&new), &SecretData::text(&old)).await.unwrap();
    target.test(&SecretData::text(&old)).await.unwrap();
    assert_rejected(target.test(&SecretData::text(&new)).await);
}

#[tokio::test]
async fn role_names_with_quotes_and_spaces_are_quoted_not_spliced() {
    let Some(cfg) = admin() else { return };
    let role = unique("rk \"odd\" 'role'; DROP ROLE postgres; --");
    let role = role.chars().take(63).collect::<String>();
    let target = PostgresTarget::single_user(cfg.clone(), &role).unwrap();
    target.ensure_roles().await.unwrap();
    let pw = password("it's \"quoted\" \\ too");
    target.apply(&SecretData::text(&pw), None).await.unwrap();
    target.test(&SecretData::text(&pw)).await.unwrap();
    let n: i64 = admin_client()
        .await
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname = $1 OR rolname = 'postgres'", &[&role])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2, "the odd role exists under its exact name and postgres is still there");

    // Names PostgreSQL would truncate or cannot hold are refused up front.
    for bad in ["", "a\0b", &"x".repeat(64)] {
        let r = PostgresTarget::single_user(cfg.clone(), bad);
        assert!(matches!(r.as_ref().map_err(TargetError::unmarked), Err(TargetError::InvalidInput { .. })), "{bad:?}");
    }
    // An unknown role is invalid input, not a crash.
    let ghost = PostgresTarget::single_user(cfg, unique("rk_ghost")).unwrap();
    let r = ghost.apply(&SecretData::text("whatever-pw"), None).await;
    assert!(matches!(r.as_ref().map_err(TargetError::unmarked), Err(TargetError::InvalidInput { .. })), "{r:?}");
}

#[tokio::test]
async fn alternating_roles_rekey_the_inactive_one_while_the_active_one_works() {
    let Some(cfg) = admin() else { return };
    let (blue, green, group) = (unique("rk_blue"), unique("rk_green"), unique("rk_app"));
    let target = PostgresTarget::alternating(cfg, [&blue, &green], &group).unwrap();
    target.ensure_roles().await.unwrap();
    target.ensure_roles().await.unwrap(); // idempotent
    assert_eq!(target.roles(), [blue.clone(), green.clone()]);
    assert_eq!(target.group_role(), Some(group.as_str()));

    // Both login roles inherit the group's grants.
    let admin = admin_client().await;
    let table = unique("rk_table");
    admin
        .batch_execute(&format!("CREATE TABLE \"{table}\" (x int); INSERT INTO \"{table}\" VALUES (7)"))
        .await
        .unwrap();
    admin.batch_execute(&format!("GRANT SELECT ON \"{table}\" TO \"{group}\"")).await.unwrap();

    let blue1 = creds(&blue, &password("blue1"));
    let green1 = creds(&green, &password("green1"));
    target.apply(&blue1, None).await.unwrap();
    target.apply(&green1, Some(&blue1)).await.unwrap();
    target.test(&blue1).await.unwrap();
    target.test(&green1).await.unwrap();
    for (user, c) in [(&blue, &blue1), (&green, &green1)] {
        let pw = c.field("password").map(|p| rekey_core::ExposeSecret::expose_secret(p).to_owned()).unwrap();
        let (client, conn) = tokio_postgres::Config::new()
            .host(std::env::var("REKEY_TEST_PG_HOST").unwrap())
            .port(std::env::var("REKEY_TEST_PG_PORT").unwrap().parse().unwrap())
            .dbname("postgres")
            .user(user)
            .password(pw)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let x: i32 = client.query_one(&format!("SELECT x FROM \"{table}\""), &[]).await.unwrap().get(0);
        assert_eq!(x, 7);
    }

    // Green is active: re-key blue; green keeps working throughout.
    let blue2 = creds(&blue, &password("blue2"));
    target.apply(&blue2, Some(&green1)).await.unwrap();
    target.test(&green1).await.unwrap();
    target.test(&blue2).await.unwrap();
    assert_rejected(target.test(&blue1).await);

    // Re-keying the role in use is refused; so is a role outside the pair.
    let r = target.apply(&creds(&green, &password("x")), Some(&green1)).await;
    assert!(matches!(r.as_ref().map_err(TargetError::unmarked), Err(TargetError::InvalidInput { .. })), "{r:?}");
    target.test(&green1).await.unwrap();
    let r = target.apply(&creds("postgres", &password("x")), Some(&green1)).await;
    assert!(matches!(r.as_ref().map_err(TargetError::unmarked), Err(TargetError::InvalidInput { .. })), "{r:?}");
    let r = target.apply(&SecretData::text(password("x")), None).await;
    assert!(matches!(r.as_ref().map_err(TargetError::unmarked), Err(TargetError::InvalidInput { .. })), "{r:?}");
}

#[tokio::test]
async fn alternating_revoke_invalidates_only_the_revoked_credential() {
    let Some(cfg) = admin() else { return };
    let (blue, green, group) = (unique("rk_rblue"), unique("rk_rgreen"), unique("rk_rapp"));
    let target = PostgresTarget::alternating(cfg, [&blue, &green], &group).unwrap();
    target.ensure_roles().await.unwrap();
    let blue1 = creds(&blue, &password("blue1"));
    let green1 = creds(&green, &password("green1"));
    target.apply(&blue1, None).await.unwrap();
    target.apply(&green1, Some(&blue1)).await.unwrap();

    // Retire blue while green is active.
    target.revoke(&blue1, &green1).await.unwrap();
    assert_rejected(target.test(&blue1).await);
    target.test(&green1).await.unwrap();
    target.revoke(&blue1, &green1).await.unwrap(); // idempotent
    target.test(&green1).await.unwrap();

    // A late revoke of an old blue password never destroys blue's newer one.
    let blue2 = creds(&blue, &password("blue2"));
    target.apply(&blue2, Some(&green1)).await.unwrap();
    target.revoke(&blue1, &green1).await.unwrap();
    target.test(&blue2).await.unwrap();

    // Same role on both sides: a role has one password, so `keep` wins.
    let blue3 = creds(&blue, &password("blue3"));
    target.revoke(&blue2, &blue3).await.unwrap();
    target.test(&blue3).await.unwrap();
    assert_rejected(target.test(&blue2).await);
}

#[tokio::test]
async fn errors_are_typed() {
    let Some(cfg) = admin() else { return };
    let role = unique("rk_err");
    let good = PostgresTarget::single_user(cfg.clone(), &role).unwrap();
    good.ensure_roles().await.unwrap();

    // Wrong admin password: the admin login is refused; not retryable.
    let bad_admin_pw = password("bad-admin");
    let wrong = PostgresConfig::new(cfg.host(), cfg.port(), cfg.user(), SecretString::from(bad_admin_pw.clone()));
    let t = PostgresTarget::single_user(wrong, &role).unwrap();
    let e = t.apply(&SecretData::text(password("c")), None).await.unwrap_err();
    assert!(matches!(e.unmarked(), TargetError::PermissionDenied { .. }), "{e:?}");
    assert!(!e.is_retryable());

    // Nothing listening: unavailable, retryable.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = PostgresConfig::new("127.0.0.1", port, cfg.user(), SecretString::from("x".to_owned()))
        .with_timeout(Duration::from_secs(2));
    let t = PostgresTarget::single_user(down, &role).unwrap();
    for r in [t.apply(&SecretData::text(password("c")), None).await, t.test(&SecretData::text(password("c"))).await] {
        let e = r.unwrap_err();
        assert!(matches!(e.unmarked(), TargetError::Unavailable { .. }) && e.is_retryable(), "{e:?}");
    }

    // An admin without CREATEROLE may not re-key another role.
    let weak_role = unique("rk_weak_admin");
    let weak_pw = password("weak");
    let weak = PostgresTarget::single_user(cfg.clone(), &weak_role).unwrap();
    weak.ensure_roles().await.unwrap();
    weak.apply(&SecretData::text(&weak_pw), None).await.unwrap();
    let weak_cfg = PostgresConfig::new(cfg.host(), cfg.port(), &weak_role, SecretString::from(weak_pw.clone()));
    let t = PostgresTarget::single_user(weak_cfg.clone(), &role).unwrap();
    let e = t.apply(&SecretData::text(password("c")), None).await.unwrap_err();
    assert!(matches!(e.unmarked(), TargetError::PermissionDenied { .. }), "{e:?}");
    let t = PostgresTarget::single_user(weak_cfg, unique("rk_new")).unwrap();
    let e = t.ensure_roles().await.unwrap_err();
    assert!(matches!(e.unmarked(), TargetError::PermissionDenied { .. }), "{e:?}");
}

#[tokio::test]
async fn no_secret_in_any_error_or_debug() {
    let Some(cfg) = admin() else { return };
    let admin_pw = std::env::var("REKEY_TEST_PG_ADMIN_PASSWORD").unwrap();
    let role = unique("rk_leak");
    let target = PostgresTarget::single_user(cfg.clone(), &role).unwrap();
    target.ensure_roles().await.unwrap();
    let (good, wrong) = (password("good"), password("wrong"));
    target.apply(&SecretData::text(&good), None).await.unwrap();

    let mut shown = vec![format!("{target:?} {cfg:?} {:?}", target.verifier())];
    let mut push = |e: TargetError| shown.push(format!("{e} {e:?}"));
    push(target.test(&SecretData::text(&wrong)).await.unwrap_err());
    let wrong_admin = PostgresConfig::new(cfg.host(), cfg.port(), cfg.user(), SecretString::from(wrong.clone()));
    push(
        PostgresTarget::single_user(wrong_admin, &role)
            .unwrap()
            .apply(&SecretData::text(&good), None)
            .await
            .unwrap_err(),
    );
    let ghost = PostgresTarget::single_user(cfg.clone(), unique("rk_ghost")).unwrap();
    push(ghost.apply(&SecretData::text(&good), None).await.unwrap_err());
    push(ghost.test(&SecretData::text(&good)).await.unwrap_err());
    push(target.apply(&creds("other", &good), None).await.unwrap_err());
    push(PostgresConfig::from_url(&format!("postgres://u:{good}@h:bad/db")).unwrap_err());
    let v = target.verifier();
    let ctx_data = SecretData::text(&wrong);
    let path = SecretPath::new("app/db").unwrap();
    let ctx = VerifyContext { path: &path, rotation_id: RotationId::new(), candidate: &ctx_data, field: None };
    let ve = v.verify(ctx).await.unwrap_err();
    shown.push(format!("{ve} {ve:?}"));
    assert_eq!(shown.len(), 8);
    for s in &shown {
        eprintln!("{s}");
        assert_no_secret(s, &[&good, &wrong, &admin_pw]);
    }
}

#[tokio::test]
async fn verifier_passes_the_right_password_and_fails_a_wrong_one() {
    let Some(cfg) = admin() else { return };
    let role = unique("rk_verify");
    let target = PostgresTarget::single_user(cfg.clone(), &role).unwrap();
    target.ensure_roles().await.unwrap();
    let pw = password("v");
    target.apply(&SecretData::text(&pw), None).await.unwrap();
    let path = SecretPath::new("app/db").unwrap();
    let check = async |v: &PostgresVerifier, data: SecretData, field: Option<&str>| {
        v.verify(VerifyContext { path: &path, rotation_id: RotationId::new(), candidate: &data, field }).await
    };

    let v = target.verifier();
    assert_eq!(v.name(), "postgres");
    check(&v, SecretData::text(&pw), None).await.unwrap();
    assert!(matches!(check(&v, SecretData::text("nope-nope"), None).await, Err(VerifyError::Failed(_))));

    // Username from the candidate; the rotated field as the password.
    let plain = PostgresVerifier::new(&cfg).with_name("pg-app");
    assert_eq!(plain.name(), "pg-app");
    check(&plain, creds(&role, &pw), Some("password")).await.unwrap();
    let other = SecretData::fields([("username", role.as_str()), ("token", pw.as_str()), ("password", "x")]);
    check(&plain, other, Some("token")).await.unwrap();
    assert!(matches!(check(&plain, creds(&role, "wrong-pw"), None).await, Err(VerifyError::Failed(_))));
    assert!(matches!(check(&plain, SecretData::text(&pw), None).await, Err(VerifyError::Failed(_))));

    // Nothing listening: unavailable, not failed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = PostgresVerifier::new(&PostgresConfig::new("127.0.0.1", port, "u", SecretString::from("x".to_owned())))
        .with_role(&role)
        .unwrap();
    let r = check(&down, SecretData::text(&pw), None).await;
    assert!(matches!(r, Err(VerifyError::Unavailable(_))), "{r:?}");
}

#[tokio::test]
async fn the_active_role_never_fails_while_the_inactive_one_is_rekeyed() {
    let Some(cfg) = admin() else { return };
    let (blue, green, group) = (unique("rk_lblue"), unique("rk_lgreen"), unique("rk_lapp"));
    let target = std::sync::Arc::new(PostgresTarget::alternating(cfg, [&blue, &green], &group).unwrap());
    target.ensure_roles().await.unwrap();
    let active = creds(&green, &password("green"));
    target.apply(&active, None).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumer = {
        let (target, stop, active) = (target.clone(), stop.clone(), active.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                match target.test(&active).await {
                    Ok(()) => ok += 1,
                    Err(_) => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    let mut previous = None;
    for i in 0..5 {
        let next = creds(&blue, &password(&format!("blue{i}")));
        target.apply(&next, Some(&active)).await.unwrap();
        target.test(&next).await.unwrap();
        if let Some(p) = previous.replace(next) {
            assert_rejected(target.test(&p).await);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = consumer.await.unwrap();
    assert_eq!(failed, 0);
    assert!(ok > 0);
}
