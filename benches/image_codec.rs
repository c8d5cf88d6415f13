//! The codec of a suspension image's memory delta, LZ4 (`lz4_flex`, what images use) against
//! zstd at three levels, on the deltas of real hibernations: the `suspend` workload with 40
//! small objects alive across its `await` (what `nexus bench --suspensions` hibernates), and
//! with 2,000. Before the timings it prints each codec's compressed size.
//!
//! Run: `cargo bench --bench image_codec`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use nexus::workloads::Workload;
use nexus::{Engine, EngineConfig, Handler};

/// The chunks a hibernation of the `suspend` workload keeps with `objects` objects alive,
/// XORed with the snapshot and not yet compressed.
fn delta(engine: &Engine, objects: usize) -> Vec<u8> {
    let suspend = Workload::named("suspend");
    let mut request = suspend.request(Handler::Source(format!(
        "const objects = []; for (let i = 0; i < {objects}; i++) objects.push({{ i, name: 'item ' + i }});\n{}",
        suspend.source
    )));
    request.timeout = Duration::from_secs(5);
    let parked = engine.execute(request).parked.expect("the workload suspends");
    let (image, _spent) = engine.hibernate(parked).expect("hibernates");
    lz4_flex::decompress_size_prepended(&image.memory.bytes).expect("an image's delta decompresses")
}

fn codecs(c: &mut Criterion) {
    let engine = Engine::new(EngineConfig::default()).expect("engine starts");
    for objects in [40, 2000] {
        let raw = delta(&engine, objects);
        let lz4 = lz4_flex::compress_prepend_size(&raw);
        let sizes: Vec<String> = [1, 3, -3]
            .iter()
            .map(|&level| format!("zstd {level}: {}", zstd::bulk::compress(&raw, level).expect("compresses").len()))
            .collect();
        eprintln!("{objects} objects: delta {} bytes; lz4: {}; {}", raw.len(), lz4.len(), sizes.join("; "));

        let mut group = c.benchmark_group(format!("image_codec/{objects}_objects"));
        group.bench_function("lz4/compress", |b| b.iter(|| lz4_flex::compress_prepend_size(&raw)));
        group.bench_function("lz4/decompress", |b| b.iter(|| lz4_flex::decompress_size_prepended(&lz4).unwrap()));
        for level in [1, 3, -3] {
            // A reused context, as a store would keep one per thread.
            let mut compressor = zstd::bulk::Compressor::new(level).expect("a zstd context");
            let compressed = zstd::bulk::compress(&raw, level).expect("compresses");
            let mut decompressor = zstd::bulk::Decompressor::new().expect("a zstd context");
            group.bench_function(format!("zstd_{level}/compress"), |b| b.iter(|| compressor.compress(&raw).unwrap()));
            group.bench_function(format!("zstd_{level}/decompress"), |b| {
                b.iter(|| decompressor.decompress(&compressed, raw.len()).unwrap())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, codecs);
criterion_main!(benches);
