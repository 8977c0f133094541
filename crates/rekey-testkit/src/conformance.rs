//! The store conformance suite: the semantics of
//! [`rekey_core::store`], checked against a live store.
//!
//! Every case is a `pub async fn(store: &DynSecretStore, prefix: &str)` that
//! panics (failing the test) with a message naming the case when the store
//! does not behave as the contract says. Each case writes only under
//! `<prefix>/<case name>/`, so with a fresh prefix ([`unique_prefix`]) the
//! suite can run repeatedly and concurrently against one shared server.
//!
//! What the suite relies on, so that every backend can pass it unchanged:
//!
//! * It asserts exact [`StoreError`] variants, values, stages and the order
//!   of versions, never the form of a [`VersionId`] (a number on Vault, a
//!   UUID on AWS and in memory).
//! * [`promote`](rekey_core::SecretStore::promote) may return a new id (Vault
//!   promotes by copying): the suite checks the returned id against
//!   `read(Current)`, never against the promoted id.
//! * Every secret value it writes contains [`SECRET_MARKER`]; every error it
//!   sees is checked for that marker in its `Display`, its `Debug` and its
//!   source chain, and so is the `Debug` of every version it reads.
//!
//! Run everything with [`run_all`], or each case as its own test with
//! [`conformance_tests!`](crate::conformance_tests):
//!
//! ```
//! use std::sync::Arc;
//! use rekey_core::DynSecretStore;
//! use rekey_memory::MemoryStore;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store: Arc<DynSecretStore> = Arc::new(MemoryStore::new());
//! rekey_testkit::conformance::run_all(store, &rekey_testkit::unique_prefix("doc")).await;
//! # }
//! ```
//!
//! [`unique_prefix`]: crate::unique_prefix

use std::collections::BTreeSet;
use std::error::Error as _;
use std::sync::Arc;

use futures::future::{BoxFuture, join_all};
use rekey_core::{
    DynSecretStore, ExposeSecret, Metadata, PutOptions, RotationId, SecretData, SecretPath, SecretStoreExt,
    SecretVersion, StoreError, VersionId, VersionMeta, VersionSelector,
};

/// Text contained in every secret value the suite writes; no error message
/// and no `Debug` output may contain it.
pub const SECRET_MARKER: &str = "s3cr3t-cf-";

/// One case of the suite.
#[derive(Clone, Copy)]
pub struct Case {
    /// The case's name (also its function's name in this module).
    pub name: &'static str,
    /// Runs the case against a store under a prefix.
    pub run: for<'a> fn(&'a DynSecretStore, &'a str) -> BoxFuture<'a, ()>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Runs every case of [`CASES`] in turn against `store`, under `prefix`.
///
/// Panics with the failing case's name on the first failure.
pub async fn run_all(store: Arc<DynSecretStore>, prefix: &str) {
    for case in CASES {
        (case.run)(&*store, prefix).await;
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A fresh secret value containing [`SECRET_MARKER`].
fn value(tag: &str) -> SecretData {
    SecretData::text(format!("{SECRET_MARKER}{tag}-{}", uuid::Uuid::new_v4().simple()))
}

fn fields(tag: &str) -> SecretData {
    let id = uuid::Uuid::new_v4().simple();
    SecretData::fields([
        ("username", format!("{SECRET_MARKER}{tag}-user-{id}")),
        ("password", format!("{SECRET_MARKER}{tag}-pass-{id}")),
    ])
}

/// `<prefix>/<case>/<name>` as a path.
#[allow(clippy::panic)]
fn path(prefix: &str, case: &str, name: &str) -> SecretPath {
    let raw = format!("{}/{case}/{name}", prefix.trim_end_matches('/'));
    match SecretPath::new(&raw) {
        Ok(p) => p,
        Err(e) => panic!("[{case}] the prefix {prefix:?} does not make a valid secret path: {e}"),
    }
}

/// Fails if an error shows a secret value.
#[allow(clippy::panic)]
fn no_leak(case: &str, what: &str, e: &StoreError) {
    let mut shown = format!("{e} | {e:?} | {e:#?}");
    let mut source = e.source();
    while let Some(s) = source {
        shown.push_str(&format!(" | {s} | {s:?}"));
        source = s.source();
    }
    if shown.contains(SECRET_MARKER) {
        panic!("[{case}] {what}: an error shows a secret value (kind {})", e.kind());
    }
}

/// Fails if a version's `Debug` shows its value.
#[allow(clippy::panic)]
fn no_leak_debug(case: &str, what: &str, v: &SecretVersion) {
    if format!("{v:?} {v:#?}").contains(SECRET_MARKER) {
        panic!("[{case}] {what}: the Debug output of a version shows its value");
    }
}

/// The success value, or a failure naming the case and the step.
#[allow(clippy::panic)]
fn ok<T>(case: &str, what: &str, r: Result<T, StoreError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            no_leak(case, what, &e);
            panic!("[{case}] {what}: unexpected error: {e} (kind {})", e.kind())
        }
    }
}

/// The error, or a failure naming the case and the step.
#[allow(clippy::panic)]
fn err<T>(case: &str, what: &str, r: Result<T, StoreError>) -> StoreError {
    match r {
        Ok(_) => panic!("[{case}] {what}: expected an error, the call succeeded"),
        Err(e) => {
            no_leak(case, what, &e);
            e
        }
    }
}

#[allow(clippy::panic)]
fn expect_kind(case: &str, what: &str, e: &StoreError, kind: &str) {
    if e.kind() != kind {
        panic!("[{case}] {what}: expected a `{kind}` error, got `{}`: {e}", e.kind());
    }
}

async fn expect_not_found(case: &str, what: &str, store: &DynSecretStore, path: &SecretPath, sel: VersionSelector) {
    let e = err(case, what, store.read(path, &sel).await);
    expect_kind(case, what, &e, "not_found");
}

/// Reads a version, checking its `Debug` for leaks.
async fn read(
    case: &str,
    what: &str,
    store: &DynSecretStore,
    path: &SecretPath,
    sel: VersionSelector,
) -> SecretVersion {
    let v = ok(case, what, store.read(path, &sel).await);
    no_leak_debug(case, what, &v);
    v
}

/// Fails unless `actual` holds the same value as `expected` (never prints
/// either).
#[allow(clippy::panic)]
fn same_value(case: &str, what: &str, actual: &SecretData, expected: &SecretData) {
    if !actual.same_as(expected) {
        let names: Vec<_> = actual.field_names().collect();
        panic!("[{case}] {what}: the value read back differs from the value written (fields read: {names:?})");
    }
}

#[allow(clippy::panic)]
fn check(case: &str, cond: bool, what: &str) {
    if !cond {
        panic!("[{case}] {what}");
    }
}

/// Checks a conflict's details where the store gives them.
fn check_conflict(case: &str, what: &str, e: &StoreError, expected: &VersionId, actual: &VersionId) {
    expect_kind(case, what, e, "conflict");
    if let StoreError::Conflict { expected: exp, actual: act, .. } = e {
        if let Some(exp) = exp {
            check(case, exp == expected, &format!("{what}: Conflict names expected {exp}, the caller sent {expected}"));
        }
        if let Some(act) = act {
            check(case, act == actual, &format!("{what}: Conflict names actual {act}, but {actual} is current"));
        }
    }
}

async fn versions(case: &str, what: &str, store: &DynSecretStore, path: &SecretPath) -> Vec<VersionMeta> {
    ok(case, what, store.list_versions(path).await)
}

/// Checks the stage invariants of a version list: exactly one current, at
/// most one previous and one pending, never two stages on one version except
/// none; returns (current, previous, pending).
#[allow(clippy::panic)]
fn stages(case: &str, what: &str, list: &[VersionMeta]) -> (VersionId, Option<VersionId>, Option<VersionId>) {
    let current: Vec<_> = list.iter().filter(|v| v.stages.current).collect();
    let previous: Vec<_> = list.iter().filter(|v| v.stages.previous).collect();
    let pending: Vec<_> = list.iter().filter(|v| v.stages.pending).collect();
    check(case, current.len() == 1, &format!("{what}: {} versions are current, expected exactly 1", current.len()));
    check(case, previous.len() <= 1, &format!("{what}: {} versions are previous", previous.len()));
    check(case, pending.len() <= 1, &format!("{what}: {} versions are pending", pending.len()));
    for v in list {
        let n = [v.stages.current, v.stages.previous, v.stages.pending].iter().filter(|b| **b).count();
        check(case, n <= 1, &format!("{what}: version {} holds {n} stages", v.id));
    }
    let ids: BTreeSet<_> = list.iter().map(|v| &v.id).collect();
    check(case, ids.len() == list.len(), &format!("{what}: list_versions repeats a version id"));
    for w in list.windows(2) {
        if let [a, b] = w {
            check(
                case,
                a.created_at <= b.created_at,
                &format!("{what}: versions are not listed oldest first ({} before {})", a.id, b.id),
            );
        }
    }
    match current.first() {
        Some(c) => (c.id.clone(), previous.first().map(|v| v.id.clone()), pending.first().map(|v| v.id.clone())),
        None => panic!("[{case}] {what}: no current version"),
    }
}

fn check_rotation(case: &str, what: &str, meta: &VersionMeta, rotation: RotationId) {
    if let Some(r) = meta.rotation_id {
        check(case, r == rotation, &format!("{what}: version {} names rotation {r}, not {rotation}", meta.id));
    }
}

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

/// Creating a text secret and reading it back gives the same value, marked
/// current, with the id `put` returned.
pub async fn create_read_round_trip_text(store: &DynSecretStore, prefix: &str) {
    let case = "create_read_round_trip_text";
    let p = path(prefix, case, "s");
    let v = value("one");
    let meta = ok(case, "create", store.create(&p, v.clone()).await);
    check(case, meta.stages.current && !meta.stages.pending, "create: the new version is not marked current only");
    let got = read(case, "read current", store, &p, VersionSelector::Current).await;
    same_value(case, "read current", &got.data, &v);
    check(case, got.meta.id == meta.id, "read current: id differs from the one create returned");
    check(case, got.meta.stages.current, "read current: version not marked current");
    let by_id = read(case, "read by id", store, &p, VersionSelector::Id(meta.id.clone())).await;
    same_value(case, "read by id", &by_id.data, &v);
    check(case, by_id.meta.id == meta.id, "read by id: returned another version");
}

/// A multi-field value round-trips with every field name and value.
pub async fn create_read_round_trip_fields(store: &DynSecretStore, prefix: &str) {
    let case = "create_read_round_trip_fields";
    let p = path(prefix, case, "s");
    let v = fields("one");
    ok(case, "create", store.create(&p, v.clone()).await);
    let got = read(case, "read current", store, &p, VersionSelector::Current).await;
    same_value(case, "read current", &got.data, &v);
    let names: Vec<_> = got.data.field_names().collect();
    check(case, names == ["password", "username"], &format!("read current: field names {names:?}"));
    let next = fields("two");
    ok(case, "put if current", store.put(&p, next.clone(), PutOptions::if_current(got.meta.id.clone())).await);
    let got = read(case, "read current after put", store, &p, VersionSelector::Current).await;
    same_value(case, "read current after put", &got.data, &next);
}

/// `PutMode::Create` on an existing secret is `AlreadyExists` and changes
/// nothing.
pub async fn create_twice_already_exists(store: &DynSecretStore, prefix: &str) {
    let case = "create_twice_already_exists";
    let p = path(prefix, case, "s");
    let v = value("first");
    let meta = ok(case, "create", store.create(&p, v.clone()).await);
    let e = err(case, "second create", store.create(&p, value("second")).await);
    expect_kind(case, "second create", &e, "already_exists");
    let got = read(case, "read current", store, &p, VersionSelector::Current).await;
    same_value(case, "read current after second create", &got.data, &v);
    check(case, got.meta.id == meta.id, "the second create changed the current version");
    let list = versions(case, "list", store, &p).await;
    check(case, list.len() == 1, &format!("the second create left {} versions", list.len()));
}

/// Reading any version of a missing secret is `NotFound`.
pub async fn read_missing_not_found(store: &DynSecretStore, prefix: &str) {
    let case = "read_missing_not_found";
    let p = path(prefix, case, "never-written");
    expect_not_found(case, "read current", store, &p, VersionSelector::Current).await;
    expect_not_found(case, "read previous", store, &p, VersionSelector::Previous).await;
    expect_not_found(case, "read pending", store, &p, VersionSelector::Pending).await;
    let e = err(case, "SecretStoreExt::current", store.current(&p).await);
    expect_kind(case, "SecretStoreExt::current", &e, "not_found");
}

/// `Previous` of a secret with one version is `NotFound`.
pub async fn previous_of_single_version_not_found(store: &DynSecretStore, prefix: &str) {
    let case = "previous_of_single_version_not_found";
    let p = path(prefix, case, "s");
    ok(case, "create", store.create(&p, value("only")).await);
    expect_not_found(case, "read previous", store, &p, VersionSelector::Previous).await;
    let e = err(case, "rollback", store.rollback(&p).await);
    expect_kind(case, "rollback with no previous version", &e, "not_found");
}

/// `Pending` with nothing staged is `NotFound` (and `pending()` is `None`).
pub async fn pending_nothing_staged_not_found(store: &DynSecretStore, prefix: &str) {
    let case = "pending_nothing_staged_not_found";
    let p = path(prefix, case, "s");
    ok(case, "create", store.create(&p, value("only")).await);
    expect_not_found(case, "read pending", store, &p, VersionSelector::Pending).await;
    let none = ok(case, "SecretStoreExt::pending", store.pending(&p).await);
    check(case, none.is_none(), "SecretStoreExt::pending: returned a version with nothing staged");
}

/// Creates `<case>/other` with three versions and returns the id of its
/// last one: a well-formed id that does not exist on a one-version secret
/// of any store.
async fn foreign_version(case: &str, store: &DynSecretStore, prefix: &str) -> VersionId {
    let o = path(prefix, case, "other");
    let mut id = ok(case, "create other", store.create(&o, value("o1")).await).id;
    for tag in ["o2", "o3"] {
        id = ok(case, "put other", store.put(&o, value(tag), PutOptions::if_current(id)).await).id;
    }
    id
}

/// Reading a version id the secret does not have is `NotFound`.
pub async fn read_unknown_version_not_found(store: &DynSecretStore, prefix: &str) {
    let case = "read_unknown_version_not_found";
    let p = path(prefix, case, "s");
    ok(case, "create", store.create(&p, value("only")).await);
    let unknown = foreign_version(case, store, prefix).await;
    expect_not_found(case, "read unknown id", store, &p, VersionSelector::Id(unknown)).await;
}

/// `put IfCurrent` with a stale id is `Conflict` and changes nothing.
pub async fn put_if_current_stale_conflict(store: &DynSecretStore, prefix: &str) {
    let case = "put_if_current_stale_conflict";
    let p = path(prefix, case, "s");
    let (a, b) = (value("a"), value("b"));
    let v1 = ok(case, "create", store.create(&p, a.clone()).await);
    let v2 = ok(case, "put if current", store.put(&p, b.clone(), PutOptions::if_current(v1.id.clone())).await);
    check(case, v2.id != v1.id, "put if current: returned the old version id");
    let e = err(case, "put with stale id", store.put(&p, value("c"), PutOptions::if_current(v1.id.clone())).await);
    check_conflict(case, "put with stale id", &e, &v1.id, &v2.id);
    // The same with a rotation id: idempotence must not mask a conflict.
    let with_rotation = PutOptions::if_current(v1.id.clone()).with_rotation(RotationId::new());
    let e = err(case, "put with stale id and rotation", store.put(&p, value("d"), with_rotation).await);
    check_conflict(case, "put with stale id and rotation", &e, &v1.id, &v2.id);
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    same_value(case, "current after conflicts", &cur.data, &b);
    check(case, cur.meta.id == v2.id, "a conflicting put changed the current version");
    let prev = read(case, "read previous", store, &p, VersionSelector::Previous).await;
    same_value(case, "previous after conflicts", &prev.data, &a);
    let list = versions(case, "list", store, &p).await;
    check(case, list.len() == 2, &format!("conflicting puts left {} versions, expected 2", list.len()));
}

/// Repeating a put with the same rotation id returns the first version and
/// writes nothing, for `IfCurrent` and `Create`, even though the repeated
/// call's expected version is stale by then.
pub async fn put_same_rotation_id_once(store: &DynSecretStore, prefix: &str) {
    let case = "put_same_rotation_id_once";
    let p = path(prefix, case, "s");
    let (r0, r1) = (RotationId::new(), RotationId::new());
    let a = value("a");
    let c1 = ok(case, "create with rotation", store.put(&p, a.clone(), PutOptions::create().with_rotation(r0)).await);
    let c2 = ok(case, "repeated create with rotation", store.put(&p, a, PutOptions::create().with_rotation(r0)).await);
    check(case, c1.id == c2.id, "a repeated create with the same rotation id returned another version");
    check_rotation(case, "create with rotation", &c1, r0);
    let b = value("b");
    let opts = PutOptions::if_current(c1.id.clone()).with_rotation(r1);
    let v1 = ok(case, "put with rotation", store.put(&p, b.clone(), opts.clone()).await);
    let v2 = ok(case, "repeated put with rotation", store.put(&p, b.clone(), opts).await);
    check(case, v1.id == v2.id, "a repeated put with the same rotation id returned another version");
    check_rotation(case, "put with rotation", &v1, r1);
    let list = versions(case, "list", store, &p).await;
    check(case, list.len() == 2, &format!("repeated puts left {} versions, expected 2", list.len()));
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    check(case, cur.meta.id == v1.id, "the current version is not the one the put made");
    same_value(case, "current", &cur.data, &b);
}

/// `PutMode::Overwrite` creates a missing secret and otherwise writes a new
/// current version whatever is current.
pub async fn put_overwrite(store: &DynSecretStore, prefix: &str) {
    let case = "put_overwrite";
    let p = path(prefix, case, "s");
    let (a, b) = (value("a"), value("b"));
    let v1 = ok(case, "overwrite missing", store.put(&p, a.clone(), PutOptions::overwrite()).await);
    let v2 = ok(case, "overwrite existing", store.put(&p, b.clone(), PutOptions::overwrite()).await);
    check(case, v1.id != v2.id, "overwrite returned the same version twice");
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    same_value(case, "current", &cur.data, &b);
    check(case, cur.meta.id == v2.id, "current is not the overwrite's version");
    let prev = read(case, "read previous", store, &p, VersionSelector::Previous).await;
    same_value(case, "previous", &prev.data, &a);
    check(case, prev.meta.id == v1.id && prev.meta.stages.previous, "previous is not the first version");
}

/// Versions are listed oldest first with exactly one current, and every
/// old version stays readable by id.
pub async fn versions_listed_oldest_first(store: &DynSecretStore, prefix: &str) {
    let case = "versions_listed_oldest_first";
    let p = path(prefix, case, "s");
    let vals = [value("v1"), value("v2"), value("v3"), value("v4")];
    let mut ids = Vec::new();
    let mut cur = ok(case, "create", store.create(&p, vals[0].clone()).await).id;
    ids.push(cur.clone());
    for v in &vals[1..] {
        cur = ok(case, "put", store.put(&p, v.clone(), PutOptions::if_current(cur)).await).id;
        ids.push(cur.clone());
    }
    let list = versions(case, "list", store, &p).await;
    let (current, previous, pending) = stages(case, "list", &list);
    let listed: Vec<_> = list.iter().map(|v| v.id.clone()).collect();
    check(case, listed == ids, &format!("list_versions gave {listed:?}, the puts made {ids:?} (oldest first)"));
    check(case, ids.last() == Some(&current), "the newest version is not current");
    check(case, previous.as_ref() == ids.get(2), "the second newest version is not previous");
    check(case, pending.is_none(), "a version is pending though nothing was staged");
    for (id, v) in ids.iter().zip(&vals) {
        let got = read(case, "read old version by id", store, &p, VersionSelector::Id(id.clone())).await;
        same_value(case, "read old version by id", &got.data, v);
        check(case, got.meta.id == *id, "read by id returned another version");
    }
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

/// Metadata starts empty, round-trips, and a write replaces it whole.
pub async fn metadata_round_trip_and_replace(store: &DynSecretStore, prefix: &str) {
    let case = "metadata_round_trip_and_replace";
    let p = path(prefix, case, "s");
    ok(case, "create", store.create(&p, value("a")).await);
    let empty = ok(case, "read fresh metadata", store.read_metadata(&p).await);
    check(case, empty.is_empty(), &format!("a fresh secret has metadata keys {:?}", empty.keys()));
    let m1: Metadata = [
        ("rekey.step".to_owned(), "staged".to_owned()),
        ("rekey.rotation".to_owned(), RotationId::new().to_string()),
        ("rekey.deadline".to_owned(), "2030-01-01T00:00:00Z".to_owned()),
    ]
    .into();
    ok(case, "write metadata", store.write_metadata(&p, m1.clone()).await);
    let got = ok(case, "read metadata", store.read_metadata(&p).await);
    check(case, got == m1, &format!("metadata read back {got:?}, wrote {m1:?}"));
    let m2: Metadata = [("rekey.acks".to_owned(), "svc-a svc-b".to_owned())].into();
    ok(case, "replace metadata", store.write_metadata(&p, m2.clone()).await);
    let got = ok(case, "read replaced metadata", store.read_metadata(&p).await);
    check(case, got == m2, &format!("metadata after replace {got:?}, wrote {m2:?} (replace, not merge)"));
    // Metadata is beside the value: writing a version keeps it.
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    ok(case, "put", store.put(&p, value("b"), PutOptions::if_current(cur.meta.id)).await);
    let got = ok(case, "read metadata after put", store.read_metadata(&p).await);
    check(case, got == m2, "writing a version changed the metadata");
    ok(case, "clear metadata", store.write_metadata(&p, Metadata::new()).await);
    let got = ok(case, "read cleared metadata", store.read_metadata(&p).await);
    check(case, got.is_empty(), &format!("metadata after writing an empty map {got:?}"));
}

/// Metadata keys outside rekey's `rekey.` namespace are `InvalidInput`
/// (the stores keep the other keys for the secret's owners), and the
/// refused write changes nothing.
pub async fn metadata_key_outside_namespace_invalid(store: &DynSecretStore, prefix: &str) {
    let case = "metadata_key_outside_namespace_invalid";
    let p = path(prefix, case, "s");
    ok(case, "create", store.create(&p, value("a")).await);
    let m: Metadata = [("rekey.k".to_owned(), "v".to_owned())].into();
    ok(case, "write metadata", store.write_metadata(&p, m.clone()).await);
    for key in ["owner", "rekey."] {
        let bad: Metadata = [("rekey.other".to_owned(), "v".to_owned()), (key.to_owned(), "v".to_owned())].into();
        let e = err(case, "write a key outside `rekey.`", store.write_metadata(&p, bad).await);
        expect_kind(case, &format!("write metadata key {key:?}"), &e, "invalid_input");
    }
    let got = ok(case, "read metadata", store.read_metadata(&p).await);
    check(case, got == m, &format!("a refused metadata write changed the metadata to {got:?}"));
}

/// After `delete`, every read is `NotFound`.
pub async fn delete_then_read_not_found(store: &DynSecretStore, prefix: &str) {
    let case = "delete_then_read_not_found";
    let p = path(prefix, case, "s");
    let v1 = ok(case, "create", store.create(&p, value("a")).await);
    ok(case, "put", store.put(&p, value("b"), PutOptions::if_current(v1.id.clone())).await);
    ok(case, "stage", store.stage(&p, value("candidate"), RotationId::new()).await);
    ok(case, "write metadata", store.write_metadata(&p, [("rekey.k".to_owned(), "v".to_owned())].into()).await);
    ok(case, "delete", store.delete(&p).await);
    expect_not_found(case, "read current after delete", store, &p, VersionSelector::Current).await;
    expect_not_found(case, "read previous after delete", store, &p, VersionSelector::Previous).await;
    expect_not_found(case, "read pending after delete", store, &p, VersionSelector::Pending).await;
    expect_not_found(case, "read by id after delete", store, &p, VersionSelector::Id(v1.id)).await;
}

/// A deleted secret can be created again, fresh: one version, no metadata.
pub async fn delete_then_recreate(store: &DynSecretStore, prefix: &str) {
    let case = "delete_then_recreate";
    let p = path(prefix, case, "s");
    let v1 = ok(case, "create", store.create(&p, value("a")).await);
    ok(case, "put", store.put(&p, value("b"), PutOptions::if_current(v1.id)).await);
    ok(case, "write metadata", store.write_metadata(&p, [("rekey.k".to_owned(), "v".to_owned())].into()).await);
    ok(case, "delete", store.delete(&p).await);
    let c = value("again");
    let again = ok(case, "create after delete", store.create(&p, c.clone()).await);
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    same_value(case, "current after re-create", &cur.data, &c);
    check(case, cur.meta.id == again.id, "read(Current) is not the re-created version");
    let list = versions(case, "list", store, &p).await;
    check(case, list.len() == 1, &format!("the re-created secret has {} versions, expected 1", list.len()));
    let md = ok(case, "read metadata", store.read_metadata(&p).await);
    check(case, md.is_empty(), "the re-created secret kept the deleted one's metadata");
}

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

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        mod boxed {
            use super::*;
            $(
                pub(super) fn $name<'a>(store: &'a DynSecretStore, prefix: &'a str) -> BoxFuture<'a, ()> {
                    Box::pin(super::$name(store, prefix))
                }
            )*
        }

        /// Every case, in the order [`run_all`] runs them.
        pub const CASES: &[Case] = &[$(Case { name: stringify!($name), run: boxed::$name }),*];
    };
}

cases!(
    create_read_round_trip_text,
    create_read_round_trip_fields,
    create_twice_already_exists,
    read_missing_not_found,
    previous_of_single_version_not_found,
    pending_nothing_staged_not_found,
    read_unknown_version_not_found,
    put_if_current_stale_conflict,
    put_same_rotation_id_once,
    put_overwrite,
    versions_listed_oldest_first,
    staging_never_changes_current,
    stage_same_rotation_id_once,
    stage_other_rotation_replaces_candidate,
    promote_pending,
    promote_stale_expected_conflict,
    rollback_restores_previous,
    discard_removes_candidate,
    discard_current_invalid,
    stage_missing_secret_not_found,
    promote_unknown_version_not_found,
    metadata_round_trip_and_replace,
    metadata_key_outside_namespace_invalid,
    delete_then_read_not_found,
    delete_then_recreate,
    race_put_if_current,
    race_promote_distinct_versions,
    race_promote_same_candidate,
    created_at_monotonic,
    no_secret_in_debug_or_errors,
);

/// Defines one `#[tokio::test]` per conformance case in the calling module.
///
/// `$make` is an expression evaluating to a future of
/// `Option<Arc<DynSecretStore>>`; `None` skips the test (e.g. when
/// [`env::require`](crate::env::require) finds no server outside CI). Each
/// test runs under a fresh [`unique_prefix`](crate::unique_prefix) tagged
/// `$tag`. The calling crate needs `tokio` with the `macros` and `rt`
/// features.
///
/// ```
/// // In a backend's `tests/conformance.rs`:
/// mod conformance {
///     use std::sync::Arc;
///     use rekey_core::DynSecretStore;
///     rekey_testkit::conformance_tests!("memory", async {
///         Some(Arc::new(rekey_memory::MemoryStore::new()) as Arc<DynSecretStore>)
///     });
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($tag:expr, $make:expr) => {
        $crate::conformance_tests!(@each $tag, $make;
            create_read_round_trip_text,
            create_read_round_trip_fields,
            create_twice_already_exists,
            read_missing_not_found,
            previous_of_single_version_not_found,
            pending_nothing_staged_not_found,
            read_unknown_version_not_found,
            put_if_current_stale_conflict,
            put_same_rotation_id_once,
            put_overwrite,
            versions_listed_oldest_first,
            staging_never_changes_current,
            stage_same_rotation_id_once,
            stage_other_rotation_replaces_candidate,
            promote_pending,
            promote_stale_expected_conflict,
            rollback_restores_previous,
            discard_removes_candidate,
            discard_current_invalid,
            stage_missing_secret_not_found,
            promote_unknown_version_not_found,
            metadata_round_trip_and_replace,
            metadata_key_outside_namespace_invalid,
            delete_then_read_not_found,
            delete_then_recreate,
            race_put_if_current,
            race_promote_distinct_versions,
            race_promote_same_candidate,
            created_at_monotonic,
            no_secret_in_debug_or_errors,
        );

        /// How many cases the macro defined (checked against `CASES`).
        #[allow(dead_code)]
        const CONFORMANCE_TESTS_DEFINED: usize = 30;
    };
    (@each $tag:expr, $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let store: ::std::option::Option<::std::sync::Arc<$crate::__rekey_core::DynSecretStore>> = $make.await;
                if let ::std::option::Option::Some(store) = store {
                    $crate::conformance::$name(&*store, &$crate::unique_prefix($tag)).await;
                }
            }
        )*
    };
}
