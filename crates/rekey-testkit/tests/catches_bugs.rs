//! The suite has teeth: a store with one deliberate bug fails the case made
//! to catch it (and `MemoryStore` itself passes every case).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;
use rekey_core::{
    DynSecretStore, ExposeSecret, Metadata, PutMode, PutOptions, RotationId, SecretData, SecretPath, SecretStore,
    SecretVersion, StoreError, VersionId, VersionMeta, VersionSelector,
};
use rekey_memory::MemoryStore;
use rekey_testkit::conformance::{self, CASES};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Bug {
    StageMakesCurrent,
    PromoteIgnoresExpected,
    PutIgnoresExpected,
    StageNotIdempotent,
    PutNotIdempotent,
    DiscardCurrentAllowed,
    ErrorShowsValue,
    MetadataMerges,
    ListNewestFirst,
    WrongErrorKind,
}

#[derive(Debug)]
struct Broken {
    inner: MemoryStore,
    bug: Bug,
}

#[async_trait]
impl SecretStore for Broken {
    async fn put(&self, path: &SecretPath, data: SecretData, mut opts: PutOptions) -> Result<VersionMeta, StoreError> {
        if self.bug == Bug::PutIgnoresExpected && matches!(opts.mode, PutMode::IfCurrent(_)) {
            opts.mode = PutMode::Overwrite;
        }
        if self.bug == Bug::PutNotIdempotent {
            opts.rotation_id = None;
        }
        let shown = data.as_text().map(|s| s.expose_secret().to_owned()).unwrap_or_default();
        match self.inner.put(path, data, opts).await {
            Err(StoreError::AlreadyExists { path }) if self.bug == Bug::ErrorShowsValue => {
                Err(StoreError::AlreadyExists { path: format!("{path} (tried to write {shown})") })
            }
            r => r,
        }
    }
    async fn read(&self, path: &SecretPath, selector: &VersionSelector) -> Result<SecretVersion, StoreError> {
        match self.inner.read(path, selector).await {
            Err(StoreError::NotFound { .. })
                if self.bug == Bug::WrongErrorKind && *selector == VersionSelector::Previous =>
            {
                Err(StoreError::Other { message: "no previous".into(), source: None })
            }
            r => r,
        }
    }
    async fn stage(
        &self,
        path: &SecretPath,
        data: SecretData,
        rotation_id: RotationId,
    ) -> Result<VersionMeta, StoreError> {
        match self.bug {
            Bug::StageMakesCurrent => {
                self.inner.put(path, data, PutOptions::overwrite().with_rotation(rotation_id)).await
            }
            Bug::StageNotIdempotent => self.inner.stage(path, data, RotationId::new()).await,
            _ => self.inner.stage(path, data, rotation_id).await,
        }
    }
    async fn promote(
        &self,
        path: &SecretPath,
        version: &VersionId,
        expected: &VersionId,
    ) -> Result<VersionMeta, StoreError> {
        if self.bug == Bug::PromoteIgnoresExpected {
            let cur = self.inner.read(path, &VersionSelector::Current).await?.meta.id;
            return self.inner.promote(path, version, &cur).await;
        }
        self.inner.promote(path, version, expected).await
    }
    async fn discard(&self, path: &SecretPath, version: &VersionId) -> Result<(), StoreError> {
        match self.inner.discard(path, version).await {
            Err(StoreError::InvalidInput { .. }) if self.bug == Bug::DiscardCurrentAllowed => Ok(()),
            r => r,
        }
    }
    async fn list_versions(&self, path: &SecretPath) -> Result<Vec<VersionMeta>, StoreError> {
        let mut list = self.inner.list_versions(path).await?;
        if self.bug == Bug::ListNewestFirst {
            list.reverse();
        }
        Ok(list)
    }
    async fn read_metadata(&self, path: &SecretPath) -> Result<Metadata, StoreError> {
        self.inner.read_metadata(path).await
    }
    async fn write_metadata(&self, path: &SecretPath, metadata: Metadata) -> Result<(), StoreError> {
        if self.bug == Bug::MetadataMerges {
            let mut old = self.inner.read_metadata(path).await?;
            old.extend(metadata);
            return self.inner.write_metadata(path, old).await;
        }
        self.inner.write_metadata(path, metadata).await
    }
    async fn delete(&self, path: &SecretPath) -> Result<(), StoreError> {
        self.inner.delete(path).await
    }
}

/// Runs one case; `Err(message)` if it failed.
async fn run_case(store: Arc<DynSecretStore>, name: &str) -> Result<(), String> {
    let case = CASES.iter().find(|c| c.name == name).copied();
    let Some(case) = case else { return Err(format!("no case named {name}")) };
    let prefix = rekey_testkit::unique_prefix("bugs");
    AssertUnwindSafe((case.run)(&*store, &prefix)).catch_unwind().await.map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

#[tokio::test]
async fn each_bug_is_caught_by_its_case() {
    let table = [
        (Bug::StageMakesCurrent, "staging_never_changes_current"),
        (Bug::PromoteIgnoresExpected, "promote_stale_expected_conflict"),
        (Bug::PromoteIgnoresExpected, "race_promote_distinct_versions"),
        (Bug::PutIgnoresExpected, "put_if_current_stale_conflict"),
        (Bug::PutIgnoresExpected, "race_put_if_current"),
        (Bug::StageNotIdempotent, "stage_same_rotation_id_once"),
        (Bug::PutNotIdempotent, "put_same_rotation_id_once"),
        (Bug::DiscardCurrentAllowed, "discard_current_invalid"),
        (Bug::ErrorShowsValue, "create_twice_already_exists"),
        (Bug::MetadataMerges, "metadata_round_trip_and_replace"),
        (Bug::ListNewestFirst, "versions_listed_oldest_first"),
        (Bug::WrongErrorKind, "previous_of_single_version_not_found"),
    ];
    for (bug, name) in table {
        let store: Arc<DynSecretStore> = Arc::new(Broken { inner: MemoryStore::new(), bug });
        match run_case(store, name).await {
            Ok(()) => panic!("case {name} did not catch {bug:?}"),
            Err(msg) => {
                assert!(msg.contains(&format!("[{name}]")), "case {name} failed with an unnamed message: {msg}")
            }
        }
        // The same case passes on a correct store.
        let good: Arc<DynSecretStore> = Arc::new(MemoryStore::new());
        assert_eq!(run_case(good, name).await, Ok(()), "case {name} fails on MemoryStore");
    }
}

#[tokio::test]
async fn a_value_in_an_error_message_is_caught() {
    let store: Arc<DynSecretStore> = Arc::new(Broken { inner: MemoryStore::new(), bug: Bug::ErrorShowsValue });
    let Err(msg) = run_case(store, "create_twice_already_exists").await else { panic!("leak not caught") };
    assert!(msg.contains("shows a secret value"), "{msg}");
    assert!(!msg.contains(conformance::SECRET_MARKER), "the failure message itself shows the value: {msg}");
}

#[test]
fn case_names_are_unique() {
    let mut names: Vec<_> = CASES.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CASES.len());
}
