//! [`HttpVerifier`]: proves a candidate by calling an HTTP endpoint with it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use rekey_core::{ExposeSecret, Verifier, VerifyContext, VerifyError};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};

use crate::IntegrationError;

/// Configuration of an [`HttpVerifier`].
///
/// ```toml
/// name = "billing-api"
/// url = "https://billing.internal/v1/whoami"
/// method = "GET"                  # default
/// expect_status = 200             # default; or a list: [200, 204]
/// timeout = "10s"                 # default
/// headers = { Accept = "application/json" }   # optional, never secret
/// placement = { type = "header", name = "Authorization", prefix = "Bearer " }
/// # or: placement = { type = "basic_auth", username = "app" }
/// # or: placement = { type = "basic_auth", username_field = "username" }
/// ```
///
/// The candidate goes only where `placement` says — never into the URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpVerifierConfig {
    /// The name policies list in `verification_tests`.
    pub name: String,
    /// The endpoint (`http` or `https`; no user name or password in it).
    pub url: String,
    /// The HTTP method.
    #[serde(default = "default_method")]
    pub method: String,
    /// Where the candidate goes.
    pub placement: Placement,
    /// The status(es) that mean "the candidate works".
    #[serde(default)]
    pub expect_status: ExpectStatus,
    /// How long the whole request may take.
    #[serde(default = "default_timeout", with = "rekey_core::policy::serde_duration")]
    pub timeout: Duration,
    /// Extra request headers (not secret: they are part of the config).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Accept an `http://` URL on a host that is not this machine (not
    /// recommended: the candidate would cross the network unencrypted).
    /// `http://` to `localhost` or a loopback address is always accepted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_http: bool,
}

impl HttpVerifierConfig {
    /// A warning when the candidate would cross the network unencrypted:
    /// plain `http://` to a host that is not this machine, which only
    /// [`allow_insecure_http`](Self::allow_insecure_http) lets through.
    ///
    /// ```
    /// use rekey_integrations::HttpVerifierConfig;
    /// let mut c: HttpVerifierConfig = toml::from_str(r#"
    ///     name = "api"
    ///     url = "http://api.internal/v1/me"
    ///     allow_insecure_http = true
    ///     placement = { type = "header", name = "Authorization", prefix = "Bearer " }
    /// "#).unwrap();
    /// assert!(c.transport_warning().unwrap().contains("unencrypted"));
    /// c.url = "http://127.0.0.1:8080/v1/me".into();
    /// assert!(c.transport_warning().is_none());
    /// ```
    pub fn transport_warning(&self) -> Option<String> {
        let url = Url::parse(&self.url).ok()?;
        let host = url.host_str()?;
        (rekey_core::http_transport(url.scheme(), host, true) == Ok(rekey_core::HttpTransport::InsecurePlain))
            .then(|| format!("verifier `{}` sends the candidate to {host} over plain http:// (unencrypted)", self.name))
    }
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Where an [`HttpVerifier`] puts the candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Placement {
    /// In a request header: `name: <prefix><candidate>`.
    Header {
        /// The header name, e.g. `Authorization` or `X-Api-Key`.
        name: String,
        /// Text before the candidate, e.g. `"Bearer "`.
        #[serde(default)]
        prefix: String,
    },
    /// As the password of HTTP basic authentication.
    BasicAuth {
        /// A fixed user name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        /// Or: the field of the candidate holding the user name (for
        /// multi-field secrets, e.g. `"username"`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username_field: Option<String>,
    },
}

/// The HTTP status(es) an [`HttpVerifier`] accepts: one (`200`) or a list
/// (`[200, 204]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExpectStatus {
    /// Exactly this status.
    One(u16),
    /// Any of these.
    Any(Vec<u16>),
}

impl Default for ExpectStatus {
    fn default() -> Self {
        Self::One(200)
    }
}

impl ExpectStatus {
    fn as_slice(&self) -> &[u16] {
        match self {
            Self::One(s) => std::slice::from_ref(s),
            Self::Any(v) => v,
        }
    }
}

#[derive(Clone)]
enum Place {
    Header { name: HeaderName, prefix: String },
    Basic { username: Username },
}

#[derive(Clone)]
enum Username {
    Literal(String),
    Field(String),
}

/// A [`Verifier`] that sends one HTTP request carrying the candidate (in a
/// header or as the basic-auth password) and passes when the answer has an
/// expected status.
///
/// * A status not expected → [`VerifyError::Failed`] (`"expected 200, got
///   401"`); 502, 503 and 504 → [`VerifyError::Unavailable`] (the service
///   could not tell).
/// * Connection errors → [`VerifyError::Unavailable`]; no answer within
///   `timeout` → [`VerifyError::TimedOut`].
/// * Redirects are not followed (a `3xx` is a status like any other), so the
///   candidate is sent to the configured host only.
/// * The header carrying the candidate is marked sensitive; the candidate
///   never appears in an error, a log line or `Debug`.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use rekey_integrations::{HttpVerifier, HttpVerifierConfig};
/// let config: HttpVerifierConfig = toml::from_str(r#"
///     name = "api"
///     url = "https://api.example.com/v1/me"
///     placement = { type = "header", name = "Authorization", prefix = "Bearer " }
/// "#)?;
/// let verifier = HttpVerifier::new(&config)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpVerifier {
    name: String,
    url: Url,
    method: Method,
    place: Place,
    expect: Vec<u16>,
    timeout: Duration,
    headers: HeaderMap,
    client: reqwest::Client,
}

impl fmt::Debug for HttpVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match &self.place {
            Place::Header { name, .. } => format!("header {name}"),
            Place::Basic { .. } => "basic_auth".to_owned(),
        };
        f.debug_struct("HttpVerifier")
            .field("name", &self.name)
            .field("method", &self.method.as_str())
            .field("url", &redacted_url(&self.url))
            .field("placement", &place)
            .field("expect_status", &self.expect)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The URL without query or fragment (which could carry tokens of their own).
fn redacted_url(u: &Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

impl HttpVerifier {
    /// Validates `config` and builds the verifier (and its HTTP client).
    ///
    /// # Errors
    /// [`IntegrationError::InvalidConfig`] naming the field at fault: an empty
    /// `name`, a `url` that is not `http(s)` or carries a user name or
    /// password, a plain `http://` URL to a host that is not this machine
    /// (unless `allow_insecure_http`), an unknown `method`, an invalid header name or prefix, a
    /// status outside 100–599, an empty status list, a zero `timeout`, a
    /// basic-auth placement with neither or both of `username` and
    /// `username_field`.
    pub fn new(config: &HttpVerifierConfig) -> Result<Self, IntegrationError> {
        if config.name.trim().is_empty() {
            return Err(IntegrationError::invalid("name", "must not be empty"));
        }
        let url = Url::parse(&config.url).map_err(|e| IntegrationError::invalid("url", e.to_string()))?;
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return Err(IntegrationError::invalid("url", "has no host"));
        };
        // The candidate: TLS unless this machine or opted out.
        rekey_core::http_transport(url.scheme(), host, config.allow_insecure_http)
            .map_err(|e| IntegrationError::invalid("url", e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(IntegrationError::invalid(
                "url",
                "must not contain a user name or password (credentials do not belong in the config)",
            ));
        }
        let method = Method::from_bytes(config.method.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| IntegrationError::invalid("method", format!("`{}` is not an HTTP method", config.method)))?;
        let place = match &config.placement {
            Placement::Header { name, prefix } => {
                let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                    IntegrationError::invalid("placement.name", format!("`{name}` is not a valid header name"))
                })?;
                if HeaderValue::from_str(prefix).is_err() {
                    return Err(IntegrationError::invalid(
                        "placement.prefix",
                        "contains characters not allowed in a header value",
                    ));
                }
                Place::Header { name, prefix: prefix.clone() }
            }
            Placement::BasicAuth { username, username_field } => {
                let username = match (username, username_field) {
                    (Some(u), None) => {
                        if u.contains(':') {
                            return Err(IntegrationError::invalid(
                                "placement.username",
                                "must not contain `:` (basic authentication cannot carry it)",
                            ));
                        }
                        Username::Literal(u.clone())
                    }
                    (None, Some(f)) if !f.trim().is_empty() => Username::Field(f.trim().to_owned()),
                    (None, Some(_)) => {
                        return Err(IntegrationError::invalid("placement.username_field", "must not be empty"));
                    }
                    (None, None) => {
                        return Err(IntegrationError::invalid(
                            "placement",
                            "basic_auth needs `username` or `username_field`",
                        ));
                    }
                    (Some(_), Some(_)) => {
                        return Err(IntegrationError::invalid(
                            "placement",
                            "basic_auth takes `username` or `username_field`, not both",
                        ));
                    }
                };
                Place::Basic { username }
            }
        };
        let expect = config.expect_status.as_slice().to_vec();
        if expect.is_empty() {
            return Err(IntegrationError::invalid("expect_status", "must list at least one status"));
        }
        if let Some(bad) = expect.iter().find(|s| !(100..=599).contains(*s)) {
            return Err(IntegrationError::invalid("expect_status", format!("{bad} is not an HTTP status (100-599)")));
        }
        let timeout = crate::duration::positive("timeout", config.timeout)?;
        let mut headers = HeaderMap::new();
        for (k, v) in &config.headers {
            let field = format!("headers.{k}");
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| IntegrationError::invalid(field.clone(), "is not a valid header name"))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| IntegrationError::invalid(field, "contains characters not allowed in a header value"))?;
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| IntegrationError::HttpClient(e.to_string()))?;
        Ok(Self { name: config.name.trim().to_owned(), url, method, place, expect, timeout, headers, client })
    }

    fn request(&self, ctx: &VerifyContext<'_>) -> Result<reqwest::RequestBuilder, VerifyError> {
        let candidate = ctx.candidate.get(ctx.field).ok_or_else(|| {
            VerifyError::Failed(match ctx.field {
                Some(f) => format!("the candidate has no field `{f}`"),
                None => "the candidate is a set of fields; configure which field to rotate".to_owned(),
            })
        })?;
        let rb = self.client.request(self.method.clone(), self.url.clone()).headers(self.headers.clone());
        Ok(match &self.place {
            Place::Header { name, prefix } => {
                let mut value =
                    HeaderValue::from_str(&format!("{prefix}{}", candidate.expose_secret())).map_err(|_| {
                        VerifyError::Failed(
                            "the candidate contains characters that cannot be sent in a header".to_owned(),
                        )
                    })?;
                value.set_sensitive(true);
                rb.header(name.clone(), value)
            }
            Place::Basic { username } => {
                let user = match username {
                    Username::Literal(u) => u.clone(),
                    Username::Field(f) => {
                        ctx.candidate.field(f).map(|u| u.expose_secret().to_owned()).ok_or_else(|| {
                            VerifyError::Failed(format!("the candidate has no field `{f}` (username_field)"))
                        })?
                    }
                };
                rb.basic_auth(user, Some(candidate.expose_secret()))
            }
        })
    }
}

#[async_trait]
impl Verifier for HttpVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn verify(&self, ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        let request = self.request(&ctx)?;
        let host = match (self.url.host_str(), self.url.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => "?".to_owned(),
        };
        let response = match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => return Err(VerifyError::TimedOut(self.timeout)),
            Ok(Err(e)) if e.is_timeout() => return Err(VerifyError::TimedOut(self.timeout)),
            Ok(Err(e)) => {
                return Err(VerifyError::Unavailable(format!(
                    "{} {host}: {}",
                    self.method,
                    crate::error_chain(&e.without_url())
                )));
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        drop(response);
        if self.expect.contains(&status) {
            tracing::debug!(verifier = %self.name, path = %ctx.path, status, "http verification passed");
            return Ok(());
        }
        let expected = self.expect.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ");
        let msg = format!("{} {host}: expected {expected}, got {status}", self.method);
        if matches!(status, 502..=504) { Err(VerifyError::Unavailable(msg)) } else { Err(VerifyError::Failed(msg)) }
    }
}
