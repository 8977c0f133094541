//! Conformance cases: creating, reading and writing versions.

use rekey_core::{DynSecretStore, PutOptions, RotationId, SecretStoreExt, VersionSelector};

use super::helpers::*;

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
