//! A library preloaded into the snapshot every execution starts from (see [`super::preload`]),
//! and the error of one that stops the engine's start.

use nexus_abi::{HANDLER_FILE, PRELUDE_FILE};
use nexus_typescript::TYPESCRIPT_FILE;

/// A script evaluated into the snapshot before any handler runs. Its global declarations are
/// visible to every handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    /// What errors and stack frames call the library (for the CLI, its path as given).
    pub name: String,
    /// A classic script (not a module), evaluated in sloppy mode as a `<script>` would be: a
    /// UMD bundle defines its global.
    pub source: String,
}

impl Library {
    pub fn new(name: impl Into<String>, source: impl Into<String>) -> Self {
        Library { name: name.into(), source: source.into() }
    }

    /// Errors and stack frames tell libraries apart by name: each needs one of its own, not
    /// empty, on one line, and not a name the runtime's own frames use.
    pub(super) fn check_names(libraries: &[Library]) -> Result<(), PreloadError> {
        let refused = |library: String, message: String| PreloadError { library, line: None, column: None, message };
        for (index, library) in libraries.iter().enumerate() {
            let name = &library.name;
            if name.is_empty() {
                return Err(refused(
                    format!("number {}", index + 1),
                    "its name is empty: every library needs one".into(),
                ));
            }
            if name.chars().any(char::is_control) {
                return Err(refused(
                    format!("{name:?}"),
                    "its name has a control character (a line break, a tab...)".into(),
                ));
            }
            if [HANDLER_FILE, PRELUDE_FILE, TYPESCRIPT_FILE].contains(&name.as_str()) {
                return Err(refused(
                    name.clone(),
                    "stack frames of the handler or of the runtime are named so: a library needs another name".into(),
                ));
            }
            if libraries[..index].iter().any(|earlier| earlier.name == *name) {
                return Err(refused(name.clone(), "another library has the same name: each needs its own".into()));
            }
        }
        Ok(())
    }
}

/// A library that stopped the start: it failed to parse, threw, never finished, or reached
/// the host while it was evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("preloading library {library}{}: {message}", at(*line, *column))]
pub struct PreloadError {
    /// The library's name, as configured.
    pub library: String,
    /// Where in the library, when the error says (1-based).
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub message: String,
}

fn at(line: Option<u32>, column: Option<u32>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
        (Some(line), None) => format!(" at line {line}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_the_library_and_where() {
        let error = PreloadError { library: "lib/x.js".into(), line: Some(3), column: Some(7), message: "boom".into() };
        assert_eq!(error.to_string(), "preloading library lib/x.js at line 3, column 7: boom");
    }

    #[test]
    fn each_library_needs_a_name_of_its_own_on_one_line() {
        let names = |names: &[&str]| {
            let libraries: Vec<Library> = names.iter().map(|name| Library::new(*name, "1")).collect();
            Library::check_names(&libraries).map_err(|error| error.to_string())
        };
        assert_eq!(names(&["a.js", "b.js", "lib/a.js"]), Ok(()));
        assert_eq!(
            names(&["a.js", ""]),
            Err("preloading library number 2: its name is empty: every library needs one".into())
        );
        assert_eq!(
            names(&["a.js", "b.js", "a.js"]),
            Err("preloading library a.js: another library has the same name: each needs its own".into())
        );
        assert!(
            names(&["a\nb.js"]).unwrap_err().starts_with("preloading library \"a\\nb.js\": its name has a control")
        );
        for own in ["handler.js", "prelude.js", "handler.ts"] {
            assert!(names(&[own]).unwrap_err().contains("stack frames of the handler or of the runtime"), "{own}");
        }
        assert_eq!(names(&["lib/handler.js", "my-prelude.js"]), Ok(()));
    }
}
