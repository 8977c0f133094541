//! `rekey` with a PostgreSQL credential target: the role's password changes
//! on the server and in OpenBao together, and `rekey rollback` puts the old
//! one back on both. Needs OpenBao and PostgreSQL.
#![cfg(feature = "vault")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use serde_json::json;

async fn login(url: &str, role: &str, password: &str) -> bool {
    let mut cfg: tokio_postgres::Config = url.parse().unwrap();
    cfg.user(role).password(password);
    match cfg.connect(tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            client.simple_query("SELECT 1").await.is_ok()
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn rotate_and_roll_back_a_postgres_role() {
    let Some(bao) = Bao::from_env() else { return };
    let Some(pg) = rekey_testkit::env::require("REKEY_TEST_PG_URL", "PostgreSQL") else { return };
    let prefix = unique("pg");
    let role = format!("cli_app_{}", std::process::id());
    let initial = "pg-initial-s3cr3t-password-1";
    let (admin, conn) = pg.parse::<tokio_postgres::Config>().unwrap().connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    admin.simple_query(&format!("DROP ROLE IF EXISTS {role}")).await.unwrap();
    admin.simple_query(&format!("CREATE ROLE {role} LOGIN PASSWORD '{initial}'")).await.unwrap();
    assert!(login(&pg, &role, initial).await);

    let path = format!("{prefix}/db");
    bao.put(&path, json!({ "username": role, "password": initial })).await;
    let dir = scratch("pg");
    let cfg = write_config(
        &dir,
        &format!(
            r#"{store}
[policies.db]
schedule = "every 1h"
strategy = "staged"

[[secret]]
path = "{path}"
policy = "db"
field = "password"
generator = {{ type = "password", length = 24 }}
target = {{ type = "postgres", url_env = "CLI_TEST_PG_ADMIN_URL", role = "{role}" }}
"#,
            store = vault_store(&bao)
        ),
    );
    let env = [("VAULT_TOKEN", bao.token.as_str()), ("CLI_TEST_PG_ADMIN_URL", pg.as_str())];

    let r = rekey(&cfg, &["plan"], &env).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = rekey(&cfg, &["rotate", &path, "--json"], &env).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["results"][0]["verification_passed"], true, "the target's login test ran");
    let now = bao.read(&path).await;
    let new_pw = now["password"].as_str().unwrap().to_owned();
    assert_ne!(new_pw, initial);
    assert!(login(&pg, &role, &new_pw).await, "the new password works on the server");
    assert!(!login(&pg, &role, initial).await, "the old one does not");

    let r = rekey(&cfg, &["rollback", &path], &env).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(bao.read(&path).await["password"], initial);
    assert!(login(&pg, &role, initial).await, "rollback re-applied the old password to the server");
    assert!(!login(&pg, &role, &new_pw).await);

    // A missing admin URL is a configuration error (exit 2), nothing runs.
    let r = rekey(&cfg, &["rotate", &path], &[("VAULT_TOKEN", bao.token.as_str())]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("CLI_TEST_PG_ADMIN_URL"), "{}", r.stderr);
    assert_eq!(bao.read(&path).await["password"], initial);

    admin.simple_query(&format!("DROP ROLE IF EXISTS {role}")).await.unwrap();
    let admin_pw = pg.split(':').nth(2).and_then(|s| s.split('@').next()).unwrap_or_default().to_owned();
    let mut secrets = vec![initial.to_owned(), new_pw];
    if admin_pw.len() >= 8 {
        secrets.push(admin_pw);
    }
    assert_no_leak(&secrets);
}

/// Blue-green from the config file: the two roles of an alternating target are
/// the credential sets, so the very first rotation knows which one to re-key.
#[tokio::test]
async fn blue_green_alternates_the_two_roles() {
    let Some(bao) = Bao::from_env() else { return };
    let Some(pg) = rekey_testkit::env::require("REKEY_TEST_PG_URL", "PostgreSQL") else { return };
    let prefix = unique("pgbg");
    let id = std::process::id();
    let (blue, green, group) = (format!("cli_bg_blue_{id}"), format!("cli_bg_green_{id}"), format!("cli_bg_grp_{id}"));
    let initial = "bg-initial-s3cr3t-password-1";
    let (admin, conn) = pg.parse::<tokio_postgres::Config>().unwrap().connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    for r in [&blue, &green, &group] {
        admin.simple_query(&format!("DROP ROLE IF EXISTS {r}")).await.unwrap();
    }
    admin.simple_query(&format!("CREATE ROLE {group} NOLOGIN")).await.unwrap();
    admin.simple_query(&format!("CREATE ROLE {blue} LOGIN PASSWORD '{initial}' IN ROLE {group}")).await.unwrap();
    admin.simple_query(&format!("CREATE ROLE {green} LOGIN IN ROLE {group}")).await.unwrap();

    let path = format!("{prefix}/db");
    bao.put(&path, json!({ "username": blue, "password": initial })).await;
    let dir = scratch("pgbg");
    let cfg = write_config(
        &dir,
        &format!(
            r#"{store}
[policies.bg]
schedule = "every 1h"
strategy = "blue_green"
grace_period = "10m"

[[secret]]
path = "{path}"
policy = "bg"
field = "password"
generator = {{ type = "password", length = 24 }}
target = {{ type = "postgres", url_env = "CLI_TEST_PG_ADMIN_URL", roles = ["{blue}", "{green}"], group = "{group}" }}
"#,
            store = vault_store(&bao)
        ),
    );
    let env = [("VAULT_TOKEN", bao.token.as_str()), ("CLI_TEST_PG_ADMIN_URL", pg.as_str())];

    // First rotation: green (the inactive set) gets a password and becomes current; blue still works.
    let r = rekey(&cfg, &["rotate", &path, "--json"], &env).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let now = bao.read(&path).await;
    assert_eq!(now["username"], green.as_str());
    let green_pw = now["password"].as_str().unwrap().to_owned();
    assert!(login(&pg, &green, &green_pw).await, "the new set works");
    assert!(login(&pg, &blue, initial).await, "the formerly active set stays valid until the next rotation");

    // Second rotation: blue is re-keyed and becomes current; green keeps working.
    let r = rekey(&cfg, &["rotate", &path, "--json"], &env).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let now = bao.read(&path).await;
    assert_eq!(now["username"], blue.as_str());
    let blue_pw = now["password"].as_str().unwrap().to_owned();
    assert!(login(&pg, &blue, &blue_pw).await);
    assert!(!login(&pg, &blue, initial).await, "blue's old password was replaced");
    assert!(login(&pg, &green, &green_pw).await, "green stays valid until the next rotation");

    // An emergency rotation (blue's password leaked): green is re-keyed and
    // becomes current, and blue's leaked password stops working at once.
    let r = rekey(&cfg, &["emergency", &path, "--reason", "blue leaked", "--json"], &env).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let now = bao.read(&path).await;
    assert_eq!(now["username"], green.as_str());
    let green_pw2 = now["password"].as_str().unwrap().to_owned();
    assert!(login(&pg, &green, &green_pw2).await);
    assert!(!login(&pg, &blue, &blue_pw).await, "the leaked set is revoked");

    for r in [&blue, &green, &group] {
        admin.simple_query(&format!("DROP ROLE IF EXISTS {r}")).await.unwrap();
    }
    assert_no_leak(&[initial.to_owned(), green_pw, blue_pw, green_pw2]);
}
