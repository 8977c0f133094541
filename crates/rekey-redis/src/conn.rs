//! Connections, hashing, and mapping driver errors to [`TargetError`] without
//! leaking a secret.

use std::future::Future;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionInfo, ErrorKind, RedisConnectionInfo, ServerErrorKind};
use rekey_core::TargetError;
use sha2::{Digest, Sha256};

/// The default time limit of one operation (connect, authenticate, run the
/// commands): 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Lower-case hex SHA-256 of `password`: how Redis stores ACL passwords, and
/// what the `#<hash>` / `!<hash>` rules take.
pub(crate) fn sha256_hex(password: &str) -> String {
    Sha256::digest(password.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Replaces every occurrence of each (non-empty) secret in `message`.
pub(crate) fn redact(mut message: String, secrets: &[&str]) -> String {
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        if message.contains(s) {
            message = message.replace(s, "[REDACTED]");
        }
    }
    message
}

/// Who was authenticating when an error happened (see `map_error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Admin,
    Login,
}

/// Maps a driver error, in one place. `doing` says what failed (no secret).
///
/// The server's own text is used only where it cannot echo an argument:
/// Redis answers a bad `ACL SETUSER` rule with "Error in ACL SETUSER modifier
/// '<the rule>'", and a rule can carry a password, so an error reply that
/// could hold a password rule is reduced to its code. `secrets` are removed
/// from whatever remains.
pub(crate) fn map_error(err: &redis::RedisError, side: Side, doing: &str, secrets: &[&str]) -> TargetError {
    let kind = err.kind();
    let code = err.code().unwrap_or("");
    let message = |what: &str| redact(format!("{doing}: {what}"), secrets);
    match kind {
        ErrorKind::AuthenticationFailed => match side {
            Side::Admin => TargetError::PermissionDenied {
                message: message("the admin login was refused (wrong user or password, or user disabled)"),
            },
            Side::Login => TargetError::Rejected {
                message: message("authentication failed (wrong password, unknown or disabled user)"),
            },
        },
        ErrorKind::Server(ServerErrorKind::NoPerm) => {
            // NOPERM names the user and the command, never an argument.
            let detail = err.detail().unwrap_or("no permission");
            TargetError::PermissionDenied { message: message(&format!("NOPERM {detail}")) }
        }
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown,
        ) => TargetError::Unavailable { message: message(&format!("server busy ({code})")) },
        ErrorKind::InvalidClientConfig => {
            TargetError::InvalidInput { message: message("invalid client configuration") }
        }
        _ if err.is_timeout() => TargetError::Unavailable { message: message("timed out") },
        _ if err.is_io_error() || err.is_connection_refusal() || err.is_connection_dropped() => {
            // I/O errors describe the socket ("Connection refused"), not a command.
            TargetError::Unavailable { message: message(&format!("I/O error: {err}")) }
        }
        ErrorKind::Server(_) => {
            // Keep the server's text only when it cannot be echoing a
            // password rule (`>pw`, `<pw`, `#hash`, `!hash`).
            let detail = err.detail().filter(|d| !d.contains(['>', '<', '#', '!'])).unwrap_or("(details withheld)");
            TargetError::Other { message: message(&format!("the server answered {code} {detail}")) }
        }
        _ => TargetError::Other { message: message(&format!("client error: {}", err.category())) },
    }
}

/// Runs `fut` within `timeout`; past it, `Unavailable`.
pub(crate) async fn within<T>(
    timeout: Duration,
    doing: &str,
    fut: impl Future<Output = Result<T, TargetError>>,
) -> Result<T, TargetError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(TargetError::Unavailable { message: format!("{doing}: no answer within {timeout:?}") }),
    }
}

/// Opens a connection with the time limits applied to connecting and to
/// every reply.
pub(crate) async fn connect(client: &Client, timeout: Duration) -> redis::RedisResult<MultiplexedConnection> {
    let cfg = AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
    client.get_multiplexed_async_connection_with_config(&cfg).await
}

/// A client for the server of `info` that authenticates as `user` with
/// `password` (and selects the same database).
pub(crate) fn login_client(info: &ConnectionInfo, user: &str, password: &str) -> redis::RedisResult<Client> {
    let settings = RedisConnectionInfo::default()
        .set_db(info.redis_settings().db())
        .set_username(user)
        .set_password(password)
        .set_skip_set_lib_name();
    Client::open(info.clone().set_redis_settings(settings))
}

/// Authenticates as `user` with `password` on a fresh connection and PINGs.
pub(crate) async fn login(
    info: &ConnectionInfo,
    timeout: Duration,
    user: &str,
    password: &str,
) -> Result<(), TargetError> {
    let doing = format!("logging in as ACL user `{user}`");
    let map = |e: redis::RedisError| map_error(&e, Side::Login, &doing, &[password]);
    let client = login_client(info, user, password).map_err(map)?;
    let mut conn = connect(&client, timeout).await.map_err(map)?;
    let _: String = redis::cmd("PING").query_async(&mut conn).await.map_err(map)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hashes_like_redis() {
        // `ACL SETUSER u >foobar` then `ACL GETUSER u` shows this hash.
        assert_eq!(sha256_hex("foobar"), "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2");
    }

    /// Redis echoes a refused rule in its reply; the mapping must withhold
    /// it even when it is not told which secrets to redact.
    #[tokio::test]
    async fn echoed_password_rules_are_withheld() {
        let Some(url) = rekey_testkit::env::require("REKEY_TEST_REDIS_URL", "Redis") else { return };
        let client = Client::open(url).unwrap();
        let mut conn = connect(&client, DEFAULT_TIMEOUT).await.unwrap();
        for rule in ["<never-set-s3cr3t", "#s3cr3t-not-a-hash", "!s3cr3t-not-a-hash"] {
            let r: redis::RedisResult<()> =
                redis::cmd("ACL").arg("SETUSER").arg("rk-echo-test").arg(rule).query_async(&mut conn).await;
            let e = r.unwrap_err();
            assert!(format!("{e}").contains("s3cr3t"), "the server is expected to echo the rule: {e}");
            let mapped = map_error(&e, Side::Admin, "x", &[]);
            let shown = format!("{mapped} {mapped:?}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(matches!(mapped, TargetError::Other { .. }), "{mapped:?}");
        }
    }

    #[test]
    fn redact_removes_every_secret() {
        assert_eq!(redact("x s3 y s3".into(), &["s3", ""]), "x [REDACTED] y [REDACTED]");
    }
}
