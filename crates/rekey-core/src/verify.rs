//! Verification: proving a candidate credential works before (or right after)
//! it becomes current.

use std::fmt;

use async_trait::async_trait;

use crate::{RotationId, SecretData, SecretPath};

/// What a [`Verifier`] is given. `Debug` never shows the candidate.
#[derive(Debug, Clone, Copy)]
pub struct VerifyContext<'a> {
    /// The secret being rotated.
    pub path: &'a SecretPath,
    /// The rotation.
    pub rotation_id: RotationId,
    /// The candidate value. Never log it.
    pub candidate: &'a SecretData,
    /// The field being rotated, when the secret has several.
    pub field: Option<&'a str>,
}

/// Why a verification did not pass. Messages never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The candidate does not work.
    #[error("verification failed: {0}")]
    Failed(String),
    /// The verifier could not tell (its service was unreachable).
    #[error("verifier unavailable: {0}")]
    Unavailable(String),
    /// The verifier did not answer within its timeout.
    #[error("verifier timed out after {0:?}")]
    TimedOut(std::time::Duration),
}

impl VerifyError {
    /// The same error with every secret in `secrets` — and its encodings
    /// and fragments — removed from the message ([`crate::redact::redact`]).
    /// The engine applies it to every error a verifier returns, so a
    /// verifier that echoes its input (an HTTP body, a program's output)
    /// cannot leak the candidate, even base64- or URL-encoded.
    pub fn redact(self, secrets: &[&str]) -> Self {
        match self {
            Self::Failed(m) => Self::Failed(crate::redact::redact(&m, secrets)),
            Self::Unavailable(m) => Self::Unavailable(crate::redact::redact(&m, secrets)),
            other => other,
        }
    }
}

/// A named test a candidate must pass. Registered with the manager by
/// [`name`](Verifier::name); a policy lists the names it requires, and an
/// unknown name is an error when the policy is registered (fail closed).
#[async_trait]
pub trait Verifier: fmt::Debug + Send + Sync + 'static {
    /// The name policies refer to it by.
    fn name(&self) -> &str;

    /// Tests the candidate. Must not log or return the candidate's value.
    async fn verify(&self, ctx: VerifyContext<'_>) -> Result<(), VerifyError>;
}

/// The field of a multi-field secret that names the user to log in as.
pub const USERNAME_FIELD: &str = "username";
/// The field holding the password when the rotated field is not named.
pub const PASSWORD_FIELD: &str = "password";

/// Who a login verifier logs in as, and with which password, for a candidate:
/// the user is the candidate's `username` field, else `default_user`; the
/// password is the rotated `field`, else the whole text value, else the
/// `password` field. Shared by the built-in target verifiers (PostgreSQL,
/// Redis). Errors never contain a value.
///
/// ```
/// use rekey_core::{ExposeSecret, SecretData, verify::login_credential};
/// let c = SecretData::fields([("username", "app"), ("password", "s3cr3t")]);
/// let (user, pw) = login_credential(&c, Some("password"), None)?;
/// assert_eq!((user, pw.expose_secret()), ("app", "s3cr3t"));
/// let t = SecretData::text("s3cr3t");
/// assert_eq!(login_credential(&t, None, Some("svc"))?.0, "svc");
/// assert!(login_credential(&t, None, None).is_err());
/// # Ok::<(), rekey_core::VerifyError>(())
/// ```
pub fn login_credential<'d>(
    candidate: &'d SecretData,
    field: Option<&str>,
    default_user: Option<&'d str>,
) -> Result<(&'d str, &'d secrecy::SecretString), VerifyError> {
    use secrecy::ExposeSecret;
    let user = match candidate.field(USERNAME_FIELD) {
        Some(u) => u.expose_secret(),
        None => default_user.ok_or_else(|| {
            VerifyError::Failed("the candidate has no `username` field and no user is configured".into())
        })?,
    };
    let password = field
        .and_then(|f| candidate.field(f))
        .or_else(|| candidate.as_text())
        .or_else(|| candidate.field(PASSWORD_FIELD))
        .ok_or_else(|| VerifyError::Failed("the candidate has no password".into()))?;
    Ok((user, password))
}
