//! The epoch ticker: a thread that advances the engine's epoch every tick, so a store's
//! deadline (in ticks) interrupts wasm at its next loop header or function entry. Nothing
//! polls: the running code only compares a counter.

use std::time::Duration;

use wasmtime::{Engine, EngineWeak};

/// Starts the ticker; it stops by itself once the engine is dropped.
pub fn start(engine: &Engine, tick: Duration) {
    let engine: EngineWeak = engine.weak();
    std::thread::Builder::new()
        .name("nexus-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// The deadline, in ticks, for `budget` of running time (rounded up, at least one tick).
pub fn ticks(budget: Duration, tick: Duration) -> u64 {
    let tick = tick.as_nanos().max(1);
    (budget.as_nanos().div_ceil(tick) as u64).max(1)
}
