//! Errors of the store contract.
//!
//! One enum, [`StoreError`], classified by meaning. Every backend maps its own
//! errors into it in one place; the in-memory store picks the variant a real
//! store would. No variant ever carries a secret value: messages are built from
//! paths, version ids and server error text only.

use std::error::Error as StdError;
use std::time::Duration;

use crate::store::VersionId;

/// A boxed, thread-safe error used as a `source`.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An error returned by a [`SecretStore`](crate::SecretStore).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The secret, or the requested version of it, does not exist.
    #[error("not found: {path}{}", what.as_ref().map(|w| format!(" ({w})")).unwrap_or_default())]
    NotFound {
        /// The secret path.
        path: String,
        /// What was missing, e.g. `"previous version"`.
        what: Option<String>,
    },
    /// `PutMode::Create` on a secret that already exists.
    #[error("already exists: {path}")]
    AlreadyExists {
        /// The secret path.
        path: String,
    },
    /// A compare-and-swap lost: the current version was not the expected one.
    ///
    /// Never retried blindly: another writer changed the secret, so the caller
    /// must re-read and re-plan.
    #[error("conflict on {path}: expected current version {}, found {}",
        expected.as_ref().map(VersionId::as_str).unwrap_or("<none>"),
        actual.as_ref().map(VersionId::as_str).unwrap_or("<unknown>"))]
    Conflict {
        /// The secret path.
        path: String,
        /// The version the caller expected to be current.
        expected: Option<VersionId>,
        /// The version that was current instead, when the store says so.
        actual: Option<VersionId>,
    },
    /// The credentials are valid but may not do this.
    #[error("permission denied{}: {message}", path.as_ref().map(|p| format!(" on {p}")).unwrap_or_default())]
    PermissionDenied {
        /// The secret path, when known.
        path: Option<String>,
        /// The server's explanation (never a secret).
        message: String,
    },
    /// The store did not accept the credentials (missing, expired, invalid).
    #[error("unauthenticated: {message}")]
    Unauthenticated {
        /// The server's explanation (never a secret).
        message: String,
    },
    /// The store throttled the request.
    #[error("rate limited: {message}")]
    RateLimited {
        /// The server's explanation.
        message: String,
        /// How long the server asked to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The store could not be reached or failed transiently (5xx, sealed,
    /// connection refused, timeout).
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What happened.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The request was malformed (bad path, bad value, bad version id).
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What was wrong.
        message: String,
    },
    /// The store cannot do this operation.
    #[error("not supported: {message}")]
    NotSupported {
        /// What is not supported.
        message: String,
    },
    /// Anything else.
    #[error("store error: {message}")]
    Other {
        /// What happened.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    /// Whether retrying the same request later may succeed.
    ///
    /// Only transient failures ([`Unavailable`](Self::Unavailable) and
    /// [`RateLimited`](Self::RateLimited)) are retryable. A
    /// [`Conflict`](Self::Conflict) is *not*: it means someone else changed the
    /// secret, and the caller must re-read before deciding anything.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::RateLimited { .. })
    }

    /// A short stable name for the variant, for metrics and audit events.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::AlreadyExists { .. } => "already_exists",
            Self::Conflict { .. } => "conflict",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::Unauthenticated { .. } => "unauthenticated",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::InvalidInput { .. } => "invalid_input",
            Self::NotSupported { .. } => "not_supported",
            Self::Other { .. } => "other",
        }
    }

    /// Shorthand for [`StoreError::NotFound`].
    pub fn not_found(path: impl Into<String>, what: impl Into<Option<String>>) -> Self {
        Self::NotFound { path: path.into(), what: what.into() }
    }

    /// Shorthand for [`StoreError::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput { message: message.into() }
    }

    /// Shorthand for [`StoreError::Unavailable`] without a source.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable { message: message.into(), source: None }
    }
}
