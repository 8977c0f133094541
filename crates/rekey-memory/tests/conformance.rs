//! `MemoryStore` passes the whole conformance suite, as one run and case by
//! case; so does a `FaultInjectingStore` with no rules over it.

use std::sync::Arc;

use rekey_core::DynSecretStore;
use rekey_memory::{FaultInjectingStore, MemoryStore};
use rekey_testkit::conformance;

#[tokio::test]
async fn memory_store_passes_the_whole_suite() {
    let store: Arc<DynSecretStore> = Arc::new(MemoryStore::new());
    conformance::run_all(store.clone(), &rekey_testkit::unique_prefix("memory")).await;
    // Run again on the same store: every run has its own prefix.
    conformance::run_all(store, &rekey_testkit::unique_prefix("memory")).await;
}

#[tokio::test]
async fn memory_store_with_a_small_version_cap_passes() {
    let store: Arc<DynSecretStore> = Arc::new(MemoryStore::new().with_max_versions(10));
    conformance::run_all(store, &rekey_testkit::unique_prefix("memory-capped")).await;
}

#[tokio::test]
async fn fault_layer_without_rules_is_transparent() {
    let store: Arc<DynSecretStore> = Arc::new(FaultInjectingStore::new(MemoryStore::new()));
    conformance::run_all(store, &rekey_testkit::unique_prefix("fault-layer")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suites_run_concurrently_on_one_store() {
    let store: Arc<DynSecretStore> = Arc::new(MemoryStore::new());
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(
                async move { conformance::run_all(store, &rekey_testkit::unique_prefix(&format!("c{i}"))).await },
            )
        })
        .collect();
    for r in runs {
        assert!(r.await.is_ok(), "a concurrent suite run failed");
    }
}

mod each_case {
    use super::*;
    rekey_testkit::conformance_tests!("memory-each", async {
        Some(Arc::new(MemoryStore::new()) as Arc<DynSecretStore>)
    });

    #[test]
    fn the_macro_defines_every_case() {
        assert_eq!(CONFORMANCE_TESTS_DEFINED, conformance::CASES.len());
    }
}
