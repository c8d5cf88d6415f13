//! The pool of instance actors, and the path of one request through it, run on the caller's own
//! thread:
//!
//! 1. admission: an idle actor (started, up to the pool size, on the least busy worker), else a
//!    place in the bounded queue until a step ends and hands its actor on, else `OVERLOADED`;
//! 2. the step: the request goes straight to the actor's worker thread, and its answer straight
//!    back (two thread hand-offs, each ringing the receiver's doorbell, see [`crate::spin`]);
//!    a request running alone has its caller reset the instance of the step before while it
//!    waits ([`Retired`]);
//! 3. booking: the actor is parked under the suspension id or is idle again, the first queued
//!    requests are given the actors that became free (their callers run them), and the step is
//!    counted for the metrics actor.
//!
//! The shared state is behind a mutex held only for that bookkeeping, never across an `.await`.
//! The supervisor's thread (`Pool::home`) runs only what has no caller: the expiry sweep of
//! parked executions, and the end of a step whose caller stopped waiting (the actor running it
//! must still come back to the pool). Every request gets exactly one answer.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use actix::{Actor, Addr, Arbiter, ArbiterHandle};
use nexus_abi::ErrorCode;
use tokio::sync::oneshot;

use crate::engine::{Engine, ExecutionError, ExecutionRequest, ExecutionResult, SpentInstance, SuspensionId};
use crate::instance_actor::{Answer, Crash, Discard, Handoff, InstanceActor, Reset, Run};
use crate::metrics::{Executed, Executions, MetricsActor, PoolGauges};
use crate::spin::{self, Doorbell, Ringing};
use crate::config::RuntimeConfig;
use crate::suspension::lifecycle::{Live, Suspensions};
use crate::suspension::live::LiveTable;

/// Finished steps are sent to the metrics actor this many at a time (and whenever statistics
/// are asked for), not one message per request: each message wakes the supervisor's thread.
const METRICS_BATCH: usize = 256;

/// The instance actors, the queue and the parked executions of one runtime.
pub struct Pool {
    engine: Engine,
    pub(crate) config: RuntimeConfig,
    workers: Vec<Worker>,
    /// The supervisor's arbiter.
    pub(crate) home: ArbiterHandle,
    /// Hibernated suspensions and what they need (see [`crate::suspension::lifecycle`]).
    pub(crate) suspensions: Suspensions,
    metrics: Addr<MetricsActor>,
    state: Mutex<State>,
    /// Finished steps not sent to the metrics actor yet.
    executed: Mutex<Vec<Executed>>,
    /// Finished instances whose memory slots are still to be reset.
    retired: Retired,
}

/// A worker thread: an actix arbiter, with its doorbell.
struct Worker {
    arbiter: Arbiter,
    bell: Doorbell,
}

/// An instance actor and the worker thread it lives on.
pub(crate) struct Member {
    pub(crate) addr: Addr<InstanceActor>,
    worker: usize,
    /// The worker thread's doorbell, rung after every message sent to the actor.
    pub(crate) bell: Doorbell,
}

/// A step counted as started on `member`, decided under the pool's lock.
pub(crate) struct Start {
    pub(crate) member: Member,
    /// Crash the actor first (fault injection).
    pub(crate) crash: bool,
    /// Who resets the step's finished instance.
    pub(crate) reset: Reset,
}

/// What a queued request's caller is given when its turn comes.
pub(crate) enum Ticket {
    /// Run it as started here.
    Run(Start),
    /// The runtime shut down before it ran.
    Refused(Refusal),
}

/// What admission decided for a request.
pub(crate) enum Admission {
    /// Run it now, as started here.
    Run(Start),
    /// It waits in the queue for its ticket.
    Queued(Queued),
    Refused(Refusal),
}

/// What a step's actor holds once it ended.
pub(crate) enum Holds {
    Nothing,
    /// An execution that must not go on (it suspended, but could not be kept): drop it.
    Discard,
    /// The execution it ran suspended: park it live.
    NewSuspension,
    /// A resume of the live suspension `id` was refused: it is still parked.
    Refused(SuspensionId),
}

/// Where a request joins the queue: at its end, or first (a request admitted before, whose
/// actor died before it started).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Place {
    Back,
    Front,
}

pub(crate) struct State {
    /// Idle actors, by worker.
    idle: Vec<Vec<Member>>,
    /// Steps running, by worker.
    busy: Vec<usize>,
    /// The worker of the last step started: it gets the next among equally busy ones.
    last_worker: usize,
    /// Instance actors alive (idle, running or parked).
    actors: usize,
    /// Callers waiting for an actor, first come first served.
    queue: VecDeque<oneshot::Sender<Ticket>>,
    /// Suspended executions an actor still holds (see [`crate::suspension::lifecycle`]).
    pub(crate) live: LiveTable<Live>,
    running: usize,
    accepting: bool,
    /// Told when the runtime stopped accepting work and nothing runs any more.
    drained: Vec<oneshot::Sender<()>>,
    /// Crashes still to inject ([`crate::supervisor::InjectCrashes`]).
    crashes_to_inject: usize,
}

/// Why a request or resume was answered without running: its error code and message.
pub(crate) type Refusal = (ErrorCode, &'static str);

pub(crate) fn failed(code: ErrorCode, message: &str) -> ExecutionResult {
    ExecutionResult::failed(ExecutionError::new(code, message))
}

impl Pool {
    /// A pool whose worker threads spin `config.spin_before_park` before parking. Called on the
    /// supervisor's thread: its arbiter becomes the pool's home.
    pub fn new(engine: Engine, config: RuntimeConfig, suspensions: Suspensions, metrics: Addr<MetricsActor>) -> Self {
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
        let state = State {
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
            home: Arbiter::current(),
            suspensions,
            metrics,
            state: Mutex::new(state),
            executed: Mutex::default(),
            retired: Retired::default(),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a request; answers with its result (possibly `suspended`).
    pub async fn execute(self: &Arc<Self>, request: ExecutionRequest) -> ExecutionResult {
        let admission = self.admit(&mut self.lock(), Place::Back);
        let start = match admission.ready().await {
            Ok(start) => start,
            Err((code, message)) => return failed(code, message),
        };
        Detached::new(self.home.clone(), self.clone().run(start, request)).await
    }

    /// An idle actor for a request, else a place in the queue (within its bound, unless the
    /// request was admitted before), else a refusal.
    pub(crate) fn admit(self: &Arc<Self>, state: &mut State, place: Place) -> Admission {
        if !state.accepting {
            return Admission::Refused((ErrorCode::ShuttingDown, "the runtime is shutting down"));
        }
        if let Some(member) = self.acquire(state) {
            return Admission::Run(self.start_request(state, member));
        }
        // Every actor is busy: one holding a live suspension hibernates it to take this request.
        self.hibernate_one(state);
        if place == Place::Back && state.queue.len() >= self.config.queue_bound {
            self.record(Executed::refused(ErrorCode::Overloaded));
            return Admission::Refused((ErrorCode::Overloaded, "every instance is busy and the queue is full"));
        }
        let (ticket, waiting) = oneshot::channel();
        match place {
            Place::Back => state.queue.push_back(ticket),
            Place::Front => state.queue.push_front(ticket),
        }
        Admission::Queued(Queued { pool: self.clone(), waiting: Some(Ringing::new(waiting)) })
    }

    /// Sends a step to its actor on the actor's worker thread, and books its end.
    async fn run(self: Arc<Self>, mut start: Start, mut request: ExecutionRequest) -> ExecutionResult {
        loop {
            let Start { member, crash, reset } = start;
            if crash {
                member.addr.do_send(Crash);
            }
            let handoff = Handoff::new(request);
            let answer = Ringing::new(member.addr.send(Run { handoff: handoff.clone(), reset }));
            member.bell.ring();
            self.reset_while_waiting(reset);
            match (answer.await, handoff.take()) {
                (Ok(Answer { result, spent }), _) => {
                    self.retire(spent);
                    return self.conclude(member, result, None).await;
                }
                // It died running it: the request is answered, not retried (it may be what
                // killed the actor).
                (Err(_), None) => return self.settled(member, None, Holds::Nothing),
                // The actor died before it started the request: the request runs on another
                // actor, ahead of the queue (it was accepted first), and the dead one is replaced.
                (Err(_), Some(taken_back)) => {
                    request = taken_back;
                    // A worker thread is gone only when the actix system stopped under the
                    // runtime: nothing can run any more, and retrying would never end.
                    let worker_alive = self.workers[member.worker].arbiter.spawn(async {});
                    let admission = {
                        let mut state = self.lock();
                        state.stop(&member);
                        state.actors -= 1;
                        if !worker_alive {
                            self.stop_accepting(&mut state);
                        }
                        self.admit(&mut state, Place::Front)
                    };
                    start = match admission.ready().await {
                        Ok(start) => start,
                        Err((code, message)) => return failed(code, message),
                    };
                }
            }
        }
    }

    /// Books a finished step (`None`: the actor died running it): parks or frees the actor,
    /// starts queued work, and counts the step.
    pub(crate) fn settled(
        self: &Arc<Self>,
        member: Member,
        result: Option<ExecutionResult>,
        holds: Holds,
    ) -> ExecutionResult {
        let mut state = self.lock();
        state.stop(&member);
        let result = match result {
            Some(mut result) => {
                match holds {
                    Holds::NewSuspension => self.park(&mut state, member, &mut result),
                    Holds::Refused(id) => self.park_again(&mut state, &id, member),
                    Holds::Discard => discard(&mut state, member),
                    Holds::Nothing => state.idle[member.worker].push(member),
                }
                Some(result)
            }
            // The actor died (it panicked outside its guard): it is replaced on demand.
            None => {
                state.actors -= 1;
                None
            }
        };
        self.pump(&mut state);
        drop(state);
        match result {
            Some(result) => {
                self.record(Executed::from_result(&result));
                result
            }
            None => failed(ErrorCode::Internal, "the instance actor stopped while running"),
        }
    }

    /// Counts a request starting on `member`, and decides how it runs.
    pub(crate) fn start_request(&self, state: &mut State, member: Member) -> Start {
        state.start(&member);
        let crash = state.crashes_to_inject > 0;
        state.crashes_to_inject = state.crashes_to_inject.saturating_sub(1);
        Start { reset: self.resetter(state), member, crash }
    }

    /// Who resets the instance of a step about to be handed over. A step running alone leaves
    /// it to its caller ([`Retired`], unless [`RuntimeConfig::caller_resets`] is off): otherwise
    /// the actor would do it after its reply, and the caller's next request, going to the same
    /// idle actor, would wait for it. When other steps run, the actor does it: the caller's
    /// thread may have requests to hand over, and a reset there would hold them up while the
    /// workers idle.
    pub(crate) fn resetter(&self, state: &State) -> Reset {
        match self.config.caller_resets && state.running == 1 {
            true => Reset::Caller,
            false => Reset::Actor,
        }
    }

    /// A caller whose step runs alone resets a retired instance while it waits: its thread
    /// would only spin meanwhile.
    pub(crate) fn reset_while_waiting(&self, reset: Reset) {
        if reset == Reset::Caller {
            self.retired.reset_one();
        }
    }

    /// Leaves a finished instance's reset to [`Retired`], or does it now when too many wait.
    pub(crate) fn retire(&self, spent: Option<SpentInstance>) {
        drop(spent.and_then(|spent| self.retired.keep(spent)));
    }

    /// Drops the execution `member` holds, frees the actor and gives it queued work.
    pub(crate) fn release(&self, state: &mut State, member: Member) {
        discard(state, member);
        self.pump(state);
    }

    /// Resets the finished instances no caller took ([`Retired`]).
    pub(crate) fn reset_retired(&self) {
        self.retired.reset_all();
    }

    /// Makes `member` idle and gives it queued work.
    pub(crate) fn make_idle(&self, state: &mut State, member: Member) {
        state.idle[member.worker].push(member);
        self.pump(state);
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
        self.pump(&mut state);
        drained
    }

    /// Refuses new work from now on, and fails the queued and parked executions.
    fn stop_accepting(&self, state: &mut State) {
        state.accepting = false;
        for ticket in state.queue.drain(..) {
            let _ = ticket
                .send(Ticket::Refused((ErrorCode::ShuttingDown, "the runtime shut down before this request ran")));
        }
        let parked: Vec<Member> = state.live.drain().filter_map(Live::into_member).collect();
        for member in parked {
            // The queue is empty: releasing starts nothing.
            self.release(state, member);
        }
    }

    /// Stops the worker threads (the supervisor is stopping).
    pub fn stop_workers(&self) {
        for worker in &self.workers {
            worker.arbiter.stop();
        }
    }

    /// Fault injection: crash the next `n` actors given a request.
    pub fn inject_crashes(&self, n: usize) {
        self.lock().crashes_to_inject += n;
    }

    /// The pool's gauges, after sending the steps not counted yet to the metrics actor (so
    /// statistics asked for next include every step answered so far).
    pub fn flush_metrics(&self) -> PoolGauges {
        let executed = std::mem::take(&mut *self.executed.lock().unwrap_or_else(PoisonError::into_inner));
        if !executed.is_empty() {
            self.metrics.do_send(Executions(executed));
        }
        let state = self.lock();
        PoolGauges {
            pool_size: state.actors as u64,
            idle: state.idle.iter().map(Vec::len).sum::<usize>() as u64,
            queued: state.queue.len() as u64,
            parked: state.live.len() as u64,
            awaiting_reset: self.retired.lock().len() as u64,
            hibernated: self.suspensions.store.usage().suspensions,
            store_bytes: self.suspensions.store.usage().bytes,
        }
    }

    pub(crate) fn record(&self, executed: Executed) {
        let mut pending = self.executed.lock().unwrap_or_else(PoisonError::into_inner);
        pending.push(executed);
        if pending.len() >= METRICS_BATCH {
            let batch = std::mem::take(&mut *pending);
            drop(pending);
            self.metrics.do_send(Executions(batch));
        }
    }

    /// An idle actor on the least busy worker, started there when the pool is not full.
    /// Actors are bound to their worker's thread: any idle actor could put two executions on
    /// one thread while the other thread has nothing to do.
    fn acquire(&self, state: &mut State) -> Option<Member> {
        let can_start = state.actors < self.config.pool_size;
        let has_idle: Vec<bool> = state.idle.iter().map(|idle| !idle.is_empty()).collect();
        let worker = choose_worker(&state.busy, &has_idle, can_start, state.last_worker)?;
        state.last_worker = worker;
        if let Some(member) = state.idle[worker].pop() {
            return Some(member);
        }
        state.actors += 1;
        let engine = self.engine.clone();
        let sealer = self.suspensions.sealer.clone();
        let Worker { arbiter, bell } = &self.workers[worker];
        let addr = InstanceActor::start_in_arbiter(&arbiter.handle(), move |_| InstanceActor::new(engine, sealer));
        Some(Member { addr, worker, bell: bell.clone() })
    }

    /// Gives actors to queued callers while there are idle ones (a caller that stopped waiting
    /// is skipped), and tells the shutdown waiters when nothing runs any more.
    pub(crate) fn pump(&self, state: &mut State) {
        while !state.queue.is_empty() {
            let Some(member) = self.acquire(state) else { break };
            let ticket = state.queue.pop_front().expect("checked non-empty");
            let start = self.start_request(state, member);
            if let Err(Ticket::Run(Start { member, .. })) = ticket.send(Ticket::Run(start)) {
                state.give_back(member);
            }
        }
        if !state.accepting && state.running == 0 {
            for waiter in state.drained.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

impl Admission {
    /// The actor to run on, once there is one, or the answer.
    pub(crate) async fn ready(self) -> Result<Start, Refusal> {
        match self {
            Admission::Run(start) => Ok(start),
            Admission::Queued(queued) => match queued.await {
                Some(Ticket::Run(start)) => Ok(start),
                Some(Ticket::Refused(refusal)) => Err(refusal),
                None => Err((ErrorCode::Internal, "the request was dropped")),
            },
            Admission::Refused(refusal) => Err(refusal),
        }
    }
}

/// Finished instances of steps that ran alone ([`Reset::Caller`]), waiting for the reset of their
/// pooled memory slots (which dropping them does): the caller of the next step running alone
/// resets one while it waits for its answer, and the supervisor's sweep resets whatever is left
/// ([`Pool::expire`]).
#[derive(Default)]
struct Retired(Mutex<Vec<SpentInstance>>);

/// At most this many finished instances wait in [`Retired`]; the engine has as many memory
/// slots more than the pool has actors.
pub const RETIRED_BOUND: usize = 16;

impl Retired {
    /// Keeps a finished instance for a later reset; gives it back when [`RETIRED_BOUND`] wait
    /// already (whoever holds it then resets it at once, by dropping it).
    fn keep(&self, spent: SpentInstance) -> Option<SpentInstance> {
        let mut retired = self.lock();
        if retired.len() >= RETIRED_BOUND {
            return Some(spent);
        }
        retired.push(spent);
        None
    }

    /// Resets one waiting instance, if there is one.
    fn reset_one(&self) {
        let spent = self.lock().pop();
        drop(spent);
    }

    /// Resets every waiting instance.
    fn reset_all(&self) {
        let spent = std::mem::take(&mut *self.lock());
        drop(spent);
    }

    fn lock(&self) -> MutexGuard<'_, Vec<SpentInstance>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A caller's place in the queue. If the caller stops waiting once its ticket was sent, the
/// actor on the ticket goes back to the pool.
pub(crate) struct Queued {
    pool: Arc<Pool>,
    waiting: Option<Ringing<oneshot::Receiver<Ticket>>>,
}

impl Future for Queued {
    type Output = Option<Ticket>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Ticket>> {
        let waiting = self.waiting.as_mut().expect("a Queued place is not polled after it ended");
        let ticket = std::task::ready!(Pin::new(waiting).poll(cx));
        self.waiting = None;
        Poll::Ready(ticket.ok())
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        let Some(waiting) = self.waiting.take() else { return };
        let mut waiting = waiting.into_inner();
        waiting.close();
        if let Ok(Ticket::Run(Start { member, .. })) = waiting.try_recv() {
            let mut state = self.pool.lock();
            state.give_back(member);
            self.pool.pump(&mut state);
        }
    }
}

impl State {
    pub(crate) fn accepting(&self) -> bool {
        self.accepting
    }

    /// Counts an actor that died outside a step: it is replaced on demand.
    pub(crate) fn forget_actor(&mut self) {
        self.actors -= 1;
    }

    /// Counts a step starting on `member`'s worker.
    pub(crate) fn start(&mut self, member: &Member) {
        self.running += 1;
        self.busy[member.worker] += 1;
    }

    /// Makes `member` idle again without it having run anything (its caller left).
    fn give_back(&mut self, member: Member) {
        self.stop(&member);
        self.idle[member.worker].push(member);
    }

    /// Counts a step that ended (or never started) on `member`'s worker.
    pub(crate) fn stop(&mut self, member: &Member) {
        self.running -= 1;
        self.busy[member.worker] -= 1;
    }
}

/// The worker for the next step: the least busy; among equally busy ones, one with an idle actor
/// (the others would start one, when `can_start`), and among those the worker of the last step
/// first, then the next ones in turn.
///
/// Steps run one at a time thus stay on one worker, whose caches hold their instance: sending
/// them to the other worker in turn (as ties went before) made a sequential trivial request
/// ~25% slower and a `state` one nearly twice as slow once a burst of concurrent requests had
/// left idle actors on both workers (BENCHMARKS.md, optimisation 20).
fn choose_worker(busy: &[usize], has_idle: &[bool], can_start: bool, last: usize) -> Option<usize> {
    let workers = busy.len();
    (0..workers)
        .map(|offset| (last + offset) % workers)
        .filter(|&worker| can_start || has_idle[worker])
        .min_by_key(|&worker| (busy[worker], !has_idle[worker]))
}

/// Drops the execution `member` holds, and makes the actor idle.
pub(crate) fn discard(state: &mut State, member: Member) {
    member.addr.do_send(Discard);
    member.bell.ring();
    state.idle[member.worker].push(member);
}

/// A step awaited by its caller. If the caller stops waiting, the step is finished on the
/// supervisor's thread instead: its actor must still be booked back into the pool.
pub(crate) struct Detached<F: Future<Output = ExecutionResult> + Send + 'static> {
    home: ArbiterHandle,
    step: Option<Pin<Box<F>>>,
}

impl<F: Future<Output = ExecutionResult> + Send + 'static> Detached<F> {
    pub(crate) fn new(home: ArbiterHandle, step: F) -> Self {
        Detached { home, step: Some(Box::pin(step)) }
    }
}

impl<F: Future<Output = ExecutionResult> + Send + 'static> Future for Detached<F> {
    type Output = ExecutionResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ExecutionResult> {
        let step = self.step.as_mut().expect("a Detached step is not polled after it finished");
        let result = std::task::ready!(step.as_mut().poll(cx));
        self.step = None;
        Poll::Ready(result)
    }
}

impl<F: Future<Output = ExecutionResult> + Send + 'static> Drop for Detached<F> {
    fn drop(&mut self) {
        if let Some(step) = self.step.take() {
            self.home.spawn(async move {
                step.await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix::System;
    use nexus_abi::ErrorCode;

    use super::choose_worker;
    use crate::engine::ExecutionRequest;
    use crate::runtime::Runtime;
    use crate::config::RuntimeConfig;

    #[test]
    fn a_step_goes_to_the_least_busy_worker_and_ties_to_the_last_one_used() {
        // Both idle with idle actors (after a burst): the last worker again, whichever it was.
        assert_eq!(choose_worker(&[0, 0], &[true, true], true, 0), Some(0));
        assert_eq!(choose_worker(&[0, 0], &[true, true], true, 1), Some(1));
        // The least busy wins over the last one.
        assert_eq!(choose_worker(&[1, 0], &[true, true], true, 0), Some(1));
        assert_eq!(choose_worker(&[2, 1, 1], &[true, false, true], true, 0), Some(2));
        // Among equally busy ones, one with an idle actor rather than starting one.
        assert_eq!(choose_worker(&[0, 0], &[false, true], true, 0), Some(1));
        // Ties without the last one: the next in turn after it.
        assert_eq!(choose_worker(&[1, 0, 0], &[true, true, true], true, 0), Some(1));
        // A full pool: only workers with an idle actor, else none.
        assert_eq!(choose_worker(&[0, 3], &[false, true], false, 0), Some(1));
        assert_eq!(choose_worker(&[0, 0], &[false, false], false, 0), None);
    }

    #[test]
    fn a_runtime_whose_actix_system_stopped_refuses_work_instead_of_retrying_forever() {
        let system = System::new();
        let config = RuntimeConfig { pool_size: 2, workers: 1, ..RuntimeConfig::default() };
        let runtime = system.block_on(async {
            let runtime = Runtime::start(config).expect("runtime starts in the current system");
            assert_eq!(runtime.execute(ExecutionRequest::source("return 1")).await.return_value, 1);
            System::current().stop();
            runtime
        });
        system.run().expect("the system stops");
        // The worker thread stops shortly after the system: until then a request may still run.
        for _ in 0..100 {
            let (answered, answer) = std::sync::mpsc::channel();
            let runtime = runtime.clone();
            std::thread::spawn(move || {
                let request = ExecutionRequest::source("return 2");
                let _ = answered.send(futures::executor::block_on(runtime.execute(request)));
            });
            let result = answer.recv_timeout(Duration::from_secs(10)).expect("every request is answered");
            match result.error.map(|e| e.code) {
                Some(ErrorCode::ShuttingDown) => return,
                None => std::thread::sleep(Duration::from_millis(10)),
                Some(other) => panic!("answered {other:?}"),
            }
        }
        panic!("requests still ran a second after the system stopped");
    }
}
