//! The supervisor: routes executions to idle instance actors (starting them up to the pool
//! size, spread over the worker threads), queues what cannot start yet (up to a bound, then
//! `OVERLOADED`), keeps the table of parked suspensions (id → actor, with an expiry), and
//! shuts down gracefully. Every request gets exactly one answer.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use actix::prelude::*;
use nexus_abi::{ErrorCode, ExtOutcome};
use tokio::sync::oneshot;

use crate::engine::{Engine, EngineConfig, ExecutionError, ExecutionRequest, ExecutionResult, Status, SuspensionId};
use crate::instance_actor::{Crash, Discard, Handoff, InstanceActor, Resume, Run};
use crate::metrics::{Executed, GetStats, MetricsActor, PoolGauges, RenderPrometheus, Stats};
use crate::spin::{self, Doorbell, Ringing};

/// How the runtime runs. `Default` gives the documented values.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Instance actors, hence live stores (running or parked), at most. Default 256.
    pub pool_size: usize,
    /// Worker threads the instance actors run on. Default: the machine's cores.
    pub workers: usize,
    /// Requests that may wait for an instance; beyond it, `OVERLOADED`. Default 1024.
    pub queue_bound: usize,
    /// A parked execution not resumed within this time is dropped. Default 60 s.
    pub suspension_timeout: Duration,
    /// How long the runtime's threads (the supervisor's, when the runtime started its own
    /// system, and the workers) spin before they block waiting for work: a hand-off to a
    /// spinning thread costs well under a microsecond, one to a blocked thread about 20 µs on
    /// the VMs this is measured on (see [`crate::spin`]). Zero turns it off. Default 100 µs.
    pub spin_before_park: Duration,
    /// The engine's own limits (memory, output, stack, ...).
    pub engine: EngineConfig,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            pool_size: 256,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_bound: 1024,
            suspension_timeout: Duration::from_secs(60),
            spin_before_park: Duration::from_micros(100),
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

/// Compiles source to bytecode inside the sandbox.
#[derive(Message)]
#[rtype(result = "Result<Vec<u8>, ExecutionError>")]
pub struct Precompile(pub String);

/// Fault injection: the next `n` instance actors given a request are crashed ([`Crash`]) just
/// before the request reaches them, as if they died mid-run. The fault tests use it to prove
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

struct Waiting {
    request: ExecutionRequest,
    reply: oneshot::Sender<ExecutionResult>,
}

struct ParkedEntry {
    actor: Member,
    expiry: SpawnHandle,
}

/// An instance actor and the worker thread it lives on.
#[derive(Clone)]
struct Member {
    addr: Addr<InstanceActor>,
    worker: usize,
    /// The worker thread's doorbell, rung after every message sent to the actor.
    bell: Doorbell,
}

/// A worker thread: an actix arbiter, with its doorbell.
struct Worker {
    arbiter: Arbiter,
    bell: Doorbell,
}

pub struct Supervisor {
    engine: Engine,
    config: RuntimeConfig,
    metrics: Addr<MetricsActor>,
    workers: Vec<Worker>,
    /// Idle actors, by worker.
    idle: Vec<Vec<Member>>,
    /// Steps running, by worker.
    busy: Vec<usize>,
    /// Instance actors alive (idle, running or parked).
    actors: usize,
    queue: VecDeque<Waiting>,
    parked: HashMap<SuspensionId, ParkedEntry>,
    running: usize,
    accepting: bool,
    drained: Vec<oneshot::Sender<()>>,
    /// Crashes still to inject ([`InjectCrashes`]).
    crashes_to_inject: usize,
}

impl Supervisor {
    pub fn new(engine: Engine, config: RuntimeConfig, metrics: Addr<MetricsActor>) -> Self {
        let spin = config.spin_before_park;
        let workers: Vec<Worker> = (0..config.workers.max(1))
            .map(|_| {
                let bell = Doorbell::default();
                let worker_bell = bell.clone();
                let arbiter = Arbiter::with_tokio_rt(move || {
                    spin::tokio_runtime_with(worker_bell, spin).expect("building a worker's tokio runtime")
                });
                Worker { arbiter, bell }
            })
            .collect();
        let (idle, busy) = (vec![Vec::new(); workers.len()], vec![0; workers.len()]);
        Supervisor {
            engine,
            config,
            metrics,
            workers,
            idle,
            busy,
            actors: 0,
            queue: VecDeque::new(),
            parked: HashMap::new(),
            running: 0,
            accepting: true,
            drained: Vec::new(),
            crashes_to_inject: 0,
        }
    }

    /// An idle actor on the least busy worker, started there when the pool is not full.
    /// Actors are bound to their worker's thread: any idle actor could put two executions on
    /// one thread while the other thread has nothing to do.
    fn acquire(&mut self) -> Option<Member> {
        let can_start = self.actors < self.config.pool_size;
        let worker = (0..self.workers.len())
            .filter(|&worker| can_start || !self.idle[worker].is_empty())
            .min_by_key(|&worker| (self.busy[worker], self.idle[worker].is_empty()))?;
        if let Some(actor) = self.idle[worker].pop() {
            return Some(actor);
        }
        self.actors += 1;
        let engine = self.engine.clone();
        let Worker { arbiter, bell } = &self.workers[worker];
        let addr = InstanceActor::start_in_arbiter(&arbiter.handle(), move |_| InstanceActor::new(engine));
        Some(Member { addr, worker, bell: bell.clone() })
    }

    /// Counts a step starting on `actor`'s worker.
    fn started(&mut self, actor: &Member) {
        self.running += 1;
        self.busy[actor.worker] += 1;
    }

    /// Counts a step that ended (or never started) on `actor`'s worker.
    fn stopped(&mut self, actor: &Member) {
        self.running -= 1;
        self.busy[actor.worker] -= 1;
    }

    fn dispatch(&mut self, actor: Member, waiting: Waiting, ctx: &mut Context<Self>) {
        self.started(&actor);
        if self.crashes_to_inject > 0 {
            self.crashes_to_inject -= 1;
            actor.addr.do_send(Crash);
        }
        let Waiting { request, reply } = waiting;
        let handoff = Handoff::new(request);
        let sent = Ringing::new(actor.addr.send(Run(handoff.clone())));
        actor.bell.ring();
        ctx.spawn(sent.into_actor(self).map(move |answer, this, ctx| {
            let result = match (answer, handoff.take()) {
                (Ok(result), _) => this.settled(actor, Some(result), None, ctx),
                // The actor died before it started the request: the request runs on another
                // actor, ahead of the queue (it was accepted first), and the dead one is replaced.
                (Err(_), Some(request)) => {
                    this.stopped(&actor);
                    this.actors -= 1;
                    this.queue.push_front(Waiting { request, reply });
                    this.pump(ctx);
                    return;
                }
                // It died running it: the request is answered, not retried (it may be what
                // killed the actor).
                (Err(_), None) => this.settled(actor, None, None, ctx),
            };
            let _ = reply.send(result);
        }));
    }

    /// Books a finished step: parks or frees the actor, counts it, and starts queued work.
    fn settled(
        &mut self,
        actor: Member,
        result: Option<ExecutionResult>,
        refused_id: Option<SuspensionId>,
        ctx: &mut Context<Self>,
    ) -> ExecutionResult {
        self.stopped(&actor);
        let result = match result {
            Some(result) => result,
            None => {
                // The actor died (it panicked outside its guard): it is replaced on demand.
                self.actors -= 1;
                let error = ExecutionError::new(ErrorCode::Internal, "the instance actor stopped while running");
                self.pump(ctx);
                return ExecutionResult::failed(error);
            }
        };
        self.metrics.do_send(Executed::from_result(&result));
        match (&result.suspension, refused_id) {
            (Some(suspension), _) if result.status == Status::Suspended => self.park(suspension.id.clone(), actor, ctx),
            (_, Some(id)) => self.park(id, actor, ctx),
            _ => self.idle[actor.worker].push(actor),
        }
        self.pump(ctx);
        result
    }

    fn park(&mut self, id: SuspensionId, actor: Member, ctx: &mut Context<Self>) {
        if !self.accepting {
            actor.addr.do_send(Discard);
            self.idle[actor.worker].push(actor);
            return;
        }
        let expiring = id.clone();
        let expiry = ctx.run_later(self.config.suspension_timeout, move |this, ctx| this.release(&expiring, ctx));
        self.parked.insert(id, ParkedEntry { actor, expiry });
    }

    /// Drops a parked execution and frees its actor.
    fn release(&mut self, id: &SuspensionId, ctx: &mut Context<Self>) {
        if let Some(entry) = self.parked.remove(id) {
            entry.actor.addr.do_send(Discard);
            self.idle[entry.actor.worker].push(entry.actor);
            self.pump(ctx);
        }
    }

    /// Sends the pool gauges to the metrics actor. Done when statistics are asked for rather
    /// than at every change: that was two messages per request on the supervisor's thread.
    fn report_gauges(&self) {
        self.metrics.do_send(PoolGauges {
            pool_size: self.actors as u64,
            idle: self.idle.iter().map(Vec::len).sum::<usize>() as u64,
            queued: self.queue.len() as u64,
            parked: self.parked.len() as u64,
        });
    }

    /// Starts queued work while actors are available; resolves shutdown when drained.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while !self.queue.is_empty() {
            let Some(actor) = self.acquire() else { break };
            let waiting = self.queue.pop_front().expect("checked non-empty");
            self.dispatch(actor, waiting, ctx);
        }
        if !self.accepting && self.running == 0 {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        for worker in &self.workers {
            worker.arbiter.stop();
        }
        Running::Stop
    }
}

fn refusal(code: ErrorCode, message: &str) -> ResponseFuture<ExecutionResult> {
    let result = ExecutionResult::failed(ExecutionError::new(code, message));
    Box::pin(async move { result })
}

impl Handler<Execute> for Supervisor {
    type Result = ResponseFuture<ExecutionResult>;

    fn handle(&mut self, Execute(request): Execute, ctx: &mut Context<Self>) -> Self::Result {
        if !self.accepting {
            return refusal(ErrorCode::ShuttingDown, "the runtime is shutting down");
        }
        let (reply, answer) = oneshot::channel();
        let waiting = Waiting { request, reply };
        if let Some(actor) = self.acquire() {
            self.dispatch(actor, waiting, ctx);
        } else if self.queue.len() < self.config.queue_bound {
            self.queue.push_back(waiting);
        } else {
            self.metrics.do_send(Executed {
                status: Status::Error,
                code: Some(ErrorCode::Overloaded.as_str()),
                duration_us: 0,
                host_calls: 0,
                denials: 0,
                cache_hit: None,
            });
            return refusal(ErrorCode::Overloaded, "every instance is busy and the queue is full");
        }
        self.pump(ctx);
        Box::pin(async move {
            answer.await.unwrap_or_else(|_| {
                ExecutionResult::failed(ExecutionError::new(ErrorCode::Internal, "the request was dropped"))
            })
        })
    }
}

impl Handler<ExtensionResult> for Supervisor {
    type Result = ResponseFuture<ExecutionResult>;

    fn handle(&mut self, message: ExtensionResult, ctx: &mut Context<Self>) -> Self::Result {
        if !self.accepting {
            return refusal(ErrorCode::ShuttingDown, "the runtime is shutting down");
        }
        // Single use: the id is gone from the table as soon as it is presented.
        let Some(entry) = self.parked.remove(&message.suspension_id) else {
            return refusal(ErrorCode::SuspensionNotFound, "no such suspension: unknown, already resumed, or expired");
        };
        ctx.cancel_future(entry.expiry);
        let actor = entry.actor;
        self.started(&actor);
        let id = message.suspension_id;
        let (reply, answer) = oneshot::channel();
        let sent = Ringing::new(actor.addr.send(Resume { call_id: message.call_id, outcome: message.outcome }));
        actor.bell.ring();
        ctx.spawn(sent.into_actor(self).map(move |answer, this, ctx| {
            let result = match answer {
                Ok(Ok(result)) => this.settled(actor, Some(result), None, ctx),
                // Refused (no such pending call): still parked, under the same id.
                Ok(Err(error)) => this.settled(actor, Some(ExecutionResult::failed(error)), Some(id), ctx),
                Err(_) => this.settled(actor, None, None, ctx),
            };
            let _ = reply.send(result);
        }));
        Box::pin(async move {
            answer.await.unwrap_or_else(|_| {
                ExecutionResult::failed(ExecutionError::new(ErrorCode::Internal, "the request was dropped"))
            })
        })
    }
}

impl Handler<Precompile> for Supervisor {
    type Result = ResponseFuture<Result<Vec<u8>, ExecutionError>>;

    fn handle(&mut self, Precompile(source): Precompile, _: &mut Context<Self>) -> Self::Result {
        let engine = self.engine.clone();
        // Compiling runs wasm: off the supervisor's thread.
        Box::pin(async move {
            tokio::task::spawn_blocking(move || engine.precompile(&source))
                .await
                .unwrap_or_else(|_| Err(ExecutionError::new(ErrorCode::Internal, "precompilation panicked")))
        })
    }
}

impl Handler<GetStats> for Supervisor {
    type Result = ResponseFuture<Stats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        self.report_gauges();
        let stats = self.metrics.send(GetStats);
        Box::pin(async move { stats.await.unwrap_or_default() })
    }
}

impl Handler<RenderPrometheus> for Supervisor {
    type Result = ResponseFuture<String>;

    fn handle(&mut self, _: RenderPrometheus, _: &mut Context<Self>) -> Self::Result {
        self.report_gauges();
        let text = self.metrics.send(RenderPrometheus);
        Box::pin(async move { text.await.unwrap_or_default() })
    }
}

impl Handler<InjectCrashes> for Supervisor {
    type Result = ();

    fn handle(&mut self, InjectCrashes(n): InjectCrashes, _: &mut Context<Self>) {
        self.crashes_to_inject += n;
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, shutdown: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        self.accepting = false;
        for waiting in self.queue.drain(..) {
            let error = ExecutionError::new(ErrorCode::ShuttingDown, "the runtime shut down before this request ran");
            let _ = waiting.reply.send(ExecutionResult::failed(error));
        }
        let ids: Vec<SuspensionId> = self.parked.keys().cloned().collect();
        for id in ids {
            self.release(&id, ctx);
        }
        let (done, drained) = oneshot::channel();
        self.drained.push(done);
        self.pump(ctx);
        let grace = shutdown.grace;
        Box::pin(
            async move {
                let _ = tokio::time::timeout(grace, drained).await;
            }
            .into_actor(self),
        )
    }
}
