//! `[[audit]]`: where the audit trail goes (tracing, JSON lines, webhook).

use super::walker::{Ctx, Kind, Tbl, check, suggest};

const AUDIT_TYPES: [&str; 3] = ["tracing", "json_lines", "webhook"];

pub(super) fn audit_config(
    ctx: &mut Ctx<'_>,
    t: &Tbl<'_>,
    plain: Option<&toml::Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<rekey_integrations::AuditSinkConfig> {
    let kind = match t.str("type") {
        Some(k) if AUDIT_TYPES.contains(&k) => k,
        Some(k) => {
            let msg = format!(
                "unknown audit sink type {k:?}{}; expected `tracing`, `json_lines` or `webhook`",
                suggest(k, AUDIT_TYPES)
            );
            ctx.err(t.span_of("type"), t.field("type"), msg);
            return None;
        }
        None => {
            ctx.err(
                t.span.clone(),
                t.field("type"),
                "missing required key `type` (`tracing`, `json_lines` or `webhook`)",
            );
            return None;
        }
    };
    let (allowed, required): (&[(&str, Kind)], &[&str]) = match kind {
        "tracing" => (&[("type", Kind::Str)], &[]),
        "json_lines" => (
            &[("type", Kind::Str), ("path", Kind::Str), ("fsync", Kind::Bool), ("queue_capacity", Kind::Int)],
            &["path"],
        ),
        _ => (
            &[
                ("type", Kind::Str),
                ("url", Kind::Str),
                ("secret_env", Kind::Str),
                ("key_file", Kind::Str),
                ("header", Kind::Str),
                ("timestamp_header", Kind::Str),
                ("timeout", Kind::Str),
                ("max_retries", Kind::Int),
                ("initial_backoff", Kind::Str),
                ("max_backoff", Kind::Str),
                ("queue_capacity", Kind::Int),
            ],
            &["url"],
        ),
    };
    if !check(ctx, t, allowed, required) {
        return None;
    }
    if kind == "webhook" && t.item("key_file").is_none() {
        let var = t.str("secret_env").unwrap_or(rekey_integrations::DEFAULT_SECRET_ENV);
        if env(var).is_none() {
            let at = if t.item("secret_env").is_some() { t.span_of("secret_env") } else { t.span.clone() };
            ctx.err(
                at,
                t.field("secret_env"),
                format!("missing credentials: the environment variable {var} (the webhook's HMAC key) is not set"),
            );
            return None;
        }
    }
    match plain.cloned().map(serde::Deserialize::deserialize) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            let e: toml::de::Error = e;
            ctx.err(t.span.clone(), t.name.clone(), e.message().to_owned());
            None
        }
        None => None,
    }
}
