//! AWS-specific behaviour, checked against moto through the real SDK, and
//! read back through a separately built SDK client (what AWS's console, AWS's
//! own rotation functions and consumers see).
//!
//! Where moto 5.2 differs from AWS (found while writing these tests; the code
//! is right for AWS and works around moto where needed):
//!
//! * `ListSecretVersionIds` reports the time of the *listing* as every
//!   version's `CreatedDate` (AWS: the creation time) — hence
//!   `AwsConfig::for_moto` (`version_dates_from_reads`).
//! * `ListSecretVersionIds` on a missing secret is HTTP 500 (AWS:
//!   `ResourceNotFoundException`) — the store asks `DescribeSecret`.
//! * `ListSecretVersionIds` without `IncludeDeprecated` still lists
//!   unlabelled versions (AWS hides them) — the store always asks with
//!   `IncludeDeprecated=true`.
//! * `UpdateSecretVersionStage(AWSCURRENT)` removes the label from
//!   `RemoveFromVersionId` *before* checking `MoveToVersionId`, so moving to
//!   a version that does not exist leaves no current version (AWS changes
//!   nothing) — the store's `promote` proves the version exists first.
//!   Moving `AWSCURRENT` onto the version that holds it drops `AWSPREVIOUS`;
//!   without `RemoveFromVersionId` it is HTTP 500.
//! * A `ClientRequestToken` reused with another value is accepted by
//!   `PutSecretValue` and *overwrites* that version (AWS:
//!   `ResourceExistsException`) — the token pre-check (default on).
//! * `DeleteSecret` of a missing secret succeeds (AWS:
//!   `ResourceNotFoundException`) — the store asks `DescribeSecret` first.
//! * After `UpdateSecretVersionStage`, a read without `VersionStage` returns
//!   the old value (DESIGN.md) — the store always names the stage.
//! * moto accepts any credentials, so `Unauthenticated` and
//!   `PermissionDenied` cannot be provoked here; their mapping is unit-tested
//!   in `src/error.rs` with SDK errors built by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use rekey_aws::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, AwsConfig, AwsSecretsStore};
use rekey_core::{
    ExposeSecret, Metadata, PutOptions, RotationId, SecretData, SecretStore, SecretStoreExt, StoreError,
    VersionSelector,
};

fn stages(list: &[(String, Vec<String>)], id: &str) -> Vec<String> {
    list.iter().find(|(v, _)| v == id).map(|(_, s)| s.clone()).unwrap_or_default()
}

fn anywhere(list: &[(String, Vec<String>)], label: &str) -> usize {
    list.iter().filter(|(_, s)| s.iter().any(|l| l == label)).count()
}

#[tokio::test]
async fn staged_rotation_leaves_the_stages_aws_rotation_leaves_in_four_or_five_calls() {
    let Some(ep) = common::endpoint() else { return };
    let raw = common::raw_client(&ep).await;
    for precheck in [true, false] {
        let (store, counter) = common::counted_store(&ep).await;
        let store = store.with_token_precheck(precheck);
        let path = common::name("aws-stages");
        let v1 = store.create(&path, SecretData::text("old-value")).await.unwrap();

        counter.reset();
        let current = store.current(&path).await.unwrap();
        let rotation = RotationId::new();
        let candidate = store.stage(&path, SecretData::text("new-value"), rotation).await.unwrap();
        store.promote(&path, &candidate.id, &current.meta.id).await.unwrap();
        let calls = counter.by_operation();
        eprintln!("staged rotation, token pre-check {precheck}: {} calls {calls:?}", counter.total());
        let expected: BTreeMap<&str, u64> = if precheck {
            [("GetSecretValue", 1), ("ListSecretVersionIds", 1), ("PutSecretValue", 1), ("UpdateSecretVersionStage", 2)]
                .into()
        } else {
            [("GetSecretValue", 1), ("PutSecretValue", 1), ("UpdateSecretVersionStage", 2)].into()
        };
        assert_eq!(calls, expected);

        // The version id is the rotation id (the ClientRequestToken).
        assert_eq!(candidate.id.as_str(), rotation.to_string());
        let list = common::raw_stages(&raw, path.as_str()).await;
        assert_eq!(list.len(), 2, "{list:?}");
        assert_eq!(stages(&list, candidate.id.as_str()), [AWSCURRENT]);
        assert_eq!(stages(&list, v1.id.as_str()), [AWSPREVIOUS]);
        assert_eq!(anywhere(&list, AWSPENDING), 0, "{list:?}");

        // A consumer reading AWSCURRENT gets the new value.
        let got = raw.get_secret_value().secret_id(path.as_str()).version_stage(AWSCURRENT).send().await.unwrap();
        assert_eq!(got.secret_string(), Some("new-value"));
        store.delete(&path).await.unwrap();
    }
}

#[tokio::test]
async fn second_stage_with_the_same_rotation_id_creates_no_version() {
    let Some(ep) = common::endpoint() else { return };
    let raw = common::raw_client(&ep).await;
    let store = common::store(&ep).await;
    let path = common::name("aws-restage");
    store.create(&path, SecretData::text("v1")).await.unwrap();
    let r = RotationId::new();
    let first = store.stage(&path, SecretData::text("candidate-1"), r).await.unwrap();
    let before = common::raw_stages(&raw, path.as_str()).await;
    // A retried step with a freshly generated value: the first one stays.
    let again = store.stage(&path, SecretData::text("candidate-2"), r).await.unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(common::raw_stages(&raw, path.as_str()).await, before);
    let pending = store.pending(&path).await.unwrap().unwrap();
    assert_eq!(pending.data.as_text().unwrap().expose_secret(), "candidate-1");

    // Without the pre-check (AWS mode), the same value again is a no-op on
    // moto and on AWS alike.
    let aws_mode = common::store(&ep).await.with_token_precheck(false);
    let same = aws_mode.stage(&path, SecretData::text("candidate-1"), r).await.unwrap();
    assert_eq!(same.id, first.id);
    assert_eq!(common::raw_stages(&raw, path.as_str()).await, before);
    store.delete(&path).await.unwrap();
}

#[tokio::test]
async fn a_crash_after_staging_is_pending_with_its_rotation_id_and_can_be_resumed_or_cleared() {
    let Some(ep) = common::endpoint() else { return };
    let raw = common::raw_client(&ep).await;
    let store = common::store(&ep).await;

    // Resume: a candidate left by a crashed rotation (or by AWS's own
    // rotation function) is pending, with its rotation id, and promotable.
    let path = common::name("aws-crash");
    let v1 = store.create(&path, SecretData::text("old")).await.unwrap();
    let crashed = RotationId::new();
    raw.put_secret_value()
        .secret_id(path.as_str())
        .secret_string("left-behind")
        .version_stages(AWSPENDING)
        .client_request_token(crashed.to_string())
        .send()
        .await
        .unwrap();
    let pending = store.pending(&path).await.unwrap().expect("the leftover candidate is pending");
    assert_eq!(pending.meta.rotation_id, Some(crashed));
    assert!(pending.meta.stages.pending && !pending.meta.stages.current);
    assert_eq!(pending.data.as_text().unwrap().expose_secret(), "left-behind");
    let listed = store.list_versions(&path).await.unwrap();
    assert_eq!(listed.iter().filter(|v| v.stages.pending).map(|v| v.rotation_id).collect::<Vec<_>>(), [Some(crashed)]);
    store.promote(&path, &pending.meta.id, &v1.id).await.unwrap();
    let list = common::raw_stages(&raw, path.as_str()).await;
    assert_eq!(stages(&list, &crashed.to_string()), [AWSCURRENT]);
    assert_eq!(anywhere(&list, AWSPENDING), 0);

    // Clear: the same leftover, discarded instead.
    let path2 = common::name("aws-crash-clear");
    store.create(&path2, SecretData::text("old")).await.unwrap();
    let left = RotationId::new();
    raw.put_secret_value()
        .secret_id(path2.as_str())
        .secret_string("left-behind")
        .version_stages(AWSPENDING)
        .client_request_token(left.to_string())
        .send()
        .await
        .unwrap();
    let pending = store.pending(&path2).await.unwrap().unwrap();
    store.discard(&path2, &pending.meta.id).await.unwrap();
    assert!(store.pending(&path2).await.unwrap().is_none());
    assert_eq!(anywhere(&common::raw_stages(&raw, path2.as_str()).await, AWSPENDING), 0);

    // AWS's own rotation moves AWSCURRENT first and removes AWSPENDING
    // afterwards: a crash in between leaves AWSPENDING on the current
    // version. That is not a stuck rotation, and the next stage clears it.
    let path3 = common::name("aws-stray");
    let base = store.create(&path3, SecretData::text("old")).await.unwrap();
    let token = RotationId::new().to_string();
    raw.put_secret_value()
        .secret_id(path3.as_str())
        .secret_string("new")
        .version_stages(AWSPENDING)
        .client_request_token(&token)
        .send()
        .await
        .unwrap();
    raw.update_secret_version_stage()
        .secret_id(path3.as_str())
        .version_stage(AWSCURRENT)
        .move_to_version_id(&token)
        .remove_from_version_id(base.id.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(stages(&common::raw_stages(&raw, path3.as_str()).await, &token), [AWSCURRENT, AWSPENDING]);
    assert!(store.pending(&path3).await.unwrap().is_none(), "AWSPENDING on the current version is not pending");
    let listed = store.list_versions(&path3).await.unwrap();
    assert!(listed.iter().all(|v| !v.stages.pending), "{listed:?}");
    let next = store.stage(&path3, SecretData::text("next"), RotationId::new()).await.unwrap();
    let list = common::raw_stages(&raw, path3.as_str()).await;
    assert_eq!(stages(&list, &token), [AWSCURRENT]);
    assert_eq!(stages(&list, next.id.as_str()), [AWSPENDING]);

    for p in [&path, &path2, &path3] {
        store.delete(p).await.unwrap();
    }
}

#[tokio::test]
async fn promoting_with_a_stale_current_version_is_conflict_and_changes_nothing() {
    let Some(ep) = common::endpoint() else { return };
    let raw = common::raw_client(&ep).await;
    let store = common::store(&ep).await;
    let path = common::name("aws-stale");
    let v1 = store.create(&path, SecretData::text("a")).await.unwrap();
    let v2 = store.put(&path, SecretData::text("b"), PutOptions::if_current(v1.id.clone())).await.unwrap();
    let candidate = store.stage(&path, SecretData::text("c"), RotationId::new()).await.unwrap();
    let before = common::raw_stages(&raw, path.as_str()).await;
    let err = store.promote(&path, &candidate.id, &v1.id).await.unwrap_err();
    match &err {
        StoreError::Conflict { expected, actual, .. } => {
            assert_eq!(expected.as_ref(), Some(&v1.id));
            assert_eq!(actual.as_ref(), Some(&v2.id));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert_eq!(common::raw_stages(&raw, path.as_str()).await, before);

    // The same through a second, independent store (another process): no
    // shared lock, Secrets Manager's own compare-and-swap decides.
    let other = common::store(&ep).await;
    let err = other.promote(&path, &candidate.id, &v1.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(common::raw_stages(&raw, path.as_str()).await, before);

    // And a stale put: refused before anything is written.
    let err = store.put(&path, SecretData::text("d"), PutOptions::if_current(v1.id.clone())).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(common::raw_stages(&raw, path.as_str()).await, before);
    store.delete(&path).await.unwrap();
}

#[tokio::test]
async fn a_cas_lost_across_processes_is_conflict() {
    let Some(ep) = common::endpoint() else { return };
    let store = common::store(&ep).await;
    // Without the pre-check, the put reaches UpdateSecretVersionStage and
    // loses there: the real compare-and-swap of the server.
    let blind = common::store(&ep).await.with_token_precheck(false);
    let path = common::name("aws-cas");
    let v1 = store.create(&path, SecretData::text("a")).await.unwrap();
    let v2 = store.put(&path, SecretData::text("b"), PutOptions::if_current(v1.id.clone())).await.unwrap();
    let err = blind.put(&path, SecretData::text("c"), PutOptions::if_current(v1.id.clone())).await.unwrap_err();
    match err {
        StoreError::Conflict { actual, .. } => assert_eq!(actual, Some(v2.id.clone())),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let cur = store.current(&path).await.unwrap();
    assert_eq!(cur.meta.id, v2.id);
    assert_eq!(cur.data.as_text().unwrap().expose_secret(), "b");
    // The loser's version exists (AWS cannot delete one version) but holds
    // no stage.
    let list = store.list_versions(&path).await.unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list.iter().filter(|v| v.stages.current || v.stages.previous || v.stages.pending).count(), 2);
    store.delete(&path).await.unwrap();
}

#[tokio::test]
async fn json_fields_keep_the_other_fields() {
    let Some(ep) = common::endpoint() else { return };
    let raw = common::raw_client(&ep).await;
    let store = common::store(&ep).await;
    let path = common::name("aws-json");
    // Created by someone else, in AWS's usual shape.
    raw.create_secret()
        .name(path.as_str())
        .secret_string(r#"{"username":"billing","password":"old-pw","host":"db.internal"}"#)
        .send()
        .await
        .unwrap();
    let current = store.current(&path).await.unwrap();
    assert_eq!(current.data.field_names().collect::<Vec<_>>(), ["host", "password", "username"]);
    let next = current.data.with_field(Some("password"), "new-pw".to_owned().into()).unwrap();
    let candidate = store.stage(&path, next, RotationId::new()).await.unwrap();
    store.promote(&path, &candidate.id, &current.meta.id).await.unwrap();

    let got = raw.get_secret_value().secret_id(path.as_str()).version_stage(AWSCURRENT).send().await.unwrap();
    let json: serde_json::Value = serde_json::from_str(got.secret_string().unwrap()).unwrap();
    assert_eq!(json, serde_json::json!({"username": "billing", "password": "new-pw", "host": "db.internal"}));
    let prev = raw.get_secret_value().secret_id(path.as_str()).version_stage(AWSPREVIOUS).send().await.unwrap();
    let json: serde_json::Value = serde_json::from_str(prev.secret_string().unwrap()).unwrap();
    assert_eq!(json["password"], "old-pw");

    // An RDS-style secret with a numeric port is kept byte for byte as text,
    // and rotating one of its fields is refused instead of re-typing it.
    let rds = common::name("aws-json-rds");
    let text = r#"{"engine":"postgres","username":"u","password":"p","port":5432}"#;
    raw.create_secret().name(rds.as_str()).secret_string(text).send().await.unwrap();
    let cur = store.current(&rds).await.unwrap();
    assert_eq!(cur.data.as_text().unwrap().expose_secret(), text);
    assert!(matches!(
        cur.data.with_field(Some("password"), "x".to_owned().into()),
        Err(StoreError::InvalidInput { .. })
    ));
    store.delete(&path).await.unwrap();
    store.delete(&rds).await.unwrap();
}

#[tokio::test]
async fn metadata_lives_in_rekey_tags_and_leaves_other_tags_alone() {
    let Some(ep) = common::endpoint() else { return };
    let raw = common::raw_client(&ep).await;
    let store = common::store(&ep).await;
    let path = common::name("aws-tags");
    store.create(&path, SecretData::text("v")).await.unwrap();
    raw.tag_resource()
        .secret_id(path.as_str())
        .tags(aws_sdk_secretsmanager::types::Tag::builder().key("team").value("billing").build())
        .send()
        .await
        .unwrap();
    let md: Metadata = [
        ("rekey.acks".to_owned(), "svc-a,svc-b;svc-c".to_owned()), // not tag-safe: stored as b64:
        ("rekey.deadline".to_owned(), "2030-01-01T00:00:00Z".to_owned()),
    ]
    .into();
    store.write_metadata(&path, md.clone()).await.unwrap();
    assert_eq!(store.read_metadata(&path).await.unwrap(), md);
    let tags = raw.describe_secret().secret_id(path.as_str()).send().await.unwrap();
    let tags: BTreeMap<_, _> =
        tags.tags().iter().map(|t| (t.key().unwrap_or("").to_owned(), t.value().unwrap_or("").to_owned())).collect();
    assert_eq!(tags.get("team").map(String::as_str), Some("billing"));
    assert_eq!(tags.get("rekey.deadline").map(String::as_str), Some("2030-01-01T00:00:00Z"));
    assert!(tags.get("rekey.acks").is_some_and(|v| v.starts_with("b64:")));

    store.write_metadata(&path, Metadata::new()).await.unwrap();
    let tags = raw.describe_secret().secret_id(path.as_str()).send().await.unwrap();
    assert_eq!(tags.tags().iter().filter_map(|t| t.key()).collect::<Vec<_>>(), ["team"]);

    // Limits are typed errors before any call.
    let bad_key: Metadata = [("owner".to_owned(), "x".to_owned())].into();
    assert!(matches!(store.write_metadata(&path, bad_key).await, Err(StoreError::InvalidInput { .. })));
    let too_many: Metadata = (0..50).map(|i| (format!("rekey.k{i}"), "v".to_owned())).collect();
    assert!(matches!(store.write_metadata(&path, too_many).await, Err(StoreError::InvalidInput { .. })));
    let too_long: Metadata = [("rekey.k".to_owned(), "v".repeat(257))].into();
    assert!(matches!(store.write_metadata(&path, too_long).await, Err(StoreError::InvalidInput { .. })));
    store.delete(&path).await.unwrap();
}

#[tokio::test]
async fn errors_map_to_typed_variants_against_a_real_server() {
    let Some(ep) = common::endpoint() else { return };
    let store = common::store(&ep).await;
    let missing = common::name("aws-missing");
    for sel in [VersionSelector::Current, VersionSelector::Previous, VersionSelector::Pending] {
        assert!(matches!(store.read(&missing, &sel).await, Err(StoreError::NotFound { .. })));
    }
    assert!(matches!(store.list_versions(&missing).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.read_metadata(&missing).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.delete(&missing).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(
        store
            .put(&missing, SecretData::text("x"), PutOptions::if_current(rekey_core::VersionId::new("x".repeat(36))))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    // Secrets Manager stores no empty string: a typed error, not a call.
    assert!(matches!(store.create(&missing, SecretData::text("")).await, Err(StoreError::InvalidInput { .. })));
    // A malformed version id cannot exist.
    assert!(matches!(
        store.read(&missing, &VersionSelector::Id(rekey_core::VersionId::new("short"))).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_and_retryable_and_never_shows_credentials() {
    // A port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = AwsConfig::default()
        .with_region("us-east-1")
        .with_endpoint_url(format!("http://127.0.0.1:{port}"))
        .with_static_credentials("AKIDNEVERSHOWN1", "secretKeyNeverShown/1")
        .with_max_attempts(1);
    let store = AwsSecretsStore::from_config(&cfg).await.unwrap();
    let path = common::name("aws-down");
    let err = store.current(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.is_retryable());
    let mut shown = format!("{err} {err:?} {store:?} {cfg:?} {cfg:#?}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        shown.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    assert!(!shown.contains("AKIDNEVERSHOWN1") && !shown.contains("secretKeyNeverShown"), "{shown}");
    let err = store.create(&path, SecretData::text("never-sent-value")).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(!format!("{err} {err:?}").contains("never-sent-value"));
}

/// A credentials provider that has none (no profile, no environment, no
/// instance role).
#[derive(Debug)]
struct NoCredentials;

impl aws_sdk_secretsmanager::config::ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(
            aws_credential_types::provider::error::CredentialsError::not_loaded("no credentials anywhere"),
        ))
    }
}

#[tokio::test]
async fn missing_credentials_are_unauthenticated() {
    let Some(ep) = common::endpoint() else { return };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&ep)
        .credentials_provider(NoCredentials)
        .load()
        .await;
    let store = AwsSecretsStore::new(aws_sdk_secretsmanager::Client::new(&sdk));
    let err = store.current(&common::name("aws-nocreds")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unauthenticated { .. }), "{err:?}");
    assert!(!err.is_retryable());
}

/// Eight processes (independent stores: no shared in-process lock) race to
/// promote eight different versions over the same expected current one:
/// Secrets Manager's own compare-and-swap lets exactly one win.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_promotions_across_processes_have_one_winner() {
    let Some(ep) = common::endpoint() else { return };
    let seed = common::store(&ep).await;
    let path = common::name("aws-race");
    let mut ids = Vec::new();
    let mut cur = seed.create(&path, SecretData::text("v0")).await.unwrap().id;
    ids.push(cur.clone());
    for i in 1..8 {
        cur = seed.put(&path, SecretData::text(format!("v{i}")), PutOptions::if_current(cur)).await.unwrap().id;
        ids.push(cur.clone());
    }
    let base = seed.put(&path, SecretData::text("base"), PutOptions::if_current(cur)).await.unwrap().id;
    let mut stores = Vec::new();
    for _ in 0..8 {
        stores.push(common::store(&ep).await);
    }
    let results = futures::future::join_all(stores.iter().zip(&ids).map(|(s, id)| s.promote(&path, id, &base))).await;
    let winners: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, StoreError::Conflict { .. }), "{e:?}");
        }
    }
    let list = seed.list_versions(&path).await.unwrap();
    assert_eq!(list.iter().filter(|v| v.stages.current).count(), 1);
    assert_eq!(list.iter().filter(|v| v.stages.previous).map(|v| &v.id).collect::<Vec<_>>(), [&base]);
    seed.delete(&path).await.unwrap();
}
