//! The `aws` target: a VPC (or the user's subnets), IAM roles, an S3
//! bucket, an EKS cluster with its OIDC provider, managed node groups, the
//! EBS CSI driver add-on with a gp3 default StorageClass, and an IRSA role
//! that lets Pachyderm's service accounts (and nothing else) use the bucket.
//!
//! Every object is named from the stack name and tagged
//! `howdah.io/stack=<stack>`, `howdah.io/managed=true` and
//! `howdah.io/id=<resource id>`; reads go by name and tag, so a lost state
//! file is rebuilt from the account instead of making duplicates.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use howdah_provider::{
    Intent, Intents, Leftover, Outputs, Provider, ProviderError, Resource, RuntimeInputs,
    StorageBinding,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

pub mod clients;
mod eks;
mod iam;
mod kube_access;
mod leftovers;
mod network;
mod policies;
mod s3;
pub mod token;

/// The stack as the AWS target needs it (the CLI maps the spec to this).
#[derive(Debug, Clone)]
pub struct AwsConfig {
    pub stack: String,
    pub region: String,
    pub profile: Option<String>,
    pub kubernetes_version: String,
    pub network: NetworkConfig,
    pub node_pools: Vec<NodePoolConfig>,
    /// Bucket name; None: derived from the stack, region and account.
    pub bucket: Option<String>,
    /// identity: keys — an IAM user with an access key in a Secret instead of IRSA.
    pub static_keys: bool,
    /// The runtime's namespace (its service accounts are trusted by the role).
    pub namespace: String,
    /// dataPolicy: delete (the bucket and volumes go on `down`).
    pub delete_data: bool,
    /// Extra tags from the stack file.
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkConfig {
    /// A new VPC with public subnets in `zones` availability zones.
    New { cidr: String, zones: u32 },
    /// The user's VPC and subnets, used as they are and never deleted.
    Existing {
        vpc_id: String,
        subnet_ids: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePoolConfig {
    pub name: String,
    pub machine_type: String,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub disk_size_gb: u32,
    pub spot: bool,
    pub labels: BTreeMap<String, String>,
}

/// Resource ids.
pub mod ids {
    pub const NETWORK: &str = "aws.network";
    pub const CLUSTER_ROLE: &str = "aws.iam.cluster_role";
    pub const NODE_ROLE: &str = "aws.iam.node_role";
    pub const BUCKET: &str = "aws.s3_bucket";
    pub const CLUSTER: &str = "aws.eks_cluster";
    pub const OIDC: &str = "aws.oidc_provider";
    pub const EBS_ROLE: &str = "aws.iam.ebs_csi_role";
    pub const EBS_ADDON: &str = "aws.addon.ebs_csi";
    pub const RUNTIME_ROLE: &str = "aws.iam.runtime_role";
    pub const RUNTIME_USER: &str = "aws.iam.runtime_user";
    pub const STORAGE_CLASS: &str = "aws.storage_class";
    pub const CLOUD_OBJECTS: &str = "aws.cluster_cloud_objects";

    pub fn nodegroup(name: &str) -> String {
        format!("aws.nodegroup.{name}")
    }
}

/// Tag keys.
pub mod tags {
    pub const STACK: &str = "howdah.io/stack";
    pub const MANAGED: &str = "howdah.io/managed";
    pub const ID: &str = "howdah.io/id";
    /// IAM is account-wide: the region tells two same-named stacks apart.
    pub const REGION: &str = "howdah.io/region";
}

/// Shared by every resource of one stack.
pub struct Ctx {
    pub cfg: AwsConfig,
    pub clients: clients::Lazy,
    account: OnceCell<String>,
    /// `down --delete-data` (or dataPolicy: delete).
    delete_data: AtomicBool,
    /// Where intents to create are recorded and read (the stack's state).
    intents: std::sync::RwLock<Arc<dyn Intents>>,
}

impl Ctx {
    pub async fn aws(&self) -> &clients::Clients {
        self.clients.get().await
    }

    /// The account the credentials belong to (STS GetCallerIdentity, once).
    pub async fn account(&self) -> Result<&str, ProviderError> {
        self.account
            .get_or_try_init(|| async {
                let out = self
                    .aws()
                    .await
                    .sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| {
                        clients::err("checking the AWS credentials (sts:GetCallerIdentity)", e)
                    })?;
                out.account
                    .ok_or_else(|| ProviderError::api("sts:GetCallerIdentity returned no account"))
            })
            .await
            .map(String::as_str)
    }

    pub fn partition(&self) -> &'static str {
        clients::partition(&self.cfg.region)
    }

    pub fn delete_data(&self) -> bool {
        self.cfg.delete_data || self.delete_data.load(Ordering::Relaxed)
    }

    fn intents(&self) -> Arc<dyn Intents> {
        self.intents
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What this run or an earlier one was about to create of `kind` `name`.
    pub fn intended(&self, kind: &str, name: &str) -> Option<Intent> {
        howdah_provider::intent::find(self.intents().as_ref(), kind, name)
    }

    /// Records, before the create is sent, that `resource` is about to
    /// create `kind` `name` now, and returns the intent with the
    /// idempotency token to send: an earlier try's token is kept, so every
    /// try of one create sends the same. Fails (and nothing may be sent)
    /// when it cannot be recorded.
    pub async fn intend(
        &self,
        resource: &str,
        kind: &str,
        name: &str,
    ) -> Result<Intent, ProviderError> {
        let at = chrono::Utc::now();
        let token = self
            .intended(kind, name)
            .and_then(|earlier| earlier.token)
            .unwrap_or_else(|| {
                let seed = format!(
                    "{}/{kind}/{name}/{}/{}",
                    self.cfg.stack,
                    at.timestamp_nanos_opt().unwrap_or_default(),
                    std::process::id()
                );
                Sha256::digest(seed)
                    .iter()
                    .take(16)
                    .map(|b| format!("{b:02x}"))
                    .collect()
            });
        let intent = Intent {
            resource: resource.into(),
            kind: kind.into(),
            name: name.into(),
            token: Some(token),
            at,
        };
        self.intents().record(intent.clone()).await?;
        Ok(intent)
    }

    /// `howdah-<stack>`: the EKS cluster, the VPC's Name tag.
    pub fn cluster_name(&self) -> String {
        format!("howdah-{}", self.cfg.stack)
    }

    /// `howdah-<stack>-<suffix>`: IAM roles and users.
    pub fn iam_name(&self, suffix: &str) -> String {
        format!("howdah-{}-{suffix}", self.cfg.stack)
    }

    /// The bucket: as named, or `<stack>-pachyderm-<8 hex>` where the hex
    /// comes from account, region and stack, so the name is the same on
    /// every run and unlikely to be taken in S3's global namespace.
    pub async fn bucket_name(&self) -> Result<String, ProviderError> {
        if let Some(name) = &self.cfg.bucket {
            return Ok(name.clone());
        }
        let account = self.account().await?;
        let digest = Sha256::digest(format!("{account}/{}/{}", self.cfg.region, self.cfg.stack));
        let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        Ok(format!("{}-pachyderm-{hex}", self.cfg.stack))
    }

    /// The ownership tags every object carries, plus the stack's own tags.
    pub fn tags(&self, id: &str) -> BTreeMap<String, String> {
        let mut t = self.cfg.tags.clone();
        t.insert(tags::STACK.into(), self.cfg.stack.clone());
        t.insert(tags::MANAGED.into(), "true".into());
        t.insert(tags::ID.into(), id.into());
        t.insert(tags::REGION.into(), self.cfg.region.clone());
        t
    }

    /// Whether a tag set marks the object as this stack's.
    /// Account-wide objects (IAM) of a same-named stack in another region
    /// carry that region and are not ours.
    pub fn owns<'a>(&self, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        let mut stack = false;
        let mut region_ok = true;
        for (k, v) in tags {
            if k == tags::STACK && v == self.cfg.stack {
                stack = true;
            }
            if k == tags::REGION && v != self.cfg.region {
                region_ok = false;
            }
        }
        stack && region_ok
    }

    /// `arn:<partition>:iam::aws:policy/<name>`.
    pub fn managed_policy(&self, name: &str) -> String {
        format!("arn:{}:iam::aws:policy/{name}", self.partition())
    }

    /// A field of a dependency's outputs.
    pub fn output(outputs: &Outputs, id: &str, field: &str) -> Option<String> {
        outputs
            .get(id)
            .and_then(|v| v.get(field).and_then(Value::as_str).map(str::to_string))
    }
}

/// The AWS target.
pub struct AwsProvider {
    ctx: Arc<Ctx>,
}

impl AwsProvider {
    pub fn new(cfg: AwsConfig) -> AwsProvider {
        let clients = clients::Lazy::new(&cfg.region, cfg.profile.as_deref());
        AwsProvider {
            ctx: Arc::new(Ctx {
                cfg,
                clients,
                account: OnceCell::new(),
                delete_data: AtomicBool::new(false),
                intents: std::sync::RwLock::new(Arc::new(howdah_provider::intent::ReadOnly(
                    Vec::new(),
                ))),
            }),
        }
    }
}

#[async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &'static str {
        "aws"
    }

    async fn preflight(&self) -> Result<(), ProviderError> {
        preflight::run(&self.ctx).await
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        let ctx = &self.ctx;
        let mut out: Vec<Arc<dyn Resource>> = vec![
            Arc::new(network::Network::new(ctx.clone())),
            Arc::new(iam::Role::cluster(ctx.clone())),
            Arc::new(iam::Role::node(ctx.clone())),
            Arc::new(s3::Bucket::new(ctx.clone())),
            Arc::new(eks::Cluster::new(ctx.clone())),
            Arc::new(iam::OidcProvider::new(ctx.clone())),
            Arc::new(iam::Role::ebs_csi(ctx.clone())),
            Arc::new(eks::Addon::ebs_csi(ctx.clone())),
            Arc::new(kube_access::StorageClass::new(ctx.clone())),
        ];
        if ctx.cfg.static_keys {
            out.push(Arc::new(iam::RuntimeUser::new(ctx.clone())));
        } else {
            out.push(Arc::new(iam::Role::runtime(ctx.clone())));
        }
        for pool in &ctx.cfg.node_pools {
            out.push(Arc::new(eks::Nodegroup::new(ctx.clone(), pool.clone())));
        }
        out.push(Arc::new(leftovers::CloudObjects::new(ctx.clone())));
        out
    }

    fn cluster_ready_after(&self) -> Vec<String> {
        vec![
            ids::CLOUD_OBJECTS.into(),
            ids::STORAGE_CLASS.into(),
            ids::BUCKET.into(),
            if self.ctx.cfg.static_keys {
                ids::RUNTIME_USER.into()
            } else {
                ids::RUNTIME_ROLE.into()
            },
        ]
    }

    async fn kube_config(&self, outputs: &Outputs) -> Result<kube::Config, ProviderError> {
        kube_access::config(&self.ctx, outputs).await
    }

    async fn cluster_exists(&self) -> Result<bool, ProviderError> {
        eks::Cluster::exists(&self.ctx).await
    }

    fn runtime_inputs(&self, outputs: &Outputs) -> RuntimeInputs {
        let ctx = &self.ctx;
        let bucket = Ctx::output(outputs, ids::BUCKET, "name").unwrap_or_else(|| {
            ctx.cfg
                .bucket
                .clone()
                .unwrap_or_else(|| format!("{}-pachyderm-<derived>", ctx.cfg.stack))
        });
        let mut annotations = BTreeMap::new();
        let mut credentials_secret = String::new();
        if ctx.cfg.static_keys {
            credentials_secret = iam::KEYS_SECRET.to_string();
        } else {
            let arn = Ctx::output(outputs, ids::RUNTIME_ROLE, "arn")
                .unwrap_or_else(|| "(known after the role is created)".into());
            annotations.insert("eks.amazonaws.com/role-arn".to_string(), arn);
        }
        RuntimeInputs {
            storage: Some(StorageBinding {
                backend: "AMAZON".into(),
                bucket,
                region: ctx.cfg.region.clone(),
                endpoint: clients::endpoint_override().unwrap_or_default(),
                credentials_secret,
                account: String::new(),
            }),
            service_account_annotations: annotations,
            storage_class: Some(kube_access::STORAGE_CLASS_NAME.into()),
            pod_labels: BTreeMap::new(),
        }
    }

    async fn kubeconfig_file(&self) -> Result<Option<kube::config::Kubeconfig>, ProviderError> {
        let info = eks::Cluster::describe(&self.ctx).await?.ok_or_else(|| {
            ProviderError::config(format!(
                "EKS cluster {} does not exist: run `howdah up` first",
                self.ctx.cluster_name()
            ))
        })?;
        kube_access::kubeconfig(&self.ctx, &info, &kube_access::current_exe()).map(Some)
    }

    fn set_delete_data(&self, delete: bool) {
        self.ctx.delete_data.store(delete, Ordering::Relaxed);
    }

    fn set_intents(&self, intents: Arc<dyn Intents>) {
        *self.ctx.intents.write().unwrap_or_else(|e| e.into_inner()) = intents;
    }

    async fn leftovers(&self) -> Result<Vec<Leftover>, ProviderError> {
        leftovers::scan(&self.ctx).await
    }
}

mod preflight;

/// What `howdah token` prints: an ExecCredential with a fresh EKS token
/// for `cluster`, from the standard chain or `profile`.
pub async fn exec_credential(
    cluster: &str,
    region: &str,
    profile: Option<&str>,
) -> Result<Value, ProviderError> {
    let clients = clients::Lazy::new(region, profile);
    let token = token::mint(&clients.get().await.sdk, cluster, region).await?;
    Ok(token::exec_credential(&token, chrono::Utc::now()))
}
