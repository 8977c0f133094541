//! `rekey run`: the daemon.
//!
//! Schedules every configured secret (its next due time derived from the
//! store's record of the last rotation, so several daemons agree without a
//! schedule database), sleeps until the next due time, runs what is due
//! through the engine, records results beside each secret, reads every
//! secret again once per `[daemon] recheck_interval` to act on what other
//! processes left beside it ([`mod@sync`]), and serves
//! `/healthz` and Prometheus `/metrics` (every connection bounded in time, at
//! most 64 at once: [`Limits`]). On SIGTERM/SIGINT it starts no new
//! rotation, gives the rotations in flight `[daemon] shutdown_timeout` to
//! finish, then exits; a rotation cut off there leaves its journal in the store and
//! the next run's crash recovery cleans it up.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::Utc;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use rekey::{RotationManager, RotationOutcome, RotationResult};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::app;
use crate::config::Config;
use crate::error::{CliError, EXIT_OK};
use crate::output::Out;

mod sync;
use sync::{Recheck, recheck, sync};

const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Counters served on `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    by_outcome: BTreeMap<&'static str, u64>,
    buckets: [u64; BUCKETS.len()],
    duration_sum: f64,
    duration_count: u64,
    quarantined: usize,
    unscheduled: usize,
    batches: u64,
    http_open: usize,
    http_closed: BTreeMap<&'static str, u64>,
    /// Resyncs done (start-up included).
    resyncs: u64,
    /// Secrets read again by the periodic recheck.
    rechecks: u64,
    /// The daemon's own reads (scheduling, resync) cannot reach the store:
    /// since when, and why (no secret in it).
    sync_unreachable: Option<(chrono::DateTime<Utc>, String)>,
}

/// The store's health as the daemon reports it: the engine's view (the
/// rotations' store calls) joined with the daemon's own reads.
fn store_health(shared: &Shared) -> (bool, Option<chrono::DateTime<Utc>>, Option<String>) {
    let h = shared.manager.store_health();
    let c = shared.counters();
    match (&c.sync_unreachable, h.available) {
        (_, false) => (false, h.unavailable_since, h.last_error),
        (Some((since, e)), true) => (false, Some(*since), Some(e.clone())),
        (None, true) => (true, None, None),
    }
}

struct Shared {
    manager: RotationManager,
    counters: Mutex<Counters>,
    stopping: watch::Receiver<bool>,
}

impl Shared {
    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, r: &RotationResult) {
        let mut c = self.counters();
        *c.by_outcome.entry(r.outcome.as_str()).or_default() += 1;
        let secs = r.duration.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                c.buckets[i] += 1;
            }
        }
        c.duration_sum += secs;
        c.duration_count += 1;
    }

    fn metrics(&self) -> String {
        let stats = self.manager.statistics();
        let c = self.counters();
        let mut s = String::new();
        let _ = writeln!(s, "# HELP rekey_rotations_total Rotations run by this daemon, by outcome.");
        let _ = writeln!(s, "# TYPE rekey_rotations_total counter");
        for o in [
            RotationOutcome::Rotated,
            RotationOutcome::Failed,
            RotationOutcome::RolledBack,
            RotationOutcome::RotatedElsewhere,
            RotationOutcome::InProgressElsewhere,
            RotationOutcome::AlreadyRotating,
            RotationOutcome::OutsideWindow,
        ] {
            let name = o.as_str();
            let _ = writeln!(
                s,
                "rekey_rotations_total{{outcome=\"{name}\"}} {}",
                c.by_outcome.get(name).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(s, "# HELP rekey_rotation_duration_seconds How long rotations took.");
        let _ = writeln!(s, "# TYPE rekey_rotation_duration_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(s, "rekey_rotation_duration_seconds_bucket{{le=\"{b}\"}} {}", c.buckets[i]);
        }
        let _ = writeln!(s, "rekey_rotation_duration_seconds_bucket{{le=\"+Inf\"}} {}", c.duration_count);
        let _ = writeln!(s, "rekey_rotation_duration_seconds_sum {}", c.duration_sum);
        let _ = writeln!(s, "rekey_rotation_duration_seconds_count {}", c.duration_count);
        let _ = writeln!(s, "# HELP rekey_quarantined_secrets Secrets not rotated until `rekey resume`.");
        let _ = writeln!(s, "# TYPE rekey_quarantined_secrets gauge");
        let _ = writeln!(s, "rekey_quarantined_secrets {}", c.quarantined + stats.quarantined);
        // A secret quarantined by the engine keeps its schedule (so
        // `sync_quarantines` can lift it) but is not rotated: it counts as
        // unscheduled here.
        let _ = writeln!(s, "# HELP rekey_scheduled_secrets Secrets this daemon schedules.");
        let _ = writeln!(s, "# TYPE rekey_scheduled_secrets gauge");
        let _ = writeln!(s, "rekey_scheduled_secrets {}", stats.active_schedules.saturating_sub(stats.quarantined));
        let _ = writeln!(
            s,
            "# HELP rekey_unscheduled_secrets Configured secrets not scheduled (missing, unreachable or quarantined)."
        );
        let _ = writeln!(s, "# TYPE rekey_unscheduled_secrets gauge");
        let _ = writeln!(s, "rekey_unscheduled_secrets {}", c.unscheduled + stats.quarantined);
        let _ = writeln!(s, "# HELP rekey_rotations_in_flight Rotations running now.");
        let _ = writeln!(s, "# TYPE rekey_rotations_in_flight gauge");
        let _ = writeln!(s, "rekey_rotations_in_flight {}", stats.active_rotations);
        let _ = writeln!(
            s,
            "# HELP rekey_next_due_timestamp_seconds When the next rotation is due (Unix time; absent when none)."
        );
        let _ = writeln!(s, "# TYPE rekey_next_due_timestamp_seconds gauge");
        if let Some(t) = self.manager.next_due() {
            let _ = writeln!(s, "rekey_next_due_timestamp_seconds {}", t.timestamp());
        }
        let _ = writeln!(
            s,
            "# HELP rekey_secret_next_due_timestamp_seconds When each scheduled secret is next due (Unix time)."
        );
        let _ = writeln!(s, "# TYPE rekey_secret_next_due_timestamp_seconds gauge");
        for info in self.manager.list_schedules() {
            if let Some(t) = info.next_rotation {
                let path = info.path.as_str().replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(s, "rekey_secret_next_due_timestamp_seconds{{path=\"{path}\"}} {}", t.timestamp());
            }
        }
        let _ = writeln!(s, "# HELP rekey_scheduler_batches_total Batches of due rotations processed.");
        let _ = writeln!(s, "# TYPE rekey_scheduler_batches_total counter");
        let _ = writeln!(s, "rekey_scheduler_batches_total {}", c.batches);
        let _ = writeln!(s, "# HELP rekey_shutting_down 1 once SIGTERM/SIGINT was received.");
        let _ = writeln!(s, "# TYPE rekey_shutting_down gauge");
        let _ = writeln!(s, "rekey_shutting_down {}", u8::from(*self.stopping.borrow()));
        let _ = writeln!(s, "# HELP rekey_http_connections_open Connections open to /healthz and /metrics.");
        let _ = writeln!(s, "# TYPE rekey_http_connections_open gauge");
        let _ = writeln!(s, "rekey_http_connections_open {}", c.http_open);
        let _ = writeln!(
            s,
            "# HELP rekey_http_connections_closed_total Connections the daemon closed or refused, by reason."
        );
        let _ = writeln!(s, "# TYPE rekey_http_connections_closed_total counter");
        for reason in ["header_timeout", "idle_timeout", "request_timeout", "evicted", "refused"] {
            let n = c.http_closed.get(reason).copied().unwrap_or(0);
            let _ = writeln!(s, "rekey_http_connections_closed_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = writeln!(s, "# HELP rekey_resyncs_total Re-reads of the secrets the daemon could not schedule yet.");
        let _ = writeln!(s, "# TYPE rekey_resyncs_total counter");
        let _ = writeln!(s, "rekey_resyncs_total {}", c.resyncs);
        let _ = writeln!(
            s,
            "# HELP rekey_rechecks_total Secrets read again by the periodic recheck (one store call each)."
        );
        let _ = writeln!(s, "# TYPE rekey_rechecks_total counter");
        let _ = writeln!(s, "rekey_rechecks_total {}", c.rechecks);
        drop(c);
        let _ =
            writeln!(s, "# HELP rekey_store_requests_total Requests this daemon's store client sent, by operation.");
        let _ = writeln!(s, "# TYPE rekey_store_requests_total counter");
        for (op, n) in self.manager.store().request_counts() {
            let _ = writeln!(s, "rekey_store_requests_total{{op=\"{op}\"}} {n}");
        }
        let (up, since, _) = store_health(self);
        let _ = writeln!(s, "# HELP rekey_store_up 1 when the store answers, 0 while it cannot be reached.");
        let _ = writeln!(s, "# TYPE rekey_store_up gauge");
        let _ = writeln!(s, "rekey_store_up {}", u8::from(up));
        if let Some(t) = since {
            let _ = writeln!(
                s,
                "# HELP rekey_store_unavailable_since_timestamp_seconds Since when the store cannot be reached (Unix time)."
            );
            let _ = writeln!(s, "# TYPE rekey_store_unavailable_since_timestamp_seconds gauge");
            let _ = writeln!(s, "rekey_store_unavailable_since_timestamp_seconds {}", t.timestamp());
        }
        s
    }
}

fn respond(shared: &Shared, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => {
            (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", shared.metrics())
        }
        (&hyper::Method::GET, "/livez") => (StatusCode::OK, "application/json", r#"{"status":"alive"}"#.into()),
        (&hyper::Method::GET, "/healthz") => {
            let stopping = *shared.stopping.borrow();
            let stats = shared.manager.statistics();
            let (up, since, error) = store_health(shared);
            let status = match (stopping, up) {
                (true, _) => "stopping",
                (false, false) => "degraded",
                (false, true) => "ok",
            };
            let body = json!({
                "status": status,
                "store": { "available": up, "unavailable_since": since, "error": error },
                "scheduled": stats.active_schedules,
                "in_flight": stats.active_rotations,
                "next_due": shared.manager.next_due(),
            })
            .to_string();
            (if stopping || !up { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }, "application/json", body)
        }
        (_, "/metrics" | "/healthz" | "/livez") => {
            (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "method not allowed\n".into())
        }
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found; try /healthz, /livez or /metrics\n".into()),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

// The HTTP listener (/healthz, /metrics). Whatever clients do, each
// connection is bounded in time and their number is capped, so a slow or
// idle client can neither hold a connection for ever nor lock out the
// health check, and the rotation loop never waits on a client.

/// Limits of the HTTP listener. Constants for now ([`Limits::DEFAULT`]);
/// they could become `[daemon]` keys.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// A request head (request line and headers) must be complete this long
    /// after the connection opened, or after the first byte of a later
    /// request on a kept-alive connection.
    header_read: Duration,
    /// A kept-alive connection that sends no new request is closed after this.
    idle: Duration,
    /// A whole request, from its first byte until its response is written,
    /// must be done within this (a client that does not read its response is cut).
    request: Duration,
    /// Connections open at once. At the limit a new connection closes the
    /// oldest one, so a client holding many connections cannot lock out `/healthz`.
    max_connections: usize,
    /// At the limit, how long a new connection waits for the oldest one to
    /// go before it is dropped itself (in practice the oldest goes at once).
    eviction_wait: Duration,
}

impl Limits {
    const DEFAULT: Self = Self {
        header_read: Duration::from_secs(5),
        idle: Duration::from_secs(30),
        request: Duration::from_secs(10),
        max_connections: 64,
        eviction_wait: Duration::from_secs(1),
    };
}

/// Why the daemon closed a connection (the client closing it is `Done`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    Done,
    HeaderTimeout,
    IdleTimeout,
    RequestTimeout,
    Evicted,
}

impl Closed {
    fn label(self) -> Option<&'static str> {
        match self {
            Self::Done => None,
            Self::HeaderTimeout => Some("header_timeout"),
            Self::IdleTimeout => Some("idle_timeout"),
            Self::RequestTimeout => Some("request_timeout"),
            Self::Evicted => Some("evicted"),
        }
    }
}

/// Where a connection is, and since when (the start of its deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request head: since the connection opened or the request's first byte.
    Head { since: Instant },
    /// Answering: since the request's first byte; `queued` once hyper took the whole response body.
    Busy { since: Instant, queued: bool },
    /// Kept alive, waiting for the next request.
    Idle { since: Instant },
}

/// One connection's phase, updated from its I/O and its service, read by its watchdog.
#[derive(Debug)]
struct ConnState {
    limits: Limits,
    phase: Mutex<Phase>,
    changed: tokio::sync::Notify,
}

impl ConnState {
    fn new(limits: Limits) -> Self {
        Self { limits, phase: Mutex::new(Phase::Head { since: Instant::now() }), changed: tokio::sync::Notify::new() }
    }

    fn update(&self, step: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        let next = step(*phase);
        if next != *phase {
            *phase = next;
            self.changed.notify_one();
        }
    }

    /// When the current phase runs out, and what that is called.
    fn deadline(&self) -> (Instant, Closed) {
        match *self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            Phase::Head { since } => (since + self.limits.header_read, Closed::HeaderTimeout),
            Phase::Busy { since, .. } => (since + self.limits.request, Closed::RequestTimeout),
            Phase::Idle { since } => (since + self.limits.idle, Closed::IdleTimeout),
        }
    }

    /// Bytes arrived: on an idle connection, a new request has begun.
    fn bytes_read(&self) {
        self.update(|p| match p {
            Phase::Idle { .. } => Phase::Head { since: Instant::now() },
            p => p,
        });
    }

    /// hyper parsed a request head and called the service.
    fn request_received(&self) {
        self.update(|p| match p {
            Phase::Head { since } => Phase::Busy { since, queued: false },
            // Pipelined: its bytes arrived while the previous one was answered.
            Phase::Idle { .. } => Phase::Busy { since: Instant::now(), queued: false },
            p => p,
        });
    }

    /// hyper took the whole response body (dropped it).
    fn response_queued(&self) {
        self.update(|p| match p {
            Phase::Busy { since, .. } => Phase::Busy { since, queued: true },
            p => p,
        });
    }

    /// A flush completed: after the response was queued, it is written.
    fn flushed(&self) {
        self.update(|p| match p {
            Phase::Busy { queued: true, .. } => Phase::Idle { since: Instant::now() },
            p => p,
        });
    }
}

/// A connection's socket, reporting reads and completed flushes to its [`ConnState`].
struct Watched<T> {
    io: T,
    state: Arc<ConnState>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.bytes_read();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            this.state.flushed();
        }
        r
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A response body that tells its connection when hyper has taken all of it.
struct Answer {
    body: Full<Bytes>,
    state: Arc<ConnState>,
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.state.response_queued();
    }
}

/// Serves one connection until the client closes it, a deadline of its
/// current phase passes, or it is evicted (`evict` fires or is dropped).
async fn connection<T>(io: T, shared: Arc<Shared>, limits: Limits, mut evict: oneshot::Receiver<()>) -> Closed
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = Arc::new(ConnState::new(limits));
    let svc_state = state.clone();
    let svc = hyper::service::service_fn(move |req| {
        svc_state.request_received();
        let r = respond(&shared, &req).map(|body| Answer { body, state: svc_state.clone() });
        async move { Ok::<_, Infallible>(r) }
    });
    let io = hyper_util::rt::TokioIo::new(Watched { io, state: state.clone() });
    // hyper's own header timer restarts whenever it waits for a request head,
    // kept-alive connections included, so it cannot tell a slow head from an
    // idle connection; the watchdog below keeps the time of every phase.
    let conn = hyper::server::conn::http1::Builder::new().header_read_timeout(None).serve_connection(io, svc);
    tokio::pin!(conn);
    loop {
        let (deadline, expired) = state.deadline();
        let changed = state.changed.notified();
        tokio::select! {
            biased;
            _ = &mut conn => return Closed::Done,
            _ = &mut evict => return Closed::Evicted,
            () = changed => {}
            () = tokio::time::sleep_until(deadline) => return expired,
        }
    }
}

/// Listens on `addr` with room for [`ACCEPT_BACKLOG`] connections not yet
/// accepted (the standard library's 128 fills under a burst of connections,
/// and a client whose SYN is dropped waits a second to retry).
fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// See [`bind`].
const ACCEPT_BACKLOG: u32 = 1024;

/// Serves until the process exits (answering 503 on /healthz once stopping).
async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, limits: Limits) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    // Open connections by age (ids grow); dropping a sender closes its connection.
    let open: Arc<Mutex<BTreeMap<u64, oneshot::Sender<()>>>> = Arc::default();
    let mut next_id = 0u64;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a metrics connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                drop(open.lock().unwrap_or_else(PoisonError::into_inner).pop_first());
                match tokio::time::timeout(limits.eviction_wait, slots.clone().acquire_owned()).await {
                    Ok(Ok(slot)) => slot,
                    _ => {
                        *shared.counters().http_closed.entry("refused").or_default() += 1;
                        continue;
                    }
                }
            }
        };
        next_id += 1;
        let id = next_id;
        let (tx, rx) = oneshot::channel();
        open.lock().unwrap_or_else(PoisonError::into_inner).insert(id, tx);
        shared.counters().http_open += 1;
        let (shared, open) = (shared.clone(), open.clone());
        tokio::spawn(async move {
            let closed = connection(stream, shared.clone(), limits, rx).await;
            open.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
            let mut c = shared.counters();
            c.http_open = c.http_open.saturating_sub(1);
            if let Some(reason) = closed.label() {
                *c.http_closed.entry(reason).or_default() += 1;
            }
            drop(c);
            drop(slot);
        });
    }
}

fn signals(tx: watch::Sender<bool>) -> Result<(), CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| CliError::Failed(format!("cannot watch SIGTERM: {e}")))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| CliError::Failed(format!("cannot watch SIGINT: {e}")))?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down: no new rotations start; waiting for the ones in flight");
        let _ = tx.send(true);
    });
    Ok(())
}

/// Records one resync's result in the counters.
fn note_sync(shared: &Shared, unscheduled: usize, quarantined: usize, unreachable: Option<String>) {
    let mut c = shared.counters();
    c.quarantined = quarantined;
    c.unscheduled = unscheduled;
    c.resyncs += 1;
    c.sync_unreachable = match (unreachable, c.sync_unreachable.take()) {
        (None, _) => None,
        (Some(e), Some((since, _))) => Some((since, e)),
        (Some(e), None) => Some((Utc::now(), e)),
    };
}

/// `rekey run`.
pub async fn run(config: Config, out: Out) -> Result<u8, CliError> {
    let listen = config.daemon.listen;
    let shutdown_timeout = config.daemon.shutdown_timeout;
    let resync = config.daemon.resync_interval;
    let recheck_interval = config.daemon.recheck_interval;
    let app = app::build(config, None).await?;
    let (tx, rx) = watch::channel(false);
    signals(tx)?;
    let shared = Arc::new(Shared { manager: app.manager.clone(), counters: Mutex::default(), stopping: rx.clone() });
    let listener = bind(listen).map_err(|e| CliError::Failed(format!("cannot listen on {listen}: {e}")))?;
    let bound = listener.local_addr().unwrap_or(listen);
    tokio::spawn(serve(listener, shared.clone(), Limits::DEFAULT));
    tracing::info!(listen = %bound, secrets = app.config.secrets.len(), store = %app.config.store_kind, "rekey daemon started");

    let (mut unscheduled, q, down) = sync(&app, app.config.secrets.clone()).await;
    note_sync(&shared, unscheduled.len(), q, down);
    let mut last_sync = tokio::time::Instant::now();
    // Start-up has just read every secret: the recheck owes nothing yet.
    let mut rechecks = Recheck::new(recheck_interval, last_sync);
    let mut stop = rx.clone();
    let mut interrupted = false;
    loop {
        if *stop.borrow() {
            break;
        }
        let wait = match app.manager.next_due() {
            Some(t) => (t - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            None => resync,
        };
        let wait = wait.min(resync.saturating_sub(last_sync.elapsed())).min(Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => continue,
        }
        if app.manager.next_due().is_some_and(|t| t <= Utc::now()) {
            // Once the shutdown signal arrives the batch starts no new
            // rotation; the ones running get `shutdown_timeout` to finish,
            // and the due secrets not started stay due for the next run.
            let mut signalled = rx.clone();
            let stop_starting = async move {
                let _ = signalled.wait_for(|stopping| *stopping).await;
            };
            let batch = app.manager.process_scheduled_rotations_until(stop_starting);
            tokio::pin!(batch);
            let results = tokio::select! {
                r = &mut batch => Some(r),
                _ = stop.changed() => {
                    match tokio::time::timeout(shutdown_timeout, &mut batch).await {
                        Ok(r) => Some(r),
                        Err(_) => {
                            tracing::warn!(
                                timeout = ?shutdown_timeout,
                                "rotations still running at the shutdown deadline were interrupted; \
                                 the next run cleans them up"
                            );
                            interrupted = true;
                            None
                        }
                    }
                }
            };
            let results = results.unwrap_or_default();
            shared.counters().batches += 1;
            for r in &results {
                shared.record(r);
                // The engine recorded the result beside the secret and, after
                // `quarantine_after` failures in a row, quarantined it there
                // and in its schedule; `sync_quarantines` lifts it once
                // `rekey resume` has.
                if r.quarantined && r.outcome.is_failure() {
                    tracing::warn!(path = %r.path, "quarantined after repeated failures; `rekey resume` lifts it");
                }
                if r.outcome.is_failure() {
                    tracing::warn!(path = %r.path, outcome = %r.outcome, error = ?r.error.as_ref().map(ToString::to_string), "rotation failed");
                } else {
                    tracing::info!(path = %r.path, outcome = %r.outcome, new_version = ?r.new_version.as_ref().map(|v| v.to_string()), "rotation finished");
                }
            }
            if interrupted {
                break;
            }
        }
        if last_sync.elapsed() >= resync {
            // Quarantines lifted in the store (`rekey resume` from another
            // process) take effect here.
            let lifted = app.manager.sync_quarantines().await;
            if lifted > 0 {
                tracing::info!(lifted, "quarantines lifted in the store; those secrets are due");
            }
            let (left, q, down) = sync(&app, std::mem::take(&mut unscheduled)).await;
            unscheduled = left;
            note_sync(&shared, unscheduled.len(), q, down);
            let read = recheck(&app, rechecks.take(&app.config.secrets, Instant::now()), &unscheduled).await;
            shared.counters().rechecks += read;
            last_sync = tokio::time::Instant::now();
        }
    }
    let summary = {
        let c = shared.counters();
        c.by_outcome.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect::<BTreeMap<_, _>>()
    };
    tracing::info!(?summary, interrupted, "rekey daemon stopped");
    if out.json {
        out.json_value(&json!({ "stopped": true, "interrupted": interrupted, "rotations": summary }));
    }
    app.finish().await;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::task::JoinHandle;

    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const SHORT: Limits =
        Limits { header_read: ms(300), idle: ms(1200), request: ms(600), max_connections: 4, eviction_wait: ms(500) };

    fn shared() -> Arc<Shared> {
        let store: Arc<rekey::DynSecretStore> = Arc::new(rekey::memory::MemoryStore::new());
        let manager = RotationManager::builder(store).clock(rekey::tokio_clock()).build().unwrap();
        let (_, stopping) = watch::channel(false);
        Arc::new(Shared { manager, counters: Mutex::default(), stopping })
    }

    /// One connection served over an in-memory pipe of `buffer` bytes each
    /// way: the client's end, the task (why it closed, when) and the
    /// eviction handle.
    fn open(buffer: usize) -> (DuplexStream, JoinHandle<(Closed, Duration)>, oneshot::Sender<()>) {
        let (client, server) = tokio::io::duplex(buffer);
        let (evict, evicted) = oneshot::channel();
        let shared = shared();
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let closed = connection(server, shared, SHORT, evicted).await;
            (closed, t0.elapsed())
        });
        (client, task, evict)
    }

    /// Sends a GET and reads the whole response (by its Content-Length).
    async fn ask<S: AsyncRead + AsyncWrite + Unpin>(client: &mut S, path: &str) -> String {
        client.write_all(format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "closed before the whole response: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap();
                if body.len() >= len {
                    return text;
                }
            }
        }
    }

    /// Waits for the server to close the client's end; returns how long it took.
    async fn closed_after<S: AsyncRead + Unpin>(client: &mut S) -> Duration {
        let t = Instant::now();
        let mut buf = [0u8; 64];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return t.elapsed(),
                Ok(Ok(_)) => {}
                Err(_) => panic!("the connection is still open after 10 s"),
            }
        }
    }

    fn within(d: Duration, low: Duration, high: Duration) {
        assert!(d >= low && d <= high, "{d:?} not within {low:?}..{high:?}");
    }

    #[tokio::test]
    async fn a_head_that_never_completes_is_cut_at_the_header_read_timeout() {
        let (mut client, task, _evict) = open(4096);
        client.write_all(b"GET /hea").await.unwrap();
        let (closed, after) = task.await.unwrap();
        assert_eq!(closed, Closed::HeaderTimeout);
        within(after, SHORT.header_read, SHORT.header_read + ms(700));
    }

    #[tokio::test]
    async fn a_trickled_head_is_cut_counting_from_its_first_byte() {
        let (client, task, _evict) = open(4096);
        let (_, mut w) = tokio::io::split(client);
        let writer = tokio::spawn(async move {
            for b in b"GET /healthz HTTP/1.1\r\nhost: test\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaa" {
                if w.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(ms(50)).await;
            }
        });
        let (closed, after) = task.await.unwrap();
        assert_eq!(closed, Closed::HeaderTimeout);
        within(after, SHORT.header_read, SHORT.header_read + ms(700));
        writer.abort();
    }

    #[tokio::test]
    async fn a_kept_alive_connection_may_idle_longer_than_a_head_takes_then_is_closed() {
        let (mut client, task, _evict) = open(4096);
        assert!(ask(&mut client, "/healthz").await.starts_with("HTTP/1.1 200"));
        // Idle for longer than a head may take: still open.
        tokio::time::sleep(SHORT.header_read * 2).await;
        assert!(ask(&mut client, "/metrics").await.starts_with("HTTP/1.1 200"));
        let after = closed_after(&mut client).await;
        within(after, SHORT.idle - ms(50), SHORT.idle + ms(700));
        assert_eq!(task.await.unwrap().0, Closed::IdleTimeout);
    }

    #[tokio::test]
    async fn a_slow_head_on_a_kept_alive_connection_gets_the_header_read_timeout() {
        let (mut client, task, _evict) = open(4096);
        assert!(ask(&mut client, "/healthz").await.starts_with("HTTP/1.1 200"));
        tokio::time::sleep(SHORT.header_read * 2).await;
        client.write_all(b"GET /heal").await.unwrap();
        let after = closed_after(&mut client).await;
        within(after, SHORT.header_read - ms(50), SHORT.header_read + ms(700));
        assert_eq!(task.await.unwrap().0, Closed::HeaderTimeout);
    }

    #[tokio::test]
    async fn a_response_the_client_does_not_read_is_cut_at_the_request_deadline() {
        // 64-byte pipe: /metrics (kilobytes) cannot be written unless read.
        let (mut client, task, _evict) = open(64);
        client.write_all(b"GET /metrics HTTP/1.1\r\nhost: t\r\n\r\n").await.unwrap();
        let (closed, after) = task.await.unwrap();
        assert_eq!(closed, Closed::RequestTimeout);
        within(after, SHORT.request, SHORT.request + ms(700));
    }

    #[tokio::test]
    async fn an_evicted_connection_closes_at_once() {
        let (mut client, task, evict) = open(4096);
        assert!(ask(&mut client, "/healthz").await.starts_with("HTTP/1.1 200"));
        drop(evict);
        let after = closed_after(&mut client).await;
        assert!(after < ms(200), "{after:?}");
        assert_eq!(task.await.unwrap().0, Closed::Evicted);
    }

    #[tokio::test]
    async fn at_the_connection_limit_the_oldest_connections_make_room() {
        let limits = Limits { header_read: Duration::from_secs(30), idle: Duration::from_secs(30), ..SHORT };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = shared();
        let server = tokio::spawn(serve(listener, shared.clone(), limits));
        let mut idle = Vec::new();
        for _ in 0..10 {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
            tokio::time::sleep(ms(20)).await;
        }
        let mut probe = tokio::net::TcpStream::connect(addr).await.unwrap();
        let t = Instant::now();
        assert!(ask(&mut probe, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        // 11 connections, 4 slots: the 7 oldest were closed, the 3 newest idle ones are open.
        for (i, c) in idle.iter_mut().enumerate() {
            let mut buf = [0u8; 8];
            let r = tokio::time::timeout(ms(300), c.read(&mut buf)).await;
            if i < 7 {
                assert!(matches!(r, Ok(Ok(0) | Err(_))), "connection {i} should be closed: {r:?}");
            } else {
                assert!(r.is_err(), "connection {i} should still be open: {r:?}");
            }
        }
        let c = shared.counters();
        assert_eq!(c.http_closed.get("evicted"), Some(&7));
        assert_eq!(c.http_open, 4);
        drop(c);
        server.abort();
    }
}
