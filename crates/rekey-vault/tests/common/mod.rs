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
