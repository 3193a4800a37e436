//! What the cluster made in the account on its own (load balancers for
//! LoadBalancer Services, EBS volumes for claims), which must be gone before
//! the node groups and the CSI driver go; and the leak scan after `down`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_resourcegroupstagging::types::TagFilter;
use howdah_provider::wait::{poll_until, Poll};
use howdah_provider::{Action, Change, Leftover, ProviderError, Resource, StepContext};
use serde_json::Value;

use crate::clients::{err, not_found};
use crate::eks::{poll_backoff, Addon, Cluster, EBS_CSI_ADDON};
use crate::network::filter;
use crate::{ids, tags, Ctx, NetworkConfig};

/// `aws.cluster_cloud_objects`: a no-op on `up` (it only marks "nodes and
/// CSI driver are in"), and on `down` the wait, after the runtime's
/// Services and claims are deleted, until AWS has really removed their
/// load balancers and (when data may go) volumes — while the controllers
/// that remove them still run.
pub struct CloudObjects {
    ctx: Arc<Ctx>,
}

impl CloudObjects {
    pub fn new(ctx: Arc<Ctx>) -> CloudObjects {
        CloudObjects { ctx }
    }

    /// Load balancers the cluster's controllers made, seen through their
    /// network interfaces in the cluster's VPC (`ELB <name>`, `ELB app/…`,
    /// `ELB net/…`): EC2's own word on whether they are gone. (The Tagging
    /// API keeps listing deleted load balancers for a while.)
    async fn load_balancers(&self) -> Result<Vec<String>, ProviderError> {
        let Some(vpc) = Cluster::describe(&self.ctx).await?.and_then(|c| c.vpc_id) else {
            return Ok(Vec::new());
        };
        let out = self
            .ctx
            .aws()
            .await
            .ec2
            .describe_network_interfaces()
            .filters(filter("vpc-id", &vpc))
            .send()
            .await
            .map_err(|e| err("listing network interfaces", e))?;
        let mut names: Vec<String> = out
            .network_interfaces()
            .iter()
            .filter_map(|n| n.description())
            .filter_map(|d| d.strip_prefix("ELB "))
            .map(str::to_string)
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// EBS volumes of the stack's claims that still exist.
    async fn volumes(&self) -> Result<Vec<String>, ProviderError> {
        volumes(&self.ctx).await
    }

    async fn pending(&self) -> Result<(Vec<String>, Vec<String>), ProviderError> {
        let lbs = self.load_balancers().await?;
        let vols = if self.ctx.delete_data() {
            self.volumes().await?
        } else {
            Vec::new()
        };
        Ok((lbs, vols))
    }
}

/// ARNs carrying tag `key` (with `value`, if given) among `types`.
async fn tagged(
    ctx: &Ctx,
    key: &str,
    value: Option<&str>,
    types: &[&str],
) -> Result<Vec<String>, ProviderError> {
    let tagging = &ctx.aws().await.tagging;
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut f = TagFilter::builder().key(key);
        if let Some(v) = value {
            f = f.values(v);
        }
        let mut call = tagging.get_resources().tag_filters(f.build());
        for t in types {
            call = call.resource_type_filters(*t);
        }
        if let Some(t) = &token {
            call = call.pagination_token(t);
        }
        let page = call
            .send()
            .await
            .map_err(|e| err("listing tagged resources (Resource Groups Tagging API)", e))?;
        out.extend(
            page.resource_tag_mapping_list()
                .iter()
                .filter_map(|m| m.resource_arn().map(str::to_string)),
        );
        match page.pagination_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

/// The stack's EBS volumes (tagged by the gp3 StorageClass) not yet deleted.
async fn volumes(ctx: &Ctx) -> Result<Vec<String>, ProviderError> {
    let out = ctx
        .aws()
        .await
        .ec2
        .describe_volumes()
        .filters(filter(&format!("tag:{}", tags::STACK), &ctx.cfg.stack))
        .send()
        .await
        .map_err(|e| err("listing EBS volumes", e))?;
    Ok(out
        .volumes()
        .iter()
        .filter(|v| v.state().map(|s| s.as_str()) != Some("deleted"))
        .filter_map(|v| v.volume_id().map(str::to_string))
        .collect())
}

#[async_trait]
impl Resource for CloudObjects {
    fn id(&self) -> &str {
        ids::CLOUD_OBJECTS
    }

    fn depends_on(&self) -> Vec<String> {
        let mut deps: Vec<String> = self
            .ctx
            .cfg
            .node_pools
            .iter()
            .map(|p| ids::nodegroup(&p.name))
            .collect();
        deps.push(ids::EBS_ADDON.into());
        deps
    }

    fn expected(&self, action: Action) -> Duration {
        match action {
            Action::Delete => Duration::from_secs(60),
            _ => Duration::ZERO,
        }
    }

    /// The mark "nodes and CSI driver are in" holds only when they are:
    /// missing parts make it a create (up makes them first), parts not
    /// ACTIVE make it not ready. Never healthy on a cluster without nodes.
    async fn plan_up(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        let cluster = Cluster::describe(&self.ctx).await?;
        let mut missing = Vec::new();
        let mut unready = Vec::new();
        match cluster.as_ref().map(|c| c.status.as_str()) {
            None => missing.push(format!("EKS cluster {}", self.ctx.cluster_name())),
            Some("ACTIVE") => {}
            Some(s) => unready.push(format!("EKS cluster {} is {s}", self.ctx.cluster_name())),
        }
        if cluster.is_some() {
            for pool in &self.ctx.cfg.node_pools {
                match crate::eks::nodegroup_status(&self.ctx, &pool.name).await? {
                    None => missing.push(format!("node group {}", pool.name)),
                    Some(s) if s == "ACTIVE" => {}
                    Some(s) => unready.push(format!("node group {} is {s}", pool.name)),
                }
            }
            match Addon::status(self.ctx.clone(), EBS_CSI_ADDON).await? {
                None => missing.push(format!("add-on {EBS_CSI_ADDON}")),
                Some(s) if s == "ACTIVE" => {}
                Some(s) => unready.push(format!("add-on {EBS_CSI_ADDON} is {s}")),
            }
        }
        if !missing.is_empty() {
            return Ok(Change::new(
                Action::Create,
                format!("not found: {}; up makes them first", missing.join(", ")),
            ));
        }
        if !unready.is_empty() {
            return Ok(Change::keep(format!(
                "in sync, not ready: {}",
                unready.join(", ")
            )));
        }
        Ok(Change::keep("nodes and the CSI driver are in place"))
    }

    async fn plan_down(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        if Cluster::describe(&self.ctx).await?.is_none() {
            return Ok(Change::keep("no cluster"));
        }
        let (lbs, vols) = self.pending().await?;
        // Claims deleted by this very run free their volumes only later:
        // the step waits whenever data may go.
        if lbs.is_empty() && vols.is_empty() && !self.ctx.delete_data() {
            return Ok(Change::keep(
                "no load balancers; volumes kept with the data",
            ));
        }
        Ok(Change::new(
            Action::Delete,
            format!(
                "wait until the cluster's load balancers ({}) and volumes ({}) are gone",
                lbs.len(),
                if self.ctx.delete_data() {
                    vols.len().to_string()
                } else {
                    "kept".into()
                }
            ),
        ))
    }

    async fn apply(&self, _ctx: &StepContext, _change: &Change) -> Result<Value, ProviderError> {
        Ok(Value::Null)
    }

    async fn destroy(&self, ctx: &StepContext, _change: &Change) -> Result<(), ProviderError> {
        poll_until(
            "the cluster's load balancers and volumes to be deleted by AWS",
            Duration::from_secs(15 * 60),
            poll_backoff(),
            ctx.progress.as_ref(),
            || async {
                let (lbs, vols) = self.pending().await?;
                Ok(if lbs.is_empty() && vols.is_empty() {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!(
                        "{} load balancer(s), {} volume(s) left: {}",
                        lbs.len(),
                        vols.len(),
                        lbs.iter()
                            .chain(&vols)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
            },
        )
        .await
    }
}

/// Everything of the stack still in the account: the Tagging API by the
/// stack tag, plus direct reads for what it does not cover (IAM, EKS).
pub async fn scan(ctx: &Ctx) -> Result<Vec<Leftover>, ProviderError> {
    let mut out: Vec<Leftover> = Vec::new();
    let mut seen = BTreeSet::new();
    let keep_data = !ctx.delete_data();
    // Everything howdah made goes with `down`; what holds data needs
    // `--delete-data` too (the CLI says when this run already had it).
    let down = "howdah down -f <stack file>".to_string();
    let down_data = "howdah down -f <stack file> --delete-data".to_string();
    let mut push = |out: &mut Vec<Leftover>,
                    kind: &str,
                    name: String,
                    retained: bool,
                    how: &String,
                    status: Option<String>| {
        if seen.insert((kind.to_string(), name.clone())) {
            out.push(Leftover {
                kind: kind.into(),
                name,
                retained,
                remove_with: how.clone(),
                status,
            });
        }
    };
    for arn in tagged(ctx, tags::STACK, Some(&ctx.cfg.stack), &[]).await? {
        let (kind, name) = classify(&arn);
        // Checked directly below: the Tagging API also lists resources
        // deleted minutes ago.
        if matches!(
            kind.as_str(),
            "aws.s3_bucket" | "aws.ebs_volume" | "aws.vpc"
        ) {
            continue;
        }
        let retained = keep_data && matches!(kind.as_str(), "aws.s3_bucket" | "aws.ebs_volume");
        push(&mut out, &kind, name, retained, &down, None);
    }
    let aws = ctx.aws().await;
    if let Some(info) = Cluster::describe(ctx).await? {
        if info.owned {
            push(
                &mut out,
                "aws.eks_cluster",
                ctx.cluster_name(),
                false,
                &down,
                Some(format!("EKS reports it {}", info.status)),
            );
        }
    }
    for suffix in ["cluster", "node", "ebs-csi", "pachyderm"] {
        let name = ctx.iam_name(suffix);
        match aws.iam.get_role().role_name(&name).send().await {
            Ok(r) => {
                let owned = r
                    .role()
                    .is_some_and(|r| ctx.owns(r.tags().iter().map(|t| (t.key(), t.value()))));
                if owned {
                    push(&mut out, "aws.iam_role", name, false, &down, None);
                }
            }
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(err("checking IAM roles", e)),
        }
    }
    match aws
        .iam
        .get_user()
        .user_name(ctx.iam_name("pachyderm"))
        .send()
        .await
    {
        Ok(_) => push(
            &mut out,
            "aws.iam_user",
            ctx.iam_name("pachyderm"),
            false,
            &down,
            None,
        ),
        Err(e) if not_found(&e) => {}
        Err(e) => return Err(err("checking IAM users", e)),
    }
    let providers = aws
        .iam
        .list_open_id_connect_providers()
        .send()
        .await
        .map_err(|e| err("listing OIDC providers", e))?;
    for p in providers.open_id_connect_provider_list() {
        let Some(arn) = p.arn() else { continue };
        if let Ok(got) = aws
            .iam
            .get_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
        {
            if ctx.owns(got.tags().iter().map(|t| (t.key(), t.value()))) {
                push(
                    &mut out,
                    "aws.oidc_provider",
                    arn.to_string(),
                    false,
                    &down,
                    None,
                );
            }
        }
    }
    if matches!(ctx.cfg.network, NetworkConfig::New { .. }) {
        let vpcs = aws
            .ec2
            .describe_vpcs()
            .filters(filter(&format!("tag:{}", tags::STACK), &ctx.cfg.stack))
            .send()
            .await
            .map_err(|e| err("checking VPCs", e))?;
        for v in vpcs.vpcs() {
            if let Some(id) = v.vpc_id() {
                push(&mut out, "aws.vpc", id.to_string(), false, &down, None);
            }
        }
    }
    for id in volumes(ctx).await? {
        push(&mut out, "aws.ebs_volume", id, keep_data, &down_data, None);
    }
    if let Ok(name) = ctx.bucket_name().await {
        if matches!(
            crate::s3::Bucket::owner(ctx, &name).await?,
            crate::s3::Owner::Us | crate::s3::Owner::Untagged
        ) {
            push(&mut out, "aws.s3_bucket", name, keep_data, &down_data, None);
        }
    }
    Ok(out)
}

/// `arn:aws:s3:::b` → (aws.s3_bucket, b); `arn:aws:ec2:r:a:vpc/vpc-1` → (aws.ec2_vpc, vpc-1).
fn classify(arn: &str) -> (String, String) {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let service = parts.get(2).copied().unwrap_or("unknown");
    let resource = parts.get(5).copied().unwrap_or(arn);
    let (kind, name) = match resource.split_once('/') {
        Some((k, n)) => (k, n),
        None => ("", resource),
    };
    let kind = match (service, kind) {
        ("s3", _) => "aws.s3_bucket".to_string(),
        ("ec2", "volume") => "aws.ebs_volume".to_string(),
        ("ec2", "vpc") => "aws.vpc".to_string(),
        (s, "") => format!("aws.{s}"),
        (s, k) => format!("aws.{s}_{}", k.replace('-', "_")),
    };
    (kind, name.to_string())
}

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn arns_name_their_kind() {
        assert_eq!(
            classify("arn:aws:s3:::data"),
            ("aws.s3_bucket".into(), "data".into())
        );
        assert_eq!(
            classify("arn:aws:ec2:us-east-1:123:vpc/vpc-1"),
            ("aws.vpc".into(), "vpc-1".into())
        );
        assert_eq!(
            classify("arn:aws:ec2:us-east-1:123:internet-gateway/igw-1"),
            ("aws.ec2_internet_gateway".into(), "igw-1".into())
        );
        assert_eq!(
            classify("arn:aws:ec2:us-east-1:123:volume/vol-1"),
            ("aws.ebs_volume".into(), "vol-1".into())
        );
    }
}
