//! The engine: runs one handler in a fresh guest instance, and resumes it when suspended.
//!
//! Every execution instantiates the pre-initialized guest (a Wizer snapshot of QuickJS with
//! its prelude) from an [`InstancePre`] into a pooled memory slot whose copy-on-write image is
//! the snapshot, so a fresh instance costs a few page resets rather than a QuickJS start-up.
//! Limits: a timeout through epoch interruption, memory through the store's limiter (the only
//! memory limit: a refused growth ends the execution, whatever the handler catches), stack
//! through `max_wasm_stack` and the guest's shadow stack.
//! A trap discards the instance and nothing else.
//!
//! ```no_run
//! use nexus_actors::engine::{Engine, EngineConfig, ExecutionRequest, Status};
//!
//! let engine = Engine::new(EngineConfig::default())?;
//! let outcome = engine.execute(ExecutionRequest::source("return 1 + 2"));
//! assert_eq!(outcome.result.status, Status::Success);
//! assert_eq!(outcome.result.return_value, serde_json::json!(3));
//! # Ok::<(), wasmtime::Error>(())
//! ```

mod compile;
mod compile_cache;
mod config;
pub(crate) mod disk_cache;
mod errors;
mod hibernation;
pub mod image;
mod instance;
mod library;
mod memory_budget;
mod memory_reset;
mod module;
mod passive_data;
mod preload;
mod request;
mod reset_timing;
mod snapshot;
mod step;
mod ticker;
mod typescript;
mod written_pages;

use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_abi::{ErrorCode, ExtOutcome, ResumeInput, RunInput};
use nexus_host_fns::{Checker, HostState};
use wasmtime::Result;
use wasmtime::error::Context as _;
use wasmtime::{Enabled, InstanceAllocationStrategy, InstancePre, Linker, PoolingAllocationConfig};

pub use config::{ConfigError, EngineConfig, LibrarySlotReset, MAX_WASM_STACK};
pub use errors::snippet;
pub use library::{Library, PreloadError};
pub use module::{GUEST_WASM, GuestImage, image_identity};
pub use preload::{ImageOrigin, start_identity};
pub use request::{
    ExecutionError, ExecutionMetrics, ExecutionRequest, ExecutionResult, Handler, Language, Location, MAX_NESTING,
    Status, Suspension, SuspensionId,
};
pub use typescript::Authored;

use compile_cache::CompileCache;
use disk_cache::DiskCache;
use instance::{EntryPoint, GuestInstance, MemoryLimit, StoreData};
use memory_budget::MemoryBudget;
use memory_reset::MemoryReset;
use step::{Loaded, Step};
use ticker::{Ticker, Watch};

/// The wasmtime engine, the linked guest, and the epoch ticker behind its timeouts.
#[derive(Clone)]
pub struct Engine {
    pre: InstancePre<StoreData>,
    config: EngineConfig,
    /// The snapshot's initial linear memory: no execution can run in less.
    min_memory: u64,
    /// The snapshot's linear memory as every instance starts with it: suspension images keep
    /// their memory as a delta against it.
    snapshot: Arc<[u8]>,
    /// Resets an instance's memory to the snapshot when it is dropped, copying back only the
    /// pages its execution wrote: with libraries, where the kernel can track them; `None`
    /// leaves the reset to wasmtime.
    memory_reset: Option<MemoryReset>,
    /// What all instances together may grow their memory by ([`EngineConfig::memory_budget`]).
    memory_budget: Arc<MemoryBudget>,
    slot_reset: SlotReset,
    /// The export names of the guest's mutable globals, which a suspension image keeps.
    globals: Arc<[String]>,
    cache: Arc<CompileCache>,
    ticker: Arc<Ticker>,
    /// The identity of the image every execution starts from (see [`Engine::image_identity`]).
    identity: [u8; 32],
    origin: ImageOrigin,
}

/// The result of a step of execution and, when the handler is suspended, the execution to
/// resume later.
pub struct Outcome {
    pub result: ExecutionResult,
    pub parked: Option<ParkedExecution>,
    /// The instance of a step that ran to its end. Dropping it resets its pooled memory slot
    /// (a scan of the slot's page table and a copy of the pages the execution wrote: about a
    /// third of a trivial execution), so a caller with a result to deliver can deliver it
    /// first; otherwise it goes with the outcome.
    pub spent: Option<SpentInstance>,
    /// Nothing of the handler ran: the request itself was refused (`INVALID_ARGUMENT`: an
    /// argument nested too deep, a memory limit out of range, a handler the engine does not
    /// load), and `result` carries why. See [`crate::Refusal`].
    pub refused: bool,
}

/// A finished instance; its pooled slot is reset when it is dropped.
pub struct SpentInstance {
    _instance: Box<GuestInstance>,
}

/// A suspended execution: its instance, kept alive until it is resumed or dropped.
pub struct ParkedExecution {
    /// Boxed: a parked execution is a small handle that is moved around (to a supervisor's
    /// table, back into `resume`) while its store stays put.
    instance: Box<GuestInstance>,
    source: Option<Authored>,
    /// Running time still allowed (time parked does not count).
    time_left: Duration,
    span: tracing::Span,
}

impl ParkedExecution {
    /// The extension calls the execution waits for.
    pub fn pending_calls(&self) -> &[nexus_host_fns::records::PendingCall] {
        self.instance.store.data().host.pending_calls()
    }
}

/// How a finished instance's memory slot is brought back to the snapshot ([`Engine::slot_reset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotReset {
    /// The pages the slot's page table says were written, up to `memory_keep_resident`; past
    /// it the slot is given back to the OS (wasmtime's reset, for a snapshot that fits).
    PageTableScan,
    /// Exactly the pages the execution wrote, which the kernel tracked (a snapshot with
    /// libraries, where the kernel allows it and it is faster: see `LibrarySlotReset`).
    WrittenPages,
    /// All of the snapshot and 512 KiB past it (a snapshot with libraries, where the kernel
    /// cannot track written pages or this is faster): resident in every slot used.
    WholeSlot,
}

/// A resume that could not be applied; the execution is still parked.
pub struct ResumeRefused {
    pub error: ExecutionError,
    pub parked: ParkedExecution,
}

impl Engine {
    /// Instance slots of an engine made with [`Engine::new`].
    pub const DEFAULT_SLOTS: u32 = 1024;

    /// An engine running the committed guest, with room for [`Engine::DEFAULT_SLOTS`] instances.
    pub fn new(config: EngineConfig) -> Result<Self> {
        Engine::with_slots(config, Engine::DEFAULT_SLOTS)
    }

    /// An engine running the committed guest with room for `slots` instances alive at once
    /// (running or parked), each holding one pooled memory slot.
    pub fn with_slots(config: EngineConfig, slots: u32) -> Result<Self> {
        Engine::with_image(config, &GuestImage::committed(), slots)
    }

    /// An engine running `image` (the guest of another build: a rolling deploy resumes the
    /// suspensions of the previous one on it), with the configured libraries preloaded on it,
    /// and room for `slots` instances alive at once.
    pub fn with_image(config: EngineConfig, base: &GuestImage, slots: u32) -> Result<Self> {
        config.check_stack()?;
        // Checked again once libraries have made the snapshot's memory larger.
        config.check_memory_limits(base.memory_minimum()?)?;
        let engine = wasmtime_engine(&config, slots, config.memory_keep_resident, Enabled::Auto)?;

        let key_file = config.cache_key_file.as_deref();
        let module_cache = DiskCache::open_or_warn(config.module_cache_dir.as_deref(), key_file, "module");
        let ticker = Arc::new(Ticker::start(&engine));
        let (image, origin) = preload::start_image(&engine, base, &config.libraries, module_cache.as_ref(), &ticker)?;
        let module = module::guest_module(&engine, &image, module_cache.as_ref())?;
        config.check_memory_limits(image.memory_minimum()?)?;
        let bytecode_cache = DiskCache::open_or_warn(config.compile_cache_dir.as_deref(), key_file, "compile")
            .map(|cache| cache.bounded(config.compile_cache_dir_bytes));
        let cache = Arc::new(CompileCache::new(
            config.compile_cache_entries,
            config.compile_cache_bytes,
            bytecode_cache,
            image.identity(),
        ));
        let parts = Parts { config, image, origin, cache };
        // Libraries make the snapshot larger than the part of a slot kept resident. Wasmtime's
        // reset would then release the rest, and every execution would fault the snapshot's
        // pages in anew (hundreds of microseconds with lodash): its page-table scan reports at
        // most 32 runs of written pages, and an execution that uses a library writes pages all
        // over its heap (refcounts, atoms, allocations; lodash's wrote 36 to 64 pages in more
        // runs than that). Such a slot is reset either by copying back the pages the kernel
        // saw each execution write (`memory_reset`) or by copying all of it back (3.1 MiB with
        // lodash, all kept resident in every slot used): see `LibrarySlotReset`.
        let keep_whole = parts.image.memory_minimum()? as usize + LIBRARY_HEADROOM;
        if parts.config.libraries.is_empty() || keep_whole <= parts.config.memory_keep_resident {
            return Engine::assemble(&parts, engine, ticker, &module, SlotReset::PageTableScan);
        }
        let whole = |slots| {
            let engine = wasmtime_engine(&parts.config, slots, keep_whole, Enabled::No)?;
            let module = module::guest_module(&engine, &parts.image, module_cache.as_ref())?;
            let ticker = Arc::new(Ticker::start(&engine));
            Engine::assemble(&parts, engine, ticker, &module, SlotReset::WholeSlot)
        };
        let choice = parts.config.library_slot_reset;
        if choice == LibrarySlotReset::WholeSlot || !MemoryReset::available() {
            return log_slot_reset(whole(slots)?);
        }
        let tracked = Engine::assemble(&parts, engine, ticker, &module, SlotReset::WrittenPages)?;
        if choice == LibrarySlotReset::WrittenPages {
            return log_slot_reset(tracked);
        }
        let timed = reset_timing::faster(&tracked, &whole(2)?);
        tracing::info!(
            written_pages_us = timed.written_pages.as_secs_f64() * 1e6,
            whole_slot_us = timed.whole_slot.as_secs_f64() * 1e6,
            "timed the slot resets of the preloaded image (an execution and its reset, median)"
        );
        match timed.faster {
            SlotReset::WrittenPages => log_slot_reset(tracked),
            _ => {
                // Its slots' address space first: a pool may be as large as the machine allows.
                drop(tracked);
                log_slot_reset(whole(slots)?)
            }
        }
    }

    /// The engine of `parts` on `engine`, whose slots are reset as `slot_reset` says.
    fn assemble(
        parts: &Parts,
        engine: wasmtime::Engine,
        ticker: Arc<Ticker>,
        module: &wasmtime::Module,
        slot_reset: SlotReset,
    ) -> Result<Engine> {
        let mut linker = Linker::new(&engine);
        nexus_host_fns::imports::add_to_linker(&mut linker)?;
        nexus_host_fns::wasi::add_to_linker(&mut linker)?;
        let pre = linker.instantiate_pre(module).context("linking the guest")?;
        let globals = image::mutable_globals(parts.image.wasm()).map_err(|e| wasmtime::format_err!("{e}"))?.into();
        let mut engine = Engine {
            pre,
            config: parts.config.clone(),
            min_memory: parts.image.memory_minimum()?,
            snapshot: Arc::from([]),
            memory_reset: None,
            memory_budget: MemoryBudget::new(usize::try_from(parts.config.memory_budget).unwrap_or(usize::MAX)),
            slot_reset,
            globals,
            cache: parts.cache.clone(),
            ticker,
            identity: parts.image.identity(),
            origin: parts.origin,
        };
        engine.snapshot = engine.blank_instance()?.memory().into();
        if slot_reset == SlotReset::WrittenPages {
            engine.memory_reset = Some(MemoryReset::new(engine.snapshot.clone(), engine.config.memory_keep_resident));
        }
        Ok(engine)
    }

    /// The identity of the snapshot image every execution starts from: the SHA-256 of the guest
    /// module or, with preloaded libraries, of the guest's identity and, in order, each
    /// library's name and source. It keys the compiled module and the compile cache, and seals
    /// suspension images, which are only ever restored into an engine of the same identity.
    pub fn image_identity(&self) -> [u8; 32] {
        self.identity
    }

    /// How a finished instance's memory slot is brought back to the snapshot.
    pub fn slot_reset(&self) -> SlotReset {
        self.slot_reset
    }

    /// Whether the image was the guest as given, built at this start, or read from the cache.
    pub fn image_origin(&self) -> ImageOrigin {
        self.origin
    }

    /// Runs a handler in a fresh instance until it settles or suspends.
    pub fn execute(&self, request: ExecutionRequest) -> Outcome {
        let started = Instant::now();
        let span = tracing::info_span!(
            "execution",
            panel_id = %request.panel_id,
            handler = %request.handler_name,
            status = tracing::field::Empty,
            code = tracing::field::Empty,
        );
        // Checked first: refused for anything else, a request nested too deep would be dropped
        // by serde_json's drop, which recurses.
        if let Some(value) = request.too_deep() {
            request.drop_flat();
            return refused(format!("{value} nests arrays and objects more than {MAX_NESTING} deep"));
        }
        let memory_limit = request.memory_limit.unwrap_or(self.config.default_memory_limit);
        if !(self.min_memory..=self.config.max_memory_limit).contains(&memory_limit) {
            return refused(format!(
                "memory limit {memory_limit} bytes is outside {} to {} bytes (the snapshot alone needs the least)",
                self.min_memory, self.config.max_memory_limit
            ));
        }
        let mut capabilities = request.capabilities;
        if capabilities.is_empty() && self.config.infer_missing_capabilities {
            // A handler that does not parse gets nothing; running it reports the syntax error.
            let inferred = match &request.handler {
                Handler::Source(source) => nexus_host_fns::infer_capabilities(source).ok(),
                Handler::TypeScript(source) => nexus_typescript::infer_capabilities(source).ok(),
                Handler::Bytecode(_) => None,
            };
            capabilities = inferred.map(|i| i.capabilities).unwrap_or_default();
        }
        let host = HostState::new(
            request.state_snapshot,
            Checker::new(capabilities),
            request.extension_registry,
            self.config.output_limit,
        );
        let mut instance = match self.instantiate(host, memory_limit as usize) {
            Ok(instance) => instance,
            Err(e) => return failed(ErrorCode::Internal, format!("{e:#}")),
        };
        let mut time_left = request.timeout;
        let (code, source, loaded) = match self.load(request.handler, &mut instance, &mut time_left) {
            Ok(loaded) => loaded,
            Err((error, compile_time_us)) => {
                let mut result = ExecutionResult::failed(error);
                result.metrics.compile_time_us = compile_time_us;
                result.metrics.execution_time_us = started.elapsed().as_micros() as u64;
                // At load, `INVALID_ARGUMENT` is the handler refused before any of it ran (bytecode
                // that is not this runtime's, a body too large); other load errors are the
                // handler's own (a syntax error, an exception at its top level).
                let refused = result.error.as_ref().is_some_and(|e| e.code == ErrorCode::InvalidArgument);
                return Outcome { result, parked: None, spent: None, refused };
            }
        };
        let input = RunInput { code, args: request.args, scope: request.scope, random_seed: random_seed() };
        let step = Step { instance, source, time_left, started, span, loaded };
        self.step(step, EntryPoint::Run, &input)
    }

    /// Settles one pending call of a parked execution and runs it on. A call id that is not
    /// pending is refused and the execution stays parked.
    pub fn resume(
        &self,
        mut parked: ParkedExecution,
        call_id: u32,
        outcome: ExtOutcome,
    ) -> Result<Outcome, Box<ResumeRefused>> {
        let outcome = match outcome {
            ExtOutcome::Ok(value) if request::too_deep(&value) => {
                request::drop_flat(value);
                let error = ExecutionError::new(
                    ErrorCode::InvalidArgument,
                    format!("the result of call {call_id} nests arrays and objects more than {MAX_NESTING} deep"),
                );
                return Err(Box::new(ResumeRefused { error, parked }));
            }
            outcome => outcome,
        };
        if !parked.instance.store.data_mut().host.settle_call(call_id) {
            let error = ExecutionError::new(
                ErrorCode::InvalidArgument,
                format!("the suspension has no pending call {call_id}"),
            );
            return Err(Box::new(ResumeRefused { error, parked }));
        }
        let step = Step {
            instance: *parked.instance,
            source: parked.source,
            time_left: parked.time_left,
            started: Instant::now(),
            span: parked.span,
            loaded: Loaded::default(),
        };
        Ok(self.step(step, EntryPoint::Resume, &ResumeInput { call_id, outcome }))
    }

    /// Instantiates a fresh guest and drops it without running anything: the fixed cost under
    /// every execution, which the benchmarks measure on its own.
    pub fn instantiate_only(&self) -> Result<()> {
        self.blank_instance().map(drop)
    }

    /// A fresh instance with no capabilities, no state and no output budget.
    fn blank_instance(&self) -> Result<GuestInstance> {
        let host = HostState::new(Default::default(), Checker::default(), Default::default(), 0);
        self.instantiate(host, self.config.default_memory_limit as usize)
    }

    /// A fresh instance of the snapshot, whose memory is reset as this engine resets it.
    fn instantiate(&self, host: HostState, max_memory: usize) -> Result<GuestInstance> {
        let limits = MemoryLimit::new(max_memory, Some(self.memory_budget.clone()));
        GuestInstance::instantiate(&self.pre, host, limits, self.memory_reset.clone())
    }

    /// Lets the next call into `instance` run for `budget`: the ticker interrupts it past that.
    pub(super) fn watch(&self, instance: &mut GuestInstance, budget: Duration) -> Watch<'_> {
        let now = Instant::now();
        // A budget too large for the clock is no limit at all.
        let deadline = now.checked_add(budget).unwrap_or(now + Duration::from_secs(u32::MAX.into()));
        instance.store.data_mut().deadline = deadline;
        // Interrupted by the next increment, whatever it is for; `ticker::expired` decides.
        instance.store.set_epoch_deadline(1);
        self.ticker.watch(deadline)
    }
}

/// What a slot keeps resident beyond a snapshot with libraries, for what an execution allocates.
const LIBRARY_HEADROOM: usize = 512 << 10;

/// What every engine made from one start shares, whichever way its slots are reset.
struct Parts {
    config: EngineConfig,
    image: GuestImage,
    origin: ImageOrigin,
    cache: Arc<CompileCache>,
}

fn log_slot_reset(engine: Engine) -> Result<Engine> {
    tracing::info!(slot_reset = ?engine.slot_reset, "memory slots of the preloaded image are reset");
    Ok(engine)
}

fn wasmtime_engine(
    config: &EngineConfig,
    slots: u32,
    keep_resident: usize,
    pagemap_scan: Enabled,
) -> Result<wasmtime::Engine> {
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        .max_memory_size(config.max_memory_limit as usize)
        .linear_memory_keep_resident(keep_resident)
        .table_keep_resident(config.table_keep_resident)
        // Without it, reusing a slot resets all `memory_keep_resident` bytes (a 1 MiB
        // memset of the shadow stack and a 1 MiB copy of the snapshot, ~40% of a trivial
        // execution); with it (Linux 6.7+), only the pages the execution wrote.
        .pagemap_scan(pagemap_scan);
    let mut wasm = wasmtime::Config::new();
    wasm.epoch_interruption(true)
        .max_wasm_stack(config.max_wasm_stack)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    // The pool reserves the address space of every slot at once: what fails here is the
    // configuration, its size above all.
    wasmtime::Engine::new(&wasm).map_err(|e| {
        let message = format!(
            "configuring wasmtime for {slots} memory slots of {} bytes each: {e:#} (a pool reserves the address \
             space of all its slots: fewer instances or a smaller largest memory limit need less)",
            config.max_memory_limit
        );
        ConfigError(message).into()
    })
}

fn failed(code: ErrorCode, message: String) -> Outcome {
    Outcome {
        result: ExecutionResult::failed(ExecutionError::new(code, message)),
        parked: None,
        spent: None,
        refused: false,
    }
}

/// The outcome of a request refused before anything ran (see [`Outcome::refused`]).
fn refused(message: String) -> Outcome {
    Outcome { refused: true, ..failed(ErrorCode::InvalidArgument, message) }
}

fn random_seed() -> [u64; 2] {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("host randomness is available");
    [
        u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
        u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes")),
    ]
}
