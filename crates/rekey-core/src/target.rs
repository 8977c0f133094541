//! Credential targets: the system that checks a credential.
//!
//! A credential usually lives in two places: the store, and the system that
//! checks it (a database role, a cache's ACL user, an API provider). A
//! [`CredentialTarget`] is AWS rotation's `setSecret` step as a trait: strategy
//! engines call it to make a candidate valid, to test it, and to revoke an old
//! (or a failed) credential. Implementations live outside core (e.g.
//! `rekey-postgres`, `rekey-redis`) so that core does no I/O.
//!
//! Every method is idempotent: calling it twice with the same arguments leaves
//! the target as calling it once does, so a resumed rotation can repeat a step.

use std::fmt;

use async_trait::async_trait;

use crate::SecretData;

/// What a target can do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetCapabilities {
    /// Whether the target can accept the old and the new credential at the
    /// same time for one identity (Redis ACL users can; a PostgreSQL role has
    /// one password). Required by the dual-write strategy.
    pub concurrent_credentials: bool,
}

/// A failure of a [`CredentialTarget`]. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The target refused the credential (wrong password, unknown user).
    #[error("credential rejected by target: {message}")]
    Rejected {
        /// Why (never a secret).
        message: String,
    },
    /// The credential rekey uses to administer the target may not do this.
    #[error("permission denied on target: {message}")]
    PermissionDenied {
        /// Why.
        message: String,
    },
    /// The target could not be reached or failed transiently.
    #[error("target unavailable: {message}")]
    Unavailable {
        /// Why.
        message: String,
    },
    /// The secret's value does not fit the target (e.g. no `username` field).
    #[error("invalid input for target: {message}")]
    InvalidInput {
        /// Why.
        message: String,
    },
    /// Anything else.
    #[error("target error: {message}")]
    Other {
        /// Why.
        message: String,
    },
    /// The operation failed before it changed anything on the target (for
    /// example rekey's own login to the target was refused, or its
    /// certificate was not trusted), so there is nothing to undo there.
    /// Wraps the failure; [`is_retryable`](Self::is_retryable) is the
    /// wrapped error's.
    #[error("{0} (nothing was changed on the target)")]
    NothingChanged(Box<TargetError>),
}

impl TargetError {
    /// The same error with every secret in `secrets` — and its encodings
    /// and fragments — removed from the message ([`crate::redact::redact`]).
    /// The engine applies it to every error a target returns, before the
    /// error reaches a result, an audit event or a log line.
    pub fn redact(self, secrets: &[&str]) -> Self {
        let r = |m: String| crate::redact::redact(&m, secrets);
        match self {
            Self::Rejected { message } => Self::Rejected { message: r(message) },
            Self::PermissionDenied { message } => Self::PermissionDenied { message: r(message) },
            Self::Unavailable { message } => Self::Unavailable { message: r(message) },
            Self::InvalidInput { message } => Self::InvalidInput { message: r(message) },
            Self::Other { message } => Self::Other { message: r(message) },
            Self::NothingChanged(e) => Self::NothingChanged(Box::new(e.redact(secrets))),
        }
    }

    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NothingChanged(e) => e.is_retryable(),
            e => matches!(e, Self::Unavailable { .. }),
        }
    }

    /// The same error, marked as having changed nothing on the target
    /// (see [`NothingChanged`](Self::NothingChanged)). Marking twice is
    /// the same as marking once.
    ///
    /// ```
    /// use rekey_core::TargetError;
    /// let e = TargetError::PermissionDenied { message: "login refused".into() }.nothing_changed();
    /// assert!(e.changed_nothing());
    /// assert!(e.nothing_changed().to_string().ends_with("login refused (nothing was changed on the target)"));
    /// ```
    pub fn nothing_changed(self) -> Self {
        match self {
            e @ Self::NothingChanged(_) => e,
            e => Self::NothingChanged(Box::new(e)),
        }
    }

    /// Whether the target says the failed operation changed nothing.
    pub fn changed_nothing(&self) -> bool {
        matches!(self, Self::NothingChanged(_))
    }

    /// The error itself, without the [`NothingChanged`](Self::NothingChanged)
    /// mark: match on this to tell a refused login from a lost connection.
    ///
    /// ```
    /// use rekey_core::TargetError;
    /// let e = TargetError::PermissionDenied { message: "login refused".into() }.nothing_changed();
    /// assert!(matches!(e.unmarked(), TargetError::PermissionDenied { .. }));
    /// ```
    pub fn unmarked(&self) -> &TargetError {
        match self {
            Self::NothingChanged(e) => e.unmarked(),
            e => e,
        }
    }
}

/// The system that checks a credential. See the [module docs](self).
#[async_trait]
pub trait CredentialTarget: fmt::Debug + Send + Sync + 'static {
    /// A short name for logs and audit events (e.g. `"postgres"`).
    fn name(&self) -> &str;

    /// What the target supports.
    fn capabilities(&self) -> TargetCapabilities;

    /// Makes `candidate` a valid credential on the target. On a target with
    /// [`concurrent_credentials`](TargetCapabilities::concurrent_credentials),
    /// `current` (the credential in use) stays valid too; on others applying
    /// the candidate replaces it.
    async fn apply(&self, candidate: &SecretData, current: Option<&SecretData>) -> Result<(), TargetError>;

    /// Proves that `credential` works by logging in with it and running a
    /// trivial command.
    async fn test(&self, credential: &SecretData) -> Result<(), TargetError>;

    /// Makes `revoked` invalid while `keep` stays valid. Used to retire an old
    /// credential (dual-write) and to undo a failed candidate (rollback). On a
    /// single-credential target this means applying `keep` again.
    async fn revoke(&self, revoked: &SecretData, keep: &SecretData) -> Result<(), TargetError>;
}
