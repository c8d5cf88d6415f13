//! Sealed suspension images in Redis: every node of a service reaches them, so any node resumes
//! any suspension, and a node that dies or is redeployed loses none.
//!
//! Each suspension is one hash, under a key that carries its id as a hash tag (so every script
//! below touches one slot and also runs on Redis Cluster), and expires with the suspension
//! (Redis deletes it itself):
//!
//! ```text
//! <prefix>{<id>}  kind   "nexus-suspension/1" (what tells our values from anything else)
//!                 state  ready | claimed | used
//!                 image  the sealed image (ready and claimed only)
//!                 token  the claim's token, lease  its end in Redis's clock (ms; claimed only)
//!                 expires  the suspension's own expiry (ms, Redis's clock; claimed only)
//! ```
//!
//! A claim taken before the expiry holds the suspension until its lease passes: the claim
//! keeps the key alive that long (a resume that arrived in time is not failed because the
//! expiry passed while it waited for an instance or ran), and a release puts the expiry back
//! where it was.
//!
//! Claim, release, commit and cancel are Lua scripts, so each is atomic. A claim takes a ready
//! image, or a claimed one whose lease passed (its node died or stalled), and writes its own
//! random token; release and commit act only while that token is still there, so a node that
//! lost its claim cannot commit (its step fails with [`StoreError::LeaseLost`]) and the node
//! that claimed after it wins. A commit that ends in a new suspension first writes the new
//! image (under a new random id nobody knows yet), then commits the old one; only if that
//! fenced commit succeeds does the new id leave the node, in the step's result. Leases are
//! measured in Redis's own clock, so the nodes' clocks need not agree.
//!
//! Redis runs on a small tokio runtime of the store's own, whatever executor the caller polls
//! from; the connection reconnects by itself, and every operation is bounded by the configured
//! timeout, failing with [`StoreError::Unavailable`] (`STORE_UNAVAILABLE`) rather than waiting.

use std::future::Future;
use std::sync::{LazyLock, Mutex, Once};
use std::time::{Duration, SystemTime};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};

use super::store::{Claim, StoreError, StoreFuture, StoreUsage, Stored, SuspensionStore, token};
use crate::engine::SuspensionId;

/// What marks a hash under the prefix as a suspension of ours (and its layout's version).
const KIND: &str = "nexus-suspension/1";

/// Where a [`RedisStore`] is, and how long it may take. [`RedisConfig::new`] gives the
/// documented defaults for everything but the URL; change the others by setting their fields
/// (the struct is `#[non_exhaustive]`, so a setting added later breaks no caller):
///
/// ```
/// use std::time::Duration;
///
/// use nexus_actors::RuntimeConfig;
/// use nexus_actors::suspension::{RedisConfig, StoreConfig};
///
/// let mut redis = RedisConfig::new("redis://10.0.0.5:6379/2");
/// redis.prefix = "checkout:".into();
/// redis.timeout = Duration::from_millis(200);
/// let mut config = RuntimeConfig::default();
/// config.suspension_store = StoreConfig::Redis(redis);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[:password@]host:port/db`.
    pub url: String,
    /// Prefix of every key the store writes. Default `nexus:`.
    pub prefix: String,
    /// Bound on each store operation (and each connection attempt): past it the request that
    /// needed the store fails with `STORE_UNAVAILABLE`. Keep it well below the requests'
    /// timeout. Default 1 s.
    pub timeout: Duration,
}

impl RedisConfig {
    /// The store at `url`, with the default prefix and timeout.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig { url: url.into(), prefix: "nexus:".into(), timeout: Duration::from_secs(1) }
    }
}

/// Sealed images in Redis, shared by every node that is configured with the same URL, prefix
/// and suspension keys.
pub struct RedisStore {
    prefix: String,
    timeout: Duration,
    connection: ConnectionManager,
    /// Runs the connection's I/O; shut down in the background on drop (a runtime may not be
    /// dropped inside another's task, where the last handle on the store may go).
    io: Option<tokio::runtime::Runtime>,
    /// The database's figures when they were last sampled ([`SuspensionStore::purge_expired`]).
    usage: Mutex<StoreUsage>,
}

impl RedisStore {
    /// The store `config` names. Nothing is sent yet: the connection is made on first use (and
    /// again whenever it is lost), so a runtime starts while Redis is down, and serves what
    /// needs no store.
    pub fn open(config: &RedisConfig) -> Result<Self, String> {
        if config.prefix.contains(['{', '}']) {
            return Err(format!(
                "the Redis key prefix {:?} may not contain braces (they make hash tags)",
                config.prefix
            ));
        }
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| format!("the Redis URL {:?}: {e}", redacted(&config.url)))?;
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("nexus-redis")
            .enable_all()
            .build()
            .map_err(|e| format!("starting the Redis store's thread: {e}"))?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_max_delay(config.timeout);
        let connection = {
            let _inside = io.enter();
            ConnectionManager::new_lazy_with_config(client, manager)
                .map_err(|e| format!("connecting to Redis at {}: {e}", redacted(&config.url)))?
        };
        Ok(RedisStore {
            prefix: config.prefix.clone(),
            timeout: config.timeout,
            connection,
            io: Some(io),
            usage: Mutex::default(),
        })
    }

    /// The key of `id`; `None` for an id no runtime makes (ids are hexadecimal), so what a
    /// caller names never reaches Redis as a key of its choosing.
    fn key(&self, id: &SuspensionId) -> Option<String> {
        let plain = !id.0.is_empty() && id.0.len() <= 64 && id.0.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        plain.then(|| format!("{}{{{}}}", self.prefix, id.0))
    }

    /// Runs `work` on the store's runtime, within the timeout.
    fn run<'a, T, F>(&'a self, doing: &'static str, work: impl FnOnce(ConnectionManager) -> F) -> StoreFuture<'a, T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let timeout = self.timeout;
        let work = work(self.connection.clone());
        let io = self.io.as_ref().expect("the runtime lives as long as the store");
        // The timer is made on the store's runtime: the caller's thread may have none (Node's).
        let running = io.spawn(async move { tokio::time::timeout(timeout, work).await });
        Box::pin(async move {
            match running.await {
                Ok(Ok(done)) => done,
                Ok(Err(_)) => Err(StoreError::Unavailable(format!(
                    "the Redis suspension store did not answer within {timeout:?} ({doing})"
                ))),
                Err(e) => Err(StoreError::Unavailable(format!("the Redis suspension store failed ({doing}): {e}"))),
            }
        })
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        if let Some(io) = self.io.take() {
            io.shutdown_background();
        }
    }
}

/// Writes a new image; refuses an id that exists (a replayed copy of a used one included).
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('NEXUS_EXISTS suspension exists already') end
redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'state', 'ready', 'image', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1",
    )
});

/// Shared by the scripts below: the fields of a suspension of ours, or an error naming what
/// the key holds instead.
const READ: &str = r"
local function read(key, kind)
  local t = redis.call('TYPE', key).ok
  if t == 'none' then return nil end
  if t ~= 'hash' then return redis.error_reply('NEXUS_FOREIGN the key holds a Redis ' .. t) end
  local f = redis.call('HMGET', key, 'kind', 'state', 'image', 'token', 'lease', 'expires')
  local state = f[2]
  local claimed = state == 'claimed' and f[3] and f[4] and tonumber(f[5])
  if f[1] ~= kind or not (state == 'used' or (state == 'ready' and f[3]) or claimed) then
    return redis.error_reply('NEXUS_FOREIGN the key holds a hash that is not a Nexus suspension')
  end
  return {state = state, image = f[3], token = f[4], lease = tonumber(f[5]), expires = tonumber(f[6])}
end
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
";

/// Claims a ready image or a claimed one whose lease passed (and whose expiry has not):
/// `{image, ms to expiry}`. The key lives at least as long as the lease.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{READ}
local s = read(KEYS[1], ARGV[1])
if s == nil then return false end
if s.err then return s end
if s.state == 'used' then return false end
local now = now_ms()
if s.state == 'claimed' and s.lease > now then return false end
local expires = s.expires or (now + redis.call('PTTL', KEYS[1]))
if expires <= now then return false end
local lease = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'state', 'claimed', 'token', ARGV[2], 'lease', string.format('%.0f', now + lease),
  'expires', string.format('%.0f', expires))
if expires < now + lease then redis.call('PEXPIRE', KEYS[1], lease) end
return {{s.image, expires - now}}"
    ))
});

/// Makes a claimed image ready again, while the claim's token holds.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{READ}
local s = read(KEYS[1], ARGV[1])
if s ~= nil and s.err then return s end
if s == nil or s.state ~= 'claimed' or s.token ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'ready')
redis.call('HDEL', KEYS[1], 'token', 'lease', 'expires')
if s.expires then redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', s.expires)) end
return 1"
    ))
});

/// Marks a claimed suspension used (a tombstone until its expiry), while the claim's token holds.
static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{READ}
local s = read(KEYS[1], ARGV[1])
if s ~= nil and s.err then return s end
if s == nil or s.state ~= 'claimed' or s.token ~= ARGV[2] then return redis.error_reply('NEXUS_LEASE_LOST the claim no longer holds') end
redis.call('HDEL', KEYS[1], 'image', 'token', 'lease', 'expires')
redis.call('HSET', KEYS[1], 'state', 'used')
return 1"
    ))
});

/// Marks a ready suspension, or a claimed one whose lease passed, used; whether there was one.
static CANCEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{READ}
local s = read(KEYS[1], ARGV[1])
if s ~= nil and s.err then return s end
if s == nil or s.state == 'used' then return 0 end
if s.state == 'claimed' and s.lease > now_ms() then return 0 end
redis.call('HDEL', KEYS[1], 'image', 'token', 'lease', 'expires')
redis.call('HSET', KEYS[1], 'state', 'used')
return 1"
    ))
});

/// Deletes the image of a step whose commit failed (best effort: nobody knows its id, and it
/// expires anyway).
static DISCARD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'state') == 'ready' then redis.call('DEL', KEYS[1]) end
return 1",
    )
});

impl SuspensionStore for RedisStore {
    fn durable(&self) -> bool {
        true
    }

    fn put(&self, stored: Stored) -> StoreFuture<'_, ()> {
        let key = self.key(&stored.id);
        self.run("writing a suspension", move |mut connection| async move { put(&mut connection, key, &stored).await })
    }

    fn claim(&self, id: &SuspensionId, lease: Duration) -> StoreFuture<'_, Option<Claim>> {
        let key = self.key(id);
        let id = id.clone();
        self.run("claiming a suspension", move |mut connection| async move {
            let Some(key) = key else { return Ok(None) };
            let token = token();
            let claimed: Option<(Vec<u8>, i64)> = CLAIM
                .key(&key)
                .arg(KIND)
                .arg(token.to_string())
                .arg(lease.as_millis() as u64)
                .invoke_async(&mut connection)
                .await
                .map_err(|e| failed(e, &key))?;
            Ok(claimed.map(|(image, ttl)| Claim {
                id,
                image,
                expires_at: SystemTime::now() + Duration::from_millis(ttl.max(0) as u64),
                token,
            }))
        })
    }

    fn release(&self, claim: Claim) -> StoreFuture<'_, ()> {
        let key = self.key(&claim.id);
        self.run("releasing a claim", move |mut connection| async move {
            let Some(key) = key else { return Ok(()) };
            let _: i64 = RELEASE
                .key(&key)
                .arg(KIND)
                .arg(claim.token.to_string())
                .invoke_async(&mut connection)
                .await
                .map_err(|e| failed(e, &key))?;
            Ok(())
        })
    }

    fn commit(&self, claim: Claim, next: Option<Stored>) -> StoreFuture<'_, ()> {
        let key = self.key(&claim.id);
        let next_key = next.as_ref().and_then(|next| self.key(&next.id));
        self.run("committing a step", move |mut connection| async move {
            let key = key.ok_or_else(|| lease_lost(&claim.id))?;
            if let Some(next) = &next {
                put(&mut connection, next_key.clone(), next).await?;
            }
            let committed: Result<i64, _> =
                COMMIT.key(&key).arg(KIND).arg(claim.token.to_string()).invoke_async(&mut connection).await;
            match committed {
                Ok(_) => Ok(()),
                Err(error) => {
                    if let Some(next_key) = next_key {
                        let _: Result<i64, _> = DISCARD.key(&next_key).invoke_async(&mut connection).await;
                    }
                    Err(match error.code() {
                        Some("NEXUS_LEASE_LOST") => lease_lost(&claim.id),
                        _ => failed(error, &key),
                    })
                }
            }
        })
    }

    fn cancel(&self, id: &SuspensionId) -> StoreFuture<'_, bool> {
        let key = self.key(id);
        self.run("cancelling a suspension", move |mut connection| async move {
            let Some(key) = key else { return Ok(false) };
            let cancelled: i64 =
                CANCEL.key(&key).arg(KIND).invoke_async(&mut connection).await.map_err(|e| failed(e, &key))?;
            Ok(cancelled == 1)
        })
    }

    /// Redis expires suspensions itself; what is left to do periodically is to sample the
    /// database's figures for [`SuspensionStore::usage`].
    fn purge_expired(&self) -> StoreFuture<'_, ()> {
        let sampled = self.run("sampling the database's size", |mut connection| async move {
            let keys: u64 = redis::cmd("DBSIZE").query_async(&mut connection).await.map_err(|e| failed(e, "DBSIZE"))?;
            let info: String =
                redis::cmd("INFO").arg("memory").query_async(&mut connection).await.map_err(|e| failed(e, "INFO"))?;
            Ok((keys, info))
        });
        Box::pin(async move {
            let (keys, info) = sampled.await?;
            let field = |name: &str| {
                info.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')).map(str::trim).unwrap_or("")
            };
            *self.usage.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                StoreUsage { suspensions: keys, bytes: field("used_memory").parse().unwrap_or(0) };
            let policy = field("maxmemory_policy");
            if policy != "noeviction" && !policy.is_empty() {
                static WARNED: Once = Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(
                        "the Redis suspension store's maxmemory-policy is {policy}: Redis may evict suspensions \
                         before they expire; set it to noeviction"
                    )
                });
            }
            Ok(())
        })
    }

    /// The Redis database's figures as last sampled: its keys (suspensions, tombstones
    /// included, of every node) and the memory Redis uses. The bound of a shared store is
    /// Redis's own `maxmemory`, not [`super::StoreLimits`]: a full Redis refuses a new image,
    /// which fails its execution with `OVERLOADED`.
    fn usage(&self) -> StoreUsage {
        *self.usage.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn put(connection: &mut ConnectionManager, key: Option<String>, stored: &Stored) -> Result<(), StoreError> {
    let key = key.ok_or_else(|| StoreError::Unavailable(format!("{:?} is not a suspension id", stored.id.0)))?;
    let ttl = stored.expires_at.duration_since(SystemTime::now()).unwrap_or_default().as_millis().max(1) as u64;
    let _: i64 = PUT
        .key(&key)
        .arg(KIND)
        .arg(stored.image.as_slice())
        .arg(ttl)
        .invoke_async(connection)
        .await
        .map_err(|e| failed(e, &key))?;
    Ok(())
}

fn lease_lost(id: &SuspensionId) -> StoreError {
    StoreError::LeaseLost(format!(
        "the claim on suspension {id} ended before its step did (its lease passed and another resume claimed it, \
         or the suspension is gone from Redis: flushed, evicted): this step's result is void"
    ))
}

/// What a Redis error means for the request that needed the store.
fn failed(error: RedisError, key: &str) -> StoreError {
    match error.code() {
        Some("NEXUS_FOREIGN") => StoreError::Refused(format!(
            "the value under {key} is not a Nexus suspension ({}): refused",
            error.detail().unwrap_or("unknown").trim_start_matches("the key holds ")
        )),
        Some("NEXUS_EXISTS") => StoreError::Unavailable(format!("{key}: suspension exists already")),
        Some("OOM") => StoreError::Full(format!("the Redis suspension store is full (its maxmemory): {error}")),
        _ => StoreError::Unavailable(format!("the Redis suspension store failed on {key}: {error}")),
    }
}

/// `url` without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}
