//! A runtime nobody shuts down: dropping its last handle releases every thread it started.
//! In a test binary of its own, because it counts the process's threads.

use std::time::{Duration, Instant};

use nexus::{ExecutionRequest, Runtime, RuntimeConfig, Status};
use serde_json::json;

/// The process's thread count, from `/proc/self/status`.
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("a Threads: line")
}

/// Waits up to `within` for the thread count to come down to `at_most`; the count reached.
fn settle_to(at_most: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let now = threads();
        if now <= at_most || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn used_once(runtime: &Runtime) {
    let result = futures::executor::block_on(runtime.execute(ExecutionRequest::source("return 1 + 1;"))).expect("runs");
    assert_eq!(result.status, Status::Success, "{:?}", result.error);
    assert_eq!(result.return_value, json!(2));
}

/// The default runtime, on two worker threads.
fn two_workers() -> RuntimeConfig {
    let mut config = RuntimeConfig::default();
    config.workers = 2;
    config
}

/// The first runtime of the process may start process-wide threads that are not the runtimes'
/// to release (the compiler's thread pool, when the guest module is not in the disk cache yet):
/// every count is taken after one runtime came and went.
fn warm_up() {
    let start = threads();
    used_once(&Runtime::start(two_workers()).unwrap());
    settle_to(start, Duration::from_secs(5));
}

/// The tests of this binary count the process's threads: one at a time.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn twenty_runtimes_dropped_without_shutdown_leave_no_thread_behind() {
    let _alone = ALONE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    warm_up();
    let before = threads();

    let runtimes: Vec<Runtime> = (0..20).map(|_| Runtime::start(two_workers()).unwrap()).collect();
    for runtime in &runtimes {
        // A clone dropped here must not stop the runtime: only the last one does.
        used_once(&runtime.clone());
        used_once(runtime);
    }
    let running = threads();
    assert!(running >= before + 20 * 3, "each runtime runs threads: {before} before, {running} with 20 runtimes");

    drop(runtimes);
    let after = settle_to(before, Duration::from_secs(10));
    eprintln!("threads: {before} before, {running} with 20 runtimes, {after} after dropping them");
    assert!(after <= before, "{before} threads before, {running} with 20 runtimes, {after} after dropping them");
}

#[test]
fn a_runtime_in_the_callers_actix_system_stops_its_threads_when_dropped() {
    // Only this test of the binary counts threads while an actix system of its own runs.
    let _alone = ALONE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    warm_up();
    let system = actix::System::new();
    let start = threads();
    system.block_on(async {
        // Inside a system: the supervisor runs on this thread, the workers on threads of their own.
        let runtime = Runtime::start(two_workers()).unwrap();
        let result = runtime.execute(ExecutionRequest::source("return 1 + 1;")).await.expect("runs");
        assert_eq!(result.return_value, json!(2));
        let running = threads();
        assert!(running >= start + 2, "{start} threads before, {running} with the runtime");
        drop(runtime);
        // The supervisor stops (its `Stop` runs on this thread), and with it the workers.
        let deadline = Instant::now() + Duration::from_secs(10);
        while threads() > start && Instant::now() < deadline {
            actix::clock::sleep(Duration::from_millis(10)).await;
        }
        let after = threads();
        eprintln!(
            "threads: {start} before, {running} with a runtime in the caller's system, {after} after dropping it"
        );
        assert!(after <= start, "{start} threads before, {running} with the runtime, {after} after dropping it");
    });
}
