//! Sealed suspension images on disk: they survive `kill -9` and a restart of the process, and
//! several processes on one machine may share the directory.
//!
//! Plain files with atomic renames rather than an embedded database: every operation a
//! suspension needs is one rename of its own file, which the file system makes atomic, so two
//! processes claiming the same suspension can never both win, and a process killed at any
//! point leaves each suspension either claimable, claimed (claimable again after the lease), or
//! used. Each suspension has a directory of its own:
//!
//! ```text
//! DIR/<id>/image                    claimable: expiry (u64 LE ms since the epoch) + sealed image
//! DIR/<id>/claim.<token>.<lease>    claimed until <lease> (ms since the epoch), the same bytes
//! DIR/<id>/used                     tombstone (used or cancelled) until the expiry it holds
//! ```
//!
//! Images are written to a temporary file and renamed into place, so a reader never sees half
//! of one. Nothing is synced to the device: a crash of the process loses nothing, a crash of
//! the machine may lose the last writes.

use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::seal::unix_millis;
use super::store::{
    Claim, StoreError, StoreFuture, StoreLimits, StoreUsage, Stored, SuspensionStore, check_room, token,
};
use crate::engine::SuspensionId;
use crate::engine::disk_cache::{check_private_dir, create_private_dir};

const IMAGE: &str = "image";
const USED: &str = "used";

/// Sealed images in a directory.
pub struct DiskStore {
    dir: PathBuf,
    limits: StoreLimits,
    /// What this process knows the directory holds: counted at open, kept up to date by this
    /// process's own operations (another process sharing the directory is not counted).
    usage: Mutex<StoreUsage>,
}

impl DiskStore {
    /// Opens (creating it if needed) the store in `dir`, counting what it holds.
    pub fn open(dir: impl Into<PathBuf>, limits: StoreLimits) -> io::Result<Self> {
        let dir = dir.into();
        // As the caches' directories: another user who could write it could delete or replace
        // suspensions (never forge one: images are sealed).
        create_private_dir(&dir)?;
        check_private_dir(&dir)?;
        let mut usage = StoreUsage::default();
        for entry in fs::read_dir(&dir)? {
            let image = entry?.path().join(IMAGE);
            if let Ok(metadata) = fs::metadata(&image) {
                usage.suspensions += 1;
                usage.bytes += metadata.len();
            }
        }
        Ok(DiskStore { dir, limits, usage: Mutex::new(usage) })
    }

    fn usage_mut(&self) -> std::sync::MutexGuard<'_, StoreUsage> {
        self.usage.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The directory of `id`; ids are checked to be plain hexadecimal (and `-`), so a name
    /// given by a caller never leaves the store's directory.
    fn dir_of(&self, id: &SuspensionId) -> Option<PathBuf> {
        let plain = !id.0.is_empty() && id.0.len() <= 64 && id.0.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        plain.then(|| self.dir.join(&id.0))
    }

    fn put_sync(&self, stored: &Stored) -> Result<(), StoreError> {
        let dir = self.dir_of(&stored.id).ok_or_else(|| unavailable("a suspension id", &stored.id.0))?;
        let bytes = 8 + stored.image.len();
        check_room(&self.limits, *self.usage_mut(), bytes)?;
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(StoreError::Unavailable(format!("suspension {} exists already", stored.id)));
            }
            Err(e) => return Err(io_error("creating", &dir, e)),
        }
        let mut contents = unix_millis(stored.expires_at).to_le_bytes().to_vec();
        contents.extend_from_slice(&stored.image);
        write_atomically(&dir, IMAGE, &contents)?;
        let mut usage = self.usage_mut();
        usage.suspensions += 1;
        usage.bytes += bytes as u64;
        Ok(())
    }

    fn claim_sync(&self, id: &SuspensionId, lease: Duration) -> Result<Option<Claim>, StoreError> {
        let Some(dir) = self.dir_of(id) else { return Ok(None) };
        if dir.join(USED).exists() {
            return Ok(None);
        }
        let token = token();
        let now = SystemTime::now();
        let claimed = dir.join(format!("claim.{token:016x}.{}", unix_millis(now + lease)));
        // Claimable, or claimed by a resume whose lease passed.
        let mut from = vec![dir.join(IMAGE)];
        if !from[0].exists() {
            from = expired_claims(&dir, now);
        }
        for source in from {
            match fs::rename(&source, &claimed) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("claiming", &source, e)),
            }
            let contents = fs::read(&claimed).map_err(|e| io_error("reading", &claimed, e))?;
            let (expires_at, image) = split_expiry(&contents);
            if expires_at <= now {
                self.forget(&dir, contents.len());
                return Ok(None);
            }
            return Ok(Some(Claim { id: id.clone(), image: image.to_vec(), expires_at, token }));
        }
        Ok(None)
    }

    /// The claim file of `claim`, if it still holds.
    fn claim_file(&self, claim: &Claim) -> Option<PathBuf> {
        let dir = self.dir_of(&claim.id)?;
        let prefix = format!("claim.{:016x}.", claim.token);
        fs::read_dir(&dir)
            .ok()?
            .filter_map(Result::ok)
            .find(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
            .map(|entry| entry.path())
    }

    fn release_sync(&self, claim: &Claim) -> Result<(), StoreError> {
        if let (Some(file), Some(dir)) = (self.claim_file(claim), self.dir_of(&claim.id)) {
            fs::rename(&file, dir.join(IMAGE)).map_err(|e| io_error("releasing", &file, e))?;
        }
        Ok(())
    }

    fn commit_sync(&self, claim: &Claim, next: Option<&Stored>) -> Result<(), StoreError> {
        let lost = || {
            StoreError::LeaseLost(format!(
                "the claim on suspension {} ended before its step did (its lease passed and it was claimed again)",
                claim.id
            ))
        };
        let (file, dir) = self.claim_file(claim).zip(self.dir_of(&claim.id)).ok_or_else(lost)?;
        // The rename is the fence: it fails if a later claim renamed the file away.
        match fs::rename(&file, dir.join(USED)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(lost()),
            Err(e) => return Err(io_error("committing", &file, e)),
        }
        // The tombstone keeps only the expiry.
        let size = 8 + claim.image.len();
        fs::OpenOptions::new()
            .write(true)
            .open(dir.join(USED))
            .and_then(|file| file.set_len(8))
            .map_err(|e| io_error("truncating", &dir.join(USED), e))?;
        {
            let mut usage = self.usage_mut();
            usage.suspensions = usage.suspensions.saturating_sub(1);
            usage.bytes = usage.bytes.saturating_sub(size as u64);
        }
        next.map_or(Ok(()), |next| self.put_sync(next))
    }

    fn cancel_sync(&self, id: &SuspensionId) -> Result<bool, StoreError> {
        let Some(dir) = self.dir_of(id) else { return Ok(false) };
        let claims = claims(&dir);
        let now = unix_millis(SystemTime::now());
        if claims.iter().any(|claim| claim_lease(claim).is_some_and(|lease| lease > now)) {
            return Ok(false);
        }
        let mut sources = vec![dir.join(IMAGE)];
        sources.extend(claims);
        for source in sources {
            let size = fs::metadata(&source).map(|m| m.len()).unwrap_or(0);
            match fs::rename(&source, dir.join(USED)) {
                Ok(()) => {
                    let _ = fs::OpenOptions::new().write(true).open(dir.join(USED)).and_then(|f| f.set_len(8));
                    let mut usage = self.usage_mut();
                    usage.suspensions = usage.suspensions.saturating_sub(1);
                    usage.bytes = usage.bytes.saturating_sub(size);
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("cancelling", &source, e)),
            }
        }
        Ok(false)
    }

    fn purge_sync(&self) -> Result<(), StoreError> {
        let now = SystemTime::now();
        let entries = fs::read_dir(&self.dir).map_err(|e| io_error("listing", &self.dir, e))?;
        for entry in entries.filter_map(Result::ok) {
            let dir = entry.path();
            let Ok(files) = fs::read_dir(&dir) else { continue };
            let files: Vec<PathBuf> = files.filter_map(Result::ok).map(|f| f.path()).collect();
            let expired = files.iter().any(|file| read_expiry(file).is_some_and(|expires_at| expires_at <= now));
            // A resume that claimed it before its expiry holds it until its lease passes.
            let claimed = files.iter().any(|file| claim_lease(file).is_some_and(|lease| lease > unix_millis(now)));
            if expired && !claimed {
                let held = files
                    .iter()
                    .filter(|file| file.file_name().is_some_and(|name| name != USED))
                    .map(|file| fs::metadata(file).map(|m| m.len()).unwrap_or(0))
                    .sum::<u64>();
                if fs::remove_dir_all(&dir).is_ok() && held > 0 {
                    let mut usage = self.usage_mut();
                    usage.suspensions = usage.suspensions.saturating_sub(1);
                    usage.bytes = usage.bytes.saturating_sub(held);
                }
            }
        }
        Ok(())
    }

    /// Deletes a suspension found expired while claiming it.
    fn forget(&self, dir: &Path, size: usize) {
        if fs::remove_dir_all(dir).is_ok() {
            let mut usage = self.usage_mut();
            usage.suspensions = usage.suspensions.saturating_sub(1);
            usage.bytes = usage.bytes.saturating_sub(size as u64);
        }
    }
}

impl SuspensionStore for DiskStore {
    fn durable(&self) -> bool {
        true
    }

    // Each operation is a few small file-system calls (no sync to the device): done in place.
    fn put(&self, image: Stored) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.put_sync(&image) })
    }

    fn claim(&self, id: &SuspensionId, lease: Duration) -> StoreFuture<'_, Option<Claim>> {
        let id = id.clone();
        Box::pin(async move { self.claim_sync(&id, lease) })
    }

    fn release(&self, claim: Claim) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.release_sync(&claim) })
    }

    fn commit(&self, claim: Claim, next: Option<Stored>) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.commit_sync(&claim, next.as_ref()) })
    }

    fn cancel(&self, id: &SuspensionId) -> StoreFuture<'_, bool> {
        let id = id.clone();
        Box::pin(async move { self.cancel_sync(&id) })
    }

    fn purge_expired(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.purge_sync() })
    }

    fn usage(&self) -> StoreUsage {
        *self.usage_mut()
    }
}

/// The claim files in `dir`.
fn claims(dir: &Path) -> Vec<PathBuf> {
    let Ok(files) = fs::read_dir(dir) else { return Vec::new() };
    files
        .filter_map(Result::ok)
        .filter(|f| f.file_name().to_string_lossy().starts_with("claim."))
        .map(|f| f.path())
        .collect()
}

/// The claim files in `dir` whose lease passed.
fn expired_claims(dir: &Path, now: SystemTime) -> Vec<PathBuf> {
    let now = unix_millis(now);
    claims(dir).into_iter().filter(|file| claim_lease(file).is_some_and(|lease| lease <= now)).collect()
}

/// The end of the lease of a claim file (`claim.<token>.<lease end, ms>`).
fn claim_lease(file: &Path) -> Option<u64> {
    let name = file.file_name()?.to_string_lossy();
    name.strip_prefix("claim.")?.rsplit('.').next()?.parse().ok()
}

fn split_expiry(contents: &[u8]) -> (SystemTime, &[u8]) {
    if contents.len() < 8 {
        return (UNIX_EPOCH, &[]);
    }
    let (expiry, image) = contents.split_at(8);
    (UNIX_EPOCH + Duration::from_millis(u64::from_le_bytes(expiry.try_into().expect("8 bytes"))), image)
}

fn read_expiry(file: &Path) -> Option<SystemTime> {
    use std::io::Read;
    let mut expiry = [0u8; 8];
    fs::File::open(file).ok()?.read_exact(&mut expiry).ok()?;
    Some(UNIX_EPOCH + Duration::from_millis(u64::from_le_bytes(expiry)))
}

/// Writes `name` in `dir` through a temporary file renamed into place.
fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> Result<(), StoreError> {
    let temporary = dir.join(format!(".{name}.{:016x}", token()));
    fs::write(&temporary, contents).map_err(|e| io_error("writing", &temporary, e))?;
    fs::rename(&temporary, dir.join(name)).map_err(|e| {
        let _ = fs::remove_file(&temporary);
        io_error("writing", &dir.join(name), e)
    })
}

fn io_error(doing: &str, path: &Path, error: io::Error) -> StoreError {
    StoreError::Unavailable(format!("suspension store: {doing} {}: {error}", path.display()))
}

fn unavailable(what: &str, value: &str) -> StoreError {
    StoreError::Unavailable(format!("{value:?} is not {what} this store can hold"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<T>(future: StoreFuture<'_, T>) -> Result<T, StoreError> {
        futures::executor::block_on(future)
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nexus-disk-store-{:016x}", token()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn stored(id: &str, expires_in: Duration) -> Stored {
        Stored { id: SuspensionId(id.into()), image: vec![1, 2, 3], expires_at: SystemTime::now() + expires_in }
    }

    #[test]
    fn images_outlive_the_store_object_and_are_used_once() {
        let dir = temp_dir();
        let store = DiskStore::open(&dir, StoreLimits::default()).unwrap();
        block(store.put(stored("ab", Duration::from_secs(60)))).unwrap();
        drop(store);
        let store = DiskStore::open(&dir, StoreLimits::default()).unwrap();
        assert_eq!(store.usage(), StoreUsage { suspensions: 1, bytes: 11 });
        let id = SuspensionId("ab".into());
        let claim = block(store.claim(&id, Duration::from_secs(5))).unwrap().expect("kept on disk");
        assert_eq!(claim.image, vec![1, 2, 3]);
        assert!(block(store.claim(&id, Duration::from_secs(5))).unwrap().is_none());
        block(store.commit(claim, None)).unwrap();
        assert!(block(store.claim(&id, Duration::from_secs(5))).unwrap().is_none());
        assert!(block(store.put(stored("ab", Duration::from_secs(60)))).is_err(), "a tombstone stays");
        assert_eq!(store.usage(), StoreUsage::default());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_lapsed_claim_is_taken_over_and_fences_its_holder() {
        let dir = temp_dir();
        let store = DiskStore::open(&dir, StoreLimits::default()).unwrap();
        block(store.put(stored("ab", Duration::from_secs(60)))).unwrap();
        let id = SuspensionId("ab".into());
        let first = block(store.claim(&id, Duration::ZERO)).unwrap().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let second = block(store.claim(&id, Duration::from_secs(5))).unwrap().expect("the lease passed");
        assert!(matches!(block(store.commit(first, None)), Err(StoreError::LeaseLost(_))));
        block(store.commit(second, None)).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_claim_taken_before_the_expiry_holds_through_a_purge_until_its_lease_passes() {
        let dir = temp_dir();
        let store = DiskStore::open(&dir, StoreLimits::default()).unwrap();
        block(store.put(stored("ab", Duration::from_millis(30)))).unwrap();
        let id = SuspensionId("ab".into());
        let claim = block(store.claim(&id, Duration::from_secs(60))).unwrap().unwrap();
        std::thread::sleep(Duration::from_millis(40));
        block(store.purge_expired()).unwrap();
        block(store.commit(claim, Some(stored("cd", Duration::from_secs(60))))).unwrap();
        assert_eq!(store.usage(), StoreUsage { suspensions: 1, bytes: 11 }, "the next one kept");
        block(store.purge_expired()).unwrap();
        assert!(!dir.join("ab").exists(), "used and expired: deleted");
        // A claim whose lease passed no longer holds an expired suspension.
        block(store.put(stored("ef", Duration::from_millis(30)))).unwrap();
        let lapsed = block(store.claim(&SuspensionId("ef".into()), Duration::ZERO)).unwrap().unwrap();
        std::thread::sleep(Duration::from_millis(40));
        block(store.purge_expired()).unwrap();
        assert!(matches!(block(store.commit(lapsed, None)), Err(StoreError::LeaseLost(_))));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn release_expiry_cancel_and_bounds() {
        let dir = temp_dir();
        let store = DiskStore::open(&dir, StoreLimits { max_suspensions: 2, max_bytes: 1 << 20 }).unwrap();
        block(store.put(stored("a1", Duration::from_secs(60)))).unwrap();
        block(store.put(stored("a2", Duration::ZERO))).unwrap();
        assert!(matches!(block(store.put(stored("a3", Duration::from_secs(60)))), Err(StoreError::Full(_))));
        let id = SuspensionId("a1".into());
        let claim = block(store.claim(&id, Duration::from_secs(5))).unwrap().unwrap();
        assert!(!block(store.cancel(&id)).unwrap(), "a resume within its lease has it");
        block(store.release(claim)).unwrap();
        let lapsed = block(store.claim(&id, Duration::ZERO)).unwrap().unwrap();
        assert!(block(store.cancel(&id)).unwrap(), "a claim past its lease holds nothing back");
        assert!(matches!(block(store.commit(lapsed, None)), Err(StoreError::LeaseLost(_))));
        assert!(block(store.claim(&id, Duration::from_secs(5))).unwrap().is_none(), "cancelled");
        assert!(block(store.claim(&SuspensionId("a2".into()), Duration::from_secs(5))).unwrap().is_none(), "expired");
        block(store.purge_expired()).unwrap();
        assert!(!dir.join("a2").exists(), "expired suspensions are deleted");
        assert!(block(store.claim(&SuspensionId("../x".into()), Duration::from_secs(5))).unwrap().is_none());
        fs::remove_dir_all(dir).unwrap();
    }
}
