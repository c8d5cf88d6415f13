//! Turns what went wrong inside the sandbox (a JavaScript exception the guest described, or a
//! wasm trap) into an [`ExecutionError`] with a contract code and a handler-relative location.

use nexus_abi::{ErrorCode, GuestError, HANDLER_FILE, HANDLER_PREFIX};
use wasmtime::Trap;

use super::request::{ExecutionError, Location};

/// Classifies a JavaScript exception.
pub fn from_guest(error: GuestError, source: Option<&str>) -> ExecutionError {
    let code = classify(&error);
    let location = error.stack.as_deref().and_then(handler_location).map(|l| within(l, source));
    let message = match (error.name.as_str(), code) {
        ("", _) => error.message,
        (_, ErrorCode::PermissionDenied | ErrorCode::UnknownExtension) => error.message,
        (name, _) => format!("{name}: {}", error.message),
    };
    ExecutionError {
        code,
        message,
        stack: error.stack,
        location,
        snippet: location.and_then(|l| snippet(source?, l.line)),
    }
}

fn classify(error: &GuestError) -> ErrorCode {
    // Codes the host functions and the guest put on errors they throw.
    const THROWN_BY_SANDBOX: [ErrorCode; 4] =
        [ErrorCode::PermissionDenied, ErrorCode::UnknownExtension, ErrorCode::MemoryLimit, ErrorCode::InvalidArgument];
    if let Some(code) = THROWN_BY_SANDBOX.into_iter().find(|c| error.code.as_deref() == Some(c.as_str())) {
        return code;
    }
    match (error.name.as_str(), error.message.as_str()) {
        ("SyntaxError", _) if error.at_load => ErrorCode::SyntaxError,
        ("InternalError", "out of memory") => ErrorCode::MemoryLimit,
        ("RangeError", "Maximum call stack size exceeded") => ErrorCode::StackOverflow,
        ("InternalError", _) if error.at_load || error.stack.is_none() => ErrorCode::Internal,
        _ => ErrorCode::RuntimeError,
    }
}

/// The first stack frame in the handler's file, as a position in the handler's own source
/// (frames look like `    at f (handler.js:3:7)` or `    at handler.js:3:7`).
fn handler_location(stack: &str) -> Option<Location> {
    let marker = format!("{HANDLER_FILE}:");
    stack.lines().find_map(|frame| {
        let rest = &frame[frame.find(&marker)? + marker.len()..];
        let mut numbers = rest.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty());
        let line: u32 = numbers.next()?.parse().ok()?;
        let column: u32 = numbers.next().and_then(|c| c.parse().ok()).unwrap_or(1);
        // The wrapper's prefix shares the handler's first line.
        let column = if line == 1 { column.saturating_sub(HANDLER_PREFIX.len() as u32).max(1) } else { column };
        Some(Location { line, column })
    })
}

/// Keeps a location inside the handler: an error at the wrapper's closing line (an unclosed
/// block, say) is at the end of the handler.
fn within(location: Location, source: Option<&str>) -> Location {
    let Some(source) = source else { return location };
    let lines = source.lines().count().max(1) as u32;
    if location.line <= lines {
        return location;
    }
    let last = source.lines().last().unwrap_or_default();
    Location { line: lines, column: last.chars().count() as u32 + 1 }
}

fn snippet(source: &str, line: u32) -> Option<String> {
    source.lines().nth(line.checked_sub(1)? as usize).map(|l| l.trim_end().to_owned())
}

/// Classifies a trap or host-function failure that ended the instance.
pub fn from_trap(error: &wasmtime::Error, memory_refused: bool, guest_output: &str) -> ExecutionError {
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => ExecutionError::new(ErrorCode::Timeout, "the handler exceeded its time limit"),
        Some(Trap::StackOverflow) => {
            ExecutionError::new(ErrorCode::StackOverflow, "the handler exceeded the maximum stack depth")
        }
        // The guest's allocator aborts when the store refuses to grow its memory.
        _ if memory_refused => ExecutionError::new(ErrorCode::MemoryLimit, "the handler exceeded its memory limit"),
        _ => {
            let mut message = format!("the sandbox failed: {error:#}");
            if !guest_output.is_empty() {
                message.push_str(&format!(" (guest said: {})", guest_output.trim_end()));
            }
            ExecutionError::new(ErrorCode::Internal, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(name: &str, message: &str, stack: Option<&str>) -> GuestError {
        GuestError { name: name.into(), message: message.into(), stack: stack.map(Into::into), ..GuestError::default() }
    }

    #[test]
    fn location_is_the_first_handler_frame_with_line_one_columns_unshifted() {
        let stack = "    at f (prelude.js:10:3)\n    at <anonymous> (handler.js:3:7)\n    at handler.js:9:1\n";
        assert_eq!(handler_location(stack), Some(Location { line: 3, column: 7 }));
        let first_line = format!("    at handler.js:1:{}\n", HANDLER_PREFIX.len() + 5);
        assert_eq!(handler_location(&first_line), Some(Location { line: 1, column: 5 }));
        assert_eq!(handler_location("    at native\n"), None);
    }

    #[test]
    fn classifies_quickjs_limits_and_sandbox_codes() {
        assert_eq!(classify(&error("InternalError", "out of memory", None)), ErrorCode::MemoryLimit);
        assert_eq!(classify(&error("RangeError", "Maximum call stack size exceeded", None)), ErrorCode::StackOverflow);
        assert_eq!(classify(&error("TypeError", "x is not a function", Some(""))), ErrorCode::RuntimeError);
        let denied = GuestError { code: Some("PERMISSION_DENIED".into()), ..error("Error", "denied", None) };
        assert_eq!(classify(&denied), ErrorCode::PermissionDenied);
        let custom = GuestError { code: Some("TIMEOUT".into()), ..error("Error", "mine", Some("")) };
        assert_eq!(classify(&custom), ErrorCode::RuntimeError, "handlers cannot forge engine codes");
        let syntax = GuestError { at_load: true, ..error("SyntaxError", "unexpected token", None) };
        assert_eq!(classify(&syntax), ErrorCode::SyntaxError);
    }

    #[test]
    fn snippet_is_the_source_line() {
        assert_eq!(snippet("a\n  b();  \nc", 2).as_deref(), Some("  b();"));
        assert_eq!(snippet("a", 5), None);
    }
}
