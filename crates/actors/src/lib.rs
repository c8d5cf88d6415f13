//! The Nexus engine and (in time) its actors.
//!
//! * [`engine`]: wasmtime configured for a fresh instance per execution from a Wizer snapshot,
//!   with timeouts, memory and stack limits; `execute`, `resume` and `precompile`.

pub mod engine;
