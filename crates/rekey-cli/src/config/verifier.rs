//! `[[verifier]]`: named HTTP and command verifiers.

use super::walker::{Ctx, Kind, Tbl, check, suggest, type_name};

/// One `[[verifier]]`.
#[derive(Debug, Clone)]
pub struct NamedVerifier {
    /// The name policies and secrets refer to it by.
    pub name: String,
    /// Its type (`http`, `command`).
    pub kind: String,
    /// Its settings.
    pub settings: rekey_integrations::VerifierConfig,
}

const VERIFIER_TYPES: [&str; 2] = ["http", "command"];

/// Reports an integration's build error at the key it names.
pub(super) fn integration_error(ctx: &mut Ctx<'_>, t: &Tbl<'_>, e: &rekey_integrations::IntegrationError) {
    let key = e.field().map(|f| f.split(['.', '[']).next().unwrap_or(f).to_owned());
    match key.filter(|k| t.item(k).is_some()) {
        Some(k) => ctx.err(t.span_of(&k), t.field(&k), e.to_string()),
        None => ctx.err(t.span.clone(), t.name.clone(), e.to_string()),
    }
}

pub(super) fn verifier_config(
    ctx: &mut Ctx<'_>,
    t: &Tbl<'_>,
    settings: Option<&toml::Value>,
    seen: &[NamedVerifier],
) -> Option<NamedVerifier> {
    let mut bad = false;
    let name = match t.item("name") {
        Some(i) if i.is_str() => i.as_str().map(|s| s.trim().to_owned()),
        Some(i) => {
            ctx.err(t.span_of("name"), t.field("name"), format!("expected a string, found {}", type_name(i)));
            None
        }
        None => {
            ctx.err(t.span.clone(), t.field("name"), "missing required key `name`");
            None
        }
    };
    let kind = match t.item("type") {
        Some(i) => match i.as_str() {
            Some(k) if VERIFIER_TYPES.contains(&k) => Some(k.to_owned()),
            Some(k) => {
                let msg =
                    format!("unknown verifier type {k:?}{}; expected `http` or `command`", suggest(k, VERIFIER_TYPES));
                ctx.err(t.span_of("type"), t.field("type"), msg);
                None
            }
            None => {
                ctx.err(t.span_of("type"), t.field("type"), format!("expected a string, found {}", type_name(i)));
                None
            }
        },
        None => {
            ctx.err(t.span.clone(), t.field("type"), "missing required key `type` (`http` or `command`)");
            None
        }
    };
    let common = [("name", Kind::Str), ("type", Kind::Str), ("timeout", Kind::Str)];
    let (specific, required): (&[(&str, Kind)], &[&str]) = match kind.as_deref() {
        Some("http") => (
            &[
                ("url", Kind::Str),
                ("method", Kind::Str),
                ("placement", Kind::Table),
                ("expect_status", Kind::Any),
                ("headers", Kind::Table),
            ],
            &["url", "placement"],
        ),
        Some("command") => (
            &[
                ("program", Kind::Str),
                ("args", Kind::StrList),
                ("env_var", Kind::Str),
                ("env", Kind::Table),
                ("export_fields", Kind::Bool),
                ("inherit_env", Kind::Bool),
            ],
            &["program"],
        ),
        _ => (&[], &[]),
    };
    if kind.is_some() {
        let allowed: Vec<(&str, Kind)> = common.iter().chain(specific).copied().collect();
        bad |= !check(ctx, t, &allowed, required);
    }
    if let Some(n) = &name {
        if n.is_empty() {
            ctx.err(t.span_of("name"), t.field("name"), "the verifier name is empty");
            bad = true;
        }
        if seen.iter().any(|v| &v.name == n) {
            ctx.err(t.span_of("name"), t.field("name"), format!("two verifiers are named {n:?}"));
            bad = true;
        }
    }
    let (name, kind) = (name?, kind?);
    if bad {
        return None;
    }
    let settings: rekey_integrations::VerifierConfig = match settings.cloned().map(serde::Deserialize::deserialize) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            let e: toml::de::Error = e;
            ctx.err(t.span.clone(), t.name.clone(), e.message().to_owned());
            return None;
        }
        None => return None,
    };
    if let Err(e) = settings.build() {
        integration_error(ctx, t, &e);
        return None;
    }
    Some(NamedVerifier { name, kind, settings })
}
