//! The step: a request handed to its instance actor's worker thread and its answer handed back,
//! on the caller's thread, then the step's end booked into the pool. An actor that died before
//! it started the request has the request retried on another; one that died running it has it
//! answered with an error. A request refused before it ran is answered with a [`Refusal`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix::ArbiterHandle;
use nexus_abi::ErrorCode;

use crate::admission::Arrival;
use crate::engine::{ExecutionError, ExecutionRequest, ExecutionResult, SuspensionId};
use crate::instance_actor::{Answer, Handoff, Run};
use crate::metrics::Executed;
use crate::pool::{Assignment, Pool};
use crate::refusal::Refusal;
use crate::workers::PooledActor;

/// What a step's actor holds once the step ended, for [`Pool::book_step`].
pub(crate) enum Leftover {
    Nothing,
    /// An execution that must not go on (it suspended, but could not be kept): drop it.
    Unkeepable,
    /// The execution it ran suspended: park it live.
    NewSuspension,
    /// A resume of the live suspension `id` was refused: it is still parked.
    RefusedResume(SuspensionId),
}

/// What a step answers: its result, or why it was refused before anything ran. A refusal the
/// engine made still went through the step's booking, its `result` counted by the metrics.
pub(crate) fn refused_if(refused: bool, mut result: ExecutionResult) -> Result<ExecutionResult, Refusal> {
    match result.error.take() {
        Some(error) if refused => Err(Refusal::from(error)),
        error => {
            result.error = error;
            Ok(result)
        }
    }
}

impl Pool {
    /// Runs a request; answers with its result (possibly `suspended`), or a refusal.
    pub async fn execute(self: &Arc<Self>, request: ExecutionRequest) -> Result<ExecutionResult, Refusal> {
        let admission = self.admit(&mut self.lock(), Arrival::New);
        let assignment = admission.ready().await?;
        Detached::new(self.supervisor_thread.clone(), self.clone().run_step(assignment, request)).await
    }

    /// Sends a step to its actor on the actor's worker thread, and books its end.
    async fn run_step(
        self: Arc<Self>,
        mut assignment: Assignment,
        mut request: ExecutionRequest,
    ) -> Result<ExecutionResult, Refusal> {
        loop {
            assignment.inject_crash();
            let Assignment { actor, reset, .. } = assignment;
            let handoff = Handoff::new(request);
            let answer = actor.ask(Run { handoff: handoff.clone(), reset });
            self.awaiting_reset.reset_while_waiting(reset);
            match (answer.await, handoff.take()) {
                (Ok(Answer { result, spent, refused }), _) => {
                    self.awaiting_reset.keep(spent);
                    // A new request that suspended and whose suspension could not be kept took no
                    // effect: none of its records are delivered, and it can be sent again as it is.
                    let ended = self.end_step(actor, result, None).await;
                    return refused_if(refused || ended.unkept, ended.result);
                }
                // It died running it: the request is answered, not retried (it may be what
                // killed the actor).
                (Err(_), None) => return Ok(self.book_step(actor, None, Leftover::Nothing)),
                // The actor died before it started the request: the request runs on another
                // actor, ahead of the queue (it was accepted first), and the dead one is replaced.
                (Err(_), Some(taken_back)) => {
                    request = taken_back;
                    // A worker thread is gone only when the actix system stopped under the
                    // runtime: nothing can run any more, and retrying would never end.
                    let worker_alive = self.workers.alive(actor.worker);
                    let admission = {
                        let mut state = self.lock();
                        state.stop(&actor);
                        state.forget_actor();
                        if !worker_alive {
                            self.stop_accepting(&mut state);
                        }
                        self.admit(&mut state, Arrival::Retry)
                    };
                    assignment = admission.ready().await?;
                }
            }
        }
    }

    /// Books a finished step (`None`: the actor died running it): parks or frees the actor,
    /// gives queued work to the actors that are free, and counts the step.
    pub(crate) fn book_step(
        self: &Arc<Self>,
        actor: PooledActor,
        result: Option<ExecutionResult>,
        leftover: Leftover,
    ) -> ExecutionResult {
        let mut state = self.lock();
        state.stop(&actor);
        let result = match result {
            Some(mut result) => {
                match leftover {
                    Leftover::NewSuspension => self.park(&mut state, actor, &mut result),
                    Leftover::RefusedResume(id) => self.park_again(&mut state, &id, actor),
                    Leftover::Unkeepable => self.drop_parked(&mut state, actor),
                    Leftover::Nothing => state.idle[actor.worker].push(actor),
                }
                Some(result)
            }
            // The actor died (it panicked outside its guard): it is replaced on demand.
            None => {
                state.forget_actor();
                None
            }
        };
        self.serve_queue(&mut state);
        drop(state);
        match result {
            Some(result) => {
                self.metrics.record(Executed::from_result(&result));
                result
            }
            None => ExecutionResult::failed(ExecutionError::new(
                ErrorCode::Internal,
                "the instance actor stopped while running",
            )),
        }
    }

    /// Books a step whose actor refused it (nothing ran: a resume of a call that is not
    /// pending, an image that did not restore), counted by the metrics as a failed step, and
    /// answers the refusal.
    pub(crate) fn book_refusal(self: &Arc<Self>, actor: PooledActor, refusal: Refusal, leftover: Leftover) -> Refusal {
        let counted = ExecutionResult::failed(ExecutionError::new(refusal.code, refusal.message.clone()));
        self.book_step(actor, Some(counted), leftover);
        refusal
    }
}

/// A step awaited by its caller. If the caller stops waiting, the step is finished on the
/// supervisor's thread instead: its actor must still be booked back into the pool.
pub(crate) struct Detached<F: Future + Send + 'static> {
    supervisor_thread: ArbiterHandle,
    step: Option<Pin<Box<F>>>,
}

impl<F: Future + Send + 'static> Detached<F> {
    pub(crate) fn new(supervisor_thread: ArbiterHandle, step: F) -> Self {
        Detached { supervisor_thread, step: Some(Box::pin(step)) }
    }
}

impl<F: Future + Send + 'static> Future for Detached<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let step = self.step.as_mut().expect("a Detached step is not polled after it finished");
        let result = std::task::ready!(step.as_mut().poll(cx));
        self.step = None;
        Poll::Ready(result)
    }
}

impl<F: Future + Send + 'static> Drop for Detached<F> {
    fn drop(&mut self) {
        if let Some(step) = self.step.take() {
            self.supervisor_thread.spawn(async move {
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

    use crate::config::RuntimeConfig;
    use crate::engine::ExecutionRequest;
    use crate::runtime::Runtime;

    #[test]
    fn a_runtime_whose_actix_system_stopped_refuses_work_instead_of_retrying_forever() {
        let system = System::new();
        let config = RuntimeConfig { pool_size: 2, workers: 1, ..RuntimeConfig::default() };
        let runtime = system.block_on(async {
            let runtime = Runtime::start(config).expect("runtime starts in the current system");
            assert_eq!(runtime.execute(ExecutionRequest::source("return 1")).await.expect("runs").return_value, 1);
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
            match result {
                Err(refusal) if refusal.code == ErrorCode::ShuttingDown => return,
                Ok(result) if result.error.is_none() => std::thread::sleep(Duration::from_millis(10)),
                other => panic!("answered {other:?}"),
            }
        }
        panic!("requests still ran a second after the system stopped");
    }
}
