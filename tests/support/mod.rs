//! What the scenarios run on: the stores this build enables, built through
//! the facade, and the test doubles a user would write with `rekey` alone (a
//! verifier, a credential checker standing in for a database).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use rekey::{
    AuditSink, CredentialTarget, DynSecretStore, ExposeSecret, ManualClock, MemoryAuditSink, RotationManager,
    SecretData, SecretPath, SecretStoreExt, SecretString, TargetCapabilities, TargetError, Verifier, VerifyContext,
    VerifyError,
};

/// One store to run the scenarios on, with the clock its manager uses and a
/// prefix no other run uses.
#[derive(Debug)]
pub struct Backend {
    pub name: &'static str,
    pub store: Arc<DynSecretStore>,
    /// The manager's clock. The in-memory store takes its version times from
    /// it; the servers use their own (wall) time, so it starts at the wall
    /// time.
    pub clock: ManualClock,
    pub prefix: String,
}

impl Backend {
    fn new(name: &'static str, store: Arc<DynSecretStore>, clock: ManualClock) -> Self {
        Self { name, store, clock, prefix: rekey_testkit::unique_prefix(&format!("e2e-{name}")) }
    }

    /// A fresh path under this backend's prefix.
    pub fn path(&self, name: &str) -> SecretPath {
        format!("{}/{name}", self.prefix).parse().expect("a valid path")
    }

    /// Creates `path` with a text value; returns its first version id.
    pub async fn seed(&self, path: &SecretPath, value: &str) -> rekey::VersionMeta {
        self.store.create(path, SecretData::text(value)).await.expect("create the secret")
    }

    /// The current value of a text secret.
    pub async fn text(&self, path: &SecretPath) -> String {
        self.store.current_text(path).await.expect("read the current value").expose_secret().to_owned()
    }

    /// A manager on this store and clock (sleeps advance the clock at once,
    /// so retries cost no real time), recording audit events in `audit`.
    pub fn manager(&self, audit: &MemoryAuditSink, verifiers: &[Arc<dyn Verifier>]) -> RotationManager {
        self.clock.set_auto_advance(true);
        self.manager_with(audit, verifiers)
    }

    /// A manager on this store and clock, leaving the clock's mode alone.
    pub fn manager_with(&self, audit: &MemoryAuditSink, verifiers: &[Arc<dyn Verifier>]) -> RotationManager {
        let mut b = RotationManager::builder(self.store.clone())
            .clock(Arc::new(self.clock.clone()))
            .audit_sink(Arc::new(audit.clone()) as Arc<dyn AuditSink>);
        for v in verifiers {
            b = b.verifier(v.clone());
        }
        b.build().expect("a manager")
    }
}

/// The in-memory store, its version times on the manager's clock.
pub fn memory() -> Backend {
    let clock = ManualClock::new("2030-01-01T00:00:00.123456789Z".parse().expect("a time"));
    let store = rekey::memory::MemoryStore::new().with_clock_source(Arc::new(clock.clone()));
    Backend::new("memory", Arc::new(store), clock)
}

/// OpenBao, built through the facade (`rekey::vault`); `None` (skipped)
/// outside CI when the server is not running.
#[cfg(feature = "vault")]
pub async fn vault() -> Option<Backend> {
    let addr = rekey_testkit::env::require("REKEY_TEST_VAULT_ADDR", "OpenBao")?;
    let token = rekey_testkit::env::require("REKEY_TEST_VAULT_TOKEN", "OpenBao")?;
    let config = rekey::vault::VaultConfig::new(addr, rekey::vault::VaultAuth::Token(token.into()));
    let store = rekey::vault::VaultStore::connect(config).await.expect("connect to OpenBao");
    Some(Backend::new("vault", Arc::new(store), ManualClock::new(rekey::Utc::now())))
}

/// moto, built through the facade's [`rekey::StoreConfig`] as a service
/// would from its configuration; `None` (skipped) outside CI when the
/// server is not running.
#[cfg(feature = "aws")]
pub async fn aws() -> Option<Backend> {
    let endpoint = rekey_testkit::env::require("REKEY_TEST_AWS_ENDPOINT", "moto (AWS Secrets Manager emulator)")?;
    let config = rekey::aws::AwsConfig::default()
        .with_region("us-east-1")
        .with_endpoint_url(endpoint)
        .with_static_credentials("test", "test")
        .for_moto();
    let store = rekey::StoreConfig::Aws(Box::new(config)).build().await.expect("a store for moto");
    Some(Backend::new("aws", store, ManualClock::new(rekey::Utc::now())))
}

/// Passes every candidate except those starting with `bad-`, and remembers
/// each candidate it saw.
#[derive(Debug, Default)]
pub struct RejectsBad {
    seen: Mutex<Vec<SecretString>>,
}

impl RejectsBad {
    pub const NAME: &'static str = "rejects_bad";

    /// The candidates seen, in order (as text).
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|s| s.expose_secret().to_owned()).collect()
    }
}

#[rekey::async_trait]
impl Verifier for RejectsBad {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn verify(&self, ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        let value = ctx.candidate.get(ctx.field).or_else(|| ctx.candidate.field("password")).expect("a value");
        self.seen.lock().unwrap().push(value.clone());
        if value.expose_secret().starts_with("bad-") {
            Err(VerifyError::Failed("the service refused the candidate".into()))
        } else {
            Ok(())
        }
    }
}

/// Tells when it is called, then never answers: the process "dies" while it
/// verifies.
#[derive(Debug, Default)]
pub struct Hangs {
    pub entered: tokio::sync::Notify,
}

impl Hangs {
    pub const NAME: &'static str = "hangs";
}

#[rekey::async_trait]
impl Verifier for Hangs {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        self.entered.notify_one();
        std::future::pending().await
    }
}

/// Stands in for the system that checks a credential (a database's users):
/// which passwords each user can log in with. With `concurrent` a user may
/// hold several passwords at once (as Redis ACL users can); without, one
/// (as a PostgreSQL role).
#[derive(Debug)]
pub struct Checker {
    concurrent: bool,
    users: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

/// The user of a text secret.
pub const TEXT_USER: &str = "app";

fn login(c: &SecretData) -> (String, String) {
    match c {
        SecretData::Text(p) => (TEXT_USER.to_owned(), p.expose_secret().to_owned()),
        SecretData::Fields(_) => (
            c.field("username").expect("a username").expose_secret().to_owned(),
            c.field("password").expect("a password").expose_secret().to_owned(),
        ),
    }
}

impl Checker {
    /// A checker that accepts each of `valid` (text values are user
    /// [`TEXT_USER`]'s).
    pub fn new(concurrent: bool, valid: &[&SecretData]) -> Arc<Self> {
        let checker = Self { concurrent, users: Mutex::default() };
        for v in valid {
            let (u, p) = login(v);
            checker.users.lock().unwrap().entry(u).or_default().insert(p);
        }
        Arc::new(checker)
    }

    /// Whether logging in with `credential` works.
    pub fn accepts(&self, credential: &SecretData) -> bool {
        let (u, p) = login(credential);
        self.users.lock().unwrap().get(&u).is_some_and(|ps| ps.contains(&p))
    }
}

#[rekey::async_trait]
impl CredentialTarget for Checker {
    fn name(&self) -> &str {
        "checker"
    }

    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities { concurrent_credentials: self.concurrent }
    }

    async fn apply(&self, candidate: &SecretData, _current: Option<&SecretData>) -> Result<(), TargetError> {
        let (u, p) = login(candidate);
        let mut users = self.users.lock().unwrap();
        let set = users.entry(u).or_default();
        if !self.concurrent {
            set.clear();
        }
        set.insert(p);
        Ok(())
    }

    async fn test(&self, credential: &SecretData) -> Result<(), TargetError> {
        if self.accepts(credential) {
            Ok(())
        } else {
            Err(TargetError::Rejected { message: "password authentication failed".into() })
        }
    }

    async fn revoke(&self, revoked: &SecretData, keep: &SecretData) -> Result<(), TargetError> {
        let (ru, rp) = login(revoked);
        let (ku, kp) = login(keep);
        let mut users = self.users.lock().unwrap();
        if let Some(set) = users.get_mut(&ru) {
            set.remove(&rp);
        }
        let set = users.entry(ku).or_default();
        if !self.concurrent {
            set.clear();
        }
        set.insert(kp);
        Ok(())
    }
}
