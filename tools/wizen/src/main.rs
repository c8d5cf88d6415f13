//! Pre-initializes the Nexus guest with Wizer: runs its `wizer-initialize` export (QuickJS
//! runtime, context and prelude) and writes a module whose memory starts in that state.
//!
//! Usage: `nexus-wizen RAW.wasm OUT.wasm` (run by `scripts/build-guest.sh`).
//!
//! The snapshot must be reproducible (CI rebuilds it and compares), so initialization sees a
//! clock stuck at zero and zeroed "random" bytes; the guest re-seeds `Math.random` from real
//! host randomness at every execution. Every other import traps: initialization must not
//! reach the host.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wasmtime::error::Context as _;
use wasmtime::{Caller, Engine, Instance, Linker, Module, Store, Val};
use wasmtime::{Result, bail};
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        bail!("usage: nexus-wizen RAW.wasm OUT.wasm");
    };
    let raw = std::fs::read(input).with_context(|| format!("reading {input}"))?;
    let snapshot = wizen(&raw)?;
    std::fs::write(output, snapshot).with_context(|| format!("writing {output}"))?;
    Ok(())
}

fn wizen(raw: &[u8]) -> Result<Vec<u8>> {
    let wizer = Wizer::new();
    let (cx, instrumented) = wizer.instrument(raw)?;

    let engine = Engine::default();
    let module = Module::new(&engine, &instrumented)?;
    let mut linker = Linker::new(&engine);
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "clock_time_get",
        |mut caller: Caller<'_, ()>, _id: i32, _precision: i64, out: i32| -> i32 {
            write(&mut caller, out, &0u64.to_le_bytes());
            0
        },
    )?;
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "random_get",
        |mut caller: Caller<'_, ()>, buf: i32, len: i32| -> i32 {
            write(&mut caller, buf, &vec![0; len as usize]);
            0
        },
    )?;
    linker.define_unknown_imports_as_traps(&module)?;

    let mut store = Store::new(&engine, ());
    let instance = linker.instantiate(&mut store, &module)?;
    instance
        .get_typed_func::<(), ()>(&mut store, nexus_abi::exports::INITIALIZE)?
        .call(&mut store, ())
        .context("running the guest's initialization")?;
    let mut state = Snapshotted { store, instance };
    block_on(wizer.snapshot(&cx, &mut state))
}

fn write(caller: &mut Caller<'_, ()>, at: i32, bytes: &[u8]) {
    let memory = caller.get_export("memory").and_then(|e| e.into_memory()).expect("guest exports memory");
    memory.write(caller, at as u32 as usize, bytes).expect("in-bounds write");
}

struct Snapshotted {
    store: Store<()>,
    instance: Instance,
}

impl InstanceState for Snapshotted {
    async fn global_get(&mut self, name: &str, _: ValType) -> SnapshotVal {
        let global = self.instance.get_global(&mut self.store, name).expect("exported global");
        match global.get(&mut self.store) {
            Val::I32(x) => SnapshotVal::I32(x),
            Val::I64(x) => SnapshotVal::I64(x),
            Val::F32(x) => SnapshotVal::F32(x),
            Val::F64(x) => SnapshotVal::F64(x),
            Val::V128(x) => SnapshotVal::V128(x.as_u128()),
            other => panic!("unsupported global value {other:?}"),
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        let memory = self.instance.get_memory(&mut self.store, name).expect("exported memory");
        contents(memory.data(&self.store))
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
