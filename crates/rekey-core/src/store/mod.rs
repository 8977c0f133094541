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

mod ids;
mod metadata;
mod rotation;

use std::fmt;

use async_trait::async_trait;

pub use ids::{PutMode, PutOptions, RotationId, SecretVersion, Stages, VersionId, VersionMeta, VersionSelector};
pub use metadata::{
    MAX_METADATA_ENTRIES, MAX_METADATA_KEY_BYTES, MAX_METADATA_VALUE_BYTES, METADATA_KEY_PREFIX, Metadata,
    MetadataPatch, check_metadata, check_metadata_patch, entries_after,
};

pub use rotation::{
    JOURNAL_KEY, Journal, PromoteRequest, RecordWrite, RequestCounts, Snapshot, StageOutcome, StageRequest, Staged,
};

use crate::{SecretData, SecretPath, StoreError};

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

    // ---- the calls a rotation makes (see the `rotation` types) ----------
    //
    // Each has a default built from the calls above; a store overrides the
    // ones its protocol does in fewer round trips. The conformance suite
    // checks every store's against the same rules.

    /// The current version (with its value when `with_value`) and the
    /// metadata: what [`read`](Self::read) of the current version and
    /// [`read_metadata`](Self::read_metadata) return. [`StoreError::NotFound`]
    /// if the secret does not exist.
    async fn snapshot(&self, path: &SecretPath, with_value: bool) -> Result<Snapshot, StoreError> {
        let current = self.read(path, &VersionSelector::Current).await?;
        let metadata = self.read_metadata(path).await?;
        Ok(Snapshot { current: current.meta, data: with_value.then_some(current.data), metadata })
    }

    /// Stages `data` as the candidate of `req.rotation_id` — unless a
    /// rotation journal ([`JOURNAL_KEY`]) is in the metadata: then nothing is
    /// staged and the snapshot is returned ([`StageOutcome::Journalled`]) for
    /// the caller to recover first.
    ///
    /// Otherwise it stages as [`stage`](Self::stage) does (same idempotence;
    /// an older candidate of another rotation is replaced), keeps the journal
    /// line (when `required`, visible to [`read_metadata`](Self::read_metadata)
    /// from then on; when not, only if it costs no call), and returns the
    /// candidate, the version current when it staged (the compare-and-swap
    /// base) and the metadata as it was before this call.
    ///
    /// Without `req.base`, a text candidate for a secret whose current value
    /// has several fields is refused ([`StoreError::InvalidInput`] naming
    /// the fields, nothing staged): replacing such a value whole is always a
    /// mistake of configuration (the field to rotate was not named).
    ///
    /// With `req.base`, the caller has just read the secret and found no
    /// journal: the store need not read it again (and does not check for a
    /// journal or the value's shape).
    async fn stage_rotation(
        &self,
        path: &SecretPath,
        data: SecretData,
        req: StageRequest,
    ) -> Result<StageOutcome, StoreError> {
        let (base, metadata, replaced) = match (req.base, req.metadata) {
            (Some(base), Some(metadata)) => (base, metadata, None),
            _ => {
                let snapshot = self.snapshot(path, true).await?;
                if snapshot.journalled() {
                    return Ok(StageOutcome::Journalled(snapshot));
                }
                if let Some(current) = &snapshot.data {
                    check_whole_value(path, current, &data)?;
                }
                let replaced = match self.read(path, &VersionSelector::Pending).await {
                    Ok(p) if p.meta.rotation_id != Some(req.rotation_id) => Some(p.meta),
                    Ok(_) | Err(StoreError::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                };
                (snapshot.current, snapshot.metadata, replaced)
            }
        };
        let journal_kept = keep_required_journal(self, path, req.journal).await?;
        let candidate = self.stage(path, data, req.rotation_id).await?;
        Ok(StageOutcome::Staged(Staged { candidate, base, metadata, journal_kept, replaced }))
    }

    /// [`promote`](Self::promote)s `req.candidate` with compare-and-swap
    /// against `req.expected`, then writes `req.record` (its `may` part only
    /// if that costs no call of its own; its `new_version_keys` set to the
    /// id of the new current version). A lost race is
    /// [`StoreError::Conflict`] and writes no metadata.
    async fn promote_rotation(&self, path: &SecretPath, req: PromoteRequest<'_>) -> Result<VersionMeta, StoreError> {
        let meta = self.promote(path, req.candidate, req.expected).await?;
        if !req.record.is_empty() {
            self.update_metadata(path, req.record.all(&meta.id)).await?;
        }
        Ok(meta)
    }

    /// [`put`](Self::put)s `data` as `opts` say, then writes `record` (its
    /// `may` part only if that costs no call of its own). A lost race is
    /// [`StoreError::Conflict`] and writes no metadata.
    async fn put_rotation(
        &self,
        path: &SecretPath,
        data: SecretData,
        opts: PutOptions,
        record: &RecordWrite,
    ) -> Result<VersionMeta, StoreError> {
        let meta = self.put(path, data, opts).await?;
        if !record.is_empty() {
            self.update_metadata(path, record.all(&meta.id)).await?;
        }
        Ok(meta)
    }

    /// The calls this store has made so far, by operation (HTTP requests,
    /// API calls; for the in-memory store, its contract calls), for metrics
    /// and benchmarks. Empty for a store that does not count.
    fn request_counts(&self) -> RequestCounts {
        Vec::new()
    }
}

/// Writes a rotation's journal line into the metadata (one
/// [`update_metadata`](SecretStore::update_metadata)) when it is
/// [`required`](Journal::required); whether it did. For a store's
/// [`stage_rotation`](SecretStore::stage_rotation) whose staging write
/// cannot carry the journal itself.
pub async fn keep_required_journal<S: SecretStore + ?Sized>(
    store: &S,
    path: &SecretPath,
    journal: Option<Journal>,
) -> Result<bool, StoreError> {
    let Some(journal) = journal.filter(|j| j.required) else { return Ok(false) };
    let mut patch = MetadataPatch::new();
    patch.set(JOURNAL_KEY, journal.line);
    store.update_metadata(path, patch).await?;
    Ok(true)
}

/// The shape rule of [`SecretStore::stage_rotation`] without a base: a text
/// candidate may not replace a value with fields.
pub fn check_whole_value(path: &SecretPath, current: &SecretData, candidate: &SecretData) -> Result<(), StoreError> {
    if matches!(candidate, SecretData::Text(_)) && matches!(current, SecretData::Fields(_)) {
        let names: Vec<&str> = current.field_names().collect();
        return Err(StoreError::invalid(format!(
            "{path}: the secret has several fields ({}); name the one to rotate, a whole text value would replace them \
             all",
            names.join(", ")
        )));
    }
    Ok(())
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
    async fn snapshot(&self, path: &SecretPath, with_value: bool) -> Result<Snapshot, StoreError> {
        (**self).snapshot(path, with_value).await
    }
    async fn stage_rotation(
        &self,
        path: &SecretPath,
        data: SecretData,
        req: StageRequest,
    ) -> Result<StageOutcome, StoreError> {
        (**self).stage_rotation(path, data, req).await
    }
    async fn promote_rotation(&self, path: &SecretPath, req: PromoteRequest<'_>) -> Result<VersionMeta, StoreError> {
        (**self).promote_rotation(path, req).await
    }
    async fn put_rotation(
        &self,
        path: &SecretPath,
        data: SecretData,
        opts: PutOptions,
        record: &RecordWrite,
    ) -> Result<VersionMeta, StoreError> {
        (**self).put_rotation(path, data, opts, record).await
    }
    fn request_counts(&self) -> RequestCounts {
        (**self).request_counts()
    }
    async fn delete(&self, path: &SecretPath) -> Result<(), StoreError> {
        (**self).delete(path).await
    }
}
