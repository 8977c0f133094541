//! Building a store from configuration.

use std::sync::Arc;

use serde::Deserialize;

use rekey_core::DynSecretStore;

/// Which store to use, as written in a configuration file:
///
/// ```
/// # #[cfg(feature = "memory")] {
/// let cfg: rekey::StoreConfig = toml::from_str(r#"type = "memory""#)?;
/// assert!(matches!(cfg, rekey::StoreConfig::Memory));
/// # }
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum StoreConfig {
    /// The in-memory store (feature `memory`).
    Memory,
    /// HashiCorp Vault / OpenBao KV v2 (feature `vault`).
    #[cfg(feature = "vault")]
    Vault(Box<rekey_vault::VaultConfig>),
    /// AWS Secrets Manager (feature `aws`).
    #[cfg(feature = "aws")]
    Aws(Box<rekey_aws::AwsConfig>),
}

/// Why a store could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreConfigError {
    /// The configuration names a store this build does not include.
    #[error("the `{store}` store is not compiled in: enable the `{feature}` feature of the `rekey` crate")]
    NotCompiledIn {
        /// The store's name.
        store: &'static str,
        /// The feature that adds it.
        feature: &'static str,
    },
    /// The store rejected its configuration or could not be reached.
    #[error(transparent)]
    Store(#[from] rekey_core::StoreError),
}

impl StoreConfig {
    /// Builds the configured store.
    pub async fn build(&self) -> Result<Arc<DynSecretStore>, StoreConfigError> {
        match self {
            #[cfg(feature = "memory")]
            Self::Memory => Ok(Arc::new(rekey_memory::MemoryStore::new())),
            #[cfg(not(feature = "memory"))]
            Self::Memory => Err(StoreConfigError::NotCompiledIn { store: "memory", feature: "memory" }),
            #[cfg(feature = "vault")]
            Self::Vault(cfg) => Ok(Arc::new(rekey_vault::VaultStore::connect((**cfg).clone()).await?)),
            #[cfg(feature = "aws")]
            Self::Aws(cfg) => Ok(Arc::new(rekey_aws::AwsSecretsStore::from_config(cfg).await?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "vault")]
    #[test]
    fn vault_config_parses_with_type_tag() {
        let cfg: StoreConfig = toml::from_str(
            r#"
            type = "vault"
            address = "http://127.0.0.1:8200"
            mount = "kv"
            "#,
        )
        .expect("valid vault config");
        let StoreConfig::Vault(v) = cfg else { panic!("expected vault") };
        assert_eq!(v.mount, "kv");
    }

    #[cfg(feature = "aws")]
    #[test]
    fn aws_config_parses_with_type_tag() {
        let cfg: StoreConfig = toml::from_str(
            r#"
            type = "aws"
            region = "eu-west-1"
            endpoint_url = "http://127.0.0.1:5000"
            "#,
        )
        .expect("valid aws config");
        let StoreConfig::Aws(a) = cfg else { panic!("expected aws") };
        assert_eq!(a.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn unknown_store_type_is_an_error() {
        let err = toml::from_str::<StoreConfig>(r#"type = "etcd""#).expect_err("etcd is not a store");
        assert!(err.to_string().contains("etcd"), "{err}");
    }
}
