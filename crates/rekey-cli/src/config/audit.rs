//! `[[audit]]`: where the audit trail goes (tracing, JSON lines, webhook).

use rekey_integrations::{AuditSinkConfig, JsonLinesConfig, TracingSinkConfig, WebhookConfig};

use super::keys;
use super::walker::{Ctx, Kind, Tbl, check, quoted, report_at_key, suggest, url_problem};

/// The types of a `json_lines` sink's keys (keys from the library's `JsonLinesConfig`).
pub(super) const JSON_LINES_KINDS: &[(&str, Kind)] =
    &[("path", Kind::Str), ("fsync", Kind::Bool), ("queue_capacity", Kind::Int)];

/// The types of a `webhook` sink's keys (keys from the library's `WebhookConfig`).
pub(super) const WEBHOOK_KINDS: &[(&str, Kind)] = &[
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
];

pub(super) fn audit_config(
    ctx: &mut Ctx<'_>,
    t: &Tbl<'_>,
    plain: Option<&toml::Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<AuditSinkConfig> {
    let types = keys::variants::<AuditSinkConfig>("type");
    let kind = match t.str("type") {
        Some(k) if types.contains(&k) => k,
        Some(k) => {
            let msg = format!(
                "unknown audit sink type {k:?}{}; expected one of {}",
                suggest(k, types.iter().copied()),
                quoted(types)
            );
            ctx.err(t.span_of("type"), t.field("type"), msg);
            return None;
        }
        None => {
            ctx.err(t.span.clone(), t.field("type"), format!("missing required key `type` ({})", quoted(types)));
            return None;
        }
    };
    let type_key = [("type", Kind::Str)];
    let (allowed, required) = match kind {
        "tracing" => (keys::allowed(keys::fields::<TracingSinkConfig>(), &[], &[], &type_key), &[][..]),
        "json_lines" => {
            (keys::allowed(keys::fields::<JsonLinesConfig>(), JSON_LINES_KINDS, &[], &type_key), &["path"][..])
        }
        _ => (keys::allowed(keys::fields::<WebhookConfig>(), WEBHOOK_KINDS, &[], &type_key), &["url"][..]),
    };
    if kind == "webhook" && t.item("key_env").is_some() {
        // An older name of `secret_env` (and what some texts said): refused,
        // with the right name, never silently ignored or accepted.
        ctx.err(
            t.key_span("key_env"),
            t.field("key_env"),
            "unknown key `key_env`: the webhook's HMAC key variable is set with `secret_env = \"VAR\"`",
        );
        return None;
    }
    if !check(ctx, t, &allowed, required) {
        return None;
    }
    if kind == "webhook"
        && let Some(problem) = t.str("url").and_then(url_problem)
    {
        ctx.err(t.span_of("url"), t.field("url"), problem);
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
            report_at_key(ctx, t, e.message().to_owned());
            None
        }
        None => None,
    }
}
