//! A suspended execution as plain data, and back.
//!
//! When a handler is suspended the guest has returned from its export: the wasm call stack is
//! empty and the shadow stack holds nothing live. The whole execution is then its linear
//! memory, the guest's mutable globals and the host state. [`SuspensionImage`] holds exactly
//! that, with the memory as a delta against the snapshot the instance started from:
//!
//! * only the 4 KiB pages that differ from the snapshot, and of those only the 64-byte chunks
//!   that differ, each XORed with the snapshot's bytes (mostly zeros, so they compress well),
//!   compressed with LZ4 (`lz4_flex`). LZ4 rather than zstd, measured on real deltas
//!   (`cargo bench --bench image_codec`): zstd at level 1 makes them 25–42% smaller but takes
//!   2.2× as long to compress and 1.6× as long to decompress, and both sit on the path of every
//!   hibernated resume, while LZ4's images already fit the memory budget (BENCHMARKS.md,
//!   "Suspensions"). Keeping chunks rather than whole pages makes a restore decompress and
//!   write only what changed (a page typically changes in a few places);
//! * the pages compared are those the kernel's page table says the execution may have written
//!   (see `written_pages`), not the whole memory;
//! * the pages wholly below the shadow stack pointer are dead stack and not kept: a restored
//!   instance has the snapshot's bytes there, which nothing reads before writing;
//! * every mutable global by export name (the engine refuses at start a guest with a mutable
//!   global it does not export, see [`mutable_globals`]).
//!
//! An image is not trusted on its own: it is only ever stored sealed (see
//! `crate::suspension::seal`), and opened only after its authentication succeeded.

use std::time::Duration;

use nexus_host_fns::HostState;

use super::typescript::Authored;
use serde::{Deserialize, Serialize};
use wasmparser::{ExternalKind, Parser, Payload, TypeRef};

/// Bytes per page compared and kept (the OS page, not wasm's 64 KiB one).
pub const PAGE: usize = 4096;

/// Version of the image format; an image of another version is refused.
pub const IMAGE_VERSION: u32 = 3;

/// Bytes per chunk of a page kept or skipped as a whole: 64 per page, one bit each of a `u64`.
pub const CHUNK: usize = 64;

/// A suspended execution, as data.
#[derive(Debug, Serialize, Deserialize)]
pub struct SuspensionImage {
    pub version: u32,
    /// Linear memory size in bytes.
    pub memory_size: u64,
    /// The execution's memory limit, which holds again after a restore.
    pub memory_limit: u64,
    /// Every mutable global of the guest, by export name.
    pub globals: Vec<(String, GlobalValue)>,
    /// The memory's difference from the snapshot.
    pub memory: MemoryDelta,
    pub host: HostState,
    /// The host's evidence so far: a denial was recorded, an unknown extension call refused
    /// (what lets an uncaught error of the runtime's be `PERMISSION_DENIED` or
    /// `UNKNOWN_EXTENSION` after a restore).
    pub denied: bool,
    pub unknown_extension: bool,
    /// The handler's source as its author wrote it, for error locations and snippets
    /// (absent for bytecode of JavaScript).
    pub source: Option<Authored>,
    /// Running time the execution still has.
    pub time_left: Duration,
}

/// The value of a mutable global.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum GlobalValue {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
}

/// The chunks of a memory that differ from the snapshot, XORed with it.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryDelta {
    /// Indexes of the pages that differ, ascending.
    pub pages: Vec<u32>,
    /// For each of those pages, which of its 64 chunks differ (bit `i`: bytes `64 i..64 i + 64`).
    pub chunks: Vec<u64>,
    /// Those chunks XORed with the snapshot's, concatenated in order, LZ4-compressed
    /// (size-prefixed).
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// The difference of `memory` from `snapshot` (zeros past its end), in the pages `candidates`
/// names (ascending; every page when `None`) at or above `live_from`, the first byte that
/// may be live.
///
/// One pass per page, a fixed-size chunk at a time (compiled to a few vector compares), so a
/// page that differs is not read twice.
pub fn memory_delta(memory: &[u8], snapshot: &[u8], live_from: usize, candidates: Option<Vec<usize>>) -> MemoryDelta {
    let pages = memory.len() / PAGE;
    let candidates = candidates.unwrap_or_else(|| (0..pages).collect());
    let mut delta = MemoryDelta::default();
    let mut xored: Vec<u8> = Vec::with_capacity(candidates.len() * PAGE / 4);
    let zeros = [0u8; PAGE];
    for index in candidates.into_iter().filter(|&index| index >= live_from / PAGE && index < pages) {
        let start = index * PAGE;
        let (page, _) = memory[start..start + PAGE].as_chunks::<CHUNK>();
        let (base, _) = snapshot.get(start..start + PAGE).unwrap_or(&zeros).as_chunks::<CHUNK>();
        let mut mask = 0u64;
        for (chunk, (now, before)) in page.iter().zip(base).enumerate() {
            // XORed whole, then tested (a few vector instructions, no call per chunk).
            let (now, _) = now.as_chunks::<8>();
            let (before, _) = before.as_chunks::<8>();
            let xor: [u64; CHUNK / 8] =
                std::array::from_fn(|i| u64::from_ne_bytes(now[i]) ^ u64::from_ne_bytes(before[i]));
            if xor.iter().fold(0, |any, word| any | word) != 0 {
                mask |= 1 << chunk;
                xor.iter().for_each(|word| xored.extend_from_slice(&word.to_ne_bytes()));
            }
        }
        if mask != 0 {
            delta.pages.push(index as u32);
            delta.chunks.push(mask);
        }
    }
    delta.bytes = lz4_flex::compress_prepend_size(&xored);
    delta
}

/// Applies a delta made by [`memory_delta`] to `memory`, which holds the snapshot's bytes (and
/// zeros past them).
pub fn apply_delta(memory: &mut [u8], delta: &MemoryDelta) -> Result<(), String> {
    if delta.pages.len() != delta.chunks.len() {
        return Err(format!("the memory delta has {} pages and {} chunk masks", delta.pages.len(), delta.chunks.len()));
    }
    let chunks: usize = delta.chunks.iter().map(|mask| mask.count_ones() as usize).sum();
    let xored = lz4_flex::decompress_size_prepended(&delta.bytes).map_err(|e| format!("the memory delta: {e}"))?;
    let (xored, []) = xored.as_chunks::<CHUNK>() else {
        return Err(format!("the memory delta holds {} bytes, not whole chunks", xored.len()));
    };
    if xored.len() != chunks {
        return Err(format!("the memory delta holds {} chunks where its masks name {chunks}", xored.len()));
    }
    let mut xored = xored.iter();
    for (&index, &mask) in delta.pages.iter().zip(&delta.chunks) {
        let start = index as usize * PAGE;
        let page = memory
            .get_mut(start..start + PAGE)
            .ok_or_else(|| format!("page {index} lies outside the image's memory"))?;
        let (page, _) = page.as_chunks_mut::<CHUNK>();
        let mut mask = mask;
        while mask != 0 {
            let bytes = &mut page[mask.trailing_zeros() as usize];
            let xor = xored.next().expect("the chunk count was checked");
            for (byte, xor) in bytes.iter_mut().zip(xor) {
                *byte ^= xor;
            }
            mask &= mask - 1;
        }
    }
    Ok(())
}

/// The export names of the module's mutable globals. A mutable global that is not exported
/// could not be read or restored, so a module with one is refused: its suspended executions
/// could not become images.
pub fn mutable_globals(wasm: &[u8]) -> Result<Vec<String>, String> {
    let mut mutable = Vec::new();
    let mut imported = 0u32;
    let mut exported = std::collections::HashMap::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| format!("reading the guest module: {e}"))? {
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    let import = import.map_err(|e| format!("reading the guest's imports: {e}"))?;
                    if let TypeRef::Global(global) = import.ty {
                        if global.mutable {
                            return Err(format!(
                                "the guest imports the mutable global {}.{}: a suspended execution could not be kept",
                                import.module, import.name
                            ));
                        }
                        imported += 1;
                    }
                }
            }
            Payload::GlobalSection(globals) => {
                for (offset, global) in globals.into_iter().enumerate() {
                    let global = global.map_err(|e| format!("reading the guest's globals: {e}"))?;
                    if global.ty.mutable {
                        mutable.push(imported + offset as u32);
                    }
                }
            }
            Payload::ExportSection(exports) => {
                for export in exports {
                    let export = export.map_err(|e| format!("reading the guest's exports: {e}"))?;
                    if export.kind == ExternalKind::Global {
                        exported.insert(export.index, export.name.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    mutable
        .into_iter()
        .map(|index| {
            exported.get(&index).cloned().ok_or_else(|| {
                format!("the guest's mutable global {index} is not exported: a suspended execution could not be kept")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_whose_mutable_globals_are_all_exported_names_them() {
        let wasm = wat::parse_str(
            r#"(module
                (global $sp (export "__stack_pointer") (mut i32) (i32.const 1024))
                (global $c (export "constant") i32 (i32.const 7))
                (global $other (export "other") (mut i64) (i64.const 0)))"#,
        )
        .unwrap();
        assert_eq!(mutable_globals(&wasm).unwrap(), vec!["__stack_pointer".to_owned(), "other".to_owned()]);
    }

    #[test]
    fn a_module_with_a_mutable_global_it_does_not_export_is_refused() {
        let wasm = wat::parse_str(
            r#"(module
                (global $sp (export "__stack_pointer") (mut i32) (i32.const 1024))
                (global $hidden (mut i32) (i32.const 0)))"#,
        )
        .unwrap();
        let error = mutable_globals(&wasm).unwrap_err();
        assert!(error.contains("mutable global 1 is not exported"), "{error}");
    }

    #[test]
    fn a_delta_restores_exactly_the_chunks_that_changed_above_the_live_stack() {
        let snapshot: Vec<u8> = (0..8 * PAGE).map(|i| (i % 251) as u8).collect();
        let mut memory = snapshot.clone();
        memory.extend(std::iter::repeat_n(0u8, 2 * PAGE)); // grown
        memory[10] = 1; // dead stack: below `live_from`
        memory[3 * PAGE + 5] ^= 0xff;
        memory[3 * PAGE + 4095] ^= 0x01;
        memory[9 * PAGE + 1] = 7; // a grown page
        let delta = memory_delta(&memory, &snapshot, 2 * PAGE, None);
        assert_eq!(delta.pages, vec![3, 9]);
        assert_eq!(delta.chunks, vec![1 | 1 << 63, 1]);

        let mut restored = snapshot.clone();
        restored.extend(std::iter::repeat_n(0u8, 2 * PAGE));
        apply_delta(&mut restored, &delta).unwrap();
        assert_eq!(restored[3 * PAGE..], memory[3 * PAGE..]);
        assert_eq!(restored[10], snapshot[10], "dead stack comes back as the snapshot's bytes");
    }

    #[test]
    fn only_the_candidate_pages_are_compared() {
        let mut memory = vec![0u8; 4 * PAGE];
        memory[PAGE] = 1;
        memory[2 * PAGE] = 1;
        assert_eq!(memory_delta(&memory, &[], 0, Some(vec![2, 3])).pages, vec![2]);
    }

    #[test]
    fn a_delta_for_pages_outside_the_memory_is_refused() {
        let delta = memory_delta(&[1u8; 2 * PAGE], &[0u8; 2 * PAGE], 0, None);
        assert!(apply_delta(&mut [0u8; PAGE], &delta).is_err());
    }

    #[test]
    fn a_delta_whose_masks_do_not_match_its_bytes_is_refused() {
        let mut delta = memory_delta(&[1u8; 2 * PAGE], &[0u8; 2 * PAGE], 0, None);
        delta.chunks[1] = 0;
        let error = apply_delta(&mut [0u8; 2 * PAGE], &delta).unwrap_err();
        assert!(error.contains("holds 128 chunks where its masks name 64"), "{error}");
        delta.chunks.pop();
        assert!(apply_delta(&mut [0u8; 2 * PAGE], &delta).unwrap_err().contains("chunk masks"));
    }
}
