//! # rekey-vault
//!
//! A [`SecretStore`](rekey_core::SecretStore) on the KV version 2 secrets
//! engine of HashiCorp Vault or OpenBao, over [`vaultrs`]: versioned values,
//! staging, compare-and-swap promote, idempotent writes and rollback with no
//! lock service beside Vault itself.
//!
//! ## Overview
//!
//! ```no_run
//! use rekey_core::{RotationId, SecretData, SecretPath, SecretStore, SecretStoreExt};
//! use rekey_vault::{VaultConfig, VaultStore};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // VAULT_ADDR + VAULT_TOKEN (or BAO_ADDR + BAO_TOKEN), VAULT_NAMESPACE, VAULT_CACERT.
//! let store = VaultStore::connect(VaultConfig::from_env()?).await?;
//! let path: SecretPath = "apps/billing/db".parse()?;
//!
//! let current = store.current(&path).await?;
//! let candidate = store.stage(&path, SecretData::text("n3w-value"), RotationId::new()).await?;
//! // ... prove the candidate works ...
//! store.promote(&path, &candidate.id, &current.meta.id).await?;
//! # Ok(()) }
//! ```
//!
//! ## Concepts: the contract on KV v2
//!
//! * **Versions** are the KV versions of `<mount>/data/<path>`; a
//!   [`VersionId`](rekey_core::VersionId) is the version number as text.
//!   *Current* is the newest version; *previous* is the newest live (neither
//!   deleted nor destroyed) version older than it.
//! * **Values.** [`SecretData::Text`](rekey_core::SecretData::Text) is stored
//!   as `{"value": "..."}`. Any other map is
//!   [`SecretData::Fields`](rekey_core::SecretData::Fields), one string per
//!   key; so a map whose only key is `value` reads back as text. Non-string
//!   JSON values are [`StoreError::NotSupported`](rekey_core::StoreError).
//!   A rotation of one field writes the whole map back with the other fields
//!   unchanged ([`SecretData::with_field`](rekey_core::SecretData::with_field)).
//! * **Staging** writes the candidate to a sibling location,
//!   `<mount>/data/<staging_prefix>/<path>` (`rekey-staging` by default),
//!   which consumers never read. Vault has no version labels, and a staged
//!   KV version of the secret itself would be what every consumer reads as
//!   "latest", so the candidate must live elsewhere. The staging entry holds
//!   the candidate's map under `candidate` with the rotation id and base
//!   version beside it, in *one* KV write: a candidate can never be seen
//!   without its rotation id (two writes, data then `custom_metadata`, could
//!   be torn apart by a crash). The secret's own data never holds anything
//!   but its value. The pending version's id is `staged-<rotation id>`.
//! * **Promote** of a staged candidate writes its value to the secret with
//!   `options.cas` = the expected current version (a lost race is
//!   [`Conflict`](rekey_core::StoreError::Conflict), decided by Vault), then
//!   deletes the staging entry's metadata, which destroys all its versions.
//!   The new current version has a new KV number, not the staged id (the
//!   contract allows this for stores that promote by copying). Promoting an
//!   older KV version (a rollback) copies its value in the same way.
//! * **Idempotence.** After a write by a rotation, the store records
//!   `rekey-vault.v.<version> = <rotation id>` in the secret's
//!   `custom_metadata` (a JSON merge patch, so nothing else is touched; the
//!   last 10 are kept). A retried `put` whose first attempt succeeded fails
//!   its compare-and-swap; only then does the store read the metadata, find
//!   its own record and return that version. The record also fills
//!   [`VersionMeta::rotation_id`](rekey_core::VersionMeta) of reads (so a
//!   resumed rotation can see that its promote landed), and a retried
//!   `stage` finds its candidate in the staging entry, or, once promoted,
//!   the version recorded for its rotation. `promote` itself is a plain
//!   compare-and-swap, as the contract says: a second promote of the same
//!   candidate is a `Conflict`.
//! * **Discard** deletes the staging entry's metadata: every version is
//!   destroyed, not soft-deleted.
//! * **Metadata** ([`read_metadata`](rekey_core::SecretStore::read_metadata) /
//!   [`write_metadata`](rekey_core::SecretStore::write_metadata)) is the
//!   secret's `custom_metadata`, restricted to keys beginning `rekey.`:
//!   other keys belong to the secret's owners and are never changed. Vault
//!   allows 64 keys per secret, keys up to 128 bytes and values up to 512
//!   bytes; larger input is [`InvalidInput`](rekey_core::StoreError).
//!
//! ## Requests per operation
//!
//! Counted by [`VaultStore::requests_sent`]; each is one HTTP round trip.
//!
//! | operation | requests |
//! |---|---|
//! | read current | 1 |
//! | snapshot (current version, its rotation id, metadata) | 1: a data read with the value, a metadata read without (`rekey status`, the daemon's start-up) |
//! | read previous / by version id | 2 (metadata + version) |
//! | read pending | 1 |
//! | put | 1, +1 with a rotation id (the record); +1 after a CAS failure |
//! | stage | 2 (secret's metadata + staging write with `cas=0`) |
//! | promote a staged candidate | 4 (read candidate, CAS write, record, destroy staging); 3 with the value given (`promote_rotation`) |
//! | rollback (promote an older version) | 2 (read it, CAS write) |
//! | discard | 2 |
//! | list versions | 2 |
//! | read / write metadata | 1 / 2 |
//! | delete | 3 (existence, destroy staging, destroy secret) |
//!
//! Without the `patch` capability each `custom_metadata` change costs one
//! more (see Policy). After a 403, one `lookup-self` request tells a
//! refused token from a missing capability.
//!
//! ## Requests per rotation
//!
//! The rotation calls of the store contract are done natively, so one
//! rotation through the engine (`rotate_secret`, no verifier, no target)
//! costs, by the [`REQUEST_OPS`] names that
//! [`request_counts`](rekey_core::SecretStore::request_counts) reports
//! (pinned by `tests/request_counts.rs`):
//!
//! | strategy | requests | which, and why |
//! |---|---|---|
//! | staged, dual_write | 5 | `kv_read` current (value, version and `custom_metadata`, where the record and a journal live: no metadata read); `kv_write` of the candidate to the staging path with `cas=0` (it carries the rotation id, so it is its own journal); at promotion `kv_write` of the value the engine staged with `cas` = the base version (the candidate is not read back); one `metadata_patch` recording the rotation id and the rotation's record (and clearing a journal); `metadata_delete` of the staging entry (so the next stage's `cas=0` write succeeds and no copy of the value stays behind) |
//! | immediate | 3 | `kv_read`, `kv_write` with `cas`, one `metadata_patch` (rotation id + record) |
//!
//! A required journal (a credential target is changed before promotion)
//! adds one `metadata_patch`; a lost compare-and-swap one `metadata_read`
//! (to tell a retry of our own write from another writer); a leftover
//! candidate of a crashed rotation a read of it before it is replaced.
//! Before these calls were native, the same rotations cost 10 and 5
//! (and 15 and 11 through the CLI before that).
//!
//! The promote writes the value the engine staged
//! ([`PromoteRequest::value`](rekey_core::PromoteRequest)) instead of
//! reading the candidate back. The read would not make promotion safer: the
//! compare-and-swap against the base version already lets exactly one of
//! two racing rotations win, and the only process that may discard or
//! replace a *live* rotation's candidate after a crash-style takeover is
//! one that judged it stale; the engine refuses to promote once a rotation
//! has run for three quarters of the stale-rotation limit
//! ([`RotationError::Overran`](rekey_core::RotationError)), so a candidate
//! taken over is never promoted behind the taker's back. A plain
//! [`promote`](rekey_core::SecretStore::promote) (no value given) still
//! reads the candidate (4 requests).
//!
//! One HTTP client serves a store and its clones (keep-alive connections,
//! TLS set up once per connection); an AppRole login installs a client
//! with the new token on the same connection pool.
//!
//! ## Policy
//!
//! The token needs `create`, `read`, `update` and `delete` on
//! `<mount>/data/<path>` and `<mount>/metadata/<path>`, and the same under
//! `<mount>/data/<staging_prefix>/` and `<mount>/metadata/<staging_prefix>/`.
//! `patch` on the metadata paths is recommended: `custom_metadata` changes
//! are then one JSON merge patch that touches only rekey's keys. Without it
//! the store falls back (after the first refusal) to reading the metadata
//! and POSTing the merged map: one more request per metadata change, and a
//! concurrent change of another key by someone else could be lost.
//!
//! ```hcl
//! path "secret/data/apps/*"                   { capabilities = ["create", "read", "update", "delete"] }
//! path "secret/metadata/apps/*"               { capabilities = ["create", "read", "update", "patch", "delete"] }
//! path "secret/data/rekey-staging/apps/*"     { capabilities = ["create", "read", "update", "delete"] }
//! path "secret/metadata/rekey-staging/apps/*" { capabilities = ["create", "read", "update", "patch", "delete"] }
//! ```
//!
//! ## Errors
//!
//! See [`VaultStore`] and the mapping table in the `error` module: CAS
//! mismatch → `Conflict`; 403 → `PermissionDenied`, or `Unauthenticated`
//! when the token itself is rejected (with AppRole the store logs in again
//! once and retries); 404 → `NotFound`; 429 → `RateLimited`; 5xx, sealed,
//! connection refused and timeouts → `Unavailable` (retryable); a server
//! certificate that cannot be verified → `Other` (not retryable: fix
//! `ca_cert`). No error,
//! log line or `Debug` output holds a token, a secret id or a secret value.
//!
//! ## Logging
//!
//! [`vaultrs`] and the HTTP layer under it, `rustify`, log every answer
//! that is not a success at ERROR level through `tracing`, including the
//! ones this store expects and turns into typed results: a 404 when no
//! candidate is staged or a secret does not exist
//! ([`NotFound`](rekey_core::StoreError::NotFound)), a check-and-set
//! mismatch when another process won a race
//! ([`Conflict`](rekey_core::StoreError::Conflict)). Several processes
//! rotating the same secrets produce thousands of such lines an hour, none
//! of them a fault; what does go wrong comes back to you as a
//! [`StoreError`](rekey_core::StoreError), for your code to log. So turn
//! the two crates off in your subscriber unless `RUST_LOG` names them (as
//! the `rekey` command does), with `tracing-subscriber`'s `env-filter`
//! feature:
//!
//! ```ignore
//! use tracing_subscriber::{EnvFilter, filter::LevelFilter};
//!
//! // Your levels from RUST_LOG (`info` when it is unset or empty) ...
//! let rust_log = std::env::var("RUST_LOG").unwrap_or_default();
//! let filter = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into()).from_env_lossy();
//! // ... plus `vaultrs=off` and `rustify=off`, unless RUST_LOG mentions them
//! // (`RUST_LOG=info,vaultrs=debug` to debug the client itself).
//! let filter = ["vaultrs", "rustify"]
//!     .into_iter()
//!     .filter(|target| !rust_log.contains(target))
//!     .fold(filter, |f, target| f.add_directive(format!("{target}=off").parse().expect("a valid directive")));
//! tracing_subscriber::fmt().with_env_filter(filter).init();
//! ```
//!
//! (Not compiled here: this crate does not depend on `tracing-subscriber`
//! with `env-filter`.)
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

mod codec;
mod config;
mod error;
mod store;
mod write;

pub use config::{
    DEFAULT_APPROLE_MOUNT, DEFAULT_MOUNT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_STAGING_PREFIX, VaultAuth, VaultConfig,
};
pub use store::{
    MAX_CUSTOM_METADATA_KEY_BYTES, MAX_CUSTOM_METADATA_KEYS, MAX_CUSTOM_METADATA_VALUE_BYTES, REQUEST_OPS, VaultStore,
};
