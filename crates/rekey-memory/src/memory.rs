//! [`MemoryStore`], the in-memory reference implementation of the store
//! contract.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rekey_core::{
    JOURNAL_KEY, Metadata, MetadataPatch, PromoteRequest, PutMode, PutOptions, RecordWrite, RequestCounts, RotationId,
    SecretData, SecretPath, SecretStore, SecretVersion, Snapshot, StageOutcome, StageRequest, Staged, Stages,
    StoreError, VersionId, VersionMeta, VersionSelector, check_whole_value,
};
use rustc_hash::{FxBuildHasher, FxHasher};

/// The source of "now" for version creation times.
///
/// Engine tests pass a manual clock here so that schedules derived from
/// version creation times are deterministic.
pub type NowFn = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How many versions of one secret a [`MemoryStore`] keeps by default (as
/// AWS Secrets Manager does). The current, previous and pending versions are
/// never evicted, whatever the cap.
pub const DEFAULT_MAX_VERSIONS: usize = 100;

/// The largest value accepted, in bytes (field names included): AWS Secrets
/// Manager's limit, the smallest of the supported stores.
pub const MAX_VALUE_BYTES: usize = 65_536;

pub use rekey_core::store::{
    MAX_METADATA_ENTRIES, MAX_METADATA_KEY_BYTES, MAX_METADATA_VALUE_BYTES, METADATA_KEY_PREFIX, check_metadata,
    check_metadata_patch,
};

/// Number of independently locked shards. Every operation touches one secret,
/// so it locks exactly one shard: operations on one secret are serialised
/// (atomic), operations on different secrets mostly run in parallel.
const SHARDS: usize = 16;
const _: () = assert!(SHARDS.is_power_of_two(), "MemoryStore::shard takes the top bits of a hash");

/// One stored version.
struct Version {
    id: VersionId,
    created_at: DateTime<Utc>,
    rotation_id: Option<RotationId>,
    data: SecretData,
}

/// One secret: its versions (oldest first) and which of them hold a stage.
struct Secret {
    versions: VecDeque<Version>,
    current: VersionId,
    previous: Option<VersionId>,
    pending: Option<VersionId>,
    metadata: Metadata,
    /// The key of the journal entry, kept when a record removes the entry
    /// so that the next journal line is written without an allocation.
    journal_key: Option<String>,
}

impl Secret {
    fn new(first: Version) -> Self {
        let current = first.id.clone();
        Self {
            versions: VecDeque::from([first]),
            current,
            previous: None,
            pending: None,
            metadata: Metadata::new(),
            journal_key: None,
        }
    }

    fn stages(&self, id: &VersionId) -> Stages {
        Stages {
            current: self.current == *id,
            previous: self.previous.as_ref() == Some(id),
            pending: self.pending.as_ref() == Some(id),
        }
    }

    fn meta(&self, v: &Version) -> VersionMeta {
        VersionMeta {
            id: v.id.clone(),
            created_at: v.created_at,
            stages: self.stages(&v.id),
            rotation_id: v.rotation_id,
        }
    }

    fn version(&self, v: &Version) -> SecretVersion {
        SecretVersion { meta: self.meta(v), data: v.data.clone() }
    }

    /// Recent versions are the ones looked up most: search from the back.
    fn position(&self, id: &VersionId) -> Option<usize> {
        self.versions.iter().rposition(|v| v.id == *id)
    }

    fn find(&self, id: &VersionId) -> Option<&Version> {
        self.position(id).and_then(|i| self.versions.get(i))
    }

    fn find_rotation(&self, rotation: RotationId) -> Option<&Version> {
        self.versions.iter().rev().find(|v| v.rotation_id == Some(rotation))
    }

    /// `now`, but never earlier than the newest version, so creation times
    /// are non-decreasing even when a manual clock is set back.
    fn created_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.versions.back().map_or(now, |v| v.created_at.max(now))
    }

    fn remove(&mut self, id: &VersionId) {
        if let Some(i) = self.position(id) {
            self.versions.remove(i);
        }
    }

    /// Appends a version, then evicts the oldest unlabelled versions above
    /// the cap.
    fn push(&mut self, v: Version, max_versions: usize) {
        self.versions.push_back(v);
        while self.versions.len() > max_versions {
            let evict = self.versions.iter().position(|v| {
                v.id != self.current && self.previous.as_ref() != Some(&v.id) && self.pending.as_ref() != Some(&v.id)
            });
            match evict {
                Some(i) => {
                    self.versions.remove(i);
                }
                None => break,
            }
        }
    }

    /// Stages `data` as the pending candidate of `rotation_id` (the version
    /// that rotation already wrote, when there is one): the candidate, and
    /// the older candidate of another rotation it replaced, if any.
    fn stage(
        &mut self,
        now: DateTime<Utc>,
        data: SecretData,
        rotation_id: RotationId,
        max_versions: usize,
    ) -> (VersionMeta, Option<VersionMeta>) {
        if let Some(v) = self.find_rotation(rotation_id) {
            return (self.meta(v), None);
        }
        let replaced = self.pending.as_ref().and_then(|id| self.find(id)).map(|v| self.meta(v));
        if let Some(older) = self.pending.take() {
            self.remove(&older);
        }
        let v = new_version(self.created_at(now), data, Some(rotation_id));
        let meta = VersionMeta {
            id: v.id.clone(),
            created_at: v.created_at,
            stages: Stages { pending: true, ..Stages::default() },
            rotation_id: v.rotation_id,
        };
        self.pending = Some(v.id.clone());
        self.push(v, max_versions);
        (meta, replaced)
    }

    /// Whether `version` can be promoted now, expecting `expected_current`:
    /// it exists, and the compare-and-swap holds.
    fn check_promote(
        &self,
        path: &SecretPath,
        version: &VersionId,
        expected_current: &VersionId,
    ) -> Result<(), StoreError> {
        if self.position(version).is_none() {
            return Err(missing_version(path, version));
        }
        if self.current != *expected_current {
            return Err(StoreError::Conflict {
                path: path.as_str().to_owned(),
                expected: Some(expected_current.clone()),
                actual: Some(self.current.clone()),
            });
        }
        Ok(())
    }

    /// Makes `version` (checked by [`check_promote`](Self::check_promote))
    /// current.
    fn promote(&mut self, version: &VersionId) -> VersionMeta {
        if self.current != *version {
            if self.pending.as_ref() == Some(version) {
                self.pending = None;
            }
            self.previous = Some(std::mem::replace(&mut self.current, version.clone()));
        }
        self.current_meta()
    }

    /// Sets or removes one metadata key, overwriting a value in place.
    fn set_or_remove(&mut self, key: &str, value: Option<&str>) {
        match (value, self.metadata.get_mut(key)) {
            (Some(v), Some(old)) => {
                old.clear();
                old.push_str(v);
            }
            (Some(v), None) => {
                self.metadata.insert(key.to_owned(), v.to_owned());
            }
            (None, _) => {
                if let Some((k, _)) = self.metadata.remove_entry(key)
                    && k == JOURNAL_KEY
                {
                    self.journal_key = Some(k);
                }
            }
        }
    }

    /// Writes the journal line (a checked value).
    fn set_journal(&mut self, line: String) {
        match self.metadata.get_mut(JOURNAL_KEY) {
            Some(old) => *old = line,
            None => {
                let key = self.journal_key.take().unwrap_or_else(|| JOURNAL_KEY.to_owned());
                self.metadata.insert(key, line);
            }
        }
    }

    /// Adds `v` as the new current version; the old current one becomes
    /// previous. A pending candidate stays pending.
    fn push_current(&mut self, v: Version, max_versions: usize) -> VersionMeta {
        let id = v.id.clone();
        self.previous = Some(std::mem::replace(&mut self.current, id));
        self.push(v, max_versions);
        self.current_meta()
    }

    fn current_meta(&self) -> VersionMeta {
        match self.find(&self.current) {
            Some(v) => self.meta(v),
            // Unreachable by construction (the current version is never
            // evicted); answer with what is known rather than panic.
            None => VersionMeta {
                id: self.current.clone(),
                created_at: DateTime::<Utc>::MIN_UTC,
                stages: Stages { current: true, ..Stages::default() },
                rotation_id: None,
            },
        }
    }
}

/// The secrets of one shard. FxHash, as the engine's own maps of paths:
/// paths come from configuration, not from untrusted callers.
type Shard = HashMap<SecretPath, Secret, FxBuildHasher>;

/// An in-memory [`SecretStore`]: the reference implementation of the store
/// contract that every other backend is compared with.
///
/// * **Versions** get the text of the writing rotation's id as their
///   [`VersionId`] when the write carries one (as AWS uses the
///   `ClientRequestToken`), otherwise a fresh UUID.
/// * **Creation times** come from a clock ([`MemoryStore::with_clock`],
///   default [`Utc::now`]) and never decrease across the versions of one
///   secret.
/// * **History** is capped at [`DEFAULT_MAX_VERSIONS`] versions per secret
///   (see [`MemoryStore::with_max_versions`]); the oldest versions that are
///   neither current, previous nor pending are evicted first. Idempotence by
///   rotation id only reaches versions still kept.
/// * **Atomicity**: every operation runs under the lock of the one shard that
///   holds its secret, so each is atomic, and no operation scans other
///   secrets.
/// * **Limits** like the strictest real store: values up to
///   [`MAX_VALUE_BYTES`]; at most [`MAX_METADATA_ENTRIES`] metadata entries,
///   keys starting with [`METADATA_KEY_PREFIX`], made of the characters AWS
///   tags allow, up to [`MAX_METADATA_KEY_BYTES`], and values up to
///   [`MAX_METADATA_VALUE_BYTES`] bytes. Anything else is
///   [`StoreError::InvalidInput`].
///
/// Choices where the contract leaves room (each what AWS does):
/// staging with a new rotation id drops the older candidate for good;
/// [`discard`](SecretStore::discard) of a version that is neither pending nor
/// current is a no-op; reading or writing metadata, listing versions,
/// discarding and deleting on a secret that does not exist are
/// [`StoreError::NotFound`].
///
/// `Debug` shows counts only, never a value.
///
/// ```
/// use rekey_core::{SecretData, SecretPath, SecretStore, SecretStoreExt, RotationId, ExposeSecret};
/// use rekey_memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryStore::new();
/// let path: SecretPath = "apps/billing/db-password".parse()?;
///
/// let v1 = store.create(&path, SecretData::text("old")).await?;
/// let candidate = store.stage(&path, SecretData::text("new"), RotationId::new()).await?;
/// // Staging never changes what consumers read.
/// assert_eq!(store.current(&path).await?.meta.id, v1.id);
///
/// // Compare-and-swap: make the candidate current only if v1 still is.
/// let v2 = store.promote(&path, &candidate.id, &v1.id).await?;
/// assert_eq!(store.current(&path).await?.data.as_text().map(|s| s.expose_secret().to_owned()), Some("new".into()));
///
/// // A second promoter that still expects v1 loses the race.
/// assert!(matches!(store.promote(&path, &v1.id, &v1.id).await, Err(rekey_core::StoreError::Conflict { .. })));
///
/// // Rolling back makes the old value current again.
/// store.rollback(&path).await?;
/// assert_eq!(store.current(&path).await?.meta.id, v1.id);
/// # let _ = v2;
/// # Ok(()) }
/// ```
pub struct MemoryStore {
    shards: [Mutex<Shard>; SHARDS],
    now: NowFn,
    max_versions: usize,
    /// Calls by operation ([`OPS`]), for [`SecretStore::request_counts`].
    calls: [std::sync::atomic::AtomicU64; OPS.len()],
}

/// The operations the store counts, in the order of its counters.
const OPS: [&str; 13] = [
    "put",
    "read",
    "stage",
    "promote",
    "discard",
    "list_versions",
    "read_metadata",
    "write_metadata",
    "update_metadata",
    "snapshot",
    "stage_rotation",
    "promote_rotation",
    "put_rotation",
];

impl MemoryStore {
    /// An empty store using the system clock and the default version cap.
    pub fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
            now: Arc::new(Utc::now),
            max_versions: DEFAULT_MAX_VERSIONS,
            calls: std::array::from_fn(|_| std::sync::atomic::AtomicU64::new(0)),
        }
    }

    fn count(&self, op: usize) {
        self.calls[op].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Uses `now` as the clock for version creation times (a manual clock in
    /// tests).
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use rekey_memory::MemoryStore;
    /// let t0 = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    /// let store = MemoryStore::new().with_clock(move || t0);
    /// # let _ = store;
    /// ```
    pub fn with_clock(mut self, now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.now = Arc::new(now);
        self
    }

    /// Takes creation times from an engine [`Clock`](rekey_core::Clock) (a
    /// [`ManualClock`](rekey_core::ManualClock) in tests), the same one the
    /// rotation manager uses.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rekey_core::{Clock, ManualClock};
    /// use rekey_memory::MemoryStore;
    /// let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    /// let store = MemoryStore::new().with_clock_source(clock.clone());
    /// # let _ = store;
    /// ```
    pub fn with_clock_source(self, clock: Arc<dyn rekey_core::Clock>) -> Self {
        self.with_clock(move || clock.now())
    }

    /// Uses a shared clock function (see [`NowFn`]).
    pub fn with_now_fn(mut self, now: NowFn) -> Self {
        self.now = now;
        self
    }

    /// Keeps at most `max` versions per secret (at least 1). The current,
    /// previous and pending versions are kept even beyond the cap.
    pub fn with_max_versions(mut self, max: usize) -> Self {
        self.max_versions = max.max(1);
        self
    }

    /// The number of secrets stored.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether no secret is stored.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.lock().is_empty())
    }

    fn shard(&self, path: &SecretPath) -> parking_lot::MutexGuard<'_, Shard> {
        // The shard maps hash the same way; mix the hash so that the bits
        // choosing the shard are not the ones the maps' buckets use.
        let mut h = FxHasher::default();
        path.hash(&mut h);
        let mixed = u128::from(h.finish()) * u128::from(SHARD_MIX);
        let folded = (mixed >> 64) as u64 ^ mixed as u64;
        // The shift keeps the index in range of the fixed-size array.
        self.shards[(folded >> (u64::BITS - SHARDS.trailing_zeros())) as usize].lock()
    }
}

/// An odd 64-bit constant (2^64 / φ) for [`MemoryStore::shard`].
const SHARD_MIX: u64 = 0x9e37_79b9_7f4a_7c15;

/// A new version named by the rotation that writes it, or by a fresh UUID.
fn new_version(created_at: DateTime<Utc>, data: SecretData, rotation_id: Option<RotationId>) -> Version {
    let id = match rotation_id {
        Some(r) => VersionId::of_rotation(r),
        None => {
            let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
            VersionId::new(uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf))
        }
    };
    Version { id, created_at, rotation_id, data }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mut secrets, mut versions) = (0usize, 0usize);
        for shard in self.shards.iter() {
            let shard = shard.lock();
            secrets += shard.len();
            versions += shard.values().map(|s| s.versions.len()).sum::<usize>();
        }
        f.debug_struct("MemoryStore")
            .field("secrets", &secrets)
            .field("versions", &versions)
            .field("max_versions", &self.max_versions)
            .finish_non_exhaustive()
    }
}

fn missing(path: &SecretPath) -> StoreError {
    StoreError::not_found(path.as_str(), None)
}

fn missing_version(path: &SecretPath, id: &VersionId) -> StoreError {
    StoreError::not_found(path.as_str(), Some(format!("version {id}")))
}

fn check_value(data: &SecretData) -> Result<(), StoreError> {
    let len = data.byte_len();
    if len > MAX_VALUE_BYTES {
        return Err(StoreError::invalid(format!("the value is {len} bytes long; the limit is {MAX_VALUE_BYTES}")));
    }
    Ok(())
}

/// The contract's writes on a locked shard, shared by the single calls and
/// the rotation calls (which do several under one lock).
impl MemoryStore {
    fn put_locked(
        &self,
        shard: &mut Shard,
        path: &SecretPath,
        data: SecretData,
        opts: PutOptions,
    ) -> Result<VersionMeta, StoreError> {
        check_value(&data)?;
        let now = (self.now)();
        let Some(secret) = shard.get_mut(path) else {
            return match opts.mode {
                PutMode::Create | PutMode::Overwrite => {
                    let secret = Secret::new(new_version(now, data, opts.rotation_id));
                    let meta = secret.current_meta();
                    shard.insert(path.clone(), secret);
                    Ok(meta)
                }
                PutMode::IfCurrent(_) => Err(missing(path)),
            };
        };
        // Idempotence first: a retried write whose first attempt succeeded
        // must not fail its own compare-and-swap.
        if let Some(v) = opts.rotation_id.and_then(|r| secret.find_rotation(r)) {
            return Ok(secret.meta(v));
        }
        match opts.mode {
            PutMode::Create => Err(StoreError::AlreadyExists { path: path.as_str().to_owned() }),
            PutMode::IfCurrent(expected) if secret.current != expected => Err(StoreError::Conflict {
                path: path.as_str().to_owned(),
                expected: Some(expected),
                actual: Some(secret.current.clone()),
            }),
            PutMode::IfCurrent(_) | PutMode::Overwrite => {
                let v = new_version(secret.created_at(now), data, opts.rotation_id);
                Ok(secret.push_current(v, self.max_versions))
            }
        }
    }

    fn patch_locked(shard: &mut Shard, path: &SecretPath, patch: &MetadataPatch) -> Result<(), StoreError> {
        check_metadata_patch(patch)?;
        let secret = shard.get_mut(path).ok_or_else(|| missing(path))?;
        let n = rekey_core::store::entries_after(&secret.metadata, patch);
        check_entries(n)?;
        patch.apply(&mut secret.metadata);
        Ok(())
    }
}

fn check_entries(n: usize) -> Result<(), StoreError> {
    if n > MAX_METADATA_ENTRIES {
        return Err(StoreError::invalid(format!("{n} metadata entries; the limit is {MAX_METADATA_ENTRIES}")));
    }
    Ok(())
}

/// A stand-in for the id of a version not yet written, to check a record's
/// `new_version_keys` before the write (store ids are far below the value
/// limit).
static UNWRITTEN: LazyLock<VersionId> = LazyLock::new(|| VersionId::new("0"));

/// Checks `record` as [`check_metadata_patch`] checks `record.all(new_version)`,
/// without building that merged patch unless something is wrong with a part.
fn check_record(record: &RecordWrite, new_version: &VersionId) -> Result<(), StoreError> {
    let parts_ok = record.may.len() + record.must.len() + record.new_version_keys.len() <= MAX_METADATA_ENTRIES
        && check_metadata_patch(&record.may).is_ok()
        && check_metadata_patch(&record.must).is_ok()
        && (record.new_version_keys.is_empty() || check_metadata_patch(&record.must_part(new_version)).is_ok());
    // A bad part may be overridden by a later one: the merged patch decides.
    if parts_ok { Ok(()) } else { check_metadata_patch(&record.all(new_version)) }
}

/// Checks that `metadata` stays within [`MAX_METADATA_ENTRIES`] once `record`
/// is applied: counted without the merged patch unless near the limit.
fn check_record_entries(metadata: &Metadata, record: &RecordWrite, new_version: &VersionId) -> Result<(), StoreError> {
    let added = record.may.sets().chain(record.must.sets()).filter(|(k, _)| !metadata.contains_key(*k)).count()
        + record.new_version_keys.iter().filter(|k| !metadata.contains_key(k.as_str())).count();
    if metadata.len() + added <= MAX_METADATA_ENTRIES {
        return Ok(());
    }
    check_entries(rekey_core::store::entries_after(metadata, &record.all(new_version)))
}

/// Applies `record` once `new_version` is current, as
/// [`RecordWrite::apply`] does, but overwriting the values of keys already
/// there in place: a record that sets the same keys every rotation
/// allocates nothing.
fn apply_record(secret: &mut Secret, record: &RecordWrite, new_version: &VersionId) {
    for (k, v) in record.may.iter().chain(record.must.iter()) {
        secret.set_or_remove(k, v);
    }
    for k in &record.new_version_keys {
        secret.set_or_remove(k, Some(new_version.as_str()));
    }
}

/// Checks a journal line as a metadata value.
fn check_journal_line(line: &str) -> Result<(), StoreError> {
    if line.len() <= MAX_METADATA_VALUE_BYTES {
        return Ok(());
    }
    let mut patch = MetadataPatch::new();
    patch.set(JOURNAL_KEY, line);
    check_metadata_patch(&patch)
}

#[async_trait]
impl SecretStore for MemoryStore {
    async fn put(&self, path: &SecretPath, data: SecretData, opts: PutOptions) -> Result<VersionMeta, StoreError> {
        self.count(0);
        let mut shard = self.shard(path);
        self.put_locked(&mut shard, path, data, opts)
    }

    async fn read(&self, path: &SecretPath, selector: &VersionSelector) -> Result<SecretVersion, StoreError> {
        self.count(1);
        let shard = self.shard(path);
        let secret = shard.get(path).ok_or_else(|| missing(path))?;
        let (id, what) = match selector {
            VersionSelector::Current => (Some(&secret.current), "current version"),
            VersionSelector::Previous => (secret.previous.as_ref(), "previous version"),
            VersionSelector::Pending => (secret.pending.as_ref(), "pending version"),
            VersionSelector::Id(id) => {
                return secret.find(id).map(|v| secret.version(v)).ok_or_else(|| missing_version(path, id));
            }
        };
        id.and_then(|id| secret.find(id))
            .map(|v| secret.version(v))
            .ok_or_else(|| StoreError::not_found(path.as_str(), Some(what.to_owned())))
    }

    async fn stage(
        &self,
        path: &SecretPath,
        data: SecretData,
        rotation_id: RotationId,
    ) -> Result<VersionMeta, StoreError> {
        self.count(2);
        check_value(&data)?;
        let now = (self.now)();
        let mut shard = self.shard(path);
        let secret = shard.get_mut(path).ok_or_else(|| missing(path))?;
        Ok(secret.stage(now, data, rotation_id, self.max_versions).0)
    }

    async fn promote(
        &self,
        path: &SecretPath,
        version: &VersionId,
        expected_current: &VersionId,
    ) -> Result<VersionMeta, StoreError> {
        self.count(3);
        let mut shard = self.shard(path);
        let secret = shard.get_mut(path).ok_or_else(|| missing(path))?;
        secret.check_promote(path, version, expected_current)?;
        Ok(secret.promote(version))
    }

    async fn discard(&self, path: &SecretPath, version: &VersionId) -> Result<(), StoreError> {
        self.count(4);
        let mut shard = self.shard(path);
        let secret = shard.get_mut(path).ok_or_else(|| missing(path))?;
        if secret.current == *version {
            return Err(StoreError::invalid(format!(
                "version {version} of {path} is current; only a pending candidate can be discarded"
            )));
        }
        if secret.pending.as_ref() == Some(version) {
            secret.pending = None;
            secret.remove(version);
        }
        Ok(())
    }

    async fn list_versions(&self, path: &SecretPath) -> Result<Vec<VersionMeta>, StoreError> {
        self.count(5);
        let shard = self.shard(path);
        let secret = shard.get(path).ok_or_else(|| missing(path))?;
        Ok(secret.versions.iter().map(|v| secret.meta(v)).collect())
    }

    async fn read_metadata(&self, path: &SecretPath) -> Result<Metadata, StoreError> {
        self.count(6);
        let shard = self.shard(path);
        let secret = shard.get(path).ok_or_else(|| missing(path))?;
        Ok(secret.metadata.clone())
    }

    async fn write_metadata(&self, path: &SecretPath, metadata: Metadata) -> Result<(), StoreError> {
        self.count(7);
        check_metadata(&metadata)?;
        let mut shard = self.shard(path);
        let secret = shard.get_mut(path).ok_or_else(|| missing(path))?;
        secret.metadata = metadata;
        Ok(())
    }

    async fn update_metadata(&self, path: &SecretPath, patch: MetadataPatch) -> Result<(), StoreError> {
        self.count(8);
        let mut shard = self.shard(path);
        Self::patch_locked(&mut shard, path, &patch)
    }

    /// One call: the current version and the metadata under one lock.
    async fn snapshot(&self, path: &SecretPath, with_value: bool) -> Result<Snapshot, StoreError> {
        self.count(9);
        let shard = self.shard(path);
        let secret = shard.get(path).ok_or_else(|| missing(path))?;
        let current = secret.find(&secret.current).map(|v| secret.version(v)).ok_or_else(|| missing(path))?;
        Ok(Snapshot::new(current.meta, with_value.then_some(current.data), secret.metadata.clone()))
    }

    /// One call: the journal check, the journal line (always kept: it costs
    /// nothing here) and the candidate, under one lock. Everything is
    /// checked before anything changes.
    async fn stage_rotation(
        &self,
        path: &SecretPath,
        data: SecretData,
        req: StageRequest,
    ) -> Result<StageOutcome, StoreError> {
        self.count(10);
        check_value(&data)?;
        if let Some(journal) = &req.journal {
            check_journal_line(&journal.line)?;
        }
        let now = (self.now)();
        let mut shard = self.shard(path);
        let secret = shard.get_mut(path).ok_or_else(|| missing(path))?;
        if req.base.is_none() {
            let current = secret.find(&secret.current).ok_or_else(|| missing(path))?;
            if secret.metadata.contains_key(JOURNAL_KEY) {
                let snapshot = Snapshot::new(secret.meta(current), Some(current.data.clone()), secret.metadata.clone());
                return Ok(StageOutcome::Journalled(snapshot));
            }
            check_whole_value(path, &current.data, &data)?;
        }
        let journal_kept = req.journal.is_some();
        if journal_kept && !secret.metadata.contains_key(JOURNAL_KEY) {
            check_entries(secret.metadata.len() + 1)?;
        }
        // Owned by the result: the metadata before this call.
        let metadata = secret.metadata.clone();
        let base = req.base.unwrap_or_else(|| secret.current_meta());
        if let Some(journal) = req.journal {
            secret.set_journal(journal.line);
        }
        let (candidate, replaced) = secret.stage(now, data, req.rotation_id, self.max_versions);
        let mut staged = Staged::new(candidate, base, metadata, journal_kept);
        staged.replaced = replaced;
        Ok(StageOutcome::Staged(staged))
    }

    /// One call: the compare-and-swap and, only when it won, the record.
    /// Everything is checked before anything changes.
    async fn promote_rotation(&self, path: &SecretPath, req: PromoteRequest<'_>) -> Result<VersionMeta, StoreError> {
        self.count(11);
        // The candidate keeps its id when promoted here.
        check_record(req.record, req.candidate)?;
        let mut shard = self.shard(path);
        let secret = shard.get_mut(path).ok_or_else(|| missing(path))?;
        secret.check_promote(path, req.candidate, req.expected)?;
        check_record_entries(&secret.metadata, req.record, req.candidate)?;
        let meta = secret.promote(req.candidate);
        apply_record(secret, req.record, req.candidate);
        Ok(meta)
    }

    /// One call: the write and, only when it won, the record.
    async fn put_rotation(
        &self,
        path: &SecretPath,
        data: SecretData,
        opts: PutOptions,
        record: &RecordWrite,
    ) -> Result<VersionMeta, StoreError> {
        self.count(12);
        check_record(record, &UNWRITTEN)?;
        let mut shard = self.shard(path);
        if let Some(secret) = shard.get(path) {
            // The write leaves the metadata as it is.
            check_record_entries(&secret.metadata, record, &UNWRITTEN)?;
        }
        let meta = self.put_locked(&mut shard, path, data, opts)?;
        if let Some(secret) = shard.get_mut(path) {
            apply_record(secret, record, &meta.id);
        }
        Ok(meta)
    }

    fn request_counts(&self) -> RequestCounts {
        OPS.iter().zip(&self.calls).map(|(op, n)| (*op, n.load(std::sync::atomic::Ordering::Relaxed))).collect()
    }

    async fn delete(&self, path: &SecretPath) -> Result<(), StoreError> {
        let mut shard = self.shard(path);
        shard.remove(path).map(|_| ()).ok_or_else(|| missing(path))
    }
}
