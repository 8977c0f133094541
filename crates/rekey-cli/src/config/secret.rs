//! `[[secret]]`: each secret, its policy, field, generator, target and
//! extra verifiers.

use std::collections::BTreeMap;
use std::sync::Arc;

use rekey::{GeneratorConfig, RotationPolicy, RotationPolicyConfig, SecretPath};

use super::generator::generator_config;
use super::target::{TargetConfig, target_config};
use super::walker::{Ctx, Kind, Tbl, check, quoted, suggest};

/// One `[[secret]]`.
#[derive(Debug, Clone)]
pub struct SecretConfig {
    /// Where it lives in the store.
    pub path: SecretPath,
    /// The policy's name.
    pub policy_name: String,
    /// The effective policy (the named one, plus this secret's verifiers).
    pub policy: Arc<RotationPolicy>,
    /// The field to rotate in a multi-field secret.
    pub field: Option<String>,
    /// How new values are made (the default generator when absent).
    pub generator: Option<GeneratorConfig>,
    /// Where the credential is also applied.
    pub target: Option<TargetConfig>,
    /// Extra verifiers for this secret.
    pub verifiers: Vec<String>,
}

const SECRET_KEYS: [(&str, Kind); 6] = [
    ("path", Kind::Str),
    ("policy", Kind::Str),
    ("field", Kind::Str),
    ("generator", Kind::Table),
    ("target", Kind::Table),
    ("verifiers", Kind::StrList),
];

pub(super) fn secret_config(
    ctx: &mut Ctx<'_>,
    t: &Tbl<'_>,
    plain: Option<&toml::Value>,
    policies: &BTreeMap<String, Arc<RotationPolicy>>,
    declared: &[String],
    verifiers: &[&str],
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<SecretConfig> {
    let mut bad = !check(ctx, t, &SECRET_KEYS, &["path", "policy"]);
    let path = t.str("path").and_then(|p| match SecretPath::new(p) {
        Ok(p) => Some(p),
        Err(e) => {
            ctx.err(t.span_of("path"), t.field("path"), format!("{p:?} is not a valid secret path: {e}"));
            None
        }
    });
    let policy_name = t.str("policy").map(str::to_owned);
    if let Some(n) = &policy_name
        && !declared.iter().any(|d| d == n)
    {
        let known: Vec<&str> = declared.iter().map(String::as_str).collect();
        let list = if known.is_empty() {
            "no `[policies.NAME]` is defined".to_owned()
        } else {
            format!("defined policies: {}", quoted(&known))
        };
        ctx.err(
            t.span_of("policy"),
            t.field("policy"),
            format!("unknown policy {n:?}{}; {list}", suggest(n, known.iter().copied())),
        );
        bad = true;
    }
    let field = t.str("field").map(str::to_owned);
    if field.as_deref().is_some_and(|f| f.trim().is_empty()) {
        ctx.err(t.span_of("field"), t.field("field"), "the field name is empty");
        bad = true;
    }
    let generator = t.sub("generator").and_then(|g| generator_config(ctx, &g, plain.and_then(|p| p.get("generator"))));
    bad |= t.item("generator").is_some() && generator.is_none();
    let plain_target = plain.and_then(|p| p.get("target"));
    let target =
        t.sub("target").and_then(|g| target_config(ctx, &g, plain_target, path.as_ref(), field.as_deref(), env));
    bad |= t.item("target").is_some() && target.is_none();
    let own = t.strs("verifiers").unwrap_or_default();
    for v in &own {
        if !verifiers.contains(&v.as_str()) {
            let known = if verifiers.is_empty() {
                "no `[[verifier]]` is configured".to_owned()
            } else {
                format!("configured verifiers: {}", quoted(verifiers))
            };
            ctx.err(
                t.span_of("verifiers"),
                t.field("verifiers"),
                format!("unknown verifier {v:?}{}; {known}", suggest(v, verifiers.iter().copied())),
            );
            bad = true;
        }
    }
    let (path, policy_name) = (path?, policy_name?);
    let base = policies.get(&policy_name)?;
    if bad {
        return None;
    }
    let policy = if own.is_empty() {
        base.clone()
    } else {
        let mut c = RotationPolicyConfig::from((**base).clone());
        let mut tests = c.verification_tests.take().unwrap_or_default();
        for v in &own {
            if !tests.contains(v) {
                tests.push(v.clone());
            }
        }
        c.verification_tests = Some(tests);
        c.require_verification = Some(true);
        match RotationPolicy::try_from(c) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                ctx.err(t.span_of("verifiers"), t.field("verifiers"), e.to_string());
                return None;
            }
        }
    };
    Some(SecretConfig { path, policy_name, policy, field, generator, target, verifiers: own })
}
