//! STAGED: stage a candidate, prove it, then promote it atomically.
//!
//! Success: journal → stage → apply on the target\* → verify\* → promote (CAS
//! against the version read at the start) → confirm on the target\* → clear
//! journal.
//!
//! On failure before promotion the target, if touched (or if an apply was
//! attempted: it may have landed before its error), is brought back to the
//! store's current value, which never changed, and then the candidate is
//! discarded (always: a stuck candidate is never left behind). On failure after
//! promotion (the target's confirmation) the previous value is made current
//! again when the policy sets `auto_rollback`, and the target follows.
//!
//! \* when a target is bound / verification is required.

use crate::engine::machine::{RotationAction, RotationState, finish};

/// The next action of a staged rotation.
pub fn next_action(s: &RotationState) -> RotationAction {
    match s.failure {
        None => {
            if !s.journaled {
                RotationAction::Journal
            } else if !s.written {
                RotationAction::Stage
            } else if s.has_target && !s.target_applied {
                RotationAction::Apply
            } else if (s.verify || s.has_target) && !s.verified {
                RotationAction::Verify
            } else if !s.promoted {
                RotationAction::Promote
            } else if s.has_target && !s.confirmed {
                RotationAction::Confirm
            } else {
                finish(s)
            }
        }
        Some(_) => {
            if s.undo_failed {
                return finish(s);
            }
            if s.promoted {
                if s.auto_rollback && !s.rolled_back {
                    return RotationAction::Rollback;
                }
                return if s.target_applied && s.rolled_back && !s.revoked {
                    RotationAction::Revoke
                } else {
                    finish(s)
                };
            }
            // Not promoted: the candidate leaves the target first (also when
            // its apply failed: it may have landed before the error), then
            // the store. A failed revoke thus leaves the candidate staged and
            // journalled, and the next run's recovery revokes it from the
            // target.
            if s.candidate_may_be_on_target() && !s.revoked {
                RotationAction::Revoke
            } else if s.written && !s.discarded {
                RotationAction::Discard
            } else {
                finish(s)
            }
        }
    }
}
