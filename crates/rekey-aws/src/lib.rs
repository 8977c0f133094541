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
//! ([`request_counts`](rekey_core::SecretStore::request_counts)). The
//! calls a rotation makes (`snapshot`, `stage_rotation`, `promote_rotation`,
//! `put_rotation`) use Secrets Manager's own rotation protocol: the
//! `AWSPENDING` stage and the `ClientRequestToken` (= the rotation id) are
//! the journal, `UpdateSecretVersionStage` is the compare-and-swap, and tags
//! carry only what the protocol cannot say. One rotation through the engine
//! (no verifier, no target) costs, against moto (pinned by
//! `tests/request_counts.rs`, which also pins each call at the store):
//!
//! | strategy | calls (default) | with `pending_cleanup = true` | which, in order |
//! |---|---|---|---|
//! | staged | 4 | 5 | GetSecretValue(AWSCURRENT) ∥ DescribeSecret, PutSecretValue, UpdateSecretVersionStage (+ UpdateSecretVersionStage: AWSPENDING off) |
//! | dual_write | 5 | 6 | as staged, plus TagResource (the retire record) |
//! | immediate | 4 | 4 | GetSecretValue(AWSCURRENT) ∥ DescribeSecret, PutSecretValue, UpdateSecretVersionStage |
//!
//! (∥: sent at once.) Before this, the same rotations cost 8 (staged,
//! dual_write) and 6 (immediate). 4 is the protocol's minimum for a staged
//! rotation, and the default: `AWSPENDING` stays on the promoted version,
//! as AWS's own rotation may leave it; `pending_cleanup = true` spends one
//! call more to take it off (see [`AwsSecretsStore::with_pending_cleanup`]).
//!
//! Why each call is needed:
//!
//! * **GetSecretValue(AWSCURRENT)**: the current version id (the
//!   compare-and-swap base) and its creation time, and the value: a text
//!   candidate may not replace a secret of several fields, and an immediate
//!   or field rotation builds its candidate from it.
//! * **DescribeSecret**: the tags, where the engine keeps its record
//!   (failures, quarantine, a dual-write retire record) and a required
//!   journal; and `VersionIdsToStages`, which replaces the token pre-check on
//!   the staged path: a version this rotation's token already made (a retry:
//!   nothing is written) and a stale candidate of another rotation (read
//!   once more, only then, to report its takeover). Secrets Manager has no
//!   call that returns the value and the tags together.
//! * **PutSecretValue** with `ClientRequestToken` = the rotation id: staged
//!   and dual_write into `AWSPENDING` (the pending version *is* the journal:
//!   a crashed rotation leaves a candidate whose id is its rotation id, and
//!   the next stage moves `AWSPENDING` away from it); immediate under the
//!   private label [`REKEY_WRITING`], so the write does not touch
//!   `AWSCURRENT`. The token makes any retry return the first attempt's
//!   version.
//! * **UpdateSecretVersionStage**(`AWSCURRENT`, `MoveToVersionId` = the new
//!   version, `RemoveFromVersionId` = the base): the compare-and-swap. It
//!   fails and changes nothing when the base no longer holds `AWSCURRENT`
//!   (checked on moto 5.2: `InvalidParameterException`); only then does the
//!   store list the versions to tell a lost race (`Conflict`) from a retry
//!   that won. Secrets Manager moves `AWSPREVIOUS` to the base itself (moto
//!   too).
//! * **UpdateSecretVersionStage**(`AWSPENDING`, `RemoveFromVersionId` = the
//!   promoted version), staged and dual_write only, while the pending
//!   clean-up is on (the default): leaves no `AWSPENDING` anywhere, as tools
//!   that take any `AWSPENDING` for a rotation in flight expect. Off, the
//!   label stays on the new `AWSCURRENT` version, as AWS's own rotation may
//!   leave it ("the AWSPENDING staging label might be attached to the same
//!   version as the AWSCURRENT version"): the store never reports it as
//!   pending, `RotateSecret` sees no rotation in progress, and the next
//!   stage moves it away. A failed clean-up is logged, never a failed
//!   rotation.
//! * **TagResource / UntagResource**: only for a record's `must` part — a
//!   journal to clear, a failure count to reset, a quarantine to lift, the
//!   dual-write retire record (its grace deadline has no place in the
//!   protocol). The `may` part (the last good version, a history event) is
//!   dropped when it would cost a call. A rotation with a credential target
//!   (or an immediate one with checks) writes its journal as a tag first,
//!   since a crash must then clean up more than the candidate: one
//!   `TagResource` more, and its clearing write after.
//!
//! A rotation of one field, or one the daemon schedules, takes the
//! engine's slow path (`snapshot` first, then `stage_rotation` after it,
//! which then writes only): the same calls (`tests/engine_e2e.rs` prints
//! them for a field rotation). The primitive
//! calls (`stage`, `promote`, `put`) keep their token pre-check
//! ([`AwsSecretsStore::with_token_precheck`]); the rotation calls do without
//! it, because the engine repeats a write only with the same rotation id and
//! the same value, which AWS and moto both answer with the existing version.
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
