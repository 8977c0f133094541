//! BLUE_GREEN on PostgreSQL: two login roles in one group role; each rotation
//! re-keys the role not in use and switches to it. Consumers never see a
//! rejected credential; the password a rotation replaces is really rejected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rekey_core::{
    CredentialTarget, DynSecretStore, ExposeSecret, RotationPolicy, RotationStrategy, SecretBinding, SecretData,
    SecretStoreExt, TargetError,
};
use rekey_memory::MemoryStore;
use rekey_postgres::{PostgresConfig, PostgresTarget};
use rekey_zero_downtime::{ConsumerSettings, Consumers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_on_postgres_has_zero_failures() {
    let Some(url) = rekey_testkit::env::require("REKEY_TEST_PG_URL", "PostgreSQL") else { return };
    let admin = PostgresConfig::from_url(&url).expect("admin url");
    let group = unique("zd_bg");
    let (blue, green) = (format!("{group}_blue"), format!("{group}_green"));
    let target =
        Arc::new(PostgresTarget::alternating(admin, [blue.clone(), green.clone()], group.clone()).expect("target"));
    target.ensure_roles().await.expect("roles");

    let store: Arc<DynSecretStore> = Arc::new(MemoryStore::new());
    let path = path(&format!("zd/bluegreen/{group}"));
    let first = SecretData::fields([("username", blue.clone()), ("password", password())]);
    target.apply(&first, None).await.expect("first password");
    store.create(&path, first.clone()).await.expect("seed");

    let (manager, audit) = manager(store.clone());
    manager.bind(
        path.clone(),
        SecretBinding::new().field("password").credential_sets(blue.clone(), green.clone()).target(target.clone()),
    );
    let policy = RotationPolicy::builder("zd-bluegreen")
        .strategy(RotationStrategy::BlueGreen)
        .interval(Duration::from_secs(3600))
        .grace_period(Duration::from_millis(200))
        .build()
        .unwrap();

    let consumers = Consumers::start(store.clone(), path.clone(), target.clone(), ConsumerSettings::default()).await;
    let mut history = vec![first];
    let mut texts = Vec::new();
    for _ in 0..ROTATIONS {
        let r = manager.rotate_secret(&path, &policy, None).await;
        texts.push(format!("{r} {r:?}"));
        expect_ok(&r);
        let current = store.current(&path).await.unwrap();
        let user = |d: &SecretData| d.field("username").map(|u| u.expose_secret().to_owned());
        let prev = &history[history.len() - 1];
        assert_ne!(user(&current.data), user(prev), "the sets alternate");
        // The formerly active set still works until the next rotation.
        target.test(prev).await.expect("the formerly active set stays valid");
        // The set's credential from two rotations ago was replaced: rejected.
        if history.len() >= 2 {
            let replaced = &history[history.len() - 2];
            assert_eq!(user(replaced), user(&current.data));
            let r = target.test(replaced).await;
            assert!(matches!(r, Err(TargetError::Rejected { .. })), "a replaced password still works: {r:?}");
        }
        history.push(current.data.clone());
        // The grace: every consumer is on the new set before the next rotation re-keys the old one.
        assert!(consumers.wait_all_on(&current.meta.id, Duration::from_secs(5)).await);
    }
    let newest = store.current(&path).await.unwrap().meta.id;
    let settled = consumers.wait_all_on(&newest, Duration::from_secs(5)).await;
    let report = consumers.stop().await;
    let line = report.line("blue_green", "postgres", ROTATIONS);
    println!("{line}");
    println!("{report}");
    assert!(settled, "every consumer ends on the newest credential: {:?}", report.last_versions);
    assert_eq!(report.auth_failed, 0, "{report}");
    assert!(report.auth_ok > 0);

    texts.push(line);
    texts.push(report.to_string());
    texts.extend(audit.events().iter().map(|e| format!("{e:?}")));
    for d in &history {
        assert_not_leaked(&password_of(d), &texts);
    }
}
