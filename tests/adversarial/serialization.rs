//! Values built to break serialization on the way to the host: getters, `toJSON` and
//! `Symbol.toPrimitive` that throw or loop, cyclic, huge and deeply nested values, very long keys.

use nexus::{ErrorCode, ExecutionResult, ExtOutcome};
use serde_json::json;

use super::{attempt, code, common, looping, request, resume, success};

#[test]
fn a_getter_that_throws_during_serialization_is_a_catchable_error_and_records_nothing() {
    let result = attempt(request(
        "const bad = { get x() { throw new Error('from getter'); } };\n\
         const caught = [];\n\
         for (const call of [() => $emit('e', bad), () => $view.update('label', bad), () => { $state.count = bad; }]) {\n\
           try { call(); } catch (e) { caught.push(e.message); }\n\
         }\n\
         return caught;",
        &["events:emit:e", "view:update:label", "state:write:count"],
    ));
    assert_eq!(success(&result), &json!(["from getter", "from getter", "from getter"]));
    assert!(result.records.events.is_empty() && result.records.view_commands.is_empty());
    assert!(result.records.state_mutations.is_empty());
}

#[test]
fn to_json_and_to_primitive_that_throw_end_as_runtime_errors() {
    for source in [
        "$emit('e', { toJSON() { throw new Error('no'); } });",
        "$emit({ [Symbol.toPrimitive]() { throw new Error('no'); } }, 1);",
        "$state[{ toString() { throw new Error('no'); } }] = 1;",
        "await $ext.kv.get({ toJSON() { throw new Error('no'); } });",
        "return { toJSON() { throw new Error('no'); } };",
    ] {
        let result =
            attempt(common::register(request(source, &["events:emit:*", "state:write:*", "ext:kv"]), "kv", &["get"]));
        assert_eq!(code(&result), ErrorCode::RuntimeError, "{source}");
        assert!(result.error.as_ref().unwrap().message.contains("no"), "{source}: {:?}", result.error);
        assert!(result.records.events.is_empty() && result.records.state_mutations.is_empty(), "{source}");
    }
}

#[test]
fn loops_during_serialization_end_as_timeouts() {
    for source in [
        "$emit('e', { toJSON() { for (;;) {} } });",
        "$emit({ [Symbol.toPrimitive]() { for (;;) {} } }, 1);",
        "return $state[{ toString() { for (;;) {} } }];",
        "await $ext.kv.get({ get x() { for (;;) {} } });",
        "return { get x() { for (;;) {} } };",
    ] {
        let result =
            attempt(common::register(looping(source, &["events:emit:*", "state:read:*", "ext:kv"]), "kv", &["get"]));
        assert_eq!(code(&result), ErrorCode::Timeout, "{source}");
    }
}

#[test]
fn cyclic_values_are_refused_as_type_errors() {
    for source in [
        "const a = {}; a.self = a; $emit('e', a);",
        "const a = []; a.push(a); await $ext.kv.get(a);",
        "const a = {}; a.self = a; $view.update('label', a);",
        "const a = {}; a.self = a; return a;",
    ] {
        let result =
            attempt(common::register(request(source, &["events:emit:*", "view:update:*", "ext:kv"]), "kv", &["get"]));
        assert_eq!(code(&result), ErrorCode::RuntimeError, "{source}");
        assert!(result.error.as_ref().unwrap().message.starts_with("TypeError"), "{source}: {:?}", result.error);
    }
}

#[test]
fn huge_values_end_as_memory_limit() {
    for source in [
        "$emit('e', 'x'.repeat(40 << 20));",
        "await $ext.kv.get('x'.repeat(40 << 20));",
        "return 'x'.repeat(40 << 20);",
        "const chunk = 'x'.repeat(1 << 20); for (let i = 0; i < 40; i++) { try { $emit('e', chunk); } catch (_) {} }",
    ] {
        let result = attempt(common::register(request(source, &["events:emit:*", "ext:kv"]), "kv", &["get"]));
        assert_eq!(code(&result), ErrorCode::MemoryLimit, "{source}: {:?}", result.error);
    }
}

#[test]
fn large_values_within_limits_arrive_whole() {
    let result = attempt(request(
        "const big = Array.from({ length: 100000 }, (_, i) => i);\n\
         $emit('e', big);\n\
         return big.length;",
        &["events:emit:e"],
    ));
    assert_eq!(success(&result), &json!(100000));
    assert_eq!(result.records.events[0].payload.as_array().map(Vec::len), Some(100000));
}

#[test]
fn deeply_nested_values_are_refused_or_delivered_never_crash() {
    // Within the nesting the sandbox carries, values arrive whole.
    let result = attempt(request(
        "let v = 0; for (let i = 0; i < 100; i++) v = [v];\n\
         $emit('e', v); return v;",
        &["events:emit:e"],
    ));
    let mut expected = json!(0);
    for _ in 0..100 {
        expected = json!([expected]);
    }
    assert_eq!(success(&result), &expected);
    assert_eq!(result.records.events[0].payload, expected);
    // Deeper values end in a defined error, whatever the depth.
    for depth in [1_000, 100_000, 1_000_000] {
        for sink in ["$emit('e', v)", "return v", "await $ext.kv.get(v)", "$state.count = v"] {
            let source = format!("let v = 0; for (let i = 0; i < {depth}; i++) v = [v];\n{sink};");
            let result = attempt(common::register(
                request(&source, &["events:emit:e", "ext:kv", "state:write:count"]),
                "kv",
                &["get"],
            ));
            let code = code(&result);
            assert!(
                matches!(code, ErrorCode::RuntimeError | ErrorCode::StackOverflow | ErrorCode::MemoryLimit),
                "{depth} {sink}: {:?}",
                result.error
            );
            assert!(result.records.events.is_empty() && result.records.state_mutations.is_empty());
        }
    }
}

#[test]
fn values_nested_127_deep_arrive_whole_and_one_level_more_is_a_catchable_type_error() {
    // 127 is `serde_json`'s nesting limit, which the guest's conversion of values applies.
    let nest = |depth: usize| format!("let v = 0; for (let i = 0; i < {depth}; i++) v = {{ v }};");
    // The extension's arguments are an array: one level more.
    let sinks = "$emit('e', v); $state.count = v; $view.update('label', v); $ext.kv.get(v.v); return v;";
    let result = attempt(common::register(
        request(
            &format!("{}\n{sinks}", nest(127)),
            &["events:emit:e", "state:write:count", "view:update:label", "ext:kv"],
        ),
        "kv",
        &["get"],
    ));
    let mut expected = json!(0);
    for _ in 0..127 {
        expected = json!({ "v": expected });
    }
    // The extension call is never awaited: the handler settled, and completes once it is settled.
    assert_eq!(result.suspension.as_ref().map(|s| s.calls.len()), Some(1), "{:?}", result.error);
    let records = result.records.clone();
    let result = ExecutionResult { records, ..resume(&result, ExtOutcome::Ok(json!(null))) };
    assert_eq!(success(&result), &expected);
    assert_eq!(result.records.events[0].payload, expected);
    assert_eq!(result.records.view_commands[0].args, expected);
    assert_eq!(result.records.state_mutations.len(), 1);

    let result = attempt(common::register(
        request(
            &format!(
                "{}\nconst caught = [];\n\
                 for (const sink of [() => $emit('e', v), () => {{ $state.count = v; }}, () => $view.update('label', v), () => $ext.kv.get([v])]) {{\n\
                   try {{ sink(); }} catch (e) {{ caught.push(e instanceof TypeError && e.message); }}\n\
                 }}\n\
                 try {{ return v; }} finally {{ $emit('caught', caught); }}",
                nest(128)
            ),
            &["events:emit:*", "state:write:count", "view:update:label", "ext:kv"],
        ),
        "kv",
        &["get"],
    ));
    let message = "value is not serializable: recursion limit exceeded";
    assert_eq!(result.records.events.len(), 1, "{result:?}");
    let caught = result.records.events[0].payload.as_array().unwrap();
    assert_eq!(caught.len(), 4);
    assert!(caught.iter().all(|m| m.as_str().is_some_and(|m| m.starts_with(message))), "{caught:?}");
    assert!(result.records.state_mutations.is_empty() && result.records.view_commands.is_empty());
    assert_eq!(code(&result), ErrorCode::RuntimeError);
    assert!(result.error.as_ref().unwrap().message.contains(message), "{:?}", result.error);
}

#[test]
fn extension_arguments_a_handler_makes_serialize_as_something_else_are_a_catchable_type_error() {
    let result = attempt(common::register(
        request(
            "Array.prototype.toJSON = () => 'not an array';\n\
             try { await $ext.kv.get(1); } catch (e) { return { typeError: e instanceof TypeError, message: e.message }; }",
            &["ext:kv"],
        ),
        "kv",
        &["get"],
    ));
    let message = "extension call arguments must serialize as an array";
    assert_eq!(success(&result), &json!({ "typeError": true, "message": message }));
    assert!(result.suspension.is_none());
}

#[test]
fn very_long_keys_are_checked_and_recorded_in_full() {
    let result = attempt(request(
        "const key = 'k'.repeat(1 << 20);\n\
         try { $state[key] = 1; } catch (e) { return [e.code, e.message.length]; }",
        &["state:write:count"],
    ));
    let key_len = 1 << 20;
    assert_eq!(
        success(&result),
        &json!(["PERMISSION_DENIED", "permission denied: requires capability state:write:".len() + key_len])
    );
    assert_eq!(result.records.denials[0].capability.len(), "state:write:".len() + key_len);

    let result = attempt(request(
        "$state['k'.repeat(1 << 20)] = 1; return 'k'.repeat(1 << 20) in $state;",
        &["state:write:*", "state:read:*"],
    ));
    assert_eq!(success(&result), &json!(true));
    assert_eq!(result.records.state_mutations.len(), 1);
}

#[test]
fn endless_denials_cannot_grow_the_host_without_bound() {
    let result = attempt(request(
        "const key = 'k'.repeat(1 << 20);\n\
         for (let i = 0; i < 100; i++) { try { $state[key + i] = 1; } catch (_) {} }\n\
         return 'survived';",
        &[],
    ));
    // The denials' record is bounded by the output budget, and spending it fails the run.
    assert_eq!(code(&result), ErrorCode::MemoryLimit);
    assert!(result.records.denials.len() < 100);
}

#[test]
fn lone_surrogates_in_values_become_replacement_characters_not_errors() {
    // A string cut in the middle of an emoji is ordinary handler data.
    let result = attempt(common::register(
        request(
            "const cut = '\u{1F600}'.slice(0, 1);\n\
             $emit('e', { text: 'hi ' + cut, [cut]: cut + '\\\\ud800' });\n\
             $state.count = cut;\n\
             await $ext.kv.get(cut);\n\
             return ['\u{1F600}', '\u{1F600}'.slice(1), cut + 'x'];",
            &["events:emit:e", "state:write:count", "ext:kv"],
        ),
        "kv",
        &["get"],
    ));
    assert_eq!(result.status, nexus::Status::Suspended, "{:?}", result.error);
    assert_eq!(
        result.records.events[0].payload,
        json!({"text": "hi \u{FFFD}", "\u{FFFD}": "\u{FFFD}\\ud800"}),
        "an escaped backslash before `ud800` is text, not a surrogate"
    );
    assert_eq!(
        result.records.state_mutations[0],
        nexus::StateMutation::Set { key: "count".into(), value: json!("\u{FFFD}") }
    );
    assert_eq!(result.suspension.as_ref().unwrap().calls[0].args, vec![json!("\u{FFFD}")]);
    let done = super::resume(&result, nexus::ExtOutcome::Ok(json!(null)));
    assert_eq!(success(&done), &json!(["\u{1F600}", "\u{FFFD}", "\u{FFFD}x"]));
}

#[test]
fn names_that_are_not_valid_unicode_are_refused_before_reaching_the_host() {
    // No token can name a key holding a lone surrogate: the access fails as a TypeError, and
    // nothing is read, written or recorded.
    let result = attempt(request(
        "const out = [];\n\
         for (const f of [() => { $state['\\uD800'] = 1; }, () => $state['\\uDC00'], () => $emit('\\uD800', 1)]) {\n\
           try { f(); out.push('done'); } catch (e) { out.push(e.name); }\n\
         }\n\
         $state['a\\u0000b'] = 1;\n\
         return out;",
        &["state:write:*", "state:read:*", "events:emit:*"],
    ));
    assert_eq!(success(&result), &json!(["TypeError", "TypeError", "TypeError"]));
    assert_eq!(
        result.records.state_mutations,
        vec![nexus::StateMutation::Set { key: "a\u{0}b".into(), value: json!(1) }]
    );
    assert!(result.records.events.is_empty() && result.records.denials.is_empty());
}

#[test]
fn values_reach_the_host_as_json_stringify_writes_them() {
    // Each value is emitted, and so is the text `JSON.stringify` makes of it in the same
    // handler: the host must receive exactly that JSON, whatever path the conversion takes.
    let values = [
        "0",
        "-0",
        "7",
        "-7",
        "1.5",
        "-1.5",
        "2 ** 31",
        "-(2 ** 31) - 1",
        "2 ** 53 - 1",
        "2 ** 53",
        "2 ** 53 + 2",
        "2 ** 60",
        "-(2 ** 60)",
        "2 ** 64",
        "2 ** 70",
        "1e21",
        "-1e21",
        "1e-7",
        "5e-324",
        "0.1 + 0.2",
        "NaN",
        "Infinity",
        "-Infinity",
        "'text'",
        "''",
        "'\\u00e9\\u{1F600}\\u0000\"\\\\'",
        "true",
        "false",
        "null",
        "undefined",
        "Symbol('s')",
        "() => 1",
        "{ a: 1, b: undefined, c: () => 1, d: Symbol(), [Symbol()]: 2 }",
        "{ 2: 'two', 1: 'one', b: 'b', a: 'a', '-1': 'minus' }",
        "[1, undefined, () => 1, Symbol(), NaN, -0]",
        "[, 1, , ]",
        "new Date(0)",
        "new Number(3)",
        "new String('s')",
        "new Boolean(false)",
        "[new Number(-0)]",
        "{ outer: { toJSON(key) { return 'key:' + key; } } }",
        "[{ toJSON(key) { return typeof key + key; } }]",
        "{ toJSON() { return undefined; } }",
        "{ toJSON: 'not a function', x: 1 }",
        "new (class { constructor() { this.own = 1; } get inherited() { return 2; } })()",
        "Object.assign(Object.create({ inherited: 1 }), { own: 2 })",
        "Object.defineProperty({ shown: 1 }, 'hidden', { value: 2, enumerable: false })",
        "{ get computed() { return 6 * 7; } }",
        "new Proxy({ a: 1, b: [2] }, {})",
        "new Proxy([1, 2], {})",
        "new Proxy({}, { ownKeys: () => ['x', 'y'], getOwnPropertyDescriptor: () => ({ value: 0, enumerable: true, configurable: true }), get: (_, k) => k })",
        "new Map([[1, 2]])",
        "new Set([1])",
        "new Uint8Array([1, 2])",
        "/re/g",
        "new Error('e')",
        "Object.assign(Object.create(null), { z: 1, y: { x: [] } })",
        "(function () { return arguments; })(1, 2)",
        "[JSON.rawJSON('12'), JSON.rawJSON('\"raw\"')]",
        "{ toJSON() { return new Date(0); } }",
        "{ toJSON() { return new Boolean(true); } }",
        "Object.assign(new Boolean(true), { toJSON: () => 'own' })",
        "[Object.assign(Object('s'), { extra: 1 })]",
        "Object.assign([1, 2], { extra: 3 })",
        "{ [2 ** 32]: 'large index', 4294967294: 'last index', 0: 'zero' }",
    ];
    let source = format!(
        "const values = [{}];\n\
         for (const v of values) {{ $emit('text', JSON.stringify(v) ?? 'null'); $emit('value', v); }}",
        values.join(",\n")
    );
    let result = attempt(request(&source, &["events:emit:*"]));
    assert_eq!(result.status, nexus::Status::Success, "{:?}", result.error);
    let events = &result.records.events;
    assert_eq!(events.len(), 2 * values.len());
    for (value, pair) in values.iter().zip(events.chunks(2)) {
        let text = pair[0].payload.as_str().unwrap();
        let expected: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{value}: {text}: {e}"));
        assert_eq!(pair[1].payload, expected, "{value}: JSON.stringify wrote {text}");
    }
}

#[test]
fn values_from_the_host_arrive_as_json_parse_reads_them() {
    // Arguments and extension results, primitives included, against `JSON.parse` of the same text.
    let reply = json!([0, -0.0, 7, -7, 1.5, 2_147_483_648_u64, -2_147_483_649_i64, 9_007_199_254_740_993_u64,
        u64::MAX, i64::MIN, 1e300, "", "\u{e9}\u{1F600}\u{0}", true, false, null, {"b": [1, {"a": null}]},
        {"__proto__": {"x": 1}, "b": 1, "2": 2, "1": 3, "": [[]], "\u{0}": {}}, [[1, [2, [3]]], {}]]);
    // Setters a handler puts on the prototypes do not run: members are defined, not assigned.
    let source = "const describe = (v) => [typeof v, Object.is(v, -0), JSON.stringify(v), v !== null && typeof v === 'object' ?\n\
                    [Object.keys(v), Object.getPrototypeOf(v) === (Array.isArray(v) ? Array.prototype : Object.prototype)] : null];\n\
                  const trap = { set() { throw new Error('setter ran'); }, configurable: true };\n\
                  for (const key of ['b', '1', '__proto__']) Object.defineProperty(Object.prototype, key, trap);\n\
                  Object.defineProperty(Array.prototype, '0', trap);\n\
                  let back = [];\n\
                  for (let i = 0; i < $args.length; i++) back = back.concat([await $ext.kv.get(i)]);\n\
                  for (const key of ['b', '1', '__proto__']) delete Object.prototype[key];\n\
                  delete Array.prototype[0];\n\
                  return [$args.map(describe), back.map(describe), JSON.parse($scope.text).map(describe)];";
    let mut request = common::register(request(source, &["ext:kv"]), "kv", &["get"]);
    request.args = reply.clone();
    request.scope = json!({ "text": reply.to_string() });
    let mut result = attempt(request);
    for value in reply.as_array().unwrap() {
        result = super::resume(&result, nexus::ExtOutcome::Ok(value.clone()));
    }
    let [args, replies, parsed] = success(&result).as_array().unwrap().as_slice() else { panic!("{result:?}") };
    assert_eq!(args, parsed);
    assert_eq!(replies, parsed);
    assert_eq!(parsed[1], json!(["number", true, "0", null]), "-0 stays -0");
}

#[test]
fn getters_to_json_and_proxy_traps_run_in_the_order_json_stringify_runs_them() {
    let result = attempt(request(
        "const log = [];\n\
         BigInt.prototype.toJSON = function (key) { log.push('BigInt ' + key); return String(this); };\n\
         const trace = (name, target) => new Proxy(target, {\n\
           ownKeys(t) { log.push(name + ' ownKeys'); return Reflect.ownKeys(t); },\n\
           getOwnPropertyDescriptor(t, k) { log.push(name + ' describe ' + k); return Reflect.getOwnPropertyDescriptor(t, k); },\n\
           get(t, k) { log.push(name + ' get ' + String(k)); return Reflect.get(t, k); },\n\
         });\n\
         const value = {\n\
           get first() { log.push('first'); return 1; },\n\
           nested: { toJSON(key) { log.push('toJSON ' + key); return { deep: [10n, Object(2n)] }; } },\n\
           object: trace('object', Object.defineProperty({ b: 1, a: [1, { c: 2 }] }, 'hidden', { value: 0 })),\n\
           list: trace('list', [1, , { toJSON(key) { log.push('item ' + key); return key; } }]),\n\
           get last() { log.push('last'); return undefined; },\n\
         };\n\
         const text = JSON.stringify(value);\n\
         const expected = log.splice(0);\n\
         $emit('e', value);\n\
         return [expected, log, JSON.parse(text)];",
        &["events:emit:e"],
    ));
    let [expected, seen, parsed] = success(&result).as_array().unwrap().as_slice() else { panic!("{result:?}") };
    assert!(expected.as_array().unwrap().len() > 15, "{expected}");
    assert_eq!(seen, expected);
    assert_eq!(&result.records.events[0].payload, parsed);
}

#[test]
fn values_json_stringify_refuses_are_refused_with_its_error() {
    let values = [
        "10n",
        "[{ a: Object(1n) }]",
        "(() => { const p = Proxy.revocable([], {}); p.revoke(); return { p: p.proxy }; })()",
        "(() => { const a = [{}]; a[0].a = a; return a; })()",
        "{ toJSON() { throw new RangeError('mine'); } }",
        "{ ok: 1, get x() { throw new EvalError('getter'); } }",
        "new Proxy({}, { ownKeys() { throw new SyntaxError('trap'); } })",
    ];
    let source = format!(
        "const describe = (f) => {{ try {{ f(); return 'no error'; }} catch (e) {{ return e.constructor.name + ': ' + e.message; }} }};\n\
         return [{}].map((make) => [describe(() => JSON.stringify(make())), describe(() => $emit('e', make()))]);",
        values.iter().map(|v| format!("() => ({v})")).collect::<Vec<_>>().join(", ")
    );
    let result = attempt(request(&source, &["events:emit:e"]));
    let pairs = success(&result).as_array().unwrap();
    assert_eq!(pairs.len(), values.len());
    for (value, pair) in values.iter().zip(pairs) {
        assert_ne!(pair[0], "no error", "{value}");
        assert_eq!(pair[0], pair[1], "{value}");
    }
    assert!(result.records.events.is_empty());
}

#[test]
fn values_handed_to_the_host_nested_too_deep_are_refused_whatever_the_depth() {
    // Not `json!([value])`, which copies `value` recursively.
    let nest = |depth: usize| (0..depth).fold(json!(1), |value, _| serde_json::Value::Array(vec![value]));
    let count = "let d = 0; while (Array.isArray(v)) { v = v[0]; d++; } return d;";
    let source = format!("let v = $args.length ? $args : $scope.length ? $scope : $state.deep;\n{count}");
    let mut deepest = request(&source, &["state:read:deep"]);
    deepest.args = nest(nexus::MAX_NESTING);
    assert_eq!(success(&attempt(deepest)), &json!(nexus::MAX_NESTING));
    let message = format!("nests arrays and objects more than {} deep", nexus::MAX_NESTING);
    // A million levels: more than any thread's stack would take recursively.
    for depth in [nexus::MAX_NESTING + 1, 1_000_000] {
        for field in ["args", "scope", "state"] {
            let mut deep = request(&source, &["state:read:deep"]);
            match field {
                "args" => deep.args = nest(depth),
                "scope" => deep.scope = nest(depth),
                _ => drop(deep.state_snapshot.insert("deep".into(), nest(depth))),
            }
            let refusal = super::answered(deep).expect_err("refused before it ran");
            assert_eq!(refusal.code, ErrorCode::InvalidArgument, "{field} {depth}");
            assert!(refusal.message.ends_with(&message), "{refusal:?}");
        }
    }
    // An extension's result is refused the same way, and the execution waits for another.
    let suspended = attempt(common::register(
        request(&format!("let v = await $ext.kv.get();\n{count}"), &["ext:kv"]),
        "kv",
        &["get"],
    ));
    for depth in [nexus::MAX_NESTING + 1, 1_000_000] {
        let refusal = super::resume_answered(&suspended, nexus::ExtOutcome::Ok(nest(depth))).expect_err("refused");
        assert_eq!(refusal.code, ErrorCode::InvalidArgument);
        assert!(refusal.message.ends_with(&message), "{refusal:?}");
    }
    let done = super::resume(&suspended, nexus::ExtOutcome::Ok(nest(nexus::MAX_NESTING)));
    assert_eq!(success(&done), &json!(nexus::MAX_NESTING));
}

/// Raw JSON text (which `JSON.stringify` writes as it is) crosses as the value it reads as, under
/// the rules of every other value: `-0` as `0`, past the doubles as `null`, a lone surrogate
/// as U+FFFD, an exponent that makes an integer as that integer.
#[test]
fn raw_json_crosses_as_the_value_its_text_reads_as() {
    let source = "return ['1e400', '-0', '1E2', '\"\\\\ud800\"', '0.5', 'null', 'true', '\"x\"'].map(JSON.rawJSON);";
    let result = attempt(request(source, &[]));
    assert_eq!(success(&result), &json!([null, 0, 100, "\u{FFFD}", 0.5, null, true, "x"]), "{source}");
}
