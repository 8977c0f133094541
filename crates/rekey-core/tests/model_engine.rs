//! The model-based test of the engine on the in-memory store, at the CI
//! budget (2,000 sequences of 20–40 steps; `REKEY_MODEL_CASES` overrides it,
//! `REKEY_MODEL_SEED` replays a failure). See `rekey_testkit::model`.
use std::sync::Arc;

use rekey_core::{Clock, DynSecretStore, ManualClock};
use rekey_memory::MemoryStore;
use rekey_testkit::model::{self, ModelConfig};

#[test]
fn engine_matches_its_model_on_the_memory_store() {
    model::run(
        ModelConfig::memory(),
        Arc::new(|clock: &ManualClock| {
            let c = clock.clone();
            let store = Arc::new(MemoryStore::new().with_clock(move || c.now())) as Arc<DynSecretStore>;
            Box::pin(async move { store }) as futures::future::BoxFuture<'static, _>
        }),
    );
}
