//! `nexus check`: capability inference, from JavaScript or (by the `.ts` extension) TypeScript.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use super::{UsageError, input, print_json};

pub fn check(handler: &Path) -> Result<ExitCode, UsageError> {
    let (language, source) = input::handler(handler)?;
    match nexus::Runtime::infer_capabilities_in(&source, language) {
        Ok(inference) => {
            print_json(&serde_json::to_value(&inference)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(nexus::InferenceError::Syntax { message, line, column }) => {
            let snippet = source.lines().nth((line as usize).saturating_sub(1)).unwrap_or_default();
            print_json(&json!({
                "error": {
                    "code": nexus::ErrorCode::SyntaxError,
                    "message": message,
                    "location": { "line": line, "column": column },
                    "snippet": snippet,
                }
            }));
            Ok(ExitCode::FAILURE)
        }
        Err(too_large @ nexus::InferenceError::TooLarge { .. }) => Err(UsageError(too_large.to_string())),
    }
}
