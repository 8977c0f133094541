//! Opening connections (admin sessions and test logins) over the configured
//! transport, within the time limit: the one place the target and the
//! verifier both use.

use std::future::Future;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, RedisConnectionInfo};
use rekey_core::TargetError;

use crate::config::RedisConfig;
use crate::error::{Side, map_error};

/// Connects to the server of `config` and authenticates with `settings`
/// (user, password, database), over TLS for a `rediss://` URL. The time
/// limit applies to every reply. Errors are mapped for `side`, prefixed with
/// `doing`, with `secrets` removed.
pub(crate) async fn connect(
    config: &RedisConfig,
    settings: RedisConnectionInfo,
    side: Side,
    doing: &str,
    secrets: &[&str],
) -> Result<MultiplexedConnection, TargetError> {
    let map = |e: redis::RedisError| map_error(&e, side, doing, secrets);
    let timeout = config.timeout();
    let Some(tls) = config.client_tls()? else {
        let client = Client::open(config.info_with(settings)).map_err(map)?;
        let cfg =
            AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
        return client.get_multiplexed_async_connection_with_config(&cfg).await.map_err(map);
    };
    let ConnectionAddr::Tcp(host, port) = config.addr() else {
        // `RedisConfig::from_url` accepts TLS only with a host and port.
        return Err(TargetError::InvalidInput { message: format!("{doing}: TLS needs a host and port") });
    };
    let server = config.server();
    let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
        .await
        .map_err(|e| TargetError::Unavailable { message: format!("{doing}: connecting to {server}: {e}") })?;
    // As redis-rs does for its own TCP connections.
    let _ = tcp.set_nodelay(true);
    // Half the time limit, so that a stuck handshake (a plaintext Redis
    // waits for a line end a ClientHello may not contain) is reported as such
    // rather than as the operation's timeout.
    let stream = tls.handshake(host, &server, tcp, timeout / 2).await.map_err(|e| e.into_target_error(doing))?;
    let cfg = AsyncConnectionConfig::new().set_response_timeout(Some(timeout));
    let (conn, driver) = MultiplexedConnection::new_with_config(&settings, stream, cfg).await.map_err(map)?;
    // Ends when the last handle of `conn` is dropped.
    tokio::spawn(driver);
    Ok(conn)
}

/// Authenticates as `user` with `password` on a fresh connection and PINGs.
pub(crate) async fn login(config: &RedisConfig, user: &str, password: &str) -> Result<(), TargetError> {
    let doing = format!("logging in as ACL user `{user}`");
    let settings = RedisConnectionInfo::default()
        .set_db(config.redis_settings().db())
        .set_username(user)
        .set_password(password)
        .set_skip_set_lib_name();
    let mut conn = connect(config, settings, Side::Login, &doing, &[password]).await?;
    let _: String =
        redis::cmd("PING").query_async(&mut conn).await.map_err(|e| map_error(&e, Side::Login, &doing, &[password]))?;
    Ok(())
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Redis echoes a refused rule in its reply; the mapping must withhold
    /// it even when it is not told which secrets to redact.
    #[tokio::test]
    async fn echoed_password_rules_are_withheld() {
        let Some(url) = rekey_testkit::env::require("REKEY_TEST_REDIS_URL", "Redis") else { return };
        let config = RedisConfig::from_url(&url).unwrap();
        let mut conn = connect(&config, config.redis_settings().clone(), Side::Admin, "x", &[]).await.unwrap();
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
}
