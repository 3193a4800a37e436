//! Checks before any write: the credentials resolve (with a clear word for
//! expired SSO sessions and missing profiles), the instance types are
//! offered where the nodes will run, and the bucket name is free or ours.
//! (Region and Kubernetes version are checked offline by the spec.)

use std::collections::BTreeSet;

use howdah_provider::ProviderError;

use crate::clients::err;
use crate::network::filter;
use crate::s3::{Bucket, Owner};
use crate::{Ctx, NetworkConfig};

pub async fn run(ctx: &Ctx) -> Result<(), ProviderError> {
    if let Some(profile) = &ctx.cfg.profile {
        if !crate::clients::profile_defined(profile) {
            return Err(ProviderError::config(format!(
                "AWS profile `{profile}` is not defined in ~/.aws/config or ~/.aws/credentials (or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE); fix target.aws.profile, or remove it to use the default credential chain"
            )));
        }
    }
    let account = ctx.account().await?.to_string();
    tracing::debug!(account, region = %ctx.cfg.region, "AWS credentials resolve");
    // Independent reads, at once.
    let bucket = ctx.bucket_name().await?;
    let (types, owner) = tokio::join!(check_instance_types(ctx), Bucket::owner(ctx, &bucket));
    types?;
    match owner? {
        Owner::Nobody | Owner::Us | Owner::Untagged => Ok(()),
        Owner::Foreign => Err(ProviderError::config(format!(
            "bucket {bucket} already exists in account {account} but is not tagged howdah.io/stack={}; choose another storage.bucket.name (howdah does not take over buckets it did not make)",
            ctx.cfg.stack
        ))),
        Owner::Other => Err(ProviderError::config(format!(
            "bucket {bucket} is not accessible: another AWS account has the name (S3 names are global), or these credentials lack s3:ListBucket on it; choose another storage.bucket.name or grant the permission"
        ))),
    }
}

/// The zones nodes will run in: the given subnets' zones, or the first
/// zones of the region a new VPC will use.
async fn node_zones(ctx: &Ctx) -> Result<Vec<String>, ProviderError> {
    match &ctx.cfg.network {
        NetworkConfig::Existing { vpc_id, subnet_ids } => {
            Ok(crate::network::given_subnet_zones(ctx, vpc_id, subnet_ids)
                .await?
                .into_iter()
                .collect())
        }
        NetworkConfig::New { zones, .. } => crate::network::usable_zones(ctx, *zones).await,
    }
}

async fn check_instance_types(ctx: &Ctx) -> Result<(), ProviderError> {
    let zones = node_zones(ctx).await?;
    let ec2 = &ctx.aws().await.ec2;
    let types: BTreeSet<&str> = ctx
        .cfg
        .node_pools
        .iter()
        .map(|p| p.machine_type.as_str())
        .collect();
    for t in types {
        let out = ec2
            .describe_instance_type_offerings()
            .location_type(aws_sdk_ec2::types::LocationType::AvailabilityZone)
            .filters(filter("instance-type", t))
            .send()
            .await
            .map_err(|e| err("listing instance type offerings", e))?;
        let offered: BTreeSet<String> = out
            .instance_type_offerings()
            .iter()
            .filter_map(|o| o.location().map(str::to_string))
            .collect();
        let missing: Vec<&String> = zones.iter().filter(|z| !offered.contains(*z)).collect();
        if offered.is_empty() {
            return Err(ProviderError::config(format!(
                "instance type {t} is not offered in {}; pick another machineType for the node pool",
                ctx.cfg.region
            )));
        }
        if !missing.is_empty() {
            return Err(ProviderError::config(format!(
                "instance type {t} is not offered in {} (it is in: {}); pick another machineType or other subnets",
                missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                offered.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(())
}
