//! The compiled guest module: compiled once per process and engine configuration, and cached
//! serialized on disk so a new process (a CLI run, a test binary) skips the compilation.
//!
//! A serialized module is native code that wasmtime maps into the host process unchecked, so
//! the disk copy goes through [`DiskCache`]: a directory another user can write is not used,
//! and a file that does not carry this user's MAC is never deserialized.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::Hash as _;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use wasmtime::Result;
use wasmtime::error::Context as _;
use wasmtime::{Engine, Module};

use super::disk_cache::{Digest, DiskCache, Sha256Hasher, digest, hex};

/// The pre-initialized guest (Wizer snapshot), rebuilt by `scripts/build-guest.sh`.
pub const GUEST_WASM: &[u8] = include_bytes!("../../../../guest/nexus_guest.wasm");

/// What an engine runs: the guest module, a pre-initialized snapshot. Its identity binds the
/// suspension images made on it and keys its compiled module. The committed guest is the
/// default; a runtime is given others to resume the suspensions of an earlier deploy.
#[derive(Clone)]
pub struct GuestImage {
    wasm: Arc<Cow<'static, [u8]>>,
    identity: Digest,
    /// What keys the compiled module: the identity, except for a preloaded image, whose module
    /// also depends on how this build makes one.
    module: Digest,
}

impl GuestImage {
    /// The guest this build embeds ([`GUEST_WASM`]).
    pub fn committed() -> Self {
        GuestImage { wasm: Arc::new(Cow::Borrowed(GUEST_WASM)), identity: guest_digest(), module: guest_digest() }
    }

    /// The guest module in `file` (a `nexus_guest.wasm` of another build).
    pub fn load(file: &Path) -> std::result::Result<Self, String> {
        let wasm = std::fs::read(file).map_err(|e| format!("reading the guest image {}: {e}", file.display()))?;
        if !wasm.starts_with(b"\0asm") {
            return Err(format!("{} is not a WebAssembly module", file.display()));
        }
        let identity = identity_of(&wasm);
        Ok(GuestImage { wasm: Arc::new(Cow::Owned(wasm)), identity, module: identity })
    }

    /// A guest built by this process (the snapshot with preloaded libraries), named by `identity`,
    /// its compiled module keyed by `module`.
    pub(crate) fn built(wasm: Vec<u8>, identity: Digest, module: Digest) -> Self {
        GuestImage { wasm: Arc::new(Cow::Owned(wasm)), identity, module }
    }

    pub fn wasm(&self) -> &[u8] {
        &self.wasm
    }

    /// The guest's initial linear memory, in bytes (read from the module, before any compile):
    /// no execution of it can run in less.
    pub fn memory_minimum(&self) -> Result<u64> {
        for payload in wasmparser::Parser::new(0).parse_all(&self.wasm) {
            if let wasmparser::Payload::MemorySection(memories) = payload.context("reading the guest module")? {
                let memory = memories.into_iter().next().context("the guest declares no memory")?;
                let memory = memory.context("reading the guest's memory")?;
                return Ok(memory.initial << memory.page_size_log2.unwrap_or(16));
            }
        }
        Err(wasmtime::format_err!("the guest declares no memory"))
    }

    /// The image identity: what suspension images made on this guest are sealed for.
    pub fn identity(&self) -> [u8; 32] {
        self.identity
    }
}

impl std::fmt::Debug for GuestImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GuestImage({})", hex(&self.identity))
    }
}

/// The one definition of an image's identity: the SHA-256 of the guest module.
fn identity_of(wasm: &[u8]) -> Digest {
    digest(&[wasm])
}

/// Returns the module of `image` for `engine`, compiling it at most once per process per
/// compatible engine configuration.
pub fn guest_module(engine: &Engine, image: &GuestImage, disk: Option<&DiskCache>) -> Result<Module> {
    static COMPILED: OnceLock<Mutex<HashMap<Digest, Vec<u8>>>> = OnceLock::new();
    let key = cache_key(engine, image);
    let compiled = COMPILED.get_or_init(Default::default);
    let mut compiled = compiled.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(bytes) = compiled.get(&key) {
        // SAFETY: these bytes were serialized by this process (below) for an engine with the
        // same compatibility hash, and never left its memory.
        return unsafe { Module::deserialize(engine, bytes) }.context("loading the compiled guest");
    }
    let name = file_name(&key);
    if let Some(module) = disk.and_then(|disk| load(engine, disk, &name)) {
        compiled.insert(key, module.serialize().context("serializing the guest module")?);
        return Ok(module);
    }
    let module = Module::new(engine, image.wasm()).context("compiling the guest module")?;
    let bytes = module.serialize().context("serializing the guest module")?;
    if let Some(disk) = disk {
        // A cache that cannot be written only costs the next process a compilation.
        let _ = disk.write(&name, &bytes);
    }
    compiled.insert(key, bytes);
    Ok(module)
}

/// The SHA-256 digest of [`GUEST_WASM`], computed once per process: it is the image identity
/// that keys both the compiled module and the compile cache (hashing 1.7 MB is not free).
pub fn guest_digest() -> Digest {
    static DIGEST: OnceLock<Digest> = OnceLock::new();
    *DIGEST.get_or_init(|| identity_of(GUEST_WASM))
}

fn cache_key(engine: &Engine, image: &GuestImage) -> Digest {
    let mut compatibility = Sha256Hasher::default();
    engine.precompile_compatibility_hash().hash(&mut compatibility);
    digest(&[&image.module[..], &compatibility.digest()[..]])
}

/// The identity of the committed guest's snapshot, which executions start from unless the
/// runtime is given another ([`GuestImage`]). A suspension image names it, and is only ever
/// restored into the same snapshot.
pub fn image_identity() -> [u8; 32] {
    guest_digest()
}

fn file_name(key: &Digest) -> String {
    format!("guest-{}.cwasm", hex(key))
}

/// The module in cache entry `name`, if the entry verifies and wasmtime accepts it.
fn load(engine: &Engine, disk: &DiskCache, name: &str) -> Option<Module> {
    let bytes = disk.read(name)?;
    // SAFETY: `disk.read` returned these bytes only because they carry this user's MAC over
    // `name` and them, under a key nobody else can read, in a directory and a file nobody else
    // can write: they are what `guest_module` serialized in some process of this user for this
    // name, which encodes the engine's compatibility hash. wasmtime also checks its version and
    // configuration before using them. They are in our memory, so no one changes them meanwhile.
    unsafe { Module::deserialize(engine, &bytes) }.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::disk_cache::CacheKey;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("nexus-module-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_planted_module_is_never_loaded() {
        let root = scratch("planted");
        let engine = Engine::default();
        let disk = DiskCache::with_key(&root, CacheKey::from_bytes([1; 32])).unwrap();
        let name = file_name(&cache_key(&engine, &GuestImage::committed()));
        // Native code of someone else's choosing, under the guest's name: what a writer of
        // the cache directory could plant.
        let planted = Module::new(&engine, b"\0asm\x01\0\0\0").unwrap().serialize().unwrap();
        std::fs::write(root.join(&name), &planted).unwrap();
        assert!(load(&engine, &disk, &name).is_none(), "a bare serialized module");
        let attacker = DiskCache::with_key(&root, CacheKey::from_bytes([2; 32])).unwrap();
        attacker.write(&name, &planted).unwrap();
        assert!(load(&engine, &disk, &name).is_none(), "a module sealed with another key");
        disk.write(&name, &planted).unwrap();
        assert!(load(&engine, &disk, &name).is_some(), "the same module sealed with our key loads");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn the_guest_module_is_cached_sealed_and_read_back() {
        let root = scratch("sealed");
        let engine = Engine::default();
        let disk = DiskCache::with_key(&root, CacheKey::from_bytes([3; 32])).unwrap();
        guest_module(&engine, &GuestImage::committed(), Some(&disk)).unwrap();
        let name = file_name(&cache_key(&engine, &GuestImage::committed()));
        assert!(load(&engine, &disk, &name).is_some(), "written sealed, read back");
        let _ = std::fs::remove_dir_all(&root);
    }
}
