//! Zero-downtime proofs of rekey's rotation strategies.
//!
//! # Overview
//!
//! This crate is test equipment (not published). Its integration tests
//! (`tests/`) run *consumers* — tasks that read the current credential from
//! the store every 50 ms and authenticate with it against a real server
//! (PostgreSQL, Redis) every few milliseconds — while the rotation engine
//! rotates that credential again and again, and count every failed
//! authentication.
//!
//! # Concepts
//!
//! * [`Consumers`]: the consumer tasks and their counters; [`Report`] is
//!   what they saw, with a parseable [`Report::line`]:
//!   `ZERO-DOWNTIME strategy=<s> target=<t> rotations=<n> auth_ok=<n> auth_failed=<n>`.
//! * [`FaultyTarget`]: wraps a real [`CredentialTarget`](rekey_core::CredentialTarget) and fails the n-th
//!   `apply`, `test` or `revoke` on demand — the one failure a real server
//!   cannot produce when asked.
//!
//! Run the proofs (PostgreSQL and Redis from `scripts/servers.sh`):
//!
//! ```text
//! scripts/servers.sh start postgres redis && source .test-servers/env
//! cargo test -p rekey-zero-downtime -- --nocapture --test-threads 1 | grep ZERO-DOWNTIME
//! ```
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

mod consumers;
mod faulty;

pub use consumers::{ConsumerSettings, Consumers, FailureSample, Report};
pub use faulty::{FaultyTarget, TargetOp};
