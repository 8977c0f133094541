//! The configuration file: parsing with positions, and a validation pass
//! that collects every problem before anything runs.
//!
//! Two passes over one text: `toml_edit` keeps the position of every key
//! and value, so unknown keys, wrong types and invalid values are reported
//! as `file:line:column: field: message`; `toml` gives plain values to
//! hand to the library's own `Deserialize` types (store, verifiers, audit
//! sinks). Credentials are never read from the file: tokens, passwords and
//! AppRole secret ids come from the environment.

mod audit;
mod daemon;
mod generator;
mod keys;
mod policy;
mod secret;
mod store;
mod target;
mod target_command;
mod target_redis;
mod verifier;
mod walker;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rekey::{RotationPolicy, StoreConfig};
use toml_edit::TableLike;

pub use daemon::DaemonConfig;
pub use secret::SecretConfig;
pub use target::TargetConfig;
pub use verifier::NamedVerifier;
pub use walker::Diagnostic;

use walker::{Ctx, Kind, Tbl, check, list, type_name};

/// Every problem found in a file, or a file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file has problems; all of them are listed.
    #[error("{} problem(s) in {}", .diagnostics.len(), .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// The store.
    pub store: StoreConfig,
    /// The store's kind (`memory`, `vault`, `aws`).
    pub store_kind: String,
    /// Named policies.
    pub policies: BTreeMap<String, Arc<RotationPolicy>>,
    /// The secrets, in file order.
    pub secrets: Vec<SecretConfig>,
    /// Verifiers by name (their settings, built by the app).
    pub verifiers: Vec<NamedVerifier>,
    /// Audit sinks (started by the app).
    pub audit: Vec<rekey_integrations::AuditSinkConfig>,
    /// The daemon's settings.
    pub daemon: DaemonConfig,
}

/// Reads and validates a file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::Invalid {
        path: path.to_owned(),
        diagnostics: vec![not_utf8(e.as_bytes(), e.utf8_error().valid_up_to())],
    })?;
    parse(&text, &|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .map_err(|mut diagnostics| {
            diagnostics.sort_by_key(|d| (d.line, d.column));
            ConfigError::Invalid { path: path.to_owned(), diagnostics }
        })
        .map(|mut c| {
            c.path = path.to_owned();
            c
        })
}

/// Parses and validates a configuration text; `env` looks up environment
/// variables (credentials). Returns every problem found.
pub fn parse(src: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<Diagnostic>> {
    let mut ctx = Ctx { src, diags: Vec::new() };
    let doc = match toml_edit::ImDocument::parse(src) {
        Ok(d) => d,
        Err(e) => {
            let msg = e.message().trim().replace('\n', "; ");
            ctx.err(e.span(), "(syntax)", format!("not valid TOML: {msg}"));
            return Err(ctx.diags);
        }
    };
    // Plain values for the library's Deserialize types (same structure).
    let plain: toml::Table = match toml::from_str(src) {
        Ok(t) => t,
        Err(e) => {
            ctx.err(e.span(), "(syntax)", format!("not valid TOML: {}", e.message()));
            return Err(ctx.diags);
        }
    };
    let root = Tbl { t: doc.as_table() as &dyn TableLike, span: Some(0..0), name: String::new() };
    check(
        &mut ctx,
        &root,
        &[
            ("store", Kind::Table),
            ("policies", Kind::Table),
            ("secret", Kind::TableList),
            ("verifier", Kind::TableList),
            ("audit", Kind::TableList),
            ("daemon", Kind::Table),
        ],
        &["store", "secret"],
    );

    let store = root.sub("store").and_then(|t| store::store_config(&mut ctx, &t, plain.get("store"), env));

    // Verifiers first: policies and secrets refer to them by name.
    let mut verifiers = Vec::new();
    if let Some(item) = root.item("verifier") {
        let plain_list = plain.get("verifier").and_then(toml::Value::as_array);
        for (i, t) in list(item, "verifier", root.span_of("verifier")).into_iter().enumerate() {
            if let Some(v) = verifier::verifier_config(&mut ctx, &t, plain_list.and_then(|a| a.get(i)), &verifiers) {
                verifiers.push(v);
            }
        }
    }
    let verifier_names: Vec<&str> = verifiers.iter().map(|v: &NamedVerifier| v.name.as_str()).collect();

    let mut policies = BTreeMap::new();
    if let Some(p) = root.sub("policies") {
        let names: Vec<String> = p.t.iter().map(|(k, _)| k.to_owned()).collect();
        for name in names {
            let Some(t) = p.sub(&name) else {
                let item = p.item(&name).map(type_name).unwrap_or("nothing");
                ctx.err(
                    p.span_of(&name),
                    p.field(&name),
                    format!("expected a table (`[policies.{name}]`), found {item}"),
                );
                continue;
            };
            let plain_policy = plain.get("policies").and_then(|p| p.get(&name));
            if let Some(policy) = policy::policy_config(&mut ctx, &t, plain_policy, &name, &verifier_names) {
                policies.insert(name, Arc::new(policy));
            }
        }
    }

    let mut secrets: Vec<SecretConfig> = Vec::new();
    // Paths seen so far: a set, so 10,000 secrets are not 50 million compares.
    let mut seen: HashSet<rekey::SecretPath> = HashSet::new();
    if let Some(item) = root.item("secret") {
        let declared: Vec<String> =
            root.sub("policies").map(|p| p.t.iter().map(|(k, _)| k.to_owned()).collect()).unwrap_or_default();
        let plain_list = plain.get("secret").and_then(toml::Value::as_array);
        for (i, t) in list(item, "secret", root.span_of("secret")).into_iter().enumerate() {
            let plain_secret = plain_list.and_then(|a| a.get(i));
            if let Some(s) =
                secret::secret_config(&mut ctx, &t, plain_secret, &policies, &declared, &verifier_names, env)
            {
                if !seen.insert(s.path.clone()) {
                    ctx.err(t.span_of("path"), t.field("path"), format!("the secret {} is configured twice", s.path));
                    continue;
                }
                secrets.push(s);
            }
        }
    }

    let mut audit = Vec::new();
    if let Some(item) = root.item("audit") {
        let plain_list = plain.get("audit").and_then(toml::Value::as_array);
        for (i, t) in list(item, "audit", root.span_of("audit")).into_iter().enumerate() {
            if let Some(v) = audit::audit_config(&mut ctx, &t, plain_list.and_then(|a| a.get(i)), env) {
                audit.push(v);
            }
        }
    }

    let daemon = match root.sub("daemon") {
        Some(t) => daemon::daemon_config(&mut ctx, &t),
        None => DaemonConfig::default(),
    };

    match store {
        Some((store, store_kind)) if ctx.diags.is_empty() => {
            Ok(Config { path: PathBuf::new(), store, store_kind, policies, secrets, verifiers, audit, daemon })
        }
        _ => {
            if ctx.diags.is_empty() {
                ctx.err(Some(0..0), "store", "missing `[store]` table");
            }
            Err(ctx.diags)
        }
    }
}

/// Where a file stops being UTF-8: the line and column of the first bad byte.
fn not_utf8(bytes: &[u8], valid_up_to: usize) -> Diagnostic {
    let prefix = std::str::from_utf8(&bytes[..valid_up_to.min(bytes.len())]).unwrap_or_default();
    let line = prefix.matches('\n').count() + 1;
    let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let byte = bytes.get(valid_up_to).copied().unwrap_or_default();
    Diagnostic {
        line,
        column,
        field: "(encoding)".to_owned(),
        message: format!("not valid UTF-8 (byte 0x{byte:02x}); a configuration file must be UTF-8 text"),
    }
}

#[cfg(test)]
mod tests;
