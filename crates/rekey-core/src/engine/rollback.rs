//! [`RotationManager::rollback`]: an operator's rollback — the last value
//! that was current and good becomes current again (never a candidate that
//! failed), on the credential target first when one is bound.

use super::audit::{AuditError, AuditEvent, AuditEventKind};
use super::consumers::RetireRecord;
use super::error::{RotationError, RotationStep};
use super::journal::RotationJournal;
use super::manager::RotationManager;
use super::shared::{Retiring, fresh_rotation_id, lock};
use crate::record::{REFUSAL, Rollback, SecretRecord, after_rollback, rollback_plan};
use crate::{JOURNAL_KEY, MetadataPatch, SecretPath, SecretStoreExt, StoreError, VersionSelector};

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
    /// Such a rollback is journalled beside the secret like a rotation
    /// (`step=rollback`) from before it touches the target until store and
    /// target agree again, so that a crash — or an undo on the target that
    /// fails ([`RotationError::UndoFailed`]) — is finished by the next
    /// recovery, which gives the target the store's current value.
    ///
    /// A rotation of the same secret running in this manager makes it
    /// return [`RotationError::AlreadyRotating`].
    pub async fn rollback(&self, path: &SecretPath) -> Result<Rollback, RotationError> {
        let inner = &*self.inner;
        let step = RotationStep::Rollback;
        // Held throughout: a rotation of this manager must not take the
        // rollback's journal for a crashed one's.
        let Some(_guard) = inner.try_guard(path) else {
            return Err(RotationError::AlreadyRotating { path: path.clone() });
        };
        // A crashed rotation is cleaned up first (an unchecked value it left
        // current is rolled back by that, and what it wrote is recorded as
        // failed); a live one elsewhere makes the rollback wait.
        if let (super::Recovery::InProgressElsewhere, busy) = self.recover_held(path).await? {
            return Err(busy.unwrap_or_else(|| RotationError::InProgressElsewhere {
                path: path.clone(),
                rotation_id: None,
                since: None,
                stale_at: None,
            }));
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
        let rollback_id = fresh_rotation_id();
        let mut values = None;
        let mut journalled = false;
        // Removes the journal once store and target agree again; if that
        // write fails, the journal stays for recovery, which is harmless.
        let clear_journal = || async {
            let mut patch = MetadataPatch::new();
            patch.remove(JOURNAL_KEY);
            let _ = inner.store.update_metadata(path, patch).await;
        };
        if let Some(t) = &target {
            let current = inner.store.current(path).await.map_err(store_err)?;
            let restore =
                inner.store.read(path, &VersionSelector::Id(plan.restore.clone())).await.map_err(store_err)?;
            let line = RotationJournal::rollback_line(
                rollback_id,
                &plan.restore,
                &plan.replace,
                inner.clock.now(),
                &inner.instance,
            );
            if let Some(line) = line {
                let mut patch = MetadataPatch::new();
                patch.set(JOURNAL_KEY, line);
                inner.store.update_metadata(path, patch).await.map_err(store_err)?;
                journalled = true;
            }
            let secrets = [restore.data.secret_parts(), current.data.secret_parts()].concat();
            if let Err(e) = t.apply(&restore.data, Some(&current.data)).await {
                let changed_nothing = e.changed_nothing();
                let cause = RotationError::target(step, t.name(), e.redact(&secrets));
                // It may have landed before its error (unless it says it
                // changed nothing): the target accepts the current value
                // and not the restored one. A failed undo keeps the journal.
                let undone = if changed_nothing { Ok(()) } else { t.revoke(&restore.data, &current.data).await };
                return match undone {
                    Ok(()) => {
                        if journalled {
                            clear_journal().await;
                        }
                        Err(cause)
                    }
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
                    // lost: the target accepts whatever the store serves now
                    // (the value before the rollback when it cannot tell),
                    // and not the other. A failed undo keeps the journal.
                    let now_current = inner.store.current(path).await.map(|v| v.data);
                    let (revoked, keep) = match &now_current {
                        Ok(d) if d.same_as(&restore.data) => (&current.data, d),
                        Ok(d) => (&restore.data, d),
                        Err(_) => (&restore.data, &current.data),
                    };
                    if let Err(te) = t.revoke(revoked, keep).await {
                        let secrets = [restore.data.secret_parts(), current.data.secret_parts()].concat();
                        let undo = RotationError::target(step, t.name(), te.redact(&secrets));
                        return Err(RotationError::UndoFailed { cause: Box::new(store_err(e)), undo: Box::new(undo) });
                    }
                    if journalled && now_current.is_ok() {
                        clear_journal().await;
                    }
                }
                return Err(store_err(e));
            }
        };
        let now = inner.clock.now();
        // On a target that keeps both, the replaced credential (the one
        // rolled back from) is revoked too; if that fails, a retire step is
        // recorded for the retire pass (the rollback has happened).
        let mut retire = None;
        if let (Some(t), Some((current, restore))) = (&target, &values)
            && inner.keeps_both(path, t.as_ref())
            && !current.data.same_as(&restore.data)
            && let Err(e) = t.revoke(&current.data, &restore.data).await
        {
            let secrets = [restore.data.secret_parts(), current.data.secret_parts()].concat();
            let e = RotationError::target(step, t.name(), e.redact(&secrets));
            inner.emit_with(|| {
                let mut a = AuditEvent::new(now, AuditEventKind::RetireFailed, path.clone());
                a.step = Some(RotationStep::Retire);
                a.error = Some(AuditError { kind: e.kind().to_owned(), message: e.to_string() });
                a
            });
            retire = Some(RetireRecord::new(plan.replace.clone(), promoted.id.clone(), now, rollback_id));
        }
        let mut patch = after_rollback(&plan, &promoted.id, now, "manual").patch(&meta);
        if let Some(record) = &retire {
            let mut after = meta.clone();
            record.write_into(&mut after);
            patch.extend(MetadataPatch::diff(&meta, &after));
            lock(&inner.retiring).insert(path.clone(), Retiring { target: target.clone(), deadline: Some(now) });
        }
        if journalled {
            // Store and target agree: the record's write ends the journal.
            patch.remove(JOURNAL_KEY);
        }
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
