//! DUAL_WRITE on Redis: the new password is added beside the old one, made
//! current, and the old one is retired only after every consumer moved (or
//! the grace period ended). Consumers never see a rejected credential, and
//! every retired password is really rejected by Redis afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rekey_core::{
    ConsumerRegistry, CredentialTarget, DynSecretStore, RetireReason, RotationPolicy, RotationStrategy, SecretBinding,
    SecretData, SecretStoreExt, TargetError,
};
use rekey_memory::MemoryStore;
use rekey_redis::RedisAclTarget;
use rekey_zero_downtime::{ConsumerSettings, Consumers};

const GRACE: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_write_on_redis_has_zero_failures() {
    let Some(url) = rekey_testkit::env::require("REKEY_TEST_REDIS_URL", "Redis") else { return };
    let user = unique("zd_dual");
    let target = Arc::new(RedisAclTarget::new(&url, user.clone()).expect("target"));

    let store: Arc<DynSecretStore> = Arc::new(MemoryStore::new());
    let path = path(&format!("zd/dual/{user}"));
    let first = SecretData::text(password());
    target.apply(&first, None).await.expect("first password");
    store.create(&path, first.clone()).await.expect("seed");

    let (manager, audit) = manager(store.clone());
    manager.bind(path.clone(), SecretBinding::new().target(target.clone()));
    let policy = RotationPolicy::builder("zd-dual")
        .strategy(RotationStrategy::DualWrite)
        .interval(Duration::from_secs(3600))
        .grace_period(GRACE)
        .build()
        .unwrap();

    let settings = ConsumerSettings { track: true, name: "redis".into(), ..ConsumerSettings::default() };
    let consumers = Consumers::start(store.clone(), path.clone(), target.clone(), settings).await;
    let registry = ConsumerRegistry::new(store.clone(), path.clone());
    let mut passwords = vec![password_of(&first)];
    let mut texts = Vec::new();
    let (mut by_ack, mut by_grace) = (0, 0);
    for i in 0..ROTATIONS {
        let early = i % 2 == 0;
        if !early {
            // A registered consumer that never moves (a stopped batch job):
            // only the grace deadline retires the old credential then.
            registry.register("laggard").await.unwrap();
        }
        let r = manager.rotate_secret(&path, &policy, None).await;
        texts.push(format!("{r} {r:?}"));
        expect_ok(&r);
        let current = store.current(&path).await.unwrap();
        passwords.push(password_of(&current.data));
        let old = SecretData::text(passwords[passwords.len() - 2].clone());
        // Old and new both work until the retire step.
        target.test(&old).await.expect("the old password stays valid");
        assert!(registry.status().await.unwrap().retire.is_some(), "retire step recorded");

        // The grace period is what consumers need to move (50 ms refresh
        // here); check they did, whichever way retirement comes.
        assert!(consumers.wait_all_on(&current.meta.id, Duration::from_secs(5)).await);
        if early {
            // Early retirement: every consumer acknowledges the new version.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                if registry.status().await.unwrap().all_on_current() {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "acknowledgements did not arrive");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } else {
            // The laggard holds it back until the end of the grace period.
            assert!(manager.process_retirements().await.is_empty(), "not due while a consumer lags");
            target.test(&old).await.expect("the old password stays valid for the laggard");
            tokio::time::sleep(GRACE).await;
        }
        let done = manager.process_retirements().await;
        assert_eq!(done.len(), 1, "{done:?}");
        assert!(done[0].success(), "{done:?}");
        match done[0].reason {
            RetireReason::AllAcknowledged => by_ack += 1,
            RetireReason::GraceEnded => by_grace += 1,
            RetireReason::Forced => panic!("no forced retirement here"),
        }
        texts.push(format!("{done:?}"));
        // The retired password is really rejected now; the new one works.
        let r = target.test(&old).await;
        assert!(matches!(r, Err(TargetError::Rejected { .. })), "retired password still works: {r:?}");
        target.test(&current.data).await.expect("current works");
        assert_eq!(target.password_count().await.unwrap(), Some(1));
        // Idempotent: nothing left to retire.
        assert!(manager.process_retirements().await.is_empty());
        if !early {
            assert!(registry.deregister("laggard").await.unwrap());
        }
    }
    let newest = store.current(&path).await.unwrap().meta.id;
    let settled = consumers.wait_all_on(&newest, Duration::from_secs(5)).await;
    let report = consumers.stop().await;
    let line = report.line("dual_write", "redis", ROTATIONS);
    println!("{line}");
    println!("{report}");
    println!("retired early (all consumers acknowledged): {by_ack}, at the grace deadline: {by_grace}");
    assert!(settled, "every consumer ends on the newest credential: {:?}", report.last_versions);
    assert_eq!(report.auth_failed, 0, "{report}");
    assert!(report.auth_ok > 0);
    assert_eq!((by_ack, by_grace), (ROTATIONS.div_ceil(2), ROTATIONS / 2));

    texts.push(line);
    texts.push(report.to_string());
    texts.extend(audit.events().iter().map(|e| format!("{e:?}")));
    for p in &passwords {
        assert_not_leaked(p, &texts);
    }
}
