//! Set-up shared by the zero-downtime tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rekey_core::{
    DynSecretStore, ExposeSecret, MemoryAuditSink, RotationManager, RotationResult, SecretData, SecretPath, SystemClock,
};

/// How many rotations each proof performs.
pub const ROTATIONS: usize = 50;

/// A name nobody else uses on a shared server.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{:08x}", rand::random::<u32>())
}

/// A random password.
pub fn password() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A manager on `store` with the real clock and an audit sink to inspect.
pub fn manager(store: Arc<DynSecretStore>) -> (RotationManager, Arc<MemoryAuditSink>) {
    let audit = Arc::new(MemoryAuditSink::new());
    let m = RotationManager::builder(store)
        .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .audit_sink(audit.clone())
        .build()
        .expect("manager");
    (m, audit)
}

/// Asserts that no audit event, no result and no report mentions `secret`.
pub fn assert_not_leaked(secret: &str, texts: &[String]) {
    for t in texts {
        assert!(!t.contains(secret), "a secret leaked into: {t}");
    }
}

/// The password of a credential (Text or the `password` field).
pub fn password_of(d: &SecretData) -> String {
    d.get(None).or_else(|| d.field("password")).map(|s| s.expose_secret().to_owned()).unwrap_or_default()
}

/// Fails the test with the result's error.
pub fn expect_ok(r: &RotationResult) {
    assert!(r.success(), "rotation failed: {r}");
}

/// A pause between rotations long enough for every consumer to refresh.
pub const BETWEEN: Duration = Duration::from_millis(60);

pub fn path(s: &str) -> SecretPath {
    s.parse().expect("path")
}
