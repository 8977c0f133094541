//! # rekey-memory
//!
//! The in-memory [`SecretStore`](rekey_core::SecretStore) of rekey, and a
//! fault-injecting layer for reliability tests over any store.
//!
//! ## Concepts
//!
//! * [`MemoryStore`] keeps versioned secrets with staging, compare-and-swap
//!   promote and idempotent writes, exactly as the contract in
//!   [`rekey_core::store`] documents. It is the *reference implementation*:
//!   every backend runs the same conformance suite (`rekey-testkit`) and must
//!   behave like it. Use it in tests, examples, benchmarks and
//!   single-process deployments (nothing survives the process).
//! * [`FaultInjectingStore`] wraps any store (this one, Vault, AWS) and is
//!   one. Its [`Rule`]s fail ([`Fault`]), delay, or "lose the response of"
//!   chosen calls, and it counts every call per [`Method`] — which is also
//!   how tests count the store round trips of a rotation.
//!
//! ## Usage
//!
//! ```
//! use std::sync::Arc;
//! use rekey_core::{DynSecretStore, PutOptions, RotationId, SecretData, SecretPath, SecretStore, SecretStoreExt};
//! use rekey_memory::{Fault, FaultInjectingStore, MemoryStore, Method};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(FaultInjectingStore::new(MemoryStore::new()));
//! let path: SecretPath = "payments/api-key".parse()?;
//! let v1 = store.create(&path, SecretData::text("k1")).await?;
//!
//! // The next put happens, but its response is lost.
//! store.fail_nth_of(Method::Put, 1, Fault::lost_response());
//! let opts = PutOptions::if_current(v1.id.clone()).with_rotation(RotationId::new());
//! assert!(store.put(&path, SecretData::text("k2"), opts.clone()).await.is_err());
//! // Retrying with the same rotation id is safe: no second version, no conflict.
//! let v2 = store.put(&path, SecretData::text("k2"), opts).await?;
//! assert_eq!(store.current(&path).await?.meta.id, v2.id);
//! assert_eq!(store.calls(Method::Put), 3);
//!
//! // Hand it to anything that takes a store.
//! let shared: Arc<DynSecretStore> = store;
//! # let _ = shared;
//! # Ok(()) }
//! ```
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod fault;
mod memory;

pub use fault::{Call, Fault, FaultInjectingStore, Method, Rule, RuleId};
pub use memory::{
    DEFAULT_MAX_VERSIONS, MAX_METADATA_ENTRIES, MAX_METADATA_KEY_BYTES, MAX_METADATA_VALUE_BYTES, MAX_VALUE_BYTES,
    METADATA_KEY_PREFIX, MemoryStore, NowFn,
};
