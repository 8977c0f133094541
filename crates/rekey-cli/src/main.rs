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

fn init_logging(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal;
    // The Vault client logs expected 404s (a missing staging candidate) as
    // errors; keep them out unless RUST_LOG asks for them.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default_level},rustify=off,vaultrs=off")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Run(_)) { "info" } else { "warn" };
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
