//! The engine's model-based test (`rekey_testkit::model`) against a real
//! moto server, at a smaller budget than on memory (every step is HTTP round
//! trips): 20 sequences of 20–24 steps; `REKEY_MODEL_CASES` overrides it.
mod common;

use std::sync::Arc;

use rekey_core::ManualClock;
use rekey_testkit::model::{self, ModelConfig};

#[test]
fn engine_matches_its_model_on_moto() {
    let Some(endpoint) = common::endpoint() else { return };
    model::run(
        ModelConfig::server("moto", 20),
        Arc::new(move |_: &ManualClock| {
            let endpoint = endpoint.clone();
            Box::pin(async move { common::dyn_store(&endpoint).await }) as futures::future::BoxFuture<'static, _>
        }),
    );
}
