//! `rekey rotate` and `rekey emergency`: rotations now, with a bound on
//! concurrency, a summary, and one exit code for the lot.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use rekey::{RotationOutcome, RotationRequest, RotationResult, RotationTrigger};
use serde_json::{Value, json};

use super::check::shape_problem;
use crate::app::{self, App};
use crate::config::{Config, SecretConfig};
use crate::error::{self, CliError, EXIT_CONFIG, EXIT_OK};
use crate::output::{Out, Table, cell, duration, time_json, trigger_name, when};

/// One rotation's result for `--json` (the CLI's own shape).
fn result_json(r: &RotationResult) -> Value {
    json!({
        "path": r.path.as_str(),
        "outcome": r.outcome.as_str(),
        "exit_code": error::rotation_exit_code(r),
        "strategy": r.strategy.as_str(),
        "trigger": trigger_name(&r.trigger),
        "rotation_id": r.rotation_id.to_string(),
        "old_version": r.old_version.as_ref().map(|v| v.as_str()),
        "new_version": r.new_version.as_ref().map(|v| v.as_str()),
        "started_at": time_json(Some(r.started_at)),
        "completed_at": time_json(Some(r.completed_at)),
        "duration_ms": r.duration_ms(),
        "verification_passed": r.verification_passed,
        "retries": r.retries,
        "store_calls": r.calls,
        "rollback_performed": r.rollback_performed,
        "error": r.error.as_ref().map(|e| json!({ "kind": e.kind(), "message": error::rotation_message(e) })),
    })
}

fn summary_table(results: &[RotationResult]) -> Table {
    let mut t = Table::new(&["SECRET", "OUTCOME", "OLD", "NEW", "TIME", "RETRIES", "ERROR"]);
    for r in results {
        t.row(vec![
            r.path.to_string(),
            r.outcome.to_string(),
            cell(r.old_version.as_ref()),
            cell(r.new_version.as_ref()),
            duration(r.duration),
            r.retries.to_string(),
            cell(r.error.as_ref().map(error::rotation_message)),
        ]);
    }
    t
}

/// Runs rotations with a bound on concurrency. The engine records each
/// result beside the secret (`rekey.*`), in the write that ends the rotation.
async fn rotate_many(
    app: &App,
    secrets: Vec<SecretConfig>,
    concurrency: usize,
    trigger: RotationTrigger,
    progress: Option<indicatif::ProgressBar>,
) -> Vec<RotationResult> {
    let manager = &app.manager;
    let progress = &progress;
    let trigger = &trigger;
    let mut results: Vec<RotationResult> = futures::stream::iter(secrets)
        .map(|s| async move {
            let req = RotationRequest::new(&s.path, &s.policy).trigger(trigger.clone());
            let r = manager.rotate(req).await;
            if let Some(p) = progress {
                p.inc(1);
            }
            r
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.sort_by(|a, b| a.path.cmp(&b.path));
    results
}

/// The requests the store client has sent so far, all operations.
fn store_calls(app: &App) -> u64 {
    app.store.request_counts().iter().map(|(_, n)| n).sum()
}

/// Fails early (exit 3) when the store cannot be reached, rather than
/// reporting every rotation as failed.
async fn probe(app: &App, secrets: &[SecretConfig]) -> Result<(), CliError> {
    if let Some(s) = secrets.first()
        && let Err(e) = app.store.read_metadata(&s.path).await
        && error::unreachable(&e)
    {
        return Err(CliError::store("reaching the store", e));
    }
    Ok(())
}

/// `rekey rotate`.
pub async fn rotate(
    config: Config,
    out: Out,
    paths: &[String],
    all: bool,
    dry_run: bool,
    concurrency: usize,
) -> Result<u8, CliError> {
    let app = app::build(config, Some(concurrency)).await?;
    let secrets = app.select(paths, all)?;
    probe(&app, &secrets).await?;
    if dry_run {
        let code = dry_run_report(&app, out, &secrets).await;
        app.finish().await;
        return code;
    }
    let progress = (secrets.len() > 1 && !out.json && std::io::stderr().is_terminal()).then(|| {
        let p = indicatif::ProgressBar::new(secrets.len() as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rotated  {elapsed} ({per_sec})")
        {
            p.set_style(style);
        }
        p
    });
    let n = secrets.len();
    let calls_before = store_calls(&app);
    let started = Instant::now();
    let results = rotate_many(&app, secrets, concurrency, RotationTrigger::Manual, progress.clone()).await;
    let elapsed = started.elapsed();
    let store_calls = store_calls(&app) - calls_before;
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    let code = report(out, &results, n, elapsed, store_calls);
    app.finish().await;
    Ok(code)
}

/// Prints the results; returns the exit code of the lot (the most severe).
/// `store_calls`: the requests the store client sent during the run (0 for
/// a store that does not count them).
fn report(out: Out, results: &[RotationResult], n: usize, elapsed: Duration, store_calls: u64) -> u8 {
    let count = |o: RotationOutcome| results.iter().filter(|r| r.outcome == o).count();
    let failed = results.iter().filter(|r| r.outcome.is_failure()).count();
    let rotated = count(RotationOutcome::Rotated);
    let code = results.iter().map(error::rotation_exit_code).fold(EXIT_OK, error::worst);
    let rate = if elapsed.as_secs_f64() > 0.0 { n as f64 / elapsed.as_secs_f64() } else { 0.0 };
    if out.json {
        out.emit(
            code == EXIT_OK,
            json!({
                "results": results.iter().map(result_json).collect::<Vec<_>>(),
                "summary": {
                    "total": n,
                    "rotated": rotated,
                    "failed": failed,
                    "rolled_back": count(RotationOutcome::RolledBack),
                    "skipped": n - rotated - failed,
                    "elapsed_ms": elapsed.as_secs_f64() * 1000.0,
                    "per_second": rate,
                    "store_calls": store_calls,
                    "store_calls_per_rotation": if rotated > 0 { store_calls as f64 / rotated as f64 } else { 0.0 },
                },
                "exit_code": code,
            }),
        );
    } else {
        out.table(&summary_table(results));
        out.line(&format!(
            "{rotated} rotated, {failed} failed, {} skipped, of {n} in {} ({rate:.1}/s)",
            n - rotated - failed,
            duration(elapsed),
        ));
    }
    code
}

/// How many secrets a dry run reads at once.
const DRY_RUN_CONCURRENCY: usize = 64;

async fn dry_run_report(app: &App, out: Out, secrets: &[SecretConfig]) -> Result<u8, CliError> {
    let mut t = Table::new(&["SECRET", "STRATEGY", "CURRENT", "WOULD"]);
    let mut items = Vec::new();
    let mut code = EXIT_OK;
    // One snapshot per secret (the value, its version and the record), read
    // with the same bounded concurrency as `status`.
    let snapshots: Vec<_> = futures::stream::iter(secrets)
        .map(|s| async move { app.store.snapshot(&s.path, true).await })
        .buffered(DRY_RUN_CONCURRENCY)
        .collect()
        .await;
    for (s, snap) in secrets.iter().zip(snapshots) {
        let (current, would) = match snap {
            Ok(snap) => {
                // A journal: live in another process until it is stale
                // (the rotation would be refused), crashed after that (the
                // rotation cleans it up first).
                let live_until = rekey::RotationJournal::read(&snap.metadata).map(|j| {
                    let limit = chrono::Duration::from_std(app.manager.stale_limit(&s.policy)).ok();
                    j.started.zip(limit).and_then(|(t, l)| t.checked_add_signed(l)).filter(|t| *t > Utc::now())
                });
                let problem = match &snap.data {
                    Some(data) => shape_problem(s, data),
                    None => Some("the store returned no value".to_owned()),
                };
                let would = match problem {
                    Some(p) => {
                        code = error::worst(code, EXIT_CONFIG);
                        format!("fail: {p}")
                    }
                    None if matches!(live_until, Some(Some(_))) => format!(
                        "wait: a rotation is in progress in another process (if that process has stopped, \
                         its journal counts as crashed from {})",
                        when(live_until.flatten())
                    ),
                    None if live_until.is_some() => "rotate after cleaning up a crashed rotation".to_owned(),
                    None => format!(
                        "rotate ({}{}{})",
                        s.policy.strategy(),
                        s.target.as_ref().map(|t| format!(", apply to {} target", t.kind())).unwrap_or_default(),
                        if s.policy.verification_tests().is_empty() {
                            String::new()
                        } else {
                            format!(", verify with {}", s.policy.verification_tests().join(", "))
                        }
                    ),
                };
                (Some(snap.current.id.to_string()), would)
            }
            Err(e) if error::unreachable(&e) => return Err(CliError::store(format!("reading {}", s.path), e)),
            Err(e) => {
                code = error::worst(code, error::store_exit_code(&e));
                (None, format!("fail: {e}"))
            }
        };
        t.row(vec![s.path.to_string(), s.policy.strategy().to_string(), cell(current.as_ref()), would.clone()]);
        items.push(json!({
            "path": s.path.as_str(),
            "strategy": s.policy.strategy().as_str(),
            "current_version": current,
            "would": would,
        }));
    }
    if out.json {
        out.emit(code == EXIT_OK, json!({ "dry_run": true, "secrets": items, "exit_code": code }));
    } else {
        out.table(&t);
        out.line("dry run: nothing was written");
    }
    Ok(code)
}

/// `rekey emergency`.
pub async fn emergency(config: Config, out: Out, path: &str, reason: &str) -> Result<u8, CliError> {
    if reason.trim().is_empty() {
        return Err(CliError::Usage("--reason must not be empty".into()));
    }
    let app = app::build(config, None).await?;
    let s = app.secret(path)?.clone();
    probe(&app, std::slice::from_ref(&s)).await?;
    let calls_before = store_calls(&app);
    let started = Instant::now();
    let trigger = RotationTrigger::Emergency { reason: reason.to_owned() };
    let results = rotate_many(&app, vec![s], 1, trigger, None).await;
    let code = report(out, &results, 1, started.elapsed(), store_calls(&app) - calls_before);
    app.finish().await;
    Ok(code)
}
