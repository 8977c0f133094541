//! `target = { type = "redis", ... }`: a Redis ACL user, its admin
//! connection built with `rekey-redis` while the file is read.

use rekey_redis::{PasswordMode, RedisAclTarget, RedisConfig};

use super::walker::{Ctx, Kind, Tbl, check, parse_duration, target_refusal as why};

/// The `mode` values and the library's password modes.
const MODES: [(&str, PasswordMode); 2] = [("hashed", PasswordMode::Hashed), ("plain", PasswordMode::Plain)];

/// Reads a redis target: its admin URL variable, the user, and the built
/// target. Every refusal is reported at the key that causes it.
pub(super) fn redis_target(
    ctx: &mut Ctx<'_>,
    t: &Tbl<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(String, String, Box<RedisAclTarget>)> {
    let ok = check(
        ctx,
        t,
        &[
            ("type", Kind::Str),
            ("url_env", Kind::Str),
            ("user", Kind::Str),
            ("mode", Kind::Str),
            ("rules", Kind::StrList),
            ("acl_save", Kind::Bool),
            ("ca_file", Kind::Str),
            ("allow_plaintext", Kind::Bool),
            ("timeout", Kind::Str),
        ],
        &["url_env", "user"],
    );
    if !ok {
        return None;
    }
    let url_env = t.str("url_env").unwrap_or_default().to_owned();
    let user = t.str("user").unwrap_or_default().to_owned();
    let Some(url) = env(&url_env) else {
        ctx.err(
            t.span_of("url_env"),
            t.field("url_env"),
            format!("missing credentials: the environment variable {url_env} (the admin connection URL) is not set"),
        );
        return None;
    };
    let mut cfg = match RedisConfig::from_url(&url) {
        Ok(c) => c,
        Err(e) => {
            ctx.err(t.span_of("url_env"), t.field("url_env"), format!("{url_env}: {}", why(e)));
            return None;
        }
    };
    if t.item("timeout").is_some() {
        cfg = cfg.with_timeout(parse_duration(ctx, t, "timeout")?);
    }
    if let Some(path) = t.str("ca_file") {
        if !cfg.uses_tls() {
            ctx.err(t.span_of("ca_file"), t.field("ca_file"), "a CA file needs a rediss:// (TLS) URL");
            return None;
        }
        cfg = match cfg.with_ca_file(path) {
            Ok(c) => c,
            Err(e) => {
                ctx.err(t.span_of("ca_file"), t.field("ca_file"), why(e));
                return None;
            }
        };
    }
    cfg = cfg.with_plaintext_allowed(t.bool("allow_plaintext").unwrap_or(false));
    if let Err(e) = cfg.check_transport() {
        let mut msg = why(e);
        if !cfg.uses_tls() && !cfg.plaintext_allowed() {
            msg.push_str(" (in this file: `allow_plaintext = true`)");
        }
        ctx.err(t.span_of("url_env"), t.field("url_env"), format!("{url_env}: {msg}"));
        return None;
    }
    let mode = match t.str("mode") {
        None => PasswordMode::default(),
        Some(m) => match MODES.iter().find(|(name, _)| *name == m) {
            Some((_, mode)) => *mode,
            None => {
                ctx.err(
                    t.span_of("mode"),
                    t.field("mode"),
                    format!("unknown mode {m:?}; expected `hashed` or `plain`"),
                );
                return None;
            }
        },
    };
    let mut target = match RedisAclTarget::from_config(cfg, user.clone()) {
        Ok(x) => x.with_password_mode(mode).with_acl_save(t.bool("acl_save").unwrap_or(false)),
        Err(e) => {
            ctx.err(t.span_of("user"), t.field("user"), why(e));
            return None;
        }
    };
    if let Some(rules) = t.strs("rules") {
        target = match target.with_creation_rules(rules) {
            Ok(x) => x,
            Err(e) => {
                ctx.err(t.span_of("rules"), t.field("rules"), why(e));
                return None;
            }
        };
    }
    Some((url_env, user, Box::new(target)))
}
