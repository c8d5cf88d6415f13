//! Errors the binding rejects a Promise (or throws) with: a JavaScript `Error` whose `code` is
//! one of the product's error codes (see the README's result format).

use napi::bindgen_prelude::{JsObjectValue, Object, Unknown};
use napi::{Env, JsError};
use nexus_abi::ErrorCode;
use nexus_actors::Refusal;
use nexus_actors::engine::{ExecutionError, Location};

/// A request the binding refuses, or that the runtime refused before running any handler code.
#[derive(Debug)]
pub struct BindingError {
    pub code: ErrorCode,
    pub message: String,
    pub location: Option<Location>,
    /// The source line at `location`.
    pub snippet: Option<String>,
}

impl BindingError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        BindingError { code, message: message.into(), location: None, snippet: None }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        BindingError::new(ErrorCode::InvalidArgument, message)
    }

    /// Builds the JavaScript `Error`: `message`, `code` and, for syntax errors, `location` and
    /// `snippet`.
    pub fn into_js<'env>(self, env: &'env Env) -> napi::Result<Unknown<'env>> {
        let error = JsError::from(napi::Error::new(self.code.as_str(), self.message)).into_unknown(*env);
        if let Some(Location { line, column }) = self.location {
            // SAFETY: `cast` does not check the type: `error` is the `Error` object `JsError`
            // just made in this environment, an object.
            let mut object: Object = unsafe { error.cast() }?;
            let mut location = Object::new(env)?;
            location.set_named_property("line", line)?;
            location.set_named_property("column", column)?;
            object.set_named_property("location", location)?;
            if let Some(snippet) = self.snippet {
                object.set_named_property("snippet", snippet)?;
            }
        }
        Ok(error)
    }

    /// The rejection napi-rs raises for this error: the JavaScript object itself, so `code`
    /// and `location` reach the caller.
    pub fn into_napi(self, env: &Env) -> napi::Error {
        match self.into_js(env) {
            Ok(error) => napi::Error::from(error),
            Err(error) => error,
        }
    }
}

impl From<ExecutionError> for BindingError {
    fn from(error: ExecutionError) -> Self {
        BindingError { code: error.code, message: error.message, location: error.location, snippet: error.snippet }
    }
}

/// A request or resume the runtime refused: the binding rejects with it instead of resolving
/// a result.
impl From<Refusal> for BindingError {
    fn from(refusal: Refusal) -> Self {
        BindingError::new(refusal.code, refusal.message)
    }
}

pub type BindingResult<T> = Result<T, BindingError>;
