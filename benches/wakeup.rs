//! The floor under any cross-thread request path on this machine: one round trip between two
//! threads over channels (two wake-ups), each thread blocking while it waits, as the runtime's
//! caller, supervisor and workers do. Run pinned to one CPU and unpinned to see what waking a
//! thread on the other (idle) vCPU costs:
//!
//! ```sh
//! cargo bench --bench wakeup                  # threads on both CPUs
//! taskset -c 0 cargo bench --bench wakeup     # both threads on CPU 0
//! ```

use std::sync::mpsc::channel;
use std::time::Instant;

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo test --benches` lists benchmarks: there is nothing to list.
    }
    let (to_echo, requests) = channel::<u64>();
    let (to_caller, replies) = channel::<u64>();
    std::thread::spawn(move || {
        for request in requests {
            if to_caller.send(request).is_err() {
                break;
            }
        }
    });
    const ROUNDS: usize = 20_000;
    let mut nanos: Vec<u64> = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS as u64 {
        let start = Instant::now();
        to_echo.send(round).expect("the echo thread runs");
        replies.recv().expect("the echo thread answers");
        nanos.push(start.elapsed().as_nanos() as u64);
    }
    nanos.sort_unstable();
    let micros = |q: usize| nanos[(ROUNDS * q / 100).min(ROUNDS - 1)] as f64 / 1000.0;
    println!("thread round trip (2 wake-ups): p50 {:.1} µs, p99 {:.1} µs over {ROUNDS} rounds", micros(50), micros(99));
}
