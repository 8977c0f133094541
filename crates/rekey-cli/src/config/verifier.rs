//! `[[verifier]]`: named HTTP and command verifiers.

use rekey_integrations::{CommandVerifierConfig, HttpVerifierConfig, VerifierConfig};

use super::keys;
use super::walker::{Ctx, Kind, Tbl, check, quoted, report_at_key, suggest, type_name, url_problem};

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

/// The types of the keys of `type = "http"` (keys from the library's
/// `HttpVerifierConfig`).
pub(super) const HTTP_KINDS: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("timeout", Kind::Str),
    ("url", Kind::Str),
    ("method", Kind::Str),
    ("placement", Kind::Table),
    ("expect_status", Kind::Any),
    ("headers", Kind::Table),
    ("allow_insecure_http", Kind::Bool),
];

/// The types of the keys of `type = "command"` (keys from the library's
/// `CommandVerifierConfig`).
pub(super) const COMMAND_KINDS: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("timeout", Kind::Str),
    ("program", Kind::Str),
    ("args", Kind::StrList),
    ("env_var", Kind::Str),
    ("env", Kind::Table),
    ("export_fields", Kind::Bool),
    ("inherit_env", Kind::Bool),
];

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
    let types = keys::variants::<VerifierConfig>("type");
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
            Some(k) if types.contains(&k) => Some(k.to_owned()),
            Some(k) => {
                let msg = format!(
                    "unknown verifier type {k:?}{}; expected one of {}",
                    suggest(k, types.iter().copied()),
                    quoted(types)
                );
                ctx.err(t.span_of("type"), t.field("type"), msg);
                None
            }
            None => {
                ctx.err(t.span_of("type"), t.field("type"), format!("expected a string, found {}", type_name(i)));
                None
            }
        },
        None => {
            ctx.err(t.span.clone(), t.field("type"), format!("missing required key `type` ({})", quoted(types)));
            None
        }
    };
    let type_key = [("type", Kind::Str)];
    let (allowed, required) = match kind.as_deref() {
        Some("http") => {
            (keys::allowed(keys::fields::<HttpVerifierConfig>(), HTTP_KINDS, &[], &type_key), &["url", "placement"][..])
        }
        Some("command") => {
            (keys::allowed(keys::fields::<CommandVerifierConfig>(), COMMAND_KINDS, &[], &type_key), &["program"][..])
        }
        _ => (Vec::new(), &[][..]),
    };
    if kind.is_some() {
        bad |= !check(ctx, t, &allowed, required);
    }
    if kind.as_deref() == Some("http")
        && let Some(problem) = t.str("url").and_then(url_problem)
    {
        ctx.err(t.span_of("url"), t.field("url"), problem);
        bad = true;
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
    let settings: VerifierConfig = match settings.cloned().map(serde::Deserialize::deserialize) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            let e: toml::de::Error = e;
            report_at_key(ctx, t, e.message().to_owned());
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
