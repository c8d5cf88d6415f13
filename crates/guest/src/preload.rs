//! Libraries evaluated into the snapshot before any handler runs: the `nexus_preload` entry
//! point, which the host calls once per library while it builds a snapshot with libraries
//! (under Wizer), and never afterwards (the snapshot it builds no longer exports it).
//!
//! No host function is reachable while a library loads: each native refuses (a `TypeError`
//! the library sees at the line that reached it), and the refusal is remembered even if the
//! library catches it, so the host fails the start either way. The host also links every
//! import of that instance to a trap, so a path that bypassed the natives would still stop.

use std::cell::{Cell, RefCell};

use nexus_abi::{GuestError, PreloadInput, PreloadOutput};
use rquickjs::{Context, Ctx, Exception, context::EvalOptions, qjs};

thread_local! {
    /// A library is being evaluated.
    static LOADING: Cell<bool> = const { Cell::new(false) };
    /// The first host function a library reached while it loaded.
    static REACHED: RefCell<Option<&'static str>> = const { RefCell::new(None) };
}

/// Refuses `what` (a host function, as a library would reach it) while a library loads.
pub fn refuse_while_loading(ctx: &Ctx<'_>, what: &'static str) -> rquickjs::Result<()> {
    if !LOADING.get() {
        return Ok(());
    }
    REACHED.with_borrow_mut(|reached| {
        reached.get_or_insert(what);
    });
    Err(Exception::throw_type(
        ctx,
        &format!("{what} reaches the host, which a library may not do while it is preloaded"),
    ))
}

/// Evaluates one library as a global script and runs the jobs it queued.
pub fn evaluate(context: &Context, input: PreloadInput) -> PreloadOutput {
    LOADING.set(true);
    let threw = context.with(|ctx| {
        let mut options = EvalOptions::default();
        options.filename = Some(input.name);
        options.strict = false;
        options.global = true;
        options.promise = false;
        if let Err(e) = ctx.eval_with_options::<(), _>(input.source, options) {
            return Some(crate::caught(&ctx, e));
        }
        run_jobs(&ctx).err().or_else(|| unhandled_rejection(&ctx))
    });
    LOADING.set(false);
    let reached = REACHED.take();
    match (threw, reached) {
        (None, None) => PreloadOutput::Loaded,
        (error, reached) => PreloadOutput::Threw {
            error: error.unwrap_or_else(|| GuestError {
                name: "TypeError".into(),
                message: format!("{} reaches the host (the library caught the refusal)", reached.unwrap_or("?")),
                ..GuestError::default()
            }),
            reached: reached.map(Into::into),
        },
    }
}

fn run_jobs(ctx: &Ctx<'_>) -> Result<(), GuestError> {
    // SAFETY: the runtime pointer is live; the out-pointer receives the job's context.
    let rt = unsafe { qjs::JS_GetRuntime(ctx.as_raw().as_ptr()) };
    loop {
        let mut job_ctx = std::ptr::null_mut();
        // SAFETY: `rt` is this live runtime; `job_ctx` is a valid place for the job's context.
        match unsafe { qjs::JS_ExecutePendingJob(rt, &mut job_ctx) } {
            0 => return Ok(()),
            r if r < 0 => return Err(crate::error_info(ctx.catch())),
            _ => {}
        }
    }
}

/// A promise the library rejected with nothing to handle it: the library failed at load as
/// surely as if it had thrown (and the snapshot must not keep the tracker's references).
fn unhandled_rejection(ctx: &Ctx<'_>) -> Option<GuestError> {
    let unhandled = crate::UNHANDLED.take();
    let mut first = None;
    for raw in unhandled {
        // SAFETY: takes over the reference the tracker kept; the promise is rejected.
        let reason = unsafe {
            let promise = rquickjs::Value::from_raw(ctx.clone(), raw);
            rquickjs::Value::from_raw(ctx.clone(), qjs::JS_PromiseResult(ctx.as_raw().as_ptr(), promise.as_raw()))
        };
        if first.is_none() {
            let error = crate::error_info(reason);
            first = Some(GuestError { message: format!("unhandled rejection: {}", error.message), ..error });
        }
    }
    first
}
