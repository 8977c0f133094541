//! DUAL_WRITE: the new credential is applied beside the old one, verified and
//! made current; the old one stays valid until a grace period ends or every
//! consumer has moved, then a scheduled retire step revokes it.
//!
//! Not implemented by this engine yet: a rotation with this strategy returns
//! [`RotationError::StrategyNotSupported`](crate::RotationError::StrategyNotSupported)
//! and changes nothing. The extension point: a pure `next_action` over
//! [`RotationState`](crate::RotationState) here (journal → stage → apply beside
//! the old credential → verify → promote → record the grace deadline in the
//! journal), plus a retire pass run by the scheduler.

/// Whether the engine runs this strategy.
pub const SUPPORTED: bool = false;
