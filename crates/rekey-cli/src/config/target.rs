//! `target = { ... }` of a `[[secret]]`: the system that checks the
//! credential (a PostgreSQL role, or two alternating roles; a Redis ACL
//! user; an external hook, a program of yours). The admin connection is
//! built, and its transport checked, while the file is read: every refusal
//! is a config error at its key.

use std::fmt;
use std::time::Duration;

use super::target_command::command_target;
use super::target_redis::redis_target;
use super::walker::{Ctx, Kind, Tbl, check, parse_duration, target_refusal as why};

/// A credential target.
#[derive(Clone)]
pub enum TargetConfig {
    /// A PostgreSQL role (or two alternating roles and their group).
    Postgres {
        /// The environment variable holding the admin connection URL.
        url_env: String,
        /// The role(s): one, or two alternating.
        roles: Vec<String>,
        /// The group role of two alternating roles.
        group: Option<String>,
        /// The admin connection, built from the URL and the `sslmode`,
        /// `ca_file` and `allow_plaintext` keys while the file was read (its
        /// transport already checked).
        config: Box<rekey_postgres::PostgresConfig>,
    },
    /// A Redis ACL user.
    Redis {
        /// The environment variable holding the admin connection URL.
        url_env: String,
        /// The ACL user whose password rotates.
        user: String,
        /// The target, built while the file was read (its transport
        /// already checked).
        target: Box<rekey_redis::RedisAclTarget>,
    },
    /// An external hook: a program that applies, tests and revokes.
    Command {
        /// The program.
        program: String,
        /// Whether it gets rekey's whole environment.
        inherit_env: bool,
        /// The target, built while the file was read.
        target: Box<rekey_integrations::CommandTarget>,
    },
}

impl fmt::Debug for TargetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres { url_env, roles, group, .. } => f
                .debug_struct("Postgres")
                .field("url_env", url_env)
                .field("roles", roles)
                .field("group", group)
                .finish_non_exhaustive(),
            Self::Redis { url_env, user, .. } => {
                f.debug_struct("Redis").field("url_env", url_env).field("user", user).finish_non_exhaustive()
            }
            Self::Command { program, .. } => {
                f.debug_struct("Command").field("program", program).finish_non_exhaustive()
            }
        }
    }
}

impl TargetConfig {
    /// The target's type name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Postgres { .. } => "postgres",
            Self::Redis { .. } => "redis",
            Self::Command { .. } => "command",
        }
    }

    /// The library's warning about a weaker transport (plaintext allowed to
    /// a remote host, `verify-ca`), for `plan` and `check`.
    pub fn transport_warning(&self) -> Option<String> {
        match self {
            Self::Postgres { config, .. } => config.transport_warning(),
            Self::Redis { target, .. } => target.config().transport_warning(),
            // The program's own business.
            Self::Command { .. } => None,
        }
    }

    /// Whether the target accepts two credentials for one identity at once.
    pub fn concurrent_credentials(&self) -> bool {
        match self {
            Self::Postgres { roles, .. } => roles.len() == 2,
            // An ACL user holds the old and the new password at once.
            Self::Redis { .. } => true,
            Self::Command { target, .. } => rekey::CredentialTarget::capabilities(&**target).concurrent_credentials,
        }
    }
}

pub(super) fn target_config(
    ctx: &mut Ctx<'_>,
    t: &Tbl<'_>,
    plain: Option<&toml::Value>,
    path: Option<&rekey::SecretPath>,
    field: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<TargetConfig> {
    match t.str("type") {
        Some("postgres") => {}
        Some("command") => {
            return command_target(ctx, t, plain, path, field)
                .map(|(program, inherit_env, target)| TargetConfig::Command { program, inherit_env, target });
        }
        Some("redis") => {
            return redis_target(ctx, t, env).map(|(url_env, user, target)| TargetConfig::Redis {
                url_env,
                user,
                target,
            });
        }
        Some(other) => {
            ctx.err(
                t.span_of("type"),
                t.field("type"),
                format!("unknown target type {other:?}; expected `postgres`, `redis` or `command`"),
            );
            return None;
        }
        None => {
            ctx.err(t.span.clone(), t.field("type"), "missing required key `type` (`postgres`, `redis` or `command`)");
            return None;
        }
    }
    let ok = check(
        ctx,
        t,
        &[
            ("type", Kind::Str),
            ("url_env", Kind::Str),
            ("role", Kind::Str),
            ("roles", Kind::StrList),
            ("group", Kind::Str),
            ("timeout", Kind::Str),
            ("sslmode", Kind::Str),
            ("ca_file", Kind::Str),
            ("allow_plaintext", Kind::Bool),
        ],
        &["url_env"],
    );
    if !ok {
        return None;
    }
    let url_env = t.str("url_env").unwrap_or_default().to_owned();
    let mut bad = false;
    if env(&url_env).is_none() {
        ctx.err(
            t.span_of("url_env"),
            t.field("url_env"),
            format!("missing credentials: the environment variable {url_env} (the admin connection URL) is not set"),
        );
        bad = true;
    }
    let roles = match (t.str("role"), t.strs("roles")) {
        (Some(r), None) => vec![r.to_owned()],
        (None, Some(rs)) if rs.len() == 2 => rs,
        (None, Some(_)) => {
            ctx.err(t.span_of("roles"), t.field("roles"), "alternating credentials need exactly two roles");
            return None;
        }
        (Some(_), Some(_)) => {
            ctx.err(
                t.span_of("roles"),
                t.field("roles"),
                "set either `role` (one role) or `roles` (two alternating roles)",
            );
            return None;
        }
        (None, None) => {
            ctx.err(t.span.clone(), t.field("role"), "missing `role` (or `roles` for two alternating roles)");
            return None;
        }
    };
    let group = t.str("group").map(str::to_owned);
    if roles.len() == 2 && group.is_none() {
        ctx.err(t.span.clone(), t.field("group"), "two alternating roles need their `group` role");
        bad = true;
    }
    let timeout = if t.item("timeout").is_some() {
        let d = parse_duration(ctx, t, "timeout");
        bad |= d.is_none();
        d
    } else {
        None
    };
    if bad {
        return None;
    }
    let config = Box::new(postgres_config(ctx, t, &env(&url_env)?, &url_env, timeout)?);
    Some(TargetConfig::Postgres { url_env, roles, group, config })
}

/// Builds the admin connection of a postgres target, every refusal reported
/// at the key that causes it.
fn postgres_config(
    ctx: &mut Ctx<'_>,
    t: &Tbl<'_>,
    url: &str,
    url_env: &str,
    timeout: Option<Duration>,
) -> Option<rekey_postgres::PostgresConfig> {
    use rekey_postgres::{PostgresConfig, SslMode};
    let mut cfg = match PostgresConfig::from_url(url) {
        Ok(c) => c,
        Err(e) => {
            ctx.err(t.span_of("url_env"), t.field("url_env"), format!("{url_env}: {}", why(e)));
            return None;
        }
    };
    if let Some(d) = timeout {
        cfg = cfg.with_timeout(d);
    }
    if let Some(m) = t.str("sslmode") {
        match m.parse::<SslMode>() {
            Ok(mode) => cfg = cfg.with_ssl_mode(mode),
            Err(e) => {
                ctx.err(t.span_of("sslmode"), t.field("sslmode"), why(e));
                return None;
            }
        }
    }
    if let Some(path) = t.str("ca_file") {
        match cfg.with_ca_file(path) {
            Ok(c) => cfg = c,
            Err(e) => {
                ctx.err(t.span_of("ca_file"), t.field("ca_file"), why(e));
                return None;
            }
        }
    }
    cfg = cfg.with_plaintext_allowed(t.bool("allow_plaintext").unwrap_or(false));
    if let Err(e) = cfg.check_transport() {
        // Point at the key that chose the transport: `sslmode` if set, else
        // the URL (its host and `sslmode` parameter).
        let key = ["sslmode", "ca_file"].into_iter().find(|k| t.item(k).is_some()).unwrap_or("url_env");
        let mut msg = why(e);
        if cfg.ssl_mode() == SslMode::Disable && !cfg.plaintext_allowed() {
            msg.push_str(" (in this file: `allow_plaintext = true`)");
        }
        ctx.err(t.span_of(key), t.field(key), msg);
        return None;
    }
    Some(cfg)
}
