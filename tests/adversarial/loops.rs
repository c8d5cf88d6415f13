//! Infinite loops where a runtime might not look: in `finally`, in a `then` after a resume,
//! in a getter the sandbox itself calls while reporting an error.

use nexus::{ErrorCode, ExtOutcome, Status};
use serde_json::json;

use super::{attempt, code, common, looping, request, resume};

#[test]
fn an_infinite_loop_in_finally_after_return_times_out() {
    let result = attempt(looping("try { return 1; } finally { for (;;) {} }", &[]));
    assert_eq!(code(&result), ErrorCode::Timeout);
    let result = attempt(looping("try { throw new Error('x'); } catch (e) { } finally { while (true) {} }", &[]));
    assert_eq!(code(&result), ErrorCode::Timeout);
}

#[test]
fn an_infinite_loop_in_a_then_after_resume_times_out_on_the_resume() {
    let suspended = attempt(common::register(
        looping(
            "const v = await $ext.kv.get(1);\n\
             Promise.resolve().then(() => { for (;;) {} });\n\
             return v;",
            &["ext:kv"],
        ),
        "kv",
        &["get"],
    ));
    assert_eq!(suspended.status, Status::Suspended);
    let resumed = resume(&suspended, ExtOutcome::Ok(json!(1)));
    assert_eq!(code(&resumed), ErrorCode::Timeout);
}

#[test]
fn a_loop_in_a_rejection_handler_of_an_extension_error_times_out() {
    let suspended = attempt(common::register(
        looping("try { await $ext.kv.get(1); } catch (e) { for (;;) {} }", &["ext:kv"]),
        "kv",
        &["get"],
    ));
    let resumed = resume(&suspended, ExtOutcome::Err { code: Some("E".into()), message: "down".into() });
    assert_eq!(code(&resumed), ErrorCode::Timeout);
}

#[test]
fn getters_the_sandbox_calls_on_a_thrown_value_are_bounded_too() {
    for property in ["message", "name", "stack"] {
        let source = format!("throw {{ get {property}() {{ for (;;) {{}} }} }};");
        let result = attempt(looping(&source, &[]));
        assert_eq!(code(&result), ErrorCode::Timeout, "{property}");
    }
    // `code` is read only as an own data property: its getter is not called at all.
    let result = attempt(looping("throw { get code() { for (;;) {} } };", &[]));
    assert_eq!(code(&result), ErrorCode::RuntimeError);
    // A getter that throws while the error is described still leaves a defined error.
    let result =
        attempt(request("throw { get message() { throw new Error('inner'); }, get name() { throw 1; } };", &[]));
    assert_eq!(code(&result), ErrorCode::RuntimeError);
}

#[test]
fn a_thrown_object_with_a_looping_to_string_is_bounded() {
    let result = attempt(looping("throw { toString() { for (;;) {} } };", &[]));
    assert!(matches!(code(&result), ErrorCode::Timeout | ErrorCode::RuntimeError), "{:?}", result.error);
    let result = attempt(request("throw Object.create(null);", &[]));
    assert_eq!(code(&result), ErrorCode::RuntimeError);
}

#[test]
fn a_returned_thenable_that_never_settles_is_unsettled_and_one_that_loops_times_out() {
    let result = attempt(request("return { then() {} };", &[]));
    assert_eq!(code(&result), ErrorCode::Unsettled);
    let result = attempt(looping("return { then() { for (;;) {} } };", &[]));
    assert_eq!(code(&result), ErrorCode::Timeout);
}
