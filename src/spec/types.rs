//! The typed stack file. These structs are the one definition of the spec:
//! serde parses them, schemars derives `howdah schema` from them, so the
//! schema and the parser cannot drift apart.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole stack: where it runs, where its data lives, and the runtime on top.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Stack {
    /// Stack name: lower-case letters, digits and '-', 1 to 40 characters,
    /// starting with a letter. Every object howdah makes is named from it
    /// and labelled `howdah.io/stack=<name>`.
    #[schemars(length(min = 1, max = 40), pattern(r"^[a-z]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Where the stack runs.
    pub target: Target,
    /// The Kubernetes cluster howdah creates on a cloud target; every key
    /// has a default. Not allowed with `kubeconfig`, whose cluster is used
    /// as it is.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::de::present_or_default"
    )]
    pub cluster: Option<Cluster>,
    /// Where Pachyderm keeps its data.
    #[serde(default)]
    pub storage: Storage,
    /// The Pachyderm runtime.
    #[serde(default)]
    pub pachyderm: Pachyderm,
    /// Extra labels (and, on clouds, tags) put on everything howdah makes.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Where the state lives. Default: the file `.howdah/<name>.state.json`
    /// next to the stack file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateConfig>,
}

/// Exactly one target: a mapping with one key naming it, e.g.
/// `target: {kubeconfig: {}}`.
// Serialize and Deserialize are written by hand (`spec::de`): serde_norway's
// derived enum form is a `!kubeconfig` tag, and `kubeconfig:` may be left
// empty. (The JSON form is the same as the derived one.)
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum Target {
    /// An existing cluster reached through a kubeconfig context.
    #[schemars(with = "Option<KubeconfigTarget>")]
    Kubeconfig(KubeconfigTarget),
    /// A new EKS cluster, S3 bucket and IAM roles in an AWS account.
    Aws(AwsTarget),
}

impl Target {
    /// The key naming this target in the stack file: `kubeconfig`, `aws`.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Kubeconfig(_) => "kubeconfig",
            Target::Aws(_) => "aws",
        }
    }

    /// Whether howdah creates the cluster, bucket and identity itself
    /// (rather than using a cluster that already exists).
    pub fn is_cloud(&self) -> bool {
        match self {
            Target::Kubeconfig(_) => false,
            Target::Aws(_) => true,
        }
    }
}

impl Stack {
    /// The cluster howdah creates, with every default filled in; `None`
    /// when the target's cluster already exists. After `spec::load` a cloud
    /// stack always has `cluster` set; a stack built in code without it
    /// gets the defaults.
    pub fn cloud_cluster(&self) -> Option<&Cluster> {
        static DEFAULT: OnceLock<Cluster> = OnceLock::new();
        self.target.is_cloud().then(|| {
            self.cluster
                .as_ref()
                .unwrap_or_else(|| DEFAULT.get_or_init(Cluster::default))
        })
    }
}

/// An existing cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeconfigTarget {
    /// Context name; default: the kubeconfig's current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Kubeconfig file; default: $KUBECONFIG, then ~/.kube/config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// An AWS account and region. Credentials come from `profile`, or else
/// from the standard chain (environment, SSO, shared files, instance role).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AwsTarget {
    /// Region, e.g. `us-east-1`: one where EKS is offered.
    #[schemars(length(min = 1))]
    pub region: String,
    /// Named profile from ~/.aws/config; default: the standard credential chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// The Kubernetes versions howdah can create a cluster with, oldest first.
pub const KUBERNETES_VERSIONS: &[&str] = &["1.28", "1.29", "1.30", "1.31", "1.32", "1.33", "1.34"];

/// The Kubernetes version of a new cluster when `cluster.version` is not given.
pub const DEFAULT_KUBERNETES_VERSION: &str = "1.31";

/// The address range of a new VPC when `cluster.network.cidr` is not given.
pub const DEFAULT_VPC_CIDR: &str = "10.0.0.0/16";

/// The availability zones a new VPC spans when `cluster.network.zones` is
/// not given; EKS needs at least two.
pub const DEFAULT_ZONES: u32 = 2;

/// The Kubernetes cluster howdah creates on a cloud target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cluster {
    /// Kubernetes minor version, quoted (`"1.31"`: unquoted, YAML reads
    /// 1.30 as the number 1.3). Default "1.31".
    #[serde(
        default = "default_kubernetes_version",
        deserialize_with = "super::de::kubernetes_version"
    )]
    pub version: String,
    /// Where the cluster's nodes live: a new VPC (default) or an existing one.
    #[serde(default)]
    pub network: Network,
    /// Groups of worker nodes; default one pool `default` of 2 to 4 m5.large.
    #[serde(default = "default_node_pools")]
    pub node_pools: Vec<NodePool>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            version: default_kubernetes_version(),
            network: Network::default(),
            node_pools: default_node_pools(),
        }
    }
}

fn default_kubernetes_version() -> String {
    DEFAULT_KUBERNETES_VERSION.into()
}

fn default_node_pools() -> Vec<NodePool> {
    vec![NodePool {
        name: "default".into(),
        machine_type: "m5.large".into(),
        min: 2,
        max: 4,
        desired: None,
        disk_size_gb: default_disk_size_gb(),
        spot: false,
        labels: BTreeMap::new(),
    }]
}

/// The cluster's network: either an existing VPC (`vpcId` and
/// `subnetIds`) or a new one (`cidr`, `zones`), never both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Network {
    /// An existing VPC to put the cluster in; needs `subnetIds`. Default:
    /// howdah creates a VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// With `vpcId`: its subnets for the cluster and nodes, at least 2, in
    /// different availability zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnet_ids: Vec<String>,
    /// A new VPC's IPv4 range, /16 to /24; default 10.0.0.0/16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// Availability zones a new VPC spans, 2 to 6; default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 6))]
    pub zones: Option<u32>,
}

impl Network {
    /// Whether the cluster goes into a VPC that already exists.
    pub fn is_existing(&self) -> bool {
        self.vpc_id.is_some()
    }

    /// The new VPC's range.
    pub fn cidr_or_default(&self) -> &str {
        self.cidr.as_deref().unwrap_or(DEFAULT_VPC_CIDR)
    }

    /// How many availability zones the new VPC spans.
    pub fn zones_or_default(&self) -> u32 {
        self.zones.unwrap_or(DEFAULT_ZONES)
    }
}

/// A group of identical worker nodes, scaled between `min` and `max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodePool {
    /// Pool name: lower-case letters, digits and '-', at most 40
    /// characters, unique in the cluster.
    #[schemars(length(min = 1, max = 40), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Instance type of the nodes, e.g. `m5.large`.
    #[schemars(pattern(r"^[a-z][a-z0-9-]*\.[a-z0-9][a-z0-9-]*$"))]
    pub machine_type: String,
    /// Fewest nodes.
    pub min: u32,
    /// Most nodes, 1 to 450.
    #[schemars(range(min = 1, max = 450))]
    pub max: u32,
    /// Nodes to start with, from `min` to `max`; default `min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<u32>,
    /// Each node's root volume in GiB, 20 to 16384; default 50.
    #[serde(default = "default_disk_size_gb")]
    #[schemars(range(min = 20, max = 16384))]
    pub disk_size_gb: u32,
    /// Spot capacity: cheaper, but a node may be taken back at two
    /// minutes' notice.
    #[serde(default)]
    pub spot: bool,
    /// Kubernetes labels on the pool's nodes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl NodePool {
    /// How many nodes the pool starts with.
    pub fn desired_or_min(&self) -> u32 {
        self.desired.unwrap_or(self.min)
    }
}

fn default_disk_size_gb() -> u32 {
    50
}

/// Where the state lives: a file on this machine (`path`) or, shared by a
/// team or CI, an object store (`url`). Exactly one of the two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StateConfig {
    /// Path of the state file, relative to the stack file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub path: Option<String>,
    /// Shared state in an existing S3 bucket:
    /// `s3://bucket/prefix?region=us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub url: Option<String>,
}

/// Object storage for Pachyderm's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Storage {
    /// In-cluster storage on a volume (single node clusters, demos).
    /// `local:` with nothing under it selects it with its defaults.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::de::present_or_default"
    )]
    pub local: Option<LocalStorage>,
    /// An object store bucket that already exists (or, on a cloud target,
    /// that howdah creates).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::de::present_or_default"
    )]
    pub bucket: Option<BucketStorage>,
    /// What `down` does with data (PVCs, bucket objects).
    #[serde(default)]
    pub data_policy: DataPolicy,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            local: Some(LocalStorage::default()),
            bucket: None,
            data_policy: DataPolicy::Retain,
        }
    }
}

/// Pachyderm's object store in a directory on the node (hostPath), as the
/// official chart's LOCAL backend does: single-node clusters and demos only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalStorage {
    /// Directory on the node; pachd and its workers mount it.
    #[serde(default = "default_host_path")]
    pub host_path: String,
}

impl Default for LocalStorage {
    fn default() -> Self {
        LocalStorage {
            host_path: default_host_path(),
        }
    }
}

fn default_host_path() -> String {
    "/var/pachyderm/".into()
}

/// A bucket given by URL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BucketStorage {
    /// `s3://bucket?region=r[&endpoint=…]`, `gs://bucket` or `azblob://container`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// On a cloud target: the bucket name; default derived from the stack name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Name of an existing Secret in the runtime namespace holding static
    /// credentials for the bucket. Omit to use workload identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

/// What `down` does with data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DataPolicy {
    /// Keep PVCs and bucket contents; `down` lists them as retained.
    #[default]
    Retain,
    /// Delete PVCs and bucket contents on `down`.
    Delete,
}

/// How pachd reaches the object store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Identity {
    /// Workload identity (IRSA, GKE Workload Identity, Azure workload identity).
    #[default]
    Workload,
    /// Static keys in a Secret.
    Keys,
}

/// The Pachyderm runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pachyderm {
    /// Pachyderm version (2.x) to install.
    #[serde(default = "default_version")]
    pub version: String,
    /// Namespace for every runtime object.
    #[serde(default = "default_namespace")]
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: String,
    /// How pachd authenticates to the bucket.
    #[serde(default)]
    pub identity: Identity,
    /// Registry host (and path) prefixed to every image, e.g. `registry.corp:5000/mirror`.
    #[serde(default)]
    pub image_registry: String,
    /// Names of existing image pull Secrets in the namespace.
    #[serde(default)]
    pub image_pull_secrets: Vec<String>,
    /// Defaults for every pod: node selector.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Defaults for every pod: tolerations.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    /// Extra annotations on every object.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Defaults for every pod: PriorityClass name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Defaults for every pod: affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Defaults for every pod: extra labels (never in selectors). `app`,
    /// `component`, `suite` and `howdah.io/*` are howdah's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
    /// etcd, pachd's metadata store.
    #[serde(default)]
    pub etcd: Etcd,
    /// PostgreSQL: in-cluster (default) or external.
    #[serde(default)]
    pub postgres: Postgres,
    /// pg-bouncer, the connection pooler in front of PostgreSQL.
    #[serde(default)]
    pub pg_bouncer: PgBouncer,
    /// pachd, the Pachyderm daemon.
    #[serde(default)]
    pub pachd: Pachd,
    /// The web console: `false` to leave it out, or its settings.
    #[serde(default, deserialize_with = "super::de::console")]
    #[schemars(schema_with = "super::schema::console_schema")]
    pub console: Console,
    /// pachyderm-proxy, the one HTTP entry point in front of the console
    /// and pachd: `true`, `false`, or its settings. Default: on when the
    /// console is, which needs it to preview and download files.
    #[serde(default, deserialize_with = "super::de::proxy")]
    #[schemars(schema_with = "super::schema::proxy_schema")]
    pub proxy: Proxy,
    /// The HTTP(S) proxy for traffic leaving the cluster (object store,
    /// identity providers, metrics), set on pachd and the console as the
    /// official chart's `global.proxy` and `global.noProxy` set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_proxy: Option<OutboundProxy>,
    /// Workload identity on a cluster howdah did not make: what the
    /// `pachyderm` and `pachyderm-worker` service accounts carry.
    #[serde(default, skip_serializing_if = "ServiceAccounts::is_empty")]
    pub service_accounts: ServiceAccounts,
    /// An Ingress for the console (and pachd's HTTP paths) at a host
    /// name, as the official chart's `ingress.*` makes it: to
    /// pachyderm-proxy when it runs, else to the console and pachd's login
    /// ports. Off unless written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Ingress>,
    /// Extra CA certificates (PEM) that pachd, pachw, pipeline workers'
    /// storage sidecars and the console trust beside the system's: for an
    /// object store, identity provider or proxy signed by a private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<CaCertificates>,
    /// Enterprise features: the license, and with it user login (auth)
    /// through pachd's identity service. Off unless written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise: Option<Enterprise>,
}

/// A Secret of PEM CA certificates, by reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaCertificates {
    /// The Secret, in the runtime namespace.
    pub secret: String,
    /// The key holding the certificates (one or more PEM blocks).
    #[serde(default = "default_ca_key")]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".into()
}

/// Pachyderm Enterprise: a license from a Secret, and what login needs.
/// Secrets only by reference: the file names them, never holds them.
/// Secrets howdah makes for it (the enterprise secret, the root token when
/// none is named, OAuth client secrets) are generated once and kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Enterprise {
    /// Secret holding the license under the key `enterprise-license-key`
    /// (the chart's `pachd.enterpriseLicenseKeySecretName`).
    pub license_secret: String,
    /// Turn on auth (user login, access control) at start; the chart's
    /// `pachd.activateAuth`.
    #[serde(default = "yes")]
    pub auth: bool,
    /// Secret holding the root token under `root-token`; unset: howdah
    /// generates one and keeps it in the Secret `pachyderm-auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_token_secret: Option<String>,
    /// Secret holding the identity providers (Dex connectors, YAML or JSON
    /// list) under `upstream-idps`; unset: a test provider with the user
    /// `admin`, password `password`, made cluster admin. Use it only to try
    /// things out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_idps_secret: Option<String>,
    /// Roles of users and groups on the cluster, e.g.
    /// `{"group:data-eng": [clusterAdmin]}` (the chart's
    /// `pachd.pachAuthClusterRoleBindings`); pachd makes the bindings
    /// match this list at every start.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cluster_role_bindings: BTreeMap<String, Vec<String>>,
    /// The OIDC issuer pachd's identity service announces; unset: derived
    /// from the ingress host, else pachd's Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_uri: Option<String>,
    /// Secret mounted at /dexcreds in pachd and pachw, for connector
    /// settings that read files (e.g. a Google service account key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dex_credentials_secret: Option<String>,
    /// The address users open the console at, where login sends them
    /// back; default: the ingress host (https with its `tlsSecret`), else
    /// `howdah console`'s `http://127.0.0.1:4000`. Write it when TLS ends
    /// in front of the ingress (`https://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
}

/// `howdah console`'s address, where login returns without an ingress.
pub const DEFAULT_CONSOLE_URL: &str = "http://127.0.0.1:4000";

/// TLS on pachd's gRPC API and S3 gateway, from a Secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PachdTls {
    /// A Secret with `tls.crt` and `tls.key` (e.g. a kubernetes.io/tls
    /// Secret, or cert-manager's), in the runtime namespace.
    pub secret: String,
}

/// The Ingress in front of the console (the chart's `ingress.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ingress {
    /// The host name users open, e.g. `pachyderm.example.com`.
    pub host: String,
    /// The IngressClass that serves it (spec.ingressClassName); unset: the
    /// cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Annotations on the Ingress (the controller's settings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Serve HTTPS with the certificate in this Secret (`tls.crt` and
    /// `tls.key`, in the runtime namespace); unset: plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<String>,
}

/// pachd's API on a LoadBalancer of its own, `pachd-lb` (the chart's
/// `pachd.externalService`): gRPC for pachctl and the S3 gateway, without
/// the ports meant only for the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalService {
    /// An address the cloud has reserved for it (spec.loadBalancerIP);
    /// unset: the cloud picks one.
    #[serde(
        default,
        rename = "loadBalancerIP",
        skip_serializing_if = "Option::is_none"
    )]
    pub load_balancer_ip: Option<String>,
    /// Port of pachd's gRPC API on the load balancer.
    #[serde(default = "default_external_grpc_port", rename = "apiGRPCPort")]
    #[schemars(range(min = 1, max = 65535))]
    pub api_grpc_port: u16,
    /// Port of the S3 gateway on the load balancer.
    #[serde(default = "default_external_s3_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub s3_gateway_port: u16,
    /// Annotations on the Service (the cloud's load balancer settings,
    /// e.g. `service.beta.kubernetes.io/azure-load-balancer-internal`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn default_external_grpc_port() -> u16 {
    30650
}

fn default_external_s3_port() -> u16 {
    30600
}

/// The proxy pachd and the console send outbound HTTP(S) through: the
/// environment variables HTTP_PROXY, HTTPS_PROXY and NO_PROXY (and their
/// lower-case forms).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutboundProxy {
    /// Proxy for http:// requests, e.g. `http://proxy.corp:3128`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_proxy: Option<String>,
    /// Proxy for https:// requests; default: `httpProxy` (the chart has one
    /// address for both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_proxy: Option<String>,
    /// Comma-separated hosts, domains (`.corp`) and CIDRs reached directly,
    /// e.g. `.svc,.cluster.local,10.0.0.0/8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
}

impl OutboundProxy {
    /// The environment variables, in the chart's order: the proxies, then
    /// the exclusions, each only when set.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        let http = self.http_proxy.as_ref();
        let https = self.https_proxy.as_ref().or(http);
        for (name, value) in [
            ("http_proxy", http),
            ("https_proxy", https),
            ("HTTP_PROXY", http),
            ("HTTPS_PROXY", https),
        ] {
            if let Some(value) = value {
                env.push((name.to_string(), value.clone()));
            }
        }
        if let Some(no_proxy) = &self.no_proxy {
            for name in ["no_proxy", "NO_PROXY"] {
                env.push((name.to_string(), no_proxy.clone()));
            }
        }
        env
    }
}

/// Workload identity on the kubeconfig target (an existing EKS, GKE or AKS
/// cluster): the cloud identity pachd and pipeline workers act as, put on
/// the `pachyderm` and `pachyderm-worker` service accounts. On cloud
/// targets howdah makes the identity and sets these itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceAccounts {
    /// EKS (IRSA): the IAM role to assume, e.g.
    /// `arn:aws:iam::123456789012:role/pachyderm` (annotation
    /// `eks.amazonaws.com/role-arn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_role_arn: Option<String>,
    /// GKE: the Google service account, e.g.
    /// `pachyderm@my-project.iam.gserviceaccount.com` (annotation
    /// `iam.gke.io/gcp-service-account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp_service_account: Option<String>,
    /// AKS: the client id of the managed identity (annotation
    /// `azure.workload.identity/client-id`; pachd's and pachw's pods get the
    /// label `azure.workload.identity/use: "true"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_client_id: Option<String>,
    /// Further annotations on both service accounts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ServiceAccounts {
    pub fn is_empty(&self) -> bool {
        *self == ServiceAccounts::default()
    }

    /// The annotations the two service accounts carry.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut all = self.annotations.clone();
        for (key, value) in [
            ("eks.amazonaws.com/role-arn", &self.aws_role_arn),
            ("iam.gke.io/gcp-service-account", &self.gcp_service_account),
            ("azure.workload.identity/client-id", &self.azure_client_id),
        ] {
            if let Some(value) = value {
                all.insert(key.to_string(), value.clone());
            }
        }
        all
    }
}

impl Default for Pachyderm {
    fn default() -> Self {
        Pachyderm {
            version: default_version(),
            namespace: default_namespace(),
            identity: Identity::default(),
            image_registry: String::new(),
            image_pull_secrets: Vec::new(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            annotations: BTreeMap::new(),
            priority_class_name: None,
            affinity: None,
            pod_labels: BTreeMap::new(),
            etcd: Etcd::default(),
            postgres: Postgres::default(),
            pg_bouncer: PgBouncer::default(),
            pachd: Pachd::default(),
            console: Console::default(),
            proxy: Proxy::default(),
            service_accounts: ServiceAccounts::default(),
            outbound_proxy: None,
            ingress: None,
            ca_certificates: None,
            enterprise: None,
        }
    }
}

/// The default Pachyderm version.
pub const DEFAULT_VERSION: &str = "2.11.6";

fn default_version() -> String {
    DEFAULT_VERSION.into()
}
fn default_namespace() -> String {
    "pachyderm".into()
}
fn one() -> u32 {
    1
}
fn ten_gi() -> String {
    "10Gi".into()
}

/// Declares a runtime component's settings struct with the fields every
/// workload accepts appended. serde cannot combine `flatten` with
/// `deny_unknown_fields`, so the shared fields are spelled out by this macro
/// instead of a flattened struct.
macro_rules! workload_struct {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// Container resources (requests/limits of cpu, memory).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub resources: Option<Resources>,
            /// Node selector; overrides `pachyderm.nodeSelector`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub node_selector: Option<BTreeMap<String, String>>,
            /// Tolerations; override `pachyderm.tolerations`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tolerations: Option<Vec<Toleration>>,
            /// Extra pod annotations.
            #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
            pub pod_annotations: BTreeMap<String, String>,
            /// PriorityClass of the pods; overrides `pachyderm.priorityClassName`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub priority_class_name: Option<String>,
            /// Pod affinity; overrides `pachyderm.affinity`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub affinity: Option<Affinity>,
            /// Extra labels on the pods (never in selectors); override
            /// `pachyderm.podLabels`. `app`, `component`, `suite` and
            /// `howdah.io/*` are howdah's own.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub pod_labels: Option<BTreeMap<String, String>>,
            /// Extra labels on the component's Service (never in selectors).
            #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
            pub service_labels: BTreeMap<String, String>,
        }

        impl $name {
            /// The settings every workload takes.
            pub fn settings(&self) -> WorkloadSettings<'_> {
                WorkloadSettings {
                    resources: &self.resources,
                    node_selector: &self.node_selector,
                    tolerations: &self.tolerations,
                    pod_annotations: &self.pod_annotations,
                    priority_class_name: &self.priority_class_name,
                    affinity: &self.affinity,
                    pod_labels: &self.pod_labels,
                    service_labels: &self.service_labels,
                }
            }
        }
    };
}

/// The settings every workload (etcd, postgres, pgBouncer, pachd,
/// console) takes, borrowed from it.
#[derive(Clone, Copy)]
pub struct WorkloadSettings<'a> {
    pub resources: &'a Option<Resources>,
    pub node_selector: &'a Option<BTreeMap<String, String>>,
    pub tolerations: &'a Option<Vec<Toleration>>,
    pub pod_annotations: &'a BTreeMap<String, String>,
    pub priority_class_name: &'a Option<String>,
    pub affinity: &'a Option<Affinity>,
    pub pod_labels: &'a Option<BTreeMap<String, String>>,
    pub service_labels: &'a BTreeMap<String, String>,
}

/// A Kubernetes pod affinity (`spec.affinity` of the pods), as the API
/// takes it: each part is checked against the Kubernetes types.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Affinity {
    /// Which nodes the pods may (required...) or would rather (preferred...) run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<BTreeMap<String, serde_json::Value>>,
    /// Pods these pods should run near.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_affinity: Option<BTreeMap<String, serde_json::Value>>,
    /// Pods these pods should run away from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_anti_affinity: Option<BTreeMap<String, serde_json::Value>>,
}

/// Container resources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    /// What the scheduler reserves.
    #[serde(default)]
    pub requests: ResourceList,
    /// The most the container may use.
    #[serde(default)]
    pub limits: ResourceList,
}

/// cpu and memory quantities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceList {
    /// CPU as a Kubernetes quantity: `500m`, `1`, `1.5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::optional_quantity")]
    pub cpu: Option<String>,
    /// Memory as a Kubernetes quantity: `512Mi`, `2Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::optional_quantity")]
    pub memory: Option<String>,
}

/// A Kubernetes toleration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Toleration {
    /// Taint key; empty (with operator Exists) tolerates every taint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Exists or Equal (default Equal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Exists", "Equal", null]))]
    pub operator: Option<String>,
    /// Taint value; must be empty with operator Exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// NoSchedule, PreferNoSchedule or NoExecute; empty matches all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["NoSchedule", "PreferNoSchedule", "NoExecute", "", null]))]
    pub effect: Option<String>,
    /// With effect NoExecute: how long the pod stays once tainted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

workload_struct! {
/// etcd, pachd's metadata store.
pub struct Etcd {
    /// Volume size per member; may grow, never shrink.
    #[serde(default = "ten_gi")]
    #[schemars(schema_with = "super::schema::quantity")]
    pub size: String,
    /// StorageClass; empty: the cluster default.
    #[serde(default)]
    pub storage_class: String,
    /// Members: 1 or 3 (or 5).
    #[serde(default = "one")]
    #[schemars(extend("enum" = [1, 3, 5]))]
    pub replicas: u32,
}
}

impl Default for Etcd {
    fn default() -> Self {
        Etcd {
            size: ten_gi(),
            storage_class: String::new(),
            replicas: 1,
            resources: None,
            node_selector: None,
            tolerations: None,
            pod_annotations: BTreeMap::new(),
            priority_class_name: None,
            affinity: None,
            pod_labels: None,
            service_labels: BTreeMap::new(),
        }
    }
}

workload_struct! {
/// PostgreSQL: in-cluster (default) or external.
pub struct Postgres {
    /// Volume size of the in-cluster database; may grow, never shrink.
    #[serde(default = "ten_gi")]
    #[schemars(schema_with = "super::schema::quantity")]
    pub size: String,
    /// StorageClass; empty: the cluster default.
    #[serde(default)]
    pub storage_class: String,
    /// Use this database instead of running one in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalPostgres>,
}
}

impl Default for Postgres {
    fn default() -> Self {
        Postgres {
            size: ten_gi(),
            storage_class: String::new(),
            external: None,
            resources: None,
            node_selector: None,
            tolerations: None,
            pod_annotations: BTreeMap::new(),
            priority_class_name: None,
            affinity: None,
            pod_labels: None,
            service_labels: BTreeMap::new(),
        }
    }
}

/// An external PostgreSQL server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalPostgres {
    /// Host name or address of the server.
    #[schemars(length(min = 1))]
    pub host: String,
    /// TCP port; default 5432.
    #[serde(default = "default_pg_port")]
    #[schemars(range(min = 1))]
    pub port: u16,
    /// User pachd connects as.
    #[schemars(length(min = 1))]
    pub user: String,
    /// Database for pachd; default `pachyderm`.
    #[serde(default = "default_pg_database")]
    pub database: String,
    /// Name of an existing Secret in the namespace with key `postgres-password`.
    pub password_secret: String,
    /// libpq sslmode: disable, allow, prefer, require (default), verify-ca
    /// or verify-full.
    #[serde(default = "default_sslmode")]
    #[schemars(extend("enum" = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]))]
    pub ssl_mode: String,
    /// How pg-bouncer authenticates to the server: md5 (default) or
    /// scram-sha-256 (PostgreSQL 14+ and most managed services default to it).
    #[serde(default = "default_auth_type")]
    #[schemars(extend("enum" = ["md5", "scram-sha-256"]))]
    pub auth_type: String,
}

fn default_auth_type() -> String {
    "md5".into()
}

fn default_pg_port() -> u16 {
    5432
}
fn default_pg_database() -> String {
    "pachyderm".into()
}
fn default_sslmode() -> String {
    "require".into()
}

workload_struct! {
/// pg-bouncer, the connection pooler between pachd and PostgreSQL.
pub struct PgBouncer {
    /// Pods; at least 1.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub replicas: u32,
    /// Maximum client connections.
    #[serde(default = "default_max_conn")]
    #[schemars(range(min = 1))]
    pub max_connections: u32,
}
}

impl Default for PgBouncer {
    fn default() -> Self {
        PgBouncer {
            replicas: 1,
            max_connections: default_max_conn(),
            resources: None,
            node_selector: None,
            tolerations: None,
            pod_annotations: BTreeMap::new(),
            priority_class_name: None,
            affinity: None,
            pod_labels: None,
            service_labels: BTreeMap::new(),
        }
    }
}

/// The official chart's default: pachd, pachw and each pipeline worker's
/// two processes keep pools of up to 10, so 1000 ran out at about 50 busy
/// workers.
fn default_max_conn() -> u32 {
    100_000
}

workload_struct! {
/// pachd, the Pachyderm daemon.
pub struct Pachd {
    /// Pods; must be 1 with local storage.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub replicas: u32,
    /// Service type for pachd: ClusterIP (default), NodePort or LoadBalancer.
    #[serde(default)]
    pub service_type: ServiceType,
    /// Extra annotations on the pachd Service (e.g. load balancer settings).
    #[serde(default)]
    pub service_annotations: BTreeMap<String, String>,
    /// Log level: debug, info or error.
    #[serde(default = "default_log_level")]
    #[schemars(extend("enum" = ["debug", "info", "error"]))]
    pub log_level: String,
    /// Send anonymous usage metrics to Pachyderm; also puts Prometheus
    /// scrape annotations on pachd's Service.
    #[serde(default)]
    pub metrics: bool,
    /// pachw, the pool of pachd instances for storage tasks, which pachd
    /// scales between these bounds.
    #[serde(default)]
    pub pachw: Pachw,
    /// A LoadBalancer Service `pachd-lb` for pachctl and S3 clients outside
    /// the cluster; off unless written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_service: Option<ExternalService>,
    /// Serve pachd's gRPC API and S3 gateway over TLS (the chart's
    /// `pachd.tls`); off unless written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PachdTls>,
}
}

/// pachw's replica bounds (the chart's `pachw.minReplicas`/`maxReplicas`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pachw {
    /// Fewest pachw pods pachd keeps running.
    #[serde(default)]
    pub min_replicas: u32,
    /// Most pachw pods pachd starts; at least 1.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub max_replicas: u32,
}

impl Default for Pachw {
    fn default() -> Self {
        Pachw {
            min_replicas: 0,
            max_replicas: 1,
        }
    }
}

impl Default for Pachd {
    fn default() -> Self {
        Pachd {
            replicas: 1,
            service_type: ServiceType::default(),
            service_annotations: BTreeMap::new(),
            log_level: default_log_level(),
            metrics: false,
            pachw: Pachw::default(),
            external_service: None,
            tls: None,
            resources: None,
            node_selector: None,
            tolerations: None,
            pod_annotations: BTreeMap::new(),
            priority_class_name: None,
            affinity: None,
            pod_labels: None,
            service_labels: BTreeMap::new(),
        }
    }
}

fn default_log_level() -> String {
    "info".into()
}

/// Kubernetes Service type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

workload_struct! {
/// The Pachyderm console (web UI).
pub struct Console {
    /// Run the console.
    #[serde(default = "yes")]
    pub enabled: bool,
}
}

fn yes() -> bool {
    true
}

workload_struct! {
/// pachyderm-proxy (Envoy): one HTTP address for the console and pachd. It
/// sends `/pfs`, `/archive`, `/api` and `/jsonschema` to pachd's HTTP port,
/// gRPC and S3 requests to pachd, and everything else to the console.
#[derive(Default)]
pub struct Proxy {
    /// Run the proxy; unset: exactly when the console runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Type of the `pachyderm-proxy` Service (port 80; NodePort pins 30080).
    #[serde(default)]
    pub service_type: ServiceType,
    /// Extra annotations on the `pachyderm-proxy` Service.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_annotations: BTreeMap<String, String>,
}
}

impl Pachyderm {
    /// Whether pachyderm-proxy runs: as written, else with the console.
    pub fn proxy_enabled(&self) -> bool {
        self.proxy.enabled.unwrap_or(self.console.enabled)
    }

    /// Settings that are valid but leave something a user would expect
    /// not working; said by `validate`, `plan` and `up`, never refused.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.console.enabled && !self.proxy_enabled() {
            out.push(
                "pachyderm.proxy is off while the console runs: the console cannot preview \
                 or download files (it fetches them from pachd through pachyderm-proxy); \
                 drop `proxy: false` to have both"
                    .to_string(),
            );
        }
        if let Some(e) = &self.enterprise {
            if e.auth && e.upstream_idps_secret.is_none() {
                out.push(
                    "pachyderm.enterprise has no upstreamIdpsSecret: login is the test provider's \
                     user admin / password, made cluster admin, for anyone who reaches the \
                     console; name your identity providers in upstreamIdpsSecret"
                        .to_string(),
                );
            }
        }
        out
    }
}

impl Default for Console {
    fn default() -> Self {
        Console {
            enabled: true,
            resources: None,
            node_selector: None,
            tolerations: None,
            pod_annotations: BTreeMap::new(),
            priority_class_name: None,
            affinity: None,
            pod_labels: None,
            service_labels: BTreeMap::new(),
        }
    }
}
