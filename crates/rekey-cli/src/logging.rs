//! Logs on stderr: text (escaped: a control character in a path, a name or
//! a verifier's message cannot act on the terminal) or JSON lines.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

use crate::error::in_config_terms;
use crate::output::escape;

/// The log format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// stderr, with every control character of a log line escaped except the
/// newline that ends it, and the library's messages in config terms. The text formatter writes each event with one
/// `write_all` of the whole line.
#[derive(Debug, Clone, Copy, Default)]
struct EscapedStderr;

impl Write for EscapedStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, end) = match text.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (&*text, ""),
        };
        let mut err = io::stderr().lock();
        err.write_all(escape(&in_config_terms(body)).as_bytes())?;
        err.write_all(end.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl MakeWriter<'_> for EscapedStderr {
    type Writer = Self;
    fn make_writer(&self) -> Self {
        *self
    }
}

/// Third-party targets that report responses rekey expects as errors: the
/// Vault client logs every 404 (no staged candidate yet) and every lost
/// compare-and-swap at ERROR level. Off unless `RUST_LOG` names them.
const QUIET_TARGETS: [&str; 2] = ["vaultrs", "rustify"];

/// The log filter: every valid directive of `rust_log` (or `default_level`
/// when it has none), plus `TARGET=off` for each of [`QUIET_TARGETS`] that no
/// directive names (itself or a module in it). Also returns the directives
/// it could not parse, to report once logging is up.
fn log_filter(
    rust_log: Option<&str>,
    default_level: tracing_subscriber::filter::LevelFilter,
) -> (tracing_subscriber::EnvFilter, Vec<String>) {
    use tracing_subscriber::filter::Directive;
    let mut ignored = Vec::new();
    let mut directives: Vec<Directive> = rust_log
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter_map(|d| match d.parse::<Directive>() {
            Ok(directive) => Some(directive),
            Err(e) => {
                ignored.push(format!("{d:?} ({e})"));
                None
            }
        })
        .collect();
    if directives.is_empty() {
        directives.push(default_level.into());
    }
    let named: Vec<String> = directives.iter().filter_map(directive_target).collect();
    let mut filter = tracing_subscriber::EnvFilter::default();
    for d in directives {
        filter = filter.add_directive(d);
    }
    for quiet in QUIET_TARGETS {
        let prefix = format!("{quiet}::");
        if !named.iter().any(|t| t == quiet || t.starts_with(&prefix))
            && let Ok(off) = format!("{quiet}=off").parse::<Directive>()
        {
            filter = filter.add_directive(off);
        }
    }
    (filter, ignored)
}

/// The target a directive names, if any. `Directive` has no accessor for it;
/// its `Display` is `target[span{fields}]=level`, or a bare level.
fn directive_target(d: &tracing_subscriber::filter::Directive) -> Option<String> {
    let text = d.to_string();
    let end = text.find(['[', '='])?;
    (end > 0).then(|| text[..end].to_owned())
}

/// Starts logging: every valid directive of `RUST_LOG` (else
/// `default_level`), the Vault client's crates off unless `RUST_LOG` names
/// them; invalid directives are reported once logging is up.
pub fn init(format: LogFormat, default_level: tracing_subscriber::filter::LevelFilter) {
    let rust_log = std::env::var_os("RUST_LOG");
    let (filter, mut ignored) = log_filter(rust_log.as_deref().and_then(std::ffi::OsStr::to_str), default_level);
    if rust_log.as_deref().is_some_and(|v| v.to_str().is_none()) {
        ignored.push("all of it (not valid UTF-8)".to_owned());
    }
    let _ = match format {
        // JSON escapes control characters itself.
        LogFormat::Json => tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr).json().try_init(),
        // No colours: their escape sequences would be escaped too.
        LogFormat::Text => {
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(EscapedStderr).with_ansi(false).try_init()
        }
    };
    for d in ignored {
        tracing::warn!("ignoring the RUST_LOG directive {d}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use tracing_subscriber::filter::LevelFilter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The events (named by their message) the filter for `rust_log` lets through.
    fn shown(rust_log: Option<&str>) -> Vec<&'static str> {
        let (filter, _) = log_filter(rust_log, LevelFilter::INFO);
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(move || out.clone()).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "vaultrs::api", "vaultrs-error");
            tracing::debug!(target: "vaultrs::api", "vaultrs-debug");
            tracing::error!(target: "rustify::client", "rustify-error");
            tracing::warn!(target: "rekey::daemon", "rekey-warn");
            tracing::info!(target: "rekey::daemon", "rekey-info");
            tracing::debug!(target: "rekey::daemon", "rekey-debug");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        ["vaultrs-error", "vaultrs-debug", "rustify-error", "rekey-warn", "rekey-info", "rekey-debug"]
            .into_iter()
            .filter(|m| text.contains(m))
            .collect()
    }

    #[test]
    fn the_vault_clients_stay_quiet_whatever_level_rust_log_sets() {
        assert_eq!(shown(None), ["rekey-warn", "rekey-info"]);
        assert_eq!(shown(Some("")), ["rekey-warn", "rekey-info"]);
        assert_eq!(shown(Some("info")), ["rekey-warn", "rekey-info"]);
        assert_eq!(shown(Some("debug")), ["rekey-warn", "rekey-info", "rekey-debug"]);
        assert_eq!(shown(Some("trace,rekey=warn")), ["rekey-warn"]);
    }

    #[test]
    fn a_directive_naming_a_quiet_crate_shows_it_and_the_rest_of_rust_log_is_kept() {
        // Honoured in full: with only `vaultrs=debug`, nothing else is on.
        assert_eq!(shown(Some("vaultrs=debug")), ["vaultrs-error", "vaultrs-debug"]);
        assert_eq!(shown(Some("info,vaultrs::api=error")), ["vaultrs-error", "rekey-warn", "rekey-info"]);
        assert_eq!(shown(Some("warn,rustify=error")), ["rustify-error", "rekey-warn"]);
        // `vault` is a prefix of `vaultrs` but names another target.
        assert_eq!(shown(Some("vault=debug,info")), ["rekey-warn", "rekey-info"]);
    }

    #[test]
    fn invalid_directives_are_reported_and_the_valid_ones_kept() {
        let (_, ignored) = log_filter(Some("warn,vaultrs=loud,rustify=error"), LevelFilter::INFO);
        assert_eq!(ignored.len(), 1, "{ignored:?}");
        assert!(ignored[0].contains("vaultrs=loud"), "{ignored:?}");
        assert_eq!(shown(Some("warn,vaultrs=loud,rustify=error")), ["rustify-error", "rekey-warn"]);
        // An invalid directive names nothing: vaultrs stays off. Nothing valid: the default level.
        assert_eq!(shown(Some("=,!!")), ["rekey-warn", "rekey-info"]);
    }

    #[test]
    fn directive_targets_are_read_from_every_form() {
        let target = |d: &str| directive_target(&d.parse().unwrap());
        assert_eq!(target("vaultrs=debug").as_deref(), Some("vaultrs"));
        assert_eq!(target("vaultrs").as_deref(), Some("vaultrs"));
        assert_eq!(target("vaultrs::api[request{path}]=trace").as_deref(), Some("vaultrs::api"));
        assert_eq!(target("info"), None);
        assert_eq!(target("[request]=debug"), None);
    }
}
