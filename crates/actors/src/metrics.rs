//! The metrics actor: aggregates what every execution reports, and the pool's gauges;
//! answers [`GetStats`] with a typed [`Stats`] and [`RenderPrometheus`] with the Prometheus
//! text format (rendered by `prometheus-client`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler, Message, MessageResult};
use nexus_abi::ErrorCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::engine::{ExecutionResult, Status};

pub(crate) mod batch;

/// One finished step of execution (a run or a resume), as the metrics actor counts it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Executed {
    pub status: Status,
    /// The error code, for errors.
    pub code: Option<ErrorCode>,
    pub duration_us: u64,
    pub host_calls: u64,
    pub denials: u64,
    /// `Some(hit)` when the compile cache was consulted.
    pub cache_hit: Option<bool>,
}

impl Executed {
    pub fn from_result(result: &ExecutionResult) -> Self {
        let metrics = &result.metrics;
        Executed {
            status: result.status,
            code: result.error.as_ref().map(|e| e.code),
            duration_us: result.metrics.execution_time_us,
            host_calls: result.metrics.host_calls,
            denials: result.records.denials.len() as u64,
            // A step that compiled missed the cache; one that hit it says so.
            cache_hit: if metrics.cache_hit { Some(true) } else { (metrics.compile_time_us > 0).then_some(false) },
        }
    }

    /// A request refused before it ran.
    pub fn refused(code: ErrorCode) -> Self {
        Executed { status: Status::Error, code: Some(code), duration_us: 0, host_calls: 0, denials: 0, cache_hit: None }
    }
}

/// Finished steps, sent in batches by the pool.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Executions(pub Vec<Executed>);

/// The pool's gauges.
#[derive(Message, Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[rtype(result = "()")]
#[serde(rename_all = "camelCase")]
pub struct PoolGauges {
    pub pool_size: u64,
    pub idle: u64,
    pub queued: u64,
    pub parked: u64,
    /// Finished instances whose memory slots are still to be reset (the pool resets them off the answers' path).
    pub awaiting_reset: u64,
    /// Suspensions kept as sealed images in the suspension store (`parked` counts the live ones).
    pub hibernated: u64,
    /// Bytes the suspension store holds.
    pub store_bytes: u64,
}

/// What the suspension lifecycle counts, shared by the pool (which observes it as it happens)
/// and the metrics actor (which renders it).
#[derive(Clone, Debug)]
pub struct SuspensionMetrics {
    hibernations: Counter,
    restores: Counter,
    cancellations: Counter,
    hibernate_seconds: Histogram,
    restore_seconds: Histogram,
    /// When the store last purged expired images (milliseconds since `epoch`).
    last_purge: Arc<AtomicU64>,
    epoch: Instant,
}

impl Default for SuspensionMetrics {
    fn default() -> Self {
        SuspensionMetrics {
            hibernations: Counter::default(),
            restores: Counter::default(),
            cancellations: Counter::default(),
            hibernate_seconds: Histogram::new(latency_buckets()),
            restore_seconds: Histogram::new(latency_buckets()),
            last_purge: Arc::default(),
            epoch: Instant::now(),
        }
    }
}

/// How often a store is asked to delete what expired: a disk store lists its directory.
const PURGE_PERIOD: Duration = Duration::from_secs(5);

impl SuspensionMetrics {
    /// A suspension was hibernated, taking `took` (sealing and storing included).
    pub fn hibernated(&self, took: Duration) {
        self.hibernations.inc();
        self.hibernate_seconds.observe(took.as_secs_f64());
    }

    /// A hibernated suspension was restored and resumed, taking `took` (the resumed step included).
    pub fn restored(&self, took: Duration) {
        self.restores.inc();
        self.restore_seconds.observe(took.as_secs_f64());
    }

    pub fn cancelled(&self) {
        self.cancellations.inc();
    }

    /// Whether the store's expired images are due to be purged (and counts it as done).
    pub fn purge_due(&self) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_purge.load(Ordering::Relaxed);
        (now >= last + PURGE_PERIOD.as_millis() as u64 || last == 0)
            && self.last_purge.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    fn register(&self, registry: &mut Registry) {
        registry.register("hibernations", "Suspended executions hibernated into the store", self.hibernations.clone());
        registry.register("restores", "Hibernated executions restored and resumed", self.restores.clone());
        registry.register("suspension_cancellations", "Suspensions cancelled", self.cancellations.clone());
        registry.register(
            "hibernate_duration_seconds",
            "Time to hibernate a suspended execution (seal and store)",
            self.hibernate_seconds.clone(),
        );
        registry.register(
            "restore_duration_seconds",
            "Time to restore a hibernated execution and run its resumed step",
            self.restore_seconds.clone(),
        );
    }
}

/// Aggregated statistics since the runtime started.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Finished steps by status.
    pub executions: BTreeMap<Status, u64>,
    /// Errors by code (refusals included).
    pub errors: BTreeMap<ErrorCode, u64>,
    pub host_calls: u64,
    pub denials: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Median and 99th percentile step latency, from the histogram's buckets (upper bounds).
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    pub hibernations: u64,
    pub restores: u64,
    pub cancellations: u64,
    #[serde(flatten)]
    pub pool: PoolGauges,
}

#[derive(Message)]
#[rtype(result = "Stats")]
pub struct GetStats;

#[derive(Message)]
#[rtype(result = "String")]
pub struct RenderPrometheus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
    code: String,
}

/// Latency buckets in seconds: 10 µs to about 10 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(10e-6, 2.0, 21)
}

pub struct MetricsActor {
    registry: Registry,
    executions: Family<StatusLabels, Counter>,
    latency: Histogram,
    host_calls: Counter,
    denials: Counter,
    cache_hits: Counter,
    cache_misses: Counter,
    pool_size: Gauge,
    idle: Gauge,
    queued: Gauge,
    parked: Gauge,
    awaiting_reset: Gauge,
    hibernated: Gauge,
    store_bytes: Gauge,
    suspensions: SuspensionMetrics,
    stats: Stats,
    /// Observations per latency bucket, for the percentiles of [`Stats`].
    buckets: Vec<(f64, u64)>,
}

impl Default for MetricsActor {
    fn default() -> Self {
        MetricsActor::new(SuspensionMetrics::default())
    }
}

impl MetricsActor {
    /// The metrics actor of a runtime whose suspension lifecycle counts into `suspensions`.
    pub fn new(suspensions: SuspensionMetrics) -> Self {
        let mut registry = Registry::with_prefix("nexus");
        suspensions.register(&mut registry);
        let executions = Family::<StatusLabels, Counter>::default();
        registry.register("executions", "Finished execution steps by status and error code", executions.clone());
        let latency = Histogram::new(latency_buckets());
        registry.register("execution_duration_seconds", "Duration of one execution step", latency.clone());
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let host_calls = counter(&mut registry, "host_calls", "Host function calls made by handlers");
        let denials = counter(&mut registry, "denials", "Accesses denied for lack of a capability");
        let cache_hits =
            counter(&mut registry, "compile_cache_hits", "Source executions served from the compile cache");
        let cache_misses = counter(&mut registry, "compile_cache_misses", "Source executions that compiled");
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let pool_size = gauge(&mut registry, "pool_size", "Instance actors in the pool");
        let idle = gauge(&mut registry, "pool_idle", "Instance actors waiting for work");
        let queued = gauge(&mut registry, "queued", "Requests waiting for an instance");
        let parked = gauge(&mut registry, "parked", "Suspended executions awaiting extension results");
        let awaiting_reset =
            gauge(&mut registry, "awaiting_reset", "Finished instances whose memory slot is still to be reset");
        let hibernated = gauge(&mut registry, "hibernated", "Suspended executions kept as images in the store");
        let store_bytes = gauge(&mut registry, "suspension_store_bytes", "Bytes the suspension store holds");
        MetricsActor {
            registry,
            executions,
            latency,
            host_calls,
            denials,
            cache_hits,
            cache_misses,
            pool_size,
            idle,
            queued,
            parked,
            awaiting_reset,
            hibernated,
            store_bytes,
            suspensions,
            stats: Stats::default(),
            buckets: latency_buckets().map(|bound| (bound, 0)).collect(),
        }
    }
}

impl Actor for MetricsActor {
    type Context = Context<Self>;
}

impl Handler<Executed> for MetricsActor {
    type Result = ();

    fn handle(&mut self, executed: Executed, _: &mut Context<Self>) {
        self.count(executed);
    }
}

impl Handler<Executions> for MetricsActor {
    type Result = ();

    fn handle(&mut self, Executions(executed): Executions, _: &mut Context<Self>) {
        for executed in executed {
            self.count(executed);
        }
    }
}

impl MetricsActor {
    fn percentile_us(&self, quantile: f64) -> u64 {
        let total: u64 = self.buckets.iter().map(|(_, n)| n).sum();
        let target = (total as f64 * quantile).ceil() as u64;
        let mut seen = 0;
        for (bound, count) in &self.buckets {
            seen += count;
            if seen >= target && total > 0 {
                return (bound * 1e6) as u64;
            }
        }
        0
    }

    fn count(&mut self, executed: Executed) {
        let status = executed.status.as_str();
        let code = executed.code.map_or("", ErrorCode::as_str);
        self.executions.get_or_create(&StatusLabels { status: status.into(), code: code.into() }).inc();
        *self.stats.executions.entry(executed.status).or_default() += 1;
        if let Some(code) = executed.code {
            *self.stats.errors.entry(code).or_default() += 1;
        }
        let seconds = executed.duration_us as f64 / 1e6;
        self.latency.observe(seconds);
        if let Some(bucket) = self.buckets.iter_mut().find(|(bound, _)| seconds <= *bound) {
            bucket.1 += 1;
        }
        self.host_calls.inc_by(executed.host_calls);
        self.stats.host_calls += executed.host_calls;
        self.denials.inc_by(executed.denials);
        self.stats.denials += executed.denials;
        match executed.cache_hit {
            Some(true) => {
                self.cache_hits.inc();
                self.stats.cache_hits += 1;
            }
            Some(false) => {
                self.cache_misses.inc();
                self.stats.cache_misses += 1;
            }
            None => {}
        }
    }
}

impl Handler<PoolGauges> for MetricsActor {
    type Result = ();

    fn handle(&mut self, gauges: PoolGauges, _: &mut Context<Self>) {
        self.pool_size.set(gauges.pool_size as i64);
        self.idle.set(gauges.idle as i64);
        self.queued.set(gauges.queued as i64);
        self.parked.set(gauges.parked as i64);
        self.awaiting_reset.set(gauges.awaiting_reset as i64);
        self.hibernated.set(gauges.hibernated as i64);
        self.store_bytes.set(gauges.store_bytes as i64);
        self.stats.pool = gauges;
    }
}

impl Handler<GetStats> for MetricsActor {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        let mut stats = self.stats.clone();
        stats.latency_p50_us = self.percentile_us(0.50);
        stats.latency_p99_us = self.percentile_us(0.99);
        stats.hibernations = self.suspensions.hibernations.get();
        stats.restores = self.suspensions.restores.get();
        stats.cancellations = self.suspensions.cancellations.get();
        MessageResult(stats)
    }
}

impl Handler<RenderPrometheus> for MetricsActor {
    type Result = String;

    fn handle(&mut self, _: RenderPrometheus, _: &mut Context<Self>) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
