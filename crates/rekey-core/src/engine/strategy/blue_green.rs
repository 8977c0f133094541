//! BLUE_GREEN: two complete credential sets; the inactive one (named by the
//! previous version's value) is re-keyed, verified and promoted, and the
//! formerly active set stays valid until the next rotation.
//!
//! Not implemented by this engine yet: a rotation with this strategy returns
//! [`RotationError::StrategyNotSupported`](crate::RotationError::StrategyNotSupported)
//! and changes nothing. The extension point: a pure `next_action` over
//! [`RotationState`](crate::RotationState) here, whose candidate is built from
//! the *previous* version instead of the current one.

/// Whether the engine runs this strategy.
pub const SUPPORTED: bool = false;
