//! TypeScript handlers: their types stripped by oxc's transformer, with the source map that
//! puts every location an execution reports back into the TypeScript the author wrote.
//!
//! A handler is the body of an async function (see `nexus_abi::HANDLER_PREFIX`). Its
//! TypeScript is parsed inside that same wrapper, so `return`, `await` and the handler API
//! mean here what they mean at run time; the transformer removes types (and turns `enum`s and
//! parameter properties into JavaScript), and the code generator prints the function's body back with a
//! source map. Nothing is type-checked: a type error is not an error here.
//!
//! ```
//! let stripped = nexus_typescript::strip_types("const n: number = 2;\nreturn n as number;").unwrap();
//! assert!(stripped.code.contains("return n"));
//! // `return` is on line 2 of the TypeScript, whatever line it landed on in the JavaScript.
//! let line = stripped.code.lines().position(|l| l.contains("return")).unwrap() as u32 + 1;
//! assert_eq!(stripped.map.original(line, 1).unwrap().line, 2);
//! ```

mod enums;
mod inference;
mod source_map;
mod strip;

pub use enums::MAX_ENUM_TEXT;
pub use inference::infer_capabilities;
pub use source_map::{Position, SourceMap};
pub use strip::{MAX_SOURCE_BYTES, Stripped, SyntaxError, TRANSFORMER, strip_types};

/// The file name the source map gives the TypeScript (and stack frames, once mapped).
pub const TYPESCRIPT_FILE: &str = "handler.ts";
