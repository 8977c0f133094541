//! Running a candidate's verifications concurrently, each within the policy's timeout.

use super::clock::timeout;
use super::context::Run;
use super::error::RotationError;
use super::shared::Inner;
use crate::{SecretData, VerifyContext, VerifyError};

impl Inner {
    /// Runs every verification (the policy's tests and the target's own
    /// test) concurrently, each within the policy's verification timeout;
    /// the first failure wins and cancels the others.
    pub(super) async fn verify(
        &self,
        run: &Run<'_>,
        candidate: &SecretData,
        field: Option<&str>,
        target: Option<&dyn crate::CredentialTarget>,
    ) -> Result<(), RotationError> {
        let limit = run.policy.verification_timeout();
        let ctx = VerifyContext { path: run.path, rotation_id: run.id, candidate, field };
        let tests = run.policy.verification_tests();
        // What a verifier or the target says about the candidate is
        // redacted of it (and its encodings) before anything else sees it.
        let secrets = candidate.secret_parts();
        let secrets = &secrets;
        let mut checks: Vec<futures::future::BoxFuture<'_, Result<(), RotationError>>> = Vec::new();
        for name in tests {
            let verifier = self.verifiers.get(name).cloned();
            let clock = &*self.clock;
            checks.push(Box::pin(async move {
                let Some(v) = verifier else {
                    return Err(RotationError::UnknownVerifier {
                        policy: run.policy.name().to_owned(),
                        name: name.clone(),
                    });
                };
                match timeout(clock, limit, v.verify(ctx)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(source)) => {
                        Err(RotationError::Verification { verifier: name.clone(), source: source.redact(secrets) })
                    }
                    Err(_) => Err(RotationError::Verification {
                        verifier: name.clone(),
                        source: VerifyError::TimedOut(limit),
                    }),
                }
            }));
        }
        if let Some(t) = target {
            let clock = &*self.clock;
            checks.push(Box::pin(async move {
                let verifier = format!("target:{}", t.name());
                match timeout(clock, limit, t.test(candidate)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => {
                        let e = e.redact(secrets);
                        let source = if e.is_retryable() {
                            VerifyError::Unavailable(e.to_string())
                        } else {
                            VerifyError::Failed(e.to_string())
                        };
                        Err(RotationError::Verification { verifier, source })
                    }
                    Err(_) => Err(RotationError::Verification { verifier, source: VerifyError::TimedOut(limit) }),
                }
            }));
        }
        futures::future::try_join_all(checks).await.map(|_| ())
    }
}
