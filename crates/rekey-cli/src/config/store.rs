//! `[store]`: the store's type and settings, and its credentials from the
//! environment (never from the file).

use std::path::Path;

use rekey::StoreConfig;

use super::keys;
use super::walker::{Ctx, Kind, Tbl, check, report_at_key, suggest, url_problem};

/// Every store type a build of rekey can have, the feature that adds it,
/// and whether this build has it.
const STORE_TYPES: [(&str, &str, bool); 3] = [
    ("memory", "memory", cfg!(feature = "memory")),
    ("vault", "vault", cfg!(feature = "vault")),
    ("aws", "aws", cfg!(feature = "aws")),
];

/// The types of the keys of `type = "vault"` (the keys themselves come from
/// the library's `VaultConfig`).
pub(super) const VAULT_KINDS: &[(&str, Kind)] = &[
    ("address", Kind::Str),
    ("mount", Kind::Str),
    ("namespace", Kind::Str),
    ("auth", Kind::Table),
    ("ca_cert", Kind::Str),
    ("allow_insecure_http", Kind::Bool),
    ("request_timeout", Kind::StrOrInt),
    ("staging_prefix", Kind::Str),
];

/// The types of the keys of `type = "aws"` (keys from the library's `AwsConfig`).
pub(super) const AWS_KINDS: &[(&str, Kind)] = &[
    ("region", Kind::Str),
    ("endpoint_url", Kind::Str),
    ("allow_insecure_http", Kind::Bool),
    ("profile", Kind::Str),
    ("max_attempts", Kind::Int),
    ("attempt_timeout_ms", Kind::Int),
    ("token_precheck", Kind::Bool),
    ("version_dates_from_reads", Kind::Bool),
    ("pending_cleanup", Kind::Bool),
    ("static_credentials", Kind::Any),
];

/// The library's keys of the vault store (none when it is not compiled in).
pub(super) fn vault_fields() -> &'static [&'static str] {
    #[cfg(feature = "vault")]
    return keys::fields::<rekey::vault::VaultConfig>();
    #[cfg(not(feature = "vault"))]
    return &[];
}

/// The library's keys of the AWS store (none when it is not compiled in).
pub(super) fn aws_fields() -> &'static [&'static str] {
    #[cfg(feature = "aws")]
    return keys::fields::<rekey::aws::AwsConfig>();
    #[cfg(not(feature = "aws"))]
    return &[];
}

pub(super) fn store_config(
    ctx: &mut Ctx<'_>,
    t: &Tbl<'_>,
    plain: Option<&toml::Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(StoreConfig, String)> {
    let Some(kind) = t.str("type") else {
        if t.item("type").is_some() {
            ctx.err(t.span_of("type"), t.field("type"), "expected a string: one of `memory`, `vault`, `aws`");
        } else {
            ctx.err(t.span.clone(), t.field("type"), "missing required key `type` (`memory`, `vault` or `aws`)");
        }
        return None;
    };
    if let Some((_, feature, false)) = STORE_TYPES.iter().find(|(k, _, _)| *k == kind) {
        let built: Vec<&str> = STORE_TYPES.iter().filter(|(_, _, has)| *has).map(|(k, _, _)| *k).collect();
        ctx.err(
            t.span_of("type"),
            t.field("type"),
            format!(
                "the `{kind}` store is not compiled into this build of rekey (it has: {}); \
                 rebuild with `cargo install rekey-cli --features {feature}`",
                if built.is_empty() { "none".to_owned() } else { built.join(", ") }
            ),
        );
        return None;
    }
    let type_key = [("type", Kind::Str)];
    let mut plain = plain.cloned().unwrap_or(toml::Value::Table(toml::Table::new()));
    match kind {
        "memory" => {
            check(ctx, t, &type_key, &[]);
        }
        "vault" => {
            let allowed = keys::allowed(vault_fields(), VAULT_KINDS, &[], &type_key);
            if !check(ctx, t, &allowed, &["address"]) {
                return None;
            }
            if let Some(problem) = t.str("address").and_then(url_problem) {
                ctx.err(t.span_of("address"), t.field("address"), problem);
                return None;
            }
            let method = match t.sub("auth") {
                None => "token".to_owned(),
                Some(a) => {
                    let allowed = [
                        ("method", Kind::Str),
                        ("mount", Kind::Str),
                        ("token", Kind::Any),
                        ("role_id", Kind::Any),
                        ("secret_id", Kind::Any),
                    ];
                    let mut ok = check(ctx, &a, &allowed, &["method"]);
                    for k in ["token", "secret_id", "role_id"] {
                        if a.item(k).is_some() {
                            ctx.err(
                                a.key_span(k),
                                a.field(k),
                                "credentials are never read from the configuration file: \
                                 set VAULT_TOKEN/BAO_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole",
                            );
                            ok = false;
                        }
                    }
                    if !ok {
                        return None;
                    }
                    a.str("method").unwrap_or("token").to_owned()
                }
            };
            let auth_span = t.sub("auth").and_then(|a| a.span.clone()).or_else(|| t.span.clone());
            match method.as_str() {
                "token" => {
                    if env("VAULT_TOKEN").is_none() && env("BAO_TOKEN").is_none() {
                        ctx.err(
                            auth_span,
                            t.field("auth"),
                            "missing credentials: the vault store uses token auth but neither VAULT_TOKEN nor \
                             BAO_TOKEN is set in the environment",
                        );
                        return None;
                    }
                }
                "approle" => {
                    let role = env("VAULT_ROLE_ID").or_else(|| env("BAO_ROLE_ID"));
                    let secret = env("VAULT_SECRET_ID").or_else(|| env("BAO_SECRET_ID"));
                    let (Some(role), Some(secret)) = (role, secret) else {
                        ctx.err(
                            auth_span,
                            t.field("auth"),
                            "missing credentials: AppRole auth needs VAULT_ROLE_ID and VAULT_SECRET_ID \
                             (or BAO_ROLE_ID and BAO_SECRET_ID) in the environment",
                        );
                        return None;
                    };
                    if let Some(auth) = plain.get_mut("auth").and_then(toml::Value::as_table_mut) {
                        auth.insert("role_id".into(), toml::Value::String(role));
                        auth.insert("secret_id".into(), toml::Value::String(secret));
                    }
                }
                other => {
                    ctx.err(
                        t.sub("auth").map(|a| a.span_of("method")).unwrap_or(auth_span),
                        t.field("auth.method"),
                        format!("unknown auth method {other:?}; expected `token` or `approle`"),
                    );
                    return None;
                }
            }
        }
        "aws" => {
            let allowed = keys::allowed(aws_fields(), AWS_KINDS, &[], &type_key);
            let mut ok = check(ctx, t, &allowed, &[]);
            if let Some(problem) = t.str("endpoint_url").and_then(url_problem) {
                ctx.err(t.span_of("endpoint_url"), t.field("endpoint_url"), problem);
                ok = false;
            }
            if t.item("static_credentials").is_some() {
                ctx.err(
                    t.key_span("static_credentials"),
                    t.field("static_credentials"),
                    "credentials are never read from the configuration file: use the AWS credential chain \
                     (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity, instance role)",
                );
                return None;
            }
            if !ok {
                return None;
            }
            let has_chain = [
                "AWS_ACCESS_KEY_ID",
                "AWS_PROFILE",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            ]
            .iter()
            .any(|k| env(k).is_some())
                || t.item("profile").is_some()
                || env("HOME").is_some_and(|h| Path::new(&h).join(".aws").exists());
            if !has_chain {
                ctx.err(
                    t.span.clone(),
                    t.field("type"),
                    "missing credentials: no AWS credentials in the environment (AWS_ACCESS_KEY_ID / \
                     AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity or container credentials)",
                );
                return None;
            }
        }
        other => {
            ctx.err(
                t.span_of("type"),
                t.field("type"),
                format!(
                    "unknown store type {other:?}{}; expected `memory`, `vault` or `aws`",
                    suggest(other, STORE_TYPES.iter().map(|(k, _, _)| *k))
                ),
            );
            return None;
        }
    }
    match serde::Deserialize::deserialize(plain) {
        Ok(s) => Some((s, kind.to_owned())),
        Err(e) => {
            let e: toml::de::Error = e;
            report_at_key(ctx, t, e.message().to_owned());
            None
        }
    }
}
