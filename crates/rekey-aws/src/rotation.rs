//! The calls a rotation makes ([`SecretStore::snapshot`],
//! [`SecretStore::stage_rotation`], [`SecretStore::promote_rotation`],
//! [`SecretStore::put_rotation`]) in Secrets Manager's own protocol, at its
//! minimum of API calls. See the crate docs for the table of calls.
//!
//! What each call proves:
//!
//! * `GetSecretValue(AWSCURRENT)`: the current version (the compare-and-swap
//!   base), its creation time and its value (the shape check).
//! * `DescribeSecret`: the tags (the engine's record and journal, `rekey.*`)
//!   and `VersionIdsToStages`, which names every labelled version: whether
//!   this rotation's token already made one (a retry: nothing is written) and
//!   whether another rotation's candidate holds `AWSPENDING` (a stale
//!   candidate, taken over by this stage).
//! * `PutSecretValue(ClientRequestToken = rotation id, VersionStages =
//!   [AWSPENDING])`: the candidate. The token makes a retry idempotent and
//!   the `AWSPENDING` stage is the journal: a crashed rotation leaves a
//!   pending version whose id is its rotation id.
//! * `UpdateSecretVersionStage(AWSCURRENT, MoveToVersionId = candidate,
//!   RemoveFromVersionId = expected)`: the compare-and-swap promote. It fails
//!   (and changes nothing) when `expected` no longer holds `AWSCURRENT`;
//!   Secrets Manager moves `AWSPREVIOUS` to `expected` itself. `AWSPENDING`
//!   stays on the candidate, now current too, unless the store's pending
//!   clean-up is on (off by default): then one `UpdateSecretVersionStage` more
//!   takes it off (see `AwsSecretsStore::with_pending_cleanup`).
//! * `TagResource` / `UntagResource`: only for what the protocol cannot say
//!   (a record's `must` part: a journal to clear, a failure count, a
//!   quarantine, a dual-write retire record); a `may` part alone is dropped.

use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use chrono::Utc;
use futures::future::try_join;
use rekey_core::{
    MetadataPatch, PromoteRequest, PutMode, PutOptions, RecordWrite, RotationId, SecretData, SecretPath, SecretStore,
    SecretVersion, Snapshot, StageOutcome, StageRequest, Staged, Stages, StoreError, VersionId, VersionMeta,
    VersionSelector,
};
use tracing::warn;

use crate::codec::{check_metadata_key, encode_tag_value, encode_value, metadata_from_tags};
use crate::store::{AWSPENDING, AwsSecretsStore, REKEY_WRITING, plausible_version_id, stages_of, token_for};

/// A version made current by this store's compare-and-swap.
fn now_current(id: &VersionId) -> VersionMeta {
    VersionMeta {
        id: id.clone(),
        created_at: Utc::now(),
        stages: Stages { current: true, previous: false, pending: false },
        rotation_id: RotationId::parse(id.as_str()).ok(),
    }
}

/// Checks a patch as `update_metadata` will, before anything is written
/// (so a bad record cannot fail after the secret moved on).
fn check_patch(patch: &MetadataPatch) -> Result<(), StoreError> {
    rekey_core::check_metadata_patch(patch)?;
    for (k, v) in patch.sets() {
        check_metadata_key(k)?;
        encode_tag_value(k, v)?;
    }
    for k in patch.removals() {
        check_metadata_key(k)?;
    }
    Ok(())
}

/// What a record costs a call for: all of it when it has a `must` part
/// (the `may` part rides along in the same call), nothing otherwise.
fn record_patch(record: &RecordWrite, new_version: &VersionId) -> Option<MetadataPatch> {
    record.has_must().then(|| record.all(new_version))
}

impl AwsSecretsStore {
    /// The current version with its value and the secret's description
    /// (tags, stages), the two reads sent at once.
    async fn current_and_description(
        &self,
        path: &SecretPath,
    ) -> Result<(SecretVersion, DescribeSecretOutput), StoreError> {
        try_join(self.read(path, &VersionSelector::Current), self.describe(path)).await
    }

    /// [`SecretStore::snapshot`]: `GetSecretValue(AWSCURRENT)` and
    /// `DescribeSecret`, sent at once.
    pub(crate) async fn rotation_snapshot(&self, path: &SecretPath, with_value: bool) -> Result<Snapshot, StoreError> {
        let (current, described) = self.current_and_description(path).await?;
        let metadata = metadata_from_tags(described.tags());
        Ok(Snapshot::new(current.meta, with_value.then_some(current.data), metadata))
    }

    /// [`SecretStore::stage_rotation`]: without a base, the two reads of a
    /// snapshot, then `PutSecretValue` into `AWSPENDING` with the rotation's
    /// token; with a base (the caller has just read the secret), the
    /// `PutSecretValue` alone. A required journal adds one `TagResource`.
    ///
    /// Without a base, `DescribeSecret`'s stage map replaces the token
    /// pre-check: a version already made with this rotation's token is
    /// returned and nothing is written, and a stale candidate of another
    /// rotation is read (one `GetSecretValue`, only then) to report it as
    /// replaced. With a base there is no pre-check: the engine repeats a
    /// stage only with the same rotation id and the same value, which both
    /// AWS and moto answer with the existing version (moto rewrites a version
    /// still labelled `AWSPENDING` with the same value, which changes
    /// nothing).
    pub(crate) async fn rotation_stage(
        &self,
        path: &SecretPath,
        data: SecretData,
        req: StageRequest,
    ) -> Result<StageOutcome, StoreError> {
        let value = encode_value(&data)?;
        let token = token_for(Some(req.rotation_id));
        let _guard = self.locks.lock(path.as_str()).await;
        let (base, metadata, described) = match (req.base, req.metadata) {
            (Some(base), Some(metadata)) => (base, metadata, None),
            _ => {
                let (current, described) = self.current_and_description(path).await?;
                let snapshot = Snapshot::new(current.meta, Some(current.data), metadata_from_tags(described.tags()));
                if snapshot.journalled() {
                    return Ok(StageOutcome::Journalled(snapshot));
                }
                if let Some(now) = &snapshot.data {
                    rekey_core::check_whole_value(path, now, &data)?;
                }
                (snapshot.current, snapshot.metadata, Some(described))
            }
        };
        let journal_kept = rekey_core::keep_required_journal(self, path, req.journal).await?;
        let mut replaced = None;
        if let Some(stage_map) = described.as_ref().and_then(DescribeSecretOutput::version_ids_to_stages) {
            if stage_map.contains_key(&token) {
                // A retry whose first attempt landed: that version, as it is.
                let candidate = if base.id.as_str() == token {
                    base.clone()
                } else {
                    self.read(path, &VersionSelector::Id(VersionId::new(&token))).await?.meta
                };
                return Ok(StageOutcome::Staged(Staged::new(candidate, base, metadata, journal_kept)));
            }
            if stage_map.iter().any(|(id, labels)| *id != token && stages_of(labels).pending) {
                // A candidate a crashed rotation left: this stage replaces it.
                replaced = match self.read(path, &VersionSelector::Pending).await {
                    Ok(p) => Some(p.meta),
                    Err(StoreError::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                };
            }
        }
        let candidate = self.put_value(path, &value, &token, Some(AWSPENDING)).await?;
        Ok(StageOutcome::Staged(Staged::new(candidate, base, metadata, journal_kept).replacing(replaced)))
    }

    /// [`SecretStore::promote_rotation`]: one `UpdateSecretVersionStage`
    /// (the compare-and-swap), plus the record's tags when it has a `must`
    /// part. Promoting the expected version itself, or an id Secrets Manager
    /// cannot have made, takes the general path of `promote`.
    pub(crate) async fn rotation_promote(
        &self,
        path: &SecretPath,
        req: PromoteRequest<'_>,
    ) -> Result<VersionMeta, StoreError> {
        let patch = record_patch(req.record, req.candidate);
        if let Some(p) = &patch {
            check_patch(p)?;
        }
        let promoted = if req.candidate == req.expected || !plausible_version_id(req.candidate) {
            self.promote(path, req.candidate, req.expected).await?
        } else {
            let _guard = self.locks.lock(path.as_str()).await;
            // moto takes AWSCURRENT off `RemoveFromVersionId` before it
            // checks `MoveToVersionId`; the candidate exists here (this
            // rotation staged it, and versions are never deleted one by one).
            self.move_current(path, req.candidate, req.expected, false).await?;
            if self.pending_cleanup
                && let Err(e) = self.remove_label(path, AWSPENDING, req.candidate.as_str()).await
            {
                warn!(path = path.as_str(), version = %req.candidate, error = %e,
                    "promoted, but AWSPENDING could not be taken off the new current version");
            }
            now_current(req.candidate)
        };
        if let Some(p) = patch {
            self.update_metadata(path, p).await?;
        }
        Ok(promoted)
    }

    /// [`SecretStore::put_rotation`] of a compare-and-swap write with a
    /// rotation id: `PutSecretValue` under [`REKEY_WRITING`] with the
    /// rotation's token, then `UpdateSecretVersionStage` moving `AWSCURRENT`
    /// onto it (the compare-and-swap), plus the record's tags when it has a
    /// `must` part. No token pre-check: the expected version was just read,
    /// and a retried write (same token, same value) returns the version the
    /// first attempt made on AWS and on moto alike. Other writes: `put`,
    /// then the record.
    pub(crate) async fn rotation_put(
        &self,
        path: &SecretPath,
        data: SecretData,
        opts: PutOptions,
        record: &RecordWrite,
    ) -> Result<VersionMeta, StoreError> {
        let (PutMode::IfCurrent(expected), Some(rotation)) = (&opts.mode, opts.rotation_id) else {
            let meta = self.put(path, data, opts).await?;
            if !record.is_empty() {
                self.update_metadata(path, record.all(&meta.id)).await?;
            }
            return Ok(meta);
        };
        let value = encode_value(&data)?;
        let token = token_for(Some(rotation));
        if let Some(p) = record_patch(record, &VersionId::new(&token)) {
            check_patch(&p)?;
        }
        let written = {
            let _guard = self.locks.lock(path.as_str()).await;
            let written = self.put_value(path, &value, &token, Some(REKEY_WRITING)).await?;
            if !written.stages.current {
                // A retry whose first attempt completed is current already.
                self.move_current(path, &written.id, expected, true).await?;
            }
            written
        };
        if let Some(p) = record_patch(record, &written.id) {
            self.update_metadata(path, p).await?;
        }
        Ok(VersionMeta { stages: Stages { current: true, previous: false, pending: false }, ..written })
    }
}
