//! Through the actor runtime: every workload of `benches/workloads` (precompiled; `cold`
//! compiles a new source each time), one request at a time (`<workload>/sequential`:
//! criterion's median is close to the p50; `nexus bench` gives true per-request percentiles)
//! and with N requests in flight on both cores (`<workload>/concurrent_<N>`, reported as
//! executions per second).
//!
//! Run: `cargo bench --bench runtime` (a subset: `cargo bench --bench runtime -- trivial`).

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nexus::workloads::Workload;
use nexus::{ExecutionRequest, Handler, Runtime, RuntimeConfig};

fn through_the_actors(c: &mut Criterion) {
    let config = RuntimeConfig::default();
    let spin = config.spin_before_park;
    // The client: a current-thread runtime, so that the thread criterion's `block_on` runs on
    // is the one that polls every request and spins before parking as the runtime's threads do
    // (see `nexus::spin`). (A multi-thread runtime's `block_on` thread has no park hooks.)
    let tokio = nexus::spin::tokio_runtime(spin).unwrap();
    let runtime = Runtime::start(config).expect("runtime starts");
    let mut fresh = 0u64;

    let mut group = c.benchmark_group("runtime");
    for workload in Workload::all() {
        let handler = match workload.unique_per_execution {
            true => None,
            false => Some(Handler::Bytecode(tokio.block_on(runtime.precompile(workload.source)).expect("compiles"))),
        };
        let mut request = || -> ExecutionRequest {
            fresh += 1;
            match &handler {
                Some(handler) => workload.request(handler.clone()),
                None => workload.request(workload.handler_source(fresh)),
            }
        };
        let heavy = workload.name == "compute";
        group.throughput(Throughput::Elements(1));
        group.sample_size(if heavy { 10 } else { 100 }).measurement_time(Duration::from_secs(5));
        group.bench_function(format!("{}/sequential", workload.name), |b| {
            b.to_async(&tokio).iter_batched(
                &mut request,
                |request| async {
                    assert!(workload.succeeded(&runtime.run_to_completion(request, &workload).await.expect("runs")))
                },
                criterion::BatchSize::SmallInput,
            )
        });
        let concurrency: &[u64] = match workload.name {
            "trivial" => &[2, 64, 1000],
            "compute" => &[2],
            _ => &[64],
        };
        for &n in concurrency {
            group.throughput(Throughput::Elements(n));
            group.sample_size(10).measurement_time(Duration::from_secs(if heavy { 10 } else { 5 }));
            group.bench_function(format!("{}/concurrent_{n}", workload.name), |b| {
                b.iter_custom(|iterations| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iterations {
                        let requests: Vec<_> = (0..n).map(|_| request()).collect();
                        let started = Instant::now();
                        let results = tokio.block_on(futures::future::join_all(
                            requests.into_iter().map(|request| runtime.run_to_completion(request, &workload)),
                        ));
                        elapsed += started.elapsed();
                        assert!(results.iter().all(|result| result.as_ref().is_ok_and(|r| workload.succeeded(r))));
                    }
                    elapsed
                })
            });
        }
    }
    group.finish();
    tokio.block_on(runtime.shutdown(Duration::from_secs(1)));
}

criterion_group!(benches, through_the_actors);
criterion_main!(benches);
