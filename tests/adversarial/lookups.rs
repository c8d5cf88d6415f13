//! No false denials: the lookups the engine makes on its own (`then` when a value is awaited or
//! returned, `toJSON` when it is serialized, symbols) find nothing on `$state` and `$ext`,
//! reach no host function, and so record no denial and make no call.

use super::*;

fn no_trace(result: &ExecutionResult, what: &str) {
    assert!(result.records.denials.is_empty(), "{what}: {:?}", result.records.denials);
    assert!(result.suspension.is_none(), "{what}: made a call: {:?}", result.suspension);
}

#[test]
fn returning_or_awaiting_an_extension_makes_no_call() {
    // Even with methods named like the engine's lookups registered, none is called.
    for source in
        ["return $ext.kv;", "await $ext.kv; return 1;", "return $ext;", "await $ext; return 1;", "return [$ext.kv];"]
    {
        let request = common::register(request(source, &["ext:kv"]), "kv", &["then", "toJSON", "get"]);
        let result = attempt(request);
        assert_eq!(result.status, Status::Success, "{source}: {:?}", result.error);
        no_trace(&result, source);
    }
    // Without the capability: no denial either, since the handler asked for nothing.
    let result = attempt(request("await $ext.kv; return JSON.stringify($ext.kv);", &[]));
    assert_eq!(success(&result), &json!("{}"));
    no_trace(&result, "no capability");
}

#[test]
fn returning_awaiting_or_serializing_state_records_no_denial() {
    let state = json!({"count": 1, "secret": 2});
    let run = |source: &str, caps: &[&str]| {
        let mut request = common::request(source, caps, state.clone());
        request.timeout = Duration::from_secs(10);
        attempt(request)
    };
    for (source, expected) in [
        ("return $state;", json!({"count": 1})),
        ("return await $state;", json!({"count": 1})),
        ("return JSON.stringify($state);", json!("{\"count\":1}")),
        ("$log($state); return Object.keys($state);", json!(["count"])),
        (
            "return [typeof $state.then, typeof $state.toJSON, typeof $state[Symbol.iterator]];",
            json!(["undefined", "undefined", "undefined"]),
        ),
    ] {
        let result = run(source, &["state:read:count"]);
        assert_eq!(success(&result), &expected, "{source}");
        no_trace(&result, source);
    }
    let result = run("$log($state); return JSON.stringify($state);", &[]);
    assert_eq!(success(&result), &json!("{}"));
    assert_eq!(result.records.logs[0].message, "{}");
    no_trace(&result, "no capability");
    // What the handler itself asks for is still checked and recorded.
    let result = run("try { return $state.secret; } catch (e) { return e.code; }", &["state:read:count"]);
    assert_eq!(success(&result), &json!("PERMISSION_DENIED"));
    assert_eq!(result.records.denials.len(), 1);
}
