//! The deferred reset of instance slots, in one place.
//!
//! Dropping a finished instance ([`SpentInstance`]) resets its pooled memory slot: a scan of the
//! slot's page table and a copy of the pages the execution wrote, about a third of a trivial
//! execution. No step's answer waits for it. Who does it is decided as the step is handed over
//! ([`Reset::for_step`]):
//!
//! * when other steps run, the instance actor, once its reply has gone ([`Reset::Actor`]);
//! * when the step runs alone, its caller ([`Reset::Caller`]): the finished instance comes back
//!   with the answer and waits in [`AwaitingReset`]; the caller of the next step running alone
//!   resets one while it waits for its own answer, and the supervisor's periodic sweep resets
//!   whatever is left.
//!
//! The engine has [`AWAITING_RESET_BOUND`] slots more than the pool has actors for the instances
//! that wait (see `Pool::instance_slots`).

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::engine::SpentInstance;

/// Who resets a finished instance's pooled memory slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reset {
    /// The actor, once its reply has gone (actix sends a handler's reply as soon as the handler
    /// returns, and polls the futures it spawned after that). A message that comes first drops
    /// it before running anything, so an actor never holds more than one instance.
    Actor,
    /// Whoever receives the answer: the instance comes back with it.
    Caller,
}

impl Reset {
    /// Who resets the instance of a step about to be handed over, with `running` steps running
    /// (this one included). A step running alone leaves it to its caller (when `caller_resets`,
    /// see `RuntimeConfig::caller_resets`): otherwise the actor would do it after its reply, and
    /// the caller's next request, going to the same idle actor, would wait for it. When other
    /// steps run, the actor does it: the caller's thread may have requests to hand over, and a
    /// reset there would hold them up while the workers idle.
    pub fn for_step(caller_resets: bool, running: usize) -> Reset {
        match caller_resets && running == 1 {
            true => Reset::Caller,
            false => Reset::Actor,
        }
    }

    /// Splits a finished instance between the answer (for its caller to reset) and the actor
    /// (to reset once the answer has gone): `(for the answer, for the actor)`.
    pub fn split(self, spent: Option<SpentInstance>) -> (Option<SpentInstance>, Option<SpentInstance>) {
        match self {
            Reset::Actor => (None, spent),
            Reset::Caller => (spent, None),
        }
    }
}

/// At most this many finished instances wait in [`AwaitingReset`].
pub const AWAITING_RESET_BOUND: usize = 16;

/// Finished instances of steps that ran alone ([`Reset::Caller`]), waiting for the reset of
/// their pooled memory slots.
#[derive(Default)]
pub(crate) struct AwaitingReset(Mutex<Vec<SpentInstance>>);

impl AwaitingReset {
    /// Keeps a finished instance for a later reset; resets it now (by dropping it) when
    /// [`AWAITING_RESET_BOUND`] wait already.
    pub(crate) fn keep(&self, spent: Option<SpentInstance>) {
        let Some(spent) = spent else { return };
        let mut waiting = self.lock();
        if waiting.len() < AWAITING_RESET_BOUND {
            waiting.push(spent);
            return;
        }
        drop(waiting);
        drop(spent);
    }

    /// A caller whose step runs alone ([`Reset::Caller`]) resets one waiting instance while it
    /// waits for its answer: its thread would only spin meanwhile.
    pub(crate) fn reset_while_waiting(&self, reset: Reset) {
        if reset == Reset::Caller {
            let spent = self.lock().pop();
            drop(spent);
        }
    }

    /// Resets every waiting instance (the supervisor's sweep: no caller took them).
    pub(crate) fn reset_all(&self) {
        let spent = std::mem::take(&mut *self.lock());
        drop(spent);
    }

    /// Instances waiting for their reset.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<SpentInstance>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
