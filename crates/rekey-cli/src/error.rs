//! The command's errors and exit codes.

use std::process::ExitCode;

use rekey::{RotationError, RotationOutcome, RotationResult, RotationStep, StoreError};

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
    /// The engine refused or failed an operation.
    #[error("{context}: {message}")]
    Engine {
        /// What was being done.
        context: String,
        /// The engine's message, in config terms.
        message: String,
        /// Its exit code.
        code: u8,
    },
}

impl CliError {
    /// An engine error with context.
    pub fn engine(context: impl Into<String>, e: &RotationError) -> Self {
        Self::Engine { context: context.into(), message: rotation_message(e), code: rotation_error_exit_code(e) }
    }

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
            Self::Store { source, .. } => store_exit_code(source),
            Self::Failed(_) => EXIT_FAILED,
            Self::Engine { code, .. } => *code,
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
            Self::Engine { code: EXIT_UNREACHABLE, .. } => "store_unreachable",
            Self::Engine { code: EXIT_NOT_FOUND, .. } => "not_found",
            Self::Engine { .. } | Self::Failed(_) => "failed",
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

/// Exit codes from the least to the most severe. A command that did several
/// things (`rotate --all`, `check`) exits with the most severe code among
/// them: 3 (the store is away: nothing else can be trusted) > 2 (a setting
/// must be fixed) > 1 (a rotation failed) > 4 (a secret is missing) > 0.
const SEVERITY: [u8; 5] = [EXIT_OK, EXIT_NOT_FOUND, EXIT_FAILED, EXIT_CONFIG, EXIT_UNREACHABLE];

/// The more severe of two exit codes (see [`SEVERITY`]).
pub fn worst(a: u8, b: u8) -> u8 {
    let rank = |c: u8| SEVERITY.iter().position(|s| *s == c).unwrap_or(SEVERITY.len());
    if rank(b) > rank(a) { b } else { a }
}

/// The exit code of a store error.
pub fn store_exit_code(e: &StoreError) -> u8 {
    match e {
        e if unreachable(e) => EXIT_UNREACHABLE,
        StoreError::NotFound { .. } => EXIT_NOT_FOUND,
        StoreError::InvalidInput { .. } => EXIT_CONFIG,
        _ => EXIT_FAILED,
    }
}

/// The exit code of one rotation: 0 when it rotated or was skipped (outside
/// its window, rotated or in progress elsewhere, already rotating, deferred:
/// not a failure, the outcome says which); 3 when the store could not be
/// reached (outcome `store_unavailable`, or a failure caused by the store);
/// 4 when the secret does not exist; 2 when its settings do not fit the
/// stored value (nothing was written); 1 for every other failure.
pub fn rotation_exit_code(r: &RotationResult) -> u8 {
    if r.outcome == RotationOutcome::StoreUnavailable {
        // Not a failure of the secret, but nothing could be done: the store.
        return EXIT_UNREACHABLE;
    }
    if !r.outcome.is_failure() {
        return EXIT_OK;
    }
    match &r.error {
        Some(e) => rotation_error_exit_code(e),
        None if r.outcome == RotationOutcome::Rotated => EXIT_OK,
        None => EXIT_FAILED,
    }
}

fn rotation_error_exit_code(e: &RotationError) -> u8 {
    match e {
        RotationError::Store { step, source } => match &**source {
            s if unreachable(s) => EXIT_UNREACHABLE,
            // A missing secret found before anything changed: a manual
            // rotation stages first, so its first call may be the stage.
            StoreError::NotFound { .. }
                if matches!(
                    step,
                    RotationStep::Prepare | RotationStep::Journal | RotationStep::Stage | RotationStep::Rollback
                ) =>
            {
                EXIT_NOT_FOUND
            }
            // The secret itself (not one of its versions) is missing when
            // the recovery every rollback starts with reads it.
            StoreError::NotFound { what: None, .. } if *step == RotationStep::Recover => EXIT_NOT_FOUND,
            _ => EXIT_FAILED,
        },
        RotationError::UndoFailed { cause, .. } => match rotation_error_exit_code(cause) {
            EXIT_UNREACHABLE => EXIT_UNREACHABLE,
            _ => EXIT_FAILED,
        },
        RotationError::NothingToRollBack { .. } => EXIT_NOT_FOUND,
        RotationError::InvalidBinding { .. } | RotationError::UnknownVerifier { .. } => EXIT_CONFIG,
        _ => EXIT_FAILED,
    }
}

/// Phrases of the library's messages that name its API, and what they
/// mean in the configuration file's terms.
const IN_CONFIG_TERMS: [(&str, &str); 5] = [
    (
        "name the one to rotate, a whole text value would replace them all",
        "set `field = \"NAME\"` in the secret's [[secret]] table to the field to rotate (a whole text value would replace them all)",
    ),
    (
        "name the one to rotate (the binding's field)",
        "set `field = \"NAME\"` in the secret's [[secret]] table to the field to rotate",
    ),
    (
        "bind the field to rotate with SecretBinding::field",
        "set `field = \"NAME\"` in the secret's [[secret]] table to the field to rotate",
    ),
    (
        "give the two user names (e.g. SecretBinding::credential_sets)",
        "give the two user names with `roles = [\"a\", \"b\"]` in the secret's postgres target",
    ),
    (
        "name the two credential sets (their user names)",
        "give the two user names with `roles = [\"a\", \"b\"]` in the secret's postgres target",
    ),
];

/// A rotation error's message in the configuration file's terms.
pub fn rotation_message(e: &RotationError) -> String {
    in_config_terms(&e.to_string()).into_owned()
}

/// A library message in the configuration file's terms (also applied to
/// log lines, which carry the library's audit events).
pub fn in_config_terms(s: &str) -> std::borrow::Cow<'_, str> {
    let mut m = std::borrow::Cow::Borrowed(s);
    for (api, config) in IN_CONFIG_TERMS {
        if m.contains(api) {
            m = std::borrow::Cow::Owned(m.replace(api, config));
        }
    }
    m
}
