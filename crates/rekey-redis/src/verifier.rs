//! [`RedisVerifier`]: authenticate with the candidate and `PING`.

use std::time::Duration;

use async_trait::async_trait;
use rekey_core::{SecretData, SecretString, TargetError, Verifier, VerifyContext, VerifyError};
use secrecy::ExposeSecret;

use crate::acl::check_user_name;
use crate::config::RedisConfig;
use crate::conn::login;

/// A [`Verifier`] that authenticates to Redis as an ACL user with the
/// candidate password on a fresh connection and sends `PING`.
///
/// The user is the candidate's `username` field, or else the user given with
/// [`with_user`](Self::with_user). The password is the field being rotated
/// ([`VerifyContext::field`]), else the whole value of a
/// [`SecretData::Text`], else the `password` field.
///
/// A refused login is [`VerifyError::Failed`]; no answer is
/// [`VerifyError::Unavailable`]; the time limit is [`VerifyError::TimedOut`].
/// It holds no admin credential. It connects with the TLS settings of its
/// [`RedisConfig`]; a server certificate that does not verify fails the check
/// ([`VerifyError::Failed`]).
///
/// ```no_run
/// # fn demo() -> Result<(), rekey_core::TargetError> {
/// use rekey_redis::RedisVerifier;
/// let verifier = RedisVerifier::new("redis://127.0.0.1:6379")?.with_user("app")?;
/// // register `verifier` with the rotation manager under the name "redis"
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisVerifier {
    config: RedisConfig,
    user: Option<String>,
    name: String,
}

impl RedisVerifier {
    /// A verifier for the server of `url` (`redis://host:port[/db]`, or
    /// `rediss://` for TLS) with the default TLS settings (see
    /// [`RedisConfig`]); any credentials in the URL are dropped. Named
    /// `"redis"`. A malformed URL, or plaintext to a host that is not local,
    /// is [`TargetError::InvalidInput`].
    pub fn new(url: &str) -> Result<Self, TargetError> {
        Self::from_config(&RedisConfig::from_url(url)?)
    }

    /// A verifier for the server (address, database, time limit, TLS
    /// settings) of `config`; its user and password are not kept. TLS
    /// settings that [`check_transport`](RedisConfig::check_transport)
    /// refuses are [`TargetError::InvalidInput`].
    pub fn from_config(config: &RedisConfig) -> Result<Self, TargetError> {
        config.check_transport()?;
        Ok(Self::from_checked_config(config))
    }

    pub(crate) fn from_checked_config(config: &RedisConfig) -> Self {
        Self { config: config.without_credentials(), user: None, name: "redis".into() }
    }

    /// Authenticates as `user` when the candidate has no `username` field.
    pub fn with_user(self, user: impl Into<String>) -> Result<Self, TargetError> {
        let user = user.into();
        check_user_name(&user)?;
        Ok(self.with_user_unchecked(user))
    }

    pub(crate) fn with_user_unchecked(mut self, user: String) -> Self {
        self.user = Some(user);
        self
    }

    /// Registers under `name` instead of `"redis"` (to have several).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the time limit of one check (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.with_timeout(timeout);
        self
    }

    /// A warning when the TLS settings are weaker than the default (see
    /// [`RedisConfig::transport_warning`]).
    pub fn transport_warning(&self) -> Option<String> {
        self.config.transport_warning()
    }

    fn credential<'d>(
        &'d self,
        candidate: &'d SecretData,
        field: Option<&str>,
    ) -> Result<(&'d str, &'d SecretString), VerifyError> {
        rekey_core::verify::login_credential(candidate, field, self.user.as_deref())
    }
}

#[async_trait]
impl Verifier for RedisVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn verify(&self, ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        let (user, password) = self.credential(ctx.candidate, ctx.field)?;
        check_user_name(user).map_err(|e| VerifyError::Failed(format!("the user name is not valid: {e}")))?;
        let pw = password.expose_secret();
        let timeout = self.config.timeout();
        match tokio::time::timeout(timeout, login(&self.config, user, pw)).await {
            Err(_) => Err(VerifyError::TimedOut(timeout)),
            Ok(Ok(())) => Ok(()),
            Ok(Err(TargetError::Unavailable { message })) => Err(VerifyError::Unavailable(message)),
            Ok(Err(TargetError::Rejected { message } | TargetError::InvalidInput { message })) => {
                Err(VerifyError::Failed(message))
            }
            Ok(Err(e)) => Err(VerifyError::Failed(e.to_string())),
        }
    }
}
