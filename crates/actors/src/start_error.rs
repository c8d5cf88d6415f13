//! Why a runtime did not start: [`StartError`], the error of [`crate::runtime::Runtime::start`].

use crate::engine::{ConfigError, PreloadError};

/// Why [`crate::runtime::Runtime::start`] failed. Nothing is left running.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StartError {
    /// A preloaded library did not load: its name, the line and the message.
    Preload(PreloadError),
    /// The configuration cannot be used: a pool of no instances, or one larger than the
    /// machine's address space allows, a default memory limit outside what the snapshot needs
    /// and the largest limit, a guest or previous guest image that does not load, or a
    /// suspension store that cannot be opened (a durable one needs `suspension_keys`).
    Config(String),
    /// The engine (wasmtime, the compiled guest) or the runtime's threads did not start.
    Engine(String),
}

impl StartError {
    /// An engine's start error: the library's when a preloaded one did not load, the
    /// configuration's when it cannot be used.
    pub(crate) fn engine(error: wasmtime::Error) -> Self {
        let error = match error.downcast::<PreloadError>() {
            Ok(preload) => return StartError::Preload(preload),
            Err(error) => error,
        };
        match error.downcast::<ConfigError>() {
            Ok(ConfigError(message)) => StartError::Config(message),
            Err(error) => StartError::Engine(format!("{error:#}")),
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Preload(error) => write!(f, "{error}"),
            StartError::Config(message) => write!(f, "the configuration cannot be used: {message}"),
            StartError::Engine(message) => write!(f, "the engine did not start: {message}"),
        }
    }
}

impl std::error::Error for StartError {}
