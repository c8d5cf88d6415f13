//! A request or resume answered without running: [`Refusal`].

use std::fmt;

use nexus_abi::ErrorCode;

use crate::engine::ExecutionError;

/// A request or resume that was refused: nothing ran to any effect, and it can be sent again
/// as it is. [`Runtime::execute`](crate::runtime::Runtime::execute) and
/// [`Runtime::resume`](crate::runtime::Runtime::resume) answer with it instead of an
/// [`ExecutionResult`](crate::engine::ExecutionResult).
///
/// Its codes, here:
/// * `OVERLOADED`: every instance is busy and the queue is full, or a new request suspended
///   while the runtime holds its maximum of suspensions;
/// * `SHUTTING_DOWN`: the runtime stopped accepting work before this ran;
/// * `SUSPENSION_NOT_FOUND`: the resumed suspension is unknown, already resumed, cancelled, or
///   expired;
/// * `INVALID_ARGUMENT`: the request or resume itself is refused (an argument or a call's
///   result nested too deep, a memory limit out of range, bytecode that is not this runtime's,
///   a call id that is not pending, a suspension image that is not ours or was made on a guest
///   this runtime does not have);
/// * `STORE_UNAVAILABLE`: the suspension store could not be reached to claim the resumed
///   suspension, or to keep the suspension a new request ended in.
/// * `INTERNAL`, rarely: a stored suspension image that could not be restored (it stays in the
///   store), or a queued request the pool lost before it ran.
///
/// The rule: a resume whose step ran used its suspension, so whatever fails after that (the
/// handler, the instance actor that panicked mid-step, a store that could not commit the step,
/// a lost lease) is its `ExecutionResult`'s error, with the step's records; so is a new
/// request whose handler failed. A new request whose handler ran to a suspension that could not
/// be kept is refused: a handler's only effects are the records delivered with its result and
/// the extension calls its caller performs for the suspension, and it has neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal { code, message: message.into() }
    }

    /// The refusal of a resume whose suspension does not exist (any more).
    pub(crate) fn suspension_not_found() -> Self {
        Refusal::new(
            ErrorCode::SuspensionNotFound,
            "no such suspension: unknown, already resumed, cancelled, or expired",
        )
    }
}

impl From<ExecutionError> for Refusal {
    fn from(error: ExecutionError) -> Self {
        Refusal { code: error.code, message: error.message }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Refusal {}
