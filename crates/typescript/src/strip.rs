//! Stripping types: TypeScript handler body in, JavaScript handler body and source map out.

use std::path::Path;

use nexus_abi::{HANDLER_PREFIX, HANDLER_SUFFIX};
use oxc_allocator::Allocator;
use oxc_ast::ast::{Expression, Program, Statement};
use oxc_codegen::{Codegen, CodegenOptions, CommentOptions};
use oxc_parser::{ParseOptions, Parser};
use oxc_semantic::SemanticBuilder;
use oxc_span::{GetSpan, SourceType};
use oxc_transformer::{TransformOptions, Transformer};

use crate::TYPESCRIPT_FILE;
use crate::source_map::SourceMap;

/// Names the transformer, its version and how its output is printed: the JavaScript (and so
/// the bytecode and the source map) of a TypeScript source depends on them, so caches key
/// TypeScript entries by it too.
pub const TRANSFORMER: &str = "oxc_transformer 0.146.0, printed unindented";

/// Largest TypeScript source accepted (the same bound as capability inference's).
pub const MAX_SOURCE_BYTES: usize = nexus_host_fns::inference::MAX_SOURCE_BYTES;

/// A TypeScript handler body as JavaScript.
#[derive(Debug, Clone)]
pub struct Stripped {
    /// The body of the async function, as JavaScript.
    pub code: String,
    /// From positions in `code` to positions in the TypeScript.
    pub map: SourceMap,
}

/// The TypeScript does not parse as the body of an async function. `line` and `column` are
/// 1-based, in the TypeScript source (the column in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error at {line}:{column}: {message}")]
pub struct SyntaxError {
    pub message: String,
    pub line: u32,
    pub column: u32,
}

/// Strips the types of `source`, a TypeScript handler body.
///
/// oxc parses and transforms recursively, so this runs on a thread whose stack grows with the
/// source, as capability inference does.
pub fn strip_types(source: &str) -> Result<Stripped, SyntaxError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(SyntaxError {
            message: format!("the handler is {} bytes; at most {MAX_SOURCE_BYTES} are accepted", source.len()),
            line: 1,
            column: 1,
        });
    }
    let stack_size = (16 << 20) + source.len() * 1024;
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("nexus-typescript".into())
            .stack_size(stack_size)
            .spawn_scoped(scope, || strip_on_this_thread(source))
            .expect("spawning the TypeScript thread")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn strip_on_this_thread(source: &str) -> Result<Stripped, SyntaxError> {
    let wrapped = format!("{HANDLER_PREFIX}{source}{HANDLER_SUFFIX}");
    let locate = |offset: u32| locate(source, offset as usize);
    let allocator = Allocator::default();
    // The guest evaluates the wrapped handler as a classic script; TypeScript syntax besides.
    let source_type = SourceType::ts().with_script(true);
    let options = ParseOptions { preserve_parens: false, ..ParseOptions::default() };
    let parsed = Parser::new(&allocator, &wrapped, source_type).with_options(options).parse();
    if let Some(error) = parsed.diagnostics.first() {
        return Err(locate(offset(error)).error(error.message.to_string()));
    }
    let mut program = parsed.program;
    let Some((_, statements)) = handler_statements(&mut program) else {
        let end = program.body.first().map_or(0, |statement| statement.span().end);
        return Err(locate(end).error("the handler closes its enclosing function early".into()));
    };
    if let Some((start, message)) = nexus_host_fns::inference::not_handler_code(statements) {
        return Err(locate(start).error(message));
    }
    if let Some((start, bytes)) = crate::enums::too_large(&program) {
        let message = format!(
            "the handler's enums would be written out as up to {bytes} bytes of JavaScript, more than the {} allowed \
             (members built from others are folded to their values, and each use of a const enum's is replaced \
             by its value)",
            crate::MAX_ENUM_TEXT
        );
        return Err(locate(start).error(message));
    }
    let semantic = SemanticBuilder::new_compiler().with_enum_eval(true).build(&program);
    if let Some(error) = semantic.diagnostics.first() {
        return Err(locate(offset(error)).error(error.message.to_string()));
    }
    let scoping = semantic.semantic.into_scoping();
    let transformed = Transformer::new(&allocator, Path::new(TYPESCRIPT_FILE), &TransformOptions::default())
        .build_with_scoping(scoping, &mut program);
    if let Some(error) = transformed.diagnostics.first() {
        return Err(locate(offset(error)).error(error.message.to_string()));
    }
    // Print the function's body alone: the guest wraps it again.
    let body = handler_statements(&mut program).expect("the transformer keeps the wrapper");
    let directives = std::mem::replace(body.0, oxc_allocator::Vec::new_in(&&allocator));
    let statements = std::mem::replace(body.1, oxc_allocator::Vec::new_in(&&allocator));
    program.directives = directives;
    program.body = statements;
    // Without indentation: it grows with the nesting on every line, so 40 KB of nested blocks
    // printed 25 MB (and 200 KB took the process past 17 GB).
    let options = CodegenOptions {
        source_map_path: Some(TYPESCRIPT_FILE.into()),
        comments: CommentOptions::disabled(),
        indent_width: 0,
        ..CodegenOptions::default()
    };
    let printed = Codegen::new().with_options(options).build(&program);
    let map = printed.map.expect("a source map is generated when its path is set");
    Ok(Stripped { code: printed.code, map: SourceMap::from_wrapped(&map, source) })
}

type Body<'p, 'a> =
    (&'p mut oxc_allocator::Vec<'a, oxc_ast::ast::Directive<'a>>, &'p mut oxc_allocator::Vec<'a, Statement<'a>>);

/// The directives and statements of the handler's function inside the parsed wrapper, or
/// `None` if the handler escaped it (`}); other(); (async function () {`).
fn handler_statements<'p, 'a>(program: &'p mut Program<'a>) -> Option<Body<'p, 'a>> {
    let [Statement::ExpressionStatement(statement)] = program.body.as_mut_slice() else {
        return None;
    };
    match &mut statement.expression {
        Expression::FunctionExpression(function) => {
            let body = function.body.as_deref_mut()?;
            Some((&mut body.directives, &mut body.statements))
        }
        _ => None,
    }
}

/// Where a diagnostic points: its primary label (a redeclaration's second declaration, not
/// the first), else its first.
fn offset(error: &oxc_diagnostics::OxcDiagnostic) -> u32 {
    let labels = error.labels.as_slice();
    labels.iter().find(|label| label.primary()).or(labels.last()).map_or(0, |label| label.offset())
}

/// A position in the TypeScript source.
struct Located {
    line: u32,
    column: u32,
}

impl Located {
    fn error(self, message: String) -> SyntaxError {
        SyntaxError { message, line: self.line, column: self.column }
    }
}

/// 1-based line and column (in characters) of an offset in the wrapped source: offsets in the
/// prefix are at the start of the handler, offsets in the suffix at its end.
fn locate(source: &str, wrapped_offset: usize) -> Located {
    let offset = wrapped_offset.saturating_sub(HANDLER_PREFIX.len()).min(source.len());
    let before = &source[..source.floor_char_boundary(offset)];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    Located { line: u32::try_from(line).unwrap_or(u32::MAX), column: u32::try_from(column).unwrap_or(u32::MAX) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_go_and_code_stays() {
        let stripped = strip_types(
            "interface P { x: number }\ntype Id = string;\nenum Color { Red, Green }\n\
             function first<T>(items: T[]): T | undefined { return items[0]; }\n\
             const p = ($args as P);\nreturn [first<number>([p?.x ?? 0]), Color.Green];",
        )
        .unwrap();
        assert!(!stripped.code.contains("interface") && !stripped.code.contains(": number"), "{}", stripped.code);
        assert!(stripped.code.contains("Color[\"Green\"]") || stripped.code.contains("Green"), "{}", stripped.code);
        assert!(stripped.code.contains("return [first("), "{}", stripped.code);
    }

    #[test]
    fn deep_nesting_prints_as_much_javascript_as_it_has_typescript() {
        // Indented, 20,000 nested blocks (40 KB) printed 25 MB: the nesting on every line.
        let depth = 20_000;
        let source = format!("{}{}return 1;", "{".repeat(depth), "}".repeat(depth));
        let stripped = strip_types(&source).unwrap();
        assert!(stripped.code.len() < 4 * source.len(), "{} bytes from {}", stripped.code.len(), source.len());
    }

    #[test]
    fn enums_that_would_fold_to_more_text_than_allowed_are_refused_before_they_are_folded() {
        // Each member doubles the last: 30 members under 600 bytes would fold to 8 GB.
        let members: Vec<String> = (1..30).map(|n| format!("M{n} = M{} + M{}", n - 1, n - 1)).collect();
        let source = format!("enum E {{ M0 = 'xxxxxxxx', {} }}\nreturn E.M29.length;", members.join(", "));
        let started = std::time::Instant::now();
        let error = strip_types(&source).unwrap_err();
        assert!(error.message.contains("enums would be written out"), "{error}");
        assert_eq!(error.line, 1, "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
        // A const enum's value is written at every use.
        let value = "x".repeat(100_000);
        let source = format!("const enum C {{ Big = '{value}' }}\nreturn [{}].length;", vec!["C.Big"; 20].join(", "));
        assert!(strip_types(&source).is_err());
        // Ordinary enums and uses are far within it.
        let stripped = strip_types("enum F { A = 'a', B = A + 'b', C = 1 << 2 }\nreturn [F.A, F.B, F.C, F['B']];");
        assert!(stripped.is_ok(), "{stripped:?}");
    }

    #[test]
    fn an_import_equals_require_is_an_import() {
        let error = strip_types("const a = 1;\nimport fs = require('fs');\nreturn a;").unwrap_err();
        assert!(error.message.contains("import"), "{error}");
        assert_eq!(error.line, 2, "{error}");
    }

    #[test]
    fn a_syntax_error_is_located_in_the_typescript() {
        let error = strip_types("const a: number = 1;\nconst b: = 2;\nreturn a;").unwrap_err();
        assert_eq!((error.line, error.column), (2, 10), "{error}");
        let error = strip_types("let x: number = (1;").unwrap_err();
        assert_eq!(error.line, 1, "{error}");
    }

    #[test]
    fn escaping_the_wrapper_is_refused() {
        let error = strip_types("}); globalThis.x = 1; (async function () {").unwrap_err();
        assert!(error.message.contains("closes its enclosing function"), "{error}");
    }
}
