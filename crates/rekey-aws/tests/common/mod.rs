//! Shared set-up of the moto-backed tests: an SDK client the way a consumer
//! would build one, and a store over a separately built client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use aws_sdk_secretsmanager::Client;
use rekey_aws::{ApiCallCounter, AwsConfig, AwsSecretsStore};
use rekey_core::DynSecretStore;

/// The moto endpoint, or `None` (skip; a failure in CI).
pub fn endpoint() -> Option<String> {
    rekey_testkit::env::require("REKEY_TEST_AWS_ENDPOINT", "moto (AWS Secrets Manager emulator)")
}

/// The config every test uses: moto's region-agnostic fake account.
pub fn config(endpoint: &str) -> AwsConfig {
    AwsConfig::default()
        .with_region("us-east-1")
        .with_endpoint_url(endpoint)
        .with_static_credentials("test", "test")
        .with_max_attempts(1)
        .for_moto()
}

/// A store built through `from_config`, as the facade does.
pub async fn store(endpoint: &str) -> AwsSecretsStore {
    AwsSecretsStore::from_config(&config(endpoint)).await.expect("store from config")
}

/// The same as a trait object.
pub async fn dyn_store(endpoint: &str) -> Arc<DynSecretStore> {
    Arc::new(store(endpoint).await)
}

/// A store whose client counts its calls.
pub async fn counted_store(endpoint: &str) -> (AwsSecretsStore, ApiCallCounter) {
    let counter = ApiCallCounter::new();
    let sdk = config(endpoint).sdk_config().await.expect("sdk config");
    let conf = aws_sdk_secretsmanager::config::Builder::from(&sdk).interceptor(counter.clone()).build();
    (AwsSecretsStore::new(Client::from_conf(conf)).with_version_dates_from_reads(true), counter)
}

/// A plain SDK client, built independently of rekey's config code: what a
/// consumer of the secret (or AWS's console) sees.
pub async fn raw_client(endpoint: &str) -> Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new("test", "test", None, None, "raw"))
        .load()
        .await;
    Client::new(&sdk)
}

/// `VersionId -> sorted stages` of every version, as ListSecretVersionIds
/// reports them (deprecated versions included).
pub async fn raw_stages(client: &Client, name: &str) -> Vec<(String, Vec<String>)> {
    let out = client
        .list_secret_version_ids()
        .secret_id(name)
        .include_deprecated(true)
        .send()
        .await
        .expect("ListSecretVersionIds");
    out.versions()
        .iter()
        .map(|v| {
            let mut stages = v.version_stages().to_vec();
            stages.sort();
            (v.version_id().unwrap_or_default().to_owned(), stages)
        })
        .collect()
}

/// A fresh secret name under a unique prefix.
pub fn name(tag: &str) -> rekey_core::SecretPath {
    format!("{}/s", rekey_testkit::unique_prefix(tag)).parse().expect("valid path")
}
