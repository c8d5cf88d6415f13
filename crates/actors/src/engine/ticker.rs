//! The epoch ticker: a thread that advances the engine's epoch when a running call's time is
//! up, which interrupts wasm at its next loop header or function entry. Nothing polls: running
//! code only compares a counter, and the thread sleeps until the earliest deadline of the calls
//! in progress (or, when there are none, until one starts).
//!
//! Every call is set to be interrupted by the next increment, whatever it was made for; the
//! store's deadline callback ([`expired`]) then compares the time with the call's own deadline
//! and lets it go on if that is still ahead. So a call is stopped within the thread's wake-up
//! latency of its deadline, and handlers that end in time cost no wake-up at all. (A periodic
//! tick every millisecond, as before, took a CPU away from the executions a thousand times a
//! second, for 10-13 µs a time on the VMs this is measured on.)

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use wasmtime::{Engine, EngineWeak, UpdateDeadline};

/// The ticker of one engine; the thread stops when this is dropped (or the engine is).
pub struct Ticker {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Deadlines of the calls in progress, with an id to tell equal instants apart.
    deadlines: BTreeSet<(Instant, u64)>,
    next_id: u64,
    /// Deadlines up to this instant have had their increment.
    ticked: Option<Instant>,
    /// When the thread wakes by itself next; `None` while it waits to be told.
    wakes_at: Option<Instant>,
    stopped: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Ticker {
    /// Starts the ticker thread of `engine`.
    pub fn start(engine: &Engine) -> Ticker {
        let engine: EngineWeak = engine.weak();
        Ticker::with(move || engine.upgrade().map(|engine| engine.increment_epoch()).is_some())
    }

    /// Starts a ticker thread that calls `tick` (which says whether it still can) for each
    /// increment.
    fn with(tick: impl Fn() -> bool + Send + 'static) -> Ticker {
        let shared = Arc::new(Shared { state: Mutex::default(), changed: Condvar::new() });
        let thread = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("nexus-epoch".into())
            .spawn(move || run(&thread, tick))
            .expect("spawning the epoch ticker thread");
        Ticker { shared }
    }

    /// Watches a call that must end by `deadline` (its store's deadline callback being
    /// [`expired`]); the call is interrupted soon after it unless the returned guard is dropped
    /// first.
    pub fn watch(&self, deadline: Instant) -> Watch<'_> {
        let mut state = self.shared.lock();
        // A deadline at or before the last increment would never get one of its own.
        let deadline = match state.ticked {
            Some(ticked) if deadline <= ticked => ticked + Duration::from_nanos(1),
            _ => deadline,
        };
        let key = (deadline, state.next_id);
        state.next_id += 1;
        state.deadlines.insert(key);
        if state.wakes_at.is_none_or(|at| deadline < at) {
            self.shared.changed.notify_one();
        }
        Watch { shared: &self.shared, key }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.changed.notify_one();
    }
}

/// A call in progress, watched until this is dropped.
pub struct Watch<'a> {
    shared: &'a Shared,
    key: (Instant, u64),
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        self.shared.lock().deadlines.remove(&self.key);
    }
}

/// The deadline callback of a store whose call must end by `deadline`: an increment of the
/// epoch stops it if its time is up, and otherwise sets it to be checked at the next one.
pub fn expired(deadline: Instant) -> UpdateDeadline {
    if Instant::now() >= deadline { UpdateDeadline::Interrupt } else { UpdateDeadline::Continue(1) }
}

fn run(shared: &Shared, tick: impl Fn() -> bool) {
    let mut state = shared.lock();
    while !state.stopped {
        let after = state.ticked.map_or(Bound::Unbounded, |ticked| Bound::Excluded((ticked, u64::MAX)));
        let next = state.deadlines.range((after, Bound::Unbounded)).next().map(|&(deadline, _)| deadline);
        let now = Instant::now();
        state = match next {
            Some(deadline) if deadline <= now => {
                if !tick() {
                    return;
                }
                state.ticked = Some(now);
                continue;
            }
            Some(deadline) => {
                state.wakes_at = Some(deadline);
                shared.changed.wait_timeout(state, deadline - now).unwrap_or_else(PoisonError::into_inner).0
            }
            None => {
                state.wakes_at = None;
                shared.changed.wait(state).unwrap_or_else(PoisonError::into_inner)
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A ticker counting its increments.
    fn counting() -> (Ticker, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&count);
        (Ticker::with(move || counted.fetch_add(1, Ordering::SeqCst) < u64::MAX), count)
    }

    fn increments_during(count: &AtomicU64, during: Duration) -> u64 {
        let before = count.load(Ordering::SeqCst);
        std::thread::sleep(during);
        count.load(Ordering::SeqCst) - before
    }

    #[test]
    fn it_ticks_only_when_a_watched_deadline_passes() {
        let (ticker, count) = counting();
        assert_eq!(increments_during(&count, Duration::from_millis(30)), 0, "nothing watched, nothing ticks");
        let far = ticker.watch(Instant::now() + Duration::from_secs(60));
        assert_eq!(increments_during(&count, Duration::from_millis(30)), 0, "a deadline ahead does not tick");
        let near = ticker.watch(Instant::now() + Duration::from_millis(5));
        assert_eq!(increments_during(&count, Duration::from_millis(50)), 1, "a passed deadline ticks once");
        drop((near, far));
        assert!(ticker.shared.lock().deadlines.is_empty());
    }

    #[test]
    fn a_deadline_at_or_before_the_last_increment_still_gets_one() {
        let (ticker, count) = counting();
        let passed = Instant::now();
        let first = ticker.watch(passed);
        assert_eq!(increments_during(&count, Duration::from_millis(30)), 1);
        let again = ticker.watch(passed);
        assert_eq!(increments_during(&count, Duration::from_millis(30)), 1);
        drop((first, again));
    }

    #[test]
    fn expired_interrupts_only_past_the_deadline() {
        assert!(matches!(expired(Instant::now() - Duration::from_millis(1)), UpdateDeadline::Interrupt));
        assert!(matches!(expired(Instant::now() + Duration::from_secs(1)), UpdateDeadline::Continue(1)));
    }
}
