//! Spinning before parking: the runtime's threads (and its callers', when they opt in) wait a
//! little before they block, so a hand-off between threads does not pay for a sleeping CPU.
//!
//! Why: on the 2-vCPU VMs this runs on, waking a thread whose CPU went idle costs about 20 µs
//! (the vCPU halts and is woken through the hypervisor; `cargo bench --bench wakeup`), and a
//! request crosses threads four times (caller → supervisor → instance actor → supervisor →
//! caller). A thread that spins a little (100 µs by default) after its last piece of work sees
//! the next hand-off in under a microsecond instead (a round trip: 45 µs → 0.7 µs p50).
//!
//! How: every thread has a [`Doorbell`], an atomic counter. Whoever hands work to a thread rings
//! its doorbell right after the wake-up it sends ([`Ringing`] does it for futures awaited across
//! threads). [`before_park`], a tokio `on_thread_park` hook, spins (yielding the CPU to any
//! other runnable thread) until the doorbell rings or the budget runs out; then tokio parks as
//! usual, returning at once when the wake-up already came. Nothing depends on the doorbell for
//! correctness: wake-ups are tokio's own, a missed or extra ring only costs a spin.

use std::cell::{Cell, OnceCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// Counts hand-offs to one thread.
#[derive(Clone, Default)]
pub struct Doorbell(Arc<AtomicU64>);

impl Doorbell {
    /// Tells the thread that work was handed to it (after the wake-up was sent).
    pub fn ring(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    fn rings(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

thread_local! {
    static DOORBELL: OnceCell<Doorbell> = const { OnceCell::new() };
    /// The rings this thread has seen, as of its last [`before_park`] or [`after_unpark`].
    static SEEN: Cell<u64> = const { Cell::new(0) };
}

/// The calling thread's doorbell.
pub fn current() -> Doorbell {
    DOORBELL.with(|bell| bell.get_or_init(Doorbell::default).clone())
}

/// Spins until the calling thread's doorbell rings or `budget` passes. Returns at once when it
/// rang since the last call: the work it announced is either done or about to be found by the
/// caller's own check, and spinning then would only delay it.
pub fn before_park(budget: Duration) {
    DOORBELL.with(|bell| {
        let bell = bell.get_or_init(Doorbell::default);
        let seen = SEEN.get();
        let mut rings = bell.rings();
        if rings == seen && !budget.is_zero() {
            let start = Instant::now();
            while rings == seen && start.elapsed() < budget {
                // Gives the CPU to a runnable thread (an execution) rather than competing with it.
                std::thread::yield_now();
                rings = bell.rings();
            }
        }
        SEEN.set(rings);
    })
}

/// Notes the rings so far as seen: to be called when the thread wakes up from a park, before it
/// runs what woke it (the rings that announced it must not cut the next spin short).
pub fn after_unpark() {
    DOORBELL.with(|bell| SEEN.set(bell.get_or_init(Doorbell::default).rings()));
}

/// Adds the hooks to a tokio runtime `builder` (current-thread or multi-thread): its threads
/// spin up to `budget` before parking. A multi-thread runtime runs them on its worker threads
/// only: the thread that calls its `block_on` parks without spinning (spawn the work instead,
/// or use a current-thread runtime, as [`tokio_runtime`] does).
pub fn with_hooks(builder: &mut tokio::runtime::Builder, budget: Duration) -> &mut tokio::runtime::Builder {
    builder.on_thread_park(move || before_park(budget)).on_thread_unpark(after_unpark)
}

/// A current-thread tokio runtime, for the thread that calls this, which spins up to `budget`
/// before parking. It is what actix's default runtime is, plus the hooks.
pub fn tokio_runtime(budget: Duration) -> std::io::Result<tokio::runtime::Runtime> {
    with_hooks(tokio::runtime::Builder::new_current_thread().enable_all(), budget).build()
}

/// Like [`tokio_runtime`], for a new thread whose doorbell is `bell`, made beforehand so that
/// others can ring it (call it on the new thread: in the factory of an actix `Arbiter`).
pub fn tokio_runtime_with(bell: Doorbell, budget: Duration) -> std::io::Result<tokio::runtime::Runtime> {
    DOORBELL.with(|cell| {
        if cell.set(bell).is_err() {
            return Err(std::io::Error::other("this thread already has a doorbell"));
        }
        Ok(())
    })?;
    tokio_runtime(budget)
}

pin_project_lite::pin_project! {
    /// Wraps a future awaited across threads: its wake-ups also ring the doorbell of the thread
    /// that polled it, so that thread stops spinning and runs it at once.
    pub struct Ringing<F> {
        #[pin]
        inner: F,
        // The waker given by the last poll, and the ringing one made from it.
        waker: Option<(Waker, Waker)>,
    }
}

impl<F> Ringing<F> {
    pub fn new(inner: F) -> Self {
        Ringing { inner, waker: None }
    }

    /// The wrapped future.
    pub fn into_inner(self) -> F {
        self.inner
    }
}

struct RingingWaker {
    inner: Waker,
    bell: Doorbell,
}

impl Wake for RingingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.inner.wake_by_ref();
        self.bell.ring();
    }
}

impl<F: Future> Future for Ringing<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let waker = match this.waker {
            Some((given, ringing)) if given.will_wake(cx.waker()) => ringing,
            _ => {
                let ringing = Waker::from(Arc::new(RingingWaker { inner: cx.waker().clone(), bell: current() }));
                &this.waker.insert((cx.waker().clone(), ringing)).1
            }
        };
        this.inner.poll(&mut Context::from_waker(waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_ends_the_spin_and_an_earlier_one_skips_it() {
        let bell = current();
        before_park(Duration::ZERO); // seen = rings so far
        let ringer = {
            let bell = bell.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                bell.ring();
            })
        };
        let start = Instant::now();
        before_park(Duration::from_secs(10));
        assert!(start.elapsed() < Duration::from_secs(5), "the ring ended the spin");
        ringer.join().unwrap();

        bell.ring(); // rang while "busy": the next park must not spin
        let start = Instant::now();
        before_park(Duration::from_secs(10));
        assert!(start.elapsed() < Duration::from_secs(1));

        let start = Instant::now();
        before_park(Duration::from_millis(30)); // nothing rings: the whole budget
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_ringing_future_rings_the_thread_that_polled_it() {
        let (send, receive) = tokio::sync::oneshot::channel::<u32>();
        let mut ringing = Ringing::new(receive);
        let waker = Waker::noop();
        assert!(Pin::new(&mut ringing).poll(&mut Context::from_waker(waker)).is_pending());
        let before = current().rings();
        std::thread::spawn(move || send.send(7).unwrap()).join().unwrap();
        assert_eq!(current().rings(), before + 1);
        assert_eq!(Pin::new(&mut ringing).poll(&mut Context::from_waker(waker)), Poll::Ready(Ok(7)));
    }
}
