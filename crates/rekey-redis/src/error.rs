//! Mapping driver errors to [`TargetError`], in one place, without leaking a
//! secret.

use redis::{ErrorKind, ServerErrorKind};
use rekey_core::TargetError;
use rekey_core::redact::redact;

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
    let message = |what: &str| redact(&format!("{doing}: {what}"), secrets);
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
