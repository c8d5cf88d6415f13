//! The few `wasi_snapshot_preview1` functions the guest's libc links against, implemented
//! here instead of linking a full WASI: the sandbox gets a clock and randomness, and nothing
//! else of the host (no files, no environment, no arguments, no sockets).

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Linker};
use wasmtime::{Result, format_err as anyhow};

use crate::imports::HostAccess;

const MODULE: &str = "wasi_snapshot_preview1";
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;
const CLOCK_REALTIME: i32 = 0;

pub fn add_to_linker<T: HostAccess>(linker: &mut Linker<T>) -> Result<()> {
    linker.func_wrap(
        MODULE,
        "clock_time_get",
        |mut caller: Caller<'_, T>, clock: i32, _precision: i64, out: i32| {
            // `Date.now()` is the real current time; other clocks are monotonic.
            let nanos = if clock == CLOCK_REALTIME {
                SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
            } else {
                static START: OnceLock<Instant> = OnceLock::new();
                START.get_or_init(Instant::now).elapsed().as_nanos() as u64
            };
            write(&mut caller, out, &nanos.to_le_bytes())?;
            Ok(ERRNO_SUCCESS)
        },
    )?;
    linker.func_wrap(MODULE, "random_get", |mut caller: Caller<'_, T>, buf: i32, len: i32| {
        let memory = caller.data().memory();
        random_into(memory.data_mut(&mut caller), buf, len)?;
        Ok(ERRNO_SUCCESS)
    })?;
    linker.func_wrap(MODULE, "environ_sizes_get", |mut caller: Caller<'_, T>, count: i32, size: i32| {
        write(&mut caller, count, &0u32.to_le_bytes())?;
        write(&mut caller, size, &0u32.to_le_bytes())?;
        Ok(ERRNO_SUCCESS)
    })?;
    linker.func_wrap(MODULE, "environ_get", |_: Caller<'_, T>, _: i32, _: i32| ERRNO_SUCCESS)?;
    linker.func_wrap(MODULE, "fd_close", |_: Caller<'_, T>, _: i32| ERRNO_BADF)?;
    linker.func_wrap(MODULE, "fd_fdstat_get", |_: Caller<'_, T>, _: i32, _: i32| ERRNO_BADF)?;
    linker.func_wrap(MODULE, "fd_seek", |_: Caller<'_, T>, _: i32, _: i64, _: i32, _: i32| ERRNO_BADF)?;
    linker.func_wrap(
        MODULE,
        "fd_write",
        |mut caller: Caller<'_, T>, fd: i32, iovs: i32, iovs_len: i32, written: i32| -> Result<i32> {
            if fd != 1 && fd != 2 {
                return Ok(ERRNO_BADF);
            }
            // stdout/stderr carry only the guest's own diagnostics (a panic message): kept,
            // bounded, for the error report.
            let memory = caller.data().memory();
            let (data, store) = memory.data_and_store_mut(&mut caller);
            let mut total = 0u32;
            for i in 0..iovs_len.max(0) as u32 {
                let iov = crate::imports::bytes(data, iovs.wrapping_add((i * 8) as i32), 8)?;
                let ptr = i32::from_le_bytes(iov[..4].try_into().expect("4 bytes"));
                let len = i32::from_le_bytes(iov[4..].try_into().expect("4 bytes"));
                store.host().guest_wrote(crate::imports::bytes(data, ptr, len)?);
                total = total.saturating_add(len as u32);
            }
            write(&mut caller, written, &total.to_le_bytes())?;
            Ok(ERRNO_SUCCESS)
        },
    )?;
    linker.func_wrap(MODULE, "proc_exit", |_: Caller<'_, T>, code: i32| -> Result<()> {
        Err(anyhow!("the guest exited with code {code}"))
    })?;
    Ok(())
}

/// Fills `len` bytes of guest memory at `buf` with host randomness, in place: the range is
/// checked first, so a guest asking for up to 4 GiB makes the host allocate nothing (it used to
/// allocate and fill the whole length before finding it outside the guest's memory).
fn random_into(memory: &mut [u8], buf: i32, len: i32) -> Result<()> {
    let start = buf as u32 as usize;
    let range = memory
        .get_mut(start..start.saturating_add(len as u32 as usize))
        .ok_or_else(|| anyhow!("guest buffer {buf}+{len} is outside its memory"))?;
    getrandom::fill(range).map_err(|e| anyhow!("host randomness failed: {e}"))
}

fn write<T: HostAccess>(caller: &mut Caller<'_, T>, at: i32, bytes: &[u8]) -> Result<()> {
    let memory = caller.data().memory();
    memory.write(caller, at as u32 as usize, bytes).map_err(|_| anyhow!("guest pointer {at} is outside its memory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_get_outside_the_guest_memory_is_refused_before_anything_is_made() {
        let mut memory = vec![0u8; 64];
        assert!(random_into(&mut memory, 0, -1).is_err(), "4 GiB from 0");
        assert!(random_into(&mut memory, 60, 8).is_err(), "past the end");
        assert!(random_into(&mut memory, -1, 1).is_err(), "a pointer past 2 GiB");
        assert_eq!(memory, vec![0u8; 64], "nothing written");
        random_into(&mut memory, 8, 48).unwrap();
        assert!(memory[..8].iter().chain(&memory[56..]).all(|&b| b == 0));
        assert!(memory[8..56].iter().any(|&b| b != 0));
    }
}
