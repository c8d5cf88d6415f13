//! The wasm imports of module `nexus`: each reads its arguments out of guest memory, asks
//! [`HostState`] (which enforces capabilities), and returns a status or a reply length.
//!
//! The guest is untrusted: a pointer outside its memory or a message that does not decode
//! is a trap (the execution fails with `INTERNAL`, the runtime is unaffected), never a panic.

use nexus_abi::{ExtCall, HostStatus, IMPORT_MODULE, LogLevel, ViewCommandCall, imports};
use serde_json::Value;
use wasmtime::error::Context as _;
use wasmtime::{Caller, Linker, Memory};
use wasmtime::{Result, format_err as anyhow};

use crate::capability::Kind;
use crate::host_state::{HostResult, HostState};

/// Where the store data keeps the host state and the guest memory.
pub trait HostAccess: 'static {
    fn host(&mut self) -> &mut HostState;
    /// The guest's exported memory (set once the instance exists).
    fn memory(&self) -> Memory;
    /// Called when the host refused an extension call as unknown (not in the registry): the
    /// engine's evidence for an `UNKNOWN_EXTENSION` result.
    fn refused_unknown_extension(&mut self) {}
}

/// Adds every `nexus` import to `linker`.
pub fn add_to_linker<T: HostAccess>(linker: &mut Linker<T>) -> Result<()> {
    linker.func_wrap(IMPORT_MODULE, imports::STATE_GET, |mut caller: Caller<'_, T>, key: i32, key_len: i32| {
        with_args(&mut caller, |memory, host| {
            let key = string(memory, key, key_len)?;
            Ok(status(host.state_get(key).map(len_i32)))
        })
    })?;
    linker.func_wrap(
        IMPORT_MODULE,
        imports::STATE_SET,
        |mut caller: Caller<'_, T>, key: i32, key_len: i32, value: i32, value_len: i32| {
            with_args(&mut caller, |memory, host| {
                let key = string(memory, key, key_len)?;
                let denied = |_: &[u8], host: &HostState| unread_if_denied(host, Kind::StateWrite, key);
                let value: HostResult<Value> = kept(memory, value, value_len, host, denied)?;
                Ok(status(value.and_then(|value| host.state_set(key, value)).map(|()| 0)))
            })
        },
    )?;
    linker.func_wrap(IMPORT_MODULE, imports::STATE_DELETE, |mut caller: Caller<'_, T>, key: i32, key_len: i32| {
        with_args(&mut caller, |memory, host| {
            let key = string(memory, key, key_len)?;
            Ok(status(host.state_delete(key).map(|()| 0)))
        })
    })?;
    linker.func_wrap(IMPORT_MODULE, imports::STATE_HAS, |mut caller: Caller<'_, T>, key: i32, key_len: i32| {
        with_args(&mut caller, |memory, host| {
            let key = string(memory, key, key_len)?;
            Ok(status(host.state_has(key).map(i32::from)))
        })
    })?;
    linker.func_wrap(IMPORT_MODULE, imports::STATE_KEYS, |mut caller: Caller<'_, T>| {
        let host = caller.data_mut().host();
        let code = status(host.state_keys().map(len_i32));
        ended_if_exhausted(host, code)
    })?;
    linker.func_wrap(
        IMPORT_MODULE,
        imports::EMIT,
        |mut caller: Caller<'_, T>, name: i32, name_len: i32, payload: i32, payload_len: i32| {
            with_args(&mut caller, |memory, host| {
                let name = string(memory, name, name_len)?;
                let denied = |_: &[u8], host: &HostState| unread_if_denied(host, Kind::EventsEmit, name);
                let payload: HostResult<Value> = kept(memory, payload, payload_len, host, denied)?;
                Ok(status(payload.and_then(|payload| host.emit(name, payload)).map(|()| 0)))
            })
        },
    )?;
    linker.func_wrap(IMPORT_MODULE, imports::VIEW_COMMAND, |mut caller: Caller<'_, T>, ptr: i32, len: i32| {
        with_args(&mut caller, |memory, host| {
            let denied = |message: &[u8], host: &HostState| {
                let head: ViewCommandHead = nexus_abi::decode(message).ok()?;
                let call = ViewCommandCall {
                    kind: head.kind.to_owned(),
                    component_id: head.component_id.to_owned(),
                    args: Value::Null,
                };
                (!host.allows(Kind::ViewUpdate, head.component_id)).then_some(call)
            };
            let call: HostResult<ViewCommandCall> = kept(memory, ptr, len, host, denied)?;
            Ok(status(call.and_then(|call| host.view_command(call)).map(|()| 0)))
        })
    })?;
    linker.func_wrap(IMPORT_MODULE, imports::EXT_CALL, |mut caller: Caller<'_, T>, ptr: i32, len: i32| {
        let code = with_args(&mut caller, |memory, host| {
            let denied = |message: &[u8], host: &HostState| {
                let head: ExtCallHead = nexus_abi::decode(message).ok()?;
                let call =
                    ExtCall { extension: head.extension.to_owned(), method: head.method.to_owned(), args: vec![] };
                (!host.allows(Kind::Ext, head.extension)).then_some(call)
            };
            let call: HostResult<ExtCall> = kept(memory, ptr, len, host, denied)?;
            Ok(status(call.and_then(|call| host.ext_call(call)).map(|id| id as i32)))
        })?;
        if code == HostStatus::UnknownExtension as i32 {
            caller.data_mut().refused_unknown_extension();
        }
        Ok(code)
    })?;
    linker.func_wrap(IMPORT_MODULE, imports::LOG, |mut caller: Caller<'_, T>, level: i32, ptr: i32, len: i32| {
        with_args(&mut caller, |memory, host| {
            let level = LogLevel::from_code(level).ok_or_else(|| anyhow!("guest passed log level {level}"))?;
            let line = String::from_utf8_lossy(bytes(memory, ptr, len)?).into_owned();
            Ok(status(host.log(level, line).map(|()| 0)))
        })
    })?;
    linker.func_wrap(IMPORT_MODULE, imports::REPLY_TAKE, |mut caller: Caller<'_, T>, dest: i32| {
        let memory = caller.data().memory();
        let reply = caller.data_mut().host().take_reply();
        memory.write(&mut caller, dest as u32 as usize, &reply).context("guest reply buffer out of bounds")?;
        Ok(reply.len() as i32)
    })?;
    Ok(())
}

/// Runs `f` with the guest memory and the host state borrowed together.
fn with_args<T: HostAccess>(
    caller: &mut Caller<'_, T>,
    f: impl FnOnce(&[u8], &mut HostState) -> Result<i32>,
) -> Result<i32> {
    let memory = caller.data().memory();
    let (memory, data) = memory.data_and_store_mut(caller);
    let host = data.host();
    let code = f(memory, host)?;
    ended_if_exhausted(host, code)
}

/// Past the output budget, or past the pending calls allowed, the execution has failed
/// (`MEMORY_LIMIT`) whatever the handler does next, so the call that went past it ends the
/// execution (a trap the handler cannot catch) instead of returning: a handler catching the
/// refusal would otherwise run on until its timeout.
fn ended_if_exhausted(host: &HostState, code: i32) -> Result<i32> {
    if host.ended() { Err(anyhow!("the execution went past a limit of the host's")) } else { Ok(code) }
}

fn status(result: HostResult<i32>) -> i32 {
    result.unwrap_or_else(|status: HostStatus| status as i32)
}

fn len_i32(len: usize) -> i32 {
    // Replies are bounded by the guest's memory, far below 2 GiB.
    i32::try_from(len).unwrap_or(i32::MAX)
}

pub(crate) fn bytes(memory: &[u8], ptr: i32, len: i32) -> Result<&[u8]> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len as u32 as usize).ok_or_else(|| anyhow!("guest slice overflows"))?;
    memory.get(start..end).ok_or_else(|| anyhow!("guest slice {start}..{end} is outside its memory"))
}

fn string(memory: &[u8], ptr: i32, len: i32) -> Result<&str> {
    std::str::from_utf8(bytes(memory, ptr, len)?).context("guest passed a string that is not UTF-8")
}

/// For a state write or an event the handler may not make: `null` for the value it came with
/// (never read), which the [`HostState`] method then refuses as a denial.
fn unread_if_denied(host: &HostState, kind: Kind, name: &str) -> Option<Value> {
    (!host.allows(kind, name)).then_some(Value::Null)
}

/// What a view command names, read without its arguments.
#[derive(serde::Deserialize)]
struct ViewCommandHead<'a> {
    kind: &'a str,
    component_id: &'a str,
}

/// What an extension call names, read without its arguments.
#[derive(serde::Deserialize)]
struct ExtCallHead<'a> {
    extension: &'a str,
    method: &'a str,
}

/// Decodes a message the host would keep, once [admitted](HostState::admit). One that could
/// not fit in the output budget is refused undecoded, unless `denied` finds that the handler
/// may not make this call at all (reading no more of the message than the names it carries):
/// then the call `denied` returns stands for it, for the [`HostState`] method to refuse as a
/// denial, whatever the size of its values.
fn kept<M: for<'a> serde::Deserialize<'a>>(
    memory: &[u8],
    ptr: i32,
    len: i32,
    host: &mut HostState,
    denied: impl FnOnce(&[u8], &HostState) -> Option<M>,
) -> Result<HostResult<M>> {
    let message = bytes(memory, ptr, len)?;
    if !host.fits(message) {
        return Ok(denied(message, host).ok_or_else(|| host.refuse_output()));
    }
    Ok(Ok(nexus_abi::decode(message).context("guest passed a malformed message")?))
}
