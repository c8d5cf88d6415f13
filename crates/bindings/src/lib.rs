//! The Node.js binding: `NexusRuntime`, a thin napi-rs class over [`nexus_actors::runtime::Runtime`].
//!
//! Arguments are checked and converted on the JavaScript thread (JS values straight to the
//! runtime's JSON values, see [`convert`]); the request then goes to the runtime's actors, and
//! the Promise settles when their reply wakes it (see [`js_future`]), so the event loop never
//! blocks. Every method returns a Promise. A request the runtime refuses (bad input, unknown
//! suspension, overload, shutdown) rejects with an `Error` carrying `code`; a handler that
//! fails resolves to a result with `status: "error"` (the JavaScript layer, `lib/executor.js`, turns
//! that into a `SandboxError`).

mod context;
mod convert;
mod error;
mod js_future;
mod loop_spin;

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, JsObjectValue, Object, ObjectFinalize, Unknown};
use napi::{Env, JsValue};
use napi_derive::napi;
use nexus_actors::Refusal;
use nexus_actors::engine::{ExecutionResult, Handler, Language, Location, SuspensionId};
use nexus_actors::runtime::Runtime;
use nexus_actors::start_error::StartError;
use nexus_host_fns::InferenceError;

use crate::context::{CallResult, Config, Context, PrecompileOptions, parse};
use crate::convert::{Js, JsResult, to_bytes, to_json, to_string};
use crate::error::{BindingError, BindingResult};
use crate::js_future::Executor;

/// Grace period `shutdown()` gives running executions when called without one.
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The longest grace period `shutdown(graceMs)` takes, in milliseconds: the longest delay a
/// JavaScript timer takes (about 24.8 days).
const MAX_SHUTDOWN_GRACE_MS: f64 = 2_147_483_647.0;

/// What a runtime costs besides its small JavaScript object (its threads, the instance pool's
/// resident memory and its address space reservation, about 1 TiB of the 128 TiB a process
/// has), as told to V8: so a runtime that became garbage is collected soon, rather than when
/// the JavaScript heap happens to fill, by which time a few hundred would have exhausted the
/// address space.
const EXTERNAL_MEMORY: i64 = 64 << 20;

/// A runtime that becomes garbage is stopped by its finalizer: dropping the last handle on the
/// Rust runtime stops its threads (Promises still pending hold handles of their own, so their
/// executions end first).
#[napi(custom_finalize)]
pub struct NexusRuntime {
    runtime: Runtime,
    executor: Arc<Executor>,
    suspension_timeout: Duration,
}

impl ObjectFinalize for NexusRuntime {
    fn finalize(self, env: Env) -> napi::Result<()> {
        env.adjust_external_memory(-EXTERNAL_MEMORY)?;
        drop(self);
        Ok(())
    }
}

#[napi]
impl NexusRuntime {
    /// Starts a runtime (its actor system runs on threads of its own).
    #[napi(constructor)]
    pub fn new(env: Env, config: Option<Unknown>) -> napi::Result<Self> {
        let start = || -> BindingResult<Self> {
            let config: Config = match optional(config.as_ref()) {
                Some(value) => parse(to_json(value, "config")?, "config")?,
                None => Config::default(),
            };
            let config = config.into_runtime_config()?;
            let spin = config.spin_before_park;
            let suspension_timeout = config.suspension_timeout;
            let runtime = Runtime::start(config).map_err(|e| match e {
                // The configuration's fault, not the runtime's: a library that does not load.
                StartError::Preload(preload) => BindingError::invalid(format!("config.preload: {preload}")),
                StartError::Config(message) => BindingError::invalid(format!("config: {message}")),
                e => BindingError::new(nexus_abi::ErrorCode::Internal, format!("starting the runtime: {e}")),
            })?;
            let executor =
                Executor::new(&env, spin).map_err(|e| BindingError::new(nexus_abi::ErrorCode::Internal, e.reason))?;
            env.adjust_external_memory(EXTERNAL_MEMORY)
                .map_err(|e| BindingError::new(nexus_abi::ErrorCode::Internal, e.reason))?;
            Ok(NexusRuntime { runtime, executor, suspension_timeout })
        };
        start().map_err(|e| e.into_napi(&env))
    }

    /// Runs handler source; resolves to the result (the README's result format).
    #[napi(ts_return_type = "Promise<ExecutionResult>")]
    pub fn execute_handler<'env>(
        &self,
        env: &'env Env,
        code: Unknown,
        context: Option<Unknown>,
        timeout_ms: Option<Unknown>,
    ) -> napi::Result<Unknown<'env>> {
        let request = to_string(&code, "code")
            .and_then(|code| request(Handler::Source(code), context.as_ref(), timeout_ms.as_ref()));
        self.execute(env, request)
    }

    /// Runs bytecode from `precompileHandler`; resolves to the result.
    #[napi(ts_return_type = "Promise<ExecutionResult>")]
    pub fn execute_compiled_handler<'env>(
        &self,
        env: &'env Env,
        bytecode: Unknown,
        context: Option<Unknown>,
        timeout_ms: Option<Unknown>,
    ) -> napi::Result<Unknown<'env>> {
        let request = to_bytes(&bytecode, "bytecode")
            .and_then(|bytecode| request(Handler::Bytecode(bytecode), context.as_ref(), timeout_ms.as_ref()));
        self.execute(env, request)
    }

    /// Compiles handler source to bytecode inside the sandbox (`options.language:
    /// "typescript"` for TypeScript, whose source map goes with the bytecode); a syntax error
    /// rejects with `code: "SYNTAX_ERROR"` and `location`.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn precompile_handler<'env>(
        &self,
        env: &'env Env,
        code: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Unknown<'env>> {
        let runtime = self.runtime.clone();
        let input = source_and_language(&code, options.as_ref());
        self.executor.spawn(
            env,
            input.map(|(code, language)| async move {
                runtime.precompile_as(&code, language).await.map(Buffer::from).map_err(|error| match error.code {
                    // The runtime's own words are its actors' (a closed mailbox).
                    nexus_abi::ErrorCode::ShuttingDown => BindingError::new(
                        error.code,
                        "the runtime is shutting down (precompileHandler after shutdown())",
                    ),
                    _ => BindingError::from(error),
                })
            }),
        )
    }

    /// Delivers one extension call's outcome (`{ value }` or `{ error: { message, code? } }`)
    /// to a suspended execution; resolves to the next result.
    #[napi(ts_return_type = "Promise<ExecutionResult>")]
    pub fn resume_handler<'env>(
        &self,
        env: &'env Env,
        suspension_id: Unknown,
        call_id: Unknown,
        result: Unknown,
    ) -> napi::Result<Unknown<'env>> {
        let runtime = self.runtime.clone();
        let input = (|| {
            let id = SuspensionId(to_string(&suspension_id, "suspensionId")?);
            let call_id = match to_json(&call_id, "callId")? {
                serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                _ => None,
            }
            .ok_or_else(|| BindingError::invalid("callId: expected a call id from the suspension"))?;
            let outcome = call_result(&result)?.into_outcome()?;
            Ok((id, call_id, outcome))
        })();
        self.executor.spawn(
            env,
            input.map(|(id, call_id, outcome)| async move { settled(runtime.resume(&id, call_id, outcome).await) }),
        )
    }

    /// How long a suspension waits for its resume before it expires, in milliseconds (the
    /// configuration's `suspensionTimeoutMs`, or its default).
    #[napi(getter)]
    pub fn suspension_timeout_ms(&self) -> f64 {
        self.suspension_timeout.as_millis() as f64
    }

    /// Drops a suspension on purpose; resolves to whether there was one (a later resume of it
    /// rejects with `SUSPENSION_NOT_FOUND`).
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn cancel_suspension<'env>(&self, env: &'env Env, suspension_id: Unknown) -> napi::Result<Unknown<'env>> {
        let runtime = self.runtime.clone();
        let id = to_string(&suspension_id, "suspensionId").map(SuspensionId);
        self.executor.spawn(env, id.map(|id| async move { runtime.cancel(&id).await.map_err(BindingError::from) }))
    }

    /// Aggregated statistics since the runtime started.
    #[napi(ts_return_type = "Promise<RuntimeStats>")]
    pub fn get_stats<'env>(&self, env: &'env Env) -> napi::Result<Unknown<'env>> {
        let runtime = self.runtime.clone();
        self.executor.spawn(env, Ok(async move { Ok(Js(runtime.stats().await)) }))
    }

    /// The metrics in the Prometheus text format.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn get_prometheus_metrics<'env>(&self, env: &'env Env) -> napi::Result<Unknown<'env>> {
        let runtime = self.runtime.clone();
        self.executor.spawn(env, Ok(async move { Ok(runtime.prometheus().await) }))
    }

    /// The capability tokens a handler's source needs, with warnings for dynamic accesses;
    /// a syntax error rejects with `code: "SYNTAX_ERROR"` and `location`. `options.language`
    /// as for `precompileHandler`.
    #[napi(ts_return_type = "Promise<CapabilityInference>")]
    pub fn infer_capabilities<'env>(
        &self,
        env: &'env Env,
        code: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Unknown<'env>> {
        inferred_off_the_loop(env, &code, options.as_ref())
    }

    /// Stops accepting work, lets running executions finish within `graceMs` (default 5000),
    /// and fails parked ones with `SHUTTING_DOWN`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn shutdown<'env>(&self, env: &'env Env, grace_ms: Option<Unknown>) -> napi::Result<Unknown<'env>> {
        let runtime = self.runtime.clone();
        let grace = match optional(grace_ms.as_ref()) {
            Some(value) => grace_period(value),
            None => Ok(DEFAULT_SHUTDOWN_GRACE),
        };
        self.executor.spawn(
            env,
            grace.map(|grace| async move {
                runtime.shutdown(grace).await;
                Ok(())
            }),
        )
    }
}

impl NexusRuntime {
    fn execute<'env>(
        &self,
        env: &'env Env,
        request: BindingResult<nexus_actors::engine::ExecutionRequest>,
    ) -> napi::Result<Unknown<'env>> {
        let runtime = self.runtime.clone();
        self.executor.spawn(env, request.map(|request| async move { settled(runtime.execute(request).await) }))
    }
}

/// Internal, called once per environment by `lib/native.js`: the JavaScript functions of the
/// argument conversion (`lib/json-text.js`, see `convert::to_json`): the one it tries first,
/// and the one naming the built-ins it refuses.
#[napi(js_name = "useJsonText")]
pub fn use_json_text(env: Env, json_text: Unknown, not_json: Unknown) -> napi::Result<()> {
    convert::use_json_text(env.raw(), json_text.raw(), not_json.raw())
}

/// `inferCapabilities(code, options)` of the module, which needs no runtime: the same as the method.
#[napi(js_name = "inferCapabilities", ts_return_type = "Promise<CapabilityInference>")]
pub fn infer_capabilities_module<'env>(
    env: &'env Env,
    code: Unknown,
    options: Option<Unknown>,
) -> napi::Result<Unknown<'env>> {
    inferred_off_the_loop(env, &code, options.as_ref())
}

/// A promise of the inference of `code`, made on a libuv worker thread: parsing a large source
/// (or stripping a TypeScript one) takes a while, and the event loop must not wait for it.
fn inferred_off_the_loop<'env>(
    env: &'env Env,
    code: &Unknown,
    options: Option<&Unknown>,
) -> napi::Result<Unknown<'env>> {
    // Bad arguments reject too, as every method's do.
    let task = env.spawn(Infer { input: Some(source_and_language(code, options)), failed: None })?;
    let promise = task.promise_object();
    // SAFETY: the promise is a live value of `env`, in the current handle scope.
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), promise.raw()) })
}

/// Capability inference as a libuv task; a refusal keeps its code and location for `reject`.
struct Infer {
    input: Option<BindingResult<(String, Language)>>,
    failed: Option<BindingError>,
}

impl napi::Task for Infer {
    type Output = nexus_host_fns::Inference;
    type JsValue = Js<nexus_host_fns::Inference>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let input = self.input.take().expect("a task is computed once");
        input.and_then(|(code, language)| infer(&code, language)).map(|Js(inference)| inference).map_err(|error| {
            let reason = error.message.clone();
            self.failed = Some(error);
            napi::Error::from_reason(reason)
        })
    }

    fn resolve(&mut self, _: Env, inference: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(Js(inference))
    }

    fn reject(&mut self, env: Env, error: napi::Error) -> napi::Result<Self::JsValue> {
        Err(self.failed.take().map_or(error, |failed| failed.into_napi(&env)))
    }
}

/// The source and language of `precompileHandler(code, options)` and
/// `inferCapabilities(code, options)`.
fn source_and_language(code: &Unknown, options: Option<&Unknown>) -> BindingResult<(String, Language)> {
    let code = to_string(code, "code")?;
    let options: PrecompileOptions = match optional(options) {
        Some(value) => parse(to_json(value, "options")?, "options")?,
        None => PrecompileOptions::default(),
    };
    Ok((code, options.language))
}

fn infer(code: &str, language: Language) -> BindingResult<Js<nexus_host_fns::Inference>> {
    Runtime::infer_capabilities_in(code, language).map(Js).map_err(|error| match error {
        InferenceError::Syntax { message, line, column } => {
            let location = Location { line, column };
            let snippet = nexus_actors::engine::snippet(code, location);
            BindingError { code: nexus_abi::ErrorCode::SyntaxError, message, location: Some(location), snippet }
        }
        InferenceError::TooLarge { .. } => BindingError::invalid(error.to_string()),
    })
}

/// Internal, read once by `lib/native.js`: the Cargo profile this module was built with
/// (benchmarks refuse a debug build) and the nesting limit of request values.
#[napi(ts_return_type = "{ profile: 'release' | 'debug'; maxNesting: number }")]
pub fn definitions() -> serde_json::Value {
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    serde_json::json!({ "profile": profile, "maxNesting": convert::MAX_DEPTH })
}

/// `shutdown(graceMs)`'s grace period: a finite number of milliseconds from 0 to
/// [`MAX_SHUTDOWN_GRACE_MS`] (a fraction is kept).
fn grace_period(value: &Unknown) -> BindingResult<Duration> {
    let ms = match value.get_type() {
        // SAFETY: `cast` does not check the type: `get_type` just reported a number.
        Ok(napi::ValueType::Number) => unsafe { value.cast::<f64>() }.ok(),
        _ => None,
    };
    match ms {
        Some(ms) if (0.0..=MAX_SHUTDOWN_GRACE_MS).contains(&ms) => Ok(Duration::from_secs_f64(ms / 1000.0)),
        _ => {
            let got = match (ms, to_json(value, "graceMs")) {
                (Some(ms), _) => format!("the number {}", crate::convert::javascript_number(ms)),
                (None, Ok(serde_json::Value::String(text))) => format!("the string {text:?}"),
                (None, Ok(serde_json::Value::Array(_))) => "an array".to_owned(),
                (None, Ok(serde_json::Value::Object(_))) => "an object".to_owned(),
                (None, Ok(other)) => other.to_string(),
                (None, Err(_)) => "a value that is not a number".to_owned(),
            };
            Err(BindingError::invalid(format!(
                "graceMs: expected a number of milliseconds from 0 to {MAX_SHUTDOWN_GRACE_MS}, got {got}"
            )))
        }
    }
}

/// An argument that was given and is neither `undefined` nor `null`.
fn optional<'a, 'env>(value: Option<&'a Unknown<'env>>) -> Option<&'a Unknown<'env>> {
    value.filter(|value| !matches!(value.get_type(), Ok(napi::ValueType::Undefined | napi::ValueType::Null)))
}

fn request(
    handler: Handler,
    context: Option<&Unknown>,
    timeout_ms: Option<&Unknown>,
) -> BindingResult<nexus_actors::engine::ExecutionRequest> {
    let context: Context = match optional(context) {
        Some(value) => parse(to_json(value, "context")?, "context")?,
        None => Context::default(),
    };
    let timeout_ms = match optional(timeout_ms) {
        Some(value) => Some(parse::<u64>(to_json(value, "timeoutMs")?, "timeoutMs")?),
        None => None,
    };
    context.into_request(handler, timeout_ms)
}

/// `resumeHandler`'s result. A field is given when the object has it, even as `undefined`
/// (which its JSON leaves out): a `value` given as `undefined` is the extension returning
/// nothing (the handler sees `null`), an `error` given as `undefined` is not an error.
fn call_result(result: &Unknown) -> BindingResult<CallResult> {
    let mut json = to_json(result, "result")?;
    if let serde_json::Value::Object(fields) = &mut json
        && result.get_type().is_ok_and(|kind| kind == napi::ValueType::Object)
    {
        // SAFETY: `cast` does not check the type: `get_type` just reported an object.
        let object: Object =
            unsafe { result.cast() }.map_err(|e| BindingError::invalid(format!("result: {}", e.reason)))?;
        let given = |field: &str| object.has_own_property(field).unwrap_or(false);
        if !fields.contains_key("error") && given("error") {
            return Err(BindingError::invalid("result.error: expected an object { message, code? }, got undefined"));
        }
        if !fields.contains_key("value") && given("value") {
            fields.insert("value".to_owned(), serde_json::Value::Null);
        }
    }
    parse(json, "result")
}

/// A result resolves; a refusal rejects.
fn settled(answer: Result<ExecutionResult, Refusal>) -> BindingResult<JsResult> {
    answer.map(JsResult).map_err(BindingError::from)
}
