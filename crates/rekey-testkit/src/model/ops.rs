//! The operations a model test sequence is made of, and how proptest
//! draws them.

use std::time::Duration;

use proptest::prelude::*;
use rekey_core::RotationStrategy;
use rekey_memory::Method;

use super::{DAY, SECRETS};

/// What a verifier does with the next candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Accepts.
    Pass,
    /// Rejects.
    Fail,
    /// Never answers (the policy's timeout fails it).
    Hang,
}

/// How a rotation gets its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// Generated.
    Generated,
    /// Supplied, meeting the generator's constraints.
    CustomValid,
    /// Supplied, breaking them (refused, nothing written).
    CustomInvalid,
}

/// One operation of a sequence.
#[derive(Debug, Clone)]
pub enum Op {
    /// A manual rotation.
    Rotate {
        /// Which secret.
        secret: usize,
        /// Which manager.
        manager: usize,
        /// Its strategy.
        strategy: RotationStrategy,
        /// Its value.
        value: Value,
    },
    /// Both managers rotate the same secret at once.
    Race {
        /// Which secret.
        secret: usize,
        /// Their strategy.
        strategy: RotationStrategy,
    },
    /// Sets a secret's verifier mode.
    SetVerifier {
        /// Which secret.
        secret: usize,
        /// The mode.
        mode: Mode,
    },
    /// A manual rollback.
    Rollback {
        /// Which secret.
        secret: usize,
        /// Which manager.
        manager: usize,
    },
    /// Lifts a quarantine (through manager 0, as `rekey resume` would).
    Resume {
        /// Which secret.
        secret: usize,
    },
    /// Moves the clock and lets both managers run what is due.
    Tick {
        /// By how much.
        advance: Duration,
    },
    /// The store is unreachable from now for this long (clock time).
    Outage {
        /// How long.
        length: Duration,
    },
    /// The `nth` next call of `method` fails once.
    Fault {
        /// The method.
        method: Method,
        /// Which call.
        nth: u64,
        /// Whether the call happens and only its answer is lost.
        lost_response: bool,
    },
    /// A rotation crashes before its `at`-th store call; its manager then
    /// recovers the secret.
    Crash {
        /// Which secret.
        secret: usize,
        /// Which manager.
        manager: usize,
        /// Its strategy.
        strategy: RotationStrategy,
        /// Before which store call (1-based).
        at: u64,
    },
    /// What a daemon's periodic recheck does: a snapshot of every secret,
    /// a crashed rotation found in it recovered, the schedule brought up to
    /// date from it.
    Recheck {
        /// Which manager.
        manager: usize,
    },
    /// The clock jumps forward without anyone running anything.
    Jump {
        /// By how much.
        by: Duration,
    },
}

fn strategy() -> impl Strategy<Value = RotationStrategy> {
    prop_oneof![Just(RotationStrategy::Immediate), Just(RotationStrategy::Staged), Just(RotationStrategy::DualWrite)]
}

pub(super) fn op(schedules: bool) -> impl Strategy<Value = Op> {
    let secret = 0..SECRETS;
    let manager = 0..2usize;
    let value =
        prop_oneof![6 => Just(Value::Generated), 2 => Just(Value::CustomValid), 1 => Just(Value::CustomInvalid)];
    let mode = prop_oneof![4 => Just(Mode::Pass), 3 => Just(Mode::Fail), 1 => Just(Mode::Hang)];
    let method = prop_oneof![
        Just(Method::Read),
        Just(Method::Stage),
        Just(Method::Promote),
        Just(Method::Put),
        Just(Method::ReadMetadata),
        Just(Method::WriteMetadata),
        Just(Method::Discard),
    ];
    let tick = if schedules {
        prop_oneof![Just(Duration::from_secs(10)), Just(Duration::from_secs(3600)), Just(DAY)].boxed()
    } else {
        Just(Duration::ZERO).boxed()
    };
    prop_oneof![
        8 => (secret.clone(), manager.clone(), strategy(), value).prop_map(|(secret, manager, strategy, value)| Op::Rotate { secret, manager, strategy, value }),
        2 => (secret.clone(), strategy()).prop_map(|(secret, strategy)| Op::Race { secret, strategy }),
        4 => (secret.clone(), mode).prop_map(|(secret, mode)| Op::SetVerifier { secret, mode }),
        3 => (secret.clone(), manager.clone()).prop_map(|(secret, manager)| Op::Rollback { secret, manager }),
        1 => secret.clone().prop_map(|secret| Op::Resume { secret }),
        (if schedules { 5 } else { 0 }) => tick.prop_map(|advance| Op::Tick { advance }),
        2 => prop_oneof![Just(Duration::from_secs(6)), Just(Duration::from_secs(600)), Just(DAY)].prop_map(|length| Op::Outage { length }),
        3 => (method, 1u64..4, any::<bool>()).prop_map(|(method, nth, lost_response)| Op::Fault { method, nth, lost_response }),
        3 => (secret.clone(), manager, strategy(), 1u64..9).prop_map(|(secret, manager, strategy, at)| Op::Crash { secret, manager, strategy, at }),
        // (Nested: proptest's unions of more than ten options refuse a weight of 0.)
        3 => prop_oneof![
            1 => prop_oneof![Just(Duration::from_secs(120)), Just(Duration::from_secs(7200))].prop_map(|by| Op::Jump { by }),
            2 => (0..2usize).prop_map(|manager| Op::Recheck { manager }),
        ],
    ]
}
