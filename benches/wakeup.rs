//! The floor under any cross-thread request path on this machine: one round trip between two
//! threads over channels (two wake-ups), first with each thread blocking while it waits, then
//! with each spinning up to 100 µs before it blocks ([`nexus::spin`], what the runtime's threads
//! do). Run pinned to one CPU and unpinned to see what waking a thread on the other (idle) vCPU
//! costs:
//!
//! ```sh
//! cargo bench --bench wakeup                  # threads on both CPUs
//! taskset -c 0 cargo bench --bench wakeup     # both threads on CPU 0
//! ```

use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use nexus::spin::{self, Doorbell};

/// Receives, spinning up to `budget` on this thread's doorbell first.
fn receive(from: &Receiver<u64>, budget: Duration) -> Option<u64> {
    if let Ok(value) = from.try_recv() {
        return Some(value);
    }
    spin::before_park(budget);
    let value = from.recv().ok();
    spin::after_unpark();
    value
}

fn round_trips(budget: Duration) {
    let (to_echo, requests) = channel::<u64>();
    let (to_caller, replies) = channel::<u64>();
    let caller_bell = spin::current();
    let (bells, echo_bell) = channel::<Doorbell>();
    let echo = std::thread::spawn(move || {
        bells.send(spin::current()).expect("the caller waits for the bell");
        while let Some(request) = receive(&requests, budget) {
            if to_caller.send(request).is_err() {
                break;
            }
            caller_bell.ring();
        }
    });
    let echo_bell = echo_bell.recv().expect("the echo thread starts");
    const ROUNDS: usize = 20_000;
    let mut nanos: Vec<u64> = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS as u64 {
        let start = Instant::now();
        to_echo.send(round).expect("the echo thread runs");
        echo_bell.ring();
        receive(&replies, budget).expect("the echo thread answers");
        nanos.push(start.elapsed().as_nanos() as u64);
    }
    drop(to_echo);
    echo.join().expect("the echo thread ends");
    nanos.sort_unstable();
    let micros = |q: usize| nanos[(ROUNDS * q / 100).min(ROUNDS - 1)] as f64 / 1000.0;
    println!(
        "thread round trip (2 wake-ups), spinning {:>3} µs before blocking: p50 {:.1} µs, p99 {:.1} µs over {ROUNDS} rounds",
        budget.as_micros(),
        micros(50),
        micros(99)
    );
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo test --benches` lists benchmarks: there is nothing to list.
    }
    round_trips(Duration::ZERO);
    round_trips(Duration::from_micros(100));
}
