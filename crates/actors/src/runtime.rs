//! The Rust API: a [`Runtime`] handle on a running pool and supervisor, usable from any async
//! context, and [`Runtime::run_to_completion`], which drives a handler through its extension calls
//! against the application's [`ExtensionHost`].

use std::collections::{HashSet, VecDeque};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use actix::{Actor, Addr, System};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use nexus_abi::{ErrorCode, ExtOutcome};
use nexus_host_fns::records::Records;
use nexus_host_fns::{Inference, InferenceError};
use serde_json::Value;

use crate::config::RuntimeConfig;
use crate::engine::{
    Engine, ExecutionError, ExecutionRequest, ExecutionResult, GuestImage, Language, Status, SuspensionId,
};
use crate::metrics::{GetStats, MetricsActor, RenderPrometheus, Stats, SuspensionMetrics};
use crate::pool::Pool;
use crate::refusal::Refusal;
use crate::spin::{self, Doorbell, Ringing};
use crate::start_error::StartError;
use crate::supervisor::{Precompile, Shutdown, Stop, Supervisor};
use crate::suspension::Suspensions;
use crate::suspension::previous::PreviousImages;
use crate::suspension::{Sealer, SuspensionKeys};

/// The extension calls an application performs for its handlers.
pub trait ExtensionHost: Sync {
    /// Performs `extension.method(args)`.
    fn call(&self, extension: &str, method: &str, args: Vec<Value>) -> impl Future<Output = ExtOutcome> + Send;
}

/// A running Nexus runtime. Cheap to clone; every clone uses the same pool and supervisor.
///
/// Executions and resumes run through the pool on the caller's thread (two thread
/// hand-offs: to the instance actor's worker and back); everything else asks the supervisor.
///
/// Dropping the last clone stops everything the runtime started, as [`Runtime::shutdown`]
/// would without its grace period: the supervisor, the worker threads (and the runtime's own
/// system and its thread, when it has one), then the engine and its epoch ticker thread. The
/// threads end as soon as what they run ends (at once when they are idle); the drop itself does
/// not wait for them.
#[derive(Clone)]
pub struct Runtime {
    pool: Arc<Pool>,
    supervisor: Addr<Supervisor>,
    /// The supervisor thread's doorbell, rung after every request sent to it.
    supervisor_bell: Doorbell,
    /// Shared by the clones: the last one dropped stops the runtime.
    owner: Arc<Owner>,
}

/// What a runtime started, stopped when the last clone of the [`Runtime`] is dropped.
struct Owner {
    supervisor: Addr<Supervisor>,
    /// The actix system started for this runtime, when the caller was not inside one.
    own_system: Option<System>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        match &self.own_system {
            // Its arbiters stop with it: the supervisor's and every worker's.
            Some(system) => system.stop(),
            // Inside the caller's system: the supervisor stops the workers as it stops.
            None => self.supervisor.do_send(Stop),
        }
    }
}

impl Runtime {
    /// Starts the runtime: in the current actix system when called inside one, otherwise in a
    /// system of its own on a background thread (so a plain tokio service can use it).
    pub fn start(config: RuntimeConfig) -> Result<Runtime, StartError> {
        config.check().map_err(StartError::Config)?;
        let guest = match &config.guest {
            Some(file) => GuestImage::load(file).map_err(|e| StartError::Config(e.to_string()))?,
            None => GuestImage::committed(),
        };
        let previous = PreviousImages::load(&config.previous_guests, &config.engine)
            .map_err(|e| StartError::Config(e.to_string()))?;
        let engine = Engine::with_image(config.engine.clone(), &guest, Pool::instance_slots(&config))
            .map_err(StartError::engine)?;
        let store = config
            .suspension_store
            .open(config.store_limits, config.suspension_keys.as_ref())
            .map_err(|e| StartError::Config(e.to_string()))?;
        let keys = config.suspension_keys.clone().unwrap_or_else(SuspensionKeys::random);
        let sealer = Sealer::for_image(keys, engine.image_identity());
        let suspensions = Suspensions { store, sealer, metrics: SuspensionMetrics::default(), previous };
        let spin = config.spin_before_park;
        // Runs on the supervisor's thread (the supervisor starts in the current arbiter).
        let spawn = move || {
            let metrics = MetricsActor::new(suspensions.metrics.clone()).start();
            let pool = Arc::new(Pool::new(engine, config.clone(), suspensions, metrics.clone()));
            let supervisor = Supervisor::new(pool.clone(), &config, metrics).start();
            (pool, supervisor, spin::current())
        };
        if System::try_current().is_some() && actix::Arbiter::try_current().is_some() {
            let (pool, supervisor, supervisor_bell) = spawn();
            let owner = Arc::new(Owner { supervisor: supervisor.clone(), own_system: None });
            return Ok(Runtime { pool, supervisor, supervisor_bell, owner });
        }
        let (started, addresses) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("nexus-runtime".into())
            .spawn(move || {
                let system = System::with_tokio_rt(move || {
                    spin::tokio_runtime(spin).expect("building the supervisor's tokio runtime")
                });
                system.block_on(async move {
                    let _ = started.send((spawn(), System::current()));
                });
                let _ = system.run();
            })
            .map_err(|e| StartError::Engine(format!("starting the runtime thread: {e}")))?;
        let ((pool, supervisor, supervisor_bell), system) =
            addresses.recv().map_err(|_| StartError::Engine("the runtime thread failed to start".into()))?;
        let owner = Arc::new(Owner { supervisor: supervisor.clone(), own_system: Some(system) });
        Ok(Runtime { pool, supervisor, supervisor_bell, owner })
    }

    /// Sends `message` to the supervisor and rings its doorbell; the answer's wake-up rings the
    /// caller's (see [`crate::spin`]).
    fn ask<M>(&self, message: M) -> Ringing<actix::dev::Request<Supervisor, M>>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        Supervisor: actix::Handler<M>,
    {
        let answer = Ringing::new(self.supervisor.send(message));
        self.supervisor_bell.ring();
        answer
    }

    /// The supervisor actor, for services that talk to it with its messages directly.
    pub fn supervisor(&self) -> &Addr<Supervisor> {
        &self.supervisor
    }

    /// Runs a handler; the result may be `suspended` (see [`Runtime::resume`]). A request
    /// refused before anything ran (`OVERLOADED`, `SHUTTING_DOWN`, `INVALID_ARGUMENT`) is a
    /// [`Refusal`]; once the handler ran, whatever failed is the result's error.
    pub async fn execute(&self, request: ExecutionRequest) -> Result<ExecutionResult, Refusal> {
        self.pool.execute(request).await
    }

    /// Delivers the outcome of one pending extension call of a suspended execution, live or
    /// hibernated. A resume refused before anything ran is a [`Refusal`]
    /// (`SUSPENSION_NOT_FOUND`, `SHUTTING_DOWN`, `OVERLOADED`, `INVALID_ARGUMENT`,
    /// `STORE_UNAVAILABLE`), and the suspension is left as it was; once the step ran, whatever
    /// failed is the result's error.
    pub async fn resume(
        &self,
        suspension_id: &SuspensionId,
        call_id: u32,
        outcome: ExtOutcome,
    ) -> Result<ExecutionResult, Refusal> {
        self.pool.resume(suspension_id.clone(), call_id, outcome).await
    }

    /// Drops a suspension on purpose: a later resume gets `SUSPENSION_NOT_FOUND`. Whether there
    /// was one to drop (`false` for an unknown, used, expired or running one).
    pub async fn cancel(&self, suspension_id: &SuspensionId) -> Result<bool, ExecutionError> {
        self.pool.cancel(suspension_id).await
    }

    /// Compiles handler source to bytecode, inside the sandbox.
    pub async fn precompile(&self, source: &str) -> Result<Vec<u8>, ExecutionError> {
        self.precompile_as(source, Language::JavaScript).await
    }

    /// Compiles handler source in `language` to bytecode, inside the sandbox (for TypeScript,
    /// with the source map its errors need).
    pub async fn precompile_as(&self, source: &str, language: Language) -> Result<Vec<u8>, ExecutionError> {
        self.ask(Precompile(source.to_owned(), language))
            .await
            .unwrap_or_else(|_| Err(ExecutionError::new(ErrorCode::ShuttingDown, "the runtime is shut down")))
    }

    /// Static capability inference (see [`nexus_host_fns::infer_capabilities`]).
    pub fn infer_capabilities(source: &str) -> Result<Inference, InferenceError> {
        nexus_host_fns::infer_capabilities(source)
    }

    /// [`Runtime::infer_capabilities`] of a handler in `language` (TypeScript: locations in the
    /// TypeScript).
    pub fn infer_capabilities_in(source: &str, language: Language) -> Result<Inference, InferenceError> {
        match language {
            Language::JavaScript => nexus_host_fns::infer_capabilities(source),
            Language::TypeScript => nexus_typescript::infer_capabilities(source),
        }
    }

    /// The runtime's counters and the pool's gauges (`stats.pool`). After shutdown, all zero.
    pub async fn stats(&self) -> Stats {
        self.ask(GetStats).await.unwrap_or_default()
    }

    /// The metrics in the Prometheus text format. After shutdown, an empty string.
    pub async fn prometheus(&self) -> String {
        self.ask(RenderPrometheus).await.unwrap_or_default()
    }

    /// Stops accepting work, lets running executions finish within `grace`, fails queued and
    /// parked ones with `SHUTTING_DOWN`, then stops the runtime's own system if it has one.
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.supervisor.send(Shutdown { grace }).await;
        if let Some(system) = &self.owner.own_system {
            system.stop();
        }
    }

    /// Runs a request to its end, performing its extension calls through `host`. Every call
    /// starts as soon as a suspension lists it, concurrently with the others, and the execution
    /// is resumed with each outcome as soon as that call settles (first settled, first resumed),
    /// whatever the order of the list. The calls in flight go on while a resume runs; a call is
    /// performed once, however many suspensions list it. The result carries the records of the
    /// whole run, in order, and its metrics (see [`crate::engine::ExecutionMetrics::add_step`]).
    /// A refusal of the request ends the run with it. A refusal of a resume (its suspension
    /// expired while a call ran longer than `suspension_timeout`, or the runtime shut down)
    /// ends it as an error result with the refusal's code and message, carrying the records of
    /// the steps that ran (their state mutations happened). A call of `host` that never
    /// completes holds the run (its suspension expires meanwhile): bound the calls that may
    /// hang with a timeout of their own.
    pub async fn run_to_completion(
        &self,
        request: ExecutionRequest,
        host: &impl ExtensionHost,
    ) -> Result<ExecutionResult, Refusal> {
        let mut records = Records::default();
        let mut started = HashSet::new();
        let mut in_flight = FuturesUnordered::new();
        let mut settled = VecDeque::new();
        let mut result = self.execute(request).await?;
        let mut metrics = result.metrics.clone();
        while result.status == Status::Suspended {
            records.extend(std::mem::take(&mut result.records));
            let Some(suspension) = result.suspension.take() else { break };
            for call in &suspension.calls {
                if started.insert(call.call_id) {
                    let call = call.clone();
                    in_flight
                        .push(async move { (call.call_id, host.call(&call.extension, &call.method, call.args).await) });
                }
            }
            let next = match settled.pop_front() {
                Some(next) => Some(next),
                None => in_flight.next().await,
            };
            let Some((call_id, outcome)) = next else {
                // Only calls resumed already are listed (the engine never does that): returned as
                // it is rather than waited on forever.
                result.suspension = Some(suspension);
                break;
            };
            let resume = self.resume(&suspension.id, call_id, outcome);
            result = match while_calls_run(resume, &mut in_flight, &mut settled).await {
                Ok(result) => result,
                Err(refusal) => ExecutionResult::failed(ExecutionError::new(refusal.code, refusal.message)),
            };
            metrics.add_step(&result.metrics);
        }
        records.extend(std::mem::take(&mut result.records));
        result.records = records;
        result.metrics = metrics;
        Ok(result)
    }
}

/// Awaits `work` while polling the extension calls in flight, queueing the outcome of each
/// call that settles meanwhile in the order they settle.
async fn while_calls_run<T, F>(
    work: impl Future<Output = T>,
    in_flight: &mut FuturesUnordered<F>,
    settled: &mut VecDeque<F::Output>,
) -> T
where
    F: Future,
{
    let mut work = pin!(work);
    poll_fn(|cx| {
        while let Poll::Ready(Some(outcome)) = in_flight.poll_next_unpin(cx) {
            settled.push_back(outcome);
        }
        work.as_mut().poll(cx)
    })
    .await
}
