//! [`RotationManager::rollback`]: an operator's rollback — the last value
//! that was current and good becomes current again (never a candidate that
//! failed), on the credential target first when one is bound.

use super::audit::{AuditError, AuditEvent, AuditEventKind};
use super::error::{RotationError, RotationStep};
use super::manager::RotationManager;
use crate::record::{REFUSAL, Rollback, SecretRecord, after_rollback, rollback_plan};
use crate::{SecretPath, SecretStoreExt, StoreError, VersionSelector};

impl RotationManager {
    /// Makes the last value that was current and good current again, with
    /// compare-and-swap against the current version, and records it beside
    /// the secret (the replaced version is never restored by a later
    /// rollback). A version that failed verification is never restored;
    /// with no earlier good version the rollback is refused with
    /// [`RotationError::NothingToRollBack`].
    ///
    /// With a credential target bound ([`bind`](Self::bind)), the target
    /// accepts the restored value before the store serves it; if the
    /// promotion then fails, the target is given the current value back.
    pub async fn rollback(&self, path: &SecretPath) -> Result<Rollback, RotationError> {
        let inner = &*self.inner;
        let step = RotationStep::Rollback;
        // A crashed rotation is cleaned up first (an unchecked value it left
        // current is rolled back by that, and what it wrote is recorded as
        // failed); a live one elsewhere makes the rollback wait.
        if self.recover(path).await? == super::Recovery::InProgressElsewhere {
            return Err(RotationError::InProgressElsewhere { path: path.clone(), rotation_id: None, since: None });
        }
        let store_err = |e: StoreError| match e {
            StoreError::NotFound { what: Some(why), .. } if why.starts_with(REFUSAL) => {
                RotationError::NothingToRollBack {
                    path: path.clone(),
                    reason: why.trim_start_matches(REFUSAL).trim_start_matches(": ").to_owned(),
                }
            }
            e => RotationError::store(step, e),
        };
        let versions = inner.store.list_versions(path).await.map_err(store_err)?;
        let meta = inner.store.read_metadata(path).await.map_err(store_err)?;
        let plan = rollback_plan(path.as_str(), &versions, &SecretRecord::read(&meta)).map_err(store_err)?;
        let target = self.binding(path).and_then(|b| b.target_ref().cloned());
        let mut values = None;
        if let Some(t) = &target {
            let current = inner.store.current(path).await.map_err(store_err)?;
            let restore =
                inner.store.read(path, &VersionSelector::Id(plan.restore.clone())).await.map_err(store_err)?;
            let secrets = [restore.data.secret_parts(), current.data.secret_parts()].concat();
            if let Err(e) = t.apply(&restore.data, Some(&current.data)).await {
                let changed_nothing = e.changed_nothing();
                let cause = RotationError::target(step, t.name(), e.redact(&secrets));
                if changed_nothing {
                    return Err(cause);
                }
                // It may have landed before its error: the target is given
                // the current value back.
                return match t.apply(&current.data, Some(&restore.data)).await {
                    Ok(()) => Err(cause),
                    Err(te) => {
                        let undo = RotationError::target(step, t.name(), te.redact(&secrets));
                        Err(RotationError::UndoFailed { cause: Box::new(cause), undo: Box::new(undo) })
                    }
                };
            }
            values = Some((current, restore));
        }
        let promoted = match inner.store.promote(path, &plan.restore, &plan.replace).await {
            Ok(m) => m,
            Err(e) => {
                if let (Some(t), Some((current, restore))) = (&target, &values) {
                    // The promotion may have happened with only its answer
                    // lost: the target is given whatever the store serves now
                    // (the value before the rollback when it cannot tell).
                    let now_current = inner.store.current(path).await.map(|v| v.data);
                    let keep = now_current.as_ref().unwrap_or(&current.data);
                    if let Err(te) = t.apply(keep, Some(&restore.data)).await {
                        let secrets = [restore.data.secret_parts(), current.data.secret_parts()].concat();
                        let undo = RotationError::target(step, t.name(), te.redact(&secrets));
                        return Err(RotationError::UndoFailed { cause: Box::new(store_err(e)), undo: Box::new(undo) });
                    }
                }
                return Err(store_err(e));
            }
        };
        let now = inner.clock.now();
        let patch = after_rollback(&plan, &promoted.id, now, "manual").patch(&meta);
        let recorded = inner.store.update_metadata(path, patch).await;
        inner.emit_with(|| {
            let mut e = AuditEvent::new(now, AuditEventKind::RolledBack, path.clone());
            e.step = Some(step);
            e.old_version = Some(plan.replace.clone());
            e.new_version = Some(promoted.id.clone());
            e.detail = Some(format!("manual rollback: restored the value of version {}", plan.restore));
            e.error = recorded.as_ref().err().map(|x| AuditError {
                kind: x.kind().to_owned(),
                message: format!("the rollback could not be recorded beside the secret: {x}"),
            });
            e
        });
        Ok(Rollback {
            replaced: plan.replace,
            restored: plan.restore,
            restored_was_current_since: plan.restore_was_current_since,
            current: promoted,
        })
    }
}
