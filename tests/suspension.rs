//! Extension calls: suspension with the records made so far, resume, rejection, and the
//! calls a handler may not make.

mod common;

use common::{error_code, register, request};
use nexus::{ErrorCode, Event, ExtOutcome, StateMutation, Status};
use serde_json::json;

#[test]
fn extension_call_suspends_and_resumes_with_records_in_order() {
    let request = register(
        request(
            "$state.status = 'loading';\nconst weather = await $ext.weather.get('Paris');\n\
             $state.status = 'done'; $emit('loaded', weather); return weather.temp;",
            &["state:write:status", "events:emit:loaded", "ext:weather"],
            json!({}),
        ),
        "weather",
        &["get"],
    );
    let engine = common::engine();
    let outcome = engine.execute(request);
    let suspended = outcome.result;
    assert_eq!(suspended.status, Status::Suspended);
    assert_eq!(
        suspended.records.state_mutations,
        vec![StateMutation::Set { key: "status".into(), value: json!("loading") }],
        "mutations before the suspension come with it"
    );
    let suspension = suspended.suspension.expect("a suspension");
    assert_eq!(suspension.calls.len(), 1);
    let call = &suspension.calls[0];
    assert_eq!((call.extension.as_str(), call.method.as_str(), &call.args), ("weather", "get", &vec![json!("Paris")]));
    assert_eq!(suspension.id.0.len(), 32, "an unguessable id, not a counter");

    let parked = outcome.parked.expect("the execution is parked");
    let resumed = engine.resume(parked, call.call_id, ExtOutcome::Ok(json!({"temp": 21}))).ok().expect("resumes");
    let done = resumed.result;
    assert_eq!(done.status, Status::Success, "{done:?}");
    assert_eq!(done.return_value, json!(21));
    assert_eq!(done.records.state_mutations, vec![StateMutation::Set { key: "status".into(), value: json!("done") }]);
    assert_eq!(done.records.events, vec![Event { name: "loaded".into(), payload: json!({"temp": 21}) }]);
    assert!(resumed.parked.is_none());
}

#[test]
fn promise_all_over_two_calls_suspends_once_with_both_pending() {
    let request = register(
        request(
            "const [a, b] = await Promise.all([$ext.geo.lookup('a'), $ext.geo.lookup('b')]); return a + b;",
            &["ext:geo"],
            json!({}),
        ),
        "geo",
        &["lookup"],
    );
    let engine = common::engine();
    let outcome = engine.execute(request);
    let calls = outcome.result.suspension.expect("suspended").calls;
    assert_eq!(calls.iter().map(|c| c.args[0].clone()).collect::<Vec<_>>(), vec![json!("a"), json!("b")]);

    let first = engine.resume(outcome.parked.unwrap(), calls[0].call_id, ExtOutcome::Ok(json!(1))).ok().unwrap();
    assert_eq!(first.result.status, Status::Suspended);
    assert_eq!(first.result.suspension.as_ref().unwrap().calls, vec![calls[1].clone()], "only the call that remains");
    let second = engine.resume(first.parked.unwrap(), calls[1].call_id, ExtOutcome::Ok(json!(2))).ok().unwrap();
    assert_eq!(second.result.return_value, json!(3));
}

#[test]
fn a_rejected_call_throws_inside_the_handler() {
    let request = register(
        request(
            "try { await $ext.mail.send('x'); } catch (e) { return [e.message, e.code]; }",
            &["ext:mail"],
            json!({}),
        ),
        "mail",
        &["send"],
    );
    let engine = common::engine();
    let outcome = engine.execute(request);
    let call_id = outcome.result.suspension.unwrap().calls[0].call_id;
    let error = ExtOutcome::Err { code: Some("SMTP_DOWN".into()), message: "server unavailable".into() };
    let done = engine.resume(outcome.parked.unwrap(), call_id, error).ok().unwrap().result;
    assert_eq!(done.return_value, json!(["server unavailable", "SMTP_DOWN"]));
}

#[test]
fn resuming_a_call_that_is_not_pending_is_refused_and_keeps_the_execution() {
    let request = register(request("return await $ext.w.get();", &["ext:w"], json!({})), "w", &["get"]);
    let engine = common::engine();
    let outcome = engine.execute(request);
    let call_id = outcome.result.suspension.unwrap().calls[0].call_id;
    let refused = engine.resume(outcome.parked.unwrap(), call_id + 7, ExtOutcome::Ok(json!(0))).err().unwrap();
    assert_eq!(refused.error.code, ErrorCode::InvalidArgument);
    let done = engine.resume(refused.parked, call_id, ExtOutcome::Ok(json!("ok"))).ok().unwrap();
    assert_eq!(done.result.return_value, json!("ok"));
}

#[test]
fn extension_without_capability_is_denied() {
    let request = register(request("return await $ext.weather.get('Paris');", &[], json!({})), "weather", &["get"]);
    let result = common::execute(request).result;
    assert_eq!(error_code(&result), ErrorCode::PermissionDenied);
    assert_eq!(result.records.denials[0].capability, "ext:weather");
}

#[test]
fn unregistered_extension_or_method_is_unknown() {
    for source in ["return await $ext.weather.forecast();", "return await $ext.stocks.get();"] {
        let request = register(request(source, &["ext:*"], json!({})), "weather", &["get"]);
        let result = common::execute(request).result;
        assert_eq!(error_code(&result), ErrorCode::UnknownExtension, "{source}");
    }
}

#[test]
fn a_promise_that_can_never_settle_is_unsettled_promptly() {
    let started = std::time::Instant::now();
    let result = common::execute(request("await new Promise(() => {}); return 1;", &[], json!({}))).result;
    assert_eq!(error_code(&result), ErrorCode::Unsettled);
    assert!(started.elapsed() < std::time::Duration::from_millis(500));
}

#[test]
fn time_parked_does_not_count_against_the_timeout() {
    let mut request = register(request("await $ext.w.get(); return 'ok';", &["ext:w"], json!({})), "w", &["get"]);
    request.timeout = std::time::Duration::from_millis(50);
    let engine = common::engine();
    let outcome = engine.execute(request);
    let call_id = outcome.result.suspension.unwrap().calls[0].call_id;
    std::thread::sleep(std::time::Duration::from_millis(120));
    let done = engine.resume(outcome.parked.unwrap(), call_id, ExtOutcome::Ok(json!(null))).ok().unwrap();
    assert_eq!(done.result.return_value, json!("ok"), "{:?}", done.result.error);
}

#[test]
fn more_calls_pending_at_once_than_the_limit_end_the_execution_even_when_caught() {
    let engine = common::engine();
    let flood = |calls: usize| {
        let source = format!(
            "const ps = [];\n\
             for (let i = 0; i < {calls}; i++) {{ try {{ ps.push($ext.x.m(i)); }} catch (e) {{ return 'caught'; }} }}\n\
             return (await Promise.all(ps)).length;"
        );
        engine.execute(register(request(&source, &["ext:x"], json!({})), "x", &["m"]))
    };
    let at_the_limit = flood(nexus::MAX_PENDING_CALLS);
    let calls = at_the_limit.result.suspension.expect("suspended at the limit").calls;
    assert_eq!(calls.len(), nexus::MAX_PENDING_CALLS);

    let past_it = flood(nexus::MAX_PENDING_CALLS + 1).result;
    assert_eq!(error_code(&past_it), ErrorCode::MemoryLimit, "{past_it:?}");
    let message = &past_it.error.as_ref().unwrap().message;
    assert!(message.contains(&format!("more than {} extension calls pending", nexus::MAX_PENDING_CALLS)), "{message}");
    assert_eq!(
        past_it.metrics.host_calls as usize,
        nexus::MAX_PENDING_CALLS + 1,
        "the call past the limit was the last"
    );

    // Calls settled make room: the limit is on calls pending at once, not on calls made.
    let source = format!(
        "let ps = [];\n\
         for (let i = 0; i < {}; i++) ps.push($ext.x.m(i));\n\
         await ps[0];\n\
         ps.push($ext.x.m('one more'));\n\
         ps.push($ext.x.m('past the limit'));\n\
         return 'ran on';",
        nexus::MAX_PENDING_CALLS
    );
    let outcome = engine.execute(register(request(&source, &["ext:x"], json!({})), "x", &["m"]));
    let first = outcome.result.suspension.expect("suspended").calls[0].call_id;
    let resumed = engine.resume(outcome.parked.unwrap(), first, ExtOutcome::Ok(json!(0))).ok().expect("resumes");
    assert_eq!(error_code(&resumed.result), ErrorCode::MemoryLimit, "{:?}", resumed.result);
    assert!(resumed.parked.is_none());
}
