//! Connection settings: [`VaultConfig`] and [`VaultAuth`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use rekey_core::{SecretPath, StoreError};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// The KV v2 mount used when none is configured.
pub const DEFAULT_MOUNT: &str = "secret";
/// The AppRole auth mount used when none is configured.
pub const DEFAULT_APPROLE_MOUNT: &str = "approle";
/// Where staged candidates live, under the KV mount, when nothing else is
/// configured: `<mount>/data/rekey-staging/<path>`.
pub const DEFAULT_STAGING_PREFIX: &str = "rekey-staging";
/// The per-request timeout used when none is configured.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the store authenticates to Vault / OpenBao.
///
/// `Debug` never shows a token or a secret id:
///
/// ```
/// use rekey_vault::VaultAuth;
/// let auth = VaultAuth::Token("hvs.very-secret".to_owned().into());
/// assert!(!format!("{auth:?}").contains("very-secret"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum VaultAuth {
    /// A token, used as is (it is not renewed).
    Token(SecretString),
    /// The token in `VAULT_TOKEN` (or, if unset, `BAO_TOKEN`), read when the
    /// store connects. This is what a config file without an `auth` section
    /// means, so tokens need not be written into config files.
    TokenFromEnv,
    /// AppRole login (`auth/<mount>/login`) with a role id and a secret id.
    /// The store logs in when it connects, and again once when the server
    /// rejects the token (e.g. because its TTL ran out).
    AppRole {
        /// The role id (an identifier, shown by `Debug`).
        role_id: String,
        /// The secret id (never shown).
        secret_id: SecretString,
        /// The auth mount, [`DEFAULT_APPROLE_MOUNT`] by default.
        mount: String,
    },
}

impl VaultAuth {
    /// AppRole login on the default mount ([`DEFAULT_APPROLE_MOUNT`]).
    pub fn approle(role_id: impl Into<String>, secret_id: SecretString) -> Self {
        Self::AppRole { role_id: role_id.into(), secret_id, mount: DEFAULT_APPROLE_MOUNT.to_owned() }
    }

    /// A short name of the method, for logs (`token`, `token-from-env`,
    /// `approle`).
    pub fn method(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::TokenFromEnv => "token-from-env",
            Self::AppRole { .. } => "approle",
        }
    }
}

impl fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Token([REDACTED])"),
            Self::TokenFromEnv => f.write_str("TokenFromEnv"),
            Self::AppRole { role_id, mount, .. } => f
                .debug_struct("AppRole")
                .field("role_id", role_id)
                .field("secret_id", &"[REDACTED]")
                .field("mount", mount)
                .finish(),
        }
    }
}

/// Settings of a [`VaultStore`](crate::VaultStore).
///
/// Build one in code ([`VaultConfig::new`] and the `with_*` methods), from
/// the usual environment variables ([`VaultConfig::from_env`]), or from a
/// config file (it implements `Deserialize`; unknown keys are errors):
///
/// ```
/// use rekey_vault::{VaultAuth, VaultConfig};
/// let cfg: VaultConfig = toml::from_str(r#"
///     address = "https://vault.example.com:8200"
///     mount = "kv"
///     namespace = "team-a"
///     ca_cert = "/etc/ssl/vault-ca.pem"
///     request_timeout = "10s"
/// "#).unwrap();
/// // No `auth` section: the token comes from VAULT_TOKEN / BAO_TOKEN.
/// assert_eq!(cfg.mount, "kv");
/// assert!(matches!(cfg.auth, VaultAuth::TokenFromEnv));
///
/// let cfg: VaultConfig = toml::from_str(r#"
///     address = "https://vault.example.com:8200"
///     [auth]
///     method = "approle"
///     role_id = "rekey"
///     secret_id = "not-shown"
/// "#).unwrap();
/// assert!(!format!("{cfg:?}").contains("not-shown"));
/// ```
///
/// # Transport security
///
/// TLS is the default: an `https://` address is verified against the
/// system's roots plus [`ca_cert`](Self::ca_cert). A plain `http://` address
/// is accepted only for a loopback host (`127.0.0.0/8`, `::1`, `localhost`,
/// e.g. a local dev server or agent) or when
/// [`allow_insecure_http`](Self::allow_insecure_http) is set, because the
/// token and every secret would cross the network in clear. Certificate
/// verification cannot be switched off.
#[derive(Clone, Deserialize)]
#[serde(try_from = "RawConfig")]
#[non_exhaustive]
pub struct VaultConfig {
    /// The server's address, e.g. `https://vault.example.com:8200`.
    pub address: String,
    /// The KV version 2 mount, [`DEFAULT_MOUNT`] by default.
    pub mount: String,
    /// The Vault Enterprise / OpenBao namespace (`X-Vault-Namespace`).
    pub namespace: Option<String>,
    /// How to authenticate.
    pub auth: VaultAuth,
    /// A PEM file of extra CA certificates to trust (for `https://`).
    pub ca_cert: Option<PathBuf>,
    /// Accept `http://` to a host that is not loopback (not recommended).
    pub allow_insecure_http: bool,
    /// Timeout of each HTTP request, [`DEFAULT_REQUEST_TIMEOUT`] by default.
    pub request_timeout: Duration,
    /// The folder, inside the mount, that holds staged candidates,
    /// [`DEFAULT_STAGING_PREFIX`] by default. Secret paths inside it are
    /// rejected.
    pub staging_prefix: String,
}

impl VaultConfig {
    /// Settings with the defaults: mount `secret`, no namespace, TLS required
    /// (except to loopback), 30 s timeout, staging under `rekey-staging`.
    pub fn new(address: impl Into<String>, auth: VaultAuth) -> Self {
        Self {
            address: address.into(),
            mount: DEFAULT_MOUNT.to_owned(),
            namespace: None,
            auth,
            ca_cert: None,
            allow_insecure_http: false,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            staging_prefix: DEFAULT_STAGING_PREFIX.to_owned(),
        }
    }

    /// Settings from the environment: `VAULT_ADDR` (or `BAO_ADDR`, required),
    /// `VAULT_TOKEN` (or `BAO_TOKEN`, read when connecting),
    /// `VAULT_NAMESPACE` (or `BAO_NAMESPACE`) and `VAULT_CACERT` (or
    /// `BAO_CACERT`). Everything else has its default.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), rekey_core::StoreError> {
    /// let store = rekey_vault::VaultStore::connect(rekey_vault::VaultConfig::from_env()?).await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn from_env() -> Result<Self, StoreError> {
        let address = env_either("VAULT_ADDR", "BAO_ADDR")
            .ok_or_else(|| StoreError::invalid("neither VAULT_ADDR nor BAO_ADDR is set"))?;
        let mut cfg = Self::new(address, VaultAuth::TokenFromEnv);
        cfg.namespace = env_either("VAULT_NAMESPACE", "BAO_NAMESPACE");
        cfg.ca_cert = env_either("VAULT_CACERT", "BAO_CACERT").map(PathBuf::from);
        Ok(cfg)
    }

    /// Uses another KV v2 mount.
    pub fn with_mount(mut self, mount: impl Into<String>) -> Self {
        self.mount = mount.into();
        self
    }

    /// Sets the namespace.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Trusts the CA certificates in this PEM file too.
    pub fn with_ca_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_cert = Some(path.into());
        self
    }

    /// Sets the per-request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Keeps staged candidates under another folder of the mount.
    pub fn with_staging_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.staging_prefix = prefix.into();
        self
    }

    /// Allows `http://` to a host that is not loopback.
    pub fn with_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Checks everything that can be checked without the server.
    pub(crate) fn validate(&self) -> Result<Validated, StoreError> {
        let url = Url::parse(&self.address)
            .map_err(|e| StoreError::invalid(format!("the Vault address is not a valid URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(StoreError::invalid("the Vault address must not contain credentials"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(StoreError::invalid("the Vault address must not have a query or fragment"));
        }
        let Some(host) = url.host_str() else {
            return Err(StoreError::invalid("the Vault address has no host"));
        };
        // Tokens and secret values: TLS unless this machine or opted out.
        rekey_core::http_transport(url.scheme(), host, self.allow_insecure_http)
            .map_err(|e| StoreError::invalid(format!("the Vault address: {e}")))?;
        let mount = self.mount.trim_matches('/');
        SecretPath::new(mount).map_err(|e| StoreError::invalid(format!("invalid KV mount `{}`: {e}", self.mount)))?;
        let staging = SecretPath::new(&self.staging_prefix)
            .map_err(|e| StoreError::invalid(format!("invalid staging prefix `{}`: {e}", self.staging_prefix)))?;
        if let Some(ns) = &self.namespace {
            check_header_value(ns, "namespace")?;
        }
        if let VaultAuth::AppRole { role_id, secret_id, mount } = &self.auth {
            if role_id.is_empty() {
                return Err(StoreError::invalid("the AppRole role id is empty"));
            }
            if secret_id.expose_secret().is_empty() {
                return Err(StoreError::invalid("the AppRole secret id is empty"));
            }
            SecretPath::new(mount.trim_matches('/'))
                .map_err(|e| StoreError::invalid(format!("invalid AppRole mount `{mount}`: {e}")))?;
        }
        if self.request_timeout.is_zero() {
            return Err(StoreError::invalid("the request timeout is zero"));
        }
        if let Some(ca) = &self.ca_cert
            && !ca.is_file()
        {
            return Err(StoreError::invalid(format!("the CA certificate file {} does not exist", ca.display())));
        }
        Ok(Validated { url, mount: mount.to_owned(), staging_prefix: staging.as_str().to_owned() })
    }
}

/// What [`VaultConfig::validate`] found.
pub(crate) struct Validated {
    pub(crate) url: Url,
    pub(crate) mount: String,
    pub(crate) staging_prefix: String,
}

/// Tokens and namespaces travel in HTTP headers: only visible ASCII is
/// allowed (anything else would make the HTTP layer fail or panic).
pub(crate) fn check_header_value(value: &str, what: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::invalid(format!("the {what} is empty")));
    }
    if !value.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(StoreError::invalid(format!("the {what} contains characters not allowed in an HTTP header")));
    }
    Ok(())
}

fn env_either(a: &str, b: &str) -> Option<String> {
    [a, b].iter().find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

/// The token from `VAULT_TOKEN` or `BAO_TOKEN`.
pub(crate) fn token_from_env() -> Result<SecretString, StoreError> {
    env_either("VAULT_TOKEN", "BAO_TOKEN")
        .map(SecretString::from)
        .ok_or_else(|| StoreError::Unauthenticated { message: "neither VAULT_TOKEN nor BAO_TOKEN is set".to_owned() })
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultConfig")
            .field("address", &self.address)
            .field("mount", &self.mount)
            .field("namespace", &self.namespace)
            .field("auth", &self.auth)
            .field("ca_cert", &self.ca_cert)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("request_timeout", &self.request_timeout)
            .field("staging_prefix", &self.staging_prefix)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    address: String,
    #[serde(default)]
    mount: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    auth: Option<RawAuth>,
    #[serde(default)]
    ca_cert: Option<PathBuf>,
    #[serde(default)]
    allow_insecure_http: bool,
    #[serde(default)]
    request_timeout: Option<RawDuration>,
    #[serde(default)]
    staging_prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
enum RawAuth {
    /// `token` absent: read from the environment when connecting.
    Token {
        #[serde(default)]
        token: Option<SecretString>,
    },
    Approle {
        role_id: String,
        secret_id: SecretString,
        #[serde(default)]
        mount: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Seconds(u64),
    Text(String),
}

impl TryFrom<RawConfig> for VaultConfig {
    type Error = String;
    fn try_from(raw: RawConfig) -> Result<Self, String> {
        let auth = match raw.auth {
            None | Some(RawAuth::Token { token: None }) => VaultAuth::TokenFromEnv,
            Some(RawAuth::Token { token: Some(t) }) => VaultAuth::Token(t),
            Some(RawAuth::Approle { role_id, secret_id, mount }) => VaultAuth::AppRole {
                role_id,
                secret_id,
                mount: mount.unwrap_or_else(|| DEFAULT_APPROLE_MOUNT.to_owned()),
            },
        };
        let request_timeout = match raw.request_timeout {
            None => DEFAULT_REQUEST_TIMEOUT,
            Some(RawDuration::Seconds(s)) => Duration::from_secs(s),
            Some(RawDuration::Text(t)) => {
                humantime::parse_duration(&t).map_err(|e| format!("request_timeout `{t}`: {e}"))?
            }
        };
        Ok(Self {
            address: raw.address,
            mount: raw.mount.unwrap_or_else(|| DEFAULT_MOUNT.to_owned()),
            namespace: raw.namespace,
            auth,
            ca_cert: raw.ca_cert,
            allow_insecure_http: raw.allow_insecure_http,
            request_timeout,
            staging_prefix: raw.staging_prefix.unwrap_or_else(|| DEFAULT_STAGING_PREFIX.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(addr: &str) -> VaultConfig {
        VaultConfig::new(addr, VaultAuth::Token(SecretString::from("tok-s3cr3t".to_owned())))
    }

    #[test]
    fn tls_required_except_loopback() {
        assert!(cfg("https://vault.example.com").validate().is_ok());
        assert!(cfg("http://127.0.0.1:8200").validate().is_ok());
        assert!(cfg("http://[::1]:8200").validate().is_ok());
        assert!(cfg("http://localhost:8200").validate().is_ok());
        let err = cfg("http://vault.example.com").validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("allow_insecure_http"), "{err}");
        assert!(cfg("http://vault.example.com").with_insecure_http(true).validate().is_ok());
        assert!(cfg("ftp://vault.example.com").validate().is_err());
        assert!(cfg("not a url").validate().is_err());
        assert!(cfg("https://user:pw@vault.example.com").validate().is_err());
    }

    #[test]
    fn rejects_bad_settings_without_panicking() {
        assert!(cfg("https://v").with_mount("").validate().is_err());
        assert!(cfg("https://v").with_mount("a/../b").validate().is_err());
        assert!(cfg("https://v").with_staging_prefix("").validate().is_err());
        assert!(cfg("https://v").with_namespace("bad\nns").validate().is_err());
        assert!(cfg("https://v").with_request_timeout(Duration::ZERO).validate().is_err());
        assert!(cfg("https://v").with_ca_cert("/nonexistent/ca.pem").validate().is_err());
        let approle = VaultConfig::new("https://v", VaultAuth::approle("", SecretString::from("x".to_owned())));
        assert!(approle.validate().is_err());
        assert!(check_header_value("tok\r\nX-Evil: 1", "token").is_err());
        assert!(check_header_value("hvs.abc-DEF_123", "token").is_ok());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let a = cfg("https://v");
        let b =
            VaultConfig::new("https://v", VaultAuth::approle("role-1", SecretString::from("sid-s3cr3t".to_owned())));
        let out = format!("{a:?} {b:?} {a:#?} {b:#?}");
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(out.contains("role-1") && out.contains("REDACTED"));
    }

    #[test]
    fn deserializes_from_toml() {
        let c: VaultConfig = toml::from_str(
            r#"
            address = "https://v:8200"
            request_timeout = 5
            staging_prefix = "ops/staging"
            [auth]
            method = "token"
            token = "tok-s3cr3t"
        "#,
        )
        .expect("valid config");
        assert_eq!(c.request_timeout, Duration::from_secs(5));
        assert_eq!(c.mount, "secret");
        assert_eq!(c.staging_prefix, "ops/staging");
        assert!(matches!(&c.auth, VaultAuth::Token(t) if t.expose_secret() == "tok-s3cr3t"));
        assert!(!format!("{c:?}").contains("s3cr3t"));

        let c: VaultConfig =
            toml::from_str("address = \"https://v\"\nrequest_timeout = \"1m 30s\"\n[auth]\nmethod = \"token\"\n")
                .expect("valid config");
        assert_eq!(c.request_timeout, Duration::from_secs(90));
        assert!(matches!(c.auth, VaultAuth::TokenFromEnv));

        assert!(toml::from_str::<VaultConfig>("address = \"https://v\"\nadress = \"typo\"\n").is_err());
        assert!(toml::from_str::<VaultConfig>("address = \"https://v\"\nrequest_timeout = \"soon\"\n").is_err());
        assert!(toml::from_str::<VaultConfig>("mount = \"kv\"\n").is_err());
    }
}
