//! Command-line inputs: `JSON` inline or `@FILE`, and handler files (JavaScript, or TypeScript
//! by the `.ts` extension).

use std::path::Path;

use nexus::Language;
use serde_json::Value;

use super::UsageError;

/// Parses `JSON` or the contents of `@FILE`; `what` names the option in errors.
pub fn json(text: &str, what: &str) -> Result<Value, UsageError> {
    let (origin, text) = match text.strip_prefix('@') {
        Some(file) => (format!("{what} file {file}"), read(Path::new(file))?),
        None => (what.to_owned(), text.to_owned()),
    };
    serde_json::from_str(&text).map_err(|e| {
        // A bare word is the usual slip: the shell ate no quotes, JSON needs them.
        let bare_word = !text.is_empty() && text.chars().all(|c| c.is_alphanumeric() || "_-. ".contains(c));
        let hint = if bare_word { format!(" (a string is quoted in JSON: '\"{text}\"')") } else { String::new() };
        UsageError(format!("{origin}: invalid JSON: {e}{hint}"))
    })
}

/// Like [`json`], requiring an object.
pub fn object(text: &str, what: &str) -> Result<serde_json::Map<String, Value>, UsageError> {
    match json(text, what)? {
        Value::Object(map) => Ok(map),
        other => Err(UsageError(format!("{what} must be a JSON object, not {other}"))),
    }
}

/// A handler file's language and source: TypeScript when its name ends in `.ts`, `.mts` or
/// `.cts` (the names TypeScript gives its sources), JavaScript otherwise.
pub fn handler(path: &Path) -> Result<(Language, String), UsageError> {
    Ok((language_of(path), read(path)?))
}

fn language_of(path: &Path) -> Language {
    match path.extension().and_then(|extension| extension.to_str()) {
        Some("ts" | "mts" | "cts") => Language::TypeScript,
        _ => Language::JavaScript,
    }
}

pub fn read(path: &Path) -> Result<String, UsageError> {
    std::fs::read_to_string(path).map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))
}

/// Splits `NAME.METHOD=VALUE` (the method is after the last `.` before the `=`).
pub fn extension_answer<'a>(spec: &'a str, option: &str) -> Result<(&'a str, &'a str, &'a str), UsageError> {
    let malformed = || UsageError(format!("{option} {spec:?}: expected NAME.METHOD=VALUE"));
    let (target, value) = spec.split_once('=').ok_or_else(malformed)?;
    let (name, method) = target.rsplit_once('.').ok_or_else(malformed)?;
    if name.is_empty() || method.is_empty() {
        return Err(malformed());
    }
    Ok((name, method, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_answer_splits_at_last_dot_before_equals() {
        assert_eq!(extension_answer("a.b.get={\"x\":1}", "--ext").unwrap(), ("a.b", "get", "{\"x\":1}"));
        assert_eq!(extension_answer("w.get=a=b", "--ext").unwrap(), ("w", "get", "a=b"));
        assert!(extension_answer("nomethod=1", "--ext").is_err());
        assert!(extension_answer("w.get", "--ext").is_err());
        assert!(extension_answer(".get=1", "--ext").is_err());
    }

    #[test]
    fn typescript_is_told_by_the_names_typescript_gives_its_sources() {
        for (name, language) in [
            ("h.ts", Language::TypeScript),
            ("h.mts", Language::TypeScript),
            ("dir.js/h.cts", Language::TypeScript),
            ("h.js", Language::JavaScript),
            ("h.mjs", Language::JavaScript),
            ("h.ts.js", Language::JavaScript),
            ("ts", Language::JavaScript),
        ] {
            assert_eq!(language_of(Path::new(name)), language, "{name}");
        }
    }

    #[test]
    fn a_bare_word_where_json_is_expected_is_told_to_quote_it() {
        let error = json("sunny", "--ext").unwrap_err().0;
        assert!(
            error.starts_with("--ext: invalid JSON: ") && error.ends_with(r#"(a string is quoted in JSON: '"sunny"')"#),
            "{error}"
        );
        assert!(!json("{bad", "--state").unwrap_err().0.contains("quoted"));
        assert_eq!(json("\"sunny\"", "--ext").unwrap(), Value::String("sunny".into()));
    }
}
