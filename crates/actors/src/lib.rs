//! The Nexus engine and the actor system around it.
//!
//! * [`engine`]: wasmtime configured for a fresh instance per execution from a Wizer snapshot,
//!   with timeouts, memory and stack limits; `execute`, `resume` and `precompile`.
//! * [`pool`]: the path of a request on the caller's thread: admission to a pooled instance
//!   actor (or a place in the bounded queue, or `OVERLOADED`), the step on the actor's worker,
//!   the booking of parked suspensions.
//! * [`supervisor`]: the actor that owns the pool: the same requests as messages, the expiry
//!   of parked suspensions, precompilation, statistics, shutdown.
//! * [`instance_actor`]: runs executions on a worker thread and holds a parked one's store.
//! * [`metrics`]: aggregates statistics and renders them for Prometheus.
//! * [`runtime`]: the Rust API over all of it, configured by [`config`].
//! * [`spin`]: how its threads wait for work without paying for a sleeping CPU.
//! * [`suspension`]: suspended executions beyond their instance: hibernation into sealed
//!   images, the stores that keep them, and the lifecycle of a suspension.

pub mod config;
pub mod engine;
pub mod instance_actor;
pub mod metrics;
pub mod pool;
pub mod runtime;
pub mod spin;
pub mod supervisor;
pub mod suspension;

pub use config::RuntimeConfig;
