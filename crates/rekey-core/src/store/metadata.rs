//! The metadata kept beside a secret: [`Metadata`], the rules every store
//! enforces ([`check_metadata`]), and key-level changes ([`MetadataPatch`]).

use std::collections::BTreeMap;

use crate::StoreError;

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
/// Stores call it first in [`SecretStore::write_metadata`](super::SecretStore::write_metadata).
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
        check_entry(k, Some(v))?;
    }
    Ok(())
}

/// One key (and the value it is set to) against the rules of
/// [`check_metadata`].
fn check_entry(k: &str, v: Option<&str>) -> Result<(), StoreError> {
    if !k.starts_with(METADATA_KEY_PREFIX) || k.len() == METADATA_KEY_PREFIX.len() {
        return Err(StoreError::invalid(format!(
            "metadata key {k:?} must start with `{METADATA_KEY_PREFIX}` and name something after it"
        )));
    }
    // The common case, every byte ASCII and allowed, without decoding chars.
    let ascii_ok =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'_' | b'.' | b':' | b'/' | b'=' | b'+' | b'-' | b'@');
    if !k.bytes().all(ascii_ok)
        && let Some(c) = k.chars().find(|c| !(c.is_alphanumeric() || " _.:/=+-@".contains(*c)))
    {
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
    if let Some(v) = v
        && v.len() > MAX_METADATA_VALUE_BYTES
    {
        return Err(StoreError::invalid(format!(
            "the value of metadata key {k:?} is {} bytes long; the limit is {MAX_METADATA_VALUE_BYTES}",
            v.len()
        )));
    }
    Ok(())
}

/// Changes to the metadata kept beside a secret: keys to set and keys to
/// remove; every other key is left alone. What
/// [`update_metadata`](super::SecretStore::update_metadata) takes.
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
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MetadataPatch {
    /// Sorted by key, each key once. A patch changes a handful of keys, so
    /// a sorted vector beats a map: one allocation, no tree nodes.
    changes: Vec<(String, Option<String>)>,
}

impl std::fmt::Debug for MetadataPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.changes.iter().map(|(k, v)| (k, v))).finish()
    }
}

impl MetadataPatch {
    /// No changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` (replacing an earlier change of the key).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.put(key.into(), Some(value.into()));
        self
    }

    fn put(&mut self, key: String, value: Option<String>) {
        match self.changes.binary_search_by(|(k, _)| k.as_str().cmp(&key)) {
            Ok(i) => {
                if let Some(slot) = self.changes.get_mut(i) {
                    slot.1 = value;
                }
            }
            Err(i) => self.changes.insert(i, (key, value)),
        }
    }

    /// Removes `key` (replacing an earlier change of the key).
    pub fn remove(&mut self, key: impl Into<String>) -> &mut Self {
        self.put(key.into(), None);
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

    /// Applies the changes to `metadata`, moving keys and values instead of
    /// copying them.
    pub fn apply_owned(self, metadata: &mut Metadata) {
        for (k, v) in self.changes {
            match v {
                Some(v) => {
                    metadata.insert(k, v);
                }
                None => {
                    metadata.remove(&k);
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
        if self.changes.is_empty() {
            self.changes = other.changes;
            return;
        }
        for (k, v) in other.changes {
            self.put(k, v);
        }
    }
}

/// Checks a patch against the rules every store enforces for metadata
/// ([`check_metadata`]): each key (set or removed) and each value set.
/// Whether the result stays within [`MAX_METADATA_ENTRIES`] depends on the
/// keys already there; stores check that when they apply the patch.
pub fn check_metadata_patch(patch: &MetadataPatch) -> Result<(), StoreError> {
    if patch.len() > MAX_METADATA_ENTRIES {
        return Err(StoreError::invalid(format!(
            "a metadata patch changes {} keys; a secret holds at most {MAX_METADATA_ENTRIES}",
            patch.len()
        )));
    }
    for (k, v) in patch.iter() {
        check_entry(k, v)?;
    }
    Ok(())
}

/// How many entries `metadata` holds once `patch` is applied.
pub fn entries_after(metadata: &Metadata, patch: &MetadataPatch) -> usize {
    let mut n = metadata.len();
    for (k, v) in patch.iter() {
        match (metadata.contains_key(k), v.is_some()) {
            (false, true) => n += 1,
            (true, false) => n -= 1,
            _ => {}
        }
    }
    n
}
