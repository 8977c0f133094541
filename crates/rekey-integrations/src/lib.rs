//! # rekey-integrations
//!
//! Verifiers and audit sinks for [rekey](https://example.invalid/rekey) that
//! talk to the outside world, each built from a small serde configuration so
//! the `rekey` CLI can take them from its TOML file.
//!
//! ## Concepts
//!
//! * [`HttpVerifier`] — sends one request with the candidate in a header or
//!   as the basic-auth password; passes on an expected status.
//! * [`CommandVerifier`] — runs a program (no shell) with the candidate in an
//!   environment variable (never argv); passes on exit status 0.
//! * [`CommandTarget`] — an external hook: a credential target that runs a
//!   program of yours to apply, test and revoke credentials on a system
//!   rekey has no target for.
//! * [`WebhookAuditSink`] — POSTs every audit event as JSON, signed with
//!   HMAC-SHA256, retried with backoff, from a background task.
//! * [`JsonLinesAuditSink`] — appends every audit event to a file, one JSON
//!   object per line, from a background task.
//! * [`VerifierConfig`] / [`AuditSinkConfig`] — the tagged enums a config file
//!   holds; [`VerifierConfig::build`] and [`AuditSinkConfig::start`] turn them
//!   into trait objects for the
//!   [`RotationManager`](rekey_core::RotationManager).
//!
//! No secret (a candidate, an HMAC key) ever appears in a `Debug` output, an
//! error, a log line or an audit event. Bad configuration is an
//! [`IntegrationError`] naming the field, at build time.
//!
//! ## Usage
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use rekey_integrations::{AuditSinkConfig, VerifierConfig};
//!
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     verifiers: Vec<VerifierConfig>,
//!     audit: Vec<AuditSinkConfig>,
//! }
//! # let dir = tempfile::tempdir()?;
//! # let log = dir.path().join("audit.jsonl");
//! let text = format!(r#"
//!     [[verifiers]]
//!     type = "http"
//!     name = "api"
//!     url = "https://api.example.com/v1/me"
//!     placement = {{ type = "header", name = "Authorization", prefix = "Bearer " }}
//!
//!     [[verifiers]]
//!     type = "command"
//!     name = "login"
//!     program = "/usr/bin/env"
//!     args = ["true"]
//!     timeout = "5s"
//!
//!     [[audit]]
//!     type = "tracing"
//!
//!     [[audit]]
//!     type = "json_lines"
//!     path = {log:?}
//! "#);
//! let config: Config = toml::from_str(&text)?;
//! let verifiers = config.verifiers.iter().map(VerifierConfig::build).collect::<Result<Vec<_>, _>>()?;
//! assert_eq!(verifiers[0].name(), "api");
//! let mut handles = Vec::new();
//! for sink in &config.audit {
//!     let (sink, handle) = sink.start()?;
//!     // builder = builder.audit_sink(sink);
//!     handles.extend(handle);
//! }
//! // ... on exit:
//! for h in handles {
//!     h.shutdown(Duration::from_secs(5)).await;
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

mod command;
mod command_target;
mod duration;
mod error;
mod http;
mod jsonl;
mod process;
mod sink;
mod webhook;

use std::sync::Arc;

use rekey_core::{AuditSink, TracingAuditSink, Verifier};
use serde::{Deserialize, Serialize};

pub use command::{CommandVerifier, CommandVerifierConfig};
pub use command_target::{CommandTarget, CommandTargetConfig, EXIT_REFUSED, EXIT_UNAVAILABLE};
pub use error::IntegrationError;
pub use http::{ExpectStatus, HttpVerifier, HttpVerifierConfig, Placement};
pub use jsonl::{JsonLinesAuditSink, JsonLinesConfig};
pub use sink::{SinkHandle, SinkStats};
pub use webhook::{DEFAULT_SECRET_ENV, WebhookAuditSink, WebhookConfig, sign};

/// A verifier as written in a config file, tagged by `type`:
///
/// ```toml
/// [[verifiers]]
/// type = "http"      # fields of HttpVerifierConfig
/// name = "api"
/// url = "https://api.example.com/v1/me"
/// placement = { type = "header", name = "Authorization", prefix = "Bearer " }
///
/// [[verifiers]]
/// type = "command"   # fields of CommandVerifierConfig
/// name = "login"
/// program = "/usr/local/bin/check-login"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum VerifierConfig {
    /// An [`HttpVerifier`].
    Http(HttpVerifierConfig),
    /// A [`CommandVerifier`].
    Command(CommandVerifierConfig),
}

impl VerifierConfig {
    /// The name policies refer to it by (known before building).
    pub fn name(&self) -> &str {
        match self {
            Self::Http(c) => c.name.trim(),
            Self::Command(c) => c.name.trim(),
        }
    }

    /// Validates and builds the verifier.
    ///
    /// # Errors
    /// See [`HttpVerifier::new`] and [`CommandVerifier::new`].
    pub fn build(&self) -> Result<Arc<dyn Verifier>, IntegrationError> {
        Ok(match self {
            Self::Http(c) => Arc::new(HttpVerifier::new(c)?),
            Self::Command(c) => Arc::new(CommandVerifier::new(c)?),
        })
    }
}

/// Configuration of the [`TracingAuditSink`]: nothing to set (its output is
/// the `tracing` subscriber's, target `rekey::audit`). Exists so that unknown
/// keys under `type = "tracing"` are refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingSinkConfig {}

/// An audit sink as written in a config file, tagged by `type`:
///
/// ```toml
/// [[audit]]
/// type = "tracing"      # rekey_core::TracingAuditSink (log lines)
///
/// [[audit]]
/// type = "json_lines"   # fields of JsonLinesConfig
/// path = "/var/log/rekey/audit.jsonl"
///
/// [[audit]]
/// type = "webhook"      # fields of WebhookConfig
/// url = "https://hooks.internal/rekey"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum AuditSinkConfig {
    /// [`TracingAuditSink`]: each event as a `tracing` event.
    Tracing(TracingSinkConfig),
    /// A [`JsonLinesAuditSink`].
    JsonLines(JsonLinesConfig),
    /// A [`WebhookAuditSink`].
    Webhook(WebhookConfig),
}

impl AuditSinkConfig {
    /// The kind, as written in `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Tracing(_) => "tracing",
            Self::JsonLines(_) => "json_lines",
            Self::Webhook(_) => "webhook",
        }
    }

    /// Validates the configuration and starts the sink. Queued sinks start
    /// their task on the current tokio runtime and return its [`SinkHandle`]
    /// (call [`SinkHandle::shutdown`] before exiting to flush the queue).
    ///
    /// # Errors
    /// See [`JsonLinesAuditSink::start`] and [`WebhookAuditSink::start`].
    pub fn start(&self) -> Result<(Arc<dyn AuditSink>, Option<SinkHandle>), IntegrationError> {
        Ok(match self {
            Self::Tracing(_) => (Arc::new(TracingAuditSink), None),
            Self::JsonLines(c) => {
                let (sink, handle) = JsonLinesAuditSink::start(c)?;
                (Arc::new(sink), Some(handle))
            }
            Self::Webhook(c) => {
                let (sink, handle) = WebhookAuditSink::start(c)?;
                (Arc::new(sink), Some(handle))
            }
        })
    }
}

/// An error and its sources, `: `-separated (reqwest hides the cause of a
/// connection error in the chain).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
