//! The operations behind the commands. Each takes a loaded stack and
//! options and returns data (a Plan, a Report); printing is the CLI's job.

pub mod down;
pub mod kubeconfig;
pub mod status;
pub mod up;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use howdah_provider::{
    Change, NoProgress, Outputs, Provider, ProviderError, Resource, StepContext,
};
use howdah_provider_aws::{AwsConfig, AwsProvider, NetworkConfig, NodePoolConfig};
use howdah_provider_kubeconfig::KubeconfigProvider;
use tokio_util::sync::CancellationToken;

use crate::engine::GraphError;
use crate::events::Event;
use crate::events::EventSink;
use crate::plan::{self, Plan};
use crate::runtime::{render_stack, DesiredObject, Runtime};
use crate::spec::{self, SpecError, Stack, Target};
use crate::state::{
    StackIdentity, State, StateError, StateLocation, StateLock, StateStore, StateWriter,
};
use chrono::{DateTime, Utc};

/// A stack file, loaded and validated, with where its state lives.
pub struct Session {
    pub stack: Stack,
    pub spec_path: PathBuf,
    pub state: StateStore,
    pub provider: Arc<dyn Provider>,
}

impl Session {
    /// Loads and validates the stack file (no network) and picks the
    /// provider for its target. `state_override` (`--state`) replaces
    /// where the state lives.
    pub fn open(
        spec_path: &Path,
        state_override: Option<StateLocation>,
    ) -> Result<Session, OpsError> {
        let stack = spec::load(spec_path)?;
        let base = spec_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let location = match state_override {
            Some(location) => location,
            None => state_location(&stack, &base)?,
        };
        let provider = provider_for(&stack, &base);
        Ok(Session {
            state: StateStore::at(location, &stack.name),
            stack,
            spec_path: spec_path.to_path_buf(),
            provider,
        })
    }
}

impl Session {
    /// Which stack this is, as its state file records it.
    pub fn identity(&self) -> StackIdentity {
        StackIdentity {
            stack: self.stack.name.clone(),
            target: self.provider.name().to_string(),
        }
    }

    /// This stack's recorded state, for a command that only reads: a state
    /// file that is unreadable, of a newer howdah, or of another stack or
    /// target is an error, never written.
    pub async fn recorded_state(&self) -> Result<Option<State>, OpsError> {
        let state = self.state.load_for(&self.identity()).await?;
        // What earlier runs were about to create is theirs to recognise
        // here too; nothing may be created by a command that only reads.
        let intents = state
            .as_ref()
            .map(|s| s.intents.clone())
            .unwrap_or_default();
        self.provider
            .set_intents(Arc::new(howdah_provider::intent::ReadOnly(intents)));
        Ok(state)
    }

    /// The stack's runtime on its cluster, for one command.
    pub fn runtime(
        &self,
        outputs: &Outputs,
        timeout: Duration,
        delete_data: bool,
        allow_downgrade: bool,
    ) -> Arc<Runtime> {
        Runtime::new(
            self.stack.clone(),
            self.provider.clone(),
            outputs.clone(),
            timeout,
            delete_data,
            allow_downgrade,
        )
    }
}

/// Where the stack file says the state lives: `state.url`, `state.path`,
/// or by default `.howdah/<name>.state.json` beside the stack file.
fn state_location(stack: &Stack, base: &Path) -> Result<StateLocation, OpsError> {
    let config = stack.state.as_ref();
    if let Some(url) = config.and_then(|s| s.url.as_deref()) {
        // Validation has checked it; a refusal here is still said plainly.
        return spec::StateUrl::parse(url)
            .map(StateLocation::S3)
            .map_err(|(message, _)| OpsError::Usage(message));
    }
    Ok(StateLocation::File(
        match config.and_then(|s| s.path.as_deref()) {
            Some(path) => expand_path(path, base),
            None => base
                .join(".howdah")
                .join(format!("{}.state.json", stack.name)),
        },
    ))
}

/// The provider for a stack's target.
pub fn provider_for(stack: &Stack, base: &Path) -> Arc<dyn Provider> {
    match &stack.target {
        Target::Kubeconfig(k) => Arc::new(KubeconfigProvider::new(
            k.path.as_ref().map(|p| expand_path(p, base)),
            k.context.clone(),
        )),
        Target::Aws(aws) => Arc::new(AwsProvider::new(aws_config(stack, aws))),
    }
}

/// The stack as the AWS provider sees it.
fn aws_config(stack: &Stack, aws: &spec::AwsTarget) -> AwsConfig {
    let cluster = stack.cloud_cluster().cloned().unwrap_or_default();
    let network = if cluster.network.is_existing() {
        NetworkConfig::Existing {
            vpc_id: cluster.network.vpc_id.clone().unwrap_or_default(),
            subnet_ids: cluster.network.subnet_ids.clone(),
        }
    } else {
        NetworkConfig::New {
            cidr: cluster.network.cidr_or_default().to_string(),
            zones: cluster.network.zones_or_default(),
        }
    };
    AwsConfig {
        stack: stack.name.clone(),
        region: aws.region.clone(),
        profile: aws.profile.clone(),
        kubernetes_version: cluster.version.clone(),
        network,
        node_pools: cluster
            .node_pools
            .iter()
            .map(|p| NodePoolConfig {
                name: p.name.clone(),
                machine_type: p.machine_type.clone(),
                min: p.min,
                max: p.max,
                desired: p.desired_or_min(),
                disk_size_gb: p.disk_size_gb,
                spot: p.spot,
                labels: p.labels.clone(),
            })
            .collect(),
        bucket: stack.storage.bucket.as_ref().and_then(|b| b.name.clone()),
        static_keys: stack.pachyderm.identity == spec::Identity::Keys,
        namespace: stack.pachyderm.namespace.clone(),
        delete_data: stack.storage.data_policy == spec::DataPolicy::Delete,
        tags: stack.tags.clone(),
    }
}
/// Where a path written in the stack file points, by the one rule for all
/// of them (validation refuses `$VAR` and `~user`): `~` and `~/…` are in
/// the home directory, a relative path is relative to the stack file's
/// directory `base`.
fn expand_path(path: &str, base: &Path) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let expanded = match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        (None, Some(home)) if path == "~" => home,
        _ => PathBuf::from(path),
    };
    if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    }
}

/// How a command runs.
#[derive(Clone)]
pub struct Options {
    pub parallelism: usize,
    /// Per-step limit for waiting on readiness and deletion.
    pub timeout: Duration,
    pub delete_data: bool,
    /// Ask pachd whether it works once it is up (`--no-verify` turns it
    /// off, for clusters that do not allow port-forwarding to pods).
    pub verify: bool,
    /// `status --deep`: verification also writes, reads back and removes
    /// a file through pachd (plain `status` only reads).
    pub deep: bool,
    /// `--allow-downgrade`: plan and apply a version going back.
    pub allow_downgrade: bool,
    pub sink: Arc<dyn EventSink>,
    pub cancel: CancellationToken,
    /// Make a state file of another stack or target this stack's
    /// (`--take-over-state`); its records are dropped.
    pub take_over_state: bool,
    /// `up --plan FILE`: carry out exactly this plan, or nothing.
    pub saved_plan: Option<Arc<crate::saved_plan::SavedPlan>>,
}

/// Why an operation could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{0}")]
    Provider(#[from] ProviderError),
    #[error("{0}")]
    Graph(#[from] GraphError),
    #[error("planning failed:\n{0}")]
    Planning(String),
    /// Ctrl-C or SIGTERM while only reading (preflight, plan, status, the
    /// leak scan): nothing had been changed by then.
    #[error("interrupted while {0}; nothing was changed")]
    Interrupted(String),
    /// `up --plan`: the saved plan no longer holds.
    #[error("{0}")]
    PlanStale(String),
    /// The command line is not valid (e.g. a `--state` URL); nothing was
    /// contacted.
    #[error("{0}")]
    Usage(String),
}

/// Runs reads that come before or after the steps (preflight, plan,
/// status, the leak scan) under the command's `--timeout` and its
/// cancellation. The steps have the engine's limits; these reads had none
/// but each call's own, so an API server that accepts connections and never
/// answers held `up --timeout 10s` for minutes and ignored SIGTERM.
pub(crate) async fn bounded<T, F>(opts: &Options, what: &str, work: F) -> Result<T, OpsError>
where
    F: std::future::Future<Output = Result<T, OpsError>>,
{
    tokio::select! {
        done = tokio::time::timeout(opts.timeout, work) => done.unwrap_or_else(|_| {
            Err(OpsError::Provider(ProviderError::Timeout {
                what: format!(
                    "{what}: the cluster or the cloud did not answer in time (--timeout); \
                     check that it is reachable"
                ),
                after: opts.timeout,
            }))
        }),
        () = opts.cancel.cancelled() => Err(OpsError::Interrupted(what.to_string())),
    }
}

/// Plans every resource concurrently (`up` or `down`) and gathers the
/// changes; any resource that cannot be planned fails the whole plan before
/// anything is written.
pub async fn plan_resources(
    stack: &Stack,
    command: &str,
    target: &str,
    resources: &[Arc<dyn Resource>],
) -> Result<(Plan, Vec<Change>), OpsError> {
    let ctx = StepContext {
        outputs: Outputs::default(),
        progress: Arc::new(NoProgress),
    };
    let changes = join_all(resources.iter().map(|r| {
        let ctx = ctx.clone();
        async move {
            if command == "down" {
                r.plan_down(&ctx).await
            } else {
                r.plan_up(&ctx).await
            }
        }
    }))
    .await;
    let mut errors = Vec::new();
    let mut ok = Vec::new();
    for (r, c) in resources.iter().zip(changes) {
        match c {
            Ok(c) => ok.push(c),
            Err(e) => errors.push(format!("  {}: {e}", r.id())),
        }
    }
    if !errors.is_empty() {
        return Err(OpsError::Planning(errors.join("\n")));
    }
    let items = resources
        .iter()
        .zip(&ok)
        .map(|(r, c)| {
            let expected = r.expected(c.action);
            plan::item(r.id(), c.clone(), r.depends_on(), expected, r.holds_data())
        })
        .collect();
    Ok((Plan::new(&stack.name, command, target, items), ok))
}

/// What a command that writes holds while it runs.
pub(crate) struct Begun {
    /// Released by [`finish`] at the end of the command.
    pub lock: StateLock,
    /// The state, saved at every change; the provider records its
    /// intents to create in it.
    pub state: Arc<StateWriter>,
    /// Outputs recorded by earlier runs, for steps that are kept.
    pub outputs: Outputs,
    pub started: DateTime<Utc>,
}

/// How `up` and `down` start: take the stack's lock (taking over one left
/// by a run that is gone, and saying so), read the recorded state (another
/// stack's only when told to take it over), and restore the outputs
/// earlier runs recorded. The target's preflight runs
/// beside the plan (both only read): see [`preflight_and_plan`].
pub(crate) async fn begin(
    session: &Session,
    opts: &Options,
    command: &str,
) -> Result<Begun, OpsError> {
    let (lock, stale) = session.state.lock(command).await?;
    if let Some(stale) = stale {
        let message = if stale.expires.is_some() {
            format!(
                "took over the lock of an earlier `{}` by {} (pid {} on {}, since {}) that expired without being renewed: that run is gone; resuming",
                stale.command, stale.owner, stale.pid, stale.host, stale.since
            )
        } else {
            format!(
                "took over the lock of an earlier `{}` that is gone (pid {} since {}); resuming",
                stale.command, stale.pid, stale.since
            )
        };
        opts.sink.emit(&Event::Warning { message });
    }
    let started = Utc::now();
    let fresh = || State::new(&session.stack.name, session.provider.name());
    let state = match session.state.load_for(&session.identity()).await {
        Ok(state) => state.unwrap_or_else(fresh),
        // Its records are of objects another stack owns (labels carry the
        // stack's name) or of another target's: none is this stack's to
        // keep. What exists of this stack is found by its labels anyway.
        Err(StateError::OtherStack { at, recorded, .. }) if opts.take_over_state => {
            opts.sink.emit(&Event::Warning {
                message: format!(
                    "taking over state file {at} from {recorded} (--take-over-state); its records are replaced by this stack's"
                ),
            });
            fresh()
        }
        Err(e) => return finish(lock, opts, Err(e.into())).await,
    };
    let outputs = recorded_outputs(Some(&state));
    let state = Arc::new(StateWriter::new(session.state.clone(), state));
    session.provider.set_intents(state.clone());
    Ok(Begun {
        lock,
        state,
        outputs,
        started,
    })
}

/// How `up` and `down` end, whatever the outcome: the lock is released
/// (not left to lapse), and the command's own result is what is returned.
/// A lock that could not be removed, or that another run took over, is
/// said as a warning: the run's records were written (conditionally) or
/// its error says why not.
pub(crate) async fn finish<T>(
    lock: StateLock,
    opts: &Options,
    result: Result<T, OpsError>,
) -> Result<T, OpsError> {
    if let Err(e) = lock.release().await {
        opts.sink.emit(&Event::Warning {
            message: format!("{e}"),
        });
    }
    result
}

/// The outputs earlier runs recorded (ids, endpoints, ARNs), so that a
/// plan and the run after it see the same values.
pub(crate) fn recorded_outputs(state: Option<&State>) -> Outputs {
    let outputs = Outputs::default();
    for (id, record) in state.iter().flat_map(|s| &s.resources) {
        if !record.outputs.is_null() {
            outputs.set(id, record.outputs.clone());
        }
    }
    outputs
}

/// The target's preflight and the plan, at once (both only read; on a
/// cloud the plan's reads would otherwise wait for preflight's). A failed
/// preflight is the error shown: it says what to fix first.
pub(crate) async fn preflight_and_plan<F>(
    session: &Session,
    opts: &Options,
    plan: F,
) -> Result<(Plan, Vec<Change>), OpsError>
where
    F: std::future::Future<Output = Result<(Plan, Vec<Change>), OpsError>>,
{
    bounded(opts, "reading what is live", async {
        let (pre, planned) = tokio::join!(session.provider.preflight(), plan);
        pre?;
        planned
    })
    .await
}

/// The manifests `up` would apply, secrets redacted (`howdah render`).
pub fn render(session: &Session) -> Result<Vec<DesiredObject>, OpsError> {
    let inputs = session.provider.runtime_inputs(&Outputs::default());
    let redacted = crate::runtime::inputs::RenderSecrets::redacted();
    Ok(render_stack(&session.stack, &inputs, &redacted)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_in_the_stack_file_follows_one_rule() {
        let dir = std::env::temp_dir().join(format!("howdah-paths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = dir.join("howdah.yaml");
        std::fs::write(
            &spec,
            "name: demo\ntarget: {kubeconfig: {path: ~/kube/config}}\n\
             state: {path: ~/states/demo.json}\n",
        )
        .unwrap();
        let session = Session::open(&spec, None).unwrap_or_else(|e| panic!("{e}"));
        let home = PathBuf::from(std::env::var_os("HOME").unwrap());
        assert_eq!(
            session.state.path(),
            Some(home.join("states/demo.json").as_path())
        );
        assert_eq!(expand_path("~/kube/config", &dir), home.join("kube/config"));
        assert_eq!(expand_path("s/x.json", &dir), dir.join("s/x.json"));
        assert_eq!(
            expand_path("/abs/x.json", &dir),
            PathBuf::from("/abs/x.json")
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
