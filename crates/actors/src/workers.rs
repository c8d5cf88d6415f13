//! The worker threads instance actors run on, the actors' handles, and the choice of worker for
//! each step.

use std::time::Duration;

use actix::dev::{Request, ToEnvelope};
use actix::{Actor, Addr, Arbiter, Handler, Message};

use crate::engine::Engine;
use crate::instance_actor::{Discard, InstanceActor};
use crate::spin::{self, Doorbell, Ringing};
use crate::suspension::Sealer;

/// The pool's worker threads: actix arbiters, each with its doorbell.
pub(crate) struct Workers(Vec<Worker>);

struct Worker {
    arbiter: Arbiter,
    bell: Doorbell,
}

/// An instance actor of the pool and the worker thread it lives on.
pub(crate) struct PooledActor {
    pub(crate) addr: Addr<InstanceActor>,
    pub(crate) worker: usize,
    /// The worker thread's doorbell, rung after every message sent to the actor.
    bell: Doorbell,
}

impl Workers {
    /// `count` worker threads (at least one), spinning `spin` before they park.
    pub(crate) fn start(count: usize, spin: Duration) -> Self {
        let workers = (0..count.max(1))
            .map(|_| {
                let bell = Doorbell::default();
                let worker_bell = bell.clone();
                let arbiter = Arbiter::with_tokio_rt(move || {
                    spin::tokio_runtime_with(worker_bell, spin).expect("building a worker's tokio runtime")
                });
                Worker { arbiter, bell }
            })
            .collect();
        Workers(workers)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Starts an instance actor on worker `worker`.
    pub(crate) fn start_actor(&self, worker: usize, engine: Engine, sealer: Sealer) -> PooledActor {
        let Worker { arbiter, bell } = &self.0[worker];
        let addr = InstanceActor::start_in_arbiter(&arbiter.handle(), move |_| InstanceActor::new(engine, sealer));
        PooledActor { addr, worker, bell: bell.clone() }
    }

    /// Whether worker `worker`'s thread still runs: it is gone only when the actix system
    /// stopped under the runtime.
    pub(crate) fn alive(&self, worker: usize) -> bool {
        self.0[worker].arbiter.spawn(async {})
    }

    /// Stops the worker threads (the supervisor is stopping).
    pub(crate) fn stop(&self) {
        for worker in &self.0 {
            worker.arbiter.stop();
        }
    }
}

impl PooledActor {
    /// Sends `message` to the actor and rings its worker's doorbell; the answer's wake-up rings
    /// the caller's (see [`crate::spin`]).
    pub(crate) fn ask<M>(&self, message: M) -> Ringing<Request<InstanceActor, M>>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        InstanceActor: Handler<M>,
        <InstanceActor as Actor>::Context: ToEnvelope<InstanceActor, M>,
    {
        let answer = Ringing::new(self.addr.send(message));
        self.bell.ring();
        answer
    }

    /// Has the actor drop the execution it holds.
    pub(crate) fn discard_held(&self) {
        self.addr.do_send(Discard);
        self.bell.ring();
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
pub(crate) fn choose_worker(busy: &[usize], has_idle: &[bool], can_start: bool, last: usize) -> Option<usize> {
    let workers = busy.len();
    (0..workers)
        .map(|offset| (last + offset) % workers)
        .filter(|&worker| can_start || has_idle[worker])
        .min_by_key(|&worker| (busy[worker], !has_idle[worker]))
}

#[cfg(test)]
mod tests {
    use super::choose_worker;

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
}
