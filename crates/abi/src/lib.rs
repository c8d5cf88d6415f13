//! The wire contract between the Nexus guest (QuickJS in `wasm32-wasip1`) and the host.
//!
//! Both sides of the wasm boundary depend on this crate and on nothing else in common, so
//! every name and message that crosses the boundary is defined here once. Messages are
//! encoded as MessagePack with [`encode`] / [`decode`]; JavaScript values travel as
//! [`serde_json::Value`] inside those messages.
//!
//! # Calling convention
//! * Host → guest: the host asks the guest for a buffer with [`exports::ALLOC`], writes a
//!   message into it and calls an entry point (`RUN`, `RESUME`, `COMPILE`) with `(ptr, len)`.
//!   The entry point returns `ptr << 32 | len` of its reply, which stays valid until the next
//!   entry-point call.
//! * Guest → host: imports of module [`IMPORT_MODULE`] take `(ptr, len)` pairs of guest memory.
//!   A host function that answers with data returns the reply's length (`>= 0`) and keeps the
//!   reply until the guest copies it out with [`imports::REPLY_TAKE`]; negative returns are
//!   [`HostStatus`] codes.

use serde::{Deserialize, Serialize};
pub use serde_json::Value;

/// The wasm import module of every host function.
pub const IMPORT_MODULE: &str = "nexus";

/// The file name QuickJS reports for handler code; stack frames naming it are the handler's.
pub const HANDLER_FILE: &str = "handler.js";

/// The file name QuickJS reports for the runtime's prelude (`$state`, `$ext`, ... and the call
/// of the handler): stack frames naming it are the runtime's, not the handler's.
pub const PRELUDE_FILE: &str = "prelude.js";

/// The source placed before the handler body, on the handler's first line (so that line
/// numbers are the handler's own; columns on line 1 are shifted by its length).
pub const HANDLER_PREFIX: &str = "(async function ($state, $args, $scope, $emit, $view, $ext, $log) {";
/// The source placed after the handler body, on a line of its own (so a trailing `//` comment
/// in the handler cannot swallow it).
pub const HANDLER_SUFFIX: &str = "\n})";

/// Version of the bytecode format and of the guest; bytecode from another version is refused.
pub const GUEST_ABI_VERSION: u32 = 1;

/// Names the guest exports.
pub mod exports {
    /// `(len: i32) -> ptr: i32`: a buffer the host fills before calling an entry point.
    pub const ALLOC: &str = "nexus_alloc";
    /// `(ptr, len) -> i64`: [`crate::RunInput`] in, [`crate::RunReport`] out.
    pub const RUN: &str = "nexus_run";
    /// `(ptr, len) -> i64`: [`crate::ResumeInput`] in, [`crate::RunReport`] out.
    pub const RESUME: &str = "nexus_resume";
    /// `(ptr, len) -> i64`: [`crate::CompileInput`] in, [`crate::CompileOutput`] out.
    pub const COMPILE: &str = "nexus_compile";
    /// The Wizer initialization function (QuickJS runtime, context and prelude).
    pub const INITIALIZE: &str = "wizer-initialize";
    /// `(ptr, len) -> i64`: [`crate::PreloadInput`] in, [`crate::PreloadOutput`] out. Evaluates a
    /// library into the global scope while the host builds a snapshot with libraries; every
    /// host function is refused while it runs. The snapshot built no longer exports it.
    pub const PRELOAD: &str = "nexus_preload";
}

/// Names of the host functions the guest imports from [`crate::IMPORT_MODULE`].
pub mod imports {
    /// `(key_ptr, key_len) -> i32`: reply is the MessagePack value, [`crate::HostStatus::Absent`] if unset.
    pub const STATE_GET: &str = "state_get";
    /// `(key_ptr, key_len, value_ptr, value_len) -> i32`.
    pub const STATE_SET: &str = "state_set";
    /// `(key_ptr, key_len) -> i32`.
    pub const STATE_DELETE: &str = "state_delete";
    /// `(key_ptr, key_len) -> i32`: 1 present, 0 absent.
    pub const STATE_HAS: &str = "state_has";
    /// `() -> i32`: reply is a MessagePack array of the keys the handler may read.
    pub const STATE_KEYS: &str = "state_keys";
    /// `(name_ptr, name_len, payload_ptr, payload_len) -> i32`.
    pub const EMIT: &str = "emit";
    /// `(ptr, len) -> i32`: a [`crate::ViewCommandCall`].
    pub const VIEW_COMMAND: &str = "view_command";
    /// `(ptr, len) -> i32`: an [`crate::ExtCall`]; returns the call id (`> 0`).
    pub const EXT_CALL: &str = "ext_call";
    /// `(level, ptr, len) -> i32`: a UTF-8 log line; level per [`crate::LogLevel`].
    pub const LOG: &str = "log";
    /// `(ptr) -> i32`: copies the pending reply to `ptr` and forgets it.
    pub const REPLY_TAKE: &str = "reply_take";
}

/// Negative results of host functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum HostStatus {
    /// The value asked for does not exist.
    Absent = -1,
    /// The handler lacks the capability; the host recorded the denial.
    Denied = -2,
    /// The extension or method is not in the extension registry.
    UnknownExtension = -3,
    /// The host refused the output: the execution's output budget is spent.
    OutputLimit = -4,
}

impl HostStatus {
    pub fn from_code(code: i32) -> Option<Self> {
        [Self::Absent, Self::Denied, Self::UnknownExtension, Self::OutputLimit].into_iter().find(|s| *s as i32 == code)
    }
}

/// Log levels as passed to [`imports::LOG`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

impl LogLevel {
    pub fn from_code(code: i32) -> Option<Self> {
        [Self::Debug, Self::Info, Self::Warn, Self::Error].into_iter().find(|l| *l as i32 == code)
    }
}

/// The error codes of an execution result (`error.code`), as docs/results-and-errors.md lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    SyntaxError,
    RuntimeError,
    Timeout,
    MemoryLimit,
    StackOverflow,
    PermissionDenied,
    UnknownExtension,
    InvalidArgument,
    Unsettled,
    SuspensionNotFound,
    Overloaded,
    ShuttingDown,
    /// The suspension store could not be reached, or failed.
    StoreUnavailable,
    Internal,
}

impl ErrorCode {
    /// The code as it appears in results and on thrown JavaScript errors (`e.code`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SyntaxError => "SYNTAX_ERROR",
            Self::RuntimeError => "RUNTIME_ERROR",
            Self::Timeout => "TIMEOUT",
            Self::MemoryLimit => "MEMORY_LIMIT",
            Self::StackOverflow => "STACK_OVERFLOW",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::UnknownExtension => "UNKNOWN_EXTENSION",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::Unsettled => "UNSETTLED",
            Self::SuspensionNotFound => "SUSPENSION_NOT_FOUND",
            Self::Overloaded => "OVERLOADED",
            Self::ShuttingDown => "SHUTTING_DOWN",
            Self::StoreUnavailable => "STORE_UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The handler to run: source text (the body of an async function) or bytecode made by
/// [`exports::COMPILE`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Code {
    Source(String),
    Bytecode(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// Starts an execution in a fresh instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInput {
    pub code: Code,
    pub args: Value,
    pub scope: Value,
    /// Host randomness for this execution's `Math.random`.
    pub random_seed: [u64; 2],
}

/// Settles one pending extension call of a suspended execution.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResumeInput {
    pub call_id: u32,
    pub outcome: ExtOutcome,
}

/// What an extension call produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExtOutcome {
    Ok(Value),
    Err { code: Option<String>, message: String },
}

/// What the run and resume entry points report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub output: RunOutput,
    /// Time spent compiling handler source in this call (0 for bytecode and for resumes).
    pub compile_time_us: u64,
}

/// Where the handler's promise stands after the guest ran its job queue dry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RunOutput {
    /// The handler returned this value (`None` for `undefined`).
    Returned(Option<Value>),
    /// The handler threw, or its code could not be loaded.
    Threw(GuestError),
    /// The handler is waiting, or it settled while extension calls it started are still
    /// pending (what it settled with is kept in the guest and reported once none is); the host
    /// knows whether anything can ever settle them.
    Pending,
}

/// Compiles handler source to bytecode inside the sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompileInput {
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CompileOutput {
    Bytecode(#[serde(with = "serde_bytes")] Vec<u8>),
    Threw(GuestError),
}

/// A library to evaluate into the global scope before any handler runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreloadInput {
    /// The file name QuickJS reports for the library's code (its stack frames and syntax errors).
    pub name: String,
    /// A script (not a module), evaluated in sloppy mode as a `<script>` would be.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PreloadOutput {
    Loaded,
    /// The library failed to parse, threw (or left a rejected promise nothing handled), or
    /// reached for a host function (`reached` names it, even if the library caught the refusal).
    Threw {
        error: GuestError,
        reached: Option<String>,
    },
}

/// A JavaScript exception as the guest saw it; the host classifies it into an [`ErrorCode`].
///
/// `name`, `message`, `stack` and `code` are read from the thrown value, which the handler
/// controls: they describe the error and never decide its code. Only `raised`, `at_load` and
/// `internal` are the guest's own evidence.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GuestError {
    /// The error's `name` (`"SyntaxError"`, `"RangeError"`, ...), empty for non-Error throws.
    pub name: String,
    pub message: String,
    pub stack: Option<String>,
    /// The thrown value's own `code` data property, when it is a string (the handler's code).
    pub code: Option<String>,
    /// The code the runtime gave the error when it raised it (`"PERMISSION_DENIED"`,
    /// `"UNKNOWN_EXTENSION"`, ...): the thrown value is an error the runtime itself threw, as
    /// the prelude's private registry of raised errors says (never its properties).
    pub raised: Option<String>,
    /// Thrown while loading the code (compilation or bytecode), not while running it: no
    /// handler code has run.
    pub at_load: bool,
    /// Not a JavaScript exception: the guest itself failed (malformed input, an engine error).
    pub internal: bool,
}

/// A `$view.update` / `$view.command` call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewCommandCall {
    pub kind: String,
    pub component_id: String,
    pub args: Value,
}

/// A `$ext.<extension>.<method>(...args)` call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtCall {
    pub extension: String,
    pub method: String,
    pub args: Vec<Value>,
}

/// Encodes a message as MessagePack (struct fields by name, so both sides may evolve).
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(message).expect("wire messages are always serializable")
}

/// Decodes a MessagePack message.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(bytes)
}

/// Packs a reply location as returned by the guest's entry points.
pub fn pack_reply(ptr: u32, len: u32) -> i64 {
    ((u64::from(ptr) << 32) | u64::from(len)) as i64
}

/// Unpacks [`pack_reply`].
pub fn unpack_reply(packed: i64) -> (u32, u32) {
    let packed = packed as u64;
    ((packed >> 32) as u32, packed as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_messagepack() {
        let input = RunInput {
            code: Code::Bytecode(vec![1, 2, 3]),
            args: serde_json::json!({"a": [1, 2.5, "x", null, {"__proto__": true}]}),
            scope: Value::Null,
            random_seed: [7, 9],
        };
        let back: RunInput = decode(&encode(&input)).unwrap();
        assert_eq!(back.args, input.args);
        assert!(matches!(back.code, Code::Bytecode(b) if b == [1, 2, 3]));
    }

    #[test]
    fn error_codes_serialize_as_contract_names() {
        assert_eq!(serde_json::to_string(&ErrorCode::PermissionDenied).unwrap(), "\"PERMISSION_DENIED\"");
        assert_eq!(ErrorCode::Unsettled.as_str(), "UNSETTLED");
    }

    #[test]
    fn reply_location_packs_losslessly() {
        assert_eq!(unpack_reply(pack_reply(u32::MAX - 1, 17)), (u32::MAX - 1, 17));
    }

    #[test]
    fn host_status_codes_are_distinct_negatives() {
        for status in [HostStatus::Absent, HostStatus::Denied, HostStatus::UnknownExtension, HostStatus::OutputLimit] {
            assert!((status as i32) < 0);
            assert_eq!(HostStatus::from_code(status as i32), Some(status));
        }
    }
}
