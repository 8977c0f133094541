//! Running a configured program with secrets in its environment: the one
//! copy shared by [`CommandVerifier`](crate::CommandVerifier) and
//! [`CommandTarget`](crate::CommandTarget).
//!
//! * Run directly (no shell), secrets only in environment variables (never
//!   argv, which every user sees through `ps`).
//! * By default only `PATH`, `HOME`, `USER`, `LANG`, `LC_ALL`, `TZ` and
//!   `TMPDIR` pass from rekey's environment, so rekey's own credentials
//!   (`VAULT_TOKEN`, AWS keys) stay with rekey.
//! * stdin is `/dev/null`; stdout is read and discarded; of stderr only the
//!   first line is kept, every secret (and its encodings and fragments)
//!   replaced by `[REDACTED]` before it is cut to 200 characters.
//! * Killed when it outlives its timeout. Only the process started is
//!   killed: a script that starts long-running children of its own should
//!   `exec` its last command.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::IntegrationError;

/// Variables passed from rekey's environment when `inherit_env` is false.
const PASS_ENV: &[&str] = &["PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// How much of stderr is kept (only its first line is ever shown).
const STDERR_KEEP: usize = 4096;

/// The longest stderr excerpt put in an error.
const STDERR_SHOW: usize = 200;

/// A program to run, validated.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) timeout: Duration,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) inherit_env: bool,
}

/// How a run ended, when it ended by itself.
pub(crate) struct Exit {
    pub(crate) status: ExitStatus,
    /// The first line of stderr, redacted, when there was one.
    pub(crate) stderr: Option<String>,
}

impl Exit {
    /// "exited with status N" / "was killed by signal N".
    pub(crate) fn how(&self) -> String {
        match self.status.code() {
            Some(code) => format!("exited with status {code}"),
            None => {
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt;
                    match self.status.signal() {
                        Some(sig) => format!("was killed by signal {sig}"),
                        None => "failed".to_owned(),
                    }
                }
                #[cfg(not(unix))]
                {
                    "failed".to_owned()
                }
            }
        }
    }

    /// `what` and how it ended, with its stderr's first line.
    pub(crate) fn describe(&self, what: &str) -> String {
        let mut msg = format!("{what} {}", self.how());
        if let Some(line) = &self.stderr {
            msg.push_str(": ");
            msg.push_str(line);
        }
        msg
    }
}

/// Why a run did not end by itself.
#[derive(Debug)]
pub(crate) enum RunError {
    /// A value contains a NUL byte, which no environment variable can hold:
    /// nothing ran.
    NulValue,
    /// It could not start (missing, not executable, ...): nothing ran.
    NotStarted(String),
    /// Waiting for it failed.
    Wait(String),
    /// It outlived its timeout and was killed.
    TimedOut(Duration),
}

/// Checks an environment variable name.
pub(crate) fn check_env_name(field: &str, name: &str) -> Result<(), IntegrationError> {
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        return Err(IntegrationError::invalid(field, format!("`{name}` is not a valid environment variable name")));
    }
    Ok(())
}

impl Program {
    /// Validates the parts every configured program shares: `program` set,
    /// no NUL byte in an argument or a value, valid `env` names none of
    /// which is in `reserved` (the variables rekey sets), a timeout above
    /// zero.
    pub(crate) fn new(
        program: PathBuf,
        args: Vec<String>,
        timeout: Duration,
        env: BTreeMap<String, String>,
        inherit_env: bool,
        reserved: &[&str],
    ) -> Result<Self, IntegrationError> {
        if program.as_os_str().is_empty() {
            return Err(IntegrationError::invalid("program", "must not be empty"));
        }
        if args.iter().any(|a| a.contains('\0')) {
            return Err(IntegrationError::invalid("args", "an argument contains a NUL byte"));
        }
        for (k, v) in &env {
            check_env_name(&format!("env.{k}"), k)?;
            if v.contains('\0') {
                return Err(IntegrationError::invalid(format!("env.{k}"), "contains a NUL byte"));
            }
            if reserved.contains(&k.as_str()) {
                return Err(IntegrationError::invalid(format!("env.{k}"), "is set by rekey (it would be overwritten)"));
            }
        }
        let timeout = crate::duration::positive("timeout", timeout)?;
        Ok(Self { program, args, timeout, env, inherit_env })
    }

    /// Runs the program with `extra_args` after its own and `vars` in its
    /// environment (the secrets among them listed in `secrets`, for
    /// redaction). `what` names it in messages and logs.
    pub(crate) async fn run(
        &self,
        what: &str,
        extra_args: &[&str],
        vars: &[(&str, &str)],
        secrets: &[&str],
    ) -> Result<Exit, RunError> {
        if vars.iter().any(|(_, v)| v.contains('\0')) {
            return Err(RunError::NulValue);
        }
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if !self.inherit_env {
            cmd.env_clear();
            for k in PASS_ENV {
                if let Some(v) = std::env::var_os(k) {
                    cmd.env(k, v);
                }
            }
        }
        cmd.envs(&self.env);
        cmd.envs(vars.iter().map(|(k, v)| (OsStr::new(k), OsStr::new(v))));
        let mut child = cmd.spawn().map_err(|e| {
            let program = self.program.display();
            RunError::NotStarted(match e.kind() {
                std::io::ErrorKind::NotFound => format!("{what}: program `{program}` not found"),
                std::io::ErrorKind::PermissionDenied => format!("{what}: program `{program}` is not executable"),
                _ => format!("{what}: cannot start `{program}`: {e}"),
            })
        })?;
        let stdout = tokio::spawn(drain(child.stdout.take(), 0));
        let stderr = tokio::spawn(drain(child.stderr.take(), STDERR_KEEP));
        let status = match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => {
                stdout.abort();
                stderr.abort();
                let _ = child.start_kill();
                return Err(RunError::Wait(format!("{what}: waiting for it failed: {e}")));
            }
            Err(_) => {
                stdout.abort();
                stderr.abort();
                let _ = child.start_kill();
                // Reap it; bounded, in case the kill does not take.
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                tracing::warn!(command = %what, timeout = ?self.timeout, "command timed out and was killed");
                return Err(RunError::TimedOut(self.timeout));
            }
        };
        // A child of the program may still hold the pipes open: give them a
        // moment, then stop reading.
        stdout.abort();
        let err_abort = stderr.abort_handle();
        let kept = tokio::time::timeout(Duration::from_millis(500), stderr).await.ok().and_then(Result::ok);
        err_abort.abort();
        Ok(Exit { status, stderr: kept.and_then(|e| first_line_redacted(&e, secrets)) })
    }
}

/// The first non-empty line of `stderr`, every secret (and its encodings and
/// fragments) replaced before it is cut, so no prefix of a secret can
/// survive; control characters dropped.
pub(crate) fn first_line_redacted(stderr: &[u8], secrets: &[&str]) -> Option<String> {
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
}
