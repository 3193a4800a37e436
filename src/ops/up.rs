//! `up`: plan against what is live, then converge: create or repair what
//! is missing or different, wait until ready, verify pachd.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use howdah_provider::{Action, Change, Outputs, Resource};

use super::{
    begin, finish, plan_resources, preflight_and_plan, recorded_outputs, Begun, OpsError, Options,
    Session,
};
use crate::engine::{self, Outcome, RunOptions, RunReport, Step, StepResult};
use crate::events::Event;
use crate::plan::Plan;
use crate::runtime::{self, Runtime};
use crate::saved_plan::{self, SavedPlan};
use crate::state::{ResourceRecord, RunRecord, State, StateWriter, StepTiming};

/// What `up` did.
pub struct UpReport {
    pub plan: Plan,
    pub run: RunReport,
}

/// The resources of a stack for `up`, in one graph: the target's own, then
/// the runtime once the cluster is ready.
pub fn up_graph(
    session: &Session,
    opts: &Options,
    outputs: &Outputs,
) -> (Arc<Runtime>, Vec<Arc<dyn Resource>>) {
    let rt = session.runtime(
        outputs,
        opts.timeout,
        opts.delete_data,
        opts.allow_downgrade,
    );
    let mut resources = session.provider.resources();
    resources.extend(runtime::up_resources(
        &rt,
        &session.provider.cluster_ready_after(),
        opts.verify,
    ));
    (rt, resources)
}

/// The plan `up` would carry out; writes nothing. It sees the outputs
/// earlier runs recorded, as `up` will.
pub async fn plan(session: &Session, opts: &Options) -> Result<Plan, OpsError> {
    Ok(plan_with_inputs(session, opts).await?.0)
}

/// The plan, and the digest of the state records it was made from.
async fn plan_with_inputs(session: &Session, opts: &Options) -> Result<(Plan, String), OpsError> {
    let state = session.recorded_state().await?;
    warn_of_settings(session, opts);
    let outputs = recorded_outputs(state.as_ref());
    let (rt, resources) = up_graph(session, opts, &outputs);
    let (plan, _) = preflight_and_plan(session, opts, async {
        check_references(&rt).await?;
        plan_resources(&session.stack, "up", session.provider.name(), &resources).await
    })
    .await?;
    Ok((
        plan,
        saved_plan::state_digest(state.as_ref().map(|s| &s.resources)),
    ))
}

/// `plan --out FILE`: the plan, written with what it was made from, for
/// `up --plan FILE`.
pub async fn save_plan(session: &Session, opts: &Options) -> Result<SavedPlan, OpsError> {
    let (plan, state_digest) = plan_with_inputs(session, opts).await?;
    Ok(SavedPlan {
        format: saved_plan::FORMAT,
        howdah: env!("CARGO_PKG_VERSION").to_string(),
        written_at: Utc::now(),
        stack_file: session.spec_path.display().to_string(),
        stack_digest: saved_plan::stack_digest(&session.stack),
        state_digest,
        allow_downgrade: opts.allow_downgrade,
        plan,
    })
}

/// `up --plan`: nothing is done unless the saved plan is still the plan.
fn stale(saved: &SavedPlan, why: &str) -> OpsError {
    OpsError::PlanStale(format!(
        "the saved plan of {} no longer holds: {why}.\nNothing was changed; run `howdah plan --out FILE` again, review it, and apply that.",
        saved.stack_file
    ))
}

/// Settings that are valid but leave something not working (the console
/// without pachyderm-proxy), said before the plan.
fn warn_of_settings(session: &Session, opts: &Options) {
    for message in session.stack.pachyderm.warnings() {
        opts.sink.emit(&crate::events::Event::Warning { message });
    }
}

/// Fails before any write when the stack names Secrets that are not there
/// or lack the keys their readers read.
/// Only where the cluster exists before the run (the runtime waits on no
/// target resource); a cluster still to be made has nothing to check, and
/// its pods' wait will name a missing Secret instead.
async fn check_references(rt: &Runtime) -> Result<(), OpsError> {
    if !rt.provider.cluster_ready_after().is_empty() {
        return Ok(());
    }
    let problems = rt.reference_problems().await?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(OpsError::Planning(format!("  {}", problems.join("\n  "))))
    }
}

/// Converges the stack.
pub async fn up(session: &Session, opts: &Options) -> Result<UpReport, OpsError> {
    let Begun {
        lock,
        state,
        outputs,
        started,
    } = begin(session, opts, "up").await?;
    let result = converge(session, opts, state, outputs, started).await;
    finish(lock, opts, result).await
}

/// `up` under the stack's lock.
async fn converge(
    session: &Session,
    opts: &Options,
    state: Arc<StateWriter>,
    outputs: Outputs,
    started: chrono::DateTime<Utc>,
) -> Result<UpReport, OpsError> {
    warn_of_settings(session, opts);
    if let Some(saved) = &opts.saved_plan {
        if let Some(why) = saved.stale_inputs(
            &session.stack,
            session.provider.name(),
            Some(&state.snapshot().resources),
        ) {
            return Err(stale(saved, &why));
        }
    }
    let (rt, resources) = up_graph(session, opts, &outputs);
    let (plan, changes) = preflight_and_plan(session, opts, async {
        check_references(&rt).await?;
        plan_resources(&session.stack, "up", session.provider.name(), &resources).await
    })
    .await?;
    if let Some(saved) = &opts.saved_plan {
        let moved = saved_plan::differences(&saved.plan, &plan);
        if !moved.is_empty() {
            return Err(stale(
                saved,
                &format!(
                    "what is live changed since it was planned:\n  {}",
                    moved.join("\n  ")
                ),
            ));
        }
    }
    opts.sink.emit(&Event::Plan { plan: plan.clone() });
    let steps = resources
        .iter()
        .zip(changes)
        .map(|(r, change)| apply_step(r.clone(), change, opts.timeout))
        .collect();
    let run = run_and_record(steps, opts, &outputs, &state, "up", started).await?;
    Ok(UpReport { plan, run })
}

fn apply_step(resource: Arc<dyn Resource>, change: Change, timeout: Duration) -> Step {
    Step {
        id: resource.id().to_string(),
        action: change.action,
        deps: resource.depends_on(),
        expected: resource.expected(change.action),
        timeout: step_timeout(timeout),
        interruptible: resource.interruptible(),
        work: Box::new(move |ctx| Box::pin(async move { resource.apply(&ctx, &change).await })),
    }
}

/// The engine's hard limit on a step: the waiting limit plus room for the
/// calls around the wait.
pub fn step_timeout(timeout: Duration) -> Duration {
    timeout + Duration::from_secs(60)
}

/// Runs the steps and keeps the state file current after every one.
pub async fn run_and_record(
    steps: Vec<Step>,
    opts: &Options,
    outputs: &Outputs,
    state: &StateWriter,
    command: &str,
    started: chrono::DateTime<Utc>,
) -> Result<RunReport, OpsError> {
    state
        .update(|state| {
            state.last_run = Some(RunRecord {
                command: command.into(),
                started_at: started,
                finished_at: None,
                ok: false,
                interrupted: false,
                steps: Vec::new(),
            })
        })
        .await?;
    let waits_for: std::collections::HashMap<String, Vec<String>> = steps
        .iter()
        .map(|s| (s.id.clone(), s.deps.clone()))
        .collect();
    let run_opts = RunOptions {
        parallelism: opts.parallelism,
        cancel: opts.cancel.clone(),
        grace: Duration::from_secs(30),
    };
    let save_error = Arc::new(std::sync::Mutex::new(None));
    let run = engine::run(steps, &run_opts, outputs, opts.sink.clone(), |r| {
        state.modify(|state| {
            record(state, r, command);
            if let Some(last) = state.last_run.as_mut() {
                last.steps.push(timing(r, &waits_for));
            }
        });
        // The engine awaits this before it takes the next result, so the
        // saves are in order, each after its step.
        let save_error = save_error.clone();
        async move {
            if let Err(e) = state.save().await {
                save_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(e);
            }
        }
    })
    .await?;
    let failed_save = save_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(e) = failed_save {
        return Err(e.into());
    }
    state
        .update(|state| {
            if let Some(last) = state.last_run.as_mut() {
                last.finished_at = Some(Utc::now());
                last.ok = run.ok();
                last.interrupted = run.interrupted;
            }
            state.updated_at = Utc::now();
        })
        .await?;
    Ok(run)
}

/// A step's start and end, taken as it ends (the engine reports a
/// step once, when it is over).
fn timing(
    r: &StepResult,
    waits_for: &std::collections::HashMap<String, Vec<String>>,
) -> StepTiming {
    let finished_at = Utc::now();
    let started_at = chrono::Duration::from_std(r.elapsed)
        .ok()
        .and_then(|d| finished_at.checked_sub_signed(d))
        .unwrap_or(finished_at);
    StepTiming {
        id: r.id.clone(),
        action: r.action.as_str().into(),
        outcome: match r.outcome {
            Outcome::Done(_) => "done",
            Outcome::Failed(_) => "failed",
            Outcome::Skipped(_) => "skipped",
        }
        .into(),
        started_at,
        finished_at,
        depends_on: waits_for.get(&r.id).cloned().unwrap_or_default(),
    }
}

fn record(state: &mut State, r: &StepResult, command: &str) {
    state.updated_at = Utc::now();
    let (status, outputs, error) = match &r.outcome {
        Outcome::Done(_) if command == "down" && r.action == Action::Delete => {
            ("deleted", serde_json::Value::Null, None)
        }
        Outcome::Done(v) => ("applied", v.clone(), None),
        Outcome::Failed(e) => ("failed", serde_json::Value::Null, Some(e.clone())),
        Outcome::Skipped(why) => ("skipped", serde_json::Value::Null, Some(why.clone())),
    };
    // The object is recorded now (up), or gone (a delete done): what was
    // about to be created for it needs no more proof.
    if matches!(r.outcome, Outcome::Done(_)) && (command != "down" || r.action == Action::Delete) {
        state.clear_intents(&r.id);
    }
    if matches!(r.outcome, Outcome::Skipped(_)) && state.resources.contains_key(&r.id) {
        return; // keep what we knew; this run did not touch it
    }
    let previous = state
        .resources
        .get(&r.id)
        .map(|p| p.outputs.clone())
        .unwrap_or_default();
    state.resources.insert(
        r.id.clone(),
        ResourceRecord {
            action: r.action.as_str().into(),
            status: status.into(),
            outputs: if outputs.is_null() && status == "failed" {
                previous
            } else {
                outputs
            },
            at: Utc::now(),
            elapsed_s: r.elapsed.as_secs_f64(),
            error,
        },
    );
}
