//! Typed TLS failures, in words a user can act on, never holding a secret.

use std::{fmt, io};

use rekey_core::TargetError;
use rustls::CertificateError;

/// TLS settings that cannot be used: an unreadable CA file, one without a
/// certificate, a machine without root certificates. Becomes
/// [`TargetError::InvalidInput`]: nothing was sent anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSetupError {
    message: String,
}

impl TlsSetupError {
    pub(crate) fn new(message: String) -> Self {
        Self { message }
    }

    /// As a [`TargetError::InvalidInput`], prefixed with what was being done.
    pub fn into_target_error(self, doing: &str) -> TargetError {
        TargetError::InvalidInput { message: format!("{doing}: {}", self.message) }
    }
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TlsSetupError {}

/// Why a TLS handshake with a server failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// The server's certificate was refused: not signed by a trusted CA,
    /// issued for another host name, expired, ... (or it sent none).
    Certificate,
    /// The server does not speak TLS (on this port).
    NotTls,
    /// The server ended the handshake, or no protocol version or cipher
    /// suite was common to both sides.
    Refused,
    /// The connection broke during the handshake.
    Io,
    /// The server did not complete the handshake in time (a busy server, or
    /// a plaintext one waiting for more input, as Redis does).
    TimedOut,
}

/// A failed TLS handshake with a server, classified ([`failure`](Self::failure)).
///
/// [`into_target_error`](Self::into_target_error) turns a certificate
/// problem, a server without TLS and a refused handshake into
/// [`TargetError::Other`] (a configuration or security problem: retrying will
/// not help) and a broken connection or a handshake that did not finish in
/// time into [`TargetError::Unavailable`].
#[derive(Debug, Clone)]
pub struct HandshakeError {
    failure: HandshakeFailure,
    message: String,
}

impl HandshakeError {
    /// The server `server` answered a request for TLS with a refusal
    /// (PostgreSQL's `N` to an `SSLRequest`).
    pub fn not_offered(server: &str) -> Self {
        Self {
            failure: HandshakeFailure::NotTls,
            message: format!(
                "TLS is required but the server {server} does not offer it \
                 (enable TLS on the server, or connect without TLS where that is allowed)"
            ),
        }
    }

    /// The handshake with `server` did not finish within `limit`.
    pub(crate) fn timed_out(server: &str, limit: std::time::Duration) -> Self {
        Self {
            failure: HandshakeFailure::TimedOut,
            message: format!(
                "no TLS answer from {server} within {limit:?} (a busy server, or no TLS on this port: is TLS \
                 enabled there?)"
            ),
        }
    }

    /// Classifies the error of a handshake with `host` (the name its
    /// certificate must carry), shown as `server` (`host:port`); `trust`
    /// names the trusted roots ("the CA file /etc/ca.pem").
    pub(crate) fn from_io(err: io::Error, host: &str, server: &str, trust: &str) -> Self {
        let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
            let hint = if err.kind() == io::ErrorKind::UnexpectedEof {
                " (the server closed the connection: is TLS enabled on this port?)"
            } else {
                ""
            };
            return Self {
                failure: HandshakeFailure::Io,
                message: format!("the connection to {server} broke during the TLS handshake: {err}{hint}"),
            };
        };
        use HandshakeFailure::*;
        let (failure, what) = match tls {
            rustls::Error::InvalidCertificate(c) => (Certificate, certificate_problem(c, host, trust)),
            rustls::Error::NoCertificatesPresented => (Certificate, "it presented no certificate".to_owned()),
            rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. } => {
                (NotTls, "it did not answer in TLS (is TLS enabled on this port?)".to_owned())
            }
            rustls::Error::AlertReceived(alert) => (Refused, format!("it ended the TLS handshake (alert: {alert:?})")),
            rustls::Error::PeerIncompatible(why) => {
                (Refused, format!("no TLS version or cipher suite in common ({why:?})"))
            }
            other => (Refused, format!("the TLS handshake failed: {other}")),
        };
        Self { failure, message: format!("TLS with {server} refused: {what}") }
    }

    /// What went wrong.
    pub fn failure(&self) -> HandshakeFailure {
        self.failure
    }

    /// As a [`TargetError`], prefixed with what was being done.
    pub fn into_target_error(self, doing: &str) -> TargetError {
        let message = format!("{doing}: {}", self.message);
        match self.failure {
            HandshakeFailure::Io | HandshakeFailure::TimedOut => TargetError::Unavailable { message },
            _ => TargetError::Other { message },
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandshakeError {}

fn certificate_problem(c: &CertificateError, host: &str, trust: &str) -> String {
    match c {
        CertificateError::UnknownIssuer => {
            format!("its certificate is not signed by a trusted CA (trusted: {trust})")
        }
        CertificateError::NotValidForName => format!("its certificate is not valid for the host name {host}"),
        CertificateError::NotValidForNameContext { presented, .. } => format!(
            "its certificate is not valid for the host name {host} (it names {})",
            if presented.is_empty() {
                "no host".to_owned()
            } else {
                presented.iter().map(|n| bare_name(n)).collect::<Vec<_>>().join(", ")
            }
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "its certificate has expired".to_owned(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "its certificate is not valid yet (check this machine's clock)".to_owned()
        }
        CertificateError::Revoked => "its certificate is revoked".to_owned(),
        CertificateError::BadSignature => format!(
            "its certificate is not signed by a trusted CA: its signature does not verify with the key of \
             a trusted CA of the same name (trusted: {trust})"
        ),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "its certificate is not meant for a TLS server".to_owned()
        }
        other => format!("its certificate was refused ({other})"),
    }
}

/// `localhost` out of rustls' `DnsName("localhost")` (`127.0.0.1` out of
/// `IpAddress(127.0.0.1)`), with control characters escaped: the name comes
/// from the server.
fn bare_name(presented: &str) -> String {
    let inner = match (presented.find('('), presented.rfind(')')) {
        (Some(open), Some(close)) if open < close => presented[open + 1..close].trim_matches('"'),
        _ => presented,
    };
    inner.chars().flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] }).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed CA certificate (a public certificate, no key).
    pub(crate) const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBqjCCAU+gAwIBAgIUKLJd40LZBOuUuEKf0RJeAgPTr9YwCgYIKoZIzj0EAwIw
ITEfMB0GA1UEAwwWcmVrZXktdGxzIHVuaXQtdGVzdCBDQTAgFw0yNjEyMDMwODAx
MzFaGA8yMTI2MTEwOTA4MDEzMVowITEfMB0GA1UEAwwWcmVrZXktdGxzIHVuaXQt
dGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABPAh8S+tXAEc7FT+YHrf
KmTip0QBrL6Dg8LnmF5VF06Dplno5QEwHI/KTu8mQMEjmFMqTA8UgMorH/FYWozW
PvCjYzBhMB0GA1UdDgQWBBRyCvKV340umDS8Pzv7Go9SVYkWkzAfBgNVHSMEGDAW
gBRyCvKV340umDS8Pzv7Go9SVYkWkzAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB
/wQEAwIBBjAKBggqhkjOPQQDAgNJADBGAiEArTJq0Z40lKD0XVtn2N7+TGob+2wV
mu0AMSZcT64yC1sCIQD0GLjUcKHuzmA6kMhR0VVEKRZMe8yZlRC3uhMRpiwaJA==
-----END CERTIFICATE-----
";

    /// Writes `contents` to a fresh file in a directory of this test process.
    pub(crate) fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rekey-tls-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn wrapped(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn certificate_problems_are_named() {
        let e = HandshakeError::from_io(
            wrapped(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
            "db",
            "db:5432",
            "the CA file /ca.pem",
        );
        assert_eq!(e.failure(), HandshakeFailure::Certificate);
        assert_eq!(
            e.to_string(),
            "TLS with db:5432 refused: its certificate is not signed by a trusted CA (trusted: the CA file /ca.pem)"
        );
        let t = e.into_target_error("admin login");
        assert!(matches!(&t, TargetError::Other { message } if message.starts_with("admin login: TLS with db:5432")));
        assert!(!t.is_retryable());

        let e = HandshakeError::from_io(
            wrapped(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
                presented: vec!["DnsName(\"localhost\")".into(), "IpAddress(10.0.0.1)".into(), "odd\u{1b}[0m".into()],
            })),
            "127.0.0.1",
            "127.0.0.1:1",
            "x",
        );
        assert!(
            e.to_string().ends_with(
                "its certificate is not valid for the host name 127.0.0.1 (it names localhost, 10.0.0.1, odd\\u{1b}[0m)"
            ),
            "{e}"
        );
        for c in [CertificateError::Expired, CertificateError::NotValidYet, CertificateError::BadSignature] {
            let e = HandshakeError::from_io(wrapped(rustls::Error::InvalidCertificate(c)), "h", "h:1", "x");
            assert_eq!(e.failure(), HandshakeFailure::Certificate);
        }
    }

    #[test]
    fn a_server_without_tls_and_a_broken_connection_are_told_apart() {
        let e = HandshakeError::from_io(
            wrapped(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)),
            "h",
            "h:1",
            "x",
        );
        assert_eq!(e.failure(), HandshakeFailure::NotTls);
        assert!(e.to_string().contains("did not answer in TLS"), "{e}");
        assert!(matches!(e.into_target_error("x"), TargetError::Other { .. }));

        let e = HandshakeError::from_io(io::Error::new(io::ErrorKind::UnexpectedEof, "eof"), "h", "h:1", "x");
        assert_eq!(e.failure(), HandshakeFailure::Io);
        assert!(e.into_target_error("x").is_retryable());

        let e = HandshakeError::timed_out("h:1", std::time::Duration::from_secs(2));
        assert_eq!(e.failure(), HandshakeFailure::TimedOut);
        assert!(e.to_string().contains("no TLS answer from h:1 within 2s"), "{e}");
        assert!(e.into_target_error("x").is_retryable());

        let e = HandshakeError::not_offered("h:1");
        assert_eq!(e.failure(), HandshakeFailure::NotTls);
        assert!(e.to_string().contains("does not offer it"), "{e}");
    }
}
