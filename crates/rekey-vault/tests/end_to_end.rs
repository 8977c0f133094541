//! End to end: the rotation engine rotates a secret in OpenBao (staged,
//! verified), and a plain HTTP GET — not rekey — sees exactly the promoted
//! value.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rekey_core::{
    DynSecretStore, ExposeSecret, RotationManager, RotationPolicy, RotationStrategy, SecretBinding, SecretData,
    SecretStoreExt, SystemClock, Verifier, VerifyContext, VerifyError,
};
use rekey_memory::{FaultInjectingStore, Method};
use rekey_vault::VaultStore;
use serde_json::{Value, json};

/// Checks the candidate while it is staged: it is not what consumers read
/// yet (plain HTTP GET of the secret), and it keeps the other fields.
#[derive(Debug)]
struct CandidateCheck {
    addr: String,
    token: String,
    api_path: String,
    fail: bool,
    seen: Mutex<Vec<String>>,
}

#[async_trait]
impl Verifier for CandidateCheck {
    fn name(&self) -> &str {
        if self.fail { "always-fails" } else { "candidate-check" }
    }

    async fn verify(&self, ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        let pw = ctx.candidate.field("password").ok_or_else(|| VerifyError::Failed("no password field".into()))?;
        let pw = pw.expose_secret().to_owned();
        let (_, body) = common::raw(&self.addr, &self.token, "GET", &self.api_path, None).await;
        if body["data"]["data"]["password"] == Value::String(pw.clone()) {
            return Err(VerifyError::Failed("the candidate is already visible to consumers".into()));
        }
        if ctx.candidate.field("username").map(|u| u.expose_secret() == "billing") != Some(true) {
            return Err(VerifyError::Failed("the candidate lost the username field".into()));
        }
        self.seen.lock().unwrap().push(pw);
        if self.fail { Err(VerifyError::Failed("refused on purpose".into())) } else { Ok(()) }
    }
}

async fn plain_get(addr: &str, token: &str, api_path: &str) -> Value {
    let (status, body) = common::raw(addr, token, "GET", api_path, None).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_verified_rotation_is_what_consumers_read() {
    let Some((addr, root)) = common::server() else { return };
    let vault = VaultStore::connect(common::config(&addr, &root)).await.unwrap();
    // The fault-injecting wrapper (no rules) only counts the engine's calls.
    let counting = Arc::new(FaultInjectingStore::new(vault.clone()));
    let store: Arc<DynSecretStore> = counting.clone();
    let p = common::path(&rekey_testkit::unique_prefix("vault-e2e"), "billing-db");
    let api_path = format!("secret/data/{p}");
    store.create(&p, SecretData::fields([("username", "billing"), ("password", "initial-password")])).await.unwrap();

    let check = |fail| {
        Arc::new(CandidateCheck {
            addr: addr.clone(),
            token: root.clone(),
            api_path: api_path.clone(),
            fail,
            seen: Mutex::new(Vec::new()),
        })
    };
    let (good, bad) = (check(false), check(true));
    let manager = RotationManager::builder(store.clone())
        .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .verifier(good.clone())
        .verifier(bad.clone())
        .build()
        .unwrap();
    manager.bind(p.clone(), SecretBinding::new().field("password"));
    let policy = RotationPolicy::builder("e2e")
        .strategy(RotationStrategy::Staged)
        .require_verification(true)
        .verification_tests(["candidate-check"])
        .build()
        .unwrap();

    let before = vault.requests_sent();
    let calls_before: Vec<u64> = Method::ALL.iter().map(|m| counting.calls(*m)).collect();
    let result = manager.rotate_secret(&p, &policy, None).await;
    let trips = vault.requests_sent() - before;
    assert!(result.success(), "{result}");
    assert!(result.verification_passed);
    let calls: Vec<String> = Method::ALL
        .iter()
        .zip(&calls_before)
        .filter_map(|(m, b)| {
            let n = counting.calls(*m) - b;
            (n > 0).then(|| format!("{} {n}", m.as_str()))
        })
        .collect();
    eprintln!(
        "one staged, verified engine rotation: store calls [{}], {trips} HTTP requests to OpenBao",
        calls.join(", ")
    );

    let verified = good.seen.lock().unwrap().clone();
    assert_eq!(verified.len(), 1);
    let promoted = &verified[0];
    assert_ne!(promoted, "initial-password");
    // A consumer with a plain HTTP GET sees exactly the promoted value.
    assert_eq!(plain_get(&addr, &root, &api_path).await, json!({"username": "billing", "password": promoted}));
    assert_eq!(store.current(&p).await.unwrap().meta.id, result.new_version.clone().unwrap());
    assert!(store.pending(&p).await.unwrap().is_none());

    // A rotation whose verification fails changes nothing consumers read.
    let failing = RotationPolicy::builder("e2e-fail")
        .strategy(RotationStrategy::Staged)
        .require_verification(true)
        .verification_tests(["always-fails"])
        .max_retries(0)
        .build()
        .unwrap();
    let result = manager.rotate_secret(&p, &failing, None).await;
    assert!(!result.success(), "{result}");
    assert_eq!(bad.seen.lock().unwrap().len(), 1, "the failing verifier did not run");
    assert_eq!(plain_get(&addr, &root, &api_path).await, json!({"username": "billing", "password": promoted}));
    assert!(store.pending(&p).await.unwrap().is_none(), "the refused candidate was left staged");
    let (status, _) =
        common::raw(&addr, &root, "GET", &format!("secret/metadata/{}", vault.staging_location(&p)), None).await;
    assert_eq!(status, 404, "the refused candidate left versions at the staging location");
}
