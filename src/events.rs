//! What a run tells the outside world while it works: the plan, each step
//! starting, progressing, finishing or failing, and a closing summary. The
//! CLI turns these into a live view, plain lines or newline-delimited JSON;
//! the library only emits them.

use serde::Serialize;

use crate::plan::Plan;

/// One thing that happened. Serialized as one JSON object per line with an
/// `event` field naming the variant (see README "JSON events").
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The plan about to be carried out.
    Plan { plan: Plan },
    /// A step started.
    StepStarted {
        step: String,
        action: String,
        expected_s: f64,
    },
    /// A running step said something ("2/3 pods ready").
    StepProgress { step: String, message: String },
    /// A step finished.
    StepFinished {
        step: String,
        action: String,
        elapsed_s: f64,
    },
    /// A step failed; dependents will not run.
    StepFailed {
        step: String,
        action: String,
        elapsed_s: f64,
        error: String,
    },
    /// A step was not run (a dependency failed, or the run was interrupted).
    StepSkipped { step: String, reason: String },
    /// A warning that does not stop the run.
    Warning { message: String },
    /// The end of a command.
    Summary {
        command: String,
        ok: bool,
        changed: usize,
        failed: usize,
        skipped: usize,
        elapsed_s: f64,
        message: String,
    },
}

/// Where events go.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: &Event);
}

/// Drops every event (library callers that only want the returned data).
pub struct Quiet;

impl EventSink for Quiet {
    fn emit(&self, _event: &Event) {}
}
