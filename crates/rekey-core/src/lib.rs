//! # rekey-core
//!
//! The core of [rekey](https://example.invalid/rekey): the rotation model
//! (policies, strategies, results), the secret generator, the store contract
//! ([`SecretStore`]) and the rotation engine. It does no I/O of its own:
//! stores, verifiers, audit sinks and the clock are traits that other crates
//! implement.
//!
//! ## Concepts
//!
//! * [`SecretPath`] — a validated path naming one secret.
//! * [`SecretData`] — a secret's value: one string or several named fields,
//!   never shown by `Debug`.
//! * [`SecretStore`] — versioned storage with staging, compare-and-swap
//!   promote and idempotent writes. See the [`store`] module.
//! * [`StoreError`] — every store failure, classified by meaning, with
//!   [`StoreError::is_retryable`].
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod error;
pub mod host;
pub mod path;
pub mod record;
pub mod redact;
pub mod store;
pub mod value;

pub use error::{BoxError, StoreError};
pub use host::{HttpTransport, HttpTransportError, http_transport, is_local_host};
pub use path::{PathError, SecretPath};
pub use record::{RollbackPlan, SecretRecord, rollback_plan};
pub use store::{
    DynSecretStore, JOURNAL_KEY, Journal, MAX_METADATA_ENTRIES, MAX_METADATA_KEY_BYTES, MAX_METADATA_VALUE_BYTES,
    METADATA_KEY_PREFIX, Metadata, MetadataPatch, PromoteRequest, PutMode, PutOptions, RecordWrite, RequestCounts,
    RotationId, SecretStore, SecretStoreExt, SecretVersion, Snapshot, StageOutcome, StageRequest, Staged, Stages,
    VersionId, VersionMeta, VersionSelector, check_metadata, check_metadata_patch, check_whole_value,
    keep_required_journal,
};
pub use value::SecretData;

pub use secrecy::{ExposeSecret, SecretString};

pub mod target;
pub mod verify;
pub use target::{CredentialTarget, TargetCapabilities, TargetError};
pub use verify::{Verifier, VerifyContext, VerifyError};

pub mod engine;
pub mod generator;
pub mod policy;
#[allow(unused_imports)]
pub use engine::*;
#[allow(unused_imports)]
pub use generator::*;
#[allow(unused_imports)]
pub use policy::*;
