//! Opening connections (admin sessions and test logins) over the configured
//! transport, within the time limit: the one place the target and the
//! verifier both use.

use std::future::Future;

use rekey_core::TargetError;
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::{Client, NoTls};

use crate::config::Endpoint;
use crate::error::{Side, map_error};
use crate::tls::MakeRekeyTls;

/// Connects to `endpoint` as `user` with `password`, over TLS unless the
/// transport settings say plaintext (and allow it). Errors are mapped for
/// `side`, prefixed with `doing`, with `secrets` removed.
pub(crate) async fn connect(
    endpoint: &Endpoint,
    user: &str,
    password: &[u8],
    side: Side,
    doing: &str,
    secrets: &[&str],
) -> Result<Client, TargetError> {
    let tls = endpoint.transport.client_tls(&endpoint.host, endpoint.port)?;
    let cfg = endpoint.login_config(user, password, tls.is_some());
    let server = endpoint.server();
    let map = |e: tokio_postgres::Error| map_error(&e, side, doing, &server, secrets);
    let client = match tls {
        None => {
            let (client, conn) = cfg.connect(NoTls).await.map_err(map)?;
            // Ends when `client` is dropped; its errors reach the client's calls.
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
        }
        Some(tls) => {
            // Half the time limit, so that a stuck handshake is reported as
            // such rather than as the operation's timeout.
            let make = MakeRekeyTls::new(tls, server.clone(), endpoint.timeout / 2);
            let (client, conn) = cfg.connect(make).await.map_err(map)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
        }
    };
    Ok(client)
}

/// Logs in as `role` with `password` and runs `SELECT 1`.
pub(crate) async fn login(endpoint: &Endpoint, role: &str, password: &SecretString) -> Result<(), TargetError> {
    let pw = password.expose_secret();
    let doing = format!("logging in as role `{role}`");
    let client = connect(endpoint, role, pw.as_bytes(), Side::Login, &doing, &[pw]).await?;
    client.simple_query("SELECT 1").await.map_err(|e| map_error(&e, Side::Login, &doing, &endpoint.server(), &[pw]))?;
    Ok(())
}

/// Runs `fut` within `endpoint`'s time limit; past it, `Unavailable`.
pub(crate) async fn within<T>(
    endpoint: &Endpoint,
    doing: &str,
    fut: impl Future<Output = Result<T, TargetError>>,
) -> Result<T, TargetError> {
    match tokio::time::timeout(endpoint.timeout, fut).await {
        Ok(r) => r,
        Err(_) => {
            Err(TargetError::Unavailable { message: format!("{doing}: no answer within {:?}", endpoint.timeout) })
        }
    }
}
