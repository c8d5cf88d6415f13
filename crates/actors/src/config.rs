//! How a runtime runs: [`RuntimeConfig`], one documented field per knob.

use std::path::PathBuf;
use std::time::Duration;

use crate::engine::EngineConfig;
use crate::suspension::{StoreConfig, StoreLimits, SuspensionKeys};

/// How the runtime runs. `Default` gives the documented values; change a knob by setting its
/// field. The struct is `#[non_exhaustive]`, so a knob added later breaks no caller: start from
/// `RuntimeConfig::default()`.
///
/// ```no_run
/// use std::time::Duration;
///
/// use nexus_actors::RuntimeConfig;
/// use nexus_actors::runtime::Runtime;
///
/// let mut config = RuntimeConfig::default();
/// config.queue_bound = 1024;
/// config.suspension_timeout = Duration::from_secs(300);
/// config.engine.default_memory_limit = 32 << 20;
/// let runtime = Runtime::start(config)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A struct literal does not compile outside this crate, so no caller writes one that a new
/// field would break:
///
/// ```compile_fail,E0639
/// let config = nexus_actors::RuntimeConfig { queue_bound: 1024, ..Default::default() };
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// Instance actors, hence live stores (running or parked), at most. Default 256.
    pub pool_size: usize,
    /// Worker threads the instance actors run on. Default: the machine's cores.
    pub workers: usize,
    /// Requests that may wait for an instance; beyond it, `OVERLOADED`. Default 16,384.
    ///
    /// Sized for bursts, not as a small count: a waiting request costs its queue entry (about
    /// a hundred bytes) besides the request itself, which its caller holds anyway (its source,
    /// state, arguments: a few hundred bytes to a few KB for typical handlers), so a full queue
    /// of small requests is tens of MB; and a trivial execution takes 30-50 µs of a worker,
    /// so 16,384 of them drain in well under a second on two cores. A burst of 10,000
    /// concurrent executions from one caller (Node's `Promise.all`) fits with room to spare.
    /// What is refused is real overload: more requests waiting than that, whose wait would
    /// keep growing. Lower it where requests are large or handlers slow (a queue of 1 ms
    /// handlers waits about 8 s at its end on two workers).
    pub queue_bound: usize,
    /// A parked execution not resumed within this time is dropped. Default 60 s.
    pub suspension_timeout: Duration,
    /// How long the runtime's threads (the supervisor's, when the runtime started its own
    /// system, and the workers) spin before they block waiting for work: a hand-off to a
    /// spinning thread costs well under a microsecond, one to a blocked thread about 20 µs on
    /// the VMs this is measured on (see [`crate::spin`]). Zero turns it off. Default 100 µs.
    pub spin_before_park: Duration,
    /// Whether a request running alone leaves the reset of its finished instance's memory slot
    /// (about a third of a trivial execution) to its caller's thread, which does it while its
    /// next request runs, rather than to the instance actor, after which that next request,
    /// going to the same actor, waits for it. Turn it off when the caller's thread has better
    /// to do than wait (a Node event loop with other work: `callerResets`). Default on.
    pub caller_resets: bool,
    /// A suspended execution stays live (its instance kept, for the fastest resume) this long,
    /// or until the pool needs its instance actor; then it is hibernated into the suspension
    /// store and its actor and memory slot serve other requests. Ignored by a store that
    /// outlives the process, which gets every suspension before its result is returned.
    /// Default 5 ms (BENCHMARKS.md, "Suspensions").
    pub hibernate_after: Duration,
    /// Where hibernated suspensions are kept. Default: in memory.
    pub suspension_store: StoreConfig,
    /// Bounds on the suspensions (live and hibernated) and bytes the store holds; beyond them a
    /// new suspension fails its execution with `OVERLOADED`.
    pub store_limits: StoreLimits,
    /// The keys suspension images are sealed with (the first seals, all open). Required by a
    /// store that outlives the process; the in-memory store uses a random key when none is set.
    pub suspension_keys: Option<SuspensionKeys>,
    /// How long a resume holds its claim on a suspension in a store that outlives the process:
    /// after it (the process died mid-step), another resume may claim it again, and the first
    /// cannot commit. It must be longer than a resume waits for an instance plus its step.
    /// Within it, the claim also holds a suspension whose expiry passes. Default 30 s.
    pub claim_lease: Duration,
    /// The guest module new executions run (a `nexus_guest.wasm`); default: the one this build
    /// embeds.
    pub guest: Option<PathBuf>,
    /// Guest modules of earlier deploys: a stored suspension made on one of them is resumed on
    /// it (and one made on an image not given here is refused, naming it). See the README's
    /// "Deploying a new version".
    pub previous_guests: Vec<PathBuf>,
    /// The engine's own limits (memory, output, stack, ...).
    pub engine: EngineConfig,
}

/// The largest pool a runtime starts ([`RuntimeConfig::check`]); the address space of a pool's
/// memory slots runs out well before (about 16,000 slots of the default largest memory limit).
pub const MAX_POOL_SIZE: usize = 1 << 20;

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            pool_size: 256,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_bound: 16_384,
            suspension_timeout: Duration::from_secs(60),
            spin_before_park: Duration::from_micros(100),
            caller_resets: true,
            hibernate_after: Duration::from_millis(5),
            suspension_store: StoreConfig::Memory,
            store_limits: StoreLimits::default(),
            suspension_keys: None,
            claim_lease: Duration::from_secs(30),
            guest: None,
            previous_guests: Vec::new(),
            engine: EngineConfig::default(),
        }
    }
}

/// The longest duration a setting takes ([`RuntimeConfig::check`]): a suspension kept a year is
/// already more than any store should hold, and a deadline past it would overflow the clock.
pub const LONGEST_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

impl RuntimeConfig {
    /// Refuses settings that cannot work (the runtime's start reports it as
    /// [`crate::StartError::Config`]): a pool of no instances or more than [`MAX_POOL_SIZE`], a
    /// suspension expiry or claim lease of zero (every suspension expired as it is made; two
    /// resumes of one suspension both running its step), and any duration past
    /// [`LONGEST_DURATION`].
    pub fn check(&self) -> Result<(), String> {
        if self.pool_size == 0 {
            return Err("the pool size is 0: a runtime needs at least one instance".into());
        }
        if self.pool_size > MAX_POOL_SIZE {
            return Err(format!(
                "the pool size, {}, is above {MAX_POOL_SIZE}: each instance reserves its memory slot's address \
                 space, and no machine holds that many",
                self.pool_size
            ));
        }
        let durations = [
            ("suspension_timeout", self.suspension_timeout, "every suspension would expire as it is made"),
            ("claim_lease", self.claim_lease, "two resumes of one suspension could both run its step"),
            ("hibernate_after", self.hibernate_after, ""),
            ("spin_before_park", self.spin_before_park, ""),
        ];
        for (name, duration, if_zero) in durations {
            if duration.is_zero() && !if_zero.is_empty() {
                return Err(format!("{name} is 0: {if_zero}"));
            }
            if duration > LONGEST_DURATION {
                return Err(format!("{name} is {duration:?}, above the longest a setting takes, {LONGEST_DURATION:?}"));
            }
        }
        Ok(())
    }

    /// Precompilations that may run at once, each in an instance of its own. The engine's instance
    /// budget sets this many slots aside beside the pool's (see `Runtime::start`), so precompiling
    /// never takes a slot an execution was counted on.
    pub fn precompile_slots(&self) -> usize {
        self.workers.max(1)
    }
}
