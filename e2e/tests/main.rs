//! End-to-end tests of the `howdah` binary against the Kubernetes API fake
//! (e2e/kube-fake, a test double: no real API server can run here) with its
//! pachd stand-in, so verification runs for real over port-forward + gRPC.

mod support;

mod aws;

mod cli;
mod console;
mod corpus;
mod diagnostics;
mod enterprise;
mod faults;
mod hostile;
mod json_events;
mod lifecycle;
mod real_api;
mod recorded;
mod resume;
mod safe_destroy;
mod sandbox_demo;
mod saved_plan;
mod shared_state;
mod state_safety;
mod storage_check;
mod teardown;
