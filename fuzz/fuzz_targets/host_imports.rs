//! The import boundary as a hostile guest sees it: a wasm module that imports every host
//! function the real guest links against (module `nexus` and the `wasi_snapshot_preview1`
//! subset), fills its memory with the input's bytes, and calls the imports in the order and
//! with the pointers, lengths and levels the input chooses.
//!
//! What must hold: no import panics or aborts the host (a bad pointer, length or message is a
//! trap, and the store stays usable after it); every `nexus` import returns a status the ABI
//! defines or a length/id; a reply can be taken once, at the length announced; and however the
//! calls go, what the host keeps for the execution (as the JSON it hands the application,
//! escaping included) stays within the execution's output budget.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nexus_abi::HostStatus;
use nexus_host_fns::records::{PendingCall, Records};
use nexus_host_fns::{Capability, Checker, HostAccess, HostState};
use wasmtime::{Engine, InstancePre, Linker, Memory, Module, Store, Val};

/// The output budget of every fuzzed execution: small, so the inputs can exhaust it.
const BUDGET: usize = 4096;
/// Pages of guest memory (64 KiB each); it may not grow.
const PAGES: u32 = 1;
/// Calls made per input at most.
const CALLS: usize = 64;

/// Every import of the real guest: module, name, parameter types, whether it returns an i32.
const IMPORTS: &[(&str, &str, &[&str], bool)] = &[
    ("nexus", "state_get", &["i32", "i32"], true),
    ("nexus", "state_set", &["i32", "i32", "i32", "i32"], true),
    ("nexus", "state_delete", &["i32", "i32"], true),
    ("nexus", "state_has", &["i32", "i32"], true),
    ("nexus", "state_keys", &[], true),
    ("nexus", "emit", &["i32", "i32", "i32", "i32"], true),
    ("nexus", "view_command", &["i32", "i32"], true),
    ("nexus", "ext_call", &["i32", "i32"], true),
    ("nexus", "log", &["i32", "i32", "i32"], true),
    ("nexus", "reply_take", &["i32"], true),
    ("wasi_snapshot_preview1", "clock_time_get", &["i32", "i64", "i32"], true),
    ("wasi_snapshot_preview1", "random_get", &["i32", "i32"], true),
    ("wasi_snapshot_preview1", "environ_sizes_get", &["i32", "i32"], true),
    ("wasi_snapshot_preview1", "environ_get", &["i32", "i32"], true),
    ("wasi_snapshot_preview1", "fd_close", &["i32"], true),
    ("wasi_snapshot_preview1", "fd_fdstat_get", &["i32", "i32"], true),
    ("wasi_snapshot_preview1", "fd_seek", &["i32", "i64", "i32", "i32"], true),
    ("wasi_snapshot_preview1", "fd_write", &["i32", "i32", "i32", "i32"], true),
    ("wasi_snapshot_preview1", "proc_exit", &["i32"], false),
];

struct Data {
    host: HostState,
    memory: Option<Memory>,
}

impl HostAccess for Data {
    fn host(&mut self) -> &mut HostState {
        &mut self.host
    }

    fn memory(&self) -> Memory {
        self.memory.expect("set right after instantiation")
    }
}

/// The hostile guest: each import re-exported through a wasm function of the same name, so
/// every call comes from wasm code, as the real guest's do.
fn guest_wat() -> String {
    let mut wat = String::from("(module\n");
    for (i, (module, name, params, result)) in IMPORTS.iter().enumerate() {
        let result = if *result { "(result i32)" } else { "" };
        wat += &format!("  (import \"{module}\" \"{name}\" (func $i{i} (param {}) {result}))\n", params.join(" "));
    }
    wat += &format!("  (memory (export \"memory\") {PAGES} {PAGES})\n");
    for (i, (_, name, params, result)) in IMPORTS.iter().enumerate() {
        let result = if *result { "(result i32)" } else { "" };
        let gets: String = (0..params.len()).map(|p| format!("local.get {p} ")).collect();
        wat += &format!("  (func (export \"{name}\") (param {}) {result} {gets}call $i{i})\n", params.join(" "));
    }
    wat + ")\n"
}

fn linked() -> &'static InstancePre<Data> {
    static PRE: OnceLock<InstancePre<Data>> = OnceLock::new();
    PRE.get_or_init(|| {
        let engine = Engine::default();
        let wasm = wat::parse_str(guest_wat()).expect("the hostile guest parses");
        let module = Module::new(&engine, wasm).expect("the hostile guest compiles");
        let mut linker = Linker::new(&engine);
        nexus_host_fns::imports::add_to_linker(&mut linker).expect("nexus imports link");
        nexus_host_fns::wasi::add_to_linker(&mut linker).expect("wasi imports link");
        linker.instantiate_pre(&module).expect("every import is provided")
    })
}

fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    serde_json::to_vec(value).expect("records serialize").len()
}

fn host() -> HostState {
    let tokens = ["state:read:a", "state:write:a", "state:write:*", "events:emit:*", "view:update:v", "ext:weather"];
    let checker = Checker::new(tokens.iter().map(|t| t.parse::<Capability>().expect("valid")));
    let registry = BTreeMap::from([("weather".to_owned(), BTreeSet::from(["get".to_owned()]))]);
    let serde_json::Value::Object(state) = serde_json::json!({"a": [1, "two", {"three": 3.5}], "b": "unreadable"})
    else {
        unreachable!("an object literal")
    };
    HostState::new(state, checker, registry, BUDGET)
}

/// Reads little-endian words off the front of the input; zero once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&first, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        first
    }

    /// A pointer, length or level: mostly small values that land in memory, sometimes any i32.
    fn word(&mut self) -> i32 {
        match self.u8() % 4 {
            0 => i32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()]),
            1 => i32::from(self.u8()),
            _ => i32::from(u16::from_le_bytes([self.u8(), self.u8()])),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The input: a length, that many bytes of guest memory, then the calls.
    let mut input = Input(data);
    let memory_len = usize::from(u16::from_le_bytes([input.u8(), input.u8()])).min(input.0.len());
    let (contents, calls) = input.0.split_at(memory_len);
    let mut input = Input(calls);

    let pre = linked();
    let mut store = Store::new(pre.module().engine(), Data { host: host(), memory: None });
    let instance = pre.instantiate(&mut store).expect("the hostile guest instantiates");
    let memory = instance.get_memory(&mut store, "memory").expect("exported");
    store.data_mut().memory = Some(memory);
    memory.write(&mut store, 0, contents).expect("at most 64 KiB fit in one page");

    // The length of the reply the host announced and the guest has not taken yet.
    let mut announced: Option<i32> = None;
    for _ in 0..CALLS {
        if input.0.is_empty() {
            break;
        }
        let (_, name, params, returns) = IMPORTS[usize::from(input.u8()) % IMPORTS.len()];
        let args: Vec<Val> = params
            .iter()
            .map(|ty| if *ty == "i64" { Val::I64(input.word().into()) } else { Val::I32(input.word()) })
            .collect();
        let func = instance.get_func(&mut store, name).expect("exported");
        let mut results = vec![Val::I32(0); usize::from(returns)];
        if func.call(&mut store, &args, &mut results).is_err() {
            // A trap: the guest's bad pointer, length or message. The store stays usable; a
            // reply the trapping call took is gone.
            if name == "reply_take" {
                announced = None;
            }
            continue;
        }
        let Some(returned) = results.first().and_then(Val::i32) else { continue };
        match name {
            "state_get" | "state_keys" if returned >= 0 => announced = Some(returned),
            "reply_take" => {
                assert_eq!(returned, announced.take().unwrap_or(0), "a reply is taken once, at its announced length");
            }
            "state_get" | "state_set" | "state_delete" | "state_has" | "emit" | "view_command" | "ext_call"
            | "log" => {
                assert!(returned >= 0 || HostStatus::from_code(returned).is_some(), "{name} returned {returned}");
            }
            _ => {}
        }
    }
    // The budget bounds what the host keeps: what it hands the application, as JSON with its
    // escapes, never exceeds it (beyond the empty lists every result has).
    let host = &mut store.data_mut().host;
    let pending = json_len(host.pending_calls());
    let records = json_len(&host.take_records());
    let empty = json_len(&Records::default()) + json_len::<[PendingCall]>(&[]);
    assert!(
        records + pending <= BUDGET + empty,
        "the host keeps {records} + {pending} bytes of JSON on a budget of {BUDGET}"
    );
});
