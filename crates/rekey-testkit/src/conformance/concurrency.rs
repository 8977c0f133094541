//! Conformance cases: races between writers, version times, and secrets kept out of every error and `Debug`.

use futures::future::join_all;
use rekey_core::{DynSecretStore, ExposeSecret, PutOptions, RotationId, SecretStoreExt, VersionId, VersionSelector};

use super::SECRET_MARKER;
use super::helpers::*;

/// Eight concurrent `put IfCurrent(base)`: exactly one wins, seven get
/// `Conflict`, and the winner's value is current.
pub async fn race_put_if_current(store: &DynSecretStore, prefix: &str) {
    let case = "race_put_if_current";
    let p = path(prefix, case, "s");
    let base = ok(case, "create", store.create(&p, value("base")).await);
    let vals: Vec<_> = (0..8).map(|i| value(&format!("racer{i}"))).collect();
    let results =
        join_all(vals.iter().map(|v| {
            store.put(&p, v.clone(), PutOptions::if_current(base.id.clone()).with_rotation(RotationId::new()))
        }))
        .await;
    let mut winners = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(meta) => winners.push((i, meta)),
            Err(e) => {
                no_leak(case, "racer", &e);
                expect_kind(case, "a losing racer", &e, "conflict");
            }
        }
    }
    check(case, winners.len() == 1, &format!("{} of 8 racers won, expected exactly 1", winners.len()));
    if let Some((i, meta)) = winners.first()
        && let Some(v) = vals.get(*i)
    {
        let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
        check(case, cur.meta.id == meta.id, "the current version is not the winner's");
        same_value(case, "current after the race", &cur.data, v);
    }
    let list = versions(case, "list", store, &p).await;
    check(case, list.len() == 2, &format!("the race left {} versions, expected 2", list.len()));
}

/// Eight concurrent promoters of eight different versions, all expecting the
/// same current one: exactly one wins, seven get `Conflict`, and the winner's
/// value is current.
pub async fn race_promote_distinct_versions(store: &DynSecretStore, prefix: &str) {
    let case = "race_promote_distinct_versions";
    let p = path(prefix, case, "s");
    let vals: Vec<_> = (0..8).map(|i| value(&format!("racer{i}"))).collect();
    let mut ids: Vec<VersionId> = Vec::new();
    let mut cur: Option<VersionId> = None;
    for v in &vals {
        let opts = match cur.take() {
            None => PutOptions::create(),
            Some(c) => PutOptions::if_current(c),
        };
        let id = ok(case, "seed version", store.put(&p, v.clone(), opts).await).id;
        ids.push(id.clone());
        cur = Some(id);
    }
    let Some(seed_last) = cur else { return };
    let base = ok(case, "put base", store.put(&p, value("base"), PutOptions::if_current(seed_last)).await);
    let results = join_all(ids.iter().map(|id| store.promote(&p, id, &base.id))).await;
    let mut winners = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(meta) => winners.push((i, meta)),
            Err(e) => {
                no_leak(case, "racer", &e);
                expect_kind(case, "a losing promoter", &e, "conflict");
            }
        }
    }
    check(case, winners.len() == 1, &format!("{} of 8 promoters won, expected exactly 1", winners.len()));
    if let Some((i, meta)) = winners.first()
        && let Some(v) = vals.get(*i)
    {
        let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
        check(case, cur.meta.id == meta.id, "the current version is not the winner's");
        same_value(case, "current after the race", &cur.data, v);
        let prev = read(case, "read previous", store, &p, VersionSelector::Previous).await;
        check(case, prev.meta.id == base.id, "the version replaced by the winner is not previous");
    }
}

/// Eight concurrent promoters of the same candidate, all expecting the same
/// current version (eight processes finishing one rotation): exactly one
/// wins, seven get `Conflict`.
pub async fn race_promote_same_candidate(store: &DynSecretStore, prefix: &str) {
    let case = "race_promote_same_candidate";
    let p = path(prefix, case, "s");
    let (a, c) = (value("a"), value("candidate"));
    let v1 = ok(case, "create", store.create(&p, a.clone()).await);
    let staged = ok(case, "stage", store.stage(&p, c.clone(), RotationId::new()).await);
    let results = join_all((0..8).map(|_| store.promote(&p, &staged.id, &v1.id))).await;
    let mut wins = 0;
    for r in results {
        match r {
            Ok(_) => wins += 1,
            Err(e) => {
                no_leak(case, "racer", &e);
                expect_kind(case, "a losing promoter", &e, "conflict");
            }
        }
    }
    check(case, wins == 1, &format!("{wins} of 8 promoters won, expected exactly 1"));
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    same_value(case, "current after the race", &cur.data, &c);
    let prev = read(case, "read previous", store, &p, VersionSelector::Previous).await;
    same_value(case, "previous after the race", &prev.data, &a);
    expect_not_found(case, "read pending after the race", store, &p, VersionSelector::Pending).await;
    let list = versions(case, "list", store, &p).await;
    let cur_count = list.iter().filter(|v| v.stages.current).count();
    check(case, cur_count == 1, "the race left more than one current version");
}

/// Creation times, as the store reports them, never decrease from one
/// version to the next in the order they were written.
///
/// (What a write *returns* as `created_at` is not compared: AWS's
/// `PutSecretValue` does not return the creation time.)
pub async fn created_at_monotonic(store: &DynSecretStore, prefix: &str) {
    let case = "created_at_monotonic";
    let p = path(prefix, case, "s");
    let mut ids = vec![ok(case, "create", store.create(&p, value("v0")).await).id];
    for i in 1..4 {
        let Some(last) = ids.last().cloned() else { break };
        ids.push(ok(case, "put", store.put(&p, value(&format!("v{i}")), PutOptions::if_current(last)).await).id);
    }
    ids.push(ok(case, "stage", store.stage(&p, value("candidate"), RotationId::new()).await).id);
    let list = versions(case, "list", store, &p).await;
    stages(case, "list", &list);
    let mut times = Vec::new();
    for id in &ids {
        match list.iter().find(|v| v.id == *id) {
            Some(v) => times.push((id, v.created_at)),
            None => check(case, false, &format!("list_versions lacks version {id}")),
        }
    }
    for w in times.windows(2) {
        if let [(a, ta), (b, tb)] = w {
            check(case, ta <= tb, &format!("version {b} was created before version {a}, which was written earlier"));
        }
    }
    for (id, t) in &times {
        let got = read(case, "read by id", store, &p, VersionSelector::Id((*id).clone())).await;
        check(case, got.meta.created_at == *t, &format!("read and list_versions disagree on the created_at of {id}"));
    }
}

/// No value shows in the `Debug` of what a store returns, nor in any error
/// (the helpers check every error; this case provokes one of each kind the
/// suite can provoke and checks the versions' `Debug` as well).
pub async fn no_secret_in_debug_or_errors(store: &DynSecretStore, prefix: &str) {
    let case = "no_secret_in_debug_or_errors";
    let p = path(prefix, case, "s");
    let v1 = ok(case, "create", store.create(&p, fields("a")).await);
    let staged = ok(case, "stage", store.stage(&p, fields("c"), RotationId::new()).await);
    let shown = format!("{store:?} {v1:?} {staged:?}");
    check(case, !shown.contains(SECRET_MARKER), "the Debug of the store or of a VersionMeta shows a value");
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    let exposed = cur.data.field("password").map(|s| s.expose_secret().contains(SECRET_MARKER));
    check(case, exposed == Some(true), "the value read back lacks its password field");
    let _ = err(case, "create twice", store.create(&p, fields("x")).await);
    let _ = err(case, "stale put", store.put(&p, fields("y"), PutOptions::if_current(staged.id.clone())).await);
    let _ = err(case, "discard current", store.discard(&p, &v1.id).await);
}
