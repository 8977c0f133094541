//! Behaviour particular to Vault / OpenBao, against a real OpenBao server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use rekey_core::{
    ExposeSecret, Metadata, PutOptions, RotationId, SecretData, SecretStore, SecretStoreExt, SecretString, StoreError,
};
use rekey_vault::{VaultAuth, VaultConfig, VaultStore};
use serde_json::json;

const MARK: &str = "s3cr3t-vt-";

fn secret(tag: &str) -> String {
    format!("{MARK}{tag}-{}", uuid::Uuid::new_v4().simple())
}

fn prefix(tag: &str) -> String {
    rekey_testkit::unique_prefix(&format!("vault-{tag}"))
}

/// Fails if an error shows a marked secret value or `extra`.
fn no_leak(e: &StoreError, extra: &str) {
    let mut shown = format!("{e} | {e:?} | {e:#?}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        shown.push_str(&format!(" | {s} | {s:?}"));
        src = s.source();
    }
    assert!(!shown.contains(MARK), "an error shows a secret value: {shown}");
    assert!(extra.is_empty() || !shown.contains(extra), "an error shows a token: {shown}");
}

/// Rotating one field of a multi-field secret keeps the other fields, by
/// put, and by stage + promote; KV holds exactly the fields, nothing else.
#[tokio::test]
async fn multi_field_rotation_keeps_other_fields() {
    let Some((addr, root)) = common::server() else { return };
    let store = VaultStore::connect(common::config(&addr, &root)).await.unwrap();
    let p = common::path(&prefix("fields"), "db");
    let user = secret("user");
    store
        .create(&p, SecretData::fields([("username", user.as_str()), ("password", "p0"), ("host", "db.internal")]))
        .await
        .unwrap();

    // put with CAS.
    let cur = store.current(&p).await.unwrap();
    let next = cur.data.with_field(Some("password"), SecretString::from(secret("p1"))).unwrap();
    store
        .put(&p, next.clone(), PutOptions::if_current(cur.meta.id.clone()).with_rotation(RotationId::new()))
        .await
        .unwrap();

    // stage + promote.
    let cur = store.current(&p).await.unwrap();
    assert!(cur.data.same_as(&next));
    let p2 = secret("p2");
    let cand = cur.data.with_field(Some("password"), SecretString::from(p2.clone())).unwrap();
    let staged = store.stage(&p, cand.clone(), RotationId::new()).await.unwrap();
    store.promote(&p, &staged.id, &cur.meta.id).await.unwrap();
    let now = store.current(&p).await.unwrap();
    assert!(now.data.same_as(&cand));
    assert_eq!(now.data.field("username").unwrap().expose_secret(), user);
    assert_eq!(now.data.field("host").unwrap().expose_secret(), "db.internal");

    // What a consumer reads over plain HTTP: exactly the three fields.
    let (status, body) = common::raw(&addr, &root, "GET", &format!("secret/data/{p}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["data"], json!({"username": user, "password": p2, "host": "db.internal"}));

    // A field of a text secret is a typed error, not a panic.
    let t = common::path(&prefix("fields"), "text");
    store.create(&t, SecretData::text("x")).await.unwrap();
    let e = store.current(&t).await.unwrap().data.with_field(Some("password"), SecretString::from("y".to_owned()));
    assert!(matches!(e, Err(StoreError::InvalidInput { .. })));
}

/// The candidate lives at the staging location only: consumers of the
/// secret's path never see it, the secret's data never holds bookkeeping,
/// and discard / promote leave no version of it behind (metadata deleted).
#[tokio::test]
async fn staging_is_a_sibling_location_destroyed_afterwards() {
    let Some((addr, root)) = common::server() else { return };
    let store = VaultStore::connect(common::config(&addr, &root)).await.unwrap();
    let p = common::path(&prefix("staging"), "api-key");
    let old = secret("old");
    let v1 = store.create(&p, SecretData::text(old.clone())).await.unwrap();
    let r = RotationId::new();
    let cand = secret("cand");
    let staged = store.stage(&p, SecretData::text(cand.clone()), r).await.unwrap();
    assert_eq!(staged.rotation_id, Some(r));

    // Consumers still read the old value, version 1, and only it.
    let (_, body) = common::raw(&addr, &root, "GET", &format!("secret/data/{p}"), None).await;
    assert_eq!(body["data"]["data"], json!({"value": old}));
    assert_eq!(body["data"]["metadata"]["version"], 1);
    let loc = store.staging_location(&p);
    assert!(loc.starts_with("rekey-staging/"));
    let (status, _) = common::raw(&addr, &root, "GET", &format!("secret/metadata/{loc}"), None).await;
    assert_eq!(status, 200, "the staging entry exists");

    // Discard deletes the staging entry's metadata: no version is left.
    store.discard(&p, &staged.id).await.unwrap();
    let (status, _) = common::raw(&addr, &root, "GET", &format!("secret/metadata/{loc}"), None).await;
    assert_eq!(status, 404, "discard left the staging entry behind");

    // Stage again and promote: the secret's data is exactly the candidate.
    let r2 = RotationId::new();
    let staged = store.stage(&p, SecretData::text(cand.clone()), r2).await.unwrap();
    let promoted = store.promote(&p, &staged.id, &v1.id).await.unwrap();
    assert_eq!(promoted.rotation_id, Some(r2));
    let (_, body) = common::raw(&addr, &root, "GET", &format!("secret/data/{p}"), None).await;
    assert_eq!(body["data"]["data"], json!({"value": cand}));
    let (status, _) = common::raw(&addr, &root, "GET", &format!("secret/metadata/{loc}"), None).await;
    assert_eq!(status, 404, "promote left the staging entry behind");
    // The rotation id is on the current version (a resumed rotation sees
    // its promote landed), and a retried stage of it returns that version.
    let cur = store.current(&p).await.unwrap();
    assert_eq!(cur.meta.rotation_id, Some(r2));
    let again = store.stage(&p, SecretData::text(cand.clone()), r2).await.unwrap();
    assert_eq!(again.id, promoted.id);
    // As in the reference store, the staged id now names the current version:
    // readable, and not discardable.
    let by_staged_id = store.read(&p, &rekey_core::VersionSelector::Id(staged.id.clone())).await.unwrap();
    assert_eq!(by_staged_id.meta.id, promoted.id);
    assert!(by_staged_id.data.same_as(&SecretData::text(cand)));
    assert!(matches!(store.discard(&p, &staged.id).await, Err(StoreError::InvalidInput { .. })));

    // Paths inside the staging folder are refused.
    let inside: rekey_core::SecretPath = format!("rekey-staging/{p}").parse().unwrap();
    assert!(matches!(store.current(&inside).await, Err(StoreError::InvalidInput { .. })));
}

/// The owners' own custom_metadata survives every rekey write; rekey sees
/// only `rekey.` keys; Vault's limits are typed errors.
#[tokio::test]
async fn custom_metadata_of_owners_is_preserved() {
    let Some((addr, root)) = common::server() else { return };
    let store = VaultStore::connect(common::config(&addr, &root)).await.unwrap();
    let p = common::path(&prefix("metadata"), "s");
    let v1 = store.create(&p, SecretData::text(secret("a"))).await.unwrap();
    common::admin_post(&addr, &root, &format!("secret/metadata/{p}"), json!({"custom_metadata": {"owner": "team-a"}}))
        .await;

    let m: Metadata = [("rekey.step".to_owned(), "x".to_owned())].into();
    store.write_metadata(&p, m.clone()).await.unwrap();
    store
        .put(&p, SecretData::text(secret("b")), PutOptions::if_current(v1.id).with_rotation(RotationId::new()))
        .await
        .unwrap();
    store.write_metadata(&p, Metadata::new()).await.unwrap();
    store.write_metadata(&p, m.clone()).await.unwrap();
    assert_eq!(store.read_metadata(&p).await.unwrap(), m);

    let (_, body) = common::raw(&addr, &root, "GET", &format!("secret/metadata/{p}"), None).await;
    let custom = &body["data"]["custom_metadata"];
    assert_eq!(custom["owner"], "team-a", "{custom}");
    assert_eq!(custom["rekey.step"], "x");
    assert!(
        custom.as_object().unwrap().keys().any(|k| k.starts_with("rekey-vault.v.")),
        "the rotation record is there"
    );

    let bad: Metadata = [("owner".to_owned(), "me".to_owned())].into();
    assert!(matches!(store.write_metadata(&p, bad).await, Err(StoreError::InvalidInput { .. })));
    let big: Metadata = [("rekey.big".to_owned(), "x".repeat(513))].into();
    assert!(matches!(store.write_metadata(&p, big).await, Err(StoreError::InvalidInput { .. })));
    let many: Metadata = (0..70).map(|i| (format!("rekey.k{i}"), "v".to_owned())).collect();
    assert!(matches!(store.write_metadata(&p, many).await, Err(StoreError::InvalidInput { .. })));
    assert_eq!(store.read_metadata(&p).await.unwrap(), m, "a refused write changed the metadata");
}

/// Under `delete_version_after`, KV v2 gives every new version a deletion
/// time in the future: those versions are live until then. Staging,
/// reading the candidate, promoting and rolling back all work as without it
/// (they used to treat any deletion time as deleted: no candidate, no
/// previous version, no rollback).
#[tokio::test]
async fn versions_due_for_deletion_later_are_live_until_then() {
    let Some((addr, root)) = common::server() else { return };
    let store = VaultStore::connect(common::config(&addr, &root)).await.unwrap();
    let p = common::path(&prefix("delete-after"), "s");
    let v1 = store.create(&p, SecretData::text(secret("a"))).await.unwrap();
    common::admin_post(&addr, &root, &format!("secret/metadata/{p}"), json!({"delete_version_after": "1h"})).await;
    let b = secret("b");
    let v2 = store
        .put(&p, SecretData::text(b.clone()), PutOptions::if_current(v1.id.clone()).with_rotation(RotationId::new()))
        .await
        .unwrap();
    let (_, body) = common::raw(&addr, &root, "GET", &format!("secret/metadata/{p}"), None).await;
    let deletion = &body["data"]["versions"][v2.id.as_str()]["deletion_time"];
    assert!(deletion.as_str().is_some_and(|t| !t.is_empty()), "KV v2 set a future deletion time: {deletion}");

    let snap = store.snapshot(&p, false).await.unwrap();
    assert_eq!(snap.current.id, v2.id);
    let c = secret("c");
    let staged = store.stage(&p, SecretData::text(c.clone()), RotationId::new()).await.unwrap();
    let pending = store.read(&p, &rekey_core::VersionSelector::Pending).await.unwrap();
    assert_eq!(pending.meta.id, staged.id, "the staged candidate is found");
    let v3 = store.promote(&p, &staged.id, &v2.id).await.unwrap();
    assert_eq!(store.current(&p).await.unwrap().data.as_text().map(|s| s.expose_secret().to_owned()), Some(c));
    let previous = store.read(&p, &rekey_core::VersionSelector::Previous).await.unwrap();
    assert_eq!(
        previous.meta.id, v2.id,
        "the previous version is the one before, not the oldest without a deletion time"
    );

    store.rollback(&p).await.unwrap();
    let now = store.current(&p).await.unwrap();
    assert_ne!(now.meta.id, v3.id);
    assert_eq!(now.data.as_text().map(|s| s.expose_secret().to_owned()), Some(b), "rolled back to the version before");
}

/// AppRole: enable the auth method, make a role, log in through the store.
#[tokio::test]
async fn approle_login_works() {
    let Some((addr, root)) = common::server() else { return };
    let mount = format!("approle-{}", uuid::Uuid::new_v4().simple());
    common::admin_post(&addr, &root, &format!("sys/auth/{mount}"), json!({"type": "approle"})).await;
    let pre = prefix("approle");
    let policy = format!(
        r#"path "secret/data/{pre}/*" {{ capabilities = ["create", "read", "update", "patch", "delete"] }}
           path "secret/metadata/{pre}/*" {{ capabilities = ["create", "read", "update", "patch", "delete"] }}
           path "secret/data/rekey-staging/{pre}/*" {{ capabilities = ["create", "read", "update", "patch", "delete"] }}
           path "secret/metadata/rekey-staging/{pre}/*" {{ capabilities = ["create", "read", "update", "patch", "delete"] }}"#
    );
    let pname = format!("rekey-approle-{}", uuid::Uuid::new_v4().simple());
    common::admin_post(&addr, &root, &format!("sys/policies/acl/{pname}"), json!({ "policy": policy })).await;
    common::admin_post(
        &addr,
        &root,
        &format!("auth/{mount}/role/rekey"),
        json!({"token_policies": [pname], "token_ttl": "10m"}),
    )
    .await;
    let (_, role) = common::raw(&addr, &root, "GET", &format!("auth/{mount}/role/rekey/role-id"), None).await;
    let role_id = role["data"]["role_id"].as_str().unwrap().to_owned();
    let sid = common::admin_post(&addr, &root, &format!("auth/{mount}/role/rekey/secret-id"), json!({})).await;
    let secret_id = sid["data"]["secret_id"].as_str().unwrap().to_owned();

    let cfg = VaultConfig::new(
        &addr,
        VaultAuth::AppRole {
            role_id: role_id.clone(),
            secret_id: SecretString::from(secret_id.clone()),
            mount: mount.clone(),
        },
    );
    assert!(!format!("{cfg:?}").contains(&secret_id));
    let store = VaultStore::connect(cfg).await.expect("AppRole login");
    assert!(!format!("{store:?}").contains(&secret_id));
    let p = common::path(&pre, "s");
    let v1 = store.create(&p, SecretData::text(secret("a"))).await.unwrap();
    let staged = store.stage(&p, SecretData::text(secret("b")), RotationId::new()).await.unwrap();
    store.promote(&p, &staged.id, &v1.id).await.unwrap();
    assert_eq!(store.list_versions(&p).await.unwrap().len(), 2);
    // Outside its policy: PermissionDenied (the token itself is fine).
    let outside = common::path(&prefix("approle-outside"), "s");
    assert!(matches!(store.create(&outside, SecretData::text("x")).await, Err(StoreError::PermissionDenied { .. })));

    // A token that expires: the store notices (403, lookup-self refused),
    // logs in again once and retries, so the caller sees no error.
    common::admin_post(
        &addr,
        &root,
        &format!("auth/{mount}/role/short"),
        json!({"token_policies": [pname.clone()], "token_ttl": "2s", "token_max_ttl": "2s"}),
    )
    .await;
    let (_, role) = common::raw(&addr, &root, "GET", &format!("auth/{mount}/role/short/role-id"), None).await;
    let short_role = role["data"]["role_id"].as_str().unwrap().to_owned();
    let sid = common::admin_post(&addr, &root, &format!("auth/{mount}/role/short/secret-id"), json!({})).await;
    let short_sid = SecretString::from(sid["data"]["secret_id"].as_str().unwrap().to_owned());
    let short = VaultStore::connect(VaultConfig::new(
        &addr,
        VaultAuth::AppRole { role_id: short_role, secret_id: short_sid, mount: mount.clone() },
    ))
    .await
    .unwrap();
    short.current(&p).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let before = short.requests_sent();
    short.current(&p).await.expect("re-login after the token expired");
    assert_eq!(short.requests_sent() - before, 4, "read (403) + lookup-self (403) + login + read again");

    // A wrong secret id: Unauthenticated at connect, without the secret id.
    let wrong = "00000000-0000-0000-0000-000000000000";
    let cfg =
        VaultConfig::new(&addr, VaultAuth::AppRole { role_id, secret_id: SecretString::from(wrong.to_owned()), mount });
    let e = VaultStore::connect(cfg).await.expect_err("a wrong secret id must fail");
    assert!(matches!(e, StoreError::Unauthenticated { .. }), "{e}");
    no_leak(&e, wrong);
}

/// A token whose policy lacks write permission: PermissionDenied for every
/// write, nothing changes; a bogus token is Unauthenticated. Neither token
/// shows in any output.
#[tokio::test]
async fn read_only_token_is_denied_and_changes_nothing() {
    let Some((addr, root)) = common::server() else { return };
    let pre = prefix("readonly");
    let admin = VaultStore::connect(common::config(&addr, &root)).await.unwrap();
    let p = common::path(&pre, "s");
    let old = secret("old");
    let v1 = admin.create(&p, SecretData::text(old.clone())).await.unwrap();
    let policy = format!(
        r#"path "secret/data/{pre}/*" {{ capabilities = ["read"] }}
           path "secret/metadata/{pre}/*" {{ capabilities = ["read"] }}
           path "secret/data/rekey-staging/{pre}/*" {{ capabilities = ["read"] }}"#
    );
    let ro =
        common::token_with_policy(&addr, &root, &format!("rekey-ro-{}", uuid::Uuid::new_v4().simple()), &policy).await;
    let store = VaultStore::connect(common::config(&addr, &ro)).await.unwrap();

    assert!(store.current(&p).await.unwrap().data.same_as(&SecretData::text(old.clone())));
    let attempts: Vec<Result<(), StoreError>> = vec![
        store.put(&p, SecretData::text(secret("x")), PutOptions::if_current(v1.id.clone())).await.map(|_| ()),
        store.put(&p, SecretData::text(secret("x")), PutOptions::overwrite()).await.map(|_| ()),
        store.stage(&p, SecretData::text(secret("x")), RotationId::new()).await.map(|_| ()),
        store.promote(&p, &v1.id, &v1.id).await.map(|_| ()),
        store.write_metadata(&p, [("rekey.a".to_owned(), "b".to_owned())].into()).await,
        store.delete(&p).await,
    ];
    let mut denied = 0;
    for r in attempts {
        match r {
            Err(e @ StoreError::PermissionDenied { .. }) => {
                assert!(!e.is_retryable());
                no_leak(&e, &ro);
                denied += 1;
            }
            // promote(v1, v1) is a no-op read: allowed.
            Ok(()) => {}
            Err(e) => panic!("expected PermissionDenied, got {e}"),
        }
    }
    assert_eq!(denied, 5);
    let cur = admin.current(&p).await.unwrap();
    assert_eq!(cur.meta.id, v1.id, "a denied write changed the secret");
    assert!(cur.data.same_as(&SecretData::text(old)));
    assert_eq!(admin.list_versions(&p).await.unwrap().len(), 1);
    assert!(admin.pending(&p).await.unwrap().is_none());

    // A token the server does not know: Unauthenticated, token not shown.
    let bogus = format!("hvs.{}", uuid::Uuid::new_v4().simple());
    let store = VaultStore::connect(common::config(&addr, &bogus)).await.unwrap();
    let e = store.current(&p).await.err().unwrap();
    assert!(matches!(e, StoreError::Unauthenticated { .. }), "{e}");
    no_leak(&e, &bogus);
    assert!(!format!("{store:?}").contains(&bogus));

    // An empty token is refused before any request.
    let e = VaultStore::connect(common::config(&addr, "")).await.expect_err("an empty token must fail");
    assert!(matches!(e, StoreError::Unauthenticated { .. }), "{e}");
}

/// A policy written without the `patch` capability (create, read, update,
/// delete): the store falls back to read + POST for custom_metadata, so
/// idempotence records and metadata still work, and owners' keys survive.
#[tokio::test]
async fn policy_without_patch_capability_still_works() {
    let Some((addr, root)) = common::server() else { return };
    let pre = prefix("nopatch");
    let caps = r#"["create", "read", "update", "delete"]"#;
    let policy = format!(
        r#"path "secret/data/{pre}/*" {{ capabilities = {caps} }}
           path "secret/metadata/{pre}/*" {{ capabilities = {caps} }}
           path "secret/data/rekey-staging/{pre}/*" {{ capabilities = {caps} }}
           path "secret/metadata/rekey-staging/{pre}/*" {{ capabilities = {caps} }}"#
    );
    let token =
        common::token_with_policy(&addr, &root, &format!("rekey-nopatch-{}", uuid::Uuid::new_v4().simple()), &policy)
            .await;
    let store = VaultStore::connect(common::config(&addr, &token)).await.unwrap();
    let p = common::path(&pre, "s");
    let v1 = store.create(&p, SecretData::text(secret("a"))).await.unwrap();
    common::admin_post(&addr, &root, &format!("secret/metadata/{p}"), json!({"custom_metadata": {"owner": "team-b"}}))
        .await;

    let r = RotationId::new();
    let opts = PutOptions::if_current(v1.id.clone()).with_rotation(r);
    let v2 = store.put(&p, SecretData::text(secret("b")), opts.clone()).await.unwrap();
    let again = store.put(&p, SecretData::text(secret("b")), opts).await.unwrap();
    assert_eq!(again.id, v2.id, "the retried put was not recognised");
    assert_eq!(store.current(&p).await.unwrap().meta.rotation_id, Some(r));

    let staged = store.stage(&p, SecretData::text(secret("c")), RotationId::new()).await.unwrap();
    store.promote(&p, &staged.id, &v2.id).await.unwrap();
    let m: Metadata = [("rekey.step".to_owned(), "done".to_owned())].into();
    store.write_metadata(&p, m.clone()).await.unwrap();
    assert_eq!(store.read_metadata(&p).await.unwrap(), m);
    let (_, body) = common::raw(&addr, &root, "GET", &format!("secret/metadata/{p}"), None).await;
    assert_eq!(body["data"]["custom_metadata"]["owner"], "team-b");
}

/// Each server answer rekey can provoke for real maps to its variant.
#[tokio::test]
async fn server_answers_map_to_typed_errors() {
    let Some((addr, root)) = common::server() else { return };
    let store = VaultStore::connect(common::config(&addr, &root)).await.unwrap();
    let pre = prefix("errors");
    let p = common::path(&pre, "s");
    let v1 = store.create(&p, SecretData::text(secret("a"))).await.unwrap();

    // 400 CAS mismatch -> Conflict with both versions.
    let v2 = store.put(&p, SecretData::text(secret("b")), PutOptions::if_current(v1.id.clone())).await.unwrap();
    match store.put(&p, SecretData::text(secret("c")), PutOptions::if_current(v1.id.clone())).await {
        Err(StoreError::Conflict { expected, actual, .. }) => {
            assert_eq!(expected, Some(v1.id.clone()));
            assert_eq!(actual, Some(v2.id.clone()));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    // 400 other (cas required on this secret, write without cas) -> InvalidInput.
    common::admin_post(&addr, &root, &format!("secret/metadata/{p}"), json!({"cas_required": true})).await;
    let e = store.put(&p, SecretData::text(secret("d")), PutOptions::overwrite()).await.err().unwrap();
    assert!(matches!(e, StoreError::InvalidInput { .. }), "{e}");
    assert!(e.to_string().contains("check-and-set parameter required"), "{e}");
    no_leak(&e, &root);
    // 404 -> NotFound.
    let missing = common::path(&pre, "missing");
    assert!(matches!(store.current(&missing).await, Err(StoreError::NotFound { .. })));
    // 404 with "no handler for route" (no such mount) -> InvalidInput.
    let other_mount = VaultStore::connect(common::config(&addr, &root).with_mount("no-such-mount")).await.unwrap();
    let e = other_mount.current(&p).await.err().unwrap();
    assert!(matches!(e, StoreError::InvalidInput { .. }), "{e}");
    // Non-string JSON written by another tool -> NotSupported, not a panic.
    let odd = common::path(&pre, "odd");
    common::admin_post(
        &addr,
        &root,
        &format!("secret/data/{odd}"),
        json!({"data": {"port": 5432, "nested": {"a": 1}}}),
    )
    .await;
    assert!(matches!(store.current(&odd).await, Err(StoreError::NotSupported { .. })));
    // A foreign value at the staging location -> Other, not a panic.
    let foreign = common::path(&pre, "foreign");
    store.create(&foreign, SecretData::text("x")).await.unwrap();
    common::admin_post(
        &addr,
        &root,
        &format!("secret/data/{}", store.staging_location(&foreign)),
        json!({"data": {"x": "y"}}),
    )
    .await;
    assert!(matches!(store.pending(&foreign).await, Err(StoreError::Other { .. })));

    // 429: a rate-limit quota on a mount of its own.
    let rl_mount = format!("kv-rl-{}", uuid::Uuid::new_v4().simple());
    common::admin_post(
        &addr,
        &root,
        &format!("sys/mounts/{rl_mount}"),
        json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await;
    let quota = format!("rl-{}", uuid::Uuid::new_v4().simple());
    common::admin_post(
        &addr,
        &root,
        &format!("sys/quotas/rate-limit/{quota}"),
        json!({"rate": 1, "interval": "30s", "path": format!("{rl_mount}/")}),
    )
    .await;
    let limited = VaultStore::connect(common::config(&addr, &root).with_mount(rl_mount.clone())).await.unwrap();
    let mut saw = None;
    for i in 0..5 {
        match limited.put(&common::path(&pre, &format!("rl{i}")), SecretData::text("x"), PutOptions::overwrite()).await
        {
            Ok(_) => {}
            Err(e) => {
                saw = Some(e);
                break;
            }
        }
    }
    let e = saw.expect("the quota never limited");
    assert!(matches!(e, StoreError::RateLimited { .. }), "{e}");
    assert!(e.is_retryable());
    common::raw(&addr, &root, "DELETE", &format!("sys/quotas/rate-limit/{quota}"), None).await;
    common::raw(&addr, &root, "DELETE", &format!("sys/mounts/{rl_mount}"), None).await;

    // Connection refused -> Unavailable (retryable).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = VaultStore::connect(common::config(&format!("http://127.0.0.1:{port}"), &root)).await.unwrap();
    let e = dead.current(&p).await.err().unwrap();
    assert!(matches!(e, StoreError::Unavailable { .. }) && e.is_retryable(), "{e}");
    no_leak(&e, &root);

    // A server that accepts and never answers -> Unavailable after the timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let cfg = common::config(&format!("http://{silent}"), &root).with_request_timeout(Duration::from_millis(300));
    let slow = VaultStore::connect(cfg).await.unwrap();
    let t0 = std::time::Instant::now();
    let e = slow.current(&p).await.err().unwrap();
    assert!(matches!(e, StoreError::Unavailable { .. }) && e.is_retryable(), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    hold.abort();
}

/// The HTTP requests each operation costs (the numbers the crate docs give).
#[tokio::test]
async fn round_trips_per_operation() {
    let Some((addr, root)) = common::server() else { return };
    let store = VaultStore::connect(common::config(&addr, &root)).await.unwrap();
    let p = common::path(&prefix("trips"), "s");
    let cost = |before: u64| store.requests_sent() - before;

    let n = store.requests_sent();
    let v1 = store.create(&p, SecretData::text(secret("a"))).await.unwrap();
    assert_eq!(cost(n), 1, "create");

    // One staged rotation: read current, stage, promote.
    let n = store.requests_sent();
    let cur = store.current(&p).await.unwrap();
    assert_eq!(cost(n), 1, "read current");
    let n2 = store.requests_sent();
    let staged = store.stage(&p, SecretData::text(secret("b")), RotationId::new()).await.unwrap();
    assert_eq!(cost(n2), 2, "stage");
    let n3 = store.requests_sent();
    let v2 = store.promote(&p, &staged.id, &cur.meta.id).await.unwrap();
    assert_eq!(cost(n3), 4, "promote");
    assert_eq!(cost(n), 7, "one staged rotation");

    let n = store.requests_sent();
    let r = RotationId::new();
    let v3 = store
        .put(&p, SecretData::text(secret("c")), PutOptions::if_current(v2.id.clone()).with_rotation(r))
        .await
        .unwrap();
    assert_eq!(cost(n), 2, "put with a rotation id");
    let n = store.requests_sent();
    let again = store
        .put(&p, SecretData::text(secret("c")), PutOptions::if_current(v2.id.clone()).with_rotation(r))
        .await
        .unwrap();
    assert_eq!(again.id, v3.id);
    assert_eq!(cost(n), 2, "a retried put (CAS fails, metadata read)");
    let n = store.requests_sent();
    store.rollback(&p).await.unwrap();
    assert_eq!(
        cost(n),
        2 + 2 + 2,
        "rollback = list_versions + promote of an old version + reading and writing the record beside the secret"
    );
    let _ = v1;
}

/// Secret values and tokens never show in Debug or errors.
#[tokio::test]
async fn no_token_or_value_in_debug() {
    let Some((addr, root)) = common::server() else { return };
    let cfg = common::config(&addr, &root);
    assert!(!format!("{cfg:?}{cfg:#?}").contains(&root));
    let store = VaultStore::connect(cfg).await.unwrap();
    let p = common::path(&prefix("debug"), "s");
    let v = secret("v");
    store.create(&p, SecretData::text(v.clone())).await.unwrap();
    let got = store.current(&p).await.unwrap();
    let shown = format!("{store:?} {store:#?} {got:?} {got:#?}");
    assert!(!shown.contains(&root) && !shown.contains(&v), "{shown}");
    let e = store.create(&p, SecretData::text(v.clone())).await.err().unwrap();
    no_leak(&e, &root);
}
