//! Finding the real test servers started by `scripts/test.sh`.
//!
//! Each server script exports variables such as `REKEY_TEST_VAULT_ADDR`. A
//! test that needs a server calls [`require`]: in CI (`CI=true`) a missing
//! server is a test failure that says how to start it; elsewhere the test is
//! skipped with a printed reason.

/// Whether we run in CI (`CI` set to `true` or `1`).
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// Returns the value of `var`, which the script for `server` exports.
///
/// When it is missing: in CI this panics (failing the test) with a message
/// naming the script to run; outside CI it prints why the test is skipped
/// and returns `None`.
#[allow(clippy::panic)]
pub fn require(var: &str, server: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if in_ci() => panic!(
            "{var} is not set: the {server} test server is not running. \
             In CI every integration test must run; start the servers with `scripts/test.sh` \
             (or `scripts/servers.sh start` and source `.test-servers/env`)."
        ),
        _ => {
            eprintln!(
                "SKIPPED: {var} is not set, so the {server} tests do not run here. \
                 Run `scripts/test.sh` to start the servers and run every test."
            );
            None
        }
    }
}
