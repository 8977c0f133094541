//! Helpers of the conformance cases: values, paths, checks that name the case.

use std::collections::BTreeSet;
use std::error::Error as _;

use rekey_core::{
    DynSecretStore, PutOptions, RotationId, SecretData, SecretPath, SecretStoreExt, SecretVersion, StoreError,
    VersionId, VersionMeta, VersionSelector,
};

use super::SECRET_MARKER;

/// A fresh secret value containing [`SECRET_MARKER`].
pub(super) fn value(tag: &str) -> SecretData {
    SecretData::text(format!("{SECRET_MARKER}{tag}-{}", uuid::Uuid::new_v4().simple()))
}

pub(super) fn fields(tag: &str) -> SecretData {
    let id = uuid::Uuid::new_v4().simple();
    SecretData::fields([
        ("username", format!("{SECRET_MARKER}{tag}-user-{id}")),
        ("password", format!("{SECRET_MARKER}{tag}-pass-{id}")),
    ])
}

/// `<prefix>/<case>/<name>` as a path.
#[allow(clippy::panic)]
pub(super) fn path(prefix: &str, case: &str, name: &str) -> SecretPath {
    let raw = format!("{}/{case}/{name}", prefix.trim_end_matches('/'));
    match SecretPath::new(&raw) {
        Ok(p) => p,
        Err(e) => panic!("[{case}] the prefix {prefix:?} does not make a valid secret path: {e}"),
    }
}

/// Fails if an error shows a secret value.
#[allow(clippy::panic)]
pub(super) fn no_leak(case: &str, what: &str, e: &StoreError) {
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
pub(super) fn no_leak_debug(case: &str, what: &str, v: &SecretVersion) {
    if format!("{v:?} {v:#?}").contains(SECRET_MARKER) {
        panic!("[{case}] {what}: the Debug output of a version shows its value");
    }
}

/// The success value, or a failure naming the case and the step.
#[allow(clippy::panic)]
pub(super) fn ok<T>(case: &str, what: &str, r: Result<T, StoreError>) -> T {
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
pub(super) fn err<T>(case: &str, what: &str, r: Result<T, StoreError>) -> StoreError {
    match r {
        Ok(_) => panic!("[{case}] {what}: expected an error, the call succeeded"),
        Err(e) => {
            no_leak(case, what, &e);
            e
        }
    }
}

#[allow(clippy::panic)]
pub(super) fn expect_kind(case: &str, what: &str, e: &StoreError, kind: &str) {
    if e.kind() != kind {
        panic!("[{case}] {what}: expected a `{kind}` error, got `{}`: {e}", e.kind());
    }
}

pub(super) async fn expect_not_found(
    case: &str,
    what: &str,
    store: &DynSecretStore,
    path: &SecretPath,
    sel: VersionSelector,
) {
    let e = err(case, what, store.read(path, &sel).await);
    expect_kind(case, what, &e, "not_found");
}

/// Reads a version, checking its `Debug` for leaks.
pub(super) async fn read(
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
pub(super) fn same_value(case: &str, what: &str, actual: &SecretData, expected: &SecretData) {
    if !actual.same_as(expected) {
        let names: Vec<_> = actual.field_names().collect();
        panic!("[{case}] {what}: the value read back differs from the value written (fields read: {names:?})");
    }
}

#[allow(clippy::panic)]
pub(super) fn check(case: &str, cond: bool, what: &str) {
    if !cond {
        panic!("[{case}] {what}");
    }
}

/// Checks a conflict's details where the store gives them.
pub(super) fn check_conflict(case: &str, what: &str, e: &StoreError, expected: &VersionId, actual: &VersionId) {
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

pub(super) async fn versions(case: &str, what: &str, store: &DynSecretStore, path: &SecretPath) -> Vec<VersionMeta> {
    ok(case, what, store.list_versions(path).await)
}

/// Checks the stage invariants of a version list: exactly one current, at
/// most one previous and one pending, never two stages on one version except
/// none; returns (current, previous, pending).
#[allow(clippy::panic)]
pub(super) fn stages(
    case: &str,
    what: &str,
    list: &[VersionMeta],
) -> (VersionId, Option<VersionId>, Option<VersionId>) {
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

pub(super) fn check_rotation(case: &str, what: &str, meta: &VersionMeta, rotation: RotationId) {
    if let Some(r) = meta.rotation_id {
        check(case, r == rotation, &format!("{what}: version {} names rotation {r}, not {rotation}", meta.id));
    }
}

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

/// Creates `<case>/other` with three versions and returns the id of its
/// last one: a well-formed id that does not exist on a one-version secret
/// of any store.
pub(super) async fn foreign_version(case: &str, store: &DynSecretStore, prefix: &str) -> VersionId {
    let o = path(prefix, case, "other");
    let mut id = ok(case, "create other", store.create(&o, value("o1")).await).id;
    for tag in ["o2", "o3"] {
        id = ok(case, "put other", store.put(&o, value(tag), PutOptions::if_current(id)).await).id;
    }
    id
}
