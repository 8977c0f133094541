//! The engine's model-based test (`rekey_testkit::model`) against a real
//! OpenBao, at a smaller budget than on memory (every step is HTTP round
//! trips): 30 sequences of 20–24 steps; `REKEY_MODEL_CASES` overrides it.
mod common;

use std::sync::Arc;

use rekey_core::{DynSecretStore, ManualClock};
use rekey_testkit::model::{self, ModelConfig};
use rekey_vault::VaultStore;

#[test]
fn engine_matches_its_model_on_openbao() {
    let Some((addr, token)) = common::server() else { return };
    model::run(
        ModelConfig::server("openbao", 30),
        Arc::new(move |_: &ManualClock| {
            let config = common::config(&addr, &token);
            Box::pin(async move {
                Arc::new(VaultStore::connect(config).await.expect("connect to OpenBao")) as Arc<DynSecretStore>
            }) as futures::future::BoxFuture<'static, _>
        }),
    );
}
