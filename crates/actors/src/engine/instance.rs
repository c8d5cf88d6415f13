//! One fresh guest instance: its store (host state and limits) and the calling convention of
//! its exports (write a MessagePack input, call, read the MessagePack reply).

use std::sync::Arc;
use std::time::Instant;

use nexus_abi::{decode, encode, exports, unpack_reply};
use nexus_host_fns::{Checker, HostAccess, HostState};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasmtime::error::Context as _;
use wasmtime::{Global, Instance, InstancePre, Memory, ResourceLimiter, Store, Trap, TypedFunc, Val};
use wasmtime::{Result, format_err as anyhow};

use super::memory_budget::MemoryBudget;
use super::memory_reset::{MemoryReset, Prefault};
use super::ticker;

/// What a store holds besides the instance: the host side of the execution and its limits.
pub struct StoreData {
    pub host: HostState,
    pub limits: MemoryLimit,
    /// When the call in progress must end (see [`super::ticker`]).
    pub deadline: Instant,
    /// The host has recorded a denial in this execution: evidence for `PERMISSION_DENIED`.
    pub denied: bool,
    /// The host has refused an extension call as unknown: evidence for `UNKNOWN_EXTENSION`.
    pub unknown_extension: bool,
    memory: Option<Memory>,
}

impl HostAccess for StoreData {
    fn host(&mut self) -> &mut HostState {
        &mut self.host
    }

    fn memory(&self) -> Memory {
        // Host functions can only be called by a running instance, and the memory is set
        // right after instantiation, before any guest code runs.
        self.memory.expect("the guest memory is set at instantiation")
    }

    fn refused_unknown_extension(&mut self) {
        self.unknown_extension = true;
    }
}

/// Refuses memory growth past the execution's limit, or past what the engine's
/// [`MemoryBudget`] has left for all its instances, and remembers that it did. It is the one
/// memory limit (QuickJS has none of its own), and a refusal traps at once: the handler cannot
/// catch an out-of-memory and carry on, and the execution ends as `MEMORY_LIMIT` (its own
/// limit) or `OVERLOADED` (the engine's budget).
pub struct MemoryLimit {
    pub max_bytes: usize,
    pub refused: bool,
    budget: Option<Arc<MemoryBudget>>,
    /// Bytes reserved in the budget, given back when the instance is dropped.
    reserved: usize,
    pub over_budget: bool,
}

impl MemoryLimit {
    pub fn new(max_bytes: usize, budget: Option<Arc<MemoryBudget>>) -> MemoryLimit {
        MemoryLimit { max_bytes, refused: false, budget, reserved: 0, over_budget: false }
    }

    /// The engine's budget, when the instance has one.
    pub fn budget(&self) -> Option<&MemoryBudget> {
        self.budget.as_deref()
    }
}

impl Drop for MemoryLimit {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.release(self.reserved);
        }
    }
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        if desired > self.max_bytes {
            self.refused = true;
            return Err(anyhow!(
                "the guest's memory would grow to {desired} bytes, past its limit of {} bytes",
                self.max_bytes
            ));
        }
        // The initial memory (current 0) is the snapshot's: not counted.
        let growth = if current == 0 { 0 } else { desired.saturating_sub(current) };
        match &self.budget {
            Some(budget) if growth > 0 && !budget.reserve(growth) => {
                self.over_budget = true;
                Err(anyhow!("the engine's memory budget of {} bytes is spent", budget.limit()))
            }
            _ => {
                self.reserved += growth;
                Ok(true)
            }
        }
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        // QuickJS never grows its function table; a guest that tries is refused.
        Ok(desired <= 1 << 16)
    }
}

type Entry = TypedFunc<(u32, u32), i64>;

/// Below this much shadow stack left, an out-of-bounds access is the stack running out.
const SHADOW_STACK_MARGIN: i32 = 64 << 10;

/// A live guest instance and the store that owns it.
pub struct GuestInstance {
    pub store: Store<StoreData>,
    instance: Instance,
    memory: Memory,
    /// The guest's shadow stack pointer (`__stack_pointer`, exported by the guest build).
    stack_pointer: Option<Global>,
    alloc: TypedFunc<u32, u32>,
    run: Entry,
    resume: Entry,
    compile: Entry,
    /// Only the committed guest has it (a snapshot with libraries no longer does).
    preload: Option<Entry>,
    /// Resets the memory when the instance is dropped, before wasmtime's own reset of its slot
    /// (which then finds nothing to do); `None` leaves it all to wasmtime's.
    reset: Option<MemoryReset>,
    /// What the reset leaves to do once wasmtime's is done: declared last, so dropped after
    /// the store.
    prefault: Option<Prefault>,
}

impl Drop for GuestInstance {
    fn drop(&mut self) {
        if let Some(reset) = &self.reset {
            let engine = self.store.engine().clone();
            self.prefault = reset.reset(self.memory.data_mut(&mut self.store), engine);
        }
    }
}

/// Which entry point to call.
#[derive(Clone, Copy)]
pub enum EntryPoint {
    Run,
    Resume,
    Compile,
    Preload,
}

impl GuestInstance {
    pub fn instantiate(
        pre: &InstancePre<StoreData>,
        host: HostState,
        limits: MemoryLimit,
        reset: Option<MemoryReset>,
    ) -> Result<Self> {
        let data =
            StoreData { host, limits, deadline: Instant::now(), denied: false, unknown_extension: false, memory: None };
        let mut store = Store::new(pre.module().engine(), data);
        store.limiter(|data| &mut data.limits);
        store.epoch_deadline_callback(|store| Ok(ticker::expired(store.data().deadline)));
        let instance = pre.instantiate(&mut store).context("instantiating the guest")?;
        let memory = instance.get_memory(&mut store, "memory").context("the guest exports its memory")?;
        store.data_mut().memory = Some(memory);
        Ok(GuestInstance {
            alloc: instance.get_typed_func(&mut store, exports::ALLOC)?,
            run: instance.get_typed_func(&mut store, exports::RUN)?,
            resume: instance.get_typed_func(&mut store, exports::RESUME)?,
            compile: instance.get_typed_func(&mut store, exports::COMPILE)?,
            preload: instance.get_typed_func(&mut store, exports::PRELOAD).ok(),
            stack_pointer: instance.get_global(&mut store, "__stack_pointer"),
            instance,
            memory,
            store,
            reset,
            prefault: None,
        })
    }

    /// Calls an entry point with `input`; an `Err` is a trap (or host-function failure) that
    /// leaves the instance unusable.
    pub fn call<I: Serialize, O: DeserializeOwned>(&mut self, entry: EntryPoint, input: &I) -> Result<O> {
        let input = encode(input);
        let len = u32::try_from(input.len()).context("input larger than 4 GiB")?;
        let ptr = self.alloc.call(&mut self.store, len)?;
        self.memory.write(&mut self.store, ptr as usize, &input).context("writing the guest input")?;
        let func = match entry {
            EntryPoint::Run => &self.run,
            EntryPoint::Resume => &self.resume,
            EntryPoint::Compile => &self.compile,
            EntryPoint::Preload => self.preload.as_ref().context("this guest image cannot preload libraries")?,
        };
        let packed = func.call(&mut self.store, (ptr, len)).map_err(|error| self.shadow_stack_overflow(error))?;
        let (ptr, len) = unpack_reply(packed);
        let (data, store) = self.memory.data_and_store_mut(&mut self.store);
        let reply = data
            .get(ptr as usize..ptr as usize + len as usize)
            .ok_or_else(|| anyhow!("the guest's reply lies outside its memory"))?;
        // What a handler returns or throws is kept by the host too: a reply that could not fit
        // in the output budget left is refused undecoded (the step reports the budget spent).
        if matches!(entry, EntryPoint::Run | EntryPoint::Resume) && store.host.admit(reply).is_err() {
            return Err(anyhow!("the guest's reply of {len} bytes exceeds the output budget left"));
        }
        decode(reply).context("decoding the guest's reply")
    }

    /// QuickJS keeps its frames on the guest's shadow stack, which sits first in linear memory
    /// and grows down towards address 0: a handler whose frames exhaust it (a few deep calls
    /// with huge frames are enough, long before wasmtime's own stack limit) makes the stack
    /// pointer go below 0 and the next access trap as out of bounds. That is the handler's
    /// stack overflow, not a failure of the sandbox.
    fn shadow_stack_overflow(&mut self, error: wasmtime::Error) -> wasmtime::Error {
        let out_of_bounds = error.downcast_ref::<Trap>() == Some(&Trap::MemoryOutOfBounds);
        let stack_left = self.stack_pointer.and_then(|global| global.get(&mut self.store).i32());
        match stack_left {
            Some(left) if out_of_bounds && left < SHADOW_STACK_MARGIN => Trap::StackOverflow.into(),
            _ => error,
        }
    }

    pub fn memory_bytes(&self) -> u64 {
        self.memory.data_size(&self.store) as u64
    }

    /// The linear memory's bytes.
    pub fn memory(&self) -> &[u8] {
        self.memory.data(&self.store)
    }

    /// The linear memory's bytes, to write.
    pub fn memory_mut(&mut self) -> &mut [u8] {
        self.memory.data_mut(&mut self.store)
    }

    /// Grows the linear memory to `bytes` (within the execution's limit and the engine's
    /// memory budget).
    pub fn grow_memory_to(&mut self, bytes: u64) -> Result<()> {
        let page = self.memory.page_size(&self.store);
        let current = self.memory.size(&self.store);
        let wanted = bytes.div_ceil(page);
        if wanted > current {
            self.memory.grow(&mut self.store, wanted - current).context("growing the restored memory")?;
        }
        Ok(())
    }

    /// The shadow stack pointer: everything below it is dead once the guest has returned.
    pub fn stack_pointer(&mut self) -> u32 {
        self.stack_pointer.and_then(|global| global.get(&mut self.store).i32()).map_or(0, |sp| sp.max(0) as u32)
    }

    /// The value of the exported global `name`.
    pub fn global(&mut self, name: &str) -> Result<Val> {
        let global = self.instance.get_global(&mut self.store, name).with_context(|| format!("no global {name}"))?;
        Ok(global.get(&mut self.store))
    }

    pub fn set_global(&mut self, name: &str, value: Val) -> Result<()> {
        let global = self.instance.get_global(&mut self.store, name).with_context(|| format!("no global {name}"))?;
        global.set(&mut self.store, value)
    }

    /// The store's host state, leaving an empty one: the instance can then be dropped (and its
    /// pooled slot reset) later, off the path of whoever waits for the host state.
    pub fn take_host(&mut self) -> HostState {
        let empty = HostState::new(Default::default(), Checker::new([]), Default::default(), 0);
        std::mem::replace(&mut self.store.data_mut().host, empty)
    }
}
