//! [`PostgresVerifier`]: log in with the candidate and run `SELECT 1`.

use async_trait::async_trait;
use rekey_core::{SecretData, SecretString, TargetError, Verifier, VerifyContext, VerifyError};

use crate::config::{Endpoint, PostgresConfig};
use crate::conn::login;
use crate::sql::check_role_name;

/// A [`Verifier`] that logs in to PostgreSQL with the candidate credential and
/// runs `SELECT 1`.
///
/// The role is the candidate's `username` field, or else the role given with
/// [`with_role`](Self::with_role). The password is the field being rotated
/// ([`VerifyContext::field`]), else the whole value of a
/// [`SecretData::Text`], else the `password` field.
///
/// A refused login (or any answer from the server saying no) is
/// [`VerifyError::Failed`]; no answer is [`VerifyError::Unavailable`]; the
/// time limit of the [`PostgresConfig`] is [`VerifyError::TimedOut`]. It holds
/// no admin credential. It logs in with the TLS settings of the
/// [`PostgresConfig`]; settings that
/// [`check_transport`](PostgresConfig::check_transport) refuses, and a server
/// certificate that does not verify, fail the check ([`VerifyError::Failed`]).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use rekey_postgres::{PostgresConfig, PostgresVerifier};
///
/// let server = PostgresConfig::from_url("postgres://postgres:admin-pw@127.0.0.1:5432/postgres")?;
/// let verifier = PostgresVerifier::new(&server).with_role("app")?;
/// // register `verifier` with the rotation manager under the name "postgres"
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresVerifier {
    endpoint: Endpoint,
    role: Option<String>,
    name: String,
}

impl PostgresVerifier {
    /// A verifier for the server (host, port, database, time limit, TLS
    /// settings) of `config`; its admin user and password are not kept.
    /// Named `"postgres"`.
    pub fn new(config: &PostgresConfig) -> Self {
        Self { endpoint: config.endpoint.clone(), role: None, name: "postgres".into() }
    }

    /// Logs in as `role` when the candidate has no `username` field.
    pub fn with_role(self, role: impl Into<String>) -> Result<Self, TargetError> {
        let role = role.into();
        check_role_name(&role)?;
        Ok(self.with_role_unchecked(role))
    }

    pub(crate) fn with_role_unchecked(mut self, role: String) -> Self {
        self.role = Some(role);
        self
    }

    /// Registers under `name` instead of `"postgres"` (to have several).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// A warning when the TLS settings are weaker than the default (see
    /// [`PostgresConfig::transport_warning`]).
    pub fn transport_warning(&self) -> Option<String> {
        self.endpoint.transport.warning(&self.endpoint.host, self.endpoint.port)
    }

    fn credential<'d>(
        &'d self,
        candidate: &'d SecretData,
        field: Option<&str>,
    ) -> Result<(&'d str, &'d SecretString), VerifyError> {
        rekey_core::verify::login_credential(candidate, field, self.role.as_deref())
    }
}

#[async_trait]
impl Verifier for PostgresVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn verify(&self, ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        let (role, password) = self.credential(ctx.candidate, ctx.field)?;
        check_role_name(role).map_err(|e| VerifyError::Failed(format!("the role name is not valid: {e}")))?;
        match tokio::time::timeout(self.endpoint.timeout, login(&self.endpoint, role, password)).await {
            Err(_) => Err(VerifyError::TimedOut(self.endpoint.timeout)),
            Ok(Ok(())) => Ok(()),
            Ok(Err(TargetError::Unavailable { message })) => Err(VerifyError::Unavailable(message)),
            Ok(Err(TargetError::Rejected { message } | TargetError::InvalidInput { message })) => {
                Err(VerifyError::Failed(message))
            }
            Ok(Err(e)) => Err(VerifyError::Failed(e.to_string())),
        }
    }
}
