//! Prototype pollution of the API proxies and of `Object.prototype`, `__proto__` and
//! `constructor` as keys and as extension names.

use nexus::{ErrorCode, Event, ExtOutcome, StateMutation, Status};
use serde_json::json;

use super::{attempt, code, common, request, resume, success};

#[test]
fn polluting_object_prototype_before_host_calls_grants_nothing() {
    let result = attempt(request(
        "Object.prototype.polluted = true;\n\
         Object.prototype.toJSON = function () { return 'forged'; };\n\
         Object.defineProperty(Object.prototype, 'code', { get() { return 'PERMISSION_DENIED'; }, configurable: true });\n\
         $state.count = { n: 2 };\n\
         let refused;\n\
         try { $state.secret = 1; } catch (e) { refused = e.code; }\n\
         delete Object.prototype.toJSON;\n\
         return [refused, $state.count];",
        &["state:read:count", "state:write:count"],
    ));
    // The handler only confused itself: its own toJSON shaped its own value.
    assert_eq!(success(&result), &json!(["PERMISSION_DENIED", "forged"]));
    assert_eq!(
        result.records.state_mutations,
        vec![StateMutation::Set { key: "count".into(), value: json!("forged") }]
    );
    assert_eq!(result.records.denials.len(), 1);
    assert_eq!(result.records.denials[0].capability, "state:write:secret");
}

#[test]
fn the_state_proxy_refuses_a_new_prototype_and_proto_is_a_plain_key() {
    let result = attempt(request(
        "let refused;\n\
         try { Object.setPrototypeOf($state, { count: 99 }); } catch (e) { refused = e.name; }\n\
         $state.__proto__ = { polluted: true };\n\
         return [refused, Object.getPrototypeOf($state), ({}).polluted ?? null, $state.count];",
        &["state:read:count", "state:write:__proto__"],
    ));
    assert_eq!(success(&result), &json!(["TypeError", null, null, 1]));
    assert_eq!(
        result.records.state_mutations,
        vec![StateMutation::Set { key: "__proto__".into(), value: json!({"polluted": true}) }]
    );
}

#[test]
fn proto_and_constructor_keys_in_args_state_and_payloads_stay_own_keys() {
    let mut req = request(
        "const payload = JSON.parse('{\"__proto__\": {\"polluted\": true}, \"constructor\": {\"prototype\": {\"x\": 1}}}');\n\
         $emit('e', payload);\n\
         return [Object.keys($args), $args.__proto__.x, ({}).polluted ?? null, ({}).x ?? null, $state.constructor];",
        &["events:emit:e", "state:read:constructor"],
    );
    req.args = json!({"__proto__": {"x": 1}});
    req.state_snapshot = json!({"constructor": {"__proto__": 7}}).as_object().unwrap().clone();
    let result = attempt(req);
    assert_eq!(success(&result), &json!([["__proto__"], 1, null, null, {"__proto__": 7}]));
    assert_eq!(
        result.records.events,
        vec![Event {
            name: "e".into(),
            payload: json!({"__proto__": {"polluted": true}, "constructor": {"prototype": {"x": 1}}})
        }]
    );
}

#[test]
fn args_and_scope_are_frozen_and_pollution_through_them_stays_in_the_instance() {
    let mut req = request(
        "'use strict';\n\
         let frozen;\n\
         try { $args.n = 2; } catch (e) { frozen = e.name; }\n\
         $args.constructor.prototype.polluted = 'yes';\n\
         return [frozen, $args.n, ({}).polluted];",
        &[],
    );
    req.args = json!({"n": 1});
    assert_eq!(success(&attempt(req)), &json!(["TypeError", 1, "yes"]));
}

#[test]
fn extension_names_proto_constructor_and_then_are_checked_like_any_name() {
    // (`then` and `toJSON` are the engine's own lookups: they find nothing, see `lookups`.)
    for name in ["__proto__", "constructor", "hasOwnProperty", "valueOf"] {
        let denied = attempt(request(&format!("return await $ext[{name:?}].get(1);"), &["ext:weather"]));
        assert_eq!(code(&denied), ErrorCode::PermissionDenied, "{name}");
        assert_eq!(denied.records.denials[0].capability, format!("ext:{name}"));

        let unregistered = attempt(request(&format!("return await $ext[{name:?}].get(1);"), &[&format!("ext:{name}")]));
        assert_eq!(code(&unregistered), ErrorCode::UnknownExtension, "{name}");

        let granted = common::register(
            request(&format!("return await $ext[{name:?}][{name:?}](1);"), &[&format!("ext:{name}")]),
            name,
            &[name],
        );
        let suspended = attempt(granted);
        assert_eq!(suspended.status, Status::Suspended, "{name}: {:?}", suspended.error);
        let call = &suspended.suspension.as_ref().unwrap().calls[0];
        assert_eq!((call.extension.as_str(), call.method.as_str()), (name, name));
        assert_eq!(success(&resume(&suspended, ExtOutcome::Ok(json!("ok")))), &json!("ok"));
    }
}

#[test]
fn awaiting_an_extension_object_is_no_call_to_its_then_method() {
    // `await $ext.kv` looks up `then` on it: the engine's lookup, which finds nothing.
    let result = attempt(request("return await $ext.kv;", &["ext:kv"]));
    assert_eq!(success(&result), &json!({}));
    let result = attempt(request("return await $ext.kv;", &[]));
    assert_eq!(success(&result), &json!({}));
    assert!(result.records.denials.is_empty());
}

#[test]
fn a_thenable_object_prototype_cannot_forge_an_extension_answer() {
    let suspended = attempt(common::register(
        request(
            "Object.defineProperty(Object.prototype, 'then', { get() { return (resolve) => resolve('forged'); }, configurable: true });\n\
             const answer = await $ext.kv.get(1);\n\
             delete Object.prototype.then;\n\
             return answer;",
            &["ext:kv"],
        ),
        "kv",
        &["get"],
    ));
    // The extension's promise is a real one: the handler waits for the host.
    assert_eq!(suspended.status, Status::Suspended, "{:?}", suspended.error);
    let done = resume(&suspended, ExtOutcome::Ok(json!({"value": 3})));
    // The host's answer is an object, which the polluted prototype makes thenable: the handler
    // gets what its own `then` produced, which is its own doing and changes nothing on the host.
    assert_eq!(success(&done), &json!("forged"));
}
