//! IAM: the EKS cluster and node roles, the cluster's OIDC provider, the
//! IRSA roles of the EBS CSI driver and of the runtime, and (only with
//! `identity: keys`) an IAM user whose access key goes into a Kubernetes
//! Secret, never into the state or the output.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_iam::types::Tag;
use howdah_provider::{Action, Change, FieldChange, Outputs, ProviderError, Resource, StepContext};
use serde_json::{json, Value};

use crate::clients::{create_once, err, iam_no_retry, is, not_found};
use crate::eks::Cluster;
use crate::{ids, policies, Ctx};

/// The inline policy name on roles and users that carry one.
const INLINE: &str = "howdah";

/// Name of the Secret holding the static keys (identity: keys).
pub const KEYS_SECRET: &str = "howdah-storage-keys";

fn iam_tags(ctx: &Ctx, id: &str) -> Vec<Tag> {
    ctx.tags(id)
        .into_iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .expect("key and value are set")
        })
        .collect()
}

/// Who may assume a role.
enum Trust {
    Service(&'static str),
    /// Service accounts (namespace, name) of the cluster's OIDC issuer.
    ServiceAccounts(Vec<(String, String)>),
}

/// An IAM role with a trust policy, AWS-managed policies and maybe an
/// inline policy scoped to the bucket.
pub struct Role {
    ctx: Arc<Ctx>,
    id: &'static str,
    suffix: &'static str,
    trust: Trust,
    managed: Vec<&'static str>,
    bucket_policy: bool,
    deps: Vec<String>,
}

/// The OIDC issuer of the cluster, as IAM names it (no scheme), and the
/// ARN of its IAM provider.
struct Issuer {
    host_path: String,
    provider_arn: String,
}

impl Role {
    pub fn cluster(ctx: Arc<Ctx>) -> Role {
        Role {
            ctx,
            id: ids::CLUSTER_ROLE,
            suffix: "cluster",
            trust: Trust::Service("eks.amazonaws.com"),
            managed: vec!["AmazonEKSClusterPolicy"],
            bucket_policy: false,
            deps: vec![],
        }
    }

    pub fn node(ctx: Arc<Ctx>) -> Role {
        Role {
            ctx,
            id: ids::NODE_ROLE,
            suffix: "node",
            trust: Trust::Service("ec2.amazonaws.com"),
            managed: vec![
                "AmazonEKSWorkerNodePolicy",
                "AmazonEKS_CNI_Policy",
                "AmazonEC2ContainerRegistryReadOnly",
            ],
            bucket_policy: false,
            deps: vec![],
        }
    }

    pub fn ebs_csi(ctx: Arc<Ctx>) -> Role {
        Role {
            ctx,
            id: ids::EBS_ROLE,
            suffix: "ebs-csi",
            trust: Trust::ServiceAccounts(vec![(
                "kube-system".into(),
                "ebs-csi-controller-sa".into(),
            )]),
            managed: vec!["service-role/AmazonEBSCSIDriverPolicy"],
            bucket_policy: false,
            deps: vec![ids::OIDC.into()],
        }
    }

    /// pachd and its pipeline workers: the bucket, nothing else.
    pub fn runtime(ctx: Arc<Ctx>) -> Role {
        let ns = ctx.cfg.namespace.clone();
        Role {
            ctx,
            id: ids::RUNTIME_ROLE,
            suffix: "pachyderm",
            trust: Trust::ServiceAccounts(vec![
                (ns.clone(), "pachyderm".into()),
                (ns, "pachyderm-worker".into()),
            ]),
            managed: vec![],
            bucket_policy: true,
            deps: vec![ids::OIDC.into(), ids::BUCKET.into()],
        }
    }

    fn name(&self) -> String {
        self.ctx.iam_name(self.suffix)
    }

    /// The issuer from the OIDC step's outputs, or read from the cluster;
    /// None while the cluster does not exist (plan on an empty account).
    async fn issuer(&self, outputs: &Outputs) -> Result<Option<Issuer>, ProviderError> {
        if let (Some(issuer), Some(arn)) = (
            Ctx::output(outputs, ids::OIDC, "issuer"),
            Ctx::output(outputs, ids::OIDC, "arn"),
        ) {
            return Ok(Some(Issuer {
                host_path: host_path(&issuer),
                provider_arn: arn,
            }));
        }
        let Some(cluster) = Cluster::describe(&self.ctx).await? else {
            return Ok(None);
        };
        let Some(issuer) = cluster.issuer else {
            return Ok(None);
        };
        let account = self.ctx.account().await?;
        let hp = host_path(&issuer);
        Ok(Some(Issuer {
            provider_arn: format!(
                "arn:{}:iam::{account}:oidc-provider/{hp}",
                self.ctx.partition()
            ),
            host_path: hp,
        }))
    }

    /// The trust document; None when it needs an issuer that does not exist yet.
    async fn trust_document(&self, outputs: &Outputs) -> Result<Option<Value>, ProviderError> {
        Ok(match &self.trust {
            Trust::Service(s) => Some(policies::service_trust(s)),
            Trust::ServiceAccounts(sas) => self.issuer(outputs).await?.map(|i| {
                let subjects: Vec<String> = sas
                    .iter()
                    .map(|(ns, n)| format!("system:serviceaccount:{ns}:{n}"))
                    .collect();
                policies::irsa_trust(&i.provider_arn, &i.host_path, &subjects)
            }),
        })
    }

    async fn inline_document(&self) -> Result<Option<Value>, ProviderError> {
        if !self.bucket_policy {
            return Ok(None);
        }
        let bucket = self.ctx.bucket_name().await?;
        Ok(Some(policies::bucket_access(self.ctx.partition(), &bucket)))
    }

    fn managed_arns(&self) -> Vec<String> {
        self.managed
            .iter()
            .map(|m| self.ctx.managed_policy(m))
            .collect()
    }

    /// The role as it is: (arn, trust, attached managed ARNs, inline doc).
    async fn read(&self) -> Result<Option<LiveRole>, ProviderError> {
        let iam = &self.ctx.aws().await.iam;
        let name = self.name();
        let role = match iam.get_role().role_name(&name).send().await {
            Ok(out) => out
                .role
                .ok_or_else(|| ProviderError::api("GetRole returned no role"))?,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(err(&format!("reading IAM role {name}"), e)),
        };
        let owned = self
            .ctx
            .owns(role.tags().iter().map(|t| (t.key(), t.value())));
        if !owned {
            return Err(ProviderError::api(format!(
                "IAM role {name} exists but is not tagged as stack {} in {} (IAM names are account-wide: a same-named stack in another region, or someone else's role); delete or rename it, or choose another stack name",
                self.ctx.cfg.stack, self.ctx.cfg.region
            )));
        }
        let trust = role
            .assume_role_policy_document()
            .and_then(policies::decode);
        let attached = iam
            .list_attached_role_policies()
            .role_name(&name)
            .send()
            .await
            .map_err(|e| err(&format!("listing policies of {name}"), e))?
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect();
        let inline = if self.bucket_policy {
            match iam
                .get_role_policy()
                .role_name(&name)
                .policy_name(INLINE)
                .send()
                .await
            {
                Ok(out) => policies::decode(out.policy_document()),
                Err(e) if not_found(&e) => None,
                Err(e) => return Err(err(&format!("reading the policy of {name}"), e)),
            }
        } else {
            None
        };
        Ok(Some(LiveRole {
            arn: role.arn().to_string(),
            trust,
            attached,
            inline,
        }))
    }

    fn documents(&self, trust: &Option<Value>, inline: &Option<Value>) -> BTreeMap<String, Value> {
        let mut docs = BTreeMap::new();
        docs.insert(
            format!("{}: trust policy", self.name()),
            trust.clone().unwrap_or_else(|| {
                json!("(names the cluster's OIDC issuer: known after the cluster is created)")
            }),
        );
        if let Some(inline) = inline {
            docs.insert(
                format!("{}: inline policy `{INLINE}`", self.name()),
                inline.clone(),
            );
        }
        if !self.managed.is_empty() {
            docs.insert(
                format!("{}: AWS-managed policies", self.name()),
                json!(self.managed_arns()),
            );
        }
        docs
    }

    /// What differs between the live role and the wanted one.
    fn drift(
        &self,
        live: &LiveRole,
        trust: &Option<Value>,
        inline: &Option<Value>,
    ) -> Vec<FieldChange> {
        let mut fields = Vec::new();
        if let Some(want) = trust {
            if !live.trust.as_ref().is_some_and(|t| policies::same(t, want)) {
                fields.push(FieldChange {
                    path: "assume_role_policy".into(),
                    old: live.trust.as_ref().map(Value::to_string),
                    new: Some(want.to_string()),
                });
            }
        }
        for arn in self.managed_arns() {
            if !live.attached.contains(&arn) {
                fields.push(FieldChange {
                    path: "attached_policies".into(),
                    old: None,
                    new: Some(arn),
                });
            }
        }
        if let Some(want) = inline {
            if !live
                .inline
                .as_ref()
                .is_some_and(|t| policies::same(t, want))
            {
                fields.push(FieldChange {
                    path: format!("inline_policy.{INLINE}"),
                    old: live.inline.as_ref().map(Value::to_string),
                    new: Some(want.to_string()),
                });
            }
        }
        fields
    }

    async fn delete(&self) -> Result<(), ProviderError> {
        delete_role(&self.ctx, &self.name()).await
    }
}

struct LiveRole {
    arn: String,
    trust: Option<Value>,
    attached: Vec<String>,
    inline: Option<Value>,
}

/// `https://oidc.eks.r.amazonaws.com/id/X` → `oidc.eks.r.amazonaws.com/id/X`.
pub fn host_path(issuer: &str) -> String {
    issuer
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// Detaches, empties and deletes a role (and takes it out of instance
/// profiles, which block deletion with DeleteConflict).
pub async fn delete_role(ctx: &Ctx, name: &str) -> Result<(), ProviderError> {
    let iam = &ctx.aws().await.iam;
    let attached = match iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
    {
        Ok(out) => out.attached_policies().to_vec(),
        Err(e) if not_found(&e) => return Ok(()),
        Err(e) => return Err(err(&format!("listing policies of {name}"), e)),
    };
    for p in attached {
        if let Some(arn) = p.policy_arn() {
            match iam
                .detach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(err(&format!("detaching {arn} from {name}"), e)),
            }
        }
    }
    let inline = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| err(&format!("listing inline policies of {name}"), e))?;
    for p in inline.policy_names() {
        match iam
            .delete_role_policy()
            .role_name(name)
            .policy_name(p)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(err(&format!("deleting policy {p} of {name}"), e)),
        }
    }
    if let Ok(profiles) = iam
        .list_instance_profiles_for_role()
        .role_name(name)
        .send()
        .await
    {
        for p in profiles.instance_profiles() {
            let _ = iam
                .remove_role_from_instance_profile()
                .instance_profile_name(p.instance_profile_name())
                .role_name(name)
                .send()
                .await;
        }
    }
    match iam.delete_role().role_name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if not_found(&e) => Ok(()),
        Err(e) if is(&e, &["DeleteConflict"]) => Err(ProviderError::retryable(format!(
            "IAM role {name} is still in use"
        ))),
        Err(e) => Err(err(&format!("deleting IAM role {name}"), e)),
    }
}

#[async_trait]
impl Resource for Role {
    fn id(&self) -> &str {
        self.id
    }

    fn depends_on(&self) -> Vec<String> {
        self.deps.clone()
    }

    fn expected(&self, action: Action) -> Duration {
        match action {
            Action::Keep => Duration::from_millis(500),
            _ => Duration::from_secs(5),
        }
    }

    async fn plan_up(&self, ctx: &StepContext) -> Result<Change, ProviderError> {
        let trust = self.trust_document(&ctx.outputs).await?;
        let inline = self.inline_document().await?;
        let mut change = match self.read().await? {
            None => Change::new(Action::Create, "not found"),
            Some(live) => {
                let fields = self.drift(&live, &trust, &inline);
                if fields.is_empty() {
                    return Ok(Change::keep(format!("{} in sync", self.name())));
                }
                let mut c =
                    Change::new(Action::Update, format!("{} field(s) differ", fields.len()));
                c.fields = fields;
                c
            }
        };
        change.documents = self.documents(&trust, &inline);
        Ok(change)
    }

    async fn plan_down(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        let iam = &self.ctx.aws().await.iam;
        match iam.get_role().role_name(self.name()).send().await {
            Ok(_) => Ok(Change::new(Action::Delete, format!("role {}", self.name()))),
            Err(e) if not_found(&e) => Ok(Change::keep("already gone")),
            Err(e) => Err(err("reading IAM role", e)),
        }
    }

    async fn apply(&self, ctx: &StepContext, _change: &Change) -> Result<Value, ProviderError> {
        let iam = &self.ctx.aws().await.iam;
        let name = self.name();
        let trust = self.trust_document(&ctx.outputs).await?.ok_or_else(|| {
            ProviderError::api(format!(
                "{name} needs the cluster's OIDC issuer, which is not known yet"
            ))
        })?;
        let inline = self.inline_document().await?;
        let live = match self.read().await? {
            Some(live) => live,
            None => {
                ctx.progress.report(&format!("creating IAM role {name}"));
                let created = iam
                    .create_role()
                    .role_name(&name)
                    .assume_role_policy_document(trust.to_string())
                    .description(format!(
                        "howdah stack {}: {}",
                        self.ctx.cfg.stack, self.suffix
                    ))
                    .set_tags(Some(iam_tags(&self.ctx, self.id)))
                    .send()
                    .await;
                match created {
                    Ok(_) => {}
                    Err(e) if is(&e, &["EntityAlreadyExists"]) => {}
                    Err(e) => return Err(err(&format!("creating IAM role {name}"), e)),
                }
                // IAM is eventually consistent: a role just made may not
                // be readable for a moment.
                howdah_provider::wait::retry(10, crate::eks::poll_backoff(), || async {
                    self.read()
                        .await?
                        .ok_or_else(|| ProviderError::retryable(format!("{name} not visible yet")))
                })
                .await?
            }
        };
        let fields = self.drift(&live, &Some(trust.clone()), &inline);
        for f in &fields {
            match f.path.as_str() {
                "assume_role_policy" => {
                    iam.update_assume_role_policy()
                        .role_name(&name)
                        .policy_document(trust.to_string())
                        .send()
                        .await
                        .map_err(|e| err(&format!("updating the trust of {name}"), e))?;
                }
                "attached_policies" => {
                    let arn = f.new.clone().unwrap_or_default();
                    iam.attach_role_policy()
                        .role_name(&name)
                        .policy_arn(&arn)
                        .send()
                        .await
                        .map_err(|e| match &e {
                            e2 if not_found(e2) => ProviderError::api(format!(
                                "attaching {arn} to {name}: the policy does not exist in this account (is the partition right?)"
                            )),
                            _ => err(&format!("attaching {arn} to {name}"), e),
                        })?;
                }
                _ => {
                    if let Some(doc) = &inline {
                        iam.put_role_policy()
                            .role_name(&name)
                            .policy_name(INLINE)
                            .policy_document(doc.to_string())
                            .send()
                            .await
                            .map_err(|e| err(&format!("writing the policy of {name}"), e))?;
                    }
                }
            }
        }
        Ok(json!({"name": name, "arn": live.arn}))
    }

    async fn destroy(&self, ctx: &StepContext, _change: &Change) -> Result<(), ProviderError> {
        howdah_provider::wait::poll_until(
            &format!("IAM role {} to be deleted", self.name()),
            Duration::from_secs(300),
            howdah_provider::wait::Backoff::default(),
            ctx.progress.as_ref(),
            || async {
                match self.delete().await {
                    Ok(()) => Ok(howdah_provider::wait::Poll::Ready(())),
                    Err(e) if e.is_retryable() => {
                        Ok(howdah_provider::wait::Poll::Pending(e.to_string()))
                    }
                    Err(e) => Err(e),
                }
            },
        )
        .await
    }
}

/// The cluster's OIDC identity provider in IAM: what IRSA roles trust.
pub struct OidcProvider {
    ctx: Arc<Ctx>,
}

impl OidcProvider {
    pub fn new(ctx: Arc<Ctx>) -> OidcProvider {
        OidcProvider { ctx }
    }

    /// The provider IAM says exists for `issuer` (EntityAlreadyExists),
    /// read before anything is said of it: this stack's (its tags say so,
    /// as after a create whose answer was lost) is used, anyone else's is
    /// refused.
    async fn existing(&self, issuer: &str) -> Result<String, ProviderError> {
        let arn = format!(
            "arn:{}:iam::{}:oidc-provider/{}",
            self.ctx.partition(),
            self.ctx.account().await?,
            host_path(issuer)
        );
        let got = self
            .ctx
            .aws()
            .await
            .iam
            .get_open_id_connect_provider()
            .open_id_connect_provider_arn(&arn)
            .send()
            .await
            .map_err(|e| err(&format!("reading OIDC provider {arn}"), e))?;
        if self
            .ctx
            .owns(got.tags().iter().map(|t| (t.key(), t.value())))
        {
            return Ok(arn);
        }
        Err(ProviderError::api(format!(
            "an OIDC provider for {issuer} already exists in this account ({arn}) but is not tagged howdah.io/stack={}; delete it or tag it to let this stack use it",
            self.ctx.cfg.stack
        )))
    }

    /// The provider tagged as this stack's, with its URL.
    async fn find(&self) -> Result<Option<(String, String)>, ProviderError> {
        let iam = &self.ctx.aws().await.iam;
        let list = iam
            .list_open_id_connect_providers()
            .send()
            .await
            .map_err(|e| err("listing OIDC providers", e))?;
        for p in list.open_id_connect_provider_list() {
            let Some(arn) = p.arn() else { continue };
            let got = match iam
                .get_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .send()
                .await
            {
                Ok(g) => g,
                Err(e) if not_found(&e) => continue,
                Err(e) => return Err(err("reading an OIDC provider", e)),
            };
            if self
                .ctx
                .owns(got.tags().iter().map(|t| (t.key(), t.value())))
            {
                return Ok(Some((
                    arn.to_string(),
                    got.url().unwrap_or_default().to_string(),
                )));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Resource for OidcProvider {
    fn id(&self) -> &str {
        ids::OIDC
    }

    fn depends_on(&self) -> Vec<String> {
        vec![ids::CLUSTER.into()]
    }

    fn expected(&self, action: Action) -> Duration {
        match action {
            Action::Keep => Duration::from_millis(500),
            _ => Duration::from_secs(3),
        }
    }

    async fn plan_up(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        Ok(match self.find().await? {
            Some((arn, url)) => {
                let current = Cluster::describe(&self.ctx).await?.and_then(|c| c.issuer);
                match current {
                    Some(issuer) if host_path(&issuer) != host_path(&url) => Change::new(
                        Action::Replace,
                        format!("{arn} names an earlier cluster's issuer"),
                    ),
                    _ => Change::keep(arn),
                }
            }
            None => Change::new(
                Action::Create,
                "not found: trusts the cluster's issuer for sts.amazonaws.com",
            ),
        })
    }

    async fn plan_down(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        Ok(match self.find().await? {
            Some((arn, _)) => Change::new(Action::Delete, arn),
            None => Change::keep("already gone"),
        })
    }

    async fn apply(&self, ctx: &StepContext, _change: &Change) -> Result<Value, ProviderError> {
        let issuer = match Ctx::output(&ctx.outputs, ids::CLUSTER, "oidc_issuer") {
            Some(i) => i,
            None => Cluster::describe(&self.ctx)
                .await?
                .and_then(|c| c.issuer)
                .ok_or_else(|| ProviderError::api("the cluster has no OIDC issuer yet"))?,
        };
        if let Some((arn, url)) = self.find().await? {
            if host_path(&url) == host_path(&issuer) {
                return Ok(json!({"arn": arn, "issuer": issuer}));
            }
            // Left from an earlier cluster of this stack: IRSA trusts
            // naming it would never match the new issuer.
            ctx.progress.report(&format!(
                "replacing OIDC provider {arn} (issuer of an earlier cluster)"
            ));
            self.ctx
                .aws()
                .await
                .iam
                .delete_open_id_connect_provider()
                .open_id_connect_provider_arn(&arn)
                .send()
                .await
                .map_err(|e| err("deleting a stale OIDC provider", e))?;
        }
        ctx.progress.report("creating the OIDC provider");
        let iam = &self.ctx.aws().await.iam;
        self.ctx
            .intend(ids::OIDC, "iam.oidc_provider", &host_path(&issuer))
            .await?;
        // None: IAM says one for this issuer exists already.
        let created = create_once(
            "creating the OIDC provider",
            || async {
                match iam
                    .create_open_id_connect_provider()
                    .url(&issuer)
                    .client_id_list("sts.amazonaws.com")
                    .set_tags(Some(iam_tags(&self.ctx, ids::OIDC)))
                    .customize()
                    .config_override(iam_no_retry())
                    .send()
                    .await
                {
                    Ok(out) => Ok(Some(
                        out.open_id_connect_provider_arn()
                            .unwrap_or_default()
                            .to_string(),
                    )),
                    Err(e) if is(&e, &["EntityAlreadyExists"]) => Ok(None),
                    Err(e) => Err(e),
                }
            },
            || async {
                Ok(self
                    .find()
                    .await?
                    .filter(|(_, url)| host_path(url) == host_path(&issuer))
                    .map(|(arn, _)| Some(arn)))
            },
        )
        .await?;
        let arn = match created {
            Some(arn) => arn,
            None => self.existing(&issuer).await?,
        };
        Ok(json!({"arn": arn, "issuer": issuer}))
    }

    async fn destroy(&self, _ctx: &StepContext, _change: &Change) -> Result<(), ProviderError> {
        let Some((arn, _)) = self.find().await? else {
            return Ok(());
        };
        match self
            .ctx
            .aws()
            .await
            .iam
            .delete_open_id_connect_provider()
            .open_id_connect_provider_arn(&arn)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(err("deleting the OIDC provider", e)),
        }
    }
}

/// Deletes every access key of `user` (gone already is fine).
async fn delete_access_keys(iam: &aws_sdk_iam::Client, user: &str) -> Result<(), ProviderError> {
    let keys = match iam.list_access_keys().user_name(user).send().await {
        Ok(keys) => keys,
        Err(e) if not_found(&e) => return Ok(()),
        Err(e) => return Err(err("listing access keys", e)),
    };
    for id in keys
        .access_key_metadata()
        .iter()
        .filter_map(|k| k.access_key_id())
    {
        match iam
            .delete_access_key()
            .user_name(user)
            .access_key_id(id)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(err("deleting an access key", e)),
        }
    }
    Ok(())
}

/// `identity: keys`: an IAM user limited to the bucket, with one access
/// key. The secret half exists only in the Kubernetes Secret it is written
/// to (AWS shows it once, at creation); a lost Secret means a new key.
pub struct RuntimeUser {
    ctx: Arc<Ctx>,
}

impl RuntimeUser {
    pub fn new(ctx: Arc<Ctx>) -> RuntimeUser {
        RuntimeUser { ctx }
    }

    fn name(&self) -> String {
        self.ctx.iam_name("pachyderm")
    }
}

#[async_trait]
impl Resource for RuntimeUser {
    fn id(&self) -> &str {
        ids::RUNTIME_USER
    }

    fn depends_on(&self) -> Vec<String> {
        vec![ids::BUCKET.into(), ids::CLUSTER.into()]
    }

    fn expected(&self, action: Action) -> Duration {
        match action {
            Action::Keep => Duration::from_millis(500),
            _ => Duration::from_secs(5),
        }
    }

    async fn plan_up(&self, ctx: &StepContext) -> Result<Change, ProviderError> {
        let iam = &self.ctx.aws().await.iam;
        let bucket = self.ctx.bucket_name().await?;
        let doc = policies::bucket_access(self.ctx.partition(), &bucket);
        let exists = match iam.get_user().user_name(self.name()).send().await {
            Ok(_) => true,
            Err(e) if not_found(&e) => false,
            Err(e) => return Err(err("reading the IAM user", e)),
        };
        let secret = crate::kube_access::read_keys_secret(&self.ctx, &ctx.outputs).await?;
        let mut change = if exists && secret.is_some() {
            Change::keep(format!(
                "user {} with its key in Secret {KEYS_SECRET}",
                self.name()
            ))
        } else if exists {
            Change::new(
                Action::Update,
                format!("Secret {KEYS_SECRET} missing: a new access key"),
            )
        } else {
            Change::new(Action::Create, "not found: user, access key, Secret")
        };
        change
            .documents
            .insert(format!("{}: inline policy `{INLINE}`", self.name()), doc);
        Ok(change)
    }

    async fn plan_down(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        let iam = &self.ctx.aws().await.iam;
        match iam.get_user().user_name(self.name()).send().await {
            Ok(_) => Ok(Change::new(
                Action::Delete,
                format!("user {} and its keys", self.name()),
            )),
            Err(e) if not_found(&e) => Ok(Change::keep("already gone")),
            Err(e) => Err(err("reading the IAM user", e)),
        }
    }

    async fn apply(&self, ctx: &StepContext, _change: &Change) -> Result<Value, ProviderError> {
        let iam = &self.ctx.aws().await.iam;
        let name = self.name();
        let bucket = self.ctx.bucket_name().await?;
        let doc = policies::bucket_access(self.ctx.partition(), &bucket);
        match iam.get_user().user_name(&name).send().await {
            Ok(out) => {
                let owned = out
                    .user()
                    .is_some_and(|u| self.ctx.owns(u.tags().iter().map(|t| (t.key(), t.value()))));
                if !owned {
                    return Err(ProviderError::api(format!(
                        "IAM user {name} exists but is not tagged as stack {} in {}: howdah will not take it over (nor touch its keys); delete or rename it",
                        self.ctx.cfg.stack, self.ctx.cfg.region
                    )));
                }
            }
            Err(e) if not_found(&e) => {
                ctx.progress.report(&format!("creating IAM user {name}"));
                let tags: Vec<Tag> = iam_tags(&self.ctx, ids::RUNTIME_USER);
                match iam
                    .create_user()
                    .user_name(&name)
                    .set_tags(Some(tags))
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e) if is(&e, &["EntityAlreadyExists"]) => {}
                    Err(e) => return Err(err(&format!("creating IAM user {name}"), e)),
                }
            }
            Err(e) => return Err(err("reading the IAM user", e)),
        }
        let current = match iam
            .get_user_policy()
            .user_name(&name)
            .policy_name(INLINE)
            .send()
            .await
        {
            Ok(out) => policies::decode(out.policy_document()),
            Err(e) if not_found(&e) => None,
            Err(e) => return Err(err("reading the user's policy", e)),
        };
        if !current.as_ref().is_some_and(|c| policies::same(c, &doc)) {
            iam.put_user_policy()
                .user_name(&name)
                .policy_name(INLINE)
                .policy_document(doc.to_string())
                .send()
                .await
                .map_err(|e| err("writing the user's policy", e))?;
        }
        if crate::kube_access::read_keys_secret(&self.ctx, &ctx.outputs)
            .await?
            .is_none()
        {
            // Keys whose secret half is lost are useless: remove them first,
            // so the user never has more than one.
            delete_access_keys(iam, &name).await?;
            let key = create_once(
                "creating an access key",
                || {
                    iam.create_access_key()
                        .user_name(&name)
                        .customize()
                        .config_override(iam_no_retry())
                        .send()
                },
                // A key whose answer was lost is useless (its secret half
                // went with the answer) and would count against the
                // user's two: remove it before making another.
                || async {
                    delete_access_keys(iam, &name).await?;
                    Ok(None)
                },
            )
            .await?;
            let key = key
                .access_key
                .ok_or_else(|| ProviderError::api("CreateAccessKey returned no key"))?;
            ctx.progress
                .report(&format!("writing the access key to Secret {KEYS_SECRET}"));
            crate::kube_access::write_keys_secret(
                &self.ctx,
                &ctx.outputs,
                key.access_key_id(),
                key.secret_access_key(),
            )
            .await?;
        }
        Ok(json!({"user": name, "secret": KEYS_SECRET}))
    }

    async fn destroy(&self, _ctx: &StepContext, _change: &Change) -> Result<(), ProviderError> {
        let iam = &self.ctx.aws().await.iam;
        let name = self.name();
        delete_access_keys(iam, &name).await?;
        let _ = iam
            .delete_user_policy()
            .user_name(&name)
            .policy_name(INLINE)
            .send()
            .await;
        match iam.delete_user().user_name(&name).send().await {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(err(&format!("deleting IAM user {name}"), e)),
        }
    }
}
