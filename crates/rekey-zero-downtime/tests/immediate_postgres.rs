//! IMMEDIATE (and STAGED) on PostgreSQL with one role: the baseline. One
//! role, one password, changed in place: consumers still holding the old
//! password fail until they refresh. These tests prove the harness works and
//! report how many authentications those strategies break; they do not
//! expect zero (that is what dual-write and blue-green are for).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rekey_core::{
    CredentialTarget, DynSecretStore, RotationPolicy, RotationStrategy, SecretBinding, SecretData, SecretStoreExt,
    TargetError,
};
use rekey_memory::MemoryStore;
use rekey_postgres::{PostgresConfig, PostgresTarget};
use rekey_zero_downtime::{ConsumerSettings, Consumers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_on_postgres_counts_failures() {
    baseline(RotationStrategy::Immediate, "immediate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_on_postgres_counts_failures() {
    baseline(RotationStrategy::Staged, "staged").await;
}

async fn baseline(strategy: RotationStrategy, name: &str) {
    let Some(url) = rekey_testkit::env::require("REKEY_TEST_PG_URL", "PostgreSQL") else { return };
    let admin = PostgresConfig::from_url(&url).expect("admin url");
    let role = unique(&format!("zd_{name}"));
    let target = Arc::new(PostgresTarget::single_user(admin, role.clone()).expect("target"));
    target.ensure_roles().await.expect("create role");

    let store: Arc<DynSecretStore> = Arc::new(MemoryStore::new());
    let path = path(&format!("zd/{name}/{role}"));
    let first = SecretData::text(password());
    target.apply(&first, None).await.expect("first password");
    store.create(&path, first.clone()).await.expect("seed");

    let (manager, audit) = manager(store.clone());
    manager.bind(path.clone(), SecretBinding::new().target(target.clone()));
    let policy = RotationPolicy::builder("zd-baseline").strategy(strategy).build().unwrap();

    let consumers = Consumers::start(store.clone(), path.clone(), target.clone(), ConsumerSettings::default()).await;
    let mut passwords = vec![password_of(&first)];
    let mut texts = Vec::new();
    for _ in 0..ROTATIONS {
        let r = manager.rotate_secret(&path, &policy, None).await;
        texts.push(format!("{r} {r:?}"));
        expect_ok(&r);
        passwords.push(password_of(&store.current(&path).await.unwrap().data));
        tokio::time::sleep(BETWEEN).await;
    }
    let newest = store.current(&path).await.unwrap().meta.id;
    let settled = consumers.wait_all_on(&newest, Duration::from_secs(5)).await;
    let report = consumers.stop().await;
    let line = report.line(name, "postgres", ROTATIONS);
    println!("{line}");
    println!("{report}");

    assert!(settled, "every consumer ends on the newest credential: {:?}", report.last_versions);
    assert!(report.last_versions.iter().all(|v| v.as_ref() == Some(&newest)));
    assert!(report.auth_ok > 0, "the consumers authenticated");
    // The old passwords are really gone: only the newest logs in.
    for old in &passwords[..passwords.len() - 1] {
        let r = target.test(&SecretData::text(old.clone())).await;
        assert!(matches!(r, Err(TargetError::Rejected { .. })), "an old password still works: {r:?}");
    }
    target.test(&SecretData::text(passwords[passwords.len() - 1].clone())).await.expect("newest works");

    texts.push(line);
    texts.push(report.to_string());
    texts.extend(audit.events().iter().map(|e| format!("{e:?}")));
    for p in &passwords {
        assert_not_leaked(p, &texts);
    }
}
