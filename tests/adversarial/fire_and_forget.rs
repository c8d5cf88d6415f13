//! Nothing a handler asks for is lost: an extension call it never awaits keeps the execution
//! suspended after the handler settles (the value it settled with kept), and the execution
//! completes with that value once the call is settled and its continuations ran. A rejection
//! nothing awaited is a `warn` log line naming the call, not a failure; so is any other
//! rejection nothing handled. An exception in a queued microtask is not a rejection: it fails
//! the execution.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;

fn tracked(source: &str) -> ExecutionRequest {
    common::register(request(source, &["ext:analytics", "ext:kv"]), "analytics", &["track"])
}

fn calls(result: &ExecutionResult) -> Vec<String> {
    let suspension = result.suspension.as_ref().unwrap_or_else(|| panic!("expected a suspension: {result:?}"));
    suspension.calls.iter().map(|call| format!("{}.{}", call.extension, call.method)).collect()
}

#[test]
fn a_call_never_awaited_is_listed_and_the_value_waits_for_it() {
    let suspended = attempt(tracked("$ext.analytics.track('opened'); return 'done';"));
    assert_eq!(suspended.status, Status::Suspended, "{suspended:?}");
    assert_eq!(calls(&suspended), ["analytics.track"]);
    assert_eq!(suspended.suspension.as_ref().unwrap().calls[0].args, [json!("opened")]);
    assert_eq!(suspended.return_value, Value::Null, "not returned yet");
    let result = resume(&suspended, ExtOutcome::Ok(json!(true)));
    assert_eq!(success(&result), &json!("done"));
}

#[test]
fn the_value_is_the_one_settled_with_and_continuations_run_before_completion() {
    let source = "const v = { n: 1 };\n\
                  $ext.analytics.track('x').then((r) => { v.n = 2; $log('tracked', r); });\n\
                  return v;";
    let suspended = attempt(tracked(source));
    assert_eq!(calls(&suspended), ["analytics.track"]);
    let result = resume(&suspended, ExtOutcome::Ok(json!("ok")));
    assert_eq!(success(&result), &json!({"n": 1}), "the value as the handler settled with it");
    let logs: Vec<&str> = result.records.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(logs, ["tracked ok"], "the continuation ran");
}

#[test]
fn a_rejection_never_awaited_is_a_warning_not_a_failure() {
    let suspended = attempt(tracked("$ext.analytics.track('x'); return 7;"));
    let outcome = ExtOutcome::Err { code: Some("UNAVAILABLE".into()), message: "service down".into() };
    let result = resume(&suspended, outcome);
    assert_eq!(success(&result), &json!(7));
    assert_eq!(result.records.logs.len(), 1, "{:?}", result.records.logs);
    let line = &result.records.logs[0];
    assert_eq!(line.level, nexus::LogLevel::Warn);
    assert!(line.message.contains("$ext.analytics.track (call 1)"), "{line:?}");
    assert!(line.message.contains("service down") && line.message.contains("UNAVAILABLE"), "{line:?}");
    // A rejection the handler handles is not reported.
    let source = "$ext.analytics.track('x').catch(() => $log('handled')); return 7;";
    let result = resume(&attempt(tracked(source)), ExtOutcome::Err { code: None, message: "down".into() });
    assert_eq!(success(&result), &json!(7));
    let logs: Vec<_> = result.records.logs.iter().map(|l| (l.level, l.message.as_str())).collect();
    assert_eq!(logs, [(nexus::LogLevel::Info, "handled")]);
}

#[test]
fn any_rejection_nothing_handled_is_a_warning_and_the_handlers_own_is_its_error() {
    let warnings = |source: &str| {
        let result = attempt(request(source, &[]));
        let lines: Vec<String> = result.records.logs.iter().map(|l| format!("{:?} {}", l.level, l.message)).collect();
        (result, lines)
    };
    let (result, lines) = warnings("Promise.reject(new Error('lost')); return 1;");
    assert_eq!(success(&result), &json!(1));
    assert_eq!(lines, ["Warn a promise was rejected and nothing handled it: Error: lost"]);
    let (result, lines) = warnings(
        "async function save() { throw { code: 'E_SAVE', message: 'disk full' } }\n\
         save(); Promise.resolve().then(() => { throw new TypeError('late') }); return 2;",
    );
    assert_eq!(success(&result), &json!(2));
    assert_eq!(
        lines,
        [
            "Warn a promise was rejected and nothing handled it (E_SAVE): disk full",
            "Warn a promise was rejected and nothing handled it: TypeError: late"
        ]
    );
    // Handled later, before the end: no line. The handler's own rejection is its error.
    let (result, lines) =
        warnings("const p = Promise.reject(new Error('x')); await null; await null; p.catch(() => {}); return 3;");
    assert_eq!((success(&result), lines.len()), (&json!(3), 0));
    let (result, lines) = warnings("await null; throw new Error('own');");
    assert_eq!(code(&result), ErrorCode::RuntimeError);
    assert!(lines.is_empty(), "{lines:?}");
}

#[test]
fn an_exception_in_a_queued_microtask_fails_the_execution_even_after_the_return() {
    let result = attempt(request("queueMicrotask(() => { throw new Error('late') });\nreturn 1;", &[]));
    assert_eq!(code(&result), ErrorCode::RuntimeError);
    let error = result.error.as_ref().unwrap();
    assert_eq!((error.message.as_str(), error.location.map(|l| (l.line, l.column))), ("Error: late", Some((1, 34))));
    assert!(result.records.logs.is_empty(), "{:?}", result.records.logs);
}

#[test]
fn a_handler_that_throws_with_calls_pending_fails_once_they_settle() {
    let suspended = attempt(tracked("$ext.analytics.track('x'); throw new Error('late');"));
    assert_eq!(calls(&suspended), ["analytics.track"]);
    let result = resume(&suspended, ExtOutcome::Ok(json!(null)));
    assert_eq!(code(&result), ErrorCode::RuntimeError);
    assert!(result.error.as_ref().unwrap().message.contains("late"));
}

/// Records the calls it performs; every call succeeds with its method name.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl nexus::ExtensionHost for Recorder {
    fn call(
        &self,
        extension: &str,
        method: &str,
        args: Vec<Value>,
    ) -> impl std::future::Future<Output = ExtOutcome> + Send {
        self.0.lock().unwrap().push(format!("{extension}.{method}({})", Value::Array(args)));
        let value = json!(method);
        async move { ExtOutcome::Ok(value) }
    }
}

#[test]
fn run_to_completion_performs_calls_never_awaited() {
    let host = Recorder::default();
    let source = "$ext.analytics.track(1); $ext.analytics.track(2);\n\
                  const got = await $ext.kv.get('k');\n\
                  $ext.analytics.track(3).then((m) => $log('after', m));\n\
                  return got;";
    let request = common::register(tracked(source), "kv", &["get"]);
    let result = block_on(runtime().run_to_completion(request, &host)).expect("runs");
    assert_eq!(success(&result), &json!("get"));
    let performed = host.0.lock().unwrap().clone();
    assert_eq!(performed, ["analytics.track([1])", "analytics.track([2])", "kv.get([\"k\"])", "analytics.track([3])"]);
    let logs: Vec<&str> = result.records.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(logs, ["after track"]);
    assert_next_execution_is_clean();
}

#[test]
fn the_cli_performs_calls_never_awaited() {
    let dir = std::env::temp_dir().join(format!("nexus-forget-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("forget.js");
    std::fs::write(&path, "$ext.analytics.track('x').then(() => $log('tracked')); return 'done';").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(["run", path.to_str().unwrap(), "--cap", "ext:analytics", "--ext", "analytics.track=true"])
        .output()
        .expect("the nexus binary runs");
    let result: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(output.status.code(), Some(0), "{result}");
    assert_eq!(result["returnValue"], "done");
    assert_eq!(result["logs"], json!([{"level": "info", "message": "tracked"}]));
    let calls: BTreeMap<String, Value> = result["suspensions"][0]["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["method"].to_string(), c["args"].clone()))
        .collect();
    assert_eq!(calls.len(), 1, "{result}");
}
