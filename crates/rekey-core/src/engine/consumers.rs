//! Consumer tracking and the dual-write retire record, kept in the metadata
//! beside the secret so that every process sees the same state.
//!
//! # Concepts
//!
//! * **Consumers.** An application instance that reads a secret may
//!   [register](ConsumerRegistry::register) under a name and
//!   [acknowledge](ConsumerRegistry::acknowledge) the version it uses. The
//!   [status](ConsumerRegistry::status) shows who is on the current version
//!   and who still uses an older one. The dual-write strategy retires the old
//!   credential early once every registered consumer has acknowledged the new
//!   version.
//! * **The retire record.** After a dual-write rotation the old credential
//!   stays valid on the target until a deadline; [`RetireRecord`] is that
//!   pending step: which version to retire, which one replaced it, and when.
//!   [`retire_decision`] says whether it is due.
//!
//! # Keys
//!
//! | key | value |
//! |---|---|
//! | `rekey.consumer.<name>` | the version id the consumer uses, or `-` when it registered and acknowledged nothing yet |
//! | `rekey.retire.version` | the version to retire (the one current before the rotation) |
//! | `rekey.retire.keep` | the version that replaced it |
//! | `rekey.retire.deadline` | RFC 3339: when the grace period ends |
//! | `rekey.retire.rotation` | the rotation that made the record |
//!
//! Consumer names are 1 to [`MAX_CONSUMER_NAME_LEN`] bytes of ASCII letters,
//! digits and `_ . : / = + - @` (the characters every store allows in
//! metadata keys); at most [`MAX_CONSUMERS`] are registered per secret.
//!
//! # Concurrency
//!
//! Store metadata is last-writer-wins, so every write here is a
//! read-modify-write that checks its own key afterwards and repeats when a
//! concurrent writer replaced it. The rules keep the remaining races on the
//! safe side:
//!
//! * An acknowledgement that changes nothing writes nothing, so consumers
//!   refreshing often do not keep rewriting the metadata.
//! * While a rotation journal is present (`rekey.rotation`),
//!   acknowledgements are [deferred](AckOutcome::Deferred) (try again at the
//!   next refresh), so they cannot drop the journal's or the retire record's
//!   keys, which the engine writes at the start and the end of a rotation.
//! * A lost acknowledgement only delays an early retirement: the deadline
//!   still applies. With no consumer registered, only the deadline counts.
//! * Consumers should acknowledge at every refresh, not only when the
//!   version changes: an unchanged acknowledgement costs one metadata read,
//!   and one that a concurrent writer overwrote is written again.
//!
//! ```
//! use std::sync::Arc;
//! use rekey_core::*;
//! use rekey_core::engine::consumers::{AckOutcome, ConsumerRegistry};
//! use rekey_memory::MemoryStore;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(MemoryStore::new());
//! let path: SecretPath = "apps/cache/password".parse()?;
//! let v1 = store.create(&path, SecretData::text("first")).await?.id;
//!
//! let consumers = ConsumerRegistry::new(store.clone(), path.clone());
//! consumers.register("web-1").await?;
//! assert_eq!(consumers.acknowledge("web-1", &v1).await?, AckOutcome::Recorded);
//! let status = consumers.status().await?;
//! assert!(status.behind().next().is_none());
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::journal::JOURNAL_KEY;
use crate::{DynSecretStore, Metadata, MetadataPatch, RotationId, SecretPath, SecretStoreExt, StoreError, VersionId};

/// Prefix of the consumer keys.
pub const CONSUMER_PREFIX: &str = "rekey.consumer.";
/// What every retire-record key starts with.
pub const RETIRE_PREFIX: &str = "rekey.retire.";
/// Metadata key: the version to retire.
pub const RETIRE_VERSION: &str = "rekey.retire.version";
/// Metadata key: the version that replaced it.
pub const RETIRE_KEEP: &str = "rekey.retire.keep";
/// Metadata key: the grace deadline (RFC 3339).
pub const RETIRE_DEADLINE: &str = "rekey.retire.deadline";
/// Metadata key: the rotation that made the record.
pub const RETIRE_ROTATION: &str = "rekey.retire.rotation";
/// The value of a consumer that registered but acknowledged no version yet.
pub const NOT_ACKNOWLEDGED: &str = "-";
/// The longest consumer name (metadata keys are at most 128 bytes).
pub const MAX_CONSUMER_NAME_LEN: usize = 128 - CONSUMER_PREFIX.len();
/// The most consumers registered per secret (metadata holds at most 50
/// entries; the rotation journal and the retire record need 5).
pub const MAX_CONSUMERS: usize = 32;

const RETIRE_KEYS: [&str; 4] = [RETIRE_VERSION, RETIRE_KEEP, RETIRE_DEADLINE, RETIRE_ROTATION];
/// Metadata entries at most, in every store.
const MAX_ENTRIES: usize = 50;
/// How often a write is repeated when a concurrent writer replaced it.
const WRITE_ATTEMPTS: usize = 4;

/// A failure of consumer tracking. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// The consumer name cannot be a metadata key.
    #[error("invalid consumer name {name:?}: {reason}")]
    InvalidName {
        /// The name (clipped to 64 characters).
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// No room for another consumer in the metadata.
    #[error("cannot register consumer {name:?}: at most {limit} consumers per secret")]
    TooMany {
        /// The consumer.
        name: String,
        /// The limit.
        limit: usize,
    },
    /// The consumer is not registered.
    #[error("consumer {name:?} is not registered")]
    NotRegistered {
        /// The consumer.
        name: String,
    },
    /// Concurrent writers kept replacing the metadata.
    #[error("consumer {name:?}: the metadata kept changing under concurrent writers; try again")]
    Contended {
        /// The consumer.
        name: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ConsumerError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Contended { .. } => true,
            Self::Store(e) => e.is_retryable(),
            _ => false,
        }
    }
}

fn clip(name: &str) -> String {
    name.chars().take(64).collect()
}

/// Checks that `name` can be a consumer name (see the [module docs](self)).
pub fn validate_consumer_name(name: &str) -> Result<(), ConsumerError> {
    let bad = |reason| Err(ConsumerError::InvalidName { name: clip(name), reason });
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_CONSUMER_NAME_LEN {
        return bad("longer than 113 bytes");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:/=+-@".contains(&b)) {
        return bad("only ASCII letters, digits and _ . : / = + - @ are allowed");
    }
    Ok(())
}

fn consumer_key(name: &str) -> String {
    format!("{CONSUMER_PREFIX}{name}")
}

/// One registered consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Its name.
    pub name: String,
    /// The version it acknowledged, `None` when it acknowledged none yet.
    pub version: Option<VersionId>,
}

/// The registered consumers recorded in `meta`, sorted by name.
pub fn consumers(meta: &Metadata) -> Vec<ConsumerRecord> {
    meta.range(CONSUMER_PREFIX.to_owned()..)
        .take_while(|(k, _)| k.starts_with(CONSUMER_PREFIX))
        .map(|(k, v)| ConsumerRecord {
            name: k[CONSUMER_PREFIX.len()..].to_owned(),
            version: (v != NOT_ACKNOWLEDGED && !v.is_empty()).then(|| VersionId::new(v.clone())),
        })
        .collect()
}

/// Who uses which version of a secret; see [`ConsumerRegistry::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerStatus {
    /// The current version.
    pub current: VersionId,
    /// Every registered consumer, sorted by name.
    pub consumers: Vec<ConsumerRecord>,
    /// The pending retire step, if any.
    pub retire: Option<RetireRecord>,
}

impl ConsumerStatus {
    /// The consumers on the current version.
    pub fn on_current(&self) -> impl Iterator<Item = &ConsumerRecord> {
        self.consumers.iter().filter(|c| c.version.as_ref() == Some(&self.current))
    }

    /// The consumers still on another version (or none acknowledged yet).
    pub fn behind(&self) -> impl Iterator<Item = &ConsumerRecord> {
        self.consumers.iter().filter(|c| c.version.as_ref() != Some(&self.current))
    }

    /// Whether at least one consumer is registered and every one is on the
    /// current version.
    pub fn all_on_current(&self) -> bool {
        !self.consumers.is_empty() && self.behind().next().is_none()
    }
}

/// A pending dual-write retire step, as recorded in metadata.
#[derive(Clone, PartialEq, Eq)]
pub struct RetireRecord {
    /// The version whose credential is to be revoked on the target.
    pub retired: VersionId,
    /// The version that replaced it (kept valid when revoking).
    pub keep: Option<VersionId>,
    /// When the grace period ends; `None` when unreadable (then it is due).
    pub deadline: Option<DateTime<Utc>>,
    /// The rotation that made the record.
    pub rotation_id: Option<RotationId>,
}

impl fmt::Debug for RetireRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetireRecord")
            .field("retired", &self.retired)
            .field("keep", &self.keep)
            .field("deadline", &self.deadline.map(|d| d.to_rfc3339()))
            .field("rotation_id", &self.rotation_id)
            .finish()
    }
}

impl RetireRecord {
    /// A record: retire `retired` (replaced by `keep`) at `deadline`.
    pub fn new(retired: VersionId, keep: VersionId, deadline: DateTime<Utc>, rotation_id: RotationId) -> Self {
        Self { retired, keep: Some(keep), deadline: Some(deadline), rotation_id: Some(rotation_id) }
    }

    /// Reads the record from `meta`; `None` when there is none (no
    /// `rekey.retire.version`).
    pub fn read(meta: &Metadata) -> Option<Self> {
        let retired = meta.get(RETIRE_VERSION).filter(|v| !v.is_empty())?;
        Some(Self {
            retired: VersionId::new(retired.clone()),
            keep: meta.get(RETIRE_KEEP).filter(|v| !v.is_empty()).map(|v| VersionId::new(v.clone())),
            deadline: meta
                .get(RETIRE_DEADLINE)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc)),
            rotation_id: meta.get(RETIRE_ROTATION).and_then(|s| RotationId::parse(s).ok()),
        })
    }

    /// Writes the record into `meta` (replacing any; other keys kept).
    pub fn write_into(&self, meta: &mut Metadata) {
        Self::clear(meta);
        meta.insert(RETIRE_VERSION.to_owned(), self.retired.as_str().to_owned());
        if let Some(k) = &self.keep {
            meta.insert(RETIRE_KEEP.to_owned(), k.as_str().to_owned());
        }
        if let Some(d) = self.deadline {
            meta.insert(RETIRE_DEADLINE.to_owned(), d.to_rfc3339());
        }
        if let Some(r) = self.rotation_id {
            meta.insert(RETIRE_ROTATION.to_owned(), r.to_string());
        }
    }

    /// Removes every retire key from `meta`; whether there was any.
    pub fn clear(meta: &mut Metadata) -> bool {
        let mut any = false;
        for k in RETIRE_KEYS {
            any |= meta.remove(k).is_some();
        }
        any
    }
}

/// Why a retire step is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireReason {
    /// The grace deadline has passed (or is unreadable).
    GraceEnded,
    /// Every registered consumer acknowledged the new version.
    AllAcknowledged,
    /// A rotation must go ahead now (emergency), cutting the grace short.
    Forced,
}

impl fmt::Display for RetireReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::GraceEnded => "grace period ended",
            Self::AllAcknowledged => "every registered consumer acknowledged the new version",
            Self::Forced => "an emergency rotation cut the grace period short",
        })
    }
}

/// What to do about a secret's retire record now; see [`retire_decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetireDecision {
    /// No retire step is pending.
    Nothing,
    /// Not due yet.
    Wait {
        /// The grace deadline.
        until: DateTime<Utc>,
        /// The consumers not yet on the new version.
        behind: Vec<String>,
    },
    /// Due: revoke `record.retired` on the target, keeping `record.keep`.
    Retire {
        /// The record.
        record: RetireRecord,
        /// Why now.
        reason: RetireReason,
    },
}

/// Decides whether the retire step recorded in `meta` is due at `now`
/// (pure): when the deadline has passed (or cannot be read), or when at
/// least one consumer is registered and every registered consumer
/// acknowledged the record's `keep` version.
pub fn retire_decision(meta: &Metadata, now: DateTime<Utc>) -> RetireDecision {
    let Some(record) = RetireRecord::read(meta) else {
        return RetireDecision::Nothing;
    };
    let until = match record.deadline {
        Some(d) if now < d => d,
        _ => return RetireDecision::Retire { record, reason: RetireReason::GraceEnded },
    };
    let all = consumers(meta);
    let behind: Vec<String> =
        all.iter().filter(|c| record.keep.is_none() || c.version != record.keep).map(|c| c.name.clone()).collect();
    if !all.is_empty() && behind.is_empty() {
        return RetireDecision::Retire { record, reason: RetireReason::AllAcknowledged };
    }
    RetireDecision::Wait { until, behind }
}

/// What a rotation starting now does about a pending retire step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingRetire {
    /// None pending: go ahead.
    None,
    /// Perform the retire step first, then rotate.
    RetireFirst {
        /// The record.
        record: RetireRecord,
        /// Why now.
        reason: RetireReason,
    },
    /// Refuse the rotation: retiring now would break consumers still on the
    /// old credential.
    Refuse {
        /// When the grace period ends.
        until: DateTime<Utc>,
        /// The consumers not yet on the new version.
        behind: Vec<String>,
    },
}

/// Decides what a rotation starting at `now` does about the retire step in
/// `meta` (pure): retire first when it is due or when the rotation is an
/// `emergency`; otherwise refuse. (A scheduled dual-write rotation always
/// finds it due: policy validation keeps rotations at least twice the grace
/// period apart.)
pub fn pending_retire_decision(meta: &Metadata, now: DateTime<Utc>, emergency: bool) -> PendingRetire {
    match retire_decision(meta, now) {
        RetireDecision::Nothing => PendingRetire::None,
        RetireDecision::Retire { record, reason } => PendingRetire::RetireFirst { record, reason },
        RetireDecision::Wait { until, behind } => match RetireRecord::read(meta) {
            Some(record) if emergency => PendingRetire::RetireFirst { record, reason: RetireReason::Forced },
            _ => PendingRetire::Refuse { until, behind },
        },
    }
}

/// What one dual-write retire step did (the scheduler's retire pass).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RetireResult {
    /// The secret.
    pub path: SecretPath,
    /// The version whose credential was (to be) revoked.
    pub retired: VersionId,
    /// The version kept valid.
    pub keep: Option<VersionId>,
    /// Why it was due.
    pub reason: RetireReason,
    /// Whether the old credential was revoked on a target (false when no
    /// target is bound, or when the retired version is current again).
    pub revoked: bool,
    /// Why it failed, if it did (the record then stays, and the next pass
    /// tries again).
    pub error: Option<super::RotationError>,
}

impl RetireResult {
    /// Whether the retire step completed (the record is gone).
    pub fn success(&self) -> bool {
        self.error.is_none()
    }
}

/// What became of an [acknowledgement](ConsumerRegistry::acknowledge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// Recorded.
    Recorded,
    /// The consumer had already acknowledged this version: nothing written.
    Unchanged,
    /// A rotation is in progress (its journal is in the metadata): nothing
    /// written; acknowledge again at the next refresh.
    Deferred,
}

/// Registers consumers of one secret and records the version each uses, in
/// the metadata beside the secret. See the [module docs](self).
#[derive(Clone)]
pub struct ConsumerRegistry {
    store: Arc<DynSecretStore>,
    path: SecretPath,
}

impl fmt::Debug for ConsumerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerRegistry").field("store", &self.store).field("path", &self.path).finish()
    }
}

impl ConsumerRegistry {
    /// The consumers of `path` in `store`.
    pub fn new(store: Arc<DynSecretStore>, path: SecretPath) -> Self {
        Self { store, path }
    }

    /// The secret.
    pub fn path(&self) -> &SecretPath {
        &self.path
    }

    /// Registers `name` (keeping its acknowledgement if it is registered
    /// already). Until it acknowledges a version it counts as behind.
    pub async fn register(&self, name: &str) -> Result<(), ConsumerError> {
        validate_consumer_name(name)?;
        let key = consumer_key(name);
        self.update(name, |meta| {
            if meta.contains_key(&key) {
                return Ok(None);
            }
            if consumers(meta).len() >= MAX_CONSUMERS || meta.len() + RETIRE_KEYS.len() + 1 >= MAX_ENTRIES {
                return Err(ConsumerError::TooMany { name: clip(name), limit: MAX_CONSUMERS });
            }
            meta.insert(key.clone(), NOT_ACKNOWLEDGED.to_owned());
            Ok(Some(NOT_ACKNOWLEDGED.to_owned()))
        })
        .await
        .map(|_| ())
    }

    /// Records that `name` uses `version`. The consumer must be registered.
    /// Writes nothing when the version is already recorded, or while a
    /// rotation is in progress ([`AckOutcome::Deferred`]).
    pub async fn acknowledge(&self, name: &str, version: &VersionId) -> Result<AckOutcome, ConsumerError> {
        validate_consumer_name(name)?;
        if version.as_str().is_empty() || version.as_str() == NOT_ACKNOWLEDGED {
            return Err(ConsumerError::Store(StoreError::invalid("acknowledged version id is empty")));
        }
        let key = consumer_key(name);
        let mut deferred = false;
        let wrote = self
            .update(name, |meta| {
                match meta.get(&key) {
                    None => return Err(ConsumerError::NotRegistered { name: clip(name) }),
                    Some(v) if v == version.as_str() => return Ok(None),
                    Some(_) => {}
                }
                if meta.contains_key(JOURNAL_KEY) {
                    deferred = true;
                    return Ok(None);
                }
                meta.insert(key.clone(), version.as_str().to_owned());
                Ok(Some(version.as_str().to_owned()))
            })
            .await?;
        Ok(if wrote {
            AckOutcome::Recorded
        } else if deferred {
            AckOutcome::Deferred
        } else {
            AckOutcome::Unchanged
        })
    }

    /// Removes `name`; whether it was registered.
    pub async fn deregister(&self, name: &str) -> Result<bool, ConsumerError> {
        validate_consumer_name(name)?;
        let key = consumer_key(name);
        let mut found = false;
        for _ in 0..WRITE_ATTEMPTS {
            let meta = self.store.read_metadata(&self.path).await?;
            if !meta.contains_key(&key) {
                return Ok(found);
            }
            found = true;
            let mut patch = MetadataPatch::new();
            patch.remove(key.clone());
            self.store.update_metadata(&self.path, patch).await?;
        }
        Err(ConsumerError::Contended { name: clip(name) })
    }

    /// Who uses which version, and the pending retire step.
    pub async fn status(&self) -> Result<ConsumerStatus, ConsumerError> {
        let current = self.store.current(&self.path).await?.meta.id;
        let meta = self.store.read_metadata(&self.path).await?;
        Ok(ConsumerStatus { current, consumers: consumers(&meta), retire: RetireRecord::read(&meta) })
    }

    /// Read-modify-write of one consumer key, checked afterwards: `change`
    /// returns the value it set (`None`: nothing to write). Returns whether
    /// it wrote.
    async fn update(
        &self,
        name: &str,
        mut change: impl FnMut(&mut Metadata) -> Result<Option<String>, ConsumerError>,
    ) -> Result<bool, ConsumerError> {
        let key = consumer_key(name);
        let mut wrote = false;
        for _ in 0..WRITE_ATTEMPTS {
            let before = self.store.read_metadata(&self.path).await?;
            let mut meta = before.clone();
            let Some(value) = change(&mut meta)? else {
                return Ok(wrote);
            };
            self.store.update_metadata(&self.path, MetadataPatch::diff(&before, &meta)).await?;
            wrote = true;
            // A concurrent writer may have replaced the metadata after our
            // read: check that our value is there.
            let after = self.store.read_metadata(&self.path).await?;
            if after.get(&key) == Some(&value) {
                return Ok(true);
            }
        }
        Err(ConsumerError::Contended { name: clip(name) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
    }

    #[test]
    fn names() {
        assert!(validate_consumer_name("web-1@eu/a:b=c+d_e.f").is_ok());
        for bad in ["", "a b", "é", "x\n", &"a".repeat(114)] {
            assert!(matches!(validate_consumer_name(bad), Err(ConsumerError::InvalidName { .. })), "{bad:?}");
        }
        assert!(validate_consumer_name(&"a".repeat(113)).is_ok());
        assert_eq!(consumer_key(&"a".repeat(113)).len(), 128);
    }

    #[test]
    fn record_round_trip_and_decisions() {
        let mut m = Metadata::new();
        m.insert("rekey.other".into(), "x".into());
        assert_eq!(retire_decision(&m, t("2030-01-01T00:00:00Z")), RetireDecision::Nothing);
        let r =
            RetireRecord::new(VersionId::new("1"), VersionId::new("2"), t("2030-01-01T01:00:00Z"), RotationId::new());
        r.write_into(&mut m);
        assert_eq!(RetireRecord::read(&m), Some(r.clone()));

        // Before the deadline, nobody registered: wait.
        let early = t("2030-01-01T00:30:00Z");
        assert_eq!(
            retire_decision(&m, early),
            RetireDecision::Wait { until: t("2030-01-01T01:00:00Z"), behind: vec![] }
        );
        // Registered consumers: one behind, then all on the new version.
        m.insert(consumer_key("a"), "2".into());
        m.insert(consumer_key("b"), NOT_ACKNOWLEDGED.into());
        assert!(matches!(retire_decision(&m, early), RetireDecision::Wait { ref behind, .. } if behind == &["b"]));
        assert_eq!(
            pending_retire_decision(&m, early, false),
            PendingRetire::Refuse { until: t("2030-01-01T01:00:00Z"), behind: vec!["b".into()] }
        );
        assert!(matches!(
            pending_retire_decision(&m, early, true),
            PendingRetire::RetireFirst { reason: RetireReason::Forced, .. }
        ));
        m.insert(consumer_key("b"), "2".into());
        assert_eq!(
            retire_decision(&m, early),
            RetireDecision::Retire { record: r.clone(), reason: RetireReason::AllAcknowledged }
        );
        // After the deadline, whoever is behind.
        m.insert(consumer_key("b"), "1".into());
        assert_eq!(
            retire_decision(&m, t("2030-01-01T01:00:00Z")),
            RetireDecision::Retire { record: r.clone(), reason: RetireReason::GraceEnded }
        );
        assert!(RetireRecord::clear(&mut m));
        assert_eq!(retire_decision(&m, early), RetireDecision::Nothing);
        assert_eq!(consumers(&m).len(), 2);
        assert_eq!(m.get("rekey.other").map(String::as_str), Some("x"));
    }

    #[test]
    fn unreadable_deadline_is_due() {
        let mut m = Metadata::new();
        m.insert(RETIRE_VERSION.into(), "7".into());
        m.insert(RETIRE_DEADLINE.into(), "not a time".into());
        assert!(matches!(
            retire_decision(&m, t("2000-01-01T00:00:00Z")),
            RetireDecision::Retire { reason: RetireReason::GraceEnded, .. }
        ));
    }

    #[test]
    fn consumers_parse_only_their_prefix() {
        let mut m = Metadata::new();
        m.insert("rekey.consumer".into(), "x".into());
        m.insert("rekey.consumer.a".into(), "3".into());
        m.insert("rekey.consumer.b".into(), "-".into());
        m.insert("rekey.consumes".into(), "x".into());
        assert_eq!(
            consumers(&m),
            vec![
                ConsumerRecord { name: "a".into(), version: Some(VersionId::new("3")) },
                ConsumerRecord { name: "b".into(), version: None },
            ]
        );
    }
}
