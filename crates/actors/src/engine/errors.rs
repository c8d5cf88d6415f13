//! Turns what went wrong inside the sandbox (a JavaScript exception the guest described, or a
//! wasm trap) into an [`ExecutionError`] with a contract code and a handler-relative location.

use nexus_abi::{ErrorCode, GuestError, HANDLER_FILE, HANDLER_PREFIX, PRELUDE_FILE};
use wasmtime::Trap;

use super::instance::MemoryLimit;
use super::memory_budget::MemoryBudget;
use super::request::{ExecutionError, Location};

/// What the host itself saw during the execution, against which a guest's report is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence {
    /// The host refused an access for want of a capability (and recorded the denial).
    pub denied: bool,
    /// The host refused an extension call as unknown.
    pub unknown_extension: bool,
}

/// Classifies a JavaScript exception.
///
/// The rule: what the handler threw never chooses the code. `TIMEOUT`, `MEMORY_LIMIT`,
/// `STACK_OVERFLOW`, `INTERNAL` come only from traps, the memory limiter, the output budget
/// and the guest's own failures; `SYNTAX_ERROR` only from loading the code (before any handler
/// code runs); `PERMISSION_DENIED` and `UNKNOWN_EXTENSION` only for an error the runtime raised
/// (the prelude's private registry says so, not the error's properties), and only if the host
/// refused such an access during the execution. Anything else is `RUNTIME_ERROR`, with the handler's own
/// `code` kept as `handler_code`.
pub fn from_guest(error: GuestError, source: Option<&str>, evidence: Evidence) -> ExecutionError {
    let code = classify(&error, evidence);
    // An error made outside any JavaScript frame (the result's serialization) has an empty stack.
    let stack = error.stack.filter(|stack| !stack.trim().is_empty());
    let wrapped = stack.as_deref().and_then(handler_location);
    let location = wrapped.map(|l| within(l, source));
    let message = match (error.name.as_str(), code) {
        // QuickJS stopped past the handler, in the closing line of the function it is compiled
        // in: the handler ends too early (`return (`, an unclosed block), and QuickJS's message
        // names what it found there, a `}` the author never wrote.
        (_, ErrorCode::SyntaxError) if location != wrapped => "SyntaxError: unexpected end of input".to_owned(),
        // `throw {}`, `throw ''`, a proxy whose traps throw: nothing to show but that.
        ("", _) if error.message.is_empty() => "the handler threw a value with no message".to_owned(),
        ("", _) => error.message,
        (_, ErrorCode::PermissionDenied | ErrorCode::UnknownExtension) => error.message,
        // `new Error()`: as JavaScript prints it, `Error`, not `Error: `.
        (name, _) if error.message.is_empty() => name.to_owned(),
        (name, _) => format!("{name}: {}", error.message),
    };
    let stack = stack.map(|stack| in_handler(&stack, source)).filter(|stack| !stack.is_empty());
    ExecutionError {
        code,
        message,
        stack,
        location,
        snippet: location.and_then(|l| snippet(source?, l)),
        handler_code: error.code.filter(|_| error.raised.is_none()),
    }
}

fn classify(error: &GuestError, evidence: Evidence) -> ErrorCode {
    let raised = |code: ErrorCode| error.raised.as_deref() == Some(code.as_str());
    if error.internal {
        ErrorCode::Internal
    } else if error.at_load {
        match error.name.as_str() {
            _ if raised(ErrorCode::InvalidArgument) => ErrorCode::InvalidArgument,
            // QuickJS's compiler raises an `InternalError` for source past its own limits
            // (256 nested patterns before a rest element, 65,534 arguments): source that does
            // not compile, whatever the handler's author meant, not a failure of the sandbox.
            "SyntaxError" | "InternalError" => ErrorCode::SyntaxError,
            _ => ErrorCode::RuntimeError,
        }
    } else if raised(ErrorCode::PermissionDenied) && evidence.denied {
        ErrorCode::PermissionDenied
    } else if raised(ErrorCode::UnknownExtension) && evidence.unknown_extension {
        ErrorCode::UnknownExtension
    } else {
        ErrorCode::RuntimeError
    }
}

/// Refuses source that is not the body of a function, or does not parse as one, with the
/// parser's location in the handler's own source (see [`nexus_host_fns::check_handler_body`]).
pub fn check_body(source: &str) -> Result<(), ExecutionError> {
    match nexus_host_fns::check_handler_body(source) {
        Ok(()) => Ok(()),
        Err(nexus_host_fns::InferenceError::Syntax { message, line, column }) => {
            Err(syntax_error(source, format!("SyntaxError: {message}"), line, column))
        }
        Err(error @ nexus_host_fns::InferenceError::TooLarge { .. }) => {
            Err(ExecutionError::new(ErrorCode::InvalidArgument, error.to_string()))
        }
    }
}

/// A `SYNTAX_ERROR` at a position of `source`, with that line as its snippet.
pub(super) fn syntax_error(source: &str, message: String, line: u32, column: u32) -> ExecutionError {
    ExecutionError {
        location: Some(Location { line, column }),
        snippet: snippet(source, Location { line, column }),
        ..ExecutionError::new(ErrorCode::SyntaxError, message)
    }
}

/// The first stack frame in the handler's file, as a position in the handler's own source
/// (frames look like `    at f (handler.js:3:7)` or `    at handler.js:3:7`, in the
/// coordinates of the function the handler is compiled in).
fn handler_location(stack: &str) -> Option<Location> {
    stack.lines().find_map(|frame| frame_position(frame).map(|(_, location)| unwrapped(location)))
}

/// `stack` with its frames in the handler's file in the handler's own coordinates (columns on
/// line 1 no longer count the function header, and a frame past the handler's end, in the
/// header's closing line, is at its end), and without the runtime's frames: those of the
/// prelude and, below the handler's last frame, the native call that started it.
fn in_handler(stack: &str, source: Option<&str>) -> String {
    let frames: Vec<String> = stack
        .split_inclusive('\n')
        .filter(|frame| file_in_frame(frame, PRELUDE_FILE).is_none())
        .map(|frame| match frame_position(frame) {
            Some((range, location)) => {
                let Location { line, column } = within(unwrapped(location), source);
                format!("{}{HANDLER_FILE}:{line}:{column}{}", &frame[..range.start], &frame[range.end..])
            }
            None => frame.to_owned(),
        })
        .collect();
    let below_handler = frames.iter().rposition(|frame| frame_position(frame).is_some()).map_or(0, |last| last + 1);
    let started_by_runtime = frames[below_handler..].iter().all(|frame| frame.trim_end().ends_with("(native)"));
    let kept = if started_by_runtime { &frames[..below_handler] } else { &frames[..] };
    kept.concat()
}

/// Where a stack frame names `file` as its file (`    at f (FILE:3:7)` or `    at FILE:3:7`),
/// not a file whose name merely ends with it (a library may be named `lib/my-handler.js`): the
/// offset of the name. The frame's last such place: the function's name comes before it, and a
/// handler may name a function `x (handler.js:1:1)`.
pub(super) fn file_in_frame(frame: &str, file: &str) -> Option<usize> {
    let named = format!("{file}:");
    let (at, _) =
        frame.rmatch_indices(&named).find(|&(at, _)| frame[..at].ends_with('(') || frame[..at].ends_with("at "))?;
    // Only where its position (and `)`) ends the frame: before, it is part of a name.
    let rest = frame[at + named.len()..].trim_start_matches(|c: char| c.is_ascii_digit() || c == ':');
    matches!(rest.trim_end(), "" | ")").then_some(at)
}

/// Where a stack frame names the handler's file: the byte range of `handler.js:LINE:COLUMN`
/// in `frame`, and that position.
pub(super) fn frame_position(frame: &str) -> Option<(std::ops::Range<usize>, Location)> {
    let start = file_in_frame(frame, HANDLER_FILE)?;
    let numbers = start + HANDLER_FILE.len() + 1;
    let end =
        numbers + frame[numbers..].find(|c: char| !(c.is_ascii_digit() || c == ':')).unwrap_or(frame.len() - numbers);
    let mut parts = frame[numbers..end].split(':').filter(|s| !s.is_empty());
    let line: u32 = parts.next()?.parse().ok()?;
    let column: u32 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
    Some((start..end, Location { line, column }))
}

/// A position in the function the handler is compiled in, in the handler's own source: the
/// function header shares the handler's first line.
fn unwrapped(Location { line, column }: Location) -> Location {
    let column = if line == 1 { column.saturating_sub(HANDLER_PREFIX.len() as u32).max(1) } else { column };
    Location { line, column }
}

/// Keeps a location inside the handler: an error at the wrapper's closing line (an unclosed
/// block, say) is at the end of the handler.
fn within(location: Location, source: Option<&str>) -> Location {
    let Some(source) = source else { return location };
    let lines = source.lines().count().max(1) as u32;
    if location.line <= lines {
        // QuickJS counts a column in bytes of UTF-8; people and editors count characters.
        let line = source.lines().nth(location.line.saturating_sub(1) as usize).unwrap_or_default();
        let bytes = location.column.saturating_sub(1) as usize;
        let column = line.char_indices().take_while(|&(at, _)| at < bytes).count() as u32 + 1;
        return Location { column, ..location };
    }
    let last = source.lines().last().unwrap_or_default();
    Location { line: lines, column: last.chars().count() as u32 + 1 }
}

/// Characters of a line a snippet keeps: a bundled or minified handler is often one line of
/// hundreds of kilobytes, which an error must not carry whole.
pub const SNIPPET_CHARS: usize = 200;

/// The source line at `location`, trailing spaces trimmed; a line longer than
/// [`SNIPPET_CHARS`] is cut to that many characters around the column, with `…` where it
/// was cut.
pub fn snippet(source: &str, location: Location) -> Option<String> {
    let line = source.lines().nth(location.line.checked_sub(1)? as usize)?.trim_end();
    let length = line.chars().count();
    if length <= SNIPPET_CHARS {
        return Some(line.to_owned());
    }
    let column = (location.column.max(1) as usize - 1).min(length);
    let start = column.saturating_sub(SNIPPET_CHARS / 2).min(length - SNIPPET_CHARS);
    let kept: String = line.chars().skip(start).take(SNIPPET_CHARS).collect();
    let before = if start > 0 { "…" } else { "" };
    let after = if start + SNIPPET_CHARS < length { "…" } else { "" };
    Some(format!("{before}{kept}{after}"))
}

/// Classifies a trap or host-function failure that ended the instance.
pub fn from_trap(error: &wasmtime::Error, memory: &MemoryLimit, guest_output: &str) -> ExecutionError {
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => ExecutionError::new(ErrorCode::Timeout, "the handler exceeded its time limit"),
        Some(Trap::StackOverflow) => {
            ExecutionError::new(ErrorCode::StackOverflow, "the handler exceeded the maximum stack depth")
        }
        // The guest's allocator aborts when the store refuses to grow its memory.
        _ if memory.refused => ExecutionError::new(ErrorCode::MemoryLimit, "the handler exceeded its memory limit"),
        _ if memory.over_budget => over_budget(memory),
        _ => {
            let mut message = format!("the sandbox failed: {error:#}");
            if !guest_output.is_empty() {
                message.push_str(&format!(" (guest said: {})", guest_output.trim_end()));
            }
            ExecutionError::new(ErrorCode::Internal, message)
        }
    }
}

/// The error of an execution whose memory growth the engine's [`MemoryBudget`] refused: the
/// runtime is short of memory, whatever the handler's own limit.
pub fn over_budget(memory: &MemoryLimit) -> ExecutionError {
    let budget = memory.budget().map_or(0, MemoryBudget::limit);
    ExecutionError::new(
        ErrorCode::Overloaded,
        format!(
            "the runtime's memory is spent: the executions in progress hold its budget of {budget} bytes (the \
             handler stayed within its own limit of {} bytes)",
            memory.max_bytes
        ),
    )
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
    fn columns_count_characters_where_quickjs_counts_bytes() {
        // `null.x` is at byte column 23 of line 2 (é is two bytes, 😀 four), character column 18.
        let source = "return 1;\nconst a = \"éé😀\"; null.x;";
        let failed =
            from_guest(error("TypeError", "x", Some("    at handler.js:2:23\n")), Some(source), Evidence::default());
        assert_eq!(failed.location, Some(Location { line: 2, column: 18 }));
        assert_eq!(failed.stack.as_deref(), Some("    at handler.js:2:18\n"));
    }

    #[test]
    fn stack_frames_in_the_handler_are_in_its_own_coordinates() {
        let source = "const a = 1;\nf();";
        let stack = format!(
            "    at f (handler.js:1:{})\n    at g (lib.js:4:2)\n    at handler.js:2:1\n    at handler.js:3:1\n",
            HANDLER_PREFIX.len() + 7
        );
        let failed = from_guest(error("Error", "x", Some(&stack)), Some(source), Evidence::default());
        assert_eq!(
            failed.stack.as_deref(),
            Some("    at f (handler.js:1:7)\n    at g (lib.js:4:2)\n    at handler.js:2:1\n    at handler.js:2:5\n"),
            "line 1 without the header, the closing line at the handler's end"
        );
        assert_eq!(failed.location, Some(Location { line: 1, column: 7 }));
    }

    #[test]
    fn the_runtimes_frames_are_left_out() {
        let stack = "    at set (prelude.js:60:26)\n    at parse (native)\n    at <anonymous> (handler.js:2:3)\n    at \
                     apply (native)\n    at start (prelude.js:172:106)\n";
        let failed = from_guest(error("Error", "x", Some(stack)), Some("\n  f()"), Evidence::default());
        assert_eq!(failed.stack.as_deref(), Some("    at parse (native)\n    at <anonymous> (handler.js:2:3)\n"));
        // Nothing of the handler's: nothing left.
        let failed =
            from_guest(error("Error", "x", Some("    at start (prelude.js:1:1)\n")), None, Evidence::default());
        assert_eq!(failed.stack, None);
    }

    #[test]
    fn a_function_named_like_a_frame_is_not_the_frames_position() {
        // The name comes first: the frame's own position is the last, and ends the frame.
        let stack = "    at x (handler.js:2:4) (handler.js:3:16)
    at f (prelude.js:1:1) (handler.js:5:2)
";
        assert_eq!(handler_location(stack), Some(Location { line: 3, column: 16 }));
        let failed = from_guest(error("Error", "x", Some(stack)), None, Evidence::default());
        assert_eq!(failed.stack.as_deref(), Some(stack), "no frame is taken for the prelude's");
        assert_eq!(
            handler_location(
                "    at f (lib (1).js:2:3)
    at g (handler.js:4:1)
"
            ),
            Some(Location { line: 4, column: 1 })
        );
    }

    #[test]
    fn a_library_whose_name_ends_like_the_handlers_file_is_not_the_handler() {
        let stack = "    at helper (lib/my-handler.js:2:10)\n    at <anonymous> (handler.js:3:8)\n";
        let failed =
            from_guest(error("TypeError", "x", Some(stack)), Some("\n\nreturn helper({});"), Evidence::default());
        assert_eq!(failed.location, Some(Location { line: 3, column: 8 }));
        assert_eq!(failed.snippet.as_deref(), Some("return helper({});"));
        assert_eq!(failed.stack.as_deref(), Some(stack));
    }

    #[test]
    fn a_thrown_value_with_no_message_says_so() {
        let failed = from_guest(error("", "", None), None, Evidence::default());
        assert_eq!(
            (failed.code, failed.message.as_str()),
            (ErrorCode::RuntimeError, "the handler threw a value with no message")
        );
        let failed = from_guest(error("Error", "", None), None, Evidence::default());
        assert_eq!(failed.message, "Error");
    }

    #[test]
    fn an_empty_stack_is_no_stack() {
        let failed = from_guest(error("TypeError", "circular reference", Some("")), None, Evidence::default());
        assert_eq!((failed.stack, failed.location), (None, None));
    }

    #[test]
    fn only_the_engines_evidence_chooses_an_engine_code() {
        let denied = Evidence { denied: true, unknown_extension: true };
        let none = Evidence::default();
        // What a handler can throw: names, messages and codes of its choosing.
        for (name, message, code) in [
            ("InternalError", "out of memory", None),
            ("RangeError", "Maximum call stack size exceeded", None),
            ("InternalError", "boom", None),
            ("SyntaxError", "unexpected token", None),
            ("Error", "mine", Some("TIMEOUT")),
            ("Error", "mine", Some("PERMISSION_DENIED")),
            ("Error", "mine", Some("INVALID_ARGUMENT")),
            ("Error", "mine", Some("MEMORY_LIMIT")),
        ] {
            let thrown = GuestError { code: code.map(Into::into), ..error(name, message, None) };
            assert_eq!(classify(&thrown, denied), ErrorCode::RuntimeError, "{thrown:?}");
            let described = from_guest(thrown, None, denied);
            assert_eq!(described.handler_code.as_deref(), code, "the handler's own code is kept");
        }
        let raised = |code: ErrorCode| GuestError { raised: Some(code.as_str().into()), ..error("Error", "x", None) };
        assert_eq!(classify(&raised(ErrorCode::PermissionDenied), denied), ErrorCode::PermissionDenied);
        assert_eq!(
            classify(&raised(ErrorCode::PermissionDenied), none),
            ErrorCode::RuntimeError,
            "a denial the host did not record"
        );
        assert_eq!(classify(&raised(ErrorCode::UnknownExtension), denied), ErrorCode::UnknownExtension);
        assert_eq!(
            classify(&raised(ErrorCode::UnknownExtension), none),
            ErrorCode::RuntimeError,
            "an unknown call the host did not refuse"
        );
        assert_eq!(classify(&raised(ErrorCode::Timeout), denied), ErrorCode::RuntimeError);
        let syntax = GuestError { at_load: true, ..error("SyntaxError", "unexpected token", None) };
        assert_eq!(classify(&syntax, none), ErrorCode::SyntaxError);
        let internal = GuestError { internal: true, ..error("InternalError", "malformed input", None) };
        assert_eq!(classify(&internal, none), ErrorCode::Internal);
        let past_the_compilers_limits =
            GuestError { at_load: true, ..error("InternalError", "unexpected ellipsis token", None) };
        assert_eq!(classify(&past_the_compilers_limits, none), ErrorCode::SyntaxError);
    }

    #[test]
    fn snippet_is_the_source_line() {
        let at = |line, column| Location { line, column };
        assert_eq!(snippet("a\n  b();  \nc", at(2, 3)).as_deref(), Some("  b();"));
        assert_eq!(snippet("a", at(5, 1)), None);
    }

    #[test]
    fn a_long_line_is_cut_around_the_column() {
        let at = |column| Location { line: 2, column };
        // One minified line of 100,000 characters, `é` among them (two bytes each).
        let line: String = (0..100_000).map(|i| if i % 7 == 0 { 'é' } else { 'x' }).collect();
        let source = format!("first\n{line}\nlast");
        let middle = snippet(&source, at(50_001)).unwrap();
        let kept: String = line.chars().skip(49_900).take(SNIPPET_CHARS).collect();
        assert_eq!(middle, format!("…{kept}…"));
        let start = snippet(&source, at(3)).unwrap();
        assert_eq!(start, format!("{}…", line.chars().take(SNIPPET_CHARS).collect::<String>()));
        let end = snippet(&source, at(100_000)).unwrap();
        assert_eq!(end, format!("…{}", line.chars().skip(100_000 - SNIPPET_CHARS).collect::<String>()));
        let short = "a".repeat(SNIPPET_CHARS);
        assert_eq!(snippet(&short, Location { line: 1, column: 150 }).unwrap(), short, "a line that fits is whole");
    }
}
