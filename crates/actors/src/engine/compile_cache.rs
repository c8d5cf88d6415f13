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
    entries: Mutex<HashMap<Digest, Arc<Vec<u8>>>>,
    capacity: usize,
    disk: Option<DiskCache>,
    /// The image the bytecode is compiled by and for.
    identity: Digest,
}

impl CompileCache {
    pub fn new(capacity: usize, disk: Option<DiskCache>, identity: Digest) -> Self {
        CompileCache { entries: Mutex::default(), capacity, disk, identity }
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
        if let Some(bytecode) = self.lock().get(key) {
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

    fn remember(&self, key: Digest, bytecode: Arc<Vec<u8>>) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            // Bounded, not clever: make room by forgetting an arbitrary entry.
            if let Some(evicted) = entries.keys().next().copied() {
                entries.remove(&evicted);
            }
        }
        entries.insert(key, bytecode);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Arc<Vec<u8>>>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn file_name(key: &Digest) -> String {
    format!("{}.qjsbc", hex(key))
}
