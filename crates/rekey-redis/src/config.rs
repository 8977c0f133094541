//! [`RedisConfig`]: where the Redis server is, who rekey logs in as, and how
//! the connection is protected.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};
use rekey_core::TargetError;
use rekey_tls::{ClientTls, Trust, Verify, is_local_host};

/// The default time limit of one operation (connect, authenticate, run the
/// commands): 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A Redis server and how to reach it: address, database, the user and
/// password in the URL (the admin's, for a [`RedisAclTarget`](crate::RedisAclTarget)),
/// time limit, TLS.
///
/// # TLS
///
/// A `rediss://` URL is TLS with certificate and host-name verification,
/// against the platform's root certificates plus, with
/// [`with_ca_file`](Self::with_ca_file), the CA certificates of a PEM file
/// (for a private CA). A `redis://` URL is plaintext, which is allowed to a local host
/// (`localhost`, a loopback address; `unix://` sockets) and, to any other
/// host, only with [`with_plaintext_allowed`](Self::with_plaintext_allowed) —
/// then [`transport_warning`](Self::transport_warning) says so. A URL
/// fragment (redis-rs's `#insecure`, which turns verification off) is
/// refused.
///
/// ```
/// use rekey_redis::RedisConfig;
/// let local = RedisConfig::from_url("redis://default:s3cr3t@127.0.0.1:6379").unwrap();
/// assert!(!local.uses_tls() && local.check_transport().is_ok() && local.transport_warning().is_none());
/// assert!(!format!("{local:?}").contains("s3cr3t"));
///
/// let remote = RedisConfig::from_url("redis://default:pw@cache.internal:6379").unwrap();
/// assert!(remote.check_transport().is_err());
/// let remote = remote.with_plaintext_allowed(true);
/// assert!(remote.transport_warning().unwrap().contains("not encrypted"));
///
/// let tls = RedisConfig::from_url("rediss://default:pw@cache.internal:6380").unwrap();
/// assert!(tls.uses_tls());
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    info: ConnectionInfo,
    tls: bool,
    ca_file: Option<PathBuf>,
    allow_plaintext: bool,
    timeout: Duration,
}

impl RedisConfig {
    /// Parses `redis://[user]:password@host:port[/db]`, `rediss://...` (TLS)
    /// or `unix:///path/to/socket`. A malformed URL or one with a fragment is
    /// [`TargetError::InvalidInput`]; the message never repeats the URL (it
    /// holds the password).
    pub fn from_url(url: &str) -> Result<Self, TargetError> {
        let invalid = |why: &str| TargetError::InvalidInput { message: format!("Redis URL: {why}") };
        let scheme_end = url.find("://").unwrap_or(0);
        let tls = url[..scheme_end].eq_ignore_ascii_case("rediss");
        let plain_url = if tls { format!("redis{}", &url[scheme_end..]) } else { url.to_owned() };
        if tls && url.contains('#') {
            return Err(invalid(
                "a rediss:// URL cannot have a fragment (`#insecure` would turn certificate verification off)",
            ));
        }
        let info = plain_url
            .as_str()
            .into_connection_info()
            .map_err(|_| invalid("not a valid redis://, rediss:// or unix:// URL"))?;
        if tls && !matches!(info.addr(), ConnectionAddr::Tcp(..)) {
            return Err(invalid("TLS needs a host and port"));
        }
        Ok(Self { info, tls, ca_file: None, allow_plaintext: false, timeout: DEFAULT_TIMEOUT })
    }

    /// Trusts the CA certificates of the PEM file at `path` (one or several)
    /// besides the platform's roots. The file is read now (and
    /// again at each connection, so a renewed CA file is picked up): one that
    /// cannot be read or holds no certificate is
    /// [`TargetError::InvalidInput`]. Only for `rediss://` URLs.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Result<Self, TargetError> {
        let path = path.into();
        Trust::CaFileOnly(path.clone()).check().map_err(|e| e.into_target_error("Redis CA file"))?;
        self.ca_file = Some(path);
        Ok(self)
    }

    /// Allows a `redis://` (plaintext) URL to a host that is not local
    /// (default: refused). Passwords then cross the network in clear:
    /// [`transport_warning`](Self::transport_warning) says so.
    pub fn with_plaintext_allowed(mut self, allow: bool) -> Self {
        self.allow_plaintext = allow;
        self
    }

    /// Sets the time limit of one operation (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether connections use TLS (a `rediss://` URL).
    pub fn uses_tls(&self) -> bool {
        self.tls
    }

    /// The CA file, if one is set.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// Whether plaintext to a host that is not local is allowed.
    pub fn plaintext_allowed(&self) -> bool {
        self.allow_plaintext
    }

    /// The time limit of one operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `host:port`, or the socket path.
    pub fn server(&self) -> String {
        match self.info.addr() {
            ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
            other => other.to_string(),
        }
    }

    /// The user name in the URL (`default` when it names none).
    pub fn user(&self) -> &str {
        self.info.redis_settings().username().unwrap_or("default")
    }

    /// Checks that the TLS settings can be used, as every connection does
    /// first: plaintext to a remote host without the opt-out, a CA file with
    /// a `redis://` URL, an unreadable CA file and a machine without root
    /// certificates are [`TargetError::InvalidInput`].
    pub fn check_transport(&self) -> Result<(), TargetError> {
        self.client_tls().map(drop)
    }

    /// A warning (for `plan`/`check` output) when plaintext goes to a host
    /// that is not local (allowed with
    /// [`with_plaintext_allowed`](Self::with_plaintext_allowed)); `None` for
    /// TLS and for a local host. Settings that are refused are
    /// [`check_transport`](Self::check_transport)'s errors, not warnings.
    pub fn transport_warning(&self) -> Option<String> {
        (!self.tls && !self.is_local() && self.allow_plaintext).then(|| {
            format!(
                "the Redis connection to {} is not encrypted (redis:// with plaintext allowed): passwords cross \
                 the network readable and alterable",
                self.server()
            )
        })
    }

    fn is_local(&self) -> bool {
        match self.info.addr() {
            ConnectionAddr::Tcp(host, _) => is_local_host(host),
            _ => true, // a Unix socket
        }
    }

    /// The TLS client (`None`: plaintext), or why these settings cannot be
    /// used. Reads the CA file.
    pub(crate) fn client_tls(&self) -> Result<Option<ClientTls>, TargetError> {
        let invalid = |m: String| TargetError::InvalidInput { message: format!("Redis {}: {m}", self.server()) };
        if !self.tls {
            if self.ca_file.is_some() {
                return Err(invalid("a CA file is set but the URL is redis:// (no TLS): use rediss://".into()));
            }
            if !self.is_local() && !self.allow_plaintext {
                return Err(invalid(
                    "an unencrypted connection (redis://) to a host that is not local is refused: use rediss:// \
                     (with a CA file for a private CA), or allow plaintext explicitly"
                        .into(),
                ));
            }
            return Ok(None);
        }
        ClientTls::new(&Trust::platform_and(self.ca_file.clone()), Verify::Full, &[])
            .map(Some)
            .map_err(|e| invalid(e.to_string()))
    }

    /// The address part: host and port, or the socket.
    pub(crate) fn addr(&self) -> &ConnectionAddr {
        self.info.addr()
    }

    /// The settings of the URL (database, user, password).
    pub(crate) fn redis_settings(&self) -> &RedisConnectionInfo {
        self.info.redis_settings()
    }

    /// The password in the URL ("" without one), to redact it.
    pub(crate) fn password(&self) -> &str {
        self.info.redis_settings().password().unwrap_or("")
    }

    /// The same server and settings without the URL's user and password.
    pub(crate) fn without_credentials(&self) -> Self {
        let db = self.info.redis_settings().db();
        let info = self.info.clone().set_redis_settings(RedisConnectionInfo::default().set_db(db));
        Self { info, ..self.clone() }
    }

    /// A client of the same server (plaintext only) logging in with `settings`.
    pub(crate) fn info_with(&self, settings: RedisConnectionInfo) -> ConnectionInfo {
        self.info.clone().set_redis_settings(settings)
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("server", &self.server())
            .field("user", &self.user())
            .field("password", &"[REDACTED]")
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("plaintext_allowed", &self.allow_plaintext)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_tls_by_scheme() {
        let c = RedisConfig::from_url("rediss://app:pw@cache.example:6380/2").unwrap();
        assert!(c.uses_tls());
        assert_eq!((c.server(), c.user(), c.password()), ("cache.example:6380".into(), "app", "pw"));
        assert_eq!(c.redis_settings().db(), 2);
        assert!(RedisConfig::from_url("REDISS://:pw@h:1").unwrap().uses_tls());
        let c = RedisConfig::from_url("redis://:pw@[::1]:6379").unwrap();
        assert!(!c.uses_tls() && c.is_local() && c.user() == "default");
        let v = c.without_credentials();
        assert_eq!((v.user(), v.password()), ("default", ""));
    }

    #[test]
    fn bad_urls_are_typed_errors_without_the_password() {
        for url in [
            "http://:s3cr3t@h",
            "redis://:s3cr3t@h:notaport",
            "rediss://:s3cr3t@h:1/#insecure",
            "rediss://:s3cr3t@h:1#x",
            "",
        ] {
            let e = RedisConfig::from_url(url).unwrap_err();
            assert!(matches!(e, TargetError::InvalidInput { .. }), "{url}: {e:?}");
            assert!(!format!("{e} {e:?}").contains("s3cr3t"), "{e}");
        }
        let e = RedisConfig::from_url("rediss://:pw@h:1/#insecure").unwrap_err().to_string();
        assert!(e.contains("#insecure"), "{e}");
    }

    /// Unit level, since the test servers only listen on loopback.
    #[test]
    fn plaintext_to_a_remote_host_is_refused_without_the_opt_out() {
        let remote = RedisConfig::from_url("redis://:pw@cache.example:6379").unwrap();
        let e = remote.check_transport().unwrap_err();
        assert!(matches!(&e, TargetError::InvalidInput { message } if message.contains("unencrypted")), "{e}");
        assert_eq!(remote.transport_warning(), None);
        let opted = remote.with_plaintext_allowed(true);
        assert!(opted.plaintext_allowed());
        opted.check_transport().unwrap();
        assert!(opted.transport_warning().unwrap().contains("cache.example:6379"));
        for local in ["redis://:pw@127.0.0.1:6379", "redis://:pw@localhost:6379", "unix:///tmp/redis.sock"] {
            let c = RedisConfig::from_url(local).unwrap();
            c.check_transport().unwrap();
            assert_eq!(c.transport_warning(), None, "{local}");
        }
        let tls = RedisConfig::from_url("rediss://:pw@cache.example:6380").unwrap();
        tls.check_transport().unwrap();
        assert_eq!(tls.transport_warning(), None);
    }

    #[test]
    fn a_ca_file_needs_tls_and_must_be_usable() {
        let dir = std::env::temp_dir().join(format!("rekey-redis-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, b"junk").unwrap();
        let e = RedisConfig::from_url("rediss://:pw@h:1").unwrap().with_ca_file(&junk).unwrap_err();
        assert!(matches!(&e, TargetError::InvalidInput { message } if message.contains("junk.pem")), "{e}");
        let e = RedisConfig::from_url("rediss://:pw@h:1").unwrap().with_ca_file(dir.join("missing.pem")).unwrap_err();
        assert!(e.to_string().contains("cannot read the CA file"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn debug_redacts() {
        let c = RedisConfig::from_url("rediss://app:s3cr3t@h:1").unwrap();
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("s3cr3t") && shown.contains("REDACTED") && shown.contains("h:1"), "{shown}");
    }
}
