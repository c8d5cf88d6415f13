//! Errors and limits: every way a handler can fail ends in its documented error code
//! (docs/results-and-errors.md), with the handler's own line where there is one, and the
//! engine keeps serving.

mod common;

use std::time::{Duration, Instant};

use common::{error_code, run};
use nexus::{ErrorCode, Location, Status};
use serde_json::json;

fn assert_still_serving() {
    let result = run("return 'alive';", &[], json!({}));
    assert_eq!(result.return_value, json!("alive"));
}

#[test]
fn syntax_error_reports_the_handler_line() {
    let result = run("const a = 1;\nconst b = ;\nreturn a;", &[], json!({}));
    let error = result.error.expect("a syntax error");
    assert_eq!(error.code, ErrorCode::SyntaxError);
    assert_eq!(error.location.map(|l| l.line), Some(2));
    assert_eq!(error.snippet.as_deref(), Some("const b = ;"));
}

#[test]
fn syntax_error_at_the_end_points_into_the_handler() {
    let result = run("const a = 1;\nreturn (", &[], json!({}));
    let error = result.error.expect("a syntax error");
    assert_eq!(error.code, ErrorCode::SyntaxError);
    assert_eq!(error.location.map(|l| l.line), Some(2), "not the wrapper's closing line");
    // Nothing of the function the handler is compiled in: no `}` the author never wrote, no
    // line 3 in a stack.
    assert_eq!(error.message, "SyntaxError: unexpected end of input");
    assert!(error.stack.as_deref().is_none_or(|stack| !stack.contains("handler.js:3")), "{:?}", error.stack);
    assert_eq!(error.snippet.as_deref(), Some("return ("));
}

#[test]
fn runtime_error_reports_line_column_and_snippet() {
    let result = run("const x = 1;\n\nconst y = x.missing.deeper;\nreturn y;", &[], json!({}));
    let error = result.error.expect("a runtime error");
    assert_eq!(error.code, ErrorCode::RuntimeError);
    assert!(error.message.starts_with("TypeError"), "{}", error.message);
    assert_eq!(error.location.map(|l| l.line), Some(3));
    assert_eq!(error.snippet.as_deref(), Some("const y = x.missing.deeper;"));
}

#[test]
fn errors_on_the_first_line_have_handler_columns() {
    let result = run("null.x", &[], json!({}));
    let location = result.error.and_then(|e| e.location).expect("a location");
    assert_eq!(location.line, 1);
    assert!(location.column <= 6, "column {} is inside the wrapper", location.column);
    let thrown = run("  throw new Error('x')", &[], json!({}));
    // QuickJS places a `new` expression at its constructor.
    let error = thrown.error.expect("an error");
    assert_eq!(error.location, Some(Location { line: 1, column: 13 }));
    // The stack says the same.
    let stack = error.stack.expect("a stack");
    assert!(stack.lines().next().is_some_and(|frame| frame.ends_with("(handler.js:1:13)")), "{stack}");
}

fn assert_times_out_quickly(source: &str) {
    let mut request = common::request(source, &[], json!({}));
    request.timeout = Duration::from_millis(100);
    let started = Instant::now();
    let result = common::execute(request).result;
    assert_eq!(error_code(&result), ErrorCode::Timeout, "{source}");
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    assert_still_serving();
}

#[test]
fn infinite_loop_times_out_quickly() {
    assert_times_out_quickly("while (true) {}");
}

#[test]
fn a_timeout_stops_its_own_execution_never_before_its_deadline_nor_another_one() {
    // Executions running at once share the engine's ticker: the increment that stops the short
    // one reaches the long one too, which must go on until its own deadline.
    let looping = |ms| {
        let mut request = common::request("while (true) {}", &[], json!({}));
        request.timeout = Duration::from_millis(ms);
        request
    };
    let long = std::thread::spawn(move || {
        let started = Instant::now();
        (common::execute(looping(400)).result, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(20));
    let started = Instant::now();
    let short = common::execute(looping(50)).result;
    let short_took = started.elapsed();
    let (long, long_took) = long.join().unwrap();
    assert_eq!(error_code(&short), ErrorCode::Timeout);
    assert_eq!(error_code(&long), ErrorCode::Timeout);
    assert!(short_took >= Duration::from_millis(50) && short_took < Duration::from_secs(1), "{short_took:?}");
    assert!(long_took >= Duration::from_millis(400) && long_took < Duration::from_secs(2), "{long_took:?}");
    assert_still_serving();
}

#[test]
fn endless_microtask_chain_times_out_quickly() {
    assert_times_out_quickly(
        "function spin() { return Promise.resolve().then(spin); } spin(); await new Promise(() => {});",
    );
}

#[test]
fn a_loop_in_finally_or_a_getter_the_host_reads_still_times_out() {
    for source in [
        "try { return 1; } finally { while (true) {} }",
        "throw { get message() { while (true) {} } };",
        "return { toJSON() { for (;;) {} } };",
    ] {
        let mut request = common::request(source, &[], json!({}));
        request.timeout = Duration::from_millis(100);
        assert_eq!(error_code(&common::execute(request).result), ErrorCode::Timeout, "{source}");
    }
    assert_still_serving();
}

#[test]
fn memory_bomb_ends_as_memory_limit() {
    let mut request = common::request("const a = []; while (true) a.push('x'.repeat(1 << 16));", &[], json!({}));
    request.memory_limit = Some(16 << 20);
    let result = common::execute(request).result;
    assert_eq!(error_code(&result), ErrorCode::MemoryLimit, "{result:?}");
    assert!(result.metrics.memory_bytes <= 16 << 20);
    assert_still_serving();
}

#[test]
fn one_huge_allocation_ends_as_memory_limit() {
    let mut request = common::request("return new ArrayBuffer(64 << 20).byteLength;", &[], json!({}));
    request.memory_limit = Some(16 << 20);
    assert_eq!(error_code(&common::execute(request).result), ErrorCode::MemoryLimit);
    assert_still_serving();
}

#[test]
fn unbounded_recursion_ends_as_stack_overflow() {
    for source in [
        "function f() { return f() + 1; } return f();",
        "const o = {}; let p = o; for (let i = 0; i < 1e5; i++) { p.a = {}; p = p.a; } return JSON.stringify(o).length;",
    ] {
        let result = run(source, &[], json!({}));
        assert_eq!(error_code(&result), ErrorCode::StackOverflow, "{source}");
    }
    let moderate = run("function f(n) { return n ? f(n - 1) + 1 : 0; } return f(1000);", &[], json!({}));
    assert_eq!(moderate.return_value, json!(1000), "realistic recursion depths work");
    assert_still_serving();
}

#[test]
fn output_flood_ends_as_memory_limit_even_when_caught() {
    let result = run(
        "for (let i = 0; ; i++) { try { $emit('e', 'x'.repeat(1 << 16)); } catch (e) { return 'swallowed ' + e.code; } }",
        &["events:emit:e"],
        json!({}),
    );
    assert_eq!(error_code(&result), ErrorCode::MemoryLimit);
}

#[test]
fn a_memory_limit_outside_what_the_engine_can_run_is_an_invalid_argument() {
    for limit in [1 << 40, 64 << 10] {
        let mut request = common::request("return 1;", &[], json!({}));
        request.memory_limit = Some(limit);
        let error = common::execute(request).result.error.expect("refused");
        assert_eq!(error.code, ErrorCode::InvalidArgument, "{limit}: {}", error.message);
    }
    assert_still_serving();
}

#[test]
fn the_second_execution_of_a_source_hits_the_compile_cache_and_keeps_snippets() {
    let source = "const a = 1;\nreturn a.b.c; // cache me";
    let first = run(source, &[], json!({}));
    assert!(!first.metrics.cache_hit && first.metrics.compile_time_us > 0, "{:?}", first.metrics);
    let second = run(source, &[], json!({}));
    assert!(second.metrics.cache_hit, "{:?}", second.metrics);
    assert_eq!(second.metrics.compile_time_us, 0);
    let error = second.error.expect("still fails the same way");
    assert_eq!(error.location.map(|l| l.line), Some(2));
    assert_eq!(error.snippet.as_deref(), Some("return a.b.c; // cache me"));
    assert_eq!(first.error.unwrap().message, error.message);
}

#[test]
fn compile_time_is_reported_for_source_only() {
    let source = run("return 'compile time';", &[], json!({}));
    assert!(source.metrics.compile_time_us > 0, "{:?}", source.metrics);
    let mut request = common::request("", &[], json!({}));
    request.handler = nexus::Handler::Bytecode(common::engine().precompile("return 1;").unwrap());
    assert_eq!(common::execute(request).result.metrics.compile_time_us, 0);
}

#[test]
fn precompiled_bytecode_runs_like_source_and_foreign_bytes_are_refused() {
    let engine = common::engine();
    let source = "const x = $args.a * 2;\nreturn x + undefinedName;";
    let bytecode = engine.precompile("return $args.a * 2;").expect("compiles");
    let mut request = common::request("", &[], json!({}));
    request.handler = nexus::Handler::Bytecode(bytecode);
    request.args = json!({"a": 21});
    assert_eq!(common::execute(request).result.return_value, json!(42));

    let failing = engine.precompile(source).expect("compiles");
    let mut request = common::request("", &[], json!({}));
    request.handler = nexus::Handler::Bytecode(failing);
    request.args = json!({"a": 1});
    let error = common::execute(request).result.error.expect("fails at run time");
    assert_eq!(error.code, ErrorCode::RuntimeError);
    assert_eq!(error.location.map(|l| l.line), Some(2));

    let syntax = engine.precompile("return (").expect_err("a syntax error");
    assert_eq!(syntax.code, ErrorCode::SyntaxError);

    let mut request = common::request("", &[], json!({}));
    request.handler = nexus::Handler::Bytecode(b"not bytecode at all".to_vec());
    let result = common::execute(request).result;
    assert_eq!(result.status, Status::Error);
    assert_eq!(error_code(&result), ErrorCode::InvalidArgument);
    assert_still_serving();

    // This guest's bytecode, truncated or with a byte changed: a bad request, not a syntax error.
    let good = engine.precompile("return $args.a * 2;").unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x55;
    for damaged in [good[..good.len() / 2].to_vec(), flipped] {
        let mut request = common::request("", &[], json!({}));
        request.handler = nexus::Handler::Bytecode(damaged);
        request.args = json!({"a": 1});
        let result = common::execute(request).result;
        // A changed byte QuickJS reads without noticing runs as whatever it reads (inside the
        // sandbox); one it notices is refused.
        if result.status == Status::Error {
            let error = result.error.as_ref().unwrap();
            assert_ne!(error.code, ErrorCode::SyntaxError, "{error:?}");
        }
    }
    let mut request = common::request("", &[], json!({}));
    request.handler = nexus::Handler::Bytecode(good[..good.len() / 2].to_vec());
    let error = common::execute(request).result.error.expect("truncated");
    assert_eq!(error.code, ErrorCode::InvalidArgument, "{error:?}");
    assert!(error.message.contains("damaged"), "{error:?}");
    assert_still_serving();
}
