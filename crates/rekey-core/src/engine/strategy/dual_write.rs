//! DUAL_WRITE: the new credential is applied beside the old one, verified and
//! made current; the old one stays valid until a grace period ends or every
//! consumer has moved, then a scheduled retire step revokes it.
//!
//! # The rotation
//!
//! Success: journal → stage → apply on the target *beside* the current
//! credential (`target.apply(candidate, Some(current))`)\* → verify\* →
//! promote (CAS against the version read at the start) → confirm on the
//! target\* → clear the journal **and** record the retire step in the same
//! metadata write (see [`consumers`](crate::engine::consumers): the
//! `rekey.retire.*` keys name the version to retire, the version that
//! replaced it and the grace deadline).
//!
//! Replacing the journal by the retire record in one write means there is
//! never a moment when neither is in the metadata: a process that crashes
//! before that write leaves a journal whose `base` is the version to retire,
//! and the recovery of the next run records the retire step from it.
//!
//! On failure before promotion the candidate is revoked on the target
//! (`target.revoke(candidate, keep = current)`; also after a failed apply,
//! which may have landed) and then discarded from the store: the old
//! credential never stopped working. Revoking first means a failed revoke
//! leaves the candidate staged, so the next run's recovery finds it and
//! revokes it — it is never left valid on the target unrecorded. On failure after
//! promotion (the target's confirmation) the previous value is made current
//! again when the policy sets `auto_rollback`, and the candidate is revoked
//! on the target likewise.
//!
//! \* when a target is bound / verification is required.
//!
//! # Targets
//!
//! A bound target must keep two credentials valid at once
//! ([`TargetCapabilities::concurrent_credentials`], e.g. a Redis ACL user);
//! otherwise applying the candidate would break the credential in use, which
//! is what this strategy exists to avoid. [`target_refusal`] is the
//! pre-flight check, run before anything is written. Without a target the
//! strategy is store-only: the old value stays readable as the previous
//! version until it is retired.
//!
//! # The retire step
//!
//! Run by the scheduler after the rotation, decided by
//! [`retire_decision`](crate::engine::consumers::retire_decision): due when
//! the grace deadline has passed, or earlier when at least one consumer is
//! registered and every registered consumer has acknowledged the new version.
//! It revokes the old credential on the target (`target.revoke(old, keep =
//! new)`, idempotent) and then removes the record. A rotation started while a
//! retire step is pending first performs it when it is due, or when the
//! rotation is an emergency; otherwise it is refused, because retiring early
//! would break consumers still on the old credential
//! ([`pending_retire_decision`](crate::engine::consumers::pending_retire_decision)).

use crate::TargetCapabilities;
use crate::engine::machine::{RotationAction, RotationState};

/// Whether the engine runs this strategy.
pub const SUPPORTED: bool = true;

/// The next action of a dual-write rotation. Pure: same state, same answer.
pub fn next_action(s: &RotationState) -> RotationAction {
    // The same step sequence as a staged rotation, undo included; what
    // differs is what the manager does at each step (see the module docs).
    super::staged::next_action(s)
}

/// Why a target cannot take part in a dual-write rotation, or `None` when it
/// can. Checked before anything is written; `name` is the target's
/// [`name`](crate::CredentialTarget::name), for the message.
///
/// ```
/// use rekey_core::TargetCapabilities;
/// use rekey_core::engine::strategy::dual_write::target_refusal;
/// assert!(target_refusal("redis", TargetCapabilities { concurrent_credentials: true }).is_none());
/// let why = target_refusal("postgres", TargetCapabilities { concurrent_credentials: false });
/// assert!(why.unwrap().contains("blue-green"));
/// ```
pub fn target_refusal(name: &str, caps: TargetCapabilities) -> Option<String> {
    if caps.concurrent_credentials {
        return None;
    }
    Some(format!(
        "the dual-write strategy keeps the old and the new credential valid at once, \
         but target `{name}` holds one credential per identity: applying the new one would \
         break the one in use; use the blue-green strategy (two alternating identities) or \
         the staged strategy instead"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::machine::{ActionOutcome, RotationVerdict};
    use crate::policy::RotationStrategy;

    fn run(target: bool, verify: bool, auto_rollback: bool, fail: Option<RotationAction>) -> Vec<RotationAction> {
        let mut s = RotationState::new(RotationStrategy::DualWrite, verify, target, auto_rollback);
        let mut steps = Vec::new();
        for _ in 0..32 {
            let a = next_action(&s);
            steps.push(a);
            if let RotationAction::Finish(_) = a {
                return steps;
            }
            let outcome = if Some(a) == fail { ActionOutcome::Failed } else { ActionOutcome::Done };
            s.record(a, outcome);
        }
        panic!("no finish: {steps:?}");
    }

    use RotationAction::*;

    #[test]
    fn success_with_target() {
        assert_eq!(
            run(true, true, true, None),
            [Journal, Stage, Apply, Verify, Promote, Confirm, ClearJournal, Finish(RotationVerdict::Succeeded)]
        );
    }

    #[test]
    fn store_only() {
        assert_eq!(
            run(false, false, true, None),
            [Journal, Stage, Promote, ClearJournal, Finish(RotationVerdict::Succeeded)]
        );
    }

    #[test]
    fn failure_before_promote_discards_and_revokes() {
        assert_eq!(
            run(true, true, true, Some(Verify)),
            [Journal, Stage, Apply, Verify, Revoke, Discard, ClearJournal, Finish(RotationVerdict::RolledBack)]
        );
        assert_eq!(
            run(true, true, true, Some(Apply)),
            [Journal, Stage, Apply, Revoke, Discard, ClearJournal, Finish(RotationVerdict::RolledBack)]
        );
    }

    #[test]
    fn failure_after_promote_rolls_back_when_allowed() {
        assert_eq!(
            run(true, true, true, Some(Confirm)),
            [
                Journal,
                Stage,
                Apply,
                Verify,
                Promote,
                Confirm,
                Rollback,
                Revoke,
                ClearJournal,
                Finish(RotationVerdict::RolledBack)
            ]
        );
        assert_eq!(
            run(true, true, false, Some(Confirm)),
            [Journal, Stage, Apply, Verify, Promote, Confirm, ClearJournal, Finish(RotationVerdict::Failed)]
        );
    }

    #[test]
    fn refusal() {
        assert!(target_refusal("redis", TargetCapabilities { concurrent_credentials: true }).is_none());
        assert!(target_refusal("pg", TargetCapabilities::default()).is_some_and(|m| m.contains("`pg`")));
    }
}
