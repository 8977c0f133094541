//! Verifiers and audit sinks from configuration, through
//! `rekey-integrations` (HTTP and command verifiers; tracing, JSON-lines and
//! webhook audit sinks).

use std::sync::Arc;
use std::time::Duration;

use rekey::{AuditSink, Verifier};
use rekey_integrations::{AuditSinkConfig, SinkHandle};

use crate::config::NamedVerifier;
use crate::error::CliError;

/// How long queued audit events may take to be delivered at exit.
const FLUSH_DEADLINE: Duration = Duration::from_secs(10);

/// Background tasks of audit sinks, flushed before exit.
#[derive(Debug, Default)]
pub struct SinkHandles {
    handles: Vec<SinkHandle>,
}

impl SinkHandles {
    /// Waits (bounded) for queued events to be delivered.
    pub async fn shutdown(self) {
        for h in self.handles {
            let name = h.name();
            let stats = h.shutdown(FLUSH_DEADLINE).await;
            tracing::debug!(sink = name, ?stats, "audit sink flushed");
        }
    }
}

/// Builds one verifier.
pub fn verifier(v: &NamedVerifier) -> Result<Arc<dyn Verifier>, CliError> {
    v.settings.build().map_err(|e| CliError::Usage(format!("verifier {:?}: {e}", v.name)))
}

/// Starts the audit sinks.
pub fn audit_sinks(configs: &[AuditSinkConfig]) -> Result<(Vec<Arc<dyn AuditSink>>, SinkHandles), CliError> {
    let mut sinks: Vec<Arc<dyn AuditSink>> = Vec::new();
    let mut handles = SinkHandles::default();
    for c in configs {
        let (sink, handle) = c.start().map_err(|e| CliError::Usage(format!("audit sink `{}`: {e}", c.kind())))?;
        sinks.push(sink);
        handles.handles.extend(handle);
    }
    Ok((sinks, handles))
}
