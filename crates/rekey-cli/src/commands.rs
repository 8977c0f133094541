//! The one-shot commands: check, plan, rotate, emergency, status, history,
//! rollback, resume.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use rekey::{
    RotationOutcome, RotationRequest, RotationResult, RotationStrategy, RotationTrigger, Schedule, SecretData,
    SecretStoreExt, StoreError, VersionMeta, jitter_key,
};
use serde_json::json;

use crate::app::{self, App};
use crate::config::{Config, SecretConfig};
use crate::error::{self, CliError, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK, EXIT_UNREACHABLE};
use crate::output::{Out, Table, cell, when};
use crate::state;

/// `rekey check`.
pub async fn check(config: Config, out: Out) -> Result<u8, CliError> {
    let app = app::build(config, None).await?;
    let mut problems: Vec<serde_json::Value> = Vec::new();
    let mut code = EXIT_OK;
    let mut rows = Table::new(&["SECRET", "STATE"]);
    for s in &app.config.secrets {
        let (status, problem) = match app.store.current(&s.path).await {
            Ok(cur) => match shape_problem(s, &cur.data) {
                Some(p) => ("misconfigured".to_owned(), Some(p)),
                None => (format!("ok (version {})", cur.meta.id), None),
            },
            Err(e @ StoreError::NotFound { .. }) => {
                code = code.max(EXIT_NOT_FOUND);
                ("missing".to_owned(), Some(format!("not found in the store: {e}")))
            }
            Err(e) if error::unreachable(&e) => {
                return Err(CliError::store(format!("reading {}", s.path), e));
            }
            Err(e) => {
                code = code.max(EXIT_FAILED);
                ("error".to_owned(), Some(e.to_string()))
            }
        };
        if let Some(p) = &problem {
            if code == EXIT_OK {
                code = EXIT_FAILED;
            }
            problems.push(json!({ "path": s.path, "problem": p }));
        }
        rows.row(vec![s.path.to_string(), problem.map(|p| format!("{status}: {p}")).unwrap_or(status)]);
    }
    if app.config.secrets.is_empty() {
        // Still prove the store answers.
        if let Err(e) =
            app.store.read_metadata(&"rekey-check/probe".parse().map_err(|_| CliError::Usage("probe".into()))?).await
            && error::unreachable(&e)
        {
            return Err(CliError::store("reaching the store", e));
        }
    }
    if out.json {
        out.json_value(&json!({
            "ok": problems.is_empty(),
            "store": app.config.store_kind,
            "secrets": app.config.secrets.len(),
            "policies": app.config.policies.len(),
            "verifiers": app.config.verifiers.iter().map(|v| json!({ "name": v.name, "type": v.kind })).collect::<Vec<_>>(),
            "problems": problems,
        }));
    } else {
        out.line(&format!(
            "configuration {}: {} store, {} polic{}, {} secret(s)",
            app.config.path.display(),
            app.config.store_kind,
            app.config.policies.len(),
            if app.config.policies.len() == 1 { "y" } else { "ies" },
            app.config.secrets.len()
        ));
        for v in &app.config.verifiers {
            out.line(&format!("verifier {} ({}): ok", v.name, v.kind));
        }
        print!("{}", rows.render());
        out.line(if problems.is_empty() { "ok" } else { "problems found" });
    }
    app.finish().await;
    Ok(if code == EXIT_UNREACHABLE { EXIT_UNREACHABLE } else { code })
}

/// Whether the configured field fits the stored value (never shows the value).
fn shape_problem(s: &SecretConfig, data: &SecretData) -> Option<String> {
    match (&s.field, data) {
        (None, SecretData::Fields(_)) => {
            let names: Vec<&str> = data.field_names().collect();
            Some(format!("the secret has fields ({}); set `field` to the one to rotate", names.join(", ")))
        }
        (Some(f), SecretData::Text(_)) => {
            Some(format!("`field = \"{f}\"` is set but the secret is a single value without fields"))
        }
        _ => None,
    }
}

fn next_dues(s: &SecretConfig, last: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let key = jitter_key(&s.path);
    let mut v = Vec::new();
    let mut t = last;
    while v.len() < n {
        match s.policy.next_due(t, key) {
            Some(d) if d > t => {
                v.push(d);
                t = d;
            }
            _ => break,
        }
    }
    v
}

/// Warnings about unsafe set-ups of one secret.
pub fn warnings(config: &Config, s: &SecretConfig) -> Vec<String> {
    let mut w = Vec::new();
    let p = &s.policy;
    let tests = p.verification_tests().len() + usize::from(s.target.is_some());
    if tests == 0 {
        w.push(match p.strategy() {
            RotationStrategy::Immediate => {
                "nothing verifies the new value: with the immediate strategy it becomes current unchecked".to_owned()
            }
            _ => "no verifier and no target: the candidate is promoted without any proof that it works".to_owned(),
        });
    }
    if p.require_verification() && p.verification_tests().is_empty() && s.target.is_none() {
        w.push("verification is required but no verifier is configured".to_owned());
    }
    if p.strategy().needs_grace_period() {
        let gap = p.schedule().min_gap();
        if let (Some(g), Some(gap)) = (p.grace_period(), gap) {
            let worst = gap.saturating_sub(p.jitter());
            if worst < g.saturating_mul(2) {
                w.push(format!(
                    "alternating credentials: with jitter, rotations can come {} apart, less than twice the grace period ({})",
                    humantime::format_duration(worst),
                    humantime::format_duration(g)
                ));
            }
            if worst < g {
                w.push("alternating credentials are scheduled closer together than their grace period".to_owned());
            }
        }
        if let Some(t) = &s.target
            && !t.concurrent_credentials()
        {
            w.push(format!(
                "the {} strategy needs a target that keeps two credentials valid; this {} target has one role",
                p.strategy(),
                t.kind()
            ));
        }
    }
    if s.target.is_some() && p.strategy() == RotationStrategy::Immediate {
        w.push(
            "a target with the immediate strategy: consumers may read the new value before the target accepts it"
                .to_owned(),
        );
    }
    if !p.auto_rollback() {
        w.push("auto_rollback is off: a failed verification leaves the new value current".to_owned());
    }
    if matches!(p.schedule(), Schedule::Manual) {
        w.push("manual schedule: rotated only on demand".to_owned());
    }
    if config.daemon.allow_non_loopback && !config.daemon.listen.ip().is_loopback() {
        w.push(format!("the daemon serves /metrics on a non-loopback address ({})", config.daemon.listen));
    }
    w
}

/// `rekey plan`.
pub async fn plan(config: Config, out: Out, next: usize) -> Result<u8, CliError> {
    let store = app::build_store(&config).await?;
    let mut items = Vec::new();
    let mut text = String::new();
    for s in &config.secrets {
        let (last, error) = match store.current(&s.path).await {
            Ok(c) => (Some(c.meta.created_at), None),
            Err(e) if error::unreachable(&e) => return Err(CliError::store(format!("reading {}", s.path), e)),
            Err(e) => (None, Some(e.to_string())),
        };
        let meta = store.read_metadata(&s.path).await.unwrap_or_default();
        let st = state::read(&meta);
        let dues = match (last, &st.quarantined) {
            (Some(l), None) => next_dues(s, l, next),
            _ => Vec::new(),
        };
        let w = warnings(&config, s);
        text.push_str(&format!(
            "{}  (policy {}, {}, {})\n  last rotated: {}\n",
            s.path,
            s.policy_name,
            s.policy.strategy(),
            s.policy.schedule(),
            when(last)
        ));
        if let Some(e) = &error {
            text.push_str(&format!("  problem: {e}\n"));
        }
        if let Some(q) = &st.quarantined {
            text.push_str(&format!("  QUARANTINED since {q}; `rekey resume {}` lifts it\n", s.path));
        }
        for d in &dues {
            text.push_str(&format!("  due: {}\n", when(Some(*d))));
        }
        for x in &w {
            text.push_str(&format!("  warning: {x}\n"));
        }
        items.push(json!({
            "path": s.path,
            "policy": s.policy_name,
            "strategy": s.policy.strategy(),
            "schedule": s.policy.schedule().to_string(),
            "last_rotated": last,
            "next_due": dues,
            "quarantined": st.quarantined,
            "verifiers": s.policy.verification_tests(),
            "secret_verifiers": s.verifiers,
            "target": s.target.as_ref().map(|t| t.kind()),
            "warnings": w,
            "problem": error,
        }));
    }
    if out.json {
        out.json_value(&json!({ "secrets": items }));
    } else {
        print!("{text}");
    }
    Ok(EXIT_OK)
}

fn result_json(r: &RotationResult) -> serde_json::Value {
    serde_json::to_value(r).unwrap_or_else(|_| json!({ "path": r.path, "outcome": state::outcome_name(r.outcome) }))
}

fn summary_table(results: &[RotationResult]) -> String {
    let mut t = Table::new(&["SECRET", "OUTCOME", "OLD", "NEW", "TIME", "ERROR"]);
    for r in results {
        t.row(vec![
            r.path.to_string(),
            r.outcome.to_string(),
            cell(r.old_version.as_ref()),
            cell(r.new_version.as_ref()),
            format!("{:.0} ms", r.duration_ms()),
            cell(r.error.as_ref()),
        ]);
    }
    t.render()
}

/// Runs rotations with a bound on concurrency, recording each result.
pub async fn rotate_many(
    app: &App,
    secrets: Vec<SecretConfig>,
    concurrency: usize,
    trigger: RotationTrigger,
    progress: Option<indicatif::ProgressBar>,
) -> Vec<RotationResult> {
    let manager = &app.manager;
    let store = &app.store;
    let progress = &progress;
    let trigger = &trigger;
    let mut results: Vec<RotationResult> = futures::stream::iter(secrets)
        .map(|s| async move {
            let req = RotationRequest::new(&s.path, &s.policy).trigger(trigger.clone());
            let r = manager.rotate(req).await;
            if let Err(e) = state::record(&**store, &r, s.policy.quarantine_after()).await {
                tracing::warn!(path = %s.path, error = %e, "could not record the rotation's result beside the secret");
            }
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
        return dry_run_report(&app, out, &secrets).await;
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
    let started = Instant::now();
    let results = rotate_many(&app, secrets, concurrency, RotationTrigger::Manual, progress.clone()).await;
    let elapsed = started.elapsed();
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    let code = report(out, &results, n, elapsed);
    app.finish().await;
    Ok(code)
}

fn report(out: Out, results: &[RotationResult], n: usize, elapsed: Duration) -> u8 {
    let count = |o: RotationOutcome| results.iter().filter(|r| r.outcome == o).count();
    let failed = results.iter().filter(|r| r.outcome.is_failure()).count();
    let rate = if elapsed.as_secs_f64() > 0.0 { n as f64 / elapsed.as_secs_f64() } else { 0.0 };
    if out.json {
        out.json_value(&json!({
            "ok": failed == 0,
            "results": results.iter().map(result_json).collect::<Vec<_>>(),
            "summary": {
                "total": n,
                "rotated": count(RotationOutcome::Rotated),
                "failed": failed,
                "rolled_back": count(RotationOutcome::RolledBack),
                "skipped": n - count(RotationOutcome::Rotated) - failed,
                "elapsed_ms": elapsed.as_secs_f64() * 1000.0,
                "per_second": rate,
            }
        }));
    } else {
        print!("{}", summary_table(results));
        out.line(&format!(
            "{} rotated, {} failed, {} other, of {n} in {:.2} s ({rate:.1}/s)",
            count(RotationOutcome::Rotated),
            failed,
            n - count(RotationOutcome::Rotated) - failed,
            elapsed.as_secs_f64()
        ));
    }
    if failed > 0 { EXIT_FAILED } else { EXIT_OK }
}

async fn dry_run_report(app: &App, out: Out, secrets: &[SecretConfig]) -> Result<u8, CliError> {
    let mut t = Table::new(&["SECRET", "STRATEGY", "CURRENT", "WOULD"]);
    let mut items = Vec::new();
    let mut code = EXIT_OK;
    for s in secrets {
        let (current, would) = match app.store.current(&s.path).await {
            Ok(c) => {
                let meta = app.store.read_metadata(&s.path).await.unwrap_or_default();
                let st = state::read(&meta);
                let would = match shape_problem(s, &c.data) {
                    Some(p) => format!("fail: {p}"),
                    None if st.in_progress => "rotate after recovering an unfinished rotation".to_owned(),
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
                (Some(c.meta.id), would)
            }
            Err(e) if error::unreachable(&e) => return Err(CliError::store(format!("reading {}", s.path), e)),
            Err(e) => {
                code = EXIT_NOT_FOUND;
                (None, format!("fail: {e}"))
            }
        };
        t.row(vec![s.path.to_string(), s.policy.strategy().to_string(), cell(current.as_ref()), would.clone()]);
        items.push(
            json!({ "path": s.path, "strategy": s.policy.strategy(), "current_version": current, "would": would }),
        );
    }
    if out.json {
        out.json_value(&json!({ "dry_run": true, "secrets": items }));
    } else {
        print!("{}", t.render());
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
    let started = Instant::now();
    let trigger = RotationTrigger::Emergency { reason: reason.to_owned() };
    let results = rotate_many(&app, vec![s], 1, trigger, None).await;
    let code = report(out, &results, 1, started.elapsed());
    app.finish().await;
    Ok(code)
}

struct StatusRow {
    path: String,
    policy: String,
    strategy: RotationStrategy,
    version: Option<String>,
    last_rotated: Option<DateTime<Utc>>,
    next_due: Option<DateTime<Utc>>,
    state: state::SecretState,
    error: Option<String>,
}

async fn status_row(app: &App, s: &SecretConfig) -> Result<StatusRow, CliError> {
    let mut row = StatusRow {
        path: s.path.to_string(),
        policy: s.policy_name.clone(),
        strategy: s.policy.strategy(),
        version: None,
        last_rotated: None,
        next_due: None,
        state: state::SecretState::default(),
        error: None,
    };
    match app.store.list_versions(&s.path).await {
        Ok(vs) => {
            if let Some(c) = vs.iter().find(|v| v.stages.current) {
                row.version = Some(c.id.to_string());
                row.last_rotated = Some(c.created_at);
            }
        }
        Err(e) if error::unreachable(&e) => return Err(CliError::store(format!("reading {}", s.path), e)),
        Err(e) => row.error = Some(e.to_string()),
    }
    if row.error.is_none() {
        match app.store.read_metadata(&s.path).await {
            Ok(m) => row.state = state::read(&m),
            Err(e) if error::unreachable(&e) => return Err(CliError::store(format!("reading {}", s.path), e)),
            Err(e) => row.error = Some(e.to_string()),
        }
    }
    if row.state.quarantined.is_none() {
        row.next_due = row.last_rotated.and_then(|l| s.policy.next_due(l, jitter_key(&s.path)));
    }
    Ok(row)
}

/// `rekey status`.
pub async fn status(config: Config, out: Out) -> Result<u8, CliError> {
    let app = app::build(config, None).await?;
    let rows: Vec<Result<StatusRow, CliError>> =
        futures::stream::iter(app.config.secrets.iter()).map(|s| status_row(&app, s)).buffered(16).collect().await;
    let rows = rows.into_iter().collect::<Result<Vec<_>, _>>()?;
    let missing = rows.iter().any(|r| r.error.is_some());
    if out.json {
        let items: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "path": r.path,
                    "policy": r.policy,
                    "strategy": r.strategy,
                    "current_version": r.version,
                    "last_rotated": r.last_rotated,
                    "next_due": r.next_due,
                    "last_result": r.state.last_result,
                    "last_attempt": r.state.last_attempt,
                    "consecutive_failures": r.state.failures,
                    "quarantined": r.state.quarantined.is_some(),
                    "quarantine": r.state.quarantined,
                    "rotation_in_progress": r.state.in_progress,
                    "error": r.error,
                })
            })
            .collect();
        out.json_value(&json!({ "secrets": items }));
    } else {
        let mut t = Table::new(&[
            "SECRET",
            "POLICY",
            "STRATEGY",
            "VERSION",
            "LAST ROTATED",
            "NEXT DUE",
            "LAST RESULT",
            "QUARANTINED",
        ]);
        for r in &rows {
            t.row(vec![
                r.path.clone(),
                r.policy.clone(),
                r.strategy.to_string(),
                cell(r.version.as_ref()),
                when(r.last_rotated),
                if r.state.quarantined.is_some() { "-".into() } else { when(r.next_due) },
                match (&r.error, &r.state.last_result) {
                    (Some(e), _) => format!("error: {e}"),
                    (None, Some(l)) if r.state.in_progress => format!("{l} (rotation in progress)"),
                    (None, l) => cell(l.as_ref()),
                },
                if r.state.quarantined.is_some() { "yes".into() } else { "no".into() },
            ]);
        }
        print!("{}", t.render());
    }
    app.finish().await;
    Ok(if missing { EXIT_NOT_FOUND } else { EXIT_OK })
}

fn version_json(v: &VersionMeta) -> serde_json::Value {
    json!({
        "version": v.id,
        "created_at": v.created_at,
        "current": v.stages.current,
        "previous": v.stages.previous,
        "pending": v.stages.pending,
        "rotation_id": v.rotation_id,
    })
}

/// `rekey history`.
pub async fn history(config: Config, out: Out, path: &str) -> Result<u8, CliError> {
    let app = app::build(config, None).await?;
    let s = app.secret(path)?.clone();
    let versions =
        app.store.list_versions(&s.path).await.map_err(|e| CliError::store(format!("reading {}", s.path), e))?;
    let meta = app.store.read_metadata(&s.path).await.map_err(|e| CliError::store(format!("reading {}", s.path), e))?;
    let st = state::read(&meta);
    if out.json {
        out.json_value(&json!({
            "path": s.path,
            "versions": versions.iter().map(version_json).collect::<Vec<_>>(),
            "events": st.history,
            "quarantine": st.quarantined,
        }));
    } else {
        out.line(&format!("{}: {} version(s) kept by the store", s.path, versions.len()));
        let mut t = Table::new(&["VERSION", "CREATED", "STAGE", "ROTATION"]);
        for v in versions.iter().rev() {
            let stage = [(v.stages.current, "current"), (v.stages.previous, "previous"), (v.stages.pending, "pending")]
                .iter()
                .filter(|(b, _)| *b)
                .map(|(_, n)| *n)
                .collect::<Vec<_>>()
                .join(",");
            t.row(vec![
                v.id.to_string(),
                when(Some(v.created_at)),
                if stage.is_empty() { "-".into() } else { stage },
                cell(v.rotation_id.as_ref()),
            ]);
        }
        print!("{}", t.render());
        out.line("");
        out.line(&format!("rotation events (newest first, last {} kept):", state::HISTORY_KEPT));
        let mut t = Table::new(&["TIME", "EVENT", "TRIGGER", "VERSIONS", "DETAIL"]);
        for e in &st.history {
            t.row(vec![
                e.at.clone(),
                e.event.clone(),
                e.trigger.clone(),
                format!("{} -> {}", cell(e.old_version.as_ref()), cell(e.new_version.as_ref())),
                cell(e.detail.as_ref()),
            ]);
        }
        print!("{}", t.render());
    }
    app.finish().await;
    Ok(EXIT_OK)
}

/// `rekey rollback`.
pub async fn rollback(config: Config, out: Out, path: &str) -> Result<u8, CliError> {
    let app = app::build(config, None).await?;
    let s = app.secret(path)?.clone();
    let ctx = |what: &str| format!("{what} {}", s.path);
    let current = app.store.current(&s.path).await.map_err(|e| CliError::store(ctx("reading"), e))?;
    let previous =
        app.store.previous(&s.path).await.map_err(|e| CliError::store(ctx("reading the previous version of"), e))?;
    // The system that checks the credential must accept the old value again
    // before consumers read it.
    let target = match &s.target {
        Some(t) => Some(app::target(t).map_err(CliError::Usage)?),
        None => None,
    };
    if let Some(t) = &target {
        t.apply(&previous.data, Some(&current.data))
            .await
            .map_err(|e| CliError::Failed(format!("re-applying the previous value to the {} target: {e}", t.name())))?;
    }
    let promoted = match app.store.promote(&s.path, &previous.meta.id, &current.meta.id).await {
        Ok(m) => m,
        Err(e) => {
            if let Some(t) = &target
                && let Err(te) = t.apply(&current.data, Some(&previous.data)).await
            {
                tracing::error!(path = %s.path, error = %te, "rollback failed and the target could not be restored to the current value");
            }
            return Err(CliError::store(ctx("rolling back"), e));
        }
    };
    let mut ev = state::event_now("rollback", "cli");
    ev.old_version = Some(current.meta.id.to_string());
    ev.new_version = Some(promoted.id.to_string());
    ev.detail = Some(format!("restored the value of version {}", previous.meta.id));
    if let Err(e) = state::record_event(&*app.store, &s.path, ev, false).await {
        tracing::warn!(path = %s.path, error = %e, "could not record the rollback beside the secret");
    }
    if out.json {
        out.json_value(&json!({
            "ok": true,
            "path": s.path,
            "replaced_version": current.meta.id,
            "restored_from": previous.meta.id,
            "current_version": promoted.id,
        }));
    } else {
        out.line(&format!(
            "{}: rolled back; version {} (the value of {}) is current, replacing {}",
            s.path, promoted.id, previous.meta.id, current.meta.id
        ));
    }
    app.finish().await;
    Ok(EXIT_OK)
}

/// `rekey resume`.
pub async fn resume(config: Config, out: Out, path: &str) -> Result<u8, CliError> {
    let app = app::build(config, None).await?;
    let s = app.secret(path)?.clone();
    let meta = app.store.read_metadata(&s.path).await.map_err(|e| CliError::store(format!("reading {}", s.path), e))?;
    let st = state::read(&meta);
    let was = st.quarantined.is_some() || st.failures > 0;
    if was {
        let mut ev = state::event_now("resumed", "cli");
        ev.detail = st.quarantined.as_deref().map(|q| format!("quarantine since {q}"));
        state::record_event(&*app.store, &s.path, ev, true)
            .await
            .map_err(|e| CliError::store(format!("updating {}", s.path), e))?;
    }
    if out.json {
        out.json_value(&json!({ "ok": true, "path": s.path, "was_quarantined": st.quarantined.is_some() }));
    } else if st.quarantined.is_some() {
        out.line(&format!("{}: quarantine lifted; the daemon rotates it again when it is due", s.path));
    } else {
        out.line(&format!("{}: was not quarantined", s.path));
    }
    app.finish().await;
    Ok(EXIT_OK)
}
