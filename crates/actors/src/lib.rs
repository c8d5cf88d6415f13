//! The Nexus engine and the actor system around it.
//!
//! * [`engine`]: wasmtime configured for a fresh instance per execution from a Wizer snapshot,
//!   with timeouts, memory and stack limits; `execute`, `resume` and `precompile`.
//! * [`runtime`]: the Rust API over all of it, configured by [`config`]; what it refuses
//!   without running anything is a [`Refusal`].
//! * [`supervisor`]: the actor that owns the pool: the same requests as messages, the expiry
//!   of parked suspensions, precompilation, statistics, shutdown.
//! * The path of a request on the caller's thread, through the pool of instance actors
//!   (`pool`): `admission` (an idle actor, a place in the bounded queue, or `OVERLOADED`),
//!   `step` (the hand-offs to the actor's worker and back, and the booking of the step's end),
//!   `workers` (the worker threads and the choice of one), `instance_actor` (runs executions on
//!   a worker and holds a parked one's store), `slot_reset` (who resets a finished instance's
//!   memory slot).
//! * [`metrics`]: aggregates statistics (batched by the pool) and renders them for Prometheus.
//! * [`spin`]: how its threads wait for work without paying for a sleeping CPU.
//! * [`suspension`]: suspended executions beyond their instance: hibernation into sealed
//!   images, the stores that keep them, and the lifecycle of a suspension.

mod admission;
pub mod config;
pub mod engine;
mod instance_actor;
pub mod metrics;
mod pool;
mod refusal;
pub mod runtime;
mod slot_reset;
pub mod spin;
pub mod start_error;
mod step;
pub mod supervisor;
pub mod suspension;
mod workers;

pub use config::RuntimeConfig;
pub use refusal::Refusal;
pub use start_error::StartError;
