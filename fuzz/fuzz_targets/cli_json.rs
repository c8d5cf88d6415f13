//! The CLI's JSON inputs (`--state`, `--args`, `--scope`, `--ext NAME.METHOD=JSON`), parsed by
//! the CLI's own `src/cli/input.rs` (included as-is), and the trip the parsed values make
//! into the sandbox (MessagePack, as in `RunInput`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// What `input.rs` takes from its parent module in the binary crate.
#[derive(Debug)]
pub struct UsageError(pub String);

impl<E: std::fmt::Display> From<E> for UsageError {
    fn from(error: E) -> Self {
        UsageError(error.to_string())
    }
}

#[allow(dead_code)]
#[path = "../../src/cli/input.rs"]
mod input;

fuzz_target!(|text: &str| {
    // `@FILE` reads a file: not something to point a fuzzer at.
    if text.starts_with('@') {
        return;
    }
    let parsed = input::json(text, "--args");
    assert_eq!(parsed.is_ok(), serde_json::from_str::<Value>(text).is_ok());
    if let Ok(value) = &parsed {
        let back: Value = nexus_abi::decode(&nexus_abi::encode(value)).expect("a parsed value crosses the boundary");
        assert_eq!(&back, value);
        assert_eq!(input::object(text, "--state").is_ok(), value.is_object());
    }
    if let Ok((name, method, value)) = input::extension_answer(text, "--ext") {
        assert_eq!(format!("{name}.{method}={value}"), text);
        assert!(!name.is_empty() && !method.is_empty());
        assert!(!method.contains('.') && !name.contains('=') && !method.contains('='));
    }
});
