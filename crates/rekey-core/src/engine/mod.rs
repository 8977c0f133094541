//! The rotation engine: [`RotationManager`] and everything it is built from.
//!
//! * [`clock`] — [`Clock`], [`SystemClock`], [`ManualClock`], [`timeout`].
//! * [`machine`] and [`strategy`] — the pure state machine of a rotation,
//!   one module per strategy.
//! * [`journal`] — a rotation's progress beside the secret, and crash
//!   recovery.
//! * [`consumers`] — consumer tracking ([`ConsumerRegistry`]) and the
//!   dual-write retire record, in the metadata beside the secret.
//! * [`audit`] — [`AuditEvent`]s and [`AuditSink`]s.
//! * [`manager`] — [`RotationManager`]: rotations, schedules, statistics.

pub mod audit;
pub mod binding;
pub mod clock;
pub mod consumers;
pub mod error;
mod fxhash;
pub mod journal;
pub mod machine;
pub mod manager;
pub mod result;
pub mod schedule;
pub mod stats;
pub mod strategy;

pub use audit::{
    AuditError, AuditEvent, AuditEventKind, AuditSink, MemoryAuditSink, RotationTrigger, TracingAuditSink,
};
pub use binding::SecretBinding;
pub use clock::{Clock, ManualClock, SleepFn, SystemClock, TimeoutElapsed, timeout};
pub use consumers::{
    AckOutcome, ConsumerError, ConsumerRecord, ConsumerRegistry, ConsumerStatus, PendingRetire, RetireDecision,
    RetireReason, RetireRecord, RetireResult,
};
pub use error::{RotationError, RotationStep};
pub use journal::{RecoveryDecision, RotationJournal, recovery_decision};
pub use machine::{ActionOutcome, FailurePoint, RotationAction, RotationState, RotationVerdict, next_action};
pub use manager::{ManagerBuildError, RotationManager, RotationManagerBuilder, RotationRequest};
pub use result::{RotationOutcome, RotationResult};
pub use schedule::{Quarantine, ScheduleInfo};
pub use stats::RotationStatistics;
