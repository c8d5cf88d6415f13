//! The actor runtime through its Rust API: concurrency, backpressure, parked suspensions,
//! shutdown, metrics, and the run-to-completion driver.

use std::time::Duration;

use nexus::{ErrorCode, ExecutionRequest, ExtOutcome, ExtensionHost, Runtime, RuntimeConfig, Status};
use serde_json::{Value, json};

fn config(pool_size: usize, queue_bound: usize) -> RuntimeConfig {
    let mut config = RuntimeConfig::default();
    config.pool_size = pool_size;
    config.workers = 2;
    config.queue_bound = queue_bound;
    config
}

fn suspending(extension: &str) -> ExecutionRequest {
    let mut request = ExecutionRequest::source(format!(
        "$state.before = 1; const v = await $ext.{extension}.get($args.n); $state.after = v; return v;"
    ));
    request.capabilities = vec![
        format!("ext:{extension}").parse().unwrap(),
        "state:write:before".parse().unwrap(),
        "state:write:after".parse().unwrap(),
    ];
    request.extension_registry.insert(extension.to_owned(), ["get".to_owned()].into());
    request.args = json!({"n": 1});
    request
}

fn adding(n: u64) -> ExecutionRequest {
    let mut request = ExecutionRequest::source("return $args.n + 1;");
    request.args = json!({"n": n});
    request
}

/// Shuts down, and fails if the pool never drains (a step still counted as running).
async fn shut_down_drained(runtime: &Runtime) {
    tokio::time::timeout(Duration::from_secs(5), runtime.shutdown(Duration::from_secs(1)))
        .await
        .expect("shutdown drains: nothing is left counted as running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_executions_on_a_pool_of_sixteen_all_complete() {
    let runtime = Runtime::start(config(16, 2000)).unwrap();
    let results = futures::future::join_all((0..1000).map(|n| {
        let runtime = runtime.clone();
        async move { (n, runtime.execute(adding(n)).await.expect("runs")) }
    }))
    .await;
    for (n, result) in results {
        assert_eq!(result.status, Status::Success, "{:?}", result.error);
        assert_eq!(result.return_value, json!(n + 1));
    }
    let stats = runtime.stats().await;
    assert_eq!(stats.executions.get(&Status::Success), Some(&1000));
    assert!(stats.pool.pool_size <= 16);
    runtime.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_overloaded_and_loses_nothing() {
    let runtime = Runtime::start(config(1, 2)).unwrap();
    let slow = || {
        let mut request =
            ExecutionRequest::source("const end = Date.now() + 100; while (Date.now() < end) {} return 'done';");
        request.timeout = Duration::from_secs(5);
        request
    };
    let results = futures::future::join_all((0..10).map(|_| runtime.execute(slow()))).await;
    let done = results.iter().filter(|r| r.as_ref().is_ok_and(|r| r.status == Status::Success)).count();
    let overloaded = results.iter().filter(|r| r.as_ref().err().map(|e| e.code) == Some(ErrorCode::Overloaded)).count();
    assert_eq!((done, overloaded), (3, 7), "one running + two queued succeed, the rest are refused");
    let stats = runtime.stats().await;
    assert_eq!(stats.errors.get(&ErrorCode::Overloaded), Some(&7));
    assert_eq!(stats.executions.get(&Status::Success), Some(&3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_unknown_repeated_or_expired_ids_is_suspension_not_found() {
    let mut expiring = config(4, 10);
    expiring.suspension_timeout = Duration::from_millis(100);
    let runtime = Runtime::start(expiring).unwrap();
    let unknown = runtime.resume(&nexus::SuspensionId("nope".into()), 1, ExtOutcome::Ok(Value::Null)).await;
    assert_eq!(unknown.unwrap_err().code, ErrorCode::SuspensionNotFound);

    let suspended = runtime.execute(suspending("kv")).await.expect("runs");
    let id = suspended.suspension.unwrap().id;
    let done = runtime.resume(&id, 1, ExtOutcome::Ok(json!(5))).await.expect("resumes");
    assert_eq!(done.return_value, json!(5));
    let repeated = runtime.resume(&id, 1, ExtOutcome::Ok(json!(5))).await;
    assert_eq!(repeated.unwrap_err().code, ErrorCode::SuspensionNotFound);

    let expiring = runtime.execute(suspending("kv")).await.expect("runs").suspension.unwrap().id;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let expired = runtime.resume(&expiring, 1, ExtOutcome::Ok(json!(5))).await;
    assert_eq!(expired.unwrap_err().code, ErrorCode::SuspensionNotFound);
    assert_eq!(runtime.stats().await.pool.parked, 0, "the expired execution freed its slot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_resume_is_a_refusal_and_a_failed_handler_is_a_result() {
    let runtime = Runtime::start(config(2, 10)).unwrap();
    let unknown = runtime.resume(&nexus::SuspensionId("0".repeat(32)), 1, ExtOutcome::Ok(json!(1))).await;
    let refusal = unknown.expect_err("nothing ran: a refusal, not a result");
    assert_eq!(refusal.code, ErrorCode::SuspensionNotFound, "{refusal}");

    let throwing = runtime.execute(ExecutionRequest::source("throw new Error('boom');")).await;
    let result = throwing.expect("the handler ran: a result, not a refusal");
    assert_eq!(result.status, Status::Error);
    assert_eq!(result.error.map(|e| e.code), Some(ErrorCode::RuntimeError));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_suspension_frees_its_actor_without_being_resumed() {
    // One actor: while the suspension holds it, another request can only wait in the queue.
    let mut expiring = config(1, 10);
    expiring.suspension_timeout = Duration::from_millis(100);
    let runtime = Runtime::start(expiring).unwrap();
    let suspended = runtime.execute(suspending("kv")).await.expect("runs");
    assert_eq!(suspended.status, Status::Suspended);
    // The queued request takes the actor at once: the suspension is hibernated for it.
    let next = tokio::time::timeout(Duration::from_secs(5), runtime.execute(adding(1)))
        .await
        .expect("the parked execution's actor went to the queued request")
        .expect("runs");
    assert_eq!(next.return_value, json!(2));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let expired = runtime.resume(&suspended.suspension.unwrap().id, 1, ExtOutcome::Ok(json!(5))).await;
    assert_eq!(expired.unwrap_err().code, ErrorCode::SuspensionNotFound);
    let stats = runtime.stats().await;
    assert_eq!((stats.pool.parked, stats.pool.queued, stats.pool.pool_size), (0, 0, 1));
}

/// A request running alone hands its finished instance back, and the caller of the next one
/// resets it while that one runs; when no request follows, the supervisor's sweep does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_request_s_instance_is_reset_by_the_next_caller_or_else_by_the_sweep() {
    // The default suspension timeout (60 s) puts the first sweep a second after the start.
    let runtime = Runtime::start(config(4, 10)).unwrap();
    for n in 0..5 {
        assert_eq!(runtime.execute(adding(n)).await.expect("runs").return_value, json!(n + 1));
        let stats = runtime.stats().await;
        assert_eq!(stats.pool.awaiting_reset, 1, "after request {n}: only the last instance waits for its reset");
    }
    shut_down_drained(&runtime).await;

    let mut swept_soon = config(4, 10);
    swept_soon.suspension_timeout = Duration::from_millis(40);
    let runtime = Runtime::start(swept_soon).unwrap();
    assert_eq!(runtime.execute(adding(1)).await.expect("runs").return_value, json!(2));
    let swept = async {
        while runtime.stats().await.pool.awaiting_reset > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), swept).await.expect("the sweep reset the instance");
    shut_down_drained(&runtime).await;

    // Turned off, the actor resets its own instance and none is handed back.
    let mut actor_resets = config(4, 10);
    actor_resets.caller_resets = false;
    let runtime = Runtime::start(actor_resets).unwrap();
    for n in 0..3 {
        assert_eq!(runtime.execute(adding(n)).await.expect("runs").return_value, json!(n + 1));
        assert_eq!(runtime.stats().await.pool.awaiting_reset, 0);
    }
    shut_down_drained(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_stops_waiting_gets_no_answer_and_loses_no_actor() {
    // One actor: if the abandoned step did not give it back, the next request would wait forever.
    let runtime = Runtime::start(config(1, 10)).unwrap();
    let slow = ExecutionRequest::source("const end = Date.now() + 200; while (Date.now() < end) {} return 'done';");
    let abandoned = tokio::time::timeout(Duration::from_millis(20), runtime.execute(slow)).await;
    assert!(abandoned.is_err(), "the caller stopped waiting while the handler ran");
    let next = tokio::time::timeout(Duration::from_secs(5), runtime.execute(adding(1)))
        .await
        .expect("the abandoned step's actor came back to the pool")
        .expect("runs");
    assert_eq!(next.return_value, json!(2));
    let stats = runtime.stats().await;
    assert_eq!(stats.executions.get(&Status::Success), Some(&2), "the abandoned step still ran and was counted");
    assert_eq!((stats.pool.idle, stats.pool.pool_size), (1, 1));
    shut_down_drained(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_callers_that_stop_waiting_lose_no_actor() {
    // One actor, busy: the next two requests queue behind it.
    let runtime = Runtime::start(config(1, 10)).unwrap();
    let slow = ExecutionRequest::source("const end = Date.now() + 100; while (Date.now() < end) {} return 'done';");
    let first = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.execute(slow).await.expect("runs") }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut gives_up_early = Box::pin(runtime.execute(adding(1)));
    let mut gives_up_late = Box::pin(runtime.execute(adding(2)));
    assert!(futures::poll!(&mut gives_up_early).is_pending(), "queued");
    assert!(futures::poll!(&mut gives_up_late).is_pending(), "queued");
    // One caller leaves before its turn; the first step's end then hands the actor to the other,
    // which leaves without running it.
    drop(gives_up_early);
    assert_eq!(first.await.unwrap().status, Status::Success);
    drop(gives_up_late);
    let next = tokio::time::timeout(Duration::from_secs(5), runtime.execute(adding(3)))
        .await
        .expect("the actor handed to a caller that left came back to the pool")
        .expect("runs");
    assert_eq!(next.return_value, json!(4));
    let stats = runtime.stats().await;
    assert_eq!((stats.pool.idle, stats.pool.queued, stats.pool.pool_size), (1, 0, 1));
    shut_down_drained(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pending_calls_are_resumed_one_at_a_time() {
    let runtime = Runtime::start(config(4, 10)).unwrap();
    let mut request = ExecutionRequest::source(
        "const [a, b] = await Promise.all([$ext.kv.get('a'), $ext.kv.get('b')]); return a + b;",
    );
    request.capabilities = vec!["ext:kv".parse().unwrap()];
    request.extension_registry.insert("kv".into(), ["get".to_owned()].into());
    let first = runtime.execute(request).await.expect("runs");
    let suspension = first.suspension.unwrap();
    assert_eq!(suspension.calls.len(), 2);
    let second =
        runtime.resume(&suspension.id, suspension.calls[1].call_id, ExtOutcome::Ok(json!(2))).await.expect("resumes");
    assert_eq!(second.status, Status::Suspended);
    let remaining = second.suspension.unwrap();
    assert_eq!(remaining.calls.len(), 1);
    assert_ne!(remaining.id, suspension.id, "each suspension id is single-use");
    let done =
        runtime.resume(&remaining.id, remaining.calls[0].call_id, ExtOutcome::Ok(json!(1))).await.expect("resumes");
    assert_eq!(done.return_value, json!(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_parked_executions_while_others_keep_running() {
    let runtime = Runtime::start(config(1010, 100)).unwrap();
    let parked = futures::future::join_all((0..1000).map(|_| runtime.execute(suspending("slow")))).await;
    let parked: Vec<_> = parked.into_iter().map(|r| r.expect("runs")).collect();
    assert!(parked.iter().all(|r| r.status == Status::Suspended));
    let pool = runtime.stats().await.pool;
    assert_eq!(pool.parked + pool.hibernated, 1000, "live or hibernated");
    for n in 0..50 {
        assert_eq!(runtime.execute(adding(n)).await.expect("runs").return_value, json!(n + 1));
    }
    let resumed = futures::future::join_all(
        parked.iter().map(|r| runtime.resume(&r.suspension.as_ref().unwrap().id, 1, ExtOutcome::Ok(json!(7)))),
    )
    .await;
    assert!(resumed.iter().all(|r| r.as_ref().is_ok_and(|r| r.return_value == json!(7))));
    assert_eq!(runtime.stats().await.pool.parked, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapped_instance_is_discarded_and_the_next_request_succeeds() {
    let runtime = Runtime::start(config(1, 10)).unwrap();
    let mut looping = ExecutionRequest::source("while (true) {}");
    looping.timeout = Duration::from_millis(50);
    assert_eq!(runtime.execute(looping).await.expect("runs").error.unwrap().code, ErrorCode::Timeout);
    let recursion = runtime.execute(ExecutionRequest::source("function f() { f(); } f();")).await.expect("runs");
    assert_eq!(recursion.error.unwrap().code, ErrorCode::StackOverflow);
    assert_eq!(runtime.execute(adding(1)).await.expect("runs").return_value, json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_running_queued_and_parked_work() {
    let runtime = Runtime::start(config(2, 10)).unwrap();
    let parked = runtime.execute(suspending("kv")).await.expect("runs").suspension.unwrap().id;
    let slow =
        || ExecutionRequest::source("const end = Date.now() + 150; while (Date.now() < end) {} return 'finished';");
    let running = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.execute(slow()).await.expect("runs") }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let queued = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.execute(slow()).await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    runtime.shutdown(Duration::from_secs(2)).await;
    assert_eq!(running.await.unwrap().return_value, json!("finished"), "running work finishes within the grace period");
    let queued = queued.await.unwrap();
    assert_eq!(queued.map_err(|e| e.code).err(), Some(ErrorCode::ShuttingDown));
    let late = runtime.resume(&parked, 1, ExtOutcome::Ok(json!(1))).await;
    assert_eq!(late.unwrap_err().code, ErrorCode::ShuttingDown);
    assert_eq!(runtime.execute(adding(1)).await.unwrap_err().code, ErrorCode::ShuttingDown);
    let precompiled = runtime.precompile("return 1").await.unwrap_err();
    assert_eq!((precompiled.code, precompiled.message.as_str()), (ErrorCode::ShuttingDown, "the runtime is shut down"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_ran_and_render_as_prometheus_text() {
    let runtime = Runtime::start(config(4, 10)).unwrap();
    for n in 0..5 {
        runtime.execute(adding(n)).await.expect("runs");
    }
    runtime.execute(ExecutionRequest::source("return $state.secret;")).await.expect("runs");
    let stats = runtime.stats().await;
    assert_eq!(stats.executions.get(&Status::Success), Some(&5));
    assert_eq!(stats.errors.get(&ErrorCode::PermissionDenied), Some(&1));
    assert_eq!(stats.denials, 1);
    assert_eq!(stats.host_calls, 1);
    assert!(stats.latency_p50_us > 0);

    let source = ExecutionRequest::source("return 'cached';");
    runtime.execute(source.clone()).await.expect("runs");
    runtime.execute(source).await.expect("runs");
    let stats = runtime.stats().await;
    // The five `adding` runs share a source (1 miss, 4 hits), the denied one misses, and the
    // pair just run misses then hits.
    assert_eq!((stats.cache_misses, stats.cache_hits), (3, 5), "{stats:?}");

    let text = runtime.prometheus().await;
    for name in [
        "nexus_executions_total",
        "nexus_execution_duration_seconds_bucket",
        "nexus_denials_total",
        "nexus_compile_cache_hits_total",
        "nexus_parked",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(text.contains(r#"nexus_executions_total{status="success",code=""} 7"#), "{text}");
    // Every sample line is `name{labels} value` with a numeric value.
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
    }
    assert!(text.trim_end().ends_with("# EOF"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_capabilities_a_request_runs_with_none_unless_inference_is_enabled() {
    let source = "$state.count = 1;\nconst key = 'count';\ntry { return $state[key]; } catch (e) { return e.code; }";
    let secure = Runtime::start(config(2, 10)).unwrap();
    let denied = secure.execute(ExecutionRequest::source(source)).await.expect("runs");
    assert_eq!(denied.error.unwrap().code, ErrorCode::PermissionDenied, "no tokens, no access");

    let mut inferring = config(2, 10);
    inferring.engine.infer_missing_capabilities = true;
    let inferring = Runtime::start(inferring).unwrap();
    let result = inferring.execute(ExecutionRequest::source(source)).await.expect("runs");
    assert_eq!(result.return_value, json!("PERMISSION_DENIED"), "the dynamic read stays denied");
    assert_eq!(result.records.state_mutations.len(), 1, "the literal write was inferred");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compile_cache_directory_serves_a_new_runtime() {
    let dir = std::env::temp_dir().join(format!("nexus-bytecode-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cached = config(2, 10);
    cached.engine.compile_cache_dir = Some(dir.clone());
    let source = ExecutionRequest::source("return 'from disk';");
    let first = Runtime::start(cached.clone()).unwrap().execute(source.clone()).await.expect("runs");
    assert!(!first.metrics.cache_hit);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "the bytecode was written");
    let second = Runtime::start(cached).unwrap().execute(source).await.expect("runs");
    assert!(second.metrics.cache_hit, "a new runtime (empty memory cache) read it back");
    assert_eq!(second.return_value, json!("from disk"));
    let _ = std::fs::remove_dir_all(&dir);
}

struct Counter;

impl ExtensionHost for Counter {
    async fn call(&self, extension: &str, method: &str, args: Vec<Value>) -> ExtOutcome {
        tokio::time::sleep(Duration::from_millis(5)).await;
        match (extension, method) {
            ("math", "double") => ExtOutcome::Ok(json!(args[0].as_i64().unwrap() * 2)),
            _ => ExtOutcome::Err { code: None, message: format!("no {extension}.{method}") },
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_to_completion_drives_three_sequential_extension_calls() {
    let runtime = Runtime::start(config(4, 10)).unwrap();
    let mut request = ExecutionRequest::source(
        "let v = 1;\nfor (let i = 0; i < 3; i++) { v = await $ext.math.double(v); $state.v = v; }\nreturn v;",
    );
    request.capabilities = vec!["ext:math".parse().unwrap(), "state:write:v".parse().unwrap()];
    request.extension_registry.insert("math".into(), ["double".to_owned()].into());
    let result = runtime.run_to_completion(request, &Counter).await.expect("runs");
    assert_eq!(result.status, Status::Success, "{:?}", result.error);
    assert_eq!(result.return_value, json!(8));
    let values: Vec<Value> = result
        .records
        .state_mutations
        .iter()
        .map(|m| match m {
            nexus::StateMutation::Set { value, .. } => value.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(values, vec![json!(2), json!(4), json!(8)], "records of the whole run, in order");
    // Metrics of the whole run too: three extension calls and three writes over four steps.
    assert_eq!(result.metrics.host_calls, 6, "{:?}", result.metrics);
    assert!(result.metrics.compile_time_us > 0 && result.metrics.execution_time_us >= result.metrics.compile_time_us);
}

/// A run whose extension call outlives its suspension ends as an error that still carries what
/// the steps before it recorded (the mutation happened: the application must apply it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_to_completion_past_a_suspensions_expiry_keeps_the_records_of_the_steps_that_ran() {
    let mut expiring = config(4, 10);
    expiring.suspension_timeout = Duration::from_millis(50);
    let runtime = Runtime::start(expiring).unwrap();
    let mut request = ExecutionRequest::source(
        "$state.before = 1;
return await $ext.slow.call();",
    );
    request.capabilities = vec!["ext:slow".parse().unwrap(), "state:write:before".parse().unwrap()];
    request.extension_registry.insert("slow".into(), ["call".to_owned()].into());
    let result = runtime.run_to_completion(request, &SlowAndFast::default()).await.expect("the request ran");
    assert_eq!(result.status, Status::Error);
    assert_eq!(result.error.map(|e| e.code), Some(ErrorCode::SuspensionNotFound));
    assert_eq!(result.records.state_mutations.len(), 1, "{:?}", result.records);
}

/// Answers `slow.call` after 200 ms and `fast.call` after 10 ms, counting the calls performed.
#[derive(Default)]
struct SlowAndFast {
    performed: std::sync::Mutex<Vec<String>>,
}

impl ExtensionHost for SlowAndFast {
    async fn call(&self, extension: &str, _method: &str, _args: Vec<Value>) -> ExtOutcome {
        self.performed.lock().unwrap().push(extension.to_owned());
        let delay = if extension == "slow" { 200 } else { 10 };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        ExtOutcome::Ok(json!(extension))
    }
}

/// The order in which a handler's two concurrent extension calls, the slow one listed first,
/// deliver their results to it: `$ext.slow.call()` starts first and takes 200 ms,
/// `$ext.fast.call()` takes 10 ms.
const ARRIVAL_ORDER: &str = "
    const arrived = [];
    const record = (call) => call.then((value) => { arrived.push(value); });
    await Promise.all([record($ext.slow.call()), record($ext.fast.call())]);
    return arrived;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_to_completion_resumes_each_call_as_soon_as_it_settles() {
    let runtime = Runtime::start(config(4, 10)).unwrap();
    let mut request = ExecutionRequest::source(ARRIVAL_ORDER);
    request.capabilities = vec!["ext:slow".parse().unwrap(), "ext:fast".parse().unwrap()];
    request.extension_registry.insert("slow".into(), ["call".to_owned()].into());
    request.extension_registry.insert("fast".into(), ["call".to_owned()].into());
    let host = SlowAndFast::default();
    let result = runtime.run_to_completion(request, &host).await.expect("runs");
    assert_eq!(result.status, Status::Success, "{:?}", result.error);
    // Resumed in list order, or only once both had settled, the slow result would come first.
    assert_eq!(result.return_value, json!(["fast", "slow"]), "the first settled is the first resumed");
    assert_eq!(*host.performed.lock().unwrap(), ["slow", "fast"], "each call performed once");
}

/// Spinning before parking (`nexus::spin`) only changes how threads wait: with it off, with the
/// default budget, and with a client thread that spins too, every request, suspension and
/// resume is answered correctly, one at a time (each wait is a park: a lost wake-up would hang
/// here, and the timeout turns that into a failure) and 200 at once.
#[test]
fn spinning_or_not_every_request_and_resume_is_answered() {
    for spin in [Duration::ZERO, RuntimeConfig::default().spin_before_park] {
        let client = nexus::spin::tokio_runtime(spin).unwrap();
        let mut spinning = config(8, 1000);
        spinning.spin_before_park = spin;
        let runtime = Runtime::start(spinning).unwrap();
        client.block_on(async {
            let run = async {
                for n in 0..200 {
                    let result = runtime.execute(adding(n)).await.expect("runs");
                    assert_eq!(result.return_value, json!(n + 1), "spin {spin:?}: {:?}", result.error);
                    let suspended = runtime.execute(suspending("kv")).await.expect("runs");
                    let id = &suspended.suspension.as_ref().expect("suspended").id;
                    let resumed = runtime.resume(id, 1, ExtOutcome::Ok(json!(n))).await.expect("resumes");
                    assert_eq!(resumed.return_value, json!(n), "spin {spin:?}: {:?}", resumed.error);
                }
                let results = futures::future::join_all((0..200).map(|n| runtime.execute(adding(n)))).await;
                for (n, result) in results.into_iter().enumerate() {
                    assert_eq!(result.expect("runs").return_value, json!(n + 1), "spin {spin:?}");
                }
            };
            tokio::time::timeout(Duration::from_secs(60), run).await.expect("every answer arrived in time");
            runtime.shutdown(Duration::from_secs(1)).await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_queue_takes_a_burst_of_ten_thousand_and_refuses_real_overload() {
    let bound = RuntimeConfig::default().queue_bound;
    assert!(bound >= 10_000, "a burst of 10,000 waits rather than being refused (bound {bound})");
    // One instance, busy: everything else waits in the default queue until it is full.
    let mut one_instance = RuntimeConfig::default();
    one_instance.pool_size = 1;
    one_instance.workers = 1;
    let runtime = Runtime::start(one_instance).unwrap();
    let mut busy = Box::pin(runtime.execute(ExecutionRequest::source(
        "const end = Date.now() + 2000; while (Date.now() < end) {} return 'busy';",
    )));
    assert!(futures::poll!(busy.as_mut()).is_pending());
    let mut waiting = Vec::with_capacity(bound);
    for n in 0..bound {
        let mut request = Box::pin(runtime.execute(adding(n as u64)));
        assert!(futures::poll!(request.as_mut()).is_pending(), "request {n} waits");
        waiting.push(request);
    }
    let refused = runtime.execute(adding(0)).await;
    assert_eq!(
        refused.map_err(|e| e.code).err(),
        Some(ErrorCode::Overloaded),
        "one more than the bound is refused at once"
    );
    // The waiting callers give up; the queue takes requests again once they are gone.
    drop(waiting);
    assert_eq!(busy.await.expect("runs").return_value, json!("busy"));
    assert_eq!(runtime.execute(adding(1)).await.expect("runs").return_value, json!(2));
    let stats = runtime.stats().await;
    assert_eq!(stats.errors.get(&ErrorCode::Overloaded), Some(&1));
    shut_down_drained(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precompiles_at_once_stay_within_the_instance_budget() {
    // One actor on one worker: the engine's instance budget is the pool's slots, the retired
    // instances' and the one set aside for precompiling. The actor's execution is parked, so
    // its slot stays taken throughout (and outlives forty slow compilations on a loaded machine).
    let mut one_instance = RuntimeConfig::default();
    one_instance.pool_size = 1;
    one_instance.workers = 1;
    one_instance.suspension_timeout = Duration::from_secs(600);
    let runtime = Runtime::start(one_instance).unwrap();
    let parked = runtime.execute(suspending("kv")).await.expect("runs");
    assert_eq!(parked.status, Status::Suspended);
    // Long enough to compile that forty precompilations asked at once overlap.
    let source: String = (0..4000).map(|i| format!("let v{i} = $args.n + {i};\n")).collect::<String>() + "return 1;";
    let compiled = futures::future::join_all((0..40).map(|_| runtime.precompile(&source))).await;
    for result in &compiled {
        assert!(result.is_ok(), "a precompilation failed: {:?}", result.as_ref().err());
    }
    let id = parked.suspension.unwrap().id;
    let resumed = runtime.resume(&id, 1, ExtOutcome::Ok(json!(5))).await.expect("resumes");
    assert_eq!(resumed.status, Status::Success, "the parked execution kept its slot: {:?}", resumed.error);
    assert_eq!(runtime.execute(adding(1)).await.expect("runs").return_value, json!(2));
    shut_down_drained(&runtime).await;
}
