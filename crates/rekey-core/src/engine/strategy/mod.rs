//! One module per rotation strategy: the pure step sequence of each.
//!
//! | strategy | module | sequence (success) |
//! |---|---|---|
//! | immediate | [`immediate`] | journal → write (CAS) → apply\* → verify\* → clear journal |
//! | staged | [`staged`] | journal → stage → apply\* → verify\* → promote (CAS) → confirm\* → clear journal |
//! | dual-write | [`dual_write`] | journal → stage → apply beside the old\* → verify\* → promote (CAS) → confirm\* → clear journal + record the retire step; later: retire (revoke the old credential) |
//! | blue-green | [`blue_green`] | journal → stage the inactive set → apply\* → verify\* → promote (CAS) → confirm\* → clear journal |
//!
//! \* only when a credential target is bound (apply, confirm) or the policy
//! requires verification (verify).
//!
//! Adding a strategy: give it a module with a pure `next_action(&RotationState)
//! -> RotationAction`, route it in [`next_action`] and
//! mark it supported in [`supported`]. Steps that a strategy performs *after*
//! a rotation (dual-write's retire-after-grace) are separate scheduled work,
//! journalled beside the secret like a rotation.

pub mod blue_green;
pub mod dual_write;
pub mod immediate;
pub mod staged;

use crate::engine::machine::{RotationAction, RotationState};
use crate::policy::RotationStrategy;

/// Decides the next action of a rotation. Pure: same state, same answer.
///
/// See [`RotationState`] and the strategy modules for the sequences.
pub fn next_action(state: &RotationState) -> RotationAction {
    match state.strategy {
        RotationStrategy::Immediate => immediate::next_action(state),
        RotationStrategy::Staged => staged::next_action(state),
        RotationStrategy::DualWrite => dual_write::next_action(state),
        RotationStrategy::BlueGreen => blue_green::next_action(state),
    }
}

/// Whether this engine has a state machine for `strategy`.
pub fn supported(strategy: RotationStrategy) -> bool {
    match strategy {
        RotationStrategy::Immediate | RotationStrategy::Staged => true,
        RotationStrategy::DualWrite => dual_write::SUPPORTED,
        RotationStrategy::BlueGreen => blue_green::SUPPORTED,
    }
}
