//! The compile cache: bytecode of handler sources already compiled, in memory and optionally
//! on disk ([`DiskCache`]: authenticated entries in a directory only this user can write).
//!
//! An entry is named by the SHA-256 digest of the image identity (the guest build and its
//! preloaded libraries), the language (with the TypeScript transformer's version) and the
//! source, so one source can never be served another's bytecode: a tenant who could make two
//! sources collide would run its own code under another's capabilities. Cached bytecode is
//! otherwise no more trusted than any bytecode: it only ever runs inside the sandbox, where
//! every host call is checked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::disk_cache::{Digest, DiskCache, digest, hex};

use super::request::Language;

pub struct CompileCache {
    entries: Mutex<Entries>,
    capacity: usize,
    /// Bytes of bytecode the entries may hold together: bytecode is up to ~4 times its source
    /// (1 MiB of array literal makes 4 MB), so a count alone would let a tenant sending large
    /// distinct sources make the process hold gigabytes.
    capacity_bytes: usize,
    disk: Option<DiskCache>,
    /// The image the bytecode is compiled by and for.
    identity: Digest,
}

#[derive(Default)]
struct Entries {
    by_key: HashMap<Digest, Arc<Vec<u8>>>,
    bytes: usize,
}

impl CompileCache {
    pub fn new(capacity: usize, capacity_bytes: usize, disk: Option<DiskCache>, identity: Digest) -> Self {
        CompileCache { entries: Mutex::default(), capacity, capacity_bytes, disk, identity }
    }

    /// Whether sources go through the cache at all.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    pub fn key(&self, language: Language, source: &str) -> Digest {
        // TypeScript is compiled as the JavaScript the transformer makes of it: its version
        // is part of the name (as the guest's is), so bytecode and source map always agree.
        let language = match language {
            Language::JavaScript => "javascript".to_owned(),
            Language::TypeScript => format!("typescript/{}", nexus_typescript::TRANSFORMER),
        };
        digest(&[&self.identity[..], language.as_bytes(), source.as_bytes()])
    }

    pub fn get(&self, key: &Digest) -> Option<Arc<Vec<u8>>> {
        if let Some(bytecode) = self.lock().by_key.get(key) {
            return Some(bytecode.clone());
        }
        let bytecode = Arc::new(self.disk.as_ref()?.read(&file_name(key))?);
        self.remember(*key, bytecode.clone());
        Some(bytecode)
    }

    pub fn insert(&self, key: Digest, bytecode: Arc<Vec<u8>>) {
        if let Some(disk) = &self.disk {
            // A cache that cannot be written only costs a later process a compilation.
            let _ = disk.write(&file_name(&key), &bytecode);
        }
        self.remember(key, bytecode);
    }

    /// Keeps `bytecode` in memory, unless it alone is more than the cache may hold.
    fn remember(&self, key: Digest, bytecode: Arc<Vec<u8>>) {
        if bytecode.len() > self.capacity_bytes || self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if let Some(replaced) = entries.by_key.remove(&key) {
            entries.bytes -= replaced.len();
        }
        // Bounded, not clever: make room by forgetting arbitrary entries.
        while entries.by_key.len() >= self.capacity || entries.bytes + bytecode.len() > self.capacity_bytes {
            let Some(evicted) = entries.by_key.keys().next().copied() else { break };
            let evicted = entries.by_key.remove(&evicted).expect("listed");
            entries.bytes -= evicted.len();
        }
        entries.bytes += bytecode.len();
        entries.by_key.insert(key, bytecode);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn file_name(key: &Digest) -> String {
    format!("{}.qjsbc", hex(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Digest {
        [n; 32]
    }

    fn held(cache: &CompileCache) -> (usize, usize) {
        let entries = cache.lock();
        (entries.by_key.len(), entries.bytes)
    }

    #[test]
    fn the_entries_hold_at_most_their_count_and_their_bytes() {
        let cache = CompileCache::new(3, 1000, None, key(0));
        for n in 1..=5 {
            cache.insert(key(n), Arc::new(vec![n; 100]));
        }
        assert_eq!(held(&cache), (3, 300), "the count bounds small entries");
        cache.insert(key(6), Arc::new(vec![6; 800]));
        assert_eq!(held(&cache), (3, 1000), "one small entry made room, the bytes bound the rest");
        assert_eq!(cache.get(&key(6)).map(|bytecode| bytecode.len()), Some(800), "the newest is kept");
        cache.insert(key(7), Arc::new(vec![7; 1001]));
        assert!(cache.get(&key(7)).is_none(), "larger than the whole cache: not kept");
        assert_eq!(cache.get(&key(6)).map(|bytecode| bytecode.len()), Some(800), "and nothing evicted for it");
        cache.insert(key(6), Arc::new(vec![6; 800]));
        assert_eq!(held(&cache), (3, 1000), "the same entry again is counted once");
        cache.insert(key(8), Arc::new(vec![8; 300]));
        let (count, bytes) = held(&cache);
        assert!(count <= 3 && bytes <= 1000, "{count} entries of {bytes} bytes");
        assert!(cache.get(&key(8)).is_some(), "the newest is kept");
    }
}
