//! Adversarial handlers: code that tries to reach the host or widen its powers, or to take the
//! runtime down. Each must end in a defined error code or a correct result, and the runtime
//! must serve the next execution normally (checked after every case by [`attempt`]).
//!
//! * [`escape`]: constructor and `Function` tricks, the globals a sandbox must not have.
//! * [`pollution`]: prototype pollution of the API proxies and of `Object.prototype`,
//!   `__proto__` / `constructor` keys, extension names like `then`.
//! * [`serialization`]: getters, `toJSON` and `Symbol.toPrimitive` that throw or loop while
//!   arguments are serialized; cyclic, huge and deeply nested values; very long keys.
//! * [`loops`]: infinite loops in `finally`, in a `then` after a resume, in a getter the
//!   sandbox itself triggers.
//! * [`stack`]: frames that exhaust the guest's shadow stack, recursion inside serialization.
//! * [`forgery`]: handlers throwing what looks like the engine's errors to choose their code.
//! * [`wrapper`]: sources that close the handler's function early to run code outside it.
//! * [`memory`]: out-of-memory the handler catches, or that QuickJS would meet first.
//! * [`lookups`]: the engine's own `then` / `toJSON` lookups on `$state` and `$ext`.
//! * [`fire_and_forget`]: extension calls the handler never awaits.
//! * [`reach`]: call sites, `caller` and `arguments` as ways to the prelude's functions.
//! * [`strings`]: lone surrogates in values, log text and names.

#[path = "../common/mod.rs"]
mod common;

mod escape;
mod fire_and_forget;
mod forgery;
mod lookups;
mod loops;
mod memory;
mod pollution;
mod reach;
mod serialization;
mod stack;
mod strings;
mod wrapper;

use std::sync::OnceLock;
use std::time::Duration;

use nexus::{ErrorCode, ExecutionRequest, ExecutionResult, ExtOutcome, Refusal, Runtime, RuntimeConfig, Status};
use serde_json::{Value, json};

/// One runtime for the whole binary: every adversarial case runs on it, and every case checks
/// that it still serves an ordinary execution afterwards.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let mut config = RuntimeConfig::default();
        config.pool_size = 8;
        config.workers = 2;
        Runtime::start(config).expect("runtime starts")
    })
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio").block_on(future)
}

/// A request for `source` holding `caps`, with room to finish even on a loaded machine.
fn request(source: &str, caps: &[&str]) -> ExecutionRequest {
    let mut request = common::request(source, caps, json!({"count": 1}));
    request.timeout = Duration::from_secs(10);
    request
}

/// A request for a handler expected to loop: a short timeout, which it must hit.
fn looping(source: &str, caps: &[&str]) -> ExecutionRequest {
    ExecutionRequest { timeout: Duration::from_millis(200), ..request(source, caps) }
}

/// Runs the request on the shared runtime, then proves the runtime unharmed: a fresh execution
/// succeeds and sees clean built-ins (nothing the attack did survived its instance).
fn attempt(request: ExecutionRequest) -> ExecutionResult {
    answered(request).expect("runs")
}

/// [`attempt`] for a request the runtime may refuse.
fn answered(request: ExecutionRequest) -> Result<ExecutionResult, Refusal> {
    let answer = block_on(runtime().execute(request));
    assert_next_execution_is_clean();
    answer
}

/// Resumes a suspended result's first call with `outcome`, then checks the runtime likewise.
fn resume(suspended: &ExecutionResult, outcome: ExtOutcome) -> ExecutionResult {
    resume_answered(suspended, outcome).expect("resumes")
}

/// [`resume`] for a resume the runtime may refuse.
fn resume_answered(suspended: &ExecutionResult, outcome: ExtOutcome) -> Result<ExecutionResult, Refusal> {
    let suspension = suspended.suspension.as_ref().unwrap_or_else(|| panic!("expected a suspension: {suspended:?}"));
    let answer = block_on(runtime().resume(&suspension.id, suspension.calls[0].call_id, outcome));
    assert_next_execution_is_clean();
    answer
}

fn assert_next_execution_is_clean() {
    let mut probe = common::request(
        "return [$args.n + 1, typeof globalThis.polluted, typeof ({}).polluted, typeof ({}).toJSON, \
         typeof ({}).then, Object.getOwnPropertyNames(Object.prototype).length, String(Math.max)];",
        &[],
        Value::Null,
    );
    probe.args = json!({"n": 41});
    let result = block_on(runtime().execute(probe)).expect("runs");
    assert_eq!(result.status, Status::Success, "the runtime still serves: {:?}", result.error);
    assert_eq!(
        result.return_value,
        json!([42, "undefined", "undefined", "undefined", "undefined", 12, "function max() {\n    [native code]\n}"]),
        "a fresh instance sees untouched built-ins"
    );
}

fn code(result: &ExecutionResult) -> ErrorCode {
    common::error_code(result)
}

fn success(result: &ExecutionResult) -> &Value {
    assert_eq!(result.status, Status::Success, "expected success: {:?}", result.error);
    &result.return_value
}
