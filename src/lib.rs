//! Nexus: run untrusted JavaScript handlers in fresh, capability-checked WebAssembly
//! instances (QuickJS in wasmtime).
//!
//! ```no_run
//! use nexus::{Engine, EngineConfig, ExecutionRequest, Status};
//!
//! let engine = Engine::new(EngineConfig::default())?;
//! let mut request = ExecutionRequest::source("$state.count = ($state.count ?? 0) + 1; return $state.count;");
//! request.capabilities = vec!["state:read:count".parse()?, "state:write:count".parse()?];
//! let outcome = engine.execute(request);
//! assert_eq!(outcome.result.status, Status::Success);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The crates behind this facade: `nexus-abi` (the guest/host wire contract),
//! `nexus-host-fns` (capabilities and the enforced host functions), `nexus-typescript`
//! (TypeScript handlers: types stripped, locations mapped back), `nexus-actors` (the engine). [`workloads`] holds the benchmark workloads (`nexus bench`, `benches/`).

pub mod workloads;

pub use nexus_abi::{ErrorCode, ExtOutcome};
pub use nexus_actors::Refusal;
pub use nexus_actors::config::RuntimeConfig;
/// Suspended executions as data: [`image::SuspensionImage`].
pub use nexus_actors::engine::image;
pub use nexus_actors::engine::{
    Engine, EngineConfig, ExecutionError, ExecutionMetrics, ExecutionRequest, ExecutionResult, GuestImage, Handler,
    ImageOrigin, Language, Library, LibrarySlotReset, Location, MAX_NESTING, MAX_WASM_STACK, Outcome, ParkedExecution,
    PreloadError, ResumeRefused, SlotReset, SpentInstance, Status, Suspension, SuspensionId, image_identity,
};
pub use nexus_actors::metrics::{PoolGauges, Stats};
pub use nexus_actors::runtime::{ExtensionHost, Runtime};
pub use nexus_actors::spin;
pub use nexus_actors::start_error::StartError;
pub use nexus_actors::suspension::{
    DiskStore, MemoryStore, RedisConfig, RedisStore, Sealer, StoreConfig, StoreError, StoreLimits, StoreUsage,
    SuspensionKeys, SuspensionStore,
};
/// At most this many extension calls may be pending at once in one execution.
pub use nexus_host_fns::host_state::{LISTED_PER_OUTPUT_LIMIT, MAX_PENDING_CALLS};
pub use nexus_host_fns::records::{Denial, Event, LogLevel, LogLine, PendingCall, Records, StateMutation, ViewCommand};
pub use nexus_host_fns::{
    Capability, CapabilityError, ExtensionRegistry, Inference, InferenceError, Kind, Warning, infer_capabilities,
};
/// Capability inference for TypeScript handlers (locations in the TypeScript).
pub use nexus_typescript::infer_capabilities as infer_typescript_capabilities;
/// Types stripped from a TypeScript handler, with the source map back to it.
pub use nexus_typescript::strip_types as strip_typescript;
