//! WebhookAuditSink against a local HTTP server that checks signatures.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Reply, capture_logs, closed_port, serve};
use hmac::{Hmac, KeyInit, Mac};
use rekey_core::{
    AuditEvent, AuditEventKind, AuditSink, ExposeSecret, RotationManager, RotationPolicy, RotationStrategy, SecretData,
    SecretPath, SecretStoreExt, SystemClock,
};
use rekey_integrations::{AuditSinkConfig, IntegrationError, WebhookAuditSink, WebhookConfig};
use sha2::Sha256;

const KEY: &str = "whk-5c0ffee-2b9d41e7a8";

fn expected_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A config for `url` with the key in a file (the environment cannot be
/// changed safely from a multi-threaded test).
fn config(url: String, dir: &tempfile::TempDir) -> WebhookConfig {
    let key_file = dir.path().join("webhook.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    WebhookConfig {
        key_file: Some(key_file),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..WebhookConfig::new(url)
    }
}

fn event(kind: AuditEventKind) -> AuditEvent {
    AuditEvent::new(chrono::Utc::now(), kind, "app/db".parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_events_arrive_signed_and_secret_free() {
    let server = serve(|r| {
        let ok = r.header("x-rekey-signature") == Some(&expected_signature(&r.body));
        Reply::status(if ok { 200 } else { 401 })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (sink, handle) = WebhookAuditSink::start(&config(server.url("/hook"), &dir)).unwrap();

    let store = Arc::new(rekey_memory::MemoryStore::new());
    let clock = Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d))));
    let manager =
        RotationManager::builder(store.clone()).clock(clock).audit_sink(Arc::new(sink.clone())).build().unwrap();
    let path: SecretPath = "app/db".parse().unwrap();
    store.create(&path, SecretData::text("initial-secret-value-77")).await.unwrap();
    let policy = RotationPolicy::builder("p").manual().strategy(RotationStrategy::Staged).build().unwrap();
    let result = manager.rotate_secret(&path, &policy, None).await;
    assert!(result.success(), "{:?}", result.error);
    let new_value = store.current(&path).await.unwrap().data.as_text().unwrap().expose_secret().to_owned();

    let stats = handle.shutdown(Duration::from_secs(10)).await;
    let requests = server.requests();
    assert!(requests.len() >= 2, "{requests:?}");
    assert_eq!(stats.delivered, requests.len() as u64, "{stats:?}");
    assert_eq!((stats.failed, stats.dropped, stats.pending), (0, 0, 0));
    let mut kinds = Vec::new();
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.target, "/hook");
        assert_eq!(r.header("x-rekey-signature"), Some(expected_signature(&r.body).as_str()));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let ts: u64 = r.header("x-rekey-timestamp").unwrap().parse().unwrap();
        assert!(ts > 1_700_000_000);
        let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(json["path"], "app/db");
        kinds.push(json["kind"].as_str().unwrap().to_owned());
        let raw = format!("{}{}", r.raw_head, String::from_utf8_lossy(&r.body));
        for secret in [new_value.as_str(), "initial-secret-value-77", KEY] {
            assert!(!raw.contains(secret), "a secret went out in {raw}");
        }
    }
    assert_eq!(kinds.first().map(String::as_str), Some("started"));
    assert_eq!(kinds.last().map(String::as_str), Some("succeeded"));
    // After shutdown, events are refused (counted), never blocking.
    sink.record(&event(AuditEventKind::Started));
    assert_eq!(sink.stats().dropped, 1);
}

#[tokio::test]
async fn retries_after_two_server_errors_then_delivers() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let server = serve(move |_| Reply::status(if c.fetch_add(1, Ordering::SeqCst) < 2 { 500 } else { 200 })).await;
    let dir = tempfile::tempdir().unwrap();
    let (sink, handle) = WebhookAuditSink::start(&config(server.url("/"), &dir)).unwrap();
    sink.record(&event(AuditEventKind::Succeeded));
    let stats = handle.shutdown(Duration::from_secs(10)).await;
    assert_eq!((stats.delivered, stats.retries, stats.failed), (1, 2, 0), "{stats:?}");
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    let ids: Vec<_> = requests.iter().map(|r| r.header("x-rekey-delivery").unwrap().to_owned()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one delivery id across retries: {ids:?}");
    assert!(requests.iter().all(|r| r.body == requests[0].body));
}

#[tokio::test]
async fn gives_up_after_max_retries_and_does_not_retry_client_errors() {
    let server = serve(|r| Reply::status(if r.target == "/busy" { 503 } else { 400 })).await;
    let dir = tempfile::tempdir().unwrap();
    let busy = WebhookConfig { max_retries: 2, ..config(server.url("/busy"), &dir) };
    let (sink, handle) = WebhookAuditSink::start(&busy).unwrap();
    sink.record(&event(AuditEventKind::Failed));
    let stats = handle.shutdown(Duration::from_secs(10)).await;
    assert_eq!((stats.delivered, stats.retries, stats.failed), (0, 2, 1), "{stats:?}");
    assert_eq!(server.requests().len(), 3);

    let (sink, handle) = WebhookAuditSink::start(&config(server.url("/bad"), &dir)).unwrap();
    sink.record(&event(AuditEventKind::Failed));
    let stats = handle.shutdown(Duration::from_secs(10)).await;
    assert_eq!((stats.delivered, stats.retries, stats.failed), (0, 0, 1), "{stats:?}");
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_unreachable_endpoint_never_blocks_record() {
    let slow = serve(|_| Reply { status: 200, delay: Duration::from_secs(30) }).await;
    let dir = tempfile::tempdir().unwrap();
    for url in [slow.url("/"), format!("http://{}/", closed_port().await)] {
        let config = WebhookConfig {
            queue_capacity: 100,
            timeout: Duration::from_secs(20),
            max_retries: 1000,
            ..config(url, &dir)
        };
        let (sink, handle) = WebhookAuditSink::start(&config).unwrap();
        let e = event(AuditEventKind::Succeeded);
        let mut times = Vec::with_capacity(5_000);
        let started = Instant::now();
        for _ in 0..5_000 {
            let t = Instant::now();
            sink.record(&e);
            times.push(t.elapsed());
        }
        let total = started.elapsed();
        times.sort();
        let (p99, worst) = (times[times.len() * 99 / 100], times[times.len() - 1]);
        // Blocking would cost the server's 30 s delay (or the 20 s timeout) per
        // call; the bounds are far below that and leave room for a loaded CI
        // machine preempting the thread.
        assert!(p99 < Duration::from_millis(50), "99th percentile of record() took {p99:?}");
        assert!(worst < Duration::from_secs(2), "slowest record() took {worst:?}");
        assert!(total < Duration::from_secs(5), "5000 record() took {total:?}");
        let stats = sink.stats();
        // The queue holds 100; the worker may take a few more out while the
        // loop runs, but nearly all of the 5000 must have been dropped.
        assert_eq!(stats.accepted + stats.dropped, 5_000, "{stats:?}");
        assert!(stats.dropped >= 4_000, "{stats:?}");
        let t = Instant::now();
        let stats = handle.shutdown(Duration::from_millis(200)).await;
        assert!(t.elapsed() < Duration::from_secs(2), "shutdown respects its deadline: {:?}", t.elapsed());
        assert_eq!(stats.delivered, 0);
        assert!(stats.pending >= 99, "{stats:?}");
    }
}

#[tokio::test]
async fn key_errors_and_no_key_in_debug_or_logs() {
    let logs = capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let server = serve(|_| Reply::status(500)).await;
    let config = WebhookConfig { max_retries: 1, ..config(server.url("/"), &dir) };
    let (sink, handle) = WebhookAuditSink::start(&config).unwrap();
    sink.record(&event(AuditEventKind::Started));
    let stats = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.failed, 1);
    let shown = format!("{sink:?} {config:?} {}", logs.text());
    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains("audit event not delivered"), "{shown}");

    let missing = WebhookConfig {
        secret_env: Some("REKEY_TEST_WEBHOOK_KEY_THAT_IS_NOT_SET".into()),
        ..WebhookConfig::new(server.url("/"))
    };
    let err = WebhookAuditSink::start(&missing).unwrap_err();
    assert!(
        matches!(&err, IntegrationError::MissingEnv { var, .. } if var == "REKEY_TEST_WEBHOOK_KEY_THAT_IS_NOT_SET")
    );
    let both = WebhookConfig { secret_env: Some("X".into()), ..config.clone() };
    assert_eq!(WebhookAuditSink::start(&both).unwrap_err().field(), Some("key_file"));
    let no_file = WebhookConfig { key_file: Some(dir.path().join("nope")), ..config.clone() };
    assert!(matches!(WebhookAuditSink::start(&no_file).unwrap_err(), IntegrationError::Io { .. }));
    for (bad, field) in [
        (WebhookConfig { url: "mailto:x@y".into(), ..config.clone() }, "url"),
        (WebhookConfig { header: "bad header".into(), ..config.clone() }, "header"),
        (WebhookConfig { queue_capacity: 0, ..config.clone() }, "queue_capacity"),
        (WebhookConfig { initial_backoff: Duration::ZERO, ..config.clone() }, "initial_backoff"),
        (WebhookConfig { max_backoff: Duration::from_millis(1), ..config.clone() }, "max_backoff"),
        (WebhookConfig { timeout: Duration::ZERO, ..config.clone() }, "timeout"),
    ] {
        assert_eq!(WebhookAuditSink::start(&bad).unwrap_err().field(), Some(field));
    }
}

#[test]
fn starting_outside_a_runtime_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = WebhookAuditSink::start(&config("http://127.0.0.1:9/".into(), &dir)).unwrap_err();
    assert!(matches!(err, IntegrationError::NoRuntime("webhook")), "{err}");
}

#[tokio::test]
async fn config_from_toml() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("k");
    std::fs::write(&key_file, KEY).unwrap();
    let text = format!(
        r#"
        type = "webhook"
        url = "http://127.0.0.1:9/hook"
        key_file = {key_file:?}
        timeout = "2s"
        max_retries = 3
        initial_backoff = "250ms"
        queue_capacity = 50
        "#
    );
    let parsed: AuditSinkConfig = toml::from_str(&text).unwrap();
    let AuditSinkConfig::Webhook(c) = &parsed else { panic!("{parsed:?}") };
    assert_eq!(c.initial_backoff, Duration::from_millis(250));
    assert_eq!(c.header, "X-Rekey-Signature");
    let (_sink, handle) = parsed.start().unwrap();
    assert!(handle.is_some());
    assert!(toml::from_str::<AuditSinkConfig>(&format!("{text}\nsecret = \"inline\"")).is_err());
    assert!(toml::from_str::<AuditSinkConfig>("type = \"webhook\"\nurl = \"http://x/\"\ntimeout = 5").is_err());
}

/// The key from `REKEY_WEBHOOK_KEY`: this test runs the one below in a child
/// process with the variable set (the environment of a running
/// multi-threaded test cannot be changed safely).
#[test]
fn key_from_the_environment() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "env_key_child", "--test-threads=1"])
        .env("REKEY_TEST_CHILD", "1")
        .env("REKEY_WEBHOOK_KEY", format!("  {KEY}\n"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("1 passed"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn env_key_child() {
    if std::env::var_os("REKEY_TEST_CHILD").is_none() {
        eprintln!("env_key_child: only runs as the child of key_from_the_environment");
        return;
    }
    let server = serve(|r| {
        Reply::status(if r.header("x-rekey-signature") == Some(&expected_signature(&r.body)) { 200 } else { 401 })
    })
    .await;
    let (sink, handle) = WebhookAuditSink::start(&WebhookConfig::new(server.url("/"))).unwrap();
    sink.record(&event(AuditEventKind::Started));
    let stats = handle.shutdown(Duration::from_secs(10)).await;
    assert_eq!(stats.delivered, 1, "{stats:?}");
}
