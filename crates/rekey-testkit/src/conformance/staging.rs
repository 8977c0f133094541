//! Conformance cases: staging, promoting, discarding and rolling back candidates.

use rekey_core::{DynSecretStore, PutOptions, RotationId, SecretStoreExt, VersionSelector};

use super::helpers::*;

/// `Pending` with nothing staged is `NotFound` (and `pending()` is `None`).
pub async fn pending_nothing_staged_not_found(store: &DynSecretStore, prefix: &str) {
    let case = "pending_nothing_staged_not_found";
    let p = path(prefix, case, "s");
    ok(case, "create", store.create(&p, value("only")).await);
    expect_not_found(case, "read pending", store, &p, VersionSelector::Pending).await;
    let none = ok(case, "SecretStoreExt::pending", store.pending(&p).await);
    check(case, none.is_none(), "SecretStoreExt::pending: returned a version with nothing staged");
}

/// Staging never changes the current version; the candidate is pending.
pub async fn staging_never_changes_current(store: &DynSecretStore, prefix: &str) {
    let case = "staging_never_changes_current";
    let p = path(prefix, case, "s");
    let (a, c) = (value("a"), value("candidate"));
    let v1 = ok(case, "create", store.create(&p, a.clone()).await);
    let r = RotationId::new();
    let staged = ok(case, "stage", store.stage(&p, c.clone(), r).await);
    check(case, staged.stages.pending && !staged.stages.current, "stage: candidate not marked pending only");
    check_rotation(case, "stage", &staged, r);
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    same_value(case, "current after stage", &cur.data, &a);
    check(case, cur.meta.id == v1.id, "staging changed the current version");
    let pend = read(case, "read pending", store, &p, VersionSelector::Pending).await;
    same_value(case, "pending", &pend.data, &c);
    check(case, pend.meta.id == staged.id && pend.meta.stages.pending, "pending is not the staged version");
    let list = versions(case, "list", store, &p).await;
    let (current, _, pending) = stages(case, "list", &list);
    check(case, current == v1.id, "list: the current version changed");
    check(case, pending.as_ref() == Some(&staged.id), "list: the staged version is not pending");
}

/// Staging twice with the same rotation id returns the same candidate and
/// leaves one pending version.
pub async fn stage_same_rotation_id_once(store: &DynSecretStore, prefix: &str) {
    let case = "stage_same_rotation_id_once";
    let p = path(prefix, case, "s");
    ok(case, "create", store.create(&p, value("a")).await);
    let r = RotationId::new();
    let c = value("candidate");
    let s1 = ok(case, "stage", store.stage(&p, c.clone(), r).await);
    let n = versions(case, "list", store, &p).await.len();
    let s2 = ok(case, "stage again", store.stage(&p, c.clone(), r).await);
    check(case, s1.id == s2.id, "staging again with the same rotation id returned another version");
    let list = versions(case, "list", store, &p).await;
    check(case, list.len() == n, "staging again with the same rotation id added a version");
    let (_, _, pending) = stages(case, "list", &list);
    check(case, pending.as_ref() == Some(&s1.id), "the candidate is no longer pending");
    let pend = read(case, "read pending", store, &p, VersionSelector::Pending).await;
    same_value(case, "pending", &pend.data, &c);
}

/// Staging with another rotation id replaces the candidate.
pub async fn stage_other_rotation_replaces_candidate(store: &DynSecretStore, prefix: &str) {
    let case = "stage_other_rotation_replaces_candidate";
    let p = path(prefix, case, "s");
    let a = value("a");
    let v1 = ok(case, "create", store.create(&p, a.clone()).await);
    let s1 = ok(case, "first stage", store.stage(&p, value("c1"), RotationId::new()).await);
    let c2 = value("c2");
    let s2 = ok(case, "second stage", store.stage(&p, c2.clone(), RotationId::new()).await);
    check(case, s1.id != s2.id, "a stage with another rotation id returned the older candidate");
    let pend = read(case, "read pending", store, &p, VersionSelector::Pending).await;
    same_value(case, "pending", &pend.data, &c2);
    check(case, pend.meta.id == s2.id, "pending is not the newer candidate");
    let list = versions(case, "list", store, &p).await;
    let (current, _, pending) = stages(case, "list", &list);
    check(case, pending.as_ref() == Some(&s2.id), "list: the newer candidate is not the one pending");
    check(case, current == v1.id, "list: staging changed the current version");
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    same_value(case, "current", &cur.data, &a);
}

/// Promoting the candidate with the right expected version makes it current,
/// the old value previous, and leaves nothing pending.
pub async fn promote_pending(store: &DynSecretStore, prefix: &str) {
    let case = "promote_pending";
    let p = path(prefix, case, "s");
    let (a, c) = (value("a"), value("candidate"));
    let v1 = ok(case, "create", store.create(&p, a.clone()).await);
    let staged = ok(case, "stage", store.stage(&p, c.clone(), RotationId::new()).await);
    let promoted = ok(case, "promote", store.promote(&p, &staged.id, &v1.id).await);
    check(case, promoted.stages.current, "promote: the returned version is not marked current");
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    check(case, cur.meta.id == promoted.id, "promote returned an id other than read(Current)'s");
    same_value(case, "current after promote", &cur.data, &c);
    let prev = read(case, "read previous", store, &p, VersionSelector::Previous).await;
    same_value(case, "previous after promote", &prev.data, &a);
    expect_not_found(case, "read pending after promote", store, &p, VersionSelector::Pending).await;
    let list = versions(case, "list", store, &p).await;
    let (current, previous, pending) = stages(case, "list", &list);
    check(case, current == promoted.id, "list: promoted version not current");
    check(case, previous.is_some(), "list: no previous version after promote");
    check(case, pending.is_none(), "list: a version is still pending after promote");
}

/// Promoting with a stale expected version is `Conflict` and changes nothing:
/// current, previous and pending stay as they were.
pub async fn promote_stale_expected_conflict(store: &DynSecretStore, prefix: &str) {
    let case = "promote_stale_expected_conflict";
    let p = path(prefix, case, "s");
    let (a, b, c) = (value("a"), value("b"), value("candidate"));
    let v1 = ok(case, "create", store.create(&p, a.clone()).await);
    let v2 = ok(case, "put", store.put(&p, b.clone(), PutOptions::if_current(v1.id.clone())).await);
    let staged = ok(case, "stage", store.stage(&p, c.clone(), RotationId::new()).await);
    let before = versions(case, "list before", store, &p).await;
    let e = err(case, "promote with stale expected", store.promote(&p, &staged.id, &v1.id).await);
    check_conflict(case, "promote with stale expected", &e, &v1.id, &v2.id);
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    same_value(case, "current after conflict", &cur.data, &b);
    check(case, cur.meta.id == v2.id, "a conflicting promote changed the current version");
    let prev = read(case, "read previous", store, &p, VersionSelector::Previous).await;
    same_value(case, "previous after conflict", &prev.data, &a);
    let pend = read(case, "read pending", store, &p, VersionSelector::Pending).await;
    same_value(case, "pending after conflict", &pend.data, &c);
    check(case, pend.meta.id == staged.id, "a conflicting promote changed the pending version");
    let after = versions(case, "list after", store, &p).await;
    check(case, before == after, "a conflicting promote changed the version list");
}

/// Rolling back (promoting the previous version) restores the old value;
/// rolling forward again restores the new one.
pub async fn rollback_restores_previous(store: &DynSecretStore, prefix: &str) {
    let case = "rollback_restores_previous";
    let p = path(prefix, case, "s");
    let (a, c) = (value("old"), value("new"));
    let v1 = ok(case, "create", store.create(&p, a.clone()).await);
    let staged = ok(case, "stage", store.stage(&p, c.clone(), RotationId::new()).await);
    ok(case, "promote", store.promote(&p, &staged.id, &v1.id).await);
    let back = ok(case, "SecretStoreExt::rollback", store.rollback(&p).await);
    let cur = read(case, "read current after rollback", store, &p, VersionSelector::Current).await;
    check(case, cur.meta.id == back.id, "rollback returned an id other than read(Current)'s");
    same_value(case, "current after rollback", &cur.data, &a);
    let prev = read(case, "read previous after rollback", store, &p, VersionSelector::Previous).await;
    same_value(case, "previous after rollback", &prev.data, &c);
    // Explicitly: promote the previous version with CAS on the current one.
    let fwd = ok(case, "promote previous", store.promote(&p, &prev.meta.id, &cur.meta.id).await);
    let cur2 = read(case, "read current after roll forward", store, &p, VersionSelector::Current).await;
    check(case, cur2.meta.id == fwd.id, "promote returned an id other than read(Current)'s");
    same_value(case, "current after roll forward", &cur2.data, &c);
    let prev2 = read(case, "read previous after roll forward", store, &p, VersionSelector::Previous).await;
    same_value(case, "previous after roll forward", &prev2.data, &a);
    stages(case, "list", &versions(case, "list", store, &p).await);
}

/// Discarding the candidate removes it (pending is `NotFound`), leaves the
/// current version alone, and is idempotent.
pub async fn discard_removes_candidate(store: &DynSecretStore, prefix: &str) {
    let case = "discard_removes_candidate";
    let p = path(prefix, case, "s");
    let a = value("a");
    let v1 = ok(case, "create", store.create(&p, a.clone()).await);
    let staged = ok(case, "stage", store.stage(&p, value("candidate"), RotationId::new()).await);
    ok(case, "discard", store.discard(&p, &staged.id).await);
    expect_not_found(case, "read pending after discard", store, &p, VersionSelector::Pending).await;
    ok(case, "discard again", store.discard(&p, &staged.id).await);
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    same_value(case, "current after discard", &cur.data, &a);
    check(case, cur.meta.id == v1.id, "discard changed the current version");
    let list = versions(case, "list", store, &p).await;
    let (_, _, pending) = stages(case, "list", &list);
    check(case, pending.is_none(), "list: a version is still pending after discard");
    // A new candidate can be staged afterwards.
    let c = value("candidate-2");
    ok(case, "stage after discard", store.stage(&p, c.clone(), RotationId::new()).await);
    let pend = read(case, "read pending", store, &p, VersionSelector::Pending).await;
    same_value(case, "pending after restage", &pend.data, &c);
}

/// Discarding the current version is `InvalidInput` and changes nothing.
pub async fn discard_current_invalid(store: &DynSecretStore, prefix: &str) {
    let case = "discard_current_invalid";
    let p = path(prefix, case, "s");
    let a = value("a");
    let v1 = ok(case, "create", store.create(&p, a.clone()).await);
    let e = err(case, "discard current", store.discard(&p, &v1.id).await);
    expect_kind(case, "discard current", &e, "invalid_input");
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    same_value(case, "current after refused discard", &cur.data, &a);
    check(case, cur.meta.id == v1.id, "a refused discard changed the current version");
}

/// Staging on a missing secret is `NotFound` and creates nothing.
pub async fn stage_missing_secret_not_found(store: &DynSecretStore, prefix: &str) {
    let case = "stage_missing_secret_not_found";
    let p = path(prefix, case, "never-written");
    let e = err(case, "stage", store.stage(&p, value("candidate"), RotationId::new()).await);
    expect_kind(case, "stage on a missing secret", &e, "not_found");
    expect_not_found(case, "read current", store, &p, VersionSelector::Current).await;
    expect_not_found(case, "read pending", store, &p, VersionSelector::Pending).await;
}

/// Promoting a version the secret does not have is `NotFound` and changes
/// nothing.
pub async fn promote_unknown_version_not_found(store: &DynSecretStore, prefix: &str) {
    let case = "promote_unknown_version_not_found";
    let p = path(prefix, case, "s");
    let a = value("a");
    let v1 = ok(case, "create", store.create(&p, a.clone()).await);
    let unknown = foreign_version(case, store, prefix).await;
    let e = err(case, "promote unknown", store.promote(&p, &unknown, &v1.id).await);
    expect_kind(case, "promote unknown version", &e, "not_found");
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    same_value(case, "current", &cur.data, &a);
    check(case, cur.meta.id == v1.id, "a failed promote changed the current version");
}
