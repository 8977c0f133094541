//! [`FaultInjectingStore`]: a layer that fails, delays or loses the response
//! of chosen calls to any [`SecretStore`], and counts every call.
//!
//! # Where it belongs in a stack
//!
//! Directly over the real store, *under* retry, timeout and metrics layers:
//! those then see injected failures exactly as they would see a failing
//! server.
//!
//! ```text
//! engine → retry → timeout → FaultInjectingStore → MemoryStore / Vault / AWS
//! ```
//!
//! # Rules
//!
//! A [`Rule`] says which calls it matches (a [`Method`] or any, optionally
//! one path), which of the matching calls it fires on (counted from when the
//! rule was added: skip some, then fire on a number of them or on all), and
//! what it does when it fires: sleep for a while, fail with a [`Fault`], or
//! both. Rules are added and removed at run time through `&self`.
//!
//! ```
//! use rekey_core::{SecretData, SecretPath, SecretStore, SecretStoreExt, RotationId, StoreError};
//! use rekey_memory::{Fault, FaultInjectingStore, MemoryStore, Method, Rule};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = FaultInjectingStore::new(MemoryStore::new());
//! let path: SecretPath = "app/token".parse()?;
//! store.create(&path, SecretData::text("v1")).await?;
//!
//! // The next stage fails as if the server were down.
//! store.add_rule(Rule::on(Method::Stage).nth(1).fail(Fault::unavailable()));
//! let r = RotationId::new();
//! assert!(matches!(store.stage(&path, SecretData::text("v2"), r).await, Err(StoreError::Unavailable { .. })));
//! // The rule fired once; the retry goes through.
//! store.stage(&path, SecretData::text("v2"), r).await?;
//! assert_eq!(store.calls(Method::Stage), 2);
//! assert_eq!(store.injected(Method::Stage), 1);
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use rekey_core::{
    Metadata, MetadataPatch, PromoteRequest, PutOptions, RecordWrite, RequestCounts, RotationId, SecretData,
    SecretPath, SecretStore, SecretVersion, Snapshot, StageOutcome, StageRequest, StoreError, VersionId, VersionMeta,
    VersionSelector,
};

/// One method of [`SecretStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// [`SecretStore::put`].
    Put,
    /// [`SecretStore::read`].
    Read,
    /// [`SecretStore::stage`].
    Stage,
    /// [`SecretStore::promote`].
    Promote,
    /// [`SecretStore::discard`].
    Discard,
    /// [`SecretStore::list_versions`].
    ListVersions,
    /// [`SecretStore::read_metadata`].
    ReadMetadata,
    /// [`SecretStore::write_metadata`] and
    /// [`SecretStore::update_metadata`]: every metadata write.
    WriteMetadata,
    /// [`SecretStore::delete`].
    Delete,
}

impl Method {
    /// Every method, in declaration order.
    pub const ALL: [Method; 9] = [
        Method::Put,
        Method::Read,
        Method::Stage,
        Method::Promote,
        Method::Discard,
        Method::ListVersions,
        Method::ReadMetadata,
        Method::WriteMetadata,
        Method::Delete,
    ];

    /// The method's name in snake case (`"list_versions"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Put => "put",
            Method::Read => "read",
            Method::Stage => "stage",
            Method::Promote => "promote",
            Method::Discard => "discard",
            Method::ListVersions => "list_versions",
            Method::ReadMetadata => "read_metadata",
            Method::WriteMetadata => "write_metadata",
            Method::Delete => "delete",
        }
    }

    /// Whether the method changes the store.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Method::Put | Method::Stage | Method::Promote | Method::Discard | Method::WriteMetadata | Method::Delete
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type MakeError = Arc<dyn Fn(Method, &SecretPath) -> StoreError + Send + Sync>;

/// The failure a [`Rule`] injects.
///
/// [`StoreError`] is not `Clone`, so a fault holds a factory that makes a
/// fresh error each time the rule fires. By default the inner store is not
/// called; [`after_inner`](Self::after_inner) calls it first and then
/// returns the error anyway, which simulates a response lost after the write
/// happened (the case idempotent retries exist for).
#[derive(Clone)]
pub struct Fault {
    make: MakeError,
    after_inner: bool,
}

impl Fault {
    /// [`StoreError::Unavailable`] (retryable).
    pub fn unavailable() -> Self {
        Self::error_for(|m, p| StoreError::unavailable(format!("injected fault: {m} on {p}")))
    }

    /// [`StoreError::RateLimited`] (retryable), with no `retry_after`.
    pub fn rate_limited() -> Self {
        Self::error_for(|m, p| StoreError::RateLimited {
            message: format!("injected fault: {m} on {p}"),
            retry_after: None,
        })
    }

    /// [`StoreError::Conflict`] on the called path, with unknown versions.
    pub fn conflict() -> Self {
        Self::error_for(|_, p| StoreError::Conflict { path: p.as_str().to_owned(), expected: None, actual: None })
    }

    /// [`StoreError::NotFound`] on the called path.
    pub fn not_found() -> Self {
        Self::error_for(|_, p| StoreError::not_found(p.as_str(), None))
    }

    /// [`StoreError::PermissionDenied`] on the called path.
    pub fn permission_denied() -> Self {
        Self::error_for(|m, p| StoreError::PermissionDenied {
            path: Some(p.as_str().to_owned()),
            message: format!("injected fault: {m}"),
        })
    }

    /// Whatever `make` returns.
    ///
    /// ```
    /// use rekey_core::StoreError;
    /// use rekey_memory::Fault;
    /// let f = Fault::error(|| StoreError::NotSupported { message: "no".into() });
    /// # let _ = f;
    /// ```
    pub fn error(make: impl Fn() -> StoreError + Send + Sync + 'static) -> Self {
        Self::error_for(move |_, _| make())
    }

    /// Whatever `make` returns for the called method and path.
    pub fn error_for(make: impl Fn(Method, &SecretPath) -> StoreError + Send + Sync + 'static) -> Self {
        Self { make: Arc::new(make), after_inner: false }
    }

    /// A lost response: the inner store performs the call, then the caller
    /// gets [`StoreError::Unavailable`] anyway.
    pub fn lost_response() -> Self {
        Self::unavailable().after_inner()
    }

    /// Performs the inner call first and returns this fault's error instead
    /// of its result (whatever that result was).
    pub fn after_inner(mut self) -> Self {
        self.after_inner = true;
        self
    }

    /// Whether the inner call is performed before failing.
    pub fn is_after_inner(&self) -> bool {
        self.after_inner
    }
}

impl fmt::Debug for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fault").field("after_inner", &self.after_inner).finish_non_exhaustive()
    }
}

/// Which calls to disturb, and how.
///
/// A rule matches calls of one [`Method`] ([`Rule::on`]) or of any
/// ([`Rule::any`]), optionally on one path only. Of the matching calls made
/// after the rule is added, it skips the first [`skip`](Self::skip) ones,
/// then fires on the next [`times`](Self::times) ones (all of them by
/// default). When it fires it sleeps for its [`delay`](Self::delay), then
/// fails with its [`Fault`], if it has each.
///
/// ```
/// use std::time::Duration;
/// use rekey_memory::{Fault, Method, Rule};
/// // The 3rd call from now, of any method, fails.
/// let a = Rule::any().nth(3).fail(Fault::unavailable());
/// // Every promote fails after the promote happened (a lost response).
/// let b = Rule::on(Method::Promote).fail(Fault::lost_response());
/// // The first two reads take a second each.
/// let c = Rule::on(Method::Read).times(2).delay(Duration::from_secs(1));
/// # let _ = (a, b, c);
/// ```
#[derive(Clone, Debug)]
pub struct Rule {
    method: Option<Method>,
    path: Option<SecretPath>,
    skip: u64,
    times: Option<u64>,
    delay: Option<Duration>,
    fault: Option<Fault>,
    during: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Rule {
    /// A rule matching calls of every method.
    pub fn any() -> Self {
        Self { method: None, path: None, skip: 0, times: None, delay: None, fault: None, during: None }
    }

    /// A rule matching calls of `method`.
    pub fn on(method: Method) -> Self {
        Self { method: Some(method), ..Self::any() }
    }

    /// Matches calls on `path` only.
    pub fn path(mut self, path: SecretPath) -> Self {
        self.path = Some(path);
        self
    }

    /// Fires on the `n`th matching call only (1 = the next one; 0 counts as
    /// 1).
    pub fn nth(self, n: u64) -> Self {
        self.skip(n.saturating_sub(1)).times(1)
    }

    /// Lets the first `n` matching calls through untouched.
    pub fn skip(mut self, n: u64) -> Self {
        self.skip = n;
        self
    }

    /// Fires on `n` matching calls (after the skipped ones), then never
    /// again.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Sleeps this long before the call (using the store's sleep function).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Matches only while the store's clock (see
    /// [`FaultInjectingStore::with_clock`]; the system clock without one)
    /// reads a time in `[from, until)`: an outage window in clock time, for
    /// tests that move a manual clock through it (calls outside the window
    /// are not counted by `skip`/`times`).
    pub fn during(mut self, from: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        self.during = Some((from, until));
        self
    }

    /// Fails with `fault` when firing.
    pub fn fail(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    fn matches(&self, method: Method, path: &SecretPath, now: DateTime<Utc>) -> bool {
        self.method.is_none_or(|m| m == method)
            && self.path.as_ref().is_none_or(|p| p == path)
            && self.during.is_none_or(|(from, until)| from <= now && now < until)
    }
}

/// Identifies a rule added to a [`FaultInjectingStore`], to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleId(u64);

/// One call recorded in a [`FaultInjectingStore`]'s log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// 1-based number of the call, in the order calls arrived.
    pub seq: u64,
    /// The method called.
    pub method: Method,
    /// The path it was called on.
    pub path: SecretPath,
    /// Whether the inner store was called.
    pub reached_inner: bool,
    /// Whether a fault was injected.
    pub injected: bool,
    /// The [`kind`](StoreError::kind) of the error the caller got, `None` on
    /// success.
    pub error: Option<&'static str>,
}

/// An async sleep, injectable so that tests using a manual clock never wait.
type SleepFn = Arc<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>;

struct ActiveRule {
    id: RuleId,
    rule: Rule,
    seen: u64,
    fired: u64,
}

#[derive(Default)]
struct State {
    rules: Vec<ActiveRule>,
    next_rule: u64,
    seq: u64,
    calls: [u64; 9],
    injected: [u64; 9],
    log: Vec<Call>,
    log_enabled: bool,
}

/// A [`SecretStore`] layer that injects faults and delays into calls to the
/// store it wraps, and counts every call. See the [module docs](self).
///
/// Counters and the call log count every call that reaches this layer,
/// including the ones it fails; that is also how tests count the store round
/// trips of a rotation. The call log is on by default
/// ([`set_log`](Self::set_log) turns it off for long runs).
pub struct FaultInjectingStore<S> {
    inner: S,
    state: Mutex<State>,
    sleep: SleepFn,
    clock: Option<Arc<dyn rekey_core::Clock>>,
}

impl<S: SecretStore> FaultInjectingStore<S> {
    /// Wraps `inner`, with no rules. Delays sleep with `tokio::time::sleep`
    /// (feature `tokio`, on by default; without it, until
    /// [`with_sleep`](Self::with_sleep) is called, delays are skipped).
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            state: Mutex::new(State { log_enabled: true, ..State::default() }),
            sleep: default_sleep(),
            clock: None,
        }
    }

    /// Sleeps with `sleep` for delays, e.g. a manual clock's sleep.
    pub fn with_sleep(mut self, sleep: impl Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync + 'static) -> Self {
        self.sleep = Arc::new(sleep);
        self
    }

    /// Sleeps on an engine [`Clock`](rekey_core::Clock) for delays, and
    /// reads it for [`Rule::during`] windows, so that a test driving a
    /// [`ManualClock`](rekey_core::ManualClock) controls both.
    pub fn with_clock(mut self, clock: Arc<dyn rekey_core::Clock>) -> Self {
        self.clock = Some(clock.clone());
        self.with_sleep(move |d| clock.sleep(d))
    }

    /// Every call fails as [`Fault::unavailable`] while the clock reads a
    /// time in `[from, until)`: a store outage in clock time.
    pub fn outage(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> RuleId {
        self.add_rule(Rule::any().during(from, until).fail(Fault::unavailable()))
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Adds a rule; it counts matching calls from now on.
    pub fn add_rule(&self, rule: Rule) -> RuleId {
        let mut st = self.state.lock();
        st.next_rule += 1;
        let id = RuleId(st.next_rule);
        st.rules.push(ActiveRule { id, rule, seen: 0, fired: 0 });
        id
    }

    /// Removes a rule; `false` if it was not there.
    pub fn remove_rule(&self, id: RuleId) -> bool {
        let mut st = self.state.lock();
        let before = st.rules.len();
        st.rules.retain(|r| r.id != id);
        st.rules.len() != before
    }

    /// Removes every rule.
    pub fn clear_rules(&self) {
        self.state.lock().rules.clear();
    }

    /// How many times a rule has fired so far (`None` if it is not there).
    pub fn fired(&self, id: RuleId) -> Option<u64> {
        self.state.lock().rules.iter().find(|r| r.id == id).map(|r| r.fired)
    }

    /// Fails the `n`th call from now, of any method.
    pub fn fail_nth(&self, n: u64, fault: Fault) -> RuleId {
        self.add_rule(Rule::any().nth(n).fail(fault))
    }

    /// Fails the `n`th call of `method` from now.
    pub fn fail_nth_of(&self, method: Method, n: u64, fault: Fault) -> RuleId {
        self.add_rule(Rule::on(method).nth(n).fail(fault))
    }

    /// Fails every call of `method` until the rule is removed.
    pub fn fail_every(&self, method: Method, fault: Fault) -> RuleId {
        self.add_rule(Rule::on(method).fail(fault))
    }

    /// Delays every call of `method` until the rule is removed.
    pub fn delay_every(&self, method: Method, delay: Duration) -> RuleId {
        self.add_rule(Rule::on(method).delay(delay))
    }

    /// Calls of `method` received so far.
    pub fn calls(&self, method: Method) -> u64 {
        self.state.lock().calls[method.index()]
    }

    /// Calls of every method received so far.
    pub fn total_calls(&self) -> u64 {
        self.state.lock().calls.iter().sum()
    }

    /// Calls that changed or may have changed the store (see
    /// [`Method::is_write`]).
    pub fn write_calls(&self) -> u64 {
        let st = self.state.lock();
        Method::ALL.iter().filter(|m| m.is_write()).map(|m| st.calls[m.index()]).sum()
    }

    /// Faults injected into calls of `method` so far.
    pub fn injected(&self, method: Method) -> u64 {
        self.state.lock().injected[method.index()]
    }

    /// Faults injected so far.
    pub fn total_injected(&self) -> u64 {
        self.state.lock().injected.iter().sum()
    }

    /// The calls completed so far, in the order they completed.
    pub fn call_log(&self) -> Vec<Call> {
        self.state.lock().log.clone()
    }

    /// Turns the call log on or off (counters always run).
    pub fn set_log(&self, enabled: bool) {
        let mut st = self.state.lock();
        st.log_enabled = enabled;
        if !enabled {
            st.log = Vec::new();
        }
    }

    /// Sets every counter to zero and empties the call log; rules stay.
    pub fn reset_counters(&self) {
        let mut st = self.state.lock();
        st.calls = [0; 9];
        st.injected = [0; 9];
        st.log.clear();
    }

    /// Decides, under the lock, what happens to one call.
    fn plan(&self, method: Method, path: &SecretPath) -> (u64, Duration, Option<Fault>) {
        let now = self.clock.as_ref().map_or_else(Utc::now, |c| c.now());
        let mut st = self.state.lock();
        st.seq += 1;
        st.calls[method.index()] += 1;
        let seq = st.seq;
        let (mut delay, mut fault) = (Duration::ZERO, None);
        for r in st.rules.iter_mut().filter(|r| r.rule.matches(method, path, now)) {
            r.seen += 1;
            if r.seen <= r.rule.skip || r.rule.times.is_some_and(|t| r.fired >= t) {
                continue;
            }
            r.fired += 1;
            delay = delay.saturating_add(r.rule.delay.unwrap_or_default());
            if fault.is_none() {
                fault = r.rule.fault.clone();
            }
        }
        if fault.is_some() {
            st.injected[method.index()] += 1;
        }
        (seq, delay, fault)
    }

    /// Counts the last call on `path` of `from` as one of `to` instead.
    fn reclassify_last(&self, path: &SecretPath, from: Method, to: Method) {
        let mut st = self.state.lock();
        st.calls[from.index()] = st.calls[from.index()].saturating_sub(1);
        st.calls[to.index()] += 1;
        if let Some(c) = st.log.iter_mut().rev().find(|c| c.method == from && &c.path == path) {
            c.method = to;
        }
    }

    fn record(&self, call: Call) {
        let mut st = self.state.lock();
        if st.log_enabled {
            st.log.push(call);
        }
    }

    async fn run<'a, T, F>(&'a self, method: Method, path: &'a SecretPath, call: F) -> Result<T, StoreError>
    where
        F: FnOnce() -> BoxFuture<'a, Result<T, StoreError>>,
    {
        let (seq, delay, fault) = self.plan(method, path);
        if !delay.is_zero() {
            (self.sleep)(delay).await;
        }
        let injected = fault.is_some();
        let (reached_inner, result) = match fault {
            Some(f) if !f.after_inner => (false, Err((f.make)(method, path))),
            Some(f) => {
                let _ = call().await;
                (true, Err((f.make)(method, path)))
            }
            None => (true, call().await),
        };
        self.record(Call {
            seq,
            method,
            path: path.clone(),
            reached_inner,
            injected,
            error: result.as_ref().err().map(StoreError::kind),
        });
        result
    }
}

#[cfg(feature = "tokio")]
fn default_sleep() -> SleepFn {
    Arc::new(|d| Box::pin(tokio::time::sleep(d)))
}

#[cfg(not(feature = "tokio"))]
fn default_sleep() -> SleepFn {
    Arc::new(|_| Box::pin(futures::future::ready(())))
}

impl<S: SecretStore> fmt::Debug for FaultInjectingStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        f.debug_struct("FaultInjectingStore")
            .field("inner", &self.inner)
            .field("rules", &st.rules.len())
            .field("calls", &st.calls.iter().sum::<u64>())
            .field("injected", &st.injected.iter().sum::<u64>())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<S: SecretStore> SecretStore for FaultInjectingStore<S> {
    async fn put(&self, path: &SecretPath, data: SecretData, opts: PutOptions) -> Result<VersionMeta, StoreError> {
        self.run(Method::Put, path, || self.inner.put(path, data, opts)).await
    }
    async fn read(&self, path: &SecretPath, selector: &VersionSelector) -> Result<SecretVersion, StoreError> {
        self.run(Method::Read, path, || self.inner.read(path, selector)).await
    }
    async fn stage(
        &self,
        path: &SecretPath,
        data: SecretData,
        rotation_id: RotationId,
    ) -> Result<VersionMeta, StoreError> {
        self.run(Method::Stage, path, || self.inner.stage(path, data, rotation_id)).await
    }
    async fn promote(
        &self,
        path: &SecretPath,
        version: &VersionId,
        expected_current: &VersionId,
    ) -> Result<VersionMeta, StoreError> {
        self.run(Method::Promote, path, || self.inner.promote(path, version, expected_current)).await
    }
    async fn discard(&self, path: &SecretPath, version: &VersionId) -> Result<(), StoreError> {
        self.run(Method::Discard, path, || self.inner.discard(path, version)).await
    }
    async fn list_versions(&self, path: &SecretPath) -> Result<Vec<VersionMeta>, StoreError> {
        self.run(Method::ListVersions, path, || self.inner.list_versions(path)).await
    }
    async fn read_metadata(&self, path: &SecretPath) -> Result<Metadata, StoreError> {
        self.run(Method::ReadMetadata, path, || self.inner.read_metadata(path)).await
    }
    async fn write_metadata(&self, path: &SecretPath, metadata: Metadata) -> Result<(), StoreError> {
        self.run(Method::WriteMetadata, path, || self.inner.write_metadata(path, metadata)).await
    }
    async fn update_metadata(&self, path: &SecretPath, patch: MetadataPatch) -> Result<(), StoreError> {
        self.run(Method::WriteMetadata, path, || self.inner.update_metadata(path, patch)).await
    }
    // The rotation calls pass through as one call each, counted (and
    // disturbed) as the method they chiefly are: a snapshot is a read, a
    // staged rotation a stage, its promotion a promote, an immediate write a
    // put.
    async fn snapshot(&self, path: &SecretPath, with_value: bool) -> Result<Snapshot, StoreError> {
        self.run(Method::Read, path, || self.inner.snapshot(path, with_value)).await
    }
    async fn stage_rotation(
        &self,
        path: &SecretPath,
        data: SecretData,
        req: StageRequest,
    ) -> Result<StageOutcome, StoreError> {
        let r = self.run(Method::Stage, path, || self.inner.stage_rotation(path, data, req)).await;
        if matches!(&r, Ok(StageOutcome::Journalled(_)) | Err(StoreError::InvalidInput { .. })) {
            // It found a journal, or a value it may not replace, and wrote
            // nothing: a read.
            self.reclassify_last(path, Method::Stage, Method::Read);
        }
        r
    }
    async fn promote_rotation(&self, path: &SecretPath, req: PromoteRequest<'_>) -> Result<VersionMeta, StoreError> {
        self.run(Method::Promote, path, || self.inner.promote_rotation(path, req)).await
    }
    async fn put_rotation(
        &self,
        path: &SecretPath,
        data: SecretData,
        opts: PutOptions,
        record: &RecordWrite,
    ) -> Result<VersionMeta, StoreError> {
        self.run(Method::Put, path, || self.inner.put_rotation(path, data, opts, record)).await
    }
    fn request_counts(&self) -> RequestCounts {
        self.inner.request_counts()
    }
    async fn delete(&self, path: &SecretPath) -> Result<(), StoreError> {
        self.run(Method::Delete, path, || self.inner.delete(path)).await
    }
}
