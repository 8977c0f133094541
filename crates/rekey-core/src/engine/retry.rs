//! Retrying store and target calls with the policy's backoff, on the engine's clock.

use std::future::Future;

use super::audit::{AuditError, AuditEventKind};
use super::context::Run;
use super::error::RotationStep;
use super::shared::Inner;
use crate::{SecretVersion, StoreError, TargetError, VersionSelector};

impl Inner {
    /// Runs `call` until it succeeds, fails for good, or the policy's
    /// retries are spent; retryable errors wait the policy's backoff (full
    /// jitter, at least a rate limit's `retry_after`) on the clock.
    pub(super) async fn retry_store<T, F, Fut>(
        &self,
        run: &mut Run<'_>,
        step: RotationStep,
        mut call: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let retry = run.policy.retry();
        let mut attempt = 0u32;
        loop {
            run.calls = run.calls.saturating_add(1);
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt < retry.max_retries => {
                    attempt += 1;
                    run.retries = run.retries.saturating_add(1);
                    let mut delay = retry.backoff(attempt, rand::random::<f64>());
                    if let StoreError::RateLimited { retry_after: Some(after), .. } = &e {
                        delay = delay.max(*after);
                    }
                    if let Some(mut ev) = self.event(run, AuditEventKind::Retrying) {
                        ev.step = Some(step);
                        ev.attempt = Some(attempt);
                        ev.error = Some(AuditError { kind: e.kind().to_owned(), message: e.to_string() });
                        ev.detail = Some(format!("retrying in {} ms", delay.as_millis()));
                        for s in &self.sinks {
                            s.record(&ev);
                        }
                    }
                    self.clock.sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Like [`retry_store`](Self::retry_store) for a credential target.
    /// Every error the target returns is redacted of `secrets` (the
    /// credentials the call handles) before anything sees it.
    pub(super) async fn retry_target<F, Fut>(
        &self,
        run: &mut Run<'_>,
        step: RotationStep,
        secrets: &[&str],
        mut call: F,
    ) -> Result<(), TargetError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), TargetError>>,
    {
        let retry = run.policy.retry();
        let mut attempt = 0u32;
        loop {
            run.calls = run.calls.saturating_add(1);
            match call().await.map_err(|e| e.redact(secrets)) {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() && attempt < retry.max_retries => {
                    attempt += 1;
                    run.retries = run.retries.saturating_add(1);
                    let delay = retry.backoff(attempt, rand::random::<f64>());
                    if let Some(mut ev) = self.event(run, AuditEventKind::Retrying) {
                        ev.step = Some(step);
                        ev.attempt = Some(attempt);
                        ev.error = Some(AuditError { kind: "target".to_owned(), message: e.to_string() });
                        for s in &self.sinks {
                            s.record(&ev);
                        }
                    }
                    self.clock.sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the current version (with retries), to settle what an
    /// ambiguous or conflicting write did.
    pub(super) async fn reread_current(&self, run: &mut Run<'_>, step: RotationStep) -> Option<SecretVersion> {
        let path = run.path;
        self.retry_store(run, step, || self.store.read(path, &VersionSelector::Current)).await.ok()
    }
}
