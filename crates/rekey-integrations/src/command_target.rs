//! [`CommandTarget`]: an external hook — a program of yours that applies,
//! tests and revokes credentials on a system rekey has no target for (an
//! LDAP directory, an appliance, an in-house service).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use rekey_core::{CredentialTarget, ExposeSecret, SecretData, TargetCapabilities, TargetError};
use serde::{Deserialize, Serialize};

use crate::IntegrationError;
use crate::process::{Exit, Program, RunError};

/// The variables rekey sets for the program.
const RESERVED: &[&str] =
    &["REKEY_OPERATION", "REKEY_PATH", "REKEY_NEW", "REKEY_CURRENT", "REKEY_CREDENTIAL", "REKEY_REVOKE", "REKEY_KEEP"];

/// Exit status: refused before changing anything (for `test`: the
/// credential does not work).
pub const EXIT_REFUSED: i32 = 3;

/// Exit status: unavailable for now, nothing changed (`EX_TEMPFAIL`).
pub const EXIT_UNAVAILABLE: i32 = 75;

/// Configuration of a [`CommandTarget`].
///
/// ```toml
/// program = "/usr/local/bin/ldap-credential"  # run directly, no shell
/// args = ["--server", "ldaps://ldap.internal"] # then the operation
/// timeout = "30s"                             # default
/// env = { LDAP_BIND_DN = "cn=rekey,dc=corp" }  # optional, not secret
/// inherit_env = false                         # default: only PATH, HOME, LANG, ... pass
/// concurrent_credentials = false              # default: a new credential replaces the old
/// field = "password"                          # a secret with fields: the one that rotates
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandTargetConfig {
    /// The program: a path, or a name looked up in `PATH`.
    pub program: PathBuf,
    /// Its arguments, before the operation (never a credential).
    #[serde(default)]
    pub args: Vec<String>,
    /// How long one operation may run before it is killed.
    #[serde(default = "default_timeout", with = "rekey_core::policy::serde_duration")]
    pub timeout: Duration,
    /// Extra environment variables (not secret: they are part of the config).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Pass rekey's whole environment to the program (by default only
    /// `PATH`, `HOME`, `USER`, `LANG`, `LC_ALL`, `TZ` and `TMPDIR`).
    #[serde(default)]
    pub inherit_env: bool,
    /// Whether the system keeps the credential in use valid beside a newly
    /// applied one until it is revoked (several passwords per user, or API
    /// keys). Decides how strategies use it: dual-write needs it, and
    /// rekey revokes the replaced credential after a rotation.
    #[serde(default)]
    pub concurrent_credentials: bool,
    /// For a secret with several fields, the field holding the credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// A [`CredentialTarget`] that runs a program of yours for each operation:
/// the way to rotate a credential on a system rekey has no target for.
///
/// The program runs as `program args… OPERATION`, with `REKEY_OPERATION`
/// set to the same, `REKEY_PATH` to the secret's path when the target was
/// built [`for_secret`](Self::for_secret), and the credentials in
/// environment variables (never in argv):
///
/// | operation | what it must do | variables |
/// |---|---|---|
/// | `apply` | make `REKEY_NEW` a valid credential; with `concurrent_credentials`, `REKEY_CURRENT` stays valid too, otherwise the new one replaces it | `REKEY_NEW`, `REKEY_CURRENT` (absent when unknown) |
/// | `test` | log in with `REKEY_CREDENTIAL`; succeed only if it works | `REKEY_CREDENTIAL` |
/// | `revoke` | make `REKEY_REVOKE` invalid, `REKEY_KEEP` staying valid (with one credential: apply `REKEY_KEEP` again) | `REKEY_REVOKE`, `REKEY_KEEP` |
///
/// Every operation must be idempotent: after a crash or a retry rekey runs
/// it again with the same values.
///
/// Exit status:
///
/// * `0` — done;
/// * `3` ([`EXIT_REFUSED`]) — refused before changing anything; for `test`,
///   the credential does not work;
/// * `75` ([`EXIT_UNAVAILABLE`], `EX_TEMPFAIL`) — the system cannot be
///   reached now; nothing changed;
/// * anything else, a signal, or outliving `timeout` (the program is then
///   killed) — failed, and it may have changed something: rekey undoes it
///   with `revoke` and keeps its journal until that has worked.
///
/// Telling rekey that nothing changed (3 or 75) matters: a failed `apply`
/// that changed nothing needs no undo.
///
/// stdin is `/dev/null` and stdout is discarded; the first line of stderr
/// goes into the error, every credential in it replaced by `[REDACTED]`.
/// rekey's own credentials (`VAULT_TOKEN`, AWS keys) are not passed unless
/// `inherit_env` is set. The program is run directly, no shell.
#[derive(Debug, Clone)]
pub struct CommandTarget {
    program: Program,
    concurrent: bool,
    field: Option<String>,
    /// The secret's path, passed as `REKEY_PATH`.
    secret: Option<String>,
}

impl CommandTarget {
    /// Validates `config` and builds the target. The program's existence is
    /// checked when it runs.
    ///
    /// # Errors
    /// [`IntegrationError::InvalidConfig`] naming the field: an empty
    /// `program`, a NUL byte in an argument, an invalid `env` name or one
    /// rekey sets (`REKEY_NEW`, ...), a zero `timeout`, an empty `field`.
    pub fn new(config: &CommandTargetConfig) -> Result<Self, IntegrationError> {
        if config.field.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(IntegrationError::invalid("field", "must not be empty"));
        }
        let program = Program::new(
            config.program.clone(),
            config.args.clone(),
            config.timeout,
            config.env.clone(),
            config.inherit_env,
            RESERVED,
        )?;
        Ok(Self { program, concurrent: config.concurrent_credentials, field: config.field.clone(), secret: None })
    }

    /// The same target rotating `field` of a secret with fields, unless its
    /// configuration names one already.
    #[must_use]
    pub fn with_default_field(mut self, field: Option<&str>) -> Self {
        if self.field.is_none() {
            self.field = field.map(str::to_owned);
        }
        self
    }

    /// The same target for the secret at `path`, which the program gets as
    /// `REKEY_PATH` (one program can serve several secrets).
    #[must_use]
    pub fn for_secret(mut self, path: &rekey_core::SecretPath) -> Self {
        self.secret = Some(path.as_str().to_owned());
        self
    }

    /// The credential in `data`: the whole text, or the configured field.
    fn credential<'a>(&self, data: &'a SecretData) -> Result<&'a str, TargetError> {
        match data.get(self.field.as_deref()) {
            Some(v) => Ok(v.expose_secret()),
            None => Err(TargetError::InvalidInput {
                message: match &self.field {
                    Some(f) => format!("the secret has no field `{f}`"),
                    None => "the secret has several fields; set the target's `field`".to_owned(),
                },
            }
            .nothing_changed()),
        }
    }

    /// Runs `operation` with `vars`; maps its end to the target's errors.
    async fn run(&self, operation: &str, vars: &[(&str, &str)]) -> Result<(), TargetError> {
        let what = format!("command target `{operation}`");
        let mut all = vec![("REKEY_OPERATION", operation)];
        all.extend(self.secret.as_deref().map(|p| ("REKEY_PATH", p)));
        all.extend_from_slice(vars);
        let secrets: Vec<&str> = vars.iter().map(|(_, v)| *v).collect();
        let exit = match self.program.run(&what, &[operation], &all, &secrets).await {
            Ok(exit) => exit,
            Err(RunError::NulValue) => {
                let message = "a credential contains a NUL byte and cannot be passed in an environment variable";
                return Err(TargetError::InvalidInput { message: message.to_owned() }.nothing_changed());
            }
            // Nothing ran.
            Err(RunError::NotStarted(message)) => return Err(TargetError::Unavailable { message }.nothing_changed()),
            Err(RunError::Wait(message)) => return Err(TargetError::Other { message }),
            // It may have done its work: not "nothing changed".
            Err(RunError::TimedOut(t)) => {
                return Err(TargetError::Unavailable {
                    message: format!("{what} timed out after {t:?} and was killed"),
                });
            }
        };
        if exit.status.success() {
            return Ok(());
        }
        Err(self.failure(operation, &what, &exit))
    }

    fn failure(&self, operation: &str, what: &str, exit: &Exit) -> TargetError {
        let message = exit.describe(what);
        match (exit.status.code(), operation) {
            (Some(EXIT_REFUSED), _) => TargetError::Rejected { message }.nothing_changed(),
            (Some(EXIT_UNAVAILABLE), _) => TargetError::Unavailable { message }.nothing_changed(),
            // A test that fails changed nothing, whatever its status.
            (_, "test") => TargetError::Rejected { message }.nothing_changed(),
            _ => TargetError::Other { message },
        }
    }
}

#[async_trait]
impl CredentialTarget for CommandTarget {
    fn name(&self) -> &str {
        "command"
    }

    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities { concurrent_credentials: self.concurrent }
    }

    async fn apply(&self, candidate: &SecretData, current: Option<&SecretData>) -> Result<(), TargetError> {
        let new = self.credential(candidate)?;
        let current = current.map(|c| self.credential(c)).transpose()?;
        let mut vars = vec![("REKEY_NEW", new)];
        vars.extend(current.map(|c| ("REKEY_CURRENT", c)));
        self.run("apply", &vars).await
    }

    async fn test(&self, credential: &SecretData) -> Result<(), TargetError> {
        let credential = self.credential(credential)?;
        self.run("test", &[("REKEY_CREDENTIAL", credential)]).await
    }

    async fn revoke(&self, revoked: &SecretData, keep: &SecretData) -> Result<(), TargetError> {
        let (revoked, keep) = (self.credential(revoked)?, self.credential(keep)?);
        self.run("revoke", &[("REKEY_REVOKE", revoked), ("REKEY_KEEP", keep)]).await
    }
}
