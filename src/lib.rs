//! howdah: one declarative file to stand up, verify and tear down a
//! Pachyderm environment (cluster, bucket, identity, runtime).
//!
//! The library holds everything but the command line: the stack file
//! (`spec`), the plan, the DAG engine, the state file, the Pachyderm
//! runtime on Kubernetes, and the operations (`ops`) that tie them
//! together and return data. Clouds live in the provider crates.

pub mod engine;
pub mod events;
pub mod ops;
pub mod plan;
pub mod runtime;
pub mod saved_plan;
pub mod spec;
pub mod state;
pub mod text;
pub mod timeline;
