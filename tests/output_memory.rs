//! The output limit protects the host: however a handler makes records (empty log lines,
//! empty events, denied accesses, text that escapes into more JSON than it has bytes), the
//! memory the host allocates for one execution stays within a small multiple of the
//! engine's `output_limit`, and so does the JSON of its result. What a handler returns or
//! throws is charged too.
//!
//! A test binary of its own: it counts every heap allocation of the process, so the
//! measurements run one at a time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use nexus::{Engine, EngineConfig, ErrorCode, ExecutionRequest};

/// Bytes currently allocated on the heap, and the most since [`measure`] reset it.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so it
// upholds `GlobalAlloc`'s contract exactly as `System` does; the counting beside it only
// touches atomics and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's `layout` obligations are passed on unchanged.
        let block = unsafe { System.alloc(layout) };
        if !block.is_null() {
            grew(layout.size());
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: `block` was allocated by `alloc`/`realloc` above, that is by `System`, with
        // `layout`, as the caller guarantees.
        unsafe { System.dealloc(block, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and the caller guarantees `new_size` is valid for `layout`'s
        // alignment.
        let moved = unsafe { System.realloc(block, layout, new_size) };
        if !moved.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The output limit of these executions: small, so the host's overheads show.
const OUTPUT_LIMIT: usize = 1 << 20;
/// What "within a small multiple" means here.
const MULTIPLE: usize = 4;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = EngineConfig::default();
        config.output_limit = OUTPUT_LIMIT;
        let engine = Engine::with_slots(config, 4).expect("engine starts");
        // Warm up: the first execution sets up what every later one shares.
        assert!(engine.execute(ExecutionRequest::source("return 1")).result.error.is_none());
        engine
    })
}

/// What one execution cost the host.
struct Measured {
    code: Option<ErrorCode>,
    logs: usize,
    denials: usize,
    /// The most heap the execution had allocated at once.
    peak: usize,
    /// The heap its result holds (its records).
    kept: usize,
    /// The length of its result as JSON.
    json: usize,
    /// The host calls it made.
    host_calls: u64,
}

/// Runs `source` for at most a second and measures it.
fn measure(source: &str, caps: &[&str]) -> Measured {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let engine = engine();
    let mut request = ExecutionRequest::source(source);
    request.capabilities = caps.iter().map(|t| t.parse().expect("test tokens are well-formed")).collect();
    request.timeout = Duration::from_secs(1);
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let outcome = engine.execute(request);
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    drop(outcome.spent);
    drop(outcome.parked);
    let result = outcome.result;
    let json = serde_json::to_vec(&result).expect("results serialize").len();
    let measured = Measured {
        code: result.error.as_ref().map(|error| error.code),
        logs: result.records.logs.len(),
        denials: result.records.denials.len(),
        peak,
        kept: 0,
        json,
        host_calls: result.metrics.host_calls,
    };
    let holding = LIVE.load(Ordering::Relaxed);
    drop(result);
    Measured { kept: holding.saturating_sub(LIVE.load(Ordering::Relaxed)), ..measured }
}

fn assert_bounded(source: &str, caps: &[&str]) -> Measured {
    let measured = measure(source, caps);
    let Measured { peak, kept, json, .. } = measured;
    eprintln!("{source}: peak {peak} B, kept {kept} B, JSON {json} B");
    let bound = MULTIPLE * OUTPUT_LIMIT;
    assert!(peak <= bound, "{source}: the host allocated {peak} bytes at once for an output limit of {OUTPUT_LIMIT}");
    assert!(kept <= bound, "{source}: the host kept {kept} bytes for an output limit of {OUTPUT_LIMIT}");
    assert!(json <= OUTPUT_LIMIT + 4096, "{source}: {json} bytes of result JSON for an output limit of {OUTPUT_LIMIT}");
    measured
}

#[test]
fn empty_log_lines_in_a_loop_keep_the_host_within_the_output_limit() {
    let measured = assert_bounded("for (;;) $log('')", &[]);
    assert_eq!(measured.code, Some(ErrorCode::MemoryLimit));
    assert!(measured.logs > 0);
}

#[test]
fn empty_events_in_a_loop_keep_the_host_within_the_output_limit() {
    let measured = assert_bounded("for (;;) $emit('e')", &["events:emit:e"]);
    assert_eq!(measured.code, Some(ErrorCode::MemoryLimit));
}

#[test]
fn a_handler_catching_the_output_limit_still_cannot_grow_the_host() {
    let measured =
        assert_bounded("for (;;) { try { $log(''); $emit('e', [[], {}, 0]) } catch {} }", &["events:emit:e"]);
    // The refusal ends the execution: caught, it does not go on refusing until the timeout.
    assert_eq!(measured.code, Some(ErrorCode::MemoryLimit));
    assert!(
        measured.host_calls <= 2 * measured.logs as u64 + 2,
        "{} host calls after {} logs",
        measured.host_calls,
        measured.logs
    );
}

#[test]
fn denied_accesses_in_a_loop_keep_the_host_within_the_output_limit() {
    let measured = assert_bounded("for (;;) { try { $state[''] } catch {} }", &[]);
    assert_eq!(measured.code, Some(ErrorCode::MemoryLimit));
    assert!(measured.denials > 0);
    assert_eq!(measured.host_calls, measured.denials as u64, "the denial past the budget ends the execution, recorded");
}

#[test]
fn text_that_escapes_is_charged_its_json() {
    // Each control character is one byte in the log line and six in the result's JSON.
    let measured = assert_bounded("const line = '\\x01'.repeat(4096); for (;;) $log(line)", &[]);
    assert_eq!(measured.code, Some(ErrorCode::MemoryLimit));
}

#[test]
fn a_large_return_value_or_error_ends_the_execution_within_the_output_limit() {
    let large = [
        "return 'x'.repeat(4 << 20)",
        // 200,000 values of one byte each in the reply: refused before the host decodes them.
        "return new Array(200000).fill(0)",
        "throw new Error('x'.repeat(4 << 20))",
        "throw { code: 'BIG', message: 'x'.repeat(4 << 20) }",
        "const error = new Error('small'); error.stack = 'x'.repeat(4 << 20); throw error",
        // Within the limit alone, not after the records already kept.
        "$log('x'.repeat(600000)); return 'y'.repeat(600000)",
    ];
    for source in large {
        let measured = assert_bounded(source, &[]);
        assert_eq!(measured.code, Some(ErrorCode::MemoryLimit), "{source}");
    }
}

#[test]
fn a_large_payload_of_tiny_values_is_refused_before_it_is_decoded() {
    let measured = assert_bounded("$emit('e', new Array(200000).fill(0))", &["events:emit:e"]);
    assert_eq!(measured.code, Some(ErrorCode::MemoryLimit));
}

#[test]
fn a_return_value_within_the_output_limit_is_returned() {
    let measured = assert_bounded("return 'x'.repeat(512 << 10)", &[]);
    assert_eq!(measured.code, None);
}

#[test]
fn a_denied_access_with_a_large_value_is_a_denial_not_the_output_limit() {
    // The capability is checked before the value is read: its size does not matter.
    let denied = [
        ("$state.other = 'x'.repeat(4 << 20)", &["state:write:mine"][..]),
        ("$emit('other', new Array(200000).fill(0))", &["events:emit:mine"]),
        ("await $ext.other.get('x'.repeat(4 << 20))", &["ext:mine"]),
        ("$view.update('other', { text: 'x'.repeat(4 << 20) })", &["view:update:mine"]),
    ];
    for (source, caps) in denied {
        let measured = assert_bounded(source, caps);
        assert_eq!(measured.code, Some(ErrorCode::PermissionDenied), "{source}");
        assert_eq!(measured.denials, 1, "{source}");
    }
    // Granted, the same write is over the limit.
    let measured = assert_bounded("$state.mine = 'x'.repeat(4 << 20)", &["state:write:mine"]);
    assert_eq!(measured.code, Some(ErrorCode::MemoryLimit));
}

/// Resumes every call of a `Promise.all` over `calls` calls each given an argument of `size`
/// bytes, one call per step, as an application settling them one at a time does: the steps
/// taken, and how the last one ended.
fn settle_one_at_a_time(calls: usize, size: usize) -> (usize, nexus::ExecutionResult) {
    let source = format!(
        "const arg = 'x'.repeat({size});\n\
         const all = await Promise.all(Array.from({{ length: {calls} }}, () => $ext.big.get(arg)));\n\
         return all.length;"
    );
    let mut request = ExecutionRequest::source(&source);
    request.capabilities = vec!["ext:big".parse().unwrap()];
    request.extension_registry.insert("big".into(), ["get".to_owned()].into());
    let mut outcome = engine().execute(request);
    let mut steps = 1;
    while let Some(parked) = outcome.parked.take() {
        let call = outcome.result.suspension.as_ref().unwrap().calls[0].call_id;
        outcome = engine().resume(parked, call, nexus::ExtOutcome::Ok(serde_json::json!(0))).ok().unwrap();
        steps += 1;
    }
    (steps, outcome.result)
}

#[test]
fn suspended_results_listing_large_pending_calls_again_and_again_end_the_execution() {
    // 60 calls of 16 KB fit the output limit (1 MiB) at once; each result lists those still
    // pending, 60 + 59 + ... of them: ~29 MB in all, past 16 times the output limit.
    let (steps, result) = settle_one_at_a_time(60, 16 << 10);
    let error = result.error.expect("ended");
    assert_eq!(error.code, ErrorCode::MemoryLimit, "{error:?}");
    assert!(error.message.contains("suspended results listed more than 16777216 bytes"), "{}", error.message);
    assert!((20..40).contains(&steps), "ended after {steps} steps");
    // The same calls with small arguments list little: the execution ends as it should.
    let (steps, result) = settle_one_at_a_time(60, 16);
    assert_eq!((steps, result.return_value), (61, serde_json::json!(60)));
}
