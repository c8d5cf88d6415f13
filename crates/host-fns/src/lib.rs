//! Capabilities and the host functions of the Nexus guest.
//!
//! * [`capability`]: the token grammar (`state:read:<key>`, `ext:<name>`, ...).
//! * [`checker`]: the set of tokens one execution holds.
//! * [`inference`]: static inference of the tokens a handler needs (oxc parser).
//! * [`host_state`]: the per-execution state every guest request goes through, enforcing
//!   capabilities on the host side and recording mutations, events, view commands, logs and
//!   denials ([`records`]).
//! * [`message_values`]: what a guest message will cost once decoded, judged before decoding it.
//! * [`imports`] / [`wasi`]: the wasm wiring of those requests, and the minimal WASI the
//!   guest's libc needs (a clock and randomness, nothing else).

pub mod capability;
pub mod checker;
pub mod host_state;
pub mod imports;
pub mod inference;
pub mod message_values;
pub mod records;
pub mod wasi;

pub use capability::{Capability, CapabilityError, Kind, Resource};
pub use checker::Checker;
pub use host_state::{ExtensionRegistry, HostState};
pub use imports::HostAccess;
pub use inference::{Inference, InferenceError, Warning, check_handler_body, infer_capabilities};
