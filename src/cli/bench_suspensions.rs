//! `nexus bench --suspensions [PART]...`: what hibernating and restoring cost, what a hibernated
//! suspension occupies, and the throughput of handlers waiting on slow extension calls (parts
//! `latency`, `memory`, `io`; all by default; and, given a Redis `--store`, `shared`: see
//! [`super::bench_shared`]). Figures go to stdout, one line each; BENCHMARKS.md keeps them with
//! this command.

use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime};

use nexus::workloads::Workload;
use nexus::{
    Engine, EngineConfig, ExecutionRequest, ExtOutcome, Runtime, RuntimeConfig, Sealer, Status, StoreConfig,
    SuspensionKeys,
};
use serde_json::json;

use super::UsageError;

/// The parts `nexus bench --suspensions` runs.
pub const PARTS: [&str; 5] = ["latency", "memory", "io", "after", "shared"];

/// Runs the parts `only` names (all by default); `store` is measured too.
pub fn run(only: &[String], store: Option<&str>) -> Result<(), UsageError> {
    let runs = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    if super::bench_shared::is_node() {
        tokio.block_on(super::bench_shared::node(store.unwrap_or_default()));
        return Ok(());
    }
    if runs("latency") {
        engine_latency();
        tokio.block_on(runtime_latency(store));
    }
    if runs("memory") {
        tokio.block_on(resident_memory(&[10_000, 100_000]));
    }
    if runs("io") {
        tokio.block_on(io_bound_throughput());
    }
    if runs("after") {
        tokio.block_on(hibernate_after_sweep());
    }
    if runs("shared") {
        match store {
            Some(url) if url.starts_with("redis") => super::bench_shared::run(url)?,
            _ => return Err(UsageError("--suspensions shared needs --store redis://HOST:PORT/DB".into())),
        }
    }
    Ok(())
}

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)]
}

/// The `suspend` workload's handler plus a few dozen small objects alive across the await.
/// Made once and cloned: reading the workload files for every request was ~8% of the I/O
/// part's CPU, taken from the runtime by its own clients.
pub(super) fn request() -> ExecutionRequest {
    static REQUEST: LazyLock<ExecutionRequest> = LazyLock::new(|| {
        let suspend = Workload::named("suspend");
        let mut request = suspend.request(nexus::Handler::Source(format!(
            "const objects = []; for (let i = 0; i < 40; i++) objects.push({{ i, name: 'item ' + i }});\n{}",
            suspend.source
        )));
        request.timeout = Duration::from_secs(5);
        request
    });
    REQUEST.clone()
}

fn engine_latency() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let sealer = Sealer::for_image(SuspensionKeys::random(), engine.image_identity());
    let (mut hibernate, mut restore, mut live_resume, mut sizes) = (vec![], vec![], vec![], vec![]);
    for round in 0..3000 {
        let outcome = engine.execute(request());
        let id = outcome.result.suspension.unwrap().id;
        let call = 1;
        if round % 2 == 0 {
            let started = Instant::now();
            let parked = outcome.parked.unwrap();
            let resumed = engine.resume(parked, call, ExtOutcome::Ok(json!({"temp": 21}))).ok().unwrap();
            live_resume.push(started.elapsed());
            assert_eq!(resumed.result.status, Status::Success);
            continue;
        }
        let started = Instant::now();
        let (image, spent) = engine.hibernate(outcome.parked.unwrap()).unwrap();
        let sealed = sealer.seal(&image, &id, SystemTime::now() + Duration::from_secs(60));
        hibernate.push(started.elapsed());
        drop(spent); // resetting the slot, as the runtime does, after the image has gone
        sizes.push(sealed.len());
        let started = Instant::now();
        let (_, image) = sealer.open(&sealed, &id).unwrap();
        let parked = engine.restore(image, id).unwrap();
        let resumed = engine.resume(parked, call, ExtOutcome::Ok(json!({"temp": 21}))).ok().unwrap();
        restore.push(started.elapsed());
        assert_eq!(resumed.result.status, Status::Success);
    }
    sizes.sort();
    println!(
        "engine: hibernate (capture + seal) p50 {:?} p99 {:?}; restore + resume p50 {:?} p99 {:?}; live resume p50 {:?}; \
         sealed image p50 {} bytes",
        percentile(&mut hibernate, 0.5),
        percentile(&mut hibernate, 0.99),
        percentile(&mut restore, 0.5),
        percentile(&mut restore, 0.99),
        percentile(&mut live_resume, 0.5),
        sizes[sizes.len() / 2]
    );
}

/// The default runtime, hibernating suspensions `after` this long.
fn hibernating_after(after: Duration) -> RuntimeConfig {
    let mut config = RuntimeConfig::default();
    config.hibernate_after = after;
    config
}

/// execute + resume through the runtime, the suspension live or hibernated first.
async fn runtime_latency(store: Option<&str>) {
    let store_dir = std::env::temp_dir().join(format!("nexus-bench-suspensions-{}", std::process::id()));
    let kept_in = |store: StoreConfig| {
        let mut config = RuntimeConfig::default();
        config.suspension_store = store;
        config.suspension_keys = Some(SuspensionKeys::new(&[[3; 32]]).unwrap());
        config
    };
    let mut stores = vec![
        ("live", hibernating_after(Duration::from_secs(3600))),
        ("hibernated in memory", hibernating_after(Duration::ZERO)),
        ("hibernated on disk", kept_in(StoreConfig::Disk(store_dir.clone()))),
    ];
    if let Some(store) = store {
        stores.push(("hibernated in the given --store", kept_in(super::store::store_config(store))));
    }
    for (name, config) in stores {
        let runtime = Runtime::start(config).unwrap();
        let (mut first, mut second) = (vec![], vec![]);
        for round in 0..1500 {
            let started = Instant::now();
            let suspended = runtime.execute(request()).await.expect("runs");
            let suspend_took = started.elapsed();
            let id = suspended.suspension.unwrap().id;
            // Let a hibernation that follows the result happen before the resume.
            tokio::time::sleep(Duration::from_micros(300)).await;
            let started = Instant::now();
            let done = runtime.resume(&id, 1, ExtOutcome::Ok(json!({"temp": 21}))).await.expect("resumes");
            assert_eq!(done.status, Status::Success, "{done:?}");
            if round >= 100 {
                first.push(suspend_took);
                second.push(started.elapsed());
            }
        }
        let stats = runtime.stats().await;
        println!(
            "runtime, {name}: execute until suspended p50 {:?}; resume p50 {:?} p99 {:?} (hibernations {}, restores {})",
            percentile(&mut first, 0.5),
            percentile(&mut second, 0.5),
            percentile(&mut second, 0.99),
            stats.hibernations,
            stats.restores
        );
        runtime.shutdown(Duration::from_secs(1)).await;
    }
    let _ = std::fs::remove_dir_all(store_dir);
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// Resident memory per hibernated suspension (in-memory store), at several counts.
async fn resident_memory(counts: &[usize]) {
    for &count in counts {
        let runtime = Runtime::start(hibernating_after(Duration::ZERO)).unwrap();
        // Warm: the pool's actors started and their slots touched.
        let warm: Vec<_> = futures::future::join_all((0..256).map(|_| runtime.execute(request()))).await;
        drop(warm);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = resident_bytes();
        let mut ids = Vec::with_capacity(count);
        for chunk in 0..count.div_ceil(1000) {
            let batch = (count - chunk * 1000).min(1000);
            let results = futures::future::join_all((0..batch).map(|_| runtime.execute(request()))).await;
            ids.extend(results.into_iter().map(|r| r.expect("runs").suspension.unwrap().id));
        }
        while runtime.stats().await.pool.parked > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let after = resident_bytes();
        let stats = runtime.stats().await;
        println!(
            "memory: {count} hibernated suspensions: RSS {:.0} MiB in all, +{:.1} KiB each (store holds {:.1} KiB each)",
            after as f64 / (1 << 20) as f64,
            (after.saturating_sub(before)) as f64 / count as f64 / 1024.0,
            stats.pool.store_bytes as f64 / count as f64 / 1024.0
        );
        drop(ids);
        runtime.shutdown(Duration::from_secs(1)).await;
    }
}

/// What `hibernate_after` costs and saves: 200 closed-loop clients (fewer than the pool's
/// slots, so only `hibernate_after` makes a suspension hibernate), extension calls of 1, 5 and
/// 20 ms, and suspensions hibernated after 0, 1, 5 and 20 ms: throughput, the share of
/// executions hibernated, and the process's CPU time per execution.
async fn hibernate_after_sweep() {
    for delay in [1, 5, 20].map(Duration::from_millis) {
        for after in [0, 1, 5, 20].map(Duration::from_millis) {
            let runtime = Runtime::start(hibernating_after(after)).unwrap();
            let counted_from = Instant::now() + Duration::from_secs(1);
            let until = counted_from + Duration::from_secs(3);
            let mut cpu_from = None;
            let clients = (0..200).map(|_| closed_loop_client(runtime.clone(), delay, counted_from, until));
            let counting = async {
                tokio::time::sleep_until(counted_from.into()).await;
                cpu_from = Some((cpu_time(), runtime.stats().await.hibernations));
            };
            let (done, ()) = futures::join!(futures::future::join_all(clients), counting);
            let (cpu_before, hibernations_before) = cpu_from.expect("counted");
            let done: u64 = done.into_iter().sum();
            let hibernated = runtime.stats().await.hibernations - hibernations_before;
            println!(
                "after: calls of {delay:?}, hibernate_after {after:?}: {:.0} executions/s, {:.0}% hibernated, {:.0} µs of CPU each",
                done as f64 / 3.0,
                (hibernated as f64 / done as f64 * 100.0).min(100.0),
                (cpu_time() - cpu_before).as_secs_f64() * 1e6 / done as f64
            );
            runtime.shutdown(Duration::from_secs(1)).await;
        }
    }
}

/// One closed-loop client: runs the request, waits `delay` as its extension call, resumes it,
/// and again until `until`; returns how many executions it finished from `counted_from` on.
async fn closed_loop_client(runtime: Runtime, delay: Duration, counted_from: Instant, until: Instant) -> u64 {
    let mut done = 0;
    while Instant::now() < until {
        let suspended = runtime.execute(request()).await.expect("runs");
        let id = suspended.suspension.expect("suspends").id;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let result = runtime.resume(&id, 1, ExtOutcome::Ok(json!({"temp": 21}))).await.expect("resumes");
        assert_eq!(result.status, Status::Success, "{result:?}");
        done += u64::from(Instant::now() >= counted_from);
    }
    done
}

/// The CPU time (user and system) this process has used.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces), from the third: utime is the 14th.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // In clock ticks of USER_HZ, which Linux fixes at 100 for what it reports to user space.
    Duration::from_millis(ticks * 10)
}

/// 2,000 closed-loop clients, one extension call each execution: instant, then 100 ms.
async fn io_bound_throughput() {
    let mut rates = Vec::new();
    for delay in [Duration::ZERO, Duration::from_millis(100)] {
        let mut config = RuntimeConfig::default();
        config.queue_bound = 8192;
        let runtime = Runtime::start(config).unwrap();
        let until = Instant::now() + Duration::from_secs(6);
        let counted_from = Instant::now() + Duration::from_secs(1);
        let clients = (0..2000).map(|_| closed_loop_client(runtime.clone(), delay, counted_from, until));
        let total: u64 = futures::future::join_all(clients).await.into_iter().sum();
        let rate = total as f64 / 5.0;
        rates.push(rate);
        let stats = runtime.stats().await;
        println!(
            "io: 2,000 clients, extension call of {delay:?}: {rate:.0} executions/s (hibernations {}, restores {})",
            stats.hibernations, stats.restores
        );
        runtime.shutdown(Duration::from_secs(1)).await;
    }
    println!("io: with 100 ms calls, {:.0}% of the throughput with instant ones", rates[1] / rates[0] * 100.0);
}
