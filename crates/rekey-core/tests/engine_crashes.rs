//! Property: any sequence of crashes — a process dying at any store call of
//! a staged or immediate rotation — leaves a readable current value that is
//! one the rotations wrote, and a restarted process then rotates cleanly,
//! leaving nothing staged and no journal behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use std::sync::Arc;
use std::time::Duration;

use engine_support::*;
use futures::FutureExt;
use proptest::prelude::*;
use rekey_core::*;
use rekey_memory::{FaultInjectingStore, MemoryStore, Rule};

fn strategy_of(i: u8) -> RotationStrategy {
    if i == 0 { RotationStrategy::Staged } else { RotationStrategy::Immediate }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn crashes_at_any_call_leave_a_readable_value_and_recover(
        crashes in proptest::collection::vec((0u8..2, 1u64..9, any::<bool>()), 1..5),
    ) {
        let clock = ManualClock::new(t0());
        let c = clock.clone();
        // A rule whose delay never ends: the call "hangs", and dropping the
        // rotation future there is a crash at exactly that call.
        let store = Arc::new(
            FaultInjectingStore::new(MemoryStore::new().with_clock(move || c.now()))
                .with_sleep(|_| Box::pin(futures::future::pending())),
        );
        let audit = MemoryAuditSink::new();
        let p = path("crash/prop");
        futures::executor::block_on(store.create(&p, SecretData::text("v0"))).unwrap();
        let mut written = vec!["v0".to_owned()];
        for (i, (strategy, nth, verify)) in crashes.into_iter().enumerate() {
            // Each crash happens in a fresh process (a new manager).
            let m = manager_on(store.clone(), &clock, &audit, |b| b);
            let policy = if verify { verified(strategy_of(strategy), &["api_test"]) } else { policy(strategy_of(strategy)) };
            let value = format!("crash-{i}");
            written.push(value.clone());
            let rule = store.add_rule(Rule::any().nth(nth).delay(Duration::from_millis(1)));
            let done = m.rotate_secret(&p, &policy, Some(SecretString::from(value))).now_or_never();
            store.remove_rule(rule);
            if let Some(r) = done {
                prop_assert!(!r.outcome.is_failure(), "{r}");
            }
            drop(m);
            let cur = futures::executor::block_on(store.current(&p)).unwrap();
            prop_assert!(written.contains(&text(&cur.data)), "unexpected current value");
            clock.advance(Duration::from_secs(3600));
        }
        // A restarted process cleans up and rotates.
        let m = manager_on(store.clone(), &clock, &audit, |b| b);
        let r = futures::executor::block_on(m.rotate_secret(&p, &policy(RotationStrategy::Staged), Some(SecretString::from("final"))));
        prop_assert!(r.success(), "{r}");
        prop_assert_eq!(text(&futures::executor::block_on(store.current(&p)).unwrap().data), "final");
        prop_assert!(futures::executor::block_on(store.pending(&p)).unwrap().is_none());
        let meta = futures::executor::block_on(store.read_metadata(&p)).unwrap();
        prop_assert!(!meta.contains_key("rekey.rotation"));
    }
}

#[test]
fn a_hanging_call_really_stops_the_rotation_there() {
    let clock = ManualClock::new(t0());
    let store =
        Arc::new(FaultInjectingStore::new(MemoryStore::new()).with_sleep(|_| Box::pin(futures::future::pending())));
    let audit = MemoryAuditSink::new();
    let p = path("crash/hang");
    futures::executor::block_on(store.create(&p, SecretData::text("v0"))).unwrap();
    let m = manager_on(store.clone(), &clock, &audit, |b| b);
    // Calls (issue 12: the store's minimum): stage (with the journal, and
    // what was current), promote...
    store.add_rule(Rule::any().nth(2).delay(Duration::from_millis(1)));
    let done = m.rotate_secret(&p, &policy(RotationStrategy::Staged), None).now_or_never();
    assert!(done.is_none(), "hung at the promote");
    assert!(futures::executor::block_on(store.pending(&p)).unwrap().is_some(), "crashed with a candidate staged");
}
