//! `down`: the reverse of `up`. Inside the cluster first (load balancers,
//! the runtime, pipeline workers, then data volumes only when the data may
//! go), then the target's own resources in reverse dependency order; then
//! a scan by ownership label that proves what is left is only what was
//! meant to stay.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use howdah_provider::{Action, Change, Leftover, Outputs, ProviderError, Resource, StepContext};

use super::up::{run_and_record, step_timeout};
use super::{
    begin, bounded, finish, plan_resources, preflight_and_plan, Begun, OpsError, Options, Session,
};
use crate::engine::{RunReport, Step};
use crate::events::Event;
use crate::plan::Plan;
use crate::runtime::{self, teardown, Runtime};

/// What `down` did and what is left.
pub struct DownReport {
    pub plan: Plan,
    pub run: RunReport,
    pub leftovers: Vec<Leftover>,
    /// The run had `--delete-data`: its hints do not ask for it again.
    pub delete_data: bool,
}

impl DownReport {
    /// Leftovers that were not meant to stay.
    pub fn leaked(&self) -> Vec<&Leftover> {
        self.leftovers.iter().filter(|l| !l.retained).collect()
    }
}

/// A target resource seen from `down`: it goes after everything that
/// depended on it in `up`, and after the whole runtime when the cluster
/// depends on it.
struct Teardown {
    inner: Arc<dyn Resource>,
    after: Vec<String>,
}

#[async_trait]
impl Resource for Teardown {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn depends_on(&self) -> Vec<String> {
        self.after.clone()
    }
    fn expected(&self, action: Action) -> Duration {
        self.inner.expected(action)
    }
    fn holds_data(&self) -> bool {
        self.inner.holds_data()
    }
    fn interruptible(&self) -> bool {
        self.inner.interruptible()
    }
    async fn plan_up(&self, ctx: &StepContext) -> Result<Change, ProviderError> {
        self.inner.plan_up(ctx).await
    }
    async fn plan_down(&self, ctx: &StepContext) -> Result<Change, ProviderError> {
        self.inner.plan_down(ctx).await
    }
    async fn apply(
        &self,
        ctx: &StepContext,
        change: &Change,
    ) -> Result<serde_json::Value, ProviderError> {
        self.inner.apply(ctx, change).await
    }
    async fn destroy(&self, ctx: &StepContext, change: &Change) -> Result<(), ProviderError> {
        self.inner.destroy(ctx, change).await
    }
}

/// The resources of a stack for `down`, with teardown dependencies.
pub fn down_graph(
    session: &Session,
    opts: &Options,
    outputs: &Outputs,
) -> (Arc<Runtime>, Vec<Arc<dyn Resource>>) {
    session.provider.set_delete_data(opts.delete_data);
    let rt = session.runtime(outputs, opts.timeout, opts.delete_data, false);
    let runtime_steps = runtime::down_resources(&rt);
    let runtime_ids: Vec<String> = runtime_steps.iter().map(|r| r.id().to_string()).collect();
    let target = session.provider.resources();
    let cluster_ready = session.provider.cluster_ready_after();
    // Reverse the target's edges: X waits for everything that needed X.
    let mut after: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &target {
        for dep in r.depends_on() {
            after.entry(dep).or_default().push(r.id().to_string());
        }
    }
    // The cluster and everything it stands on go only after the runtime.
    let cluster_side: Vec<bool> = target
        .iter()
        .map(|r| {
            cluster_ready
                .iter()
                .any(|c| c == r.id() || r_depends_transitively(c, r.id(), &target))
        })
        .collect();
    let mut resources: Vec<Arc<dyn Resource>> = runtime_steps;
    for (r, cluster_side) in target.into_iter().zip(cluster_side) {
        let mut deps = after.remove(r.id()).unwrap_or_default();
        if cluster_side {
            deps.extend(runtime_ids.iter().cloned());
        }
        resources.push(Arc::new(Teardown {
            inner: r,
            after: deps,
        }));
    }
    (rt, resources)
}

/// Whether `from` depends (directly or not) on `on` among `all`.
fn r_depends_transitively(from: &str, on: &str, all: &[Arc<dyn Resource>]) -> bool {
    let mut stack = vec![from.to_string()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(r) = all.iter().find(|r| r.id() == id) {
            for d in r.depends_on() {
                if d == on {
                    return true;
                }
                stack.push(d);
            }
        }
    }
    false
}

/// The plan `down` would carry out; writes nothing.
pub async fn plan(session: &Session, opts: &Options) -> Result<Plan, OpsError> {
    session.recorded_state().await?;
    let (_, resources) = down_graph(session, opts, &Outputs::default());
    let (plan, _) = preflight_and_plan(
        session,
        opts,
        plan_resources(&session.stack, "down", session.provider.name(), &resources),
    )
    .await?;
    Ok(plan)
}

/// Tears the stack down and scans for leftovers.
pub async fn down(session: &Session, opts: &Options) -> Result<DownReport, OpsError> {
    let Begun {
        lock,
        state,
        outputs,
        started,
    } = begin(session, opts, "down").await?;
    let result = tear_down(session, opts, state, outputs, started).await;
    finish(lock, opts, result).await
}

/// `down` under the stack's lock.
async fn tear_down(
    session: &Session,
    opts: &Options,
    state: std::sync::Arc<crate::state::StateWriter>,
    outputs: Outputs,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<DownReport, OpsError> {
    let (rt, resources) = down_graph(session, opts, &outputs);
    let (plan, changes) = preflight_and_plan(
        session,
        opts,
        plan_resources(&session.stack, "down", session.provider.name(), &resources),
    )
    .await?;
    opts.sink.emit(&Event::Plan { plan: plan.clone() });
    let steps = resources
        .iter()
        .zip(changes)
        .map(|(r, change)| {
            let resource = r.clone();
            Step {
                id: r.id().to_string(),
                action: change.action,
                deps: r.depends_on(),
                expected: r.expected(change.action),
                timeout: step_timeout(opts.timeout),
                interruptible: r.interruptible(),
                work: Box::new(move |ctx| {
                    Box::pin(async move {
                        if change.action == Action::Delete {
                            resource.destroy(&ctx, &change).await?;
                        }
                        Ok(serde_json::Value::Null)
                    })
                }),
            }
        })
        .collect();
    let run = run_and_record(steps, opts, &outputs, &state, "down", started).await?;
    if run.ok() {
        // Everything went: the state keeps only what the data policy kept
        // (and the intents of what it kept: still proof it is the stack's).
        state
            .update(|state| {
                state
                    .resources
                    .retain(|_, r| r.status != "deleted" && r.action != "no-op")
            })
            .await?;
    }
    let leftovers = bounded(opts, "scanning for leftovers", async {
        let mut leftovers = teardown::leftovers(&rt).await?;
        leftovers.extend(session.provider.leftovers().await?);
        Ok(leftovers)
    })
    .await?;
    Ok(DownReport {
        plan,
        run,
        leftovers,
        delete_data: opts.delete_data,
    })
}
