//! Naming versions and rotations: [`VersionId`], [`RotationId`], what a
//! version is ([`VersionMeta`], [`SecretVersion`]), and how reads and writes
//! choose one ([`VersionSelector`], [`PutMode`], [`PutOptions`]).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{SecretData, StoreError};

/// A store-assigned, opaque version identifier (a KV version number on
/// Vault, a `VersionId` on AWS, ...). Never derived from the secret value.
///
/// Cloning is a reference-count increment: ids travel through every
/// result, record and audit event of a rotation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionId(std::sync::Arc<str>);

impl VersionId {
    /// Wraps a store's id.
    pub fn new(id: impl AsRef<str>) -> Self {
        Self(id.as_ref().into())
    }

    /// The id of the version a rotation wrote, for stores that name
    /// versions by the writing rotation (as AWS does with the
    /// `ClientRequestToken`): its hyphenated text, formatted without an
    /// intermediate `String`.
    pub fn of_rotation(rotation: RotationId) -> Self {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        Self(std::sync::Arc::from(&*rotation.0.hyphenated().encode_lower(&mut buf)))
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for VersionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for VersionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
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

/// How a [`put`](super::SecretStore::put) treats the existing secret.
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

/// Options of a [`put`](super::SecretStore::put).
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
