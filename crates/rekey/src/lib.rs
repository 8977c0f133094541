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
#![cfg_attr(feature = "memory", doc = "| `memory` (default) | [`memory::MemoryStore`] |")]
#![cfg_attr(not(feature = "memory"), doc = "| `memory` (default) | `memory::MemoryStore` (not in this build) |")]
#![cfg_attr(feature = "vault", doc = "| `vault` | [`vault::VaultStore`] (HashiCorp Vault / OpenBao KV v2) |")]
#![cfg_attr(
    not(feature = "vault"),
    doc = "| `vault` | `vault::VaultStore` (HashiCorp Vault / OpenBao KV v2; not in this build) |"
)]
#![cfg_attr(feature = "aws", doc = "| `aws` | [`aws::AwsSecretsStore`] (AWS Secrets Manager) |")]
#![cfg_attr(not(feature = "aws"), doc = "| `aws` | `aws::AwsSecretsStore` (AWS Secrets Manager; not in this build) |")]
//! | `all-stores` | every store |
//!
//! [`StoreConfig`] builds whichever store a configuration file names.
//!
//! ## Nothing else to depend on
//!
//! What the public signatures use is re-exported, so a crate that depends
//! on `rekey` alone can implement [`Verifier`], [`CredentialTarget`],
//! [`AuditSink`], [`GenerateSecret`] or [`Clock`]:
//!
//! | you need | use |
//! |---|---|
//! | `#[async_trait]` on an `impl Verifier` / `impl CredentialTarget` | [`rekey::async_trait`](macro@async_trait) |
//! | time (`DateTime<Utc>` in results, schedules, audit events, [`Clock::now`]) | [`rekey::DateTime`](DateTime), [`rekey::Utc`](Utc), the whole crate as [`rekey::chrono`](chrono) |
//! | secret values | [`SecretString`], [`ExposeSecret`] |
//! | the future a [`Clock::sleep`] returns | [`rekey::BoxFuture`](BoxFuture) |
//!
//! Reading what consumers use is one call:
//! [`store.current_text(&path)`](SecretStoreExt::current_text).
//!
//! ```
//! # #[cfg(feature = "memory")] {
//! use std::sync::Arc;
//! use rekey::{ExposeSecret, SecretData, SecretStoreExt, Verifier, VerifyContext, VerifyError};
//!
//! #[derive(Debug)]
//! struct NotEmpty;
//!
//! #[rekey::async_trait]
//! impl Verifier for NotEmpty {
//!     fn name(&self) -> &str {
//!         "not_empty"
//!     }
//!     async fn verify(&self, ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
//!         match ctx.candidate.as_text() {
//!             Some(v) if !v.expose_secret().is_empty() => Ok(()),
//!             _ => Err(VerifyError::Failed("empty".into())),
//!         }
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let store = Arc::new(rekey::memory::MemoryStore::new());
//! let path: rekey::SecretPath = "apps/api-key".parse()?;
//! store.create(&path, SecretData::text("first")).await?;
//! let manager = rekey::RotationManager::builder(store.clone())
//!     .clock(rekey::tokio_clock())
//!     .verifier(Arc::new(NotEmpty))
//!     .build()?;
//! let policy = rekey::RotationPolicy::builder("checked").verification_tests(["not_empty"]).build()?;
//! assert!(manager.rotate_secret(&path, &policy, None).await.success());
//! assert_ne!(store.current_text(&path).await?.expose_secret(), "first");
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap(); }
//! ```
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub use rekey_core::*;

#[cfg(feature = "memory")]
pub use rekey_memory as memory;

#[cfg(feature = "vault")]
pub use rekey_vault as vault;

#[cfg(feature = "aws")]
pub use rekey_aws as aws;

/// The attribute that makes `async fn` in [`Verifier`], [`CredentialTarget`]
/// and [`SecretStore`] implementations work: write `#[rekey::async_trait]`
/// on the `impl` (re-exported from the `async-trait` crate).
pub use async_trait::async_trait;

/// The time types of the public API (re-exported `chrono`).
pub use chrono;
pub use chrono::{DateTime, Utc};

/// The boxed future of [`Clock::sleep`] (re-exported from `futures`).
pub use futures::future::BoxFuture;

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
