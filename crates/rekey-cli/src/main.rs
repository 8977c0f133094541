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
mod logging;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::CliError;
use crate::logging::LogFormat;

const AFTER_HELP: &str = "\
Exit codes:
  0  success; also a rotation skipped (outside its window, in progress or
     rotated elsewhere): the outcome says which
  1  a rotation (or rollback) failed
  2  the configuration file or the command line is wrong, or a secret's
     settings do not fit the stored value; nothing ran
  3  the store could not be reached or refused the credentials
  4  a secret does not exist in the store (or has no previous version)
  Several secrets (rotate --all, check, status): the most severe code,
  3 > 2 > 1 > 4 > 0.

Credentials come only from the environment: VAULT_TOKEN/BAO_TOKEN (or
VAULT_ROLE_ID + VAULT_SECRET_ID for AppRole), the AWS credential chain, and
the variables a target's `url_env` or a webhook's `secret_env` names.

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
    /// Print machine-readable JSON on stdout instead of tables: one line,
    /// `{"version": 1, "ok": ..., "command": ..., ...}` (docs/cli.md).
    #[arg(long, global = true)]
    json: bool,
    /// With --json: indent the JSON over several lines.
    #[arg(long, global = true)]
    pretty: bool,
    #[command(subcommand)]
    command: Command,
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
[daemon] shutdown_timeout. A rotation cut off there leaves its journal; other\n\
processes treat it as in progress elsewhere until it is stale, after\n\
  2 x verification_timeout x (number of verification_tests + 1)\n\
    + 2 x max_backoff + 60 s\n\
(the secret's policy), then the next run takes it over and cleans it up.")]
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
    /// Secret paths as configured in `[[secret]]`.
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

impl Command {
    /// The command's name, as typed.
    fn name(&self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::Plan(_) => "plan",
            Self::Rotate(_) => "rotate",
            Self::Emergency(_) => "emergency",
            Self::Status => "status",
            Self::History(_) => "history",
            Self::Rollback(_) => "rollback",
            Self::Resume(_) => "resume",
            Self::Run(_) => "run",
        }
    }
}

const COMMANDS: [&str; 9] = ["check", "plan", "rotate", "emergency", "status", "history", "rollback", "resume", "run"];

/// A command line clap refused: its text on stderr, and with `--json`
/// anywhere on the line, the JSON envelope on stdout too. Exit 2 (help and
/// version: 0).
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let wants_json = args.iter().take_while(|a| *a != "--").any(|a| a == "--json");
    let informational = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    let _ = e.print();
    if informational {
        return error::exit(error::EXIT_OK);
    }
    if wants_json {
        let command = args.iter().find_map(|a| COMMANDS.iter().find(|c| **c == a.as_str()).copied());
        let text = e.render().to_string();
        let message = text.lines().next().unwrap_or_default().trim_start_matches("error: ").trim().to_owned();
        let body = serde_json::json!({
            "error": { "kind": "usage", "message": message, "exit_code": error::EXIT_CONFIG },
        });
        let pretty = args.iter().any(|a| a == "--pretty");
        output::print_json(&output::envelope(command, false, body), pretty);
    }
    error::exit(error::EXIT_CONFIG)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let default_level = if matches!(cli.command, Command::Run(_)) {
        tracing_subscriber::filter::LevelFilter::INFO
    } else {
        tracing_subscriber::filter::LevelFilter::WARN
    };
    logging::init(cli.log_format, default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {}", output::escape(&e.to_string()));
            return error::exit(error::EXIT_FAILED);
        }
    };
    let out = output::Out { json: cli.json, pretty: cli.pretty, command: cli.command.name() };
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
