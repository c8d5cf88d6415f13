//! Configuring a runtime from outside the crate, as the README shows: the configuration types
//! are `#[non_exhaustive]`, so a caller starts from `default()` and assigns fields.

use std::time::Duration;

use nexus::{ErrorCode, ExecutionRequest, Runtime, RuntimeConfig, Status};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_configured_by_assigning_fields_runs_with_those_settings() {
    let mut config = RuntimeConfig::default();
    config.pool_size = 64;
    config.queue_bound = 1024;
    config.engine.default_memory_limit = 32 << 20;
    let runtime = Runtime::start(config).expect("runtime starts");

    let mut request = ExecutionRequest::source("return $args.a + $args.b;");
    request.args = json!({ "a": 2, "b": 3 });
    let result = runtime.execute(request).await.expect("runs");
    assert_eq!((result.status, result.return_value), (Status::Success, json!(5)), "{:?}", result.error);

    // A request naming no memory limit gets the configured one: 40 MiB do not fit in 32, and
    // do in the 64 a request may still ask for.
    let large = "return new ArrayBuffer(40 << 20).byteLength;";
    let limited = runtime.execute(ExecutionRequest::source(large)).await.expect("runs");
    assert_eq!(limited.error.map(|e| e.code), Some(ErrorCode::MemoryLimit));
    let mut roomier = ExecutionRequest::source(large);
    roomier.memory_limit = Some(64 << 20);
    let fits = runtime.execute(roomier).await.expect("runs");
    assert_eq!(fits.return_value, json!(40 << 20), "{:?}", fits.error);

    runtime.shutdown(Duration::from_secs(1)).await;
}

/// The start's configuration error, or a panic naming what happened instead.
fn config_error(config: RuntimeConfig) -> String {
    match Runtime::start(config) {
        Err(nexus::StartError::Config(message)) => message,
        Err(other) => panic!("not a configuration error: {other:?}"),
        Ok(_) => panic!("the runtime started"),
    }
}

#[test]
fn a_configuration_that_cannot_serve_is_refused_at_start_naming_why() {
    // No instance: every request would wait forever.
    let mut config = RuntimeConfig::default();
    config.pool_size = 0;
    assert!(config_error(config).contains("pool size is 0"));

    // A default memory limit no execution can run in, or larger than a request may ask for.
    for default in [1, 512 << 20] {
        let mut config = RuntimeConfig::default();
        config.engine.default_memory_limit = default;
        let message = config_error(config);
        assert!(message.contains(&format!("the default memory limit, {default} bytes, is outside")), "{message}");
        assert!(message.contains("to 268435456 bytes"), "{message}");
    }

    // A largest limit below the snapshot's memory: refused before anything is compiled for it.
    let mut config = RuntimeConfig::default();
    (config.engine.default_memory_limit, config.engine.max_memory_limit) = (1, 1);
    let message = config_error(config);
    assert!(message.starts_with("the largest memory limit, 1 bytes, is below the snapshot's own memory"), "{message}");

    // More slots than the address space holds.
    let mut config = RuntimeConfig::default();
    config.pool_size = 1_000_000;
    let message = config_error(config);
    assert!(message.starts_with("configuring wasmtime for 1000"), "{message}");
    assert!(message.contains("fewer instances or a smaller largest memory limit need less"), "{message}");
}

#[test]
fn settings_that_would_abort_the_process_or_break_single_use_are_refused_at_start() {
    let refused = |change: &dyn Fn(&mut RuntimeConfig), expected: &str| {
        let mut config = RuntimeConfig::default();
        change(&mut config);
        let message = config_error(config);
        assert!(message.contains(expected), "{expected}: {message}");
    };
    // A pool whose slot count would overflow.
    refused(&|c| c.pool_size = usize::MAX, "the pool size, 18446744073709551615, is above 1048576");
    // A wasm stack as large as the thread's: a handler recursing to it overflowed the thread and
    // aborted the process (2 MiB did).
    refused(&|c| c.engine.max_wasm_stack = 2 << 20, "max_wasm_stack, 2097152 bytes, is above 1572864 bytes");
    refused(&|c| c.engine.max_wasm_stack = 0, "max_wasm_stack is 0");
    // A zero lease let two resumes of one stored suspension both run its step.
    refused(&|c| c.claim_lease = Duration::ZERO, "claim_lease is 0: two resumes");
    refused(&|c| c.suspension_timeout = Duration::ZERO, "suspension_timeout is 0");
    // Durations that overflowed the clock at the first suspension or resume (a panic).
    refused(&|c| c.suspension_timeout = Duration::MAX, "suspension_timeout is");
    refused(&|c| c.claim_lease = Duration::MAX, "claim_lease is");
    refused(&|c| c.hibernate_after = Duration::MAX, "hibernate_after is");
    refused(&|c| c.spin_before_park = Duration::MAX, "spin_before_park is");
}

#[tokio::test]
async fn the_largest_wasm_stack_allowed_ends_deep_recursion_as_stack_overflow() {
    let mut config = RuntimeConfig::default();
    config.engine.max_wasm_stack = nexus::MAX_WASM_STACK;
    let runtime = Runtime::start(config).expect("starts");
    let result = runtime.execute(ExecutionRequest::source("function f(n) { return f(n + 1) + 1; } return f(0);")).await;
    assert_eq!(result.expect("not refused").error.map(|e| e.code), Some(ErrorCode::StackOverflow));
    runtime.shutdown(Duration::from_secs(1)).await;
}
