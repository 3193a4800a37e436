//! The rules for a cloud target: the account settings under `target`, the
//! cluster howdah creates (`cluster`: version, network, node pools), and
//! what storage and identity mean when howdah makes the bucket itself.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use super::aws::{s3_bucket_name, AWS_REGIONS};
use super::location::{Part, YamlPath};
use super::names::dns1123_label;
use super::structural::did_you_mean;
use super::types::{
    AwsTarget, BucketStorage, Cluster, Identity, Network, NodePool, Stack, Storage,
    KUBERNETES_VERSIONS,
};
use super::validate::Checker;

/// Node pool names become part of cloud names (node group, launch
/// template), so they are held to the stack name's length.
const MAX_POOL_NAME: usize = 40;
/// Nodes in one EKS managed node group.
const MAX_POOL_NODES: u32 = 450;
/// Root volume sizes EBS accepts for a node, in GiB.
const DISK_SIZES_GB: std::ops::RangeInclusive<u32> = 20..=16384;
/// Availability zones a new VPC may span.
const ZONES: std::ops::RangeInclusive<u32> = 2..=6;
/// VPC prefix lengths: /16 is the largest VPC AWS allows; below /24 there
/// is no room for a public and a private subnet in each zone.
const VPC_PREFIXES: std::ops::RangeInclusive<u8> = 16..=24;

impl Checker<'_> {
    pub(super) fn aws_target(&mut self, aws: &AwsTarget) {
        let base = YamlPath::of(&["target", "aws"]);
        self.aws_region(&base.key("region"), &aws.region);
        if aws.profile.as_deref().is_some_and(|p| p.trim().is_empty()) {
            self.report(
                &base.key("profile"),
                Part::Value,
                "`profile` is empty".into(),
                Some("omit it to use the standard AWS credential chain".into()),
            );
        }
    }

    fn aws_region(&mut self, path: &YamlPath, region: &str) {
        if AWS_REGIONS.contains(&region) {
            return;
        }
        // `us-east-1a` is a zone of `us-east-1`.
        let zone_of = region.trim_end_matches(|c: char| c.is_ascii_lowercase());
        let help = if zone_of != region && AWS_REGIONS.contains(&zone_of) {
            Some(format!(
                "{region} is an availability zone; its region is {zone_of}"
            ))
        } else if let Some(close) = did_you_mean(region, AWS_REGIONS) {
            Some(format!("did you mean {close}?"))
        } else {
            Some("e.g. us-east-1; `howdah schema` lists every region howdah knows".into())
        };
        self.report(
            path,
            Part::Value,
            format!("{region:?} is not an AWS region where EKS is offered"),
            help,
        );
    }

    /// `cluster`: only on a cloud target, where every key has a default.
    pub(super) fn cluster(&mut self, stack: &Stack) {
        let Some(cluster) = &stack.cluster else {
            return;
        };
        let base = YamlPath::of(&["cluster"]);
        if !stack.target.is_cloud() {
            self.report(
                &base,
                Part::Key,
                format!(
                    "`cluster` applies to cloud targets; an existing cluster (target {}) is \
                     used as it is",
                    stack.target.name()
                ),
                Some("remove `cluster`, or use a cloud target such as `aws` to have howdah create the cluster".into()),
            );
            return;
        }
        self.kubernetes_version(&base.key("version"), &cluster.version);
        self.network(&base.key("network"), &cluster.network);
        self.node_pools(&base.key("nodePools"), cluster);
    }

    fn kubernetes_version(&mut self, path: &YamlPath, version: &str) {
        if KUBERNETES_VERSIONS.contains(&version) {
            return;
        }
        let supported = format!(
            "{} to {}",
            KUBERNETES_VERSIONS.first().copied().unwrap_or_default(),
            KUBERNETES_VERSIONS.last().copied().unwrap_or_default()
        );
        let trimmed = version.trim_start_matches(['v', 'V']);
        // `1.31.2`: EKS picks the patch; only the minor version is chosen.
        let minor = trimmed.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
        let is_minor_form = trimmed
            .split_once('.')
            .is_some_and(|(major, minor)| major == "1" && minor.parse::<u8>().is_ok());
        let (message, help) = if KUBERNETES_VERSIONS.contains(&trimmed) {
            (
                format!("Kubernetes version {version:?} has a leading v"),
                format!("write \"{trimmed}\""),
            )
        } else if minor != trimmed && KUBERNETES_VERSIONS.contains(&minor.as_str()) {
            (
                format!(
                    "Kubernetes version {version:?} names a patch release; EKS chooses the patch"
                ),
                format!("give the minor version only: \"{minor}\""),
            )
        } else if is_minor_form {
            (
                format!("unsupported Kubernetes version {version:?}: howdah creates {supported}"),
                format!("e.g. \"{}\"", super::types::DEFAULT_KUBERNETES_VERSION),
            )
        } else {
            (
                format!(
                    "invalid Kubernetes version {version:?}: expected a minor version, \
                     {supported}"
                ),
                format!("e.g. \"{}\"", super::types::DEFAULT_KUBERNETES_VERSION),
            )
        };
        self.report(path, Part::Value, message, Some(help));
    }

    fn network(&mut self, path: &YamlPath, network: &Network) {
        match &network.vpc_id {
            Some(vpc) => self.existing_network(path, vpc, network),
            None => self.new_network(path, network),
        }
    }

    fn existing_network(&mut self, path: &YamlPath, vpc: &str, network: &Network) {
        if !is_aws_id(vpc, "vpc-") {
            self.report(
                &path.key("vpcId"),
                Part::Value,
                format!("invalid VPC id {vpc:?}: expected vpc- and 8 or 17 hex digits"),
                Some("e.g. vpc-0a1b2c3d4e5f67890".into()),
            );
        }
        if network.subnet_ids.len() < 2 {
            let (at, part) = if network.subnet_ids.is_empty() {
                (path.key("vpcId"), Part::Key)
            } else {
                (path.key("subnetIds"), Part::Key)
            };
            self.report(
                &at,
                part,
                format!(
                    "an existing VPC needs `subnetIds`: at least 2 subnets in different \
                     availability zones, found {}",
                    network.subnet_ids.len()
                ),
                Some("list the VPC's subnets for the cluster under subnetIds".into()),
            );
        }
        let mut seen = HashSet::new();
        for (i, subnet) in network.subnet_ids.iter().enumerate() {
            let at = path.key("subnetIds").index(i);
            if !is_aws_id(subnet, "subnet-") {
                self.report(
                    &at,
                    Part::Value,
                    format!(
                        "invalid subnet id {subnet:?}: expected subnet- and 8 or 17 hex digits"
                    ),
                    Some("e.g. subnet-0a1b2c3d4e5f67890".into()),
                );
            } else if !seen.insert(subnet) {
                self.report(
                    &at,
                    Part::Value,
                    format!("subnet {subnet} is listed twice"),
                    None,
                );
            }
        }
        for (key, given) in [
            ("cidr", network.cidr.is_some()),
            ("zones", network.zones.is_some()),
        ] {
            if given {
                self.report(
                    &path.key(key),
                    Part::Key,
                    format!(
                        "`{key}` is for a new VPC; with `vpcId` the existing VPC and its \
                         subnets are used as they are"
                    ),
                    Some(format!(
                        "remove `{key}`, or remove vpcId and subnetIds for a new VPC"
                    )),
                );
            }
        }
    }

    fn new_network(&mut self, path: &YamlPath, network: &Network) {
        if !network.subnet_ids.is_empty() {
            self.report(
                &path.key("subnetIds"),
                Part::Key,
                "`subnetIds` needs `vpcId`, the existing VPC they belong to".into(),
                Some("add vpcId, or remove subnetIds to have howdah create a VPC".into()),
            );
        }
        if let Some(cidr) = &network.cidr {
            if let Err((message, help)) = check_vpc_cidr(cidr) {
                self.report(&path.key("cidr"), Part::Value, message, help);
            }
        }
        if let Some(zones) = network.zones {
            if !ZONES.contains(&zones) {
                self.report(
                    &path.key("zones"),
                    Part::Value,
                    format!(
                        "a new VPC spans {} to {} availability zones, not {zones} (EKS needs \
                         at least two)",
                        ZONES.start(),
                        ZONES.end()
                    ),
                    None,
                );
            }
        }
    }

    fn node_pools(&mut self, path: &YamlPath, cluster: &Cluster) {
        if cluster.node_pools.is_empty() {
            self.report(
                path,
                Part::Value,
                "at least one node pool is needed: Pachyderm's pods run on its nodes".into(),
                Some("e.g. - {name: default, machineType: m5.large, min: 2, max: 4}".into()),
            );
        }
        let mut names = HashSet::new();
        for (i, pool) in cluster.node_pools.iter().enumerate() {
            let at = path.index(i);
            if !names.insert(pool.name.as_str()) {
                self.report(
                    &at.key("name"),
                    Part::Value,
                    format!("node pool name {:?} is used twice", pool.name),
                    Some("give each pool its own name".into()),
                );
            }
            self.node_pool(&at, pool);
        }
    }

    fn node_pool(&mut self, path: &YamlPath, pool: &NodePool) {
        if let Some(problem) = dns1123_label(&pool.name, MAX_POOL_NAME) {
            self.report(
                &path.key("name"),
                Part::Value,
                format!("invalid node pool name {:?}: {problem}", pool.name),
                None,
            );
        }
        if !is_instance_type(&pool.machine_type) {
            let lower = pool.machine_type.to_ascii_lowercase();
            // `m5-large`, `m5_large`: the dot written as something else.
            let dotted = lower.replacen(['-', '_'], ".", 1);
            let help = if is_instance_type(&lower) {
                format!("write {lower}")
            } else if !lower.contains('.') && is_instance_type(&dotted) {
                format!("write {dotted}")
            } else {
                "an EC2 instance type is family.size, e.g. m5.large or c6i.2xlarge".into()
            };
            self.report(
                &path.key("machineType"),
                Part::Value,
                format!("invalid machine type {:?}", pool.machine_type),
                Some(help),
            );
        }
        if pool.max == 0 {
            self.report(
                &path.key("max"),
                Part::Value,
                "`max` must be at least 1".into(),
                None,
            );
        } else if pool.max > MAX_POOL_NODES {
            self.report(
                &path.key("max"),
                Part::Value,
                format!(
                    "`max` is {}: an EKS node group holds at most {MAX_POOL_NODES} nodes",
                    pool.max
                ),
                Some("split the nodes over more pools".into()),
            );
        }
        if pool.min > pool.max {
            self.report(
                &path.key("min"),
                Part::Value,
                format!("`min` ({}) is more than `max` ({})", pool.min, pool.max),
                None,
            );
        }
        if let Some(desired) = pool.desired {
            if desired < pool.min || desired > pool.max {
                self.report(
                    &path.key("desired"),
                    Part::Value,
                    format!(
                        "`desired` ({desired}) must be from `min` ({}) to `max` ({})",
                        pool.min, pool.max
                    ),
                    Some("omit it to start with `min` nodes".into()),
                );
            }
        }
        if !DISK_SIZES_GB.contains(&pool.disk_size_gb) {
            self.report(
                &path.key("diskSizeGb"),
                Part::Value,
                format!(
                    "a node's disk is {} to {} GiB, not {}",
                    DISK_SIZES_GB.start(),
                    DISK_SIZES_GB.end(),
                    pool.disk_size_gb
                ),
                None,
            );
        }
        self.labels(&path.key("labels"), &pool.labels, true);
    }

    /// Storage on a cloud target: always a bucket howdah creates (filled
    /// in by `spec::parse` when the file names none).
    pub(super) fn cloud_storage(&mut self, storage: &Storage, identity: Identity) {
        let path = YamlPath::of(&["storage"]);
        if storage.local.is_some() {
            self.report(
                &path.key("local"),
                Part::Key,
                "`local` storage is not available on a cloud target: nodes come and go, and \
                 data on a node's disk goes with them"
                    .into(),
                Some(
                    "remove `local`: howdah creates an S3 bucket; `bucket: {name: …}` names it"
                        .into(),
                ),
            );
        }
        if let Some(bucket) = &storage.bucket {
            self.cloud_bucket(&path.key("bucket"), bucket, identity);
        }
    }

    fn cloud_bucket(&mut self, path: &YamlPath, bucket: &BucketStorage, identity: Identity) {
        if bucket.url.is_some() {
            self.report(
                &path.key("url"),
                Part::Key,
                "`url` is for the kubeconfig target; on a cloud target howdah creates the \
                 bucket"
                    .into(),
                Some("remove `url`; set `name` to choose the new bucket's name".into()),
            );
        }
        if let Some(name) = &bucket.name {
            if let Some(problem) = s3_bucket_name(name) {
                self.report(
                    &path.key("name"),
                    Part::Value,
                    format!("invalid bucket name {name:?}: {problem}"),
                    Some("omit `name` to have one derived from the stack name".into()),
                );
            }
        }
        let Some(secret) = &bucket.credentials_secret else {
            return;
        };
        let _ = secret;
        let (message, help) = if identity == Identity::Keys {
            (
                "on aws, howdah makes the static keys itself: an IAM user limited to the bucket, \
                 its access key written to a Secret in the runtime namespace",
                "remove credentialsSecret",
            )
        } else {
            (
                "workload identity needs no Secret: pachd gets the bucket through its IAM role",
                "remove credentialsSecret (set pachyderm.identity: keys for static keys, which howdah makes)",
            )
        };
        self.report(
            &path.key("credentialsSecret"),
            Part::Key,
            message.into(),
            Some(help.into()),
        );
    }
}

/// `vpc-0a1b2c3d` or `vpc-0a1b2c3d4e5f67890`: the prefix and 8 or 17 hex digits.
fn is_aws_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        matches!(hex.len(), 8 | 17)
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// `m5.large`, `c6i.2xlarge`, `u-6tb1.metal`: family, a dot, size.
fn is_instance_type(text: &str) -> bool {
    let Some((family, size)) = text.split_once('.') else {
        return false;
    };
    let part_ok = |part: &str| {
        part.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    family.starts_with(|c: char| c.is_ascii_lowercase()) && part_ok(family) && part_ok(size)
}

/// A new VPC's range: an IPv4 network address with a prefix from /16 to /24.
fn check_vpc_cidr(cidr: &str) -> Result<(), (String, Option<String>)> {
    let example = Some(format!("e.g. {}", super::types::DEFAULT_VPC_CIDR));
    let parsed = cidr.split_once('/').and_then(|(address, prefix)| {
        let address: Ipv4Addr = address.parse().ok()?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
        Some((address, prefix))
    });
    let Some((address, prefix)) = parsed else {
        return Err((
            format!("invalid CIDR {cidr:?}: expected an IPv4 range, address/prefix"),
            example,
        ));
    };
    if !VPC_PREFIXES.contains(&prefix) {
        return Err((
            format!(
                "a VPC range is /{} to /{}, not /{prefix}",
                VPC_PREFIXES.start(),
                VPC_PREFIXES.end()
            ),
            example,
        ));
    }
    let mask = u32::MAX << (32 - u32::from(prefix));
    let network = Ipv4Addr::from(u32::from(address) & mask);
    if network != address {
        return Err((
            format!("{cidr} has host bits set: the range starts at {network}"),
            Some(format!("write {network}/{prefix}")),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpc_ranges() {
        assert!(check_vpc_cidr("10.0.0.0/16").is_ok());
        assert!(check_vpc_cidr("192.168.4.0/24").is_ok());
        assert!(check_vpc_cidr("10.0.0.0/8").is_err());
        assert!(check_vpc_cidr("10.0.0.0/28").is_err());
        assert!(check_vpc_cidr("10.0.0.0").is_err());
        assert!(check_vpc_cidr("10.0.0/16").is_err());
        assert!(check_vpc_cidr("10.0.0.0/33").is_err());
        let host_bits = check_vpc_cidr("10.1.2.3/16").unwrap_err();
        assert_eq!(host_bits.1.as_deref(), Some("write 10.1.0.0/16"));
    }

    #[test]
    fn instance_types_and_ids() {
        for good in ["m5.large", "c6i.2xlarge", "u-6tb1.metal", "m7g.metal-48xl"] {
            assert!(is_instance_type(good), "{good}");
        }
        for bad in ["m5", "M5.large", "m5.", ".large", "m5-large", "m5.large.x"] {
            assert!(!is_instance_type(bad), "{bad}");
        }
        assert!(is_aws_id("vpc-0a1b2c3d", "vpc-"));
        assert!(is_aws_id("subnet-0a1b2c3d4e5f67890", "subnet-"));
        assert!(!is_aws_id("vpc-0A1B2C3D", "vpc-"));
        assert!(!is_aws_id("subnet-0a1b2c3d", "vpc-"));
    }
}
