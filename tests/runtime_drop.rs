//! A runtime nobody shuts down: dropping its last handle releases every thread it started.
//! Alone in its test binary, because it counts the process's threads.

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
    let result = futures::executor::block_on(runtime.execute(ExecutionRequest::source("return 1 + 1;")));
    assert_eq!(result.status, Status::Success, "{:?}", result.error);
    assert_eq!(result.return_value, json!(2));
}

#[test]
fn twenty_runtimes_dropped_without_shutdown_leave_no_thread_behind() {
    let config = || RuntimeConfig { workers: 2, ..RuntimeConfig::default() };
    // The first runtime of the process could start process-wide threads (none today): they
    // are not the runtimes' to release, so the count is taken after one came and went.
    let start = threads();
    used_once(&Runtime::start(config()).unwrap());
    settle_to(start, Duration::from_secs(5));
    let before = threads();

    let runtimes: Vec<Runtime> = (0..20).map(|_| Runtime::start(config()).unwrap()).collect();
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
