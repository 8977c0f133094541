//! TLS for the connections rekey's credential targets open (PostgreSQL,
//! Redis): one implementation of the trust rules, shared by every target.
//!
//! # Overview
//!
//! A target's admin connection carries rekey's admin password and the new
//! credentials it sets; a verifier's login carries the candidate. Every such
//! connection is TLS with verification, except to a loopback host or with an
//! explicit opt-out that the target reports as a warning (see
//! [`is_local_host`]). This crate builds the TLS client side of those
//! connections on rustls (the aws-lc-rs provider the rest of the workspace
//! uses) and turns handshake failures into clear, typed
//! [`TargetError`](rekey_core::TargetError)s.
//!
//! # Concepts
//!
//! * **Trust roots** ([`Trust`]): the platform's root certificates (what
//!   `/etc/ssl/certs` holds, loaded once per process) plus, optionally, the
//!   certificates of a PEM CA file for a private CA — the same rule as the
//!   Vault store's `ca_cert`.
//! * **Verification** ([`Verify`]): the certificate chain always; the host
//!   name too ([`Verify::Full`], the default everywhere), or not
//!   ([`Verify::ChainOnly`], PostgreSQL's `sslmode=verify-ca`, which this
//!   crate only allows against a CA file alone: with the platform's roots,
//!   any publicly trusted certificate would pass).
//! * **Typed failures**: a CA file that cannot be read or holds no
//!   certificate is [`TlsSetupError`] (→ `TargetError::InvalidInput`); a
//!   certificate the trusted CAs did not sign, one for another host name, or a
//!   server that does not speak TLS is a [`HandshakeError`] (→
//!   `TargetError::Other`, not retried); a connection that broke is
//!   `TargetError::Unavailable`. No message holds a secret: only host names,
//!   file paths and the certificate's own names.
//!
//! # Usage
//!
//! ```no_run
//! # async fn demo() -> Result<(), rekey_core::TargetError> {
//! use rekey_tls::{ClientTls, Trust, Verify};
//!
//! let tls = ClientTls::new(&Trust::platform_and(Some("/etc/rekey/db-ca.pem".into())), Verify::Full, &[])
//!     .map_err(|e| e.into_target_error("PostgreSQL TLS"))?;
//! let tcp = tokio::net::TcpStream::connect(("db.internal", 5432)).await.map_err(|e| {
//!     rekey_core::TargetError::Unavailable { message: format!("connecting: {e}") }
//! })?;
//! let limit = std::time::Duration::from_secs(5);
//! let stream = tls.handshake("db.internal", "db.internal:5432", tcp, limit).await.map_err(|e| e.into_target_error("connecting"))?;
//! # drop(stream); Ok(()) }
//! ```
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

mod client;
mod error;
mod roots;

pub use client::{ClientTls, Trust, Verify};
pub use error::{HandshakeError, HandshakeFailure, TlsSetupError};
pub use rekey_core::is_local_host;
pub use tokio_rustls::client::TlsStream;
