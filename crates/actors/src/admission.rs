//! Admission and the wait queue: a request gets an idle instance actor (one is started, up to the
//! pool size, on the least busy worker), else a place in the bounded queue until a step ends and
//! hands its actor on, else `OVERLOADED`. A queued caller is given its actor by whoever frees one
//! ([`Pool::serve_queue`]), and runs the step itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use nexus_abi::ErrorCode;
use tokio::sync::oneshot;

use crate::metrics::Executed;
use crate::pool::{Assignment, Pool, PoolState, Turn};
use crate::refusal::Refusal;
use crate::slot_reset::Reset;
use crate::spin::Ringing;
use crate::workers::{PooledActor, choose_worker};

/// How a request comes to admission, which decides where it waits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// A new request: it waits at the end of the queue, within its bound.
    New,
    /// A request admitted before whose actor died before it started: it waits first, beyond
    /// the bound (it was accepted already).
    Retry,
}

/// What admission decided for a request.
pub(crate) enum Admission {
    /// Run it now, on this actor.
    Run(Assignment),
    /// It waits in the queue for its turn.
    Queued(WaitingTurn),
    Refused(Refusal),
}

impl Pool {
    /// An idle actor for a request, else a place in the queue (within its bound, unless the
    /// request is a retry), else a refusal.
    pub(crate) fn admit(self: &Arc<Self>, state: &mut PoolState, arrival: Arrival) -> Admission {
        if !state.accepting {
            return Admission::Refused(Refusal::new(ErrorCode::ShuttingDown, "the runtime is shutting down"));
        }
        if let Some(actor) = self.acquire(state) {
            return Admission::Run(self.assign(state, actor));
        }
        // Every actor is busy: one holding a live suspension hibernates it to take this request.
        self.hibernate_one(state);
        if arrival == Arrival::New && state.queue.len() >= self.config.queue_bound {
            self.metrics.record(Executed::refused(ErrorCode::Overloaded));
            return Admission::Refused(Refusal::new(
                ErrorCode::Overloaded,
                "every instance is busy and the queue is full",
            ));
        }
        let (turn, waiting) = oneshot::channel();
        match arrival {
            Arrival::New => state.queue.push_back(turn),
            Arrival::Retry => state.queue.push_front(turn),
        }
        Admission::Queued(WaitingTurn { pool: self.clone(), waiting: Some(Ringing::new(waiting)) })
    }

    /// Counts a request starting on `actor`, and decides how it runs: who resets its instance,
    /// and whether a crash is injected first.
    fn assign(&self, state: &mut PoolState, actor: PooledActor) -> Assignment {
        state.start(&actor);
        let crash = state.crashes_to_inject > 0;
        state.crashes_to_inject = state.crashes_to_inject.saturating_sub(1);
        Assignment { reset: Reset::for_step(self.config.caller_resets, state.running), actor, crash }
    }

    /// An idle actor on the least busy worker, started there when the pool is not full.
    /// Actors are bound to their worker's thread: any idle actor could put two executions on
    /// one thread while the other thread has nothing to do.
    fn acquire(&self, state: &mut PoolState) -> Option<PooledActor> {
        let can_start = state.actors < self.config.pool_size;
        let has_idle: Vec<bool> = state.idle.iter().map(|idle| !idle.is_empty()).collect();
        let worker = choose_worker(&state.busy, &has_idle, can_start, state.last_worker)?;
        state.last_worker = worker;
        if let Some(actor) = state.idle[worker].pop() {
            return Some(actor);
        }
        state.actors += 1;
        Some(self.workers.start_actor(worker, self.engine().clone(), self.suspensions.sealer.clone()))
    }

    /// Gives actors to queued callers while there are idle ones (a caller that stopped waiting
    /// is skipped), and tells the shutdown waiters when nothing runs any more.
    pub(crate) fn serve_queue(&self, state: &mut PoolState) {
        while !state.queue.is_empty() {
            let Some(actor) = self.acquire(state) else { break };
            let waiting = state.queue.pop_front().expect("checked non-empty");
            let assignment = self.assign(state, actor);
            if let Err(Turn::Run(Assignment { actor, .. })) = waiting.send(Turn::Run(assignment)) {
                state.unassign(actor);
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
    pub(crate) async fn ready(self) -> Result<Assignment, Refusal> {
        match self {
            Admission::Run(assignment) => Ok(assignment),
            Admission::Queued(queued) => match queued.await {
                Some(Turn::Run(assignment)) => Ok(assignment),
                Some(Turn::Refused(refusal)) => Err(refusal),
                None => Err(Refusal::new(ErrorCode::Internal, "the request was dropped")),
            },
            Admission::Refused(refusal) => Err(refusal),
        }
    }
}

/// A caller's place in the queue. If the caller stops waiting once its turn came, the actor it
/// was given goes back to the pool.
pub(crate) struct WaitingTurn {
    pool: Arc<Pool>,
    waiting: Option<Ringing<oneshot::Receiver<Turn>>>,
}

impl Future for WaitingTurn {
    type Output = Option<Turn>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Turn>> {
        let waiting = self.waiting.as_mut().expect("a place in the queue is not polled after it ended");
        let turn = std::task::ready!(Pin::new(waiting).poll(cx));
        self.waiting = None;
        Poll::Ready(turn.ok())
    }
}

impl Drop for WaitingTurn {
    fn drop(&mut self) {
        let Some(waiting) = self.waiting.take() else { return };
        let mut waiting = waiting.into_inner();
        waiting.close();
        if let Ok(Turn::Run(Assignment { actor, .. })) = waiting.try_recv() {
            let mut state = self.pool.lock();
            state.unassign(actor);
            self.pool.serve_queue(&mut state);
        }
    }
}
