//! The engine alone (no actors) against the floor, in one run so the ratios hold:
//! * `instantiate_only`: a fresh guest instance created and dropped, nothing run;
//! * `engine/<workload>`: one execution of each workload of `benches/workloads` in a fresh
//!   instance (precompiled bytecode; `cold` compiles a new source every time;
//!   `trivial_source_cache_hit` is source text found in the compile cache);
//! * `native_fresh/<workload>` and `native_reused/<workload>`: the same QuickJS on the host,
//!   no wasm, with a new runtime and context per execution, and with one reused context.
//!
//! Run: `cargo bench --bench engine` (a subset: `cargo bench --bench engine -- compute`).

#[path = "support/native.rs"]
mod native;

use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime};
use nexus::workloads::Workload;
use nexus::{Engine, EngineConfig, Handler};

use native::Native;

/// Compute takes tens of milliseconds an execution: fewer samples.
fn sized(group: &mut BenchmarkGroup<'_, WallTime>, workload: &Workload) {
    if workload.name == "compute" {
        group.sample_size(10).measurement_time(Duration::from_secs(8));
    } else {
        group.sample_size(100).measurement_time(Duration::from_secs(5));
    }
}

fn engine_alone(c: &mut Criterion) {
    let engine = Engine::new(EngineConfig::default()).expect("engine starts");
    c.bench_function("instantiate_only", |b| b.iter(|| engine.instantiate_only().expect("instantiates")));

    let mut group = c.benchmark_group("engine");
    for workload in Workload::all() {
        sized(&mut group, &workload);
        let mut fresh = 0u64;
        let handler = match workload.unique_per_execution {
            true => None,
            false => Some(Handler::Bytecode(engine.precompile(workload.source).expect("compiles"))),
        };
        group.bench_function(workload.name, |b| {
            b.iter(|| {
                fresh += 1;
                let request = match &handler {
                    Some(handler) => workload.request(handler.clone()),
                    None => workload.request(workload.handler_source(fresh)),
                };
                assert!(workload.succeeded(&workload.run_on_engine(&engine, request)));
            })
        });
    }
    let trivial = Workload::named("trivial");
    group.bench_function("trivial_source_cache_hit", |b| {
        b.iter(|| {
            assert!(trivial.succeeded(&trivial.run_on_engine(&engine, trivial.request(trivial.handler_source(0)))))
        })
    });
    group.finish();
}

fn native_baseline(c: &mut Criterion) {
    for (mode, fresh) in [("native_fresh", true), ("native_reused", false)] {
        let mut group = c.benchmark_group(mode);
        for workload in Workload::all().into_iter().filter(|w| !w.unique_per_execution) {
            sized(&mut group, &workload);
            let native = Native::new(&workload);
            group.bench_function(workload.name, |b| {
                b.iter(|| {
                    let value = if fresh { native.fresh() } else { native.reused() };
                    assert_eq!(value, workload.expect);
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, engine_alone, native_baseline);
criterion_main!(benches);
