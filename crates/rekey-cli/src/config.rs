//! The configuration file: parsing with positions, and a validation pass
//! that collects every problem before anything runs.
//!
//! Two passes over one text: `toml_edit` keeps the position of every key
//! and value, so unknown keys, wrong types and invalid values are reported
//! as `file:line:column: field: message`; `toml` gives plain values to
//! hand to the library's own `Deserialize` types (store, verifiers, audit
//! sinks). Credentials are never read from the file: tokens, passwords and
//! AppRole secret ids come from the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rekey::{GeneratorConfig, RotationPolicy, RotationPolicyConfig, SecretPath, StoreConfig};
use toml_edit::{Item, TableLike, Value};

/// Default daemon listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The field it names, e.g. `secret[2].policy`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.line, self.column, self.field, self.message)
    }
}

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

/// One `[[verifier]]`.
#[derive(Debug, Clone)]
pub struct NamedVerifier {
    /// The name policies and secrets refer to it by.
    pub name: String,
    /// Its type (`http`, `command`).
    pub kind: String,
    /// Its settings.
    pub settings: rekey_integrations::VerifierConfig,
}

/// One `[[secret]]`.
#[derive(Debug, Clone)]
pub struct SecretConfig {
    /// Where it lives in the store.
    pub path: SecretPath,
    /// The policy's name.
    pub policy_name: String,
    /// The effective policy (the named one, plus this secret's verifiers).
    pub policy: Arc<RotationPolicy>,
    /// The field to rotate in a multi-field secret.
    pub field: Option<String>,
    /// How new values are made (the default generator when absent).
    pub generator: Option<GeneratorConfig>,
    /// Where the credential is also applied.
    pub target: Option<TargetConfig>,
    /// Extra verifiers for this secret.
    pub verifiers: Vec<String>,
}

/// A credential target.
#[derive(Clone)]
pub enum TargetConfig {
    /// A PostgreSQL role (or two alternating roles and their group).
    Postgres {
        /// The environment variable holding the admin connection URL.
        url_env: String,
        /// The role(s): one, or two alternating.
        roles: Vec<String>,
        /// The group role of two alternating roles.
        group: Option<String>,
        /// Connect timeout.
        timeout: Option<Duration>,
    },
}

impl fmt::Debug for TargetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres { url_env, roles, group, .. } => f
                .debug_struct("Postgres")
                .field("url_env", url_env)
                .field("roles", roles)
                .field("group", group)
                .finish_non_exhaustive(),
        }
    }
}

impl TargetConfig {
    /// The target's type name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Postgres { .. } => "postgres",
        }
    }

    /// Whether the target accepts two credentials for one identity at once.
    pub fn concurrent_credentials(&self) -> bool {
        match self {
            Self::Postgres { roles, .. } => roles.len() == 2,
        }
    }
}

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
    /// Rotations in flight at once.
    pub max_concurrency: usize,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9464))),
            allow_non_loopback: false,
            shutdown_timeout: Duration::from_secs(30),
            resync_interval: Duration::from_secs(30),
            max_concurrency: 16,
        }
    }
}

/// Reads and validates a file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Bool,
    Num,
    Table,
    StrList,
    TableList,
    StrOrInt,
    Any,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Int => "an integer",
            Kind::Bool => "a boolean (true or false)",
            Kind::Num => "a number",
            Kind::Table => "a table",
            Kind::StrList => "an array of strings",
            Kind::TableList => "an array of tables",
            Kind::StrOrInt => "a string or an integer",
            Kind::Any => "a value",
        }
    }

    fn accepts(self, item: &Item) -> bool {
        let v = item.as_value();
        match self {
            Kind::Str => v.is_some_and(Value::is_str),
            Kind::Int => v.is_some_and(Value::is_integer),
            Kind::Bool => v.is_some_and(Value::is_bool),
            Kind::Num => v.is_some_and(|v| v.is_integer() || v.is_float()),
            Kind::Table => item.is_table_like(),
            Kind::StrList => v.and_then(Value::as_array).is_some_and(|a| a.iter().all(Value::is_str)),
            Kind::TableList => {
                item.is_array_of_tables()
                    || v.and_then(Value::as_array).is_some_and(|a| a.iter().all(Value::is_inline_table))
            }
            Kind::StrOrInt => v.is_some_and(|v| v.is_str() || v.is_integer()),
            Kind::Any => true,
        }
    }
}

fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(v) => match v {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a date-time",
            Value::Array(_) => "an array",
            Value::InlineTable(_) => "a table",
        },
    }
}

struct Ctx<'a> {
    src: &'a str,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn pos(&self, span: Option<Range<usize>>) -> (usize, usize) {
        let at = span.map(|s| s.start).unwrap_or(0).min(self.src.len());
        let before = self.src.get(..at).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before.get(line_start..).map(|s| s.chars().count()).unwrap_or(0) + 1;
        (line, column)
    }

    fn err(&mut self, span: Option<Range<usize>>, field: impl Into<String>, message: impl Into<String>) {
        let (line, column) = self.pos(span);
        self.diags.push(Diagnostic { line, column, field: field.into(), message: message.into() });
    }
}

/// A table of the file with where it is and what it is called.
struct Tbl<'a> {
    t: &'a dyn TableLike,
    span: Option<Range<usize>>,
    name: String,
}

impl<'a> Tbl<'a> {
    fn field(&self, key: &str) -> String {
        if self.name.is_empty() { key.to_owned() } else { format!("{}.{key}", self.name) }
    }

    fn item(&self, key: &str) -> Option<&'a Item> {
        self.t.get(key)
    }

    /// The position of a key's value (or of the key, or of the table).
    fn span_of(&self, key: &str) -> Option<Range<usize>> {
        match self.t.get_key_value(key) {
            Some((k, item)) => item_span(item).or_else(|| k.span()),
            None => self.span.clone(),
        }
    }

    fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.t.get_key_value(key).and_then(|(k, _)| k.span()).or_else(|| self.span.clone())
    }

    fn str(&self, key: &str) -> Option<&'a str> {
        self.item(key).and_then(Item::as_str)
    }

    fn int(&self, key: &str) -> Option<i64> {
        self.item(key).and_then(Item::as_integer)
    }

    fn bool(&self, key: &str) -> Option<bool> {
        self.item(key).and_then(Item::as_bool)
    }

    fn num(&self, key: &str) -> Option<f64> {
        let v = self.item(key)?.as_value()?;
        v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
    }

    fn strs(&self, key: &str) -> Option<Vec<String>> {
        let a = self.item(key)?.as_array()?;
        Some(a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
    }

    fn sub(&self, key: &str) -> Option<Tbl<'a>> {
        let item = self.item(key)?;
        let t = item.as_table_like()?;
        Some(Tbl { t, span: item_span(item).or_else(|| self.key_span(key)), name: self.field(key) })
    }
}

fn item_span(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::Table(t) => t.span(),
        Item::Value(v) => v.span(),
        Item::ArrayOfTables(a) => a.span(),
        Item::None => None,
    }
}

fn list<'a>(item: &'a Item, name: &str, fallback: Option<Range<usize>>) -> Vec<Tbl<'a>> {
    match item {
        Item::ArrayOfTables(a) => a
            .iter()
            .enumerate()
            .map(|(i, t)| Tbl {
                t: t as &dyn TableLike,
                span: t.span().or(fallback.clone()),
                name: format!("{name}[{}]", i + 1),
            })
            .collect(),
        Item::Value(Value::Array(a)) => a
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.as_inline_table().map(|t| Tbl {
                    t: t as &dyn TableLike,
                    span: v.span().or(fallback.clone()),
                    name: format!("{name}[{}]", i + 1),
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

fn suggest<'s>(word: &str, known: impl IntoIterator<Item = &'s str>) -> String {
    let mut best: Option<(usize, &str)> = None;
    for k in known {
        let d = levenshtein(word, k);
        if d <= 2.max(word.len() / 3) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| format!(" (did you mean `{k}`?)")).unwrap_or_default()
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Checks keys and value types of a table; returns whether it was clean.
fn check(ctx: &mut Ctx<'_>, t: &Tbl<'_>, allowed: &[(&str, Kind)], required: &[&str]) -> bool {
    let before = ctx.diags.len();
    let names: Vec<&str> = allowed.iter().map(|(k, _)| *k).collect();
    for (key, item) in t.t.iter() {
        match allowed.iter().find(|(k, _)| *k == key) {
            None => {
                let msg = format!(
                    "unknown key `{key}`{}; expected one of {}",
                    suggest(key, names.iter().copied()),
                    quoted(&names)
                );
                ctx.err(t.key_span(key), t.field(key), msg);
            }
            Some((_, kind)) if !kind.accepts(item) => {
                let msg = format!("expected {}, found {}", kind.name(), type_name(item));
                ctx.err(t.span_of(key), t.field(key), msg);
            }
            Some(_) => {}
        }
    }
    for key in required {
        if t.item(key).is_none() {
            ctx.err(t.span.clone(), t.field(key), format!("missing required key `{key}`"));
        }
    }
    ctx.diags.len() == before
}

fn parse_duration(ctx: &mut Ctx<'_>, t: &Tbl<'_>, key: &str) -> Option<Duration> {
    let s = t.str(key)?;
    match humantime::parse_duration(s.trim()) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            ctx.err(t.span_of(key), t.field(key), "must be greater than zero");
            None
        }
        Err(e) => {
            ctx.err(t.span_of(key), t.field(key), format!("{s:?} is not a duration ({e}); expected e.g. `30s`, `5m`"));
            None
        }
    }
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

    let store = root.sub("store").and_then(|t| store_config(&mut ctx, &t, plain.get("store"), env));

    // Verifiers first: policies and secrets refer to them by name.
    let mut verifiers = Vec::new();
    if let Some(item) = root.item("verifier") {
        let plain_list = plain.get("verifier").and_then(toml::Value::as_array);
        for (i, t) in list(item, "verifier", root.span_of("verifier")).into_iter().enumerate() {
            if let Some(v) = verifier_config(&mut ctx, &t, plain_list.and_then(|a| a.get(i)), &verifiers) {
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
            if let Some(policy) = policy_config(&mut ctx, &t, &name, &verifier_names) {
                policies.insert(name, Arc::new(policy));
            }
        }
    }

    let mut secrets: Vec<SecretConfig> = Vec::new();
    if let Some(item) = root.item("secret") {
        let declared: Vec<String> =
            root.sub("policies").map(|p| p.t.iter().map(|(k, _)| k.to_owned()).collect()).unwrap_or_default();
        for t in list(item, "secret", root.span_of("secret")) {
            if let Some(s) = secret_config(&mut ctx, &t, &policies, &declared, &verifier_names, env) {
                if secrets.iter().any(|o| o.path == s.path) {
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
            if let Some(v) = audit_config(&mut ctx, &t, plain_list.and_then(|a| a.get(i)), env) {
                audit.push(v);
            }
        }
    }

    let daemon = match root.sub("daemon") {
        Some(t) => daemon_config(&mut ctx, &t),
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

const STORE_TYPES: [&str; 3] = ["memory", "vault", "aws"];

fn store_config(
    ctx: &mut Ctx<'_>,
    t: &Tbl<'_>,
    plain: Option<&toml::Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(StoreConfig, String)> {
    let Some(kind) = t.str("type") else {
        if t.item("type").is_some() {
            ctx.err(t.span_of("type"), t.field("type"), "expected a string: one of `memory`, `vault`, `aws`");
        } else {
            ctx.err(t.span.clone(), t.field("type"), "missing required key `type` (`memory`, `vault` or `aws`)");
        }
        return None;
    };
    let mut plain = plain.cloned().unwrap_or(toml::Value::Table(toml::Table::new()));
    match kind {
        "memory" => {
            check(ctx, t, &[("type", Kind::Str)], &[]);
        }
        "vault" => {
            let ok = check(
                ctx,
                t,
                &[
                    ("type", Kind::Str),
                    ("address", Kind::Str),
                    ("mount", Kind::Str),
                    ("namespace", Kind::Str),
                    ("auth", Kind::Table),
                    ("ca_cert", Kind::Str),
                    ("allow_insecure_http", Kind::Bool),
                    ("request_timeout", Kind::StrOrInt),
                    ("staging_prefix", Kind::Str),
                ],
                &["address"],
            );
            if !ok {
                return None;
            }
            let method = match t.sub("auth") {
                None => "token".to_owned(),
                Some(a) => {
                    let allowed = [
                        ("method", Kind::Str),
                        ("mount", Kind::Str),
                        ("token", Kind::Any),
                        ("role_id", Kind::Any),
                        ("secret_id", Kind::Any),
                    ];
                    let mut ok = check(ctx, &a, &allowed, &["method"]);
                    for k in ["token", "secret_id", "role_id"] {
                        if a.item(k).is_some() {
                            ctx.err(
                                a.key_span(k),
                                a.field(k),
                                "credentials are never read from the configuration file: \
                                 set VAULT_TOKEN/BAO_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole",
                            );
                            ok = false;
                        }
                    }
                    if !ok {
                        return None;
                    }
                    a.str("method").unwrap_or("token").to_owned()
                }
            };
            let auth_span = t.sub("auth").and_then(|a| a.span.clone()).or_else(|| t.span.clone());
            match method.as_str() {
                "token" => {
                    if env("VAULT_TOKEN").is_none() && env("BAO_TOKEN").is_none() {
                        ctx.err(
                            auth_span,
                            t.field("auth"),
                            "missing credentials: the vault store uses token auth but neither VAULT_TOKEN nor \
                             BAO_TOKEN is set in the environment",
                        );
                        return None;
                    }
                }
                "approle" => {
                    let role = env("VAULT_ROLE_ID").or_else(|| env("BAO_ROLE_ID"));
                    let secret = env("VAULT_SECRET_ID").or_else(|| env("BAO_SECRET_ID"));
                    let (Some(role), Some(secret)) = (role, secret) else {
                        ctx.err(
                            auth_span,
                            t.field("auth"),
                            "missing credentials: AppRole auth needs VAULT_ROLE_ID and VAULT_SECRET_ID \
                             (or BAO_ROLE_ID and BAO_SECRET_ID) in the environment",
                        );
                        return None;
                    };
                    if let Some(auth) = plain.get_mut("auth").and_then(toml::Value::as_table_mut) {
                        auth.insert("role_id".into(), toml::Value::String(role));
                        auth.insert("secret_id".into(), toml::Value::String(secret));
                    }
                }
                other => {
                    ctx.err(
                        t.sub("auth").map(|a| a.span_of("method")).unwrap_or(auth_span),
                        t.field("auth.method"),
                        format!("unknown auth method {other:?}; expected `token` or `approle`"),
                    );
                    return None;
                }
            }
        }
        "aws" => {
            let ok = check(
                ctx,
                t,
                &[
                    ("type", Kind::Str),
                    ("region", Kind::Str),
                    ("endpoint_url", Kind::Str),
                    ("profile", Kind::Str),
                    ("max_attempts", Kind::Int),
                    ("attempt_timeout_ms", Kind::Int),
                    ("token_precheck", Kind::Bool),
                    ("version_dates_from_reads", Kind::Bool),
                    ("static_credentials", Kind::Any),
                ],
                &[],
            );
            if t.item("static_credentials").is_some() {
                ctx.err(
                    t.key_span("static_credentials"),
                    t.field("static_credentials"),
                    "credentials are never read from the configuration file: use the AWS credential chain \
                     (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity, instance role)",
                );
                return None;
            }
            if !ok {
                return None;
            }
            let has_chain = [
                "AWS_ACCESS_KEY_ID",
                "AWS_PROFILE",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            ]
            .iter()
            .any(|k| env(k).is_some())
                || t.item("profile").is_some()
                || env("HOME").is_some_and(|h| Path::new(&h).join(".aws").exists());
            if !has_chain {
                ctx.err(
                    t.span.clone(),
                    t.field("type"),
                    "missing credentials: no AWS credentials in the environment (AWS_ACCESS_KEY_ID / \
                     AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity or container credentials)",
                );
                return None;
            }
        }
        other => {
            ctx.err(
                t.span_of("type"),
                t.field("type"),
                format!(
                    "unknown store type {other:?}{}; expected `memory`, `vault` or `aws`",
                    suggest(other, STORE_TYPES)
                ),
            );
            return None;
        }
    }
    match serde::Deserialize::deserialize(plain) {
        Ok(s) => Some((s, kind.to_owned())),
        Err(e) => {
            let e: toml::de::Error = e;
            let msg = e.message().to_owned();
            let msg = if msg.contains("unknown variant") {
                format!("the `{kind}` store is not compiled into this build of rekey ({msg})")
            } else {
                msg
            };
            ctx.err(t.span.clone(), t.name.clone(), msg);
            None
        }
    }
}

const VERIFIER_TYPES: [&str; 2] = ["http", "command"];

/// Reports an integration's build error at the key it names.
fn integration_error(ctx: &mut Ctx<'_>, t: &Tbl<'_>, e: &rekey_integrations::IntegrationError) {
    let key = e.field().map(|f| f.split(['.', '[']).next().unwrap_or(f).to_owned());
    match key.filter(|k| t.item(k).is_some()) {
        Some(k) => ctx.err(t.span_of(&k), t.field(&k), e.to_string()),
        None => ctx.err(t.span.clone(), t.name.clone(), e.to_string()),
    }
}

fn verifier_config(
    ctx: &mut Ctx<'_>,
    t: &Tbl<'_>,
    settings: Option<&toml::Value>,
    seen: &[NamedVerifier],
) -> Option<NamedVerifier> {
    let mut bad = false;
    let name = match t.item("name") {
        Some(i) if i.is_str() => i.as_str().map(|s| s.trim().to_owned()),
        Some(i) => {
            ctx.err(t.span_of("name"), t.field("name"), format!("expected a string, found {}", type_name(i)));
            None
        }
        None => {
            ctx.err(t.span.clone(), t.field("name"), "missing required key `name`");
            None
        }
    };
    let kind = match t.item("type") {
        Some(i) => match i.as_str() {
            Some(k) if VERIFIER_TYPES.contains(&k) => Some(k.to_owned()),
            Some(k) => {
                let msg =
                    format!("unknown verifier type {k:?}{}; expected `http` or `command`", suggest(k, VERIFIER_TYPES));
                ctx.err(t.span_of("type"), t.field("type"), msg);
                None
            }
            None => {
                ctx.err(t.span_of("type"), t.field("type"), format!("expected a string, found {}", type_name(i)));
                None
            }
        },
        None => {
            ctx.err(t.span.clone(), t.field("type"), "missing required key `type` (`http` or `command`)");
            None
        }
    };
    let common = [("name", Kind::Str), ("type", Kind::Str), ("timeout", Kind::Str)];
    let (specific, required): (&[(&str, Kind)], &[&str]) = match kind.as_deref() {
        Some("http") => (
            &[
                ("url", Kind::Str),
                ("method", Kind::Str),
                ("placement", Kind::Table),
                ("expect_status", Kind::Any),
                ("headers", Kind::Table),
            ],
            &["url", "placement"],
        ),
        Some("command") => (
            &[
                ("program", Kind::Str),
                ("args", Kind::StrList),
                ("env_var", Kind::Str),
                ("env", Kind::Table),
                ("export_fields", Kind::Bool),
                ("inherit_env", Kind::Bool),
            ],
            &["program"],
        ),
        _ => (&[], &[]),
    };
    if kind.is_some() {
        let allowed: Vec<(&str, Kind)> = common.iter().chain(specific).copied().collect();
        bad |= !check(ctx, t, &allowed, required);
    }
    if let Some(n) = &name {
        if n.is_empty() {
            ctx.err(t.span_of("name"), t.field("name"), "the verifier name is empty");
            bad = true;
        }
        if seen.iter().any(|v| &v.name == n) {
            ctx.err(t.span_of("name"), t.field("name"), format!("two verifiers are named {n:?}"));
            bad = true;
        }
    }
    let (name, kind) = (name?, kind?);
    if bad {
        return None;
    }
    let settings: rekey_integrations::VerifierConfig = match settings.cloned().map(serde::Deserialize::deserialize) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            let e: toml::de::Error = e;
            ctx.err(t.span.clone(), t.name.clone(), e.message().to_owned());
            return None;
        }
        None => return None,
    };
    if let Err(e) = settings.build() {
        integration_error(ctx, t, &e);
        return None;
    }
    Some(NamedVerifier { name, kind, settings })
}

const POLICY_KEYS: [(&str, Kind); 14] = [
    ("schedule", Kind::Str),
    ("strategy", Kind::Str),
    ("require_verification", Kind::Bool),
    ("verification_tests", Kind::StrList),
    ("auto_rollback", Kind::Bool),
    ("max_retries", Kind::Int),
    ("initial_backoff", Kind::Str),
    ("max_backoff", Kind::Str),
    ("backoff_multiplier", Kind::Num),
    ("window", Kind::Str),
    ("jitter", Kind::Str),
    ("grace_period", Kind::Str),
    ("verification_timeout", Kind::Str),
    ("quarantine_after", Kind::Int),
];

fn policy_config(ctx: &mut Ctx<'_>, t: &Tbl<'_>, name: &str, verifiers: &[&str]) -> Option<RotationPolicy> {
    let mut bad = !check(ctx, t, &POLICY_KEYS, &[]);
    if let Some(tests) = t.strs("verification_tests") {
        for test in &tests {
            if !verifiers.contains(&test.as_str()) {
                let known = if verifiers.is_empty() {
                    "no `[[verifier]]` is configured".to_owned()
                } else {
                    format!("configured verifiers: {}", quoted(verifiers))
                };
                ctx.err(
                    t.span_of("verification_tests"),
                    t.field("verification_tests"),
                    format!("unknown verifier {test:?}{}; {known}", suggest(test, verifiers.iter().copied())),
                );
                bad = true;
            }
        }
    }
    let u32_of = |ctx: &mut Ctx<'_>, key: &str| -> Option<u32> {
        let v = t.int(key)?;
        match u32::try_from(v) {
            Ok(v) => Some(v),
            Err(_) => {
                ctx.err(t.span_of(key), t.field(key), format!("{v} is out of range (0 to {})", u32::MAX));
                None
            }
        }
    };
    let mut c = RotationPolicyConfig { name: name.to_owned(), ..RotationPolicyConfig::default() };
    c.schedule = t.str("schedule").map(normalise_schedule);
    c.strategy = t.str("strategy").map(str::to_owned);
    c.require_verification = t.bool("require_verification");
    c.verification_tests = t.strs("verification_tests");
    c.auto_rollback = t.bool("auto_rollback");
    c.max_retries = u32_of(ctx, "max_retries");
    c.initial_backoff = t.str("initial_backoff").map(str::to_owned);
    c.max_backoff = t.str("max_backoff").map(str::to_owned);
    c.backoff_multiplier = t.num("backoff_multiplier");
    c.window = t.str("window").map(str::to_owned);
    c.jitter = t.str("jitter").map(str::to_owned);
    c.grace_period = t.str("grace_period").map(str::to_owned);
    c.verification_timeout = t.str("verification_timeout").map(str::to_owned);
    c.quarantine_after = u32_of(ctx, "quarantine_after");
    match RotationPolicy::try_from(c) {
        Ok(p) if !bad => Some(p),
        Ok(_) => None,
        Err(e) => {
            let field = e.field();
            // Report at the key the rule is about, or at the table.
            let key = if t.item(field).is_some() {
                field
            } else {
                ["grace_period", "schedule", "jitter", "strategy"]
                    .into_iter()
                    .find(|k| t.item(k).is_some())
                    .unwrap_or(field)
            };
            let msg = e.to_string();
            let msg = msg.strip_prefix(&format!("{field}: ")).unwrap_or(&msg).to_owned();
            ctx.err(t.span_of(key), t.field(field), msg);
            None
        }
    }
}

/// `schedule = "0 3 * * *"` (a bare cron expression) is accepted as `cron: ...`.
fn normalise_schedule(s: &str) -> String {
    let t = s.trim();
    let fields = t.split_whitespace().count();
    let looks_cron = (5..=6).contains(&fields)
        && !t.to_ascii_lowercase().starts_with("every")
        && !t.to_ascii_lowercase().starts_with("cron:")
        && t.split_whitespace().all(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || "*/,-?LW#".contains(c)));
    if looks_cron { format!("cron: {t}") } else { t.to_owned() }
}

const SECRET_KEYS: [(&str, Kind); 6] = [
    ("path", Kind::Str),
    ("policy", Kind::Str),
    ("field", Kind::Str),
    ("generator", Kind::Table),
    ("target", Kind::Table),
    ("verifiers", Kind::StrList),
];

fn secret_config(
    ctx: &mut Ctx<'_>,
    t: &Tbl<'_>,
    policies: &BTreeMap<String, Arc<RotationPolicy>>,
    declared: &[String],
    verifiers: &[&str],
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<SecretConfig> {
    let mut bad = !check(ctx, t, &SECRET_KEYS, &["path", "policy"]);
    let path = t.str("path").and_then(|p| match SecretPath::new(p) {
        Ok(p) => Some(p),
        Err(e) => {
            ctx.err(t.span_of("path"), t.field("path"), format!("{p:?} is not a valid secret path: {e}"));
            None
        }
    });
    let policy_name = t.str("policy").map(str::to_owned);
    if let Some(n) = &policy_name
        && !declared.iter().any(|d| d == n)
    {
        let known: Vec<&str> = declared.iter().map(String::as_str).collect();
        let list = if known.is_empty() {
            "no `[policies.NAME]` is defined".to_owned()
        } else {
            format!("defined policies: {}", quoted(&known))
        };
        ctx.err(
            t.span_of("policy"),
            t.field("policy"),
            format!("unknown policy {n:?}{}; {list}", suggest(n, known.iter().copied())),
        );
        bad = true;
    }
    let field = t.str("field").map(str::to_owned);
    if field.as_deref().is_some_and(|f| f.trim().is_empty()) {
        ctx.err(t.span_of("field"), t.field("field"), "the field name is empty");
        bad = true;
    }
    let generator = t.sub("generator").and_then(|g| generator_config(ctx, &g));
    bad |= t.item("generator").is_some() && generator.is_none();
    let target = t.sub("target").and_then(|g| target_config(ctx, &g, env));
    bad |= t.item("target").is_some() && target.is_none();
    let own = t.strs("verifiers").unwrap_or_default();
    for v in &own {
        if !verifiers.contains(&v.as_str()) {
            let known = if verifiers.is_empty() {
                "no `[[verifier]]` is configured".to_owned()
            } else {
                format!("configured verifiers: {}", quoted(verifiers))
            };
            ctx.err(
                t.span_of("verifiers"),
                t.field("verifiers"),
                format!("unknown verifier {v:?}{}; {known}", suggest(v, verifiers.iter().copied())),
            );
            bad = true;
        }
    }
    let (path, policy_name) = (path?, policy_name?);
    let base = policies.get(&policy_name)?;
    if bad {
        return None;
    }
    let policy = if own.is_empty() {
        base.clone()
    } else {
        let mut c = RotationPolicyConfig::from((**base).clone());
        let mut tests = c.verification_tests.take().unwrap_or_default();
        for v in &own {
            if !tests.contains(v) {
                tests.push(v.clone());
            }
        }
        c.verification_tests = Some(tests);
        c.require_verification = Some(true);
        match RotationPolicy::try_from(c) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                ctx.err(t.span_of("verifiers"), t.field("verifiers"), e.to_string());
                return None;
            }
        }
    };
    Some(SecretConfig { path, policy_name, policy, field, generator, target, verifiers: own })
}

fn generator_config(ctx: &mut Ctx<'_>, t: &Tbl<'_>) -> Option<GeneratorConfig> {
    let ok = check(
        ctx,
        t,
        &[
            ("type", Kind::Str),
            ("length", Kind::Int),
            ("charset", Kind::Str),
            ("min_lower", Kind::Int),
            ("min_upper", Kind::Int),
            ("min_digits", Kind::Int),
            ("min_symbols", Kind::Int),
            ("symbols", Kind::Str),
        ],
        &[],
    );
    if !ok {
        return None;
    }
    let mut c = GeneratorConfig::default();
    if let Some(k) = t.str("type") {
        match k.parse() {
            Ok(k) => c.kind = k,
            Err(e) => {
                ctx.err(t.span_of("type"), t.field("type"), strip_field(&e.to_string(), "type"));
                return None;
            }
        }
    }
    let mut usize_of = |key: &str| -> Option<Option<usize>> {
        match t.int(key) {
            None => Some(None),
            Some(v) => match usize::try_from(v) {
                Ok(v) => Some(Some(v)),
                Err(_) => {
                    ctx.err(t.span_of(key), t.field(key), format!("{v} is negative"));
                    None
                }
            },
        }
    };
    c.length = usize_of("length")?;
    c.min_lower = usize_of("min_lower")?;
    c.min_upper = usize_of("min_upper")?;
    c.min_digits = usize_of("min_digits")?;
    c.min_symbols = usize_of("min_symbols")?;
    c.charset = t.str("charset").map(str::to_owned);
    c.symbols = t.str("symbols").map(str::to_owned);
    match c.build() {
        Ok(_) => Some(c),
        Err(e) => {
            let msg = e.to_string();
            let key = ["length", "charset", "symbols", "min_lower", "min_upper", "min_digits", "min_symbols", "type"]
                .into_iter()
                .find(|k| msg.starts_with(&format!("{k}:")))
                .unwrap_or("type");
            ctx.err(t.span_of(key), t.field(key), strip_field(&msg, key));
            None
        }
    }
}

fn strip_field(msg: &str, field: &str) -> String {
    msg.strip_prefix(&format!("{field}: ")).unwrap_or(msg).to_owned()
}

fn target_config(ctx: &mut Ctx<'_>, t: &Tbl<'_>, env: &dyn Fn(&str) -> Option<String>) -> Option<TargetConfig> {
    match t.str("type") {
        Some("postgres") => {}
        Some(other) => {
            ctx.err(t.span_of("type"), t.field("type"), format!("unknown target type {other:?}; expected `postgres`"));
            return None;
        }
        None => {
            ctx.err(t.span.clone(), t.field("type"), "missing required key `type` (`postgres`)");
            return None;
        }
    }
    let ok = check(
        ctx,
        t,
        &[
            ("type", Kind::Str),
            ("url_env", Kind::Str),
            ("role", Kind::Str),
            ("roles", Kind::StrList),
            ("group", Kind::Str),
            ("timeout", Kind::Str),
        ],
        &["url_env"],
    );
    if !ok {
        return None;
    }
    let url_env = t.str("url_env").unwrap_or_default().to_owned();
    let mut bad = false;
    if env(&url_env).is_none() {
        ctx.err(
            t.span_of("url_env"),
            t.field("url_env"),
            format!("missing credentials: the environment variable {url_env} (the admin connection URL) is not set"),
        );
        bad = true;
    }
    let roles = match (t.str("role"), t.strs("roles")) {
        (Some(r), None) => vec![r.to_owned()],
        (None, Some(rs)) if rs.len() == 2 => rs,
        (None, Some(_)) => {
            ctx.err(t.span_of("roles"), t.field("roles"), "alternating credentials need exactly two roles");
            return None;
        }
        (Some(_), Some(_)) => {
            ctx.err(
                t.span_of("roles"),
                t.field("roles"),
                "set either `role` (one role) or `roles` (two alternating roles)",
            );
            return None;
        }
        (None, None) => {
            ctx.err(t.span.clone(), t.field("role"), "missing `role` (or `roles` for two alternating roles)");
            return None;
        }
    };
    let group = t.str("group").map(str::to_owned);
    if roles.len() == 2 && group.is_none() {
        ctx.err(t.span.clone(), t.field("group"), "two alternating roles need their `group` role");
        bad = true;
    }
    let timeout = if t.item("timeout").is_some() {
        let d = parse_duration(ctx, t, "timeout");
        bad |= d.is_none();
        d
    } else {
        None
    };
    if bad {
        return None;
    }
    Some(TargetConfig::Postgres { url_env, roles, group, timeout })
}

const AUDIT_TYPES: [&str; 3] = ["tracing", "json_lines", "webhook"];

fn audit_config(
    ctx: &mut Ctx<'_>,
    t: &Tbl<'_>,
    plain: Option<&toml::Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<rekey_integrations::AuditSinkConfig> {
    let kind = match t.str("type") {
        Some(k) if AUDIT_TYPES.contains(&k) => k,
        Some(k) => {
            let msg = format!(
                "unknown audit sink type {k:?}{}; expected `tracing`, `json_lines` or `webhook`",
                suggest(k, AUDIT_TYPES)
            );
            ctx.err(t.span_of("type"), t.field("type"), msg);
            return None;
        }
        None => {
            ctx.err(
                t.span.clone(),
                t.field("type"),
                "missing required key `type` (`tracing`, `json_lines` or `webhook`)",
            );
            return None;
        }
    };
    let (allowed, required): (&[(&str, Kind)], &[&str]) = match kind {
        "tracing" => (&[("type", Kind::Str)], &[]),
        "json_lines" => (
            &[("type", Kind::Str), ("path", Kind::Str), ("fsync", Kind::Bool), ("queue_capacity", Kind::Int)],
            &["path"],
        ),
        _ => (
            &[
                ("type", Kind::Str),
                ("url", Kind::Str),
                ("secret_env", Kind::Str),
                ("key_file", Kind::Str),
                ("header", Kind::Str),
                ("timestamp_header", Kind::Str),
                ("timeout", Kind::Str),
                ("max_retries", Kind::Int),
                ("initial_backoff", Kind::Str),
                ("max_backoff", Kind::Str),
                ("queue_capacity", Kind::Int),
            ],
            &["url"],
        ),
    };
    if !check(ctx, t, allowed, required) {
        return None;
    }
    if kind == "webhook" && t.item("key_file").is_none() {
        let var = t.str("secret_env").unwrap_or(rekey_integrations::DEFAULT_SECRET_ENV);
        if env(var).is_none() {
            let at = if t.item("secret_env").is_some() { t.span_of("secret_env") } else { t.span.clone() };
            ctx.err(
                at,
                t.field("secret_env"),
                format!("missing credentials: the environment variable {var} (the webhook's HMAC key) is not set"),
            );
            return None;
        }
    }
    match plain.cloned().map(serde::Deserialize::deserialize) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            let e: toml::de::Error = e;
            ctx.err(t.span.clone(), t.name.clone(), e.message().to_owned());
            None
        }
        None => None,
    }
}

fn daemon_config(ctx: &mut Ctx<'_>, t: &Tbl<'_>) -> DaemonConfig {
    let mut d = DaemonConfig::default();
    check(
        ctx,
        t,
        &[
            ("listen", Kind::Str),
            ("allow_non_loopback", Kind::Bool),
            ("shutdown_timeout", Kind::Str),
            ("resync_interval", Kind::Str),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    const GOOD: &str = r#"
[store]
type = "memory"

[policies.fast]
schedule = "every 2s"
strategy = "staged"

[[secret]]
path = "app/db"
policy = "fast"
generator = { type = "random", length = 24 }
"#;

    #[test]
    fn good_config_loads() {
        let c = parse(GOOD, &env_with(&[])).expect("valid");
        assert_eq!(c.secrets.len(), 1);
        assert_eq!(c.secrets[0].path.as_str(), "app/db");
        assert_eq!(c.store_kind, "memory");
    }

    #[test]
    fn every_problem_is_reported_with_position() {
        let src = r#"
[store]
type = "vault"
address = "http://127.0.0.1:8200"

[policies.fast]
schedule = "cron: 99 * * * *"
stratgy = "staged"

[policies.slow]
max_retries = "three"
verification_tests = ["nope"]

[[secret]]
path = "app/db"
policy = "fsat"
colour = "blue"
"#;
        let diags = parse(src, &env_with(&[])).expect_err("invalid");
        let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
        let all = text.join("\n");
        assert!(all.contains("8:1: policies.fast.stratgy: unknown key `stratgy` (did you mean `strategy`?)"), "{all}");
        assert!(all.contains("11:15: policies.slow.max_retries: expected an integer, found a string"), "{all}");
        assert!(all.contains("16:10: secret[1].policy: unknown policy \"fsat\" (did you mean `fast`?)"), "{all}");
        assert!(all.contains("17:1: secret[1].colour: unknown key"), "{all}");
        assert!(all.contains("store.auth: missing credentials"), "{all}");
        assert!(all.contains("verification_tests: unknown verifier \"nope\""), "{all}");
        let cron = parse(
            "[store]\ntype = \"memory\"\n[policies.p]\nschedule = \"cron: 99 * * * *\"\n[[secret]]\npath = \"a\"\npolicy = \"p\"\n",
            &env_with(&[]),
        )
        .expect_err("bad cron");
        assert_eq!(cron.len(), 1, "{cron:?}");
        assert_eq!((cron[0].line, cron[0].column, cron[0].field.as_str()), (4, 12, "policies.p.schedule"));
        assert!(cron[0].message.contains("invalid cron"), "{cron:?}");
    }

    #[test]
    fn token_in_file_is_refused() {
        let src = "[store]\ntype = \"vault\"\naddress = \"http://127.0.0.1:1\"\nauth = { method = \"token\", token = \"s3cr3t\" }\n[[secret]]\npath = \"a\"\npolicy = \"p\"\n";
        let diags = parse(src, &env_with(&[("VAULT_TOKEN", "x")])).expect_err("token in file");
        let all: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert!(all.iter().any(|d| d.contains("never read from the configuration file")), "{all:?}");
        assert!(!all.iter().any(|d| d.contains("s3cr3t")), "{all:?}");
    }

    #[test]
    fn the_documented_example_is_valid() {
        let doc = include_str!("../../../docs/cli.md");
        let start = doc.find("```toml\n").expect("an example") + "```toml\n".len();
        let end = start + doc[start..].find("```").expect("closed");
        let env = env_with(&[
            ("VAULT_TOKEN", "t"),
            ("BILLING_PG_ADMIN_URL", "postgres://admin:pw@127.0.0.1/postgres"),
            ("REKEY_WEBHOOK_KEY", "k"),
        ]);
        let c = parse(&doc[start..end], &env).unwrap_or_else(|d| panic!("{d:#?}"));
        assert_eq!(c.secrets.len(), 2);
        assert_eq!(c.verifiers.len(), 2);
        assert_eq!(c.audit.len(), 2);
        assert_eq!(c.secrets[1].policy.verification_tests(), ["api-whoami"]);
    }

    #[test]
    fn non_loopback_listen_needs_opt_in() {
        let src = format!("{GOOD}\n[daemon]\nlisten = \"0.0.0.0:9464\"\n");
        let d = parse(&src, &env_with(&[])).expect_err("non-loopback");
        assert!(d[0].message.contains("not a loopback"), "{d:?}");
        let src = format!("{GOOD}\n[daemon]\nlisten = \"0.0.0.0:9464\"\nallow_non_loopback = true\n");
        assert!(parse(&src, &env_with(&[])).is_ok());
    }

    #[test]
    fn syntax_error_has_position_and_no_panic() {
        for src in ["[store", "a = ", "[[secret]]\npath = 1\n", "store = 3", "\u{feff}x=1", ""] {
            let _ = parse(src, &env_with(&[]));
        }
        let d = parse("[store]\ntype = \"memory\"\n[[secret]\n", &env_with(&[])).expect_err("syntax");
        assert_eq!(d[0].line, 3, "{d:?}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Any text: a list of problems or a config, never a panic.
        #[test]
        fn arbitrary_text_never_panics(src in "\\PC{0,300}") {
            let _ = parse(&src, &env_with(&[("VAULT_TOKEN", "t")]));
        }

        /// A valid file with one byte range replaced: never a panic, and
        /// every diagnostic points inside the file.
        #[test]
        fn mutated_config_never_panics(at in 0usize..200, len in 0usize..20, with in "[\\[\\]{}=\",.a-z0-9 \n*:-]{0,12}") {
            let at = at.min(GOOD.len());
            let end = (at + len).min(GOOD.len());
            if GOOD.is_char_boundary(at) && GOOD.is_char_boundary(end) {
                let src = format!("{}{}{}", &GOOD[..at], with, &GOOD[end..]);
                if let Err(diags) = parse(&src, &env_with(&[])) {
                    let lines = src.lines().count().max(1) + 1;
                    for d in diags {
                        proptest::prop_assert!(d.line >= 1 && d.line <= lines, "{d} in {src:?}");
                        proptest::prop_assert!(d.column >= 1);
                    }
                }
            }
        }
    }
}
