//! The host side of one execution: the panel state, the granted capabilities, the extension
//! registry, and everything the handler produced. Every operation the guest can ask for is a
//! method here that checks the capability first and records what happened; the wasm wiring in
//! [`crate::imports`] only moves bytes.

use std::collections::{BTreeMap, BTreeSet};

use nexus_abi::{ExtCall, HostStatus, LogLevel, RunOutput, ViewCommandCall};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::capability::Kind;
use crate::checker::Checker;
use crate::message_values::count_values;
use crate::records::{Denial, Event, LogLine, PendingCall, Records, StateMutation, ViewCommand};

/// `{ extension: [methods] }`: the extension calls the application can perform.
pub type ExtensionRegistry = BTreeMap<String, BTreeSet<String>>;

/// The result of a host operation as the guest sees it.
pub type HostResult<T> = Result<T, HostStatus>;

/// At most this many extension calls may be pending at once in one execution; the call past it
/// ends the execution. Every suspended result lists every call still pending and a resume
/// settles one, so `n` calls pending together cost the application `n²/2` listed calls: the
/// bound keeps that below what the handler's own time limit allows it to cost otherwise.
pub const MAX_PENDING_CALLS: usize = 1_000;

/// The suspended results of one execution may list, in all, this many times its output limit of
/// pending calls (each at its [cost](record_cost)); past it the execution ends as `MEMORY_LIMIT`.
/// [`MAX_PENDING_CALLS`] bounds how many calls are listed, not how large they are: 1,000 calls of
/// 15 KB each pending together fit the output limit, and listing them again in each of the
/// 1,000 results that settle them made the application convert ~8 GB (33 s of a Node process,
/// for a handler with a 1 s limit). 1,000 small calls list ~115 MB in all, within the default
/// 256 MiB.
pub const LISTED_PER_OUTPUT_LIMIT: usize = 16;

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
    /// Bytes the handler may still make the host keep (records, pending calls, and what it
    /// returns or throws, each charged its [cost](record_cost)).
    output_budget: usize,
    output_exhausted: bool,
    /// The handler asked for more than [`MAX_PENDING_CALLS`] pending calls: the execution has
    /// failed. Never true in a suspended execution (it ends), so never in an image.
    #[serde(skip)]
    too_many_pending: bool,
    /// What the calls in `pending` cost, together (see [`HostState::list_pending`]).
    #[serde(default)]
    pending_bytes: usize,
    /// Bytes of pending calls the execution's suspended results have listed so far.
    #[serde(default)]
    listed: usize,
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
            too_many_pending: false,
            pending_bytes: 0,
            listed: 0,
            host_calls: 0,
            reply: Vec::new(),
            guest_output: String::new(),
        }
    }

    fn deny(&mut self, kind: Kind, name: &str, operation: &str) -> HostStatus {
        // Denials spend the output budget too: a handler looping on denied accesses must not
        // grow the host without bound. One past the budget is still recorded, the evidence of
        // the access: the execution ends with it (the output is exhausted), so there is no
        // other, and its name was admitted within what was left (see `admit`).
        let ended_before = self.output_exhausted;
        let _ = self.charge(&[kind.prefix(), name, kind.name(), name, operation], &[]);
        if !ended_before {
            self.records.denials.push(Denial::new(kind, name, operation));
        }
        HostStatus::Denied
    }

    /// Whether the handler may use `name` as `kind` (nothing is recorded: the operation's own
    /// check does that).
    pub fn allows(&self, kind: Kind, name: &str) -> bool {
        self.checker.allows(kind, name)
    }

    fn check(&mut self, kind: Kind, name: &str, operation: &str) -> HostResult<()> {
        self.host_calls += 1;
        if self.checker.allows(kind, name) { Ok(()) } else { Err(self.deny(kind, name, operation)) }
    }

    /// Spends the [cost](record_cost) of a record made of `texts` and `values`. Once the budget
    /// is spent, or when the strings alone exceed what is left, refuses it without measuring it:
    /// a handler looping on large refused records costs the host no more than small ones.
    /// What it spent.
    fn charge(&mut self, texts: &[&str], values: &[&Value]) -> HostResult<usize> {
        let at_least = RECORD_OVERHEAD + texts.iter().map(|text| text.len()).sum::<usize>();
        if self.output_exhausted || at_least > self.output_budget {
            self.output_exhausted = true;
            return Err(HostStatus::OutputLimit);
        }
        self.spend(record_cost(texts, values))
    }

    fn spend(&mut self, bytes: usize) -> HostResult<usize> {
        match self.output_budget.checked_sub(bytes) {
            Some(left) => {
                self.output_budget = left;
                Ok(bytes)
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
        self.charge(&[key], &[&value])?;
        self.state.insert(key.to_owned(), value.clone());
        self.records.state_mutations.push(StateMutation::Set { key: key.to_owned(), value });
        Ok(())
    }

    pub fn state_delete(&mut self, key: &str) -> HostResult<()> {
        self.check(Kind::StateWrite, key, "state.delete")?;
        self.charge(&[key], &[])?;
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
        self.charge(&[name], &[&payload])?;
        self.records.events.push(Event { name: name.to_owned(), payload });
        Ok(())
    }

    pub fn view_command(&mut self, call: ViewCommandCall) -> HostResult<()> {
        let operation = if call.kind == "update" { "view.update" } else { "view.command" };
        self.check(Kind::ViewUpdate, &call.component_id, operation)?;
        self.charge(&[&call.kind, &call.component_id], &[&call.args])?;
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
        if self.pending.len() >= MAX_PENDING_CALLS {
            self.too_many_pending = true;
            return Err(HostStatus::OutputLimit);
        }
        let args: Vec<&Value> = call.args.iter().collect();
        let cost = self.charge(&[&call.extension, &call.method], &args)?;
        self.pending_bytes += cost;
        let call_id = self.next_call_id;
        self.next_call_id += 1;
        self.pending.push(PendingCall { call_id, extension: call.extension, method: call.method, args: call.args });
        Ok(call_id)
    }

    pub fn log(&mut self, level: LogLevel, message: String) -> HostResult<()> {
        self.host_calls += 1;
        self.charge(&[&message], &[])?;
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

    /// Marks a pending call settled; false if no such call is pending. The host keeps a call
    /// only while it is pending: settled, its cost goes back to the output budget (a handler
    /// awaiting many calls one after another does not spend it).
    pub fn settle_call(&mut self, call_id: u32) -> bool {
        let Some(at) = self.pending.iter().position(|call| call.call_id == call_id) else { return false };
        let call = self.pending.remove(at);
        let cost = call_cost(&call);
        self.pending_bytes = self.pending_bytes.saturating_sub(cost);
        if !self.output_exhausted {
            self.output_budget += cost;
        }
        true
    }

    /// Counts the pending calls a suspended result is about to list against what the
    /// execution's suspended results may list in all (`limit` bytes, see
    /// [`LISTED_PER_OUTPUT_LIMIT`]); false once past it.
    pub fn list_pending(&mut self, limit: usize) -> bool {
        self.listed = self.listed.saturating_add(self.pending_bytes);
        self.listed <= limit
    }

    pub fn host_calls(&self) -> u64 {
        self.host_calls
    }

    pub fn output_exhausted(&self) -> bool {
        self.output_exhausted
    }

    /// Whether the handler asked for more than [`MAX_PENDING_CALLS`] pending calls.
    pub fn too_many_pending(&self) -> bool {
        self.too_many_pending
    }

    /// Whether a limit has ended the execution: the host call that went past it traps.
    pub fn ended(&self) -> bool {
        self.output_exhausted || self.too_many_pending
    }

    /// The bytes the handler may still make the host keep.
    pub fn output_left(&self) -> usize {
        if self.output_exhausted { 0 } else { self.output_budget }
    }

    /// Admits a guest message the host would keep (MessagePack), before it is decoded. Kept,
    /// it will cost at least its own length and a `Value` for each value in it: a message
    /// longer, or of more values, than the output budget left could pay for is refused
    /// undecoded (and the budget is spent). Short messages are admitted without counting their
    /// values. [`RECORD_OVERHEAD`] covers the message's own framing.
    pub fn admit(&mut self, message: &[u8]) -> HostResult<()> {
        if self.fits(message) { Ok(()) } else { Err(self.refuse_output()) }
    }

    /// Whether [`admit`](Self::admit) would admit `message` (nothing is spent).
    pub fn fits(&self, message: &[u8]) -> bool {
        let room = self.output_left().saturating_add(RECORD_OVERHEAD);
        let values = room / VALUE_OVERHEAD;
        let fits = message.len() <= room && (message.len() <= values || count_values(message) <= values);
        fits && !self.output_exhausted
    }

    /// Refuses a message [`fits`](Self::fits) found too large: the budget is spent.
    pub fn refuse_output(&mut self) -> HostStatus {
        self.output_exhausted = true;
        HostStatus::OutputLimit
    }

    /// Charges what a step's result makes the host keep: the value the handler returned, or the
    /// texts of what it threw. Past the budget the output is exhausted, as for a record.
    pub fn charge_result(&mut self, output: &RunOutput) {
        let _ = match output {
            RunOutput::Returned(Some(value)) => self.charge(&[], &[value]),
            RunOutput::Threw(error) => {
                let stack = error.stack.as_deref().unwrap_or_default();
                let code = error.code.as_deref().unwrap_or_default();
                self.charge(&[&error.name, &error.message, stack, code], &[])
            }
            RunOutput::Returned(None) | RunOutput::Pending => Ok(0),
        };
    }

    pub fn guest_output(&self) -> &str {
        &self.guest_output
    }
}

/// What keeping one record costs the host beyond the text of its strings and values: the
/// record's own struct in its list (up to twice its size while the list grows), the
/// allocations behind its strings, and the field names of its JSON. An empty log line costs
/// this much, not nothing.
pub const RECORD_OVERHEAD: usize = 128;

/// What each value inside a kept value costs beyond its JSON text: a `serde_json::Value` in
/// memory (`0` is one byte of JSON and a whole `Value`).
const VALUE_OVERHEAD: usize = size_of::<Value>();

/// What each member of a kept object costs beyond its key's text: its key's `String` and its
/// slots in the map's entries and index.
const MEMBER_OVERHEAD: usize = size_of::<String>() + 16;

/// The bytes charged for keeping a record made of the strings `texts` and the values `values`:
/// [`RECORD_OVERHEAD`], the JSON text of each string and value (escapes included), and the
/// in-memory overhead of every value. At least what the record occupies in the host's memory
/// and what it adds to the result's JSON.
/// What keeping a pending call costs (what making it charged).
fn call_cost(call: &PendingCall) -> usize {
    let args: Vec<&Value> = call.args.iter().collect();
    record_cost(&[&call.extension, &call.method], &args)
}

pub fn record_cost(texts: &[&str], values: &[&Value]) -> usize {
    let texts: usize = texts.iter().map(|text| text_cost(text)).sum();
    RECORD_OVERHEAD + texts + values.iter().map(|value| value_cost(value)).sum::<usize>()
}

/// The JSON text of `value` (escapes included, every number at its longest) plus the in-memory
/// overhead of each value and object member in it. Walks the value without recursion.
fn value_cost(value: &Value) -> usize {
    let mut cost = 0;
    let mut unvisited = vec![value];
    while let Some(value) = unvisited.pop() {
        cost += VALUE_OVERHEAD
            + match value {
                Value::Null | Value::Bool(_) => "false".len(),
                // `-1.7976931348623157e308` is the longest a number prints.
                Value::Number(_) => 24,
                Value::String(text) => text_cost(text),
                Value::Array(items) => {
                    unvisited.extend(items);
                    2 + items.len()
                }
                Value::Object(members) => {
                    unvisited.extend(members.values());
                    2 + members.keys().map(|key| text_cost(key) + 2 + MEMBER_OVERHEAD).sum::<usize>()
                }
            };
    }
    cost
}

/// The length of `text` as a JSON string: its quotes and the escapes `serde_json` writes
/// (a control character is six bytes, `\u0001`).
fn text_cost(text: &str) -> usize {
    let escaped = |byte: u8| match byte {
        b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
        0..0x20 => 6,
        _ => 1,
    };
    2 + text.bytes().map(escaped).sum::<usize>()
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
        assert_eq!(host.take_records().denials, vec![Denial::new(Kind::StateRead, "secret", "state.get")]);
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
        let mut host = HostState::new(Map::new(), checker, ExtensionRegistry::new(), 4096);
        let mut emitted = 0;
        while host.emit("e", json!("x".repeat(10))).is_ok() {
            emitted += 1;
        }
        assert!(emitted > 0 && emitted < 4096 / RECORD_OVERHEAD);
        assert!(host.output_exhausted());
    }

    #[test]
    fn a_denial_past_the_budget_is_still_recorded_and_ends_the_execution() {
        let mut host = host(&[], json!({}));
        host.output_budget = RECORD_OVERHEAD;
        assert_eq!(host.state_set("secret", json!(1)), Err(HostStatus::Denied));
        assert!(host.ended(), "past the budget");
        assert_eq!(host.take_records().denials.len(), 1, "the evidence of the access");
    }

    #[test]
    fn a_settled_call_gives_its_cost_back() {
        let checker = Checker::new(["ext:kv".parse::<Capability>().unwrap()]);
        let registry: ExtensionRegistry = [("kv".to_owned(), ["get".to_owned()].into())].into();
        let mut host = HostState::new(Map::new(), checker, registry, 4096);
        let call = || ExtCall { extension: "kv".into(), method: "get".into(), args: vec![json!("k".repeat(100))] };
        for _ in 0..1000 {
            let id = host.ext_call(call()).expect("the budget holds one call at a time");
            assert!(host.settle_call(id));
        }
        assert_eq!(host.output_left(), 4096, "all given back");
        while host.ext_call(call()).is_ok() {}
        assert!(host.ended(), "calls kept pending still spend it");
    }

    #[test]
    fn a_message_of_more_values_than_the_budget_pays_for_is_refused_undecoded() {
        let mut host = host(&[], json!({}));
        host.output_budget = 64 * VALUE_OVERHEAD;
        // A string is one value: admitted while it is shorter than the budget.
        assert_eq!(host.admit(&nexus_abi::encode(&json!("x".repeat(1500)))), Ok(()));
        assert_eq!(host.admit(&nexus_abi::encode(&json!(vec![0; 60]))), Ok(()));
        assert!(!host.output_exhausted());
        let mut long = self::host(&[], json!({}));
        long.output_budget = 64 * VALUE_OVERHEAD;
        assert_eq!(long.admit(&nexus_abi::encode(&json!("x".repeat(10_000)))), Err(HostStatus::OutputLimit));
        // 1,000 one-byte values would each decode into a whole `Value`.
        assert_eq!(host.admit(&nexus_abi::encode(&json!(vec![0; 1000]))), Err(HostStatus::OutputLimit));
        assert!(host.output_exhausted());
        assert_eq!(host.admit(&nexus_abi::encode(&json!(0))), Err(HostStatus::OutputLimit));
    }

    #[test]
    fn what_a_handler_returns_or_throws_is_charged() {
        let mut host = host(&[], json!({}));
        host.output_budget = 10_000;
        host.charge_result(&RunOutput::Returned(Some(json!("x".repeat(5000)))));
        assert!(!host.output_exhausted());
        let threw = |message: &str| {
            RunOutput::Threw(nexus_abi::GuestError {
                name: "Error".into(),
                message: message.into(),
                stack: None,
                code: None,
                raised: None,
                at_load: false,
                internal: false,
            })
        };
        host.charge_result(&threw(&"y".repeat(5000)));
        assert!(host.output_exhausted());
        assert_eq!(host.output_left(), 0);
    }

    /// Makes records until the budget refuses one, giving up after a million.
    fn records_until_refused(host: &mut HostState, mut record: impl FnMut(&mut HostState) -> HostResult<()>) -> usize {
        (0..1_000_000).take_while(|_| record(host).is_ok()).count()
    }

    #[test]
    fn an_empty_log_line_or_event_is_charged_its_record() {
        let budget = 10 * RECORD_OVERHEAD;
        let mut host = host(&["events:emit:e"], json!({}));
        host.output_budget = budget;
        assert!(records_until_refused(&mut host, |host| host.log(LogLevel::Info, String::new())) < 10);
        let mut host = self::host(&["events:emit:e"], json!({}));
        host.output_budget = budget;
        assert!(records_until_refused(&mut host, |host| host.emit("e", Value::Null)) < 10);
        let mut host = self::host(&[], json!({}));
        host.output_budget = budget;
        for _ in 0..1_000_000 {
            assert_eq!(host.state_get(""), Err(HostStatus::Denied));
        }
        assert!(host.take_records().denials.len() < 10);
        assert!(host.output_exhausted());
    }

    #[test]
    fn escapes_are_charged_as_the_json_writes_them() {
        // 1,000 control characters are 6,000 bytes of JSON (`\u0001` each).
        let mut host = host(&[], json!({}));
        host.output_budget = 5000;
        assert_eq!(host.log(LogLevel::Info, "\u{1}".repeat(1000)), Err(HostStatus::OutputLimit));
        assert_eq!(text_cost(&"\u{1}".repeat(1000)), 6002);
        assert_eq!(text_cost("a\"\\\n\u{7f}é"), 2 + 1 + 2 + 2 + 2 + 1 + 2);
    }

    #[test]
    fn what_the_host_keeps_fits_in_what_it_charged() {
        // Small values, where the in-memory overhead dominates, and escaped text, where the JSON
        // does: what was kept, in memory and as JSON, never exceeds the budget spent.
        let payloads = [
            json!(null),
            json!(0),
            json!([[], [], [], {}, {}, 1.5e300, -1]),
            json!({"\u{0}": "\u{1}\u{2}\"", "k": [null, true, "é\n"]}),
            json!("\u{1f}".repeat(100)),
        ];
        let budget = 1 << 16;
        let mut host = host(&["events:emit:*", "state:write:*"], json!({}));
        host.output_budget = budget;
        let mut round = 0usize;
        while host.emit(&format!("\u{0}{round}"), payloads[round % payloads.len()].clone()).is_ok()
            && host.state_set("\\", payloads[(round + 1) % payloads.len()].clone()).is_ok()
            && host.log(LogLevel::Warn, "\u{1}".repeat(round % 7)).is_ok()
            && host.state_get(&"*".repeat(round % 3)).is_err()
        {
            round += 1;
        }
        let records = host.take_records();
        let json = serde_json::to_vec(&records).unwrap().len();
        assert!(json <= budget, "{json} bytes of JSON kept on a budget of {budget}");
        let in_memory: usize =
            records.events.iter().map(|e| size_of::<Event>() + value_memory(&e.payload)).sum::<usize>()
                + records.state_mutations.len() * size_of::<StateMutation>()
                + records.logs.len() * size_of::<LogLine>()
                + records.denials.len() * size_of::<Denial>();
        assert!(in_memory <= budget, "{in_memory} bytes of records kept on a budget of {budget}");
    }

    /// The heap a value holds beyond its own `Value` (lower bound: no allocator overhead).
    fn value_memory(value: &Value) -> usize {
        match value {
            Value::String(text) => text.len(),
            Value::Array(items) => items.iter().map(|item| size_of::<Value>() + value_memory(item)).sum(),
            Value::Object(members) => {
                members.iter().map(|(key, item)| key.len() + size_of::<(String, Value)>() + value_memory(item)).sum()
            }
            _ => 0,
        }
    }

    #[test]
    fn a_denial_names_its_kind_and_resource_apart_from_its_token() {
        let mut host = host(&["state:read:*"], json!({}));
        assert_eq!(host.state_set("*", json!(1)), Err(HostStatus::Denied));
        assert_eq!(host.state_delete(""), Err(HostStatus::Denied));
        let denials = serde_json::to_value(host.take_records().denials).unwrap();
        assert_eq!(
            denials,
            json!([
                {"capability": "state:write:*", "kind": "state:write", "resource": "*", "operation": "state.set"},
                {"capability": "state:write:", "kind": "state:write", "resource": "", "operation": "state.delete"},
            ])
        );
        let back: Vec<Denial> = serde_json::from_value(denials).unwrap();
        assert_eq!(back[0].kind, Kind::StateWrite);
        assert_eq!(back[1].resource, "");
    }
}
