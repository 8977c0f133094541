//! The shared store conformance suite, unchanged, against a real OpenBao.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

/// The whole suite in one go, as every backend runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_against_openbao() {
    let Some(store) = common::dyn_store().await else { return };
    rekey_testkit::conformance::run_all(store, &rekey_testkit::unique_prefix("vault")).await;
}

/// Each case again as its own test, so a failure names its case.
mod each {
    use super::common;
    rekey_testkit::conformance_tests!("vault-each", common::dyn_store());
}
