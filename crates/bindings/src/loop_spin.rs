//! The JavaScript thread's side of spinning before parking (see [`nexus_actors::spin`]).
//!
//! A result comes back to JavaScript by waking the event loop (the threadsafe function's
//! `uv_async_send`); when the loop was blocked in its poll, its CPU had gone idle, and waking
//! it costs about 20 µs on the VMs this is measured on. So while executions are pending on a
//! thread, a libuv *prepare* handle (run right before the loop polls) spins up to the
//! runtime's `spinBeforeParkUs` until the thread's doorbell rings: the runtime rings it right
//! after it posts a wake-up, which the poll then finds at once. With no execution pending the
//! loop blocks as usual, and the handle never keeps it alive (it is unref'd).
//!
//! When the spin ends, the handle also runs the executors' ready queues itself (see
//! [`js_future`](crate::js_future)), as Node runs a callback from the loop: in a callback scope,
//! whose end runs the microtasks the settled Promises queued. So a result that came while the
//! thread spun is delivered without the loop's round of the threadsafe function (the poll that
//! finds its wake-up, the dispatch of its queue), which then finds nothing left to do.
//!
//! One handle per JavaScript thread, whatever the number of runtimes; it is closed with the
//! environment, through an async cleanup hook (a worker thread's loop must end with no open
//! handle).

use std::alloc::{Layout, alloc, dealloc};
use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use napi::{Env, sys};
use nexus_actors::spin;

/// What the spin needs of an executor (see [`js_future`](crate::js_future)): whether it has
/// Promises pending (then the thread spins before its loop polls) and tasks ready to poll.
pub trait ReadyQueue: Send + Sync {
    /// Whether a Promise of this executor is not settled yet.
    fn has_pending(&self) -> bool;
    /// Whether tasks were woken since the queue last ran.
    fn has_ready(&self) -> bool;
    /// Polls the ready tasks, on the JavaScript thread of `env`.
    fn run_ready(&self, env: sys::napi_env);
}

unsafe extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_prepare_init(event_loop: *mut sys::uv_loop_s, handle: *mut c_void) -> c_int;
    fn uv_prepare_start(handle: *mut c_void, callback: unsafe extern "C" fn(*mut c_void)) -> c_int;
    fn uv_unref(handle: *mut c_void);
    fn uv_close(handle: *mut c_void, callback: unsafe extern "C" fn(*mut c_void));
}

/// `UV_PREPARE` in libuv's `uv_handle_type`.
const UV_PREPARE: c_int = 9;

/// The thread's prepare handle and what it needs to know.
struct LoopSpin {
    /// The `uv_prepare_t`, allocated here with `layout`.
    handle: *mut c_void,
    layout: Layout,
    cleanup: sys::napi_async_cleanup_hook_handle,
    /// The longest spin any runtime on this thread asked for.
    budget: Cell<Duration>,
    env: sys::napi_env,
    /// The async context the ready queues run in (as the threadsafe functions' would); null
    /// once the environment is going away.
    async_context: Cell<sys::napi_async_context>,
    /// The executors of this thread's runtimes; the spin runs while one has a pending Promise.
    executors: RefCell<Vec<Weak<dyn ReadyQueue>>>,
}

thread_local! {
    static LOOP_SPIN: RefCell<Option<LoopSpin>> = const { RefCell::new(None) };
}

/// Makes sure this JavaScript thread spins up to `budget` before its loop blocks while an
/// execution is pending. Called on the JavaScript thread of `env`.
pub fn install(env: &Env, budget: Duration) -> napi::Result<()> {
    let installed = LOOP_SPIN
        .with(|cell| cell.borrow().as_ref().map(|spin| spin.budget.set(spin.budget.get().max(budget))).is_some());
    if installed || budget.is_zero() {
        return Ok(());
    }
    let failed = |what: &str| napi::Error::from_reason(format!("installing the event-loop spin: {what} failed"));
    let mut event_loop = ptr::null_mut();
    // SAFETY: on the JavaScript thread of `env`, valid out-pointer.
    if unsafe { sys::napi_get_uv_event_loop(env.raw(), &mut event_loop) } != sys::Status::napi_ok {
        return Err(failed("napi_get_uv_event_loop"));
    }
    // SAFETY: `uv_handle_size` is a pure query; the block is sized and aligned for a handle.
    let layout = Layout::from_size_align(unsafe { uv_handle_size(UV_PREPARE) }, 16).map_err(|_| failed("layout"))?;
    // SAFETY: `layout` has a non-zero size (libuv's handle size) and a valid alignment.
    let handle = unsafe { alloc(layout) } as *mut c_void;
    if handle.is_null() {
        return Err(failed("allocating the handle"));
    }
    // SAFETY: `handle` is a fresh block of `uv_prepare_t` size; the loop is this thread's.
    if unsafe { uv_prepare_init(event_loop, handle) } != 0 {
        // SAFETY: libuv did not take the handle.
        unsafe { dealloc(handle as *mut u8, layout) };
        return Err(failed("uv_prepare_init"));
    }
    let mut name = ptr::null_mut();
    let mut async_context = ptr::null_mut();
    // SAFETY: on the JavaScript thread of `env` (inside the constructor's handle scope).
    let context_made = unsafe {
        sys::napi_create_string_utf8(env.raw(), c"nexus".as_ptr(), 5, &mut name) == sys::Status::napi_ok
            && sys::napi_async_init(env.raw(), ptr::null_mut(), name, &mut async_context) == sys::Status::napi_ok
    };
    // From here the loop knows the handle: it is only freed once libuv has closed it (`closed`).
    let spin = LoopSpin {
        handle,
        layout,
        cleanup: ptr::null_mut(),
        budget: Cell::new(budget),
        env: env.raw(),
        async_context: Cell::new(async_context),
        executors: RefCell::default(),
    };
    LOOP_SPIN.with(|cell| *cell.borrow_mut() = Some(spin));
    let mut cleanup = ptr::null_mut();
    // SAFETY: an initialized handle on this thread's loop; the cleanup hook runs once, on this
    // thread, at teardown.
    let started = unsafe {
        uv_prepare_start(handle, before_poll) == 0
            && sys::napi_add_async_cleanup_hook(env.raw(), Some(close), ptr::null_mut(), &mut cleanup)
                == sys::Status::napi_ok
    };
    if !started || !context_made {
        // SAFETY: the handle is open on this thread's loop; `closed` frees it.
        unsafe { uv_close(handle, closed) };
        return Err(failed("uv_prepare_start, napi_add_async_cleanup_hook or napi_async_init"));
    }
    // SAFETY: an open handle on this thread's loop.
    unsafe { uv_unref(handle) };
    LOOP_SPIN.with(|cell| cell.borrow_mut().as_mut().map(|spin| spin.cleanup = cleanup));
    Ok(())
}

/// Lets the spin of this thread run `executor`'s ready queue (when the thread spins at all).
pub fn register(executor: &Arc<impl ReadyQueue + 'static>) {
    let executor: Weak<dyn ReadyQueue> = Arc::downgrade(executor) as Weak<dyn ReadyQueue>;
    LOOP_SPIN.with(|cell| {
        if let Some(spin) = cell.borrow().as_ref() {
            let mut executors = spin.executors.borrow_mut();
            executors.retain(|executor| executor.strong_count() > 0);
            executors.push(executor);
        }
    });
}

/// The prepare callback: the loop is about to poll (and block if nothing is ready).
unsafe extern "C" fn before_poll(_handle: *mut c_void) {
    let budget = LOOP_SPIN.with(|cell| match cell.borrow().as_ref() {
        Some(spin) if spin.executors.borrow().iter().filter_map(Weak::upgrade).any(|e| e.has_pending()) => {
            spin.budget.get()
        }
        _ => Duration::ZERO,
    });
    if budget.is_zero() {
        return;
    }
    spin::before_park(budget);
    run_ready();
}

/// Runs the ready queues of this thread's executors, in a callback scope.
fn run_ready() {
    // Copied out: settling Promises runs JavaScript, which may start executions (and register
    // executors).
    let Some((env, async_context, ready)) = LOOP_SPIN.with(|cell| {
        let spin = cell.borrow();
        let spin = spin.as_ref()?;
        let executors = spin.executors.borrow();
        let ready: Vec<Arc<dyn ReadyQueue>> =
            executors.iter().filter_map(Weak::upgrade).filter(|executor| executor.has_ready()).collect();
        let async_context = spin.async_context.get();
        (!ready.is_empty() && !async_context.is_null()).then_some((spin.env, async_context, ready))
    }) else {
        return;
    };
    let mut handle_scope = ptr::null_mut();
    let mut resource = ptr::null_mut();
    let mut callback_scope = ptr::null_mut();
    // SAFETY: on the JavaScript thread of `env`, from the event loop (no JavaScript running),
    // as a `uv` callback that settles Promises must: a handle scope, then a callback scope
    // whose close runs the microtasks and `process.nextTick` callbacks.
    unsafe {
        if sys::napi_open_handle_scope(env, &mut handle_scope) != sys::Status::napi_ok {
            return;
        }
        let opened = sys::napi_create_object(env, &mut resource) == sys::Status::napi_ok
            && sys::napi_open_callback_scope(env, resource, async_context, &mut callback_scope) == sys::Status::napi_ok;
        if opened {
            for executor in ready {
                executor.run_ready(env);
            }
            sys::napi_close_callback_scope(env, callback_scope);
        }
        sys::napi_close_handle_scope(env, handle_scope);
    }
}

/// The environment is going away: close the handle; the hook is removed once it is closed.
unsafe extern "C" fn close(_remove: sys::napi_async_cleanup_hook_handle, _data: *mut c_void) {
    let handle = LOOP_SPIN.with(|cell| {
        let spin = cell.borrow();
        let spin = spin.as_ref()?;
        let async_context = spin.async_context.replace(ptr::null_mut());
        if !async_context.is_null() {
            // SAFETY: made by `napi_async_init` in this environment; no longer used from here.
            unsafe { sys::napi_async_destroy(spin.env, async_context) };
        }
        Some(spin.handle)
    });
    if let Some(handle) = handle {
        // SAFETY: the handle is open on this thread's loop, which is still running.
        unsafe { uv_close(handle, closed) };
    }
}

/// libuv closed the handle: free it and tell Node the cleanup is done.
unsafe extern "C" fn closed(handle: *mut c_void) {
    let Some(spin) = LOOP_SPIN.with(|cell| cell.borrow_mut().take()) else { return };
    debug_assert_eq!(spin.handle, handle);
    // SAFETY: libuv no longer uses the handle; it was allocated with this layout.
    unsafe {
        dealloc(handle as *mut u8, spin.layout);
        if !spin.cleanup.is_null() {
            sys::napi_remove_async_cleanup_hook(spin.cleanup);
        }
    }
}
