//! What the queued audit sinks share: a bounded queue that never blocks the
//! rotation, a background task draining it, and the [`SinkHandle`] that
//! flushes and stops that task.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rekey_core::AuditEvent;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::IntegrationError;

/// Most events handed to the writer in one batch.
const BATCH: usize = 256;

/// Counters of a queued audit sink, shared by the sink, its task and its
/// handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) retries: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> SinkStats {
        let accepted = self.accepted.load(Ordering::Relaxed);
        let delivered = self.delivered.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        SinkStats {
            accepted,
            delivered,
            failed,
            dropped: self.dropped.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            pending: accepted.saturating_sub(delivered + failed),
        }
    }
}

/// What a queued audit sink has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SinkStats {
    /// Events taken into the queue.
    pub accepted: u64,
    /// Events written / delivered.
    pub delivered: u64,
    /// Events given up on (retries exhausted, a write error, a rejected
    /// request).
    pub failed: u64,
    /// Events never queued: the queue was full or the sink shut down.
    pub dropped: u64,
    /// Delivery retries (webhook only).
    pub retries: u64,
    /// Events queued or in flight; after [`SinkHandle::shutdown`], the events
    /// that could not be delivered before its deadline.
    pub pending: u64,
}

/// The producer side: serialises events and queues them without waiting.
#[derive(Debug, Clone)]
pub(crate) struct Queue {
    pub(crate) name: &'static str,
    tx: mpsc::Sender<Vec<u8>>,
    pub(crate) counters: Arc<Counters>,
}

impl Queue {
    /// Queues `event` as JSON. Never blocks: when the queue is full the event
    /// is dropped and counted.
    pub(crate) fn push(&self, event: &AuditEvent) {
        let body = match serde_json::to_vec(event) {
            Ok(b) => b,
            Err(e) => {
                self.drop_one(&format!("cannot serialise the event: {e}"));
                return;
            }
        };
        match self.tx.try_send(body) {
            Ok(()) => {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => self.drop_one("queue full"),
            Err(mpsc::error::TrySendError::Closed(_)) => self.drop_one("sink shut down"),
        }
    }

    fn drop_one(&self, why: &str) {
        let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // The first drop, then every 1000th: a full queue must not flood the log.
        if n == 1 || n.is_multiple_of(1000) {
            tracing::warn!(target: "rekey::audit", sink = self.name, dropped_total = n, "audit event dropped: {why}");
        }
    }
}

/// Controls the background task of a queued audit sink
/// ([`WebhookAuditSink`](crate::WebhookAuditSink),
/// [`JsonLinesAuditSink`](crate::JsonLinesAuditSink)).
///
/// Dropping the handle leaves the task running until every clone of the sink
/// is dropped (then it finishes the queue and ends); call
/// [`shutdown`](Self::shutdown) to flush with a deadline.
#[derive(Debug)]
pub struct SinkHandle {
    name: &'static str,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl SinkHandle {
    /// The kind of sink (`"webhook"`, `"json_lines"`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The counters so far.
    pub fn stats(&self) -> SinkStats {
        self.counters.snapshot()
    }

    /// Stops taking events (later ones are counted as dropped), delivers what
    /// is queued until `deadline` has passed, then stops the task. Returns the
    /// final counters; [`SinkStats::pending`] is what was left undelivered.
    pub async fn shutdown(mut self, deadline: Duration) -> SinkStats {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(deadline, &mut self.task).await.is_err() {
            self.task.abort();
            let _ = (&mut self.task).await;
            tracing::warn!(target: "rekey::audit", sink = self.name, ?deadline, "audit sink shut down before its queue was empty");
        }
        self.counters.snapshot()
    }
}

/// Starts the task that hands batches of queued bodies to `write` (which
/// updates the counters), on the current tokio runtime.
pub(crate) fn spawn<F, Fut>(
    name: &'static str,
    capacity: usize,
    counters: Arc<Counters>,
    mut write: F,
) -> Result<(Queue, SinkHandle), IntegrationError>
where
    F: FnMut(Vec<Vec<u8>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| IntegrationError::NoRuntime(name))?;
    if capacity == 0 {
        return Err(IntegrationError::invalid("queue_capacity", "must be at least 1"));
    }
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(capacity);
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let task = runtime.spawn(async move {
        let mut stopping = false;
        loop {
            tokio::select! {
                biased;
                res = &mut stop_rx, if !stopping => {
                    stopping = true;
                    // Err: the handle was dropped without shutdown; keep going
                    // until every sink clone is gone.
                    if res.is_ok() {
                        rx.close();
                    }
                }
                first = rx.recv() => {
                    let Some(first) = first else { break };
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(b) => batch.push(b),
                            Err(_) => break,
                        }
                    }
                    write(batch).await;
                }
            }
        }
    });
    let handle = SinkHandle { name, stop: Some(stop_tx), task, counters: Arc::clone(&counters) };
    Ok((Queue { name, tx, counters }, handle))
}
