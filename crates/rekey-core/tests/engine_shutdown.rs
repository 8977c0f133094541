//! A shutdown during a scheduled batch: the rotation in flight finishes, no
//! new one starts, and the due secrets not started stay due.
#![allow(clippy::unwrap_used, missing_docs)]

mod engine_support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use engine_support::*;
use rekey_core::*;
use tokio::sync::{Notify, oneshot};

/// Signals when a verification starts, then waits to be released.
#[derive(Debug, Default)]
struct Gate {
    started: Notify,
    release: Notify,
}

#[derive(Debug)]
struct Gated(Arc<Gate>);

#[async_trait]
impl Verifier for Gated {
    fn name(&self) -> &str {
        "gated"
    }
    async fn verify(&self, _ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        self.0.started.notify_one();
        self.0.release.notified().await;
        Ok(())
    }
}

#[tokio::test]
async fn stop_lets_the_running_rotation_finish_and_starts_no_other() {
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    let env = env_with(move |b| b.verifier(Arc::new(Gated(g))).max_concurrency(1));
    let policy = RotationPolicy::builder("daily-verified")
        .strategy(RotationStrategy::Staged)
        .interval(Duration::from_secs(86_400))
        .require_verification(true)
        .verification_tests(["gated"])
        .build()
        .unwrap();
    let paths: Vec<SecretPath> = (0..3).map(|i| path(&format!("svc/s{i}"))).collect();
    for p in &paths {
        env.seed(p, "initial").await;
        env.manager.schedule_rotation(p, policy.clone()).await.unwrap();
    }
    env.clock.advance(Duration::from_secs(2 * 86_400));

    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let stop = async move {
        let _ = stop_rx.await;
    };
    let batch = env.manager.process_scheduled_rotations_until(stop);
    let control = async {
        gate.started.notified().await; // the first rotation is verifying
        stop_tx.send(()).unwrap(); // shutdown
        tokio::task::yield_now().await;
        gate.release.notify_one(); // let it finish
    };
    // Without the stop, the second rotation would wait for a release that
    // never comes: bound the wait so a regression fails instead of hanging.
    let (results, ()) = tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(batch, control) })
        .await
        .expect("the batch kept starting rotations after the stop");

    assert_eq!(results.len(), 1, "only the rotation in flight ran: {results:?}");
    assert!(results[0].success(), "{results:?}");
    let mut rotated = 0;
    for p in &paths {
        let versions = env.store.list_versions(p).await.unwrap();
        assert!(env.pending(p).await.is_none(), "no candidate left staged on {p}");
        if versions.len() == 2 {
            rotated += 1;
        }
    }
    assert_eq!(rotated, 1, "the other due secrets were not touched");
    let now = env.clock.now();
    let still_due = paths
        .iter()
        .filter(|p| env.manager.get_schedule(p).is_some_and(|s| s.next_rotation.is_some_and(|t| t <= now)))
        .count();
    assert_eq!(still_due, 2, "the secrets not started stay due for the next pass");
    assert_eq!(env.manager.statistics().active_rotations, 0);

    // The next pass (no shutdown) rotates them.
    let release = async {
        for _ in 0..2 {
            gate.started.notified().await;
            gate.release.notify_one();
        }
    };
    let (results, ()) = tokio::join!(env.manager.process_scheduled_rotations(), release);
    assert_eq!(results.iter().filter(|r| r.success()).count(), 2, "{results:?}");
}
