//! Quoting the two pieces `ALTER ROLE` cannot take as bind parameters, with
//! libpq's rules as `postgres-protocol` implements them.

use postgres_protocol::escape::{escape_identifier, escape_literal};
use rekey_core::TargetError;

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

/// `name`, checked as a role name, as a quoted identifier: `"` around it,
/// every `"` doubled.
pub(crate) fn quote_ident(name: &str) -> Result<String, TargetError> {
    check_role_name(name)?;
    Ok(escape_identifier(name))
}

/// `value` as a string literal: `'` around it, every `'` doubled, and with a
/// backslash the ` E'...'` form with `\` doubled, so it means the same
/// whatever `standard_conforming_strings` says. Only used for SCRAM
/// verifiers, which contain neither character anyway.
pub(crate) fn quote_literal(value: &str) -> Result<String, TargetError> {
    if value.contains('\0') {
        return Err(TargetError::InvalidInput { message: "a literal cannot contain a NUL character".into() });
    }
    Ok(escape_literal(value))
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
        assert_eq!(quote_literal("SCRAM-SHA-256$4096:a+b/=$c:d").unwrap(), "'SCRAM-SHA-256$4096:a+b/=$c:d'");
        assert_eq!(quote_literal("it's a test").unwrap(), "'it''s a test'");
        assert_eq!(quote_literal("it's a \\ test").unwrap(), " E'it''s a \\\\ test'");
        assert!(quote_literal("a\0").is_err());
    }
}
