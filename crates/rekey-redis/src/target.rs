//! [`RedisAclTarget`]: a Redis ACL user's passwords as a [`CredentialTarget`].

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::{ErrorKind, ServerErrorKind, Value};
use rekey_core::{CredentialTarget, SecretData, TargetCapabilities, TargetError};
use secrecy::ExposeSecret;

use crate::acl::{UserState, check_user_name, parse_user, sha256_hex};
use crate::config::RedisConfig;
use crate::conn::{connect, login, within};
use crate::error::{Side, map_error};
use crate::verifier::RedisVerifier;

pub use rekey_core::verify::{PASSWORD_FIELD, USERNAME_FIELD};

/// The ACL rules a user gets when [`apply`](CredentialTarget::apply) has to
/// create it: it may authenticate and `PING`, nothing else (no keys, no
/// channels, no other commands). Give your application's rules with
/// [`RedisAclTarget::with_creation_rules`].
pub const DEFAULT_CREATION_RULES: &[&str] = &["+ping"];

/// How passwords travel in `ACL SETUSER`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordMode {
    /// As SHA-256 hashes (`#<hex>` to add, `!<hex>` to remove): the plain
    /// password never appears in a command, so not in `MONITOR`, `SLOWLOG` or
    /// an error reply. Redis stores exactly this hash for `>password` anyway.
    #[default]
    Hashed,
    /// In clear (`>password`, `<password>`), for servers that do not take
    /// hashes.
    Plain,
}

/// A Redis ACL user as a [`CredentialTarget`].
///
/// An ACL user can hold several passwords at once, so the old credential
/// stays valid while the new one is added
/// ([`concurrent_credentials`](TargetCapabilities::concurrent_credentials) is
/// `true`): the dual-write strategy's target, which revokes the old password
/// after its grace period. With the staged and immediate strategies the
/// engine revokes it right after the rotation.
///
/// | method | does |
/// |---|---|
/// | `apply(candidate, _)` | `ACL SETUSER <user> on #<sha256(candidate)>`: adds the password, keeps the others; creates the user with the [creation rules](Self::with_creation_rules) if missing |
/// | `test(credential)` | `AUTH <user> <credential>` on a fresh connection, then `PING` |
/// | `revoke(revoked, keep)` | `ACL SETUSER <user> !<sha256(revoked)>`: removes exactly that password (and adds `keep` back if it was missing) |
///
/// Each method reads the user (`ACL GETUSER`) first and sends only what is
/// missing, so repeating it changes nothing. The secret is the password
/// ([`SecretData::Text`]) or a [`SecretData::Fields`] value with a `password`
/// field (a `username` field, if present, must name the user). Every operation
/// opens its own connection, within the [time limit](Self::with_timeout).
///
/// Errors: a refused test login is [`TargetError::Rejected`]; a refused admin
/// login or `NOPERM` is [`TargetError::PermissionDenied`]; no answer (refused,
/// reset, time limit) or a busy server is [`TargetError::Unavailable`]. No
/// message contains a password or its hash: Redis echoes a rejected
/// `ACL SETUSER` rule in its error reply, so those replies are reduced to
/// their error code.
/// A failure before the user was changed (the admin login, reading the
/// user, a candidate of the wrong shape) is marked
/// [`nothing_changed`](TargetError::nothing_changed), so the engine does not
/// try to undo an `apply` that never reached the user; match on
/// [`TargetError::unmarked`] for the kind.
///
/// Changes live in the server's memory: a server that keeps its users in an
/// ACL file needs [`with_acl_save`](Self::with_acl_save) for them to survive
/// a restart.
///
/// The admin connection and test logins use the TLS settings of the
/// [`RedisConfig`]: `rediss://` with certificate and host-name verification,
/// plaintext only to a local host or with an explicit opt-out. A server
/// certificate that the trusted CAs did not sign or that names another
/// host, or a server that does not answer in TLS, is [`TargetError::Other`]
/// (retrying will not help).
///
/// Must be used inside a Tokio runtime.
///
/// ```no_run
/// # async fn demo() -> Result<(), rekey_core::TargetError> {
/// use rekey_core::{CredentialTarget, SecretData};
/// use rekey_redis::RedisAclTarget;
///
/// let target = RedisAclTarget::new("redis://default:admin-pw@127.0.0.1:6379", "app")?
///     .with_creation_rules(["~app:*", "+@read", "+@write", "+ping"])?;
/// let (old, new) = (SecretData::text("old-pw"), SecretData::text("new-pw"));
/// target.apply(&new, Some(&old)).await?; // both passwords work now
/// target.test(&new).await?;
/// // ... once every consumer uses the new password:
/// target.revoke(&old, &new).await?; // only the new one works
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisAclTarget {
    admin: RedisConfig,
    user: String,
    creation_rules: Vec<String>,
    mode: PasswordMode,
    acl_save: bool,
}

impl RedisAclTarget {
    /// A target for ACL user `user`, administered through `admin_url`
    /// (`redis://[admin-user]:admin-password@host:port[/db]` or `rediss://`
    /// for TLS; without a user name the admin is the `default` user), with
    /// the default TLS settings (see [`RedisConfig`]; use
    /// [`from_config`](Self::from_config) for a CA file or the plaintext
    /// opt-out).
    ///
    /// A malformed URL, a user name Redis cannot hold (empty, with spaces or
    /// control characters) and a target user that is the admin itself (its
    /// password rotation would lock rekey out) are
    /// [`TargetError::InvalidInput`]; the message never repeats the URL. So
    /// is plaintext to a host that is not local.
    pub fn new(admin_url: &str, user: impl Into<String>) -> Result<Self, TargetError> {
        Self::from_config(RedisConfig::from_url(admin_url)?, user)
    }

    /// A target for ACL user `user`, administered through `admin` (server,
    /// admin credentials, time limit, TLS). Refuses what [`new`](Self::new)
    /// refuses, and TLS settings that
    /// [`check_transport`](RedisConfig::check_transport) refuses.
    pub fn from_config(admin: RedisConfig, user: impl Into<String>) -> Result<Self, TargetError> {
        let user = user.into();
        check_user_name(&user)?;
        admin.check_transport()?;
        if admin.user() == user {
            return Err(TargetError::InvalidInput {
                message: format!("`{user}` is the admin user rekey logs in as; rotate it with another admin"),
            });
        }
        let creation_rules = DEFAULT_CREATION_RULES.iter().map(|r| (*r).to_owned()).collect();
        Ok(Self { admin, user, creation_rules, mode: PasswordMode::default(), acl_save: false })
    }

    /// The ACL rules the user gets if [`apply`](CredentialTarget::apply) has
    /// to create it (default: [`DEFAULT_CREATION_RULES`]); an existing user's
    /// rules are never changed. Each item is one rule (`~app:*`, `+@read`,
    /// `&chan`, ...). Password and state rules (`>`, `<`, `#`, `!`, `nopass`,
    /// `resetpass`, `reset`, `on`, `off`) are refused: rekey manages those.
    pub fn with_creation_rules<I, S>(mut self, rules: I) -> Result<Self, TargetError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let rules: Vec<String> = rules.into_iter().map(Into::into).collect();
        for r in &rules {
            let lower = r.to_ascii_lowercase();
            let reason = if r.is_empty() || r.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Some("a rule must be one non-empty word")
            } else if r.starts_with(['>', '<', '#', '!']) {
                Some("password rules are managed by rekey")
            } else if ["nopass", "resetpass", "reset", "on", "off"].contains(&lower.as_str()) {
                Some("user state and password rules are managed by rekey")
            } else {
                None
            };
            if let Some(reason) = reason {
                // Rules are not secret, but a mistyped password rule might be.
                return Err(TargetError::InvalidInput { message: format!("ACL creation rule refused: {reason}") });
            }
        }
        self.creation_rules = rules;
        Ok(self)
    }

    /// Chooses how passwords travel in `ACL SETUSER` (default
    /// [`PasswordMode::Hashed`]).
    pub fn with_password_mode(mut self, mode: PasswordMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the time limit of one operation (connecting, authenticating and
    /// running its commands; default [`DEFAULT_TIMEOUT`]). Past it the
    /// operation fails with [`TargetError::Unavailable`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.admin = self.admin.with_timeout(timeout);
        self
    }

    /// Runs `ACL SAVE` after every change (and after every `apply`/`revoke`
    /// that found nothing to change, in case an earlier save failed), so the
    /// passwords survive a restart of a server that keeps its users in an
    /// ACL file (`aclfile`). Off by default: without it, ACL changes live in
    /// memory only, and a restarted server forgets them. A server without an
    /// ACL file refuses `ACL SAVE` ([`TargetError::Other`]).
    pub fn with_acl_save(mut self, save: bool) -> Self {
        self.acl_save = save;
        self
    }

    /// The admin connection settings.
    pub fn config(&self) -> &RedisConfig {
        &self.admin
    }

    /// The ACL user whose passwords this target manages.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The rules a newly created user gets.
    pub fn creation_rules(&self) -> &[String] {
        &self.creation_rules
    }

    /// How passwords travel.
    pub fn password_mode(&self) -> PasswordMode {
        self.mode
    }

    /// A [`RedisVerifier`] for the same server and user (no admin credentials
    /// in it).
    pub fn verifier(&self) -> RedisVerifier {
        RedisVerifier::from_checked_config(&self.admin).with_user_unchecked(self.user.clone())
    }

    /// How many passwords the user has now (`None` if it does not exist).
    /// For tests and status displays; the passwords themselves are never
    /// returned.
    pub async fn password_count(&self) -> Result<Option<usize>, TargetError> {
        let doing = format!("reading ACL user `{}`", self.user);
        within(self.admin.timeout(), &doing, async {
            let mut conn = self.admin_conn(&doing).await?;
            Ok(self.read_user(&mut conn, &doing).await?.map(|u| u.hashes.len()))
        })
        .await
    }

    /// The password `data` holds for this target.
    fn password<'d>(&self, data: &'d SecretData) -> Result<&'d str, TargetError> {
        let invalid = |m: String| TargetError::InvalidInput { message: m };
        let pw = match data {
            SecretData::Text(p) => p,
            SecretData::Fields(_) => {
                data.field(PASSWORD_FIELD).ok_or_else(|| invalid("the secret has no `password` field".into()))?
            }
        };
        if let Some(u) = data.field(USERNAME_FIELD).map(|u| u.expose_secret())
            && u != self.user
        {
            return Err(invalid(format!("the secret's username `{u}` is not the ACL user `{}`", self.user)));
        }
        let pw = pw.expose_secret();
        if pw.is_empty() {
            return Err(invalid("the password is empty".into()));
        }
        Ok(pw)
    }

    fn admin_password(&self) -> &str {
        self.admin.password()
    }

    async fn admin_conn(&self, doing: &str) -> Result<redis::aio::MultiplexedConnection, TargetError> {
        let settings = self.admin.redis_settings().clone();
        // Nothing is sent before the admin session is open: a refused login
        // changed nothing, so a failed apply needs no undo.
        connect(&self.admin, settings, Side::Admin, &format!("{doing}: admin login"), &[self.admin_password()])
            .await
            .map_err(TargetError::nothing_changed)
    }

    async fn read_user(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        doing: &str,
    ) -> Result<Option<UserState>, TargetError> {
        let reply: Value = redis::cmd("ACL")
            .arg("GETUSER")
            .arg(&self.user)
            .query_async(conn)
            .await
            .map_err(|e| map_error(&e, Side::Admin, doing, &[self.admin_password()]))?;
        parse_user(&reply).map_err(|why| TargetError::Other { message: format!("{doing}: {why}") })
    }

    /// Brings the user to "every password in `add` valid, none in `remove`",
    /// sending only the rules still needed.
    async fn converge(&self, doing: &str, add: Option<&str>, remove: Option<&str>) -> Result<(), TargetError> {
        let add_hash = add.map(sha256_hex);
        let remove_hash = remove.map(sha256_hex);
        let mut secrets = vec![self.admin_password()];
        secrets.extend(add.iter().chain(remove.iter()).copied());
        secrets.extend(add_hash.iter().chain(remove_hash.iter()).map(String::as_str));
        within(self.admin.timeout(), doing, async {
            let mut conn = self.admin_conn(doing).await?;
            let state = self.read_user(&mut conn, doing).await.map_err(TargetError::nothing_changed)?;
            let rules =
                self.rules_needed(state.as_ref(), add.zip(add_hash.as_deref()), remove.zip(remove_hash.as_deref()));
            if !rules.is_empty() {
                let result: redis::RedisResult<()> =
                    redis::cmd("ACL").arg("SETUSER").arg(&self.user).arg(&rules).query_async(&mut conn).await;
                match result {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError) => {
                        // E.g. a concurrent revoke removed the password first:
                        // fine if the user is now as wanted.
                        let state = self.read_user(&mut conn, doing).await?;
                        let again = self.rules_needed(
                            state.as_ref(),
                            add.zip(add_hash.as_deref()),
                            remove.zip(remove_hash.as_deref()),
                        );
                        if !again.is_empty() {
                            return Err(map_error(&e, Side::Admin, doing, &secrets));
                        }
                    }
                    Err(e) => return Err(map_error(&e, Side::Admin, doing, &secrets)),
                }
            }
            if self.acl_save {
                let saved: redis::RedisResult<()> = redis::cmd("ACL").arg("SAVE").query_async(&mut conn).await;
                saved.map_err(|e| map_error(&e, Side::Admin, &format!("{doing}: ACL SAVE"), &secrets))?;
            }
            Ok(())
        })
        .await
    }

    /// The `ACL SETUSER` rules that take `state` to the wanted one.
    fn rules_needed(
        &self,
        state: Option<&UserState>,
        add: Option<(&str, &str)>,
        remove: Option<(&str, &str)>,
    ) -> Vec<String> {
        let mut rules = Vec::new();
        let has = |h: &str| state.is_some_and(|s| s.hashes.iter().any(|x| x == h));
        if let Some((pw, hash)) = add
            && !(has(hash) && state.is_some_and(|s| s.on))
        {
            if state.is_none() {
                rules.extend(self.creation_rules.iter().cloned());
            }
            rules.push("on".into());
            rules.push(match self.mode {
                PasswordMode::Hashed => format!("#{hash}"),
                PasswordMode::Plain => format!(">{pw}"),
            });
        }
        if let Some((pw, hash)) = remove
            && has(hash)
        {
            rules.push(match self.mode {
                PasswordMode::Hashed => format!("!{hash}"),
                PasswordMode::Plain => format!("<{pw}"),
            });
        }
        rules
    }
}

impl fmt::Debug for RedisAclTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAclTarget")
            .field("admin", &self.admin)
            .field("user", &self.user)
            .field("creation_rules", &self.creation_rules)
            .field("mode", &self.mode)
            .field("acl_save", &self.acl_save)
            .finish()
    }
}

#[async_trait]
impl CredentialTarget for RedisAclTarget {
    fn name(&self) -> &str {
        "redis"
    }

    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities { concurrent_credentials: true }
    }

    async fn apply(&self, candidate: &SecretData, _current: Option<&SecretData>) -> Result<(), TargetError> {
        let pw = self.password(candidate).map_err(TargetError::nothing_changed)?;
        self.converge(&format!("adding a password to ACL user `{}`", self.user), Some(pw), None).await
    }

    async fn test(&self, credential: &SecretData) -> Result<(), TargetError> {
        let pw = self.password(credential)?;
        let doing = format!("logging in as ACL user `{}`", self.user);
        within(self.admin.timeout(), &doing, login(&self.admin, &self.user, pw)).await
    }

    async fn revoke(&self, revoked: &SecretData, keep: &SecretData) -> Result<(), TargetError> {
        let (revoked, keep) = (self.password(revoked)?, self.password(keep)?);
        if revoked == keep {
            return Err(TargetError::InvalidInput { message: "the credential to revoke is the one to keep".into() });
        }
        self.converge(&format!("removing a password from ACL user `{}`", self.user), Some(keep), Some(revoked)).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn target() -> RedisAclTarget {
        RedisAclTarget::new("redis://:adminpw@127.0.0.1:1", "app").unwrap()
    }

    #[test]
    fn rules_are_only_what_is_missing() {
        let t = target();
        let h = sha256_hex("new");
        let add = Some(("new", h.as_str()));
        assert_eq!(t.rules_needed(None, add, None), ["+ping", "on", &format!("#{h}")]);
        let on = UserState { on: true, hashes: vec![h.clone()] };
        assert!(t.rules_needed(Some(&on), add, None).is_empty());
        let off = UserState { on: false, hashes: vec![h.clone()] };
        assert_eq!(t.rules_needed(Some(&off), add, None), ["on", &format!("#{h}")]);
        let old = sha256_hex("old");
        let both = UserState { on: true, hashes: vec![h.clone(), old.clone()] };
        assert_eq!(t.rules_needed(Some(&both), add, Some(("old", &old))), [format!("!{old}")]);
        assert!(t.rules_needed(Some(&on), add, Some(("old", &old))).is_empty());
        let plain = target().with_password_mode(PasswordMode::Plain);
        assert_eq!(plain.rules_needed(Some(&both), None, Some(("old", &old))), ["<old"]);
    }

    #[test]
    fn construction_checks_input_without_echoing_the_url() {
        for url in [
            "http://:s3cr3t@h",
            "redis://:s3cr3t@h:notaport",
            "rediss://:s3cr3t@h:1/#insecure",
            "redis://:s3cr3t@cache.example:1",
            "",
        ] {
            let e = RedisAclTarget::new(url, "app").unwrap_err();
            assert!(matches!(e, TargetError::InvalidInput { .. }), "{url}: {e:?}");
            assert!(!format!("{e} {e:?}").contains("s3cr3t"));
        }
        assert!(RedisAclTarget::new("rediss://:pw@cache.example:1", "app").is_ok());
        let opted = RedisConfig::from_url("redis://:pw@cache.example:1").unwrap().with_plaintext_allowed(true);
        assert!(RedisAclTarget::from_config(opted, "app").unwrap().config().transport_warning().is_some());
        for user in ["", "a b", "a\nb"] {
            let e = RedisAclTarget::new("redis://:pw@127.0.0.1:1", user).unwrap_err();
            assert!(e.to_string().contains("ACL user name"), "{user:?}: {e}");
        }
        for (url, user) in [("redis://:pw@127.0.0.1:1", "default"), ("redis://boss:pw@127.0.0.1:1", "boss")] {
            let e = RedisAclTarget::new(url, user).unwrap_err();
            assert!(e.to_string().contains("is the admin user"), "{e}");
        }
        for rule in [">pw", "<pw", "#ab", "!ab", "nopass", "RESETPASS", "reset", "off", "on", "", "a b"] {
            assert!(target().with_creation_rules([rule]).is_err(), "{rule}");
        }
        let t = target().with_creation_rules(["~app:*", "+@read"]).unwrap();
        assert_eq!(t.creation_rules(), ["~app:*", "+@read"]);
        let shown = format!("{t:?}");
        assert!(!shown.contains("adminpw") && shown.contains("127.0.0.1:1"), "{shown}");
    }

    #[test]
    fn secrets_of_the_wrong_shape_are_refused() {
        let t = target();
        assert!(t.password(&SecretData::text("")).is_err());
        assert!(t.password(&SecretData::fields([("user", "x")])).is_err());
        assert!(t.password(&SecretData::fields([("username", "other"), ("password", "x")])).is_err());
        assert_eq!(t.password(&SecretData::fields([("username", "app"), ("password", "x")])).unwrap(), "x");
    }
}
