//! `nexus run`: runs a handler to completion, answering its extension calls with canned
//! values, and prints the accumulated result.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::{Future, poll_fn};
use std::path::PathBuf;
use std::pin::pin;
use std::process::ExitCode;
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;

use nexus::{
    Capability, ExecutionError, ExecutionRequest, ExecutionResult, ExtOutcome, Handler, PendingCall, Records, Refusal,
    Runtime, Status,
};
use serde_json::{Value, json};

use super::preload::PreloadArgs;
use super::{UsageError, input, print_json, store};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The handler source: the body of an async function (TypeScript if the file ends in .ts, .mts or .cts).
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
    /// Answers each call to NAME.METHOD (given by --ext or --ext-error) only after MS
    /// milliseconds, as a slow extension would.
    #[arg(long = "ext-delay", value_name = "NAME.METHOD=MS")]
    ext_delay: Vec<String>,
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

/// How `run` and `resume` answer extension calls: canned outcomes (each after its method's
/// delay), and methods left pending.
#[derive(Default)]
pub struct Answers {
    pub canned: BTreeMap<(String, String), ExtOutcome>,
    pub delays: BTreeMap<(String, String), Duration>,
    pub deferred: BTreeSet<(String, String)>,
}

impl Answers {
    /// From `--ext`, `--ext-error`, `--ext-delay` and `--defer`.
    pub fn parse(
        ext: &[String],
        ext_error: &[String],
        ext_delay: &[String],
        store: &StoreArgs,
    ) -> Result<Self, UsageError> {
        let mut answers = Answers::default();
        // One answer per method: a second one would silently win over the first.
        let mut answer = |flag: &str, spec: &str, name: &str, method: &str, outcome: ExtOutcome| match answers
            .canned
            .insert((name.to_owned(), method.to_owned()), outcome)
        {
            Some(_) => Err(UsageError(format!(
                "{flag} {spec:?}: {name}.{method} already has an answer (one --ext or --ext-error per method)"
            ))),
            None => Ok(()),
        };
        for spec in ext {
            let (name, method, value) = input::extension_answer(spec, "--ext")?;
            answer("--ext", spec, name, method, ExtOutcome::Ok(input::json(value, "--ext")?))?;
        }
        for spec in ext_error {
            let (name, method, message) = input::extension_answer(spec, "--ext-error")?;
            answer("--ext-error", spec, name, method, ExtOutcome::Err { code: None, message: message.to_owned() })?;
        }
        for spec in ext_delay {
            let (name, method, ms) = input::extension_answer(spec, "--ext-delay")?;
            let key = (name.to_owned(), method.to_owned());
            if !answers.canned.contains_key(&key) {
                return Err(UsageError(format!(
                    "--ext-delay {spec:?}: {name}.{method} has no answer to delay (give it with --ext or --ext-error)"
                )));
            }
            let ms = ms.parse().map_err(|_| UsageError(format!("--ext-delay {spec:?}: expected NAME.METHOD=MS")))?;
            answers.delays.insert(key, Duration::from_millis(ms));
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
            let key = (name.to_owned(), method.to_owned());
            if answers.canned.contains_key(&key) {
                return Err(UsageError(format!(
                    "--defer {spec:?}: {name}.{method} has an answer here (--ext or --ext-error); a deferred call is \
                     answered later, by `nexus resume`"
                )));
            }
            answers.deferred.insert(key);
        }
        Ok(answers)
    }

    /// Every method named, for the extension registry.
    fn methods(&self) -> impl Iterator<Item = &(String, String)> {
        self.canned.keys().chain(&self.deferred)
    }

    /// The call id and outcome of `call` once its method's delay has passed; `None` for a
    /// deferred call or one this process has no answer for.
    fn answer(&self, call: &PendingCall) -> Option<impl Future<Output = (u32, ExtOutcome)> + use<>> {
        let key = (call.extension.clone(), call.method.clone());
        let outcome = self.canned.get(&key)?.clone();
        let delay = self.delays.get(&key).copied().unwrap_or_default();
        let call_id = call.call_id;
        Some(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            (call_id, outcome)
        })
    }
}

pub fn run(args: RunArgs) -> Result<ExitCode, UsageError> {
    let (language, source) = input::handler(&args.handler)?;
    let mut request = ExecutionRequest { handler: Handler::source_in(language, source), ..Default::default() };
    request.handler_name = args.handler.display().to_string();
    request.timeout = Duration::from_millis(args.timeout_ms);
    request.memory_limit = match args.memory_mb {
        Some(mb) => Some(mb.checked_mul(1 << 20).ok_or_else(|| {
            UsageError(format!("--memory-mb {mb}: too large (the largest limit a request may ask for is 256 MiB)"))
        })?),
        None => None,
    };
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

    let answers = Answers::parse(&args.ext, &args.ext_error, &args.ext_delay, &args.store)?;
    for (name, method) in answers.methods() {
        request.extension_registry.entry(name.clone()).or_default().insert(method.clone());
    }

    let libraries = args.preload.libraries()?;
    let runtime = store::runtime(args.store.store.as_deref(), args.infer_caps, libraries, request.memory_limit)?;
    let (result, suspensions) = store::block_on(&runtime, async {
        let first = printable(runtime.execute(request).await);
        drive(&runtime, first, &answers).await
    })?;
    Ok(print_outcome(result, suspensions))
}

/// A refusal is printed as a result whose error is the refusal, with the records of the steps
/// that ran before it: one output shape for everything `run` and `resume` answer.
pub fn printable(answer: Result<ExecutionResult, Refusal>) -> ExecutionResult {
    answer.unwrap_or_else(|refusal| ExecutionResult::failed(ExecutionError::new(refusal.code, refusal.message)))
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
/// returns the last result with the records and metrics of the whole run, and the calls of
/// each suspension in order. Every call it can answer starts as soon as a suspension lists it,
/// concurrently with the others, and the execution is resumed with each outcome as soon as that
/// call settles (first settled, first resumed), as `Runtime::run_to_completion` drives it. It
/// stops at a suspension whose pending calls are all deferred.
pub async fn drive(runtime: &Runtime, mut result: ExecutionResult, answers: &Answers) -> (ExecutionResult, Vec<Value>) {
    let mut records = Records::default();
    let mut metrics = result.metrics.clone();
    let mut suspensions = Vec::new();
    let mut reported = BTreeSet::new();
    let mut in_flight = FuturesUnordered::new();
    let mut settled = VecDeque::new();
    while let Some(suspension) = result.suspension.take() {
        records.extend(std::mem::take(&mut result.records));
        // Answering one call of several leaves the others pending: that is the same wait, not
        // a new suspension. Each call is listed once, by the suspension that made it (a call
        // left pending across many steps, listed by each, made the output grow as their
        // product).
        let made: Vec<_> = suspension.calls.iter().filter(|call| !reported.contains(&call.call_id)).collect();
        if !made.is_empty() {
            suspensions.push(json!({ "id": suspension.id, "calls": made }));
        }
        for call in &suspension.calls {
            if reported.insert(call.call_id) {
                in_flight.extend(answers.answer(call));
            }
        }
        let next = match settled.pop_front() {
            Some(next) => Some(next),
            None => in_flight.next().await,
        };
        let Some((call_id, outcome)) = next else {
            // Only deferred calls (or calls this process has no answer for) are pending: the
            // execution stays in the store.
            result.suspension = Some(suspension);
            break;
        };
        let resume = runtime.resume(&suspension.id, call_id, outcome);
        result = printable(while_calls_run(resume, &mut in_flight, &mut settled).await);
        metrics.add_step(&result.metrics);
    }
    records.extend(std::mem::take(&mut result.records));
    result.records = records;
    result.metrics = metrics;
    (result, suspensions)
}

/// Awaits `work` while polling the calls in flight, queueing the outcome of each call that
/// settles meanwhile in the order they settle.
async fn while_calls_run<T, F: Future>(
    work: impl Future<Output = T>,
    in_flight: &mut FuturesUnordered<F>,
    settled: &mut VecDeque<F::Output>,
) -> T {
    let mut work = pin!(work);
    poll_fn(|cx| {
        while let Poll::Ready(Some(outcome)) = in_flight.poll_next_unpin(cx) {
            settled.push_back(outcome);
        }
        work.as_mut().poll(cx)
    })
    .await
}
