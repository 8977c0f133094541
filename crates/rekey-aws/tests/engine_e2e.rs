//! End to end: rekey's `RotationManager` rotates a Secrets Manager secret
//! (staged, with a verifier) on moto, and a separately built SDK client reads
//! the result back the way a consumer of the secret would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rekey_aws::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rekey_core::{
    DynSecretStore, ExposeSecret, RotationManager, RotationOutcome, RotationPolicy, RotationRequest, RotationStrategy,
    SecretBinding, SystemClock, Verifier, VerifyContext, VerifyError,
};

/// Checks the candidate's password field; remembers what it saw (test only)
/// or fails on purpose.
#[derive(Debug)]
struct PasswordCheck {
    fail: bool,
    seen: Mutex<Option<String>>,
}

#[async_trait]
impl Verifier for PasswordCheck {
    fn name(&self) -> &str {
        "password-check"
    }

    async fn verify(&self, ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        let pw = ctx.candidate.field("password").ok_or_else(|| VerifyError::Failed("no password field".into()))?;
        if pw.expose_secret().len() < 16 || ctx.candidate.field("username").is_none() {
            return Err(VerifyError::Failed("candidate has the wrong shape".into()));
        }
        *self.seen.lock().unwrap() = Some(pw.expose_secret().to_owned());
        if self.fail { Err(VerifyError::Failed("the database refused the candidate".into())) } else { Ok(()) }
    }
}

fn manager(store: Arc<DynSecretStore>, verifier: Arc<PasswordCheck>) -> RotationManager {
    RotationManager::builder(store)
        .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .verifier(verifier)
        .build()
        .unwrap()
}

fn policy() -> RotationPolicy {
    RotationPolicy::builder("aws-e2e")
        .strategy(RotationStrategy::Staged)
        .require_verification(true)
        .verification_tests(["password-check"])
        .build()
        .unwrap()
}

async fn current_json(raw: &aws_sdk_secretsmanager::Client, name: &str, stage: &str) -> serde_json::Value {
    let out = raw.get_secret_value().secret_id(name).version_stage(stage).send().await.unwrap();
    serde_json::from_str(out.secret_string().unwrap()).unwrap()
}

#[tokio::test]
async fn the_engine_rotates_a_field_and_a_consumer_reads_the_new_value() {
    let Some(ep) = common::endpoint() else { return };
    let raw = common::raw_client(&ep).await;
    let (store, counter) = common::counted_store(&ep).await;
    let path = common::name("aws-e2e");
    // The secret exists already, created by its owner in AWS's usual shape.
    raw.create_secret()
        .name(path.as_str())
        .secret_string(r#"{"username":"billing","password":"initial-password-0"}"#)
        .send()
        .await
        .unwrap();

    let check = Arc::new(PasswordCheck { fail: false, seen: Mutex::new(None) });
    let manager = manager(Arc::new(store), check.clone());
    let policy = policy();
    counter.reset();
    let result = manager
        .rotate(RotationRequest::new(&path, &policy).binding(Arc::new(SecretBinding::new().field("password"))))
        .await;
    assert!(result.success(), "{result}");
    eprintln!("engine staged rotation: {} API calls {:?}", counter.total(), counter.by_operation());

    // What a consumer sees: the new password, the username untouched.
    let now = current_json(&raw, path.as_str(), AWSCURRENT).await;
    let seen = check.seen.lock().unwrap().clone().expect("the verifier ran");
    assert_eq!(now["username"], "billing");
    assert_eq!(now["password"], seen.as_str());
    assert_ne!(seen, "initial-password-0");
    let before = current_json(&raw, path.as_str(), AWSPREVIOUS).await;
    assert_eq!(before["password"], "initial-password-0");

    // The stages AWS's own rotation leaves, and the engine's journal gone.
    let list = common::raw_stages(&raw, path.as_str()).await;
    let new_id = result.new_version.clone().unwrap();
    // AWSCURRENT on the new version; AWSPENDING nowhere else (the store's
    // default leaves it on the new current version, as AWS's rotation may).
    assert!(list.iter().any(|(id, s)| id == new_id.as_str() && s.iter().any(|l| l == AWSCURRENT)), "{list:?}");
    assert!(list.iter().all(|(id, s)| id == new_id.as_str() || !s.iter().any(|l| l == AWSPENDING)), "{list:?}");
    assert!(
        list.iter().all(|(_, s)| s.iter().all(|l| l == AWSCURRENT || l == AWSPENDING || l == "AWSPREVIOUS")),
        "{list:?}"
    );
    assert_eq!(new_id.as_str(), result.rotation_id.to_string(), "the version id is the rotation id");
    let tags = raw.describe_secret().secret_id(path.as_str()).send().await.unwrap();
    assert!(tags.tags().iter().all(|t| !t.key().unwrap_or("").starts_with("rekey.rotation.")), "journal left behind");

    raw.delete_secret().secret_id(path.as_str()).force_delete_without_recovery(true).send().await.unwrap();
}

#[tokio::test]
async fn a_failed_verification_leaves_the_old_value_and_no_pending_version() {
    let Some(ep) = common::endpoint() else { return };
    let raw = common::raw_client(&ep).await;
    let store = common::dyn_store(&ep).await;
    let path = common::name("aws-e2e-fail");
    raw.create_secret()
        .name(path.as_str())
        .secret_string(r#"{"username":"billing","password":"initial-password-0"}"#)
        .send()
        .await
        .unwrap();
    let check = Arc::new(PasswordCheck { fail: true, seen: Mutex::new(None) });
    let manager = manager(store, check);
    let policy = policy();
    let result = manager
        .rotate(RotationRequest::new(&path, &policy).binding(Arc::new(SecretBinding::new().field("password"))))
        .await;
    assert!(!result.success());
    assert_eq!(result.outcome, RotationOutcome::RolledBack, "{result}");
    let now = current_json(&raw, path.as_str(), AWSCURRENT).await;
    assert_eq!(now["password"], "initial-password-0");
    let list = common::raw_stages(&raw, path.as_str()).await;
    assert!(list.iter().all(|(_, s)| !s.iter().any(|l| l == AWSPENDING)), "{list:?}");
    // The discarded candidate still exists (AWS cannot delete one version)
    // but holds no stage.
    assert!(list.iter().filter(|(_, s)| s.is_empty()).count() <= 1, "{list:?}");
    raw.delete_secret().secret_id(path.as_str()).force_delete_without_recovery(true).send().await.unwrap();
}
