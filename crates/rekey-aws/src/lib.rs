//! # rekey-aws
//!
//! An AWS Secrets Manager [`SecretStore`](rekey_core::SecretStore) for
//! [rekey](https://example.invalid/rekey), built on `aws-sdk-secretsmanager`
//! and using Secrets Manager's own rotation model: candidates are staged as
//! `AWSPENDING`, promoted by moving `AWSCURRENT` with compare-and-swap, and
//! the replaced version becomes `AWSPREVIOUS` — exactly the stages AWS's own
//! rotation functions leave.
//!
//! ## Concepts
//!
//! * [`AwsSecretsStore`] — the store; its docs map every contract operation
//!   to Secrets Manager calls, and list what differs from the in-memory
//!   reference store (versions cannot be deleted one by one, metadata are
//!   tags).
//! * [`AwsConfig`] — region, endpoint override (emulators, VPC endpoints),
//!   profile, retries and timeouts over the standard AWS configuration chain.
//!   Deserializable from a config file; never shows a credential.
//! * [`ApiCallCounter`] — an SDK interceptor counting calls per operation.
//!
//! ## Calls per rotation
//!
//! Every store counts the calls it makes by operation
//! ([`request_counts`](rekey_core::SecretStore::request_counts)). One
//! rotation through the engine (no verifier, no target) costs, against moto
//! (pinned by `tests/request_counts.rs`):
//!
//! | strategy | calls | which |
//! |---|---|---|
//! | staged, dual_write | 8 | GetSecretValue + DescribeSecret (value; tags hold the record), ListSecretVersionIds (token pre-check), PutSecretValue into AWSPENDING with the rotation's token, GetSecretValue of the candidate, 2 UpdateSecretVersionStage (AWSCURRENT moved, AWSPENDING removed), TagResource (record) |
//! | immediate | 6 | GetSecretValue, DescribeSecret, ListSecretVersionIds, PutSecretValue, UpdateSecretVersionStage, TagResource |
//!
//! On AWS itself the token pre-check can be switched off
//! ([`AwsSecretsStore::with_token_precheck`]), one call less each. The
//! protocol's own minimum for a staged rotation is 4 (GetSecretValue,
//! PutSecretValue, DescribeSecret, UpdateSecretVersionStage); the store does
//! not reach it yet: the rotation calls of the contract still use the
//! default composition of primitive calls here.
//!
//! ## Retries
//!
//! rekey's engine retries failed steps itself, deciding by
//! [`StoreError::is_retryable`](rekey_core::StoreError::is_retryable). The
//! SDK's own retries are therefore kept short ([`DEFAULT_MAX_ATTEMPTS`] = 2
//! attempts, 100 ms first backoff) and configurable
//! ([`AwsConfig::max_attempts`]; `1` turns them off), so the two never stack
//! into exponential backoff inside exponential backoff. Every write carries
//! an explicit `ClientRequestToken`, so any retry, the SDK's or the
//! engine's, is idempotent.
//!
//! ## Errors
//!
//! Every SDK error is mapped in one place (the `error` module): not found,
//! already exists, conflict (a lost compare-and-swap), invalid input,
//! permission denied, unauthenticated, rate limited and unavailable (5xx,
//! connection failures, timeouts; retryable). No message, `Debug` output or
//! log line ever holds a secret value or a credential.
//!
//! The SDK's own logs were checked too (`tests/no_secret_in_logs.rs` runs
//! every operation with `TRACE` on): request bodies and `GetSecretValue`
//! responses are not shown. At `TRACE`, the SDK does print request headers,
//! which carry the access key id and, with temporary credentials, the
//! session token: do not enable `TRACE` for the `aws_smithy_runtime` target
//! in production.
//!
//! ## Usage
//!
//! ```no_run
//! use rekey_aws::{AwsConfig, AwsSecretsStore};
//! use rekey_core::{SecretData, SecretStoreExt};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Region, credentials and profile from the standard chain:
//! let store = AwsSecretsStore::from_config(&AwsConfig::default()).await?;
//! let path = "apps/billing/db".parse()?;
//! store.create(&path, SecretData::fields([("username", "billing"), ("password", "initial")])).await?;
//! let current = store.current(&path).await?;
//! println!("current version {}", current.meta.id);
//! # Ok(()) }
//! ```
//!
//! ## Testing against moto
//!
//! The tests talk to a real moto server through the real SDK:
//! `scripts/servers.sh start moto` and `source .test-servers/env` (or
//! `scripts/test.sh`), then `cargo test -p rekey-aws`. The differences from
//! AWS found while writing them are documented beside the tests.
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

mod codec;
mod config;
mod counter;
mod error;
mod lock;
mod rotation;
mod store;

pub use codec::{MAX_SECRET_STRING_BYTES, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS, MAX_TAGS, METADATA_PREFIX};
pub use config::{
    AwsConfig, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_ATTEMPTS,
    StaticCredentials,
};
pub use counter::ApiCallCounter;
pub use store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, AwsSecretsStore, REKEY_WRITING};

/// The AWS SDK crate this store is built on, for building clients with the
/// matching version.
pub use aws_sdk_secretsmanager as sdk;
