//! Load and faults through the actor runtime: 10,000 executions with mixed outcomes must all be
//! answered correctly, the metrics must add up to exactly what was sent, no suspension may stay
//! parked, and memory must come back; instance actors crashed mid-run must be replaced without
//! losing a request.
//!
//! No assertion here depends on timing: the memory bound is generous (other builds may run on
//! the machine) and waiting for expiry polls rather than sleeps a fixed time.

use std::time::Duration;

use futures::StreamExt;
use nexus::{
    ErrorCode, ExecutionRequest, ExecutionResult, ExtOutcome, Runtime, RuntimeConfig, Stats, Status, SuspensionId,
};
use nexus_actors::supervisor::InjectCrashes;
use serde_json::json;
use tokio::sync::Mutex;

/// The two scenarios measure the process's memory and load the machine: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const EXECUTIONS: u64 = 10_000;
const IN_FLIGHT: usize = 64;
/// Instance actors of the load test's runtime (fewer than requests in flight: some queue).
const POOL: usize = 48;

/// What one request of the mix is, chosen by its number.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Success,
    Denied,
    Timeout,
    MemoryLimit,
    /// Suspends, then is resumed and succeeds.
    Resumed,
    /// Suspends and is never resumed: it must expire.
    Abandoned,
}

fn kind(n: u64) -> Kind {
    match n % 40 {
        0..=21 => Kind::Success,
        22..=27 => Kind::Denied,
        28 => Kind::Timeout,
        29 => Kind::MemoryLimit,
        _ if n % 200 == 30 => Kind::Abandoned,
        _ => Kind::Resumed,
    }
}

fn request(n: u64) -> ExecutionRequest {
    let source = match kind(n) {
        Kind::Success => "return $args.n * 2;",
        Kind::Denied => "return $state.secret;",
        Kind::Timeout => "for (;;) {}",
        Kind::MemoryLimit => "const keep = []; for (;;) keep.push('x'.repeat(1 << 16) + keep.length);",
        Kind::Resumed | Kind::Abandoned => "const v = await $ext.kv.get($args.n); return v + 1;",
    };
    let mut request = ExecutionRequest::source(source);
    request.args = json!({ "n": n });
    request.capabilities = vec!["ext:kv".parse().expect("a valid token")];
    request.extension_registry.insert("kv".into(), ["get".to_owned()].into());
    request.timeout = match kind(n) {
        Kind::Timeout => Duration::from_millis(5),
        _ => Duration::from_secs(30),
    };
    request.memory_limit = Some(16 << 20);
    request
}

/// What the test keeps of one answered request (the checks happen as it is answered; keeping
/// 10,000 whole results would blur the memory measurement).
struct Answered {
    n: u64,
    /// Host calls over all of its steps.
    host_calls: u64,
    suspension: Option<SuspensionId>,
}

/// Runs request `n` through to its end (resuming what must be resumed) and checks each answer.
async fn run_one(runtime: &Runtime, n: u64) -> Answered {
    let first = runtime.execute(request(n)).await.expect("runs");
    let mut steps = vec![first];
    let expect_code = |result: &ExecutionResult, code: ErrorCode| {
        assert_eq!(result.error.as_ref().map(|e| e.code), Some(code), "request {n}: {result:?}");
    };
    match kind(n) {
        Kind::Success => assert_eq!(steps[0].return_value, json!(n * 2), "request {n}: {:?}", steps[0].error),
        Kind::Denied => {
            expect_code(&steps[0], ErrorCode::PermissionDenied);
            assert_eq!(steps[0].records.denials.len(), 1);
        }
        Kind::Timeout => expect_code(&steps[0], ErrorCode::Timeout),
        Kind::MemoryLimit => expect_code(&steps[0], ErrorCode::MemoryLimit),
        Kind::Abandoned => assert_eq!(steps[0].status, Status::Suspended, "request {n}: {:?}", steps[0].error),
        Kind::Resumed => {
            let suspension = steps[0].suspension.clone().unwrap_or_else(|| panic!("request {n}: {:?}", steps[0]));
            let done = runtime
                .resume(&suspension.id, suspension.calls[0].call_id, ExtOutcome::Ok(json!(n)))
                .await
                .expect("resumes");
            assert_eq!(done.return_value, json!(n + 1), "request {n}: {:?}", done.error);
            steps.push(done);
        }
    }
    Answered {
        n,
        host_calls: steps.iter().map(|r| r.metrics.host_calls).sum(),
        suspension: steps[0].suspension.as_ref().map(|s| s.id.clone()),
    }
}

async fn run_mix(runtime: &Runtime, range: std::ops::Range<u64>) -> Vec<Answered> {
    futures::stream::iter(range).map(|n| run_one(runtime, n)).buffer_unordered(IN_FLIGHT).collect().await
}

/// Resident set size of this process, from /proc.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("statm's resident field");
    pages * 4096
}

fn count<K: Ord>(map: &std::collections::BTreeMap<K, u64>, key: K) -> u64 {
    map.get(&key).copied().unwrap_or(0)
}

/// `after - before` for every counter of [`Stats`] the mix moves.
fn delta(before: &Stats, after: &Stats) -> Vec<(&'static str, u64)> {
    let mut moved = Vec::new();
    for status in [Status::Success, Status::Error, Status::Suspended] {
        moved.push((status.as_str(), count(&after.executions, status) - count(&before.executions, status)));
    }
    for code in [
        ErrorCode::PermissionDenied,
        ErrorCode::Timeout,
        ErrorCode::MemoryLimit,
        ErrorCode::Internal,
        ErrorCode::Overloaded,
    ] {
        moved.push((code.as_str(), count(&after.errors, code) - count(&before.errors, code)));
    }
    moved.push(("denials", after.denials - before.denials));
    moved.push(("host_calls", after.host_calls - before.host_calls));
    moved
}

async fn wait_until_nothing_is_parked(runtime: &Runtime) -> Stats {
    for _ in 0..600 {
        let stats = runtime.stats().await;
        if stats.pool.parked == 0 {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("suspensions are still parked a minute past their expiry: {:?}", runtime.stats().await.pool);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mixed_executions_are_all_answered_and_accounted_for() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut config = RuntimeConfig::default();
    config.pool_size = POOL;
    config.workers = 2;
    config.queue_bound = 4 * IN_FLIGHT;
    config.suspension_timeout = Duration::from_millis(500);
    let runtime = Runtime::start(config).expect("runtime starts");

    // Warm-up: a whole round of the mix, and every pooled slot holding an instance at the same
    // time (suspended ones), so the baseline includes what the pool and the allocator keep
    // resident once warm. Memory that still grows over a second round is a leak (64 MiB over
    // 10,000 executions: anything above about 6 KiB per execution fails the test).
    run_mix(&runtime, 0..EXECUTIONS).await;
    let resumed_kind = (0..).find(|&n| kind(n) == Kind::Resumed).expect("the mix resumes some");
    let parked = futures::future::join_all((0..POOL).map(|_| runtime.execute(request(resumed_kind)))).await;
    for result in &parked {
        let suspension = result.as_ref().expect("runs").suspension.as_ref().expect("the warm-up suspends");
        runtime.resume(&suspension.id, suspension.calls[0].call_id, ExtOutcome::Ok(json!(0))).await.expect("resumes");
    }
    let before = wait_until_nothing_is_parked(&runtime).await;
    let rss_before = rss_bytes();

    let answered = run_mix(&runtime, 0..EXECUTIONS).await;
    assert_eq!(answered.len() as u64, EXECUTIONS, "every request answered");

    let after = wait_until_nothing_is_parked(&runtime).await;
    let kinds: Vec<Kind> = (0..EXECUTIONS).map(kind).collect();
    let of = |k: Kind| kinds.iter().filter(|&&x| x == k).count() as u64;
    let host_calls: u64 = answered.iter().map(|a| a.host_calls).sum();
    assert_eq!(
        delta(&before, &after),
        vec![
            ("success", of(Kind::Success) + of(Kind::Resumed)),
            ("error", of(Kind::Denied) + of(Kind::Timeout) + of(Kind::MemoryLimit)),
            ("suspended", of(Kind::Resumed) + of(Kind::Abandoned)),
            ("PERMISSION_DENIED", of(Kind::Denied)),
            ("TIMEOUT", of(Kind::Timeout)),
            ("MEMORY_LIMIT", of(Kind::MemoryLimit)),
            ("INTERNAL", 0),
            ("OVERLOADED", 0),
            ("denials", of(Kind::Denied)),
            ("host_calls", host_calls),
        ],
        "the metrics are exactly what was sent"
    );
    assert!(of(Kind::Abandoned) > 0 && of(Kind::Timeout) > 0 && of(Kind::MemoryLimit) > 0);

    // An expired suspension is gone for good, and answering it is refused.
    let abandoned = answered.iter().find(|a| kind(a.n) == Kind::Abandoned).expect("some were abandoned");
    let id = abandoned.suspension.as_ref().expect("it suspended");
    let late = runtime.resume(id, 1, ExtOutcome::Ok(json!(0))).await;
    assert_eq!(late.map_err(|e| e.code).err(), Some(ErrorCode::SuspensionNotFound));
    assert_eq!(after.pool.parked, 0);
    assert!(after.pool.pool_size <= POOL as u64);

    let rss_after = rss_bytes();
    eprintln!("resident memory: {} MiB after warm-up, {} MiB after the run", rss_before >> 20, rss_after >> 20);
    assert!(
        rss_after <= rss_before + (64 << 20),
        "memory came back near its level after warm-up: {} MiB before, {} MiB after",
        rss_before >> 20,
        rss_after >> 20
    );
    runtime.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_actors_crashed_mid_run_are_replaced_without_losing_requests() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const REQUESTS: u64 = 2_000;
    const CRASHES: usize = 2;
    let mut config = RuntimeConfig::default();
    config.pool_size = 8;
    config.workers = 2;
    config.queue_bound = 4 * IN_FLIGHT;
    let runtime = Runtime::start(config).expect("runtime starts");
    let crasher = runtime.supervisor().clone();

    let answered: Vec<(u64, ExecutionResult)> = futures::stream::iter(0..REQUESTS)
        .map(|n| {
            let runtime = runtime.clone();
            let crasher = crasher.clone();
            async move {
                if n % 100 == 0 {
                    // The next actors given work die with the request in their mailbox.
                    crasher.send(InjectCrashes(CRASHES)).await.expect("the supervisor runs");
                }
                let mut request = ExecutionRequest::source("return $args.n * 2;");
                request.args = json!({ "n": n });
                (n, runtime.execute(request).await.expect("runs"))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;

    assert_eq!(answered.len() as u64, REQUESTS);
    for (n, result) in &answered {
        assert_eq!(result.return_value, json!(n * 2), "request {n} was not lost: {:?}", result.error);
    }
    let stats = runtime.stats().await;
    assert_eq!(count(&stats.executions, Status::Success), REQUESTS);
    assert_eq!(count(&stats.executions, Status::Error), 0);
    assert!(stats.pool.pool_size <= 8, "dead actors were replaced, not added to: {:?}", stats.pool);
    // The pool still has its full strength: as many concurrent executions as before.
    let again = futures::future::join_all((0..16).map(|n| {
        let mut request = ExecutionRequest::source("return $args.n;");
        request.args = json!({ "n": n });
        runtime.execute(request)
    }))
    .await;
    assert!(again.iter().enumerate().all(|(n, r)| r.as_ref().is_ok_and(|r| r.return_value == json!(n))));
    runtime.shutdown(Duration::from_secs(1)).await;
}
