//! The whole store conformance suite, unchanged, against moto through the
//! real SDK: once as one run ([`conformance::run_all`]) and case by case.

mod common;

use rekey_testkit::conformance;

#[tokio::test]
async fn aws_store_passes_the_whole_suite() {
    let Some(endpoint) = common::endpoint() else { return };
    conformance::run_all(common::dyn_store(&endpoint).await, &rekey_testkit::unique_prefix("aws")).await;
}

mod case_by_case {
    use super::common;
    rekey_testkit::conformance_tests!("aws-case", async {
        match common::endpoint() {
            Some(endpoint) => Some(common::dyn_store(&endpoint).await),
            None => None,
        }
    });
}
