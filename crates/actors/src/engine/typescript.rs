//! TypeScript handlers in the engine: what a TypeScript source becomes before it is compiled
//! (its types stripped, see [`nexus_typescript`]), how precompiled TypeScript carries its
//! source map with its bytecode, and how the errors of an execution are put back into the
//! coordinates of the source its author wrote ([`Authored`]).

use nexus_abi::{GuestError, HANDLER_FILE};
use nexus_typescript::{SourceMap, TYPESCRIPT_FILE};
use serde::{Deserialize, Serialize};

use super::errors::{self, Evidence};
use super::request::{ExecutionError, Location};
use nexus_abi::ErrorCode;

/// Precompiled TypeScript starts with this magic, then the length of its source map (a
/// little-endian `u32`), the map (JSON), and the guest's bytecode (which starts `NXBC`).
const PRECOMPILED_MAGIC: &[u8; 4] = b"NXTS";

/// The source the author wrote, which error locations, snippets and stack frames point into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Authored {
    JavaScript(String),
    /// TypeScript source. Its source map is made again (by stripping it once more, which is
    /// deterministic) only when an error needs it, so a cached execution does not strip.
    TypeScript(String),
    /// Precompiled TypeScript: the source map (JSON, with the TypeScript inside) that came
    /// with its bytecode.
    Mapped(String),
}

/// The JavaScript of a TypeScript source, or its syntax error in the TypeScript.
pub fn strip(source: &str) -> Result<nexus_typescript::Stripped, ExecutionError> {
    // Refused as JavaScript over the limit is: the request, not the TypeScript, is wrong.
    if source.len() > nexus_typescript::MAX_SOURCE_BYTES {
        let error = nexus_host_fns::InferenceError::TooLarge { bytes: source.len() };
        return Err(ExecutionError::new(ErrorCode::InvalidArgument, error.to_string()));
    }
    let stripped = nexus_typescript::strip_types(source).map_err(|error| {
        errors::syntax_error(source, format!("SyntaxError: {}", error.message), error.line, error.column)
    })?;
    // Stripping adds a little (a space after each comma, enums' values): its JavaScript is
    // held to the same limit, and the refusal says which text passed it.
    if stripped.code.len() > nexus_typescript::MAX_SOURCE_BYTES {
        let message = format!(
            "the handler is {} bytes of TypeScript and {} bytes of JavaScript once its types are stripped; \
             at most {} are accepted",
            source.len(),
            stripped.code.len(),
            nexus_typescript::MAX_SOURCE_BYTES
        );
        return Err(ExecutionError::new(ErrorCode::InvalidArgument, message));
    }
    Ok(stripped)
}

/// Precompiled TypeScript: the source map and the bytecode in one buffer.
pub fn bundle(map: &SourceMap, bytecode: &[u8]) -> Vec<u8> {
    let map = map.to_json();
    let mut bundle = Vec::with_capacity(8 + map.len() + bytecode.len());
    bundle.extend_from_slice(PRECOMPILED_MAGIC);
    bundle.extend_from_slice(&(map.len() as u32).to_le_bytes());
    bundle.extend_from_slice(map.as_bytes());
    bundle.extend_from_slice(bytecode);
    bundle
}

/// Splits precompiled TypeScript into its source map (JSON) and bytecode; `None` for anything
/// else (bytecode of JavaScript goes to the guest as it is). A buffer that says it is
/// precompiled TypeScript but whose map is not one is refused.
pub fn unbundle(bytes: Vec<u8>) -> Result<(Vec<u8>, Option<Authored>), ExecutionError> {
    let Some(rest) = bytes.strip_prefix(PRECOMPILED_MAGIC) else { return Ok((bytes, None)) };
    let refuse = |why: &str| {
        ExecutionError::new(ErrorCode::InvalidArgument, format!("not precompiled TypeScript of this runtime: {why}"))
    };
    let (length, rest) = rest.split_at_checked(4).ok_or_else(|| refuse("truncated"))?;
    let length = u32::from_le_bytes(length.try_into().expect("4 bytes")) as usize;
    let (map, bytecode) = rest.split_at_checked(length).ok_or_else(|| refuse("truncated"))?;
    let map = std::str::from_utf8(map).map_err(|_| refuse("its source map is not UTF-8"))?;
    SourceMap::from_json(map).map_err(|why| refuse(&why))?;
    Ok((bytecode.to_vec(), Some(Authored::Mapped(map.to_owned()))))
}

/// Describes a JavaScript exception in the coordinates of the source its author wrote.
pub fn from_guest(error: GuestError, authored: Option<&Authored>, evidence: Evidence) -> ExecutionError {
    match authored {
        None => errors::from_guest(error, None, evidence),
        Some(Authored::JavaScript(source)) => errors::from_guest(error, Some(source), evidence),
        Some(Authored::TypeScript(source)) => match nexus_typescript::strip_types(source) {
            Ok(stripped) => {
                let error = errors::from_guest(error, Some(&stripped.code), evidence);
                in_typescript(error, &stripped.map, Some(&stripped.code))
            }
            // It was stripped before it could run; a source that no longer strips is not the
            // one that ran.
            Err(_) => unmapped(errors::from_guest(error, None, evidence)),
        },
        Some(Authored::Mapped(json)) => match SourceMap::from_json(json) {
            Ok(map) => in_typescript(errors::from_guest(error, None, evidence), &map, None),
            Err(_) => unmapped(errors::from_guest(error, None, evidence)),
        },
    }
}

/// Puts an error described in the JavaScript's coordinates into the TypeScript's: its
/// location, its snippet (a TypeScript line) and every frame of its stack in the handler's
/// file (renamed `handler.ts`). A location the map says nothing about is dropped rather than
/// given in the wrong coordinates. With the JavaScript `code`, the error's columns are in its
/// characters, and are looked up in the map in UTF-16 units, as source maps count; without
/// it (precompiled TypeScript), they are QuickJS's, UTF-8 bytes, looked up as they are.
pub fn in_typescript(mut error: ExecutionError, map: &SourceMap, code: Option<&str>) -> ExecutionError {
    let units =
        |location: Location| match code.and_then(|code| code.lines().nth(location.line.saturating_sub(1) as usize)) {
            Some(line) => {
                let before = line.chars().take(location.column.saturating_sub(1) as usize);
                before.map(char::len_utf16).sum::<usize>() as u32 + 1
            }
            None => location.column,
        };
    let original = |location: Location| {
        let column = units(location);
        map.original(location.line, column).map(|p| Location { line: p.line, column: p.column })
    };
    error.location = error.location.and_then(original);
    error.snippet = error.location.and_then(|location| errors::snippet(map.source(), location));
    error.stack = error.stack.map(|stack| {
        let frames = stack.split_inclusive('\n').map(|frame| match errors::frame_position(frame) {
            Some((range, location)) => match original(location) {
                Some(Location { line, column }) => {
                    format!("{}{TYPESCRIPT_FILE}:{line}:{column}{}", &frame[..range.start], &frame[range.end..])
                }
                None => frame.to_owned(),
            },
            None => frame.to_owned(),
        });
        frames.collect()
    });
    error
}

/// An error whose source map could not be had: no location, rather than a wrong one.
fn unmapped(mut error: ExecutionError) -> ExecutionError {
    error.location = None;
    error.snippet = None;
    error.stack = error.stack.map(|stack| stack.replace(HANDLER_FILE, &format!("{HANDLER_FILE} (unmapped)")));
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_round_trips_and_a_damaged_one_is_refused() {
        let stripped = nexus_typescript::strip_types("const n: number = 1;\nreturn n;").unwrap();
        let bytes = bundle(&stripped.map, b"NXBC\x01\0\0\0code");
        let (bytecode, authored) = unbundle(bytes.clone()).unwrap();
        assert_eq!(bytecode, b"NXBC\x01\0\0\0code");
        assert!(matches!(authored, Some(Authored::Mapped(_))));
        assert_eq!(unbundle(b"NXBCjs".to_vec()).unwrap(), (b"NXBCjs".to_vec(), None));
        for damaged in [&bytes[..6], &bytes[..20], b"NXTS\x02\0\0\0{}code"] {
            let error = unbundle(damaged.to_vec()).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidArgument, "{error}");
        }
    }

    #[test]
    fn stack_frames_in_the_handler_are_rewritten_others_kept() {
        let ts = "interface A { x: number }\nconst a: A = { x: 1 };\nthrow new Error('x');";
        let stripped = nexus_typescript::strip_types(ts).unwrap();
        let line = stripped.code.lines().position(|l| l.contains("throw")).unwrap() + 1;
        let mut error = ExecutionError::new(ErrorCode::RuntimeError, "Error: x");
        error.location = Some(Location { line: line as u32, column: 1 });
        error.stack = Some(format!("    at f (prelude.js:10:3)\n    at <anonymous> ({HANDLER_FILE}:{line}:1)\n"));
        let error = in_typescript(error, &stripped.map, Some(&stripped.code));
        assert_eq!(error.location, Some(Location { line: 3, column: 1 }));
        assert_eq!(error.snippet.as_deref(), Some("throw new Error('x');"));
        assert_eq!(error.stack.as_deref(), Some("    at f (prelude.js:10:3)\n    at <anonymous> (handler.ts:3:1)\n"));
    }
}
