//! What a rotation through `rekey` costs the store: exactly what the
//! engine's own rotation costs (the record beside the secret is the
//! engine's, written in the call that ends the rotation; the command adds
//! no request of its own). Measured on a real OpenBao against a library
//! rotation (`RotationManager::rotate_secret`) in the same test, so the
//! comparison holds whatever the engine's count is (pinned by
//! `crates/rekey-vault/tests/request_counts.rs`).
#![cfg(feature = "vault")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;

use common::*;
use rekey::vault::{VaultAuth, VaultConfig, VaultStore};
use rekey::{
    DynSecretStore, RotationManager, RotationPolicy, RotationStrategy, SecretData, SecretStore, SecretStoreExt,
};
use serde_json::json;

/// Requests the engine's staged rotation of a fresh secret costs, through
/// the library alone.
async fn library_staged_calls(bao: &Bao, prefix: &str) -> u64 {
    let vault = VaultStore::connect(VaultConfig::new(&bao.addr, VaultAuth::Token(bao.token.clone().into())))
        .await
        .expect("connect");
    let store: Arc<DynSecretStore> = Arc::new(vault.clone());
    let manager = RotationManager::builder(store.clone())
        .clock(Arc::new(rekey::SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .build()
        .expect("manager");
    let policy = RotationPolicy::builder("lib").strategy(RotationStrategy::Staged).build().expect("policy");
    let path = format!("{prefix}/library").parse().expect("path");
    store.create(&path, SecretData::text("initial-library-value-0123456789")).await.expect("seed");
    let count = || vault.request_counts().iter().map(|(_, n)| n).sum::<u64>();
    let before = count();
    let r = manager.rotate_secret(&path, &policy, None).await;
    assert!(r.success(), "library rotation: {r}");
    count() - before
}

#[tokio::test]
async fn a_staged_rotation_through_the_cli_costs_what_the_engines_costs() {
    let Some(bao) = Bao::from_env() else { return };
    let prefix = unique("calls");
    let dir = scratch("calls");
    const N: usize = 4;
    let mut cfg = format!("{}\n[policies.staged]\nschedule = \"every 1h\"\nstrategy = \"staged\"\n", vault_store(&bao));
    for i in 0..N {
        cfg.push_str(&format!(
            "\n[[secret]]\npath = \"{prefix}/s{i}\"\npolicy = \"staged\"\ngenerator = {{ type = \"random\", length = 32 }}\n"
        ));
        bao.put(&format!("{prefix}/s{i}"), json!({ "value": format!("initial-value-{i}-0123456789") })).await;
    }
    let cfg = write_config(&dir, &cfg);
    let env = [("VAULT_TOKEN", bao.token.as_str())];

    let engine = library_staged_calls(&bao, &prefix).await;
    // The engine's staged rotation on KV v2 is at most 6 requests (5 once
    // the promote's read-back is gone); the CLI must match it, whatever it is.
    assert!((1..=6).contains(&engine), "engine: {engine} requests per staged rotation");
    println!("engine (library): {engine} requests per staged rotation");

    // Twice: the second rotation (with the engine's record and history
    // beside each secret) costs the same as the first.
    for round in 0..2 {
        let r = rekey(&cfg, &["rotate", "--all", "--json"], &env).await;
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let s = &r.json()["summary"];
        assert_eq!(s["rotated"], N, "{s}");
        let per = s["store_calls_per_rotation"].as_f64().expect("store_calls_per_rotation");
        println!("cli round {round}: {per} requests per rotation ({} in all)", s["store_calls"]);
        assert_eq!(s["store_calls"], engine * N as u64, "round {round}: {s}");
        assert_eq!(per, engine as f64, "round {round}: {s}");
    }

    // Nothing of the old CLI record is written.
    let (_, _, custom) = bao.metadata(&format!("{prefix}/s0")).await;
    let keys: Vec<&String> = custom.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    assert!(keys.iter().all(|k| !k.starts_with("rekey.cli.")), "{keys:?}");
    assert!(keys.iter().any(|k| k.as_str() == "rekey.good"), "the engine's record is there: {keys:?}");
}
