//! Quoting the two pieces `ALTER ROLE` cannot take as bind parameters, and
//! mapping driver errors to [`TargetError`] without leaking a secret.

use rekey_core::TargetError;
use tokio_postgres::error::SqlState;

/// PostgreSQL silently truncates longer identifiers (NAMEDATALEN - 1), which
/// would re-key a different role than the one named: refuse them instead.
pub(crate) const MAX_IDENTIFIER_BYTES: usize = 63;

/// Checks that `name` can name a role: not empty, no NUL, at most 63 bytes.
pub(crate) fn check_role_name(name: &str) -> Result<(), TargetError> {
    let invalid = |why: String| TargetError::InvalidInput { message: why };
    if name.is_empty() {
        return Err(invalid("a role name cannot be empty".into()));
    }
    if name.contains('\0') {
        return Err(invalid("a role name cannot contain a NUL character".into()));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(invalid(format!(
            "role name is {} bytes long; PostgreSQL would truncate it to {MAX_IDENTIFIER_BYTES}",
            name.len()
        )));
    }
    Ok(())
}

/// `name` as a quoted identifier: `"` around it, every `"` doubled.
pub(crate) fn quote_ident(name: &str) -> Result<String, TargetError> {
    check_role_name(name)?;
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// `value` as an escape-string literal (`E'...'`, `'` and `\` doubled), which
/// means the same whatever `standard_conforming_strings` says. Only used for
/// SCRAM verifiers, which contain neither character anyway.
pub(crate) fn quote_literal(value: &str) -> Result<String, TargetError> {
    if value.contains('\0') {
        return Err(TargetError::InvalidInput { message: "a literal cannot contain a NUL character".into() });
    }
    Ok(format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''")))
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

/// Who was logging in when an error happened: rekey's admin, or a credential
/// under test. An authentication failure means "the admin credential is not
/// accepted" ([`TargetError::PermissionDenied`]) for the first and "the
/// credential is rejected" ([`TargetError::Rejected`]) for the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Admin,
    Login,
}

/// Maps a driver error, in one place. `doing` says what failed (no secret);
/// `secrets` are removed from anything the server or driver said.
pub(crate) fn map_error(err: &tokio_postgres::Error, side: Side, doing: &str, secrets: &[&str]) -> TargetError {
    let Some(db) = err.as_db_error() else {
        // No answer from the server: refused, reset, timed out, closed.
        let message = redact(format!("{doing}: {err}"), secrets);
        return TargetError::Unavailable { message };
    };
    let code = db.code();
    // Only the primary message: no detail, hint or statement position.
    let message = redact(format!("{doing}: {} (SQLSTATE {})", db.message(), code.code()), secrets);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("app").unwrap(), "\"app\"");
        assert_eq!(quote_ident("we\"ird role").unwrap(), "\"we\"\"ird role\"");
        assert_eq!(quote_ident("\"; DROP ROLE x; --").unwrap(), "\"\"\"; DROP ROLE x; --\"");
        for bad in ["", "a\0b", &"x".repeat(64)] {
            assert!(matches!(quote_ident(bad), Err(TargetError::InvalidInput { .. })), "{bad:?}");
        }
        assert!(quote_ident(&"é".repeat(31)).is_ok());
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(quote_literal("SCRAM-SHA-256$4096:a+b/=$c:d").unwrap(), "E'SCRAM-SHA-256$4096:a+b/=$c:d'");
        assert_eq!(quote_literal("it's a \\ test").unwrap(), "E'it''s a \\\\ test'");
        assert!(quote_literal("a\0").is_err());
    }

    #[test]
    fn redact_removes_every_secret() {
        assert_eq!(redact("a hunter2 b hunter2".into(), &["hunter2", ""]), "a [REDACTED] b [REDACTED]");
    }
}
