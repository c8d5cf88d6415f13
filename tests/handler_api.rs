//! The handler API and the capability rules of the README, end to end
//! through the real sandbox.

mod common;

use common::{error_code, run};
use nexus::{Denial, ErrorCode, Event, ExtOutcome, Kind, LogLevel, LogLine, StateMutation, Status, ViewCommand};
use serde_json::{Value, json};

/// The denial of `operation` that `capability` would have allowed.
fn denial(capability: &str, operation: &str) -> Denial {
    let (kind, resource) = Kind::ALL
        .into_iter()
        .find_map(|kind| capability.strip_prefix(kind.prefix()).map(|resource| (kind, resource)))
        .expect("a token of a known kind");
    Denial { capability: capability.into(), kind, resource: resource.into(), operation: operation.into() }
}

#[test]
fn counter_reads_writes_and_emits() {
    let result = run(
        "const next = ($state.count ?? 0) + 1;\n$state.count = next;\n$emit('changed', { value: next });\nreturn next;",
        &["state:read:count", "state:write:count", "events:emit:changed"],
        json!({"count": 1}),
    );
    assert_eq!(result.status, Status::Success, "{result:?}");
    assert_eq!(result.return_value, json!(2));
    assert_eq!(result.records.state_mutations, vec![StateMutation::Set { key: "count".into(), value: json!(2) }]);
    assert_eq!(result.records.events, vec![Event { name: "changed".into(), payload: json!({"value": 2}) }]);
    assert!(result.records.denials.is_empty());
}

#[test]
fn uncaught_denial_fails_with_permission_denied_and_is_recorded() {
    let result = run("return $state.secret;", &[], json!({"secret": 42}));
    assert_eq!(error_code(&result), ErrorCode::PermissionDenied);
    assert_eq!(result.records.denials, vec![denial("state:read:secret", "state.get")]);
}

#[test]
fn caught_denial_is_catchable_with_code_and_still_recorded() {
    let result = run(
        "try { $emit('boom', 1); return 'not reached'; } catch (e) { return [e instanceof Error, e.code]; }",
        &[],
        json!({}),
    );
    assert_eq!(result.status, Status::Success);
    assert_eq!(result.return_value, json!([true, "PERMISSION_DENIED"]));
    assert_eq!(result.records.denials, vec![denial("events:emit:boom", "events.emit")]);
    assert!(result.records.events.is_empty());
}

#[test]
fn write_does_not_imply_read() {
    let result =
        run("$state.n = 5; try { return $state.n; } catch (e) { return e.code; }", &["state:write:n"], json!({"n": 1}));
    assert_eq!(result.return_value, json!("PERMISSION_DENIED"));
    assert_eq!(result.records.state_mutations, vec![StateMutation::Set { key: "n".into(), value: json!(5) }]);
    assert_eq!(result.records.denials, vec![denial("state:read:n", "state.get")]);
}

#[test]
fn a_denial_on_a_literal_star_or_empty_key_reads_unambiguously() {
    let result = run(
        "for (const key of ['*', '']) { try { $state[key] = 1; } catch {} } return 0;",
        &["state:write:x"],
        json!({}),
    );
    let denials = serde_json::to_value(&result.records.denials).unwrap();
    assert_eq!(
        denials,
        json!([
            {"capability": "state:write:*", "kind": "state:write", "resource": "*", "operation": "state.set"},
            {"capability": "state:write:", "kind": "state:write", "resource": "", "operation": "state.set"},
        ]),
        "the resource is the literal key, never the wildcard or nothing"
    );
}

#[test]
fn star_is_a_wildcard_only_as_the_whole_resource() {
    let wildcard = run("return [$state.a, $state['b:c']];", &["state:read:*"], json!({"a": 1, "b:c": 2}));
    assert_eq!(wildcard.return_value, json!([1, 2]));

    let literal = run(
        "const out = [$state['a*']]; try { $state.ab; } catch (e) { out.push(e.code); } return out;",
        &["state:read:a*"],
        json!({"a*": "star", "ab": "no"}),
    );
    assert_eq!(literal.return_value, json!(["star", "PERMISSION_DENIED"]));
    assert_eq!(literal.records.denials, vec![denial("state:read:ab", "state.get")]);
}

#[test]
fn keys_may_contain_colons() {
    let result = run(
        "$state['user:1:name'] = $state['user:1:name'].toUpperCase(); return $state['user:1:name'];",
        &["state:read:user:1:name", "state:write:user:1:name"],
        json!({"user:1:name": "ada"}),
    );
    assert_eq!(result.return_value, json!("ADA"));
}

#[test]
fn proto_and_non_ascii_keys_are_plain_keys() {
    let result = run(
        "$state['__proto__'] = { polluted: true }; $state['café'] = 'crème';\n\
         return [$state['__proto__'], $state['café'], ({}).polluted, Object.getPrototypeOf($state)];",
        &["state:read:__proto__", "state:write:__proto__", "state:read:café", "state:write:café"],
        json!({"__proto__": {"x": 1}}),
    );
    assert_eq!(result.status, Status::Success, "{result:?}");
    assert_eq!(result.return_value, json!([{"polluted": true}, "crème", null, null]));
    assert_eq!(
        result.records.state_mutations,
        vec![
            StateMutation::Set { key: "__proto__".into(), value: json!({"polluted": true}) },
            StateMutation::Set { key: "café".into(), value: json!("crème") },
        ]
    );
}

#[test]
fn args_proto_key_stays_an_own_property_and_args_are_deep_frozen() {
    let mut request = common::request(
        "'use strict'; let threw = false; try { $args.nested.list.push(1); } catch (e) { threw = e instanceof TypeError; }\n\
         return [threw, Object.isFrozen($args.nested), Object.keys($args), $args.__proto__.evil, ({}).evil, $scope.panel];",
        &[],
        json!({}),
    );
    request.args = serde_json::from_str(r#"{"nested": {"list": []}, "__proto__": {"evil": true}}"#).unwrap();
    request.scope = json!({"panel": "p1"});
    let result = common::execute(request).result;
    assert_eq!(result.return_value, json!([true, true, ["nested", "__proto__"], true, null, "p1"]), "{result:?}");
}

#[test]
fn every_object_and_array_in_args_and_scope_is_frozen_as_object_freeze_would_freeze_it() {
    let mut request = common::request(
        "'use strict';
         const all = [];
         const walk = (v) => { if (v !== null && typeof v === 'object') { all.push(v); Object.values(v).forEach(walk); } };
         walk($args); walk($scope);
         const writes = [() => { $args.rows[1].n = 9; }, () => { $args.rows.length = 0; }, () => { $scope.deep.list[0] = 1; },
                         () => { delete $args.rows[0].n; }, () => { Object.defineProperty($args, 'x', { value: 1 }); }];
         const refused = writes.map((write) => { try { write(); return false; } catch (e) { return e instanceof TypeError; } });
         const flags = Object.getOwnPropertyDescriptor($args.rows, 'length');
         return [all.length, all.every(Object.isFrozen), refused, [flags.writable, flags.configurable],
                 Array.isArray($args.rows), $args.rows.map((r) => r.n), JSON.stringify($scope)];",
        &[],
        json!({}),
    );
    request.args = json!({"rows": [{"n": 1}, {"n": 2, "tags": ["a", {"b": []}]}], "empty": {}});
    request.scope = json!({"deep": {"list": [0, [1]]}});
    let result = common::execute(request).result;
    assert_eq!(
        result.return_value,
        json!([
            12,
            true,
            [true, true, true, true, true],
            [false, false],
            true,
            [1, 2],
            "{\"deep\":{\"list\":[0,[1]]}}"
        ]),
        "{result:?}"
    );
}

#[test]
fn doubles_made_in_the_sandbox_leave_it_exactly() {
    // Values leave the guest as JSON text from QuickJS's JSON.stringify (the shortest text that
    // reads back as the same double); a parser rounding 17-digit mantissas loses the last bit
    // of about a quarter of these.
    let mut seed = 7_u64;
    let doubles: Vec<f64> = std::iter::from_fn(|| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        Some(f64::from_bits(seed))
    })
    .filter(|d| d.is_finite() && d.fract() != 0.0)
    .take(400)
    .collect();
    let mut request = common::request(
        "const list = JSON.parse($args.text); $state.list = list; $emit('made', list); return list;",
        &["state:write:list", "events:emit:made"],
        json!({}),
    );
    request.args = json!({ "text": serde_json::to_string(&doubles).unwrap() });
    let result = common::execute(request).result;
    assert_eq!(result.status, Status::Success, "{result:?}");
    let bits = |value: &Value| -> Vec<u64> {
        value.as_array().expect("a list").iter().map(|d| d.as_f64().expect("a number").to_bits()).collect()
    };
    let sent: Vec<u64> = doubles.iter().map(|d| d.to_bits()).collect();
    assert_eq!(bits(&result.return_value), sent, "returned");
    let StateMutation::Set { value, .. } = &result.records.state_mutations[0] else { panic!("a write") };
    assert_eq!(bits(value), sent, "written to the state");
    assert_eq!(bits(&result.records.events[0].payload), sent, "emitted");
}

#[test]
fn object_keys_lists_only_readable_present_keys() {
    let result = run(
        "return Object.keys($state);",
        &["state:read:a", "state:read:c", "state:read:absent", "state:write:b"],
        json!({"a": 1, "b": 2, "c": 3, "d": 4}),
    );
    assert_eq!(result.return_value, json!(["a", "c"]));
    assert!(result.records.denials.is_empty(), "listing keys is never a denial");
}

#[test]
fn delete_and_in_are_checked_and_recorded() {
    let result = run(
        "const before = 'tmp' in $state; delete $state.tmp; const after = 'tmp' in $state;\n\
         let denied; try { 'other' in $state; } catch (e) { denied = e.code; }\n\
         return [before, after, $state.tmp, denied];",
        &["state:read:tmp", "state:write:tmp"],
        json!({"tmp": 1, "other": 2}),
    );
    assert_eq!(result.return_value, json!([true, false, null, "PERMISSION_DENIED"]));
    assert_eq!(result.records.state_mutations, vec![StateMutation::Delete { key: "tmp".into() }]);
    assert_eq!(result.records.denials, vec![denial("state:read:other", "state.has")]);
}

#[test]
fn view_commands_are_checked_by_component() {
    let result = run(
        "$view.update('label', { text: 'hi' });\n$view.command('focus', 'label', { select: true });\n\
         try { $view.update('other', {}); } catch (e) { return e.code; }",
        &["view:update:label"],
        json!({}),
    );
    assert_eq!(result.return_value, json!("PERMISSION_DENIED"));
    assert_eq!(
        result.records.view_commands,
        vec![
            ViewCommand { kind: "update".into(), component_id: "label".into(), args: json!({"text": "hi"}) },
            ViewCommand { kind: "focus".into(), component_id: "label".into(), args: json!({"select": true}) },
        ]
    );
    assert_eq!(result.records.denials, vec![denial("view:update:other", "view.update")]);
}

#[test]
fn logs_are_captured_with_levels() {
    let result = run(
        "$log('plain', 1, { a: [2] }); $log.debug('d'); $log.warn('w'); console.log('c'); console.error(new Error('bad'));",
        &[],
        json!({}),
    );
    let line = |level, message: &str| LogLine { level, message: message.into() };
    assert_eq!(
        result.records.logs,
        vec![
            line(LogLevel::Info, "plain 1 {\"a\":[2]}"),
            line(LogLevel::Debug, "d"),
            line(LogLevel::Warn, "w"),
            line(LogLevel::Info, "c"),
            line(LogLevel::Error, "Error: bad"),
        ]
    );
}

#[test]
fn a_logged_value_json_cannot_write_is_shown_not_lost() {
    let result = run(
        "const a = { n: 10n, e: new TypeError('inner') }; a.self = a; a.list = [a, { deep: a }];\n\
         const shared = { s: 1 };\n\
         $log(a); $log(10n, [shared, shared], Symbol('q'), undefined);",
        &[],
        json!({}),
    );
    let messages: Vec<&str> = result.records.logs.iter().map(|line| line.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            r#"{"n":"10n","e":"TypeError: inner","self":"[Circular]","list":["[Circular]",{"deep":"[Circular]"}]}"#,
            r#"10n [{"s":1},{"s":1}] Symbol(q) undefined"#,
        ]
    );
}

#[test]
fn no_host_objects_are_reachable_even_through_the_global() {
    let result = run(
        "const g = Function('return this')();\n\
         const names = ['process', 'require', 'std', 'os', 'fetch', 'module', 'Deno', 'Bun', 'XMLHttpRequest', 'WebSocket'];\n\
         return names.filter((n) => typeof globalThis[n] !== 'undefined' || typeof g[n] !== 'undefined');",
        &[],
        json!({}),
    );
    assert_eq!(result.return_value, json!([]), "{result:?}");
    let imports =
        run("try { await import('std'); return 'imported'; } catch (e) { return String(e); }", &[], json!({}));
    assert_ne!(imports.return_value, json!("imported"));
}

#[test]
fn the_globals_are_the_languages_as_the_handler_api_lists_them() {
    let present = "return ['queueMicrotask', 'atob', 'btoa', 'WeakRef', 'BigInt', 'Proxy']\n\
         .filter((n) => typeof globalThis[n] !== 'function').concat(typeof performance.now());";
    assert_eq!(run(present, &[], json!({})).return_value, json!(["number"]));
    let absent = "return ['setTimeout', 'setInterval', 'Intl', 'TextEncoder', 'TextDecoder', 'URL', \
         'structuredClone', 'crypto', 'WebAssembly'].filter((n) => typeof globalThis[n] !== 'undefined');";
    assert_eq!(run(absent, &[], json!({})).return_value, json!([]));
}

#[test]
fn math_random_differs_between_executions() {
    let draw = || run("return [Math.random(), Math.random()];", &[], json!({})).return_value;
    let (first, second) = (draw(), draw());
    assert_ne!(first, second, "each execution is seeded from host randomness");
    let values: Vec<f64> = serde_json::from_value(first).unwrap();
    assert!(values.iter().all(|v| (0.0..1.0).contains(v)) && values[0] != values[1]);
}

#[test]
fn date_now_is_the_current_time() {
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as f64;
    let now = run("return Date.now();", &[], json!({})).return_value.as_f64().unwrap();
    let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as f64;
    assert!(before - 1.0 <= now && now <= after + 1.0, "{before} <= {now} <= {after}");
}

#[test]
fn a_global_set_by_one_execution_is_absent_in_the_next() {
    let first = run("globalThis.leak = 'secret'; Object.prototype.polluted = 1; return typeof leak;", &[], json!({}));
    assert_eq!(first.return_value, json!("string"));
    let second = run("return [typeof leak, ({}).polluted];", &[], json!({}));
    assert_eq!(second.return_value, json!(["undefined", null]));
}

#[test]
fn a_single_read_from_a_huge_state_costs_a_handful_of_host_calls() {
    let state: serde_json::Map<String, Value> = (0..20_000).map(|i| (format!("key{i}"), json!(i))).collect();
    let result = run("return $state.key12345;", &["state:read:*"], Value::Object(state));
    assert_eq!(result.return_value, json!(12345));
    assert!(result.metrics.host_calls <= 4, "one read took {} host calls", result.metrics.host_calls);
}

#[test]
fn host_calls_are_counted_per_step() {
    let source = "for (let i = 0; i < 10; i++) $state.a;\nconst v = await $ext.kv.get('a');\nreturn v + $state.a + $state.a + $state.a;";
    let request =
        common::register(common::request(source, &["state:read:a", "ext:kv"], json!({"a": 1})), "kv", &["get"]);
    let outcome = common::execute(request);
    let first = outcome.result.metrics.host_calls;
    assert!(first >= 11, "ten reads and a call took {first} host calls");
    let parked = outcome.parked.expect("parked");
    let resumed = common::engine().resume(parked, 1, ExtOutcome::Ok(json!(2))).ok().expect("resumes").result;
    assert_eq!(resumed.return_value, json!(5));
    // The resumed step's three reads, not the execution's running count.
    let second = resumed.metrics.host_calls;
    assert!((3..first).contains(&second), "first step {first} host calls, the resumed one {second}");
}

#[test]
fn return_values_round_trip_as_json() {
    let result = run("return { a: [1, 2.5, 'x', null, true], b: undefined, d: new Date(0) };", &[], json!({}));
    assert_eq!(result.return_value, json!({"a": [1, 2.5, "x", null, true], "d": "1970-01-01T00:00:00.000Z"}));
    let cyclic = run("const o = {}; o.self = o; return o;", &[], json!({}));
    assert_eq!(error_code(&cyclic), ErrorCode::RuntimeError);
}

#[test]
fn a_state_define_the_proxy_cannot_keep_throws_and_writes_nothing() {
    // A non-configurable property: the engine would throw after the trap, which used to have
    // written it already (the handler saw a failure, the host a mutation).
    let result = run(
        "let threw = false;\n\
         try { Object.defineProperty($state, 'flag', { value: true, configurable: false }); } catch (e) { threw = e.name; }\n\
         Object.defineProperty($state, 'other', { value: 2, configurable: true });\n\
         return threw;",
        &["state:write:flag", "state:write:other"],
        json!({}),
    );
    assert_eq!(result.return_value, json!("TypeError"), "{:?}", result.error);
    assert_eq!(result.records.state_mutations, vec![StateMutation::Set { key: "other".into(), value: json!(2) }]);
}
