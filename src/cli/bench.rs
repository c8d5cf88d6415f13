//! `nexus bench`: runs every workload of `benches/workloads/` on the engine alone and through
//! the actor runtime, and prints per-request latency percentiles and throughput as a table
//! (or as JSON with `--json`). The criterion benches (`cargo bench`) give the same figures with
//! confidence intervals; this is the quick look.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nexus::workloads::{NAMES, Workload};
use nexus::{Engine, EngineConfig, Handler, Runtime, RuntimeConfig, spin};
use serde::Serialize;
use serde_json::json;

use super::{UsageError, print_json};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Most measured executions per figure.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    iterations: u64,
    /// Time spent measuring each figure, in milliseconds (it stops at whichever of
    /// --iterations and this comes first).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    duration_ms: u64,
    /// Requests in flight at once for the throughput figure.
    #[arg(long, default_value_t = 64, value_name = "N")]
    concurrency: usize,
    /// Only these workloads (repeatable); all by default.
    #[arg(long = "workload", value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(NAMES))]
    workloads: Vec<String>,
    /// Instead of the workloads: suspensions beyond their instance (hibernate and restore
    /// latency, memory per hibernated suspension, throughput with 100 ms extension calls).
    /// Optionally only some parts: latency, memory, io, after (what `hibernate_after` costs and
    /// saves), and (with a redis:// --store) shared:
    /// two processes sharing one Redis.
    #[arg(long, num_args = 0.., value_name = "PART", value_parser = clap::builder::PossibleValuesParser::new(super::bench_suspensions::PARTS))]
    suspensions: Option<Vec<String>>,
    /// With --suspensions: also measure this store (a redis:// URL, or a directory).
    #[arg(long, value_name = "DIR|redis://HOST:PORT/DB", requires = "suspensions")]
    store: Option<String>,
    /// Instead of the workloads: a TypeScript handler's first, cached and precompiled
    /// executions against the same handler in JavaScript.
    #[arg(long)]
    typescript: bool,
}

/// Per-request latency over a run of sequential executions.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Latency {
    executions: u64,
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Throughput {
    concurrency: usize,
    executions: u64,
    per_second: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Figures {
    name: &'static str,
    /// The engine alone, on this thread: no actors.
    engine: Latency,
    /// Through the actor runtime, one request at a time.
    runtime: Latency,
    /// Through the actor runtime, `concurrency` requests in flight.
    throughput: Throughput,
}

/// How long to measure one figure.
#[derive(Clone, Copy)]
struct Budget {
    iterations: u64,
    duration: Duration,
}

impl Budget {
    /// A tenth of the budget, run first and not measured.
    fn warm_up(self) -> Budget {
        Budget { iterations: (self.iterations / 10).max(1), duration: self.duration / 10 }
    }
}

pub fn bench(args: BenchArgs) -> Result<ExitCode, UsageError> {
    if let Some(parts) = &args.suspensions {
        super::bench_suspensions::run(parts, args.store.as_deref())?;
        return Ok(ExitCode::SUCCESS);
    }
    let budget = Budget { iterations: args.iterations.max(1), duration: Duration::from_millis(args.duration_ms) };
    if args.typescript {
        super::bench_typescript::run(budget.iterations, budget.duration)?;
        return Ok(ExitCode::SUCCESS);
    }
    let workloads: Vec<Workload> = if args.workloads.is_empty() {
        Workload::all()
    } else {
        args.workloads.iter().map(|name| Workload::named(name)).collect()
    };
    let engine = Engine::with_slots(EngineConfig::default(), 4)
        .map_err(|e| UsageError(format!("starting the engine: {e:#}")))?;
    let config = RuntimeConfig::default();
    // The client thread spins before parking as the runtime's own threads do (see `nexus::spin`).
    let tokio = spin::tokio_runtime(config.spin_before_park)?;
    let runtime = Runtime::start(config).map_err(|e| UsageError(format!("starting the runtime: {e:#}")))?;

    let mut figures = Vec::new();
    for workload in &workloads {
        let handler = match workload.unique_per_execution {
            true => None,
            false => Some(Handler::Bytecode(
                engine
                    .precompile(workload.source)
                    .map_err(|e| UsageError(format!("{}: {}", workload.name, e.message)))?,
            )),
        };
        // Execution number `n`'s request: precompiled bytecode, or a source never seen before.
        let request = |n: u64| match &handler {
            Some(handler) => workload.request(handler.clone()),
            None => workload.request(workload.handler_source(n)),
        };
        let fresh = AtomicU64::new(0);
        let next = || fresh.fetch_add(1, Ordering::Relaxed);

        let engine_once = || check(workload, &workload.run_on_engine(&engine, request(next())));
        latency(budget.warm_up(), engine_once)?;
        let engine_latency = latency(budget, engine_once)?;

        let runtime_once =
            || check_answer(workload, tokio.block_on(runtime.run_to_completion(request(next()), workload)));
        latency(budget.warm_up(), runtime_once)?;
        let runtime_latency = latency(budget, runtime_once)?;

        let throughput = tokio.block_on(throughput(&runtime, workload, &request, &fresh, budget, args.concurrency))?;
        figures.push(Figures { name: workload.name, engine: engine_latency, runtime: runtime_latency, throughput });
    }
    tokio.block_on(runtime.shutdown(Duration::from_secs(1)));

    if args.json {
        print_json(&json!({ "machine": machine(), "workloads": figures }));
    } else {
        print_table(&figures);
    }
    Ok(ExitCode::SUCCESS)
}

/// [`check`] for the runtime's answer: a refusal fails it.
fn check_answer(workload: &Workload, answer: Result<nexus::ExecutionResult, nexus::Refusal>) -> Result<(), UsageError> {
    match answer {
        Ok(result) => check(workload, &result),
        Err(refusal) => Err(UsageError(format!("workload {} was refused: {refusal}", workload.name))),
    }
}

fn check(workload: &Workload, result: &nexus::ExecutionResult) -> Result<(), UsageError> {
    if workload.succeeded(result) {
        return Ok(());
    }
    let error = result.error.as_ref().map_or(String::new(), |e| format!(": {} {}", e.code.as_str(), e.message));
    Err(UsageError(format!(
        "workload {} returned {} ({}{error}), expected {}",
        workload.name,
        result.return_value,
        result.status.as_str(),
        workload.expect
    )))
}

/// Runs `once` sequentially within `budget`, timing each call.
fn latency(budget: Budget, mut once: impl FnMut() -> Result<(), UsageError>) -> Result<Latency, UsageError> {
    let mut samples = Vec::new();
    let started = Instant::now();
    while (samples.len() as u64) < budget.iterations && (samples.is_empty() || started.elapsed() < budget.duration) {
        let call = Instant::now();
        once()?;
        samples.push(call.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    let percentile = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    Ok(Latency {
        executions: samples.len() as u64,
        p50_us: percentile(0.50),
        p99_us: percentile(0.99),
        mean_us: samples.iter().sum::<f64>() / samples.len() as f64,
    })
}

/// Keeps `concurrency` requests in flight through the runtime until the budget is spent.
async fn throughput(
    runtime: &Runtime,
    workload: &Workload,
    request: &(impl Fn(u64) -> nexus::ExecutionRequest + Sync),
    fresh: &AtomicU64,
    budget: Budget,
    concurrency: usize,
) -> Result<Throughput, UsageError> {
    let total = budget.iterations.max(concurrency as u64);
    let started = Instant::now();
    let issued = AtomicU64::new(0);
    let client = || async {
        let mut done = 0u64;
        while issued.fetch_add(1, Ordering::Relaxed) < total && started.elapsed() < budget.duration {
            let request = request(fresh.fetch_add(1, Ordering::Relaxed));
            check_answer(workload, runtime.run_to_completion(request, workload).await)?;
            done += 1;
        }
        Ok::<u64, UsageError>(done)
    };
    let mut executions = 0;
    for done in futures::future::join_all((0..concurrency).map(|_| client())).await {
        executions += done?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(Throughput { concurrency, executions, per_second: executions as f64 / elapsed })
}

fn machine() -> serde_json::Value {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|info| {
        info.lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
    });
    // Other work on the machine moves every figure: the 1-minute load average says how much.
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|load| load.parse::<f64>().ok()));
    json!({
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "cpuModel": cpu_model,
        "os": std::env::consts::OS,
        "loadAverage": load_average,
    })
}

fn print_table(figures: &[Figures]) {
    println!(
        "{:<8} {:>12} {:>12} {:>12} {:>12} {:>14}",
        "workload", "engine p50", "runtime p50", "runtime p99", "runtime mean", "throughput"
    );
    for f in figures {
        println!(
            "{:<8} {:>9.1} µs {:>9.1} µs {:>9.1} µs {:>9.1} µs {:>9.0} /s (c={})",
            f.name,
            f.engine.p50_us,
            f.runtime.p50_us,
            f.runtime.p99_us,
            f.runtime.mean_us,
            f.throughput.per_second,
            f.throughput.concurrency
        );
    }
    println!(
        "engine: the engine alone (no actors), one execution at a time; runtime: through the actor runtime, one \
         request at a time; throughput: through the actor runtime with that many requests in flight. Every \
         execution runs in a fresh instance; handlers are precompiled except `cold` (a new source each time)."
    );
}
