//! Where the PostgreSQL server is, how rekey logs in to administer it, and
//! how the connection is protected.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rekey_core::TargetError;
use secrecy::SecretString;
use tokio_postgres::config::{Host, SslNegotiation};

use crate::conninfo::take_tls_params;
use crate::transport::{SslMode, Transport};

/// The default time limit of one operation (connect, log in, run the
/// statements): 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin connection a [`PostgresTarget`](crate::PostgresTarget) uses to
/// re-key roles: host, port, database, admin user and password, time limit,
/// TLS.
///
/// The admin role needs `CREATEROLE` (or superuser) to change other roles'
/// passwords and, for [`ensure_roles`](crate::PostgresTarget::ensure_roles),
/// to create roles.
///
/// `Debug` never shows the password:
///
/// ```
/// use rekey_postgres::PostgresConfig;
/// let cfg = PostgresConfig::from_url("postgres://admin:s3cr3t@127.0.0.1:5432/app").unwrap();
/// assert_eq!((cfg.host(), cfg.port(), cfg.user(), cfg.dbname()), ("127.0.0.1", 5432, "admin", "app"));
/// assert!(!format!("{cfg:?}").contains("s3cr3t"));
/// ```
///
/// # TLS
///
/// Connections are TLS with certificate and host-name verification, except
/// to a local host (see [`SslMode`] for every mode), against the platform's
/// root certificates plus, for a private CA, a PEM CA file given with
/// `sslrootcert` in the URL or [`with_ca_file`](Self::with_ca_file);
/// plaintext to a remote host needs
/// [`with_plaintext_allowed`](Self::with_plaintext_allowed), and
/// [`transport_warning`](Self::transport_warning) then says so:
///
/// ```
/// use rekey_postgres::{PostgresConfig, SslMode};
/// let remote = PostgresConfig::from_url("postgres://admin:pw@db.internal/app").unwrap();
/// assert_eq!(remote.ssl_mode(), SslMode::VerifyFull);
/// let plain = PostgresConfig::from_url("postgres://admin:pw@db.internal/app?sslmode=disable").unwrap();
/// assert!(plain.check_transport().is_err());
/// let plain = plain.with_plaintext_allowed(true);
/// assert!(plain.check_transport().is_ok());
/// assert!(plain.transport_warning().unwrap().contains("not encrypted"));
/// ```
#[derive(Clone)]
pub struct PostgresConfig {
    pub(crate) endpoint: Endpoint,
    user: String,
    password: SecretString,
}

/// Host, port, database, time limit and TLS: what logging in as any role
/// needs.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) dbname: String,
    pub(crate) timeout: Duration,
    pub(crate) negotiation: SslNegotiation,
    pub(crate) transport: Transport,
}

impl Endpoint {
    /// `host:port`, for messages.
    pub(crate) fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// A client configuration for logging in as `user` with `password`, over
    /// TLS (required, no fallback) or not.
    pub(crate) fn login_config(&self, user: &str, password: &[u8], tls: bool) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .dbname(&self.dbname)
            .user(user)
            .password(password)
            .connect_timeout(self.timeout)
            .application_name("rekey")
            .ssl_mode(if tls {
                tokio_postgres::config::SslMode::Require
            } else {
                tokio_postgres::config::SslMode::Disable
            })
            .ssl_negotiation(self.negotiation);
        c
    }
}

impl PostgresConfig {
    /// An admin connection to `host:port` as `user`, database `postgres`,
    /// with the [default time limit](DEFAULT_TIMEOUT) and the default TLS
    /// mode for the host (see [`SslMode`]). A `host` starting with `/` is a
    /// Unix-socket directory.
    pub fn new(host: impl Into<String>, port: u16, user: impl Into<String>, password: SecretString) -> Self {
        Self {
            endpoint: Endpoint {
                host: host.into(),
                port,
                dbname: "postgres".into(),
                timeout: DEFAULT_TIMEOUT,
                negotiation: SslNegotiation::Postgres,
                transport: Transport::default(),
            },
            user: user.into(),
            password,
        }
    }

    /// Parses a connection URL (`postgres://user:password@host:port/dbname`,
    /// percent-encoded) or a `key=value` connection string. The user is
    /// required; the port defaults to 5432 and the database, as in libpq, to
    /// the user name. `sslmode` (see [`SslMode`]; `prefer` and `allow` are
    /// refused) and `sslrootcert` (a PEM CA file, read now, trusted besides
    /// the platform's roots — alone for `verify-ca`; `system` for the
    /// platform's roots only) set up TLS.
    ///
    /// A malformed URL, an unusable `sslmode` or CA file is
    /// [`TargetError::InvalidInput`]; the message never repeats the URL (it
    /// holds the password).
    pub fn from_url(url: &str) -> Result<Self, TargetError> {
        let invalid = |why: &str| TargetError::InvalidInput { message: format!("PostgreSQL connection URL: {why}") };
        let tls = take_tls_params(url).map_err(invalid)?;
        let parsed =
            tokio_postgres::Config::from_str(&tls.rest).map_err(|_| invalid("not a valid URL or connection string"))?;
        let host = match parsed.get_hosts() {
            [] => "localhost".to_owned(),
            [Host::Tcp(h)] => h.clone(),
            #[cfg(unix)]
            [Host::Unix(p)] => p.to_str().ok_or_else(|| invalid("the socket path is not UTF-8"))?.to_owned(),
            _ => return Err(invalid("exactly one host is supported")),
        };
        let port = match parsed.get_ports() {
            [] => 5432,
            [p] => *p,
            _ => return Err(invalid("exactly one port is supported")),
        };
        let user = parsed.get_user().filter(|u| !u.is_empty()).ok_or_else(|| invalid("no user name"))?.to_owned();
        let password = match parsed.get_password() {
            None => return Err(invalid("no password")),
            Some(p) => String::from_utf8(p.to_vec()).map_err(|_| invalid("the password is not valid UTF-8"))?,
        };
        let dbname = parsed.get_dbname().unwrap_or(&user).to_owned();
        let mut cfg = Self::new(host, port, user, SecretString::from(password));
        cfg.endpoint.dbname = dbname;
        cfg.endpoint.negotiation = parsed.get_ssl_negotiation();
        if let Some(t) = parsed.get_connect_timeout() {
            cfg.endpoint.timeout = *t;
        }
        if let Some(mode) = &tls.sslmode {
            cfg.endpoint.transport.mode = Some(mode.parse().map_err(|e: TargetError| match e {
                TargetError::InvalidInput { message } => invalid(&message),
                other => other,
            })?);
        }
        match tls.sslrootcert.as_deref() {
            None => {}
            Some("") => return Err(invalid("sslrootcert is empty")),
            Some("system") if cfg.endpoint.transport.mode == Some(SslMode::VerifyCa) => {
                return Err(invalid("sslrootcert=system needs sslmode=verify-full"));
            }
            Some("system") => cfg.endpoint.transport.mode = Some(SslMode::VerifyFull),
            Some(path) => cfg = cfg.with_ca_file(path)?,
        }
        Ok(cfg)
    }

    /// Uses database `dbname` (for the admin connection and for test logins).
    pub fn with_dbname(mut self, dbname: impl Into<String>) -> Self {
        self.endpoint.dbname = dbname.into();
        self
    }

    /// Sets the time limit of one operation (connecting, logging in and
    /// running its statements). Past it the operation fails with
    /// [`TargetError::Unavailable`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.endpoint.timeout = timeout;
        self
    }

    /// Sets the TLS mode (instead of the default for the host; see
    /// [`SslMode`]).
    pub fn with_ssl_mode(mut self, mode: SslMode) -> Self {
        self.endpoint.transport.mode = Some(mode);
        self
    }

    /// Trusts the CA certificates of the PEM file at `path` (one or several)
    /// besides the platform's roots (alone with [`SslMode::VerifyCa`]), like
    /// `sslrootcert`. The file is read now (and again at each connection, so
    /// a renewed CA file is picked up): one that cannot be read or holds no
    /// certificate is [`TargetError::InvalidInput`].
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Result<Self, TargetError> {
        let path = path.into();
        rekey_tls::Trust::CaFileOnly(path.clone()).check().map_err(|e| e.into_target_error("PostgreSQL CA file"))?;
        self.endpoint.transport.ca_file = Some(path);
        Ok(self)
    }

    /// Allows `sslmode=disable` to a host that is not local (default:
    /// refused). Passwords then cross the network in clear:
    /// [`transport_warning`](Self::transport_warning) says so.
    pub fn with_plaintext_allowed(mut self, allow: bool) -> Self {
        self.endpoint.transport.allow_plaintext = allow;
        self
    }

    /// The host name, address or Unix-socket directory.
    pub fn host(&self) -> &str {
        &self.endpoint.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.endpoint.port
    }

    /// The database connected to.
    pub fn dbname(&self) -> &str {
        &self.endpoint.dbname
    }

    /// The admin user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The time limit of one operation.
    pub fn timeout(&self) -> Duration {
        self.endpoint.timeout
    }

    /// The TLS mode in effect (the one set, or the default for the host).
    pub fn ssl_mode(&self) -> SslMode {
        self.endpoint.transport.effective_mode(&self.endpoint.host)
    }

    /// The CA file, if one is set.
    pub fn ca_file(&self) -> Option<&Path> {
        self.endpoint.transport.ca_file.as_deref()
    }

    /// Whether plaintext to a host that is not local is allowed.
    pub fn plaintext_allowed(&self) -> bool {
        self.endpoint.transport.allow_plaintext
    }

    /// Checks that the TLS settings can be used, as every connection does
    /// first: plaintext to a remote host without the opt-out, `verify-ca`
    /// without a CA file, a CA file with `sslmode=disable`, an unreadable CA
    /// file and a machine without root certificates are
    /// [`TargetError::InvalidInput`].
    pub fn check_transport(&self) -> Result<(), TargetError> {
        self.endpoint.transport.client_tls(&self.endpoint.host, self.endpoint.port).map(drop)
    }

    /// A warning (for `plan`/`check` output) when the settings are allowed
    /// but weaker than the default: plaintext to a host that is not local
    /// (allowed with [`with_plaintext_allowed`](Self::with_plaintext_allowed)),
    /// or `sslmode=verify-ca` (the host name is not checked). `None` for TLS
    /// with full verification and for plaintext to a local host. Settings
    /// that are refused are [`check_transport`](Self::check_transport)'s
    /// errors, not warnings.
    pub fn transport_warning(&self) -> Option<String> {
        self.endpoint.transport.warning(&self.endpoint.host, self.endpoint.port)
    }

    /// The admin password (to redact it from error messages).
    pub(crate) fn password(&self) -> &SecretString {
        &self.password
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.endpoint.host)
            .field("port", &self.endpoint.port)
            .field("dbname", &self.endpoint.dbname)
            .field("user", &self.user)
            .field("password", &"[REDACTED]")
            .field("timeout", &self.endpoint.timeout)
            .field("ssl_mode", &self.ssl_mode())
            .field("ca_file", &self.endpoint.transport.ca_file)
            .field("plaintext_allowed", &self.endpoint.transport.allow_plaintext)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn parses_urls_and_defaults() {
        let c = PostgresConfig::from_url("postgres://adm:p%40ss@db.example:6543/app?connect_timeout=3").unwrap();
        assert_eq!((c.host(), c.port(), c.user(), c.dbname()), ("db.example", 6543, "adm", "app"));
        assert_eq!(c.password().expose_secret(), "p@ss");
        assert_eq!(c.timeout(), Duration::from_secs(3));
        assert_eq!(c.ssl_mode(), SslMode::VerifyFull);
        let c = PostgresConfig::from_url("postgresql://adm:pw@h").unwrap();
        assert_eq!((c.port(), c.dbname(), c.timeout()), (5432, "adm", DEFAULT_TIMEOUT));
        let c = PostgresConfig::from_url("host=h port=1 user=u password=pw dbname=d").unwrap();
        assert_eq!((c.host(), c.port(), c.user(), c.dbname()), ("h", 1, "u", "d"));
        let c = PostgresConfig::from_url("postgres://adm:pw@127.0.0.1/app").unwrap();
        assert_eq!(c.ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn tls_parameters_are_read_from_urls_and_connection_strings() {
        for (url, mode) in [
            ("postgres://u:pw@localhost/db?sslmode=require", SslMode::VerifyFull),
            ("postgres://u:pw@localhost/db?sslmode=verify-full", SslMode::VerifyFull),
            ("postgres://u:pw@db.example/db?sslmode=disable", SslMode::Disable),
            ("postgres://u:pw@db.example/db?sslrootcert=system", SslMode::VerifyFull),
            ("host=localhost user=u password=pw sslmode=verify-full", SslMode::VerifyFull),
        ] {
            let c = PostgresConfig::from_url(url).unwrap();
            assert_eq!(c.ssl_mode(), mode, "{url}");
            assert_eq!(c.ca_file(), None);
        }
        let e = PostgresConfig::from_url("postgres://u:s3cr3t@h/db?sslrootcert=/nonexistent/ca.pem").unwrap_err();
        assert!(matches!(&e, TargetError::InvalidInput { message } if message.contains("/nonexistent/ca.pem")), "{e}");
        assert!(!e.to_string().contains("s3cr3t"));
    }

    #[test]
    fn bad_urls_are_typed_errors_without_the_password() {
        for url in [
            "postgres://u:s3cr3t@h:notaport/db",
            "postgres://:s3cr3t@h/db",
            "postgres://u@h/db",
            "postgres://u:s3cr3t@h1,h2/db",
            "postgres://u:s3cr3t@h/db?sslmode=prefer",
            "postgres://u:s3cr3t@h/db?sslmode=allow",
            "postgres://u:s3cr3t@h/db?sslmode=bogus",
            "postgres://u:s3cr3t@h/db?sslrootcert=",
            "postgres://u:s3cr3t@h/db?sslmode=verify-ca&sslrootcert=system",
            "postgres://u:s3cr3t@h/db?sslcert=/client.pem",
            "host=h user=u password=s3cr3t sslmode=prefer",
            "mysql://u:s3cr3t@h/db",
            "",
        ] {
            let e = PostgresConfig::from_url(url).map(|c| format!("{c:?}")).expect_err(url);
            assert!(matches!(e, TargetError::InvalidInput { .. }), "{url}: {e:?}");
            assert!(!format!("{e} {e:?}").contains("s3cr3t"), "{e}");
        }
        let e = PostgresConfig::from_url("postgres://u:pw@h/db?sslmode=prefer").unwrap_err().to_string();
        assert!(e.contains("sslmode=prefer is refused"), "{e}");
    }

    #[test]
    fn debug_redacts() {
        let c = PostgresConfig::new("h", 1, "u", SecretString::from("s3cr3t")).with_dbname("d");
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("s3cr3t") && shown.contains("REDACTED"), "{shown}");
        assert!(shown.contains("VerifyFull"), "{shown}");
    }

    /// Unit level, since the test servers only listen on loopback.
    #[test]
    fn plaintext_to_a_remote_host_is_refused_without_the_opt_out() {
        let c = PostgresConfig::new("db.example", 5432, "u", SecretString::from("pw")).with_ssl_mode(SslMode::Disable);
        let e = c.check_transport().unwrap_err();
        assert!(matches!(&e, TargetError::InvalidInput { message } if message.contains("unencrypted")), "{e}");
        assert_eq!(c.transport_warning(), None);
        let c = c.with_plaintext_allowed(true);
        assert!(c.plaintext_allowed());
        c.check_transport().unwrap();
        assert!(c.transport_warning().unwrap().contains("db.example:5432"));
        let local = PostgresConfig::new("127.0.0.1", 5432, "u", SecretString::from("pw"));
        local.check_transport().unwrap();
        assert_eq!(local.transport_warning(), None);
    }
}
