//! `rekey check` and `rekey plan`: is the configuration sound, and what
//! will happen when.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use rekey::{RotationStrategy, Schedule, SecretData, SecretStoreExt, StoreError, jitter_key};
use serde_json::{Value, json};

use crate::app;
use crate::config::{Config, SecretConfig, TargetConfig};
use crate::error::{self, CliError, EXIT_CONFIG, EXIT_NOT_FOUND, EXIT_OK};
use crate::output::{Out, Table, quarantine_json, quarantine_text, time_json, when};

/// Secrets `check` reads at once.
const CHECK_CONCURRENCY: usize = 64;

/// `rekey check`.
pub async fn check(config: Config, out: Out) -> Result<u8, CliError> {
    let app = app::build(config, None).await?;
    let mut code = EXIT_OK;
    let mut items: Vec<Value> = Vec::new();
    let mut rows = Table::new(&["SECRET", "STATE"]);
    let mut warned: Vec<String> = Vec::new();
    // The reads in parallel (in order), one per secret.
    let store = &app.store;
    let reads: Vec<_> = futures::stream::iter(app.config.secrets.iter())
        .map(|s| async move { store.current(&s.path).await })
        .buffered(CHECK_CONCURRENCY)
        .collect()
        .await;
    for (s, read) in app.config.secrets.iter().zip(reads) {
        let (state, version, problem, c) = match read {
            Ok(cur) => match shape_problem(s, &cur.data) {
                Some(p) => ("misconfigured", Some(cur.meta.id.to_string()), Some(p), EXIT_CONFIG),
                None => ("ok", Some(cur.meta.id.to_string()), None, EXIT_OK),
            },
            Err(e @ StoreError::NotFound { .. }) => {
                ("missing", None, Some(format!("not found in the store: {e}")), EXIT_NOT_FOUND)
            }
            Err(e) if error::unreachable(&e) => return Err(CliError::store(format!("reading {}", s.path), e)),
            Err(e) => ("error", None, Some(e.to_string()), error::store_exit_code(&e)),
        };
        code = error::worst(code, c);
        let text = match (&problem, &version) {
            (Some(p), _) => format!("{state}: {p}"),
            (None, Some(v)) => format!("ok (version {v})"),
            (None, None) => state.to_owned(),
        };
        rows.row(vec![s.path.to_string(), text]);
        // The transports the target and verifiers are allowed to use but
        // should not, and programs given rekey's own credentials (the full
        // list of policy warnings is `plan`'s).
        let w = exposure_warnings(&app.config, s);
        warned.extend(w.iter().map(|x| format!("{}: {x}", s.path)));
        items.push(json!({
            "path": s.path.as_str(), "state": state, "version": version, "problem": problem, "warnings": w,
        }));
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
        out.emit(
            code == EXIT_OK,
            json!({
                "config": app.config.path.display().to_string(),
                "store": app.config.store_kind,
                "policies": app.config.policies.keys().collect::<Vec<_>>(),
                "verifiers": app.config.verifiers.iter().map(|v| json!({ "name": v.name, "type": v.kind })).collect::<Vec<_>>(),
                "secrets": items,
                "exit_code": code,
            }),
        );
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
        out.table(&rows);
        for x in &warned {
            out.line(&format!("warning: {x}"));
        }
        out.line(if code == EXIT_OK { "ok" } else { "problems found" });
    }
    app.finish().await;
    Ok(code)
}

/// Whether the configured field fits the stored value (never shows the value).
pub(super) fn shape_problem(s: &SecretConfig, data: &SecretData) -> Option<String> {
    match (&s.field, data) {
        (None, SecretData::Fields(_)) => {
            let names: Vec<&str> = data.field_names().collect();
            Some(format!(
                "the secret has fields ({}); set `field = \"NAME\"` in its [[secret]] table to the one to rotate",
                names.join(", ")
            ))
        }
        (Some(f), SecretData::Text(_)) => Some(format!(
            "`field = \"{f}\"` is set in its [[secret]] table, but the secret is a single value without fields"
        )),
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

/// Where one secret's credentials, or rekey's own, go less protected than
/// they should: the unencrypted transports its target and the HTTP
/// verifiers that gate it are allowed to use, and the programs (a command
/// target or verifier) given rekey's whole environment.
fn exposure_warnings(config: &Config, s: &SecretConfig) -> Vec<String> {
    let mut w: Vec<String> = s.target.as_ref().and_then(|t| t.transport_warning()).into_iter().collect();
    if let Some(TargetConfig::Command { program, inherit_env: true, .. }) = &s.target {
        w.push(format!("{INHERITS}: the command target `{program}`"));
    }
    let named = s.policy.verification_tests().iter().chain(&s.verifiers);
    for v in named.filter_map(|n| config.verifiers.iter().find(|v| &v.name == n)) {
        let x = match &v.settings {
            rekey_integrations::VerifierConfig::Http(h) => h.transport_warning(),
            rekey_integrations::VerifierConfig::Command(c) if c.inherit_env => {
                Some(format!("{INHERITS}: the command verifier `{}`", v.name))
            }
            _ => None,
        };
        if let Some(x) = x
            && !w.contains(&x)
        {
            w.push(x);
        }
    }
    w
}

/// The start of the warning about `inherit_env = true`.
const INHERITS: &str = "inherit_env = true passes rekey's whole environment, its store credentials \
                        (VAULT_TOKEN, AWS keys) included, to a program";

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
    w.extend(exposure_warnings(config, s));
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
    let mut code = EXIT_OK;
    for s in &config.secrets {
        // One snapshot: the current version and the record beside it (since
        // when its value has been current, a quarantine).
        let (last, quarantine, problem) = match store.snapshot(&s.path, false).await {
            Ok(snap) => {
                let record = rekey::SecretRecord::read_brief(&snap.metadata);
                (Some(record.current_since(&snap.current)), record.quarantine, None)
            }
            Err(e) if error::unreachable(&e) => return Err(CliError::store(format!("reading {}", s.path), e)),
            Err(e) => {
                code = error::worst(code, error::store_exit_code(&e));
                (None, None, Some(e.to_string()))
            }
        };
        let dues = match (last, &quarantine) {
            (Some(l), None) => next_dues(s, l, next),
            _ => Vec::new(),
        };
        let w = warnings(&config, s);
        if !out.json {
            out.line(&format!(
                "{}  (policy {}, {}, {})",
                s.path,
                s.policy_name,
                s.policy.strategy(),
                s.policy.schedule()
            ));
            out.line(&format!("  last rotated: {}", when(last)));
            if let Some(e) = &problem {
                out.line(&format!("  problem: {e}"));
            }
            if let Some(q) = &quarantine {
                out.line(&format!("  QUARANTINED {}; `rekey resume {}` lifts it", quarantine_text(q), s.path));
            }
            for d in &dues {
                out.line(&format!("  due: {}", when(Some(*d))));
            }
            for x in &w {
                out.line(&format!("  warning: {x}"));
            }
        }
        items.push(json!({
            "path": s.path.as_str(),
            "policy": s.policy_name,
            "strategy": s.policy.strategy().as_str(),
            "schedule": s.policy.schedule().to_string(),
            "last_rotated": time_json(last),
            "next_due": dues.iter().map(|d| time_json(Some(*d))).collect::<Vec<_>>(),
            "quarantined": quarantine.is_some(),
            "quarantine": quarantine_json(quarantine.as_ref()),
            "verifiers": s.policy.verification_tests(),
            "secret_verifiers": s.verifiers,
            "target": s.target.as_ref().map(|t| t.kind()),
            "warnings": w,
            "problem": problem,
        }));
    }
    if out.json {
        out.emit(code == EXIT_OK, json!({ "secrets": items, "exit_code": code }));
    }
    Ok(code)
}
