//! [`WebhookAuditSink`]: POSTs every audit event, signed, to an HTTP endpoint.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use rekey_core::{AuditEvent, AuditSink, RetryPolicy};
use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::IntegrationError;
use crate::sink::{self, Counters, Queue, SinkHandle, SinkStats};

/// The default variable holding the HMAC key.
pub const DEFAULT_SECRET_ENV: &str = "REKEY_WEBHOOK_KEY";

/// Configuration of a [`WebhookAuditSink`].
///
/// ```toml
/// url = "https://hooks.internal/rekey"
/// secret_env = "REKEY_WEBHOOK_KEY"   # default; or: key_file = "/etc/rekey/webhook.key"
/// header = "X-Rekey-Signature"       # default
/// timestamp_header = "X-Rekey-Timestamp"  # default
/// timeout = "5s"                     # per request
/// max_retries = 5
/// initial_backoff = "500ms"
/// max_backoff = "30s"
/// queue_capacity = 10000
/// ```
///
/// The HMAC key never sits in the config text: it is read from the
/// environment variable `secret_env` or from `key_file` (one or the other;
/// surrounding whitespace is trimmed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events are POSTed (`http` or `https`).
    pub url: String,
    /// The environment variable holding the HMAC key (default
    /// `REKEY_WEBHOOK_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// Or: a file holding the HMAC key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The header carrying `sha256=<hex HMAC-SHA256(key, body)>`.
    #[serde(default = "default_header")]
    pub header: String,
    /// The header carrying the sending time (Unix seconds).
    #[serde(default = "default_timestamp_header")]
    pub timestamp_header: String,
    /// Limit for one request.
    #[serde(default = "default_timeout", with = "rekey_core::policy::serde_duration")]
    pub timeout: Duration,
    /// Retries after the first attempt, on connection errors, timeouts, 429
    /// and 5xx. Other statuses are not retried.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The backoff before the first retry; doubled each retry (the delay is
    /// half to all of it, at random). See [`WebhookConfig::retry_policy`].
    #[serde(default = "default_initial_backoff", with = "rekey_core::policy::serde_duration")]
    pub initial_backoff: Duration,
    /// The largest backoff.
    #[serde(default = "default_max_backoff", with = "rekey_core::policy::serde_duration")]
    pub max_backoff: Duration,
    /// Events that may wait; beyond, new events are dropped (and counted).
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
}

fn default_header() -> String {
    "X-Rekey-Signature".to_owned()
}
fn default_timestamp_header() -> String {
    "X-Rekey-Timestamp".to_owned()
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_max_retries() -> u32 {
    5
}
fn default_initial_backoff() -> Duration {
    Duration::from_millis(500)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_queue_capacity() -> usize {
    10_000
}

impl WebhookConfig {
    /// A configuration with every default, for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret_env: None,
            key_file: None,
            header: default_header(),
            timestamp_header: default_timestamp_header(),
            timeout: default_timeout(),
            max_retries: default_max_retries(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
            queue_capacity: default_queue_capacity(),
        }
    }

    /// How deliveries are retried, as the core [`RetryPolicy`]: up to
    /// `max_retries` retries, the backoff ceiling starting at
    /// `initial_backoff` and doubling up to `max_backoff`. Each delay is
    /// [`RetryPolicy::backoff_equal_jitter`]: half to all of the ceiling.
    ///
    /// `max_retries` is taken as configured: the cap
    /// [`MAX_RETRIES`](rekey_core::MAX_RETRIES) of a rotation policy does not
    /// apply to event delivery.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rekey_integrations::WebhookConfig;
    /// let retry = WebhookConfig::new("https://hooks.internal/rekey").retry_policy();
    /// // 500 ms, 1 s, 2 s ... capped at 30 s; the delay is half to all of it.
    /// assert_eq!(retry.backoff_equal_jitter(3, 0.0), Duration::from_secs(1));
    /// assert_eq!(retry.backoff_equal_jitter(3, 1.0), Duration::from_secs(2));
    /// ```
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
            multiplier: 2.0,
        }
    }
}

/// The signature header value for `body`: `sha256=<hex HMAC-SHA256(key, body)>`.
///
/// ```
/// let sig = rekey_integrations::sign(b"key", b"{}");
/// assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
/// ```
pub fn sign(key: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

struct Delivery {
    client: reqwest::Client,
    url: Url,
    key: SecretSlice<u8>,
    header: HeaderName,
    timestamp_header: HeaderName,
    retry: RetryPolicy,
    counters: Arc<Counters>,
}

enum Outcome {
    Delivered,
    Retry(String, Option<Duration>),
    Reject(String),
}

impl Delivery {
    /// The wait before retry number `retry` (1-based): the policy's backoff
    /// with equal jitter (`jitter_unit` in `[0, 1)`), or the server's
    /// `Retry-After` if that is longer, never beyond `max_backoff`.
    fn delay(&self, retry: u32, jitter_unit: f64, retry_after: Option<Duration>) -> Duration {
        let delay = self.retry.backoff_equal_jitter(retry, jitter_unit);
        match retry_after {
            Some(ra) => delay.max(ra.min(self.retry.max_backoff)),
            None => delay,
        }
    }

    async fn attempt(&self, body: &[u8], delivery_id: &str) -> Outcome {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut sig = match HeaderValue::from_str(&sign(self.key.expose_secret(), body)) {
            Ok(v) => v,
            Err(_) => return Outcome::Reject("cannot build the signature header".to_owned()),
        };
        sig.set_sensitive(true);
        let request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(self.header.clone(), sig)
            .header(self.timestamp_header.clone(), now.to_string())
            .header("X-Rekey-Delivery", delivery_id)
            .body(body.to_vec());
        match request.send().await {
            Ok(r) if r.status().is_success() => Outcome::Delivered,
            Ok(r) => {
                let status = r.status();
                let retry_after = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                if status.as_u16() == 429 || status.is_server_error() {
                    Outcome::Retry(format!("status {}", status.as_u16()), retry_after)
                } else {
                    Outcome::Reject(format!("status {}", status.as_u16()))
                }
            }
            Err(e) => Outcome::Retry(crate::error_chain(&e.without_url()), None),
        }
    }

    async fn deliver(&self, body: Vec<u8>) {
        let delivery_id = uuid::Uuid::new_v4().to_string();
        let mut attempt = 0u32;
        loop {
            match self.attempt(&body, &delivery_id).await {
                Outcome::Delivered => {
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Outcome::Retry(why, retry_after) if attempt < self.retry.max_retries => {
                    attempt += 1;
                    let delay = self.delay(attempt, rand::random::<f64>(), retry_after);
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(target: "rekey::audit", sink = "webhook", attempt, ?delay, "webhook delivery failed ({why}); retrying");
                    tokio::time::sleep(delay).await;
                }
                Outcome::Retry(why, _) | Outcome::Reject(why) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(target: "rekey::audit", sink = "webhook", host = self.url.host_str().unwrap_or("?"), attempts = attempt + 1, "audit event not delivered: {why}");
                    return;
                }
            }
        }
    }
}

/// An [`AuditSink`] that POSTs each event as JSON to a webhook, signed with
/// HMAC-SHA256.
///
/// Each request carries:
/// * the body: the event's JSON (an [`AuditEvent`] holds no secret);
/// * `<header>: sha256=<hex HMAC-SHA256(key, body)>` (see [`sign`]);
/// * `<timestamp_header>`: the sending time in Unix seconds (the body has the
///   event's own time in `at`);
/// * `X-Rekey-Delivery`: an id that stays the same across retries of one
///   event, for the receiver to drop duplicates.
///
/// [`record`](AuditSink::record) only serialises the event and puts it on a
/// bounded queue: it never waits for the network. When the queue is full the
/// event is dropped and counted ([`SinkStats::dropped`]). A background task
/// sends the events in order, one at a time, retrying connection errors,
/// timeouts, 429 and 5xx with exponential backoff and jitter
/// ([`WebhookConfig::retry_policy`], honouring a `Retry-After` in seconds,
/// up to `max_backoff`), and gives up
/// after `max_retries` ([`SinkStats::failed`]).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use rekey_integrations::{WebhookAuditSink, WebhookConfig};
/// // The key comes from REKEY_WEBHOOK_KEY.
/// let (sink, handle) = WebhookAuditSink::start(&WebhookConfig::new("https://hooks.internal/rekey"))?;
/// // ... RotationManager::builder(store).audit_sink(std::sync::Arc::new(sink)) ...
/// let stats = handle.shutdown(Duration::from_secs(10)).await;
/// println!("{} delivered, {} undelivered", stats.delivered, stats.pending);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WebhookAuditSink {
    queue: Queue,
    origin: String,
}

impl fmt::Debug for WebhookAuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookAuditSink")
            .field("url", &self.origin)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn header_name(field: &str, name: &str) -> Result<HeaderName, IntegrationError> {
    HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| IntegrationError::invalid(field, format!("`{name}` is not a valid header name")))
}

fn load_key(config: &WebhookConfig) -> Result<SecretSlice<u8>, IntegrationError> {
    let key = match (&config.secret_env, &config.key_file) {
        (Some(_), Some(_)) => {
            return Err(IntegrationError::invalid("key_file", "give `secret_env` or `key_file`, not both"));
        }
        (_, Some(path)) => {
            let bytes = std::fs::read(path).map_err(|source| IntegrationError::Io {
                field: "key_file".to_owned(),
                path: path.clone(),
                source,
            })?;
            let text = String::from_utf8(bytes)
                .map_err(|_| IntegrationError::invalid("key_file", "the key file is not valid UTF-8"))?;
            let key = text.trim().as_bytes().to_vec();
            if key.is_empty() {
                return Err(IntegrationError::invalid("key_file", "the key file is empty"));
            }
            key
        }
        (env, None) => {
            let var = env.clone().unwrap_or_else(|| DEFAULT_SECRET_ENV.to_owned());
            match std::env::var(&var) {
                Ok(v) if !v.trim().is_empty() => v.trim().as_bytes().to_vec(),
                _ => return Err(IntegrationError::MissingEnv { field: "secret_env".to_owned(), var }),
            }
        }
    };
    Ok(SecretSlice::from(key))
}

impl WebhookAuditSink {
    /// Validates `config`, reads the HMAC key, and starts the delivery task on
    /// the current tokio runtime.
    ///
    /// # Errors
    /// [`IntegrationError::InvalidConfig`] naming the field (bad `url`,
    /// header names, zero `timeout`/`initial_backoff`, `max_backoff` below
    /// `initial_backoff`, zero `queue_capacity`, both `secret_env` and
    /// `key_file`); [`IntegrationError::MissingEnv`] /
    /// [`IntegrationError::Io`] when the key cannot be read;
    /// [`IntegrationError::NoRuntime`] outside a tokio runtime.
    pub fn start(config: &WebhookConfig) -> Result<(Self, SinkHandle), IntegrationError> {
        let url = Url::parse(&config.url).map_err(|e| IntegrationError::invalid("url", e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(IntegrationError::invalid("url", "must be an http or https URL with a host"));
        }
        let header = header_name("header", &config.header)?;
        let timestamp_header = header_name("timestamp_header", &config.timestamp_header)?;
        let timeout = crate::duration::positive("timeout", config.timeout)?;
        let initial_backoff = crate::duration::positive("initial_backoff", config.initial_backoff)?;
        if config.max_backoff < initial_backoff {
            return Err(IntegrationError::invalid("max_backoff", "must not be shorter than `initial_backoff`"));
        }
        if config.queue_capacity == 0 {
            return Err(IntegrationError::invalid("queue_capacity", "must be at least 1"));
        }
        let key = load_key(config)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent(concat!("rekey/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| IntegrationError::HttpClient(e.to_string()))?;
        let mut origin = url.clone();
        origin.set_query(None);
        origin.set_fragment(None);
        let _ = origin.set_password(None);
        let counters = Arc::new(Counters::default());
        let delivery = Arc::new(Delivery {
            client,
            url,
            key,
            header,
            timestamp_header,
            retry: config.retry_policy(),
            counters: Arc::clone(&counters),
        });
        let (queue, handle) = sink::spawn("webhook", config.queue_capacity, counters, move |batch: Vec<Vec<u8>>| {
            let d = Arc::clone(&delivery);
            async move {
                for body in batch {
                    d.deliver(body).await;
                }
            }
        })?;
        Ok((Self { queue, origin: origin.to_string() }, handle))
    }

    /// The counters so far (shared with the [`SinkHandle`]).
    pub fn stats(&self) -> SinkStats {
        self.queue.counters.snapshot()
    }
}

impl AuditSink for WebhookAuditSink {
    fn record(&self, event: &AuditEvent) {
        self.queue.push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(config: &WebhookConfig) -> Delivery {
        Delivery {
            client: reqwest::Client::new(),
            url: Url::parse(&config.url).unwrap(),
            key: SecretSlice::from(b"k".to_vec()),
            header: HeaderName::from_static("x-sig"),
            timestamp_header: HeaderName::from_static("x-ts"),
            retry: config.retry_policy(),
            counters: Arc::new(Counters::default()),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let config = WebhookConfig {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            ..WebhookConfig::new("http://127.0.0.1:9/hook")
        };
        let d = delivery(&config);
        // Retry n waits half to all of 500 ms · 2^(n-1), at most 30 s.
        assert_eq!(d.delay(1, 0.0, None), Duration::from_millis(250));
        assert_eq!(d.delay(1, 0.999_999, None).as_millis(), 499);
        assert_eq!(d.delay(2, 0.0, None), Duration::from_millis(500));
        assert_eq!(d.delay(3, 0.0, None), Duration::from_secs(1));
        assert_eq!(d.delay(4, 0.5, None), Duration::from_millis(3_000));
        assert_eq!(d.delay(11, 0.0, None), Duration::from_secs(15));
        assert_eq!(d.delay(11, 1.0, None), Duration::from_secs(30));
        assert_eq!(d.delay(u32::MAX, 1.0, None), Duration::from_secs(30));
        // Jitter outside [0, 1] is clamped; NaN counts as the lower half.
        assert_eq!(d.delay(3, 7.0, None), Duration::from_secs(2));
        assert_eq!(d.delay(3, f64::NAN, None), Duration::from_secs(1));
        // A longer Retry-After wins, up to max_backoff; a shorter one does not.
        assert_eq!(d.delay(1, 0.0, Some(Duration::from_secs(4))), Duration::from_secs(4));
        assert_eq!(d.delay(1, 0.0, Some(Duration::from_secs(3600))), Duration::from_secs(30));
        assert_eq!(d.delay(3, 0.0, Some(Duration::from_millis(10))), Duration::from_secs(1));
        // Every random unit stays within half to all of the ceiling.
        for n in 1..=12 {
            let ceiling = config.retry_policy().ceiling(n);
            let d = d.delay(n, rand::random::<f64>(), None);
            assert!(d >= ceiling / 2 && d <= ceiling, "retry {n}: {d:?} outside [{:?}, {ceiling:?}]", ceiling / 2);
        }
    }

    #[test]
    fn durations_are_read_and_written_by_the_core_adapter() {
        let config: WebhookConfig = serde_json::from_str(
            r#"{"url": "https://hooks.internal/x", "timeout": "1m 30s", "initial_backoff": "500ms", "max_backoff": "1 day"}"#,
        )
        .unwrap();
        assert_eq!(config.timeout, Duration::from_secs(90));
        assert_eq!(config.max_backoff, Duration::from_secs(86_400));
        // The compact form of rekey_core::policy::serde_duration (not humantime's `1m 30s`, `1day`).
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["timeout"], "90s");
        assert_eq!(json["initial_backoff"], "500ms");
        assert_eq!(json["max_backoff"], "1d");
        assert_eq!(serde_json::from_value::<WebhookConfig>(json).unwrap(), config);

        let e = serde_json::from_str::<WebhookConfig>(
            r#"{"url": "https://hooks.internal/x", "max_backoff": "30 parsecs"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(r#"invalid duration "30 parsecs""#), "{e}");
        assert!(e.contains(r#""500ms", "30s", "5m", "12h", "90d""#), "{e}");
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
