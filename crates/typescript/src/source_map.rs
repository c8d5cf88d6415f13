//! From positions in the JavaScript the guest ran to positions in the TypeScript.

use std::borrow::Cow;

use nexus_abi::HANDLER_PREFIX;
use oxc_sourcemap::Token;

use crate::TYPESCRIPT_FILE;

/// A standard source map (version 3) from the stripped JavaScript body to the TypeScript body,
/// holding the TypeScript itself (`sourcesContent`): all an error report needs, so it can
/// travel with precompiled bytecode.
#[derive(Debug, Clone)]
pub struct SourceMap {
    map: oxc_sourcemap::SourceMap<'static>,
}

/// A 1-based line and column (in characters) in the TypeScript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl SourceMap {
    /// From the code generator's map, whose original positions are in the wrapped source
    /// (the handler behind `HANDLER_PREFIX` on its first line), to one in the handler's own.
    pub(crate) fn from_wrapped(map: &oxc_sourcemap::SourceMap<'_>, source: &str) -> Self {
        let prefix = HANDLER_PREFIX.len() as u32;
        let tokens = map
            .get_tokens()
            .map(|token| {
                let column = match token.get_src_line() {
                    0 => token.get_src_col().saturating_sub(prefix),
                    _ => token.get_src_col(),
                };
                Token::new(token.get_dst_line(), token.get_dst_col(), token.get_src_line(), column, Some(0), None)
            })
            .collect();
        let map = oxc_sourcemap::SourceMap::new(
            None,
            Vec::new(),
            None,
            vec![Cow::Borrowed(TYPESCRIPT_FILE)],
            vec![Some(Cow::Owned(source.to_owned()))],
            tokens,
            None,
        );
        SourceMap { map }
    }

    /// The map as JSON (the source map format, version 3).
    pub fn to_json(&self) -> String {
        self.map.to_json_string()
    }

    /// A map from [`SourceMap::to_json`]. Anything else (not a source map, or not one source
    /// with its content) is refused.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let map = oxc_sourcemap::SourceMap::from_json_string(json).map_err(|e| format!("not a source map: {e:?}"))?;
        if map.get_sources().len() != 1 || map.get_source_content(0).is_none() {
            return Err("not the source map of one TypeScript handler with its source".into());
        }
        Ok(SourceMap { map: map.into_owned() })
    }

    /// The TypeScript the map points into.
    pub fn source(&self) -> &str {
        self.map.get_source_content(0).unwrap_or_default()
    }

    /// The TypeScript position of a 1-based line and column of the JavaScript body: that of
    /// the nearest mapped token at or before it on its line (the line's first token when the
    /// column comes before it). `None` for a line the map says nothing about.
    pub fn original(&self, line: u32, column: u32) -> Option<Position> {
        let (line, column) = (line.checked_sub(1)?, column.saturating_sub(1));
        let tokens: Vec<Token> = self.map.get_tokens().collect();
        let after = tokens.partition_point(|t| (t.get_dst_line(), t.get_dst_col()) <= (line, column));
        let token = match after.checked_sub(1).map(|i| tokens[i]) {
            Some(token) if token.get_dst_line() == line => token,
            _ => *tokens.get(after).filter(|token| token.get_dst_line() == line)?,
        };
        let source_line = self.source().lines().nth(token.get_src_line() as usize).unwrap_or_default();
        Some(Position { line: token.get_src_line() + 1, column: chars_before(source_line, token.get_src_col()) + 1 })
    }
}

/// Characters in the first `utf16_units` UTF-16 units of `line` (source map columns count
/// UTF-16 units; locations count characters).
fn chars_before(line: &str, utf16_units: u32) -> u32 {
    let mut units = 0;
    let mut chars = 0;
    for c in line.chars() {
        if units >= utf16_units {
            break;
        }
        units += c.len_utf16() as u32;
        chars += 1;
    }
    chars + utf16_units.saturating_sub(units)
}

#[cfg(test)]
mod tests {
    use crate::strip_types;

    use super::*;

    fn js_line_of(code: &str, needle: &str) -> u32 {
        code.lines().position(|l| l.contains(needle)).expect("the needle is in the code") as u32 + 1
    }

    #[test]
    fn lines_map_back_through_removed_types() {
        let ts = "interface A {\n  x: number;\n}\ntype B = A | null;\nconst a: B = { x: 1 };\nthrow new Error('no');";
        let stripped = strip_types(ts).unwrap();
        let line = js_line_of(&stripped.code, "throw");
        assert_eq!(stripped.map.original(line, 1), Some(Position { line: 6, column: 1 }));
        let line = js_line_of(&stripped.code, "const a");
        assert_eq!(stripped.map.original(line, 1).map(|p| p.line), Some(5));
    }

    #[test]
    fn the_first_line_is_unshifted_and_unicode_counts_characters() {
        let stripped = strip_types("const s: string = 'é€😀'; const t: number = s.length;").unwrap();
        let column = stripped.code.find("const t").unwrap() as u32 + 1;
        // `const t` is after 24 characters (the emoji is two UTF-16 units, one character).
        let position = stripped.map.original(1, column - 4).unwrap();
        assert_eq!(position.line, 1);
        assert!(position.column <= 26, "{position:?}");
        assert_eq!(stripped.map.original(1, 1), Some(Position { line: 1, column: 1 }));
    }

    #[test]
    fn json_round_trips_and_other_json_is_refused() {
        let stripped = strip_types("const n: number = 1;\nreturn n;").unwrap();
        let back = SourceMap::from_json(&stripped.map.to_json()).unwrap();
        assert_eq!(back.source(), "const n: number = 1;\nreturn n;");
        assert_eq!(back.original(2, 1), stripped.map.original(2, 1));
        assert!(SourceMap::from_json("{}").is_err());
        assert!(SourceMap::from_json("not json").is_err());
        assert!(SourceMap::from_json(r#"{"version":3,"sources":[],"names":[],"mappings":""}"#).is_err());
    }
}
