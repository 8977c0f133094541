//! Test helpers shared by every rekey crate: the store conformance suite and
//! access to the real servers the project's scripts start.
//!
//! * [`conformance`] — the one suite every [`SecretStore`](rekey_core::SecretStore)
//!   runs whole ([`conformance::run_all`]) or case by case
//!   ([`conformance_tests!`]).
//! * [`env`](mod@env) — finding the test servers (`REKEY_TEST_*` variables).
//! * [`model`] — the model-based test of the rotation engine, run against
//!   any store.
//! * [`unique_prefix`] — a fresh path prefix, so suites can run repeatedly and
//!   concurrently against one shared server.
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod conformance;
pub mod env;
pub mod model;

#[doc(hidden)]
pub use rekey_core as __rekey_core;

/// A fresh secret path prefix `rekey-test/<tag>/<uuid>`.
///
/// `tag` should be made of path-safe characters (letters, digits, `_-.`);
/// it names the suite in the store so leftovers are easy to find.
///
/// ```
/// let p = rekey_testkit::unique_prefix("memory");
/// assert!(p.starts_with("rekey-test/memory/"));
/// assert_ne!(p, rekey_testkit::unique_prefix("memory"));
/// ```
pub fn unique_prefix(tag: &str) -> String {
    format!("rekey-test/{tag}/{}", uuid::Uuid::new_v4().simple())
}
