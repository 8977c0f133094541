//! PostgreSQL as a rekey credential target: rotating login roles' passwords.
//!
//! # Overview
//!
//! A credential lives in the secret store *and* in the system that checks it.
//! This crate is that second place for PostgreSQL: [`PostgresTarget`]
//! implements [`rekey_core::CredentialTarget`] (make a candidate password
//! valid, test it, revoke an old one) and [`PostgresVerifier`] implements
//! [`rekey_core::Verifier`] (log in with the candidate and run `SELECT 1`).
//!
//! # Concepts
//!
//! * **No plain password on the wire.** A new password is set as a
//!   SCRAM-SHA-256 verifier computed on the client
//!   (`ALTER ROLE r PASSWORD 'SCRAM-SHA-256$4096:...'`), as `psql`'s
//!   `\password` does, so it never appears in the server's statement log.
//!   `ALTER ROLE` takes no bind parameters: the role name is a quoted
//!   identifier, the verifier a quoted literal, nothing else is spliced in.
//! * **Single user** ([`PostgresTarget::single_user`]): one role, one password,
//!   changed in place; the old password stops working at once (so
//!   [`TargetCapabilities::concurrent_credentials`](rekey_core::TargetCapabilities)
//!   is `false`).
//! * **Alternating users** ([`PostgresTarget::alternating`]): two login roles
//!   in one group role that holds the grants; blue-green re-keys the role not
//!   in use, so the one in use never breaks.
//! * **TLS by default**: connections are TLS with certificate and host-name
//!   verification (rustls; the platform's roots or a CA file), except to a
//!   local host; plaintext to a remote host needs an explicit opt-out, which
//!   [`PostgresConfig::transport_warning`] reports. See [`SslMode`].
//! * **Typed errors without secrets**: see [`PostgresTarget`] for the mapping.
//!
//! # Usage
//!
//! ```no_run
//! # async fn demo() -> Result<(), rekey_core::TargetError> {
//! use rekey_core::{CredentialTarget, SecretData};
//! use rekey_postgres::{PostgresConfig, PostgresTarget};
//!
//! let admin = PostgresConfig::from_url("postgres://postgres:admin-pw@127.0.0.1:5432/postgres")?;
//! let target = PostgresTarget::single_user(admin, "app")?;
//! target.ensure_roles().await?;
//!
//! let new = SecretData::text("a-new-generated-password");
//! target.apply(&new, None).await?; // ALTER ROLE "app" PASSWORD 'SCRAM-SHA-256$...'
//! target.test(&new).await?;        // logs in as app, SELECT 1
//! # Ok(()) }
//! ```
//!
//! Over the network, with a private CA:
//!
//! ```no_run
//! # fn demo() -> Result<(), rekey_core::TargetError> {
//! use rekey_postgres::{PostgresConfig, SslMode};
//! let admin = PostgresConfig::from_url(
//!     "postgres://rekey:admin-pw@db.internal:5432/postgres?sslmode=verify-full&sslrootcert=/etc/rekey/db-ca.pem",
//! )?;
//! assert_eq!(admin.ssl_mode(), SslMode::VerifyFull);
//! # Ok(()) }
//! ```
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

mod config;
mod conn;
mod conninfo;
mod error;
mod sql;
mod target;
mod tls;
mod transport;
mod verifier;

pub use config::{DEFAULT_TIMEOUT, PostgresConfig};
pub use target::{PASSWORD_FIELD, PostgresTarget, USERNAME_FIELD};
pub use transport::SslMode;
pub use verifier::PostgresVerifier;
