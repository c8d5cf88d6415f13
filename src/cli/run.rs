//! `nexus run`: runs a handler to completion, answering its extension calls with canned
//! values, and prints the accumulated result.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use nexus::{
    Capability, ExecutionRequest, ExecutionResult, ExtOutcome, PendingCall, Records, Runtime, RuntimeConfig, Status,
};
use serde_json::{Value, json};

use super::{UsageError, input, print_json};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The handler source: the body of an async function.
    handler: PathBuf,
    /// The panel state (a JSON object, or @FILE).
    #[arg(long, value_name = "JSON|@FILE")]
    state: Option<String>,
    /// The call's arguments ($args).
    #[arg(long, value_name = "JSON|@FILE")]
    args: Option<String>,
    /// The panel scope ($scope).
    #[arg(long, value_name = "JSON|@FILE")]
    scope: Option<String>,
    /// A capability token (repeatable), e.g. state:read:count, ext:weather.
    #[arg(long = "cap", value_name = "TOKEN")]
    caps: Vec<String>,
    /// Registers NAME.METHOD and answers each call to it with this value.
    #[arg(long = "ext", value_name = "NAME.METHOD=JSON|@FILE")]
    ext: Vec<String>,
    /// Registers NAME.METHOD and rejects each call to it with an Error carrying MESSAGE.
    #[arg(long = "ext-error", value_name = "NAME.METHOD=MESSAGE")]
    ext_error: Vec<String>,
    /// Without --cap, grant the capabilities inferred from the source (dynamic accesses stay denied).
    #[arg(long)]
    infer_caps: bool,
    /// Time limit for running the handler, in milliseconds.
    #[arg(long, default_value_t = 5000, value_name = "N")]
    timeout_ms: u64,
    /// Memory limit, in MiB.
    #[arg(long, value_name = "N")]
    memory_mb: Option<u64>,
}

pub fn run(args: RunArgs) -> Result<ExitCode, UsageError> {
    let source = input::read(&args.handler)?;
    let mut request = ExecutionRequest::source(source);
    request.handler_name = args.handler.display().to_string();
    request.timeout = Duration::from_millis(args.timeout_ms);
    request.memory_limit = args.memory_mb.map(|mb| mb << 20);
    if let Some(state) = &args.state {
        request.state_snapshot = input::object(state, "--state")?;
    }
    if let Some(value) = &args.args {
        request.args = input::json(value, "--args")?;
    }
    if let Some(scope) = &args.scope {
        request.scope = input::json(scope, "--scope")?;
    }
    request.capabilities = args
        .caps
        .iter()
        .map(|token| token.parse::<Capability>())
        .collect::<Result<_, _>>()
        .map_err(|e| UsageError(format!("--cap: {e}")))?;

    let mut answers = BTreeMap::new();
    for spec in &args.ext {
        let (name, method, value) = input::extension_answer(spec, "--ext")?;
        answers.insert((name.to_owned(), method.to_owned()), ExtOutcome::Ok(input::json(value, "--ext")?));
    }
    for spec in &args.ext_error {
        let (name, method, message) = input::extension_answer(spec, "--ext-error")?;
        let outcome = ExtOutcome::Err { code: None, message: message.to_owned() };
        answers.insert((name.to_owned(), method.to_owned()), outcome);
    }
    for (name, method) in answers.keys() {
        request.extension_registry.entry(name.clone()).or_default().insert(method.clone());
    }

    // One execution at a time: a small pool on one worker thread.
    let mut config = RuntimeConfig { pool_size: 2, workers: 1, ..RuntimeConfig::default() };
    config.engine.infer_missing_capabilities = args.infer_caps;
    let runtime = Runtime::start(config).map_err(|e| UsageError(format!("starting the runtime: {e:#}")))?;
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (result, suspensions) = tokio.block_on(async {
        let driven = drive(&runtime, request, &answers).await;
        runtime.shutdown(Duration::from_secs(1)).await;
        driven
    });
    let status = result.status;
    let mut output = serde_json::to_value(&result)?;
    output["suspensions"] = Value::Array(suspensions);
    print_json(&output);
    Ok(if status == Status::Success { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Runs the request through every suspension; returns the final result with the records of
/// the whole run, and the calls of each suspension in order.
async fn drive(
    runtime: &Runtime,
    request: ExecutionRequest,
    answers: &BTreeMap<(String, String), ExtOutcome>,
) -> (ExecutionResult, Vec<Value>) {
    let mut records = Records::default();
    let mut suspensions = Vec::new();
    let mut reported = BTreeSet::new();
    let mut result = runtime.execute(request).await;
    while let Some(suspension) = result.suspension.take() {
        records.extend(std::mem::take(&mut result.records));
        // Answering one call of several leaves the others pending: that is the same wait, not
        // a new suspension.
        if suspension.calls.iter().any(|call| !reported.contains(&call.call_id)) {
            reported.extend(suspension.calls.iter().map(|call| call.call_id));
            suspensions.push(json!({ "id": suspension.id, "calls": suspension.calls }));
        }
        let PendingCall { call_id, extension, method, .. } = &suspension.calls[0];
        // Every registered method has an answer, so an unanswered call cannot be pending.
        let outcome = answers[&(extension.clone(), method.clone())].clone();
        result = runtime.resume(&suspension.id, *call_id, outcome).await;
    }
    records.extend(std::mem::take(&mut result.records));
    result.records = records;
    (result, suspensions)
}
