//! Conformance cases: metadata beside a secret, and deleting a secret.

use rekey_core::{DynSecretStore, Metadata, MetadataPatch, PutOptions, RotationId, SecretStoreExt, VersionSelector};

use super::helpers::*;

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

/// `update_metadata` sets and removes the keys it names and leaves every
/// other key alone; a refused patch changes nothing; a missing secret is
/// `NotFound`.
pub async fn metadata_update_touches_only_named_keys(store: &DynSecretStore, prefix: &str) {
    let case = "metadata_update_touches_only_named_keys";
    let p = path(prefix, case, "s");
    ok(case, "create", store.create(&p, value("a")).await);
    let m: Metadata = [("rekey.a".to_owned(), "1".to_owned()), ("rekey.b".to_owned(), "2".to_owned())].into();
    ok(case, "write metadata", store.write_metadata(&p, m).await);
    let mut patch = MetadataPatch::new();
    patch.set("rekey.c", "3").remove("rekey.a").remove("rekey.never-set");
    ok(case, "update metadata", store.update_metadata(&p, patch).await);
    let got = ok(case, "read metadata", store.read_metadata(&p).await);
    let want: Metadata = [("rekey.b".to_owned(), "2".to_owned()), ("rekey.c".to_owned(), "3".to_owned())].into();
    check(case, got == want, &format!("metadata after the patch {got:?}, expected {want:?}"));
    ok(case, "empty patch", store.update_metadata(&p, MetadataPatch::new()).await);
    let mut bad = MetadataPatch::new();
    bad.set("rekey.d", "4").set("owner", "x");
    let e = err(case, "patch with a key outside `rekey.`", store.update_metadata(&p, bad).await);
    expect_kind(case, "patch with a key outside `rekey.`", &e, "invalid_input");
    let got = ok(case, "read metadata after refusal", store.read_metadata(&p).await);
    check(case, got == want, &format!("a refused patch changed the metadata to {got:?}"));
    let missing = path(prefix, case, "never-written");
    let mut patch = MetadataPatch::new();
    patch.set("rekey.a", "1");
    let e = err(case, "patch a missing secret", store.update_metadata(&missing, patch).await);
    expect_kind(case, "patch a missing secret", &e, "not_found");
}

/// Concurrent `update_metadata` calls that change different keys all
/// survive (last writer wins per key, not for the whole map).
pub async fn metadata_concurrent_updates_keep_every_key(store: &DynSecretStore, prefix: &str) {
    let case = "metadata_concurrent_updates_keep_every_key";
    let p = path(prefix, case, "s");
    ok(case, "create", store.create(&p, value("a")).await);
    let updates = (0..8).map(|i| {
        let mut patch = MetadataPatch::new();
        patch.set(format!("rekey.writer{i}"), i.to_string());
        store.update_metadata(&p, patch)
    });
    for r in futures::future::join_all(updates).await {
        ok(case, "concurrent update", r);
    }
    let got = ok(case, "read metadata", store.read_metadata(&p).await);
    let missing: Vec<String> = (0..8).map(|i| format!("rekey.writer{i}")).filter(|k| !got.contains_key(k)).collect();
    check(case, missing.is_empty(), &format!("concurrent updates lost the keys {missing:?}"));
}
