//! Reaching for the host: constructors, `Function`, and the globals a sandbox must not have.

use nexus::ErrorCode;
use serde_json::json;

use super::{attempt, code, request, success};

#[test]
fn function_constructor_reaches_only_the_sandbox_global() {
    let result = attempt(request(
        "const g = $emit.constructor('return this')();\n\
         const viaProto = Object.getPrototypeOf(async function () {}).constructor;\n\
         const found = Object.getOwnPropertyNames(g)\n\
           .filter((n) => /host|nexus|std|^os$|require|process|import|wasi|fs|fetch/i.test(n));\n\
         return [g === globalThis, found, typeof viaProto, typeof g.host, typeof g.$state];",
        &[],
    ));
    assert_eq!(success(&result), &json!([true, [], "function", "undefined", "undefined"]));
}

#[test]
fn code_built_with_function_cannot_see_the_api_it_was_not_given() {
    let result = attempt(request("return Function('return $state')();", &["state:read:*"]));
    assert_eq!(code(&result), ErrorCode::RuntimeError, "$state is a parameter, not a global");
}

#[test]
fn constructor_of_the_state_proxy_is_a_state_key_and_needs_its_capability() {
    let result = attempt(request("return $state.constructor.constructor('return this')();", &[]));
    assert_eq!(code(&result), ErrorCode::PermissionDenied);
    assert_eq!(result.records.denials[0].capability, "state:read:constructor");
    // With the capability, `constructor` is just an absent key.
    let result = attempt(request("return [typeof $state.constructor, $state.count];", &["state:read:*"]));
    assert_eq!(success(&result), &json!(["undefined", 1]));
}

#[test]
fn constructor_of_ext_is_an_extension_name_like_any_other() {
    let result = attempt(request("return await $ext.constructor.constructor('return this')();", &["ext:weather"]));
    assert_eq!(code(&result), ErrorCode::PermissionDenied);
    assert_eq!(result.records.denials[0].capability, "ext:constructor");
    assert_eq!(result.records.denials[0].operation, "ext.call");
}

#[test]
fn the_native_host_object_is_not_reachable_through_api_functions() {
    let result = attempt(request(
        "const fns = [$emit, $view.update, $view.command, $log, $log.info, console.log];\n\
         const seen = [];\n\
         for (const f of fns) {\n\
           seen.push(Object.getOwnPropertyNames(f).filter((n) => !['length', 'name', 'prototype', 'debug', 'info', 'warn', 'error'].includes(n)));\n\
           try { seen.push(typeof f.caller); } catch (e) { seen.push(e.name); }\n\
         }\n\
         return [seen.flat().filter((x) => x !== 'TypeError' && x !== 'undefined'), Object.isFrozen($view), Object.isFrozen($log)];",
        &[],
    ));
    assert_eq!(success(&result), &json!([[], true, true]));
}

#[test]
fn tampering_with_the_api_objects_does_not_change_what_the_host_records() {
    let result = attempt(request(
        "Promise.prototype.then = function () { throw new Error('hijacked'); };\n\
         JSON.stringify = () => '\"forged\"';\n\
         Reflect.apply = () => 'forged';\n\
         $emit('changed', { n: 1 });\n\
         try { $emit('secret', 1); } catch (e) { return e.code; }",
        &["events:emit:changed"],
    ));
    assert_eq!(success(&result), &json!("PERMISSION_DENIED"));
    assert_eq!(result.records.events.len(), 1);
    assert_eq!(result.records.events[0].payload, json!({"n": 1}), "the payload is the handler's own value");
    assert_eq!(result.records.denials[0].capability, "events:emit:secret");
}
