//! The supervisor's messages, sent by an application that is an actix system itself: `Execute`
//! and `ExtensionResult` run through the same pool as `Runtime::execute` and `Runtime::resume`,
//! so a suspension made one way is resumed the other.

use nexus::{ErrorCode, ExecutionRequest, ExecutionResult, ExtOutcome, Runtime, RuntimeConfig, Status, Suspension};
use nexus_actors::supervisor::{Execute, ExtensionResult};
use serde_json::json;

/// A handler that awaits `kv.get('a')` and returns the value plus one.
fn awaiting_kv() -> ExecutionRequest {
    let mut request = ExecutionRequest::source("const v = await $ext.kv.get('a'); return v + 1;");
    request.capabilities = vec!["ext:kv".parse().expect("a valid token")];
    request.extension_registry.insert("kv".into(), ["get".to_owned()].into());
    request
}

/// The suspension of a result that awaits `kv.get('a')`.
fn awaiting(result: ExecutionResult) -> Suspension {
    assert_eq!(result.status, Status::Suspended, "{:?}", result.error);
    let suspension = result.suspension.expect("a suspended result names its suspension");
    assert_eq!(suspension.calls.len(), 1);
    let call = &suspension.calls[0];
    assert_eq!((call.extension.as_str(), call.method.as_str(), &call.args[..]), ("kv", "get", &[json!("a")][..]));
    suspension
}

fn outcome(suspension: &Suspension, value: i64) -> ExtensionResult {
    ExtensionResult {
        suspension_id: suspension.id.clone(),
        call_id: suspension.calls[0].call_id,
        outcome: ExtOutcome::Ok(json!(value)),
    }
}

#[test]
fn execute_and_extension_result_sent_from_an_actix_system_run_through_the_runtimes_pool() {
    let system = actix::System::new();
    system.block_on(async {
        let mut config = RuntimeConfig::default();
        config.pool_size = 2;
        config.workers = 1;
        let runtime = Runtime::start(config).expect("the runtime starts in the current system");
        let supervisor = runtime.supervisor().clone();

        // Both messages: the suspension id goes out with `Execute`'s result and comes back in
        // `ExtensionResult`, which runs the handler to its end.
        let suspension =
            awaiting(supervisor.send(Execute(awaiting_kv())).await.expect("the supervisor answers").expect("runs"));
        let done = supervisor.send(outcome(&suspension, 41)).await.expect("the supervisor answers").expect("runs");
        assert_eq!(done.status, Status::Success, "{:?}", done.error);
        assert_eq!(done.return_value, json!(42));
        // The id was used: a second outcome for it finds nothing.
        let again = supervisor.send(outcome(&suspension, 0)).await.expect("the supervisor answers");
        assert_eq!(again.map_err(|e| e.code).err(), Some(ErrorCode::SuspensionNotFound));

        // One pool: a suspension made by a message is resumed by the runtime, and one made by
        // the runtime by a message.
        let by_message =
            awaiting(supervisor.send(Execute(awaiting_kv())).await.expect("the supervisor answers").expect("runs"));
        let resumed = runtime
            .resume(&by_message.id, by_message.calls[0].call_id, ExtOutcome::Ok(json!(1)))
            .await
            .expect("resumes");
        assert_eq!(resumed.return_value, json!(2), "{:?}", resumed.error);
        let by_runtime = awaiting(runtime.execute(awaiting_kv()).await.expect("runs"));
        let resumed = supervisor.send(outcome(&by_runtime, 2)).await.expect("the supervisor answers").expect("runs");
        assert_eq!(resumed.return_value, json!(3), "{:?}", resumed.error);

        // Both paths count in the runtime's statistics.
        let stats = runtime.stats().await;
        assert_eq!(stats.executions.values().sum::<u64>(), 6, "{:?}", stats.executions);
    });
}
