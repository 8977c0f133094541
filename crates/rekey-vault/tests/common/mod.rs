//! Shared set-up of the OpenBao tests: stores and a root admin client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use rekey_core::DynSecretStore;
use rekey_vault::{VaultAuth, VaultConfig, VaultStore};
use vaultrs::client::{VaultClient, VaultClientSettings};

/// The dev server's address and root token, or `None` (skip) outside CI.
pub fn server() -> Option<(String, String)> {
    let addr = rekey_testkit::env::require("REKEY_TEST_VAULT_ADDR", "OpenBao")?;
    let token = rekey_testkit::env::require("REKEY_TEST_VAULT_TOKEN", "OpenBao")?;
    Some((addr, token))
}

pub fn config(addr: &str, token: &str) -> VaultConfig {
    VaultConfig::new(addr, VaultAuth::Token(token.to_owned().into()))
}

/// A store with the root token.
pub async fn root_store() -> Option<VaultStore> {
    let (addr, token) = server()?;
    Some(VaultStore::connect(config(&addr, &token)).await.expect("connect"))
}

pub async fn dyn_store() -> Option<Arc<DynSecretStore>> {
    root_store().await.map(|s| Arc::new(s) as Arc<DynSecretStore>)
}

/// A raw vaultrs client with the root token, for test set-up only.
pub fn admin(addr: &str, token: &str) -> VaultClient {
    VaultClient::new(VaultClientSettings {
        address: addr.parse().unwrap(),
        ca_certs: vec![],
        identity: None,
        timeout: Some(std::time::Duration::from_secs(10)),
        token: token.to_owned(),
        verify: true,
        version: 1,
        wrapping: false,
        namespace: None,
        proxy: None,
    })
    .unwrap()
}

pub fn path(prefix: &str, name: &str) -> rekey_core::SecretPath {
    format!("{prefix}/{name}").parse().unwrap()
}

/// A raw HTTP call to the server (set-up and plain-HTTP checks, not through
/// rekey): returns the status and the JSON body (`Null` when empty).
pub async fn raw(
    addr: &str,
    token: &str,
    method: &str,
    api_path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    let url = format!("{}/v1/{}", addr.trim_end_matches('/'), api_path);
    let mut req = client.request(method.parse().unwrap(), url).header("X-Vault-Token", token);
    if let Some(b) = body {
        req = req.header("Content-Type", "application/json").body(serde_json::to_vec(&b).unwrap());
    }
    let resp = req.send().await.expect("request to the test server");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    let json = if bytes.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (status, json)
}

/// Raw POST that must succeed.
pub async fn admin_post(addr: &str, token: &str, api_path: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, json) = raw(addr, token, "POST", api_path, Some(body)).await;
    assert!((200..300).contains(&status), "POST {api_path}: {status} {json}");
    json
}

/// A token with exactly this policy text (created with the root token).
pub async fn token_with_policy(addr: &str, root: &str, name: &str, policy: &str) -> String {
    admin_post(addr, root, &format!("sys/policies/acl/{name}"), serde_json::json!({ "policy": policy })).await;
    let t = admin_post(addr, root, "auth/token/create", serde_json::json!({ "policies": [name], "ttl": "10m" })).await;
    t["auth"]["client_token"].as_str().unwrap().to_owned()
}
