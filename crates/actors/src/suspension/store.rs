//! Where hibernated suspensions are kept: the [`SuspensionStore`] trait, and the in-memory
//! store (the default).
//!
//! A store holds sealed images by suspension id, and enforces what every store must:
//! * **single use**: a resume *claims* an image; a claim ends by a *commit* (the suspension was
//!   used: a tombstone stays until its expiry, so a replayed copy of the image finds nothing)
//!   or a *release* (the resume was refused: the image is there again, with the same expiry).
//!   A claim carries a token and a lease: a claim whose lease passed (its runtime died
//!   mid-step) can be claimed again, and the old holder's commit then fails;
//! * **expiry**: an expired image is never handed out, and is deleted; but a claim taken before
//!   the expiry holds its suspension until it ends or its lease passes, whatever the expiry
//!   (a resume that arrived in time and then waited for an instance is not failed for it);
//! * **bounds**: beyond its number of suspensions or bytes, a new image is refused
//!   ([`StoreError::Full`], which fails the execution with `OVERLOADED`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use nexus_abi::ErrorCode;

use crate::engine::{ExecutionError, SuspensionId};

/// The answer of a store operation.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// Keeps sealed suspension images. Implementations: [`MemoryStore`] and
/// [`crate::suspension::DiskStore`].
pub trait SuspensionStore: Send + Sync + 'static {
    /// Whether images outlive the process: then the runtime needs configured keys, and writes
    /// each suspension before its result is returned.
    fn durable(&self) -> bool;

    /// Keeps a new image until `expires_at`.
    fn put(&self, image: Stored) -> StoreFuture<'_, ()>;

    /// Claims the image of `id` for a resume, for `lease`; `None` when there is none to claim
    /// (unknown, used, cancelled, expired, or claimed by a resume still within its lease). The
    /// claim holds the image until it ends or its lease passes, even past the image's expiry.
    fn claim(&self, id: &SuspensionId, lease: Duration) -> StoreFuture<'_, Option<Claim>>;

    /// Ends a claim whose resume was refused: the image can be claimed again, expiring as before.
    fn release(&self, claim: Claim) -> StoreFuture<'_, ()>;

    /// Ends a claim whose resume ran: the suspension is used (a tombstone until it would have
    /// expired), and `next` (the suspension the step ended in, if any) is kept. Fails with
    /// [`StoreError::LeaseLost`] when the claim no longer holds.
    fn commit(&self, claim: Claim, next: Option<Stored>) -> StoreFuture<'_, ()>;

    /// Drops a suspension on purpose (a tombstone stays); whether there was one to drop. One a
    /// resume holds (a claim within its lease) is not dropped: that resume has it, as a live
    /// suspension being resumed is not cancelled either.
    fn cancel(&self, id: &SuspensionId) -> StoreFuture<'_, bool>;

    /// Deletes what expired, except what a claim within its lease holds.
    fn purge_expired(&self) -> StoreFuture<'_, ()>;

    /// What the store holds now.
    fn usage(&self) -> StoreUsage;
}

/// A sealed image to keep.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: SuspensionId,
    pub image: Vec<u8>,
    pub expires_at: SystemTime,
}

/// A claimed image, until its claim ends.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: SuspensionId,
    pub image: Vec<u8>,
    pub expires_at: SystemTime,
    /// Tells this claim from a later one of the same suspension.
    pub token: u64,
}

/// Suspensions and bytes a store holds (tombstones not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreUsage {
    pub suspensions: u64,
    pub bytes: u64,
}

/// Bounds on what a store holds. `Default` gives the documented values; change one by setting
/// its field (the struct is `#[non_exhaustive]`, so a bound added later breaks no caller):
///
/// ```
/// use nexus_actors::RuntimeConfig;
///
/// let mut config = RuntimeConfig::default();
/// config.store_limits.max_suspensions = 10_000;
/// config.store_limits.max_bytes = 256 << 20;
/// assert_eq!(config.store_limits.max_suspensions, 10_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreLimits {
    /// Suspensions held at once. Default 1,000,000.
    pub max_suspensions: u64,
    /// Bytes of sealed images held at once. Default 4 GiB.
    pub max_bytes: u64,
}

impl Default for StoreLimits {
    /// 1,000,000 suspensions and 4 GiB: far beyond what one process serves, well within memory.
    fn default() -> Self {
        StoreLimits { max_suspensions: 1_000_000, max_bytes: 4 << 30 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store is at its bound.
    #[error("{0}")]
    Full(String),
    /// The claim's lease passed and another resume claimed the suspension.
    #[error("{0}")]
    LeaseLost(String),
    /// The store cannot be reached or failed.
    #[error("{0}")]
    Unavailable(String),
    /// What the store holds under a suspension's key is not a suspension image of ours (a
    /// shared store may hold anything): refused, never trusted.
    #[error("{0}")]
    Refused(String),
}

impl StoreError {
    /// The error code a request that needed the store fails with.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Full(_) => ErrorCode::Overloaded,
            StoreError::LeaseLost(_) => ErrorCode::Internal,
            StoreError::Unavailable(_) => ErrorCode::StoreUnavailable,
            StoreError::Refused(_) => ErrorCode::InvalidArgument,
        }
    }
}

/// A random claim token.
pub fn token() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("host randomness is available");
    u64::from_le_bytes(bytes)
}

/// Sealed images in this process (the default store): they go with it. Its claims are held
/// by this process, which ends every claim it takes (commit or release), so a claim here never
/// lapses: the lease is not needed, and neither another claim nor the expiry takes a claimed
/// suspension from the resume that holds it, however long that resume waits for an instance.
pub struct MemoryStore {
    limits: StoreLimits,
    entries: Mutex<MemoryEntries>,
}

#[derive(Default)]
struct MemoryEntries {
    by_id: HashMap<SuspensionId, Entry>,
    usage: StoreUsage,
}

enum Entry {
    Ready {
        image: Vec<u8>,
        expires_at: SystemTime,
    },
    Claimed {
        image: Vec<u8>,
        expires_at: SystemTime,
        token: u64,
    },
    /// Used or cancelled: nothing can be put or claimed under this id until it expires.
    Tombstone {
        expires_at: SystemTime,
    },
}

impl Entry {
    fn expires_at(&self) -> SystemTime {
        match self {
            Entry::Ready { expires_at, .. } | Entry::Claimed { expires_at, .. } | Entry::Tombstone { expires_at } => {
                *expires_at
            }
        }
    }

    /// Bytes of an image the entry holds (0 for a tombstone).
    fn bytes(&self) -> u64 {
        match self {
            Entry::Ready { image, .. } | Entry::Claimed { image, .. } => image.len() as u64,
            Entry::Tombstone { .. } => 0,
        }
    }
}

impl MemoryStore {
    pub fn new(limits: StoreLimits) -> Self {
        MemoryStore { limits, entries: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryEntries> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(StoreLimits::default())
    }
}

impl MemoryEntries {
    /// Replaces the entry of `id` (or removes it), keeping the usage counts.
    fn set(&mut self, id: &SuspensionId, entry: Option<Entry>) {
        let old = match entry {
            Some(entry) => {
                self.usage.suspensions += u64::from(entry.bytes() > 0);
                self.usage.bytes += entry.bytes();
                self.by_id.insert(id.clone(), entry)
            }
            None => self.by_id.remove(id),
        };
        if let Some(old) = old {
            self.usage.suspensions -= u64::from(old.bytes() > 0);
            self.usage.bytes -= old.bytes();
        }
    }

    fn put(&mut self, limits: &StoreLimits, stored: Stored) -> Result<(), StoreError> {
        if self.by_id.contains_key(&stored.id) {
            return Err(StoreError::Unavailable(format!("suspension {} exists already", stored.id)));
        }
        check_room(limits, self.usage, stored.image.len())?;
        let entry = Entry::Ready { image: stored.image, expires_at: stored.expires_at };
        self.set(&stored.id, Some(entry));
        Ok(())
    }
}

/// Refuses one more image of `bytes` beyond the store's bounds.
pub fn check_room(limits: &StoreLimits, usage: StoreUsage, bytes: usize) -> Result<(), StoreError> {
    if usage.suspensions >= limits.max_suspensions {
        return Err(StoreError::Full(format!(
            "the suspension store holds its maximum of {} suspensions",
            limits.max_suspensions
        )));
    }
    if usage.bytes + bytes as u64 > limits.max_bytes {
        return Err(StoreError::Full(format!("the suspension store holds its maximum of {} bytes", limits.max_bytes)));
    }
    Ok(())
}

impl SuspensionStore for MemoryStore {
    fn durable(&self) -> bool {
        false
    }

    fn put(&self, stored: Stored) -> StoreFuture<'_, ()> {
        let result = self.lock().put(&self.limits, stored);
        Box::pin(async move { result })
    }

    fn claim(&self, id: &SuspensionId, _lease: Duration) -> StoreFuture<'_, Option<Claim>> {
        let now = SystemTime::now();
        let mut entries = self.lock();
        let claimable = match entries.by_id.get(id) {
            // Held by a resume of this process until it ends the claim.
            Some(Entry::Claimed { .. }) => false,
            Some(entry) if entry.expires_at() <= now => {
                entries.set(id, None);
                false
            }
            Some(Entry::Ready { .. }) => true,
            Some(Entry::Tombstone { .. }) | None => false,
        };
        let claim = claimable.then(|| {
            let (image, expires_at) = match entries.by_id.remove(id) {
                Some(Entry::Ready { image, expires_at }) => (image, expires_at),
                _ => unreachable!("checked claimable above"),
            };
            // Counted again by `set`.
            entries.usage.suspensions -= 1;
            entries.usage.bytes -= image.len() as u64;
            let token = token();
            let entry = Entry::Claimed { image: image.clone(), expires_at, token };
            entries.set(id, Some(entry));
            Claim { id: id.clone(), image, expires_at, token }
        });
        Box::pin(async move { Ok(claim) })
    }

    fn release(&self, claim: Claim) -> StoreFuture<'_, ()> {
        let mut entries = self.lock();
        if let Some(Entry::Claimed { token, .. }) = entries.by_id.get(&claim.id)
            && *token == claim.token
        {
            let entry = Entry::Ready { image: claim.image, expires_at: claim.expires_at };
            entries.set(&claim.id, Some(entry));
        }
        Box::pin(async { Ok(()) })
    }

    fn commit(&self, claim: Claim, next: Option<Stored>) -> StoreFuture<'_, ()> {
        let mut entries = self.lock();
        let result = match entries.by_id.get(&claim.id) {
            Some(Entry::Claimed { token, .. }) if *token == claim.token => {
                entries.set(&claim.id, Some(Entry::Tombstone { expires_at: claim.expires_at }));
                next.map_or(Ok(()), |next| entries.put(&self.limits, next))
            }
            // Only its holder ends a claim here: an entry cannot change under it.
            _ => Err(StoreError::LeaseLost(format!("suspension {} is no longer claimed by its resume", claim.id))),
        };
        Box::pin(async move { result })
    }

    fn cancel(&self, id: &SuspensionId) -> StoreFuture<'_, bool> {
        let mut entries = self.lock();
        let cancelled = match entries.by_id.get(id) {
            // This process's claims hold until their resume ends them.
            Some(Entry::Ready { expires_at, .. }) => {
                let expires_at = *expires_at;
                entries.set(id, Some(Entry::Tombstone { expires_at }));
                true
            }
            _ => false,
        };
        Box::pin(async move { Ok(cancelled) })
    }

    fn purge_expired(&self) -> StoreFuture<'_, ()> {
        let now = SystemTime::now();
        let mut entries = self.lock();
        let expired: Vec<SuspensionId> = entries
            .by_id
            .iter()
            .filter(|(_, entry)| !matches!(entry, Entry::Claimed { .. }) && entry.expires_at() <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            entries.set(&id, None);
        }
        Box::pin(async { Ok(()) })
    }

    fn usage(&self) -> StoreUsage {
        self.lock().usage
    }
}

/// The error of an execution whose store failed it.
pub(super) fn store_failed(error: StoreError) -> ExecutionError {
    ExecutionError::new(error.code(), error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: &str, bytes: usize, expires_in: Duration) -> Stored {
        Stored { id: SuspensionId(id.into()), image: vec![7; bytes], expires_at: SystemTime::now() + expires_in }
    }

    fn block<T>(future: StoreFuture<'_, T>) -> Result<T, StoreError> {
        futures::executor::block_on(future)
    }

    #[test]
    fn an_image_is_claimed_once_and_a_committed_one_never_again() {
        let store = MemoryStore::default();
        block(store.put(stored("a", 10, Duration::from_secs(60)))).unwrap();
        let id = SuspensionId("a".into());
        let claim = block(store.claim(&id, Duration::from_secs(5))).unwrap().expect("claimable");
        assert!(block(store.claim(&id, Duration::from_secs(5))).unwrap().is_none(), "claimed: not twice");
        block(store.commit(claim, None)).unwrap();
        assert!(block(store.claim(&id, Duration::from_secs(5))).unwrap().is_none(), "used");
        // A replayed copy cannot be put back under the used id.
        assert!(block(store.put(stored("a", 10, Duration::from_secs(60)))).is_err());
        assert_eq!(store.usage(), StoreUsage::default());
    }

    #[test]
    fn a_released_claim_leaves_the_image_with_its_expiry() {
        let store = MemoryStore::default();
        let put = stored("a", 10, Duration::from_secs(60));
        let expires_at = put.expires_at;
        block(store.put(put)).unwrap();
        let id = SuspensionId("a".into());
        let claim = block(store.claim(&id, Duration::from_secs(5))).unwrap().unwrap();
        block(store.release(claim)).unwrap();
        let again = block(store.claim(&id, Duration::from_secs(5))).unwrap().expect("released");
        assert_eq!(again.expires_at, expires_at);
    }

    #[test]
    fn a_claim_holds_its_suspension_past_its_lease_and_its_expiry_until_it_ends() {
        let store = MemoryStore::default();
        let put = stored("a", 10, Duration::from_millis(30));
        let expires_at = put.expires_at;
        block(store.put(put)).unwrap();
        let id = SuspensionId("a".into());
        let first = block(store.claim(&id, Duration::ZERO)).unwrap().unwrap();
        std::thread::sleep(Duration::from_millis(40));
        assert!(block(store.claim(&id, Duration::from_secs(5))).unwrap().is_none(), "held by this process");
        block(store.purge_expired()).unwrap();
        assert_eq!(store.usage().suspensions, 1, "not purged while claimed");
        let next = stored("b", 10, Duration::from_secs(60));
        block(store.commit(first, Some(next))).unwrap();
        assert!(SystemTime::now() > expires_at);
        block(store.purge_expired()).unwrap();
        assert_eq!(store.usage(), StoreUsage { suspensions: 1, bytes: 10 }, "the used one gone, the next one kept");
        // A released claim past its expiry is purged then.
        let claim = block(store.claim(&SuspensionId("b".into()), Duration::ZERO)).unwrap().unwrap();
        let expired = Claim { expires_at: SystemTime::now(), ..claim };
        block(store.release(expired)).unwrap();
        block(store.purge_expired()).unwrap();
        assert_eq!(store.usage(), StoreUsage::default());
    }

    #[test]
    fn a_cancel_while_a_resume_runs_finds_nothing_to_cancel_and_the_resume_commits() {
        let store = MemoryStore::default();
        block(store.put(stored("a", 10, Duration::from_secs(60)))).unwrap();
        let id = SuspensionId("a".into());
        let claim = block(store.claim(&id, Duration::from_secs(5))).unwrap().unwrap();
        assert!(!block(store.cancel(&id)).unwrap(), "the resume has it");
        block(store.commit(claim, None)).unwrap();
        assert!(!block(store.cancel(&id)).unwrap(), "used");
    }

    #[test]
    fn expired_images_are_never_claimed_and_are_deleted() {
        let store = MemoryStore::default();
        block(store.put(stored("a", 10, Duration::ZERO))).unwrap();
        block(store.put(stored("b", 10, Duration::ZERO))).unwrap();
        assert!(block(store.claim(&SuspensionId("a".into()), Duration::from_secs(5))).unwrap().is_none());
        block(store.purge_expired()).unwrap();
        assert_eq!(store.usage(), StoreUsage::default());
    }

    #[test]
    fn beyond_its_bounds_a_store_refuses_new_images() {
        let store = MemoryStore::new(StoreLimits { max_suspensions: 2, max_bytes: 25 });
        block(store.put(stored("a", 10, Duration::from_secs(60)))).unwrap();
        assert!(matches!(block(store.put(stored("b", 20, Duration::from_secs(60)))), Err(StoreError::Full(_))));
        block(store.put(stored("b", 10, Duration::from_secs(60)))).unwrap();
        let refused = block(store.put(stored("c", 1, Duration::from_secs(60)))).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::Overloaded);
        assert!(block(store.cancel(&SuspensionId("a".into()))).unwrap());
        assert!(!block(store.cancel(&SuspensionId("a".into()))).unwrap(), "cancelled once");
        block(store.put(stored("c", 1, Duration::from_secs(60)))).unwrap();
    }
}
