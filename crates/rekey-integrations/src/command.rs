//! [`CommandVerifier`]: proves a candidate by running a program with it in
//! its environment.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use async_trait::async_trait;
use rekey_core::{ExposeSecret, Verifier, VerifyContext, VerifyError};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::IntegrationError;

/// Configuration of a [`CommandVerifier`].
///
/// ```toml
/// name = "psql-login"
/// program = "/usr/bin/psql"          # run directly, no shell
/// args = ["-h", "db.internal", "-U", "app", "-c", "select 1"]
/// env_var = "PGPASSWORD"             # default "REKEY_CANDIDATE"
/// timeout = "30s"                    # default
/// env = { PGCONNECT_TIMEOUT = "5" }  # optional, not secret
/// export_fields = false              # default; true: also REKEY_FIELD_<NAME>
/// inherit_env = false                # default: only PATH, HOME, LANG, ... pass
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandVerifierConfig {
    /// The name policies list in `verification_tests`.
    pub name: String,
    /// The program: a path, or a name looked up in `PATH`.
    pub program: PathBuf,
    /// Its arguments (never the candidate).
    #[serde(default)]
    pub args: Vec<String>,
    /// The environment variable holding the candidate (the rotated field, or
    /// the whole text).
    #[serde(default = "default_env_var")]
    pub env_var: String,
    /// How long the program may run before it is killed.
    #[serde(default = "default_timeout", with = "rekey_core::policy::serde_duration")]
    pub timeout: Duration,
    /// Extra environment variables (not secret: they are part of the config).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// For a multi-field secret, also export every field of the candidate as
    /// `REKEY_FIELD_<NAME>` (name upper-cased, characters other than `A-Z`,
    /// `0-9` and `_` replaced by `_`), e.g. `REKEY_FIELD_USERNAME`.
    #[serde(default)]
    pub export_fields: bool,
    /// Pass rekey's whole environment to the program. By default only
    /// `PATH`, `HOME`, `USER`, `LANG`, `LC_ALL`, `TZ` and `TMPDIR` pass, so
    /// rekey's own credentials (`VAULT_TOKEN`, AWS keys) stay with rekey.
    #[serde(default)]
    pub inherit_env: bool,
}

fn default_env_var() -> String {
    "REKEY_CANDIDATE".to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Variables passed from rekey's environment when `inherit_env` is false.
const PASS_ENV: &[&str] = &["PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// How much of stderr is kept (only its first line is ever shown).
const STDERR_KEEP: usize = 4096;

/// The longest stderr excerpt put in an error.
const STDERR_SHOW: usize = 200;

/// A [`Verifier`] that runs a program (directly, no shell) with the candidate
/// in an environment variable, and passes when it exits with status 0.
///
/// * The candidate is never in argv (visible to every user through `ps`).
///   Besides `env_var` the program gets `REKEY_PATH` and `REKEY_ROTATION_ID`.
/// * stdin is `/dev/null`; stdout is read and discarded; of stderr only the
///   first line is shown in a failure, with every candidate value replaced by
///   `[REDACTED]`, cut to 200 characters.
/// * Exit status not 0 → [`VerifyError::Failed`]; not finished within
///   `timeout` → the process is killed and [`VerifyError::TimedOut`];
///   program missing or not executable → [`VerifyError::Unavailable`].
/// * Only the process started is killed on timeout: a script that starts
///   long-running children of its own should `exec` its last command.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use rekey_core::{RotationId, SecretData, Verifier, VerifyContext};
/// use rekey_integrations::{CommandVerifier, CommandVerifierConfig};
/// let config: CommandVerifierConfig = toml::from_str(r#"
///     name = "length-check"
///     program = "/bin/sh"
///     args = ["-c", 'test ${#REKEY_CANDIDATE} -ge 16']
/// "#)?;
/// let verifier = CommandVerifier::new(&config)?;
/// # let path = "app/key".parse()?;
/// let candidate = SecretData::text("a-long-enough-candidate");
/// let ctx = VerifyContext { path: &path, rotation_id: RotationId::new(), candidate: &candidate, field: None };
/// verifier.verify(ctx).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CommandVerifier {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env_var: String,
    timeout: Duration,
    env: BTreeMap<String, String>,
    export_fields: bool,
    inherit_env: bool,
}

fn check_env_name(field: &str, name: &str) -> Result<(), IntegrationError> {
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        return Err(IntegrationError::invalid(field, format!("`{name}` is not a valid environment variable name")));
    }
    Ok(())
}

impl CommandVerifier {
    /// Validates `config` and builds the verifier. The program's existence is
    /// checked when it runs (it may be installed later, or only on the
    /// machine that rotates).
    ///
    /// # Errors
    /// [`IntegrationError::InvalidConfig`] naming the field: an empty `name`
    /// or `program`, an invalid `env_var` or `env` name, an `env` entry that
    /// would overwrite `env_var`, a NUL byte in an argument, a zero `timeout`.
    pub fn new(config: &CommandVerifierConfig) -> Result<Self, IntegrationError> {
        if config.name.trim().is_empty() {
            return Err(IntegrationError::invalid("name", "must not be empty"));
        }
        if config.program.as_os_str().is_empty() {
            return Err(IntegrationError::invalid("program", "must not be empty"));
        }
        if config.args.iter().any(|a| a.contains('\0')) {
            return Err(IntegrationError::invalid("args", "an argument contains a NUL byte"));
        }
        check_env_name("env_var", &config.env_var)?;
        for (k, v) in &config.env {
            check_env_name(&format!("env.{k}"), k)?;
            if v.contains('\0') {
                return Err(IntegrationError::invalid(format!("env.{k}"), "contains a NUL byte"));
            }
            if *k == config.env_var {
                return Err(IntegrationError::invalid(
                    format!("env.{k}"),
                    "would overwrite the candidate's variable (`env_var`)",
                ));
            }
        }
        Ok(Self {
            name: config.name.trim().to_owned(),
            program: config.program.clone(),
            args: config.args.clone(),
            env_var: config.env_var.clone(),
            timeout: crate::duration::positive("timeout", config.timeout)?,
            env: config.env.clone(),
            export_fields: config.export_fields,
            inherit_env: config.inherit_env,
        })
    }

    fn failure(&self, status: ExitStatus, stderr: &[u8], secrets: &[&str]) -> VerifyError {
        let how = match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => {
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt;
                    match status.signal() {
                        Some(sig) => format!("was killed by signal {sig}"),
                        None => "failed".to_owned(),
                    }
                }
                #[cfg(not(unix))]
                {
                    "failed".to_owned()
                }
            }
        };
        let mut msg = format!("command `{}` {how}", self.name);
        if let Some(line) = first_line_redacted(stderr, secrets) {
            msg.push_str(": ");
            msg.push_str(&line);
        }
        VerifyError::Failed(msg)
    }
}

/// The exported name of a candidate field: `REKEY_FIELD_<NAME>`.
fn field_var(name: &str) -> String {
    let upper: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("REKEY_FIELD_{upper}")
}

/// The first non-empty line of `stderr`, every secret (and its encodings and
/// fragments) replaced before it is cut, so no prefix of a secret can
/// survive; control characters dropped.
fn first_line_redacted(stderr: &[u8], secrets: &[&str]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    // The workspace's one redaction: the secrets, their encodings and
    // fragments of them.
    let line = rekey_core::redact::redact(line, secrets);
    let mut out: String = line.chars().filter(|c| !c.is_control()).take(STDERR_SHOW).collect();
    if line.chars().count() > STDERR_SHOW {
        out.push('…');
    }
    Some(out)
}

/// Reads `r` to its end, keeping at most `keep` bytes.
async fn drain<R: AsyncRead + Unpin>(r: Option<R>, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut r) = r else { return kept };
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = keep.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

#[async_trait]
impl Verifier for CommandVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn verify(&self, ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        let candidate = ctx.candidate.get(ctx.field).ok_or_else(|| {
            VerifyError::Failed(match ctx.field {
                Some(f) => format!("the candidate has no field `{f}`"),
                None => "the candidate is a set of fields; configure which field to rotate".to_owned(),
            })
        })?;
        let mut secrets: Vec<&str> = vec![candidate.expose_secret()];
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        if !self.inherit_env {
            cmd.env_clear();
            for k in PASS_ENV {
                if let Some(v) = std::env::var_os(k) {
                    cmd.env(k, v);
                }
            }
        }
        cmd.envs(&self.env);
        cmd.env("REKEY_PATH", ctx.path.as_str()).env("REKEY_ROTATION_ID", ctx.rotation_id.to_string());
        if self.export_fields {
            for name in ctx.candidate.field_names() {
                if let Some(v) = ctx.candidate.field(name) {
                    secrets.push(v.expose_secret());
                    cmd.env(field_var(name), v.expose_secret());
                }
            }
        }
        if secrets.iter().any(|s| s.contains('\0')) {
            return Err(VerifyError::Failed(
                "the candidate contains a NUL byte and cannot be passed in an environment variable".to_owned(),
            ));
        }
        cmd.env(&self.env_var, candidate.expose_secret());

        let mut child = cmd.spawn().map_err(|e| {
            let program = self.program.display();
            VerifyError::Unavailable(match e.kind() {
                std::io::ErrorKind::NotFound => format!("command `{}`: program `{program}` not found", self.name),
                std::io::ErrorKind::PermissionDenied => {
                    format!("command `{}`: program `{program}` is not executable", self.name)
                }
                _ => format!("command `{}`: cannot start `{program}`: {e}", self.name),
            })
        })?;
        let stdout = tokio::spawn(drain(child.stdout.take(), 0));
        let stderr = tokio::spawn(drain(child.stderr.take(), STDERR_KEEP));
        let waited = tokio::time::timeout(self.timeout, child.wait()).await;
        let status = match waited {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => {
                stdout.abort();
                stderr.abort();
                let _ = child.start_kill();
                return Err(VerifyError::Unavailable(format!("command `{}`: waiting for it failed: {e}", self.name)));
            }
            Err(_) => {
                stdout.abort();
                stderr.abort();
                let _ = child.start_kill();
                // Reap it; bounded, in case the kill does not take.
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                tracing::warn!(verifier = %self.name, path = %ctx.path, timeout = ?self.timeout, "command verifier timed out and was killed");
                return Err(VerifyError::TimedOut(self.timeout));
            }
        };
        // A child of the program may still hold the pipes open: give them a
        // moment, then stop reading.
        stdout.abort();
        let err_abort = stderr.abort_handle();
        let stderr = tokio::time::timeout(Duration::from_millis(500), stderr).await.ok().and_then(Result::ok);
        err_abort.abort();
        if status.success() {
            tracing::debug!(verifier = %self.name, path = %ctx.path, "command verification passed");
            Ok(())
        } else {
            Err(self.failure(status, stderr.as_deref().unwrap_or_default(), &secrets))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_happens_before_truncation() {
        let secret = "S3CRET-VALUE-0123456789";
        let mut line = "x".repeat(STDERR_SHOW - 5);
        line.push_str(secret);
        let out = first_line_redacted(line.as_bytes(), &[secret]).unwrap_or_default();
        assert!(!out.contains("S3CRE"), "{out}");
        assert_eq!(first_line_redacted(b"\n\n  oops: abc\nsecond", &["abc"]).as_deref(), Some("oops: [REDACTED]"));
        assert_eq!(first_line_redacted(b"", &["abc"]), None);
    }

    #[test]
    fn field_var_names() {
        assert_eq!(field_var("username"), "REKEY_FIELD_USERNAME");
        assert_eq!(field_var("api-key.v2"), "REKEY_FIELD_API_KEY_V2");
    }
}
