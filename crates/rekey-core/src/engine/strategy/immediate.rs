//! IMMEDIATE: compare-and-swap the new value in as current, then check it.
//!
//! Success: journal → write (CAS against the version read at the start) →
//! apply on the target\* → verify\* → clear journal.
//!
//! On failure: nothing to undo before the write. After the write, the
//! previous value is always made current again (CAS against the new one): the
//! only steps after the write are the target's and the verifiers' checks, and
//! a value that failed them is never left current, whatever `auto_rollback`
//! says. When the target was touched, it is brought back to the store's
//! current value.
//!
//! \* when a target is bound / verification is required.

use crate::engine::machine::{RotationAction, RotationState, finish};

/// The next action of an immediate rotation.
pub fn next_action(s: &RotationState) -> RotationAction {
    match s.failure {
        None => {
            if !s.journaled {
                RotationAction::Journal
            } else if !s.written {
                RotationAction::Write
            } else if s.has_target && !s.target_applied {
                RotationAction::Apply
            } else if (s.verify || s.has_target) && !s.verified {
                RotationAction::Verify
            } else {
                finish(s)
            }
        }
        Some(_) => {
            if s.undo_failed {
                return finish(s);
            }
            if s.written && !s.rolled_back {
                RotationAction::Rollback
            } else if s.candidate_may_be_on_target() && !s.revoked && (!s.written || s.rolled_back) {
                // Also after a failed apply, as for a staged rotation: it
                // may have landed before the error.
                RotationAction::Revoke
            } else {
                finish(s)
            }
        }
    }
}
