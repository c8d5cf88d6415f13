//! Times the two ways of resetting the slots of a snapshot with libraries, at start, so that
//! the engine keeps the faster one ([`super::LibrarySlotReset::Fastest`]).
//!
//! Which one wins depends on the machine, not on a guess: the page-by-page reset costs two
//! page-table scans, a copy of the pages written and the faults or `MADV_POPULATE_WRITE` that
//! lift their write-protection; the whole-slot reset one copy of ~3 MiB. A lodash `return 1`
//! and its reset took 77 µs page by page and 168 µs whole on an Intel Xeon VM, and 190 µs page
//! by page and 86 µs whole on an AMD EPYC VM of the same size (2 vCPUs, Linux 6.18, both).

use std::time::{Duration, Instant};

use super::{Engine, ExecutionRequest, Handler, SlotReset, Status};

/// Executions (and resets) of each engine before the timed ones: the first execution in a
/// slot registers and copies the slot whole, and a slot learns which pages it keeps writing.
const WARM_UP: usize = 8;
/// Timed executions of each engine, alternated so that a burst of load falls on both.
const TIMED: usize = 24;

/// The median time of an execution and its slot's reset on each engine, and the faster mode.
pub struct Timed {
    pub written_pages: Duration,
    pub whole_slot: Duration,
    pub faster: SlotReset,
}

/// Times `return 1` and its reset on `written_pages`, an engine whose slots are reset page by
/// page, and on `whole_slot`, one whose slots are copied back whole, both of the same image.
/// An engine that cannot run it is the slower one.
pub fn faster(written_pages: &Engine, whole_slot: &Engine) -> Timed {
    let time = |engine: &Engine, bytecode: &[u8]| {
        let request = ExecutionRequest { handler: Handler::Bytecode(bytecode.to_vec()), ..Default::default() };
        let started = Instant::now();
        let outcome = engine.execute(request);
        let succeeded = outcome.result.status == Status::Success;
        // Dropping the outcome resets the slot.
        drop(outcome);
        if succeeded { started.elapsed() } else { Duration::MAX }
    };
    let bytecode = |engine: &Engine| engine.precompile("return 1").unwrap_or_default();
    let (tracked, whole) = (bytecode(written_pages), bytecode(whole_slot));
    let mut times = (Vec::with_capacity(TIMED), Vec::with_capacity(TIMED));
    for round in 0..WARM_UP + TIMED {
        let (a, b) = (time(written_pages, &tracked), time(whole_slot, &whole));
        if round >= WARM_UP {
            times.0.push(a);
            times.1.push(b);
        }
    }
    let (written_pages, whole_slot) = (median(times.0), median(times.1));
    let faster = if written_pages < whole_slot { SlotReset::WrittenPages } else { SlotReset::WholeSlot };
    Timed { written_pages, whole_slot, faster }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineConfig, Library, LibrarySlotReset};

    fn engine(reset: LibrarySlotReset) -> Engine {
        let library = Library::new("lib.js", "var lib = { items: Array.from({length: 20000}, (_, i) => ({i})) };");
        let config = EngineConfig {
            module_cache_dir: None,
            libraries: vec![library],
            library_slot_reset: reset,
            ..EngineConfig::default()
        };
        Engine::with_slots(config, 2).unwrap()
    }

    #[test]
    fn the_faster_mode_is_the_one_with_the_lower_median() {
        let whole = engine(LibrarySlotReset::WholeSlot);
        assert_eq!(whole.slot_reset(), SlotReset::WholeSlot);
        // Against itself, either may win; the figures must be real times either way.
        let timed = faster(&whole, &whole);
        assert!(timed.written_pages > Duration::ZERO && timed.written_pages < Duration::from_secs(1));
        assert_eq!(timed.faster == SlotReset::WrittenPages, timed.written_pages < timed.whole_slot);
    }

    #[test]
    fn an_engine_that_cannot_run_the_timing_handler_loses() {
        let whole = engine(LibrarySlotReset::WholeSlot);
        let mut broken = whole.clone();
        // A memory limit below the snapshot refuses every execution.
        broken.config.default_memory_limit = 0;
        let timed = faster(&broken, &whole);
        assert_eq!((timed.written_pages, timed.faster), (Duration::MAX, SlotReset::WholeSlot));
        assert_eq!(faster(&whole, &broken).faster, SlotReset::WrittenPages);
    }

    #[test]
    fn the_fastest_engine_resets_its_slots_in_one_of_the_two_ways_and_serves() {
        let fastest = engine(LibrarySlotReset::Fastest);
        assert_ne!(fastest.slot_reset(), SlotReset::PageTableScan);
        assert_eq!(fastest.memory_reset.is_some(), fastest.slot_reset() == SlotReset::WrittenPages);
        let outcome = fastest.execute(ExecutionRequest::source("return lib.items.length"));
        assert_eq!(outcome.result.return_value, serde_json::json!(20000));
    }
}
