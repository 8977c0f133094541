//! A model-based test of the rotation engine: random sequences of
//! operations — rotations with every strategy (generated, custom and invalid
//! values), verifiers that pass, fail or hang, manual rollbacks, resumes,
//! scheduled ticks, store outages and single faults, crashes at any store
//! call followed by recovery, clock jumps and a second manager racing on the
//! same store — applied to the real engine over any store, and checked after
//! every step against a small reference model:
//!
//! * the current value is the initial one or a value that passed its
//!   verifier (a failed immediate candidate may stay current only while the
//!   store is unreachable for its rollback, journalled for recovery, and
//!   never past the next rotation or recovery);
//! * a value that failed verification is never current and never restored
//!   by a rollback;
//! * no secret is quarantined by store unavailability: the failure count
//!   beside a secret never exceeds the verifier failures since its last
//!   success, and rotation resumes after every outage;
//! * every due slot is rotated at most once (two managers, one store);
//! * each manager's statistics equal the sum of the results it returned;
//! * no secret value appears in any audit event, result, error or log line.
//!
//! [`run`] drives it with proptest (shrinking to the shortest failing
//! sequence) and prints the seed; `REKEY_MODEL_SEED=<64 hex digits>`
//! replays one, `REKEY_MODEL_CASES` overrides the case budget.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use rekey_core::record::SecretRecord;
use rekey_core::{
    AuditEvent, AuditSink, Clock, DynSecretStore, ExposeSecret, GenerateSecret, GeneratorError, ManualClock,
    MemoryAuditSink, Recovery, RotationError, RotationJournal, RotationManager, RotationOutcome, RotationPolicy,
    RotationResult, RotationStrategy, SecretData, SecretGenerator, SecretPath, SecretStore, SecretStoreExt,
    SecretString, Verifier, VerifyContext, VerifyError,
};
use rekey_memory::{Fault, FaultInjectingStore, Rule};

/// How much to run.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Sequences to run (`REKEY_MODEL_CASES` overrides it).
    pub cases: u32,
    /// Steps per sequence, at least.
    pub min_steps: usize,
    /// Steps per sequence, at most.
    pub max_steps: usize,
    /// Whether to drive schedules (needs a store whose version times follow
    /// the test's clock: the memory store).
    pub schedules: bool,
    /// A tag for the secret paths.
    pub tag: String,
}

impl ModelConfig {
    /// The CI budget for the memory store: 2,000 sequences of 20–40 steps.
    pub fn memory() -> Self {
        Self { cases: 2000, min_steps: 20, max_steps: 40, schedules: true, tag: "memory".into() }
    }

    /// A smaller budget for a real server (every step is HTTP round trips).
    pub fn server(tag: &str, cases: u32) -> Self {
        Self { cases, min_steps: 20, max_steps: 24, schedules: false, tag: tag.into() }
    }
}

/// Makes the store one sequence runs on: given the sequence's clock (a
/// memory store should take its version times from it). Called inside the
/// runtime the sequence runs on, so a store can connect there.
pub type StoreFactory = dyn Fn(&ManualClock) -> futures::future::BoxFuture<'static, Arc<DynSecretStore>> + Send + Sync;

const SECRETS: usize = 2;
const QUARANTINE_AFTER: u32 = 2;
const DAY: Duration = Duration::from_secs(86_400);
/// A delay that marks a crash point: the call never happens, the rotation
/// future is dropped.
const CRASH: Duration = Duration::from_secs(10 * 365 * 86_400);

mod ops;

use ops::op;
pub use ops::{Mode, Op, Value};

/// Runs the model test on stores from `factory`. Panics (failing the test)
/// with the shrunk sequence and the seed to replay it.
pub fn run(config: ModelConfig, factory: Arc<StoreFactory>) {
    let seed: [u8; 32] = match std::env::var("REKEY_MODEL_SEED") {
        Ok(hex) => parse_seed(&hex).unwrap_or_else(|| panic!("REKEY_MODEL_SEED must be 64 hex digits, got {hex:?}")),
        Err(_) => rand_seed(),
    };
    let seed_hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let cases = std::env::var("REKEY_MODEL_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(config.cases);
    eprintln!("model test ({}): {cases} sequences; replay with REKEY_MODEL_SEED={seed_hex}", config.tag);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => panic!("no tokio runtime: {e}"),
    };
    let logs = LogCapture::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let mut runner = TestRunner::new_with_rng(
        Config { cases, failure_persistence: None, max_shrink_iters: 400, ..Config::default() },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
    );
    let ops = proptest::collection::vec(op(config.schedules), config.min_steps..=config.max_steps);
    let result = runner.run(&ops, |ops| {
        logs.clear();
        runtime.block_on(run_sequence(&config, &*factory, &ops, &logs))
    });
    if let Err(e) = result {
        panic!("model test ({}) failed; replay with REKEY_MODEL_SEED={seed_hex}\n{e}", config.tag);
    }
}

fn parse_seed(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn rand_seed() -> [u8; 32] {
    let a = uuid::Uuid::new_v4().into_bytes();
    let b = uuid::Uuid::new_v4().into_bytes();
    let mut s = [0u8; 32];
    s[..16].copy_from_slice(&a);
    s[16..].copy_from_slice(&b);
    s
}

/// A verifier whose verdict a test sets, recording every candidate it judged.
#[derive(Debug)]
struct Judge {
    name: String,
    mode: AtomicU8,
    verdicts: Arc<Mutex<Verdicts>>,
}

#[derive(Debug, Default)]
struct Verdicts {
    passed: HashSet<String>,
    failed: HashSet<String>,
}

#[async_trait]
impl Verifier for Judge {
    fn name(&self) -> &str {
        &self.name
    }
    async fn verify(&self, ctx: VerifyContext<'_>) -> Result<(), VerifyError> {
        let value = ctx.candidate.get(ctx.field).map(|s| s.expose_secret().to_owned()).unwrap_or_default();
        match self.mode.load(Ordering::SeqCst) {
            0 => {
                lock(&self.verdicts).passed.insert(value);
                Ok(())
            }
            1 => {
                lock(&self.verdicts).failed.insert(value.clone());
                // Echo the candidate the way a careless service would: the
                // engine must redact it.
                Err(VerifyError::Failed(format!("login refused for password {value}")))
            }
            _ => {
                // Judged as failed once the timeout fires.
                lock(&self.verdicts).failed.insert(value);
                futures::future::pending::<()>().await;
                Ok(())
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The generator: 24 characters of the default charset, every value kept
/// (to search outputs for it).
#[derive(Debug)]
struct Recording {
    inner: SecretGenerator,
    seen: Arc<Mutex<Vec<String>>>,
}

impl GenerateSecret for Recording {
    fn generate(&self) -> Result<SecretString, GeneratorError> {
        let v = self.inner.generate()?;
        lock(&self.seen).push(v.expose_secret().to_owned());
        Ok(v)
    }
    fn check(&self, value: &SecretString) -> Result<(), GeneratorError> {
        self.inner.check(value)
    }
}

/// Collects every formatted log line of the test thread.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let me = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || me.clone())
            .finish()
    }
    fn clear(&self) {
        lock(&self.0).clear();
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts of a manager's results, by what its statistics count.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    successful: u64,
    failed: u64,
    rollbacks: u64,
    conflicts: u64,
    already_rotating: u64,
    outside_window: u64,
    store_unavailable: u64,
    deferred: u64,
    skipped_quarantined: u64,
}

impl Tally {
    fn add(&mut self, r: &RotationResult) {
        match r.outcome {
            RotationOutcome::Rotated => self.successful += 1,
            RotationOutcome::Failed | RotationOutcome::RolledBack => {
                self.failed += 1;
                if r.rollback_performed {
                    self.rollbacks += 1;
                }
            }
            RotationOutcome::AlreadyRotating | RotationOutcome::InProgressElsewhere => self.already_rotating += 1,
            RotationOutcome::RotatedElsewhere => self.conflicts += 1,
            RotationOutcome::OutsideWindow => self.outside_window += 1,
            RotationOutcome::StoreUnavailable => self.store_unavailable += 1,
            RotationOutcome::Deferred => self.deferred += 1,
            RotationOutcome::Quarantined => self.skipped_quarantined += 1,
            _ => {}
        }
    }
}

/// The reference model of one secret.
#[derive(Debug)]
struct Model {
    path: SecretPath,
    initial: String,
    /// Verifier failures since the secret's last successful rotation.
    failures_since_success: u32,
    /// A failed immediate candidate may be current while its rollback
    /// could not reach the store; it must be gone after the next rotation
    /// or recovery of the secret.
    unchecked_current_allowed: bool,
    /// When a manual rollback last made an older value current: the
    /// secret's schedule counts from it (an operator's decision), not from
    /// the restored version's creation.
    rolled_back_at: Option<DateTime<Utc>>,
}

/// Everything one sequence runs on.
struct World {
    clock: ManualClock,
    store: Arc<FaultInjectingStore<Arc<DynSecretStore>>>,
    managers: Vec<RotationManager>,
    judges: Vec<Arc<Judge>>,
    verdicts: Vec<Arc<Mutex<Verdicts>>>,
    audits: Vec<MemoryAuditSink>,
    tallies: Vec<Tally>,
    generated: Arc<Mutex<Vec<String>>>,
    custom: Vec<String>,
    secrets: Vec<Model>,
    crashed: Arc<tokio::sync::Notify>,
    errors: Vec<String>,
    /// When the last outage ends.
    outage_until: Option<DateTime<Utc>>,
    next_custom: u64,
    /// How far outputs were searched for leaks.
    checked: Checked,
}

#[derive(Debug, Default)]
struct Checked {
    log: usize,
    events: [usize; 2],
}

fn policy(strategy: RotationStrategy, secret: usize) -> RotationPolicy {
    let mut b = RotationPolicy::builder(format!("{strategy}-{secret}"))
        .strategy(strategy)
        .interval(DAY)
        .verification_tests([format!("judge{secret}")])
        .verification_timeout(Duration::from_secs(5))
        .max_retries(1)
        .quarantine_after(QUARANTINE_AFTER);
    if strategy.needs_grace_period() {
        b = b.grace_period(Duration::from_secs(3600));
    }
    b.build().unwrap_or_else(|e| panic!("model policy: {e}"))
}

type Fail = Result<(), TestCaseError>;

async fn run_sequence(config: &ModelConfig, factory: &StoreFactory, ops: &[Op], logs: &LogCapture) -> Fail {
    let start: DateTime<Utc> =
        if config.schedules { "2030-01-01T00:00:00Z".parse().unwrap_or_else(|_| Utc::now()) } else { Utc::now() };
    let clock = ManualClock::new(start);
    clock.set_auto_advance(true);
    let crashed = Arc::new(tokio::sync::Notify::new());
    let inner = factory(&clock).await;
    let c2 = clock.clone();
    let notify = crashed.clone();
    let store = Arc::new(FaultInjectingStore::new(inner).with_clock(Arc::new(clock.clone())).with_sleep(move |d| {
        if d >= CRASH {
            notify.notify_one();
            Box::pin(futures::future::pending())
        } else {
            c2.sleep(d)
        }
    }));
    store.set_log(false);
    let generated = Arc::new(Mutex::new(Vec::new()));
    let verdicts: Vec<_> = (0..SECRETS).map(|_| Arc::new(Mutex::new(Verdicts::default()))).collect();
    let judges: Vec<_> = (0..SECRETS)
        .map(|i| Arc::new(Judge { name: format!("judge{i}"), mode: AtomicU8::new(0), verdicts: verdicts[i].clone() }))
        .collect();
    let audits: Vec<MemoryAuditSink> = (0..2).map(|_| MemoryAuditSink::new()).collect();
    let mut managers = Vec::new();
    for audit in &audits {
        let generator =
            Recording { inner: SecretGenerator::random(24).unwrap_or_else(|e| panic!("{e}")), seen: generated.clone() };
        let mut b = RotationManager::builder(store.clone())
            .clock(Arc::new(clock.clone()))
            .generator(Arc::new(generator))
            .audit_sink(Arc::new(audit.clone()));
        for j in &judges {
            b = b.verifier(j.clone());
        }
        managers.push(b.build().unwrap_or_else(|e| panic!("{e}")));
    }
    let prefix = crate::unique_prefix(&format!("model-{}", config.tag));
    let mut secrets = Vec::new();
    for i in 0..SECRETS {
        let path: SecretPath = format!("{prefix}/s{i}").parse().unwrap_or_else(|e| panic!("{e}"));
        let initial = format!("initial-{i}-{}", uuid::Uuid::new_v4().simple());
        store.create(&path, SecretData::text(initial.clone())).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
        if config.schedules {
            for m in &managers {
                m.schedule_rotation(&path, policy(RotationStrategy::Staged, i))
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }
        secrets.push(Model {
            path,
            initial,
            failures_since_success: 0,
            unchecked_current_allowed: false,
            rolled_back_at: None,
        });
    }
    let mut w = World {
        clock,
        store,
        managers,
        judges,
        verdicts,
        audits,
        tallies: vec![Tally::default(), Tally::default()],
        generated,
        custom: Vec::new(),
        secrets,
        crashed,
        errors: Vec::new(),
        outage_until: None,
        next_custom: 0,
        checked: Checked::default(),
    };
    for (step, op) in ops.iter().enumerate() {
        w.apply(op, config).await.map_err(|e| TestCaseError::fail(format!("step {step} {op:?}: {e}")))?;
        w.check(logs).await.map_err(|e| TestCaseError::fail(format!("after step {step} {op:?}: {e}")))?;
    }
    // The end: the store answers, nothing is injected, every secret is
    // recovered; every current value must be good now.
    w.store.clear_rules();
    w.clock.advance(Duration::from_secs(3600));
    for i in 0..SECRETS {
        let path = w.secrets[i].path.clone();
        let r = w.managers[0].recover(&path).await.map_err(|e| TestCaseError::fail(format!("final recovery: {e}")))?;
        if r == Recovery::InProgressElsewhere {
            return Err(TestCaseError::fail(format!("secret {i}: a journal an hour old is still taken as live")));
        }
        w.secrets[i].unchecked_current_allowed = false;
    }
    w.check(logs).await.map_err(|e| TestCaseError::fail(format!("after the final recovery: {e}")))?;
    if !config.schedules {
        for s in &w.secrets {
            let _ = w.store.delete(&s.path).await;
        }
    }
    Ok(())
}

impl World {
    fn custom_value(&mut self, valid: bool) -> String {
        self.next_custom += 1;
        let v = if valid {
            // 24 characters of the default charset (letters and digits).
            let u = uuid::Uuid::new_v4().simple().to_string();
            format!("Cv{}", &u[..22])
        } else {
            format!("short{}", self.next_custom)
        };
        self.custom.push(v.clone());
        v
    }

    fn record(&mut self, manager: usize, r: &RotationResult, secret: usize) {
        self.tallies[manager].add(r);
        if let Some(e) = &r.error {
            self.errors.push(format!("{e} / {e:?}"));
        }
        self.errors.push(format!("{r} / {r:?}"));
        let m = &mut self.secrets[secret];
        if r.outcome == RotationOutcome::Rotated {
            m.failures_since_success = 0;
        }
        if r.outcome.is_failure() && r.error.as_ref().is_some_and(|e| matches!(e, RotationError::UndoFailed { .. })) {
            // An undo that could not reach the store (or was cut off):
            // recovery will finish it.
            m.unchecked_current_allowed = true;
        }
    }

    fn secret_of(&self, path: &SecretPath) -> Option<usize> {
        self.secrets.iter().position(|s| &s.path == path)
    }

    fn count_verifier_failures(&mut self, before: &[usize]) {
        for (i, v) in self.verdicts.iter().enumerate() {
            let now = lock(v).failed.len();
            self.secrets[i].failures_since_success += u32::try_from(now.saturating_sub(before[i])).unwrap_or(0);
        }
    }

    fn failed_counts(&self) -> Vec<usize> {
        self.verdicts.iter().map(|v| lock(v).failed.len()).collect()
    }

    async fn apply(&mut self, op: &Op, config: &ModelConfig) -> Result<(), String> {
        let before = self.failed_counts();
        match op {
            Op::Rotate { secret, manager, strategy, value } => {
                let p = policy(*strategy, *secret);
                let path = self.secrets[*secret].path.clone();
                let v = match value {
                    Value::Generated => None,
                    Value::CustomValid => Some(self.custom_value(true)),
                    Value::CustomInvalid => Some(self.custom_value(false)),
                };
                let current_before = self.current(*secret).await;
                let r = self.managers[*manager].rotate_secret(&path, &p, v.map(SecretString::from)).await;
                if *value == Value::CustomInvalid {
                    if !matches!(r.error, Some(RotationError::InvalidValue { .. })) {
                        return Err(format!("an invalid value was not refused: {r}"));
                    }
                    if let (Some(a), Some(b)) = (&current_before, self.current(*secret).await)
                        && *a != b
                    {
                        return Err("a refused value changed the secret".into());
                    }
                }
                self.count_verifier_failures(&before);
                self.settle_unchecked(*secret, &r);
                self.record(*manager, &r, *secret);
            }
            Op::Race { secret, strategy } => {
                let p = policy(*strategy, *secret);
                let path = self.secrets[*secret].path.clone();
                let (a, b) = futures::join!(
                    self.managers[0].rotate_secret(&path, &p, None),
                    self.managers[1].rotate_secret(&path, &p, None)
                );
                self.count_verifier_failures(&before);
                if a.success() && b.success() && a.old_version == b.old_version {
                    return Err(format!("both racers rotated from the same version: {a} / {b}"));
                }
                // Concurrent: one racer's failed undo is not settled by the
                // other's result.
                self.settle_unchecked(*secret, &a);
                self.settle_unchecked(*secret, &b);
                self.record(0, &a, *secret);
                self.record(1, &b, *secret);
            }
            Op::SetVerifier { secret, mode } => {
                let m = match mode {
                    Mode::Pass => 0,
                    Mode::Fail => 1,
                    Mode::Hang => 2,
                };
                self.judges[*secret].mode.store(m, Ordering::SeqCst);
            }
            Op::Rollback { secret, manager } => {
                let path = self.secrets[*secret].path.clone();
                let before_value = self.current(*secret).await;
                match self.managers[*manager].rollback(&path).await {
                    Ok(rb) => {
                        self.secrets[*secret].rolled_back_at = Some(self.clock.now());
                        let now = self.current(*secret).await.unwrap_or_default();
                        let failed = lock(&self.verdicts[*secret]).failed.contains(&now);
                        if failed {
                            return Err(format!("rollback restored a value that failed verification ({rb:?})"));
                        }
                        if !self.good(*secret, &now) {
                            return Err(format!("rollback restored a value that never passed ({rb:?})"));
                        }
                    }
                    Err(e) => {
                        self.errors.push(format!("{e} / {e:?}"));
                        let after = self.current(*secret).await;
                        if before_value.is_some()
                            && after.is_some()
                            && before_value != after
                            && !self.store_fault_possible()
                        {
                            return Err(format!("a refused rollback changed the secret: {e}"));
                        }
                    }
                }
            }
            Op::Resume { secret } => {
                let path = self.secrets[*secret].path.clone();
                match self.managers[0].resume(&path).await {
                    Ok(_) => self.secrets[*secret].failures_since_success = 0,
                    Err(e) => self.errors.push(format!("{e} / {e:?}")),
                }
                if config.schedules {
                    let _ = self.managers[1].sync_quarantines().await;
                }
            }
            Op::Tick { advance } => {
                self.clock.advance(*advance);
                let now = self.clock.now();
                let store_up = self.outage_until.is_none_or(|u| u <= now - chrono::Duration::seconds(6));
                // Due before the pass, with nothing in the way: must rotate.
                let mut must_rotate = Vec::new();
                for (i, s) in self.secrets.iter().enumerate() {
                    let infos: Vec<_> = self.managers.iter().filter_map(|m| m.get_schedule(&s.path)).collect();
                    // Due by the schedule, and by the store's own record of
                    // the last rotation (a manual rotation or rollback moves
                    // it on).
                    let created = self.store.inner().current(&s.path).await.map(|v| v.meta.created_at).ok();
                    let since = created.map(|c| s.rolled_back_at.map_or(c, |r| c.max(r)));
                    let due = infos.iter().any(|info| info.next_rotation.is_some_and(|t| t <= now))
                        && since.is_some_and(|c| c + chrono::Duration::days(1) <= now);
                    let passes = self.judges[i].mode.load(Ordering::SeqCst) == 0;
                    let meta = self.store.inner().read_metadata(&s.path).await.unwrap_or_default();
                    // A dual-write retire step still in its grace period
                    // defers every rotation of the secret (by design: the old
                    // credential must not be cut short; an emergency may).
                    let retire_waits =
                        rekey_core::RetireRecord::read(&meta).is_some_and(|r| r.deadline.is_some_and(|d| d > now));
                    let clean = RotationJournal::read(&meta).is_none()
                        && SecretRecord::read(&meta).quarantine.is_none()
                        && !retire_waits;
                    if due && passes && clean && store_up {
                        must_rotate.push(i);
                    }
                }
                let mut rotated = BTreeMap::<usize, usize>::new();
                let mut runs = Vec::new();
                for m in &self.managers {
                    // What a daemon does on its resync interval.
                    m.sync_quarantines().await;
                    runs.push(m.process_scheduled_rotations().await);
                }
                self.count_verifier_failures(&before);
                let faults = self.store.total_injected() > 0 || self.store_fault_possible();
                for (mi, results) in runs.into_iter().enumerate() {
                    for r in results {
                        let Some(i) = self.secret_of(&r.path) else { continue };
                        if r.success() {
                            *rotated.entry(i).or_default() += 1;
                        }
                        self.settle_unchecked(i, &r);
                        self.record(mi, &r, i);
                    }
                }
                for (i, n) in &rotated {
                    if *n > 1 && *advance < DAY {
                        return Err(format!("secret {i} was rotated {n} times in one due slot"));
                    }
                }
                if !faults {
                    for i in must_rotate {
                        if !rotated.contains_key(&i) {
                            return Err(format!("secret {i} was due and the store up, but was not rotated"));
                        }
                    }
                }
            }
            Op::Outage { length } => {
                let now = self.clock.now();
                let until = now + chrono::Duration::from_std(*length).unwrap_or(chrono::Duration::days(1));
                self.store.outage(now, until);
                self.outage_until = Some(self.outage_until.map_or(until, |u| u.max(until)));
            }
            Op::Fault { method, nth, lost_response } => {
                let fault = if *lost_response { Fault::lost_response() } else { Fault::unavailable() };
                self.store.add_rule(Rule::on(*method).nth(*nth).fail(fault));
            }
            Op::Crash { secret, manager, strategy, at } => {
                let p = policy(*strategy, *secret);
                let path = self.secrets[*secret].path.clone();
                let rule = self.store.add_rule(Rule::any().path(path.clone()).skip(at - 1).times(1).delay(CRASH));
                let crashed = self.crashed.clone();
                let rotation = self.managers[*manager].rotate_secret(&path, &p, None);
                let mut rotation: Pin<Box<dyn Future<Output = RotationResult> + Send + '_>> = Box::pin(rotation);
                let r = tokio::select! {
                    r = &mut rotation => Some(r),
                    () = crashed.notified() => None,
                };
                drop(rotation);
                self.store.remove_rule(rule);
                self.count_verifier_failures(&before);
                match r {
                    Some(r) => {
                        self.settle_unchecked(*secret, &r);
                        self.record(*manager, &r, *secret);
                    }
                    None => {
                        // The process died; when it comes back, it recovers.
                        let r = self.managers[*manager].recover(&path).await;
                        self.settle_recovery(*secret, r);
                    }
                }
            }
            Op::Recheck { manager } => {
                let m = self.managers[*manager].clone();
                for i in 0..SECRETS {
                    let path = self.secrets[i].path.clone();
                    let Ok(mut snap) = self.store.snapshot(&path, false).await else { continue };
                    if SecretRecord::read_brief(&snap.metadata).unfinished.is_some() {
                        let r = m.recover(&path).await;
                        if !self.settle_recovery(i, r) {
                            continue;
                        }
                        let Ok(again) = self.store.snapshot(&path, false).await else { continue };
                        snap = again;
                    }
                    let Some(before) = m.get_schedule(&path) else { continue };
                    if m.refresh_schedule(&path, &snap).is_none() {
                        return Err(format!("secret {i}: scheduled, but refresh_schedule says it is not"));
                    }
                    let Some(after) = m.get_schedule(&path) else {
                        return Err(format!("secret {i}: the refresh dropped its schedule"));
                    };
                    let created = snap.current.created_at;
                    if after.last_rotation < before.last_rotation.max(created) {
                        return Err(format!(
                            "secret {i}: after a refresh the schedule's last rotation is {}, not the later of {} (before) and {created} (the store's current version)",
                            after.last_rotation, before.last_rotation
                        ));
                    }
                    if SecretRecord::read_brief(&snap.metadata).quarantine.is_some() && after.quarantine.is_none() {
                        return Err(format!(
                            "secret {i}: quarantined in the store, not held by the refreshed schedule"
                        ));
                    }
                }
            }
            Op::Jump { by } => self.clock.advance(*by),
        }
        Ok(())
    }

    /// After a rotation of the secret that reached the store, an unchecked
    /// value left by an earlier undo that failed must be gone.
    /// After a recovery: a journal cleaned up leaves no unchecked value; a
    /// journal that looks live (another manager's, not yet stale) was not
    /// touched, so what was allowed stays allowed; a failed recovery may
    /// leave one. Whether the recovery succeeded.
    fn settle_recovery(&mut self, secret: usize, r: Result<Recovery, RotationError>) -> bool {
        match r {
            Ok(Recovery::InProgressElsewhere) => true,
            Ok(_) => {
                self.secrets[secret].unchecked_current_allowed = false;
                true
            }
            Err(e) => {
                self.errors.push(format!("{e} / {e:?}"));
                self.secrets[secret].unchecked_current_allowed = true;
                false
            }
        }
    }

    fn settle_unchecked(&mut self, secret: usize, r: &RotationResult) {
        // The rotation got past recovery (which would have rolled the
        // unchecked value back): it rotated, lost a race to a rotation that
        // did, was deferred, or failed after its own first write.
        let undo_failed = r.error.as_ref().is_some_and(|e| matches!(e, RotationError::UndoFailed { .. }));
        let failed_at_recovery = r.error.as_ref().is_some_and(|e| {
            matches!(
                e,
                RotationError::Store { step: rekey_core::RotationStep::Recover, .. }
                    | RotationError::Target { step: rekey_core::RotationStep::Recover, .. }
            )
        });
        let past_recovery = match r.outcome {
            RotationOutcome::Rotated | RotationOutcome::RotatedElsewhere | RotationOutcome::Deferred => true,
            RotationOutcome::RolledBack | RotationOutcome::Failed => !failed_at_recovery && r.new_version.is_some(),
            _ => false,
        };
        if past_recovery && !undo_failed {
            self.secrets[secret].unchecked_current_allowed = false;
        }
    }

    /// Whether an injected fault may still fire (a single fault rule that
    /// has not, or an outage in force).
    fn store_fault_possible(&self) -> bool {
        let now = self.clock.now();
        self.outage_until.is_some_and(|u| now < u) || self.store.total_injected() > 0
    }

    fn good(&self, secret: usize, value: &str) -> bool {
        value == self.secrets[secret].initial || lock(&self.verdicts[secret]).passed.contains(value)
    }

    /// The current value, read past the fault layer.
    async fn current(&self, secret: usize) -> Option<String> {
        let path = &self.secrets[secret].path;
        let v = self.store.inner().current(path).await.ok()?;
        v.data.as_text().map(|s| s.expose_secret().to_owned())
    }

    async fn check(&mut self, logs: &LogCapture) -> Result<(), String> {
        for i in 0..SECRETS {
            let path = self.secrets[i].path.clone();
            let current = self.current(i).await.ok_or("the current value is unreadable")?;
            let failed = lock(&self.verdicts[i]).failed.contains(&current);
            if !self.good(i, &current) || failed {
                let meta = self.store.inner().read_metadata(&path).await.unwrap_or_default();
                let journalled = RotationJournal::read(&meta).is_some();
                if !(self.secrets[i].unchecked_current_allowed && journalled) {
                    return Err(format!(
                        "secret {i}: the current value {} verification (journal left: {journalled})",
                        if failed { "failed" } else { "never passed" }
                    ));
                }
            }
            let meta = self.store.inner().read_metadata(&path).await.unwrap_or_default();
            let rec = SecretRecord::read(&meta);
            let model = self.secrets[i].failures_since_success;
            if rec.failures > model {
                return Err(format!(
                    "secret {i}: {} failures recorded, only {model} verifier failures since the last success",
                    rec.failures
                ));
            }
            // The store's record is what every process follows; a manager's
            // in-memory copy catches up at its resync (checked after ticks).
            if rec.quarantine.is_some() && model < QUARANTINE_AFTER {
                return Err(format!("secret {i}: quarantined after only {model} verifier failures"));
            }
            if let Some(info) = self.managers[0].get_schedule(&path)
                && info.quarantine.is_none()
                && !info.paused
                && info.next_rotation.is_none()
            {
                return Err(format!("secret {i}: scheduled rotation stopped without a quarantine: {info:?}"));
            }
        }
        for (m, manager) in self.managers.iter().enumerate() {
            let s = manager.statistics();
            let t = &self.tallies[m];
            let got = Tally {
                successful: s.successful_rotations,
                failed: s.failed_rotations,
                rollbacks: s.rollbacks,
                conflicts: s.conflicts,
                already_rotating: s.already_rotating,
                outside_window: s.outside_window,
                store_unavailable: s.store_unavailable,
                deferred: s.deferred,
                skipped_quarantined: s.skipped_quarantined,
            };
            if &got != t {
                return Err(format!("manager {m}: statistics {got:?} differ from its results {t:?}"));
            }
        }
        self.no_leak(logs)
    }

    /// Searches what was produced since the last check (log lines, errors,
    /// results, audit events) for every secret value seen so far.
    fn no_leak(&mut self, logs: &LogCapture) -> Result<(), String> {
        let mut values: Vec<String> = lock(&self.generated).clone();
        values.extend(self.custom.iter().cloned());
        values.extend(self.secrets.iter().map(|s| s.initial.clone()));
        let log = logs.text();
        let mut texts = vec![log.get(self.checked.log..).unwrap_or_default().to_owned()];
        self.checked.log = log.len();
        texts.append(&mut self.errors);
        for (i, a) in self.audits.iter().enumerate() {
            let events = a.events();
            for e in events.iter().skip(self.checked.events[i]) {
                texts.push(event_text(e));
            }
            self.checked.events[i] = events.len();
        }
        for t in &texts {
            for v in &values {
                if v.len() >= 8 && t.contains(v.as_str()) {
                    return Err(format!("a secret value leaked into: {}", t.replace(v.as_str(), "<LEAKED>")));
                }
            }
        }
        Ok(())
    }
}

fn event_text(e: &AuditEvent) -> String {
    format!("{e:?}")
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("World").field("secrets", &self.secrets).finish_non_exhaustive()
    }
}

/// An audit sink that drops everything (for callers that want none).
#[derive(Debug, Default)]
pub struct NoAudit;

impl AuditSink for NoAudit {
    fn record(&self, _event: &AuditEvent) {}
    fn enabled(&self) -> bool {
        false
    }
}
