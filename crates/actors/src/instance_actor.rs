//! The instance actor: runs executions on its worker thread, one at a time, and owns at most
//! one wasmtime store — the one of its parked (suspended) execution.
//!
//! States: Idle → Running → (Parked(suspension) → Running)* → Idle. Running is the duration of
//! a message handler: the actor's worker thread runs the wasm, which is why workers are
//! threads of their own (actix arbiters) and never the supervisor's.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, MessageResult};
use nexus_abi::{ErrorCode, ExtOutcome};

use crate::engine::image::SuspensionImage;
use crate::engine::{
    Engine, ExecutionError, ExecutionRequest, ExecutionResult, ParkedExecution, SpentInstance, SuspensionId,
};
use crate::refusal::Refusal;
use crate::slot_reset::Reset;
use crate::suspension::Sealer;

/// Runs a request in a fresh instance. The actor must be idle.
#[derive(Message)]
#[rtype(result = "Answer")]
pub(crate) struct Run {
    pub(crate) handoff: Handoff,
    pub(crate) reset: Reset,
}

/// What an actor answers for a step: its result and, when the step ran to its end and the
/// caller resets it ([`Reset::Caller`], see [`crate::slot_reset`]), the finished instance.
pub(crate) struct Answer {
    pub(crate) result: ExecutionResult,
    pub(crate) spent: Option<SpentInstance>,
    /// Nothing ran: the request was refused, `result` says why ([`crate::engine::Outcome::refused`]).
    pub(crate) refused: bool,
}

impl Answer {
    fn failed(error: ExecutionError) -> Self {
        Answer { result: ExecutionResult::failed(error), spent: None, refused: false }
    }
}

/// A request on its way to an instance actor. The actor takes it when it starts running it;
/// until then the sender can take it back, so a request whose actor died before starting it
/// is not lost with the actor's mailbox.
#[derive(Clone)]
pub(crate) struct Handoff(Arc<Mutex<Option<ExecutionRequest>>>);

impl Handoff {
    pub(crate) fn new(request: ExecutionRequest) -> Self {
        Handoff(Arc::new(Mutex::new(Some(request))))
    }

    /// The request, unless someone (the actor) already took it.
    pub(crate) fn take(&self) -> Option<ExecutionRequest> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }
}

/// Settles one pending call of the parked execution and runs it on; refused (the execution
/// still parked) when the call is not pending or its result nests too deep.
#[derive(Message)]
#[rtype(result = "Result<Answer, Refusal>")]
pub(crate) struct Resume {
    pub(crate) call_id: u32,
    pub(crate) outcome: ExtOutcome,
    pub(crate) reset: Reset,
}

/// Turns the parked execution into a sealed suspension image, dropping its instance: the actor
/// is idle afterwards.
#[derive(Message)]
#[rtype(result = "Result<Vec<u8>, ExecutionError>")]
pub(crate) struct Hibernate {
    pub(crate) id: SuspensionId,
    pub(crate) expires_at: std::time::SystemTime,
}

/// Restores a hibernated execution into a fresh instance and settles one of its pending calls
/// (the pool checked that it is pending). The actor must be idle. Refused when the image
/// cannot be restored or the resume is refused.
#[derive(Message)]
#[rtype(result = "Result<Answer, Refusal>")]
pub(crate) struct Restore {
    pub(crate) image: Box<SuspensionImage>,
    pub(crate) id: SuspensionId,
    pub(crate) call_id: u32,
    pub(crate) outcome: ExtOutcome,
    pub(crate) reset: Reset,
}

/// Drops the parked execution (expired, or the runtime is shutting down).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Discard;

/// Fault injection: the actor panics outside its panic guard and dies, as it would from a bug
/// in the runtime; whatever waits in its mailbox is dropped unanswered. It exists to prove that
/// the pool replaces dead actors without losing requests (see
/// [`crate::supervisor::InjectCrashes`]); nothing in the runtime sends it on its own.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Crash;

pub(crate) struct InstanceActor {
    engine: Engine,
    sealer: Sealer,
    parked: Option<ParkedExecution>,
    /// The instance of the step that just finished, until its reply has gone ([`Reset::Actor`]).
    spent: Option<SpentInstance>,
}

impl InstanceActor {
    pub(crate) fn new(engine: Engine, sealer: Sealer) -> Self {
        InstanceActor { engine, sealer, parked: None, spent: None }
    }

    /// The answer to a step that ended with `result`, leaving `spent` to be reset by whom
    /// `reset` says.
    fn answer(
        &mut self,
        result: ExecutionResult,
        spent: Option<SpentInstance>,
        reset: Reset,
        ctx: &mut Context<Self>,
    ) -> Answer {
        let (for_caller, for_actor) = reset.split(spent);
        if let Some(spent) = for_actor {
            self.reset_after_reply(spent, ctx);
        }
        Answer { result, spent: for_caller, refused: false }
    }

    /// Keeps `spent` until the reply has gone, then resets its slot by dropping it
    /// ([`Reset::Actor`]).
    fn reset_after_reply(&mut self, spent: SpentInstance, ctx: &mut Context<Self>) {
        self.spent = Some(spent);
        ctx.spawn(actix::fut::ready(()).map(|(), actor: &mut Self, _| actor.spent = None));
    }
}

impl Actor for InstanceActor {
    type Context = Context<Self>;
}

/// A panic while running is a bug in the host, not the handler's doing; the request still gets
/// an answer and the actor stays usable (its instance, if any, is dropped with the panic).
fn guarded<T>(run: impl FnOnce() -> T, failed: impl FnOnce(ExecutionError) -> T) -> T {
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        failed(ExecutionError::new(ErrorCode::Internal, format!("the instance actor panicked: {message}")))
    })
}

impl Handler<Run> for InstanceActor {
    type Result = MessageResult<Run>;

    fn handle(&mut self, Run { handoff, reset }: Run, ctx: &mut Context<Self>) -> Self::Result {
        debug_assert!(self.parked.is_none(), "the pool only sends work to idle actors");
        self.spent = None;
        let Some(request) = handoff.take() else {
            let error = ExecutionError::new(ErrorCode::Internal, "the request was taken back before it ran");
            return MessageResult(Answer::failed(error));
        };
        let engine = &self.engine;
        MessageResult(match guarded(|| Ok(engine.execute(request)), Err) {
            Ok(outcome) => {
                self.parked = outcome.parked;
                let refused = outcome.refused;
                Answer { refused, ..self.answer(outcome.result, outcome.spent, reset, ctx) }
            }
            Err(error) => Answer::failed(error),
        })
    }
}

impl Handler<Resume> for InstanceActor {
    type Result = Result<Answer, Refusal>;

    fn handle(&mut self, resume: Resume, ctx: &mut Context<Self>) -> Self::Result {
        self.spent = None;
        let parked = self
            .parked
            .take()
            .ok_or_else(|| Refusal::new(ErrorCode::SuspensionNotFound, "this actor holds no suspension"))?;
        let engine = &self.engine;
        // A panic mid-step is the step's result: the execution is gone.
        match guarded(|| Ok(engine.resume(parked, resume.call_id, resume.outcome)), Err) {
            Ok(Ok(outcome)) => {
                self.parked = outcome.parked;
                Ok(self.answer(outcome.result, outcome.spent, resume.reset, ctx))
            }
            Ok(Err(refused)) => {
                self.parked = Some(refused.parked);
                Err(Refusal::from(refused.error))
            }
            Err(panicked) => Ok(Answer::failed(panicked)),
        }
    }
}

impl Handler<Hibernate> for InstanceActor {
    type Result = Result<Vec<u8>, ExecutionError>;

    fn handle(&mut self, Hibernate { id, expires_at }: Hibernate, ctx: &mut Context<Self>) -> Self::Result {
        self.spent = None;
        let parked = self
            .parked
            .take()
            .ok_or_else(|| ExecutionError::new(ErrorCode::SuspensionNotFound, "this actor holds no suspension"))?;
        let (engine, sealer) = (&self.engine, &self.sealer);
        let (sealed, spent) = guarded(
            || {
                let (image, spent) = engine.hibernate(parked).map_err(|e| {
                    ExecutionError::new(ErrorCode::Internal, format!("hibernating suspension {id}: {e:#}"))
                })?;
                Ok((sealer.seal(&image, &id, expires_at), spent))
            },
            Err,
        )?;
        // The image goes out first; the instance's slot is reset after it.
        self.reset_after_reply(spent, ctx);
        Ok(sealed)
    }
}

impl Handler<Restore> for InstanceActor {
    type Result = Result<Answer, Refusal>;

    fn handle(&mut self, restore: Restore, ctx: &mut Context<Self>) -> Self::Result {
        debug_assert!(self.parked.is_none(), "the pool only sends work to idle actors");
        self.spent = None;
        let engine = &self.engine;
        let Restore { image, id, call_id, outcome, reset } = restore;
        let resumed = guarded(
            || {
                let parked = match engine.restore(*image, id) {
                    Ok(parked) => parked,
                    Err(error) => return Ok(Err(Refusal::from(error))),
                };
                Ok(engine.resume(parked, call_id, outcome).map_err(|refused| Refusal::from(refused.error)))
            },
            Err,
        );
        // A panic mid-step is the step's result: the execution is gone.
        let outcome = match resumed {
            Ok(resumed) => resumed?,
            Err(panicked) => return Ok(Answer::failed(panicked)),
        };
        self.parked = outcome.parked;
        Ok(self.answer(outcome.result, outcome.spent, reset, ctx))
    }
}

impl Handler<Discard> for InstanceActor {
    type Result = ();

    fn handle(&mut self, _: Discard, _: &mut Context<Self>) {
        self.parked = None;
    }
}

impl Handler<Crash> for InstanceActor {
    type Result = ();

    fn handle(&mut self, _: Crash, _: &mut Context<Self>) {
        panic!("instance actor crashed on purpose (fault injection)");
    }
}
