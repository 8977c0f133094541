//! `[daemon]`: the settings of `rekey run`.

use std::net::SocketAddr;
use std::time::Duration;

use super::walker::{Ctx, Kind, Tbl, check, parse_duration};

/// Default daemon listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// `[daemon]`.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where `/healthz` and `/metrics` are served.
    pub listen: SocketAddr,
    /// Whether a non-loopback listen address was explicitly allowed.
    pub allow_non_loopback: bool,
    /// How long in-flight rotations may take to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// How often the daemon re-reads quarantine state from the store.
    pub resync_interval: Duration,
    /// How often every scheduled secret is read again (spread over the
    /// interval) to learn what other processes left beside it; `None`: never.
    pub recheck_interval: Option<Duration>,
    /// Rotations in flight at once (and scheduling reads).
    pub max_concurrency: usize,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9464))),
            allow_non_loopback: false,
            shutdown_timeout: Duration::from_secs(30),
            resync_interval: Duration::from_secs(30),
            recheck_interval: Some(Duration::from_secs(3600)),
            max_concurrency: 16,
        }
    }
}

pub(super) fn daemon_config(ctx: &mut Ctx<'_>, t: &Tbl<'_>) -> DaemonConfig {
    let mut d = DaemonConfig::default();
    check(
        ctx,
        t,
        &[
            ("listen", Kind::Str),
            ("allow_non_loopback", Kind::Bool),
            ("shutdown_timeout", Kind::Str),
            ("resync_interval", Kind::Str),
            ("recheck_interval", Kind::Str),
            ("max_concurrency", Kind::Int),
        ],
        &[],
    );
    d.allow_non_loopback = t.bool("allow_non_loopback").unwrap_or(false);
    if let Some(l) = t.str("listen") {
        match l.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() || d.allow_non_loopback => d.listen = a,
            Ok(a) => ctx.err(
                t.span_of("listen"),
                t.field("listen"),
                format!(
                    "{a} is not a loopback address: /metrics and /healthz would be reachable from the network; \
                     use 127.0.0.1 or set allow_non_loopback = true"
                ),
            ),
            Err(e) => ctx.err(
                t.span_of("listen"),
                t.field("listen"),
                format!("{l:?} is not an IP address and port ({e}); expected e.g. \"127.0.0.1:9464\""),
            ),
        }
    }
    if t.item("shutdown_timeout").is_some()
        && let Some(v) = parse_duration(ctx, t, "shutdown_timeout")
    {
        d.shutdown_timeout = v;
    }
    if t.item("resync_interval").is_some()
        && let Some(v) = parse_duration(ctx, t, "resync_interval")
    {
        d.resync_interval = v;
    }
    if t.str("recheck_interval").is_some_and(|v| v.trim() == "off") {
        d.recheck_interval = None;
    } else if t.item("recheck_interval").is_some()
        && let Some(v) = parse_duration(ctx, t, "recheck_interval")
    {
        d.recheck_interval = Some(v);
    }
    if let Some(n) = t.int("max_concurrency") {
        match usize::try_from(n) {
            Ok(n) if (1..=1024).contains(&n) => d.max_concurrency = n,
            _ => ctx.err(
                t.span_of("max_concurrency"),
                t.field("max_concurrency"),
                format!("{n} is out of range 1..=1024"),
            ),
        }
    }
    d
}
