//! [`PostgresTarget`]: role passwords as a [`CredentialTarget`].

use async_trait::async_trait;
use rand::Rng;
use rekey_core::{CredentialTarget, SecretData, TargetCapabilities, TargetError};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::Client;

use crate::config::PostgresConfig;
use crate::conn::{connect, login, within};
use crate::error::{Side, map_error};
use crate::sql::{check_role_name, quote_ident, quote_literal};
use crate::verifier::PostgresVerifier;

pub use rekey_core::verify::{PASSWORD_FIELD, USERNAME_FIELD};

/// PostgreSQL login roles as a [`CredentialTarget`].
///
/// Passwords are set with `ALTER ROLE <role> PASSWORD '<verifier>'`, where the
/// verifier is the SCRAM-SHA-256 hash computed here (what `psql`'s
/// `\password` does): the plain password never reaches the server, its
/// statement log or `pg_stat_activity`. Every operation opens its own
/// connection, within the [time limit](PostgresConfig::with_timeout).
///
/// Two modes:
///
/// * [`single_user`](Self::single_user): one role whose password is rotated in
///   place (immediate and staged strategies). The secret is the password
///   ([`SecretData::Text`]) or a [`SecretData::Fields`] value with a
///   `password` field (and, optionally, a `username` field, which must then
///   name the role).
/// * [`alternating`](Self::alternating): two login roles that are both members
///   of one group role holding the grants, the blue-green strategy's two
///   credential sets (AWS's "alternating users" rotation). The secret is
///   [`SecretData::Fields`] with `username` (one of the two roles) and
///   `password`; a rotation re-keys the role the active credential does *not*
///   name, so the active one keeps working.
///
/// What each method does:
///
/// | method | single user | alternating |
/// |---|---|---|
/// | `apply(candidate, _)` | sets the role's password | sets the password of `candidate.username`; refused if `current` names the same role |
/// | `test(credential)` | logs in as the role, `SELECT 1` | logs in as `credential.username`, `SELECT 1` |
/// | `revoke(revoked, keep)` | sets the password to `keep`'s (a role has one password) | if `revoked` still logs in, re-keys its role to a random password nobody learns (a newer password of that role is left alone); `keep`'s role is not touched; if both name the same role, sets `keep`'s password |
///
/// Errors: a refused test login is [`TargetError::Rejected`]; a refused admin
/// login or a missing privilege (SQLSTATE 42501, e.g. an admin without
/// `CREATEROLE`) is [`TargetError::PermissionDenied`]; no answer (refused,
/// reset, time limit) is [`TargetError::Unavailable`]; a bad role name, an
/// unknown role or a secret of the wrong shape is [`TargetError::InvalidInput`].
/// A server certificate that the trusted CAs did not sign or that names
/// another host, or a server that does not offer TLS when it is required, is
/// [`TargetError::Other`] (retrying will not help). No message contains a
/// password or a verifier.
///
/// A failure before anything was sent to the server (the admin login, a
/// candidate of the wrong shape) is marked
/// [`nothing_changed`](TargetError::nothing_changed), so the engine does not
/// try to undo an `apply` that never reached the role; match on
/// [`TargetError::unmarked`] for the kind.
///
/// The admin connection and test logins use the TLS settings of the
/// [`PostgresConfig`] (verified TLS except to a local host by default).
///
/// Must be used inside a Tokio runtime.
///
/// ```no_run
/// # async fn demo() -> Result<(), rekey_core::TargetError> {
/// use rekey_core::{CredentialTarget, SecretData};
/// use rekey_postgres::{PostgresConfig, PostgresTarget};
///
/// let admin = PostgresConfig::from_url("postgres://postgres:admin-pw@127.0.0.1:5432/postgres")?;
/// let target = PostgresTarget::alternating(admin, ["app_blue", "app_green"], "app")?;
/// target.ensure_roles().await?; // creates app, app_blue, app_green if missing
///
/// let active = SecretData::fields([("username", "app_blue"), ("password", "current-pw")]);
/// let candidate = SecretData::fields([("username", "app_green"), ("password", "new-pw")]);
/// target.apply(&candidate, Some(&active)).await?; // app_blue untouched
/// target.test(&candidate).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresTarget {
    config: PostgresConfig,
    mode: Mode,
}

#[derive(Debug, Clone)]
enum Mode {
    Single { role: String },
    Alternating { roles: [String; 2], group: String },
}

impl PostgresTarget {
    /// Rotates the password of one role, `role`, administered through
    /// `config`. A role name that PostgreSQL cannot hold unchanged (empty,
    /// with a NUL, longer than 63 bytes) and TLS settings that
    /// [`check_transport`](PostgresConfig::check_transport) refuses are
    /// [`TargetError::InvalidInput`].
    pub fn single_user(config: PostgresConfig, role: impl Into<String>) -> Result<Self, TargetError> {
        let role = role.into();
        check_role_name(&role)?;
        config.check_transport()?;
        Ok(Self { config, mode: Mode::Single { role } })
    }

    /// Alternates between two login roles, `roles`, both members of `group`
    /// (which holds the grants). The three names must be valid and distinct,
    /// and the TLS settings usable, as for [`single_user`](Self::single_user).
    pub fn alternating(
        config: PostgresConfig,
        roles: [impl Into<String>; 2],
        group: impl Into<String>,
    ) -> Result<Self, TargetError> {
        let [a, b] = roles;
        let (a, b, group) = (a.into(), b.into(), group.into());
        for n in [&a, &b, &group] {
            check_role_name(n)?;
        }
        if a == b || a == group || b == group {
            return Err(TargetError::InvalidInput {
                message: "the two alternating roles and the group role must be three different roles".into(),
            });
        }
        config.check_transport()?;
        Ok(Self { config, mode: Mode::Alternating { roles: [a, b], group } })
    }

    /// The admin connection settings.
    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }

    /// The login role(s) whose passwords this target sets: one in single-user
    /// mode, two in alternating mode.
    pub fn roles(&self) -> &[String] {
        match &self.mode {
            Mode::Single { role } => std::slice::from_ref(role),
            Mode::Alternating { roles, .. } => roles,
        }
    }

    /// The group role of alternating mode.
    pub fn group_role(&self) -> Option<&str> {
        match &self.mode {
            Mode::Single { .. } => None,
            Mode::Alternating { group, .. } => Some(group),
        }
    }

    /// A [`PostgresVerifier`] for the same server (no admin credentials in
    /// it); in single-user mode it logs in as the role.
    pub fn verifier(&self) -> PostgresVerifier {
        let v = PostgresVerifier::new(&self.config);
        match &self.mode {
            Mode::Single { role } => v.with_role_unchecked(role.clone()),
            Mode::Alternating { .. } => v,
        }
    }

    /// Creates the roles this target needs if they do not exist; safe to run
    /// any number of times (and concurrently).
    ///
    /// * single user: `CREATE ROLE <role> LOGIN`;
    /// * alternating: `CREATE ROLE <group> NOLOGIN`, then for each login role
    ///   `CREATE ROLE <role> LOGIN IN ROLE <group>`, and for roles that
    ///   already existed `GRANT <group> TO <role>`.
    ///
    /// New roles have no password (they cannot log in until
    /// [`apply`](CredentialTarget::apply)). Existing roles keep their
    /// attributes and passwords. Grant the application's privileges to the
    /// group role; both login roles inherit them. Needs `CREATEROLE`.
    pub async fn ensure_roles(&self) -> Result<(), TargetError> {
        self.with_admin("ensuring the roles exist", async |client: &Client| {
            match &self.mode {
                Mode::Single { role } => {
                    create_role_if_missing(client, role, "LOGIN").await?;
                }
                Mode::Alternating { roles, group } => {
                    create_role_if_missing(client, group, "NOLOGIN").await?;
                    for role in roles {
                        let attrs = format!("LOGIN IN ROLE {}", quote_ident(group).map_err(Failure::Target)?);
                        if !create_role_if_missing(client, role, &attrs).await? {
                            let sql = format!(
                                "GRANT {} TO {}",
                                quote_ident(group).map_err(Failure::Target)?,
                                quote_ident(role).map_err(Failure::Target)?
                            );
                            client.batch_execute(&sql).await.map_err(Failure::Pg)?;
                        }
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// The role and password `data` means in this target's mode.
    fn resolve<'d>(&self, data: &'d SecretData) -> Result<(String, &'d SecretString), TargetError> {
        let invalid = |m: &str| TargetError::InvalidInput { message: m.to_owned() };
        let password = match data {
            SecretData::Text(p) => p,
            SecretData::Fields(_) => {
                data.field(PASSWORD_FIELD).ok_or_else(|| invalid("the secret has no `password` field"))?
            }
        };
        if password.expose_secret().is_empty() {
            return Err(invalid("the password is empty"));
        }
        if password.expose_secret().contains('\0') {
            return Err(invalid("the password contains a NUL character"));
        }
        let username = data.field(USERNAME_FIELD).map(|u| u.expose_secret());
        match &self.mode {
            Mode::Single { role } => match username {
                Some(u) if u != role => Err(TargetError::InvalidInput {
                    message: format!("the secret's username `{u}` is not the role `{role}` this target rotates"),
                }),
                _ => Ok((role.clone(), password)),
            },
            Mode::Alternating { roles, .. } => match username {
                None => Err(invalid("alternating roles need a secret with `username` and `password` fields")),
                Some(u) if roles.iter().any(|r| r == u) => Ok((u.to_owned(), password)),
                Some(u) => Err(TargetError::InvalidInput {
                    message: format!(
                        "the secret's username `{u}` is neither `{}` nor `{}`, the two alternating roles",
                        roles[0], roles[1]
                    ),
                }),
            },
        }
    }

    /// Sets `role`'s password to the SCRAM verifier of `password`.
    async fn set_password(&self, role: &str, password: &[u8]) -> Result<(), TargetError> {
        let verifier = postgres_protocol::password::scram_sha_256(password);
        let sql = format!("ALTER ROLE {} PASSWORD {}", quote_ident(role)?, quote_literal(&verifier)?);
        let doing = format!("setting the password of role `{role}`");
        let secrets = [verifier.as_str(), std::str::from_utf8(password).unwrap_or("")];
        self.with_admin_redacting(&doing, &secrets, async |client: &Client| {
            client.batch_execute(&sql).await.map_err(Failure::Pg)
        })
        .await
    }

    /// Sets `role`'s password to 32 random bytes that are never disclosed.
    async fn set_random_password(&self, role: &str) -> Result<(), TargetError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.set_password(role, hex.as_bytes()).await
    }

    async fn with_admin<T>(
        &self,
        doing: &str,
        work: impl AsyncFnOnce(&Client) -> Result<T, Failure>,
    ) -> Result<T, TargetError> {
        self.with_admin_redacting(doing, &[], work).await
    }

    /// Connects as the admin, runs `work`, all within the time limit, and maps
    /// any error (removing the admin password and `secrets` from messages).
    async fn with_admin_redacting<T>(
        &self,
        doing: &str,
        secrets: &[&str],
        work: impl AsyncFnOnce(&Client) -> Result<T, Failure>,
    ) -> Result<T, TargetError> {
        let admin_pw = self.config.password().expose_secret();
        let mut all = vec![admin_pw];
        all.extend_from_slice(secrets);
        let endpoint = &self.config.endpoint;
        within(endpoint, doing, async {
            let login = format!("{doing}: admin login");
            // Nothing is sent before the admin session is open: a refused
            // login changed nothing, so a failed apply needs no undo.
            let client = connect(endpoint, self.config.user(), admin_pw.as_bytes(), Side::Admin, &login, &all)
                .await
                .map_err(TargetError::nothing_changed)?;
            work(&client).await.map_err(|f| match f {
                Failure::Pg(e) => map_error(&e, Side::Admin, doing, &endpoint.server(), &all),
                Failure::Target(e) => e,
            })
        })
        .await
    }
}

/// A failure inside an admin session: a driver error (mapped afterwards) or
/// an already typed one.
enum Failure {
    Pg(tokio_postgres::Error),
    Target(TargetError),
}

/// `CREATE ROLE <name> <attrs>` unless it exists; whether it was created.
async fn create_role_if_missing(client: &Client, name: &str, attrs: &str) -> Result<bool, Failure> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", &[&name])
        .await
        .map_err(Failure::Pg)?
        .is_some();
    if exists {
        return Ok(false);
    }
    let sql = format!("CREATE ROLE {} {attrs}", quote_ident(name).map_err(Failure::Target)?);
    match client.batch_execute(&sql).await {
        Ok(()) => Ok(true),
        // Created concurrently by someone else since the check: fine.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) => Ok(false),
        Err(e) => Err(Failure::Pg(e)),
    }
}

#[async_trait]
impl CredentialTarget for PostgresTarget {
    fn name(&self) -> &str {
        "postgres"
    }

    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities { concurrent_credentials: false }
    }

    async fn apply(&self, candidate: &SecretData, current: Option<&SecretData>) -> Result<(), TargetError> {
        let (role, password) = self.resolve(candidate).map_err(TargetError::nothing_changed)?;
        if let (Mode::Alternating { .. }, Some(current)) = (&self.mode, current) {
            let (active, _) = self.resolve(current).map_err(TargetError::nothing_changed)?;
            if active == role {
                return Err(TargetError::InvalidInput {
                    message: format!(
                        "the candidate re-keys role `{role}`, which the current credential uses; \
                         alternating rotation re-keys the other role"
                    ),
                }
                .nothing_changed());
            }
        }
        self.set_password(&role, password.expose_secret().as_bytes()).await
    }

    async fn test(&self, credential: &SecretData) -> Result<(), TargetError> {
        let (role, password) = self.resolve(credential)?;
        let doing = format!("logging in as role `{role}`");
        within(&self.config.endpoint, &doing, login(&self.config.endpoint, &role, password)).await
    }

    async fn revoke(&self, revoked: &SecretData, keep: &SecretData) -> Result<(), TargetError> {
        let (revoked_role, _) = self.resolve(revoked)?;
        let (keep_role, keep_pw) = self.resolve(keep)?;
        if revoked_role == keep_role {
            // One role, one password: keeping `keep` is revoking `revoked`.
            return self.set_password(&keep_role, keep_pw.expose_secret().as_bytes()).await;
        }
        // Alternating: only invalidate `revoked` if it still works, so that a
        // newer password of that role is never destroyed by a late retry.
        match self.test(revoked).await {
            Ok(()) => self.set_random_password(&revoked_role).await,
            Err(TargetError::Rejected { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
