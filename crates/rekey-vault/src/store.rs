//! [`VaultStore`]: the store contract on KV version 2.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use rekey_core::{
    Metadata, MetadataPatch, PutOptions, RecordWrite, RotationId, SecretData, SecretPath, SecretStore, SecretVersion,
    StageOutcome, StageRequest, Staged, Stages, StoreError, VersionId, VersionMeta, VersionSelector,
};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use url::Url;
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretRequest, SetSecretRequestOptions};
use vaultrs::api::kv2::responses::{ReadSecretMetadataResponse, ReadSecretResponse, SecretVersionMetadata};
use vaultrs::client::{VaultClient, VaultClientSettings};

use crate::codec::{self, Id, KvBody};
use crate::config::{VaultAuth, VaultConfig, check_header_value, token_from_env};
use crate::error::{Failure, to_store_error};

mod snapshot;

/// Vault's limit on `custom_metadata` entries per secret.
pub const MAX_CUSTOM_METADATA_KEYS: usize = 64;
/// Vault's limit on the length of a `custom_metadata` key, in bytes.
pub const MAX_CUSTOM_METADATA_KEY_BYTES: usize = 128;
/// Vault's limit on the length of a `custom_metadata` value, in bytes.
pub const MAX_CUSTOM_METADATA_VALUE_BYTES: usize = 512;

/// The prefix of the metadata keys rekey reads and writes.
const REKEY_PREFIX: &str = "rekey.";

/// A [`SecretStore`] on a HashiCorp Vault or OpenBao KV version 2 mount.
///
/// See the [crate docs](crate) for how the contract maps onto KV v2.
/// `Debug` shows the address, mount and auth method, never a token.
///
/// The HTTP requests a [`VaultStore`] counts, by name (the `op` label of
/// `rekey_store_requests_total`): KV v2 data reads and writes, metadata
/// reads, PATCHes, POSTs and deletes, token lookups after a 403, logins.
pub const REQUEST_OPS: [&str; 8] = [
    "kv_read",
    "kv_write",
    "metadata_read",
    "metadata_patch",
    "metadata_post",
    "metadata_delete",
    "token_lookup",
    "login",
];

/// Index into [`REQUEST_OPS`].
#[derive(Clone, Copy)]
enum Op {
    KvRead,
    KvWrite,
    MetadataRead,
    MetadataPatch,
    MetadataPost,
    MetadataDelete,
    TokenLookup,
    Login,
}

/// Cloning is cheap and clones share the connection and the request counter.
#[derive(Clone)]
pub struct VaultStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: RwLock<Arc<VaultClient>>,
    base: Url,
    mount: String,
    staging_prefix: String,
    namespace: Option<String>,
    auth: VaultAuth,
    settings: VaultClientSettings,
    /// HTTP requests sent, by operation ([`REQUEST_OPS`]).
    requests: [AtomicU64; REQUEST_OPS.len()],
    /// The server refused a metadata PATCH once: use read + POST.
    patch_refused: AtomicBool,
}

impl fmt::Debug for VaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("VaultStore")
            .field("address", &i.base.as_str())
            .field("mount", &i.mount)
            .field("namespace", &i.namespace)
            .field("auth", &i.auth.method())
            .field("staging_prefix", &i.staging_prefix)
            .field("requests_sent", &self.requests_sent())
            .finish_non_exhaustive()
    }
}

impl VaultStore {
    /// Checks the settings, builds the HTTP client and, for AppRole, logs in.
    ///
    /// Errors: [`StoreError::InvalidInput`] for bad settings,
    /// [`StoreError::Unauthenticated`] when no token is available or the
    /// login is refused, [`StoreError::Unavailable`] when the server cannot
    /// be reached for the login. A token is not checked until first use.
    ///
    /// ```no_run
    /// use rekey_core::{SecretData, SecretPath, SecretStoreExt};
    /// use rekey_vault::{VaultAuth, VaultConfig, VaultStore};
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let token = std::env::var("VAULT_TOKEN")?.into();
    /// let store = VaultStore::connect(VaultConfig::new("https://vault.example.com:8200", VaultAuth::Token(token))).await?;
    /// let path: SecretPath = "apps/billing/db".parse()?;
    /// store.create(&path, SecretData::fields([("username", "billing"), ("password", "initial")])).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(config: VaultConfig) -> Result<Self, StoreError> {
        let v = config.validate()?;
        let token = match &config.auth {
            VaultAuth::Token(t) => t.expose_secret().to_owned(),
            VaultAuth::TokenFromEnv => token_from_env()?.expose_secret().to_owned(),
            VaultAuth::AppRole { .. } => String::new(),
        };
        if !matches!(config.auth, VaultAuth::AppRole { .. }) {
            if token.is_empty() {
                return Err(StoreError::Unauthenticated { message: "the token is empty".to_owned() });
            }
            check_header_value(&token, "token")?;
        }
        let settings = VaultClientSettings {
            address: v.url.clone(),
            ca_certs: config.ca_cert.iter().map(|p| p.to_string_lossy().into_owned()).collect(),
            identity: None,
            timeout: Some(config.request_timeout),
            token,
            verify: true,
            version: 1,
            wrapping: false,
            namespace: config.namespace.clone(),
            proxy: None,
        };
        let client = VaultClient::new(settings.clone()).map_err(|e| to_store_error(&e.into(), None))?;
        let inner = Inner {
            client: RwLock::new(Arc::new(client)),
            base: v.url,
            mount: v.mount,
            staging_prefix: v.staging_prefix,
            namespace: config.namespace,
            auth: config.auth,
            settings: VaultClientSettings { token: String::new(), ..settings },
            requests: Default::default(),
            patch_refused: AtomicBool::new(false),
        };
        let store = Self { inner: Arc::new(inner) };
        if matches!(store.inner.auth, VaultAuth::AppRole { .. }) {
            store.login().await?;
        }
        Ok(store)
    }

    /// How many HTTP requests this store (and its clones) has sent: each
    /// store operation costs a known number (see the crate docs), which this
    /// counter lets tests and benchmarks check.
    pub fn requests_sent(&self) -> u64 {
        self.inner.requests.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// HTTP requests sent so far by this store and its clones, by
    /// operation ([`REQUEST_OPS`]); what [`SecretStore::request_counts`]
    /// reports.
    pub fn requests_by_operation(&self) -> rekey_core::RequestCounts {
        REQUEST_OPS.iter().zip(&self.inner.requests).map(|(op, c)| (*op, c.load(Ordering::Relaxed))).collect()
    }

    /// The KV mount this store uses.
    pub fn mount(&self) -> &str {
        &self.inner.mount
    }

    /// Where, inside the mount, the staged candidate of `path` lives
    /// (`<staging_prefix>/<path>`); its KV API path is
    /// `<mount>/data/<staging_prefix>/<path>`.
    pub fn staging_location(&self, path: &SecretPath) -> String {
        format!("{}/{}", self.inner.staging_prefix, path.as_str())
    }

    fn client(&self) -> Arc<VaultClient> {
        match self.inner.client.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn count(&self, op: Op) {
        self.inner.requests[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A client with `settings` (another token) on the store's own HTTP
    /// connection pool: a login opens no new connections and sets up no new
    /// TLS sessions.
    fn sharing_pool(&self, settings: VaultClientSettings) -> Result<VaultClient, StoreError> {
        let mut client = VaultClient::new(settings).map_err(|e| to_store_error(&e.into(), None))?;
        client.http.http = self.client().http.http.clone();
        Ok(client)
    }

    /// AppRole login; installs the new token.
    async fn login(&self) -> Result<(), StoreError> {
        let VaultAuth::AppRole { role_id, secret_id, mount } = &self.inner.auth else { return Ok(()) };
        let anon = self.sharing_pool(self.inner.settings.clone())?;
        self.count(Op::Login);
        let auth = vaultrs::auth::approle::login(&anon, mount.trim_matches('/'), role_id, secret_id.expose_secret())
            .await
            .map_err(|e| match Failure::from(e) {
                f @ Failure::Api { code: 400 | 401 | 403, .. } => StoreError::Unauthenticated {
                    message: format!("AppRole login refused: {}", to_store_error(&f, None)),
                },
                f => to_store_error(&f, None),
            })?;
        check_header_value(&auth.client_token, "token from the AppRole login")?;
        let settings = VaultClientSettings { token: auth.client_token, ..self.inner.settings.clone() };
        let client = self.sharing_pool(settings)?;
        match self.inner.client.write() {
            Ok(mut g) => *g = Arc::new(client),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(client),
        }
        Ok(())
    }

    /// Runs one request. After a 403, asks `lookup-self` whether the token
    /// itself is rejected; if so, logs in again (AppRole) and retries once,
    /// or reports `Unauthenticated`.
    async fn call<T, F, Fut>(&self, op: Op, path: &str, f: F) -> Result<T, Failure>
    where
        F: Fn(Arc<VaultClient>) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let client = self.client();
        self.count(op);
        let failure = match f(client.clone()).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if !failure.is_status(403) {
            return Err(failure);
        }
        self.count(Op::TokenLookup);
        match vaultrs::token::lookup_self(&*client).await.map_err(Failure::from) {
            Err(f) if f.is_status(403) => {}
            _ => return Err(failure),
        }
        if !matches!(self.inner.auth, VaultAuth::AppRole { .. }) {
            return Err(Failure::Api {
                code: 401,
                errors: vec![format!("the token was rejected while accessing {path}")],
            });
        }
        if self.login().await.is_err() {
            return Err(Failure::Api {
                code: 401,
                errors: vec!["the AppRole token expired and the login failed".into()],
            });
        }
        self.count(op);
        f(self.client()).await
    }

    pub(crate) fn err(&self, f: &Failure, path: &str) -> StoreError {
        to_store_error(f, Some(path))
    }

    // ---- raw KV v2 calls (one HTTP request each) ----

    pub(crate) async fn kv_read(&self, kv_path: &str, version: Option<u64>) -> Result<ReadSecretResponse, Failure> {
        let mount = self.inner.mount.as_str();
        self.call(Op::KvRead, kv_path, |c| async move {
            let req = ReadSecretRequest::builder()
                .mount(mount)
                .path(kv_path)
                .version(version)
                .build()
                .map_err(|e| Failure::Local(e.to_string()))?;
            vaultrs::api::exec_with_result(&*c, req).await.map_err(Failure::from)
        })
        .await
    }

    pub(crate) async fn kv_write(
        &self,
        kv_path: &str,
        body: &KvBody,
        cas: Option<u64>,
    ) -> Result<SecretVersionMetadata, Failure> {
        let mount = self.inner.mount.as_str();
        let cas = match cas {
            None => None,
            Some(n) => Some(u32::try_from(n).map_err(|_| Failure::Local(format!("version {n} is out of range")))?),
        };
        self.call(Op::KvWrite, kv_path, |c| async move {
            let mut b = SetSecretRequest::builder();
            b.mount(mount).path(kv_path).data(body.0.clone());
            if let Some(cas) = cas {
                b.options(SetSecretRequestOptions { cas });
            }
            // `body.0.clone()` above is a plaintext copy inside the request,
            // dropped (not wiped) by vaultrs after sending.
            let req = b.build().map_err(|e| Failure::Local(e.to_string()))?;
            vaultrs::api::exec_with_result(&*c, req).await.map_err(Failure::from)
        })
        .await
    }

    pub(crate) async fn kv_metadata(&self, kv_path: &str) -> Result<ReadSecretMetadataResponse, Failure> {
        let mount = self.inner.mount.as_str();
        self.call(Op::MetadataRead, kv_path, |c| async move {
            vaultrs::kv2::read_metadata(&*c, mount, kv_path).await.map_err(Failure::from)
        })
        .await
    }

    /// Deletes the metadata and every version (data destroyed) of a path.
    pub(crate) async fn kv_destroy_all(&self, kv_path: &str) -> Result<(), Failure> {
        let mount = self.inner.mount.as_str();
        self.call(Op::MetadataDelete, kv_path, |c| async move {
            vaultrs::kv2::delete_metadata(&*c, mount, kv_path).await.map_err(Failure::from)
        })
        .await
    }

    /// Sends `body` to `<mount>/metadata/<path>` with `method` (vaultrs 0.8
    /// has no PATCH, and its metadata POST would send every option).
    async fn kv_send_metadata(
        &self,
        kv_path: &str,
        method: reqwest::Method,
        content_type: &'static str,
        body: &Value,
    ) -> Result<(), Failure> {
        let url = self.api_url("metadata", kv_path)?;
        let body = serde_json::to_vec(body).map_err(|e| Failure::Local(e.to_string()))?;
        let namespace = self.inner.namespace.as_deref();
        self.call(if method == reqwest::Method::PATCH { Op::MetadataPatch } else { Op::MetadataPost }, kv_path, |c| {
            let req = vault_request(&c, method.clone(), url.clone(), namespace)
                .header("Content-Type", content_type)
                .body(body.clone());
            async move {
                let resp = req.send().await.map_err(Failure::from)?;
                let code = resp.status().as_u16();
                if (200..300).contains(&code) {
                    return Ok(());
                }
                let errors = resp
                    .bytes()
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice::<ApiErrors>(&b).ok())
                    .map(|e| e.errors)
                    .unwrap_or_default();
                Err(Failure::Api { code, errors })
            }
        })
        .await
    }

    /// Sets (string) or removes (null) the named `custom_metadata` keys of a
    /// path, leaving every other key alone.
    ///
    /// A JSON merge patch (one request) changes only the keys named, so
    /// concurrent writers of other keys are not overwritten; it needs the
    /// `patch` capability. When the server refuses the PATCH (403: a policy
    /// written without `patch`; 405: a server without it), the store reads
    /// the metadata and POSTs the whole merged map instead (two requests,
    /// `read` + `update`), and uses that way from then on.
    async fn update_custom_metadata(&self, kv_path: &str, changes: Map<String, Value>) -> Result<(), Failure> {
        if !self.inner.patch_refused.load(Ordering::Relaxed) {
            let body = Value::Object(Map::from_iter([("custom_metadata".to_owned(), Value::Object(changes.clone()))]));
            match self.kv_send_metadata(kv_path, reqwest::Method::PATCH, "application/merge-patch+json", &body).await {
                Err(f) if f.is_status(403) || f.is_status(405) => {
                    self.inner.patch_refused.store(true, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        let mut merged: Map<String, Value> = self
            .kv_metadata(kv_path)
            .await?
            .custom_metadata
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        for (k, v) in changes {
            match v {
                Value::Null => merged.remove(&k),
                v => merged.insert(k, v),
            };
        }
        let body = Value::Object(Map::from_iter([("custom_metadata".to_owned(), Value::Object(merged))]));
        self.kv_send_metadata(kv_path, reqwest::Method::POST, "application/json", &body).await
    }

    // ---- helpers built on them ----

    pub(crate) fn staging(&self, path: &SecretPath) -> Result<String, StoreError> {
        let p = path.as_str();
        let prefix = &self.inner.staging_prefix;
        if p == prefix || p.strip_prefix(prefix.as_str()).is_some_and(|rest| rest.starts_with('/')) {
            return Err(StoreError::invalid(format!(
                "{p} is inside the staging folder `{prefix}`, which this store reserves for staged candidates"
            )));
        }
        Ok(self.staging_location(path))
    }

    /// The main path's metadata; `NotFound` if the secret does not exist.
    pub(crate) async fn metadata_of(&self, path: &SecretPath) -> Result<ReadSecretMetadataResponse, StoreError> {
        self.staging(path)?;
        let md = self.kv_metadata(path.as_str()).await.map_err(|f| self.err(&f, path.as_str()))?;
        if md.current_version == 0 {
            return Err(StoreError::not_found(path.as_str(), None));
        }
        Ok(md)
    }

    /// The staged candidate, `None` when nothing is staged.
    pub(crate) async fn read_staged(
        &self,
        path: &SecretPath,
    ) -> Result<Option<(codec::Staged, SecretVersionMetadata)>, StoreError> {
        let loc = self.staging(path)?;
        match self.kv_read(&loc, None).await {
            Ok(r) => {
                if r.metadata.destroyed || codec::deleted(&r.metadata.deletion_time) {
                    return Ok(None);
                }
                Ok(Some((codec::parse_envelope(r.data, path.as_str())?, r.metadata)))
            }
            Err(f) if f.is_status(404) => Ok(None),
            Err(f) => Err(self.err(&f, path.as_str())),
        }
    }

    /// Records that `rotation` wrote version `n` (best effort: the write it
    /// describes already happened, so a failure here is logged, not
    /// returned; the only loss is that a retry of that write is then
    /// reported as a conflict instead of recognised).
    pub(crate) async fn record(
        &self,
        path: &SecretPath,
        written: &SecretVersionMetadata,
        rotation: RotationId,
        extra: Option<&RecordWrite>,
    ) -> Result<(), StoreError> {
        let mut changes = codec::record_patch(written.custom_metadata.as_ref(), written.version, rotation);
        if let Some(extra) = extra {
            // The rotation's own record rides on the same PATCH.
            for (k, v) in extra.all(&codec::kv_id(written.version)).iter() {
                changes.insert(k.to_owned(), v.map_or(Value::Null, |v| Value::String(v.to_owned())));
            }
        }
        match self.update_custom_metadata(path.as_str(), changes).await {
            Ok(()) => Ok(()),
            Err(f) if extra.is_some() => Err(self.err(&f, path.as_str())),
            Err(f) => {
                tracing::warn!(
                    path = path.as_str(),
                    version = written.version,
                    error = %self.err(&f, path.as_str()),
                    "could not record the rotation id of a version; a retry of this write will be reported as a conflict"
                );
                Ok(())
            }
        }
    }

    /// After a failed compare-and-swap on the main path: the `Conflict`, or
    /// `NotFound` if the secret is gone.
    pub(crate) async fn conflict(&self, path: &SecretPath, expected: Option<u64>) -> StoreError {
        match self.kv_metadata(path.as_str()).await {
            Ok(md) if md.current_version > 0 => StoreError::Conflict {
                path: path.as_str().to_owned(),
                expected: expected.map(codec::kv_id),
                actual: Some(codec::kv_id(md.current_version)),
            },
            Ok(_) => StoreError::not_found(path.as_str(), None),
            Err(f) if f.is_status(404) => match expected {
                Some(_) => StoreError::not_found(path.as_str(), None),
                None => StoreError::Conflict { path: path.as_str().to_owned(), expected: None, actual: None },
            },
            Err(f) => self.err(&f, path.as_str()),
        }
    }
}

#[derive(serde::Deserialize)]
struct ApiErrors {
    errors: Vec<String>,
}

/// The live versions (not deleted, not destroyed), oldest first.
pub(crate) fn live_versions(md: &ReadSecretMetadataResponse) -> Vec<(u64, &str)> {
    let mut v: Vec<(u64, &str)> = md
        .versions
        .iter()
        .filter(|(_, m)| !m.destroyed && !codec::deleted(&m.deletion_time))
        .filter_map(|(k, m)| Some((k.parse::<u64>().ok()?, m.created_time.as_str())))
        .collect();
    v.sort_unstable_by_key(|(n, _)| *n);
    v
}

/// The previous version: the newest live version older than the current one.
fn previous_of(md: &ReadSecretMetadataResponse) -> Option<u64> {
    live_versions(md).into_iter().map(|(n, _)| n).filter(|n| *n < md.current_version).max()
}

pub(crate) fn meta_from_md(md: &ReadSecretMetadataResponse, n: u64) -> Result<VersionMeta, StoreError> {
    let created = md.versions.get(&n.to_string()).map(|m| m.created_time.as_str()).unwrap_or("");
    Ok(VersionMeta {
        id: codec::kv_id(n),
        created_at: codec::time(created)?,
        stages: Stages { current: n == md.current_version, previous: Some(n) == previous_of(md), pending: false },
        rotation_id: codec::recorded(md.custom_metadata.as_ref(), n),
    })
}

pub(crate) fn written_meta(w: &SecretVersionMetadata, rotation: Option<RotationId>) -> Result<VersionMeta, StoreError> {
    Ok(VersionMeta {
        id: codec::kv_id(w.version),
        created_at: codec::time(&w.created_time)?,
        stages: Stages { current: true, previous: false, pending: false },
        rotation_id: rotation,
    })
}

fn staged_meta(s: &codec::Staged, m: &SecretVersionMetadata) -> Result<VersionMeta, StoreError> {
    Ok(VersionMeta {
        id: codec::staged_id(s.rotation),
        created_at: codec::time(&m.created_time)?,
        stages: Stages { current: false, previous: false, pending: true },
        rotation_id: Some(s.rotation),
    })
}

fn check_metadata(m: &Metadata) -> Result<(), StoreError> {
    for (k, v) in m {
        if !k.starts_with(REKEY_PREFIX) || k.len() == REKEY_PREFIX.len() {
            return Err(StoreError::invalid(format!(
                "metadata key {k:?} does not start with `rekey.`; the other custom_metadata keys belong to the secret's owners"
            )));
        }
        if k.len() > MAX_CUSTOM_METADATA_KEY_BYTES {
            return Err(StoreError::invalid(format!(
                "metadata key {k:?} is {} bytes long; Vault's limit is {MAX_CUSTOM_METADATA_KEY_BYTES}",
                k.len()
            )));
        }
        if v.len() > MAX_CUSTOM_METADATA_VALUE_BYTES {
            return Err(StoreError::invalid(format!(
                "the value of metadata key {k:?} is {} bytes long; Vault's limit is {MAX_CUSTOM_METADATA_VALUE_BYTES}",
                v.len()
            )));
        }
    }
    Ok(())
}

#[async_trait]
impl SecretStore for VaultStore {
    fn request_counts(&self) -> rekey_core::RequestCounts {
        self.requests_by_operation()
    }

    /// One request: a data read with the value, a metadata read without
    /// (see the `snapshot` module).
    async fn snapshot(&self, path: &SecretPath, with_value: bool) -> Result<rekey_core::Snapshot, StoreError> {
        if with_value { self.snapshot_with_value(path).await } else { self.snapshot_brief(path).await }
    }

    async fn put(&self, path: &SecretPath, data: SecretData, opts: PutOptions) -> Result<VersionMeta, StoreError> {
        self.put_with(path, data, opts, None).await.map(|(meta, _)| meta)
    }

    async fn put_rotation(
        &self,
        path: &SecretPath,
        data: SecretData,
        opts: PutOptions,
        record: &RecordWrite,
    ) -> Result<VersionMeta, StoreError> {
        let extra = (!record.is_empty()).then_some(record);
        if let Some(r) = extra {
            rekey_core::check_metadata_patch(&r.all(&VersionId::new("0")))?;
        }
        let (meta, recorded) = self.put_with(path, data, opts, extra).await?;
        if !recorded && let Some(r) = extra {
            self.update_metadata(path, r.all(&meta.id)).await?;
        }
        Ok(meta)
    }

    /// Fast path, two requests: one data read (value, version, the
    /// record and journal in `custom_metadata`) and one staging write with
    /// `cas=0` (nothing staged, as after every promote or discard). A
    /// required journal adds one metadata PATCH. Anything unusual (a
    /// retried stage, a leftover candidate to replace) takes the general
    /// path of [`stage`](SecretStore::stage).
    async fn stage_rotation(
        &self,
        path: &SecretPath,
        data: SecretData,
        req: StageRequest,
    ) -> Result<StageOutcome, StoreError> {
        let loc = self.staging(path)?;
        let p = path.as_str();
        let rid = req.rotation_id;
        let (base, metadata) = match (req.base, req.metadata) {
            (Some(base), Some(metadata)) => (base, metadata),
            _ => {
                let snapshot = self.snapshot(path, true).await?;
                if snapshot.journalled() {
                    return Ok(StageOutcome::Journalled(snapshot));
                }
                if let Some(current) = &snapshot.data {
                    rekey_core::check_whole_value(path, current, &data)?;
                }
                (snapshot.current, snapshot.metadata)
            }
        };
        let base_n = match codec::parse_id(&base.id) {
            Id::Kv(n) => Some(n),
            _ => None,
        };
        let recorded: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let retried = codec::find_recorded(Some(&recorded), rid).is_some();
        let journal_kept = rekey_core::keep_required_journal(self, path, req.journal).await?;
        if let (Some(n), false) = (base_n, retried) {
            let body = codec::envelope(&data, rid, n);
            match self.kv_write(&loc, &body, Some(0)).await {
                Ok(w) => {
                    drop(data);
                    let candidate = VersionMeta {
                        id: codec::staged_id(rid),
                        created_at: codec::time(&w.created_time)?,
                        stages: Stages { current: false, previous: false, pending: true },
                        rotation_id: Some(rid),
                    };
                    return Ok(StageOutcome::Staged(Staged::new(candidate, base, metadata, journal_kept)));
                }
                Err(f) if f.is_cas_mismatch() => {}
                Err(f) => return Err(self.err(&f, p)),
            }
        }
        // Something is staged already (ours from an earlier attempt, or a
        // crashed rotation's candidate to replace and report).
        let replaced = match self.read(path, &VersionSelector::Pending).await {
            Ok(v) if v.meta.rotation_id != Some(rid) => Some(v.meta),
            Ok(_) | Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let candidate = self.stage(path, data, rid).await?;
        Ok(StageOutcome::Staged(Staged::new(candidate, base, metadata, journal_kept).replacing(replaced)))
    }

    async fn promote_rotation(
        &self,
        path: &SecretPath,
        req: rekey_core::PromoteRequest<'_>,
    ) -> Result<VersionMeta, StoreError> {
        let extra = (!req.record.is_empty()).then_some(req.record);
        let (meta, recorded) = match (codec::parse_id(req.candidate), codec::parse_id(req.expected), req.value) {
            (Id::Staged(rid), Id::Kv(expected), Some(value)) => {
                self.promote_staged_value(path, rid, expected, value, extra).await?
            }
            _ => self.promote_with(path, req.candidate, req.expected, extra).await?,
        };
        if !recorded && let Some(r) = extra {
            self.update_metadata(path, r.all(&meta.id)).await?;
        }
        Ok(meta)
    }

    async fn read(&self, path: &SecretPath, selector: &VersionSelector) -> Result<SecretVersion, StoreError> {
        let p = path.as_str();
        let not_found = |what: &str| StoreError::not_found(p, Some(what.to_owned()));
        match selector {
            VersionSelector::Current => {
                self.staging(path)?;
                let r = self.kv_read(p, None).await.map_err(|f| self.err(&f, p))?;
                let meta = codec::current_meta(&r.metadata)?;
                Ok(SecretVersion { meta, data: codec::from_kv(r.data, p)? })
            }
            VersionSelector::Previous => {
                let md = self.metadata_of(path).await?;
                let n = previous_of(&md).ok_or_else(|| not_found("previous version"))?;
                let r = self.kv_read(p, Some(n)).await.map_err(|f| match self.err(&f, p) {
                    StoreError::NotFound { .. } => not_found("previous version"),
                    e => e,
                })?;
                Ok(SecretVersion { meta: meta_from_md(&md, n)?, data: codec::from_kv(r.data, p)? })
            }
            VersionSelector::Pending => {
                let (mut s, m) = self.read_staged(path).await?.ok_or_else(|| not_found("pending version"))?;
                let meta = staged_meta(&s, &m)?;
                let data = codec::from_kv(std::mem::take(&mut s.candidate.0), p)?;
                Ok(SecretVersion { meta, data })
            }
            VersionSelector::Id(id) => {
                let what = format!("version {id}");
                match codec::parse_id(id) {
                    Id::Kv(n) => {
                        let md = self.metadata_of(path).await?;
                        if !live_versions(&md).iter().any(|(v, _)| *v == n) {
                            return Err(not_found(&what));
                        }
                        let r = self.kv_read(p, Some(n)).await.map_err(|f| match self.err(&f, p) {
                            StoreError::NotFound { .. } => not_found(&what),
                            e => e,
                        })?;
                        Ok(SecretVersion { meta: meta_from_md(&md, n)?, data: codec::from_kv(r.data, p)? })
                    }
                    Id::Staged(rid) => match self.read_staged(path).await? {
                        Some((mut s, m)) if s.rotation == rid => {
                            let meta = staged_meta(&s, &m)?;
                            Ok(SecretVersion { meta, data: codec::from_kv(std::mem::take(&mut s.candidate.0), p)? })
                        }
                        _ => {
                            // Promoted: the candidate lives on as the KV version
                            // recorded for its rotation (as in the reference
                            // store, where the pending version becomes current).
                            let md = self.metadata_of(path).await?;
                            let n = codec::find_recorded(md.custom_metadata.as_ref(), rid)
                                .filter(|n| live_versions(&md).iter().any(|(v, _)| v == n))
                                .ok_or_else(|| not_found(&what))?;
                            let r = self.kv_read(p, Some(n)).await.map_err(|f| match self.err(&f, p) {
                                StoreError::NotFound { .. } => not_found(&what),
                                e => e,
                            })?;
                            Ok(SecretVersion { meta: meta_from_md(&md, n)?, data: codec::from_kv(r.data, p)? })
                        }
                    },
                    Id::Unknown => {
                        self.metadata_of(path).await?;
                        Err(not_found(&what))
                    }
                }
            }
        }
    }

    async fn stage(
        &self,
        path: &SecretPath,
        data: SecretData,
        rotation_id: RotationId,
    ) -> Result<VersionMeta, StoreError> {
        let loc = self.staging(path)?;
        let p = path.as_str();
        // The secret must exist; its metadata also tells whether this
        // rotation's candidate was already promoted (a retried stage).
        let md = self.metadata_of(path).await?;
        if let Some(n) = codec::find_recorded(md.custom_metadata.as_ref(), rotation_id) {
            return meta_from_md(&md, n);
        }
        let body = codec::envelope(&data, rotation_id, md.current_version);
        drop(data);
        // Usually nothing is staged (promote and discard remove the staging
        // entry), so the first write with cas=0 succeeds.
        let mut cas = 0;
        for _ in 0..4 {
            match self.kv_write(&loc, &body, Some(cas)).await {
                Ok(w) => {
                    return Ok(VersionMeta {
                        id: codec::staged_id(rotation_id),
                        created_at: codec::time(&w.created_time)?,
                        stages: Stages { current: false, previous: false, pending: true },
                        rotation_id: Some(rotation_id),
                    });
                }
                Err(f) if f.is_cas_mismatch() => {
                    // Something is staged: ours (a retry) or an older candidate
                    // to replace.
                    let smd = match self.kv_metadata(&loc).await {
                        Ok(m) => m,
                        Err(f) if f.is_status(404) => {
                            cas = 0;
                            continue;
                        }
                        Err(f) => return Err(self.err(&f, p)),
                    };
                    if let Some((s, m)) = self.read_staged(path).await?
                        && s.rotation == rotation_id
                        && m.version == smd.current_version
                    {
                        return staged_meta(&s, &m);
                    }
                    cas = smd.current_version;
                }
                Err(f) => return Err(self.err(&f, p)),
            }
        }
        Err(StoreError::Conflict { path: p.to_owned(), expected: None, actual: None })
    }

    async fn promote(
        &self,
        path: &SecretPath,
        version: &VersionId,
        expected_current: &VersionId,
    ) -> Result<VersionMeta, StoreError> {
        self.promote_with(path, version, expected_current, None).await.map(|(meta, _)| meta)
    }

    async fn discard(&self, path: &SecretPath, version: &VersionId) -> Result<(), StoreError> {
        let p = path.as_str();
        let loc = self.staging(path)?;
        match codec::parse_id(version) {
            Id::Staged(rid) => {
                if let Some((s, _)) = self.read_staged(path).await?
                    && s.rotation == rid
                {
                    // Metadata delete: every version of the staging entry is
                    // destroyed, nothing is left behind.
                    return self.kv_destroy_all(&loc).await.map_err(|f| self.err(&f, p));
                }
                // Not staged any more; if it was promoted and is current, it is
                // the current version, which cannot be discarded.
                let md = self.metadata_of(path).await?;
                if codec::find_recorded(md.custom_metadata.as_ref(), rid) == Some(md.current_version) {
                    return Err(StoreError::invalid(format!(
                        "the candidate {version} of {p} was promoted and is current; only a pending candidate can be discarded"
                    )));
                }
                Ok(())
            }
            Id::Kv(n) => {
                let md = self.metadata_of(path).await?;
                if md.current_version == n {
                    return Err(StoreError::invalid(format!(
                        "version {version} of {p} is current; only a pending candidate can be discarded"
                    )));
                }
                Ok(())
            }
            Id::Unknown => self.metadata_of(path).await.map(|_| ()),
        }
    }

    async fn list_versions(&self, path: &SecretPath) -> Result<Vec<VersionMeta>, StoreError> {
        let md = self.metadata_of(path).await?;
        let mut out = Vec::new();
        for (n, _) in live_versions(&md) {
            out.push(meta_from_md(&md, n)?);
        }
        if let Some((s, m)) = self.read_staged(path).await? {
            out.push(staged_meta(&s, &m)?);
        }
        Ok(out)
    }

    async fn read_metadata(&self, path: &SecretPath) -> Result<Metadata, StoreError> {
        let md = self.metadata_of(path).await?;
        Ok(md.custom_metadata.unwrap_or_default().into_iter().filter(|(k, _)| k.starts_with(REKEY_PREFIX)).collect())
    }

    async fn write_metadata(&self, path: &SecretPath, metadata: Metadata) -> Result<(), StoreError> {
        // The contract's limits (the strictest store's) first, then Vault's own.
        rekey_core::check_metadata(&metadata)?;
        check_metadata(&metadata)?;
        let md = self.metadata_of(path).await?;
        let existing: HashMap<String, String> = md.custom_metadata.unwrap_or_default();
        let others = existing.keys().filter(|k| !k.starts_with(REKEY_PREFIX)).count();
        if others + metadata.len() > MAX_CUSTOM_METADATA_KEYS {
            return Err(StoreError::invalid(format!(
                "{} metadata entries plus the secret's {others} other custom_metadata keys exceed Vault's limit of {MAX_CUSTOM_METADATA_KEYS}",
                metadata.len()
            )));
        }
        let mut patch = Map::new();
        for k in existing.keys().filter(|k| k.starts_with(REKEY_PREFIX) && !metadata.contains_key(*k)) {
            patch.insert(k.clone(), Value::Null);
        }
        for (k, v) in metadata {
            patch.insert(k, Value::String(v));
        }
        if patch.is_empty() {
            return Ok(());
        }
        self.update_custom_metadata(path.as_str(), patch).await.map_err(|f| self.err(&f, path.as_str()))
    }

    /// One JSON merge-patch of `custom_metadata` (read + POST where the
    /// server refuses PATCH): keys not named are left alone.
    async fn update_metadata(&self, path: &SecretPath, patch: MetadataPatch) -> Result<(), StoreError> {
        self.staging(path)?;
        rekey_core::check_metadata_patch(&patch)?;
        let changes: Map<String, Value> =
            patch.iter().map(|(k, v)| (k.to_owned(), v.map_or(Value::Null, |v| Value::String(v.to_owned())))).collect();
        if changes.is_empty() {
            return self.metadata_of(path).await.map(|_| ());
        }
        let p = path.as_str();
        match self.update_custom_metadata(p, changes).await {
            Ok(()) => Ok(()),
            // A PATCH of a path with no metadata: the secret does not exist.
            Err(f) if f.is_status(404) => Err(StoreError::not_found(p, None)),
            Err(f) => Err(self.err(&f, p)),
        }
    }

    async fn delete(&self, path: &SecretPath) -> Result<(), StoreError> {
        let loc = self.staging(path)?;
        let p = path.as_str();
        self.metadata_of(path).await?;
        self.kv_destroy_all(&loc).await.map_err(|f| self.err(&f, p))?;
        self.kv_destroy_all(p).await.map_err(|f| self.err(&f, p))
    }
}

/// A request the store sends itself (beside vaultrs), with the headers every
/// Vault call carries: the token, and the namespace when one is set.
pub(crate) fn vault_request(
    c: &VaultClient,
    method: reqwest::Method,
    url: Url,
    namespace: Option<&str>,
) -> reqwest::RequestBuilder {
    let req = c
        .http
        .http
        .request(method, url)
        .header("X-Vault-Request", "true")
        .header("X-Vault-Token", c.settings.token.as_str());
    match namespace {
        Some(ns) => req.header("X-Vault-Namespace", ns),
        None => req,
    }
}
