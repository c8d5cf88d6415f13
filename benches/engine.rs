//! The engine alone (no actors): one execution of a one-line handler in a fresh instance,
//! from source (a compile-cache hit), from a source never seen (compiled), from precompiled
//! bytecode, and one suspend + resume round trip.
//!
//! Run: `cargo bench --bench engine`

use criterion::{Criterion, criterion_group, criterion_main};
use nexus::{Engine, EngineConfig, ExecutionRequest, ExtOutcome, Handler, Status};
use serde_json::json;

const TRIVIAL: &str = "return $args.a + $args.b;";

fn trivial(handler: Handler) -> ExecutionRequest {
    let mut request = ExecutionRequest::source("");
    request.handler = handler;
    request.args = json!({"a": 1, "b": 2});
    request
}

fn fresh_instance(c: &mut Criterion) {
    let engine = Engine::new(EngineConfig::default()).expect("engine starts");
    let bytecode = engine.precompile(TRIVIAL).expect("compiles");
    let mut group = c.benchmark_group("fresh_instance");
    group.bench_function("trivial_source", |b| {
        b.iter(|| {
            let outcome = engine.execute(trivial(Handler::Source(TRIVIAL.into())));
            assert_eq!(outcome.result.status, Status::Success);
        })
    });
    let mut fresh_sources = 0u64;
    group.bench_function("cold_source", |b| {
        b.iter(|| {
            // A source never seen before: the compile cache misses and the handler compiles.
            fresh_sources += 1;
            let outcome = engine.execute(trivial(Handler::Source(format!("{TRIVIAL} // {fresh_sources}"))));
            assert_eq!(outcome.result.status, Status::Success);
        })
    });
    group.bench_function("trivial_bytecode", |b| {
        b.iter(|| {
            let outcome = engine.execute(trivial(Handler::Bytecode(bytecode.clone())));
            assert_eq!(outcome.result.status, Status::Success);
        })
    });
    let suspending = engine.precompile("return await $ext.kv.get($args.a);").expect("compiles");
    group.bench_function("suspend_resume_bytecode", |b| {
        b.iter(|| {
            let mut request = trivial(Handler::Bytecode(suspending.clone()));
            request.capabilities = vec!["ext:kv".parse().unwrap()];
            request.extension_registry.insert("kv".into(), ["get".to_owned()].into());
            let outcome = engine.execute(request);
            let parked = outcome.parked.expect("suspended");
            let done = engine.resume(parked, 1, ExtOutcome::Ok(json!(3))).ok().expect("resumes");
            assert_eq!(done.result.status, Status::Success);
        })
    });
    group.finish();
}

criterion_group!(benches, fresh_instance);
criterion_main!(benches);
