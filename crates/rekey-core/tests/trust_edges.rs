//! Regression tests for the edge defects of issue 11, one group per point,
//! each through the public API. Each failed on the code before its fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use engine_support::*;
use rekey_core::*;

// ---- point 1: a named verifier always runs and gates promotion ----

#[tokio::test]
async fn p1_named_verifier_runs_without_require_verification() {
    for strategy in [RotationStrategy::Immediate, RotationStrategy::Staged] {
        let e = env();
        let p = path("apps/p1");
        e.seed(&p, "initial").await;
        // Only the tests are named; `require_verification` is left alone.
        let policy = RotationPolicy::builder("named").strategy(strategy).verification_tests(["always_fails"]).build();
        let policy = policy.unwrap();
        assert!(policy.require_verification(), "naming a test requires it");
        let r = e.manager.rotate_secret(&p, &policy, None).await;
        assert!(!r.success(), "{strategy}: an unverified value became current: {r}");
        assert!(matches!(r.error, Some(RotationError::Verification { .. })), "{r}");
        assert_eq!(e.current_text(&p).await, "initial", "{strategy}");
    }
}

#[test]
fn p1_named_verifier_from_config_is_required() {
    let cfg: RotationPolicyConfig = toml::from_str("name = \"db\"\nverification_tests = [\"login\"]\n").unwrap();
    let p = RotationPolicy::try_from(cfg).unwrap();
    assert!(p.require_verification());
    // Named tests with verification explicitly off: refused, naming the field.
    let cfg: RotationPolicyConfig =
        toml::from_str("name = \"db\"\nrequire_verification = false\nverification_tests = [\"login\"]\n").unwrap();
    let e = RotationPolicy::try_from(cfg).unwrap_err();
    assert_eq!(e, PolicyError::VerificationTestsNotRequired { count: 1 });
    assert_eq!(e.field(), "require_verification");
    let e = RotationPolicy::builder("x").require_verification(false).verification_tests(["a"]).build().unwrap_err();
    assert!(matches!(e, PolicyError::VerificationTestsNotRequired { .. }));
    // Nothing named, nothing required.
    assert!(!RotationPolicy::builder("x").build().unwrap().require_verification());
}
