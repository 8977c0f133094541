//! [`Consumers`]: tasks that use a rotating credential and count failures.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rekey_core::{
    ConsumerRegistry, CredentialTarget, DynSecretStore, SecretPath, SecretStoreExt, SecretVersion, VersionId,
};
use tokio::task::JoinHandle;

/// How the consumers behave.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// How many consumer tasks (default 4).
    pub count: usize,
    /// How often each re-reads the current credential from the store
    /// (default 50 ms).
    pub refresh: Duration,
    /// The pause between two authentications (default 2 ms).
    pub auth_pause: Duration,
    /// Register each consumer and acknowledge the version it reads at every
    /// refresh, with a [`ConsumerRegistry`] (default false).
    pub track: bool,
    /// A name prefix for the registry (default `"consumer"`).
    pub name: String,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            count: 4,
            refresh: Duration::from_millis(50),
            auth_pause: Duration::from_millis(2),
            track: false,
            name: "consumer".to_owned(),
        }
    }
}

/// One failed authentication (no secret in it).
#[derive(Debug, Clone)]
pub struct FailureSample {
    /// The consumer.
    pub consumer: usize,
    /// The version whose credential failed.
    pub version: VersionId,
    /// The target's error message.
    pub error: String,
}

/// What the consumers saw.
#[derive(Debug, Clone)]
pub struct Report {
    /// Successful authentications.
    pub auth_ok: u64,
    /// Failed authentications.
    pub auth_failed: u64,
    /// Store reads that failed.
    pub read_failed: u64,
    /// The first failures (at most 20).
    pub samples: Vec<FailureSample>,
    /// Per consumer: the version it used last.
    pub last_versions: Vec<Option<VersionId>>,
}

impl Report {
    /// The parseable summary line:
    /// `ZERO-DOWNTIME strategy=<s> target=<t> rotations=<n> consumers=<n> auth_ok=<n> auth_failed=<n>`.
    pub fn line(&self, strategy: &str, target: &str, rotations: usize) -> String {
        format!(
            "ZERO-DOWNTIME strategy={strategy} target={target} rotations={rotations} consumers={} auth_ok={} auth_failed={}",
            self.last_versions.len(),
            self.auth_ok,
            self.auth_failed
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "auth_ok={} auth_failed={} read_failed={}", self.auth_ok, self.auth_failed, self.read_failed)?;
        for s in self.samples.iter().take(5) {
            write!(f, "\n  consumer {} version {}: {}", s.consumer, s.version, s.error)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Slot {
    version: Option<VersionId>,
    /// Whether the last authentication (with `version`) succeeded.
    last_ok: bool,
}

struct Shared {
    stop: AtomicBool,
    ok: AtomicU64,
    failed: AtomicU64,
    read_failed: AtomicU64,
    samples: Mutex<Vec<FailureSample>>,
    slots: Vec<Mutex<Slot>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Running consumer tasks; see the [crate docs](crate).
pub struct Consumers {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Consumers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumers").field("count", &self.tasks.len()).finish_non_exhaustive()
    }
}

impl Consumers {
    /// Starts `settings.count` consumers of `path` in `store`, each
    /// authenticating with [`CredentialTarget::test`] on `auth` (a real
    /// login). Must be called inside a Tokio runtime. Each consumer reads
    /// the credential once before it returns, so authentications start at
    /// once.
    pub async fn start(
        store: Arc<DynSecretStore>,
        path: SecretPath,
        auth: Arc<dyn CredentialTarget>,
        settings: ConsumerSettings,
    ) -> Self {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            read_failed: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
            slots: (0..settings.count).map(|_| Mutex::new(Slot::default())).collect(),
        });
        let registry = ConsumerRegistry::new(store.clone(), path.clone());
        let mut tasks = Vec::new();
        for i in 0..settings.count {
            let name = format!("{}-{i}", settings.name);
            if settings.track {
                // Registration failures show as a consumer that never
                // acknowledges, which the tests notice.
                let _ = registry.register(&name).await;
            }
            let first = read_until_ok(&*store, &path, &shared).await;
            let (shared, store, path, auth, registry, settings) =
                (shared.clone(), store.clone(), path.clone(), auth.clone(), registry.clone(), settings.clone());
            tasks.push(tokio::spawn(async move {
                run(i, name, first, store, path, auth, registry, settings, shared).await;
            }));
        }
        Self { shared, tasks }
    }

    /// Waits until every consumer uses `version` and its last
    /// authentication with it succeeded; false after `limit`.
    pub async fn wait_all_on(&self, version: &VersionId, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            let all = self.shared.slots.iter().all(|s| {
                let s = lock(s);
                s.version.as_ref() == Some(version) && s.last_ok
            });
            if all {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Authentications so far: (ok, failed).
    pub fn counts(&self) -> (u64, u64) {
        (self.shared.ok.load(Ordering::Relaxed), self.shared.failed.load(Ordering::Relaxed))
    }

    /// Stops the consumers and reports what they saw.
    pub async fn stop(self) -> Report {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
        let s = &self.shared;
        Report {
            auth_ok: s.ok.load(Ordering::SeqCst),
            auth_failed: s.failed.load(Ordering::SeqCst),
            read_failed: s.read_failed.load(Ordering::SeqCst),
            samples: lock(&s.samples).clone(),
            last_versions: s.slots.iter().map(|x| lock(x).version.clone()).collect(),
        }
    }
}

async fn read_until_ok(store: &DynSecretStore, path: &SecretPath, shared: &Shared) -> Option<SecretVersion> {
    for _ in 0..100 {
        match store.current(path).await {
            Ok(v) => return Some(v),
            Err(_) => {
                shared.read_failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    None
}

#[allow(clippy::too_many_arguments)]
async fn run(
    i: usize,
    name: String,
    first: Option<SecretVersion>,
    store: Arc<DynSecretStore>,
    path: SecretPath,
    auth: Arc<dyn CredentialTarget>,
    registry: ConsumerRegistry,
    settings: ConsumerSettings,
    shared: Arc<Shared>,
) {
    let mut cred = first;
    let mut refreshed = Instant::now();
    while !shared.stop.load(Ordering::SeqCst) {
        if cred.is_none() || refreshed.elapsed() >= settings.refresh {
            refreshed = Instant::now();
            match store.current(&path).await {
                Ok(v) => cred = Some(v),
                Err(_) => {
                    shared.read_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Acknowledge at every refresh: it writes only when the record
            // differs, and so repairs an acknowledgement that a concurrent
            // metadata writer overwrote (metadata is last-writer-wins).
            if let Some(c) = &cred
                && settings.track
            {
                let _ = registry.acknowledge(&name, &c.meta.id).await;
            }
        }
        let Some(c) = &cred else {
            tokio::time::sleep(settings.refresh).await;
            continue;
        };
        let ok = auth.test(&c.data).await.map_err(|e| e.to_string());
        {
            let mut slot = lock(&shared.slots[i]);
            slot.version = Some(c.meta.id.clone());
            slot.last_ok = ok.is_ok();
        }
        match ok {
            Ok(()) => {
                shared.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                let mut samples = lock(&shared.samples);
                if samples.len() < 20 {
                    samples.push(FailureSample { consumer: i, version: c.meta.id.clone(), error });
                }
            }
        }
        tokio::time::sleep(settings.auth_pause).await;
    }
}
