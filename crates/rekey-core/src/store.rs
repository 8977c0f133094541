//! The store contract: what every secret backend must do.
//!
//! A rotation is only as safe as the store's primitives. [`SecretStore`] is the
//! small set of methods a backend writes; [`SecretStoreExt`] adds conveniences
//! on top and is implemented for every store automatically.
//!
//! # Semantics every store shares
//!
//! * **Versions.** Every write makes a new version with a store-assigned
//!   [`VersionId`]. The *current* version is what consumers read; the version
//!   that was current before it is the *previous* one.
//! * **Staging.** [`stage`](SecretStore::stage) writes a candidate that is
//!   *pending*, never current. A store holds at most one pending candidate per
//!   secret: staging with a new rotation id replaces an older candidate.
//! * **Atomic promote with compare-and-swap.**
//!   [`promote`](SecretStore::promote) makes a version current *only if* the
//!   current version is still the expected one; otherwise it returns
//!   [`StoreError::Conflict`] and changes nothing. This is what lets several
//!   rekey processes share one store with no lock service.
//! * **Idempotence.** Writes of a rotation carry its [`RotationId`]: repeating
//!   a `put` or `stage` with the same id returns the version the first call
//!   made instead of creating a second one.
//! * **Rollback.** Promoting the previous version (with CAS against the
//!   current one) makes the old value current again.
//!
//! # Rules for the corner cases
//!
//! * Every operation on a secret that does not exist (`read`, `stage`,
//!   `promote`, `discard`, `list_versions`, `read_metadata`,
//!   `write_metadata`, `delete`, `put` with [`PutMode::IfCurrent`]) is
//!   [`StoreError::NotFound`].
//! * A write that carries a rotation id records it: the version's
//!   [`VersionMeta::rotation_id`] is `Some` from then on (a store that copies
//!   on promote records the rotation id on the copy), so a caller whose
//!   response was lost can recognise its own write.
//! * `stage` with the id of a rotation whose candidate was already promoted
//!   returns the version that rotation made (now current) and writes nothing;
//!   `put` with the id of a staged rotation returns that pending version and
//!   does not make it current.
//! * A repeated `promote` whose first attempt succeeded but whose response was
//!   lost gets [`StoreError::Conflict`]; compare the current version's
//!   `rotation_id` with your own to tell that you won.
//! * `discard` of a version that is neither pending nor current succeeds and
//!   changes nothing.
//! * Metadata keys start with `rekey.` and use only the characters AWS tags
//!   allow (letters, digits, spaces and `_ . : / = + - @`); at most 50
//!   entries, keys up to 128 bytes, values up to 256 bytes (the strictest
//!   backend's limits). Anything else is [`StoreError::InvalidInput`].
//!
//! # Optimistic concurrency
//!
//! ```
//! # use rekey_core::{SecretStore, SecretStoreExt, SecretPath, SecretData, PutMode, StoreError};
//! # async fn demo(store: &dyn SecretStore, path: &SecretPath) -> Result<(), StoreError> {
//! loop {
//!     let current = store.read(path, &rekey_core::VersionSelector::Current).await?;
//!     let next = SecretData::text("a new value computed from the current one");
//!     match store.put(path, next, rekey_core::PutOptions::if_current(current.meta.id.clone())).await {
//!         Ok(_) => break Ok(()),
//!         // Somebody else wrote in between: re-read and re-plan.
//!         Err(StoreError::Conflict { .. }) => continue,
//!         Err(e) => break Err(e),
//!     }
//! }
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{SecretData, SecretPath, StoreError};

/// A store-assigned, opaque version identifier (a KV version number on
/// Vault, a `VersionId` on AWS, ...). Never derived from the secret value.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionId(String);

impl VersionId {
    /// Wraps a store's id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionId({})", self.0)
    }
}

/// Identifies one rotation; carried by every write the rotation makes so that
/// a retried or resumed step is idempotent (AWS: `ClientRequestToken`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RotationId(Uuid);

impl RotationId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
    /// Wraps an existing UUID.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }
    /// The UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
    /// Parses the hyphenated text form.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        Uuid::parse_str(s).map(Self).map_err(|_| StoreError::invalid(format!("not a rotation id: {s:?}")))
    }
}

impl Default for RotationId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RotationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for RotationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RotationId({})", self.0.hyphenated())
    }
}

/// Which stages a version holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stages {
    /// What consumers read.
    pub current: bool,
    /// What was current before the current version.
    pub previous: bool,
    /// A staged candidate, not yet current.
    pub pending: bool,
}

/// Metadata of one version (no value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    /// The store's id for this version.
    pub id: VersionId,
    /// When the store created it.
    pub created_at: DateTime<Utc>,
    /// The stages it holds.
    pub stages: Stages,
    /// The rotation that wrote it, when the store recorded one.
    pub rotation_id: Option<RotationId>,
}

/// One version: metadata and value. `Debug` never shows the value.
#[derive(Clone, Debug)]
pub struct SecretVersion {
    /// Its metadata.
    pub meta: VersionMeta,
    /// Its value.
    pub data: SecretData,
}

/// Which version to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionSelector {
    /// What consumers read.
    Current,
    /// What was current before.
    Previous,
    /// The staged candidate, if any.
    Pending,
    /// One version by id.
    Id(VersionId),
}

/// How a [`put`](SecretStore::put) treats the existing secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Create the secret; [`StoreError::AlreadyExists`] if it exists.
    Create,
    /// Write a new current version only if the current version is this one;
    /// otherwise [`StoreError::Conflict`] and nothing changes.
    IfCurrent(VersionId),
    /// Write a new current version whatever is current (creating the secret if
    /// needed). For seeding and tests; rotations never use it.
    Overwrite,
}

/// Options of a [`put`](SecretStore::put).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOptions {
    /// The concurrency condition.
    pub mode: PutMode,
    /// The rotation writing, for idempotence: a second put with the same id
    /// returns the version the first one made.
    pub rotation_id: Option<RotationId>,
}

impl PutOptions {
    /// `PutMode::Create`, no rotation id.
    pub fn create() -> Self {
        Self { mode: PutMode::Create, rotation_id: None }
    }
    /// `PutMode::Overwrite`, no rotation id.
    pub fn overwrite() -> Self {
        Self { mode: PutMode::Overwrite, rotation_id: None }
    }
    /// `PutMode::IfCurrent(expected)`, no rotation id.
    pub fn if_current(expected: VersionId) -> Self {
        Self { mode: PutMode::IfCurrent(expected), rotation_id: None }
    }
    /// Sets the rotation id.
    pub fn with_rotation(mut self, id: RotationId) -> Self {
        self.rotation_id = Some(id);
        self
    }
}

/// Small string key/value metadata kept beside a secret (not in its value):
/// rekey's own bookkeeping (rotation steps, dual-write deadlines, consumer
/// acknowledgements). Keys start with `rekey.`; stores limit the number and
/// size of entries (Vault: `custom_metadata`; AWS: tags).
pub type Metadata = BTreeMap<String, String>;

/// Every metadata key starts with this, and has more after it: the stores
/// keep rekey's entries apart from their owners' (Vault `custom_metadata`,
/// AWS tags).
pub const METADATA_KEY_PREFIX: &str = "rekey.";

/// The most metadata entries one secret may carry (AWS allows 50 tags).
pub const MAX_METADATA_ENTRIES: usize = 50;

/// The longest metadata key, in bytes (AWS tag keys).
pub const MAX_METADATA_KEY_BYTES: usize = 128;

/// The longest metadata value, in bytes (AWS tag values).
pub const MAX_METADATA_VALUE_BYTES: usize = 256;

/// Checks metadata against the rules every store enforces (the strictest
/// backend's limits, so metadata valid on one store is valid on all): keys
/// start with [`METADATA_KEY_PREFIX`] and use only what AWS tags allow, at
/// most [`MAX_METADATA_ENTRIES`] entries, keys up to
/// [`MAX_METADATA_KEY_BYTES`], values up to [`MAX_METADATA_VALUE_BYTES`].
/// Stores call it first in [`SecretStore::write_metadata`].
///
/// ```
/// use rekey_core::{check_metadata, Metadata, StoreError};
/// let ok: Metadata = [("rekey.owner".to_owned(), "team-a".to_owned())].into();
/// assert!(check_metadata(&ok).is_ok());
/// let foreign: Metadata = [("owner".to_owned(), "team-a".to_owned())].into();
/// assert!(matches!(check_metadata(&foreign), Err(StoreError::InvalidInput { .. })));
/// ```
pub fn check_metadata(metadata: &Metadata) -> Result<(), StoreError> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(StoreError::invalid(format!(
            "{} metadata entries; the limit is {MAX_METADATA_ENTRIES}",
            metadata.len()
        )));
    }
    for (k, v) in metadata {
        if !k.starts_with(METADATA_KEY_PREFIX) || k.len() == METADATA_KEY_PREFIX.len() {
            return Err(StoreError::invalid(format!(
                "metadata key {k:?} must start with `{METADATA_KEY_PREFIX}` and name something after it"
            )));
        }
        if let Some(c) = k.chars().find(|c| !(c.is_alphanumeric() || " _.:/=+-@".contains(*c))) {
            return Err(StoreError::invalid(format!(
                "metadata key {k:?} has the character {c:?}; keys may hold letters, digits, spaces and `_.:/=+-@` \
                 (what AWS tags allow)"
            )));
        }
        if k.len() > MAX_METADATA_KEY_BYTES {
            return Err(StoreError::invalid(format!(
                "metadata key {k:?} is {} bytes long; the limit is {MAX_METADATA_KEY_BYTES}",
                k.len()
            )));
        }
        if v.len() > MAX_METADATA_VALUE_BYTES {
            return Err(StoreError::invalid(format!(
                "the value of metadata key {k:?} is {} bytes long; the limit is {MAX_METADATA_VALUE_BYTES}",
                v.len()
            )));
        }
    }
    Ok(())
}

/// Changes to the metadata kept beside a secret: keys to set and keys to
/// remove; every other key is left alone. What
/// [`update_metadata`](SecretStore::update_metadata) takes.
///
/// Writers that change different keys of one secret at the same time do
/// not undo each other's changes (last writer wins per key, not for the
/// whole map), which is why the engine writes metadata only as patches.
///
/// ```
/// use rekey_core::{Metadata, MetadataPatch};
/// let mut m: Metadata = [("rekey.a".to_owned(), "1".to_owned()), ("rekey.b".to_owned(), "2".to_owned())].into();
/// let mut p = MetadataPatch::new();
/// p.set("rekey.c", "3").remove("rekey.a");
/// p.apply(&mut m);
/// assert_eq!(m.keys().collect::<Vec<_>>(), ["rekey.b", "rekey.c"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataPatch {
    changes: BTreeMap<String, Option<String>>,
}

impl MetadataPatch {
    /// No changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` (replacing an earlier change of the key).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.changes.insert(key.into(), Some(value.into()));
        self
    }

    /// Removes `key` (replacing an earlier change of the key).
    pub fn remove(&mut self, key: impl Into<String>) -> &mut Self {
        self.changes.insert(key.into(), None);
        self
    }

    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// How many keys change.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// The changes: each key with its new value, or `None` to remove it.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.changes.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// The keys to set, with their values.
    pub fn sets(&self) -> impl Iterator<Item = (&str, &str)> {
        self.changes.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_deref()?)))
    }

    /// The keys to remove.
    pub fn removals(&self) -> impl Iterator<Item = &str> {
        self.changes.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.as_str())
    }

    /// Applies the changes to `metadata`.
    pub fn apply(&self, metadata: &mut Metadata) {
        for (k, v) in &self.changes {
            match v {
                Some(v) => {
                    metadata.insert(k.clone(), v.clone());
                }
                None => {
                    metadata.remove(k);
                }
            }
        }
    }

    /// The changes that turn `before` into `after`: keys added or changed
    /// in `after` are set, keys missing from it are removed.
    pub fn diff(before: &Metadata, after: &Metadata) -> Self {
        let mut p = Self::new();
        for (k, v) in after {
            if before.get(k) != Some(v) {
                p.set(k.clone(), v.clone());
            }
        }
        for k in before.keys().filter(|k| !after.contains_key(*k)) {
            p.remove(k.clone());
        }
        p
    }

    /// Adds `other`'s changes (its changes win for keys both change).
    pub fn extend(&mut self, other: MetadataPatch) {
        self.changes.extend(other.changes);
    }
}

/// Checks a patch against the rules every store enforces for metadata
/// ([`check_metadata`]): each key (set or removed) and each value set.
/// Whether the result stays within [`MAX_METADATA_ENTRIES`] depends on the
/// keys already there; stores check that when they apply the patch.
pub fn check_metadata_patch(patch: &MetadataPatch) -> Result<(), StoreError> {
    let as_map: Metadata = patch.iter().map(|(k, v)| (k.to_owned(), v.unwrap_or("").to_owned())).collect();
    if as_map.len() > MAX_METADATA_ENTRIES {
        return Err(StoreError::invalid(format!(
            "a metadata patch changes {} keys; a secret holds at most {MAX_METADATA_ENTRIES}",
            as_map.len()
        )));
    }
    check_metadata(&as_map)
}

/// A secret backend. See the [module docs](self) for the semantics every
/// implementation shares; `rekey-testkit`'s conformance suite checks them.
///
/// Object safe: stores are chosen at run time as `Arc<dyn SecretStore>`.
#[async_trait]
pub trait SecretStore: fmt::Debug + Send + Sync + 'static {
    /// Writes a new version that becomes current (see [`PutMode`]).
    ///
    /// With `opts.rotation_id` set, a repeated call with the same id returns
    /// the version the first call made and writes nothing.
    async fn put(&self, path: &SecretPath, data: SecretData, opts: PutOptions) -> Result<VersionMeta, StoreError>;

    /// Reads one version. [`StoreError::NotFound`] if the secret or that
    /// version does not exist (e.g. `Previous` of a secret with one version,
    /// `Pending` with nothing staged).
    async fn read(&self, path: &SecretPath, selector: &VersionSelector) -> Result<SecretVersion, StoreError>;

    /// Stages a candidate that is pending and **not** current. The secret
    /// must exist. Staging again with the same `rotation_id` returns the
    /// existing candidate unchanged; staging with another id replaces any
    /// older candidate.
    async fn stage(
        &self,
        path: &SecretPath,
        data: SecretData,
        rotation_id: RotationId,
    ) -> Result<VersionMeta, StoreError>;

    /// Atomically makes `version` current if the current version is
    /// `expected_current`; the replaced version becomes previous, and if
    /// `version` was pending, nothing is pending afterwards. A lost race is
    /// [`StoreError::Conflict`] and changes nothing. Returns the metadata of
    /// the new current version, whose id may differ from `version` on stores
    /// that promote by copying (Vault KV v2).
    ///
    /// Promoting the previous version is a rollback.
    async fn promote(
        &self,
        path: &SecretPath,
        version: &VersionId,
        expected_current: &VersionId,
    ) -> Result<VersionMeta, StoreError>;

    /// Removes a pending candidate for good. Discarding a candidate that is
    /// no longer there succeeds (so a resumed clean-up is idempotent);
    /// discarding the current version is [`StoreError::InvalidInput`].
    async fn discard(&self, path: &SecretPath, version: &VersionId) -> Result<(), StoreError>;

    /// All versions the store keeps, oldest first, with their stages.
    async fn list_versions(&self, path: &SecretPath) -> Result<Vec<VersionMeta>, StoreError>;

    /// The metadata kept beside the secret (empty if none).
    async fn read_metadata(&self, path: &SecretPath) -> Result<Metadata, StoreError>;

    /// Replaces the metadata kept beside the secret. Last writer wins: put
    /// nothing here that needs compare-and-swap. Prefer
    /// [`update_metadata`](Self::update_metadata), which does not undo a
    /// concurrent writer's changes to other keys.
    async fn write_metadata(&self, path: &SecretPath, metadata: Metadata) -> Result<(), StoreError>;

    /// Sets and removes the keys `patch` names, leaving every other key
    /// alone: concurrent updates of different keys all survive (last writer
    /// wins per key). [`StoreError::NotFound`] if the secret does not exist;
    /// [`StoreError::InvalidInput`] (nothing changed) for a key or value the
    /// rules of [`check_metadata_patch`] refuse, or a result over a store's
    /// limit on entries.
    ///
    /// The default reads the metadata and writes it back merged (two calls,
    /// not atomic); stores that can apply a patch in one call (Vault's
    /// merge-patch, AWS tags, memory) override it.
    async fn update_metadata(&self, path: &SecretPath, patch: MetadataPatch) -> Result<(), StoreError> {
        check_metadata_patch(&patch)?;
        let mut metadata = self.read_metadata(path).await?;
        patch.apply(&mut metadata);
        self.write_metadata(path, metadata).await
    }

    /// Deletes the secret with all its versions and metadata.
    async fn delete(&self, path: &SecretPath) -> Result<(), StoreError>;
}

/// `dyn SecretStore`, the form stores are passed around in.
pub type DynSecretStore = dyn SecretStore;

/// Conveniences over any [`SecretStore`]; implemented for every store, never
/// by hand.
#[async_trait]
pub trait SecretStoreExt: SecretStore {
    /// Reads the current version.
    async fn current(&self, path: &SecretPath) -> Result<SecretVersion, StoreError> {
        self.read(path, &VersionSelector::Current).await
    }

    /// Reads the current value of a single-text secret: the one call to get
    /// what consumers use. A secret of several fields is
    /// [`StoreError::InvalidInput`] naming its fields (read
    /// [`current`](Self::current) and pick one with
    /// [`SecretData::field`]).
    ///
    /// ```
    /// # use rekey_core::{SecretStoreExt, SecretData, ExposeSecret, SecretPath, StoreError};
    /// # async fn demo(store: &dyn rekey_core::SecretStore, path: &SecretPath) -> Result<(), StoreError> {
    /// let api_key = store.current_text(path).await?;
    /// let header = format!("Bearer {}", api_key.expose_secret());
    /// # let _ = header; Ok(()) }
    /// ```
    async fn current_text(&self, path: &SecretPath) -> Result<secrecy::SecretString, StoreError> {
        match self.current(path).await?.data {
            SecretData::Text(s) => Ok(s),
            fields @ SecretData::Fields(_) => Err(StoreError::invalid(format!(
                "{path} holds several fields ({}), not one text value: read one field of `current`",
                fields.field_names().collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Reads the previous version.
    async fn previous(&self, path: &SecretPath) -> Result<SecretVersion, StoreError> {
        self.read(path, &VersionSelector::Previous).await
    }

    /// Reads the pending candidate, `None` when nothing is staged.
    async fn pending(&self, path: &SecretPath) -> Result<Option<SecretVersion>, StoreError> {
        match self.read(path, &VersionSelector::Pending).await {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a secret with its first value.
    async fn create(&self, path: &SecretPath, data: SecretData) -> Result<VersionMeta, StoreError> {
        self.put(path, data, PutOptions::create()).await
    }

    /// Makes the last value that was current and good current again, with
    /// compare-and-swap against the current version — never a candidate
    /// that failed verification or was rolled back (see
    /// [`record::rollback_plan`](crate::record::rollback_plan)). Records the
    /// rollback beside the secret. Returns the new current version;
    /// [`StoreError::NotFound`] (saying why) when there is no earlier good
    /// version. [`record::rollback_to_last_good`](crate::record::rollback_to_last_good)
    /// returns more detail.
    async fn rollback(&self, path: &SecretPath) -> Result<VersionMeta, StoreError> {
        let r = crate::record::rollback_to_last_good(self, path, chrono::Utc::now(), "manual").await?;
        Ok(r.current)
    }
}

impl<T: SecretStore + ?Sized> SecretStoreExt for T {}

#[async_trait]
impl<T: SecretStore + ?Sized> SecretStore for std::sync::Arc<T> {
    async fn put(&self, path: &SecretPath, data: SecretData, opts: PutOptions) -> Result<VersionMeta, StoreError> {
        (**self).put(path, data, opts).await
    }
    async fn read(&self, path: &SecretPath, selector: &VersionSelector) -> Result<SecretVersion, StoreError> {
        (**self).read(path, selector).await
    }
    async fn stage(
        &self,
        path: &SecretPath,
        data: SecretData,
        rotation_id: RotationId,
    ) -> Result<VersionMeta, StoreError> {
        (**self).stage(path, data, rotation_id).await
    }
    async fn promote(
        &self,
        path: &SecretPath,
        version: &VersionId,
        expected_current: &VersionId,
    ) -> Result<VersionMeta, StoreError> {
        (**self).promote(path, version, expected_current).await
    }
    async fn discard(&self, path: &SecretPath, version: &VersionId) -> Result<(), StoreError> {
        (**self).discard(path, version).await
    }
    async fn list_versions(&self, path: &SecretPath) -> Result<Vec<VersionMeta>, StoreError> {
        (**self).list_versions(path).await
    }
    async fn read_metadata(&self, path: &SecretPath) -> Result<Metadata, StoreError> {
        (**self).read_metadata(path).await
    }
    async fn write_metadata(&self, path: &SecretPath, metadata: Metadata) -> Result<(), StoreError> {
        (**self).write_metadata(path, metadata).await
    }
    async fn update_metadata(&self, path: &SecretPath, patch: MetadataPatch) -> Result<(), StoreError> {
        (**self).update_metadata(path, patch).await
    }
    async fn delete(&self, path: &SecretPath) -> Result<(), StoreError> {
        (**self).delete(path).await
    }
}
