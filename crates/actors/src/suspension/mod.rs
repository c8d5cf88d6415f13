//! Suspensions beyond their instance.
//!
//! A suspended execution is first **live**: the instance actor that ran it keeps its instance,
//! and a resume continues it at once. After [`crate::RuntimeConfig::hibernate_after`], or as
//! soon as the pool needs the actor, it is **hibernated**: the engine turns it into a
//! [`SuspensionImage`], [`Sealer`] seals it, and a
//! [`SuspensionStore`] keeps it, while the actor and its memory slot serve other requests.
//! A resume finds it live or in the store without the caller knowing which. With a store that
//! outlives the process, every suspension is hibernated before its result is returned.
//!
//! * `lifecycle`: the one owner of a suspension's life (live, hibernated, resumed, expired,
//!   cancelled), run on the pool's callers' threads;
//! * `live`: the table of live suspensions;
//! * `previous`: the guest images of earlier deploys, whose suspensions are resumed on them;
//! * [`seal`]: authenticated encryption of images, and the keys;
//! * [`store`], [`disk_store`] and [`redis_store`]: the store trait, in memory, on disk, and in
//!   Redis (shared by every node).

pub mod disk_store;
pub(crate) mod lifecycle;
pub(crate) mod live;
pub(crate) mod previous;
pub mod redis_store;
pub mod seal;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

pub use disk_store::DiskStore;
pub use redis_store::{RedisConfig, RedisStore};
pub use seal::SuspensionKeys;
pub use store::{Claim, MemoryStore, StoreError, StoreLimits, StoreUsage, Stored, SuspensionStore};

use nexus_abi::ErrorCode;
use previous::PreviousImages;

use crate::engine::image::SuspensionImage;
use crate::engine::{SuspensionId, image_identity};
use crate::metrics::SuspensionMetrics;
use crate::refusal::Refusal;

/// Where hibernated suspensions are kept ([`crate::RuntimeConfig::suspension_store`]). The enum
/// is `#[non_exhaustive]`, so a kind of store added later breaks no caller.
///
/// ```
/// use nexus_actors::RuntimeConfig;
/// use nexus_actors::suspension::{StoreConfig, SuspensionKeys};
///
/// let mut config = RuntimeConfig::default();
/// config.suspension_store = StoreConfig::Disk("/var/lib/app/suspensions".into());
/// // A store that outlives the process needs keys that outlive it too.
/// config.suspension_keys = Some(SuspensionKeys::new(&[[7; 32]])?);
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum StoreConfig {
    /// In this process (the default): gone when it ends.
    #[default]
    Memory,
    /// In a directory: survives the process (needs configured keys).
    Disk(PathBuf),
    /// In Redis: shared by every node configured with it, and with the same keys.
    Redis(RedisConfig),
    /// A store of the application's own.
    Custom(Arc<dyn SuspensionStore>),
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreConfig::Memory => f.write_str("Memory"),
            StoreConfig::Disk(dir) => f.debug_tuple("Disk").field(dir).finish(),
            StoreConfig::Redis(config) => f.debug_tuple("Redis").field(&config.prefix).finish(),
            StoreConfig::Custom(store) => write!(f, "Custom(durable: {})", store.durable()),
        }
    }
}

impl StoreConfig {
    /// Opens the store; one that outlives the process needs `keys`.
    pub fn open(&self, limits: StoreLimits, keys: Option<&SuspensionKeys>) -> Result<Arc<dyn SuspensionStore>, String> {
        let store: Arc<dyn SuspensionStore> = match self {
            StoreConfig::Memory => Arc::new(MemoryStore::new(limits)),
            StoreConfig::Disk(dir) => Arc::new(
                DiskStore::open(dir, limits)
                    .map_err(|e| format!("opening the suspension store {}: {e}", dir.display()))?,
            ),
            StoreConfig::Redis(config) => Arc::new(RedisStore::open(config)?),
            StoreConfig::Custom(store) => store.clone(),
        };
        if store.durable() && keys.is_none() {
            return Err("a suspension store that outlives the process needs configured suspension keys \
                 (RuntimeConfig::suspension_keys): a random key would make its images unreadable after a restart"
                .into());
        }
        Ok(store)
    }
}

/// What the pool needs for hibernated suspensions (see [`lifecycle`]).
pub(crate) struct Suspensions {
    pub store: Arc<dyn SuspensionStore>,
    pub sealer: Sealer,
    pub metrics: SuspensionMetrics,
    /// The guest images of earlier deploys, for the suspensions made on them.
    pub previous: PreviousImages,
}

/// Seals and opens the images of this runtime's snapshot.
#[derive(Clone, Debug)]
pub struct Sealer {
    keys: SuspensionKeys,
    identity: [u8; 32],
}

impl Sealer {
    /// Seals for the committed guest's image.
    pub fn new(keys: SuspensionKeys) -> Self {
        Sealer::for_image(keys, image_identity())
    }

    /// Seals for the image of identity `identity`.
    pub fn for_image(keys: SuspensionKeys, identity: [u8; 32]) -> Self {
        Sealer { keys, identity }
    }

    /// The same keys, for another image.
    pub fn with_identity(&self, identity: [u8; 32]) -> Self {
        Sealer { keys: self.keys.clone(), identity }
    }

    pub fn identity(&self) -> [u8; 32] {
        self.identity
    }

    pub fn seal(&self, image: &SuspensionImage, id: &SuspensionId, expires_at: SystemTime) -> Vec<u8> {
        self.keys.seal(image, id, &self.identity, expires_at)
    }

    pub fn open(&self, sealed: &[u8], id: &SuspensionId) -> Result<(SystemTime, SuspensionImage), String> {
        self.keys.open(sealed, id, &self.identity)
    }
}

/// Opens a claimed image with `sealer`: the image and the claim, or the refusal of a resume
/// that cannot use it (the claim released when the image was refused, committed when it
/// expired).
pub(crate) async fn open_claimed(
    store: &dyn SuspensionStore,
    sealer: &Sealer,
    claim: Claim,
) -> Result<(SuspensionImage, Claim), Refusal> {
    let id = claim.id.clone();
    let (expires_at, image) = match sealer.open(&claim.image, &id) {
        Ok(opened) => opened,
        Err(message) => {
            let _ = store.release(claim).await;
            return Err(Refusal::new(ErrorCode::InvalidArgument, format!("suspension {id} was refused: {message}")));
        }
    };
    if expires_at <= SystemTime::now() {
        let _ = store.commit(claim, None).await;
        return Err(Refusal::suspension_not_found());
    }
    Ok((image, claim))
}
