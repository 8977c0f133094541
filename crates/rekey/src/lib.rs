//! # rekey
//!
//! Automatic credential rotation. rekey generates a new secret, applies it
//! where it is checked, proves that it works, promotes it atomically and rolls
//! back when anything fails — on a schedule or on demand — against HashiCorp
//! Vault / OpenBao, AWS Secrets Manager, or an in-memory store.
//!
//! This crate is the facade: it re-exports [`rekey_core`] (the model, the
//! store contract and the rotation engine) and each store behind a feature:
//!
//! | feature | store |
//! |---|---|
//! | `memory` (default) | [`memory::MemoryStore`] |
//! | `vault` | [`vault::VaultStore`] (HashiCorp Vault / OpenBao KV v2) |
//! | `aws` | [`aws::AwsSecretsStore`] (AWS Secrets Manager) |
//! | `all-stores` | every store |
//!
//! [`StoreConfig`] builds whichever store a configuration file names.
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub use rekey_core::*;

#[cfg(feature = "memory")]
pub use rekey_memory as memory;

#[cfg(feature = "vault")]
pub use rekey_vault as vault;

#[cfg(feature = "aws")]
pub use rekey_aws as aws;

mod config;

/// The wall clock, sleeping on tokio's timer: the [`Clock`] a service running
/// on tokio gives its [`RotationManager`].
///
/// ```
/// # #[cfg(feature = "memory")] {
/// use std::sync::Arc;
/// let manager = rekey::RotationManager::builder(Arc::new(rekey::memory::MemoryStore::new()))
///     .clock(rekey::tokio_clock())
///     .build()
///     .expect("a clock is all the builder needs");
/// # let _ = manager; }
/// ```
pub fn tokio_clock() -> std::sync::Arc<dyn Clock> {
    std::sync::Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d))))
}
pub use config::{StoreConfig, StoreConfigError};
