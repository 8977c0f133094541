//! Where the PostgreSQL server is, and how rekey logs in to administer it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rekey_core::TargetError;
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::config::{Host, SslMode};

/// The default time limit of one operation (connect, log in, run the
/// statements): 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin connection a [`PostgresTarget`](crate::PostgresTarget) uses to
/// re-key roles: host, port, database, admin user and password, time limit.
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
/// Connections are made without TLS (loopback or a private network); a URL
/// asking for `sslmode=require` is refused rather than silently downgraded.
#[derive(Clone)]
pub struct PostgresConfig {
    pub(crate) endpoint: Endpoint,
    user: String,
    password: SecretString,
}

/// Host, port, database and time limit: what logging in as any role needs.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) dbname: String,
    pub(crate) timeout: Duration,
}

impl Endpoint {
    /// A client configuration for logging in as `user` with `password`.
    pub(crate) fn login_config(&self, user: &str, password: &[u8]) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .dbname(&self.dbname)
            .user(user)
            .password(password)
            .connect_timeout(self.timeout)
            .application_name("rekey");
        c
    }
}

impl PostgresConfig {
    /// An admin connection to `host:port` as `user`, database `postgres`,
    /// with the [default time limit](DEFAULT_TIMEOUT). A `host` starting with
    /// `/` is a Unix-socket directory.
    pub fn new(host: impl Into<String>, port: u16, user: impl Into<String>, password: SecretString) -> Self {
        Self {
            endpoint: Endpoint { host: host.into(), port, dbname: "postgres".into(), timeout: DEFAULT_TIMEOUT },
            user: user.into(),
            password,
        }
    }

    /// Parses a connection URL (`postgres://user:password@host:port/dbname`,
    /// percent-encoded) or a `key=value` connection string. The user is
    /// required; the port defaults to 5432 and the database, as in libpq, to
    /// the user name.
    ///
    /// A malformed URL is [`TargetError::InvalidInput`]; the message never
    /// repeats the URL (it holds the password).
    pub fn from_url(url: &str) -> Result<Self, TargetError> {
        let invalid = |why: &str| TargetError::InvalidInput { message: format!("PostgreSQL connection URL: {why}") };
        let parsed =
            tokio_postgres::Config::from_str(url).map_err(|_| invalid("not a valid URL or connection string"))?;
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
        if parsed.get_ssl_mode() == SslMode::Require {
            return Err(invalid("sslmode=require is not supported (rekey-postgres connects without TLS)"));
        }
        let dbname = parsed.get_dbname().unwrap_or(&user).to_owned();
        let mut cfg = Self::new(host, port, user, SecretString::from(password));
        cfg.endpoint.dbname = dbname;
        if let Some(t) = parsed.get_connect_timeout() {
            cfg.endpoint.timeout = *t;
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

    /// The admin password (to redact it from error messages).
    pub(crate) fn password(&self) -> &SecretString {
        &self.password
    }

    /// The client configuration of the admin connection.
    pub(crate) fn admin_config(&self) -> tokio_postgres::Config {
        self.endpoint.login_config(&self.user, self.password.expose_secret().as_bytes())
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
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_defaults() {
        let c = PostgresConfig::from_url("postgres://adm:p%40ss@db.example:6543/app?connect_timeout=3").unwrap();
        assert_eq!((c.host(), c.port(), c.user(), c.dbname()), ("db.example", 6543, "adm", "app"));
        assert_eq!(c.password().expose_secret(), "p@ss");
        assert_eq!(c.timeout(), Duration::from_secs(3));
        let c = PostgresConfig::from_url("postgresql://adm:pw@h").unwrap();
        assert_eq!((c.port(), c.dbname(), c.timeout()), (5432, "adm", DEFAULT_TIMEOUT));
        let c = PostgresConfig::from_url("host=h port=1 user=u password=pw dbname=d").unwrap();
        assert_eq!((c.host(), c.port(), c.user(), c.dbname()), ("h", 1, "u", "d"));
    }

    #[test]
    fn bad_urls_are_typed_errors_without_the_password() {
        for url in [
            "postgres://u:s3cr3t@h:notaport/db",
            "postgres://:s3cr3t@h/db",
            "postgres://u@h/db",
            "postgres://u:s3cr3t@h1,h2/db",
            "postgres://u:s3cr3t@h/db?sslmode=require",
            "mysql://u:s3cr3t@h/db",
            "",
        ] {
            let e = PostgresConfig::from_url(url).map(|c| format!("{c:?}")).expect_err(url);
            assert!(matches!(e, TargetError::InvalidInput { .. }), "{url}: {e:?}");
            assert!(!format!("{e} {e:?}").contains("s3cr3t"), "{e}");
        }
    }

    #[test]
    fn debug_redacts() {
        let c = PostgresConfig::new("h", 1, "u", SecretString::from("s3cr3t")).with_dbname("d");
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("s3cr3t") && shown.contains("REDACTED"), "{shown}");
    }
}
