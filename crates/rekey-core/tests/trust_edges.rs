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

// ---- point 7: a supplied value is validated; nothing is written ----

#[tokio::test]
async fn p7_supplied_values_are_checked_and_nothing_is_written() {
    let e = env();
    let p = path("apps/p7");
    e.seed(&p, "initial").await;
    let policy = policy(RotationStrategy::Staged);
    let calls_before = e.store.total_calls();
    // No generator configured: an empty value (or one with a control
    // character) is refused.
    for bad in ["", "line\nbreak"] {
        let r = e.manager.rotate_secret(&p, &policy, Some(bad.to_owned().into())).await;
        assert!(matches!(r.error, Some(RotationError::InvalidValue { .. })), "{r}");
        assert_eq!(r.outcome, RotationOutcome::Failed);
    }
    assert_eq!(e.store.total_calls(), calls_before, "a refused value reached the store");
    // The secret's own generator: 24 characters of hex.
    let g = SecretGenerator::hex(24).unwrap();
    e.manager.bind(p.clone(), SecretBinding::new().generator(std::sync::Arc::new(g)));
    for bad in ["abc", "0123456789abcdef0123456g", "0123456789abcdef0123456789"] {
        let r = e.manager.rotate_secret(&p, &policy, Some(bad.to_owned().into())).await;
        let Some(RotationError::InvalidValue { source, .. }) = &r.error else { panic!("{r}") };
        assert!(!source.to_string().contains(bad), "the error shows the value: {source}");
    }
    assert_eq!(e.store.total_calls(), calls_before);
    assert_eq!(e.current_text(&p).await, "initial");
    let ok = "0123456789abcdef01234567";
    let r = e.manager.rotate_secret(&p, &policy, Some(ok.to_owned().into())).await;
    assert!(r.success(), "{r}");
    assert_eq!(e.current_text(&p).await, ok);
}

#[test]
fn p7_generator_checks_follow_the_generator() {
    let check = |g: &SecretGenerator, v: &str| g.check(&SecretString::from(v.to_owned()));
    let pw = SecretGenerator::password(
        12,
        PasswordRules { min_lower: 1, min_upper: 1, min_digits: 1, min_symbols: 1, ..PasswordRules::default() },
    )
    .unwrap();
    assert!(check(&pw, "aB3!aaaaaaaa").is_ok());
    assert!(check(&pw, "aB3aaaaaaaaa").is_err(), "no symbol");
    assert!(check(&pw, "aB3!aaaaaaa").is_err(), "too short");
    let uuid = SecretGenerator::uuid();
    assert!(check(&uuid, "0f8fad5b-d9cb-469f-a165-70867728950e").is_ok());
    assert!(check(&uuid, "0f8fad5bd9cb469fa16570867728950e0000").is_err());
    let random = SecretGenerator::with_charset(8, "ab").unwrap();
    assert!(check(&random, "abbaabba").is_ok());
    assert!(check(&random, "abcdabba").is_err());
    assert!(check(&random, "ab\u{e9}aabba").is_err());
}

// ---- point 8: derived forms of the candidate never leave a verifier ----

/// Fails, echoing the candidate in every form a real service might.
#[derive(Debug)]
struct Echo;

#[async_trait::async_trait]
impl Verifier for Echo {
    fn name(&self) -> &str {
        "echo"
    }
    async fn verify(&self, ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        use base64::Engine;
        let v = ctx.candidate.get(ctx.field).map(|s| s.expose_secret().to_owned()).unwrap_or_default();
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("app:{v}"));
        let url: String = v.bytes().map(|b| format!("%{b:02X}")).collect();
        let hex: String = v.bytes().map(|b| format!("{b:02x}")).collect();
        Err(VerifyError::Failed(format!(
            "401 for Authorization: Basic {b64}; query pw={url}; dump {hex}; body starts {}",
            &v[..16]
        )))
    }
}

#[tokio::test]
async fn p8_encoded_candidate_never_reaches_results_or_audit() {
    let e = env_with(|b| b.verifier(std::sync::Arc::new(Echo)));
    let p = path("apps/p8");
    e.seed(&p, "initial").await;
    let value = "Zq9-candidate-Value-7hK2mP4xW8";
    let policy = verified(RotationStrategy::Staged, &["echo"]);
    let r = e.manager.rotate_secret(&p, &policy, Some(value.to_owned().into())).await;
    assert!(!r.success());
    let mut texts = vec![r.to_string(), format!("{r:?}"), serde_json::to_string(&r).unwrap()];
    for ev in e.audit.events() {
        texts.push(serde_json::to_string(&ev).unwrap());
        texts.push(format!("{ev:?}"));
    }
    use base64::Engine;
    let forms = [
        value.to_owned(),
        value[..12].to_owned(),
        base64::engine::general_purpose::STANDARD.encode(format!("app:{value}"))[..16].to_owned(),
        value.bytes().map(|b| format!("%{b:02X}")).collect::<String>()[..24].to_owned(),
        value.bytes().map(|b| format!("{b:02x}")).collect::<String>()[..24].to_owned(),
    ];
    for t in &texts {
        for f in &forms {
            assert!(!t.contains(f.as_str()), "{f:?} leaked in {t}");
        }
    }
    assert!(texts[0].contains("[REDACTED]"), "{}", texts[0]);
}
