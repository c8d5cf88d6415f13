//! The supervisor: the actor that owns the [`Pool`] of instance actors. The Rust [`Runtime`]
//! runs requests through the pool on the caller's thread; the supervisor answers the same
//! requests as messages (for services that are actix systems themselves), runs what has no
//! caller (the expiry sweep of parked executions, the end of a step whose caller stopped
//! waiting), precompiles, reports statistics, and shuts the pool down gracefully.
//!
//! [`Runtime`]: crate::runtime::Runtime

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use nexus_abi::{ErrorCode, ExtOutcome};
use tokio::sync::Semaphore;

use crate::engine::{EngineConfig, ExecutionError, ExecutionRequest, ExecutionResult, Language, SuspensionId};
use crate::metrics::{GetStats, MetricsActor, RenderPrometheus, Stats};
use crate::pool::Pool;
use crate::suspension::{StoreConfig, StoreLimits, SuspensionKeys};

/// How the runtime runs. `Default` gives the documented values.
#[derive(Debug, Clone)]
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
    /// to do than wait: the Node binding does, for its event loop. Default on.
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
    /// How long a resume holds its claim on a stored suspension: after it (the process died
    /// mid-step), another resume may claim it again, and the first cannot commit. It must be
    /// longer than any step takes. Default 30 s.
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

/// Runs a request; answers with its result (possibly `suspended`).
#[derive(Message)]
#[rtype(result = "ExecutionResult")]
pub struct Execute(pub ExecutionRequest);

/// Delivers one extension call's outcome to a parked execution.
#[derive(Message)]
#[rtype(result = "ExecutionResult")]
pub struct ExtensionResult {
    pub suspension_id: SuspensionId,
    pub call_id: u32,
    pub outcome: ExtOutcome,
}

/// Compiles source in a language to bytecode inside the sandbox.
#[derive(Message)]
#[rtype(result = "Result<Vec<u8>, ExecutionError>")]
pub struct Precompile(pub String, pub Language);

/// Fault injection: the next `n` instance actors given a request are crashed
/// ([`crate::instance_actor::Crash`]) just before the request reaches them, as if they died
/// mid-run. The fault tests use it to prove
/// that dead actors are replaced and that the requests they held still run elsewhere.
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectCrashes(pub usize);

/// Stops accepting work, fails queued and parked executions with `SHUTTING_DOWN`, and
/// answers once running executions finished or `grace` passed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub grace: Duration,
}

/// Stops the supervisor, and with it the worker threads (the last handle on a runtime started
/// inside the caller's actix system was dropped).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

pub struct Supervisor {
    pool: Arc<Pool>,
    metrics: Addr<MetricsActor>,
    /// The instance slots set aside for precompilation ([`precompile_slots`]): a precompile
    /// holds one for as long as its instance lives, and waits for one when all are taken.
    precompiling: Arc<Semaphore>,
}

/// Precompilations that may run at once, each in an instance of its own. The engine's instance
/// budget sets this many slots aside beside the pool's (see `Runtime::start`), so precompiling
/// never takes a slot an execution was counted on.
pub fn precompile_slots(config: &RuntimeConfig) -> usize {
    config.workers.max(1)
}

impl Supervisor {
    /// The supervisor of `pool` (started with `config`); statistics come from `metrics`, the
    /// actor the pool reports to.
    pub fn new(pool: Arc<Pool>, config: &RuntimeConfig, metrics: Addr<MetricsActor>) -> Self {
        Supervisor { pool, metrics, precompiling: Arc::new(Semaphore::new(precompile_slots(config))) }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.pool.sweep_period(), |this, _| this.pool.expire());
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.pool.stop_workers();
        Running::Stop
    }
}

impl Handler<Execute> for Supervisor {
    type Result = ResponseFuture<ExecutionResult>;

    fn handle(&mut self, Execute(request): Execute, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { pool.execute(request).await })
    }
}

impl Handler<ExtensionResult> for Supervisor {
    type Result = ResponseFuture<ExecutionResult>;

    fn handle(&mut self, message: ExtensionResult, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { pool.resume(message.suspension_id, message.call_id, message.outcome).await })
    }
}

impl Handler<Precompile> for Supervisor {
    type Result = ResponseFuture<Result<Vec<u8>, ExecutionError>>;

    fn handle(&mut self, Precompile(source, language): Precompile, _: &mut Context<Self>) -> Self::Result {
        let engine = self.pool.engine().clone();
        let precompiling = self.precompiling.clone();
        Box::pin(async move {
            let Ok(slot) = precompiling.acquire_owned().await else {
                return Err(ExecutionError::new(ErrorCode::ShuttingDown, "the runtime is shutting down"));
            };
            // Compiling runs wasm: off the supervisor's thread. The slot goes with the work, so
            // it is held until the instance is gone even if the caller stops waiting.
            tokio::task::spawn_blocking(move || {
                let compiled = engine.precompile_as(&source, language);
                drop(slot);
                compiled
            })
            .await
            .unwrap_or_else(|_| Err(ExecutionError::new(ErrorCode::Internal, "precompilation panicked")))
        })
    }
}

impl Handler<GetStats> for Supervisor {
    type Result = ResponseFuture<Stats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        self.metrics.do_send(self.pool.flush_metrics());
        let stats = self.metrics.send(GetStats);
        Box::pin(async move { stats.await.unwrap_or_default() })
    }
}

impl Handler<RenderPrometheus> for Supervisor {
    type Result = ResponseFuture<String>;

    fn handle(&mut self, _: RenderPrometheus, _: &mut Context<Self>) -> Self::Result {
        self.metrics.do_send(self.pool.flush_metrics());
        let text = self.metrics.send(RenderPrometheus);
        Box::pin(async move { text.await.unwrap_or_default() })
    }
}

impl Handler<InjectCrashes> for Supervisor {
    type Result = ();

    fn handle(&mut self, InjectCrashes(n): InjectCrashes, _: &mut Context<Self>) {
        self.pool.inject_crashes(n);
    }
}

impl Handler<Stop> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, shutdown: Shutdown, _: &mut Context<Self>) -> Self::Result {
        let drained = self.pool.shut_down();
        let grace = shutdown.grace;
        Box::pin(
            async move {
                let _ = tokio::time::timeout(grace, drained).await;
            }
            .into_actor(self),
        )
    }
}
