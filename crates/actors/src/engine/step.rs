//! One step of an execution: a call into the guest (its run, or a resume) with the time left,
//! and what it reports turned into a result, a parked execution, or a spent instance.

use std::time::{Duration, Instant};

use nexus_abi::{ErrorCode, RunOutput, RunReport};
use nexus_host_fns::host_state::{LISTED_PER_OUTPUT_LIMIT, MAX_PENDING_CALLS};
use serde_json::Value;

use super::errors::{self, Evidence};
use super::instance::{EntryPoint, GuestInstance};
use super::typescript::{self, Authored};
use super::{
    Engine, ExecutionError, ExecutionMetrics, ExecutionResult, Outcome, ParkedExecution, SpentInstance, Status,
    Suspension, SuspensionId,
};

impl Engine {
    /// Calls into the guest with the time left, and turns what it reports into a result.
    pub(super) fn step<I: serde::Serialize>(&self, step: Step, entry: EntryPoint, input: &I) -> Outcome {
        let span = step.span.clone();
        let _entered = span.enter();
        let outcome = self.run_step(step, entry, input);
        let result = &outcome.result;
        span.record("status", result.status.as_str());
        if let Some(error) = &result.error {
            span.record("code", error.code.as_str());
        }
        tracing::debug!(
            execution_time_us = result.metrics.execution_time_us,
            host_calls = result.metrics.host_calls,
            "step finished"
        );
        outcome
    }

    fn run_step<I: serde::Serialize>(&self, mut step: Step, entry: EntryPoint, input: &I) -> Outcome {
        let running = Instant::now();
        // The host state counts the execution's calls across its steps; the result gives this
        // step's (as its time is this step's), so sums over steps count every call once.
        let calls_before = step.instance.store.data().host.host_calls();
        let report = if step.time_left.is_zero() {
            // Nothing left (compiling, or hibernating and restoring, took it): not run at all,
            // rather than until the ticker's next increment, however far that is.
            Err(wasmtime::Trap::Interrupt.into())
        } else {
            let watch = self.watch(&mut step.instance, step.time_left);
            let report = step.instance.call::<_, RunReport>(entry, input);
            drop(watch);
            report
        };
        if let Ok(report) = &report {
            step.instance.store.data_mut().host.charge_result(&report.output);
        }
        step.time_left = step.time_left.saturating_sub(running.elapsed());
        let listing = self.config.output_limit.saturating_mul(LISTED_PER_OUTPUT_LIMIT);
        let listed_too_much = matches!(&report, Ok(report) if matches!(report.output, RunOutput::Pending))
            && !step.instance.store.data_mut().host.list_pending(listing);

        let data = step.instance.store.data_mut();
        let records = data.host.take_records();
        data.denied |= !records.denials.is_empty();
        let metrics = ExecutionMetrics {
            execution_time_us: step.started.elapsed().as_micros() as u64,
            compile_time_us: step.loaded.compile_time_us + report.as_ref().map_or(0, |report| report.compile_time_us),
            host_calls: data.host.host_calls() - calls_before,
            memory_bytes: step.instance.memory_bytes(),
            cache_hit: step.loaded.cache_hit,
        };
        let mut result = ExecutionResult {
            status: Status::Error,
            return_value: Value::Null,
            records,
            suspension: None,
            error: None,
            metrics,
        };
        let data = step.instance.store.data();
        let output = match report.map(|report| report.output) {
            // Past the output budget the handler may have caught the error, or tried to return
            // (or throw) more than is left: it failed, whatever it did next.
            _ if data.host.output_exhausted() => Err(ExecutionError::new(
                ErrorCode::MemoryLimit,
                format!("the handler exceeded its output limit of {} bytes", self.config.output_limit),
            )),
            _ if data.host.too_many_pending() => Err(ExecutionError::new(
                ErrorCode::MemoryLimit,
                format!(
                    "the handler made more than {MAX_PENDING_CALLS} extension calls pending at once (the limit): \
                     batch many items into fewer calls"
                ),
            )),
            Ok(RunOutput::Pending) if listed_too_much => Err(ExecutionError::new(
                ErrorCode::MemoryLimit,
                format!(
                    "the handler's suspended results listed more than {listing} bytes of pending extension calls in \
                     all (each lists every call still pending): batch many items, or large arguments, into fewer calls"
                ),
            )),
            Ok(output) => Ok(output),
            Err(trap) => Err(errors::from_trap(&trap, &data.limits, data.host.guest_output())),
        };
        match output {
            Ok(RunOutput::Returned(value)) => {
                result.status = Status::Success;
                result.return_value = value.unwrap_or(Value::Null);
            }
            Ok(RunOutput::Threw(error)) => {
                let evidence = Evidence { denied: data.denied, unknown_extension: data.unknown_extension };
                result.error = Some(typescript::from_guest(error, step.source.as_ref(), evidence));
            }
            Ok(RunOutput::Pending) if data.host.pending_calls().is_empty() => {
                result.error = Some(ExecutionError::new(
                    ErrorCode::Unsettled,
                    "the handler's promise can never settle: it awaits nothing the host is performing",
                ));
            }
            Ok(RunOutput::Pending) => {
                let id = SuspensionId::random();
                result.status = Status::Suspended;
                result.suspension = Some(Suspension { id, calls: data.host.pending_calls().to_vec() });
                let parked = ParkedExecution {
                    instance: Box::new(step.instance),
                    source: step.source,
                    time_left: step.time_left,
                    span: step.span,
                };
                return Outcome { result, parked: Some(parked), spent: None, refused: false };
            }
            Err(error) => result.error = Some(error),
        }
        // The guest raises `INVALID_ARGUMENT` only while loading the handler (bytecode that is
        // not this guest's): none of the handler ran.
        let refused = result.error.as_ref().is_some_and(|e| e.code == ErrorCode::InvalidArgument);
        Outcome { result, parked: None, spent: Some(SpentInstance { _instance: Box::new(step.instance) }), refused }
    }
}

pub(super) struct Step {
    pub(super) instance: GuestInstance,
    pub(super) source: Option<Authored>,
    pub(super) time_left: Duration,
    pub(super) started: Instant,
    pub(super) span: tracing::Span,
    pub(super) loaded: Loaded,
}

/// How the handler's code was obtained, for the first step's metrics.
#[derive(Clone, Copy, Default)]
pub(super) struct Loaded {
    pub(super) compile_time_us: u64,
    pub(super) cache_hit: bool,
}
