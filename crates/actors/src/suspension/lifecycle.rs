//! The life of a suspension, from the step that suspended to the resume that used it:
//!
//! ```text
//! step suspends ──► live (an actor holds it) ──hibernate_after, or the pool needs the actor──► hibernated (store)
//!                    │  resume                                                                 │  resume: claim,
//!                    ▼                                                                         ▼  restore, commit
//!                  resuming ──► the step's end (used; a new suspension if it suspends again) ◄─┘
//! ```
//!
//! With a store that outlives the process, a suspension is hibernated before its result is
//! returned and never kept live. Expiry, cancellation and single use hold the same in both
//! states: a live suspension is in [`LiveTable`](super::live::LiveTable) under the pool's lock,
//! a hibernated one in the [`SuspensionStore`]. Every function here runs on a caller's thread
//! or the supervisor's; the work on instances runs on their actors.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use nexus_abi::{ErrorCode, ExtOutcome};
use tokio::sync::oneshot;

use super::live::{Live, take_for_hibernation};
use super::open_claimed;
use super::seal::sealed_for;
use super::store::{Claim, StoreError, Stored, SuspensionStore, store_failed};
use crate::admission::Arrival;
use crate::engine::image::SuspensionImage;
use crate::engine::{ExecutionError, ExecutionResult, Status, SuspensionId};
use crate::instance_actor::{Answer, Hibernate, Restore, Resume};
use crate::pool::{Assignment, Pool, PoolState};
use crate::refusal::Refusal;
use crate::slot_reset::Reset;
use crate::step::{Detached, Leftover};
use crate::workers::PooledActor;

/// A step ended by [`Pool::end_step`]: its result, booked.
pub(crate) struct Ended {
    pub(crate) result: ExecutionResult,
    /// It suspended, and its suspension could not be kept (not written to the store, or beyond
    /// the runtime's maximum of suspensions): `result` is that error, with the step's records.
    pub(crate) unkept: bool,
}

impl Ended {
    fn kept(result: ExecutionResult) -> Self {
        Ended { result, unkept: false }
    }
}

/// What holds a hibernated suspension's image while a resume restores it.
enum Held {
    /// A claim in its store.
    Claimed(Claim),
    /// Its hibernation handed it to the resume: it is in no store.
    Handed(Stored),
}

impl Held {
    /// What the step's end commits.
    fn into_claim(self) -> Option<Claim> {
        match self {
            Held::Claimed(claim) => Some(claim),
            Held::Handed(_) => None,
        }
    }

    /// The resume was refused: the suspension stays, expiring as before.
    async fn give_back(self, store: &dyn SuspensionStore) {
        match self {
            Held::Claimed(claim) => {
                let _ = store.release(claim).await;
            }
            Held::Handed(stored) => {
                let id = stored.id.clone();
                if let Err(error) = store.put(stored).await {
                    tracing::warn!(suspension = %id, "a suspension could not be kept after a refused resume: {error}");
                }
            }
        }
    }
}

/// Where a resume found its suspension.
enum Found {
    Live(PooledActor, Reset),
    /// Being hibernated: its image comes here (none if its hibernation failed).
    Hibernating(oneshot::Receiver<Vec<u8>>),
    Stored,
    /// Its hibernation failed: the execution's result is this error.
    Lost(ExecutionError),
    Nowhere,
}

impl Pool {
    /// Delivers one extension call's outcome to a suspended execution, live or hibernated,
    /// and runs it on. Refused, the suspension unused, when it is not found, cannot be claimed
    /// from its store, or the outcome is not for one of its pending calls; once the step ran,
    /// whatever fails is its result's error.
    pub async fn resume(
        self: &Arc<Self>,
        id: SuspensionId,
        call_id: u32,
        mut outcome: ExtOutcome,
    ) -> Result<ExecutionResult, Refusal> {
        loop {
            let found = {
                let mut state = self.lock();
                if !state.accepting {
                    return Err(Refusal::new(ErrorCode::ShuttingDown, "the runtime is shutting down"));
                }
                self.find(&mut state, &id)
            };
            let step = match found {
                Found::Live(actor, reset) => self.clone().resume_live(actor, reset, id, call_id, outcome),
                Found::Hibernating(image) => {
                    // Detached from here on: a caller that stops waiting loses no suspension.
                    let (pool, id) = (self.clone(), id.clone());
                    let handed = async move {
                        match image.await {
                            Ok(image) => Ok(pool.resume_handed(id, image, call_id, outcome).await),
                            Err(_) => Err(outcome),
                        }
                    };
                    match Detached::new(self.supervisor_thread.clone(), handed).await {
                        Ok(resumed) => return resumed,
                        // Its hibernation failed: look again (it is lost, saying why).
                        Err(given_back) => {
                            outcome = given_back;
                            continue;
                        }
                    }
                }
                Found::Stored => {
                    return Detached::new(
                        self.supervisor_thread.clone(),
                        self.clone().resume_stored(id, call_id, outcome),
                    )
                    .await;
                }
                Found::Lost(error) => return Ok(ExecutionResult::failed(error)),
                Found::Nowhere => return Err(Refusal::suspension_not_found()),
            };
            return Detached::new(self.supervisor_thread.clone(), step).await;
        }
    }

    /// Looks `id` up among the live suspensions (taking it if it is parked and not expired).
    fn find(self: &Arc<Self>, state: &mut PoolState, id: &SuspensionId) -> Found {
        let Some(entry) = state.live.get_mut(id) else { return Found::Stored };
        match entry {
            Live::Parked { deadline, .. } if *deadline > Instant::now() => {
                let deadline = *deadline;
                let Live::Parked { actor, .. } = std::mem::replace(entry, Live::Resuming { deadline }) else {
                    unreachable!("matched above")
                };
                state.start(&actor);
                Found::Live(actor, Reset::for_step(self.config.caller_resets, state.running))
            }
            // Expired, though not swept yet.
            Live::Parked { .. } => {
                if let Some(actor) = state.live.remove(id).and_then(Live::into_actor) {
                    self.drop_parked(state, actor);
                }
                Found::Nowhere
            }
            // Another resume came first: it has it, as if it were running it live.
            Live::Hibernating { resume: Some(first), .. } if !first.is_closed() => Found::Nowhere,
            Live::Hibernating { resume, .. } => {
                let (hand, image) = oneshot::channel();
                *resume = Some(hand);
                Found::Hibernating(image)
            }
            Live::Resuming { .. } => Found::Nowhere,
            Live::Lost { deadline, .. } => {
                let expired = *deadline <= Instant::now();
                match state.live.remove(id) {
                    Some(Live::Lost { error, .. }) if !expired => Found::Lost(error),
                    _ => Found::Nowhere,
                }
            }
        }
    }

    async fn resume_live(
        self: Arc<Self>,
        actor: PooledActor,
        reset: Reset,
        id: SuspensionId,
        call_id: u32,
        outcome: ExtOutcome,
    ) -> Result<ExecutionResult, Refusal> {
        let answer = actor.ask(Resume { call_id, outcome, reset });
        self.awaiting_reset.reset_while_waiting(reset);
        match answer.await {
            Ok(Ok(Answer { result, spent, .. })) => {
                self.awaiting_reset.keep(spent);
                self.lock().live.remove(&id);
                Ok(self.end_step(actor, result, None).await.result)
            }
            // Refused (no such pending call): still parked, under the same id and deadline.
            Ok(Err(refusal)) => Err(self.book_refusal(actor, refusal, Leftover::RefusedResume(id))),
            Err(_) => {
                self.lock().live.remove(&id);
                Ok(self.book_step(actor, None, Leftover::Nothing))
            }
        }
    }

    /// Claims a hibernated suspension, restores it on an idle actor and runs it on; the claim
    /// is committed when the step ran, and released when the resume was refused.
    async fn resume_stored(
        self: Arc<Self>,
        id: SuspensionId,
        call_id: u32,
        outcome: ExtOutcome,
    ) -> Result<ExecutionResult, Refusal> {
        let store = self.suspensions.store.clone();
        let claim = match store.claim(&id, self.config.claim_lease).await {
            Ok(Some(claim)) => claim,
            Ok(None) => return Err(Refusal::suspension_not_found()),
            Err(error) => return Err(Refusal::from(store_failed(error))),
        };
        if let Some(identity) = sealed_for(&claim.image)
            && identity != self.suspensions.sealer.identity()
        {
            let next_expiry = SystemTime::now() + self.config.suspension_timeout;
            return self.suspensions.resume_on_previous(claim, identity, call_id, outcome, next_expiry).await;
        }
        let (image, claim) = open_claimed(&*store, &self.suspensions.sealer, claim).await?;
        self.restore_and_resume(image, Held::Claimed(claim), id, call_id, outcome).await
    }

    /// Resumes the image its hibernation handed over: the resume came while the suspension was
    /// live, so it is served even when the hibernation ended past the suspension's expiry.
    async fn resume_handed(
        self: Arc<Self>,
        id: SuspensionId,
        sealed: Vec<u8>,
        call_id: u32,
        outcome: ExtOutcome,
    ) -> Result<ExecutionResult, Refusal> {
        let (expires_at, image) = match self.suspensions.sealer.open(&sealed, &id) {
            Ok(opened) => opened,
            Err(message) => {
                let message = format!("suspension {id}, sealed by this runtime, does not open: {message}");
                return Ok(ExecutionResult::failed(ExecutionError::new(ErrorCode::Internal, message)));
            }
        };
        let held = Held::Handed(Stored { id: id.clone(), image: sealed, expires_at });
        self.restore_and_resume(image, held, id, call_id, outcome).await
    }

    /// Restores a hibernated execution on an idle actor and runs it on; what holds its image
    /// meanwhile is committed when the step ran, and given back when the resume was refused.
    async fn restore_and_resume(
        self: Arc<Self>,
        image: SuspensionImage,
        held: Held,
        id: SuspensionId,
        call_id: u32,
        outcome: ExtOutcome,
    ) -> Result<ExecutionResult, Refusal> {
        let store = &*self.suspensions.store;
        let admission = self.admit(&mut self.lock(), Arrival::New);
        let assignment = match admission.ready().await {
            Ok(assignment) => assignment,
            Err(refusal) => {
                held.give_back(store).await;
                return Err(refusal);
            }
        };
        assignment.inject_crash();
        let Assignment { actor, reset, .. } = assignment;
        let restoring = Instant::now();
        let answer = actor.ask(Restore { image: Box::new(image), id, call_id, outcome, reset });
        self.awaiting_reset.reset_while_waiting(reset);
        match answer.await {
            Ok(Ok(Answer { result, spent, .. })) => {
                self.suspensions.metrics.restored(restoring.elapsed());
                self.awaiting_reset.keep(spent);
                Ok(self.end_step(actor, result, held.into_claim()).await.result)
            }
            // Refused (no such pending call, a value nested too deep): the image stays, expiring
            // as before.
            Ok(Err(refusal)) => {
                held.give_back(store).await;
                Err(self.book_refusal(actor, refusal, Leftover::Nothing))
            }
            Err(_) => {
                held.give_back(store).await;
                Ok(self.book_step(actor, None, Leftover::Nothing))
            }
        }
    }

    /// Ends a step on `actor` (from a run, or a resume that used `claim`): a suspended
    /// execution is parked live, or written to a store that outlives the process before the
    /// result goes back; the claim is committed; then the step is booked ([`Pool::book_step`]).
    pub(crate) async fn end_step(
        self: &Arc<Self>,
        actor: PooledActor,
        mut result: ExecutionResult,
        claim: Option<Claim>,
    ) -> Ended {
        let store = self.suspensions.store.clone();
        let suspended = result.status == Status::Suspended;
        if suspended && store.durable() {
            let id = SuspensionId::random();
            let expires_at = SystemTime::now() + self.config.suspension_timeout;
            let hibernating = Instant::now();
            let written = match self.hibernate_on(&actor, &id, expires_at).await {
                Some(Ok(image)) => {
                    let next = Stored { id: id.clone(), image, expires_at };
                    let written = match claim {
                        Some(claim) => {
                            let used = claim.clone();
                            let written = store.commit(claim, Some(next)).await;
                            if written.is_err() {
                                self.mark_used(used);
                            }
                            written
                        }
                        None => store.put(next).await,
                    };
                    written.map_err(store_failed)
                }
                Some(Err(error)) => {
                    if let Some(claim) = claim {
                        self.mark_used(claim);
                    }
                    Err(error)
                }
                None => {
                    if let Some(claim) = claim {
                        self.mark_used(claim);
                    }
                    return Ended::kept(self.book_step(actor, None, Leftover::Nothing));
                }
            };
            let unkept = written.is_err();
            match written {
                Ok(()) => {
                    self.suspensions.metrics.hibernated(hibernating.elapsed());
                    result.suspension.as_mut().expect("a suspended result has its suspension").id = id;
                }
                Err(error) => result.fail_keeping_records(error),
            }
            return Ended { result: self.book_step(actor, Some(result), Leftover::Nothing), unkept };
        }
        if let Some(claim) = claim
            && let Err(error) = store.commit(claim.clone(), None).await
        {
            self.mark_used(claim);
            result.fail_keeping_records(store_failed(error));
            let leftover = if suspended { Leftover::Unkeepable } else { Leftover::Nothing };
            return Ended { result: self.book_step(actor, Some(result), leftover), unkept: suspended };
        }
        if suspended {
            let usage = store.usage();
            let live = self.lock().live.len() as u64;
            if usage.suspensions + live >= self.config.store_limits.max_suspensions {
                let message = format!(
                    "the runtime holds its maximum of {} suspensions",
                    self.config.store_limits.max_suspensions
                );
                result.fail_keeping_records(ExecutionError::new(ErrorCode::Overloaded, message));
                return Ended { result: self.book_step(actor, Some(result), Leftover::Unkeepable), unkept: true };
            }
            return Ended::kept(self.book_step(actor, Some(result), Leftover::NewSuspension));
        }
        Ended::kept(self.book_step(actor, Some(result), Leftover::Nothing))
    }

    /// The step of a resume that used `claim` ran, but its commit failed (the store
    /// unreachable, or refusing the next image): the suspension it used is still marked used,
    /// retried in the background while its lease holds, so that no other resume (after the
    /// lease) runs the step again.
    fn mark_used(self: &Arc<Self>, claim: Claim) {
        let store = self.suspensions.store.clone();
        let until = Instant::now() + self.config.claim_lease;
        self.supervisor_thread.spawn(async move {
            loop {
                match store.commit(claim.clone(), None).await {
                    // Done, or no longer ours to mark.
                    Ok(()) | Err(StoreError::LeaseLost(_)) => return,
                    Err(error) if Instant::now() >= until => {
                        tracing::warn!(suspension = %claim.id, "a resumed suspension could not be marked used: {error}");
                        return;
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                }
            }
        });
    }

    /// Parks the suspended execution `actor` holds, live, and names it in `result`; it is
    /// hibernated after [`crate::RuntimeConfig::hibernate_after`] (dropped at once when the
    /// runtime is shutting down).
    pub(crate) fn park(self: &Arc<Self>, state: &mut PoolState, actor: PooledActor, result: &mut ExecutionResult) {
        if !state.accepting {
            return self.drop_parked(state, actor);
        }
        let deadline = Instant::now() + self.config.suspension_timeout;
        let id = state.live.insert(Live::Parked { actor, deadline });
        if let Some(suspension) = result.suspension.as_mut() {
            suspension.id = id.clone();
        }
        if state.queue.is_empty() {
            self.hibernate_later(id);
        } else {
            // A request waits for an actor: this one hibernates its suspension now to take it
            // (the requests that queued while every actor ran found none parked to hibernate).
            self.hibernate_now(state, id);
        }
    }

    /// Hibernates the live suspension `id` after [`crate::RuntimeConfig::hibernate_after`],
    /// if it is still parked then.
    fn hibernate_later(self: &Arc<Self>, id: SuspensionId) {
        let pool = self.clone();
        let after = self.config.hibernate_after;
        self.supervisor_thread.spawn(async move {
            tokio::time::sleep(after).await;
            pool.hibernate(id).await;
        });
    }

    /// Parks `actor`'s execution again under `id` after a refused resume, with its deadline.
    pub(crate) fn park_again(self: &Arc<Self>, state: &mut PoolState, id: &SuspensionId, actor: PooledActor) {
        let accepting = state.accepting;
        match state.live.get_mut(id) {
            Some(entry @ Live::Resuming { .. }) if accepting => {
                let Live::Resuming { deadline } = *entry else { unreachable!("matched above") };
                *entry = Live::Parked { actor, deadline };
                if state.queue.is_empty() {
                    self.hibernate_later(id.clone());
                } else {
                    self.hibernate_now(state, id.clone());
                }
            }
            _ => {
                state.live.remove(id);
                self.drop_parked(state, actor);
            }
        }
    }

    /// Hibernates the live suspension `id` if it is still parked.
    async fn hibernate(self: Arc<Self>, id: SuspensionId) {
        let taken = {
            let mut state = self.lock();
            take_for_hibernation(&mut state.live, &id)
        };
        if let Some((actor, deadline)) = taken {
            self.hibernate_taken(id, actor, deadline).await;
        }
    }

    /// All actors are busy: one holding a live suspension hibernates it, and is then free for
    /// queued work.
    pub(crate) fn hibernate_one(self: &Arc<Self>, state: &mut PoolState) {
        if let Some(id) = state.live.first_where(|live| matches!(live, Live::Parked { .. })) {
            self.hibernate_now(state, id);
        }
    }

    /// Hibernates the live suspension `id` now, if it is parked; its actor is then free.
    fn hibernate_now(self: &Arc<Self>, state: &mut PoolState, id: SuspensionId) {
        if let Some((actor, deadline)) = take_for_hibernation(&mut state.live, &id) {
            let pool = self.clone();
            self.supervisor_thread.spawn(async move { pool.hibernate_taken(id, actor, deadline).await });
        }
    }

    async fn hibernate_taken(self: Arc<Self>, id: SuspensionId, actor: PooledActor, deadline: Instant) {
        let started = Instant::now();
        let expires_at = SystemTime::now() + deadline.saturating_duration_since(Instant::now());
        let sealed = self.hibernate_on(&actor, &id, expires_at).await;
        let alive = sealed.is_some();
        let sealed = match sealed {
            Some(Ok(image)) => self.hand_to_waiting_resume(&id, image).map(Ok),
            other => other,
        };
        let kept = match sealed {
            // A resume that came meanwhile has it.
            None if alive => Ok(()),
            Some(Ok(image)) => {
                self.suspensions.store.put(Stored { id: id.clone(), image, expires_at }).await.map_err(store_failed)
            }
            Some(Err(error)) => Err(error),
            None => Err(ExecutionError::new(ErrorCode::Internal, "the instance actor stopped while hibernating")),
        };
        let mut state = self.lock();
        let hibernating = match kept {
            Ok(()) => {
                self.suspensions.metrics.hibernated(started.elapsed());
                state.live.remove(&id)
            }
            Err(error) => {
                tracing::warn!(suspension = %id, "a suspension could not be hibernated and is lost: {error}");
                let error = ExecutionError::new(
                    error.code,
                    format!("the suspended execution could not be kept, and is lost: {}", error.message),
                );
                state.live.get_mut(&id).map(|entry| std::mem::replace(entry, Live::Lost { error, deadline }))
            }
        };
        if let Some(Live::Hibernating { waiters, .. }) = hibernating {
            for waiter in waiters {
                let _ = waiter.send(());
            }
        }
        if alive {
            self.free_actor(&mut state, actor);
        } else {
            state.forget_actor();
        }
    }

    /// Hands the sealed image of the suspension `id` to the resume waiting for it, if one does;
    /// the image back otherwise.
    fn hand_to_waiting_resume(&self, id: &SuspensionId, image: Vec<u8>) -> Option<Vec<u8>> {
        let mut state = self.lock();
        let Some(Live::Hibernating { resume, .. }) = state.live.get_mut(id) else { return Some(image) };
        match resume.take() {
            Some(resume) => resume.send(image).err(),
            None => Some(image),
        }
    }

    /// Asks `actor` to seal the execution it holds; `None` if the actor died.
    async fn hibernate_on(
        &self,
        actor: &PooledActor,
        id: &SuspensionId,
        expires_at: SystemTime,
    ) -> Option<Result<Vec<u8>, ExecutionError>> {
        actor.ask(Hibernate { id: id.clone(), expires_at }).await.ok()
    }

    /// Drops a suspension on purpose; whether there was one.
    pub async fn cancel(self: &Arc<Self>, id: &SuspensionId) -> Result<bool, ExecutionError> {
        loop {
            let wait = {
                let mut state = self.lock();
                match state.live.get_mut(id) {
                    Some(Live::Parked { .. }) => {
                        if let Some(actor) = state.live.remove(id).and_then(Live::into_actor) {
                            self.drop_parked(&mut state, actor);
                        }
                        self.suspensions.metrics.cancelled();
                        return Ok(true);
                    }
                    // A resume came first and has it.
                    Some(Live::Hibernating { resume: Some(first), .. }) if !first.is_closed() => return Ok(false),
                    Some(Live::Hibernating { waiters, .. }) => {
                        let (done, wait) = oneshot::channel();
                        waiters.push(done);
                        wait
                    }
                    Some(Live::Resuming { .. }) => return Ok(false),
                    Some(Live::Lost { .. }) => {
                        state.live.remove(id);
                        return Ok(true);
                    }
                    None => break,
                }
            };
            let _ = wait.await;
        }
        // Only a runtime that can open a stored suspension may drop it, as only one that can
        // open it may resume it: another key (another tenant's runtime on the same store, a
        // rotation half done) is refused. A suspension a resume holds is not cancelled.
        let store = self.suspensions.store.clone();
        let Some(claim) = store.claim(id, self.config.claim_lease).await.map_err(store_failed)? else {
            return Ok(false);
        };
        let sealer = match sealed_for(&claim.image) {
            Some(identity) => self.suspensions.sealer.with_identity(identity),
            None => self.suspensions.sealer.clone(),
        };
        if let Err(message) = sealer.open(&claim.image, id) {
            let _ = store.release(claim).await;
            let message = format!("suspension {id} was refused: {message}");
            return Err(ExecutionError::new(ErrorCode::InvalidArgument, message));
        }
        store.commit(claim, None).await.map_err(store_failed)?;
        self.suspensions.metrics.cancelled();
        Ok(true)
    }

    /// Drops the live suspensions whose deadline passed and has the store delete what expired.
    /// The supervisor calls it periodically ([`Pool::sweep_period`]); a resume also checks the
    /// deadline itself.
    pub fn expire(self: &Arc<Self>) {
        self.awaiting_reset.reset_all();
        let now = Instant::now();
        let mut state = self.lock();
        let expired = state.live.ids_where(|live| match live {
            Live::Parked { deadline, .. } | Live::Lost { deadline, .. } => *deadline <= now,
            Live::Resuming { .. } | Live::Hibernating { .. } => false,
        });
        for id in expired {
            if let Some(actor) = state.live.remove(&id).and_then(Live::into_actor) {
                self.drop_parked(&mut state, actor);
            }
        }
        drop(state);
        if self.suspensions.metrics.purge_due() {
            let store = self.suspensions.store.clone();
            // A disk store lists its directory: off the supervisor's thread.
            tokio::task::spawn_blocking(move || {
                if let Err(error) = futures::executor::block_on(store.purge_expired()) {
                    tracing::warn!("purging expired suspensions: {error}");
                }
            });
        }
    }
}
