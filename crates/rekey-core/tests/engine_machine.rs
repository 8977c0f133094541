//! The pure state machine, exhaustively: every strategy, option and single
//! failure (at every action, as an error or a lost compare-and-swap, with
//! or without a failing undo), run against a model of the store and target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rekey_core::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V {
    Old,
    New,
}

#[derive(Debug)]
struct Model {
    current: V,
    pending: bool,
    target: V,
    journal: bool,
}

impl Model {
    fn apply(&mut self, a: RotationAction) {
        match a {
            RotationAction::Journal => self.journal = true,
            RotationAction::ClearJournal => self.journal = false,
            RotationAction::Stage => self.pending = true,
            RotationAction::Write => self.current = V::New,
            RotationAction::Apply => self.target = V::New,
            RotationAction::Promote => {
                self.current = V::New;
                self.pending = false;
            }
            RotationAction::Discard => self.pending = false,
            RotationAction::Rollback => self.current = V::Old,
            RotationAction::Revoke => self.target = self.current,
            _ => {}
        }
    }
}

struct Run {
    actions: Vec<RotationAction>,
    verdict: RotationVerdict,
    state: RotationState,
    model: Model,
}

/// Runs the machine; the `fail_at`-th action (0-based) fails with
/// `failure`, and the `undo_fail_at`-th undo action fails too.
fn run(
    strategy: RotationStrategy,
    verify: bool,
    target: bool,
    auto_rollback: bool,
    fail_at: Option<usize>,
    failure: ActionOutcome,
    undo_fail_at: Option<usize>,
) -> Run {
    let mut s = RotationState::new(strategy, verify, target, auto_rollback);
    let mut m = Model { current: V::Old, pending: false, target: V::Old, journal: false };
    let mut actions = Vec::new();
    let mut undos = 0;
    for _ in 0..32 {
        let a = next_action(&s);
        actions.push(a);
        if let RotationAction::Finish(v) = a {
            return Run { actions, verdict: v, state: s, model: m };
        }
        let is_undo = matches!(a, RotationAction::Discard | RotationAction::Rollback | RotationAction::Revoke);
        let outcome = if is_undo {
            undos += 1;
            if Some(undos - 1) == undo_fail_at { ActionOutcome::Failed } else { ActionOutcome::Done }
        } else if Some(actions.len() - 1) == fail_at {
            failure
        } else {
            ActionOutcome::Done
        };
        if outcome == ActionOutcome::Done {
            m.apply(a);
        }
        s.record(a, outcome);
    }
    panic!("no Finish after 32 actions: {actions:?}");
}

use RotationAction::*;

#[test]
fn success_sequences() {
    let cases: [(RotationStrategy, bool, bool, &[RotationAction]); 6] = [
        (RotationStrategy::Staged, false, false, &[Journal, Stage, Promote, ClearJournal]),
        (RotationStrategy::Staged, true, false, &[Journal, Stage, Verify, Promote, ClearJournal]),
        (RotationStrategy::Staged, true, true, &[Journal, Stage, Apply, Verify, Promote, Confirm, ClearJournal]),
        (RotationStrategy::Immediate, false, false, &[Journal, Write, ClearJournal]),
        (RotationStrategy::Immediate, true, false, &[Journal, Write, Verify, ClearJournal]),
        (RotationStrategy::Immediate, false, true, &[Journal, Write, Apply, Verify, ClearJournal]),
    ];
    for (strategy, verify, target, expected) in cases {
        let r = run(strategy, verify, target, true, None, ActionOutcome::Done, None);
        assert_eq!(&r.actions[..r.actions.len() - 1], expected, "{strategy} verify={verify} target={target}");
        assert_eq!(r.verdict, RotationVerdict::Succeeded);
        assert_eq!(r.model.current, V::New);
        assert!(!r.model.pending && !r.model.journal);
        if target {
            assert_eq!(r.model.target, V::New);
        }
    }
}

#[test]
fn dual_write_and_blue_green_take_the_staged_steps() {
    // Their differences are in what the steps do (apply beside the old
    // credential and record the retire step; re-key the inactive set), not
    // in the sequence.
    for s in [RotationStrategy::DualWrite, RotationStrategy::BlueGreen] {
        for (verify, target) in [(false, false), (true, false), (true, true), (false, true)] {
            let r = run(s, verify, target, true, None, ActionOutcome::Done, None);
            let staged = run(RotationStrategy::Staged, verify, target, true, None, ActionOutcome::Done, None);
            assert_eq!(r.actions, staged.actions, "{s} verify={verify} target={target}");
            assert_eq!(r.verdict, RotationVerdict::Succeeded);
        }
    }
}

#[test]
fn every_single_failure_is_undone_safely() {
    let mut cases = 0;
    for strategy in [
        RotationStrategy::Staged,
        RotationStrategy::Immediate,
        RotationStrategy::DualWrite,
        RotationStrategy::BlueGreen,
    ] {
        for verify in [false, true] {
            for target in [false, true] {
                for auto_rollback in [false, true] {
                    let ok = run(strategy, verify, target, auto_rollback, None, ActionOutcome::Done, None);
                    for fail_at in 0..ok.actions.len() - 1 {
                        if ok.actions[fail_at] == ClearJournal {
                            // Not a rotation failure: the journal stays for
                            // the next run to clear.
                            let r = run(
                                strategy,
                                verify,
                                target,
                                auto_rollback,
                                Some(fail_at),
                                ActionOutcome::Failed,
                                None,
                            );
                            assert_eq!(r.verdict, RotationVerdict::Succeeded);
                            assert!(r.model.journal);
                            continue;
                        }
                        for failure in [ActionOutcome::Failed, ActionOutcome::Conflict] {
                            for undo_fail_at in [None, Some(0), Some(1)] {
                                cases += 1;
                                let r =
                                    run(strategy, verify, target, auto_rollback, Some(fail_at), failure, undo_fail_at);
                                check(&r, strategy, target, auto_rollback, fail_at, failure, undo_fail_at);
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(cases > 600, "{cases}");
}

fn check(
    r: &Run,
    strategy: RotationStrategy,
    target: bool,
    auto_rollback: bool,
    fail_at: usize,
    failure: ActionOutcome,
    undo_fail_at: Option<usize>,
) {
    let ctx = format!(
        "{strategy} target={target} auto_rollback={auto_rollback} fail_at={fail_at} {failure:?} undo_fail={undo_fail_at:?}: {:?}",
        r.actions
    );
    let failed_action = r.actions[fail_at];
    assert!(r.state.failure.is_some(), "{ctx}");
    assert_ne!(r.verdict, RotationVerdict::Succeeded, "{ctx}");
    // Nothing after the failure moves forward.
    for a in &r.actions[fail_at + 1..] {
        assert!(
            matches!(a, Discard | Rollback | Revoke | ClearJournal | Finish(_)),
            "{ctx}: forward action {a:?} after the failure"
        );
    }
    let undo_failed = r.state.undo_failed;
    // A failed undo keeps the journal (the next run cleans up); otherwise
    // the journal is always cleared.
    assert_eq!(r.model.journal, undo_failed, "{ctx}");
    if undo_failed {
        assert_eq!(r.verdict, RotationVerdict::Failed, "{ctx}");
        return;
    }
    // No candidate is ever left staged.
    assert!(!r.model.pending, "{ctx}");
    let went_current = match strategy {
        RotationStrategy::Immediate => r.actions[..fail_at].contains(&Write),
        _ => r.actions[..fail_at].contains(&Promote),
    };
    if !went_current {
        // Failure before the new value became current: the current value
        // never changed, and no rollback was needed.
        assert_eq!(r.model.current, V::Old, "{ctx}");
        assert!(!r.actions.contains(&Rollback), "{ctx}");
    } else if auto_rollback || strategy == RotationStrategy::Immediate {
        // Immediate: what fails after the write is a check (target,
        // verifiers), and a value that failed a check is never left current.
        assert_eq!(r.model.current, V::Old, "{ctx}");
        assert_eq!(r.verdict, RotationVerdict::RolledBack, "{ctx}");
    } else if target && !r.actions[..fail_at].contains(&Apply) {
        // The target never accepted the new value: rolled back regardless.
        assert_eq!(r.model.current, V::Old, "{ctx}");
    } else {
        assert_eq!(r.model.current, V::New, "{ctx}: kept, as auto_rollback is off");
        assert_eq!(r.verdict, RotationVerdict::Failed, "{ctx}");
    }
    // The target accepts whatever the store serves.
    if target && failure == ActionOutcome::Failed {
        assert_eq!(r.model.target, r.model.current, "{ctx}");
    }
    if r.verdict == RotationVerdict::RolledBack {
        assert_eq!(r.model.current, V::Old, "{ctx}");
    }
    let _ = failed_action;
}

#[test]
fn actions_name_their_steps() {
    assert_eq!(Stage.step(), RotationStep::Stage);
    assert_eq!(Promote.step(), RotationStep::Promote);
    assert_eq!(ClearJournal.step(), RotationStep::Cleanup);
    for s in [RotationStep::Prepare, RotationStep::Verify, RotationStep::Rollback, RotationStep::Cleanup] {
        assert_eq!(RotationStep::parse(s.as_str()), Some(s));
        assert_eq!(s.to_string(), s.as_str());
    }
    assert_eq!(RotationStep::parse("nope"), None);
}
