//! The compile cache: bytecode of handler sources already compiled, keyed by a hash of the
//! source and of the guest (bytecode of another guest build is useless), in memory and
//! optionally on disk.
//!
//! Cached bytecode is no more trusted than any bytecode: it only ever runs inside the sandbox,
//! where every host call is checked.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::module::guest_hash;

pub struct CompileCache {
    /// Hash of the guest module (bytecode of another guest build is useless).
    guest: u64,
    entries: Mutex<HashMap<u64, Arc<Vec<u8>>>>,
    capacity: usize,
    dir: Option<PathBuf>,
}

impl CompileCache {
    pub fn new(capacity: usize, dir: Option<PathBuf>) -> Self {
        CompileCache { guest: guest_hash(), entries: Mutex::default(), capacity, dir }
    }

    /// Whether sources go through the cache at all.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    pub fn key(&self, source: &str) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.guest.hash(&mut hasher);
        source.hash(&mut hasher);
        hasher.finish()
    }

    pub fn get(&self, key: u64) -> Option<Arc<Vec<u8>>> {
        if let Some(bytecode) = self.lock().get(&key) {
            return Some(bytecode.clone());
        }
        let bytecode = Arc::new(std::fs::read(self.file(key)?).ok()?);
        self.remember(key, bytecode.clone());
        Some(bytecode)
    }

    pub fn insert(&self, key: u64, bytecode: Arc<Vec<u8>>) {
        if let Some(file) = self.file(key) {
            // A cache that cannot be written only costs a later process a compilation.
            let _ = write_atomically(&file, &bytecode);
        }
        self.remember(key, bytecode);
    }

    fn remember(&self, key: u64, bytecode: Arc<Vec<u8>>) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            // Bounded, not clever: make room by forgetting an arbitrary entry.
            if let Some(evicted) = entries.keys().next().copied() {
                entries.remove(&evicted);
            }
        }
        entries.insert(key, bytecode);
    }

    fn file(&self, key: u64) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(format!("{key:016x}.qjsbc")))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Vec<u8>>>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Writes beside and renames, so a concurrent reader never sees half a file.
pub fn write_atomically(file: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().ok_or_else(|| std::io::Error::other("a cache file has a directory"))?;
    std::fs::create_dir_all(dir)?;
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("entry");
    let partial = dir.join(format!(".{}.{name}", std::process::id()));
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, file)
}
