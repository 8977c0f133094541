//! # rekey-memory
//!
//! The in-memory [`SecretStore`](rekey_core::SecretStore) of rekey, and a
//! fault-injecting wrapper for reliability tests.
//!
//! * [`MemoryStore`] keeps versioned secrets with staging, compare-and-swap
//!   promote and idempotent writes, exactly as the store contract in
//!   [`rekey_core::store`] documents. It is the reference implementation:
//!   every other backend runs the same conformance suite
//!   (`rekey-testkit`) and must behave like it. Use it in tests, examples and
//!   single-process deployments.
//! * [`FaultInjectingStore`] wraps any store (this one, Vault, AWS) and fails,
//!   delays or "loses the response of" chosen calls, while counting every
//!   call per [`Method`].
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod fault;
mod memory;

pub use fault::{Call, Fault, FaultInjectingStore, Method, Rule, RuleId};
pub use memory::{
    DEFAULT_MAX_VERSIONS, MAX_METADATA_ENTRIES, MAX_METADATA_KEY_BYTES, MAX_METADATA_VALUE_BYTES, MAX_VALUE_BYTES,
    MemoryStore, NowFn,
};
