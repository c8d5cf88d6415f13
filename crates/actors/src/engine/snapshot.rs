//! Builds a snapshot with libraries: evaluates each library in an instance of the committed
//! guest, then writes that instance's state as a new module with Wizer (`wasmtime-wizer`).
//!
//! The instance runs the guest's compiled module (already compiled, usually cached), not the
//! module Wizer instruments: instrumenting only exports the mutable globals and the memory
//! under names of Wizer's own, which the snapshot reads here through the guest's own exports
//! of the same globals and memory. That saves compiling the guest a second time.
//!
//! While a library loads nothing of the host is reachable: every `nexus` import traps (the
//! guest's natives refuse before they get there, with the library's line), randomness traps,
//! the clock reads 0, and the other WASI functions are the sandbox's own (no capability).

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use nexus_abi::{GuestError, PreloadInput, PreloadOutput, exports};
use nexus_host_fns::{Checker, HostState};
use wasmparser::{ExternalKind, Parser, Payload};
use wasmtime::error::Context as _;
use wasmtime::{Caller, ExternType, Linker, Result, Trap, Val, format_err};
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

use super::disk_cache::DiskCache;
use super::instance::{EntryPoint, GuestInstance, MemoryLimit, StoreData};
use super::library::{Library, PreloadError};
use super::module::{GuestImage, guest_module};
use super::passive_data::without_unreachable_passive_data;
use super::ticker::Ticker;

/// How long one library may take to load: a library that never ends must not hang the start.
pub const LOAD_TIME_LIMIT: Duration = Duration::from_secs(30);

/// Memory the preloading instance may use (libraries included).
const LOAD_MEMORY: usize = 256 << 20;

/// A host import a library reached while it was preloaded.
#[derive(Debug, thiserror::Error)]
#[error("it reached the host ({0}) while it was preloaded: a library may not use the host at load")]
struct HostReached(String);

/// The guest `base` with `libraries` evaluated in order, as a new module.
pub fn build(
    engine: &wasmtime::Engine,
    base: &GuestImage,
    libraries: &[Library],
    disk: Option<&DiskCache>,
    ticker: &Ticker,
) -> Result<Vec<u8>> {
    let module = guest_module(engine, base, disk)?;
    let mut linker = Linker::<StoreData>::new(engine);
    nexus_host_fns::wasi::add_to_linker(&mut linker)?;
    linker.allow_shadowing(true);
    for import in module.imports() {
        if let ExternType::Func(ty) = import.ty() {
            if import.module() == "wasi_snapshot_preview1" && import.name() != "random_get" {
                continue;
            }
            let what = format!("{}.{}", import.module(), import.name());
            linker.func_new(
                import.module(),
                import.name(),
                ty,
                move |_, _, _| Err(HostReached(what.clone()).into()),
            )?;
        }
    }
    // A fixed time, so an image is the same whenever it is built.
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "clock_time_get",
        |mut caller: Caller<'_, StoreData>, _clock: i32, _precision: i64, out: i32| -> Result<i32> {
            let memory = caller.get_export("memory").and_then(|e| e.into_memory()).context("guest memory")?;
            memory.write(&mut caller, out as u32 as usize, &0u64.to_le_bytes())?;
            Ok(0)
        },
    )?;
    let pre = linker.instantiate_pre(&module).context("linking the guest for preloading")?;
    let host = HostState::new(Default::default(), Checker::default(), Default::default(), 0);
    let mut instance = GuestInstance::instantiate(&pre, host, MemoryLimit::new(LOAD_MEMORY, None), None)?;
    for library in libraries {
        load(&mut instance, library, ticker)?;
    }

    let mut wizer = Wizer::new();
    wizer.init_func(exports::PRELOAD);
    let (cx, instrumented) = wizer.instrument(base.wasm())?;
    let names = instrumented_names(base.wasm(), &instrumented).map_err(|e| format_err!("{e}"))?;
    let mut state = Snapshotted { instance, names };
    let snapshot = block_on(wizer.snapshot(&cx, &mut state)).context("snapshotting the preloaded guest")?;
    without_unreachable_passive_data(&snapshot)
}

fn load(instance: &mut GuestInstance, library: &Library, ticker: &Ticker) -> Result<()> {
    let deadline = Instant::now() + LOAD_TIME_LIMIT;
    instance.store.data_mut().deadline = deadline;
    instance.store.set_epoch_deadline(1);
    let watch = ticker.watch(deadline);
    let input = PreloadInput { name: library.name.clone(), source: library.source.clone() };
    let output = instance.call::<_, PreloadOutput>(EntryPoint::Preload, &input);
    drop(watch);
    let failed = |line, column, message| PreloadError { library: library.name.clone(), line, column, message };
    match output {
        Ok(PreloadOutput::Loaded) => Ok(()),
        Ok(PreloadOutput::Threw { error, reached }) => {
            let (line, column) = location(&error, &library.name).unzip();
            let message = reached.map_or_else(|| describe(&error), |reached| HostReached(reached).to_string());
            Err(failed(line, column.flatten(), message).into())
        }
        Err(trap) => {
            let message = if let Some(reached) = trap.downcast_ref::<HostReached>() {
                reached.to_string()
            } else if trap.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                format!("it did not finish loading within {} s", LOAD_TIME_LIMIT.as_secs())
            } else if instance.store.data().limits.refused {
                format!("it needs more than {} MiB of memory at load", LOAD_MEMORY >> 20)
            } else {
                format!("the sandbox failed: {trap:#}")
            };
            Err(failed(None, None, message).into())
        }
    }
}

fn describe(error: &GuestError) -> String {
    match error.name.as_str() {
        "" => error.message.clone(),
        name => format!("{name}: {}", error.message),
    }
}

/// The first stack frame in the library: `(line, column)`. Frames read `    at f (NAME:3:7)`
/// or `    at NAME:3:7`.
fn location(error: &GuestError, name: &str) -> Option<(u32, Option<u32>)> {
    error.stack.as_deref()?.lines().find_map(|frame| {
        let rest = &frame[super::errors::file_in_frame(frame, name)? + name.len() + 1..];
        let mut numbers = rest.split(|c: char| !c.is_ascii_digit());
        let line = numbers.next()?.parse().ok()?;
        Some((line, numbers.next().and_then(|c| c.parse().ok())))
    })
}

/// The export names Wizer's instrumentation adds (for every mutable global and memory), each
/// with the guest's own export of the same global or memory.
fn instrumented_names(original: &[u8], instrumented: &[u8]) -> Result<HashMap<String, String>, String> {
    let original = exports(original)?;
    let mut names = HashMap::new();
    for (name, item) in exports(instrumented)? {
        if original.contains_key(&name) {
            continue;
        }
        let own = original.iter().find(|(_, other)| **other == item).map(|(own, _)| own.clone());
        let own = own.ok_or_else(|| format!("the guest does not export the global or memory Wizer calls {name}"))?;
        names.insert(name, own);
    }
    Ok(names)
}

/// A module's exports of globals and memories: name → (kind, index).
fn exports(wasm: &[u8]) -> Result<HashMap<String, (bool, u32)>, String> {
    let mut found = HashMap::new();
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::ExportSection(exports) = payload.map_err(|e| format!("reading the guest module: {e}"))? {
            for export in exports {
                let export = export.map_err(|e| format!("reading the guest's exports: {e}"))?;
                match export.kind {
                    ExternalKind::Global => found.insert(export.name.into(), (true, export.index)),
                    ExternalKind::Memory => found.insert(export.name.into(), (false, export.index)),
                    _ => None,
                };
            }
        }
    }
    Ok(found)
}

/// The preloaded instance, as Wizer reads it (through the names it instrumented).
struct Snapshotted {
    instance: GuestInstance,
    names: HashMap<String, String>,
}

impl Snapshotted {
    fn own_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.names.get(name).map_or(name, String::as_str)
    }
}

impl InstanceState for Snapshotted {
    async fn global_get(&mut self, name: &str, _: ValType) -> SnapshotVal {
        let name = self.own_name(name).to_owned();
        // Wizer's contract: it only asks for the globals it instrumented, all of which exist.
        match self.instance.global(&name).expect("the guest exports every mutable global") {
            Val::I32(x) => SnapshotVal::I32(x),
            Val::I64(x) => SnapshotVal::I64(x),
            Val::F32(x) => SnapshotVal::F32(x),
            Val::F64(x) => SnapshotVal::F64(x),
            Val::V128(x) => SnapshotVal::V128(x.as_u128()),
            other => panic!("a mutable global holds {other:?}, which Wizer refuses to instrument"),
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        assert_eq!(self.own_name(name), "memory", "the guest has one memory");
        contents(self.instance.memory())
    }
}

/// Wizer's snapshot API is async, but this state answers synchronously: one poll suffices.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("snapshotting a synchronous instance never waits"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_is_the_first_frame_in_the_library() {
        let error = GuestError {
            stack: Some("    at f (prelude.js:3:1)\n    at g (lib/a.js:12:5)\n    at lib/a.js:40:1\n".into()),
            ..GuestError::default()
        };
        assert_eq!(location(&error, "lib/a.js"), Some((12, Some(5))));
        assert_eq!(location(&error, "b.js"), None);
    }

    #[test]
    fn a_snapshot_keeps_none_of_the_passive_data_segments_wizer_leaves() {
        let engine = wasmtime::Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        let ticker = Ticker::start(&engine);
        let library = Library::new("lib.js", "var answer = 42;");
        let wasm = build(&engine, &GuestImage::committed(), &[library], None, &ticker).unwrap();
        let (active, passive) = super::super::passive_data::data_segments(&wasm);
        assert!(active > 0, "the snapshot's memory is its active segments");
        assert_eq!(passive, 0);
    }

    #[test]
    fn every_name_wizer_instruments_is_one_the_guest_exports() {
        let guest = super::super::module::GUEST_WASM;
        let (_, instrumented) = Wizer::new().instrument(guest).unwrap();
        let names = instrumented_names(guest, &instrumented).unwrap();
        assert!(names.values().any(|own| own == "memory"), "{names:?}");
        assert!(names.values().any(|own| own == "__stack_pointer"), "{names:?}");
    }
}
