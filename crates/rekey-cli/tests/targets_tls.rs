//! Targets and TLS through the `rekey` binary: the `sslmode`, `ca_file` and
//! `allow_plaintext` keys of a postgres target are checked while the file is
//! read (refusals are config errors at the key, exit 2), a plaintext opt-out
//! is warned about by `plan` and `check`, and a rotation over TLS works with
//! the test CA and is refused without it, for PostgreSQL and Redis. Those
//! need OpenBao and the PostgreSQL and Redis that `scripts/servers.sh`
//! starts with TLS (and `redis-cli` to check Redis logins).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;

const REMOTE: &str = "postgres://admin:adm1n-pw@db.example.com/app";

/// A memory-store config whose one secret has the target `target` (an
/// inline table's contents) on the last line; returns the file and that
/// line's number.
fn config_with_target(name: &str, target: &str) -> (std::path::PathBuf, usize) {
    let text = format!(
        "{}\n[policies.db]\nschedule = \"every 1h\"\nstrategy = \"staged\"\n\n[[secret]]\npath = \"app/db\"\npolicy = \"db\"\nfield = \"password\"\ntarget = {{ type = \"postgres\", url_env = \"TLS_TEST_PG_URL\", role = \"app\"{target} }}\n",
        memory_store()
    );
    let line = text.lines().count();
    (write_config(&scratch(name), &text), line)
}

/// The 1-based column of `needle` in line `line` of `cfg`.
fn column(cfg: &std::path::Path, line: usize, needle: &str) -> usize {
    let text = std::fs::read_to_string(cfg).unwrap();
    text.lines().nth(line - 1).unwrap().find(needle).unwrap() + 1
}

#[tokio::test]
async fn plaintext_to_a_remote_host_is_refused_at_its_key() {
    let (cfg, line) = config_with_target("tls-plain", r#", sslmode = "disable""#);
    let col = column(&cfg, line, r#""disable""#);
    let env = [("TLS_TEST_PG_URL", REMOTE)];
    for cmd in ["check", "plan", "rotate"] {
        let args: &[&str] = if cmd == "rotate" { &["rotate", "app/db"] } else { &[cmd] };
        let r = rekey(&cfg, args, &env).await;
        assert_eq!(r.code, 2, "{cmd}: {}{}", r.stdout, r.stderr);
        let at = format!("rekey.toml:{line}:{col}: secret[1].target.sslmode: ");
        assert!(r.stderr.contains(&at), "{cmd}: expected {at:?} in {}", r.stderr);
        assert!(r.stderr.contains("allow_plaintext = true"), "{}", r.stderr);
        assert!(!r.stderr.contains("adm1n-pw"), "the URL's password never appears: {}", r.stderr);
    }
    // The same refusal when the URL itself asks for plaintext: at `url_env`.
    let (cfg, line) = config_with_target("tls-plain-url", "");
    let col = column(&cfg, line, r#""TLS_TEST_PG_URL""#);
    let url = format!("{REMOTE}?sslmode=disable");
    let r = rekey(&cfg, &["check"], &[("TLS_TEST_PG_URL", url.as_str())]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("rekey.toml:{line}:{col}: secret[1].target.url_env: ")), "{}", r.stderr);
    // A bad sslmode is refused at its key too.
    let (cfg, line) = config_with_target("tls-bad-mode", r#", sslmode = "prefer""#);
    let col = column(&cfg, line, r#""prefer""#);
    let r = rekey(&cfg, &["check"], &env).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("rekey.toml:{line}:{col}: secret[1].target.sslmode: ")), "{}", r.stderr);
    assert!(r.stderr.contains("prefer"), "{}", r.stderr);
}

#[tokio::test]
async fn a_redis_target_refuses_plaintext_to_a_remote_host_and_warns_when_allowed() {
    let text = |extra: &str| {
        format!(
            "{}\n[policies.c]\nschedule = \"every 1h\"\n\n[[secret]]\npath = \"app/cache\"\npolicy = \"c\"\nfield = \"password\"\ntarget = {{ type = \"redis\", url_env = \"TLS_TEST_REDIS_URL\", user = \"app\"{extra} }}\n",
            memory_store()
        )
    };
    let env = [("TLS_TEST_REDIS_URL", "redis://default:adm1n-pw@cache.example.com:6379")];
    let cfg = write_config(&scratch("tls-redis-plain"), &text(""));
    let line = text("").lines().count();
    let col = column(&cfg, line, r#""TLS_TEST_REDIS_URL""#);
    let r = rekey(&cfg, &["check"], &env).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("rekey.toml:{line}:{col}: secret[1].target.url_env: ")), "{}", r.stderr);
    assert!(r.stderr.contains("allow_plaintext = true") && !r.stderr.contains("adm1n-pw"), "{}", r.stderr);

    let missing = scratch("tls-redis-ca").join("no-such-ca.pem").display().to_string();
    let extra = format!(", ca_file = {missing:?}");
    let cfg = write_config(&scratch("tls-redis-ca"), &text(&extra));
    let col = column(&cfg, line, &format!("{missing:?}"));
    let tls_env = [("TLS_TEST_REDIS_URL", "rediss://default:adm1n-pw@cache.example.com:6379")];
    let r = rekey(&cfg, &["check"], &tls_env).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("rekey.toml:{line}:{col}: secret[1].target.ca_file: ")), "{}", r.stderr);

    let cfg = write_config(&scratch("tls-redis-allowed"), &text(", allow_plaintext = true"));
    for cmd in ["plan", "check"] {
        let r = rekey(&cfg, &[cmd, "--json"], &env).await;
        assert_eq!(r.code, 4, "{cmd}: {}{}", r.stdout, r.stderr);
        let w = &r.json()["secrets"][0]["warnings"];
        assert!(w.to_string().contains("not encrypted"), "{cmd}: {w}");
    }
}

#[tokio::test]
async fn an_unreadable_ca_file_is_refused_at_its_key() {
    let missing = scratch("tls-ca").join("no-such-ca.pem");
    let not_pem = write_config(&scratch("tls-ca-text"), "not a certificate\n");
    for (name, path) in [("missing", missing), ("not-pem", not_pem)] {
        let (cfg, line) =
            config_with_target(&format!("tls-ca-{name}"), &format!(", ca_file = {:?}", path.display().to_string()));
        let col = column(&cfg, line, &format!("{:?}", path.display().to_string()));
        let r = rekey(&cfg, &["check"], &[("TLS_TEST_PG_URL", REMOTE)]).await;
        assert_eq!(r.code, 2, "{name}: {}", r.stderr);
        let at = format!("rekey.toml:{line}:{col}: secret[1].target.ca_file: ");
        assert!(r.stderr.contains(&at), "{name}: expected {at:?} in {}", r.stderr);
    }
}

#[tokio::test]
async fn allowed_plaintext_is_accepted_with_a_warning_from_plan_and_check() {
    let (cfg, _) = config_with_target("tls-allowed", r#", sslmode = "disable", allow_plaintext = true"#);
    let env = [("TLS_TEST_PG_URL", REMOTE)];
    let expect = "db.example.com:5432 is not encrypted";
    // The memory store is empty: the secret is missing (exit 4), but the
    // config is accepted (not 2) and the warning is given.
    for cmd in ["plan", "check"] {
        let r = rekey(&cfg, &[cmd], &env).await;
        assert_eq!(r.code, 4, "{cmd}: {}{}", r.stdout, r.stderr);
        let line = r.stdout.lines().find(|l| l.contains(expect)).unwrap_or_else(|| panic!("{cmd}: {}", r.stdout));
        assert!(line.trim_start().starts_with("warning: "), "{cmd}: {line}");
        let r = rekey(&cfg, &[cmd, "--json"], &env).await;
        let w = &r.json()["secrets"][0]["warnings"];
        assert!(w.as_array().unwrap().iter().any(|x| x.as_str().unwrap().contains(expect)), "{cmd} --json: {w}");
    }
    // Plaintext to a local host needs no opt-out and warns about nothing.
    let (cfg, _) = config_with_target("tls-local", r#", sslmode = "disable""#);
    let r = rekey(&cfg, &["check", "--json"], &[("TLS_TEST_PG_URL", "postgres://a:bbbbbbbb@127.0.0.1/app")]).await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(r.json()["secrets"][0]["warnings"], serde_json::json!([]));
    assert_no_leak(&["adm1n-pw".to_owned()]);
}

#[cfg(feature = "vault")]
mod servers {
    use super::*;
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

    /// A rotation over TLS (`sslmode=verify-full` in the URL) with the test
    /// CA as `ca_file`; without it the server's certificate is not trusted
    /// and nothing changes.
    #[tokio::test]
    async fn a_postgres_target_over_tls_rotates_with_the_ca_and_is_refused_without() {
        let Some(bao) = Bao::from_env() else { return };
        let Some(pg) = rekey_testkit::env::require("REKEY_TEST_PG_URL", "PostgreSQL") else { return };
        let Some(pg_tls) = rekey_testkit::env::require("REKEY_TEST_PG_TLS_URL", "PostgreSQL with TLS") else {
            return;
        };
        let Some(ca) = rekey_testkit::env::require("REKEY_TEST_TLS_CA", "PostgreSQL with TLS") else { return };
        let Some(other_ca) = rekey_testkit::env::require("REKEY_TEST_TLS_OTHER_CA", "PostgreSQL with TLS") else {
            return;
        };
        let role = format!("cli_tls_{}", std::process::id());
        let initial = "pg-tls-initial-s3cr3t-pw-1";
        let (admin, conn) = pg.parse::<tokio_postgres::Config>().unwrap().connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        admin.simple_query(&format!("DROP ROLE IF EXISTS {role}")).await.unwrap();
        admin.simple_query(&format!("CREATE ROLE {role} LOGIN PASSWORD '{initial}'")).await.unwrap();

        // One secret for every attempt: a refused admin login changed
        // nothing on the server, so the refused attempts need no undo and
        // leave nothing pending, and the fixed config rotates at once.
        let write = |name: &str, path: &str, extra: &str| {
            write_config(
                &scratch(name),
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
target = {{ type = "postgres", url_env = "CLI_TEST_PG_TLS_URL", role = "{role}"{extra} }}
"#,
                    store = vault_store(&bao)
                ),
            )
        };
        let env = [("VAULT_TOKEN", bao.token.as_str()), ("CLI_TEST_PG_TLS_URL", pg_tls.as_str())];

        // No CA file, and one from a CA that signed nothing: the server's
        // certificate is refused, the password stays.
        let path = format!("{}/db", unique("pgtls"));
        bao.put(&path, json!({ "username": role, "password": initial })).await;
        for (name, extra) in [("pgtls-noca", String::new()), ("pgtls-otherca", format!(", ca_file = {other_ca:?}"))] {
            let cfg = write(name, &path, &extra);
            let r = rekey(&cfg, &["rotate", &path, "--json"], &env).await;
            assert_ne!(r.code, 0, "{name}: {}{}", r.stdout, r.stderr);
            assert_ne!(r.code, 2, "{name}: the config is valid; the connection is what fails: {}", r.stderr);
            let all = format!("{}{}", r.stdout, r.stderr).to_lowercase();
            assert!(all.contains("certificate is not signed by a trusted ca"), "{name}: {all}");
            assert!(!all.contains("undo"), "{name}: nothing to undo: {all}");
            assert_eq!(r.json()["results"][0]["outcome"], "rolled_back", "{name}: {}", r.stdout);
            assert_eq!(bao.read(&path).await["password"], initial, "{name}");
            assert!(login(&pg, &role, initial).await, "{name}: the server's password is unchanged");
        }

        let cfg = write("pgtls-ca", &path, &format!(", ca_file = {ca:?}"));
        let r = rekey(&cfg, &["check", "--json"], &env).await;
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert_eq!(r.json()["secrets"][0]["warnings"], json!([]), "verified TLS warns about nothing");
        let r = rekey(&cfg, &["rotate", &path, "--json"], &env).await;
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert_eq!(r.json()["results"][0]["verification_passed"], true);
        let new_pw = bao.read(&path).await["password"].as_str().unwrap().to_owned();
        assert_ne!(new_pw, initial);
        assert!(login(&pg, &role, &new_pw).await, "the new password works on the server");
        assert!(!login(&pg, &role, initial).await, "the old one does not");

        admin.simple_query(&format!("DROP ROLE IF EXISTS {role}")).await.unwrap();
        assert_no_leak(&[initial.to_owned(), new_pw]);
    }

    /// `redis-cli` against the plaintext port of the test Redis (the same
    /// server and users as its TLS port): one command's reply.
    fn redis_cli(admin_url: &str, auth: Option<(&str, &str)>, args: &[&str]) -> String {
        let mut cmd = std::process::Command::new("redis-cli");
        match auth {
            None => cmd.arg("-u").arg(admin_url),
            Some((user, pw)) => {
                let port = url::Url::parse(admin_url).unwrap().port().unwrap().to_string();
                cmd.args(["-h", "127.0.0.1", "-p", &port, "--user", user, "--pass", pw])
            }
        };
        let out = cmd.arg("--no-auth-warning").args(args).output().expect("redis-cli runs");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)).trim().to_owned()
    }

    /// A rotation of a Redis ACL user over `rediss://` with the test CA;
    /// refused without it, the password unchanged.
    #[tokio::test]
    async fn a_redis_target_over_rediss_rotates_with_the_ca_and_is_refused_without() {
        let Some(bao) = Bao::from_env() else { return };
        let Some(plain) = rekey_testkit::env::require("REKEY_TEST_REDIS_URL", "Redis") else { return };
        let Some(tls) = rekey_testkit::env::require("REKEY_TEST_REDIS_TLS_URL", "Redis with TLS") else { return };
        let Some(ca) = rekey_testkit::env::require("REKEY_TEST_TLS_CA", "Redis with TLS") else { return };
        let user = format!("cli_tls_{}", std::process::id());
        let initial = "redis-tls-initial-s3cr3t-1";
        let ok = redis_cli(&plain, None, &["ACL", "SETUSER", &user, "reset", "on", &format!(">{initial}"), "+ping"]);
        assert_eq!(ok, "OK");
        let ping = |pw: &str| redis_cli(&plain, Some((&user, pw)), &["PING"]) == "PONG";
        assert!(ping(initial));

        let write = |name: &str, path: &str, extra: &str| {
            write_config(
                &scratch(name),
                &format!(
                    r#"{store}
[policies.cache]
schedule = "every 1h"
strategy = "staged"

[[secret]]
path = "{path}"
policy = "cache"
field = "password"
generator = {{ type = "password", length = 24 }}
target = {{ type = "redis", url_env = "CLI_TEST_REDIS_TLS_URL", user = "{user}"{extra} }}
"#,
                    store = vault_store(&bao)
                ),
            )
        };
        let env = [("VAULT_TOKEN", bao.token.as_str()), ("CLI_TEST_REDIS_TLS_URL", tls.as_str())];

        // The same secret for both attempts: the refused one needs no undo.
        let path = format!("{}/cache", unique("redistls"));
        bao.put(&path, json!({ "username": user, "password": initial })).await;
        let r = rekey(&write("redistls-noca", &path, ""), &["rotate", &path, "--json"], &env).await;
        assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert_ne!(r.code, 2, "the config is valid; the connection is what fails: {}", r.stderr);
        let all = format!("{}{}", r.stdout, r.stderr).to_lowercase();
        assert!(all.contains("certificate"), "{all}");
        assert_eq!(bao.read(&path).await["password"], initial);
        assert!(!all.contains("undo"), "nothing to undo: {all}");
        assert_eq!(r.json()["results"][0]["outcome"], "rolled_back", "{}", r.stdout);
        assert!(ping(initial), "the server's password is unchanged");

        let cfg = write("redistls-ca", &path, &format!(", ca_file = {ca:?}"));
        let r = rekey(&cfg, &["check", "--json"], &env).await;
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert_eq!(r.json()["secrets"][0]["warnings"], json!([]), "verified TLS warns about nothing");
        let r = rekey(&cfg, &["rotate", &path, "--json"], &env).await;
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert_eq!(r.json()["results"][0]["verification_passed"], true);
        let new_pw = bao.read(&path).await["password"].as_str().unwrap().to_owned();
        assert_ne!(new_pw, initial);
        assert!(ping(&new_pw), "the new password works on the server");
        // The ACL user could keep both: the staged rotation revoked the old.
        assert!(!ping(initial), "the replaced password no longer works");
        let r = rekey(&cfg, &["plan", "--json"], &env).await;
        assert_eq!(r.json()["secrets"][0]["warnings"], json!([]), "{}", r.stdout);

        assert_eq!(redis_cli(&plain, None, &["ACL", "DELUSER", &user]), "1");
        assert_no_leak(&[initial.to_owned(), new_pw]);
    }
}
