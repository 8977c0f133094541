//! The one-shot commands: check, plan, rotate, emergency, status, history,
//! rollback, resume (`rekey run` is in `daemon.rs`).

mod check;
mod inspect;
mod repair;
mod rotate;

pub use check::{check, plan};
pub use inspect::{history, status};
pub use repair::{resume, rollback};
pub use rotate::{emergency, rotate};
