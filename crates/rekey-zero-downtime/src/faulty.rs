//! [`FaultyTarget`]: a credential target that fails on demand.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use rekey_core::{CredentialTarget, SecretData, TargetCapabilities, TargetError};

/// A method of [`CredentialTarget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetOp {
    /// [`CredentialTarget::apply`].
    Apply,
    /// [`CredentialTarget::test`].
    Test,
    /// [`CredentialTarget::revoke`].
    Revoke,
}

impl TargetOp {
    fn index(self) -> usize {
        match self {
            Self::Apply => 0,
            Self::Test => 1,
            Self::Revoke => 2,
        }
    }
}

/// Wraps a real target and fails chosen calls with a non-retryable
/// [`TargetError::Other`] *without* calling the real target, so a test can
/// put a failure at any step of a rotation.
///
/// Calls are counted per method from 1; [`fail_nth`](Self::fail_nth) makes
/// the n-th call of a method (counted from the wrapper's creation) fail.
pub struct FaultyTarget {
    inner: Arc<dyn CredentialTarget>,
    calls: [AtomicU64; 3],
    /// Per method: the call number that fails (0: none).
    fail_at: [AtomicU64; 3],
}

impl fmt::Debug for FaultyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyTarget").field("inner", &self.inner.name()).finish_non_exhaustive()
    }
}

impl FaultyTarget {
    /// Wraps `inner`; nothing fails until told.
    pub fn new(inner: Arc<dyn CredentialTarget>) -> Self {
        Self { inner, calls: Default::default(), fail_at: Default::default() }
    }

    /// Makes call number `n` (1-based, counted since creation) of `op` fail.
    pub fn fail_nth(&self, op: TargetOp, n: u64) {
        self.fail_at[op.index()].store(n, Ordering::SeqCst);
    }

    /// Makes the next call of `op` fail.
    pub fn fail_next(&self, op: TargetOp) {
        let done = self.calls[op.index()].load(Ordering::SeqCst);
        self.fail_nth(op, done + 1);
    }

    /// How many times `op` was called.
    pub fn calls(&self, op: TargetOp) -> u64 {
        self.calls[op.index()].load(Ordering::SeqCst)
    }

    fn check(&self, op: TargetOp) -> Result<(), TargetError> {
        let i = op.index();
        let n = self.calls[i].fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_at[i].load(Ordering::SeqCst) == n {
            return Err(TargetError::Other { message: format!("injected failure of {op:?} call {n}") });
        }
        Ok(())
    }
}

#[async_trait]
impl CredentialTarget for FaultyTarget {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> TargetCapabilities {
        self.inner.capabilities()
    }

    async fn apply(&self, candidate: &SecretData, current: Option<&SecretData>) -> Result<(), TargetError> {
        self.check(TargetOp::Apply)?;
        self.inner.apply(candidate, current).await
    }

    async fn test(&self, credential: &SecretData) -> Result<(), TargetError> {
        self.check(TargetOp::Test)?;
        self.inner.test(credential).await
    }

    async fn revoke(&self, revoked: &SecretData, keep: &SecretData) -> Result<(), TargetError> {
        self.check(TargetOp::Revoke)?;
        self.inner.revoke(revoked, keep).await
    }
}
