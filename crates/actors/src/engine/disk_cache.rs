//! What the engine keeps on disk across processes (compiled handler bytecode, the compiled
//! guest module), kept so that nobody else can make it run their code.
//!
//! * Entries are named by a SHA-256 digest of what they were made from, never by a 64-bit
//!   hash that a tenant could collide.
//! * Every entry carries an HMAC-SHA-256 of its name and contents, under a key kept outside the
//!   cache directory and readable by this user only: a corrupted, planted or renamed file does
//!   not verify and is ignored (then recompiled and rewritten).
//! * A cache directory (or one above it) or an entry that another user can write is refused
//!   outright: the compiled guest module is native code, loaded into the host process.
//! * A cache of what tenants send (compiled handlers) is bounded in bytes
//!   ([`DiskCache::bounded`]): past its bound, its oldest entries are deleted.

use std::fs::{self, File, OpenOptions};
use std::hash::Hasher;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest: the name of a cache entry.
pub type Digest = [u8; 32];

/// SHA-256 over `parts`, each prefixed by its length, so no two lists of parts digest alike.
pub fn digest(parts: &[&[u8]]) -> Digest {
    let mut sha = Sha256::new();
    for part in parts {
        sha.update((part.len() as u64).to_le_bytes());
        sha.update(part);
    }
    sha.finalize().into()
}

/// A [`Hasher`] that feeds SHA-256: digests what only offers `Hash` (wasmtime's engine
/// compatibility hash).
#[derive(Default)]
pub struct Sha256Hasher(Sha256);

impl Sha256Hasher {
    pub fn digest(self) -> Digest {
        self.0.finalize().into()
    }
}

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest: Digest = self.0.clone().finalize().into();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }
}

pub fn hex(digest: &Digest) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

const TAG_LEN: usize = 32;

/// The key that authenticates cache entries: 32 random bytes in a file of its own.
#[derive(Clone)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// Reads the key in `file`, or makes one there (readable by this user only). Refused when
    /// the file can be read or written by another user, or a directory above it written: such
    /// a key could be known to someone else.
    pub fn load_or_create(file: &Path) -> io::Result<CacheKey> {
        let dir = file.parent().ok_or_else(|| refused(file, "a key file needs a directory"))?;
        create_private_dir(dir)?;
        check_private_dir(dir)?;
        match open_private(file, 0o077) {
            Ok(mut opened) => {
                let mut key = [0u8; 32];
                opened.read_exact(&mut key)?;
                Ok(CacheKey(key))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| io::Error::other(format!("host randomness: {e}")))?;
                // `create_new`: two processes making the key at once agree on the first one.
                match OpenOptions::new().write(true).create_new(true).mode(0o600).open(file) {
                    Ok(mut created) => {
                        created.write_all(&key)?;
                        created.sync_all()?;
                        Ok(CacheKey(key))
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::load_or_create(file),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    #[cfg(test)]
    pub fn from_bytes(key: [u8; 32]) -> CacheKey {
        CacheKey(key)
    }

    fn tag(&self, name: &str, contents: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(&(name.len() as u64).to_le_bytes());
        mac.update(name.as_bytes());
        mac.update(contents);
        mac
    }
}

/// A directory of authenticated entries, private to this user.
pub struct DiskCache {
    dir: PathBuf,
    key: CacheKey,
    bound: Option<Bound>,
}

/// A bound on the bytes of a cache's entries, and the bytes they hold as this process counts
/// them: what it wrote since it last listed the directory, which other processes sharing it
/// may have added to.
struct Bound {
    max_bytes: u64,
    held: Mutex<u64>,
}

impl DiskCache {
    /// The cache in `dir` (created, private to this user, if missing), authenticated with the
    /// key in `key_file`. Refused when `dir` or a directory above it can be written by another
    /// user, when the key is refused, or when the key file is inside `dir`.
    pub fn open(dir: &Path, key_file: &Path) -> io::Result<DiskCache> {
        create_private_dir(dir)?;
        check_private_dir(dir)?;
        let dir = dir.canonicalize()?;
        if resolved(key_file)?.starts_with(&dir) {
            return Err(refused(key_file, "the cache key must not be stored in the cache directory"));
        }
        Ok(DiskCache { key: CacheKey::load_or_create(key_file)?, dir, bound: None })
    }

    /// The same cache, holding at most `max_bytes` of entries: a write past it first deletes
    /// the oldest entries, down to half of it (a listing of the directory per half emptied),
    /// and an entry larger than half of it is not written.
    pub fn bounded(self, max_bytes: u64) -> DiskCache {
        let held = self.entries().iter().map(|entry| entry.bytes).sum();
        DiskCache { bound: Some(Bound { max_bytes, held: Mutex::new(held) }), ..self }
    }

    /// The entries in the directory (not the partial files being written).
    fn entries(&self) -> Vec<Entry> {
        let Ok(listing) = fs::read_dir(&self.dir) else { return Vec::new() };
        listing
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let metadata = entry.metadata().ok()?;
                let name = entry.file_name();
                let partial = name.to_str().is_none_or(|name| name.starts_with('.'));
                (metadata.is_file() && !partial).then(|| Entry {
                    path: entry.path(),
                    bytes: metadata.len(),
                    modified: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                })
            })
            .collect()
    }

    /// Makes room for an entry of `bytes` within the bound, if there is one; whether it fits.
    fn make_room(&self, bytes: u64) -> bool {
        let Some(bound) = &self.bound else { return true };
        if bytes > bound.max_bytes / 2 {
            return false;
        }
        let mut held = bound.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *held + bytes > bound.max_bytes {
            let mut entries = self.entries();
            entries.sort_by_key(|entry| entry.modified);
            *held = entries.iter().map(|entry| entry.bytes).sum();
            for entry in entries {
                if *held + bytes <= bound.max_bytes / 2 {
                    break;
                }
                if fs::remove_file(&entry.path).is_ok() {
                    *held -= entry.bytes;
                }
            }
        }
        *held += bytes;
        true
    }

    /// [`DiskCache::open`], logging why a cache is refused and going on without it (a cache
    /// only saves compilations).
    pub fn open_or_warn(dir: Option<&Path>, key_file: Option<&Path>, what: &str) -> Option<DiskCache> {
        let (dir, key_file) = (dir?, key_file?);
        DiskCache::open(dir, key_file)
            .inspect_err(|e| tracing::warn!(dir = %dir.display(), error = %e, "not using the {what} cache directory"))
            .ok()
    }

    #[cfg(test)]
    pub fn with_key(dir: &Path, key: CacheKey) -> io::Result<DiskCache> {
        create_private_dir(dir)?;
        check_private_dir(dir)?;
        Ok(DiskCache { dir: dir.canonicalize()?, key, bound: None })
    }

    /// The contents of entry `name`, if it exists, only this user can write it, and it verifies.
    pub fn read(&self, name: &str) -> Option<Vec<u8>> {
        let mut file = open_private(&self.dir.join(name), 0o022).ok()?;
        let mut sealed = Vec::new();
        file.read_to_end(&mut sealed).ok()?;
        if sealed.len() < TAG_LEN {
            return None;
        }
        let contents = sealed.split_off(TAG_LEN);
        self.key.tag(name, &contents).verify_slice(&sealed).ok()?;
        Some(contents)
    }

    /// Writes entry `name` beside and renames it, so a concurrent reader never sees half a file.
    /// Not written (and no error) when it is larger than half the cache's bound.
    pub fn write(&self, name: &str, contents: &[u8]) -> io::Result<()> {
        if !self.make_room((TAG_LEN + contents.len()) as u64) {
            return Ok(());
        }
        let tag = self.key.tag(name, contents).finalize().into_bytes();
        let partial = self.dir.join(format!(".{}.{name}", std::process::id()));
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&partial)?;
        file.write_all(&tag)?;
        file.write_all(contents)?;
        drop(file);
        fs::rename(&partial, self.dir.join(name))
    }
}

/// An entry of a cache directory.
struct Entry {
    path: PathBuf,
    bytes: u64,
    modified: SystemTime,
}

/// `path` with its existing part resolved (symbolic links, `..`) and the rest appended.
fn resolved(path: &Path) -> io::Result<PathBuf> {
    let path = std::path::absolute(path)?;
    let existing = path.ancestors().find(|ancestor| ancestor.exists()).unwrap_or(Path::new("/"));
    let rest = path.strip_prefix(existing).map_err(io::Error::other)?;
    Ok(existing.canonicalize()?.join(rest))
}

fn refused(path: &Path, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, format!("{}: {why}", path.display()))
}

/// Creates `dir` and what is missing above it, private to this user, but only below a
/// directory another user cannot write (nothing is made where it would be refused).
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    match dir.ancestors().find(|ancestor| ancestor.exists()) {
        Some(existing) if existing == dir => check_private_dir(dir)?,
        Some(existing) => check_above(&existing.canonicalize()?)?,
        None => {}
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// The effective user id of this process.
fn euid() -> u32 {
    // SAFETY: `geteuid` has no preconditions, touches no memory and cannot fail (POSIX).
    unsafe { libc::geteuid() }
}

/// Owned by this user or root, with none of the `forbidden` permission bits: nobody else can
/// change it (root can change anything anyway).
fn private(metadata: &fs::Metadata, forbidden: u32) -> bool {
    (metadata.uid() == euid() || metadata.uid() == 0) && metadata.permissions().mode() & forbidden == 0
}

/// Refuses `dir` if it, or a directory above it, can be written by another user. A directory
/// with the sticky bit (`/tmp`) may be writable by all above the cache: others cannot rename or
/// remove what they do not own in it.
pub(crate) fn check_private_dir(dir: &Path) -> io::Result<()> {
    let dir = dir.canonicalize()?;
    let metadata = fs::metadata(&dir)?;
    if !metadata.is_dir() {
        return Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{} is not a directory", dir.display())));
    }
    if !private(&metadata, 0o022) {
        return Err(refused(&dir, "another user can write this directory"));
    }
    match dir.parent() {
        Some(parent) => check_above(parent),
        None => Ok(()),
    }
}

/// Refuses a directory above a cache (`dir`, canonical, and the ones above it) that another
/// user can write, unless it is sticky.
fn check_above(dir: &Path) -> io::Result<()> {
    for ancestor in dir.ancestors() {
        let metadata = fs::metadata(ancestor)?;
        let sticky = metadata.permissions().mode() & 0o1000 != 0;
        if !sticky && !private(&metadata, 0o022) {
            return Err(refused(ancestor, "another user can write a directory above it"));
        }
    }
    Ok(())
}

/// Opens `file` for reading, not through a symbolic link, if it is a regular file owned by this
/// user (or root) with none of the `forbidden` permission bits.
fn open_private(file: &Path, forbidden: u32) -> io::Result<File> {
    let opened = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(file)?;
    let metadata = opened.metadata()?;
    if !metadata.is_file() || !private(&metadata, forbidden) {
        return Err(refused(file, "another user can change this file, or it is not a plain file"));
    }
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nexus-disk-cache-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn an_entry_reads_back_only_under_its_own_name_and_key() {
        let root = scratch("names");
        let cache = DiskCache::open(&root.join("cache"), &root.join("key/cache.key")).unwrap();
        cache.write("a", b"bytecode of a").unwrap();
        assert_eq!(cache.read("a").as_deref(), Some(&b"bytecode of a"[..]));
        fs::copy(root.join("cache/a"), root.join("cache/b")).unwrap();
        assert_eq!(cache.read("b"), None, "a valid entry renamed does not verify");
        let other = DiskCache::with_key(&root.join("cache"), CacheKey::from_bytes([7; 32])).unwrap();
        assert_eq!(other.read("a"), None, "another key does not verify it");
        let again = DiskCache::open(&root.join("cache"), &root.join("key/cache.key")).unwrap();
        assert!(again.read("a").is_some(), "the key persists across opens");
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn a_corrupted_or_truncated_entry_is_ignored() {
        let root = scratch("corrupt");
        let cache = DiskCache::open(&root.join("cache"), &root.join("key/cache.key")).unwrap();
        cache.write("a", b"bytecode").unwrap();
        let mut sealed = fs::read(root.join("cache/a")).unwrap();
        *sealed.last_mut().unwrap() ^= 1;
        fs::write(root.join("cache/a"), &sealed).unwrap();
        assert_eq!(cache.read("a"), None);
        fs::write(root.join("cache/a"), b"short").unwrap();
        assert_eq!(cache.read("a"), None);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn a_directory_or_entry_another_user_can_write_is_refused() {
        let root = scratch("perms");
        let key = root.join("key/cache.key");
        fs::create_dir_all(root.join("open")).unwrap();
        fs::set_permissions(root.join("open"), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(DiskCache::open(&root.join("open"), &key).is_err(), "a world-writable directory");
        assert!(DiskCache::open(&root.join("open/below"), &key).is_err(), "below a world-writable directory");
        fs::create_dir_all(root.join("group")).unwrap();
        fs::set_permissions(root.join("group"), fs::Permissions::from_mode(0o770)).unwrap();
        assert!(DiskCache::open(&root.join("group"), &key).is_err(), "a group-writable directory");

        let cache = DiskCache::open(&root.join("cache"), &key).unwrap();
        cache.write("a", b"bytecode").unwrap();
        fs::set_permissions(root.join("cache/a"), fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(cache.read("a"), None, "an entry others can write");
        fs::set_permissions(root.join("cache/a"), fs::Permissions::from_mode(0o600)).unwrap();
        assert!(cache.read("a").is_some());
        std::os::unix::fs::symlink(root.join("cache/a"), root.join("cache/link")).unwrap();
        assert_eq!(cache.read("link"), None, "not through a symbolic link");

        assert!(DiskCache::open(&root.join("cache"), &root.join("cache/cache.key")).is_err(), "key in the cache");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(DiskCache::open(&root.join("cache"), &key).is_err(), "a key others can read");
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn a_bounded_cache_deletes_its_oldest_entries_to_make_room() {
        let root = scratch("bounded");
        let key = root.join("key/cache.key");
        let entry = |n: u8| vec![n; 1000 - TAG_LEN];
        let cache = DiskCache::open(&root.join("cache"), &key).unwrap().bounded(4000);
        for (n, name) in (1..).zip(["a", "b", "c", "d"]) {
            cache.write(name, &entry(n)).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(["a", "b", "c", "d"].iter().all(|name| cache.read(name).is_some()), "4000 bytes fit");
        cache.write("e", &entry(5)).unwrap();
        let kept: Vec<_> = ["a", "b", "c", "d", "e"].into_iter().filter(|name| cache.read(name).is_some()).collect();
        assert_eq!(kept, ["d", "e"], "the oldest went, down to half the bound");
        cache.write("big", &vec![0; 2001 - TAG_LEN]).unwrap();
        assert_eq!(cache.read("big"), None, "larger than half the bound: not written");
        // Another process counting what is there.
        let again = DiskCache::open(&root.join("cache"), &key).unwrap().bounded(4000);
        assert_eq!(*again.bound.as_ref().unwrap().held.lock().unwrap(), 2000);
        let _ = fs::remove_dir_all(&root);
    }
}
