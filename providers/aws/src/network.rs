//! `aws.network`: a VPC with DNS on, one public subnet per availability
//! zone, an internet gateway and a route table; or the user's own VPC and
//! subnets, checked and used as they are (never changed, never deleted).
//!
//! Nodes get public addresses in public subnets, so they reach ECR and the
//! EKS endpoint without a NAT gateway (which costs by the hour and takes
//! minutes to create); inbound traffic is still closed by the security
//! groups EKS makes.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, Filter, ResourceType, Tag, TagSpecification};
use howdah_provider::wait::{poll_until, Backoff, Poll};
use howdah_provider::{Action, Change, FieldChange, ProviderError, Resource, StepContext};
use serde_json::{json, Value};

use crate::clients::{create_once, ec2_no_retry, err, is};
use crate::{ids, tags, Ctx, NetworkConfig};

pub struct Network {
    ctx: Arc<Ctx>,
}

/// What of the network is there now.
#[derive(Debug, Default)]
struct Found {
    vpc: Option<String>,
    subnets: Vec<(String, String, String)>, // (id, az, cidr)
    /// Subnets that do not give instances public addresses.
    private: Vec<String>,
    igw: Option<(String, bool)>,         // (id, attached to the vpc)
    route_table: Option<(String, bool)>, // (id, has the default route)
}

/// Runs `call` until EC2 sees what was just created: a `*.NotFound` right
/// after a create is EC2's eventual consistency, not an answer.
async fn settle<F, Fut, E>(what: &str, mut call: F) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<
        Output = Result<
            (),
            aws_sdk_ec2::error::SdkError<
                E,
                aws_smithy_runtime_api::client::orchestrator::HttpResponse,
            >,
        >,
    >,
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    howdah_provider::wait::retry(12, crate::eks::poll_backoff(), || {
        let fut = call();
        async move {
            match fut.await {
                Ok(()) => Ok(()),
                Err(e) if crate::clients::not_found(&e) => {
                    Err(ProviderError::retryable(format!("{what}: not visible yet")))
                }
                Err(e) => Err(err(what, e)),
            }
        }
    })
    .await
}

pub(crate) fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

pub(crate) fn ec2_tags(ctx: &Ctx, id: &str, extra: &[(&str, &str)]) -> Vec<Tag> {
    let mut all = ctx.tags(id);
    for (k, v) in extra {
        all.insert((*k).into(), (*v).into());
    }
    all.into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

pub(crate) fn tag_spec(
    ctx: &Ctx,
    kind: ResourceType,
    id: &str,
    extra: &[(&str, &str)],
) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(ec2_tags(ctx, id, extra)))
        .build()
}

fn ours(ctx: &Ctx) -> [Filter; 2] {
    [
        filter(&format!("tag:{}", tags::STACK), &ctx.cfg.stack),
        filter(&format!("tag:{}", tags::ID), ids::NETWORK),
    ]
}

/// The subnets of a new VPC: each zone gets a block 4 bits longer than the
/// VPC's (a /16 gives /20s of 4096 addresses), in order from the start.
pub(crate) fn subnet_cidrs(vpc_cidr: &str, zones: u32) -> Result<Vec<String>, ProviderError> {
    let (addr, prefix) = vpc_cidr
        .split_once('/')
        .ok_or_else(|| ProviderError::config(format!("`{vpc_cidr}` is not a CIDR block")))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| ProviderError::config(format!("`{vpc_cidr}` is not an IPv4 CIDR block")))?;
    let prefix: u32 = prefix
        .parse()
        .map_err(|_| ProviderError::config(format!("`{vpc_cidr}` has no valid prefix length")))?;
    let sub = (prefix + 4).min(28);
    let size = 1u32 << (32 - sub);
    let base = u32::from(addr) & (u32::MAX << (32 - prefix));
    if u64::from(zones) * u64::from(size) > 1u64 << (32 - prefix) {
        return Err(ProviderError::config(format!(
            "`{vpc_cidr}` is too small for {zones} subnets"
        )));
    }
    Ok((0..zones)
        .map(|i| format!("{}/{sub}", Ipv4Addr::from(base + i * size)))
        .collect())
}

/// Zone ids where EKS cannot place a control plane (as eksctl and the
/// Terraform EKS module also exclude).
const EKS_UNSUPPORTED_ZONES: &[&str] = &["use1-az3", "usw1-az2", "cac1-az3", "cnn1-az4"];

/// Availability zones a new VPC uses: the first `n` available ones in
/// name order, skipping zones where EKS cannot place a control plane.
pub(crate) async fn usable_zones(ctx: &Ctx, n: u32) -> Result<Vec<String>, ProviderError> {
    let out = ctx
        .aws()
        .await
        .ec2
        .describe_availability_zones()
        .filters(filter("state", "available"))
        .filters(filter("zone-type", "availability-zone"))
        .send()
        .await
        .map_err(|e| err("listing availability zones", e))?;
    let mut zones: Vec<String> = out
        .availability_zones()
        .iter()
        .filter(|z| {
            !z.zone_id()
                .is_some_and(|id| EKS_UNSUPPORTED_ZONES.contains(&id))
        })
        .filter_map(|z| z.zone_name().map(str::to_string))
        .collect();
    zones.sort();
    if (zones.len() as u32) < n {
        return Err(ProviderError::config(format!(
            "region {} has {} usable availability zones, and cluster.network.zones asks for {n}; lower it",
            ctx.cfg.region,
            zones.len()
        )));
    }
    zones.truncate(n as usize);
    Ok(zones)
}

/// The zones of the user's subnets, once they are checked: they exist, are
/// in the VPC, and span two or more zones (EKS refuses fewer).
pub(crate) async fn given_subnet_zones(
    ctx: &Ctx,
    vpc_id: &str,
    subnet_ids: &[String],
) -> Result<std::collections::BTreeSet<String>, ProviderError> {
    let out = ctx
        .aws()
        .await
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(subnet_ids.to_vec()))
        .send()
        .await
        .map_err(|e| {
            if crate::clients::not_found(&e) {
                ProviderError::config(format!(
                    "cluster.network.subnetIds: some of {} do not exist in {}; check the ids and the region",
                    subnet_ids.join(", "),
                    ctx.cfg.region
                ))
            } else {
                err("reading the given subnets", e)
            }
        })?;
    let mut zones = std::collections::BTreeSet::new();
    for s in out.subnets() {
        if s.vpc_id() != Some(vpc_id) {
            return Err(ProviderError::config(format!(
                "subnet {} is in {}, not in cluster.network.vpcId {vpc_id}",
                s.subnet_id().unwrap_or_default(),
                s.vpc_id().unwrap_or_default()
            )));
        }
        zones.insert(s.availability_zone().unwrap_or_default().to_string());
    }
    if zones.len() < 2 {
        return Err(ProviderError::config(format!(
            "the subnets {} are all in one availability zone; EKS needs subnets in at least two",
            subnet_ids.join(", ")
        )));
    }
    Ok(zones)
}

impl Network {
    pub fn new(ctx: Arc<Ctx>) -> Network {
        Network { ctx }
    }

    async fn find(&self) -> Result<Found, ProviderError> {
        let ec2 = &self.ctx.aws().await.ec2;
        let [a, b] = ours(&self.ctx);
        let vpcs = ec2
            .describe_vpcs()
            .filters(a.clone())
            .filters(b.clone())
            .send()
            .await
            .map_err(|e| err("listing VPCs", e))?;
        let Some(vpc) = vpcs
            .vpcs()
            .first()
            .and_then(|v| v.vpc_id().map(str::to_string))
        else {
            return Ok(Found::default());
        };
        let subnets = ec2
            .describe_subnets()
            .filters(filter("vpc-id", &vpc))
            .filters(b.clone())
            .send()
            .await
            .map_err(|e| err("listing subnets", e))?;
        let private = subnets
            .subnets()
            .iter()
            .filter(|s| s.map_public_ip_on_launch() != Some(true))
            .filter_map(|s| s.subnet_id().map(str::to_string))
            .collect();
        let mut subnets: Vec<(String, String, String)> = subnets
            .subnets()
            .iter()
            .map(|s| {
                (
                    s.subnet_id().unwrap_or_default().to_string(),
                    s.availability_zone().unwrap_or_default().to_string(),
                    s.cidr_block().unwrap_or_default().to_string(),
                )
            })
            .collect();
        subnets.sort_by(|x, y| x.2.cmp(&y.2));
        let igws = ec2
            .describe_internet_gateways()
            .filters(a.clone())
            .filters(b.clone())
            .send()
            .await
            .map_err(|e| err("listing internet gateways", e))?;
        let igw = igws.internet_gateways().first().map(|g| {
            let attached = g
                .attachments()
                .iter()
                .any(|att| att.vpc_id() == Some(vpc.as_str()));
            (
                g.internet_gateway_id().unwrap_or_default().to_string(),
                attached,
            )
        });
        let tables = ec2
            .describe_route_tables()
            .filters(filter("vpc-id", &vpc))
            .filters(b)
            .send()
            .await
            .map_err(|e| err("listing route tables", e))?;
        let route_table = tables.route_tables().first().map(|t| {
            let default = t.routes().iter().any(|r| {
                r.destination_cidr_block() == Some("0.0.0.0/0") && r.gateway_id().is_some()
            });
            (t.route_table_id().unwrap_or_default().to_string(), default)
        });
        Ok(Found {
            vpc: Some(vpc),
            subnets,
            private,
            igw,
            route_table,
        })
    }

    async fn zones(&self, n: u32) -> Result<Vec<String>, ProviderError> {
        usable_zones(&self.ctx, n).await
    }

    /// Checks the user's subnets: they exist, are in the VPC, and span two
    /// or more zones (EKS refuses fewer).
    async fn check_existing(
        &self,
        vpc_id: &str,
        subnet_ids: &[String],
    ) -> Result<Value, ProviderError> {
        given_subnet_zones(&self.ctx, vpc_id, subnet_ids).await?;
        Ok(json!({"vpc_id": vpc_id, "subnet_ids": subnet_ids, "created": false}))
    }

    fn outputs(found: &Found) -> Value {
        json!({
            "vpc_id": found.vpc,
            "subnet_ids": found.subnets.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
            "zones": found.subnets.iter().map(|s| s.1.clone()).collect::<Vec<_>>(),
            "internet_gateway_id": found.igw.as_ref().map(|g| g.0.clone()),
            "route_table_id": found.route_table.as_ref().map(|t| t.0.clone()),
            "created": true,
        })
    }

    async fn ensure(
        &self,
        ctx: &StepContext,
        cidr: &str,
        zones: u32,
    ) -> Result<Value, ProviderError> {
        let ec2 = &self.ctx.aws().await.ec2;
        let cluster = self.ctx.cluster_name();
        let cluster_tag = format!("kubernetes.io/cluster/{cluster}");
        let mut found = self.find().await?;
        let vpc = match found.vpc.clone() {
            Some(v) => v,
            None => {
                ctx.progress.report(&format!("creating VPC {cidr}"));
                self.ctx.intend(ids::NETWORK, "ec2.vpc", &cluster).await?;
                create_once(
                    "creating the VPC",
                    || async {
                        let out = ec2
                            .create_vpc()
                            .cidr_block(cidr)
                            .tag_specifications(tag_spec(
                                &self.ctx,
                                ResourceType::Vpc,
                                ids::NETWORK,
                                &[("Name", &cluster)],
                            ))
                            .customize()
                            .config_override(ec2_no_retry())
                            .send()
                            .await?;
                        Ok(out.vpc().and_then(|v| v.vpc_id()).map(str::to_string))
                    },
                    || async { Ok(self.find().await?.vpc.map(Some)) },
                )
                .await?
                .ok_or_else(|| ProviderError::api("CreateVpc returned no VPC id"))?
            }
        };
        self.wait_vpc(ctx, &vpc).await?;
        // Nodes register by DNS name: both attributes must be on (each its
        // own call). Checked every run: a run killed right after CreateVpc
        // must not leave them off for good.
        for attribute in [
            aws_sdk_ec2::types::VpcAttributeName::EnableDnsSupport,
            aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames,
        ] {
            let hostnames = attribute == aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames;
            let current = ec2
                .describe_vpc_attribute()
                .vpc_id(&vpc)
                .attribute(attribute)
                .send()
                .await
                .map_err(|e| err("reading the VPC's DNS settings", e))?;
            let on = if hostnames {
                current.enable_dns_hostnames().and_then(|a| a.value())
            } else {
                current.enable_dns_support().and_then(|a| a.value())
            };
            if on == Some(true) {
                continue;
            }
            let value = AttributeBooleanValue::builder().value(true).build();
            let call = ec2.modify_vpc_attribute().vpc_id(&vpc);
            let call = if hostnames {
                call.enable_dns_hostnames(value)
            } else {
                call.enable_dns_support(value)
            };
            call.send()
                .await
                .map_err(|e| err("turning on DNS in the VPC", e))?;
        }
        let wanted = subnet_cidrs(cidr, zones)?;
        let have_all = wanted
            .iter()
            .all(|c| found.subnets.iter().any(|s| &s.2 == c));
        if !have_all {
            let azs = self.zones(zones).await?;
            for (cidr, az) in wanted.iter().zip(&azs) {
                if found.subnets.iter().any(|s| &s.2 == cidr) {
                    continue;
                }
                ctx.progress
                    .report(&format!("creating subnet {cidr} in {az}"));
                let name = format!("{cluster}-{az}");
                self.ctx.intend(ids::NETWORK, "ec2.subnet", &name).await?;
                let id = create_once(
                    "creating a subnet",
                    || async {
                        let out = ec2
                            .create_subnet()
                            .vpc_id(&vpc)
                            .cidr_block(cidr)
                            .availability_zone(az)
                            .tag_specifications(tag_spec(
                                &self.ctx,
                                ResourceType::Subnet,
                                ids::NETWORK,
                                &[
                                    ("Name", &name),
                                    ("kubernetes.io/role/elb", "1"),
                                    (&cluster_tag, "shared"),
                                ],
                            ))
                            .customize()
                            .config_override(ec2_no_retry())
                            .send()
                            .await?;
                        Ok(out.subnet().and_then(|s| s.subnet_id()).map(str::to_string))
                    },
                    || async {
                        let found = self.find().await?;
                        Ok(found
                            .subnets
                            .into_iter()
                            .find(|s| &s.2 == cidr)
                            .map(|s| Some(s.0)))
                    },
                )
                .await?
                .ok_or_else(|| ProviderError::api("CreateSubnet returned no id"))?;
                found.private.push(id.clone());
                found.subnets.push((id, az.clone(), cidr.clone()));
            }
        }
        for id in std::mem::take(&mut found.private) {
            settle("giving the subnet public addresses", || async {
                ec2.modify_subnet_attribute()
                    .subnet_id(&id)
                    .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
                    .send()
                    .await
                    .map(|_| ())
            })
            .await?;
        }
        let igw = match &found.igw {
            Some((id, true)) => id.clone(),
            Some((id, false)) => {
                self.attach_igw(id, &vpc).await?;
                id.clone()
            }
            None => {
                ctx.progress.report("creating the internet gateway");
                self.ctx
                    .intend(ids::NETWORK, "ec2.internet_gateway", &cluster)
                    .await?;
                let id = create_once(
                    "creating the internet gateway",
                    || async {
                        let out = ec2
                            .create_internet_gateway()
                            .tag_specifications(tag_spec(
                                &self.ctx,
                                ResourceType::InternetGateway,
                                ids::NETWORK,
                                &[("Name", &cluster)],
                            ))
                            .customize()
                            .config_override(ec2_no_retry())
                            .send()
                            .await?;
                        Ok(out
                            .internet_gateway()
                            .and_then(|g| g.internet_gateway_id())
                            .map(str::to_string))
                    },
                    || async { Ok(self.find().await?.igw.map(|g| Some(g.0))) },
                )
                .await?
                .ok_or_else(|| ProviderError::api("CreateInternetGateway returned no id"))?;
                self.attach_igw(&id, &vpc).await?;
                id
            }
        };
        found.igw = Some((igw.clone(), true));
        let table = match &found.route_table {
            Some((id, _)) => id.clone(),
            None => {
                // CreateRouteTable takes a client token: a second try of
                // the same create makes nothing new on EC2; the look by tag
                // covers what does not honour it.
                let intent = self
                    .ctx
                    .intend(ids::NETWORK, "ec2.route_table", &cluster)
                    .await?;
                create_once(
                    "creating the route table",
                    || async {
                        let out = ec2
                            .create_route_table()
                            .vpc_id(&vpc)
                            .set_client_token(intent.token.clone())
                            .tag_specifications(tag_spec(
                                &self.ctx,
                                ResourceType::RouteTable,
                                ids::NETWORK,
                                &[("Name", &cluster)],
                            ))
                            .customize()
                            .config_override(ec2_no_retry())
                            .send()
                            .await?;
                        Ok(out
                            .route_table()
                            .and_then(|t| t.route_table_id())
                            .map(str::to_string))
                    },
                    || async {
                        let found = self.find().await?;
                        Ok(found
                            .route_table
                            .filter(|_| found.vpc.as_deref() == Some(vpc.as_str()))
                            .map(|t| Some(t.0)))
                    },
                )
                .await?
                .ok_or_else(|| ProviderError::api("CreateRouteTable returned no id"))?
            }
        };
        if !matches!(found.route_table, Some((_, true))) {
            settle("adding the default route", || async {
                match ec2
                    .create_route()
                    .route_table_id(&table)
                    .destination_cidr_block("0.0.0.0/0")
                    .gateway_id(&igw)
                    .send()
                    .await
                {
                    Err(e) if is(&e, &["RouteAlreadyExists"]) => Ok(()),
                    other => other.map(|_| ()),
                }
            })
            .await?;
        }
        found.route_table = Some((table.clone(), true));
        self.associate(&table, &found).await?;
        found.vpc = Some(vpc);
        Ok(Self::outputs(&found))
    }

    async fn attach_igw(&self, igw: &str, vpc: &str) -> Result<(), ProviderError> {
        let ec2 = &self.ctx.aws().await.ec2;
        settle("attaching the internet gateway", || async {
            match ec2
                .attach_internet_gateway()
                .internet_gateway_id(igw)
                .vpc_id(vpc)
                .send()
                .await
            {
                Err(e) if is(&e, &["Resource.AlreadyAssociated"]) => Ok(()),
                other => other.map(|_| ()),
            }
        })
        .await
    }

    /// Associates every subnet with the route table (once).
    async fn associate(&self, table: &str, found: &Found) -> Result<(), ProviderError> {
        let ec2 = &self.ctx.aws().await.ec2;
        let out = ec2
            .describe_route_tables()
            .route_table_ids(table)
            .send()
            .await
            .map_err(|e| err("reading the route table", e))?;
        let associated: Vec<String> = out
            .route_tables()
            .iter()
            .flat_map(|t| t.associations())
            .filter_map(|a| a.subnet_id().map(str::to_string))
            .collect();
        for (subnet, _, _) in &found.subnets {
            if associated.contains(subnet) {
                continue;
            }
            // A retry after a lost answer finds the subnet associated.
            match ec2
                .associate_route_table()
                .route_table_id(table)
                .subnet_id(subnet)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if is(&e, &["Resource.AlreadyAssociated"]) => {}
                Err(e) => return Err(err("associating a subnet with the route table", e)),
            }
        }
        Ok(())
    }

    async fn wait_vpc(&self, ctx: &StepContext, vpc: &str) -> Result<(), ProviderError> {
        let ec2 = &self.ctx.aws().await.ec2;
        poll_until(
            &format!("VPC {vpc} to become available"),
            Duration::from_secs(300),
            Backoff::default(),
            ctx.progress.as_ref(),
            || async {
                let out = match ec2.describe_vpcs().vpc_ids(vpc).send().await {
                    Ok(out) => out,
                    // Just created: EC2 is eventually consistent.
                    Err(e) if crate::clients::not_found(&e) => {
                        return Ok(Poll::Pending("VPC not visible yet".into()))
                    }
                    Err(e) => return Err(err("reading the VPC", e)),
                };
                let state = out
                    .vpcs()
                    .first()
                    .and_then(|v| v.state())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default();
                Ok(if state == "available" {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!("VPC is {state}"))
                })
            },
        )
        .await
    }

    /// Deletes what is in the way of deleting the VPC: network interfaces
    /// left by load balancers and the VPC CNI, then security groups other
    /// than the default one (rules first, since groups may refer to each
    /// other).
    async fn clear_dependents(&self, vpc: &str) -> Result<(), ProviderError> {
        let ec2 = &self.ctx.aws().await.ec2;
        let enis = ec2
            .describe_network_interfaces()
            .filters(filter("vpc-id", vpc))
            .send()
            .await
            .map_err(|e| err("listing network interfaces", e))?;
        for eni in enis.network_interfaces() {
            let id = eni.network_interface_id().unwrap_or_default();
            if eni.status().map(|s| s.as_str()) == Some("available") {
                // Another service may grab or delete it meanwhile: any
                // failure here is worth another pass, not the end.
                if let Err(e) = ec2
                    .delete_network_interface()
                    .network_interface_id(id)
                    .send()
                    .await
                {
                    if !crate::clients::not_found(&e) {
                        return Err(ProviderError::retryable(format!(
                            "network interface {id} could not be deleted yet: {}",
                            err("delete", e)
                        )));
                    }
                }
            }
        }
        let groups = ec2
            .describe_security_groups()
            .filters(filter("vpc-id", vpc))
            .send()
            .await
            .map_err(|e| err("listing security groups", e))?;
        let extra: Vec<_> = groups
            .security_groups()
            .iter()
            .filter(|g| g.group_name() != Some("default"))
            .collect();
        for g in &extra {
            let id = g.group_id().unwrap_or_default();
            if !g.ip_permissions().is_empty() {
                let _ = ec2
                    .revoke_security_group_ingress()
                    .group_id(id)
                    .set_ip_permissions(Some(g.ip_permissions().to_vec()))
                    .send()
                    .await;
            }
            if !g.ip_permissions_egress().is_empty() {
                let _ = ec2
                    .revoke_security_group_egress()
                    .group_id(id)
                    .set_ip_permissions(Some(g.ip_permissions_egress().to_vec()))
                    .send()
                    .await;
            }
        }
        for g in &extra {
            let id = g.group_id().unwrap_or_default();
            match ec2.delete_security_group().group_id(id).send().await {
                Ok(_) => {}
                Err(e) if crate::clients::not_found(&e) => {}
                Err(e) if is(&e, &["DependencyViolation"]) => {
                    return Err(ProviderError::retryable(format!(
                        "security group {id} is still in use"
                    )))
                }
                Err(e) => return Err(err(&format!("deleting security group {id}"), e)),
            }
        }
        Ok(())
    }

    /// One pass at deleting the network; `DependencyViolation` (ENIs still
    /// being released after the cluster went) is worth another pass.
    async fn delete_pass(&self, found: &Found) -> Result<(), ProviderError> {
        let ec2 = &self.ctx.aws().await.ec2;
        let Some(vpc) = &found.vpc else {
            return Ok(());
        };
        let busy = |e: &str| ProviderError::retryable(format!("{e} is still in use; retrying"));
        self.clear_dependents(vpc).await?;
        if let Some((table, _)) = &found.route_table {
            let out = ec2
                .describe_route_tables()
                .route_table_ids(table)
                .send()
                .await;
            if let Ok(out) = out {
                for a in out.route_tables().iter().flat_map(|t| t.associations()) {
                    if a.main() == Some(true) {
                        continue;
                    }
                    if let Some(id) = a.route_table_association_id() {
                        let _ = ec2
                            .disassociate_route_table()
                            .association_id(id)
                            .send()
                            .await;
                    }
                }
            }
            match ec2.delete_route_table().route_table_id(table).send().await {
                Ok(_) => {}
                Err(e) if crate::clients::not_found(&e) => {}
                Err(e) if is(&e, &["DependencyViolation"]) => return Err(busy("the route table")),
                Err(e) => return Err(err("deleting the route table", e)),
            }
        }
        if let Some((igw, _)) = &found.igw {
            let _ = ec2
                .detach_internet_gateway()
                .internet_gateway_id(igw)
                .vpc_id(vpc)
                .send()
                .await;
            match ec2
                .delete_internet_gateway()
                .internet_gateway_id(igw)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if crate::clients::not_found(&e) => {}
                Err(e) if is(&e, &["DependencyViolation"]) => {
                    return Err(busy("the internet gateway"))
                }
                Err(e) => return Err(err("deleting the internet gateway", e)),
            }
        }
        for (subnet, _, _) in &found.subnets {
            match ec2.delete_subnet().subnet_id(subnet).send().await {
                Ok(_) => {}
                Err(e) if crate::clients::not_found(&e) => {}
                Err(e) if is(&e, &["DependencyViolation"]) => {
                    return Err(busy(&format!("subnet {subnet}")))
                }
                Err(e) => return Err(err(&format!("deleting subnet {subnet}"), e)),
            }
        }
        match ec2.delete_vpc().vpc_id(vpc).send().await {
            Ok(_) => Ok(()),
            Err(e) if crate::clients::not_found(&e) => Ok(()),
            Err(e) if is(&e, &["DependencyViolation"]) => Err(busy(&format!("VPC {vpc}"))),
            Err(e) => Err(err("deleting the VPC", e)),
        }
    }
}

#[async_trait]
impl Resource for Network {
    fn id(&self) -> &str {
        ids::NETWORK
    }

    fn depends_on(&self) -> Vec<String> {
        Vec::new()
    }

    fn expected(&self, action: Action) -> Duration {
        match action {
            Action::Keep => Duration::from_secs(1),
            Action::Delete => Duration::from_secs(60),
            _ => Duration::from_secs(20),
        }
    }

    async fn plan_up(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        match &self.ctx.cfg.network {
            NetworkConfig::Existing { vpc_id, subnet_ids } => Ok(Change::keep(format!(
                "uses VPC {vpc_id} and subnets {} as they are",
                subnet_ids.join(", ")
            ))),
            NetworkConfig::New { cidr, zones } => {
                let found = self.find().await?;
                let wanted = subnet_cidrs(cidr, *zones)?;
                let mut fields = Vec::new();
                let mut add = |path: &str, new: String| {
                    fields.push(FieldChange {
                        path: path.into(),
                        old: None,
                        new: Some(new),
                    })
                };
                if found.vpc.is_none() {
                    add("vpc", format!("{cidr}, DNS hostnames on"));
                }
                for c in &wanted {
                    if !found.subnets.iter().any(|s| &s.2 == c) {
                        add("subnet", format!("{c} (public, one per zone)"));
                    }
                }
                if !matches!(found.igw, Some((_, true))) {
                    add("internet_gateway", "attached to the VPC".into());
                }
                if !matches!(found.route_table, Some((_, true))) {
                    add("route_table", "0.0.0.0/0 → internet gateway".into());
                }
                if fields.is_empty() {
                    return Ok(Change::keep(format!(
                        "VPC {} with {} subnets",
                        found.vpc.unwrap_or_default(),
                        found.subnets.len()
                    )));
                }
                let action = if found.vpc.is_none() {
                    Action::Create
                } else {
                    Action::Update
                };
                let mut change = Change::new(
                    action,
                    if found.vpc.is_none() {
                        "not found".to_string()
                    } else {
                        format!("{} piece(s) missing", fields.len())
                    },
                );
                change.fields = fields;
                Ok(change)
            }
        }
    }

    async fn plan_down(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        match &self.ctx.cfg.network {
            NetworkConfig::Existing { vpc_id, .. } => {
                Ok(Change::keep(format!("VPC {vpc_id} is the user's: kept")))
            }
            NetworkConfig::New { .. } => {
                let found = self.find().await?;
                Ok(match found.vpc {
                    Some(vpc) => Change::new(
                        Action::Delete,
                        format!(
                            "VPC {vpc}, {} subnets, gateway, routes",
                            found.subnets.len()
                        ),
                    ),
                    None => Change::keep("already gone"),
                })
            }
        }
    }

    async fn apply(&self, ctx: &StepContext, _change: &Change) -> Result<Value, ProviderError> {
        match &self.ctx.cfg.network {
            NetworkConfig::Existing { vpc_id, subnet_ids } => {
                self.check_existing(vpc_id, subnet_ids).await
            }
            NetworkConfig::New { cidr, zones } => self.ensure(ctx, cidr, *zones).await,
        }
    }

    async fn destroy(&self, ctx: &StepContext, _change: &Change) -> Result<(), ProviderError> {
        if matches!(self.ctx.cfg.network, NetworkConfig::Existing { .. }) {
            return Ok(());
        }
        poll_until(
            "the VPC and its pieces to be deleted",
            Duration::from_secs(20 * 60),
            Backoff {
                initial: Duration::from_secs(2),
                max: Duration::from_secs(20),
                jitter: 0.2,
            },
            ctx.progress.as_ref(),
            || async {
                let found = self.find().await?;
                if found.vpc.is_none() {
                    return Ok(Poll::Ready(()));
                }
                match self.delete_pass(&found).await {
                    Ok(()) => Ok(Poll::Pending("deleted; checking".into())),
                    Err(e) if e.is_retryable() => Ok(Poll::Pending(e.to_string())),
                    Err(e) => Err(e),
                }
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_split_the_vpc_block_in_order() {
        assert_eq!(
            subnet_cidrs("10.0.0.0/16", 3).unwrap(),
            vec!["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"]
        );
        assert_eq!(
            subnet_cidrs("192.168.0.0/24", 2).unwrap(),
            vec!["192.168.0.0/28", "192.168.0.16/28"]
        );
        // Host bits in the block are ignored, as AWS does.
        assert_eq!(subnet_cidrs("10.1.2.3/16", 1).unwrap(), vec!["10.1.0.0/20"]);
    }

    #[test]
    fn too_many_zones_for_a_small_block_is_refused() {
        assert!(subnet_cidrs("10.0.0.0/24", 20).is_err());
        assert!(subnet_cidrs("not-a-cidr", 2).is_err());
    }
}
