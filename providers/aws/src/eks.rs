//! EKS: the cluster, its managed node groups, and the EBS CSI driver add-on.
//! Each is created, then awaited through CREATING by polling Describe*
//! with backoff (throttling is retried, never fatal); deletes are awaited
//! until the object is really gone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_eks::types::{
    AuthenticationMode, CapacityTypes, CreateAccessConfigRequest, NodegroupScalingConfig,
    ResolveConflicts, VpcConfigRequest,
};
use howdah_provider::wait::{poll_until_expecting, Backoff, Expected, Poll};
use howdah_provider::{Action, Change, FieldChange, ProviderError, Resource, StepContext};
use serde_json::{json, Value};

use crate::clients::{err, is, not_found};
use crate::{ids, Ctx, NodePoolConfig};

/// The cluster as Describe shows it.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub status: String,
    pub endpoint: Option<String>,
    pub ca: Option<String>,
    pub issuer: Option<String>,
    pub arn: Option<String>,
    pub version: Option<String>,
    pub vpc_id: Option<String>,
    pub owned: bool,
}

/// How often to poll a long operation: starts at 2 s and backs off to
/// 15 s, or to `HOWDAH_AWS_POLL_MAX_MS` (for CI against emulators, where
/// everything is fast, or for a tighter view of a real create).
pub fn poll_backoff() -> Backoff {
    let max = std::env::var("HOWDAH_AWS_POLL_MAX_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or_else(|| scaled(Duration::from_secs(15)));
    Backoff {
        initial: scaled(Duration::from_secs(2)).min(max),
        max,
        jitter: 0.2,
    }
}

/// `HOWDAH_AWS_TIME_SCALE`, for benchmarks against an emulator whose EKS
/// waits are scaled down (60: a minute is a second): howdah's usual
/// durations and poll intervals are divided by it. 1 unless set.
fn time_scale() -> f64 {
    std::env::var("HOWDAH_AWS_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s >= 1.0)
        .unwrap_or(1.0)
}

fn scaled(d: Duration) -> Duration {
    d.div_f64(time_scale())
}

/// Polls every 2 s around a wait's usual end (a step of `usual`), so
/// howdah sees it done within seconds, not a 15 s backoff step later.
fn expecting(usual: Duration) -> Option<Expected> {
    Some(Expected {
        usual: scaled(usual),
        interval: scaled(Duration::from_secs(2)),
    })
}

/// "CREATING (about 9 min left)": the expected duration less what passed.
fn eta(status: &str, started: Instant, expected: Duration) -> String {
    let left = expected.saturating_sub(started.elapsed());
    if left.is_zero() {
        format!(
            "{status} (taking longer than the usual {}s)",
            expected.as_secs()
        )
    } else if left >= Duration::from_secs(90) {
        format!("{status} (about {} min left)", left.as_secs().div_ceil(60))
    } else {
        format!("{status} (about {} s left)", left.as_secs())
    }
}

/// How long to wait for one EKS operation at most.
const LIMIT: Duration = Duration::from_secs(40 * 60);

/// What EKS said to a delete request.
enum Asked {
    Accepted,
    Gone,
    /// Refused for now (a cluster whose node groups are still going).
    NotYet(String),
}

/// Deletes an EKS object and waits until Describe no longer finds it.
/// `status` reads its status (None: gone); `delete` asks for the delete,
/// on the first look and again whenever the object is not DELETING (a
/// request refused earlier, or one lost to a killed run).
async fn delete_and_wait<S, SF, D, DF>(
    what: &str,
    expected: Duration,
    progress: &dyn howdah_provider::Progress,
    status: S,
    delete: D,
) -> Result<(), ProviderError>
where
    S: Fn() -> SF,
    SF: std::future::Future<Output = Result<Option<String>, ProviderError>>,
    D: Fn() -> DF,
    DF: std::future::Future<Output = Result<Asked, ProviderError>>,
{
    let started = Instant::now();
    let asked = std::sync::atomic::AtomicBool::new(false);
    let (status, delete, asked) = (&status, &delete, &asked);
    poll_until_expecting(
        &format!("{what} to be deleted"),
        LIMIT,
        poll_backoff(),
        expecting(expected),
        progress,
        || async move {
            let Some(current) = status().await? else {
                return Ok(Poll::Ready(()));
            };
            let first = !asked.swap(true, std::sync::atomic::Ordering::Relaxed);
            if current != "DELETING" || first {
                match delete().await? {
                    Asked::Accepted => {}
                    // Described as DELETING, yet the delete says not found:
                    // it is on its way out, and Describe says when it is
                    // gone (the cluster refuses to go until then).
                    Asked::Gone if current == "DELETING" => {}
                    Asked::Gone => return Ok(Poll::Ready(())),
                    Asked::NotYet(why) => return Ok(Poll::Pending(why)),
                }
            }
            Ok(Poll::Pending(eta("DELETING", started, expected)))
        },
    )
    .await
}

pub struct Cluster {
    ctx: Arc<Ctx>,
}

impl Cluster {
    pub fn new(ctx: Arc<Ctx>) -> Cluster {
        Cluster { ctx }
    }

    pub async fn describe(ctx: &Ctx) -> Result<Option<ClusterInfo>, ProviderError> {
        let name = ctx.cluster_name();
        let out = match ctx
            .aws()
            .await
            .eks
            .describe_cluster()
            .name(&name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(err(&format!("reading EKS cluster {name}"), e)),
        };
        let Some(c) = out.cluster else {
            return Ok(None);
        };
        let owned = c
            .tags()
            .is_some_and(|t| ctx.owns(t.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        Ok(Some(ClusterInfo {
            status: c
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            endpoint: c.endpoint().map(str::to_string),
            ca: c
                .certificate_authority()
                .and_then(|a| a.data())
                .map(str::to_string),
            issuer: c
                .identity()
                .and_then(|i| i.oidc())
                .and_then(|o| o.issuer())
                .map(str::to_string),
            arn: c.arn().map(str::to_string),
            version: c.version().map(str::to_string),
            vpc_id: c
                .resources_vpc_config()
                .and_then(|v| v.vpc_id())
                .map(str::to_string),
            owned,
        }))
    }

    /// Whether the cluster answers (ACTIVE or being updated).
    pub async fn exists(ctx: &Ctx) -> Result<bool, ProviderError> {
        Ok(Self::describe(ctx)
            .await?
            .is_some_and(|c| matches!(c.status.as_str(), "ACTIVE" | "UPDATING")))
    }

    fn not_ours(&self) -> ProviderError {
        ProviderError::api(format!(
            "EKS cluster {} exists but is not tagged howdah.io/stack={}: howdah will not take it over; choose another stack name",
            self.ctx.cluster_name(),
            self.ctx.cfg.stack
        ))
    }

    fn outputs(info: &ClusterInfo, name: &str) -> Value {
        json!({
            "name": name,
            "arn": info.arn,
            "endpoint": info.endpoint,
            "certificate_authority": info.ca,
            "oidc_issuer": info.issuer,
            "version": info.version,
        })
    }

    async fn create(&self, ctx: &StepContext) -> Result<(), ProviderError> {
        let eks = &self.ctx.aws().await.eks;
        let name = self.ctx.cluster_name();
        let role = Ctx::output(&ctx.outputs, ids::CLUSTER_ROLE, "arn")
            .ok_or_else(|| ProviderError::api("the cluster role's ARN is not known"))?;
        let subnets: Vec<String> = ctx
            .outputs
            .get(ids::NETWORK)
            .and_then(|n| serde_json::from_value(n["subnet_ids"].clone()).ok())
            .unwrap_or_default();
        if subnets.len() < 2 {
            return Err(ProviderError::api(
                "the network step gave fewer than two subnets",
            ));
        }
        ctx.progress.report(&format!(
            "creating EKS cluster {name} (Kubernetes {})",
            self.ctx.cfg.kubernetes_version
        ));
        let tags: HashMap<String, String> = self.ctx.tags(ids::CLUSTER).into_iter().collect();
        // Every try of this create (the SDK's, ours, the next run's) sends
        // the same token: EKS makes one cluster of them.
        let intent = self.ctx.intend(ids::CLUSTER, "eks.cluster", &name).await?;
        // A role made seconds ago may not be assumable yet (IAM is
        // eventually consistent): EKS then says InvalidParameterException.
        let started = Instant::now();
        loop {
            let sent = eks
                .create_cluster()
                .name(&name)
                .version(&self.ctx.cfg.kubernetes_version)
                .role_arn(&role)
                .resources_vpc_config(
                    VpcConfigRequest::builder()
                        .set_subnet_ids(Some(subnets.clone()))
                        .endpoint_public_access(true)
                        .endpoint_private_access(true)
                        .build(),
                )
                .access_config(
                    CreateAccessConfigRequest::builder()
                        .authentication_mode(AuthenticationMode::ApiAndConfigMap)
                        .bootstrap_cluster_creator_admin_permissions(true)
                        .build(),
                )
                .set_tags(Some(tags.clone()))
                .set_client_request_token(intent.token.clone())
                .send()
                .await;
            match sent {
                Ok(_) => return Ok(()),
                Err(e) if is(&e, &["ResourceInUseException"]) => return Ok(()),
                Err(e)
                    if is(&e, &["InvalidParameterException"])
                        && format!("{e:?}").contains("assume")
                        && started.elapsed() < Duration::from_secs(120) =>
                {
                    ctx.progress
                        .report("waiting for the new cluster role to be usable");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Err(e) => return Err(err(&format!("creating EKS cluster {name}"), e)),
            }
        }
    }

    async fn wait_active(&self, ctx: &StepContext) -> Result<ClusterInfo, ProviderError> {
        let started = Instant::now();
        let expected = self.expected(Action::Create);
        poll_until_expecting(
            &format!("EKS cluster {} to become ACTIVE", self.ctx.cluster_name()),
            LIMIT,
            poll_backoff(),
            expecting(expected),
            ctx.progress.as_ref(),
            || async {
                let info = Self::describe(&self.ctx)
                    .await?
                    .ok_or_else(|| ProviderError::api("the cluster disappeared while being created"))?;
                match info.status.as_str() {
                    "ACTIVE" => Ok(Poll::Ready(info)),
                    "FAILED" => Err(ProviderError::api(format!(
                        "EKS cluster {} failed to create; see its health in the EKS console, delete it with `howdah down`, and retry",
                        self.ctx.cluster_name()
                    ))),
                    "DELETING" => Err(ProviderError::api(format!(
                        "EKS cluster {} is being deleted; wait for it to go, then run up again",
                        self.ctx.cluster_name()
                    ))),
                    s => Ok(Poll::Pending(eta(s, started, expected))),
                }
            },
        )
        .await
    }
}

#[async_trait]
impl Resource for Cluster {
    fn id(&self) -> &str {
        ids::CLUSTER
    }

    fn depends_on(&self) -> Vec<String> {
        vec![ids::NETWORK.into(), ids::CLUSTER_ROLE.into()]
    }

    fn expected(&self, action: Action) -> Duration {
        match action {
            Action::Create => Duration::from_secs(13 * 60),
            Action::Delete => Duration::from_secs(8 * 60),
            Action::Keep => Duration::from_secs(1),
            _ => Duration::from_secs(10 * 60),
        }
    }

    async fn plan_up(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        let want = &self.ctx.cfg.kubernetes_version;
        match Self::describe(&self.ctx).await? {
            None => {
                let mut c = Change::new(
                    Action::Create,
                    format!("{}: not found", self.ctx.cluster_name()),
                );
                c.fields.push(FieldChange {
                    path: "version".into(),
                    old: None,
                    new: Some(want.clone()),
                });
                Ok(c)
            }
            Some(info) if !info.owned => Err(self.not_ours()),
            Some(info) => {
                let live = info.version.clone().unwrap_or_default();
                if !live.is_empty() && &live != want {
                    return Err(ProviderError::config(format!(
                        "cluster.version is {want} but EKS cluster {} runs {live}: howdah does not upgrade clusters yet; set cluster.version back to \"{live}\" (upgrade with the EKS console or API, then update the file)",
                        self.ctx.cluster_name()
                    )));
                }
                // Unhealthy is unhealthy: `status` shows a cluster that is
                // not ACTIVE as not ready, and one EKS could not make as an
                // error (so `plan` says what `up` will say).
                match info.status.as_str() {
                    "ACTIVE" => Ok(Change::keep(format!(
                        "{} ACTIVE, Kubernetes {live}",
                        self.ctx.cluster_name()
                    ))),
                    "FAILED" => Err(ProviderError::api(format!(
                        "EKS cluster {} is FAILED: EKS could not make it (see its health \
                         issues in the EKS console); `howdah down` removes it, then `howdah up` \
                         makes it again",
                        self.ctx.cluster_name()
                    ))),
                    s => Ok(Change::keep(format!(
                        "in sync, not ready: {} is {s}; up waits for it",
                        self.ctx.cluster_name()
                    ))),
                }
            }
        }
    }

    async fn plan_down(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        Ok(match Self::describe(&self.ctx).await? {
            Some(info) if info.owned => Change::new(
                Action::Delete,
                format!("{} ({})", self.ctx.cluster_name(), info.status),
            ),
            Some(_) => Change::keep("not this stack's: left alone"),
            None => Change::keep("already gone"),
        })
    }

    async fn apply(&self, ctx: &StepContext, _change: &Change) -> Result<Value, ProviderError> {
        let name = self.ctx.cluster_name();
        match Self::describe(&self.ctx).await? {
            Some(info) if !info.owned => return Err(self.not_ours()),
            Some(info) if info.status == "ACTIVE" => return Ok(Self::outputs(&info, &name)),
            Some(_) => {}
            None => self.create(ctx).await?,
        }
        let info = self.wait_active(ctx).await?;
        Ok(Self::outputs(&info, &name))
    }

    async fn destroy(&self, ctx: &StepContext, _change: &Change) -> Result<(), ProviderError> {
        let name = self.ctx.cluster_name();
        delete_and_wait(
            &format!("EKS cluster {name}"),
            self.expected(Action::Delete),
            ctx.progress.as_ref(),
            || async { Ok(Self::describe(&self.ctx).await?.map(|i| i.status)) },
            || async {
                let sent = self
                    .ctx
                    .aws()
                    .await
                    .eks
                    .delete_cluster()
                    .name(&name)
                    .send()
                    .await;
                Ok(match sent {
                    Ok(_) => Asked::Accepted,
                    Err(e) if not_found(&e) => Asked::Gone,
                    // Node groups or add-ons still going: ask again later.
                    Err(e) if is(&e, &["ResourceInUseException"]) => {
                        Asked::NotYet(format!("{name} still has node groups"))
                    }
                    Err(e) => return Err(err(&format!("deleting EKS cluster {name}"), e)),
                })
            },
        )
        .await
    }
}

pub struct Nodegroup {
    ctx: Arc<Ctx>,
    pool: NodePoolConfig,
    id: String,
}

/// A node group as Describe shows it.
struct NodegroupInfo {
    status: String,
    min: i32,
    max: i32,
    desired: i32,
    instance_types: Vec<String>,
    disk: Option<i32>,
    spot: bool,
    health: Vec<String>,
}

/// The node group `name` of the stack's cluster as Describe shows it
/// (None: not there).
async fn describe_nodegroup(ctx: &Ctx, name: &str) -> Result<Option<NodegroupInfo>, ProviderError> {
    let eks = &ctx.aws().await.eks;
    let out = match eks
        .describe_nodegroup()
        .cluster_name(ctx.cluster_name())
        .nodegroup_name(name)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(err(&format!("reading node group {name}"), e)),
    };
    let Some(ng) = out.nodegroup else {
        return Ok(None);
    };
    let scaling = ng.scaling_config();
    Ok(Some(NodegroupInfo {
        status: ng
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        min: scaling.and_then(|s| s.min_size()).unwrap_or_default(),
        max: scaling.and_then(|s| s.max_size()).unwrap_or_default(),
        desired: scaling.and_then(|s| s.desired_size()).unwrap_or_default(),
        instance_types: ng.instance_types().to_vec(),
        disk: ng.disk_size(),
        spot: ng.capacity_type().map(|c| c.as_str()) == Some("SPOT"),
        health: ng
            .health()
            .map(|h| {
                h.issues()
                    .iter()
                    .map(|i| {
                        format!(
                            "{}: {}",
                            i.code().map(|c| c.as_str()).unwrap_or_default(),
                            i.message().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }))
}

/// The EKS status of the node group `name` (None: not there).
pub async fn nodegroup_status(ctx: &Ctx, name: &str) -> Result<Option<String>, ProviderError> {
    Ok(describe_nodegroup(ctx, name).await?.map(|n| n.status))
}

impl Nodegroup {
    pub fn new(ctx: Arc<Ctx>, pool: NodePoolConfig) -> Nodegroup {
        let id = ids::nodegroup(&pool.name);
        Nodegroup { ctx, pool, id }
    }

    async fn describe(&self) -> Result<Option<NodegroupInfo>, ProviderError> {
        describe_nodegroup(&self.ctx, &self.pool.name).await
    }

    /// Fields that cannot change in place (a new node group is needed).
    fn immutable_drift(&self, live: &NodegroupInfo) -> Vec<FieldChange> {
        let mut f = Vec::new();
        if !live.instance_types.is_empty()
            && live.instance_types != [self.pool.machine_type.clone()]
        {
            f.push(FieldChange {
                path: "machineType".into(),
                old: Some(live.instance_types.join(",")),
                new: Some(self.pool.machine_type.clone()),
            });
        }
        if live
            .disk
            .is_some_and(|d| d as u32 != self.pool.disk_size_gb)
        {
            f.push(FieldChange {
                path: "diskSizeGb".into(),
                old: live.disk.map(|d| d.to_string()),
                new: Some(self.pool.disk_size_gb.to_string()),
            });
        }
        if live.spot != self.pool.spot {
            f.push(FieldChange {
                path: "spot".into(),
                old: Some(live.spot.to_string()),
                new: Some(self.pool.spot.to_string()),
            });
        }
        f
    }

    /// Scaling changes, made in place. The live desired size is kept when
    /// it is inside the new bounds (an autoscaler may have moved it).
    fn scaling_drift(&self, live: &NodegroupInfo) -> Vec<FieldChange> {
        let mut f = Vec::new();
        let (min, max) = (self.pool.min as i32, self.pool.max as i32);
        if live.min != min {
            f.push(FieldChange {
                path: "min".into(),
                old: Some(live.min.to_string()),
                new: Some(min.to_string()),
            });
        }
        if live.max != max {
            f.push(FieldChange {
                path: "max".into(),
                old: Some(live.max.to_string()),
                new: Some(max.to_string()),
            });
        }
        if live.desired < min || live.desired > max {
            f.push(FieldChange {
                path: "desired".into(),
                old: Some(live.desired.to_string()),
                new: Some(live.desired.clamp(min, max).to_string()),
            });
        }
        f
    }

    /// Why a live node group cannot serve, when EKS says it cannot:
    /// failed to create or delete, degraded with health issues, or on
    /// its way out.
    fn failure(&self, live: &NodegroupInfo) -> Option<ProviderError> {
        let issues = if live.health.is_empty() {
            "no health issues reported; see the EKS console".to_string()
        } else {
            live.health.join("; ")
        };
        let name = &self.pool.name;
        match live.status.as_str() {
            "CREATE_FAILED" | "DELETE_FAILED" => Some(ProviderError::api(format!(
                "node group {name} is {}: {issues}; `howdah down` removes it, then `howdah up` makes it again",
                live.status
            ))),
            "DEGRADED" if !live.health.is_empty() => Some(ProviderError::api(format!(
                "node group {name} is DEGRADED: {issues}"
            ))),
            "DELETING" => Some(ProviderError::api(format!(
                "node group {name} is being deleted; wait for it to go, then run up again"
            ))),
            _ => None,
        }
    }

    fn refuse(&self, drift: &[FieldChange]) -> ProviderError {
        let what: Vec<String> = drift
            .iter()
            .map(|d| {
                format!(
                    "{} {} → {}",
                    d.path,
                    d.old.clone().unwrap_or_default(),
                    d.new.clone().unwrap_or_default()
                )
            })
            .collect();
        ProviderError::config(format!(
            "node pool `{}`: {} cannot change on an existing node group; add a pool with a new name and the new settings, run up, then remove the old pool",
            self.pool.name,
            what.join(", ")
        ))
    }

    async fn create(&self, ctx: &StepContext) -> Result<(), ProviderError> {
        let eks = &self.ctx.aws().await.eks;
        let role = Ctx::output(&ctx.outputs, ids::NODE_ROLE, "arn")
            .ok_or_else(|| ProviderError::api("the node role's ARN is not known"))?;
        let subnets: Vec<String> = ctx
            .outputs
            .get(ids::NETWORK)
            .and_then(|n| serde_json::from_value(n["subnet_ids"].clone()).ok())
            .unwrap_or_default();
        let mut tags: HashMap<String, String> = self.ctx.tags(&self.id).into_iter().collect();
        tags.insert(
            "Name".into(),
            format!("{}-{}", self.ctx.cluster_name(), self.pool.name),
        );
        ctx.progress.report(&format!(
            "creating node group {} ({} × {}..{})",
            self.pool.name, self.pool.machine_type, self.pool.min, self.pool.max
        ));
        let intent = self
            .ctx
            .intend(
                &self.id,
                "eks.nodegroup",
                &format!("{}/{}", self.ctx.cluster_name(), self.pool.name),
            )
            .await?;
        let sent = eks
            .create_nodegroup()
            .set_client_request_token(intent.token.clone())
            .cluster_name(self.ctx.cluster_name())
            .nodegroup_name(&self.pool.name)
            .node_role(role)
            .set_subnets(Some(subnets))
            .instance_types(&self.pool.machine_type)
            .disk_size(self.pool.disk_size_gb as i32)
            .capacity_type(if self.pool.spot {
                CapacityTypes::Spot
            } else {
                CapacityTypes::OnDemand
            })
            .scaling_config(
                NodegroupScalingConfig::builder()
                    .min_size(self.pool.min as i32)
                    .max_size(self.pool.max as i32)
                    .desired_size(self.pool.desired as i32)
                    .build(),
            )
            .set_labels(Some(self.pool.labels.clone().into_iter().collect()))
            .set_tags(Some(tags))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if is(&e, &["ResourceInUseException"]) => Ok(()),
            Err(e) => Err(err(&format!("creating node group {}", self.pool.name), e)),
        }
    }

    async fn wait_active(&self, ctx: &StepContext) -> Result<(), ProviderError> {
        let started = Instant::now();
        let expected = self.expected(Action::Create);
        poll_until_expecting(
            &format!("node group {} to become ACTIVE", self.pool.name),
            LIMIT,
            poll_backoff(),
            expecting(expected),
            ctx.progress.as_ref(),
            || async {
                let info = self.describe().await?.ok_or_else(|| {
                    ProviderError::api("the node group disappeared while being created")
                })?;
                match info.status.as_str() {
                    "ACTIVE" => Ok(Poll::Ready(())),
                    "CREATE_FAILED" => Err(ProviderError::api(format!(
                        "node group {} is CREATE_FAILED: {}",
                        self.pool.name,
                        if info.health.is_empty() {
                            "no health issues reported; see the EKS console".to_string()
                        } else {
                            info.health.join("; ")
                        }
                    ))),
                    "DEGRADED" if !info.health.is_empty() => Err(ProviderError::api(format!(
                        "node group {} is {}: {}",
                        self.pool.name,
                        info.status,
                        info.health.join("; ")
                    ))),
                    s => Ok(Poll::Pending(eta(s, started, expected))),
                }
            },
        )
        .await
    }
}

#[async_trait]
impl Resource for Nodegroup {
    fn id(&self) -> &str {
        &self.id
    }

    fn depends_on(&self) -> Vec<String> {
        vec![
            ids::CLUSTER.into(),
            ids::NODE_ROLE.into(),
            ids::NETWORK.into(),
        ]
    }

    fn expected(&self, action: Action) -> Duration {
        match action {
            Action::Create => Duration::from_secs(4 * 60),
            Action::Delete => Duration::from_secs(5 * 60),
            Action::Keep => Duration::from_secs(1),
            _ => Duration::from_secs(2 * 60),
        }
    }

    async fn plan_up(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        if Cluster::describe(&self.ctx).await?.is_none() {
            return Ok(self.create_change());
        }
        match self.describe().await? {
            None => Ok(self.create_change()),
            Some(live) => {
                let fixed = self.immutable_drift(&live);
                if !fixed.is_empty() {
                    return Err(self.refuse(&fixed));
                }
                // Unhealthy is unhealthy: a group EKS could not make is an
                // error (as `up` will say), one still changing is not ready.
                if let Some(problem) = self.failure(&live) {
                    return Err(problem);
                }
                if live.status != "ACTIVE" {
                    return Ok(Change::keep(format!(
                        "in sync, not ready: node group {} is {}; up waits for it",
                        self.pool.name, live.status
                    )));
                }
                let fields = self.scaling_drift(&live);
                if fields.is_empty() {
                    return Ok(Change::keep(format!(
                        "{} {} × {} ({}..{})",
                        live.status, self.pool.machine_type, live.desired, live.min, live.max
                    )));
                }
                let mut c = Change::new(Action::Update, "scaling differs");
                c.fields = fields;
                Ok(c)
            }
        }
    }

    async fn plan_down(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        if Cluster::describe(&self.ctx).await?.is_none() {
            return Ok(Change::keep("already gone"));
        }
        Ok(match self.describe().await? {
            Some(info) => Change::new(
                Action::Delete,
                format!("{} ({})", self.pool.name, info.status),
            ),
            None => Change::keep("already gone"),
        })
    }

    async fn apply(&self, ctx: &StepContext, _change: &Change) -> Result<Value, ProviderError> {
        match self.describe().await? {
            None => self.create(ctx).await?,
            Some(live) => {
                let fixed = self.immutable_drift(&live);
                if !fixed.is_empty() {
                    return Err(self.refuse(&fixed));
                }
                if !self.scaling_drift(&live).is_empty() && live.status == "ACTIVE" {
                    let desired = live
                        .desired
                        .clamp(self.pool.min as i32, self.pool.max as i32);
                    self.ctx
                        .aws()
                        .await
                        .eks
                        .update_nodegroup_config()
                        .cluster_name(self.ctx.cluster_name())
                        .nodegroup_name(&self.pool.name)
                        .scaling_config(
                            NodegroupScalingConfig::builder()
                                .min_size(self.pool.min as i32)
                                .max_size(self.pool.max as i32)
                                .desired_size(desired)
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(|e| err(&format!("scaling node group {}", self.pool.name), e))?;
                }
            }
        }
        self.wait_active(ctx).await?;
        Ok(json!({"name": self.pool.name, "cluster": self.ctx.cluster_name()}))
    }

    async fn destroy(&self, ctx: &StepContext, _change: &Change) -> Result<(), ProviderError> {
        let what = format!("node group {}", self.pool.name);
        delete_and_wait(
            &what,
            self.expected(Action::Delete),
            ctx.progress.as_ref(),
            || async { Ok(self.describe().await?.map(|i| i.status)) },
            || async {
                let sent = self
                    .ctx
                    .aws()
                    .await
                    .eks
                    .delete_nodegroup()
                    .cluster_name(self.ctx.cluster_name())
                    .nodegroup_name(&self.pool.name)
                    .send()
                    .await;
                Ok(match sent {
                    Ok(_) => Asked::Accepted,
                    Err(e) if not_found(&e) => Asked::Gone,
                    Err(e) if is(&e, &["ResourceInUseException"]) => Asked::Accepted,
                    Err(e) => return Err(err(&format!("deleting {what}"), e)),
                })
            },
        )
        .await
    }
}

impl Nodegroup {
    fn create_change(&self) -> Change {
        let mut c = Change::new(
            Action::Create,
            format!("node group {}: not found", self.pool.name),
        );
        c.fields = vec![
            FieldChange {
                path: "machineType".into(),
                old: None,
                new: Some(self.pool.machine_type.clone()),
            },
            FieldChange {
                path: "scaling".into(),
                old: None,
                new: Some(format!(
                    "min {} / desired {} / max {}",
                    self.pool.min, self.pool.desired, self.pool.max
                )),
            },
            FieldChange {
                path: "capacity".into(),
                old: None,
                new: Some(if self.pool.spot { "spot" } else { "on-demand" }.into()),
            },
        ];
        c
    }
}

/// The EBS CSI driver's add-on name.
pub const EBS_CSI_ADDON: &str = "aws-ebs-csi-driver";

/// An EKS add-on: here the EBS CSI driver, with its own IRSA role, so
/// PersistentVolumeClaims get gp3 volumes (EKS ≥ 1.23 has no in-tree EBS).
pub struct Addon {
    ctx: Arc<Ctx>,
    name: &'static str,
    role_step: &'static str,
}

impl Addon {
    pub fn ebs_csi(ctx: Arc<Ctx>) -> Addon {
        Addon {
            ctx,
            name: EBS_CSI_ADDON,
            role_step: ids::EBS_ROLE,
        }
    }

    /// The EKS status of the stack's add-on `name` (None: not there).
    pub async fn status(
        ctx: Arc<Ctx>,
        name: &'static str,
    ) -> Result<Option<String>, ProviderError> {
        let addon = Addon {
            ctx,
            name,
            role_step: ids::EBS_ROLE,
        };
        Ok(addon.describe().await?.map(|(status, _, _)| status))
    }

    async fn describe(
        &self,
    ) -> Result<Option<(String, Option<String>, Vec<String>)>, ProviderError> {
        let out = match self
            .ctx
            .aws()
            .await
            .eks
            .describe_addon()
            .cluster_name(self.ctx.cluster_name())
            .addon_name(self.name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => {
                return Err(err(
                    &format!("reading add-on {} (eks:DescribeAddon)", self.name),
                    e,
                ))
            }
        };
        Ok(out.addon.map(|a| {
            let issues = a
                .health()
                .map(|h| {
                    h.issues()
                        .iter()
                        .map(|i| i.message().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            (
                a.status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                a.service_account_role_arn().map(str::to_string),
                issues,
            )
        }))
    }
}

#[async_trait]
impl Resource for Addon {
    fn id(&self) -> &str {
        ids::EBS_ADDON
    }

    fn depends_on(&self) -> Vec<String> {
        vec![ids::CLUSTER.into(), self.role_step.into()]
    }

    fn expected(&self, action: Action) -> Duration {
        match action {
            Action::Create => Duration::from_secs(60),
            Action::Delete => Duration::from_secs(60),
            Action::Keep => Duration::from_secs(1),
            _ => Duration::from_secs(60),
        }
    }

    async fn plan_up(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        if Cluster::describe(&self.ctx).await?.is_none() {
            return Ok(Change::new(
                Action::Create,
                format!("{}: not found", self.name),
            ));
        }
        Ok(match self.describe().await? {
            None => Change::new(Action::Create, format!("{}: not found", self.name)),
            Some((status, _, _)) if status == "ACTIVE" => {
                Change::keep(format!("{} ACTIVE", self.name))
            }
            Some((status, _, issues))
                if matches!(
                    status.as_str(),
                    "CREATE_FAILED" | "UPDATE_FAILED" | "DELETE_FAILED" | "DEGRADED"
                ) =>
            {
                return Err(ProviderError::api(format!(
                    "add-on {} is {status}: {}",
                    self.name,
                    if issues.is_empty() {
                        "no health issues reported; see the EKS console".to_string()
                    } else {
                        issues.join("; ")
                    }
                )))
            }
            Some((status, _, _)) => Change::keep(format!(
                "in sync, not ready: add-on {} is {status}; up waits for it",
                self.name
            )),
        })
    }

    async fn plan_down(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        if Cluster::describe(&self.ctx).await?.is_none() {
            return Ok(Change::keep("already gone"));
        }
        Ok(match self.describe().await? {
            Some((status, _, _)) => {
                Change::new(Action::Delete, format!("{} ({status})", self.name))
            }
            None => Change::keep("already gone"),
        })
    }

    async fn apply(&self, ctx: &StepContext, _change: &Change) -> Result<Value, ProviderError> {
        let role = Ctx::output(&ctx.outputs, self.role_step, "arn")
            .ok_or_else(|| ProviderError::api("the add-on's role ARN is not known"))?;
        let eks = &self.ctx.aws().await.eks;
        match self.describe().await? {
            None => {
                ctx.progress
                    .report(&format!("installing add-on {}", self.name));
                let tags: HashMap<String, String> =
                    self.ctx.tags(ids::EBS_ADDON).into_iter().collect();
                let intent = self
                    .ctx
                    .intend(
                        ids::EBS_ADDON,
                        "eks.addon",
                        &format!("{}/{}", self.ctx.cluster_name(), self.name),
                    )
                    .await?;
                match eks
                    .create_addon()
                    .set_client_request_token(intent.token.clone())
                    .cluster_name(self.ctx.cluster_name())
                    .addon_name(self.name)
                    .service_account_role_arn(&role)
                    .resolve_conflicts(ResolveConflicts::Overwrite)
                    .set_tags(Some(tags))
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e) if is(&e, &["ResourceInUseException"]) => {}
                    Err(e) => {
                        return Err(err(
                            &format!("installing add-on {} (eks:CreateAddon)", self.name),
                            e,
                        ))
                    }
                }
            }
            Some((status, live_role, _))
                if !matches!(status.as_str(), "CREATING" | "UPDATING" | "DELETING")
                    && live_role.as_deref() != Some(role.as_str()) =>
            {
                eks.update_addon()
                    .cluster_name(self.ctx.cluster_name())
                    .addon_name(self.name)
                    .service_account_role_arn(&role)
                    .resolve_conflicts(ResolveConflicts::Overwrite)
                    .send()
                    .await
                    .map_err(|e| {
                        err(
                            &format!("updating add-on {} (eks:UpdateAddon)", self.name),
                            e,
                        )
                    })?;
            }
            Some(_) => {}
        }
        let started = Instant::now();
        let expected = self.expected(Action::Create);
        poll_until_expecting(
            &format!("add-on {} to become ACTIVE", self.name),
            LIMIT,
            poll_backoff(),
            expecting(expected),
            ctx.progress.as_ref(),
            || async {
                let Some((status, _, issues)) = self.describe().await? else {
                    return Err(ProviderError::api(
                        "the add-on disappeared while being created",
                    ));
                };
                match status.as_str() {
                    "ACTIVE" => Ok(Poll::Ready(())),
                    "CREATE_FAILED" | "UPDATE_FAILED" => Err(ProviderError::api(format!(
                        "add-on {} is {status}: {}",
                        self.name,
                        issues.join("; ")
                    ))),
                    s => Ok(Poll::Pending(eta(s, started, expected))),
                }
            },
        )
        .await?;
        Ok(json!({"name": self.name, "role_arn": role}))
    }

    async fn destroy(&self, ctx: &StepContext, _change: &Change) -> Result<(), ProviderError> {
        let what = format!("add-on {}", self.name);
        delete_and_wait(
            &what,
            self.expected(Action::Delete),
            ctx.progress.as_ref(),
            || async { Ok(self.describe().await?.map(|(status, _, _)| status)) },
            || async {
                let sent = self
                    .ctx
                    .aws()
                    .await
                    .eks
                    .delete_addon()
                    .cluster_name(self.ctx.cluster_name())
                    .addon_name(self.name)
                    .send()
                    .await;
                Ok(match sent {
                    Ok(_) => Asked::Accepted,
                    Err(e) if not_found(&e) => Asked::Gone,
                    Err(e) if is(&e, &["ResourceInUseException"]) => Asked::Accepted,
                    Err(e) => return Err(err(&format!("deleting {what} (eks:DeleteAddon)"), e)),
                })
            },
        )
        .await
    }
}
