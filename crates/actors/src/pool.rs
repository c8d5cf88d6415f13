//! The pool of instance actors: what it holds, and how it starts and stops. The path of one
//! request through it runs on the caller's own thread, in the files named for each part:
//!
//! 1. [`crate::admission`]: an idle actor (started, up to the pool size, on the least busy
//!    worker), else a place in the bounded queue until a step ends and hands its actor on, else
//!    `OVERLOADED`;
//! 2. [`crate::step`]: the request goes straight to the actor's worker thread, and its answer
//!    straight back (two thread hand-offs, each ringing the receiver's doorbell, see
//!    [`crate::spin`]); the step's end is booked: the actor is idle again (or parked under a
//!    suspension id, [`crate::suspension::lifecycle`]), the first queued requests are given the
//!    actors that became free (their callers run them), and the step is counted
//!    ([`crate::metrics::batch`]);
//! 3. [`crate::slot_reset`]: who resets the finished instance's memory slot, off the answer's path.
//!
//! The shared state is behind a mutex held only for that bookkeeping, never across an `.await`.
//! The supervisor's thread ([`Pool::supervisor_thread`]) runs only what has no caller: the expiry
//! sweep of parked executions, and the end of a step whose caller stopped waiting (the actor
//! running it must still come back to the pool). Every request gets exactly one answer.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix::{Addr, Arbiter, ArbiterHandle};
use nexus_abi::ErrorCode;
use tokio::sync::oneshot;

use crate::config::RuntimeConfig;
use crate::engine::Engine;
use crate::instance_actor::Crash;
use crate::metrics::batch::MetricsBatch;
use crate::metrics::{MetricsActor, PoolGauges};
use crate::refusal::Refusal;
use crate::slot_reset::{AWAITING_RESET_BOUND, AwaitingReset, Reset};
use crate::suspension::Suspensions;
use crate::suspension::live::{Live, LiveTable};
use crate::workers::{PooledActor, Workers};

/// The instance actors, the queue and the parked executions of one runtime.
pub struct Pool {
    engine: Engine,
    pub(crate) config: RuntimeConfig,
    pub(crate) workers: Workers,
    /// The supervisor's arbiter: it runs what no caller waits for.
    pub(crate) supervisor_thread: ArbiterHandle,
    /// Hibernated suspensions and what they need (see [`crate::suspension::lifecycle`]).
    pub(crate) suspensions: Suspensions,
    /// Finished steps not counted by the metrics actor yet.
    pub(crate) metrics: MetricsBatch,
    state: Mutex<PoolState>,
    /// Finished instances whose memory slots are still to be reset.
    pub(crate) awaiting_reset: AwaitingReset,
}

/// The pool's bookkeeping, under its lock.
pub(crate) struct PoolState {
    /// Idle actors, by worker.
    pub(crate) idle: Vec<Vec<PooledActor>>,
    /// Steps running, by worker.
    pub(crate) busy: Vec<usize>,
    /// The worker of the last step started: it gets the next among equally busy ones.
    pub(crate) last_worker: usize,
    /// Instance actors alive (idle, running or parked).
    pub(crate) actors: usize,
    /// Callers waiting for an actor, first come first served.
    pub(crate) queue: VecDeque<oneshot::Sender<Turn>>,
    /// Suspended executions an actor still holds (see [`crate::suspension::lifecycle`]).
    pub(crate) live: LiveTable<Live>,
    pub(crate) running: usize,
    pub(crate) accepting: bool,
    /// Told when the runtime stopped accepting work and nothing runs any more.
    pub(crate) drained: Vec<oneshot::Sender<()>>,
    /// Crashes still to inject ([`crate::supervisor::InjectCrashes`]).
    pub(crate) crashes_to_inject: usize,
}

/// An actor given to a request, its step already counted as running.
pub(crate) struct Assignment {
    pub(crate) actor: PooledActor,
    /// Crash the actor first (fault injection).
    pub(crate) crash: bool,
    /// Who resets the step's finished instance.
    pub(crate) reset: Reset,
}

/// What a queued request's caller is given when its turn comes.
pub(crate) enum Turn {
    /// Run it on this actor.
    Run(Assignment),
    /// The runtime shut down before it ran.
    Refused(Refusal),
}

impl Pool {
    /// A pool whose worker threads spin `config.spin_before_park` before parking. Called on the
    /// supervisor's thread: its arbiter becomes the pool's [`Pool::supervisor_thread`].
    pub fn new(engine: Engine, config: RuntimeConfig, suspensions: Suspensions, metrics: Addr<MetricsActor>) -> Self {
        let workers = Workers::start(config.workers, config.spin_before_park);
        let state = PoolState {
            idle: (0..workers.len()).map(|_| Vec::new()).collect(),
            busy: vec![0; workers.len()],
            last_worker: 0,
            actors: 0,
            queue: VecDeque::new(),
            live: LiveTable::default(),
            running: 0,
            accepting: true,
            drained: Vec::new(),
            crashes_to_inject: 0,
        };
        Pool {
            engine,
            config,
            workers,
            supervisor_thread: Arbiter::current(),
            suspensions,
            metrics: MetricsBatch::new(metrics),
            state: Mutex::new(state),
            awaiting_reset: AwaitingReset::default(),
        }
    }

    /// The instance slots the engine needs for a pool configured by `config`: one per actor (each
    /// may hold a store, running or parked), the finished instances waiting for their reset
    /// ([`crate::slot_reset`]), the precompilations the supervisor runs at once, and one to spare.
    pub fn instance_slots(config: &RuntimeConfig) -> u32 {
        let slots = config.pool_size + AWAITING_RESET_BOUND + config.precompile_slots() + 1;
        u32::try_from(slots).unwrap_or(u32::MAX)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops the execution `actor` holds, makes the actor idle and gives it queued work.
    pub(crate) fn drop_parked(&self, state: &mut PoolState, actor: PooledActor) {
        actor.discard_held();
        self.free_actor(state, actor);
    }

    /// Makes `actor` idle and gives it queued work.
    pub(crate) fn free_actor(&self, state: &mut PoolState, actor: PooledActor) {
        state.idle[actor.worker].push(actor);
        self.serve_queue(state);
    }

    /// How often [`Pool::expire`] runs: an expired execution is dropped within a quarter of the
    /// suspension timeout after its deadline (and never resumed after it).
    pub fn sweep_period(&self) -> Duration {
        (self.config.suspension_timeout / 4).clamp(Duration::from_millis(1), Duration::from_secs(1))
    }

    /// Stops accepting work, fails queued and parked executions with `SHUTTING_DOWN`; the
    /// receiver is told when no step runs any more.
    pub fn shut_down(&self) -> oneshot::Receiver<()> {
        let mut state = self.lock();
        self.stop_accepting(&mut state);
        let (done, drained) = oneshot::channel();
        state.drained.push(done);
        self.serve_queue(&mut state);
        drained
    }

    /// Refuses new work from now on, and fails the queued and parked executions.
    pub(crate) fn stop_accepting(&self, state: &mut PoolState) {
        state.accepting = false;
        for waiting in state.queue.drain(..) {
            let refusal = Refusal::new(ErrorCode::ShuttingDown, "the runtime shut down before this request ran");
            let _ = waiting.send(Turn::Refused(refusal));
        }
        let parked: Vec<PooledActor> = state.live.drain().filter_map(Live::into_actor).collect();
        for actor in parked {
            // The queue is empty: freeing an actor starts nothing.
            self.drop_parked(state, actor);
        }
    }

    /// Stops the worker threads (the supervisor is stopping).
    pub fn stop_workers(&self) {
        self.workers.stop();
    }

    /// Fault injection: crash the next `n` actors given a request.
    pub fn inject_crashes(&self, n: usize) {
        self.lock().crashes_to_inject += n;
    }

    /// The pool's gauges, after sending the steps not counted yet to the metrics actor (so
    /// statistics asked for next include every step answered so far).
    pub fn flush_metrics(&self) -> PoolGauges {
        self.metrics.flush();
        let state = self.lock();
        PoolGauges {
            pool_size: state.actors as u64,
            idle: state.idle.iter().map(Vec::len).sum::<usize>() as u64,
            queued: state.queue.len() as u64,
            parked: state.live.count_where(|live| !matches!(live, Live::Lost { .. })) as u64,
            awaiting_reset: self.awaiting_reset.len() as u64,
            hibernated: self.suspensions.store.usage().suspensions,
            store_bytes: self.suspensions.store.usage().bytes,
        }
    }
}

impl Assignment {
    /// Fault injection: crashes the actor before its step reaches it, when this assignment was
    /// picked for a crash ([`crate::supervisor::InjectCrashes`]).
    pub(crate) fn inject_crash(&self) {
        if self.crash {
            self.actor.addr.do_send(Crash);
        }
    }
}

impl PoolState {
    /// Counts an actor that died outside a step: it is replaced on demand.
    pub(crate) fn forget_actor(&mut self) {
        self.actors -= 1;
    }

    /// Counts a step starting on `actor`'s worker.
    pub(crate) fn start(&mut self, actor: &PooledActor) {
        self.running += 1;
        self.busy[actor.worker] += 1;
    }

    /// Counts a step that ended (or never started) on `actor`'s worker.
    pub(crate) fn stop(&mut self, actor: &PooledActor) {
        self.running -= 1;
        self.busy[actor.worker] -= 1;
    }

    /// Makes an assigned `actor` idle again without it having run anything (its caller left).
    pub(crate) fn unassign(&mut self, actor: PooledActor) {
        self.stop(&actor);
        self.idle[actor.worker].push(actor);
    }
}
