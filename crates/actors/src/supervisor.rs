//! The supervisor: the actor that owns the pool of instance actors. The Rust [`Runtime`]
//! runs requests through the pool on the caller's thread; the supervisor answers the same
//! requests as messages (for services that are actix systems themselves), runs what has no
//! caller (the expiry sweep of parked executions, the end of a step whose caller stopped
//! waiting), precompiles, reports statistics, and shuts the pool down gracefully.
//!
//! [`Runtime`]: crate::runtime::Runtime

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use nexus_abi::{ErrorCode, ExtOutcome};
use tokio::sync::Semaphore;

use crate::config::RuntimeConfig;
use crate::engine::{ExecutionError, ExecutionRequest, ExecutionResult, Language, SuspensionId};
use crate::metrics::{GetStats, MetricsActor, RenderPrometheus, Stats};
use crate::pool::Pool;
use crate::refusal::Refusal;

/// Runs a request; answers with its result (possibly `suspended`), or its [`Refusal`]. The same path as
/// [`Runtime::execute`](crate::runtime::Runtime::execute): the pool's, run here on the
/// supervisor's thread.
#[derive(Message)]
#[rtype(result = "Result<ExecutionResult, Refusal>")]
pub struct Execute(pub ExecutionRequest);

/// Delivers one extension call's outcome to a suspended execution, live or hibernated, as
/// [`Runtime::resume`](crate::runtime::Runtime::resume) does (through the same pool): its
/// result, or its [`Refusal`].
#[derive(Message)]
#[rtype(result = "Result<ExecutionResult, Refusal>")]
pub struct ExtensionResult {
    pub suspension_id: SuspensionId,
    pub call_id: u32,
    pub outcome: ExtOutcome,
}

/// Compiles source in a language to bytecode inside the sandbox.
#[derive(Message)]
#[rtype(result = "Result<Vec<u8>, ExecutionError>")]
pub struct Precompile(pub String, pub Language);

/// Fault injection: the next `n` instance actors given a request are crashed (they panic
/// outside their panic guard) just before the request reaches them, as if they died mid-run. The fault tests use it to prove
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
    /// The instance slots set aside for precompilation ([`RuntimeConfig::precompile_slots`]): a precompile
    /// holds one for as long as its instance lives, and waits for one when all are taken.
    precompiling: Arc<Semaphore>,
}

impl Supervisor {
    /// The supervisor of `pool` (started with `config`); statistics come from `metrics`, the
    /// actor the pool reports to.
    pub(crate) fn new(pool: Arc<Pool>, config: &RuntimeConfig, metrics: Addr<MetricsActor>) -> Self {
        Supervisor { pool, metrics, precompiling: Arc::new(Semaphore::new(config.precompile_slots())) }
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
    type Result = ResponseFuture<Result<ExecutionResult, Refusal>>;

    fn handle(&mut self, Execute(request): Execute, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { pool.execute(request).await })
    }
}

impl Handler<ExtensionResult> for Supervisor {
    type Result = ResponseFuture<Result<ExecutionResult, Refusal>>;

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
