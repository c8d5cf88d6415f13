//! The host side of one execution: the panel state, the granted capabilities, the extension
//! registry, and everything the handler produced. Every operation the guest can ask for is a
//! method here that checks the capability first and records what happened; the wasm wiring in
//! [`crate::imports`] only moves bytes.

use std::collections::{BTreeMap, BTreeSet};

use nexus_abi::{ExtCall, HostStatus, LogLevel, ViewCommandCall};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::capability::Kind;
use crate::checker::Checker;
use crate::records::{Denial, Event, LogLine, PendingCall, Records, StateMutation, ViewCommand};

/// `{ extension: [methods] }`: the extension calls the application can perform.
pub type ExtensionRegistry = BTreeMap<String, BTreeSet<String>>;

/// The result of a host operation as the guest sees it.
pub type HostResult<T> = Result<T, HostStatus>;

/// Per-execution host state, owned by the execution's wasmtime `Store`. It serializes whole,
/// so a suspended execution can be kept as data (a suspension image) and restored.
#[derive(Debug, Serialize, Deserialize)]
pub struct HostState {
    state: Map<String, Value>,
    checker: Checker,
    registry: ExtensionRegistry,
    records: Records,
    pending: Vec<PendingCall>,
    next_call_id: u32,
    /// Bytes the handler may still make the host keep (records, pending calls, replies).
    output_budget: usize,
    output_exhausted: bool,
    host_calls: u64,
    /// The data of the last answer, until the guest copies it out.
    #[serde(with = "serde_bytes")]
    reply: Vec<u8>,
    /// What the guest wrote to stdout/stderr (panic messages), bounded.
    guest_output: String,
}

const GUEST_OUTPUT_LIMIT: usize = 4096;

impl HostState {
    pub fn new(state: Map<String, Value>, checker: Checker, registry: ExtensionRegistry, output_budget: usize) -> Self {
        HostState {
            state,
            checker,
            registry,
            records: Records::default(),
            pending: Vec::new(),
            next_call_id: 1,
            output_budget,
            output_exhausted: false,
            host_calls: 0,
            reply: Vec::new(),
            guest_output: String::new(),
        }
    }

    fn deny(&mut self, kind: Kind, name: &str, operation: &str) -> HostStatus {
        let denial = Denial { capability: format!("{}{name}", kind.prefix()), operation: operation.to_owned() };
        // Denials spend the output budget too: a handler looping on denied accesses must not
        // grow the host without bound.
        if self.spend(denial.capability.len() + denial.operation.len()).is_ok() {
            self.records.denials.push(denial);
        }
        HostStatus::Denied
    }

    fn check(&mut self, kind: Kind, name: &str, operation: &str) -> HostResult<()> {
        self.host_calls += 1;
        if self.checker.allows(kind, name) { Ok(()) } else { Err(self.deny(kind, name, operation)) }
    }

    fn spend(&mut self, bytes: usize) -> HostResult<()> {
        match self.output_budget.checked_sub(bytes) {
            Some(left) => {
                self.output_budget = left;
                Ok(())
            }
            None => {
                self.output_exhausted = true;
                Err(HostStatus::OutputLimit)
            }
        }
    }

    fn answer(&mut self, value: &Value) -> HostResult<usize> {
        self.reply = nexus_abi::encode(value);
        Ok(self.reply.len())
    }

    /// `$state[key]`: the value, or [`HostStatus::Absent`].
    pub fn state_get(&mut self, key: &str) -> HostResult<usize> {
        self.check(Kind::StateRead, key, "state.get")?;
        match self.state.get(key) {
            Some(value) => {
                self.reply = nexus_abi::encode(value);
                Ok(self.reply.len())
            }
            None => Err(HostStatus::Absent),
        }
    }

    pub fn state_set(&mut self, key: &str, value: Value) -> HostResult<()> {
        self.check(Kind::StateWrite, key, "state.set")?;
        self.spend(key.len() + estimate(&value))?;
        self.state.insert(key.to_owned(), value.clone());
        self.records.state_mutations.push(StateMutation::Set { key: key.to_owned(), value });
        Ok(())
    }

    pub fn state_delete(&mut self, key: &str) -> HostResult<()> {
        self.check(Kind::StateWrite, key, "state.delete")?;
        self.spend(key.len())?;
        // Keeps the state's order (a plain remove would move the last key into the gap).
        self.state.shift_remove(key);
        self.records.state_mutations.push(StateMutation::Delete { key: key.to_owned() });
        Ok(())
    }

    pub fn state_has(&mut self, key: &str) -> HostResult<bool> {
        self.check(Kind::StateRead, key, "state.has")?;
        Ok(self.state.contains_key(key))
    }

    /// The present keys the handler may read, in the state's order (never a denial:
    /// unreadable keys are simply not listed).
    pub fn state_keys(&mut self) -> HostResult<usize> {
        self.host_calls += 1;
        let keys = self
            .state
            .keys()
            .filter(|key| self.checker.allows(Kind::StateRead, key))
            .map(|key| Value::String(key.clone()))
            .collect();
        self.answer(&Value::Array(keys))
    }

    pub fn emit(&mut self, name: &str, payload: Value) -> HostResult<()> {
        self.check(Kind::EventsEmit, name, "events.emit")?;
        self.spend(name.len() + estimate(&payload))?;
        self.records.events.push(Event { name: name.to_owned(), payload });
        Ok(())
    }

    pub fn view_command(&mut self, call: ViewCommandCall) -> HostResult<()> {
        let operation = if call.kind == "update" { "view.update" } else { "view.command" };
        self.check(Kind::ViewUpdate, &call.component_id, operation)?;
        self.spend(call.kind.len() + call.component_id.len() + estimate(&call.args))?;
        self.records.view_commands.push(ViewCommand {
            kind: call.kind,
            component_id: call.component_id,
            args: call.args,
        });
        Ok(())
    }

    /// Records an extension call; returns its call id.
    pub fn ext_call(&mut self, call: ExtCall) -> HostResult<u32> {
        self.check(Kind::Ext, &call.extension, "ext.call")?;
        let registered = self.registry.get(&call.extension).is_some_and(|methods| methods.contains(&call.method));
        if !registered {
            return Err(HostStatus::UnknownExtension);
        }
        self.spend(call.extension.len() + call.method.len() + call.args.iter().map(estimate).sum::<usize>())?;
        let call_id = self.next_call_id;
        self.next_call_id += 1;
        self.pending.push(PendingCall { call_id, extension: call.extension, method: call.method, args: call.args });
        Ok(call_id)
    }

    pub fn log(&mut self, level: LogLevel, message: String) -> HostResult<()> {
        self.host_calls += 1;
        self.spend(message.len())?;
        self.records.logs.push(LogLine { level, message });
        Ok(())
    }

    /// Hands the pending reply to the guest.
    pub fn take_reply(&mut self) -> Vec<u8> {
        self.host_calls += 1;
        std::mem::take(&mut self.reply)
    }

    pub fn guest_wrote(&mut self, bytes: &[u8]) {
        let room = GUEST_OUTPUT_LIMIT.saturating_sub(self.guest_output.len());
        self.guest_output.push_str(&String::from_utf8_lossy(&bytes[..bytes.len().min(room)]));
    }

    /// Takes the records made since the last call (the start or the last result).
    pub fn take_records(&mut self) -> Records {
        std::mem::take(&mut self.records)
    }

    /// The extension calls not yet settled.
    pub fn pending_calls(&self) -> &[PendingCall] {
        &self.pending
    }

    /// Marks a pending call settled; false if no such call is pending.
    pub fn settle_call(&mut self, call_id: u32) -> bool {
        let before = self.pending.len();
        self.pending.retain(|call| call.call_id != call_id);
        self.pending.len() != before
    }

    pub fn host_calls(&self) -> u64 {
        self.host_calls
    }

    pub fn output_exhausted(&self) -> bool {
        self.output_exhausted
    }

    pub fn guest_output(&self) -> &str {
        &self.guest_output
    }
}

/// Roughly the bytes a value occupies once kept (its JSON length, without formatting it).
fn estimate(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 16,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|v| estimate(v) + 1).sum::<usize>(),
        Value::Object(map) => 2 + map.iter().map(|(k, v)| k.len() + 4 + estimate(v)).sum::<usize>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::Capability;
    use serde_json::json;

    fn host(tokens: &[&str], state: Value) -> HostState {
        let checker = Checker::new(tokens.iter().map(|t| t.parse::<Capability>().unwrap()));
        let Value::Object(state) = state else { panic!("state must be an object") };
        let registry = ExtensionRegistry::from([("weather".to_owned(), BTreeSet::from(["get".to_owned()]))]);
        HostState::new(state, checker, registry, 1 << 20)
    }

    #[test]
    fn denied_read_is_recorded_and_refused() {
        let mut host = host(&[], json!({"secret": 1}));
        assert_eq!(host.state_get("secret"), Err(HostStatus::Denied));
        assert_eq!(
            host.take_records().denials,
            vec![Denial { capability: "state:read:secret".into(), operation: "state.get".into() }]
        );
    }

    #[test]
    fn later_reads_see_writes() {
        let mut host = host(&["state:read:n", "state:write:n"], json!({"n": 1}));
        host.state_set("n", json!(2)).unwrap();
        let len = host.state_get("n").unwrap();
        let value: Value = nexus_abi::decode(&host.take_reply()[..len]).unwrap();
        assert_eq!(value, json!(2));
    }

    #[test]
    fn keys_lists_only_readable_present_keys() {
        let mut host = host(
            &["state:read:c", "state:read:a", "state:read:missing", "state:write:b"],
            json!({"c": 0, "a": 1, "b": 2}),
        );
        host.state_keys().unwrap();
        let keys: Value = nexus_abi::decode(&host.take_reply()).unwrap();
        assert_eq!(keys, json!(["c", "a"]), "readable keys in the state's order");
    }

    #[test]
    fn extension_needs_capability_then_registration() {
        let mut host = host(&["ext:weather", "ext:maps"], json!({}));
        let call = |extension: &str, method: &str| ExtCall {
            extension: extension.into(),
            method: method.into(),
            args: vec![],
        };
        assert_eq!(host.ext_call(call("weather", "get")), Ok(1));
        assert_eq!(host.ext_call(call("weather", "set")), Err(HostStatus::UnknownExtension));
        assert_eq!(host.ext_call(call("maps", "get")), Err(HostStatus::UnknownExtension));
        assert_eq!(host.ext_call(call("mail", "send")), Err(HostStatus::Denied));
        assert_eq!(host.pending_calls().len(), 1);
        assert!(host.settle_call(1));
        assert!(!host.settle_call(1));
    }

    #[test]
    fn output_budget_stops_unbounded_recording() {
        let checker = Checker::new(["events:emit:e".parse::<Capability>().unwrap()]);
        let mut host = HostState::new(Map::new(), checker, ExtensionRegistry::new(), 100);
        let mut emitted = 0;
        while host.emit("e", json!("x".repeat(10))).is_ok() {
            emitted += 1;
        }
        assert!(emitted > 0 && emitted < 10);
        assert!(host.output_exhausted());
    }
}
