//! Host-side decoding of every MessagePack message that crosses the wasm boundary, and the
//! host state that consumes what decodes. The first byte picks the message, the rest is its
//! bytes, exactly as a (hostile) guest could put them in its memory.
//!
//! Guest → host: a state value or event payload (`serde_json::Value`), a `ViewCommandCall`,
//! an `ExtCall` (host functions), a `RunReport` or `CompileOutput` (entry-point replies).
//! Host → guest messages (`RunInput`, `ResumeInput`, `CompileInput`) are decoded too, since
//! the same decoder reads them in the guest.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use libfuzzer_sys::fuzz_target;
use nexus_abi::{
    CompileInput, CompileOutput, ExtCall, ResumeInput, RunInput, RunReport, Value, ViewCommandCall, decode, encode,
};
use nexus_host_fns::{Capability, Checker, HostState};

/// A message that decodes must encode and decode back to itself (the host re-encodes what
/// it keeps: state replies, records).
fn round_trips<T>(bytes: &[u8]) -> Option<T>
where
    T: serde::Serialize + for<'a> serde::Deserialize<'a> + PartialEq + std::fmt::Debug,
{
    let message: T = decode(bytes).ok()?;
    let again: T = decode(&encode(&message)).expect("what decoded re-encodes decodably");
    assert_eq!(again, message);
    Some(message)
}

fn host() -> HostState {
    let tokens = ["state:read:*", "state:write:*", "events:emit:*", "view:update:*", "ext:*"];
    let checker = Checker::new(tokens.iter().map(|t| t.parse::<Capability>().expect("valid")));
    let registry = BTreeMap::from([("weather".to_owned(), BTreeSet::from(["get".to_owned()]))]);
    HostState::new(Default::default(), checker, registry, 1 << 16)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let mut host = host();
    match selector % 8 {
        0 => {
            if let Some(value) = round_trips::<Value>(bytes) {
                if host.state_set("k", value.clone()).is_ok() {
                    let len = host.state_get("k").expect("just written");
                    let reply: Value = decode(&host.take_reply()[..len]).expect("the host's reply decodes");
                    assert_eq!(reply, value);
                }
                let _ = host.emit("e", value);
            }
        }
        1 => {
            if let Some(call) = round_trips::<ViewCommandCall>(bytes) {
                let _ = host.view_command(call);
            }
        }
        2 => {
            if let Some(call) = round_trips::<ExtCall>(bytes) {
                let registered = call.extension == "weather" && call.method == "get";
                match host.ext_call(call) {
                    Ok(id) => assert!(registered && id == 1),
                    Err(status) => assert!(!registered || status == nexus_abi::HostStatus::OutputLimit),
                }
            }
        }
        3 => {
            round_trips::<RunReport>(bytes);
        }
        4 => {
            round_trips::<CompileOutput>(bytes);
        }
        5 => {
            let _ = decode::<RunInput>(bytes);
        }
        6 => {
            let _ = decode::<ResumeInput>(bytes);
        }
        _ => {
            let _ = decode::<CompileInput>(bytes);
        }
    }
});
