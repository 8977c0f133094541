//! The writes of a rotation that carry its record: a `put` or the
//! promotion of a staged candidate, with the rotation's record written in
//! the same metadata PATCH as the rotation id of the new version (one
//! request instead of two).

use std::sync::atomic::{AtomicBool, Ordering};

use rekey_core::{
    PutMode, PutOptions, RecordWrite, RotationId, SecretData, SecretPath, StoreError, VersionId, VersionMeta,
};
use serde_json::Value;

use crate::codec::{self, Id, KvBody};
use crate::store::{VaultStore, live_versions, meta_from_md, written_meta};

impl VaultStore {
    /// [`SecretStore::put`], with `extra` (a rotation's record) written in
    /// the same metadata PATCH as the rotation id. Returns whether `extra`
    /// was written (not when an earlier attempt's version is returned).
    pub(crate) async fn put_with(
        &self,
        path: &SecretPath,
        data: SecretData,
        opts: PutOptions,
        extra: Option<&RecordWrite>,
    ) -> Result<(VersionMeta, bool), StoreError> {
        self.staging(path)?;
        let p = path.as_str();
        let body = KvBody(Value::Object(codec::to_kv(&data)));
        drop(data);
        let cas = match &opts.mode {
            PutMode::Create => Some(0),
            PutMode::IfCurrent(id) => match codec::parse_id(id) {
                Id::Kv(n) => Some(n),
                // No staged or foreign id is ever current.
                Id::Staged(_) | Id::Unknown => {
                    let md = self.metadata_of(path).await?;
                    if let Some(n) = opts.rotation_id.and_then(|r| codec::find_recorded(md.custom_metadata.as_ref(), r))
                    {
                        return meta_from_md(&md, n).map(|m| (m, false));
                    }
                    return Err(StoreError::Conflict {
                        path: p.to_owned(),
                        expected: Some(id.clone()),
                        actual: Some(codec::kv_id(md.current_version)),
                    });
                }
            },
            PutMode::Overwrite => {
                // No compare-and-swap to fail: look for an earlier attempt first.
                if let Some(r) = opts.rotation_id {
                    match self.metadata_of(path).await {
                        Ok(md) => {
                            if let Some(n) = codec::find_recorded(md.custom_metadata.as_ref(), r) {
                                return meta_from_md(&md, n).map(|m| (m, false));
                            }
                        }
                        Err(StoreError::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                None
            }
        };
        match self.kv_write(p, &body, cas).await {
            Ok(w) => {
                let recorded = match opts.rotation_id {
                    Some(r) => {
                        self.record(path, &w, r, extra).await?;
                        extra.is_some()
                    }
                    None => false,
                };
                written_meta(&w, opts.rotation_id).map(|m| (m, recorded))
            }
            Err(f) if f.is_cas_mismatch() => {
                // Only now pay for the metadata read: was it our own earlier
                // attempt (a retry), someone else, or is the secret gone?
                let md = match self.kv_metadata(p).await {
                    Ok(md) if md.current_version > 0 => Some(md),
                    Ok(_) => None,
                    Err(f) if f.is_status(404) => None,
                    Err(f) => return Err(self.err(&f, p)),
                };
                if let (Some(md), Some(r)) = (&md, opts.rotation_id)
                    && let Some(n) = codec::find_recorded(md.custom_metadata.as_ref(), r)
                {
                    return meta_from_md(md, n).map(|m| (m, false));
                }
                match (&opts.mode, md) {
                    (PutMode::Create, _) => Err(StoreError::AlreadyExists { path: p.to_owned() }),
                    (_, None) => Err(StoreError::not_found(p, None)),
                    (_, Some(md)) => Err(StoreError::Conflict {
                        path: p.to_owned(),
                        expected: cas.map(codec::kv_id),
                        actual: Some(codec::kv_id(md.current_version)),
                    }),
                }
            }
            Err(f) => Err(self.err(&f, p)),
        }
    }

    /// The promotion of a staged candidate whose value the caller holds (the
    /// engine passes the value it staged): three requests, the
    /// compare-and-swap write of the value, the metadata PATCH with the
    /// rotation id and `extra`, and the removal of the staging entry. The
    /// candidate is not read back: the compare-and-swap against `expected`
    /// decides, as for any promote, which of two racing rotations wins, and
    /// the engine never promotes a candidate once it has run long enough for
    /// another process to take it over (`RotationError::Overran`), so a
    /// candidate replaced or discarded by a stale-rotation takeover is never
    /// promoted behind the taker's back.
    pub(crate) async fn promote_staged_value(
        &self,
        path: &SecretPath,
        rotation: RotationId,
        expected: u64,
        value: &SecretData,
        extra: Option<&RecordWrite>,
    ) -> Result<(VersionMeta, bool), StoreError> {
        let p = path.as_str();
        let loc = self.staging(path)?;
        let body = KvBody(Value::Object(codec::to_kv(value)));
        match self.kv_write(p, &body, Some(expected)).await {
            Ok(w) => {
                self.record(path, &w, rotation, extra).await?;
                if let Err(f) = self.kv_destroy_all(&loc).await {
                    // The promote happened; the leftover candidate is replaced
                    // by the next stage or removed by discard.
                    tracing::warn!(path = p, error = %self.err(&f, p), "promoted, but could not remove the staging entry");
                }
                written_meta(&w, Some(rotation)).map(|m| (m, extra.is_some()))
            }
            // Lost the race, or an earlier attempt of this call won and its
            // answer was lost: a conflict either way (the caller sees its
            // rotation id on the current version).
            Err(f) if f.is_cas_mismatch() => Err(self.conflict(path, Some(expected)).await),
            Err(f) => Err(self.err(&f, p)),
        }
    }

    /// [`SecretStore::promote`], writing `extra` with the promotion when it
    /// can; returns whether it did.
    pub(crate) async fn promote_with(
        &self,
        path: &SecretPath,
        version: &VersionId,
        expected_current: &VersionId,
        extra: Option<&RecordWrite>,
    ) -> Result<(VersionMeta, bool), StoreError> {
        let recorded = AtomicBool::new(false);
        let meta = self.promote_inner(path, version, expected_current, extra, &recorded).await?;
        Ok((meta, recorded.load(Ordering::Relaxed)))
    }

    /// The body of [`SecretStore::promote`]; a staged candidate's
    /// promotion writes `extra` (the rotation's record) in the same
    /// metadata PATCH as the rotation id, and then sets `recorded`.
    pub(crate) async fn promote_inner(
        &self,
        path: &SecretPath,
        version: &VersionId,
        expected_current: &VersionId,
        extra: Option<&RecordWrite>,
        recorded: &AtomicBool,
    ) -> Result<VersionMeta, StoreError> {
        let p = path.as_str();
        let loc = self.staging(path)?;
        let missing = || StoreError::not_found(p, Some(format!("version {version}")));
        let expected = match codec::parse_id(expected_current) {
            Id::Kv(n) => Some(n),
            _ => None,
        };
        match codec::parse_id(version) {
            Id::Staged(rid) => {
                let staged = match self.read_staged(path).await? {
                    Some((s, _)) if s.rotation == rid => s,
                    _ => {
                        // Not staged (any more). If it was promoted, the
                        // candidate lives on as the KV version recorded for its
                        // rotation: promoting it again is a no-op when it is
                        // current and `expected` names it, else a `Conflict`
                        // (as for any other existing version).
                        let md = self.metadata_of(path).await?;
                        return match codec::find_recorded(md.custom_metadata.as_ref(), rid) {
                            Some(_) if Some(md.current_version) != expected => Err(StoreError::Conflict {
                                path: p.to_owned(),
                                expected: Some(expected_current.clone()),
                                actual: Some(codec::kv_id(md.current_version)),
                            }),
                            Some(n) if n == md.current_version => meta_from_md(&md, n),
                            _ => Err(missing()),
                        };
                    }
                };
                let Some(exp) = expected else {
                    return Err(self.conflict(path, None).await);
                };
                match self.kv_write(p, &staged.candidate, Some(exp)).await {
                    Ok(w) => {
                        self.record(path, &w, rid, extra).await?;
                        recorded.store(extra.is_some(), Ordering::Relaxed);
                        if let Err(f) = self.kv_destroy_all(&loc).await {
                            // The promote happened; the leftover candidate is
                            // replaced by the next stage or removed by discard.
                            tracing::warn!(path = p, error = %self.err(&f, p), "promoted, but could not remove the staging entry");
                        }
                        written_meta(&w, Some(rid))
                    }
                    // Lost the race (possibly to another promoter of this very
                    // candidate, or to an earlier attempt of this call whose
                    // answer was lost: the contract makes promote a plain
                    // compare-and-swap, so that is a conflict too; the
                    // caller sees its rotation id on the current version).
                    Err(f) if f.is_cas_mismatch() => Err(self.conflict(path, Some(exp)).await),
                    Err(f) => Err(self.err(&f, p)),
                }
            }
            Id::Kv(n) => {
                if Some(n) == expected {
                    // Already current (if `expected` is right): nothing to write.
                    let md = self.metadata_of(path).await?;
                    if !live_versions(&md).iter().any(|(v, _)| *v == n) {
                        return Err(missing());
                    }
                    if md.current_version != n {
                        return Err(StoreError::Conflict {
                            path: p.to_owned(),
                            expected: Some(expected_current.clone()),
                            actual: Some(codec::kv_id(md.current_version)),
                        });
                    }
                    return meta_from_md(&md, n);
                }
                // Rollback (or roll forward): copy that version's value in.
                let r = self.kv_read(p, Some(n)).await.map_err(|f| match self.err(&f, p) {
                    StoreError::NotFound { .. } => missing(),
                    e => e,
                })?;
                if r.metadata.destroyed || codec::deleted(&r.metadata.deletion_time) {
                    return Err(missing());
                }
                let body = KvBody(r.data);
                let Some(exp) = expected else {
                    return Err(self.conflict(path, None).await);
                };
                match self.kv_write(p, &body, Some(exp)).await {
                    Ok(w) => written_meta(&w, None),
                    Err(f) if f.is_cas_mismatch() => Err(self.conflict(path, Some(exp)).await),
                    Err(f) => Err(self.err(&f, p)),
                }
            }
            Id::Unknown => {
                self.metadata_of(path).await?;
                Err(missing())
            }
        }
    }
}
