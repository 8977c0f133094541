//! `rekey`: rotate credentials from a TOML configuration file — on demand,
//! or as a daemon that rotates secrets as they come due and serves
//! `/healthz` and Prometheus `/metrics`.
//!
//! See `docs/cli.md` for the configuration format and every command.
#![deny(missing_docs)]

mod app;
mod commands;
mod config;
mod daemon;
mod error;
mod integrations;
mod output;
mod state;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::CliError;

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  a rotation (or rollback) failed
  2  the configuration file or the command line is wrong; nothing ran
  3  the store could not be reached or refused the credentials
  4  a secret does not exist in the store (or has no previous version)

Credentials come only from the environment: VAULT_TOKEN/BAO_TOKEN (or
VAULT_ROLE_ID + VAULT_SECRET_ID for AppRole), the AWS credential chain, and
the variables a target's `url_env` or a webhook's `key_env` names.

Example:
  rekey -c rekey.toml check
  rekey -c rekey.toml rotate --all --concurrency 8";

/// Rotates credentials (generate, apply, verify, promote atomically, roll back
/// on failure) on Vault/OpenBao, AWS Secrets Manager or in memory.
#[derive(Debug, Parser)]
#[command(name = "rekey", version, about, after_help = AFTER_HELP)]
struct Cli {
    /// The configuration file.
    #[arg(short, long, global = true, env = "REKEY_CONFIG", default_value = "rekey.toml")]
    config: PathBuf,
    /// Log format (logs go to stderr; the level comes from RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration and reach the store; list every problem.
    #[command(after_help = "Example:\n  rekey -c rekey.toml check\n  rekey -c rekey.toml check --json")]
    Check,
    /// Show each secret's last rotation, its next due times and warnings about unsafe set-ups.
    #[command(after_help = "Example:\n  rekey plan --next 5")]
    Plan(PlanArgs),
    /// Rotate secrets now.
    #[command(
        after_help = "Example:\n  rekey rotate app/db-password\n  rekey rotate --all --concurrency 32\n  rekey rotate --all --dry-run"
    )]
    Rotate(RotateArgs),
    /// Rotate one secret now, bypassing rotation windows, with the reason in the audit trail.
    #[command(after_help = "Example:\n  rekey emergency app/db-password --reason \"key leaked in CI log\"")]
    Emergency(EmergencyArgs),
    /// One row per secret: policy, strategy, version, last rotated, next due, last result, quarantine.
    #[command(after_help = "Example:\n  rekey status\n  rekey status --json | jq '.secrets[] | select(.quarantined)'")]
    Status,
    /// The versions and rotation events of one secret.
    #[command(after_help = "Example:\n  rekey history app/db-password")]
    History(PathArg),
    /// Make the previous value current again (compare-and-swap against the current one).
    #[command(after_help = "Example:\n  rekey rollback app/db-password")]
    Rollback(PathArg),
    /// Lift a secret's quarantine so the daemon rotates it again.
    #[command(after_help = "Example:\n  rekey resume app/db-password")]
    Resume(PathArg),
    /// Run the daemon: rotate secrets as they come due, serve /healthz and /metrics.
    #[command(after_help = "Example:\n  RUST_LOG=info rekey -c /etc/rekey.toml run --log-format json\n\n\
SIGTERM or SIGINT stops taking new work; rotations in flight may finish within\n\
[daemon] shutdown_timeout, anything unfinished is cleaned up by the next run.")]
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Serve /healthz and /metrics here instead of [daemon] listen (loopback
    /// only unless [daemon] allow_non_loopback = true).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// How many upcoming due times to show per secret.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=1000))]
    next: u16,
}

#[derive(Debug, Args)]
struct RotateArgs {
    /// Secret paths as configured in [[secret]].
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    paths: Vec<String>,
    /// Rotate every configured secret.
    #[arg(long)]
    all: bool,
    /// Show what would be rotated; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Rotations in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
}

#[derive(Debug, Args)]
struct EmergencyArgs {
    /// The secret's path.
    path: String,
    /// Why (recorded in the audit trail and the secret's history).
    #[arg(long)]
    reason: String,
}

#[derive(Debug, Args)]
struct PathArg {
    /// The secret's path.
    path: String,
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

fn init_logging(format: LogFormat, default_level: tracing_subscriber::filter::LevelFilter) {
    use std::io::IsTerminal;
    let rust_log = std::env::var_os("RUST_LOG");
    let (filter, mut ignored) = log_filter(rust_log.as_deref().and_then(std::ffi::OsStr::to_str), default_level);
    if rust_log.as_deref().is_some_and(|v| v.to_str().is_none()) {
        ignored.push("all of it (not valid UTF-8)".to_owned());
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    for d in ignored {
        tracing::warn!("ignoring the RUST_LOG directive {d}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Run(_)) {
        tracing_subscriber::filter::LevelFilter::INFO
    } else {
        tracing_subscriber::filter::LevelFilter::WARN
    };
    init_logging(cli.log_format, default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return error::exit(error::EXIT_FAILED);
        }
    };
    let json = cli.json;
    let out = output::Out { json };
    match runtime.block_on(run(cli, out)) {
        Ok(code) => error::exit(code),
        Err(e) => {
            out.error(&e);
            error::exit(e.exit_code())
        }
    }
}

async fn run(cli: Cli, out: output::Out) -> Result<u8, CliError> {
    let mut config = config::load(&cli.config)?;
    match cli.command {
        Command::Check => commands::check(config, out).await,
        Command::Plan(a) => commands::plan(config, out, usize::from(a.next)).await,
        Command::Rotate(a) => {
            commands::rotate(config, out, &a.paths, a.all, a.dry_run, usize::from(a.concurrency)).await
        }
        Command::Emergency(a) => commands::emergency(config, out, &a.path, &a.reason).await,
        Command::Status => commands::status(config, out).await,
        Command::History(a) => commands::history(config, out, &a.path).await,
        Command::Rollback(a) => commands::rollback(config, out, &a.path).await,
        Command::Resume(a) => commands::resume(config, out, &a.path).await,
        Command::Run(a) => {
            if let Some(l) = a.listen {
                if !l.ip().is_loopback() && !config.daemon.allow_non_loopback {
                    return Err(CliError::Usage(format!(
                        "--listen {l} is not a loopback address; set [daemon] allow_non_loopback = true to allow it"
                    )));
                }
                config.daemon.listen = l;
            }
            daemon::run(config, out).await
        }
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
