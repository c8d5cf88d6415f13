//! The benchmark workloads of `benches/workloads/` (the same handler sources and inputs the
//! criterion benches, `nexus bench` and the Node peer harness run), as execution requests.
//!
//! ```no_run
//! use nexus::workloads::Workload;
//! use nexus::{Engine, EngineConfig, Status};
//!
//! let engine = Engine::new(EngineConfig::default())?;
//! let trivial = Workload::named("trivial");
//! let outcome = engine.execute(trivial.request(trivial.handler_source(0)));
//! assert_eq!(outcome.result.status, Status::Success);
//! assert_eq!(outcome.result.return_value, trivial.expect);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;

use nexus_abi::ExtOutcome;
use nexus_actors::engine::{Engine, ExecutionRequest, ExecutionResult, Handler, Status};
use nexus_actors::runtime::ExtensionHost;
use nexus_host_fns::{Capability, ExtensionRegistry};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The workload names, in the order tables list them.
pub const NAMES: [&str; 5] = ["trivial", "state", "compute", "suspend", "cold"];

const MANIFEST: &str = include_str!("../benches/workloads/workloads.json");

fn source_file(file: &str) -> &'static str {
    match file {
        "trivial.js" => include_str!("../benches/workloads/trivial.js"),
        "state.js" => include_str!("../benches/workloads/state.js"),
        "compute.js" => include_str!("../benches/workloads/compute.js"),
        "suspend.js" => include_str!("../benches/workloads/suspend.js"),
        other => panic!("benches/workloads/workloads.json names an unknown source file {other}"),
    }
}

/// One workload: a handler and everything a request for it carries (see
/// `benches/workloads/README.md` for the file format).
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: &'static str,
    pub source: &'static str,
    pub args: Value,
    pub state: Map<String, Value>,
    pub capabilities: Vec<Capability>,
    pub extensions: ExtensionRegistry,
    /// `"extension.method"` → the value every call to it resolves with.
    pub extension_results: BTreeMap<String, Value>,
    /// The handler's return value.
    pub expect: Value,
    /// Every execution gets a source never seen before (compilation included).
    pub unique_per_execution: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    source: String,
    args: Value,
    state: Map<String, Value>,
    capabilities: Vec<Capability>,
    extensions: ExtensionRegistry,
    extension_results: BTreeMap<String, Value>,
    expect: Value,
    #[serde(default)]
    unique_per_execution: bool,
}

impl Workload {
    /// Every workload, in [`NAMES`] order.
    pub fn all() -> Vec<Workload> {
        NAMES.iter().map(|name| Workload::named(name)).collect()
    }

    /// The workload called `name` (one of [`NAMES`]).
    pub fn named(name: &str) -> Workload {
        let mut manifest: BTreeMap<String, Entry> =
            serde_json::from_str(MANIFEST).expect("benches/workloads/workloads.json is valid");
        let name = NAMES.into_iter().find(|n| *n == name).unwrap_or_else(|| panic!("no workload named {name}"));
        let entry = manifest.remove(name).unwrap_or_else(|| panic!("workloads.json lacks {name}"));
        Workload {
            name,
            source: source_file(&entry.source),
            args: entry.args,
            state: entry.state,
            capabilities: entry.capabilities,
            extensions: entry.extensions,
            extension_results: entry.extension_results,
            expect: entry.expect,
            unique_per_execution: entry.unique_per_execution,
        }
    }

    /// The source of execution number `n`: unique per `n` for a `cold` workload, so no
    /// compile cache can hit; the plain source otherwise.
    pub fn handler_source(&self, n: u64) -> String {
        if self.unique_per_execution { format!("{}\n// {n}", self.source) } else { self.source.to_owned() }
    }

    /// A request running `handler` with this workload's inputs and capabilities.
    pub fn request(&self, handler: impl Into<HandlerCode>) -> ExecutionRequest {
        ExecutionRequest {
            handler: handler.into().0,
            panel_id: "bench".into(),
            handler_name: self.name.into(),
            state_snapshot: self.state.clone(),
            args: self.args.clone(),
            capabilities: self.capabilities.clone(),
            extension_registry: self.extensions.clone(),
            ..ExecutionRequest::default()
        }
    }

    /// The canned answer to `extension.method`.
    pub fn extension_result(&self, extension: &str, method: &str) -> ExtOutcome {
        match self.extension_results.get(&format!("{extension}.{method}")) {
            Some(value) => ExtOutcome::Ok(value.clone()),
            None => ExtOutcome::Err { code: None, message: format!("no canned result for {extension}.{method}") },
        }
    }
}

/// Handler code for [`Workload::request`]: source text or precompiled bytecode.
pub struct HandlerCode(pub Handler);

impl From<String> for HandlerCode {
    fn from(source: String) -> Self {
        HandlerCode(Handler::Source(source))
    }
}

impl From<Vec<u8>> for HandlerCode {
    fn from(bytecode: Vec<u8>) -> Self {
        HandlerCode(Handler::Bytecode(bytecode))
    }
}

impl From<Handler> for HandlerCode {
    fn from(handler: Handler) -> Self {
        HandlerCode(handler)
    }
}

/// A workload answers its extension calls at once with its canned results.
impl ExtensionHost for Workload {
    async fn call(&self, extension: &str, method: &str, _args: Vec<Value>) -> ExtOutcome {
        self.extension_result(extension, method)
    }
}

impl Workload {
    /// Runs `request` on the engine alone (no actors), answering extension calls with the
    /// canned results; returns the last step's result.
    pub fn run_on_engine(&self, engine: &Engine, request: ExecutionRequest) -> ExecutionResult {
        let mut outcome = engine.execute(request);
        while let Some(parked) = outcome.parked {
            let Some(call) = outcome.result.suspension.as_ref().and_then(|s| s.calls.first()) else {
                return outcome.result;
            };
            let answer = self.extension_result(&call.extension, &call.method);
            outcome = match engine.resume(parked, call.call_id, answer) {
                Ok(next) => next,
                Err(refused) => return ExecutionResult::failed(refused.error),
            };
        }
        outcome.result
    }

    /// Whether `result` is this workload's successful result.
    pub fn succeeded(&self, result: &ExecutionResult) -> bool {
        result.status == Status::Success && result.return_value == self.expect
    }
}
