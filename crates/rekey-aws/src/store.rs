//! [`AwsSecretsStore`]: the store contract over Secrets Manager's own stages.

use std::fmt;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::DateTime as AwsDateTime;
use aws_sdk_secretsmanager::types::Tag;
use chrono::{DateTime, Utc};
use rekey_core::{
    ExposeSecret, Metadata, MetadataPatch, PutMode, PutOptions, RotationId, SecretData, SecretPath, SecretStore,
    SecretVersion, Stages, StoreError, VersionId, VersionMeta, VersionSelector,
};
use tracing::{debug, warn};

use crate::codec::{
    MAX_TAGS, METADATA_PREFIX, check_metadata_key, decode_value, encode_tag_value, encode_value, metadata_from_tags,
};
use crate::config::AwsConfig;
use crate::counter::ApiCallCounter;
use crate::error::{AwsFailure, Ctx, map_sdk};
use crate::lock::SecretLocks;

/// The stage consumers read.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The stage of the version that was current before.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
/// The stage of a candidate being rotated in.
pub const AWSPENDING: &str = "AWSPENDING";
/// rekey's private staging label: a `put` with
/// [`PutMode::IfCurrent`] writes its new version under this label (so the
/// write does not touch `AWSCURRENT`), then moves `AWSCURRENT` to it with
/// compare-and-swap. It stays on the newest version rekey wrote this way and
/// moves on with the next such write; rekey gives it no meaning.
pub const REKEY_WRITING: &str = "rekey-writing";

/// Secrets Manager's bounds on a `VersionId` / `ClientRequestToken`.
const MIN_VERSION_ID: usize = 32;
const MAX_VERSION_ID: usize = 64;

/// A [`SecretStore`] over AWS Secrets Manager, using its native version
/// stages the way AWS's own rotation functions do.
///
/// | contract                    | Secrets Manager                                                                 |
/// |-----------------------------|---------------------------------------------------------------------------------|
/// | `read(Current/Previous/Pending)` | `GetSecretValue(VersionStage=AWSCURRENT/AWSPREVIOUS/AWSPENDING)`, always explicit |
/// | `read(Id)`                  | `GetSecretValue(VersionId)`                                                     |
/// | `put(Create)`               | `CreateSecret(ClientRequestToken)`                                              |
/// | `put(Overwrite)`            | `PutSecretValue` (which moves `AWSCURRENT`), `CreateSecret` if missing          |
/// | `put(IfCurrent(v))`         | `PutSecretValue(VersionStages=[rekey-writing])`, then `UpdateSecretVersionStage(AWSCURRENT, MoveToVersionId=new, RemoveFromVersionId=v)` |
/// | `stage`                     | `PutSecretValue(VersionStages=[AWSPENDING], ClientRequestToken=<rotation id>)`  |
/// | `promote(new, expected)`    | `UpdateSecretVersionStage(AWSPENDING, RemoveFromVersionId=new)`, then `UpdateSecretVersionStage(AWSCURRENT, MoveToVersionId=new, RemoveFromVersionId=expected)` |
/// | `discard`                   | `UpdateSecretVersionStage(AWSPENDING, RemoveFromVersionId=v)`                   |
/// | `list_versions`             | `ListSecretVersionIds(IncludeDeprecated=true)`                                  |
/// | metadata                    | secret tags whose keys start with `rekey.`                                      |
/// | `delete`                    | `DeleteSecret(ForceDeleteWithoutRecovery=true)`                                 |
///
/// # Versions and rotation ids
///
/// A write that carries a [`RotationId`] passes it as the
/// `ClientRequestToken`, which becomes the `VersionId`: a retried write sends
/// the same token, and Secrets Manager creates no second version. A version
/// whose id is a UUID reports it as its [`VersionMeta::rotation_id`] (AWS's
/// own rotation uses the same convention); writes without a rotation id use
/// `rekey-<32 hex digits>` tokens, which report none.
///
/// # Compare-and-swap
///
/// `UpdateSecretVersionStage` with `RemoveFromVersionId` is Secrets Manager's
/// atomic compare-and-swap: it fails when that version no longer holds
/// `AWSCURRENT`. The store then lists the versions once to tell a lost race
/// ([`StoreError::Conflict`] with the actual current version) from a bad
/// request.
///
/// # Concurrency
///
/// Within one process (one store and its clones), writes to one secret are
/// serialised by an async mutex per secret name, so that with the [token
/// pre-check](Self::with_token_precheck) a `put(IfCurrent)` that loses a race
/// to a writer in the same process fails before writing anything. Across
/// processes Secrets Manager's own compare-and-swap decides; a `put` that
/// loses there has already written its version, which stays unlabelled
/// (listed with no stage) until AWS deletes it, since single versions cannot
/// be deleted.
///
/// # Staging, promotion and crashes
///
/// `promote` removes `AWSPENDING` from the candidate and then moves
/// `AWSCURRENT` onto it with compare-and-swap, leaving exactly what AWS's own
/// rotation leaves: new version `AWSCURRENT`, old version `AWSPREVIOUS`, no
/// `AWSPENDING`. If the compare-and-swap loses, `AWSPENDING` is put back. If
/// the process dies between the two calls, the candidate is left unlabelled
/// (no stuck `AWSPENDING`); promoting it again by id still works. A version
/// holding `AWSCURRENT` or `AWSPREVIOUS` is never reported as pending, so an
/// `AWSPENDING` left on the current version by another tool (AWS's own
/// rotation moves `AWSCURRENT` first) never looks like a stuck rotation; the
/// next `stage` moves that label away.
///
/// Secrets Manager cannot delete one version: `discard` removes
/// `AWSPENDING`, and the unlabelled version is *deprecated*; AWS deletes
/// deprecated versions on its own (when a secret has more than 100 versions,
/// those older than a day). Until then it is still listed (with no stage)
/// and readable by id.
///
/// # Values
///
/// [`SecretData::Text`] is the plain `SecretString`; [`SecretData::Fields`]
/// is a JSON object of strings. On read, a `SecretString` that is a JSON
/// object whose values are all strings is `Fields`, anything else `Text`.
/// The one ambiguity: a *text* value that happens to be such a JSON object
/// reads back as `Fields`. A JSON object with non-string values (an RDS
/// secret's numeric `port`) reads as `Text`, kept byte for byte, so rotating
/// one of its fields is an error rather than a silent change of types. Binary
/// secrets (`SecretBinary`) read as `Text` when they are UTF-8.
///
/// # Metadata
///
/// Metadata are the secret's tags whose keys start with `rekey.` (other tags
/// are left alone). AWS allows 50 tags per secret (all tags, rekey's and
/// others), keys of up to 128 and values of up to 256 characters from
/// letters, digits, spaces and `_.:/=+-@`. A value with other characters is
/// stored as `b64:` + base64 (so it must fit in 192 bytes).
///
/// # API calls
///
/// The primitive calls above cost, for a staged rotation done by hand (read
/// current, stage, promote), `GetSecretValue` + `PutSecretValue` + 2 ×
/// `UpdateSecretVersionStage`, plus one `ListSecretVersionIds` while the
/// [token pre-check](Self::with_token_precheck) is on. A rollback (promoting
/// a version that is not pending) costs one `ListSecretVersionIds` and two
/// `UpdateSecretVersionStage`. The engine uses the rotation calls
/// (`snapshot`, `stage_rotation`, `promote_rotation`, `put_rotation`), which
/// cost 4 or 5 per rotation: see the crate docs.
///
/// `Debug` shows no credential and no value.
///
/// ```no_run
/// use rekey_aws::{AwsConfig, AwsSecretsStore};
/// use rekey_core::{RotationId, SecretData, SecretStore, SecretStoreExt};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let store = AwsSecretsStore::from_config(&AwsConfig::default().with_region("eu-west-1")).await?;
/// let path = "apps/billing/db".parse()?;
/// let current = store.current(&path).await?;
/// let next = current.data.with_field(Some("password"), "n3w-pa55".to_owned().into())?;
/// let candidate = store.stage(&path, next, RotationId::new()).await?;
/// // ... apply and verify the candidate ...
/// store.promote(&path, &candidate.id, &current.meta.id).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AwsSecretsStore {
    pub(crate) client: Client,
    /// Calls made through `client`, by operation (shared by clones).
    calls: ApiCallCounter,
    token_precheck: bool,
    dates_from_reads: bool,
    pub(crate) pending_cleanup: bool,
    pub(crate) locks: SecretLocks,
}

impl fmt::Debug for AwsSecretsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let conf = self.client.config();
        f.debug_struct("AwsSecretsStore")
            .field("region", &conf.region().map(|r| r.as_ref().to_owned()))
            .field("token_precheck", &self.token_precheck)
            .field("dates_from_reads", &self.dates_from_reads)
            .field("pending_cleanup", &self.pending_cleanup)
            .finish_non_exhaustive()
    }
}

/// One version as listed.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub(crate) id: String,
    created_at: DateTime<Utc>,
    labels: Vec<String>,
}

impl Listed {
    fn has(&self, label: &str) -> bool {
        self.labels.iter().any(|l| l == label)
    }
    fn meta(&self) -> VersionMeta {
        meta(&self.id, &self.labels, self.created_at)
    }
}

pub(crate) fn stages_of(labels: &[String]) -> Stages {
    let has = |l: &str| labels.iter().any(|x| x == l);
    let current = has(AWSCURRENT);
    let previous = has(AWSPREVIOUS);
    // AWSPENDING left on a version that is (or was) current by a promotion
    // interrupted before its clean-up is not a candidate.
    Stages { current, previous, pending: has(AWSPENDING) && !current && !previous }
}

pub(crate) fn meta(id: &str, labels: &[String], created_at: DateTime<Utc>) -> VersionMeta {
    VersionMeta {
        id: VersionId::new(id),
        created_at,
        stages: stages_of(labels),
        rotation_id: RotationId::parse(id).ok(),
    }
}

fn to_chrono(dt: Option<&AwsDateTime>) -> DateTime<Utc> {
    dt.and_then(|d| DateTime::from_timestamp(d.secs(), d.subsec_nanos())).unwrap_or_else(Utc::now)
}

/// The `ClientRequestToken` of a write.
pub(crate) fn token_for(rotation: Option<RotationId>) -> String {
    match rotation {
        Some(r) => r.to_string(),
        None => format!("rekey-{}", uuid::Uuid::new_v4().simple()),
    }
}

/// Whether `id` can be a Secrets Manager version id at all.
pub(crate) fn plausible_version_id(id: &VersionId) -> bool {
    (MIN_VERSION_ID..=MAX_VERSION_ID).contains(&id.as_str().len())
}

pub(crate) fn current_of(versions: &[Listed]) -> Option<VersionId> {
    versions.iter().find(|v| v.has(AWSCURRENT)).map(|v| VersionId::new(&v.id))
}

fn labels(stages: &[String]) -> Vec<String> {
    stages.to_vec()
}

impl AwsSecretsStore {
    /// A store over an existing client (its region, endpoint, credentials,
    /// retries and interceptors are used as they are), plus a counter of
    /// the calls the store makes, by operation
    /// ([`request_counts`](SecretStore::request_counts)).
    pub fn new(client: Client) -> Self {
        let calls = ApiCallCounter::new();
        let client = Client::from_conf(client.config().to_builder().interceptor(calls.clone()).build());
        Self {
            client,
            calls,
            token_precheck: true,
            dates_from_reads: false,
            pending_cleanup: false,
            locks: SecretLocks::default(),
        }
    }

    /// A store over a client built from `config` (see [`AwsConfig`]).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), rekey_core::StoreError> {
    /// let cfg = rekey_aws::AwsConfig::default()
    ///     .with_region("us-east-1")
    ///     .with_endpoint_url("http://127.0.0.1:5000")
    ///     .with_static_credentials("test", "test");
    /// let store = rekey_aws::AwsSecretsStore::from_config(&cfg).await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn from_config(config: &AwsConfig) -> Result<Self, StoreError> {
        let sdk = config.sdk_config().await?;
        Ok(Self::new(Client::new(&sdk))
            .with_token_precheck(config.token_precheck.unwrap_or(true))
            .with_version_dates_from_reads(config.version_dates_from_reads.unwrap_or(false))
            .with_pending_cleanup(config.pending_cleanup.unwrap_or(false)))
    }

    /// Whether writes that carry a rotation id first list the secret's
    /// versions and return the version with that id if there is one (one
    /// `ListSecretVersionIds` more per `stage` and per `put` with a rotation
    /// id). On by default.
    ///
    /// Why: a retried write must return the version the first attempt made.
    /// Secrets Manager rejects a `ClientRequestToken` reused with a
    /// *different* value (`ResourceExistsException`), and without the
    /// pre-check this store turns that rejection into "return the existing
    /// version" — correct on AWS, at one call less. Emulators differ: moto
    /// 5.2 accepts the reused token and *overwrites* that version's value,
    /// so against moto (and any endpoint that has not been checked) keep the
    /// pre-check on. With it on, a `put(IfCurrent)` whose expected version is
    /// already stale also fails before writing anything.
    pub fn with_token_precheck(mut self, on: bool) -> Self {
        self.token_precheck = on;
        self
    }

    /// Whether [`list_versions`](SecretStore::list_versions) takes each
    /// version's creation time from `GetSecretValue` (one call per version)
    /// instead of from `ListSecretVersionIds`. Off by default: AWS reports
    /// the right time in the listing. For emulators: moto 5.2 reports the
    /// time of the *listing* as every version's `CreatedDate` there (its
    /// `GetSecretValue` is right), which would make the order and the ages
    /// of versions meaningless.
    pub fn with_version_dates_from_reads(mut self, on: bool) -> Self {
        self.dates_from_reads = on;
        self
    }

    /// Whether a rotation's promotion (`promote_rotation`) also takes
    /// `AWSPENDING` off the version it made current: one
    /// `UpdateSecretVersionStage` more per staged rotation (5 calls instead
    /// of the protocol's minimum of 4). Off by default.
    ///
    /// Off, `AWSPENDING` stays on the new `AWSCURRENT` version, as AWS's own
    /// rotation may leave it (the `RotateSecret` reference: "the AWSPENDING
    /// staging label might be attached to the same version as the
    /// AWSCURRENT version"): the store never reports it as pending,
    /// `RotateSecret` sees no rotation in progress, and the next stage moves
    /// it away. Turn it on for tools of your own that take any `AWSPENDING`
    /// for a rotation in flight. A failed clean-up is logged and does not
    /// fail the rotation (the candidate is current by then).
    pub fn with_pending_cleanup(mut self, on: bool) -> Self {
        self.pending_cleanup = on;
        self
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Every version of the secret, oldest first. `exact_dates`: read each
    /// version's creation time when the listing's cannot be trusted (see
    /// [`with_version_dates_from_reads`](Self::with_version_dates_from_reads));
    /// internal checks only look at ids and stages.
    pub(crate) async fn list_all(&self, path: &SecretPath, exact_dates: bool) -> Result<Vec<Listed>, StoreError> {
        let name = path.as_str();
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let res = self
                .client
                .list_secret_version_ids()
                .secret_id(name)
                .include_deprecated(true)
                .max_results(100)
                .set_next_token(next.take())
                .send()
                .await;
            let page = match res {
                Ok(page) => page,
                Err(e) => {
                    let failure = AwsFailure::from_sdk(e);
                    // moto answers ListSecretVersionIds on a missing secret
                    // with HTTP 500 (AWS: ResourceNotFoundException): ask
                    // DescribeSecret which it is before calling it transient.
                    if failure.is_unavailable() {
                        self.describe(path).await?;
                    }
                    return Err(failure.into_store_error(Ctx::new("ListSecretVersionIds", name)));
                }
            };
            for v in page.versions() {
                if let Some(id) = v.version_id() {
                    out.push(Listed {
                        id: id.to_owned(),
                        created_at: to_chrono(v.created_date()),
                        labels: labels(v.version_stages()),
                    });
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
        if exact_dates && self.dates_from_reads {
            for v in &mut out {
                let got = self
                    .client
                    .get_secret_value()
                    .secret_id(name)
                    .version_id(&v.id)
                    .send()
                    .await
                    .map_err(|e| map_sdk(e, Ctx::new("GetSecretValue", name)))?;
                v.created_at = to_chrono(got.created_date());
            }
        }
        // Stable: versions created in the same instant keep the service's order.
        out.sort_by_key(|v| v.created_at);
        Ok(out)
    }

    pub(crate) async fn describe(
        &self,
        path: &SecretPath,
    ) -> Result<aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput, StoreError> {
        self.client
            .describe_secret()
            .secret_id(path.as_str())
            .send()
            .await
            .map_err(|e| map_sdk(e, Ctx::new("DescribeSecret", path.as_str())))
    }

    /// The version a reused token names (after `ResourceExistsException`).
    async fn existing_version(&self, path: &SecretPath, token: &str) -> Result<VersionMeta, StoreError> {
        let versions = self.list_all(path, false).await?;
        versions.iter().find(|v| v.id == token).map(Listed::meta).ok_or_else(|| StoreError::Other {
            message: format!(
                "Secrets Manager refused token {token} on {path} as already used, but lists no version with that id"
            ),
            source: None,
        })
    }

    async fn create(
        &self,
        path: &SecretPath,
        value: &rekey_core::SecretString,
        token: &str,
        idempotent: bool,
    ) -> Result<VersionMeta, StoreError> {
        let name = path.as_str();
        let res = self
            .client
            .create_secret()
            .name(name)
            .secret_string(value.expose_secret())
            .client_request_token(token)
            .send()
            .await;
        match res {
            Ok(out) => {
                debug!(path = name, version = out.version_id().unwrap_or(token), "created secret");
                Ok(meta(out.version_id().unwrap_or(token), &[AWSCURRENT.to_owned()], Utc::now()))
            }
            Err(e) => {
                let failure = AwsFailure::from_sdk(e);
                if failure.is_already_exists() && idempotent {
                    // A retried create: the first attempt's version has this id.
                    let versions = self.list_all(path, false).await?;
                    if let Some(v) = versions.iter().find(|v| v.id == token) {
                        return Ok(v.meta());
                    }
                }
                Err(failure.into_store_error(Ctx::new("CreateSecret", name)))
            }
        }
    }

    /// `PutSecretValue` with explicit stages (`None`: the service default,
    /// `AWSCURRENT`). A reused token is answered with the existing version.
    pub(crate) async fn put_value(
        &self,
        path: &SecretPath,
        value: &rekey_core::SecretString,
        token: &str,
        stages: Option<&str>,
    ) -> Result<VersionMeta, StoreError> {
        let name = path.as_str();
        let mut req = self
            .client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value.expose_secret())
            .client_request_token(token);
        if let Some(stage) = stages {
            req = req.version_stages(stage);
        }
        match req.send().await {
            Ok(out) => {
                let id = out.version_id().unwrap_or(token);
                debug!(path = name, version = id, stages = ?out.version_stages(), "put secret value");
                let mut labels = labels(out.version_stages());
                if labels.is_empty() {
                    labels.push(stages.unwrap_or(AWSCURRENT).to_owned());
                }
                Ok(meta(id, &labels, Utc::now()))
            }
            Err(e) => {
                let failure = AwsFailure::from_sdk(e);
                if failure.is_already_exists() {
                    // The token was used before with another value (AWS
                    // refuses to change a version): the first write wins.
                    return self.existing_version(path, token).await;
                }
                Err(failure.into_store_error(Ctx::new("PutSecretValue", name)))
            }
        }
    }

    /// `UpdateSecretVersionStage(AWSCURRENT, MoveToVersionId=version,
    /// RemoveFromVersionId=expected)`. On refusal, lists the versions to
    /// explain it: a lost race is `Conflict`.
    pub(crate) async fn move_current(
        &self,
        path: &SecretPath,
        version: &VersionId,
        expected: &VersionId,
        done_if_already_current: bool,
    ) -> Result<(), StoreError> {
        let name = path.as_str();
        let res = self
            .client
            .update_secret_version_stage()
            .secret_id(name)
            .version_stage(AWSCURRENT)
            .move_to_version_id(version.as_str())
            .remove_from_version_id(expected.as_str())
            .send()
            .await;
        let failure = match res {
            Ok(_) => {
                debug!(path = name, version = %version, previous = %expected, "moved AWSCURRENT");
                return Ok(());
            }
            Err(e) => AwsFailure::from_sdk(e),
        };
        if !failure.is_invalid_request() {
            return Err(failure.into_store_error(Ctx::new("UpdateSecretVersionStage", name)));
        }
        let versions = self.list_all(path, false).await?;
        if !versions.iter().any(|v| v.id == version.as_str()) {
            return Err(StoreError::not_found(name, Some(format!("version {version}"))));
        }
        let actual = current_of(&versions);
        if done_if_already_current && actual.as_ref() == Some(version) {
            return Ok(());
        }
        if actual.as_ref() != Some(expected) {
            debug!(path = name, expected = %expected, actual = ?actual, "compare-and-swap lost");
            return Err(StoreError::Conflict { path: name.to_owned(), expected: Some(expected.clone()), actual });
        }
        Err(failure.into_store_error(Ctx::new("UpdateSecretVersionStage", name)))
    }

    /// Removes `label` from `version`. `Ok(false)` when it was not there.
    pub(crate) async fn remove_label(&self, path: &SecretPath, label: &str, version: &str) -> Result<bool, StoreError> {
        let name = path.as_str();
        let res = self
            .client
            .update_secret_version_stage()
            .secret_id(name)
            .version_stage(label)
            .remove_from_version_id(version)
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) => {
                let failure = AwsFailure::from_sdk(e);
                if failure.is_invalid_request() {
                    Ok(false)
                } else {
                    Err(failure.into_store_error(Ctx::new("UpdateSecretVersionStage", name)))
                }
            }
        }
    }

    /// Attaches `label` to `version` (which must not be attached elsewhere).
    async fn add_label(&self, path: &SecretPath, label: &str, version: &str) -> Result<(), StoreError> {
        let name = path.as_str();
        self.client
            .update_secret_version_stage()
            .secret_id(name)
            .version_stage(label)
            .move_to_version_id(version)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk(e, Ctx::new("UpdateSecretVersionStage", name)))
    }

    pub(crate) async fn put_if_current(
        &self,
        path: &SecretPath,
        value: &rekey_core::SecretString,
        rotation: Option<RotationId>,
        expected: VersionId,
    ) -> Result<VersionMeta, StoreError> {
        let token = token_for(rotation);
        if self.token_precheck {
            let versions = self.list_all(path, false).await?;
            if rotation.is_some()
                && let Some(v) = versions.iter().find(|v| v.id == token)
            {
                return Ok(v.meta());
            }
            let actual = current_of(&versions);
            if actual.as_ref() != Some(&expected) {
                return Err(StoreError::Conflict { path: path.as_str().to_owned(), expected: Some(expected), actual });
            }
        }
        // The new version, written without touching AWSCURRENT ...
        let written = self.put_value(path, value, &token, Some(REKEY_WRITING)).await?;
        if written.stages.current {
            // A retried write whose first attempt completed.
            return Ok(written);
        }
        // ... becomes current only if `expected` still is.
        self.move_current(path, &written.id, &expected, true).await?;
        Ok(VersionMeta { stages: Stages { current: true, previous: false, pending: false }, ..written })
    }
}

#[async_trait]
impl SecretStore for AwsSecretsStore {
    fn request_counts(&self) -> rekey_core::RequestCounts {
        self.calls.by_operation().into_iter().collect()
    }

    // The calls a rotation makes, natively: see `rotation.rs`.

    async fn snapshot(&self, path: &SecretPath, with_value: bool) -> Result<rekey_core::Snapshot, StoreError> {
        self.rotation_snapshot(path, with_value).await
    }

    async fn stage_rotation(
        &self,
        path: &SecretPath,
        data: SecretData,
        req: rekey_core::StageRequest,
    ) -> Result<rekey_core::StageOutcome, StoreError> {
        self.rotation_stage(path, data, req).await
    }

    async fn promote_rotation(
        &self,
        path: &SecretPath,
        req: rekey_core::PromoteRequest<'_>,
    ) -> Result<VersionMeta, StoreError> {
        self.rotation_promote(path, req).await
    }

    async fn put_rotation(
        &self,
        path: &SecretPath,
        data: SecretData,
        opts: PutOptions,
        record: &rekey_core::RecordWrite,
    ) -> Result<VersionMeta, StoreError> {
        self.rotation_put(path, data, opts, record).await
    }

    async fn put(&self, path: &SecretPath, data: SecretData, opts: PutOptions) -> Result<VersionMeta, StoreError> {
        let value = encode_value(&data)?;
        let rotation = opts.rotation_id;
        let _guard = self.locks.lock(path.as_str()).await;
        match opts.mode {
            PutMode::Create => self.create(path, &value, &token_for(rotation), rotation.is_some()).await,
            PutMode::IfCurrent(expected) => self.put_if_current(path, &value, rotation, expected).await,
            PutMode::Overwrite => {
                let token = token_for(rotation);
                if rotation.is_some() && self.token_precheck {
                    match self.list_all(path, false).await {
                        Ok(versions) => {
                            if let Some(v) = versions.iter().find(|v| v.id == token) {
                                return Ok(v.meta());
                            }
                        }
                        Err(StoreError::NotFound { .. }) => return self.create(path, &value, &token, true).await,
                        Err(e) => return Err(e),
                    }
                }
                match self.put_value(path, &value, &token, None).await {
                    Err(StoreError::NotFound { .. }) => self.create(path, &value, &token, rotation.is_some()).await,
                    other => other,
                }
            }
        }
    }

    async fn read(&self, path: &SecretPath, selector: &VersionSelector) -> Result<SecretVersion, StoreError> {
        let name = path.as_str();
        let req = self.client.get_secret_value().secret_id(name);
        let (req, what) = match selector {
            VersionSelector::Current => (req.version_stage(AWSCURRENT), "current version".to_owned()),
            VersionSelector::Previous => (req.version_stage(AWSPREVIOUS), "previous version".to_owned()),
            VersionSelector::Pending => (req.version_stage(AWSPENDING), "pending version".to_owned()),
            VersionSelector::Id(id) => {
                if !plausible_version_id(id) {
                    return Err(StoreError::not_found(name, Some(format!("version {id}"))));
                }
                (req.version_id(id.as_str()), format!("version {id}"))
            }
        };
        let out = req.send().await.map_err(|e| map_sdk(e, Ctx::new("GetSecretValue", name).missing(&what)))?;
        let Some(id) = out.version_id().map(str::to_owned) else {
            return Err(StoreError::Other { message: format!("GetSecretValue on {name}: no VersionId"), source: None });
        };
        let m = meta(&id, out.version_stages(), to_chrono(out.created_date()));
        if *selector == VersionSelector::Pending && !m.stages.pending {
            // AWSPENDING left on the current/previous version by an
            // interrupted promotion: not a candidate.
            return Err(StoreError::not_found(name, Some(what)));
        }
        let data = if let Some(text) = out.secret_string {
            decode_value(text)
        } else if let Some(blob) = out.secret_binary {
            match String::from_utf8(blob.into_inner()) {
                Ok(text) => SecretData::text(text),
                Err(_) => {
                    return Err(StoreError::NotSupported {
                        message: format!("{name} holds a binary value that is not UTF-8 text"),
                    });
                }
            }
        } else {
            return Err(StoreError::Other { message: format!("GetSecretValue on {name}: no value"), source: None });
        };
        Ok(SecretVersion { meta: m, data })
    }

    async fn stage(
        &self,
        path: &SecretPath,
        data: SecretData,
        rotation_id: RotationId,
    ) -> Result<VersionMeta, StoreError> {
        let value = encode_value(&data)?;
        let token = token_for(Some(rotation_id));
        let _guard = self.locks.lock(path.as_str()).await;
        if self.token_precheck {
            let versions = self.list_all(path, false).await?;
            if let Some(v) = versions.iter().find(|v| v.id == token) {
                return Ok(v.meta());
            }
        }
        // AWSPENDING moves here from any older candidate.
        self.put_value(path, &value, &token, Some(AWSPENDING)).await
    }

    async fn promote(
        &self,
        path: &SecretPath,
        version: &VersionId,
        expected_current: &VersionId,
    ) -> Result<VersionMeta, StoreError> {
        let name = path.as_str();
        if !plausible_version_id(version) {
            return Err(StoreError::not_found(name, Some(format!("version {version}"))));
        }
        let promoted = |version: &VersionId| VersionMeta {
            id: version.clone(),
            created_at: Utc::now(),
            stages: Stages { current: true, previous: false, pending: false },
            rotation_id: RotationId::parse(version.as_str()).ok(),
        };
        let _guard = self.locks.lock(name).await;
        if version == expected_current {
            // Nothing moves; moving AWSCURRENT onto the version that holds it
            // would take AWSPREVIOUS away on some servers (moto).
            let versions = self.list_all(path, false).await?;
            let Some(v) = versions.iter().find(|v| v.id == version.as_str()) else {
                return Err(StoreError::not_found(name, Some(format!("version {version}"))));
            };
            if !v.has(AWSCURRENT) {
                let actual = current_of(&versions);
                return Err(StoreError::Conflict {
                    path: name.to_owned(),
                    expected: Some(expected_current.clone()),
                    actual,
                });
            }
            return Ok(v.meta());
        }
        // 1. Take AWSPENDING off the version. This is the clean-up the
        //    contract asks for (nothing pending after promoting a candidate),
        //    done first because it also proves that the version exists before
        //    AWSCURRENT moves: moto removes AWSCURRENT from
        //    RemoveFromVersionId *before* checking MoveToVersionId, so moving
        //    onto a version that does not exist would leave it with no
        //    current version at all (AWS checks first and changes nothing).
        //    A crash after this step leaves the candidate unlabelled, never a
        //    stuck AWSPENDING.
        let was_pending = self.remove_label(path, AWSPENDING, version.as_str()).await?;
        if !was_pending {
            // Not a candidate (a rollback, or a lost race): check the version
            // and the expected current one before moving anything.
            let versions = self.list_all(path, false).await?;
            if !versions.iter().any(|v| v.id == version.as_str()) {
                return Err(StoreError::not_found(name, Some(format!("version {version}"))));
            }
            let actual = current_of(&versions);
            if actual.as_ref() != Some(expected_current) {
                return Err(StoreError::Conflict {
                    path: name.to_owned(),
                    expected: Some(expected_current.clone()),
                    actual,
                });
            }
        }
        // 2. The compare-and-swap.
        match self.move_current(path, version, expected_current, false).await {
            Ok(()) => Ok(promoted(version)),
            Err(e) => {
                if was_pending {
                    // Lost: put the candidate back as it was.
                    if let Err(restore) = self.add_label(path, AWSPENDING, version.as_str()).await {
                        warn!(path = name, version = %version, error = %restore,
                            "could not restore AWSPENDING on the candidate after a failed promotion");
                    }
                }
                Err(e)
            }
        }
    }

    async fn discard(&self, path: &SecretPath, version: &VersionId) -> Result<(), StoreError> {
        let _guard = self.locks.lock(path.as_str()).await;
        let versions = self.list_all(path, false).await?;
        let Some(v) = versions.iter().find(|v| v.id == version.as_str()) else {
            return Ok(());
        };
        if v.has(AWSCURRENT) {
            return Err(StoreError::invalid(format!(
                "version {version} of {path} is current; only a pending candidate can be discarded"
            )));
        }
        if v.has(AWSPENDING) {
            self.remove_label(path, AWSPENDING, version.as_str()).await?;
            debug!(path = path.as_str(), version = %version, "discarded candidate");
        }
        Ok(())
    }

    async fn list_versions(&self, path: &SecretPath) -> Result<Vec<VersionMeta>, StoreError> {
        Ok(self.list_all(path, true).await?.iter().map(Listed::meta).collect())
    }

    async fn read_metadata(&self, path: &SecretPath) -> Result<Metadata, StoreError> {
        Ok(metadata_from_tags(self.describe(path).await?.tags()))
    }

    async fn write_metadata(&self, path: &SecretPath, metadata: Metadata) -> Result<(), StoreError> {
        // The contract's limits first (the same on every store), then AWS's
        // own once the values are encoded as tags.
        rekey_core::check_metadata(&metadata)?;
        let name = path.as_str();
        let mut wanted = Vec::with_capacity(metadata.len());
        for (k, v) in &metadata {
            check_metadata_key(k)?;
            wanted.push((k.as_str(), encode_tag_value(k, v)?));
        }
        let out = self.describe(path).await?;
        let existing: Vec<(&str, &str)> =
            out.tags().iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or("")))).collect();
        let foreign = existing.iter().filter(|(k, _)| !k.starts_with(METADATA_PREFIX)).count();
        if foreign + wanted.len() > MAX_TAGS {
            return Err(StoreError::invalid(format!(
                "{} metadata entries and {foreign} other tags exceed AWS's {MAX_TAGS} tags per secret",
                wanted.len()
            )));
        }
        let remove: Vec<String> = existing
            .iter()
            .filter(|(k, _)| k.starts_with(METADATA_PREFIX) && !metadata.contains_key(*k))
            .map(|(k, _)| (*k).to_owned())
            .collect();
        let set: Vec<Tag> = wanted
            .iter()
            .filter(|(k, v)| !existing.iter().any(|(ek, ev)| ek == k && ev == v))
            .map(|(k, v)| Tag::builder().key(*k).value(v).build())
            .collect();
        if !remove.is_empty() {
            self.client
                .untag_resource()
                .secret_id(name)
                .set_tag_keys(Some(remove))
                .send()
                .await
                .map_err(|e| map_sdk(e, Ctx::new("UntagResource", name)))?;
        }
        if !set.is_empty() {
            self.client
                .tag_resource()
                .secret_id(name)
                .set_tags(Some(set))
                .send()
                .await
                .map_err(|e| map_sdk(e, Ctx::new("TagResource", name)))?;
        }
        Ok(())
    }

    /// `TagResource` for the keys set, `UntagResource` for the keys removed
    /// (one call each, only when needed); other tags are left alone.
    async fn update_metadata(&self, path: &SecretPath, patch: MetadataPatch) -> Result<(), StoreError> {
        rekey_core::check_metadata_patch(&patch)?;
        let name = path.as_str();
        let mut set = Vec::new();
        for (k, v) in patch.sets() {
            check_metadata_key(k)?;
            set.push(Tag::builder().key(k).value(encode_tag_value(k, v)?).build());
        }
        let mut remove = Vec::new();
        for k in patch.removals() {
            check_metadata_key(k)?;
            remove.push(k.to_owned());
        }
        if set.is_empty() && remove.is_empty() {
            return self.describe(path).await.map(|_| ());
        }
        if !set.is_empty() {
            self.client
                .tag_resource()
                .secret_id(name)
                .set_tags(Some(set))
                .send()
                .await
                .map_err(|e| map_sdk(e, Ctx::new("TagResource", name)))?;
        }
        if !remove.is_empty() {
            self.client
                .untag_resource()
                .secret_id(name)
                .set_tag_keys(Some(remove))
                .send()
                .await
                .map_err(|e| map_sdk(e, Ctx::new("UntagResource", name)))?;
        }
        Ok(())
    }

    async fn delete(&self, path: &SecretPath) -> Result<(), StoreError> {
        let name = path.as_str();
        // moto answers DeleteSecret on a missing secret with success (AWS:
        // ResourceNotFoundException); DescribeSecret makes both NotFound.
        self.describe(path).await?;
        self.client
            .delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(true)
            .send()
            .await
            .map_err(|e| map_sdk(e, Ctx::new("DeleteSecret", name)))?;
        debug!(path = name, "deleted secret without recovery window");
        Ok(())
    }
}
