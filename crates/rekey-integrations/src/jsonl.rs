//! [`JsonLinesAuditSink`]: appends every audit event to a file, one JSON
//! object per line.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rekey_core::{AuditEvent, AuditSink};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::IntegrationError;
use crate::sink::{self, Counters, Queue, SinkHandle, SinkStats};

/// Configuration of a [`JsonLinesAuditSink`].
///
/// ```toml
/// path = "/var/log/rekey/audit.jsonl"
/// fsync = false           # default; true: fsync after each batch of lines
/// queue_capacity = 10000  # default
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonLinesConfig {
    /// The file (created with mode 0600 if missing; appended to otherwise).
    /// Its directory must exist.
    pub path: PathBuf,
    /// Call `fsync` (`sync_data`) after each batch of lines.
    #[serde(default)]
    pub fsync: bool,
    /// Events that may wait for the writer; beyond, new events are dropped
    /// (and counted).
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
}

fn default_queue_capacity() -> usize {
    10_000
}

impl JsonLinesConfig {
    /// A configuration with every default, for `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), fsync: false, queue_capacity: default_queue_capacity() }
    }
}

/// An [`AuditSink`] appending one JSON object per line to a file.
///
/// Why a background writer and not a buffered append under a mutex: a write
/// (and above all an `fsync`) can stall for a long time on a busy or network
/// disk, and [`AuditSink::record`] must never hold up a rotation; with a
/// mutex, concurrent rotations would also queue behind each other on the
/// disk. So `record` serialises the event and puts it on a bounded queue
/// (dropping and counting it when full); one task writes whatever has queued
/// up in a single `write` (and one `fsync` when configured), so lines are
/// whole and in order. [`SinkHandle::shutdown`] writes what is left.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use rekey_core::{AuditEvent, AuditEventKind, AuditSink};
/// use rekey_integrations::{JsonLinesAuditSink, JsonLinesConfig};
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("audit.jsonl");
/// let (sink, handle) = JsonLinesAuditSink::start(&JsonLinesConfig::new(&path))?;
/// sink.record(&AuditEvent::new(chrono::Utc::now(), AuditEventKind::Started, "app/db".parse()?));
/// handle.shutdown(Duration::from_secs(5)).await;
/// let line = std::fs::read_to_string(&path)?;
/// assert!(line.ends_with("\n") && line.contains(r#""kind":"started""#));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JsonLinesAuditSink {
    queue: Queue,
    path: PathBuf,
}

impl fmt::Debug for JsonLinesAuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesAuditSink").field("path", &self.path).field("stats", &self.stats()).finish()
    }
}

fn open(path: &PathBuf) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        let mode = file.metadata()?.mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(target: "rekey::audit", path = %path.display(), mode = format!("{mode:o}"), "the audit log is readable by other users");
        }
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        options.open(path)
    }
}

impl JsonLinesAuditSink {
    /// Opens (or creates, mode 0600) the file and starts the writer task on
    /// the current tokio runtime.
    ///
    /// # Errors
    /// [`IntegrationError::Io`] when the file cannot be opened for appending;
    /// [`IntegrationError::InvalidConfig`] for a zero `queue_capacity`;
    /// [`IntegrationError::NoRuntime`] outside a tokio runtime.
    pub fn start(config: &JsonLinesConfig) -> Result<(Self, SinkHandle), IntegrationError> {
        if config.queue_capacity == 0 {
            return Err(IntegrationError::invalid("queue_capacity", "must be at least 1"));
        }
        tokio::runtime::Handle::try_current().map_err(|_| IntegrationError::NoRuntime("json_lines"))?;
        let file = open(&config.path).map_err(|source| IntegrationError::Io {
            field: "path".to_owned(),
            path: config.path.clone(),
            source,
        })?;
        let file = Arc::new(tokio::sync::Mutex::new(tokio::fs::File::from_std(file)));
        let counters = Arc::new(Counters::default());
        let c = Arc::clone(&counters);
        let fsync = config.fsync;
        let shown = config.path.display().to_string();
        let (queue, handle) = sink::spawn(
            "json_lines",
            config.queue_capacity,
            counters,
            move |batch: Vec<Vec<u8>>| {
                let file = Arc::clone(&file);
                let c = Arc::clone(&c);
                let shown = shown.clone();
                async move {
                    let n = batch.len() as u64;
                    let mut buf = Vec::with_capacity(batch.iter().map(|b| b.len() + 1).sum());
                    for line in batch {
                        buf.extend_from_slice(&line);
                        buf.push(b'\n');
                    }
                    let mut file = file.lock().await;
                    let mut result = file.write_all(&buf).await;
                    if result.is_ok() {
                        result = file.flush().await;
                    }
                    if result.is_ok() && fsync {
                        result = file.sync_data().await;
                    }
                    match result {
                        Ok(()) => {
                            c.delivered.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => {
                            c.failed.fetch_add(n, Ordering::Relaxed);
                            tracing::warn!(target: "rekey::audit", path = %shown, events = n, "cannot write the audit log: {e}");
                        }
                    }
                }
            },
        )?;
        Ok((Self { queue, path: config.path.clone() }, handle))
    }

    /// The counters so far (shared with the [`SinkHandle`]).
    pub fn stats(&self) -> SinkStats {
        self.queue.counters.snapshot()
    }
}

impl AuditSink for JsonLinesAuditSink {
    fn record(&self, event: &AuditEvent) {
        self.queue.push(event);
    }
}
