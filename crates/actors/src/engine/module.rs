//! The compiled guest module: compiled once per process and engine configuration, and cached
//! serialized on disk so a new process (a CLI run, a test binary) skips the compilation.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use sha2::Digest as _;
use wasmtime::Result;
use wasmtime::error::Context as _;
use wasmtime::{Engine, Module};

/// The pre-initialized guest (Wizer snapshot), rebuilt by `scripts/build-guest.sh`.
pub const GUEST_WASM: &[u8] = include_bytes!("../../../../guest/nexus_guest.wasm");

/// Returns the guest module for `engine`, compiling it at most once per process per
/// compatible engine configuration.
pub fn guest_module(engine: &Engine, cache_dir: Option<&Path>) -> Result<Module> {
    static COMPILED: OnceLock<Mutex<HashMap<u64, Vec<u8>>>> = OnceLock::new();
    let key = cache_key(engine);
    let compiled = COMPILED.get_or_init(Default::default);
    let mut compiled = compiled.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(bytes) = compiled.get(&key) {
        // SAFETY: these bytes were serialized by this process for an engine with the same
        // compatibility hash.
        return unsafe { Module::deserialize(engine, bytes) }.context("loading the compiled guest");
    }
    let file = cache_dir.map(|dir| dir.join(format!("guest-{key:016x}.cwasm")));
    if let Some(module) = file.as_deref().and_then(|file| load(engine, file)) {
        compiled.insert(key, module.serialize().context("serializing the guest module")?);
        return Ok(module);
    }
    let module = Module::new(engine, GUEST_WASM).context("compiling the guest module")?;
    let bytes = module.serialize().context("serializing the guest module")?;
    if let Some(file) = &file {
        // A cache that cannot be written only costs the next process a compilation.
        let _ = super::compile_cache::write_atomically(file, &bytes);
    }
    compiled.insert(key, bytes);
    Ok(module)
}

/// A hash of [`GUEST_WASM`], computed once per process: it keys both the compiled module and
/// the compile cache, and hashing 1.7 MB is not free.
pub fn guest_hash() -> u64 {
    static HASH: OnceLock<u64> = OnceLock::new();
    *HASH.get_or_init(|| {
        let mut hasher = DefaultHasher::new();
        GUEST_WASM.hash(&mut hasher);
        hasher.finish()
    })
}

/// The identity of the snapshot image every execution starts from: the SHA-256 of the guest
/// module. A suspension image names it, and is only ever restored into the same snapshot.
pub fn image_identity() -> [u8; 32] {
    static IDENTITY: OnceLock<[u8; 32]> = OnceLock::new();
    *IDENTITY.get_or_init(|| sha2::Sha256::digest(GUEST_WASM).into())
}

fn cache_key(engine: &Engine) -> u64 {
    let mut hasher = DefaultHasher::new();
    guest_hash().hash(&mut hasher);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}

fn load(engine: &Engine, file: &Path) -> Option<Module> {
    // SAFETY: the file is in the user's own cache directory and was written by `store`;
    // wasmtime checks it was made by this wasmtime version with a compatible configuration.
    unsafe { Module::deserialize_file(engine, file) }.ok()
}
