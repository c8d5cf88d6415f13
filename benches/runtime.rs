//! Through the actor runtime: a one-line precompiled handler, sequential latency (criterion's
//! median is the p50) and throughput with many concurrent requests on both cores.
//!
//! Run: `cargo bench --bench runtime`

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nexus::{ExecutionRequest, Handler, Runtime, RuntimeConfig, Status};
use serde_json::json;

fn request(bytecode: &[u8]) -> ExecutionRequest {
    let mut request = ExecutionRequest::source("");
    request.handler = Handler::Bytecode(bytecode.to_vec());
    request.args = json!({"a": 1, "b": 2});
    request
}

fn through_the_actors(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let runtime = Runtime::start(RuntimeConfig { pool_size: 64, ..RuntimeConfig::default() }).expect("runtime starts");
    let bytecode = tokio.block_on(runtime.precompile("return $args.a + $args.b;")).expect("compiles");

    let mut group = c.benchmark_group("runtime");
    group.bench_function("trivial_bytecode_sequential", |b| {
        b.to_async(&tokio).iter(|| async {
            let result = runtime.execute(request(&bytecode)).await;
            assert_eq!(result.status, Status::Success);
        })
    });
    const BATCH: u64 = 1000;
    group.throughput(Throughput::Elements(BATCH));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("trivial_bytecode_1000_concurrent", |b| {
        b.iter_custom(|iterations| {
            let started = Instant::now();
            for _ in 0..iterations {
                tokio.block_on(async {
                    let results =
                        futures::future::join_all((0..BATCH).map(|_| runtime.execute(request(&bytecode)))).await;
                    assert!(results.iter().all(|r| r.status == Status::Success));
                });
            }
            started.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, through_the_actors);
criterion_main!(benches);
