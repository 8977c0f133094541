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
