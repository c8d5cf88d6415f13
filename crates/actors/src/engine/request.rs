//! An execution request and its result, as docs/results-and-errors.md describes them
//! (JSON field names in camelCase).

use std::time::Duration;

use nexus_abi::ErrorCode;
use nexus_host_fns::records::{PendingCall, Records};
use nexus_host_fns::{Capability, ExtensionRegistry};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The handler to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Handler {
    /// The body of an async function.
    Source(String),
    /// The body of an async function, in TypeScript: its types are stripped (not checked)
    /// before it is compiled, and errors point into it.
    #[serde(rename = "typescript")]
    TypeScript(String),
    /// Bytecode from [`crate::engine::Engine::precompile`] (or, for TypeScript, from
    /// [`crate::engine::Engine::precompile_typescript`], which keeps the source map with it).
    Bytecode(Vec<u8>),
}

/// The language of handler source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    JavaScript,
    TypeScript,
}

impl Handler {
    /// Source in `language`.
    pub fn source_in(language: Language, source: impl Into<String>) -> Self {
        match language {
            Language::JavaScript => Handler::Source(source.into()),
            Language::TypeScript => Handler::TypeScript(source.into()),
        }
    }
}

/// One execution of a handler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExecutionRequest {
    pub handler: Handler,
    pub panel_id: String,
    pub handler_name: String,
    pub state_snapshot: Map<String, Value>,
    pub args: Value,
    pub scope: Value,
    /// Parsed tokens: a malformed token fails deserialization (`INVALID_ARGUMENT`), never
    /// silently grants or drops anything.
    pub capabilities: Vec<Capability>,
    pub extension_registry: ExtensionRegistry,
    /// Time allowed for running wasm (time parked in a suspension does not count).
    #[serde(with = "millis")]
    pub timeout: Duration,
    /// Memory limit in bytes; the engine's default when absent.
    pub memory_limit: Option<u64>,
}

impl Default for ExecutionRequest {
    fn default() -> Self {
        ExecutionRequest {
            handler: Handler::Source(String::new()),
            panel_id: String::new(),
            handler_name: String::new(),
            state_snapshot: Map::new(),
            args: Value::Object(Map::new()),
            scope: Value::Object(Map::new()),
            capabilities: Vec::new(),
            extension_registry: ExtensionRegistry::new(),
            timeout: Duration::from_secs(5),
            memory_limit: None,
        }
    }
}

impl ExecutionRequest {
    /// A request for `source` with defaults for everything else.
    pub fn source(source: impl Into<String>) -> Self {
        ExecutionRequest { handler: Handler::Source(source.into()), ..Default::default() }
    }

    /// Names the first of the request's values that nests deeper than [`MAX_NESTING`].
    pub(crate) fn too_deep(&self) -> Option<String> {
        if too_deep(&self.args) {
            return Some("args".into());
        }
        if too_deep(&self.scope) {
            return Some("scope".into());
        }
        self.state_snapshot.iter().find(|(_, value)| too_deep(value)).map(|(key, _)| format!("state key {key:?}"))
    }

    /// Drops the request's values without recursion (see [`drop_flat`]).
    pub(crate) fn drop_flat(self) {
        drop_flat(self.args);
        drop_flat(self.scope);
        self.state_snapshot.into_values().for_each(drop_flat);
    }
}

/// How deep arrays and objects may nest in the values a request brings (arguments, scope,
/// state) and in an extension's result: as deep as the Node binding accepts, and well within
/// what the guest reads (MessagePack nested over about a thousand levels is refused there). A
/// deeper value is refused before anything encodes it: the encoders recurse once per level, and
/// a value built deep enough in Rust would overflow the stack of the thread that runs it.
pub const MAX_NESTING: usize = 128;

/// Whether arrays and objects nest in `value` more than [`MAX_NESTING`] deep, found without
/// recursion.
pub(crate) fn too_deep(value: &Value) -> bool {
    if !(value.is_array() || value.is_object()) {
        return false;
    }
    // (a value, how many arrays and objects hold it)
    let mut pending = vec![(value, 0)];
    while let Some((value, holders)) = pending.pop() {
        match value {
            Value::Array(_) | Value::Object(_) if holders == MAX_NESTING => return true,
            Value::Array(items) => pending.extend(items.iter().map(|item| (item, holders + 1))),
            Value::Object(members) => pending.extend(members.values().map(|member| (member, holders + 1))),
            _ => {}
        }
    }
    false
}

/// Drops `value` without recursion: `serde_json`'s own drop recurses once per level, so a value
/// nested deep enough would overflow the stack.
pub(crate) fn drop_flat(value: Value) {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Array(items) => pending.extend(items),
            Value::Object(members) => pending.extend(members.into_iter().map(|(_, member)| member)),
            _ => {}
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(duration.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Success,
    Error,
    Suspended,
}

impl Status {
    /// The status as it appears in results.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
            Status::Suspended => "suspended",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unguessable, single-use handle on a parked execution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SuspensionId(pub String);

impl SuspensionId {
    /// 128 bits of host randomness, hex-encoded.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("host randomness is available");
        SuspensionId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl std::fmt::Display for SuspensionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspension {
    pub id: SuspensionId,
    /// Every extension call still pending.
    pub calls: Vec<PendingCall>,
}

/// 1-based position in the handler's own source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub line: u32,
    pub column: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// The handler's source line at `location`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
    /// The `code` the handler gave the error it threw (a string own property of the thrown
    /// value): the handler's, never one of the engine's codes, which only the engine sets.
    #[serde(default, rename = "handlerCode", skip_serializing_if = "Option::is_none")]
    pub handler_code: Option<String>,
}

impl ExecutionError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ExecutionError { code, message: message.into(), stack: None, location: None, snippet: None, handler_code: None }
    }
}

impl std::fmt::Display for ExecutionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(Location { line, column }) = self.location {
            write!(f, " (line {line}, column {column})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ExecutionError {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionMetrics {
    /// Wall time of this stretch of execution, instantiation included.
    pub execution_time_us: u64,
    /// Time spent compiling source to bytecode (0 when bytecode was given or cached).
    pub compile_time_us: u64,
    /// Host-function calls made in this stretch of execution (a resumed execution's result
    /// counts only the calls made since the resume).
    pub host_calls: u64,
    /// Size of the instance's linear memory at the end.
    pub memory_bytes: u64,
    pub cache_hit: bool,
}

impl ExecutionMetrics {
    /// Adds a later step of the same execution, making these the whole run's figures: times
    /// and host calls summed, the largest memory, a cache hit if a step had one (only the
    /// first step compiles).
    pub fn add_step(&mut self, step: &ExecutionMetrics) {
        self.execution_time_us += step.execution_time_us;
        self.compile_time_us += step.compile_time_us;
        self.host_calls += step.host_calls;
        self.memory_bytes = self.memory_bytes.max(step.memory_bytes);
        self.cache_hit |= step.cache_hit;
    }
}

/// The result of an execution, or of one resume of a suspended execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionResult {
    pub status: Status,
    pub return_value: Value,
    #[serde(flatten)]
    pub records: Records,
    pub suspension: Option<Suspension>,
    pub error: Option<ExecutionError>,
    pub metrics: ExecutionMetrics,
}

impl ExecutionResult {
    /// A result for a request that failed before any handler code ran.
    pub fn failed(error: ExecutionError) -> Self {
        ExecutionResult {
            status: Status::Error,
            return_value: Value::Null,
            records: Records::default(),
            suspension: None,
            error: Some(error),
            metrics: ExecutionMetrics::default(),
        }
    }

    /// Turns a step's result into a failure that still delivers what the step recorded (its
    /// state mutations happened).
    pub fn fail_keeping_records(&mut self, error: ExecutionError) {
        self.status = Status::Error;
        self.suspension = None;
        self.return_value = Value::Null;
        self.error = Some(error);
    }
}
