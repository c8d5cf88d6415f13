//! The Nexus engine and the actor system around it.
//!
//! * [`engine`]: wasmtime configured for a fresh instance per execution from a Wizer snapshot,
//!   with timeouts, memory and stack limits; `execute`, `resume` and `precompile`.
//! * [`supervisor`]: routes [`supervisor::Execute`] requests to pooled instance actors, queues
//!   and refuses (`OVERLOADED`) beyond its bounds, keeps parked suspensions and their expiry.
//! * [`instance_actor`]: runs executions on a worker thread and holds a parked one's store.
//! * [`metrics`]: aggregates statistics and renders them for Prometheus.
//! * [`runtime`]: the Rust API over all of it.
//! * [`spin`]: how its threads wait for work without paying for a sleeping CPU.

pub mod engine;
pub mod instance_actor;
pub mod metrics;
pub mod runtime;
pub mod spin;
pub mod supervisor;
