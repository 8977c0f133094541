//! `[store]`: the store's type and settings, and its credentials from the
//! environment (never from the file).

use std::path::Path;

use rekey::StoreConfig;

use super::walker::{Ctx, Kind, Tbl, check, suggest};

const STORE_TYPES: [&str; 3] = ["memory", "vault", "aws"];

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
    let mut plain = plain.cloned().unwrap_or(toml::Value::Table(toml::Table::new()));
    match kind {
        "memory" => {
            check(ctx, t, &[("type", Kind::Str)], &[]);
        }
        "vault" => {
            let ok = check(
                ctx,
                t,
                &[
                    ("type", Kind::Str),
                    ("address", Kind::Str),
                    ("mount", Kind::Str),
                    ("namespace", Kind::Str),
                    ("auth", Kind::Table),
                    ("ca_cert", Kind::Str),
                    ("allow_insecure_http", Kind::Bool),
                    ("request_timeout", Kind::StrOrInt),
                    ("staging_prefix", Kind::Str),
                ],
                &["address"],
            );
            if !ok {
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
            let ok = check(
                ctx,
                t,
                &[
                    ("type", Kind::Str),
                    ("region", Kind::Str),
                    ("endpoint_url", Kind::Str),
                    ("profile", Kind::Str),
                    ("max_attempts", Kind::Int),
                    ("attempt_timeout_ms", Kind::Int),
                    ("token_precheck", Kind::Bool),
                    ("version_dates_from_reads", Kind::Bool),
                    ("static_credentials", Kind::Any),
                ],
                &[],
            );
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
                    suggest(other, STORE_TYPES)
                ),
            );
            return None;
        }
    }
    match serde::Deserialize::deserialize(plain) {
        Ok(s) => Some((s, kind.to_owned())),
        Err(e) => {
            let e: toml::de::Error = e;
            let msg = e.message().to_owned();
            let msg = if msg.contains("unknown variant") {
                format!("the `{kind}` store is not compiled into this build of rekey ({msg})")
            } else {
                msg
            };
            ctx.err(t.span.clone(), t.name.clone(), msg);
            None
        }
    }
}
