//! The rotation state machine: pure decisions over plain values.
//!
//! A rotation in flight is a [`RotationState`] (what it must do, what it has
//! done, whether it is failing). [`next_action`](crate::next_action) decides the next
//! [`RotationAction`] from that state alone; the manager performs the action
//! against the store, target or verifiers and feeds the outcome back with
//! [`RotationState::record`]. Neither function does any I/O, so every path
//! through a rotation — including every failure at every step — is a plain
//! unit test.
//!
//! ```
//! use rekey_core::{next_action, ActionOutcome, RotationAction, RotationState, RotationStrategy};
//! let mut s = RotationState::new(RotationStrategy::Staged, true, false, true);
//! let mut steps = Vec::new();
//! loop {
//!     let a = next_action(&s);
//!     steps.push(a);
//!     if let RotationAction::Finish(_) = a { break; }
//!     // The verification fails; everything else succeeds.
//!     let outcome = if a == RotationAction::Verify { ActionOutcome::Failed } else { ActionOutcome::Done };
//!     s.record(a, outcome);
//! }
//! use RotationAction::*;
//! assert_eq!(steps, [Journal, Stage, Verify, Discard, ClearJournal, Finish(rekey_core::RotationVerdict::RolledBack)]);
//! ```

use serde::Serialize;

use super::RotationStep;
use crate::policy::RotationStrategy;

/// The next thing a rotation does, decided by [`next_action`](crate::next_action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RotationAction {
    /// Record the rotation (id, strategy, base version, start time) in the
    /// metadata beside the secret, before the first write.
    Journal,
    /// Stage the candidate (staged strategy).
    Stage,
    /// Write the candidate as current with compare-and-swap (immediate
    /// strategy).
    Write,
    /// Make the candidate valid on the credential target.
    Apply,
    /// Run the verification tests (and the target's test) on the candidate.
    Verify,
    /// Promote the staged candidate with compare-and-swap.
    Promote,
    /// Test the new current credential on the target after promotion.
    Confirm,
    /// Discard the staged candidate.
    Discard,
    /// Make the previous version current again.
    Rollback,
    /// Make the target accept the store's current value again (revoking the
    /// candidate).
    Revoke,
    /// Clear the rotation journal.
    ClearJournal,
    /// Stop: the rotation is over.
    Finish(RotationVerdict),
}

impl RotationAction {
    /// The step this action belongs to, for errors and audit events.
    pub fn step(self) -> RotationStep {
        match self {
            Self::Journal => RotationStep::Journal,
            Self::Stage => RotationStep::Stage,
            Self::Write => RotationStep::Write,
            Self::Apply => RotationStep::Apply,
            Self::Verify => RotationStep::Verify,
            Self::Promote => RotationStep::Promote,
            Self::Confirm => RotationStep::Confirm,
            Self::Discard => RotationStep::Discard,
            Self::Rollback => RotationStep::Rollback,
            Self::Revoke => RotationStep::Revoke,
            Self::ClearJournal | Self::Finish(_) => RotationStep::Cleanup,
        }
    }
}

/// How a rotation ended, as far as the state machine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationVerdict {
    /// The new value is current (and verified when asked).
    Succeeded,
    /// The rotation failed and its writes were undone: the value that was
    /// current before is current (and valid on the target) again.
    RolledBack,
    /// The rotation failed; nothing needed undoing, or the undo was not
    /// allowed (`auto_rollback` off) or failed.
    Failed,
}

/// What became of an action, fed back with [`RotationState::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOutcome {
    /// It succeeded.
    Done,
    /// It failed (after retries).
    Failed,
    /// A compare-and-swap lost: another process changed the secret.
    Conflict,
}

/// Where a rotation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePoint {
    /// The failing action.
    pub action: RotationAction,
    /// Whether it was a lost compare-and-swap.
    pub conflict: bool,
}

/// Everything [`next_action`](crate::next_action) needs to know about a rotation in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RotationState {
    /// The strategy.
    pub strategy: RotationStrategy,
    /// Whether verification tests must pass.
    pub verify: bool,
    /// Whether a credential target is bound.
    pub has_target: bool,
    /// Whether to make the previous value current again after a failure
    /// that happens once the new value is current.
    pub auto_rollback: bool,
    /// The journal was written.
    pub journaled: bool,
    /// The candidate was written (staged, or made current by `Write`).
    pub written: bool,
    /// The candidate was applied on the target.
    pub target_applied: bool,
    /// Verification passed.
    pub verified: bool,
    /// The staged candidate was promoted.
    pub promoted: bool,
    /// The target accepted the new current value after promotion.
    pub confirmed: bool,
    /// Where the rotation failed, if it did.
    pub failure: Option<FailurePoint>,
    /// The candidate was discarded.
    pub discarded: bool,
    /// The previous value was made current again.
    pub rolled_back: bool,
    /// The target was brought back to the store's current value.
    pub revoked: bool,
    /// An undo action failed (no further undo is attempted).
    pub undo_failed: bool,
    /// The journal-clearing step ran (successfully or not).
    pub journal_cleared: bool,
    /// The failed `Apply` changed nothing on the target (the target said
    /// so: [`TargetError::NothingChanged`](crate::TargetError::NothingChanged)),
    /// so there is nothing to revoke there.
    pub apply_changed_nothing: bool,
}

impl RotationState {
    /// The state before the first action.
    pub fn new(strategy: RotationStrategy, verify: bool, has_target: bool, auto_rollback: bool) -> Self {
        Self {
            strategy,
            verify,
            has_target,
            auto_rollback,
            journaled: false,
            written: false,
            target_applied: false,
            verified: false,
            promoted: false,
            confirmed: false,
            failure: None,
            discarded: false,
            rolled_back: false,
            revoked: false,
            undo_failed: false,
            journal_cleared: false,
            apply_changed_nothing: false,
        }
    }

    /// Whether the candidate may be on the target: applied, or its apply
    /// failed without the target saying it changed nothing (it may have
    /// landed before the error).
    pub fn candidate_may_be_on_target(&self) -> bool {
        self.target_applied
            || (self.failure.is_some_and(|f| f.action == RotationAction::Apply) && !self.apply_changed_nothing)
    }

    /// Whether the candidate is (or was at some point) the current value.
    pub fn candidate_went_current(&self) -> bool {
        match self.strategy {
            RotationStrategy::Immediate => self.written,
            _ => self.promoted,
        }
    }

    /// Records what became of `action`.
    pub fn record(&mut self, action: RotationAction, outcome: ActionOutcome) {
        let ok = outcome == ActionOutcome::Done;
        let undo = matches!(action, RotationAction::Discard | RotationAction::Rollback | RotationAction::Revoke);
        if !ok {
            if undo {
                self.undo_failed = true;
            } else if action == RotationAction::ClearJournal {
                // A journal left behind is cleaned up by the next run; it
                // changes nothing about this rotation's outcome.
                self.journal_cleared = true;
            } else if self.failure.is_none() {
                self.failure = Some(FailurePoint { action, conflict: outcome == ActionOutcome::Conflict });
            }
            return;
        }
        match action {
            RotationAction::Journal => self.journaled = true,
            RotationAction::Stage | RotationAction::Write => self.written = true,
            RotationAction::Apply => self.target_applied = true,
            RotationAction::Verify => self.verified = true,
            RotationAction::Promote => self.promoted = true,
            RotationAction::Confirm => self.confirmed = true,
            RotationAction::Discard => self.discarded = true,
            RotationAction::Rollback => self.rolled_back = true,
            RotationAction::Revoke => self.revoked = true,
            RotationAction::ClearJournal => self.journal_cleared = true,
            RotationAction::Finish(_) => {}
        }
    }

    fn verdict(&self) -> RotationVerdict {
        if self.failure.is_none() {
            RotationVerdict::Succeeded
        } else if !self.undo_failed && (self.discarded || self.rolled_back) {
            RotationVerdict::RolledBack
        } else {
            RotationVerdict::Failed
        }
    }

    fn finish(&self) -> RotationAction {
        // After a failed undo the journal stays, so that the next run
        // recognises the leftovers as a crashed rotation's and cleans them up.
        if self.journaled && !self.journal_cleared && !self.undo_failed {
            RotationAction::ClearJournal
        } else {
            RotationAction::Finish(self.verdict())
        }
    }
}

pub(crate) fn finish(state: &RotationState) -> RotationAction {
    state.finish()
}
