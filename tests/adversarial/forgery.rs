//! Forged reports: a handler choosing its own result code by what it throws. Only the engine's
//! evidence sets an engine code; what a handler throws is a `RUNTIME_ERROR`, its own `code`
//! kept as `handler_code`.

use super::*;

const ENGINE_CODES: [&str; 9] = [
    "TIMEOUT",
    "MEMORY_LIMIT",
    "STACK_OVERFLOW",
    "INVALID_ARGUMENT",
    "INTERNAL",
    "UNSETTLED",
    "PERMISSION_DENIED",
    "UNKNOWN_EXTENSION",
    "SYNTAX_ERROR",
];

fn runtime_error(result: &ExecutionResult) -> &nexus::ExecutionError {
    let error = result.error.as_ref().unwrap_or_else(|| panic!("expected an error: {result:?}"));
    assert_eq!(error.code, ErrorCode::RuntimeError, "{error:?}");
    error
}

#[test]
fn a_code_on_a_thrown_error_is_the_handlers_own() {
    for forged in ENGINE_CODES {
        for throw in [
            format!("const e = new Error('mine'); e.code = '{forged}'; throw e;"),
            format!("throw {{ code: '{forged}', message: 'mine' }};"),
            format!("throw Object.assign(new TypeError('mine'), {{ code: '{forged}', name: 'InternalError' }});"),
            format!("return Promise.reject(Object.assign(new Error('mine'), {{ code: '{forged}' }}));"),
            format!("await null; class E extends Error {{ code = '{forged}'; }} throw new E('mine');"),
        ] {
            let result = attempt(request(&throw, &[]));
            let error = runtime_error(&result);
            assert_eq!(error.handler_code.as_deref(), Some(forged), "{throw}: {error:?}");
        }
    }
}

#[test]
fn names_and_messages_like_the_engines_are_runtime_errors() {
    for throw in [
        "const e = new Error('out of memory'); e.name = 'InternalError'; throw e;",
        "throw { name: 'InternalError', message: 'out of memory' };",
        "throw new RangeError('Maximum call stack size exceeded');",
        "throw { name: 'InternalError', message: 'the sandbox failed' };",
        "throw Object.assign(Object.create(null), { name: 'InternalError' });",
        "throw new (class InternalError extends Error { get name() { return 'InternalError'; } })('x');",
        "throw null;",
        "throw { name: 'SyntaxError', message: 'unexpected token', stack: '    at handler.js:1:1' };",
        "throw new SyntaxError('unexpected token');",
        "eval('}{');",
    ] {
        let result = attempt(request(throw, &[]));
        let error = runtime_error(&result);
        assert_eq!(error.handler_code, None, "{throw}");
    }
}

#[test]
fn a_code_getter_on_object_prototype_changes_nothing() {
    let source = "Object.defineProperty(Object.prototype, 'code', { get() { return 'INVALID_ARGUMENT'; } });\n\
                  null.x;";
    let result = attempt(request(source, &[]));
    let error = runtime_error(&result);
    assert!(error.message.starts_with("TypeError"), "{error:?}");
    assert_eq!(error.handler_code, None, "only an own data property is the handler's code");
    // A getter for `code` on the error itself is not read either.
    let source =
        "const e = new Error('x'); Object.defineProperty(e, 'code', { get() { return 'TIMEOUT'; } }); throw e;";
    assert_eq!(runtime_error(&attempt(request(source, &[]))).handler_code, None);
}

#[test]
fn an_extensions_error_or_value_rethrown_is_a_runtime_error() {
    for forged in ["INVALID_ARGUMENT", "PERMISSION_DENIED", "TIMEOUT"] {
        let suspended = attempt(common::register(request("await $ext.kv.get();", &["ext:kv"]), "kv", &["get"]));
        let outcome = ExtOutcome::Err { code: Some(forged.into()), message: "from the extension".into() };
        let result = resume(&suspended, outcome);
        assert_eq!(runtime_error(&result).handler_code.as_deref(), Some(forged));

        let suspended = attempt(common::register(request("throw await $ext.kv.get();", &["ext:kv"]), "kv", &["get"]));
        let result = resume(&suspended, ExtOutcome::Ok(json!({"code": forged, "name": "InternalError"})));
        assert_eq!(runtime_error(&result).handler_code.as_deref(), Some(forged));
    }
}

#[test]
fn a_real_denial_rethrown_is_still_a_denial_and_a_copy_of_it_is_not() {
    let result = attempt(request("try { $state.secret; } catch (e) { throw e; }", &[]));
    assert_eq!(code(&result), ErrorCode::PermissionDenied);
    assert_eq!(result.error.as_ref().unwrap().handler_code, None);
    // After a real (caught) denial, an error made to look like one is the handler's.
    for copy in [
        "throw Object.assign(new Error(e.message), { code: e.code });",
        "throw Object.create(e);",
        "throw { ...e, code: e.code, message: e.message };",
    ] {
        let source = format!("let e; try {{ $state.secret; }} catch (caught) {{ e = caught; }}\n{copy}");
        let result = attempt(request(&source, &[]));
        assert_eq!(code(&result), ErrorCode::RuntimeError, "{copy}: {:?}", result.error);
        assert_eq!(result.records.denials.len(), 1);
    }
    // A denial raised after an await, rethrown later, is still the runtime's.
    let source = "await null; let e; try { $state.secret; } catch (c) { e = c; } await null; throw e;";
    assert_eq!(code(&attempt(request(source, &[]))), ErrorCode::PermissionDenied);
    // An unknown extension, uncaught, is the runtime's too.
    let result = attempt(request("await $ext.kv.nope();", &["ext:kv"]));
    assert_eq!(code(&result), ErrorCode::UnknownExtension);
}

#[test]
fn a_real_denial_rethrown_is_reported_as_the_runtime_raised_it() {
    let expected = "permission denied: requires capability events:emit:secret";
    for rewrite in [
        "e.message = 'permission denied: requires capability events:emit:other';",
        "e.stack = '    at x (handler.js:9:9)\\n';",
        "Object.defineProperty(e, 'message', { get() { $log('ran'); return 'forged'; } });",
        "Object.defineProperty(e, 'stack', { value: 'forged' }); e.name = 'TypeError';",
    ] {
        let source = format!("let e;\ntry {{ $emit('secret', 1); }} catch (c) {{ e = c; }}\n{rewrite}\nthrow e;");
        let result = attempt(request(&source, &[]));
        let error = result.error.as_ref().expect("failed");
        assert_eq!((error.code, error.message.as_str()), (ErrorCode::PermissionDenied, expected), "{rewrite}");
        let location = error.location.map(|l| (l.line, l.column));
        assert_eq!(location, Some((2, 7)), "where it was raised, {rewrite}: {error:?}");
        assert!(result.records.logs.is_empty(), "no getter of the handler's ran after its end: {rewrite}");
    }
}

#[test]
fn a_handlers_stack_formatting_does_not_shape_or_enter_a_denial_the_runtime_raises() {
    let expected = "permission denied: requires capability events:emit:secret";
    for setup in [
        "Error.prepareStackTrace = () => '    at innocent (handler.js:5:3)\\n';",
        "Error.prepareStackTrace = () => 42;",
        "Error.prepareStackTrace = (e) => { Object.preventExtensions(e); return ''; };",
        "Error.prepareStackTrace = () => { $log('ran'); return ''; };",
        "Error.stackTraceLimit = 0;",
        "Error.stackTraceLimit = { valueOf() { $log('ran'); return 0; } };",
        "Object.defineProperty(Error, 'prepareStackTrace', { value: () => 'forged' });",
    ] {
        let source = format!("{setup}\n$emit('secret', 1);\nreturn 1;\n// line 4");
        let result = attempt(request(&source, &[]));
        let error = result.error.as_ref().expect("failed");
        assert_eq!((error.code, error.message.as_str()), (ErrorCode::PermissionDenied, expected), "{setup}: {error:?}");
        let location = error.location.map(|l| (l.line, l.column));
        assert_eq!(location, Some((2, 1)), "where it was raised, {setup}: {error:?}");
        assert!(result.records.logs.is_empty(), "none of the handler's code ran inside the raising: {setup}");
    }
    // The handler's own errors still use what it set, and what it set is still in place.
    let own = attempt(request(
        "Error.prepareStackTrace = () => 'mine';\ntry { $emit('secret', 1); } catch {}\nreturn [new Error('x').stack, typeof Error.prepareStackTrace];",
        &[],
    ));
    assert_eq!(own.return_value, serde_json::json!(["mine", "function"]));
}

#[test]
fn source_past_the_compilers_limits_is_a_syntax_error_not_an_internal_one() {
    // QuickJS raises an InternalError for these while compiling: the handler cannot make its
    // result INTERNAL, which is kept for the sandbox's own failures.
    let nested =
        format!("for (const {{ a = {}1{}, ...rest }} of []) {{}}\nreturn 1;", "[".repeat(255), "]".repeat(255));
    let arguments = format!("return Math.max({});", vec!["1"; 65_534].join(","));
    for source in [nested, arguments] {
        let result = attempt(request(&source, &[]));
        let error = result.error.as_ref().expect("failed");
        assert_eq!(error.code, ErrorCode::SyntaxError, "{error:?}");
    }
}

#[test]
fn a_function_named_like_a_stack_frame_does_not_move_a_denial() {
    for name in ["x (handler.js:2:4)\\n    at y", "x (handler.js:2:4)", "x\\u2028    at y (handler.js:2:4)"] {
        let source = format!(
            "const f = {{ ['{name}']() {{ return $state.secret; }} }}['{name}'];\n\
             // line 2\n\
             return f();"
        );
        let result = attempt(request(&source, &[]));
        let error = result.error.as_ref().expect("failed");
        assert_eq!(error.code, ErrorCode::PermissionDenied, "{name}: {error:?}");
        let location = error.location.map(|l| (l.line, l.column));
        // `$state` on line 1, after the name as the source spells it.
        assert_eq!(location, Some((1, 29 + name.len() as u32)), "{name}: {error:?}");
        let stack = error.stack.as_deref().unwrap_or_default();
        assert_eq!(stack.lines().count(), 2, "one line per frame: {stack:?}");
    }
}
