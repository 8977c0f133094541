//! Mapping driver errors to [`TargetError`], in one place, without leaking a
//! secret.

use rekey_core::TargetError;
use rekey_core::redact::redact;
use rekey_tls::HandshakeError;
use tokio_postgres::error::SqlState;

/// Who was logging in when an error happened: rekey's admin, or a credential
/// under test. An authentication failure means "the admin credential is not
/// accepted" ([`TargetError::PermissionDenied`]) for the first and "the
/// credential is rejected" ([`TargetError::Rejected`]) for the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Admin,
    Login,
}

/// Maps a driver error. `doing` says what failed (no secret); `server` is
/// `host:port`; `secrets` (and their encodings) are removed from anything the
/// server or driver said.
pub(crate) fn map_error(
    err: &tokio_postgres::Error,
    side: Side,
    doing: &str,
    server: &str,
    secrets: &[&str],
) -> TargetError {
    if let Some(tls) = std::error::Error::source(err).and_then(|e| e.downcast_ref::<HandshakeError>()) {
        return tls.clone().into_target_error(doing);
    }
    let Some(db) = err.as_db_error() else {
        // tokio-postgres' own words (its TLS error's cause) when the server
        // answers "N" to the request for TLS (always, on a Unix socket).
        if std::error::Error::source(err).is_some_and(|c| c.to_string().contains("server does not support TLS")) {
            return HandshakeError::not_offered(server).into_target_error(doing);
        }
        // No answer from the server: refused, reset, timed out, closed.
        let message = redact(&format!("{doing}: {err}"), secrets);
        return TargetError::Unavailable { message };
    };
    let code = db.code();
    // Only the primary message: no detail, hint or statement position.
    let message = redact(&format!("{doing}: {} (SQLSTATE {})", db.message(), code.code()), secrets);
    let class = &code.code()[..2.min(code.code().len())];
    if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
        return match side {
            Side::Admin => TargetError::PermissionDenied {
                message: format!("{message}; the admin login was refused, check its user and password"),
            },
            Side::Login => TargetError::Rejected { message },
        };
    }
    if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        return TargetError::PermissionDenied { message };
    }
    if *code == SqlState::UNDEFINED_OBJECT
        || *code == SqlState::INVALID_NAME
        || *code == SqlState::RESERVED_NAME
        || *code == SqlState::INVALID_CATALOG_NAME
        || *code == SqlState::NAME_TOO_LONG
    {
        return TargetError::InvalidInput { message };
    }
    // 08: connection exception, 53: insufficient resources (too many
    // connections), 57: operator intervention (shutting down, cannot connect
    // now), 40: transaction rollback (serialization, deadlock).
    if matches!(class, "08" | "53" | "57" | "40") {
        return TargetError::Unavailable { message };
    }
    TargetError::Other { message }
}
