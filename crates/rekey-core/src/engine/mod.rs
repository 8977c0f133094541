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
mod builder;
pub mod clock;
pub mod consumers;
mod context;
pub mod error;
mod events;
mod health;
mod jobs;
pub mod journal;
pub mod machine;
pub mod manager;
mod quarantine;
mod records;
mod recover;
mod request;
pub mod result;
mod retire;
mod retry;
mod rollback;
mod run;
pub mod schedule;
mod shared;
pub mod stats;
mod step;
pub mod strategy;
mod verify;

pub use audit::{
    AuditError, AuditEvent, AuditEventKind, AuditSink, MemoryAuditSink, RotationTrigger, TracingAuditSink,
};
pub use binding::SecretBinding;
pub use builder::{ManagerBuildError, RotationManagerBuilder};
pub use clock::{Clock, ManualClock, SleepFn, SystemClock, TimeoutElapsed, timeout};
pub use consumers::{
    AckOutcome, ConsumerError, ConsumerRecord, ConsumerRegistry, ConsumerStatus, PendingRetire, RetireDecision,
    RetireReason, RetireRecord, RetireResult,
};
pub use error::{RotationError, RotationStep};
pub use health::StoreHealth;
pub use journal::{RecoveryDecision, RotationJournal, recovery_decision};
pub use machine::{ActionOutcome, FailurePoint, RotationAction, RotationState, RotationVerdict};
pub use manager::RotationManager;
pub use recover::Recovery;
pub use request::RotationRequest;
pub use result::{RotationOutcome, RotationResult};
pub use schedule::{LastFailure, Quarantine, ScheduleInfo, ScheduleRefresh};
pub use stats::RotationStatistics;
pub use strategy::next_action;
