//! The floor: the same QuickJS (quickjs-ng through rquickjs 0.14, as in the guest) on the host,
//! no wasm, no sandbox. It runs the same workload sources from bytecode compiled here, behind a
//! small JavaScript shim that gives handlers `$state`, `$args`, `$emit`, `$view`, `$ext` and
//! `$log` with no capability checks; values cross the shim as JSON copies (like the host
//! boundary's), and an extension call resolves at once with the workload's canned value.
//!
//! [`Native::fresh`] builds a new runtime and context for every execution (the isolation Nexus
//! gives, without wasm); [`Native::reused`] keeps one context for all executions (no isolation).

use nexus::workloads::Workload;
use nexus_abi::{HANDLER_FILE, HANDLER_PREFIX, HANDLER_SUFFIX};
use rquickjs::{Context, Ctx, Function, Persistent, Promise, Runtime, Value, qjs};

const SHIM: &str = r#"
(function () {
  'use strict';
  const copy = (value) => (value === undefined ? null : JSON.parse(JSON.stringify(value)));
  return function run(handler, args, snapshot, extResults) {
    const records = { mutations: [], events: [], viewCommands: [] };
    const values = Object.assign(Object.create(null), snapshot);
    const $state = new Proxy(values, {
      get: (target, key) => (typeof key === 'string' ? copy(target[key]) : undefined),
      set(target, key, value) {
        target[key] = copy(value);
        records.mutations.push({ op: 'set', key, value: copy(value) });
        return true;
      },
      deleteProperty(target, key) {
        delete target[key];
        records.mutations.push({ op: 'delete', key });
        return true;
      },
    });
    const $emit = (name, payload) => records.events.push({ name, payload: copy(payload) });
    const $view = {
      update: (componentId, patch) => records.viewCommands.push({ type: 'update', componentId, args: copy(patch) }),
      command: (type, componentId, args) => records.viewCommands.push({ type, componentId, args: copy(args) }),
    };
    const $ext = new Proxy({}, {
      get: (_, extension) => new Proxy({}, {
        get: (_, method) => (...callArgs) => Promise.resolve(copy(extResults[extension + '.' + method])),
      }),
    });
    const $log = () => {};
    return handler($state, Object.freeze(args), Object.freeze({}), $emit, $view, $ext, $log);
  };
})()
"#;

/// One QuickJS context with the shim evaluated in it.
struct Loaded {
    // Drop order: the saved function before its context, the context before its runtime.
    run: Persistent<Function<'static>>,
    context: Context,
    _runtime: Runtime,
}

impl Loaded {
    fn new() -> Loaded {
        let runtime = Runtime::new().expect("QuickJS runtime");
        let context = Context::full(&runtime).expect("QuickJS context");
        let run = context.with(|ctx| {
            let run: Function = ctx.eval(SHIM).expect("the shim evaluates");
            Persistent::save(&ctx, run)
        });
        Loaded { run, context, _runtime: runtime }
    }

    fn execute(&self, bytecode: &[u8], inputs: &Inputs) -> serde_json::Value {
        let result = self.context.with(|ctx| {
            let handler = load(&ctx, bytecode);
            let run = self.run.clone().restore(&ctx).expect("the shim's function");
            let args = ctx.json_parse(inputs.args.as_str()).expect("args");
            let state = ctx.json_parse(inputs.state.as_str()).expect("state");
            let ext = ctx.json_parse(inputs.ext.as_str()).expect("extension results");
            let promise: Promise = run.call((handler, args, state, ext)).expect("the handler starts");
            run_jobs(&ctx);
            let value: Value = promise.result().expect("the handler settled").expect("the handler succeeded");
            ctx.json_stringify(value).expect("JSON").map(|s| s.to_string().expect("UTF-8")).unwrap_or_default()
        });
        serde_json::from_str(&result).unwrap_or(serde_json::Value::Null)
    }
}

/// A workload's inputs as JSON text, ready for `JSON.parse` in each execution.
struct Inputs {
    args: String,
    state: String,
    ext: String,
}

/// A workload ready to run natively.
pub struct Native {
    bytecode: Vec<u8>,
    inputs: Inputs,
    reused: Loaded,
}

impl Native {
    pub fn new(workload: &Workload) -> Native {
        let reused = Loaded::new();
        let bytecode = reused.context.with(|ctx| compile(&ctx, workload.source));
        let inputs = Inputs {
            args: workload.args.to_string(),
            state: serde_json::Value::Object(workload.state.clone()).to_string(),
            ext: serde_json::to_string(&workload.extension_results).expect("JSON"),
        };
        Native { bytecode, inputs, reused }
    }

    /// One execution in a new runtime and context.
    pub fn fresh(&self) -> serde_json::Value {
        Loaded::new().execute(&self.bytecode, &self.inputs)
    }

    /// One execution in the context kept across executions.
    pub fn reused(&self) -> serde_json::Value {
        self.reused.execute(&self.bytecode, &self.inputs)
    }
}

/// Compiles the handler wrapped exactly as the guest wraps it, to bytecode.
fn compile(ctx: &Ctx<'_>, source: &str) -> Vec<u8> {
    let wrapped = format!("{HANDLER_PREFIX}{source}{HANDLER_SUFFIX}\0");
    let filename = std::ffi::CString::new(HANDLER_FILE).expect("no NUL");
    // SAFETY: `wrapped` is NUL-terminated and outlives the calls; the written buffer is copied
    // and freed; the compiled function is freed after it is written.
    unsafe {
        let raw = ctx.as_raw().as_ptr();
        let function = qjs::JS_Eval(
            raw,
            wrapped.as_ptr().cast(),
            (wrapped.len() - 1) as _,
            filename.as_ptr(),
            (qjs::JS_EVAL_TYPE_GLOBAL | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32,
        );
        let function = Value::from_raw(ctx.clone(), function);
        assert!(!function.is_exception(), "the workload compiles natively");
        let mut len = 0;
        let data = qjs::JS_WriteObject(raw, &mut len, function.as_raw(), qjs::JS_WRITE_OBJ_BYTECODE as i32);
        assert!(!data.is_null(), "the bytecode is written");
        let bytecode = std::slice::from_raw_parts(data, len as usize).to_vec();
        qjs::js_free(raw, data.cast());
        bytecode
    }
}

/// Runs the job queue dry, as the guest does (the runtime is locked inside `Context::with`).
fn run_jobs(ctx: &Ctx<'_>) {
    // SAFETY: the runtime pointer is live; the out-pointer receives the job's context.
    unsafe {
        let runtime = qjs::JS_GetRuntime(ctx.as_raw().as_ptr());
        let mut job_ctx = std::ptr::null_mut();
        while qjs::JS_ExecutePendingJob(runtime, &mut job_ctx) > 0 {}
    }
}

/// Reads bytecode and evaluates it to the handler's async function.
fn load<'js>(ctx: &Ctx<'js>, bytecode: &[u8]) -> Value<'js> {
    // SAFETY: the bytecode was written by `compile` with this same QuickJS build;
    // JS_EvalFunction takes ownership of the read function.
    unsafe {
        let raw = ctx.as_raw().as_ptr();
        let function =
            qjs::JS_ReadObject(raw, bytecode.as_ptr(), bytecode.len() as _, qjs::JS_READ_OBJ_BYTECODE as i32);
        assert!(!qjs::JS_IsException(function), "the bytecode reads");
        let handler = Value::from_raw(ctx.clone(), qjs::JS_EvalFunction(raw, function));
        assert!(!handler.is_exception(), "the handler evaluates");
        handler
    }
}
