//! `target = { ... }` of a `[[secret]]`: the system that checks the
//! credential (a PostgreSQL role, or two alternating roles).

use std::fmt;
use std::time::Duration;

use super::walker::{Ctx, Kind, Tbl, check, parse_duration};

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
        /// Connect timeout.
        timeout: Option<Duration>,
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
        }
    }
}

impl TargetConfig {
    /// The target's type name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Postgres { .. } => "postgres",
        }
    }

    /// Whether the target accepts two credentials for one identity at once.
    pub fn concurrent_credentials(&self) -> bool {
        match self {
            Self::Postgres { roles, .. } => roles.len() == 2,
        }
    }
}

pub(super) fn target_config(
    ctx: &mut Ctx<'_>,
    t: &Tbl<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<TargetConfig> {
    match t.str("type") {
        Some("postgres") => {}
        Some(other) => {
            ctx.err(t.span_of("type"), t.field("type"), format!("unknown target type {other:?}; expected `postgres`"));
            return None;
        }
        None => {
            ctx.err(t.span.clone(), t.field("type"), "missing required key `type` (`postgres`)");
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
    Some(TargetConfig::Postgres { url_env, roles, group, timeout })
}
