//! How a connection to PostgreSQL is protected: [`SslMode`], the CA file,
//! the plaintext opt-out, and the rules that tie them together.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use rekey_core::TargetError;
use rekey_tls::{ClientTls, Trust, Verify, is_local_host};

/// How the connection to PostgreSQL is protected: libpq's `sslmode`, read
/// strictly, since these connections carry passwords.
///
/// | `sslmode` | [`SslMode`] | what rekey does |
/// |---|---|---|
/// | `disable` | [`Disable`](Self::Disable) | no TLS. Only to a local host (loopback address, `localhost`, Unix socket), or with [plaintext allowed](crate::PostgresConfig::with_plaintext_allowed) (then [`transport_warning`](crate::PostgresConfig::transport_warning) says so) |
/// | `allow`, `prefer` | — | refused: they fall back to plaintext without telling |
/// | `require` | [`VerifyFull`](Self::VerifyFull) | as `verify-full`: rekey never trusts an unverified certificate (libpq's `require` does not verify) |
/// | `verify-ca` | [`VerifyCa`](Self::VerifyCa) | TLS; the certificate must be signed by the CA file alone (required: with the platform's roots any public certificate would do), whatever host it names |
/// | `verify-full` | [`VerifyFull`](Self::VerifyFull) | TLS; the certificate must be signed by a platform root or the CA file, and name the host connected to |
/// | (none) | | `verify-full`, except to a local host without a CA file: `disable` |
///
/// A server that does not offer TLS when it is required is refused (never a
/// silent fallback); PostgreSQL never offers TLS on a Unix socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS, the chain verified against the CA file, the host name not.
    VerifyCa,
    /// TLS, the chain and the host name verified.
    VerifyFull,
}

impl SslMode {
    /// The `sslmode` value: `disable`, `verify-ca` or `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = TargetError;

    /// Parses an `sslmode` value (see the [table](SslMode)).
    fn from_str(s: &str) -> Result<Self, TargetError> {
        let invalid = |m: String| TargetError::InvalidInput { message: m };
        match s {
            "disable" => Ok(SslMode::Disable),
            "require" | "verify-full" => Ok(SslMode::VerifyFull),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "allow" | "prefer" => Err(invalid(format!(
                "sslmode={s} is refused: it falls back to an unencrypted connection without telling; \
                 use sslmode=verify-full (TLS) or sslmode=disable (plaintext)"
            ))),
            _ => Err(invalid(format!(
                "unknown sslmode {:?}: expected disable, require, verify-ca or verify-full",
                s.escape_debug().to_string()
            ))),
        }
    }
}

/// The TLS settings of a connection and the rules between them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Transport {
    /// As set; `None` means "by host" (see [`SslMode`]).
    pub mode: Option<SslMode>,
    pub ca_file: Option<PathBuf>,
    pub allow_plaintext: bool,
}

impl Transport {
    /// The mode used for `host`.
    pub fn effective_mode(&self, host: &str) -> SslMode {
        self.mode.unwrap_or(if self.ca_file.is_some() || !is_local_host(host) {
            SslMode::VerifyFull
        } else {
            SslMode::Disable
        })
    }

    /// The TLS client for `host` (`None`: plaintext), or why these settings
    /// cannot be used ([`TargetError::InvalidInput`]). Reads the CA file.
    pub fn client_tls(&self, host: &str, port: u16) -> Result<Option<ClientTls>, TargetError> {
        let invalid = |m: String| TargetError::InvalidInput { message: format!("PostgreSQL {host}:{port}: {m}") };
        let (trust, verify) = match self.effective_mode(host) {
            SslMode::Disable if self.ca_file.is_some() => {
                return Err(invalid(
                    "sslmode=disable with a CA file: the CA file would be ignored; \
                     remove it or use sslmode=verify-full"
                        .into(),
                ));
            }
            SslMode::Disable if !is_local_host(host) && !self.allow_plaintext => {
                return Err(invalid(
                    "an unencrypted connection (sslmode=disable) to a host that is not local is refused: \
                     use TLS (sslmode=verify-full, with sslrootcert or a CA file for a private CA), \
                     or allow plaintext explicitly"
                        .into(),
                ));
            }
            SslMode::Disable => return Ok(None),
            SslMode::VerifyCa => match &self.ca_file {
                Some(path) => (Trust::CaFileOnly(path.clone()), Verify::ChainOnly),
                None => {
                    return Err(invalid(
                        "sslmode=verify-ca needs a CA file (sslrootcert): against the platform's roots it \
                         would accept any publicly trusted certificate"
                            .into(),
                    ));
                }
            },
            SslMode::VerifyFull => (Trust::platform_and(self.ca_file.clone()), Verify::Full),
        };
        // ALPN as libpq 17 sends it; servers before 17 ignore it.
        ClientTls::new(&trust, verify, &[b"postgresql"]).map(Some).map_err(|e| invalid(e.to_string()))
    }

    /// A warning for settings that are allowed but weaker than the default.
    pub fn warning(&self, host: &str, port: u16) -> Option<String> {
        match self.effective_mode(host) {
            SslMode::Disable if !is_local_host(host) && self.allow_plaintext => Some(format!(
                "the PostgreSQL connection to {host}:{port} is not encrypted (sslmode=disable, plaintext \
                 allowed): rekey's admin login and the password verifiers it sets cross the network readable \
                 and alterable"
            )),
            SslMode::VerifyCa => Some(format!(
                "the PostgreSQL connection to {host}:{port} checks that the CA file signed the server's \
                 certificate but not that the certificate names {host} (sslmode=verify-ca)"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_strictly() {
        assert_eq!("disable".parse::<SslMode>().unwrap(), SslMode::Disable);
        assert_eq!("require".parse::<SslMode>().unwrap(), SslMode::VerifyFull);
        assert_eq!("verify-full".parse::<SslMode>().unwrap(), SslMode::VerifyFull);
        assert_eq!("verify-ca".parse::<SslMode>().unwrap(), SslMode::VerifyCa);
        for bad in ["prefer", "allow"] {
            let e = bad.parse::<SslMode>().unwrap_err().to_string();
            assert!(e.contains("falls back to an unencrypted connection"), "{e}");
        }
        assert!("Require".parse::<SslMode>().unwrap_err().to_string().contains("unknown sslmode"));
    }

    #[test]
    fn the_default_is_tls_except_to_a_local_host() {
        let t = Transport::default();
        assert_eq!(t.effective_mode("db.example"), SslMode::VerifyFull);
        assert_eq!(t.effective_mode("10.1.2.3"), SslMode::VerifyFull);
        assert_eq!(t.effective_mode("127.0.0.1"), SslMode::Disable);
        assert_eq!(t.effective_mode("/run/postgresql"), SslMode::Disable);
        let with_ca = Transport { ca_file: Some("/ca.pem".into()), ..t };
        assert_eq!(with_ca.effective_mode("localhost"), SslMode::VerifyFull);
    }

    #[test]
    fn plaintext_to_a_remote_host_needs_the_opt_out_and_is_warned_about() {
        let plain = Transport { mode: Some(SslMode::Disable), ..Transport::default() };
        let e = plain.client_tls("db.example", 5432).unwrap_err();
        assert!(matches!(&e, TargetError::InvalidInput { message } if message.contains("unencrypted")), "{e}");
        assert_eq!(plain.warning("db.example", 5432), None);
        // Loopback: allowed, no warning.
        assert!(plain.client_tls("127.0.0.1", 5432).unwrap().is_none());
        assert_eq!(plain.warning("127.0.0.1", 5432), None);
        // The opt-out: allowed, warned.
        let opted = Transport { allow_plaintext: true, ..plain };
        assert!(opted.client_tls("db.example", 5432).unwrap().is_none());
        let w = opted.warning("db.example", 5432).unwrap();
        assert!(w.contains("not encrypted") && w.contains("db.example:5432"), "{w}");
        // The opt-out does not weaken a TLS mode.
        let tls = Transport { mode: Some(SslMode::VerifyFull), allow_plaintext: true, ..Transport::default() };
        assert!(tls.client_tls("db.example", 5432).unwrap().is_some());
        assert_eq!(tls.warning("db.example", 5432), None);
    }

    #[test]
    fn contradictions_are_refused() {
        let e = Transport { mode: Some(SslMode::VerifyCa), ..Transport::default() }.client_tls("h", 1).unwrap_err();
        assert!(e.to_string().contains("verify-ca needs a CA file"), "{e}");
        let e = Transport { mode: Some(SslMode::Disable), ca_file: Some("/ca.pem".into()), ..Transport::default() }
            .client_tls("127.0.0.1", 1)
            .unwrap_err();
        assert!(e.to_string().contains("the CA file would be ignored"), "{e}");
        let e = Transport { ca_file: Some("/nonexistent/ca.pem".into()), ..Transport::default() }
            .client_tls("h", 1)
            .unwrap_err();
        assert!(matches!(&e, TargetError::InvalidInput { message } if message.contains("/nonexistent/ca.pem")), "{e}");
    }
}
