//! The host functions this guest imports, and the reply protocol around them.
//!
//! Nothing here decides anything: every capability check happens on the host, which is
//! the only side that can be trusted. A negative return is a [`HostStatus`].

use nexus_abi::HostStatus;

#[link(wasm_import_module = "nexus")]
unsafe extern "C" {
    fn state_get(key: *const u8, key_len: usize) -> i32;
    fn state_set(key: *const u8, key_len: usize, value: *const u8, value_len: usize) -> i32;
    fn state_delete(key: *const u8, key_len: usize) -> i32;
    fn state_has(key: *const u8, key_len: usize) -> i32;
    fn state_keys() -> i32;
    fn emit(name: *const u8, name_len: usize, payload: *const u8, payload_len: usize) -> i32;
    fn view_command(message: *const u8, len: usize) -> i32;
    fn ext_call(message: *const u8, len: usize) -> i32;
    fn log(level: i32, message: *const u8, len: usize) -> i32;
    fn reply_take(dest: *mut u8) -> i32;
}

/// A host function's answer.
pub enum Answer {
    /// A non-negative number (a length already consumed, a call id, a boolean).
    Value(u32),
    /// Data the host replied with.
    Data(Vec<u8>),
    Status(HostStatus),
}

fn status(code: i32) -> Result<u32, HostStatus> {
    match HostStatus::from_code(code) {
        Some(status) => Err(status),
        // Any other negative code would be a host bug; treat it as a refusal.
        None if code < 0 => Err(HostStatus::Denied),
        None => Ok(code as u32),
    }
}

fn with_reply(code: i32) -> Answer {
    match status(code) {
        Ok(len) => {
            let mut buf = vec![0u8; len as usize];
            // SAFETY: the host writes exactly the `len` bytes it announced.
            unsafe { reply_take(buf.as_mut_ptr()) };
            Answer::Data(buf)
        }
        Err(status) => Answer::Status(status),
    }
}

fn plain(code: i32) -> Answer {
    match status(code) {
        Ok(value) => Answer::Value(value),
        Err(status) => Answer::Status(status),
    }
}

// The pointers and lengths below describe live Rust slices for the duration of each call, and
// the host only reads them (a bad one would be a trap, not a read elsewhere: the host bounds
// every access by this instance's memory).

pub fn get(key: &str) -> Answer {
    // SAFETY: the pointers and lengths are those of slices borrowed for the whole call.
    with_reply(unsafe { state_get(key.as_ptr(), key.len()) })
}

pub fn set(key: &str, value: &[u8]) -> Answer {
    // SAFETY: the pointers and lengths are those of slices borrowed for the whole call.
    plain(unsafe { state_set(key.as_ptr(), key.len(), value.as_ptr(), value.len()) })
}

pub fn delete(key: &str) -> Answer {
    // SAFETY: the pointers and lengths are those of slices borrowed for the whole call.
    plain(unsafe { state_delete(key.as_ptr(), key.len()) })
}

pub fn has(key: &str) -> Answer {
    // SAFETY: the pointers and lengths are those of slices borrowed for the whole call.
    plain(unsafe { state_has(key.as_ptr(), key.len()) })
}

pub fn keys() -> Answer {
    // SAFETY: takes no arguments; the reply is taken by `with_reply` at its announced length.
    with_reply(unsafe { state_keys() })
}

pub fn emit_event(name: &str, payload: &[u8]) -> Answer {
    // SAFETY: the pointers and lengths are those of slices borrowed for the whole call.
    plain(unsafe { emit(name.as_ptr(), name.len(), payload.as_ptr(), payload.len()) })
}

pub fn view(message: &[u8]) -> Answer {
    // SAFETY: the pointers and lengths are those of slices borrowed for the whole call.
    plain(unsafe { view_command(message.as_ptr(), message.len()) })
}

pub fn extension_call(message: &[u8]) -> Answer {
    // SAFETY: the pointers and lengths are those of slices borrowed for the whole call.
    plain(unsafe { ext_call(message.as_ptr(), message.len()) })
}

pub fn log_line(level: i32, line: &str) -> Answer {
    // SAFETY: the pointers and lengths are those of slices borrowed for the whole call.
    plain(unsafe { log(level, line.as_ptr(), line.len()) })
}
