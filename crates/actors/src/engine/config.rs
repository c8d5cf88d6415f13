//! Engine configuration: one documented knob per limit.

use std::path::PathBuf;

use super::library::Library;

/// How the engine runs handlers. `Default` gives the documented values; change a knob by setting
/// its field. The struct is `#[non_exhaustive]`, so a knob added later breaks no caller: start
/// from `EngineConfig::default()` (a struct literal is refused outside this crate).
///
/// ```no_run
/// use nexus_actors::engine::{Engine, EngineConfig, Library};
///
/// let mut config = EngineConfig::default();
/// config.output_limit = 1 << 20;
/// config.libraries.push(Library::new("greet.js", "function greet(name) { return `hello ${name}`; }"));
/// let engine = Engine::new(config)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// How many instances an engine may hold at once (its pooled memory slots) is not among them:
/// it is given to the engine's constructor ([`super::Engine::with_slots`]), and a runtime's pool
/// computes the number it needs from its configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Memory limit of an execution whose request names none. Default 64 MiB.
    pub default_memory_limit: u64,
    /// Largest memory limit a request may ask for (the size of a pooled memory slot).
    /// Default 256 MiB.
    pub max_memory_limit: u64,
    /// Native stack wasm may use (wasmtime `max_wasm_stack`): it bounds handler recursion
    /// (about 1,000 nested JavaScript calls per MiB), ending deeper recursion as
    /// `STACK_OVERFLOW`. At most [`MAX_WASM_STACK`] (1.5 MiB; the threads that call into the
    /// engine have 2 MiB). Default 1 MiB.
    pub max_wasm_stack: usize,
    /// Linear memory all executions together may grow by beyond the snapshot's, running or
    /// suspended live (a hibernated one holds none): each request's memory limit bounds one
    /// handler, this bounds them all, so hostile handlers running at once cannot take more of
    /// the host's memory than this (plus the pool's snapshots and the suspension store's
    /// bound). An execution whose growth would pass it fails with `OVERLOADED`. Size it to
    /// the machine. Default 4 GiB.
    pub memory_budget: u64,
    /// Bytes of records (mutations, events, view commands, logs, pending calls) and of the
    /// value it returns or the error it throws that one execution may make the host keep;
    /// beyond it the execution ends as `MEMORY_LIMIT`. Default 16 MiB.
    pub output_limit: usize,
    /// Linear-memory bytes kept resident (not returned to the OS) when a pooled slot is
    /// reused, so the next instance's copy-on-write reset is cheap. Default 2 MiB; with
    /// libraries and a slot reset whole (see [`super::SlotReset`]), at least the snapshot's
    /// memory plus 512 KiB.
    pub memory_keep_resident: usize,
    /// How the memory slots of a snapshot with libraries are reset ([`super::SlotReset`]).
    /// Default [`LibrarySlotReset::Fastest`].
    pub library_slot_reset: LibrarySlotReset,
    /// Table bytes kept resident likewise. Default 64 KiB.
    pub table_keep_resident: usize,
    /// A request without capabilities runs with the ones inferred from its source (literal
    /// accesses only: dynamic ones stay denied) instead of none. Default off: secure by default.
    pub infer_missing_capabilities: bool,
    /// Compiled handler sources kept in memory (bytecode); 0 compiles every source execution.
    /// Default 1024.
    pub compile_cache_entries: usize,
    /// Bytes of bytecode those entries may hold together (bytecode is up to ~4 times its
    /// source); a source whose bytecode is larger than this is compiled every time. Default
    /// 64 MiB.
    pub compile_cache_bytes: usize,
    /// Directory where compiled handler bytecode is also kept across processes. Default none.
    /// Like the module cache directory, it is not used when another user can write it.
    pub compile_cache_dir: Option<PathBuf>,
    /// Bytes of entries that directory may hold: past it, the oldest are deleted. Default 1 GiB.
    pub compile_cache_dir_bytes: u64,
    /// Directory for the compiled guest module, so a new process skips compiling it.
    /// Default `$XDG_CACHE_HOME/nexus` or `~/.cache/nexus`; `None` compiles in every process.
    /// Not used (with a warning) when another user can write it or a directory above it.
    pub module_cache_dir: Option<PathBuf>,
    /// The file holding the key that authenticates both caches' files (made on first use,
    /// readable by this user only; it must not be inside a cache directory). A cache file
    /// without this key's MAC is ignored. Default `$XDG_DATA_HOME/nexus/cache.key` or
    /// `~/.local/share/nexus/cache.key`; `None` keeps nothing on disk.
    pub cache_key_file: Option<PathBuf>,
    /// Scripts evaluated, in order, into the snapshot every execution starts from (a date
    /// library, lodash, a platform's SDK): their globals are visible to every handler at no
    /// cost per execution, and what one handler changes in them is gone in the next. Built at
    /// start with Wizer and kept in the module cache directory, so a start with a set built
    /// before skips the build. A library that fails to parse, throws, or reaches the host
    /// (state, events, view, extensions, `console`, `Math.random`) while it loads stops the
    /// start with a [`super::PreloadError`] naming it. The clock reads 0 while they load.
    /// Default none.
    pub libraries: Vec<Library>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            default_memory_limit: 64 << 20,
            max_memory_limit: 256 << 20,
            max_wasm_stack: 1 << 20,
            output_limit: 16 << 20,
            memory_budget: 4 << 30,
            memory_keep_resident: 2 << 20,
            library_slot_reset: LibrarySlotReset::Fastest,
            table_keep_resident: 64 << 10,
            infer_missing_capabilities: false,
            compile_cache_entries: 1024,
            compile_cache_bytes: 64 << 20,
            compile_cache_dir: None,
            compile_cache_dir_bytes: 1 << 30,
            module_cache_dir: user_dir("XDG_CACHE_HOME", ".cache"),
            cache_key_file: user_dir("XDG_DATA_HOME", ".local/share").map(|dir| dir.join("cache.key")),
            libraries: Vec::new(),
        }
    }
}

/// `$<variable>/nexus`, or `~/<under_home>/nexus` when the variable is unset or empty.
fn user_dir(variable: &str, under_home: &str) -> Option<PathBuf> {
    let base = match std::env::var_os(variable) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(under_home),
    };
    Some(base.join("nexus"))
}

/// How the memory slots of a snapshot with libraries are reset ([`EngineConfig::library_slot_reset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LibrarySlotReset {
    /// [`super::SlotReset::WrittenPages`] or [`super::SlotReset::WholeSlot`], whichever resets
    /// faster on this machine: the engine times both at start (~25 ms with lodash). Which
    /// wins depends on the machine far more than on the handler: measured on two VMs of the
    /// same size, each was twice as fast as the other on one of them.
    #[default]
    Fastest,
    /// Copy back only the pages each execution wrote, which the kernel tracks
    /// (userfaultfd write-protection, Linux 6.7+), where it allows it; elsewhere the whole slot.
    WrittenPages,
    /// Copy the whole slot back.
    WholeSlot,
}

/// An engine configuration that cannot be used: limits that contradict each other or the
/// snapshot, or a pool larger than the machine's address space allows. The runtime's start
/// reports it as [`crate::StartError::Config`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The largest `max_wasm_stack` ([`EngineConfig::max_wasm_stack`]): three quarters of the 2 MiB
/// stack of the threads that run executions, the rest left to the host's own frames (wasmtime's,
/// the host functions' and what they parse) that a handler recursing to its limit calls.
pub const MAX_WASM_STACK: usize = 3 << 19;

impl EngineConfig {
    /// Checks the wasm stack: more than [`MAX_WASM_STACK`] would let a handler recursing to its
    /// limit overflow its thread's stack, which aborts the process rather than failing the
    /// execution; none would run nothing.
    pub(super) fn check_stack(&self) -> Result<(), ConfigError> {
        match self.max_wasm_stack {
            0 => Err(ConfigError("max_wasm_stack is 0: no handler could run".into())),
            stack if stack > MAX_WASM_STACK => Err(ConfigError(format!(
                "max_wasm_stack, {stack} bytes, is above {MAX_WASM_STACK} bytes: the threads that run executions have \
                 2 MiB of stack, and the host's own frames need the rest"
            ))),
            _ => Ok(()),
        }
    }

    /// Checks the memory limits against the snapshot's own memory (`snapshot_bytes`): the
    /// largest limit must hold it, and the default limit lie between it and the largest.
    pub(super) fn check_memory_limits(&self, snapshot_bytes: u64) -> Result<(), ConfigError> {
        let (default, max) = (self.default_memory_limit, self.max_memory_limit);
        if max < snapshot_bytes {
            return Err(ConfigError(format!(
                "the largest memory limit, {max} bytes, is below the snapshot's own memory, {snapshot_bytes} bytes: \
                 no execution could run"
            )));
        }
        if (snapshot_bytes..=max).contains(&default) {
            return Ok(());
        }
        Err(ConfigError(format!(
            "the default memory limit, {default} bytes, is outside {snapshot_bytes} to {max} bytes (at least the \
             snapshot's own memory, its preloaded libraries included, at most the largest memory limit): set \
             EngineConfig::default_memory_limit (Node defaultMemoryLimit, CLI --memory-mb) within it"
        )))
    }
}
