//! `nexus bench --typescript`: what a TypeScript handler costs against the same handler in
//! JavaScript, on the engine alone: its first execution (a source never seen: types stripped,
//! compiled, run), an execution from the compile cache, and one of precompiled bytecode (for
//! TypeScript, with its source map checked). Figures go to stdout, one line each;
//! BENCHMARKS.md keeps them with this command.

use std::time::{Duration, Instant};

use nexus::{Engine, EngineConfig, ExecutionRequest, Handler, Language, Status};
use serde_json::json;

use super::UsageError;

/// examples/counter.ts, and the same handler as a JavaScript author would write it.
const TYPESCRIPT: &str = include_str!("../../examples/counter.ts");
const JAVASCRIPT: &str = "// The counter of examples/counter.ts, in JavaScript.
const Change = { Up: 'up', Down: 'down' };

function advance(from, by) {
  return from + by;
}

const step = $args?.step ?? 1;
const next = advance($state.count ?? 0, step);
$state.count = next;
$emit('changed', { value: next, direction: step >= 0 ? Change.Up : Change.Down });
$view.update('counter-label', { text: `Count: ${next}` });
$log.info('count is now', next);
return next;
";

pub fn run(iterations: u64, duration: Duration) -> Result<(), UsageError> {
    let engine = Engine::with_slots(EngineConfig::default(), 4)
        .map_err(|e| UsageError(format!("starting the engine: {e:#}")))?;
    println!("TypeScript against JavaScript (examples/counter.ts and its JavaScript twin), the engine alone:");
    for (language, source) in [(Language::TypeScript, TYPESCRIPT), (Language::JavaScript, JAVASCRIPT)] {
        let name = format!("{language:?}").to_lowercase();
        // A comment makes every source new: its first execution strips (TypeScript) and compiles.
        let mut fresh = 0u64;
        let first = measure(iterations, duration, || {
            fresh += 1;
            let result = execute(&engine, Handler::source_in(language, format!("{source}\n// {fresh}")))?;
            assert_fresh(!result.metrics.cache_hit)
        })?;
        // The source as it is, once, so that every measured execution finds it in the cache.
        assert_fresh(!execute(&engine, Handler::source_in(language, source))?.metrics.cache_hit)?;
        let cached = measure(iterations, duration, || {
            let result = execute(&engine, Handler::source_in(language, source))?;
            assert_fresh(result.metrics.cache_hit)
        })?;
        let bytecode = engine.precompile_as(source, language).map_err(|e| UsageError(e.to_string()))?;
        let precompiled =
            measure(iterations, duration, || execute(&engine, Handler::Bytecode(bytecode.clone())).map(drop))?;
        println!("  {name:<10} first execution      {first}");
        println!("  {name:<10} from the cache       {cached}");
        println!("  {name:<10} precompiled          {precompiled} ({} bytes)", bytecode.len());
    }
    let strip = measure(iterations, duration, || {
        nexus::strip_typescript(TYPESCRIPT).map(drop).map_err(|e| UsageError(e.to_string()))
    })?;
    println!("  stripping the types alone       {strip}");
    Ok(())
}

fn execute(engine: &Engine, handler: Handler) -> Result<nexus::ExecutionResult, UsageError> {
    let mut request = ExecutionRequest { handler, ..Default::default() };
    request.state_snapshot = json!({ "count": 4 }).as_object().cloned().unwrap_or_default();
    request.args = json!({ "step": 2 });
    request.capabilities =
        ["state:read:count", "state:write:count", "events:emit:changed", "view:update:counter-label"]
            .iter()
            .map(|token| token.parse().expect("the bench's tokens are well-formed"))
            .collect();
    let result = engine.execute(request).result;
    if result.status != Status::Success || result.return_value != json!(6) {
        return Err(UsageError(format!("the counter returned {} ({:?})", result.return_value, result.error)));
    }
    Ok(result)
}

fn assert_fresh(expected: bool) -> Result<(), UsageError> {
    if expected { Ok(()) } else { Err(UsageError("the compile cache did not behave as measured".into())) }
}

/// p50 and mean of `once`, run sequentially up to `iterations` times within `duration`.
fn measure(
    iterations: u64,
    duration: Duration,
    mut once: impl FnMut() -> Result<(), UsageError>,
) -> Result<String, UsageError> {
    for _ in 0..(iterations / 10).max(1) {
        once()?;
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    while (samples.len() as u64) < iterations && (samples.is_empty() || started.elapsed() < duration) {
        let call = Instant::now();
        once()?;
        samples.push(call.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    let p50 = samples[samples.len() / 2];
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    Ok(format!("p50 {p50:>8.1} µs  mean {mean:>8.1} µs  ({} runs)", samples.len()))
}
