//! The engine's memory budget: every execution stays within its own memory limit, and all of
//! them together within the budget, so hostile handlers running (or suspended live) at once
//! cannot take the host's memory. Past it an execution fails with `OVERLOADED`, and what an
//! instance reserved comes back when it is dropped.

use nexus::{Engine, EngineConfig, ErrorCode, ExecutionRequest, ExtOutcome, Status};
use serde_json::json;

fn allocating(mib: u32, then_await: bool) -> ExecutionRequest {
    let wait = if then_await { "await $ext.kv.get();" } else { "" };
    let mut request = ExecutionRequest::source(format!(
        "const held = new Uint8Array({mib} << 20); held.fill(1);\n{wait}\nreturn held.length >> 20;"
    ));
    request.capabilities = vec!["ext:kv".parse().unwrap()];
    request.extension_registry.insert("kv".into(), ["get".to_owned()].into());
    request
}

#[test]
fn executions_together_stay_within_the_engines_memory_budget() {
    let mut config = EngineConfig::default();
    config.memory_budget = 24 << 20;
    config.module_cache_dir = None;
    let engine = Engine::with_slots(config, 4).expect("engine starts");

    // Within its own limit (64 MiB) but past the budget: OVERLOADED, saying why.
    let over = engine.execute(allocating(32, false)).result;
    let error = over.error.expect("refused");
    assert_eq!(error.code, ErrorCode::Overloaded, "{error:?}");
    assert!(error.message.contains("budget of 25165824 bytes"), "{}", error.message);
    assert_eq!(engine.execute(allocating(16, false)).result.return_value, json!(16), "the engine serves on");

    // A suspended execution holds its memory until it ends.
    let parked = engine.execute(allocating(16, true));
    assert_eq!(parked.result.status, Status::Suspended, "{:?}", parked.result.error);
    let crowded = engine.execute(allocating(16, false)).result;
    assert_eq!(crowded.error.map(|e| e.code), Some(ErrorCode::Overloaded), "16 + 16 MiB past 24 MiB");
    let call = parked.result.suspension.unwrap().calls[0].call_id;
    let done = engine.resume(parked.parked.unwrap(), call, ExtOutcome::Ok(json!(1))).ok().expect("resumes");
    assert_eq!(done.result.return_value, json!(16));
    drop(done);
    assert_eq!(engine.execute(allocating(16, false)).result.return_value, json!(16), "given back when it ended");
}
