//! Turning a validated [`Config`] into a store, a rotation manager and the
//! bindings of every configured secret.

use std::sync::Arc;

use rekey::{
    AuditSink, DynSecretStore, RotationManager, SecretBinding, SecretGenerator, SecretPath, SystemClock,
    TracingAuditSink, Verifier,
};

use crate::config::{Config, SecretConfig, TargetConfig};
use crate::error::CliError;
use crate::integrations;

/// Everything a command needs.
pub struct App {
    /// The configuration.
    pub config: Config,
    /// The store.
    pub store: Arc<DynSecretStore>,
    /// The engine, with every secret bound.
    pub manager: RotationManager,
    /// Background parts of audit sinks, flushed on exit.
    pub sinks: integrations::SinkHandles,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("store", &self.store).finish_non_exhaustive()
    }
}

/// Builds the store (without touching anything in it).
pub async fn build_store(config: &Config) -> Result<Arc<DynSecretStore>, CliError> {
    config.store.build().await.map_err(|e| match e {
        rekey::StoreConfigError::Store(s) => CliError::store("connecting to the store", s),
        other => CliError::Usage(other.to_string()),
    })
}

/// Builds everything; `concurrency` overrides the daemon's setting.
pub async fn build(config: Config, concurrency: Option<usize>) -> Result<App, CliError> {
    let store = build_store(&config).await?;
    let clock = Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d))));
    let mut builder = RotationManager::builder(store.clone())
        .clock(clock)
        .max_concurrency(concurrency.unwrap_or(config.daemon.max_concurrency).max(1));
    for v in &config.verifiers {
        let verifier: Arc<dyn Verifier> = integrations::verifier(v)?;
        builder = builder.verifier(verifier);
    }
    let (sinks, handles) = integrations::audit_sinks(&config.audit)?;
    let sinks: Vec<Arc<dyn AuditSink>> = if sinks.is_empty() { vec![Arc::new(TracingAuditSink)] } else { sinks };
    for s in sinks {
        builder = builder.audit_sink(s);
    }
    let manager = builder.build().map_err(|e| CliError::Usage(e.to_string()))?;
    for s in &config.secrets {
        manager.bind(s.path.clone(), binding(s)?);
    }
    Ok(App { config, store, manager, sinks: handles })
}

fn binding(s: &SecretConfig) -> Result<SecretBinding, CliError> {
    let mut b = SecretBinding::new();
    if let Some(f) = &s.field {
        b = b.field(f.clone());
    }
    if let Some(g) = &s.generator {
        let g: SecretGenerator = g.build().map_err(|e| CliError::Usage(format!("{}: generator: {e}", s.path)))?;
        b = b.generator(Arc::new(g));
    }
    if let Some(t) = &s.target {
        b = b.target(target(t).map_err(|e| CliError::Usage(format!("{}: target: {e}", s.path)))?);
        // Alternating users: the engine must know both sets for the first
        // blue-green rotation, before a previous version names the other one.
        if let TargetConfig::Postgres { roles, .. } = t
            && let [first, second] = roles.as_slice()
        {
            b = b.credential_sets(first.clone(), second.clone());
        }
    }
    Ok(b)
}

/// Builds a credential target; the admin URL comes from the environment.
pub fn target(t: &TargetConfig) -> Result<Arc<dyn rekey::CredentialTarget>, String> {
    match t {
        TargetConfig::Postgres { roles, group, config, .. } => {
            let cfg = (**config).clone();
            let target = match (roles.as_slice(), group) {
                ([role], _) => rekey_postgres::PostgresTarget::single_user(cfg, role.clone()),
                ([a, b], Some(g)) => {
                    rekey_postgres::PostgresTarget::alternating(cfg, [a.clone(), b.clone()], g.clone())
                }
                _ => return Err("a postgres target needs one role, or two roles and a group".into()),
            }
            .map_err(|e| e.to_string())?;
            Ok(Arc::new(target))
        }
        TargetConfig::Redis { target, .. } => Ok(Arc::new((**target).clone())),
        TargetConfig::Command { target, .. } => Ok(Arc::new((**target).clone())),
    }
}

impl App {
    /// The configured secret at `path`.
    pub fn secret(&self, path: &str) -> Result<&SecretConfig, CliError> {
        let p =
            SecretPath::new(path).map_err(|e| CliError::Usage(format!("{path:?} is not a valid secret path: {e}")))?;
        self.config.secrets.iter().find(|s| s.path == p).ok_or_else(|| {
            CliError::Usage(format!(
                "{p} is not configured in {} (add a [[secret]] with path = \"{p}\")",
                self.config.path.display()
            ))
        })
    }

    /// The secrets a command names, or all with `all`.
    pub fn select(&self, paths: &[String], all: bool) -> Result<Vec<SecretConfig>, CliError> {
        if all {
            return Ok(self.config.secrets.clone());
        }
        if paths.is_empty() {
            return Err(CliError::Usage("name at least one secret PATH, or pass --all".into()));
        }
        let mut out: Vec<SecretConfig> = Vec::new();
        for p in paths {
            let s = self.secret(p)?;
            if !out.iter().any(|o| o.path == s.path) {
                out.push(s.clone());
            }
        }
        Ok(out)
    }

    /// Flushes audit sinks.
    pub async fn finish(self) {
        self.sinks.shutdown().await;
    }
}
