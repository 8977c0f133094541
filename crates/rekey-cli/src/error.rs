//! The command's errors and exit codes.

use std::process::ExitCode;

use rekey::StoreError;

use crate::config::ConfigError;

/// Exit code: everything worked.
pub const EXIT_OK: u8 = 0;
/// Exit code: a rotation (or rollback) failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: the configuration file or the command line is wrong; nothing ran.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code: the store could not be reached or refused the credentials.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code: a secret does not exist in the store, or there is nothing to do it to
/// (no previous version to roll back to).
pub const EXIT_NOT_FOUND: u8 = 4;

/// Why a command stopped.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration file is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The command line or a setting is wrong.
    #[error("{0}")]
    Usage(String),
    /// A store call failed.
    #[error("{context}: {source}")]
    Store {
        /// What was being done.
        context: String,
        /// The store's error.
        source: StoreError,
    },
    /// An operation failed (already reported).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// A store error with context.
    pub fn store(context: impl Into<String>, source: StoreError) -> Self {
        Self::Store { context: context.into(), source }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::Usage(_) => EXIT_CONFIG,
            Self::Store { source, .. } if unreachable(source) => EXIT_UNREACHABLE,
            Self::Store { source: StoreError::NotFound { .. }, .. } => EXIT_NOT_FOUND,
            Self::Store { source: StoreError::InvalidInput { .. }, .. } => EXIT_CONFIG,
            Self::Store { .. } | Self::Failed(_) => EXIT_FAILED,
        }
    }

    /// The kind, for `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::Usage(_) => "usage",
            Self::Store { source, .. } if unreachable(source) => "store_unreachable",
            Self::Store { source: StoreError::NotFound { .. }, .. } => "not_found",
            Self::Store { .. } => "store",
            Self::Failed(_) => "failed",
        }
    }
}

/// An exit code from a number.
pub fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}

/// Whether a store error means the store could not be reached or refused us.
pub fn unreachable(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Unavailable { .. }
            | StoreError::Unauthenticated { .. }
            | StoreError::PermissionDenied { .. }
            | StoreError::RateLimited { .. }
    )
}
