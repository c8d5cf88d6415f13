//! Shared helpers for the integration tests: one engine per test binary (the guest module is
//! compiled once per process), and request builders.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::Duration;

use nexus::{Engine, EngineConfig, ExecutionRequest, ExecutionResult, Outcome};
use serde_json::Value;

pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::with_slots(EngineConfig::default(), 64).expect("engine starts"))
}

/// A request for `source` holding `caps`, with `state` (a JSON object) as its snapshot.
pub fn request(source: &str, caps: &[&str], state: Value) -> ExecutionRequest {
    let mut request = ExecutionRequest::source(source);
    request.capabilities = caps.iter().map(|t| t.parse().expect("test tokens are well-formed")).collect();
    request.state_snapshot = match state {
        Value::Object(map) => map,
        Value::Null => Default::default(),
        other => panic!("state must be an object, got {other}"),
    };
    request.timeout = Duration::from_secs(2);
    request
}

/// Registers `extension.method` in the request's extension registry.
pub fn register(mut request: ExecutionRequest, extension: &str, methods: &[&str]) -> ExecutionRequest {
    request.extension_registry.entry(extension.to_owned()).or_default().extend(methods.iter().map(|m| (*m).to_owned()));
    request
}

pub fn run(source: &str, caps: &[&str], state: Value) -> ExecutionResult {
    let outcome = engine().execute(request(source, caps, state));
    assert!(outcome.parked.is_none() || outcome.result.suspension.is_some());
    outcome.result
}

pub fn execute(request: ExecutionRequest) -> Outcome {
    engine().execute(request)
}

pub fn error_code(result: &ExecutionResult) -> nexus::ErrorCode {
    result.error.as_ref().unwrap_or_else(|| panic!("expected an error, got {result:?}")).code
}
