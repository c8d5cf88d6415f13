//! Capability inference for TypeScript: the same analysis as for JavaScript, run on the
//! stripped code, with every location put back into the TypeScript.

use nexus_host_fns::{Inference, InferenceError, Warning};

use crate::strip::strip_types;

/// Infers the capability tokens a TypeScript handler body needs (see
/// `nexus_host_fns::infer_capabilities`); locations are the TypeScript's.
pub fn infer_capabilities(source: &str) -> Result<Inference, InferenceError> {
    if source.len() > nexus_host_fns::inference::MAX_SOURCE_BYTES {
        return Err(InferenceError::TooLarge { bytes: source.len() });
    }
    let stripped = strip_types(source).map_err(|error| InferenceError::Syntax {
        message: error.message,
        line: error.line,
        column: error.column,
    })?;
    let mut inference = nexus_host_fns::infer_capabilities(&stripped.code)?;
    for warning in &mut inference.warnings {
        let Warning { line, column, .. } = *warning;
        // Every line of the stripped code comes from a mapped TypeScript statement.
        if let Some(position) = stripped.map.original(line, column) {
            (warning.line, warning.column) = (position.line, position.column);
        }
    }
    Ok(inference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typescript_needs_what_its_javascript_needs() {
        let source = "interface S { count: number }\nconst n = ($state.count as number) + 1;\n\
                      $state.total = n;\nconst key: string = $args.k;\nreturn $state[key];";
        let inference = infer_capabilities(source).unwrap();
        let tokens: Vec<String> = inference.capabilities.iter().map(ToString::to_string).collect();
        assert_eq!(tokens, ["state:read:count", "state:write:total"]);
        assert_eq!(inference.warnings.len(), 1, "{inference:?}");
        assert_eq!(inference.warnings[0].line, 5, "{inference:?}");
    }

    #[test]
    fn a_typescript_syntax_error_is_a_syntax_error_in_the_typescript() {
        let error = infer_capabilities("const a: number = 1;\nconst b: = 2;").unwrap_err();
        assert!(matches!(error, InferenceError::Syntax { line: 2, .. }), "{error:?}");
    }
}
