//! Promises settled by futures polled on the JavaScript thread itself.
//!
//! napi-rs's `spawn_future` polls every future on a tokio runtime of its own and creates a
//! threadsafe function per call to carry the result back: two more thread hops and a TSFN
//! per execution. Here a future is polled on the JavaScript thread: once when the method is
//! called (which hands the request to the runtime's actors), then each time its waker fires.
//! A woken task goes to its executor's ready queue, and the executor's one threadsafe function
//! wakes the event loop to run the queue. When the thread is spinning before its loop polls
//! (see [`loop_spin`]), it runs the queue itself as soon as the wake-up's doorbell rings,
//! without the loop's round of the threadsafe function. Polling only reads a reply channel,
//! so the event loop never waits; the work itself runs on the runtime's threads.

use std::ffi::c_void;
use std::future::Future;
use std::pin::Pin;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use napi::bindgen_prelude::{ToNapiValue, Unknown};
use napi::{Env, sys};
use nexus_actors::spin::{self, Doorbell};

use crate::error::{BindingError, BindingResult};
use crate::loop_spin::{self, ReadyQueue};

/// Builds the JavaScript value a task settles with: `Ok` resolves, `Err` rejects.
type Settle = Box<dyn FnOnce(sys::napi_env) -> Result<sys::napi_value, sys::napi_value> + Send>;

/// Delivers wake-ups to the JavaScript thread through one threadsafe function.
pub struct Executor {
    tsfn: sys::napi_threadsafe_function,
    /// Set when Node finalizes the threadsafe function (the environment is going away); from
    /// then on it must not be called or released.
    finalized: Arc<AtomicBool>,
    /// Tasks not settled yet; while there are some, the threadsafe function keeps the event
    /// loop alive (a pending Promise must not let Node exit under it) and the thread spins
    /// before its loop polls ([`loop_spin`] asks [`ReadyQueue::has_pending`]).
    pending: AtomicUsize,
    /// Tasks woken and not polled since.
    ready: Mutex<Vec<Arc<Task>>>,
    /// The JavaScript thread's doorbell: rung as soon as a task is ready, before the threadsafe
    /// function's wake-up (a system call) is sent, so a spinning thread starts on it at once.
    js_thread: Doorbell,
}

// SAFETY: a threadsafe function may be called from any thread; `ref`/`unref` are only called
// on the JavaScript thread (in `spawn` and `Task::poll`).
unsafe impl Send for Executor {}
// SAFETY: as for `Send`: the only state shared between threads is the threadsafe function
// (callable from any thread) and atomics.
unsafe impl Sync for Executor {}

fn check(status: sys::napi_status, what: &str) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::from_reason(format!("{what} failed (napi status {status})")))
    }
}

impl Executor {
    /// The executor of a runtime whose threads spin up to `spin` before parking; the
    /// JavaScript thread does the same while executions are pending (see [`loop_spin`]).
    pub fn new(env: &Env, spin: std::time::Duration) -> napi::Result<Arc<Executor>> {
        loop_spin::install(env, spin)?;
        let env = env.raw();
        let mut name = ptr::null_mut();
        let mut tsfn = ptr::null_mut();
        let finalized = Arc::new(AtomicBool::new(false));
        let finalize_data = Arc::into_raw(Arc::clone(&finalized)) as *mut c_void;
        // SAFETY: plain N-API calls on the JavaScript thread with valid out-pointers.
        unsafe {
            check(sys::napi_create_string_utf8(env, c"nexus".as_ptr(), 5, &mut name), "naming the executor")?;
            check(
                sys::napi_create_threadsafe_function(
                    env,
                    ptr::null_mut(),
                    ptr::null_mut(),
                    name,
                    0,
                    1,
                    finalize_data,
                    Some(finalize),
                    ptr::null_mut(),
                    Some(call_js),
                    &mut tsfn,
                ),
                "creating the executor's threadsafe function",
            )?;
            check(sys::napi_unref_threadsafe_function(env, tsfn), "unref")?;
        }
        let executor = Arc::new(Executor {
            tsfn,
            finalized,
            pending: AtomicUsize::new(0),
            ready: Mutex::default(),
            js_thread: spin::current(),
        });
        loop_spin::register(&executor);
        Ok(executor)
    }

    /// Returns a Promise settled by `work`: its result, or a coded rejection when `work` is
    /// an error (arguments refused before anything ran) or ends in one.
    pub fn spawn<'env, T, F>(self: &Arc<Self>, env: &'env Env, work: BindingResult<F>) -> napi::Result<Unknown<'env>>
    where
        T: ToNapiValue + Send + 'static,
        F: Future<Output = BindingResult<T>> + Send + 'static,
    {
        let raw_env = env.raw();
        let mut deferred = ptr::null_mut();
        let mut promise = ptr::null_mut();
        // SAFETY: on the JavaScript thread, valid out-pointers.
        check(unsafe { sys::napi_create_promise(raw_env, &mut deferred, &mut promise) }, "creating a promise")?;
        let future = async move {
            let outcome = match work {
                Ok(work) => work.await,
                Err(error) => Err(error),
            };
            Box::new(move |env: sys::napi_env| settle(env, outcome)) as Settle
        };
        let task = Arc::new(Task {
            future: Mutex::new(Some(Box::pin(future))),
            deferred: deferred as usize,
            executor: Arc::clone(self),
            queued: AtomicBool::new(false),
        });
        if self.pending.fetch_add(1, Ordering::AcqRel) == 0 {
            // SAFETY: on the JavaScript thread.
            check(unsafe { sys::napi_ref_threadsafe_function(raw_env, self.tsfn) }, "ref")?;
        }
        task.poll(raw_env);
        // SAFETY: `promise` was just created in this environment.
        Ok(unsafe { Unknown::from_raw_unchecked(raw_env, promise) })
    }
}

impl ReadyQueue for Executor {
    fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire) > 0
    }

    fn has_ready(&self) -> bool {
        !self.ready.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    /// Polls the tasks woken since the last time, on the JavaScript thread of `env`.
    fn run_ready(&self, env: sys::napi_env) {
        let ready = std::mem::take(&mut *self.ready.lock().unwrap_or_else(PoisonError::into_inner));
        for task in ready {
            // From here a wake-up queues the task again.
            task.queued.store(false, Ordering::Release);
            task.poll(env);
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        if !self.finalized.load(Ordering::Acquire) {
            // SAFETY: the last user of the threadsafe function lets it go (any thread may).
            unsafe { sys::napi_release_threadsafe_function(self.tsfn, sys::ThreadsafeFunctionReleaseMode::release) };
        }
    }
}

/// Node finalizes the threadsafe function: after a release, or when the environment closes.
unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the reference `Executor::new` gave up.
    let finalized = unsafe { Arc::from_raw(data as *const AtomicBool) };
    finalized.store(true, Ordering::Release);
}

fn settle<T: ToNapiValue>(env: sys::napi_env, outcome: BindingResult<T>) -> Result<sys::napi_value, sys::napi_value> {
    let rejection = |error: BindingError| {
        let env = Env::from_raw(env);
        let error = error.into_napi(&env);
        // SAFETY: on the JavaScript thread of `env`.
        unsafe { ToNapiValue::to_napi_value(env.raw(), error) }.unwrap_or(ptr::null_mut())
    };
    match outcome {
        // SAFETY: on the JavaScript thread of `env`.
        Ok(value) => unsafe { T::to_napi_value(env, value) }.map_err(|e| {
            rejection(BindingError::new(nexus_abi::ErrorCode::Internal, format!("converting the result: {e}")))
        }),
        Err(error) => Err(rejection(error)),
    }
}

struct Task {
    future: Mutex<Option<Pin<Box<dyn Future<Output = Settle> + Send>>>>,
    /// The `napi_deferred` of the task's Promise; only touched on the JavaScript thread.
    deferred: usize,
    executor: Arc<Executor>,
    /// A wake-up is on its way to the JavaScript thread already.
    queued: AtomicBool,
}

impl Task {
    /// Polls the future on the JavaScript thread; settles the Promise when it is done.
    fn poll(self: &Arc<Self>, env: sys::napi_env) {
        let mut slot = self.future.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(future) = slot.as_mut() else { return };
        let waker = Waker::from(Arc::clone(self));
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            future.as_mut().poll(&mut Context::from_waker(&waker))
        }));
        let settle: Settle = match polled {
            Ok(Poll::Pending) => return,
            Ok(Poll::Ready(settle)) => settle,
            Err(_) => Box::new(|env| {
                settle::<()>(env, Err(BindingError::new(nexus_abi::ErrorCode::Internal, "the binding panicked")))
            }),
        };
        *slot = None;
        drop(slot);
        let deferred = self.deferred as sys::napi_deferred;
        // SAFETY: on the JavaScript thread; each deferred is settled exactly once (the future
        // slot is emptied above, so no later poll reaches this point).
        unsafe {
            match settle(env) {
                Ok(value) => sys::napi_resolve_deferred(env, deferred, value),
                Err(value) => sys::napi_reject_deferred(env, deferred, value),
            };
            if self.executor.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                sys::napi_unref_threadsafe_function(env, self.executor.tsfn);
            }
        }
    }
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) || self.executor.finalized.load(Ordering::Acquire) {
            return;
        }
        let executor = Arc::clone(&self.executor);
        executor.ready.lock().unwrap_or_else(PoisonError::into_inner).push(self);
        executor.js_thread.ring();
        let data = Arc::into_raw(Arc::clone(&executor)) as *mut c_void;
        // SAFETY: the threadsafe function lives as long as the executor, which `data` holds.
        let status = unsafe {
            sys::napi_call_threadsafe_function(executor.tsfn, data, sys::ThreadsafeFunctionCallMode::nonblocking)
        };
        if status != sys::Status::napi_ok {
            // The environment is going away: nothing is left to settle.
            // SAFETY: the call did not take the reference made above.
            drop(unsafe { Arc::from_raw(data as *const Executor) });
        }
    }
}

/// Runs on the JavaScript thread for each wake-up (unless the spin ran the queue already).
unsafe extern "C" fn call_js(env: sys::napi_env, _callback: sys::napi_value, _context: *mut c_void, data: *mut c_void) {
    if data.is_null() {
        return;
    }
    // SAFETY: `data` is the reference `Task::wake` gave up.
    let executor = unsafe { Arc::from_raw(data as *const Executor) };
    // The wake-up is being handled: the rings that announced it are seen.
    spin::after_unpark();
    if !env.is_null() {
        executor.run_ready(env);
    }
}
