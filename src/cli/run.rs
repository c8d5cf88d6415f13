//! `nexus run`: runs a handler to completion, answering its extension calls with canned
//! values, and prints the accumulated result.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use nexus::{
    Capability, ExecutionRequest, ExecutionResult, ExtOutcome, Handler, PendingCall, Records, Runtime, Status,
};
use serde_json::{Value, json};

use super::preload::PreloadArgs;
use super::{UsageError, input, print_json, store};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The handler source: the body of an async function (TypeScript if the file ends in .ts).
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
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    preload: PreloadArgs,
}

/// Suspensions left in a store, to be resumed by another process (`nexus resume`).
#[derive(clap::Args)]
pub struct StoreArgs {
    /// Keep suspensions in this directory, or in Redis when it starts with redis:// or
    /// rediss:// (sealed; see NEXUS_SUSPENSION_KEY).
    #[arg(long, value_name = "DIR|redis://HOST:PORT/DB")]
    pub store: Option<String>,
    /// Registers NAME.METHOD and leaves its calls pending (repeatable; needs --store): when only
    /// such calls are pending, the execution stays in the store and the result is `suspended`.
    #[arg(long = "defer", value_name = "NAME.METHOD")]
    pub defer: Vec<String>,
}

/// How `run` and `resume` answer extension calls: canned outcomes, and methods left pending.
#[derive(Default)]
pub struct Answers {
    pub canned: BTreeMap<(String, String), ExtOutcome>,
    pub deferred: BTreeSet<(String, String)>,
}

impl Answers {
    /// From `--ext`, `--ext-error` and `--defer`.
    pub fn parse(ext: &[String], ext_error: &[String], store: &StoreArgs) -> Result<Self, UsageError> {
        let mut answers = Answers::default();
        for spec in ext {
            let (name, method, value) = input::extension_answer(spec, "--ext")?;
            answers.canned.insert((name.to_owned(), method.to_owned()), ExtOutcome::Ok(input::json(value, "--ext")?));
        }
        for spec in ext_error {
            let (name, method, message) = input::extension_answer(spec, "--ext-error")?;
            let outcome = ExtOutcome::Err { code: None, message: message.to_owned() };
            answers.canned.insert((name.to_owned(), method.to_owned()), outcome);
        }
        if !store.defer.is_empty() && store.store.is_none() {
            return Err(UsageError(
                "--defer leaves calls pending in a store: it needs --store DIR (or a redis:// URL)".into(),
            ));
        }
        for spec in &store.defer {
            let (name, method) = spec
                .rsplit_once('.')
                .filter(|(name, method)| !name.is_empty() && !method.is_empty())
                .ok_or_else(|| UsageError(format!("--defer {spec:?}: expected NAME.METHOD")))?;
            answers.deferred.insert((name.to_owned(), method.to_owned()));
        }
        Ok(answers)
    }

    /// Every method named, for the extension registry.
    fn methods(&self) -> impl Iterator<Item = &(String, String)> {
        self.canned.keys().chain(&self.deferred)
    }
}

pub fn run(args: RunArgs) -> Result<ExitCode, UsageError> {
    let (language, source) = input::handler(&args.handler)?;
    let mut request = ExecutionRequest { handler: Handler::source_in(language, source), ..Default::default() };
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

    let answers = Answers::parse(&args.ext, &args.ext_error, &args.store)?;
    for (name, method) in answers.methods() {
        request.extension_registry.entry(name.clone()).or_default().insert(method.clone());
    }

    let runtime = store::runtime(args.store.store.as_deref(), args.infer_caps, args.preload.libraries()?)?;
    let (result, suspensions) = store::block_on(&runtime, async {
        let first = runtime.execute(request).await;
        drive(&runtime, first, &answers).await
    })?;
    Ok(print_outcome(result, suspensions))
}

/// Prints a driven result with its suspensions; the exit code: 0 for success or a suspension
/// left in the store, 1 otherwise.
pub fn print_outcome(result: ExecutionResult, suspensions: Vec<Value>) -> ExitCode {
    let status = result.status;
    let mut output = serde_json::to_value(&result).expect("results always serialize");
    output["suspensions"] = Value::Array(suspensions);
    print_json(&output);
    if status == Status::Error { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Runs an execution on from `result` through every suspension whose calls it can answer;
/// returns the last result with the records of the whole run, and the calls of each
/// suspension in order. It stops at a suspension whose pending calls are all deferred.
pub async fn drive(runtime: &Runtime, mut result: ExecutionResult, answers: &Answers) -> (ExecutionResult, Vec<Value>) {
    let mut records = Records::default();
    let mut suspensions = Vec::new();
    let mut reported = BTreeSet::new();
    while let Some(suspension) = result.suspension.take() {
        records.extend(std::mem::take(&mut result.records));
        // Answering one call of several leaves the others pending: that is the same wait, not
        // a new suspension.
        if suspension.calls.iter().any(|call| !reported.contains(&call.call_id)) {
            reported.extend(suspension.calls.iter().map(|call| call.call_id));
            suspensions.push(json!({ "id": suspension.id, "calls": suspension.calls }));
        }
        let answered = suspension.calls.iter().find_map(|PendingCall { call_id, extension, method, .. }| {
            Some((*call_id, answers.canned.get(&(extension.clone(), method.clone()))?.clone()))
        });
        let Some((call_id, outcome)) = answered else {
            // Only deferred calls (or calls this process has no answer for) are pending: the
            // execution stays in the store.
            result.suspension = Some(suspension);
            break;
        };
        result = runtime.resume(&suspension.id, call_id, outcome).await;
    }
    records.extend(std::mem::take(&mut result.records));
    result.records = records;
    (result, suspensions)
}
