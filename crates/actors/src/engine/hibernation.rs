//! Suspended executions as data: a parked execution turned into a [`SuspensionImage`], and an
//! image made a parked execution again in a fresh instance.

use std::time::Instant;

use nexus_abi::ErrorCode;
use wasmtime::Result;

use super::errors;
use super::image::{self, GlobalValue, IMAGE_VERSION, SuspensionImage};
use super::written_pages;
use super::{Engine, ExecutionError, ParkedExecution, SpentInstance, SuspensionId};

impl Engine {
    /// Turns a parked execution into data. Its instance comes back spent: dropping it resets and
    /// frees its pooled slot, which the caller can do after delivering the image.
    ///
    /// The time it takes is the execution's: it is taken from the running time the execution
    /// has left (as a restore's is), so that a handler holding a large memory across many
    /// suspensions cannot make the host work for it past its time limit.
    pub fn hibernate(&self, parked: ParkedExecution) -> Result<(SuspensionImage, SpentInstance)> {
        let started = Instant::now();
        let ParkedExecution { mut instance, source, time_left, .. } = parked;
        let globals = self
            .globals
            .iter()
            .map(|name| {
                let value = match instance.global(name)? {
                    wasmtime::Val::I32(v) => GlobalValue::I32(v),
                    wasmtime::Val::I64(v) => GlobalValue::I64(v),
                    wasmtime::Val::F32(v) => GlobalValue::F32(v),
                    wasmtime::Val::F64(v) => GlobalValue::F64(v),
                    _ => wasmtime::bail!("the global {name} holds a reference, which an image cannot keep"),
                };
                Ok((name.clone(), value))
            })
            .collect::<Result<Vec<_>>>()?;
        let live_from = instance.stack_pointer() as usize;
        let memory = instance.memory();
        let candidates = written_pages::candidates(memory, live_from / image::PAGE);
        let delta = image::memory_delta(memory, &self.snapshot, live_from, candidates);
        // Every test build checks the page table's answer against comparing every page.
        debug_assert_eq!(delta, image::memory_delta(memory, &self.snapshot, live_from, None));
        let memory_size = instance.memory_bytes();
        let host = instance.take_host();
        let data = instance.store.data();
        let image = SuspensionImage {
            version: IMAGE_VERSION,
            memory_size,
            memory_limit: data.limits.max_bytes as u64,
            globals,
            memory: delta,
            host,
            denied: data.denied,
            unknown_extension: data.unknown_extension,
            source,
            time_left: time_left.saturating_sub(started.elapsed()),
        };
        Ok((image, SpentInstance { _instance: instance }))
    }

    /// Makes a parked execution of a suspension image again, in a fresh instance: the snapshot
    /// with the image's pages written back, its globals and its memory limit. The image must
    /// come from a sealed suspension of this engine's snapshot (see [`Engine::image_identity`]).
    /// The time it takes is taken from the running time the execution has left.
    pub fn restore(&self, image: SuspensionImage, id: SuspensionId) -> Result<ParkedExecution, ExecutionError> {
        let started = Instant::now();
        let internal = |e: wasmtime::Error| ExecutionError::new(ErrorCode::Internal, format!("restoring {id}: {e:#}"));
        if image.version != IMAGE_VERSION {
            return Err(internal(wasmtime::format_err!("image version {} is not {IMAGE_VERSION}", image.version)));
        }
        let limit = usize::try_from(image.memory_limit).unwrap_or(usize::MAX);
        let mut instance = self.instantiate(image.host, limit).map_err(internal)?;
        let data = instance.store.data_mut();
        (data.denied, data.unknown_extension) = (image.denied, image.unknown_extension);
        if let Err(error) = instance.grow_memory_to(image.memory_size) {
            let limits = &instance.store.data().limits;
            return Err(if limits.over_budget { errors::over_budget(limits) } else { internal(error) });
        }
        image::apply_delta(instance.memory_mut(), &image.memory).map_err(|e| internal(wasmtime::format_err!("{e}")))?;
        for (name, value) in image.globals {
            let value = match value {
                GlobalValue::I32(v) => wasmtime::Val::I32(v),
                GlobalValue::I64(v) => wasmtime::Val::I64(v),
                GlobalValue::F32(v) => wasmtime::Val::F32(v),
                GlobalValue::F64(v) => wasmtime::Val::F64(v),
            };
            instance.set_global(&name, value).map_err(internal)?;
        }
        let span = tracing::info_span!(
            "execution",
            suspension = %id,
            status = tracing::field::Empty,
            code = tracing::field::Empty,
        );
        let time_left = image.time_left.saturating_sub(started.elapsed());
        Ok(ParkedExecution { instance: Box::new(instance), source: image.source, time_left, span })
    }
}
