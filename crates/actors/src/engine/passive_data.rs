//! Drops the passive data segments no code can use from a snapshot.
//!
//! Wizer writes a snapshot's memory as active segments and turns each of the guest's original
//! data segments into an empty passive one, so the preloaded image carries 10,002 of them.
//! wasmtime prepares one runtime slot per passive segment at every instantiation, which made
//! an execution in a preloaded image cost ~25 µs more than one in the committed guest.
//! Passive segments are only reachable by `memory.init` and `data.drop`, which a module may
//! only contain when it has a data count section: without one, nothing refers to them and they
//! can go. A module with a data count section is returned unchanged.

use wasm_encoder::{DataSection, Module, RawSection};
use wasmparser::{DataKind, Parser, Payload};
use wasmtime::{Result, format_err};

/// `wasm` without its passive data segments, when no code can reference them.
pub fn without_unreachable_passive_data(wasm: &[u8]) -> Result<Vec<u8>> {
    let payloads: Vec<Payload<'_>> = Parser::new(0)
        .parse_all(wasm)
        .collect::<Result<_, _>>()
        .map_err(|e| format_err!("reading the snapshot module: {e}"))?;
    if payloads.iter().any(|payload| matches!(payload, Payload::DataCountSection { .. })) {
        return Ok(wasm.to_vec());
    }
    let mut module = Module::new();
    for payload in payloads {
        match payload {
            Payload::DataSection(segments) => {
                let mut kept = DataSection::new();
                for segment in segments {
                    let segment = segment.map_err(|e| format_err!("reading the snapshot's data: {e}"))?;
                    if let DataKind::Active { .. } = segment.kind {
                        kept.raw(&wasm[segment.range]);
                    }
                }
                module.section(&kept);
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    module.section(&RawSection { id, data: &wasm[range] });
                }
            }
        }
    }
    Ok(module.finish())
}

/// How many active and passive data segments `wasm` has (for tests).
#[cfg(test)]
pub fn data_segments(wasm: &[u8]) -> (usize, usize) {
    let (mut active, mut passive) = (0, 0);
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::DataSection(segments) = payload.unwrap() {
            for segment in segments {
                match segment.unwrap().kind {
                    DataKind::Active { .. } => active += 1,
                    DataKind::Passive => passive += 1,
                }
            }
        }
    }
    (active, passive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_segments_go_and_active_ones_stay_with_the_rest_of_the_module() {
        let wasm = wat::parse_str(
            r#"(module
                (memory (export "memory") 1)
                (data "")
                (data (i32.const 8) "kept")
                (data "also unreachable")
                (func (export "read") (result i32) (i32.load8_u (i32.const 8))))"#,
        )
        .unwrap();
        let trimmed = without_unreachable_passive_data(&wasm).unwrap();
        assert_eq!(data_segments(&wasm), (1, 2));
        assert_eq!(data_segments(&trimmed), (1, 0));

        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, &trimmed).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let read = instance.get_typed_func::<(), i32>(&mut store, "read").unwrap();
        assert_eq!(read.call(&mut store, ()).unwrap(), i32::from(b'k'));
    }

    #[test]
    fn a_module_that_can_reference_its_segments_is_left_alone() {
        let wasm = wat::parse_str(
            r#"(module
                (memory 1)
                (data $d "abc")
                (func (memory.init $d (i32.const 0) (i32.const 0) (i32.const 3))))"#,
        )
        .unwrap();
        assert_eq!(without_unreachable_passive_data(&wasm).unwrap(), wasm);
    }
}
