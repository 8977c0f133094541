//! The calls a rotation makes, as the store's protocol can do them in the
//! fewest round trips: [`snapshot`](super::SecretStore::snapshot),
//! [`stage_rotation`](super::SecretStore::stage_rotation),
//! [`promote_rotation`](super::SecretStore::promote_rotation) and
//! [`put_rotation`](super::SecretStore::put_rotation).
//!
//! Each has a default built from the primitive calls (so any store works),
//! and each store overrides what its protocol does in fewer: a Vault KV v2
//! data read already returns the version and `custom_metadata`; AWS's
//! `AWSPENDING` stage and `ClientRequestToken` are a rotation's native
//! journal; the in-memory store does each in one call.

use super::{Metadata, MetadataPatch, RotationId, VersionId, VersionMeta};
use crate::SecretData;

/// The metadata key of a rotation journal (see `rekey_core::journal`).
pub const JOURNAL_KEY: &str = "rekey.rotation";

/// What a rotation reads before it writes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// The current version.
    pub current: VersionMeta,
    /// Its value, when asked for.
    pub data: Option<SecretData>,
    /// The metadata beside the secret.
    pub metadata: Metadata,
}

impl Snapshot {
    /// A snapshot from its parts.
    pub fn new(current: VersionMeta, data: Option<SecretData>, metadata: Metadata) -> Self {
        Self { current, data, metadata }
    }

    /// Whether a rotation journal is present (a rotation in flight, or one
    /// that crashed).
    pub fn journalled(&self) -> bool {
        self.metadata.contains_key(JOURNAL_KEY)
    }
}

/// A rotation's journal line, handed to [`stage_rotation`] with the
/// candidate.
///
/// [`stage_rotation`]: super::SecretStore::stage_rotation
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    /// The line, stored as the metadata key [`JOURNAL_KEY`].
    pub line: String,
    /// Whether the store must keep it even when that costs a call (the
    /// rotation has a credential target to clean up after a crash). When
    /// `false`, the pending candidate itself (its rotation id and creation
    /// time) is journal enough, and a store keeps the line only if it costs
    /// nothing.
    pub required: bool,
}

/// How [`stage_rotation`] stages.
///
/// [`stage_rotation`]: super::SecretStore::stage_rotation
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StageRequest {
    /// The rotation.
    pub rotation_id: RotationId,
    /// Its journal line.
    pub journal: Option<Journal>,
    /// The current version, when the caller has just read it (with a
    /// [`snapshot`](super::SecretStore::snapshot)) and found no journal: the
    /// store need not read the secret again.
    pub base: Option<VersionMeta>,
    /// The metadata of that snapshot, with `base`.
    pub metadata: Option<Metadata>,
}

impl StageRequest {
    /// Staging for rotation `rotation_id`, reading what is current.
    pub fn new(rotation_id: RotationId) -> Self {
        Self { rotation_id, journal: None, base: None, metadata: None }
    }

    /// With a journal line.
    pub fn journal(mut self, line: impl Into<String>, required: bool) -> Self {
        self.journal = Some(Journal { line: line.into(), required });
        self
    }

    /// After a snapshot the caller has checked.
    pub fn after(mut self, snapshot: &super::Snapshot) -> Self {
        self.base = Some(snapshot.current.clone());
        self.metadata = Some(snapshot.metadata.clone());
        self
    }
}

/// What [`stage_rotation`] did.
///
/// [`stage_rotation`]: super::SecretStore::stage_rotation
#[derive(Debug, Clone)]
pub enum StageOutcome {
    /// The candidate is staged.
    Staged(Staged),
    /// A rotation journal is present (a rotation in flight, or one that
    /// crashed): nothing was staged. The snapshot tells the caller what to
    /// recover.
    Journalled(Snapshot),
}

/// A staged candidate and what was current when it was staged.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Staged {
    /// The pending candidate.
    pub candidate: VersionMeta,
    /// The version current when it was staged: the compare-and-swap base.
    pub base: VersionMeta,
    /// The metadata as it was before this call.
    pub metadata: Metadata,
    /// Whether the store keeps the journal line in the metadata (so the
    /// rotation must remove it when it ends).
    pub journal_kept: bool,
    /// An older candidate of another rotation that this stage replaced (one
    /// left by a rotation that crashed, when its journal was the candidate
    /// itself), when the store could tell without a call of its own.
    pub replaced: Option<VersionMeta>,
}

impl Staged {
    /// From its parts.
    pub fn new(candidate: VersionMeta, base: VersionMeta, metadata: Metadata, journal_kept: bool) -> Self {
        Self { candidate, base, metadata, journal_kept, replaced: None }
    }

    /// With the candidate it replaced.
    pub fn replacing(mut self, replaced: Option<VersionMeta>) -> Self {
        self.replaced = replaced;
        self
    }
}

/// Metadata written with a rotation's promotion or write: what must be
/// written (a journal to clear, a failure count to reset, a quarantine to
/// lift, a retire record), and what is worth writing only if it costs no
/// call of its own (the result record, a history event).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordWrite {
    /// Written whatever it costs.
    pub must: MetadataPatch,
    /// Written when the store writes metadata with the call anyway (or can
    /// at no extra call); may be dropped otherwise.
    pub may: MetadataPatch,
    /// Keys set to the id of the version the call makes current (part of
    /// `must`): on stores that promote by copying (Vault KV v2), only the
    /// store knows that id when it writes the record.
    pub new_version_keys: Vec<String>,
}

impl RecordWrite {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.may.is_empty() && self.new_version_keys.is_empty()
    }

    /// Whether something must be written whatever it costs.
    pub fn has_must(&self) -> bool {
        !self.must.is_empty() || !self.new_version_keys.is_empty()
    }

    /// Everything to write once `new_version` is current, in one patch
    /// (`must` wins over `may` for keys in both).
    pub fn all(&self, new_version: &VersionId) -> MetadataPatch {
        let mut p = self.may.clone();
        p.extend(self.must_part(new_version));
        p
    }

    /// Applies [`all`](Self::all) to `metadata` without building the merged
    /// patch.
    ///
    /// ```
    /// use rekey_core::{Metadata, RecordWrite, VersionId};
    /// let mut w = RecordWrite::default();
    /// w.may.set("rekey.a", "may").set("rekey.b", "may");
    /// w.must.set("rekey.b", "must");
    /// w.new_version_keys.push("rekey.c".into());
    /// let (mut direct, mut merged) = (Metadata::new(), Metadata::new());
    /// w.apply(&VersionId::new("7"), &mut direct);
    /// w.all(&VersionId::new("7")).apply(&mut merged);
    /// assert_eq!(direct, merged);
    /// assert_eq!(direct["rekey.b"], "must");
    /// ```
    pub fn apply(&self, new_version: &VersionId, metadata: &mut Metadata) {
        self.may.apply(metadata);
        self.must.apply(metadata);
        for k in &self.new_version_keys {
            metadata.insert(k.clone(), new_version.as_str().to_owned());
        }
    }

    /// [`apply`](Self::apply), moving keys and values instead of copying.
    pub fn apply_owned(self, new_version: &VersionId, metadata: &mut Metadata) {
        self.may.apply_owned(metadata);
        self.must.apply_owned(metadata);
        for k in self.new_version_keys {
            metadata.insert(k, new_version.as_str().to_owned());
        }
    }

    /// What must be written once `new_version` is current.
    pub fn must_part(&self, new_version: &VersionId) -> MetadataPatch {
        let mut p = self.must.clone();
        for k in &self.new_version_keys {
            p.set(k.clone(), new_version.as_str());
        }
        p
    }
}

/// What [`promote_rotation`] promotes.
///
/// [`promote_rotation`]: super::SecretStore::promote_rotation
#[derive(Debug, Clone, Copy)]
pub struct PromoteRequest<'a> {
    /// The candidate to make current.
    pub candidate: &'a VersionId,
    /// The version that must still be current (compare-and-swap).
    pub expected: &'a VersionId,
    /// The candidate's value, as staged by the caller: stores that promote
    /// by copying need not read it back.
    pub value: Option<&'a SecretData>,
    /// The metadata to write once it is current.
    pub record: &'a RecordWrite,
}

/// Calls made, by operation, as a store counts them (HTTP requests, API
/// calls): see [`request_counts`](super::SecretStore::request_counts).
pub type RequestCounts = Vec<(&'static str, u64)>;
