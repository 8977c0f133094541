//! The adapter between tokio-postgres' TLS traits and [`rekey_tls`]: a few
//! lines instead of `tokio-postgres-rustls`, whose certificate parsing (for
//! channel binding) would add a second generation of the `der`/`const-oid`
//! crates to the tree.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rekey_tls::{ClientTls, HandshakeError, TlsStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// Makes the TLS connector for one connection attempt.
pub(crate) struct MakeRekeyTls {
    tls: ClientTls,
    server: String,
    limit: Duration,
}

impl MakeRekeyTls {
    /// `server` names the server in error messages (`host:port`); the
    /// handshake must finish within `limit`.
    pub(crate) fn new(tls: ClientTls, server: String, limit: Duration) -> Self {
        Self { tls, server, limit }
    }
}

impl<S> MakeTlsConnect<S> for MakeRekeyTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RekeyTlsStream<S>;
    type TlsConnect = RekeyTlsConnect;
    type Error = HandshakeError;

    /// Never fails: a host that cannot be a certificate name (a Unix-socket
    /// path) fails in the handshake, after the server has said whether it
    /// offers TLS at all.
    fn make_tls_connect(&mut self, host: &str) -> Result<RekeyTlsConnect, HandshakeError> {
        Ok(RekeyTlsConnect {
            tls: self.tls.clone(),
            host: host.to_owned(),
            server: self.server.clone(),
            limit: self.limit,
        })
    }
}

/// The TLS handshake with one server.
pub(crate) struct RekeyTlsConnect {
    tls: ClientTls,
    host: String,
    server: String,
    limit: Duration,
}

impl<S> TlsConnect<S> for RekeyTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RekeyTlsStream<S>;
    type Error = HandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<RekeyTlsStream<S>, HandshakeError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(
            async move { self.tls.handshake(&self.host, &self.server, stream, self.limit).await.map(RekeyTlsStream) },
        )
    }
}

/// A TLS stream as tokio-postgres wants it. No channel binding: SCRAM runs
/// as `SCRAM-SHA-256` inside the verified TLS session.
pub(crate) struct RekeyTlsStream<S>(TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RekeyTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RekeyTlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RekeyTlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}
