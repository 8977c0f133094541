//! Redis as a rekey credential target: rotating an ACL user's passwords.
//!
//! # Overview
//!
//! A credential lives in the secret store *and* in the system that checks it.
//! This crate is that second place for Redis (6.0 or later):
//! [`RedisAclTarget`] implements [`rekey_core::CredentialTarget`] for one ACL
//! user, and [`RedisVerifier`] implements [`rekey_core::Verifier`]
//! (authenticate with the candidate, `PING`).
//!
//! # Concepts
//!
//! * **Several passwords per user.** `ACL SETUSER app #<hash-of-new>` adds a
//!   password and keeps the old one; `ACL SETUSER app !<hash-of-old>` later
//!   removes exactly the old one. Consumers switch at their own pace: the
//!   dual-write strategy's zero-downtime path.
//! * **Hashes, not passwords, in commands** ([`PasswordMode::Hashed`], the
//!   default): Redis stores the SHA-256 of each password anyway, so rekey sends
//!   that, and the plain password never appears in `MONITOR`, `SLOWLOG` or an
//!   error reply. Redis echoes a rejected rule in its error reply, so rekey
//!   never passes such replies on.
//! * **Converging, idempotent operations**: each reads the user first and
//!   sends only the rules still needed.
//! * **TLS** ([`RedisConfig`]): `rediss://` URLs with certificate and
//!   host-name verification (rustls; the platform's roots or a CA file);
//!   `redis://` only to a local host, or with an explicit opt-out that
//!   [`RedisConfig::transport_warning`] reports.
//!
//! # Usage
//!
//! ```no_run
//! # async fn demo() -> Result<(), rekey_core::TargetError> {
//! use rekey_core::{CredentialTarget, SecretData};
//! use rekey_redis::RedisAclTarget;
//!
//! let target = RedisAclTarget::new("redis://default:admin-pw@127.0.0.1:6379", "app")?;
//! let (old, new) = (SecretData::text("old-pw"), SecretData::text("new-pw"));
//! target.apply(&new, Some(&old)).await?;  // old and new both work
//! target.test(&new).await?;               // AUTH app new-pw; PING
//! target.revoke(&old, &new).await?;       // only new works
//! # Ok(()) }
//! ```
//!
//! Over the network, with a private CA:
//!
//! ```no_run
//! # fn demo() -> Result<(), rekey_core::TargetError> {
//! use rekey_redis::{RedisAclTarget, RedisConfig};
//! let admin = RedisConfig::from_url("rediss://rekey:admin-pw@cache.internal:6380")?
//!     .with_ca_file("/etc/rekey/cache-ca.pem")?;
//! let target = RedisAclTarget::from_config(admin, "app")?;
//! # Ok(()) }
//! ```
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

mod acl;
mod config;
mod conn;
mod error;
mod target;
mod verifier;

pub use config::{DEFAULT_TIMEOUT, RedisConfig};
pub use target::{DEFAULT_CREATION_RULES, PASSWORD_FIELD, PasswordMode, RedisAclTarget, USERNAME_FIELD};
pub use verifier::RedisVerifier;
