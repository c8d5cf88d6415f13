//! The JavaScript-side shapes (camelCase, as the README's result format) of a runtime configuration, an
//! execution context and an extension call's result, turned into the runtime's types.

use std::path::PathBuf;
use std::time::Duration;

use nexus_abi::ExtOutcome;
use nexus_actors::config::RuntimeConfig;
use nexus_actors::engine::{ExecutionRequest, Handler, Language, Library};
use nexus_actors::suspension::{RedisConfig, StoreConfig, SuspensionKeys};
use nexus_host_fns::{Capability, ExtensionRegistry};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{BindingError, BindingResult};

/// `new NexusRuntime(config)`: every field optional, the Rust defaults otherwise.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object of runtime options")]
pub struct Config {
    pool_size: Option<usize>,
    workers: Option<usize>,
    queue_bound: Option<usize>,
    suspension_timeout_ms: Option<u64>,
    spin_before_park_us: Option<u64>,
    caller_resets: Option<bool>,
    default_memory_limit: Option<u64>,
    max_memory_limit: Option<u64>,
    output_limit: Option<usize>,
    memory_budget: Option<u64>,
    infer_missing_capabilities: Option<bool>,
    compile_cache_entries: Option<usize>,
    compile_cache_bytes: Option<usize>,
    compile_cache_dir: Option<PathBuf>,
    compile_cache_dir_bytes: Option<u64>,
    hibernate_after_ms: Option<u64>,
    suspension_store: Option<SuspensionStoreOption>,
    /// 64 hexadecimal characters each (the JavaScript layer turns Buffers into that).
    suspension_keys: Option<Vec<String>>,
    preload: Option<Vec<PreloadOption>>,
}

/// `preload: [{ name, source }]`: a library evaluated into the snapshot, in order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object { name, source } of two strings")]
struct PreloadOption {
    name: String,
    source: String,
}

/// `suspensionStore`: `{ dir }`, a directory that keeps suspensions across restarts, or
/// `{ redis, prefix?, timeoutMs? }`, a Redis every node shares.
#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    expecting = "an object { dir } or { redis, prefix?, timeoutMs? }"
)]
struct SuspensionStoreOption {
    dir: Option<PathBuf>,
    redis: Option<String>,
    prefix: Option<String>,
    timeout_ms: Option<u64>,
}

impl SuspensionStoreOption {
    fn into_store_config(self) -> BindingResult<StoreConfig> {
        let redis_only = self.prefix.is_some() || self.timeout_ms.is_some();
        match (self.dir, self.redis) {
            (Some(dir), None) if !redis_only => Ok(StoreConfig::Disk(dir)),
            (None, Some(url)) => {
                let mut config = RedisConfig::new(url);
                if let Some(prefix) = self.prefix {
                    config.prefix = prefix;
                }
                if let Some(ms) = self.timeout_ms {
                    config.timeout = Duration::from_millis(ms);
                }
                Ok(StoreConfig::Redis(config))
            }
            _ => Err(BindingError::invalid(
                "config.suspensionStore: either { dir } or { redis, prefix?, timeoutMs? }".to_owned(),
            )),
        }
    }
}

/// The longest `spinBeforeParkUs` accepted: the JavaScript thread runs nothing else while it
/// spins, so a long budget would stall the event loop.
const MAX_SPIN_US: u64 = 1_000;

impl Config {
    pub fn into_runtime_config(self) -> BindingResult<RuntimeConfig> {
        if let Some(us) = self.spin_before_park_us
            && us > MAX_SPIN_US
        {
            return Err(BindingError::invalid(format!(
                "config.spinBeforeParkUs: at most {MAX_SPIN_US} (the event loop runs nothing while it spins), got {us}"
            )));
        }
        let mut config = RuntimeConfig::default();
        let engine = &mut config.engine;
        macro_rules! set {
            ($target:expr, $value:expr) => {
                if let Some(value) = $value {
                    $target = value;
                }
            };
        }
        set!(config.pool_size, self.pool_size);
        set!(config.workers, self.workers);
        set!(config.queue_bound, self.queue_bound);
        set!(config.suspension_timeout, self.suspension_timeout_ms.map(Duration::from_millis));
        set!(config.spin_before_park, self.spin_before_park_us.map(Duration::from_micros));
        set!(config.caller_resets, self.caller_resets);
        set!(engine.default_memory_limit, self.default_memory_limit);
        set!(engine.max_memory_limit, self.max_memory_limit);
        set!(engine.output_limit, self.output_limit);
        set!(engine.memory_budget, self.memory_budget);
        set!(engine.infer_missing_capabilities, self.infer_missing_capabilities);
        set!(engine.compile_cache_entries, self.compile_cache_entries);
        set!(engine.compile_cache_bytes, self.compile_cache_bytes);
        engine.compile_cache_dir = self.compile_cache_dir.or(engine.compile_cache_dir.take());
        set!(engine.compile_cache_dir_bytes, self.compile_cache_dir_bytes);
        set!(config.hibernate_after, self.hibernate_after_ms.map(Duration::from_millis));
        let preload = self.preload.unwrap_or_default().into_iter();
        config.engine.libraries = preload.map(|library| Library::new(library.name, library.source)).collect();
        if let Some(store) = self.suspension_store {
            config.suspension_store = store.into_store_config()?;
        }
        if let Some(keys) = self.suspension_keys {
            let keys = keys
                .iter()
                .enumerate()
                .map(|(i, key)| {
                    SuspensionKeys::parse_hex(key)
                        .map_err(|e| BindingError::invalid(format!("config.suspensionKeys[{i}]: {e}")))
                })
                .collect::<BindingResult<Vec<_>>>()?;
            config.suspension_keys = Some(
                SuspensionKeys::new(&keys).map_err(|e| BindingError::invalid(format!("config.suspensionKeys: {e}")))?,
            );
        }
        Ok(config)
    }
}

/// The execution context: everything of a request but the handler.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default, expecting = "an object of execution context fields")]
pub struct Context {
    panel_id: String,
    handler_name: String,
    state_snapshot: Map<String, Value>,
    args: Option<Value>,
    scope: Option<Value>,
    capabilities: Vec<String>,
    extension_registry: ExtensionRegistry,
    timeout_ms: Option<u64>,
    memory_limit: Option<u64>,
    /// `"typescript"` for TypeScript source (precompiled TypeScript says so itself).
    language: Option<Language>,
}

/// `precompileHandler(code, options)` and `inferCapabilities(code, options)`: the source's language.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default, expecting = "an object { language }")]
pub struct PrecompileOptions {
    pub language: Language,
}

impl Context {
    /// The request; `timeout_ms` (the method's own argument) wins over the context's.
    pub fn into_request(self, handler: Handler, timeout_ms: Option<u64>) -> BindingResult<ExecutionRequest> {
        let capabilities = self
            .capabilities
            .iter()
            .map(|token| {
                token
                    .parse::<Capability>()
                    .map_err(|e| BindingError::invalid(format!("context.capabilities: {token:?}: {e}")))
            })
            .collect::<BindingResult<Vec<_>>>()?;
        let defaults = ExecutionRequest::default();
        let handler = match (handler, self.language) {
            (Handler::Source(source), Some(language)) => Handler::source_in(language, source),
            (handler, _) => handler,
        };
        Ok(ExecutionRequest {
            handler,
            panel_id: self.panel_id,
            handler_name: self.handler_name,
            state_snapshot: self.state_snapshot,
            args: self.args.unwrap_or(defaults.args),
            scope: self.scope.unwrap_or(defaults.scope),
            capabilities,
            extension_registry: self.extension_registry,
            timeout: timeout_ms.or(self.timeout_ms).map_or(defaults.timeout, Duration::from_millis),
            memory_limit: self.memory_limit,
        })
    }
}

/// `resumeHandler`'s result: exactly one of `{ value }` and `{ error: { message, code? } }`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object { value } or { error }")]
pub struct CallResult {
    /// `None` when the field is absent (a `null` value is `Some(Null)`; so is a `value` the
    /// caller gave as `undefined`, see [`crate::NexusRuntime::resume_handler`]).
    #[serde(default, deserialize_with = "present")]
    value: Option<Value>,
    /// `None` when the field is absent; a `null` error is refused, as any other error that is
    /// not `{ message, code? }`.
    #[serde(default, deserialize_with = "present")]
    error: Option<CallError>,
}

/// A field that is there, whatever its value: `null` included.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object { message, code? }")]
struct CallError {
    message: String,
    code: Option<String>,
}

impl CallResult {
    /// The call's outcome: exactly one of a value and an error (one giving both, or neither,
    /// is refused: which did the call have?).
    pub fn into_outcome(self) -> BindingResult<ExtOutcome> {
        match (self.value, self.error) {
            (Some(_), Some(_)) => Err(BindingError::invalid("result: either { value } or { error }, not both")),
            (None, None) => Err(BindingError::invalid(
                "result: expected { value } or { error: { message, code? } }, got an object with neither",
            )),
            (None, Some(CallError { message, code })) => Ok(ExtOutcome::Err { code, message }),
            (Some(value), None) => Ok(ExtOutcome::Ok(value)),
        }
    }
}

/// A JSON value as one of the shapes above; the error names `what` and the path inside it
/// (`config.preload[1]: missing field `source``).
pub fn parse<T: DeserializeOwned>(value: Value, what: &str) -> BindingResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            what.to_owned()
        } else if path.starts_with('[') {
            format!("{what}{path}")
        } else {
            format!("{what}.{path}")
        };
        BindingError::invalid(format!("{at}: {}", in_javascript_terms(&e.into_inner().to_string())))
    })
}

/// serde's wording of a value of the wrong kind, in the terms of the JavaScript that passed it
/// (`invalid type: sequence, expected u64` becomes `invalid type: an array, expected a whole
/// number ≥ 0`; a name serde quotes in backticks is quoted as a string, a number or boolean is
/// not quoted). What serde does not word as such is left as it is.
fn in_javascript_terms(message: &str) -> String {
    const WORDS: [(&str, &str); 14] = [
        ("invalid type: sequence", "invalid type: an array"),
        ("invalid type: map", "invalid type: an object"),
        ("invalid type: unit value", "invalid type: null"),
        ("invalid type: string", "invalid type: the string"),
        ("invalid type: boolean", "invalid type:"),
        ("invalid type: integer", "invalid type: the number"),
        ("invalid type: floating point", "invalid type: the number"),
        ("invalid value: integer", "invalid value:"),
        ("invalid value: floating point", "invalid value:"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected an object"),
        ("expected u64", "expected a whole number ≥ 0"),
        ("expected u32", "expected a whole number ≥ 0 (32 bits)"),
        ("expected usize", "expected a whole number ≥ 0"),
    ];
    let mut message = message.to_owned();
    for (serde, javascript) in WORDS {
        message = message.replace(serde, javascript);
    }
    let mut worded = String::with_capacity(message.len());
    for (index, part) in message.split('`').enumerate() {
        let plain = part.parse::<f64>().is_ok() || part == "true" || part == "false";
        match index % 2 {
            0 => worded.push_str(part),
            _ if plain => worded.push_str(part),
            _ => {
                worded.push('"');
                worded.push_str(part);
                worded.push('"');
            }
        }
    }
    worded
}
