//! Building a Secrets Manager client from configuration.

use std::fmt;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::config::Credentials;
use rekey_core::{ExposeSecret, SecretString, StoreError};
use serde::Deserialize;

/// How many attempts the SDK makes per call by default (one retry).
///
/// Kept low on purpose: rekey's engine retries whole steps itself
/// (classified by [`StoreError::is_retryable`]), so SDK retries on top only
/// multiply the waiting (exponential backoff inside exponential backoff).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 2;

/// The SDK's first backoff between attempts by default.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// The default time limit of one attempt of one call.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default time limit to open a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where and how to reach Secrets Manager.
///
/// Everything is optional: unset fields come from the standard AWS chain
/// (`AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`, `~/.aws/config`,
/// `~/.aws/credentials`, web identity, ECS and EC2 instance credentials).
/// Credentials normally come from that chain too;
/// [`static_credentials`](Self::static_credentials) exists for emulators and
/// tests.
///
/// Deserializes from a config file (unknown keys are an error):
///
/// ```
/// let cfg: rekey_aws::AwsConfig = serde_json::from_str(r#"{
///     "region": "eu-west-1",
///     "endpoint_url": "https://vpce-0123.secretsmanager.eu-west-1.vpce.amazonaws.com",
///     "max_attempts": 1
/// }"#)?;
/// assert_eq!(cfg.region.as_deref(), Some("eu-west-1"));
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// `Debug` never shows a credential:
///
/// ```
/// let cfg = rekey_aws::AwsConfig::default()
///     .with_static_credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
/// let shown = format!("{cfg:?}");
/// assert!(!shown.contains("wJalrXUtnFEMI") && !shown.contains("AKIDEXAMPLE"));
/// ```
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// The region (e.g. `eu-west-1`); default: the standard chain.
    #[serde(default)]
    pub region: Option<String>,
    /// An endpoint to use instead of the regional one: an emulator
    /// (`http://127.0.0.1:5000`) or a VPC endpoint.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Accept an `http://` endpoint on a host that is not this machine (not
    /// recommended: secret values would cross the network unencrypted).
    /// `http://` to `localhost` or a loopback address is always accepted.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// The profile of `~/.aws/config` to use; default: `AWS_PROFILE` or
    /// `default`.
    #[serde(default)]
    pub profile: Option<String>,
    /// Attempts per call made by the SDK (at least 1; default
    /// [`DEFAULT_MAX_ATTEMPTS`]). 1 disables SDK retries and leaves them all
    /// to rekey's engine.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Time limit of one attempt, in milliseconds (default
    /// [`DEFAULT_ATTEMPT_TIMEOUT`]).
    #[serde(default)]
    pub attempt_timeout_ms: Option<u64>,
    /// Whether writes that carry a rotation id first look for a version with
    /// that id (one `ListSecretVersionIds`). Default `true`. See
    /// [`AwsSecretsStore::with_token_precheck`](crate::AwsSecretsStore::with_token_precheck).
    #[serde(default)]
    pub token_precheck: Option<bool>,
    /// Whether `list_versions` reads each version's creation time with
    /// `GetSecretValue` (default `false`; `true` for moto). See
    /// [`AwsSecretsStore::with_version_dates_from_reads`](crate::AwsSecretsStore::with_version_dates_from_reads).
    #[serde(default)]
    pub version_dates_from_reads: Option<bool>,
    /// Whether a rotation's promotion also takes `AWSPENDING` off the
    /// promoted version (one `UpdateSecretVersionStage` more). Default
    /// `false` (AWS's own rotation may leave it there too). See
    /// [`AwsSecretsStore::with_pending_cleanup`](crate::AwsSecretsStore::with_pending_cleanup).
    #[serde(default)]
    pub pending_cleanup: Option<bool>,
    /// Fixed credentials, for emulators and tests. Prefer the standard chain
    /// everywhere else.
    #[serde(default)]
    pub static_credentials: Option<StaticCredentials>,
}

/// A fixed access key. `Debug` shows neither part.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticCredentials {
    /// The access key id.
    pub access_key_id: SecretString,
    /// The secret access key.
    pub secret_access_key: SecretString,
    /// A session token, for temporary credentials.
    #[serde(default)]
    pub session_token: Option<SecretString>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &"[REDACTED]")
            .field("secret_access_key", &"[REDACTED]")
            .field("session_token", &self.session_token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsConfig")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("profile", &self.profile)
            .field("max_attempts", &self.max_attempts)
            .field("attempt_timeout_ms", &self.attempt_timeout_ms)
            .field("token_precheck", &self.token_precheck)
            .field("version_dates_from_reads", &self.version_dates_from_reads)
            .field("pending_cleanup", &self.pending_cleanup)
            .field("static_credentials", &self.static_credentials)
            .finish()
    }
}

impl AwsConfig {
    /// Sets the region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets the endpoint URL (an emulator or a VPC endpoint).
    pub fn with_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Accepts an `http://` endpoint on a host that is not this machine.
    pub fn with_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Sets the profile.
    pub fn with_profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// Sets the SDK's attempts per call.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Sets the options an emulator with moto 5.2's quirks needs: the token
    /// pre-check (on by default anyway) and version dates from reads.
    pub fn for_moto(mut self) -> Self {
        self.token_precheck = Some(true);
        self.version_dates_from_reads = Some(true);
        self
    }

    /// Sets fixed credentials (emulators, tests).
    pub fn with_static_credentials(mut self, access_key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.static_credentials = Some(StaticCredentials {
            access_key_id: SecretString::from(access_key_id.into()),
            secret_access_key: SecretString::from(secret.into()),
            session_token: None,
        });
        self
    }

    /// Checks the fields that can be checked without the network.
    pub fn validate(&self) -> Result<(), StoreError> {
        if let Some(endpoint) = &self.endpoint_url {
            let url = url::Url::parse(endpoint)
                .map_err(|e| StoreError::invalid(format!("endpoint_url {endpoint:?} is not a valid URL: {e}")))?;
            let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
                return Err(StoreError::invalid(format!("endpoint_url {endpoint:?} has no host")));
            };
            // Secret values: TLS unless this machine or opted out.
            rekey_core::http_transport(url.scheme(), host, self.allow_insecure_http)
                .map_err(|e| StoreError::invalid(format!("endpoint_url {endpoint:?}: {e}")))?;
        }
        if self.max_attempts == Some(0) {
            return Err(StoreError::invalid("max_attempts must be at least 1"));
        }
        if self.attempt_timeout_ms == Some(0) {
            return Err(StoreError::invalid("attempt_timeout_ms must be more than 0"));
        }
        if let Some(r) = &self.region
            && (r.is_empty() || !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(StoreError::invalid(format!("region {r:?} is not a region name")));
        }
        if let Some(c) = &self.static_credentials
            && (c.access_key_id.expose_secret().is_empty() || c.secret_access_key.expose_secret().is_empty())
        {
            return Err(StoreError::invalid("static_credentials need an access key id and a secret access key"));
        }
        Ok(())
    }

    /// Loads the shared AWS configuration: this config over the standard
    /// chain, with rekey's retry and timeout defaults.
    ///
    /// Fails with [`StoreError::InvalidInput`] when the fields are invalid or
    /// no region is configured anywhere.
    pub async fn sdk_config(&self) -> Result<SdkConfig, StoreError> {
        self.validate()?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile.clone());
        }
        if let Some(c) = &self.static_credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id.expose_secret(),
                c.secret_access_key.expose_secret(),
                c.session_token.as_ref().map(|t| t.expose_secret().to_owned()),
                None,
                "rekey-static",
            ));
        }
        let attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        loader = loader.retry_config(
            RetryConfig::standard().with_max_attempts(attempts).with_initial_backoff(DEFAULT_INITIAL_BACKOFF),
        );
        let attempt_timeout = self.attempt_timeout_ms.map(Duration::from_millis).unwrap_or(DEFAULT_ATTEMPT_TIMEOUT);
        loader = loader.timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(DEFAULT_CONNECT_TIMEOUT.min(attempt_timeout))
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        );
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            return Err(StoreError::invalid(
                "no AWS region configured: set `region`, AWS_REGION, or a region in the AWS profile",
            ));
        }
        Ok(sdk)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_credentials() {
        let mut cfg =
            AwsConfig::default().with_region("us-east-1").with_static_credentials("AKIDSECRETID", "s3cr3tKEY");
        if let Some(c) = cfg.static_credentials.as_mut() {
            c.session_token = Some(SecretString::from("t0kenVALUE".to_owned()));
        }
        let shown = format!("{cfg:?} {cfg:#?}");
        for secret in ["AKIDSECRETID", "s3cr3tKEY", "t0kenVALUE"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("us-east-1"));
    }

    #[test]
    fn deserializes_and_rejects_unknown_keys() {
        let cfg: AwsConfig = serde_json::from_str(
            r#"{"region":"us-east-1","profile":"ops","static_credentials":{"access_key_id":"a","secret_access_key":"b"}}"#,
        )
        .unwrap();
        assert_eq!(cfg.profile.as_deref(), Some("ops"));
        assert!(cfg.validate().is_ok());
        assert!(serde_json::from_str::<AwsConfig>(r#"{"regoin":"us-east-1"}"#).is_err());
    }

    #[test]
    fn validate_rejects_bad_fields() {
        let bad = [
            AwsConfig::default().with_endpoint_url("localhost:4566"),
            AwsConfig::default().with_max_attempts(0),
            AwsConfig::default().with_region("eu west 1"),
            AwsConfig { attempt_timeout_ms: Some(0), ..AwsConfig::default() },
            AwsConfig::default().with_static_credentials("", "x"),
        ];
        for cfg in bad {
            assert!(matches!(cfg.validate(), Err(StoreError::InvalidInput { .. })), "{cfg:?}");
        }
    }

    #[test]
    fn plain_http_only_to_this_machine_or_when_allowed() {
        for local in ["http://127.0.0.1:5000", "http://localhost:4566/", "http://[::1]:5000", "https://sm.internal"] {
            assert!(AwsConfig::default().with_endpoint_url(local).validate().is_ok(), "{local}");
        }
        for remote in ["http://moto.internal:5000", "http://10.0.0.7:5000", "http://localhost.example.com"] {
            let e = AwsConfig::default().with_endpoint_url(remote).validate().unwrap_err();
            assert!(
                matches!(&e, StoreError::InvalidInput { message } if message.contains("allow_insecure_http")),
                "{remote}: {e:?}"
            );
            let allowed = AwsConfig::default().with_endpoint_url(remote).with_insecure_http(true);
            assert!(allowed.validate().is_ok(), "{remote}");
        }
        let cfg: AwsConfig =
            serde_json::from_str(r#"{"endpoint_url":"http://moto.internal:5000","allow_insecure_http":true}"#).unwrap();
        assert!(cfg.validate().is_ok());
    }
}
