//! [`ClientTls`]: a rustls client configuration built from rekey's trust
//! rules, and the handshake over any stream.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{HandshakeError, TlsSetupError};
use crate::roots::{ca_file_roots, check_ca_file, platform_roots};

/// Which certificates may vouch for a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The platform's root certificates (loaded once per process).
    Platform,
    /// The platform's root certificates and those of this PEM file (one or
    /// several `CERTIFICATE` blocks): a private CA beside the public ones.
    /// A machine without platform roots trusts the file alone.
    PlatformAndCaFile(PathBuf),
    /// Only the certificates of this PEM file: what
    /// [`Verify::ChainOnly`] needs, since with the platform's roots any
    /// publicly trusted certificate would pass.
    CaFileOnly(PathBuf),
}

impl Trust {
    /// The platform's roots, and `ca_file`'s certificates if given.
    pub fn platform_and(ca_file: Option<PathBuf>) -> Self {
        ca_file.map_or(Trust::Platform, Trust::PlatformAndCaFile)
    }

    /// Checks that the trust roots can be loaded (for a CA file: it is
    /// readable and holds at least one usable certificate).
    pub fn check(&self) -> Result<(), TlsSetupError> {
        match self {
            Trust::Platform => platform_roots().map(drop),
            Trust::PlatformAndCaFile(path) | Trust::CaFileOnly(path) => check_ca_file(path).map(drop),
        }
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsSetupError> {
        match self {
            Trust::Platform => platform_roots(),
            Trust::PlatformAndCaFile(path) => {
                let mut roots = ca_file_roots(path)?;
                if let Ok(platform) = platform_roots() {
                    roots.extend(platform.roots.iter().cloned());
                }
                Ok(Arc::new(roots))
            }
            Trust::CaFileOnly(path) => ca_file_roots(path).map(Arc::new),
        }
    }
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trust::Platform => f.write_str("the platform's root certificates"),
            Trust::PlatformAndCaFile(path) => {
                write!(f, "the platform's root certificates and the CA file {}", path.display())
            }
            Trust::CaFileOnly(path) => write!(f, "the CA file {}", path.display()),
        }
    }
}

/// What is verified of the server's certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verify {
    /// The chain up to a trusted root, and that the certificate names the
    /// host connected to (a DNS name or an IP address in its subject
    /// alternative names).
    #[default]
    Full,
    /// Only the chain: any certificate the trusted roots signed is accepted,
    /// whatever host it names. Only with [`Trust::CaFileOnly`].
    ChainOnly,
}

/// A TLS client configuration: trust roots, verification, optional ALPN
/// protocols. Cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    trust: Trust,
}

impl ClientTls {
    /// Builds the configuration: loads the roots (reading a CA file now),
    /// sets up verification and offers `alpn` protocols (e.g.
    /// `b"postgresql"`; none for Redis). Uses the aws-lc-rs provider
    /// explicitly, so it works whatever process-wide rustls provider is (or
    /// is not) installed.
    ///
    /// [`Verify::ChainOnly`] with the platform's roots is refused.
    pub fn new(trust: &Trust, verify: Verify, alpn: &[&[u8]]) -> Result<Self, TlsSetupError> {
        if verify == Verify::ChainOnly && !matches!(trust, Trust::CaFileOnly(_)) {
            return Err(TlsSetupError::new(
                "verifying the certificate chain without the host name needs a CA file alone: with the \
                 platform's roots any publicly trusted certificate would pass"
                    .into(),
            ));
        }
        let roots = trust.roots()?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::new(format!("the TLS provider cannot be used: {e}")))?;
        let mut config = match verify {
            Verify::Full => builder.with_root_certificates(roots).with_no_client_auth(),
            Verify::ChainOnly => {
                let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| TlsSetupError::new(format!("cannot verify with {trust}: {e}")))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly { inner }))
                    .with_no_client_auth()
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Self { config: Arc::new(config), trust: trust.clone() })
    }

    /// The trust roots this configuration uses.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Runs the TLS handshake over `stream` with the server `host` (a DNS
    /// name or an IP address, the name its certificate must carry), within
    /// `limit`; `server` is how error messages name it (e.g. `host:port`).
    pub async fn handshake<S>(
        &self,
        host: &str,
        server: &str,
        stream: S,
        limit: Duration,
    ) -> Result<TlsStream<S>, HandshakeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let name = ServerName::try_from(bare.to_owned()).map_err(|_| {
            HandshakeError::from_io(
                std::io::Error::other(rustls::Error::InvalidCertificate(CertificateError::NotValidForName)),
                bare,
                server,
                &self.trust.to_string(),
            )
        })?;
        let handshake = TlsConnector::from(self.config.clone()).connect(name, stream);
        match tokio::time::timeout(limit, handshake).await {
            Err(_) => Err(HandshakeError::timed_out(server, limit)),
            Ok(r) => r.map_err(|e| HandshakeError::from_io(e, bare, server, &self.trust.to_string())),
        }
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls").field("trust", &self.trust).field("alpn", &self.config.alpn_protocols).finish()
    }
}

/// Verifies the chain like rustls' WebPKI verifier, but accepts a
/// certificate issued for another host name.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // WebPKI checks the chain (and validity dates) first and the name
        // last: a name error means everything else passed.
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::tests::{TEST_CA_PEM, temp_file};

    #[test]
    fn builds_with_platform_roots_or_a_ca_file() {
        let tls = ClientTls::new(&Trust::Platform, Verify::Full, &[]).unwrap();
        assert_eq!(tls.trust(), &Trust::Platform);
        let ca = temp_file("ca.pem", TEST_CA_PEM.as_bytes());
        let tls = ClientTls::new(&Trust::CaFileOnly(ca.clone()), Verify::ChainOnly, &[b"postgresql"]).unwrap();
        assert_eq!(tls.config.alpn_protocols, [b"postgresql".to_vec()]);
        assert!(format!("{tls:?}").contains("ca.pem"));
        assert!(Trust::CaFileOnly(ca.clone()).check().is_ok());
        let e = ClientTls::new(&Trust::CaFileOnly("/nonexistent/ca.pem".into()), Verify::Full, &[]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        // Chain-only verification against public roots is refused.
        for trust in [Trust::Platform, Trust::platform_and(Some(ca.clone()))] {
            let e = ClientTls::new(&trust, Verify::ChainOnly, &[]).unwrap_err();
            assert!(e.to_string().contains("needs a CA file alone"), "{e}");
        }
    }

    #[test]
    fn a_ca_file_adds_to_the_platform_roots_or_stands_alone() {
        let ca = temp_file("ca.pem", TEST_CA_PEM.as_bytes());
        let platform = platform_roots().unwrap().len();
        assert_eq!(Trust::platform_and(Some(ca.clone())).roots().unwrap().len(), platform + 1);
        assert_eq!(Trust::platform_and(None).roots().unwrap().len(), platform);
        assert_eq!(Trust::CaFileOnly(ca.clone()).roots().unwrap().len(), 1);
        assert!(
            Trust::platform_and(Some(ca.clone())).to_string().contains("platform's root certificates and the CA file")
        );
    }

    /// A server that answers a ClientHello with plain text (a Redis port
    /// without TLS does) is "not TLS", told apart from certificate problems.
    #[tokio::test]
    async fn a_plaintext_server_is_reported_as_not_tls() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"-ERR unknown command\r\n").await;
        });
        let tls = ClientTls::new(&Trust::Platform, Verify::Full, &[]).unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let e = tls.handshake("localhost", &addr.to_string(), tcp, Duration::from_secs(5)).await.map(drop).unwrap_err();
        assert_eq!(e.failure(), crate::error::HandshakeFailure::NotTls, "{e}");
    }

    /// A server that never answers (a Redis port without TLS waits for the
    /// end of a line that a ClientHello may not contain) is a timeout.
    #[tokio::test]
    async fn a_silent_server_is_a_handshake_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { listener.accept().await.unwrap() });
        let tls = ClientTls::new(&Trust::Platform, Verify::Full, &[]).unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let e = tls.handshake("localhost", "silent", tcp, Duration::from_millis(200)).await.map(drop).unwrap_err();
        assert_eq!(e.failure(), crate::error::HandshakeFailure::TimedOut, "{e}");
        drop(server.await.unwrap());
    }
}
