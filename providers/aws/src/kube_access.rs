//! Reaching the EKS cluster without the aws CLI: a kubeconfig whose user is
//! an exec plugin that is howdah itself (`howdah token`), minting the EKS
//! token in-process from a presigned STS GetCallerIdentity. The runtime
//! uses the same kubeconfig in memory; `howdah kubeconfig -f` writes it.
//!
//! `HOWDAH_KUBE_ENDPOINT` replaces the cluster endpoint EKS reports (and
//! drops its CA): the one override tests use to send the Kubernetes side of
//! an emulated cluster to a local API server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use howdah_provider::{Action, Change, FieldChange, Outputs, ProviderError, Resource, StepContext};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::storage::v1::StorageClass as K8sStorageClass;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{
    AuthInfo, Context, ExecConfig, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use serde_json::{json, Value};

use crate::eks::{Cluster, ClusterInfo};
use crate::iam::KEYS_SECRET;
use crate::{ids, tags, Ctx};

/// The environment variable that overrides the cluster's API endpoint.
pub const ENDPOINT_OVERRIDE_VAR: &str = "HOWDAH_KUBE_ENDPOINT";

/// The StorageClass howdah installs and makes the default.
pub const STORAGE_CLASS_NAME: &str = "gp3";

const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

/// A kubeconfig for the stack's cluster, with howdah as the exec plugin.
/// `exe` is the howdah binary the plugin runs.
pub fn kubeconfig(ctx: &Ctx, info: &ClusterInfo, exe: &str) -> Result<Kubeconfig, ProviderError> {
    let name = ctx.cluster_name();
    let override_url = std::env::var(ENDPOINT_OVERRIDE_VAR)
        .ok()
        .filter(|s| !s.is_empty());
    let server = match &override_url {
        Some(url) => url.clone(),
        None => info
            .endpoint
            .clone()
            .ok_or_else(|| ProviderError::api(format!("EKS cluster {name} has no endpoint yet")))?,
    };
    let cluster = kube::config::Cluster {
        server: Some(server),
        certificate_authority_data: if override_url.is_some() {
            None
        } else {
            info.ca.clone()
        },
        ..Default::default()
    };
    let mut args = vec![
        "token".to_string(),
        "--cluster".to_string(),
        name.clone(),
        "--region".to_string(),
        ctx.cfg.region.clone(),
    ];
    if let Some(p) = &ctx.cfg.profile {
        args.extend(["--profile".to_string(), p.clone()]);
    }
    let exec = ExecConfig {
        api_version: Some("client.authentication.k8s.io/v1beta1".into()),
        command: Some(exe.to_string()),
        args: Some(args),
        env: None,
        drop_env: None,
        install_hint: Some("howdah is the credential plugin of this context: put it on PATH or run `howdah kubeconfig` again".into()),
        interactive_mode: None,
        provide_cluster_info: false,
        cluster: None,
        other: Default::default(),
    };
    let context_name = name.clone();
    Ok(Kubeconfig {
        clusters: vec![NamedCluster {
            name: name.clone(),
            cluster: Some(cluster),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: name.clone(),
            auth_info: Some(AuthInfo {
                exec: Some(exec),
                ..Default::default()
            }),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: context_name.clone(),
            context: Some(Context {
                cluster: name.clone(),
                user: Some(name.clone()),
                namespace: Some(ctx.cfg.namespace.clone()),
                extensions: None,
                other: Default::default(),
            }),
            other: Default::default(),
        }],
        current_context: Some(context_name),
        ..Default::default()
    })
}

/// The running howdah binary, for the exec plugin.
pub fn current_exe() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "howdah".into())
}

/// The client configuration for the cluster: from the cluster step's
/// outputs, or read from EKS (a later command on an existing stack).
pub async fn config(ctx: &Ctx, outputs: &Outputs) -> Result<kube::Config, ProviderError> {
    let info = cluster_info(ctx, outputs).await?;
    let kubeconfig = kubeconfig(ctx, &info, &current_exe())?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| ProviderError::config(format!("the cluster's kubeconfig is not usable: {e}")))
}

async fn cluster_info(ctx: &Ctx, outputs: &Outputs) -> Result<ClusterInfo, ProviderError> {
    if let Some(endpoint) = Ctx::output(outputs, ids::CLUSTER, "endpoint") {
        return Ok(ClusterInfo {
            status: "ACTIVE".into(),
            endpoint: Some(endpoint),
            ca: Ctx::output(outputs, ids::CLUSTER, "certificate_authority"),
            issuer: Ctx::output(outputs, ids::CLUSTER, "oidc_issuer"),
            arn: None,
            version: None,
            vpc_id: None,
            owned: true,
        });
    }
    Cluster::describe(ctx).await?.ok_or_else(|| {
        ProviderError::config(format!(
            "EKS cluster {} does not exist: run `howdah up` first",
            ctx.cluster_name()
        ))
    })
}

async fn client(ctx: &Ctx, outputs: &Outputs) -> Result<kube::Client, ProviderError> {
    let config = config(ctx, outputs).await?;
    kube::Client::try_from(config)
        .map_err(|e| ProviderError::config(format!("cannot build a Kubernetes client: {e}")))
}

fn kube_err(what: &str, e: kube::Error) -> ProviderError {
    match &e {
        kube::Error::Api(s) if s.code == 429 || s.code >= 500 => {
            ProviderError::retryable(format!("{what}: {e}"))
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            ProviderError::retryable(format!("{what}: {e}"))
        }
        _ => ProviderError::api(format!("{what}: {e}")),
    }
}

fn ownership(ctx: &Ctx) -> BTreeMap<String, String> {
    BTreeMap::from([
        (tags::STACK.to_string(), ctx.cfg.stack.clone()),
        (tags::MANAGED.to_string(), "true".to_string()),
    ])
}

fn patch_params() -> PatchParams {
    PatchParams::apply("howdah").force()
}

/// The static keys Secret, if it is there (identity: keys).
pub async fn read_keys_secret(ctx: &Ctx, outputs: &Outputs) -> Result<Option<()>, ProviderError> {
    if outputs.get(ids::CLUSTER).is_none() && !Cluster::exists(ctx).await? {
        return Ok(None);
    }
    let api: Api<Secret> = Api::namespaced(client(ctx, outputs).await?, &ctx.cfg.namespace);
    let found = api
        .get_opt(KEYS_SECRET)
        .await
        .map_err(|e| kube_err("reading the keys Secret", e))?;
    Ok(found
        .filter(|s| {
            s.data
                .as_ref()
                .is_some_and(|d| d.contains_key("AWS_SECRET_ACCESS_KEY"))
        })
        .map(|_| ()))
}

/// Writes the access key into the runtime namespace (made here when
/// missing, labelled as the runtime's, which then adopts it).
pub async fn write_keys_secret(
    ctx: &Ctx,
    outputs: &Outputs,
    key_id: &str,
    secret: &str,
) -> Result<(), ProviderError> {
    let client = client(ctx, outputs).await?;
    let ns_name = &ctx.cfg.namespace;
    let mut ns_labels = ownership(ctx);
    ns_labels.insert("howdah.io/component".into(), "namespace".into());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            ns_name,
            &patch_params(),
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns_name, "labels": ns_labels}
            })),
        )
        .await
        .map_err(|e| kube_err("creating the runtime namespace", e))?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secrets: Api<Secret> = Api::namespaced(client, ns_name);
    secrets
        .patch(
            KEYS_SECRET,
            &patch_params(),
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": KEYS_SECRET, "namespace": ns_name, "labels": ownership(ctx)},
                "type": "Opaque",
                "data": {
                    "AWS_ACCESS_KEY_ID": b64(key_id),
                    "AWS_SECRET_ACCESS_KEY": b64(secret),
                }
            })),
        )
        .await
        .map_err(|e| kube_err("writing the keys Secret", e))?;
    Ok(())
}

/// `aws.storage_class`: gp3, encrypted, expandable, bound where the pod
/// lands, the cluster's default; its volumes carry the stack's tags, so
/// the leak scan finds any that outlive the cluster.
pub struct StorageClass {
    ctx: Arc<Ctx>,
}

impl StorageClass {
    pub fn new(ctx: Arc<Ctx>) -> StorageClass {
        StorageClass { ctx }
    }

    fn desired(&self) -> Value {
        let mut params = BTreeMap::from([
            ("type".to_string(), "gp3".to_string()),
            ("encrypted".to_string(), "true".to_string()),
            ("csi.storage.k8s.io/fstype".to_string(), "ext4".to_string()),
        ]);
        for (i, (k, v)) in [
            (tags::STACK, self.ctx.cfg.stack.as_str()),
            (tags::MANAGED, "true"),
        ]
        .iter()
        .enumerate()
        {
            params.insert(format!("tagSpecification_{}", i + 1), format!("{k}={v}"));
        }
        json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS_NAME,
                "labels": ownership(&self.ctx),
                "annotations": {DEFAULT_CLASS: "true"},
            },
            "provisioner": "ebs.csi.aws.com",
            "parameters": params,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer",
            "allowVolumeExpansion": true,
        })
    }

    /// Fields of the live class that differ from the desired one.
    fn drift(&self, live: &K8sStorageClass) -> Vec<FieldChange> {
        let want = self.desired();
        let mut f = Vec::new();
        let live_params = live.parameters.clone().unwrap_or_default();
        for (k, v) in want["parameters"].as_object().into_iter().flatten() {
            let v = v.as_str().unwrap_or_default();
            if live_params.get(k).map(String::as_str) != Some(v) {
                f.push(FieldChange {
                    path: format!("parameters.{k}"),
                    old: live_params.get(k).cloned(),
                    new: Some(v.to_string()),
                });
            }
        }
        let default = live
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_CLASS))
            .cloned();
        if default.as_deref() != Some("true") {
            f.push(FieldChange {
                path: format!("metadata.annotations.{DEFAULT_CLASS}"),
                old: default,
                new: Some("true".into()),
            });
        }
        f
    }
}

#[async_trait]
impl Resource for StorageClass {
    fn id(&self) -> &str {
        ids::STORAGE_CLASS
    }

    fn depends_on(&self) -> Vec<String> {
        vec![ids::CLUSTER.into(), ids::EBS_ADDON.into()]
    }

    fn expected(&self, action: Action) -> Duration {
        match action {
            Action::Keep => Duration::from_millis(200),
            _ => Duration::from_secs(1),
        }
    }

    async fn plan_up(&self, ctx: &StepContext) -> Result<Change, ProviderError> {
        if !Cluster::exists(&self.ctx).await? {
            return Ok(Change::new(
                Action::Create,
                "gp3 default StorageClass: the cluster is new",
            ));
        }
        let api: Api<K8sStorageClass> = Api::all(client(&self.ctx, &ctx.outputs).await?);
        Ok(
            match api
                .get_opt(STORAGE_CLASS_NAME)
                .await
                .map_err(|e| kube_err("reading StorageClass gp3", e))?
            {
                None => Change::new(Action::Create, "StorageClass gp3: not found"),
                Some(live) => {
                    let fields = self.drift(&live);
                    if fields.is_empty() {
                        Change::keep("gp3, the default class")
                    } else {
                        let mut c = Change::new(
                            Action::Update,
                            format!("{} field(s) differ", fields.len()),
                        );
                        c.fields = fields;
                        c
                    }
                }
            },
        )
    }

    async fn plan_down(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        Ok(Change::keep("goes with the cluster"))
    }

    async fn apply(&self, ctx: &StepContext, _change: &Change) -> Result<Value, ProviderError> {
        let api: Api<K8sStorageClass> = Api::all(client(&self.ctx, &ctx.outputs).await?);
        let live = api
            .get_opt(STORAGE_CLASS_NAME)
            .await
            .map_err(|e| kube_err("reading StorageClass gp3", e))?;
        if live.as_ref().is_none_or(|l| !self.drift(l).is_empty()) {
            ctx.progress
                .report("installing StorageClass gp3 as the default");
            api.patch(
                STORAGE_CLASS_NAME,
                &patch_params(),
                &Patch::Apply(self.desired()),
            )
            .await
            .map_err(|e| kube_err("applying StorageClass gp3", e))?;
        }
        // Two default classes make PVCs without a class ambiguous: EKS's
        // own gp2 (default on older clusters) steps aside.
        let classes = api
            .list(&Default::default())
            .await
            .map_err(|e| kube_err("listing StorageClasses", e))?;
        for other in classes.items {
            let name = other.metadata.name.clone().unwrap_or_default();
            let is_default = other
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS))
                .is_some_and(|v| v == "true");
            if name != STORAGE_CLASS_NAME && is_default {
                ctx.progress
                    .report(&format!("StorageClass {name} is no longer the default"));
                api.patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"annotations": {DEFAULT_CLASS: "false"}}})),
                )
                .await
                .map_err(|e| kube_err(&format!("updating StorageClass {name}"), e))?;
            }
        }
        Ok(json!({"name": STORAGE_CLASS_NAME}))
    }

    async fn destroy(&self, _ctx: &StepContext, _change: &Change) -> Result<(), ProviderError> {
        Ok(())
    }
}
