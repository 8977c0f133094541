//! [`CommandVerifier`]: proves a candidate by running a program with it in
//! its environment.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use rekey_core::{ExposeSecret, Verifier, VerifyContext, VerifyError};
use serde::{Deserialize, Serialize};

use crate::IntegrationError;
use crate::process::{Program, RunError, check_env_name};

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
    program: Program,
    env_var: String,
    export_fields: bool,
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
        check_env_name("env_var", &config.env_var)?;
        if config.env.contains_key(&config.env_var) {
            return Err(IntegrationError::invalid(
                format!("env.{}", config.env_var),
                "would overwrite the candidate's variable (`env_var`)",
            ));
        }
        let program = Program::new(
            config.program.clone(),
            config.args.clone(),
            config.timeout,
            config.env.clone(),
            config.inherit_env,
            &["REKEY_PATH", "REKEY_ROTATION_ID"],
        )?;
        Ok(Self {
            name: config.name.trim().to_owned(),
            program,
            env_var: config.env_var.clone(),
            export_fields: config.export_fields,
        })
    }
}

/// The exported name of a candidate field: `REKEY_FIELD_<NAME>`.
fn field_var(name: &str) -> String {
    let upper: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("REKEY_FIELD_{upper}")
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
        let what = format!("command `{}`", self.name);
        let rotation_id = ctx.rotation_id.to_string();
        let fields: Vec<(String, &str)> = if self.export_fields {
            ctx.candidate
                .field_names()
                .filter_map(|name| ctx.candidate.field(name).map(|v| (field_var(name), v.expose_secret())))
                .collect()
        } else {
            Vec::new()
        };
        let mut vars: Vec<(&str, &str)> = vec![("REKEY_PATH", ctx.path.as_str()), ("REKEY_ROTATION_ID", &rotation_id)];
        vars.extend(fields.iter().map(|(k, v)| (k.as_str(), *v)));
        vars.push((&self.env_var, candidate.expose_secret()));
        let mut secrets: Vec<&str> = vec![candidate.expose_secret()];
        secrets.extend(fields.iter().map(|(_, v)| *v));
        match self.program.run(&what, &[], &vars, &secrets).await {
            Ok(exit) if exit.status.success() => {
                tracing::debug!(verifier = %self.name, path = %ctx.path, "command verification passed");
                Ok(())
            }
            Ok(exit) => Err(VerifyError::Failed(exit.describe(&what))),
            Err(RunError::TimedOut(t)) => Err(VerifyError::TimedOut(t)),
            Err(RunError::NulValue) => Err(VerifyError::Failed(
                "the candidate contains a NUL byte and cannot be passed in an environment variable".to_owned(),
            )),
            Err(RunError::NotStarted(m) | RunError::Wait(m)) => Err(VerifyError::Unavailable(m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_var_names() {
        assert_eq!(field_var("username"), "REKEY_FIELD_USERNAME");
        assert_eq!(field_var("api-key.v2"), "REKEY_FIELD_API_KEY_V2");
    }
}
