//! Time: the [`Clock`] trait, the wall clock ([`SystemClock`]) and a clock
//! tests move by hand ([`ManualClock`]).
//!
//! Every wait the engine makes (retry backoff, verifier timeout) is a
//! [`Clock::sleep`], and every timestamp a [`Clock::now`], so a test drives a
//! whole schedule with a [`ManualClock`] and never sleeps for real.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, Either};

/// A source of time and of waits. Object safe: the manager holds an
/// `Arc<dyn Clock>`.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// A future that completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// The function a [`SystemClock`] sleeps with.
pub type SleepFn = dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync + 'static;

/// The wall clock, with waits performed by the caller's async runtime.
///
/// Core depends on no runtime timer (it uses tokio's `sync` parts only), so
/// the caller hands in the sleep function of the runtime it runs on:
///
/// ```
/// use rekey_core::SystemClock;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let clock = SystemClock::new(|d| Box::pin(tokio::time::sleep(d)));
/// # use rekey_core::Clock;
/// clock.sleep(std::time::Duration::from_millis(1)).await;
/// # }
/// ```
#[derive(Clone)]
pub struct SystemClock {
    sleep: Arc<SleepFn>,
}

impl SystemClock {
    /// A wall clock that waits with `sleep` (e.g. `tokio::time::sleep`,
    /// `async_std::task::sleep`), boxed.
    pub fn new<F>(sleep: F) -> Self
    where
        F: Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync + 'static,
    {
        Self { sleep: Arc::new(sleep) }
    }
}

impl fmt::Debug for SystemClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SystemClock")
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        if duration.is_zero() {
            return Box::pin(futures::future::ready(()));
        }
        (self.sleep)(duration)
    }
}

/// A clock that only moves when told to, for tests.
///
/// [`advance`](Self::advance) moves time forward and wakes every sleeper
/// whose deadline has passed; nothing ever sleeps for real. With
/// [`set_auto_advance(true)`](Self::set_auto_advance), a sleep instead moves
/// the clock forward to its deadline and completes as soon as it is polled, which lets a
/// test run through retries and backoffs in zero real time while the clock
/// still records how long they would have taken.
///
/// Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use rekey_core::{Clock, ManualClock};
/// # futures::executor::block_on(async {
/// let clock = ManualClock::new("2030-01-01T00:00:00Z".parse().unwrap());
/// let mut sleep = clock.sleep(Duration::from_secs(60));
/// assert!(futures::poll!(&mut sleep).is_pending());
/// clock.advance(Duration::from_secs(60));
/// assert!(futures::poll!(&mut sleep).is_ready());
/// # });
/// ```
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualState>>,
}

struct ManualState {
    now: DateTime<Utc>,
    auto_advance: bool,
    next_key: u64,
    /// Registered sleepers: (deadline, key) → waker.
    sleepers: BTreeMap<(DateTime<Utc>, u64), Waker>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ManualState {
                now: start,
                auto_advance: false,
                next_key: 0,
                sleepers: BTreeMap::new(),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, ManualState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves time forward by `by` and wakes the sleepers whose deadline has
    /// passed.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let wakers = {
            let mut s = self.state();
            s.now = s.now.checked_add_signed(by).unwrap_or(DateTime::<Utc>::MAX_UTC);
            Self::take_due(&mut s)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Sets the time (forward or backward) and wakes the sleepers whose
    /// deadline has passed.
    pub fn set(&self, now: DateTime<Utc>) {
        let wakers = {
            let mut s = self.state();
            s.now = now;
            Self::take_due(&mut s)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// When on, a sleep advances the clock by its duration and completes at
    /// once (see the type docs).
    pub fn set_auto_advance(&self, on: bool) {
        self.state().auto_advance = on;
    }

    /// How many sleeps are waiting for the clock to move (each counted once
    /// it has been polled).
    pub fn sleepers(&self) -> usize {
        self.state().sleepers.len()
    }

    /// The earliest deadline a sleeper waits for.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.state().sleepers.keys().next().map(|(d, _)| *d)
    }

    fn take_due(s: &mut ManualState) -> Vec<Waker> {
        let mut later = s.sleepers.split_off(&(s.now, u64::MAX));
        std::mem::swap(&mut later, &mut s.sleepers);
        later.into_values().collect()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state();
        f.debug_struct("ManualClock")
            .field("now", &s.now)
            .field("auto_advance", &s.auto_advance)
            .field("sleepers", &s.sleepers.len())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.state().now
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let by = chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        let mut s = self.state();
        let deadline = s.now.checked_add_signed(by).unwrap_or(DateTime::<Utc>::MAX_UTC);
        let key = s.next_key;
        s.next_key += 1;
        drop(s);
        Box::pin(ManualSleep { clock: self.clone(), deadline, key })
    }
}

struct ManualSleep {
    clock: ManualClock,
    deadline: DateTime<Utc>,
    key: u64,
}

impl Future for ManualSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.clock.state();
        if s.auto_advance && s.now < self.deadline {
            // Polled while in auto-advance mode: jump to the deadline.
            s.now = self.deadline;
            let wakers = ManualClock::take_due(&mut s);
            drop(s);
            wakers.into_iter().for_each(Waker::wake);
            return Poll::Ready(());
        }
        if s.now >= self.deadline {
            s.sleepers.remove(&(self.deadline, self.key));
            return Poll::Ready(());
        }
        s.sleepers.insert((self.deadline, self.key), cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        self.clock.state().sleepers.remove(&(self.deadline, self.key));
    }
}

/// The error of [`timeout`]: the future did not complete in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {0:?}")]
pub struct TimeoutElapsed(pub Duration);

/// Runs `future` until it completes or `limit` passes on `clock`, whichever
/// comes first. The future is dropped (cancelled) on timeout.
///
/// ```
/// use std::time::Duration;
/// use rekey_core::{timeout, ManualClock};
/// # futures::executor::block_on(async {
/// let clock = ManualClock::new(chrono::Utc::now());
/// clock.set_auto_advance(true);
/// let r = timeout(&clock, Duration::from_secs(5), futures::future::pending::<()>()).await;
/// assert!(r.is_err());
/// # });
/// ```
pub async fn timeout<F: Future>(clock: &dyn Clock, limit: Duration, future: F) -> Result<F::Output, TimeoutElapsed> {
    let future = std::pin::pin!(future);
    match futures::future::select(future, clock.sleep(limit)).await {
        Either::Left((out, _)) => Ok(out),
        Either::Right(((), _)) => Err(TimeoutElapsed(limit)),
    }
}
