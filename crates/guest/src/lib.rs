//! The Nexus guest: QuickJS (through rquickjs) compiled to `wasm32-wasip1`.
//!
//! Its whole job is to run one handler and report where the handler's promise stands. It is
//! pre-initialized by Wizer ([`initialize`] builds the QuickJS runtime, context and prelude),
//! so every execution starts from that snapshot in a fresh instance. The entry points follow
//! the calling convention of [`nexus_abi`]; all policy (capabilities, limits, error
//! classification) lives on the host.

mod host;
mod natives;
mod preload;
mod values;

use std::cell::RefCell;

use nexus_abi::{
    Code, CompileInput, CompileOutput, ExtOutcome, GUEST_ABI_VERSION, GuestError, HANDLER_FILE, HANDLER_PREFIX,
    HANDLER_SUFFIX, PreloadInput, PreloadOutput, ResumeInput, RunInput, RunOutput, RunReport, decode, encode,
    pack_reply,
};
use rquickjs::{
    Context, Ctx, FromJs, Function, Object, Persistent, Promise, Runtime, Value, context::EvalOptions,
    prelude::Coerced, promise::PromiseState, qjs,
};

const PRELUDE: &str = include_str!("prelude.js");

/// Evaluated once at pre-initialization, after the prelude: QuickJS creates a built-in method
/// the first time it is read, so without this every execution would create again (and write
/// to fresh pages) each built-in its handler touches. Reading every property descriptor of
/// every object reachable from the global object and the hidden intrinsics makes them all
/// part of the snapshot. It runs no getter.
const MATERIALIZE_BUILTINS: &str = r#"(function () {
  'use strict';
  const roots = [
    globalThis,
    Object.getPrototypeOf([][Symbol.iterator]()),
    Object.getPrototypeOf(''[Symbol.iterator]()),
    Object.getPrototypeOf(new Map()[Symbol.iterator]()),
    Object.getPrototypeOf(new Set()[Symbol.iterator]()),
    Object.getPrototypeOf(/a/[Symbol.matchAll]('')),
    Object.getPrototypeOf(async function () {}),
    Object.getPrototypeOf(function* () {}),
    Object.getPrototypeOf(async function* () {}),
  ];
  const seen = new Set();
  while (roots.length > 0) {
    const object = roots.pop();
    if (seen.has(object)) continue;
    seen.add(object);
    const proto = Object.getPrototypeOf(object);
    if (proto !== null) roots.push(proto);
    for (const key of Reflect.ownKeys(object)) {
      const descriptor = Reflect.getOwnPropertyDescriptor(object, key);
      for (const value of [descriptor.value, descriptor.get, descriptor.set]) {
        if (typeof value === 'function' || (typeof value === 'object' && value !== null)) roots.push(value);
      }
    }
  }
})"#;

/// Bytecode starts with this magic and [`GUEST_ABI_VERSION`]; QuickJS does not validate
/// bytecode from another build, so anything else is refused before it reaches QuickJS.
const BYTECODE_MAGIC: &[u8; 4] = b"NXBC";

struct Guest {
    // Field order matters for drop, though the snapshot never drops them.
    api: Persistent<Object<'static>>,
    context: Context,
    runtime: Runtime,
}

thread_local! {
    static GUEST: RefCell<Option<Guest>> = const { RefCell::new(None) };
    static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The promise of the handler this instance runs, read once its job queue is empty.
    static HANDLER_PROMISE: RefCell<Option<Persistent<Promise<'static>>>> = const { RefCell::new(None) };
    /// What the handler settled with, kept from the moment it settled while extension calls it
    /// started are still pending.
    static SETTLED: RefCell<Option<RunOutput>> = const { RefCell::new(None) };
    /// Rejected promises nothing handles (yet), as QuickJS's rejection tracker reports them;
    /// each holds a reference, released when it is handled or reported.
    static UNHANDLED: RefCell<Vec<qjs::JSValue>> = const { RefCell::new(Vec::new()) };
}

/// Wizer's initialization function: everything computed here is frozen into the snapshot.
#[unsafe(export_name = "wizer-initialize")]
pub extern "C" fn initialize() {
    let runtime = Runtime::new().expect("creating the QuickJS runtime");
    let context = Context::full(&runtime).expect("creating the QuickJS context");
    let api = context
        .with(|ctx| {
            let mut options = EvalOptions::default();
            options.filename = Some(nexus_abi::PRELUDE_FILE.into());
            options.strict = true;
            let prelude: Function = ctx.eval_with_options(PRELUDE, options)?;
            let api: Object = prelude.call((natives::host_object(&ctx)?,))?;
            natives::set_registry(&ctx, &api)?;
            let materialize: Function = ctx.eval(MATERIALIZE_BUILTINS)?;
            materialize.call::<_, ()>(())?;
            values::initialize(&ctx)?;
            Ok::<_, rquickjs::Error>(Persistent::save(&ctx, api))
        })
        .expect("evaluating the prelude");
    // SAFETY: installs a callback on the live runtime; it only keeps references to promises.
    unsafe {
        qjs::JS_SetHostPromiseRejectionTracker(runtime_ptr(&context), Some(track_rejection), std::ptr::null_mut())
    };
    runtime.run_gc();
    GUEST.set(Some(Guest { api, context, runtime }));
}

/// Returns a buffer of `len` bytes for the host to write the next entry point's input into.
#[unsafe(no_mangle)]
pub extern "C" fn nexus_alloc(len: u32) -> *mut u8 {
    INPUT.with_borrow_mut(|input| {
        input.clear();
        input.resize(len as usize, 0);
        input.as_mut_ptr()
    })
}

/// Starts the handler of a [`RunInput`]; returns a [`RunReport`].
#[unsafe(no_mangle)]
pub extern "C" fn nexus_run(_ptr: u32, len: u32) -> i64 {
    let report = match take_input::<RunInput>(len) {
        Ok(input) => with_guest(|guest| guest.run(input)),
        Err(error) => RunReport { output: RunOutput::Threw(error), compile_time_us: 0 },
    };
    reply(&report)
}

/// Settles one extension call of a suspended handler; returns a [`RunReport`].
#[unsafe(no_mangle)]
pub extern "C" fn nexus_resume(_ptr: u32, len: u32) -> i64 {
    let output = match take_input::<ResumeInput>(len) {
        Ok(input) => with_guest(|guest| guest.resume(input)),
        Err(error) => RunOutput::Threw(error),
    };
    reply(&RunReport { output, compile_time_us: 0 })
}

/// Compiles handler source to bytecode; returns a [`CompileOutput`].
#[unsafe(no_mangle)]
pub extern "C" fn nexus_compile(_ptr: u32, len: u32) -> i64 {
    let output = match take_input::<CompileInput>(len) {
        Ok(input) => with_guest(|guest| guest.compile(&input.source)),
        Err(error) => CompileOutput::Threw(error),
    };
    reply(&output)
}

/// Evaluates a library into the global scope (only while the host builds a snapshot with
/// libraries); returns a [`PreloadOutput`].
#[unsafe(no_mangle)]
pub extern "C" fn nexus_preload(_ptr: u32, len: u32) -> i64 {
    let output = match take_input::<PreloadInput>(len) {
        Ok(input) => with_guest(|guest| {
            let output = preload::evaluate(&guest.context, input);
            guest.runtime.run_gc();
            // QuickJS collects when its heap passes a threshold (256 KiB at first, raised only
            // by a collection it triggers itself): left there, a heap that libraries made larger
            // would be collected at the first allocation of every execution, which writes to
            // (and so copies) every page of the libraries. As QuickJS would after a collection:
            let heap = usize::try_from(guest.runtime.memory_usage().malloc_size).unwrap_or(0);
            guest.runtime.set_gc_threshold(heap + (heap / 2).max(256 << 10));
            output
        }),
        Err(error) => PreloadOutput::Threw { error, reached: None },
    };
    reply(&output)
}

fn runtime_ptr(context: &Context) -> *mut qjs::JSRuntime {
    // SAFETY: the context pointer is live; this reads its runtime.
    context.with(|ctx| unsafe { qjs::JS_GetRuntime(ctx.as_raw().as_ptr()) })
}

/// QuickJS's rejection tracker: a promise rejected with no handler (`is_handled` false), or a
/// handler added to such a promise later (`is_handled` true).
unsafe extern "C" fn track_rejection(
    ctx: *mut qjs::JSContext,
    promise: qjs::JSValue,
    _reason: qjs::JSValue,
    is_handled: bool,
    _opaque: *mut std::ffi::c_void,
) {
    // SAFETY: the promise is a live object of `ctx`; a reference is taken while it is listed
    // and released when it leaves the list.
    unsafe {
        let object = qjs::JS_VALUE_GET_PTR(promise);
        UNHANDLED.with_borrow_mut(|unhandled| {
            if is_handled {
                if let Some(index) = unhandled.iter().position(|p| qjs::JS_VALUE_GET_PTR(*p) == object) {
                    qjs::JS_FreeValue(ctx, unhandled.swap_remove(index));
                }
            } else {
                unhandled.push(qjs::JS_DupValue(ctx, promise));
            }
        });
    }
}

fn take_input<T: for<'a> serde::Deserialize<'a>>(len: u32) -> Result<T, GuestError> {
    INPUT.with_borrow(|input| {
        decode(&input[..(len as usize).min(input.len())]).map_err(|e| GuestError {
            name: "InternalError".into(),
            message: format!("malformed input from the host: {e}"),
            internal: true,
            ..GuestError::default()
        })
    })
}

fn reply<T: serde::Serialize>(message: &T) -> i64 {
    OUTPUT.with_borrow_mut(|output| {
        *output = encode(message);
        pack_reply(output.as_ptr() as u32, output.len() as u32)
    })
}

fn with_guest<R>(f: impl FnOnce(&Guest) -> R) -> R {
    GUEST.with_borrow(|guest| f(guest.as_ref().expect("the guest runs only from its Wizer snapshot")))
}

// No stack limit is set inside QuickJS: quickjs-ng disables its stack check when built for
// WASI (`update_stack_limit` ignores `JS_SetMaxStackSize` and `JS_UpdateStackTop` there), so
// deep recursion is bounded by wasmtime's `max_wasm_stack`, which the host reports as
// `STACK_OVERFLOW`. The guest's 1 MiB shadow stack sits first in memory, so overflowing it
// would trap on an out-of-bounds access instead of corrupting data.

impl Guest {
    fn run(&self, input: RunInput) -> RunReport {
        natives::seed_random(input.random_seed);
        self.context.with(|ctx| {
            let loading = std::time::Instant::now();
            let loaded = load(&ctx, &input.code);
            let compile_time_us = match input.code {
                Code::Source(_) => loading.elapsed().as_micros() as u64,
                Code::Bytecode(_) => 0,
            };
            let handler = match loaded {
                Ok(handler) => handler,
                Err(error) => {
                    let output = RunOutput::Threw(error);
                    return RunReport { output, compile_time_us };
                }
            };
            let started = (|| {
                let api = self.api.clone().restore(&ctx)?;
                let start: Function = api.get("start")?;
                let args = values::frozen_from_json(&ctx, &input.args)?;
                let scope = values::frozen_from_json(&ctx, &input.scope)?;
                start.call::<_, Promise>((handler, args, scope))
            })();
            let output = match started {
                Ok(promise) => {
                    HANDLER_PROMISE.set(Some(Persistent::save(&ctx, promise)));
                    self.settle(&ctx)
                }
                Err(e) => RunOutput::Threw(caught(&ctx, e)),
            };
            RunReport { output, compile_time_us }
        })
    }

    fn resume(&self, input: ResumeInput) -> RunOutput {
        self.context.with(|ctx| {
            let resumed = (|| {
                let api = self.api.clone().restore(&ctx)?;
                let resume: Function = api.get("resume")?;
                let undefined = Value::new_undefined(ctx.clone());
                match input.outcome {
                    ExtOutcome::Ok(value) => {
                        let value = values::from_json(&ctx, &value)?;
                        resume.call::<_, bool>((input.call_id, true, value, undefined.clone(), undefined))
                    }
                    ExtOutcome::Err { code, message } => {
                        resume.call::<_, bool>((input.call_id, false, undefined, code, message))
                    }
                }
            })();
            match resumed {
                Ok(_) => self.settle(&ctx),
                Err(e) => RunOutput::Threw(caught(&ctx, e)),
            }
        })
    }

    /// Runs the job queue dry, then reports the handler's promise: what it settled with once
    /// no extension call it started is pending any more (until then the host keeps the
    /// execution suspended, and the value it settled with is kept here).
    fn settle(&self, ctx: &Ctx<'_>) -> RunOutput {
        // SAFETY: the runtime pointer is live; the out-pointer receives the job's context.
        let rt = unsafe { qjs::JS_GetRuntime(ctx.as_raw().as_ptr()) };
        loop {
            let mut job_ctx = std::ptr::null_mut();
            // SAFETY: `rt` is this live runtime; `job_ctx` is a valid place for the job's context.
            match unsafe { qjs::JS_ExecutePendingJob(rt, &mut job_ctx) } {
                0 => break,
                r if r < 0 => return RunOutput::Threw(error_info(ctx.catch())),
                _ => {}
            }
        }
        if SETTLED.with_borrow(Option::is_none) {
            match self.handler_output(ctx) {
                RunOutput::Pending => return RunOutput::Pending,
                output => SETTLED.set(Some(output)),
            }
        }
        match self.api(ctx).and_then(|api| api.get::<_, Function>("pendingCalls")?.call::<_, u32>(())) {
            Ok(0) => {}
            Ok(_) => return RunOutput::Pending,
            Err(e) => return RunOutput::Threw(caught(ctx, e)),
        }
        if let Err(e) = self.report_unhandled(ctx) {
            return RunOutput::Threw(caught(ctx, e));
        }
        // The last report of this instance: nothing runs in it after this.
        SETTLED.take().unwrap_or(RunOutput::Pending)
    }

    fn api<'js>(&self, ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
        self.api.clone().restore(ctx)
    }

    /// Where the handler's promise stands.
    fn handler_output(&self, ctx: &Ctx<'_>) -> RunOutput {
        let promise = HANDLER_PROMISE.with_borrow(|promise| promise.clone()).map(|promise| promise.restore(ctx));
        let promise = match promise {
            Some(Ok(promise)) => promise,
            Some(Err(e)) => return RunOutput::Threw(caught(ctx, e)),
            None => {
                let message = "no handler is running in this instance".into();
                return RunOutput::Threw(GuestError {
                    name: "InternalError".into(),
                    message,
                    internal: true,
                    ..GuestError::default()
                });
            }
        };
        let state = promise.state();
        if state == PromiseState::Pending {
            return RunOutput::Pending;
        }
        // SAFETY: a settled promise on this context; JS_PromiseResult returns a new reference.
        let value =
            unsafe { Value::from_raw(ctx.clone(), qjs::JS_PromiseResult(ctx.as_raw().as_ptr(), promise.as_raw())) };
        match state {
            PromiseState::Resolved if value.is_undefined() => RunOutput::Returned(None),
            PromiseState::Resolved => match values::to_json(ctx, value) {
                Ok(json) => RunOutput::Returned(Some(json)),
                Err(e) => RunOutput::Threw(caught(ctx, e)),
            },
            _ => RunOutput::Threw(error_info(value)),
        }
    }

    /// Logs a warning for each promise rejected that nothing handled (the handler's own aside,
    /// whose rejection is the result): an extension call the handler started and never looked
    /// at, or any other rejection it left behind. Nothing a handler throws goes unreported.
    fn report_unhandled(&self, ctx: &Ctx<'_>) -> rquickjs::Result<()> {
        let unhandled = UNHANDLED.take();
        if unhandled.is_empty() {
            return Ok(());
        }
        let api = self.api(ctx)?;
        let call_of: Function = api.get("callOf")?;
        let warn: Function = api.get("warn")?;
        let handler = HANDLER_PROMISE.with_borrow(|promise| promise.clone()).map(|promise| promise.restore(ctx));
        let handler = handler.transpose()?.map(Promise::into_value);
        let mut result = Ok(());
        for raw in unhandled {
            // SAFETY: takes over the reference the tracker kept.
            let promise = unsafe { Value::from_raw(ctx.clone(), raw) };
            // (Values compare as the same object.)
            if result.is_err() || handler.as_ref() == Some(&promise) {
                continue;
            }
            result = (|| {
                // SAFETY: a rejected promise of this context; JS_PromiseResult returns a new reference.
                let reason = unsafe {
                    Value::from_raw(ctx.clone(), qjs::JS_PromiseResult(ctx.as_raw().as_ptr(), promise.as_raw()))
                };
                let call = call_of.call::<_, Option<String>>((promise.clone(),))?;
                let error = error_info(reason);
                let code = error.code.map(|code| format!(" ({code})")).unwrap_or_default();
                let line = match (call, error.name.as_str()) {
                    (Some(call), _) => format!("{call} failed and nothing awaited it{code}: {}", error.message),
                    (None, "") => format!("a promise was rejected and nothing handled it{code}: {}", error.message),
                    (None, name) => {
                        format!("a promise was rejected and nothing handled it{code}: {name}: {}", error.message)
                    }
                };
                warn.call::<_, ()>((line,))
            })();
        }
        result
    }

    fn compile(&self, source: &str) -> CompileOutput {
        self.context.with(|ctx| {
            match compile_source(&ctx, source).and_then(|function| write_bytecode(&ctx, function)) {
                Ok(bytecode) => CompileOutput::Bytecode(bytecode),
                Err(error) => CompileOutput::Threw(GuestError { at_load: true, ..error }),
            }
        })
    }
}

/// Turns the handler into the async function to call.
///
/// Only a failure to compile or read the code is `at_load`: evaluating the compiled script runs
/// code (for bytecode the caller made, code of its choosing), so what it throws is reported as
/// any thrown value, which cannot choose its code.
fn load<'js>(ctx: &Ctx<'js>, code: &Code) -> Result<Value<'js>, GuestError> {
    let function = match code {
        Code::Source(source) => compile_source(ctx, source),
        Code::Bytecode(bytecode) => read_bytecode(ctx, bytecode),
    };
    let function = function.map_err(|error| GuestError { at_load: true, ..error })?;
    let raw = function.as_raw();
    std::mem::forget(function);
    // SAFETY: JS_EvalFunction takes ownership of the compiled function object (forgotten above).
    let value = unsafe { qjs::JS_EvalFunction(ctx.as_raw().as_ptr(), raw) };
    checked(ctx, value)
}

/// Compiles the handler wrapped as an async function expression, without running it.
fn compile_source<'js>(ctx: &Ctx<'js>, source: &str) -> Result<Value<'js>, GuestError> {
    // QuickJS requires a NUL after the source.
    let mut wrapped = String::with_capacity(HANDLER_PREFIX.len() + source.len() + HANDLER_SUFFIX.len() + 1);
    wrapped.push_str(HANDLER_PREFIX);
    wrapped.push_str(source);
    wrapped.push_str(HANDLER_SUFFIX);
    wrapped.push('\0');
    let filename = std::ffi::CString::new(HANDLER_FILE).expect("no NUL in the file name");
    // SAFETY: `wrapped` is NUL-terminated and outlives the call.
    let value = unsafe {
        qjs::JS_Eval(
            ctx.as_raw().as_ptr(),
            wrapped.as_ptr().cast(),
            (wrapped.len() - 1) as _,
            filename.as_ptr(),
            (qjs::JS_EVAL_TYPE_GLOBAL | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32,
        )
    };
    checked(ctx, value)
}

fn write_bytecode<'js>(ctx: &Ctx<'js>, function: Value<'js>) -> Result<Vec<u8>, GuestError> {
    let mut len = 0;
    // SAFETY: JS_WriteObject returns a js_malloc'ed buffer of `len` bytes or NULL.
    let data = unsafe {
        qjs::JS_WriteObject(ctx.as_raw().as_ptr(), &mut len, function.as_raw(), qjs::JS_WRITE_OBJ_BYTECODE as i32)
    };
    if data.is_null() {
        return Err(error_info(ctx.catch()));
    }
    let len = len as usize;
    let mut bytecode = Vec::with_capacity(8 + len);
    bytecode.extend_from_slice(BYTECODE_MAGIC);
    bytecode.extend_from_slice(&GUEST_ABI_VERSION.to_le_bytes());
    // SAFETY: `data` holds `len` bytes and is freed right after the copy.
    unsafe {
        bytecode.extend_from_slice(std::slice::from_raw_parts(data, len));
        qjs::js_free(ctx.as_raw().as_ptr(), data.cast());
    }
    Ok(bytecode)
}

fn read_bytecode<'js>(ctx: &Ctx<'js>, bytecode: &[u8]) -> Result<Value<'js>, GuestError> {
    let body = match bytecode.split_at_checked(8) {
        Some((header, body)) if header[..4] == *BYTECODE_MAGIC && header[4..] == GUEST_ABI_VERSION.to_le_bytes() => {
            body
        }
        _ => {
            return Err(GuestError {
                name: "TypeError".into(),
                message: "not bytecode of this guest version (precompile the handler again)".into(),
                raised: Some(nexus_abi::ErrorCode::InvalidArgument.as_str().into()),
                ..GuestError::default()
            });
        }
    };
    // SAFETY: QuickJS reads `body.len()` bytes. Hostile bytecode can corrupt the QuickJS heap,
    // but only inside this instance's linear memory, and every host call is still checked.
    let value = unsafe {
        qjs::JS_ReadObject(ctx.as_raw().as_ptr(), body.as_ptr(), body.len() as _, qjs::JS_READ_OBJ_BYTECODE as i32)
    };
    // Bytecode that does not read (truncated, changed) is a bad request, not a syntax error.
    checked(ctx, value).map_err(|error| GuestError {
        name: "TypeError".into(),
        message: format!("the bytecode is damaged ({}: {}): precompile the handler again", error.name, error.message),
        raised: Some(nexus_abi::ErrorCode::InvalidArgument.as_str().into()),
        ..GuestError::default()
    })
}

/// Takes ownership of a raw result, turning `JS_EXCEPTION` into the pending exception.
fn checked<'js>(ctx: &Ctx<'js>, value: qjs::JSValue) -> Result<Value<'js>, GuestError> {
    // SAFETY: `value` is an owned value fresh from a QuickJS call on this context.
    let value = unsafe { Value::from_raw(ctx.clone(), value) };
    if value.is_exception() { Err(error_info(ctx.catch())) } else { Ok(value) }
}

fn caught(ctx: &Ctx<'_>, error: rquickjs::Error) -> GuestError {
    if error.is_exception() {
        error_info(ctx.catch())
    } else {
        GuestError { name: "InternalError".into(), message: error.to_string(), internal: true, ..GuestError::default() }
    }
}

/// Describes a thrown value. Reading its `name`, `message` and `stack` may run handler
/// getters (a getter that never returns is stopped by the host's epoch deadline like any other
/// handler code); none of what they return decides the error's code. `code` is read only as an
/// own data property, and whether the runtime raised the error only from the prelude's private
/// registry.
fn error_info<'js>(thrown: Value<'js>) -> GuestError {
    let ctx = thrown.ctx().clone();
    let string = |value: Value<'js>| -> Option<String> {
        let string = Coerced::<rquickjs::String>::from_js(&ctx, value).ok()?.0;
        values::text(&ctx, &string).ok()
    };
    let error = match (natives::raised(&thrown), thrown.as_object()) {
        // The runtime's own error, as it raised it.
        (Some(raised), _) => GuestError {
            name: "Error".into(),
            message: raised.message,
            stack: raised.stack,
            raised: Some(raised.code),
            ..GuestError::default()
        },
        (None, Some(object)) => {
            let text = |key: &str| object.get::<_, Value>(key).ok().filter(|v| !v.is_undefined()).and_then(string);
            GuestError {
                name: text("name").unwrap_or_default(),
                message: text("message").unwrap_or_default(),
                stack: text("stack"),
                code: own_string(&ctx, object, "code"),
                ..GuestError::default()
            }
        }
        (None, None) => {
            GuestError { message: string(thrown).unwrap_or_else(|| "[unprintable]".into()), ..GuestError::default() }
        }
    };
    // Whatever a getter threw is not the error being described.
    let _ = ctx.catch();
    error
}

/// An object's own data property `key` when it is a string (no getter or proxy `get` runs).
fn own_string<'js>(ctx: &Ctx<'js>, object: &Object<'js>, key: &str) -> Option<String> {
    let raw_ctx = ctx.as_raw().as_ptr();
    let mut descriptor = std::mem::MaybeUninit::<qjs::JSPropertyDescriptor>::uninit();
    // SAFETY: an atom for `key`, freed after one descriptor lookup on a live object; the
    // descriptor's values are owned by the caller once found.
    let found = unsafe {
        let atom = qjs::JS_NewAtomLen(raw_ctx, key.as_ptr().cast(), key.len() as _);
        let found = qjs::JS_GetOwnProperty(raw_ctx, descriptor.as_mut_ptr(), object.as_raw(), atom);
        qjs::JS_FreeAtom(raw_ctx, atom);
        found
    };
    if found <= 0 {
        return None;
    }
    // SAFETY: filled in by the successful lookup; each value is taken over once.
    let (value, getter, setter, flags) = unsafe {
        let descriptor = descriptor.assume_init();
        (
            Value::from_raw(ctx.clone(), descriptor.value),
            Value::from_raw(ctx.clone(), descriptor.getter),
            Value::from_raw(ctx.clone(), descriptor.setter),
            descriptor.flags,
        )
    };
    drop((getter, setter));
    if flags & qjs::JS_PROP_GETSET as i32 != 0 {
        return None;
    }
    value.as_string().and_then(|string| values::text(ctx, string).ok())
}
