//! `nexus resume` and `nexus cancel`: a suspension left in a store by `nexus run --store`, in
//! another process.

use std::process::ExitCode;

use nexus::{ExecutionResult, ExtOutcome, SuspensionId};
use serde_json::json;

use super::preload::PreloadArgs;
use super::run::{Answers, StoreArgs, drive, print_outcome, printable};
use super::{UsageError, input, print_json, store};

#[derive(clap::Args)]
pub struct ResumeArgs {
    /// The suspension, as `run` printed it (`suspension.id`).
    suspension_id: String,
    /// Settles a pending call with this value (repeatable, applied in order).
    #[arg(long = "call", value_name = "CALL_ID=JSON|@FILE")]
    calls: Vec<String>,
    /// Rejects a pending call with an Error carrying MESSAGE (repeatable).
    #[arg(long = "call-error", value_name = "CALL_ID=MESSAGE")]
    call_errors: Vec<String>,
    /// Answers later calls to NAME.METHOD with this value.
    #[arg(long = "ext", value_name = "NAME.METHOD=JSON|@FILE")]
    ext: Vec<String>,
    /// Rejects later calls to NAME.METHOD with an Error carrying MESSAGE.
    #[arg(long = "ext-error", value_name = "NAME.METHOD=MESSAGE")]
    ext_error: Vec<String>,
    /// Answers later calls to NAME.METHOD only after MS milliseconds.
    #[arg(long = "ext-delay", value_name = "NAME.METHOD=MS")]
    ext_delay: Vec<String>,
    /// The store the suspension is in (as `run --store` named it): a directory, or a redis:// URL.
    #[arg(long, value_name = "DIR|redis://HOST:PORT/DB")]
    store: String,
    /// Registers NAME.METHOD and leaves its later calls pending (repeatable): when only such
    /// calls are pending, the execution stays in the store, under a new id.
    #[arg(long = "defer", value_name = "NAME.METHOD")]
    defer: Vec<String>,
    /// The libraries the suspension's run preloaded (the same files, in the same order).
    #[command(flatten)]
    preload: PreloadArgs,
}

#[derive(clap::Args)]
pub struct CancelArgs {
    /// The suspension, as `run` or `resume` printed it (`suspension.id`).
    suspension_id: String,
    /// The store the suspension is in: a directory, or a redis:// URL.
    #[arg(long, value_name = "DIR|redis://HOST:PORT/DB")]
    store: String,
}

pub fn resume(args: ResumeArgs) -> Result<ExitCode, UsageError> {
    let dir = args.store.as_str();
    let mut outcomes = Vec::new();
    for spec in &args.calls {
        let (call_id, value) = call_spec(spec, "--call")?;
        outcomes.push((call_id, ExtOutcome::Ok(input::json(value, "--call")?)));
    }
    for spec in &args.call_errors {
        let (call_id, message) = call_spec(spec, "--call-error")?;
        outcomes.push((call_id, ExtOutcome::Err { code: None, message: message.to_owned() }));
    }
    if outcomes.is_empty() {
        return Err(UsageError("resume needs at least one --call or --call-error".into()));
    }
    let mut given = std::collections::BTreeSet::new();
    if let Some((call_id, _)) = outcomes.iter().find(|(call_id, _)| !given.insert(*call_id)) {
        return Err(UsageError(format!("call {call_id} is given an outcome twice (--call, --call-error)")));
    }
    let store = StoreArgs { store: Some(args.store.clone()), defer: args.defer.clone() };
    let answers = Answers::parse(&args.ext, &args.ext_error, &args.ext_delay, &store)?;
    store::existing(dir)?;
    let runtime = store::runtime(Some(dir), false, args.preload.libraries()?, None)?;
    let mut id = SuspensionId(args.suspension_id.clone());
    let (result, suspensions) = store::block_on(&runtime, async {
        let mut records = nexus::Records::default();
        let mut metrics = nexus::ExecutionMetrics::default();
        let mut result: Option<ExecutionResult> = None;
        for (call_id, outcome) in outcomes {
            let mut step = match runtime.resume(&id, call_id, outcome).await {
                Ok(step) => step,
                Err(refusal) => {
                    let left = result.and_then(|result| result.suspension);
                    return refused_after(printable(Err(refusal)), left, records, metrics);
                }
            };
            let suspended = step.suspension.as_ref().map(|suspension| suspension.id.clone());
            records.extend(std::mem::take(&mut step.records));
            metrics.add_step(&step.metrics);
            result = Some(step);
            match suspended {
                Some(next) => id = next,
                None => break,
            }
        }
        let mut result = result.expect("at least one outcome was checked");
        result.records = records;
        result.metrics = metrics;
        drive(&runtime, result, &answers).await
    })?;
    Ok(print_outcome(result, suspensions))
}

/// The result of an outcome the runtime refused (a call that is not pending, say). When the
/// outcomes before it were applied, the execution waits on in the store as `left`, untouched by
/// the refusal: the result names it, so that nothing the earlier outcomes did is lost.
fn refused_after(
    mut refused: ExecutionResult,
    left: Option<nexus::Suspension>,
    records: nexus::Records,
    metrics: nexus::ExecutionMetrics,
) -> (ExecutionResult, Vec<serde_json::Value>) {
    let Some(left) = left else { return (refused, Vec::new()) };
    if let Some(error) = refused.error.as_mut() {
        error
            .message
            .push_str(&format!("; the execution stays suspended as {} (the outcomes before were applied)", left.id));
    }
    let listed = json!({ "id": left.id, "calls": left.calls });
    refused.suspension = Some(left);
    refused.records = records;
    refused.metrics = metrics;
    (refused, vec![listed])
}

pub fn cancel(args: CancelArgs) -> Result<ExitCode, UsageError> {
    store::existing(&args.store)?;
    let runtime = store::runtime(Some(&args.store), false, Vec::new(), None)?;
    let id = SuspensionId(args.suspension_id.clone());
    let cancelled = store::block_on(&runtime, async { runtime.cancel(&id).await })?;
    match cancelled {
        Ok(cancelled) => {
            print_json(&json!({ "cancelled": cancelled, "suspensionId": args.suspension_id }));
            Ok(if cancelled { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Err(error) => {
            print_json(&json!({ "cancelled": false, "suspensionId": args.suspension_id, "error": error }));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Splits `CALL_ID=VALUE`.
fn call_spec<'a>(spec: &'a str, option: &str) -> Result<(u32, &'a str), UsageError> {
    let malformed = || UsageError(format!("{option} {spec:?}: expected CALL_ID=VALUE"));
    let (call_id, value) = spec.split_once('=').ok_or_else(malformed)?;
    Ok((call_id.trim().parse().map_err(|_| malformed())?, value))
}
