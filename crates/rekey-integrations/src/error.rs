//! The one error type of this crate: building a verifier or a sink from its
//! configuration.

use std::path::PathBuf;

/// Why a verifier or audit sink could not be built from its configuration.
///
/// Every variant names the configuration field at fault, so the CLI can point
/// at it. No variant ever holds a secret (an HMAC key, a candidate).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrationError {
    /// A field has a value that cannot work.
    #[error("invalid `{field}`: {reason}")]
    InvalidConfig {
        /// The field, as written in the config (`url`, `placement.name`, ...).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key that must come from the environment is not there.
    #[error("environment variable `{var}` (named by `{field}`) is not set, empty or not valid UTF-8")]
    MissingEnv {
        /// The field naming the variable.
        field: String,
        /// The variable.
        var: String,
    },
    /// A file could not be opened or read.
    #[error("`{field}`: cannot use `{}`: {source}", path.display())]
    Io {
        /// The field naming the file.
        field: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A sink with a background task was started outside a tokio runtime.
    #[error("audit sink `{0}` must be started inside a tokio runtime")]
    NoRuntime(&'static str),
    /// The HTTP client could not be set up (TLS initialisation).
    #[error("cannot set up the HTTP client: {0}")]
    HttpClient(String),
}

impl IntegrationError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidConfig { field: field.into(), reason: reason.into() }
    }

    /// The configuration field at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidConfig { field, .. } | Self::MissingEnv { field, .. } | Self::Io { field, .. } => Some(field),
            Self::NoRuntime(_) | Self::HttpClient(_) => None,
        }
    }
}
