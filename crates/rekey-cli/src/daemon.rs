//! `rekey run`: the daemon.
//!
//! Schedules every configured secret (its next due time derived from the
//! store's record of the last rotation, so several daemons agree without a
//! schedule database), sleeps until the next due time, runs what is due
//! through the engine, records results beside each secret, and serves
//! `/healthz` and Prometheus `/metrics`. On SIGTERM/SIGINT it starts no new
//! rotation, gives the rotations in flight `[daemon] shutdown_timeout` to
//! finish, then exits; a rotation cut off there leaves its journal in the store and
//! the next run's crash recovery cleans it up.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use rekey::{RotationManager, RotationOutcome, RotationResult};
use serde_json::json;
use tokio::sync::watch;

use crate::app;
use crate::config::{Config, SecretConfig};
use crate::error::{CliError, EXIT_OK};
use crate::output::Out;
use crate::state;

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
        *c.by_outcome.entry(state::outcome_name(r.outcome)).or_default() += 1;
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
            let name = state::outcome_name(o);
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
        let _ = writeln!(s, "rekey_quarantined_secrets {}", c.quarantined.max(stats.quarantined));
        let _ = writeln!(s, "# HELP rekey_scheduled_secrets Secrets this daemon schedules.");
        let _ = writeln!(s, "# TYPE rekey_scheduled_secrets gauge");
        let _ = writeln!(s, "rekey_scheduled_secrets {}", stats.active_schedules);
        let _ = writeln!(
            s,
            "# HELP rekey_unscheduled_secrets Configured secrets not scheduled (missing, unreachable or quarantined)."
        );
        let _ = writeln!(s, "# TYPE rekey_unscheduled_secrets gauge");
        let _ = writeln!(s, "rekey_unscheduled_secrets {}", c.unscheduled);
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
        s
    }
}

fn respond(shared: &Shared, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => {
            (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", shared.metrics())
        }
        (&hyper::Method::GET, "/healthz") => {
            let stopping = *shared.stopping.borrow();
            let stats = shared.manager.statistics();
            let body = json!({
                "status": if stopping { "stopping" } else { "ok" },
                "scheduled": stats.active_schedules,
                "in_flight": stats.active_rotations,
                "next_due": shared.manager.next_due(),
            })
            .to_string();
            (if stopping { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }, "application/json", body)
        }
        (_, "/metrics" | "/healthz") => (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "method not allowed\n".into()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found; try /healthz or /metrics\n".into()),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Serves until the process exits (answering 503 on /healthz once stopping).
async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a metrics connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let r = respond(&shared, &req);
                async move { Ok::<_, Infallible>(r) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
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

/// Schedules the secrets that are not yet; returns those still unscheduled
/// and how many of them are quarantined.
async fn sync(app: &app::App, pending: Vec<SecretConfig>) -> (Vec<SecretConfig>, usize) {
    let mut left = Vec::new();
    let mut quarantined = 0;
    for s in pending {
        match app.store.read_metadata(&s.path).await {
            Ok(m) => {
                if state::read(&m).quarantined.is_some() {
                    quarantined += 1;
                    left.push(s);
                    continue;
                }
            }
            Err(e) => {
                tracing::warn!(path = %s.path, error = %e, "cannot schedule the secret yet");
                left.push(s);
                continue;
            }
        }
        match app.manager.schedule_rotation(&s.path, s.policy.clone()).await {
            Ok(info) => tracing::debug!(path = %s.path, next = ?info.next_rotation, "scheduled"),
            Err(e) => {
                tracing::warn!(path = %s.path, error = %e, "cannot schedule the secret yet");
                left.push(s);
            }
        }
    }
    (left, quarantined)
}

/// `rekey run`.
pub async fn run(config: Config, out: Out) -> Result<u8, CliError> {
    let listen = config.daemon.listen;
    let shutdown_timeout = config.daemon.shutdown_timeout;
    let resync = config.daemon.resync_interval;
    let app = app::build(config, None).await?;
    let (tx, rx) = watch::channel(false);
    signals(tx)?;
    let shared = Arc::new(Shared { manager: app.manager.clone(), counters: Mutex::default(), stopping: rx.clone() });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::Failed(format!("cannot listen on {listen}: {e}")))?;
    let bound = listener.local_addr().unwrap_or(listen);
    tokio::spawn(serve(listener, shared.clone()));
    tracing::info!(listen = %bound, secrets = app.config.secrets.len(), store = %app.config.store_kind, "rekey daemon started");

    let quarantine_after: BTreeMap<String, u32> =
        app.config.secrets.iter().map(|s| (s.path.to_string(), s.policy.quarantine_after())).collect();
    let (mut unscheduled, q) = sync(&app, app.config.secrets.clone()).await;
    {
        let mut c = shared.counters();
        c.quarantined = q;
        c.unscheduled = unscheduled.len();
    }
    let mut last_sync = tokio::time::Instant::now();
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
                let threshold = quarantine_after.get(r.path.as_str()).copied().unwrap_or(3);
                match state::record(&*app.store, r, threshold).await {
                    Ok(state::Recorded::Quarantined) => {
                        tracing::warn!(path = %r.path, "quarantined after repeated failures; `rekey resume` lifts it");
                        app.manager.unschedule_rotation(&r.path);
                        if let Some(s) = app.config.secrets.iter().find(|s| s.path == r.path) {
                            unscheduled.push(s.clone());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(path = %r.path, error = %e, "could not record the result beside the secret")
                    }
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
            let (left, q) = sync(&app, std::mem::take(&mut unscheduled)).await;
            unscheduled = left;
            let mut c = shared.counters();
            c.quarantined = q;
            c.unscheduled = unscheduled.len();
            drop(c);
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
