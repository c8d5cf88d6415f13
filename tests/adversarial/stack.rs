//! Running out of stack where the sandbox may not expect it: frames big enough to exhaust the
//! guest's shadow stack in a few calls, and recursion inside serialization.

use nexus::ErrorCode;
use serde_json::json;

use super::{attempt, code, request, success};

/// A function whose frame holds `vars` local variables (QuickJS allocates them on the shadow
/// stack), recursing `depth` times.
fn big_frames(vars: usize, depth: usize) -> String {
    let names: Vec<String> = (0..vars).map(|i| format!("v{i}")).collect();
    format!("function f(n) {{ var {}; return n === 0 ? 0 : 1 + f(n - 1); }}\nreturn f({depth});", names.join(", "))
}

#[test]
fn frames_that_exhaust_the_shadow_stack_are_a_stack_overflow_not_a_sandbox_failure() {
    // 10,000 locals take about 160 KiB of the guest's 1 MiB shadow stack per call.
    let result = attempt(request(&big_frames(10_000, 100), &[]));
    assert_eq!(code(&result), ErrorCode::StackOverflow, "{:?}", result.error);
    // The same frames, few enough, run.
    assert_eq!(success(&attempt(request(&big_frames(10_000, 3), &[]))), &json!(3));
}

#[test]
fn recursion_inside_serialization_is_a_stack_overflow() {
    for source in [
        "const deep = (n) => ({ toJSON() { return [deep(n + 1)]; } }); $emit('e', deep(0));",
        "const o = { get x() { return JSON.stringify(o); } }; return o;",
        "function f() { try { f(); } finally { $emit('e', [f]); } } f();",
    ] {
        let result = attempt(request(source, &["events:emit:e"]));
        assert!(
            matches!(code(&result), ErrorCode::StackOverflow | ErrorCode::RuntimeError),
            "{source}: {:?}",
            result.error
        );
        assert!(result.records.events.is_empty() || source.contains("finally"), "{source}");
    }
}
