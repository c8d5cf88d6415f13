//! One rule for strings that are not well-formed UTF-16 (a lone surrogate): in values and in
//! log text it becomes U+FFFD; in a name (state key, event name, component id, extension or
//! method name) it is a `TypeError`, since the name would change on its way to the host.

use super::*;

#[test]
fn in_values_and_log_text_a_lone_surrogate_becomes_u_fffd() {
    let source = "$log('a\\ud800b'); console.warn('\\udc00'); $log.error('x', '\\ud83d');\n\
                  $emit('e', { s: 'p\\ud800' }); $state.k = '\\udfff';\n\
                  return ['\\ud800', 'ok \\ud83d\\ude00'];";
    let result = attempt(request(source, &["events:emit:e", "state:write:k"]));
    assert_eq!(success(&result), &json!(["\u{fffd}", "ok \u{1f600}"]));
    let logs: Vec<&str> = result.records.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(logs, ["a\u{fffd}b", "\u{fffd}", "x \u{fffd}"]);
    assert_eq!(result.records.events[0].payload, json!({"s": "p\u{fffd}"}));
    assert_eq!(
        result.records.state_mutations[0],
        nexus::StateMutation::Set { key: "k".into(), value: json!("\u{fffd}") }
    );
}

#[test]
fn in_an_error_message_it_becomes_u_fffd() {
    let result = attempt(request("throw new Error('bad \\ud800 input');", &[]));
    let error = result.error.as_ref().unwrap();
    assert_eq!(error.code, ErrorCode::RuntimeError);
    assert!(error.message.contains("bad \u{fffd} input"), "{error:?}");
}

#[test]
fn in_a_name_it_is_a_type_error() {
    for (use_of_name, caps) in [
        ("$state['k\\ud800']", &["state:read:*"][..]),
        ("$state['k\\ud800'] = 1", &["state:write:*"][..]),
        ("delete $state['k\\ud800']", &["state:write:*"][..]),
        ("'k\\ud800' in $state", &["state:read:*"][..]),
        ("$emit('e\\ud800', 1)", &["events:emit:*"][..]),
        ("$view.update('c\\udc00', {})", &["view:update:*"][..]),
        ("$view.command('t\\udc00', 'c', {})", &["view:update:*"][..]),
        ("$ext['kv\\ud800'].get()", &["ext:*"][..]),
        ("$ext.kv['get\\ud800']()", &["ext:*"][..]),
    ] {
        let source = format!("try {{ {use_of_name}; return 'accepted'; }} catch (e) {{ return e.name; }}");
        let result = attempt(common::register(request(&source, caps), "kv", &["get"]));
        assert_eq!(success(&result), &json!("TypeError"), "{use_of_name}");
        assert!(result.records.denials.is_empty() && result.records.state_mutations.is_empty(), "{use_of_name}");
        assert!(result.records.events.is_empty() && result.records.view_commands.is_empty(), "{use_of_name}");
    }
}

#[test]
fn keys_that_differ_only_in_lone_surrogates_are_a_type_error_not_a_lost_member() {
    // Both become U+FFFD: one value would silently replace the other.
    let returned = attempt(request("return { '\\ufffd': 'real', '\\ud800': 'forged' };", &[]));
    let error = returned.error.as_ref().expect("failed");
    assert_eq!(error.code, ErrorCode::RuntimeError);
    assert!(error.message.contains("two keys of an object"), "{error:?}");
    for use_of_value in [
        "$emit('e', { '\\ud800': 1, '\\udc00': 2 }); return 1;",
        "$state.k = { a: { '\\ud800': 1, '\\udc00': 2 } }; return 1;",
    ] {
        let source = format!("try {{ {use_of_value} }} catch (e) {{ return [e.name, e.message]; }}");
        let result = attempt(request(&source, &["events:emit:e", "state:write:k"]));
        let value = success(&result);
        assert_eq!(value[0], json!("TypeError"), "{use_of_value}: {value}");
        assert!(value[1].as_str().unwrap().contains("two keys of an object"), "{use_of_value}: {value}");
        assert!(result.records.events.is_empty() && result.records.state_mutations.is_empty(), "{use_of_value}");
    }
    // One such key alone still becomes U+FFFD.
    let result = attempt(request("return { '\\ud800': 1, b: 2 };", &[]));
    assert_eq!(success(&result), &json!({"\u{fffd}": 1, "b": 2}));
}
