//! One task per listener that keeps every connection's clocks: the idle timeout, the HTTP/1
//! header-read deadline, and the shutdown phases.
//!
//! A connection's task polls only its connection and one atomic signal. Timers per connection
//! (an interval for the idle check, a shutdown watch, a timer armed by hyper for every request
//! head) would be polled or armed and disarmed on every wake-up, which on small proxied
//! responses was a measurable share of the work; the watchdog instead looks at every
//! connection's state a few times per timeout and wakes only the ones that must act.
//!
//! The header-read deadline needs no timer of its own: an HTTP/1 connection reads the next
//! request head from the moment the previous response has been sent (or from the start), so a
//! connection with no request in flight for `header_read_timeout` is one whose client has not
//! sent a complete head in that time, whether it trickles one (slowloris) or sends nothing.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use tokio::sync::watch;

use super::lifecycle::Lifecycle;
use crate::proxy::ClientInfo;

/// The watchdog never looks more often than this, whatever the timeouts.
const MIN_TICK: Duration = Duration::from_millis(50);
/// Nor less often than this.
const MAX_TICK: Duration = Duration::from_secs(5);

/// What a connection is told to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Signal {
    /// Nothing yet.
    #[default]
    Serve = 0,
    /// Finish the request in flight, then close (idle timeout or shutdown drain).
    Close = 1,
    /// Drop the connection now (no request head in time, or the drain deadline passed).
    Drop = 2,
}

impl Signal {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Serve,
            1 => Self::Close,
            _ => Self::Drop,
        }
    }
}

/// The shared side of the watchdog: connections register here.
pub struct Watchdog(Arc<Shared>);

struct Shared {
    /// Times are nanoseconds since this instant, so they fit in an atomic.
    epoch: Instant,
    /// The time of the latest check, which the coarse clock counts from.
    checked_at: AtomicU64,
    idle_timeout: Duration,
    header_read_timeout: Duration,
    tick: Duration,
    registry: Mutex<Registry>,
}

struct Registry {
    conns: Vec<Weak<ConnState>>,
    /// At this many entries a registration first forgets closed connections, so that between
    /// two checks a burst of short connections cannot grow the list without bound.
    prune_at: usize,
    /// The signal every connection gets from the shutdown phase; new ones start with it.
    phase_signal: u8,
}

/// The smallest `prune_at`.
const MIN_PRUNE_AT: usize = 1024;

impl Default for Registry {
    fn default() -> Self {
        Self {
            conns: Vec::new(),
            prune_at: MIN_PRUNE_AT,
            phase_signal: Signal::Serve as u8,
        }
    }
}

impl Registry {
    fn add(&mut self, conn: &Arc<ConnState>) {
        if self.conns.len() >= self.prune_at {
            self.conns.retain(|weak| weak.strong_count() > 0);
            self.prune_at = (self.conns.len() * 2).max(MIN_PRUNE_AT);
        }
        self.conns.push(Arc::downgrade(conn));
    }
}

impl Watchdog {
    /// Starts the watchdog for connections with `idle_timeout` and `header_read_timeout`; it
    /// runs until `phase` reaches [`Lifecycle::Closed`] (after telling every connection to drop).
    pub fn spawn(
        idle_timeout: Duration,
        header_read_timeout: Duration,
        phase: watch::Receiver<Lifecycle>,
    ) -> Self {
        let tick = (idle_timeout.min(header_read_timeout) / 4).clamp(MIN_TICK, MAX_TICK);
        let shared = Arc::new(Shared {
            epoch: Instant::now(),
            checked_at: AtomicU64::new(0),
            idle_timeout,
            header_read_timeout,
            tick,
            registry: Mutex::new(Registry::default()),
        });
        tokio::spawn(watch_connections(Arc::downgrade(&shared), phase));
        Self(shared)
    }

    /// Registers a new connection from `client`.
    pub fn register(&self, client: ClientInfo) -> Arc<ConnState> {
        let mut registry = self.0.lock();
        let state = Arc::new(ConnState {
            client,
            shared: self.0.clone(),
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.0.now()),
            reads_heads: AtomicBool::new(true),
            signal: AtomicU8::new(registry.phase_signal),
            conn_waker: AtomicWaker::new(),
        });
        registry.add(&state);
        state
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        // Nothing panics while holding the lock; a poisoned registry is still consistent.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        self.nanos(Instant::now())
    }

    /// The time as one atomic load instead of a clock read: the latest check plus one tick,
    /// which is not earlier than the real time while the watchdog keeps its schedule. Idle
    /// times taken from it end up to one tick late; early only by as much as the current
    /// check itself runs late (a millisecond or so: tokio's timers have millisecond resolution).
    fn coarse_now(&self) -> u64 {
        self.checked_at
            .load(Ordering::Acquire)
            .saturating_add(u64::try_from(self.tick.as_nanos()).unwrap_or(u64::MAX))
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// One pass: connections late with a request head are told to drop, idle ones to close,
    /// dead entries are forgotten.
    fn check(&self) {
        let now = self.now();
        self.checked_at.store(now, Ordering::Release);
        let idle_limit = u64::try_from(self.idle_timeout.as_nanos()).unwrap_or(u64::MAX);
        let head_limit = u64::try_from(self.header_read_timeout.as_nanos()).unwrap_or(u64::MAX);
        self.lock().conns.retain(|weak| {
            let Some(conn) = weak.upgrade() else {
                return false;
            };
            if conn.busy.load(Ordering::Acquire) == 0 {
                let idle_for = now.saturating_sub(conn.idle_since.load(Ordering::Acquire));
                if idle_for >= head_limit && conn.reads_heads.load(Ordering::Acquire) {
                    // As hyper's own header timeout does: no answer, the connection is cut.
                    conn.raise(Signal::Drop);
                } else if idle_for >= idle_limit {
                    conn.raise(Signal::Close);
                }
            }
            true
        });
    }

    /// Tells every connection, present and future, to follow the shutdown phase.
    fn broadcast(&self, phase: Lifecycle) {
        let signal = match phase {
            Lifecycle::Running => return,
            Lifecycle::Draining => Signal::Close,
            Lifecycle::Closed => Signal::Drop,
        };
        let mut registry = self.lock();
        registry.phase_signal = signal as u8;
        for conn in registry.conns.iter().filter_map(Weak::upgrade) {
            conn.raise(signal);
        }
    }
}

async fn watch_connections(shared: Weak<Shared>, mut phase: watch::Receiver<Lifecycle>) {
    let Some(tick) = shared.upgrade().map(|s| s.tick) else {
        return;
    };
    let mut every = tokio::time::interval(tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let phase_now = tokio::select! {
            _ = every.tick() => None,
            changed = phase.changed() => Some(if changed.is_err() { Lifecycle::Closed } else { *phase.borrow() }),
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match phase_now {
            None => shared.check(),
            Some(p) => {
                shared.broadcast(p);
                if p == Lifecycle::Closed {
                    return;
                }
            }
        }
    }
}

/// One connection's state, shared between its task, its requests and the watchdog.
///
/// The client's side of the connection lives here too: every request reads both, and one
/// allocation keeps what a request touches of its connection together in memory.
pub struct ConnState {
    client: ClientInfo,
    shared: Arc<Shared>,
    /// Requests in flight (HTTP/2 has several).
    busy: AtomicUsize,
    /// When the last response finished streaming (or the connection was set up).
    idle_since: AtomicU64,
    /// Whether the header-read timeout applies: HTTP/1, where the client owes the next head
    /// whenever no request is in flight. An HTTP/2 connection may rest between streams; only
    /// the idle timeout applies to it once its first request has come.
    reads_heads: AtomicBool,
    signal: AtomicU8,
    conn_waker: AtomicWaker,
}

impl ConnState {
    /// The client this connection serves.
    pub fn client(&self) -> &ClientInfo {
        &self.client
    }

    /// Marks the connection busy with a request of `version` until the guard is dropped (when
    /// the response has streamed).
    pub fn busy(self: &Arc<Self>, version: http::Version) -> BusyGuard {
        if version == http::Version::HTTP_2 {
            self.reads_heads.store(false, Ordering::Release);
        }
        self.busy.fetch_add(1, Ordering::AcqRel);
        BusyGuard(self.clone())
    }

    /// Starts the wait for the first request head now: after a TLS handshake, which has a
    /// timeout of its own.
    pub fn ready_for_requests(&self) {
        self.idle_since.store(self.shared.now(), Ordering::Release);
    }

    fn raise(&self, signal: Signal) {
        let previous = self.signal.fetch_max(signal as u8, Ordering::AcqRel);
        if previous < signal as u8 {
            self.conn_waker.wake();
        }
    }

    /// Resolves when the signal is stronger than the one `seen` last acted on, and records it
    /// there as acted on.
    pub fn poll_signal(&self, cx: &mut Context<'_>, seen: &mut SignalSeen) -> Poll<Signal> {
        if let Some(signal) = self.take_stronger(seen) {
            return Poll::Ready(signal);
        }
        // A task's waker is the same from one poll to the next: once left with the watchdog it
        // stays there until a signal takes it, so the common poll costs a load and a compare
        // instead of the waker slot's two atomic swaps.
        if seen
            .waker
            .as_ref()
            .is_some_and(|left| left.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        self.conn_waker.register(cx.waker());
        seen.waker = Some(cx.waker().clone());
        // Raised between the first look and the registration: the wake went to an old waker.
        self.take_stronger(seen).map_or(Poll::Pending, Poll::Ready)
    }

    /// The signal if it is stronger than the one `seen` last acted on, recorded there as acted on.
    fn take_stronger(&self, seen: &mut SignalSeen) -> Option<Signal> {
        let now = Signal::from_u8(self.signal.load(Ordering::Acquire));
        (now > seen.acted_on).then(|| {
            seen.acted_on = now;
            // The wake that announced it took the waker left with the watchdog.
            seen.waker = None;
            now
        })
    }
}

/// What a connection's task last acted on, and the waker it left with the watchdog.
#[derive(Debug, Default)]
pub struct SignalSeen {
    acted_on: Signal,
    waker: Option<std::task::Waker>,
}

impl SignalSeen {
    /// Nothing acted on yet.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Marks a connection busy until dropped.
pub struct BusyGuard(Arc<ConnState>);

impl BusyGuard {
    /// The connection this guard keeps busy.
    pub fn conn(&self) -> &Arc<ConnState> {
        &self.0
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        // Once per request: the coarse clock spares a clock read, and the idle timeout is
        // enforced at the watchdog's checks anyway.
        self.0
            .idle_since
            .store(self.0.shared.coarse_now(), Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    const BOUND: Duration = Duration::from_secs(5);
    /// An idle time that starts on the coarse clock may start early by as much as the
    /// watchdog's own check runs late, which on a loaded test machine is more than the timer's
    /// millisecond: the bound for "not before the timeout" in the tests below.
    const LATE_CHECK: Duration = Duration::from_millis(20);

    /// A watchdog with these timeouts, and the sender of its shutdown phase.
    fn start(idle: Duration, header_read: Duration) -> (watch::Sender<Lifecycle>, Watchdog) {
        let (tx, phase) = watch::channel(Lifecycle::Running);
        (tx, Watchdog::spawn(idle, header_read, phase))
    }

    /// A connection from a test client.
    fn register(watchdog: &Watchdog) -> Arc<ConnState> {
        watchdog.register(ClientInfo::new(([127, 0, 0, 1], 40000).into(), false))
    }

    async fn next_signal(conn: &ConnState, seen: &mut SignalSeen) -> Signal {
        tokio::time::timeout(BOUND, poll_fn(|cx| conn.poll_signal(cx, seen)))
            .await
            .expect("a signal within the bound")
    }

    #[tokio::test]
    async fn idle_connection_is_told_to_close_and_a_busy_one_is_not() {
        let (_tx, watchdog) = start(Duration::from_millis(100), Duration::from_secs(10));
        let idle = register(&watchdog);
        let busy = register(&watchdog);
        let _guard = busy.busy(http::Version::HTTP_11);
        assert_eq!(
            next_signal(&idle, &mut SignalSeen::new()).await,
            Signal::Close
        );
        // Two idle timeouts later the busy one has still not been told anything.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(
            busy.poll_signal(&mut cx, &mut SignalSeen::new())
                .is_pending()
        );
    }

    #[tokio::test]
    async fn a_connection_that_sends_no_head_in_time_is_told_to_drop() {
        let (_tx, watchdog) = start(Duration::from_secs(60), Duration::from_millis(200));
        let started = Instant::now();
        let conn = register(&watchdog);
        assert_eq!(
            next_signal(&conn, &mut SignalSeen::new()).await,
            Signal::Drop
        );
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn the_head_clock_runs_only_between_requests() {
        let (_tx, watchdog) = start(Duration::from_secs(60), Duration::from_millis(200));
        let conn = register(&watchdog);
        let mut seen = SignalSeen::new();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // A request in flight for longer than the header-read timeout: nothing is said.
        let guard = conn.busy(http::Version::HTTP_11);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(conn.poll_signal(&mut cx, &mut seen).is_pending());
        // Its response sent, the client owes the next head within the timeout again.
        drop(guard);
        let idle_from = Instant::now();
        assert_eq!(next_signal(&conn, &mut seen).await, Signal::Drop);
        assert!(idle_from.elapsed() + LATE_CHECK >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn an_http2_connection_rests_until_the_idle_timeout() {
        let (_tx, watchdog) = start(Duration::from_millis(400), Duration::from_millis(100));
        let conn = register(&watchdog);
        drop(conn.busy(http::Version::HTTP_2));
        let idle_from = Instant::now();
        assert_eq!(
            next_signal(&conn, &mut SignalSeen::new()).await,
            Signal::Close
        );
        assert!(idle_from.elapsed() + LATE_CHECK >= Duration::from_millis(400));
    }

    #[tokio::test]
    async fn the_head_clock_restarts_when_the_connection_is_ready() {
        let (_tx, watchdog) = start(Duration::from_secs(60), Duration::from_millis(300));
        let conn = register(&watchdog);
        // A TLS handshake took most of the timeout.
        tokio::time::sleep(Duration::from_millis(250)).await;
        conn.ready_for_requests();
        let ready_at = Instant::now();
        assert_eq!(
            next_signal(&conn, &mut SignalSeen::new()).await,
            Signal::Drop
        );
        assert!(ready_at.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn an_idle_connection_is_told_to_close_only_after_its_timeout() {
        let (_tx, watchdog) = start(Duration::from_millis(200), Duration::from_secs(10));
        let conn = register(&watchdog);
        tokio::time::sleep(Duration::from_millis(70)).await;
        drop(conn.busy(http::Version::HTTP_11));
        let idle_from = Instant::now();
        let signal = next_signal(&conn, &mut SignalSeen::new()).await;
        assert_eq!(signal, Signal::Close);
        assert!(idle_from.elapsed() + LATE_CHECK >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn closed_connections_are_forgotten_between_checks() {
        let (_tx, watchdog) = start(Duration::from_secs(60), Duration::from_secs(10));
        let open = register(&watchdog);
        for _ in 0..10 * MIN_PRUNE_AT {
            drop(register(&watchdog));
        }
        let entries = watchdog.0.lock().conns.len();
        assert!(
            entries <= MIN_PRUNE_AT,
            "{entries} entries for 1 open connection"
        );
        drop(open);
    }

    #[tokio::test]
    async fn shutdown_phases_reach_open_and_new_connections() {
        let (tx, watchdog) = start(Duration::from_secs(60), Duration::from_secs(10));
        let open = register(&watchdog);
        let mut open_seen = SignalSeen::new();
        // Polled first, as a connection's task is: its waker is left with the watchdog.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(open.poll_signal(&mut cx, &mut open_seen).is_pending());
        tx.send(Lifecycle::Draining).unwrap();
        assert_eq!(next_signal(&open, &mut open_seen).await, Signal::Close);
        // Accepted just before the listener stopped, registered after the broadcast.
        let late = register(&watchdog);
        let mut late_seen = SignalSeen::new();
        assert_eq!(next_signal(&late, &mut late_seen).await, Signal::Close);
        // Acted on: the next signal is a stronger one, and its wake reaches the waiting task.
        let waiting = tokio::spawn(async move { next_signal(&open, &mut open_seen).await });
        // On this single-threaded runtime the yield lets the task poll once and leave its
        // waker before the signal is raised.
        tokio::task::yield_now().await;
        tx.send(Lifecycle::Closed).unwrap();
        assert_eq!(waiting.await.unwrap(), Signal::Drop);
        assert_eq!(next_signal(&late, &mut late_seen).await, Signal::Drop);
    }
}
