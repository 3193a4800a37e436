//! The Pachyderm runtime on a cluster: render the chart for the stack, read
//! what is live (one list per kind, by ownership label), turn each chart
//! component into a resource the engine can plan, apply, wait on and
//! delete, verify pachd, and find leftovers after `down`.

pub mod chart;
pub mod cluster;
pub mod component;
pub mod diff;
pub mod health;
pub mod inputs;
pub mod pfs;
pub mod teardown;
pub mod values;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use howdah_provider::{Outputs, Provider, ProviderError, Resource};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use chart::Component;
use cluster::{kind_of, stack_selector, ClusterHandle, Kind, ObjectKey, KINDS};
use inputs::{RenderSecrets, SecretText, COMPONENT_LABEL};

use crate::spec::{DataPolicy, Stack};

/// One rendered object with the component it belongs to.
#[derive(Debug, Clone)]
pub struct DesiredObject {
    pub component: Component,
    pub key: ObjectKey,
    pub object: Value,
}

/// What is live of the stack, read once per run.
#[derive(Debug, Default)]
pub struct Live {
    pub objects: BTreeMap<ObjectKey, Value>,
    /// The target has not made the cluster yet: nothing is live, and
    /// nothing may be asked of it.
    pub cluster_absent: bool,
}

impl Live {
    /// Live objects labelled as part of `component`.
    pub fn of_component(&self, component: Component) -> Vec<(&ObjectKey, &Value)> {
        self.objects
            .iter()
            .filter(|(_, o)| {
                o["metadata"]["labels"][COMPONENT_LABEL].as_str() == Some(component.name())
            })
            .collect()
    }
}

/// The runtime of one stack on one cluster.
pub struct Runtime {
    pub stack: Stack,
    pub provider: Arc<dyn Provider>,
    pub cluster: ClusterHandle,
    pub outputs: Outputs,
    /// How long one component may take to become ready.
    pub step_timeout: Duration,
    /// Delete PVCs and retained secrets on `down` (policy delete or --delete-data).
    pub delete_data: bool,
    /// `--allow-downgrade`: a version going back is planned, not refused.
    pub allow_downgrade: bool,
    live: OnceCell<Live>,
    password: OnceCell<SecretText>,
    digest_key: OnceCell<SecretText>,
    deployment_id: OnceCell<SecretText>,
    enterprise: OnceCell<inputs::EnterpriseSecrets>,
    credentials: OnceCell<BTreeMap<String, String>>,
}

impl Runtime {
    pub fn new(
        stack: Stack,
        provider: Arc<dyn Provider>,
        outputs: Outputs,
        step_timeout: Duration,
        delete_data_flag: bool,
        allow_downgrade: bool,
    ) -> Arc<Runtime> {
        let delete_data = delete_data_flag || stack.storage.data_policy == DataPolicy::Delete;
        Arc::new(Runtime {
            cluster: ClusterHandle::new(provider.clone(), outputs.clone()),
            stack,
            provider,
            outputs,
            step_timeout,
            delete_data,
            allow_downgrade,
            live: OnceCell::new(),
            password: OnceCell::new(),
            digest_key: OnceCell::new(),
            deployment_id: OnceCell::new(),
            enterprise: OnceCell::new(),
            credentials: OnceCell::new(),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.stack.pachyderm.namespace
    }

    /// The kinds worth listing for this stack: every kind the chart can
    /// render (whatever the settings, so objects a changed setting no
    /// longer wants are found) plus the claims its StatefulSets make. All
    /// namespaced but the namespace itself, so a user who may only work in
    /// the runtime namespace can still plan and apply.
    pub fn live_kinds() -> Vec<&'static Kind> {
        let wanted = [
            "Namespace",
            "ServiceAccount",
            "Secret",
            "ConfigMap",
            "Service",
            "PersistentVolumeClaim",
            "Deployment",
            "StatefulSet",
            "Ingress",
            "Role",
            "RoleBinding",
        ];
        KINDS.iter().filter(|k| wanted.contains(&k.kind)).collect()
    }

    /// Secrets the stack file names but howdah does not make (bucket
    /// credentials, the external database password, image pull secrets):
    /// each must exist before `up` writes anything, and hold the keys its
    /// readers read, or pods would wait on them forever. Returns one line
    /// per unusable Secret, naming the field, the keys it has (never a
    /// value) and the key wanted.
    pub async fn reference_problems(&self) -> Result<Vec<String>, ProviderError> {
        let p = &self.stack.pachyderm;
        let mut wanted: Vec<SecretReference> = Vec::new();
        if let Some(secret) = self
            .stack
            .storage
            .bucket
            .as_ref()
            .and_then(|b| b.credentials_secret.clone())
        {
            let inputs = self.provider.runtime_inputs(&self.outputs);
            let backend = inputs::storage_values(&self.stack, &inputs).backend;
            wanted.push(SecretReference::new(
                secret,
                "storage.bucket.credentialsSecret",
                inputs::storage_credential_keys(&backend),
            ));
        }
        if let Some(external) = &p.postgres.external {
            wanted.push(SecretReference::new(
                external.password_secret.clone(),
                "pachyderm.postgres.external.passwordSecret",
                POSTGRES_PASSWORD_READERS,
            ));
        }
        for s in &p.image_pull_secrets {
            wanted.push(SecretReference::new(
                s.clone(),
                "pachyderm.imagePullSecrets",
                IMAGE_PULL_READERS,
            ));
        }
        wanted.extend(security_references(p));
        let Some(secret_kind) = cluster::kind_named("Secret") else {
            return Ok(Vec::new());
        };
        let mut problems = Vec::new();
        for reference in wanted {
            let live = self
                .cluster
                .get(secret_kind, Some(self.namespace()), &reference.name)
                .await?;
            if let Some(problem) = reference.problem(live.as_ref(), self.namespace()) {
                problems.push(problem);
            }
        }
        Ok(problems)
    }

    /// What is live, read on first use: one list call per kind.
    pub async fn live(&self) -> Result<&Live, ProviderError> {
        self.live
            .get_or_try_init(|| async {
                if !self.provider.cluster_exists().await? {
                    return Ok(Live {
                        objects: BTreeMap::new(),
                        cluster_absent: true,
                    });
                }
                let selector = stack_selector(&self.stack.name);
                let mut objects = BTreeMap::new();
                for kind in Self::live_kinds() {
                    let ns = kind.namespaced.then(|| self.namespace());
                    for object in self.cluster.list(kind, ns, &selector).await? {
                        objects.insert(ObjectKey::of(&object)?, object);
                    }
                }
                Ok(Live {
                    objects,
                    cluster_absent: false,
                })
            })
            .await
    }

    /// The PostgreSQL password: read back from the live Secret when there
    /// is one (never regenerated, or the database would lock pachd out),
    /// generated once otherwise.
    async fn postgres_password(&self) -> Result<&SecretText, ProviderError> {
        self.password
            .get_or_try_init(|| self.kept_secret("postgres", inputs::POSTGRES_PASSWORD_KEY, 24))
            .await
    }

    /// The stack's key for the storage digest (see [`roll_on_storage_change`]):
    /// read back from the live Secret, generated once otherwise.
    async fn digest_key(&self) -> Result<&SecretText, ProviderError> {
        self.digest_key
            .get_or_try_init(|| self.kept_secret(inputs::STACK_KEY_SECRET, inputs::DIGEST_KEY, 32))
            .await
    }

    /// pachd's CLUSTER_DEPLOYMENT_ID: random per cluster as the chart makes
    /// it (32 alphanumerics), so two clusters of one stack name are told
    /// apart; read back, so it never changes under a running cluster.
    async fn deployment_id(&self) -> Result<&SecretText, ProviderError> {
        self.deployment_id
            .get_or_try_init(|| {
                self.kept_secret(inputs::DEPLOYMENT_ID_SECRET, inputs::DEPLOYMENT_ID_KEY, 32)
            })
            .await
    }

    /// Enterprise's generated secrets, kept like the others (generated at
    /// most once per run); placeholders when enterprise is off (nothing
    /// renders them then).
    async fn enterprise_secrets(&self) -> Result<&inputs::EnterpriseSecrets, ProviderError> {
        self.enterprise
            .get_or_try_init(|| async {
                if self.stack.pachyderm.enterprise.is_none() {
                    return Ok(inputs::EnterpriseSecrets::redacted());
                }
                let kept =
                    |(name, key): (&'static str, &'static str)| self.kept_secret(name, key, 32);
                Ok(inputs::EnterpriseSecrets {
                    enterprise_secret: kept(inputs::ENTERPRISE_SECRET).await?,
                    root_token: kept(inputs::ROOT_TOKEN).await?,
                    pachd_oauth_secret: kept(inputs::PACHD_OAUTH_SECRET).await?,
                    console_oauth_secret: kept(inputs::CONSOLE_OAUTH_SECRET).await?,
                })
            })
            .await
    }

    /// A value howdah generated once and keeps in one of its own Secrets:
    /// the live one's when there is one, a fresh one otherwise.
    async fn kept_secret(
        &self,
        name: &str,
        key: &str,
        length: usize,
    ) -> Result<SecretText, ProviderError> {
        let live = self.live().await?;
        let object = ObjectKey {
            kind: "Secret",
            namespace: Some(self.namespace().to_string()),
            name: name.into(),
        };
        let existing = live.objects.get(&object).and_then(|s| secret_text(s, key));
        Ok(existing
            .map(SecretText::new)
            .unwrap_or_else(|| SecretText::generate_of(length)))
    }

    /// The user's credentials Secret (identity: keys), read once: its data
    /// is copied into pachyderm-storage-secret, where pipeline workers
    /// read it. Empty when the stack names none.
    async fn storage_credentials(&self) -> Result<BTreeMap<String, String>, ProviderError> {
        if let Some(known) = self.credentials.get() {
            return Ok(known.clone());
        }
        let inputs = self.provider.runtime_inputs(&self.outputs);
        let name = inputs::storage_values(&self.stack, &inputs).credentials_secret;
        if name.is_empty() {
            return Ok(BTreeMap::new());
        }
        // A cluster still to be made has no Secret yet (and a target may
        // write it during the run): ask again later, remember nothing.
        if !self.provider.cluster_exists().await? {
            return Ok(BTreeMap::new());
        }
        let kind = cluster::kind_named("Secret")
            .ok_or_else(|| ProviderError::api("Secret is not a known kind"))?;
        let secret = self.cluster.get(kind, Some(self.namespace()), &name).await?.ok_or_else(|| {
            ProviderError::config(format!(
                "Secret `{name}` (storage.bucket.credentialsSecret) does not exist in namespace `{}`",
                self.namespace()
            ))
        })?;
        let data: BTreeMap<String, String> = secret["data"]
            .as_object()
            .map(|data| {
                data.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let _ = self.credentials.set(data.clone());
        Ok(data)
    }

    /// Every object the stack wants, in apply order, with the real secrets.
    pub async fn desired(&self) -> Result<Vec<DesiredObject>, ProviderError> {
        let secrets = RenderSecrets {
            postgres_password: self.postgres_password().await?.clone(),
            digest_key: self.digest_key().await?.clone(),
            deployment_id: self.deployment_id().await?.clone(),
            storage_credentials_b64: self.storage_credentials().await?,
            enterprise: self.enterprise_secrets().await?.clone(),
        };
        let inputs = self.provider.runtime_inputs(&self.outputs);
        render_stack(&self.stack, &inputs, &secrets)
    }
}

/// The text under `key` of a Secret as the API returns it (base64 in
/// `data`); none when absent, empty or not UTF-8.
pub(crate) fn secret_text(secret: &Value, key: &str) -> Option<String> {
    let b64 = secret.get("data")?.get(key)?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes)
        .ok()
        .filter(|text| !text.is_empty())
}

/// The Secrets TLS, the extra CA certificates, the ingress and enterprise
/// name, with the keys their readers read.
fn security_references(p: &crate::spec::Pachyderm) -> Vec<SecretReference> {
    let fixed = |name: &str, field, readers, keys: &[&str]| SecretReference {
        name: name.to_string(),
        field,
        readers,
        all_of: keys.iter().map(|k| vec![k.to_string()]).collect(),
    };
    let mut wanted = Vec::new();
    if let Some(tls) = &p.pachd.tls {
        let keys = ["tls.crt", "tls.key"];
        wanted.push(fixed(
            &tls.secret,
            "pachyderm.pachd.tls.secret",
            "pachd reads",
            &keys,
        ));
    }
    if let Some(secret) = p.ingress.as_ref().and_then(|i| i.tls_secret.as_ref()) {
        let keys = ["tls.crt", "tls.key"];
        let readers = "the ingress controller reads";
        wanted.push(fixed(secret, "pachyderm.ingress.tlsSecret", readers, &keys));
    }
    if let Some(ca) = &p.ca_certificates {
        let readers = "pachd, pachw and the console read";
        let field = "pachyderm.caCertificates.secret";
        wanted.push(fixed(&ca.secret, field, readers, &[ca.key.as_str()]));
    }
    if let Some(e) = &p.enterprise {
        let license = ["enterprise-license-key"];
        let field = "pachyderm.enterprise.licenseSecret";
        wanted.push(fixed(&e.license_secret, field, "pachd reads", &license));
        if let Some(secret) = &e.root_token_secret {
            let field = "pachyderm.enterprise.rootTokenSecret";
            wanted.push(fixed(secret, field, "pachd reads", &["root-token"]));
        }
        if let Some(secret) = &e.upstream_idps_secret {
            let field = "pachyderm.enterprise.upstreamIdpsSecret";
            wanted.push(fixed(secret, field, "pachd reads", &["upstream-idps"]));
        }
        if let Some(secret) = &e.dex_credentials_secret {
            let field = "pachyderm.enterprise.dexCredentialsSecret";
            wanted.push(fixed(secret, field, "pachd mounts", &[]));
        }
    }
    wanted
}

/// A Secret the stack file names, and what its readers read from it.
struct SecretReference {
    name: String,
    /// Where the stack file names it.
    field: &'static str,
    /// Who reads the keys, with the verb ("pachd reads").
    readers: &'static str,
    /// Each group: one of its keys must be there.
    all_of: Vec<Vec<String>>,
}

impl SecretReference {
    fn new(name: impl Into<String>, field: &'static str, keys: inputs::SecretKeys) -> Self {
        SecretReference {
            name: name.into(),
            field,
            readers: keys.readers,
            all_of: keys
                .all_of
                .iter()
                .map(|any_of| any_of.iter().map(|k| k.to_string()).collect())
                .collect(),
        }
    }
}

/// pachd and pg-bouncer read the password from this key.
const POSTGRES_PASSWORD_READERS: inputs::SecretKeys = inputs::SecretKeys {
    readers: "pachd and pg-bouncer read",
    all_of: &[&[inputs::POSTGRES_PASSWORD_KEY]],
};

/// The kubelet reads registry credentials from one of these (the keys of
/// the docker-registry Secret types; `kubectl create secret
/// docker-registry` makes the first).
const IMAGE_PULL_READERS: inputs::SecretKeys = inputs::SecretKeys {
    readers: "the kubelet reads (to pull images)",
    all_of: &[&[".dockerconfigjson", ".dockercfg"]],
};

impl SecretReference {
    /// Why `live` (the Secret as read, or None) cannot serve its readers.
    fn problem(&self, live: Option<&Value>, namespace: &str) -> Option<String> {
        let Some(secret) = live else {
            return Some(format!(
                "Secret `{}` ({}) does not exist in namespace `{namespace}`: create it there first",
                self.name, self.field
            ));
        };
        // The API omits `data` when the Secret holds nothing.
        let has: Vec<&str> = secret["data"]
            .as_object()
            .map(|data| data.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let missing: Vec<String> = self
            .all_of
            .iter()
            .filter(|any_of| !any_of.iter().any(|k| has.contains(&k.as_str())))
            .map(|any_of| {
                any_of
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            })
            .collect();
        if missing.is_empty() {
            return None;
        }
        let has = if has.is_empty() {
            "has no keys".to_string()
        } else {
            let names: Vec<String> = has.iter().map(|k| format!("`{k}`")).collect();
            format!("has keys {}", names.join(", "))
        };
        Some(format!(
            "Secret `{}` ({}) in namespace `{namespace}` {has}, but {} {}: add {} to the Secret",
            self.name,
            self.field,
            self.readers,
            if missing.len() == 1 {
                format!("key {}", missing[0])
            } else {
                format!("keys {}", missing.join(", "))
            },
            if missing.len() == 1 { "it" } else { "them" },
        ))
    }
}

/// Renders the chart for `stack` and stamps ownership on every object.
pub fn render_stack(
    stack: &Stack,
    inputs: &howdah_provider::RuntimeInputs,
    secrets: &RenderSecrets,
) -> Result<Vec<DesiredObject>, ProviderError> {
    let values = inputs::values_for(stack, inputs, secrets);
    let rendered = chart::render(&values)
        .map_err(|e| ProviderError::api(format!("rendering the runtime chart: {e}")))?;
    let mut objects = rendered
        .into_iter()
        .map(|r| {
            let mut object = r.object;
            stamp(&mut object, &stack.name, r.component);
            kind_of(&object)?;
            Ok(DesiredObject {
                component: r.component,
                key: ObjectKey::of(&object)?,
                object,
            })
        })
        .collect::<Result<Vec<_>, ProviderError>>()?;
    roll_on_storage_change(&mut objects, &secrets.digest_key);
    Ok(objects)
}

/// Secrets `down` keeps with retained data: the password the kept
/// database was made with, and the id the kept cluster state belongs to.
pub const KEPT_WITH_DATA: &[&str] = &["postgres", inputs::DEPLOYMENT_ID_SECRET];

/// Annotation on pachd's pods carrying a digest of the storage Secret.
pub const STORAGE_DIGEST_ANNOTATION: &str = "howdah.io/storage-secret-digest";

/// pachd and pachw read the storage Secret as environment, which a running
/// container never sees change: a digest of its data on their pod
/// templates makes a changed bucket or rotated key roll them. The digest is
/// an HMAC-SHA256 under the stack's own random key (kept in the cluster,
/// never printed): an unkeyed hash would let anyone who sees a plan or the
/// pod confirm a guessed key offline.
fn roll_on_storage_change(objects: &mut [DesiredObject], key: &SecretText) {
    use hmac::{Hmac, KeyInit, Mac};
    let Some(data) = objects
        .iter()
        .find(|d| d.key.kind == "Secret" && d.key.name == "pachyderm-storage-secret")
        .map(|d| {
            let sorted: BTreeMap<String, Value> = d.object["data"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            serde_json::to_vec(&sorted).unwrap_or_default()
        })
    else {
        return;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key.expose().as_bytes()) else {
        return;
    };
    mac.update(&data);
    let digest: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect();
    for d in objects.iter_mut() {
        if d.component == Component::Pachd && d.key.kind == "Deployment" {
            if let Some(meta) = d
                .object
                .get_mut("spec")
                .and_then(|s| s.get_mut("template"))
                .and_then(|t| t.get_mut("metadata"))
            {
                if !meta["annotations"].is_object() {
                    meta["annotations"] = json!({});
                }
                meta["annotations"][STORAGE_DIGEST_ANNOTATION] = json!(digest);
            }
        }
    }
}

/// Puts the ownership and component labels on an object and on what its
/// controller makes from it (pods, claims), so reads and the leak scan find
/// them whatever the chart's own labels say.
fn stamp(object: &mut Value, stack: &str, component: Component) {
    let mut labels: BTreeMap<String, String> = inputs::ownership_labels(stack);
    labels.insert(COMPONENT_LABEL.into(), component.name().into());
    let put = |target: &mut Value, labels: &BTreeMap<String, String>| {
        if !target.is_object() {
            *target = json!({});
        }
        for (k, v) in labels {
            target[k] = json!(v);
        }
    };
    put(&mut object["metadata"]["labels"], &labels);
    let own = inputs::ownership_labels(stack);
    // `get_mut`, not indexing: indexing a missing key would add it as null.
    let Some(spec) = object.get_mut("spec") else {
        return;
    };
    if let Some(meta) = spec.get_mut("template").and_then(|t| t.get_mut("metadata")) {
        put(&mut meta["labels"], &own);
    }
    if let Some(templates) = spec
        .get_mut("volumeClaimTemplates")
        .and_then(Value::as_array_mut)
    {
        for t in templates {
            put(&mut t["metadata"]["labels"], &own);
        }
    }
}

/// The dependencies of each component's step on `up`.
pub fn up_deps(component: Component) -> &'static [Component] {
    use Component::*;
    match component {
        Namespace => &[],
        Rbac | Storage | Postgres | Etcd => &[Namespace],
        PgBouncer => &[Postgres],
        Pachd => &[Rbac, Storage, Etcd, PgBouncer],
        Console => &[Pachd],
        // Envoy starts without its backends; after pachd so the routes it
        // is asked through lead somewhere soon.
        Proxy => &[Pachd],
    }
}

/// How long each component usually takes to apply and become ready.
pub fn expected(component: Component) -> Duration {
    use Component::*;
    Duration::from_secs(match component {
        Namespace | Storage => 1,
        Rbac => 2,
        Postgres => 60,
        Etcd => 45,
        PgBouncer => 20,
        Pachd => 90,
        Console => 30,
        Proxy => 10,
    })
}

/// Step id of a component.
pub fn step_id(component: Component) -> String {
    format!("runtime.{}", component.name())
}

/// The id of the verification step.
pub const VERIFY_ID: &str = "runtime.verify";

/// The resources `up` plans and applies, after `cluster_ready` on a cloud;
/// `verify: false` (`up --no-verify`) keeps the verification step but has
/// it ask nothing and record that it was skipped.
pub fn up_resources(
    rt: &Arc<Runtime>,
    cluster_ready: &[String],
    verify: bool,
) -> Vec<Arc<dyn Resource>> {
    let mut out: Vec<Arc<dyn Resource>> = Vec::new();
    for c in Component::ALL {
        let mut deps: Vec<String> = up_deps(c).iter().map(|d| step_id(*d)).collect();
        if c == Component::Namespace {
            deps.extend(cluster_ready.iter().cloned());
        }
        out.push(Arc::new(component::ComponentStep::new(rt.clone(), c, deps)));
    }
    out.push(Arc::new(component::Verify {
        rt: rt.clone(),
        enabled: verify,
    }));
    out
}

/// The resources `down` plans and destroys, in teardown order.
pub fn down_resources(rt: &Arc<Runtime>) -> Vec<Arc<dyn Resource>> {
    use Component::*;
    let id = |c: Component| step_id(c);
    let mut out: Vec<Arc<dyn Resource>> = vec![
        Arc::new(teardown::LoadBalancers { rt: rt.clone() }),
        Arc::new(component::ComponentStep::new(rt.clone(), Console, vec![])),
        Arc::new(component::ComponentStep::new(
            rt.clone(),
            Proxy,
            vec![teardown::LOAD_BALANCERS_ID.into()],
        )),
        Arc::new(component::ComponentStep::new(
            rt.clone(),
            Pachd,
            vec![id(Console), id(Proxy), teardown::LOAD_BALANCERS_ID.into()],
        )),
        Arc::new(teardown::Workers { rt: rt.clone() }),
        Arc::new(component::ComponentStep::new(
            rt.clone(),
            PgBouncer,
            vec![id(Pachd)],
        )),
        Arc::new(component::ComponentStep::new(
            rt.clone(),
            Etcd,
            vec![id(Pachd)],
        )),
        Arc::new(component::ComponentStep::new(
            rt.clone(),
            Postgres,
            vec![id(PgBouncer)],
        )),
        Arc::new(component::ComponentStep::new(
            rt.clone(),
            Storage,
            vec![id(Pachd), teardown::WORKERS_ID.into()],
        )),
        Arc::new(component::ComponentStep::new(
            rt.clone(),
            Rbac,
            vec![id(Pachd), teardown::WORKERS_ID.into()],
        )),
        Arc::new(teardown::Volumes { rt: rt.clone() }),
    ];
    let all: BTreeSet<String> = out.iter().map(|r| r.id().to_string()).collect();
    out.push(Arc::new(component::ComponentStep::new(
        rt.clone(),
        Namespace,
        all.into_iter().collect(),
    )));
    out
}

#[cfg(test)]
mod security_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// The objects a stack file's text renders to, secrets redacted.
    pub(super) fn rendered(text: &str) -> Vec<DesiredObject> {
        let stack = crate::spec::parse("t.yaml", text).unwrap_or_else(|e| panic!("{e}"));
        render_stack(
            &stack,
            &howdah_provider::RuntimeInputs::default(),
            &RenderSecrets::redacted(),
        )
        .expect("renders")
    }

    /// The rendered object of `kind` named `name`; the test fails without it.
    pub(super) fn rendered_object(objects: &[DesiredObject], kind: &str, name: &str) -> Value {
        objects
            .iter()
            .find(|o| o.key.kind == kind && o.key.name == name)
            .map(|o| o.object.clone())
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    #[test]
    fn every_kind_the_chart_renders_is_read_back() {
        let stack = crate::spec::parse(
            "t.yaml",
            "name: t\ntarget:\n  kubeconfig: {}\npachyderm:\n  pachd:\n    serviceType: LoadBalancer\n",
        )
        .expect("valid stack");
        let objects = render_stack(
            &stack,
            &howdah_provider::RuntimeInputs::default(),
            &RenderSecrets::redacted(),
        )
        .expect("renders");
        let listed: Vec<&str> = Runtime::live_kinds().iter().map(|k| k.kind).collect();
        for o in &objects {
            assert!(
                listed.contains(&o.key.kind),
                "{} is rendered but never read back",
                o.key
            );
            assert_eq!(
                o.object["metadata"]["labels"][COMPONENT_LABEL],
                o.component.name()
            );
        }
        assert!(objects.len() >= 20);
    }

    /// The digest on pachd's pod template is keyed by the stack's own
    /// secret: it changes with the storage Secret, stays with the same key,
    /// and is not the plain hash anyone could compute from a guessed key.
    #[test]
    fn the_storage_digest_is_keyed_by_the_stacks_secret() {
        use base64::Engine as _;
        use sha2::Digest as _;
        let stack = crate::spec::parse(
            "t.yaml",
            "name: t\ntarget:\n  kubeconfig: {}\nstorage:\n  bucket:\n    \
             url: s3://data?region=us-east-1\n    credentialsSecret: keys\n\
             pachyderm:\n  identity: keys\n",
        )
        .expect("valid stack");
        let render = |key: &str, secret_key: &str| {
            let secrets = RenderSecrets {
                digest_key: SecretText::new(key.into()),
                storage_credentials_b64: BTreeMap::from([(
                    "AWS_SECRET_ACCESS_KEY".to_string(),
                    base64::engine::general_purpose::STANDARD.encode(secret_key),
                )]),
                ..RenderSecrets::redacted()
            };
            let objects =
                render_stack(&stack, &howdah_provider::RuntimeInputs::default(), &secrets)
                    .expect("renders");
            let pachd = objects
                .iter()
                .find(|o| o.key.kind == "Deployment" && o.key.name == "pachd")
                .expect("pachd");
            let digest = pachd.object["spec"]["template"]["metadata"]["annotations"]
                [STORAGE_DIGEST_ANNOTATION]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let data = objects
                .iter()
                .find(|o| o.key.name == "pachyderm-storage-secret")
                .map(|o| o.object["data"].clone())
                .expect("storage secret");
            let sorted: BTreeMap<String, Value> = data
                .as_object()
                .map(|m| m.clone().into_iter().collect())
                .unwrap_or_default();
            let plain: String = sha2::Sha256::digest(serde_json::to_vec(&sorted).unwrap())
                .iter()
                .take(12)
                .map(|b| format!("{b:02x}"))
                .collect();
            (digest, plain)
        };
        let (first, plain) = render("stack-key-1", "guessable");
        assert_eq!(first.len(), 24, "{first}");
        assert_ne!(first, plain, "the digest is the unkeyed hash of the Secret");
        assert_eq!(render("stack-key-1", "guessable").0, first);
        assert_ne!(render("stack-key-2", "guessable").0, first);
        assert_ne!(render("stack-key-1", "rotated").0, first);
    }

    /// pg-bouncer's client limit and pachd's deployment id as the official
    /// chart sets them: 100000 connections; the id from a Secret of random
    /// text, not a value derived from the stack's name.
    #[test]
    fn pg_bouncer_and_the_deployment_id_follow_the_chart() {
        use base64::Engine as _;
        let stack = crate::spec::parse("t.yaml", "name: t\ntarget:\n  kubeconfig: {}\n")
            .expect("valid stack");
        let secrets = RenderSecrets {
            deployment_id: SecretText::generate_of(32),
            ..RenderSecrets::redacted()
        };
        let objects = render_stack(&stack, &howdah_provider::RuntimeInputs::default(), &secrets)
            .expect("renders");
        let find = |kind: &str, name: &str| rendered_object(&objects, kind, name);
        let env = |deployment: &Value| -> Vec<Value> {
            deployment["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        let bouncer = find("Deployment", "pg-bouncer");
        let max = env(&bouncer)
            .into_iter()
            .find(|e| e["name"] == "PGBOUNCER_MAX_CLIENT_CONN")
            .map(|e| e["value"].clone());
        assert_eq!(max, Some(json!("100000")));

        for name in ["pachd", "pachw"] {
            let deployment = find("Deployment", name);
            assert!(
                env(&deployment)
                    .iter()
                    .all(|e| e["name"] != "CLUSTER_DEPLOYMENT_ID"),
                "{name} has a fixed CLUSTER_DEPLOYMENT_ID"
            );
            let from = &deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"];
            assert!(
                from.as_array().is_some_and(|f| f
                    .iter()
                    .any(|s| s["secretRef"]["name"] == inputs::DEPLOYMENT_ID_SECRET)),
                "{name}: {from}"
            );
        }
        let secret = find("Secret", inputs::DEPLOYMENT_ID_SECRET);
        let id = secret["data"][inputs::DEPLOYMENT_ID_KEY]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .unwrap_or_default();
        assert_eq!(id, secrets.deployment_id.expose().as_bytes());
        assert_eq!(id.len(), 32);
    }

    /// Workload identity on the kubeconfig target: the typed settings land
    /// where EKS, GKE and AKS read them, on both service accounts, and
    /// AKS's pod label on pachd and pachw only.
    #[test]
    fn identity_settings_annotate_both_service_accounts() {
        let objects = rendered(
            "name: t\ntarget:\n  kubeconfig: {}\nstorage:\n  bucket:\n    \
             url: s3://data?region=eu-west-1\npachyderm:\n  serviceAccounts:\n    \
             awsRoleArn: arn:aws:iam::123456789012:role/pach\n    \
             gcpServiceAccount: pach-data@proj.iam.gserviceaccount.com\n    \
             azureClientId: 0a1b2c3d-0000-4000-8000-00000000abcd\n    \
             annotations: {example.com/owner: data}\n",
        );
        let find = |kind: &str, name: &str| rendered_object(&objects, kind, name);
        for account in ["pachyderm", "pachyderm-worker"] {
            let annotations = &find("ServiceAccount", account)["metadata"]["annotations"];
            for (key, value) in [
                (
                    "eks.amazonaws.com/role-arn",
                    "arn:aws:iam::123456789012:role/pach",
                ),
                (
                    "iam.gke.io/gcp-service-account",
                    "pach-data@proj.iam.gserviceaccount.com",
                ),
                (
                    "azure.workload.identity/client-id",
                    "0a1b2c3d-0000-4000-8000-00000000abcd",
                ),
                ("example.com/owner", "data"),
            ] {
                assert_eq!(annotations[key], json!(value), "{account}: {annotations}");
            }
        }
        for (kind, name, labelled) in [
            ("Deployment", "pachd", true),
            ("Deployment", "pachw", true),
            ("StatefulSet", "etcd", false),
        ] {
            let labels = &find(kind, name)["spec"]["template"]["metadata"]["labels"];
            let wanted = if labelled { json!("true") } else { Value::Null };
            assert_eq!(labels[inputs::AZURE_USE_LABEL], wanted, "{name}: {labels}");
        }
    }

    #[test]
    fn a_referenced_secret_is_usable_with_any_one_of_the_keys_its_reader_takes() {
        let pull = SecretReference::new("mirror", "pachyderm.imagePullSecrets", IMAGE_PULL_READERS);
        let with = |data: Value| json!({"metadata": {"name": "mirror"}, "data": data});
        assert_eq!(
            pull.problem(Some(&with(json!({".dockercfg": "e30="}))), "ns"),
            None
        );
        let wrong = pull
            .problem(Some(&with(json!({"config.json": "c2VjcmV0"}))), "ns")
            .expect("unusable");
        assert!(
            wrong.contains("`config.json`")
                && wrong.contains("`.dockerconfigjson` or `.dockercfg`"),
            "{wrong}"
        );
        assert!(!wrong.contains("c2VjcmV0"), "a value leaked: {wrong}");
        let missing = pull.problem(None, "ns").expect("missing");
        assert!(
            missing.contains("does not exist in namespace `ns`"),
            "{missing}"
        );
    }

    /// Chart settings users rely on, rendered where the chart puts them:
    /// `spec.template.spec.priorityClassName` (per workload over the
    /// stack-wide default), pachd's PACHW_MIN/MAX_REPLICAS, and Prometheus
    /// scrape annotations on Service/pachd with metrics on.
    #[test]
    fn scheduling_pachw_and_metrics_settings_render_as_the_chart_does() {
        let objects = rendered(
            "name: t\ntarget:\n  kubeconfig: {}\npachyderm:\n  priorityClassName: data-low\n  \
             etcd:\n    priorityClassName: data-critical\n  pachd:\n    metrics: true\n    \
             pachw: {minReplicas: 1, maxReplicas: 6}\n",
        );
        let find = |kind: &str, name: &str| rendered_object(&objects, kind, name);
        let class = |kind: &str, name: &str| {
            find(kind, name)["spec"]["template"]["spec"]["priorityClassName"].clone()
        };
        assert_eq!(class("StatefulSet", "etcd"), json!("data-critical"));
        for (kind, name) in [
            ("Deployment", "pachd"),
            ("Deployment", "pachw"),
            ("Deployment", "pg-bouncer"),
            ("StatefulSet", "postgres"),
        ] {
            assert_eq!(class(kind, name), json!("data-low"), "{name}");
        }
        let pachd = find("Deployment", "pachd");
        let env = pachd["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let value = |name: &str| {
            env.iter()
                .find(|e| e["name"] == name)
                .map(|e| e["value"].clone())
        };
        assert_eq!(value("PACHW_MIN_REPLICAS"), Some(json!("1")));
        assert_eq!(value("PACHW_MAX_REPLICAS"), Some(json!("6")));
        let annotations = &find("Service", "pachd")["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], json!("true"));
        assert_eq!(annotations["prometheus.io/port"], json!("1656"));

        let objects = rendered("name: t\ntarget:\n  kubeconfig: {}\n");
        let service = rendered_object(&objects, "Service", "pachd");
        assert!(service["metadata"]["annotations"]["prometheus.io/scrape"].is_null());
        let pachd = rendered_object(&objects, "Deployment", "pachd");
        assert!(pachd["spec"]["template"]["spec"]["priorityClassName"].is_null());
    }

    /// PostgreSQL gets the requests the official chart's PostgreSQL has
    /// (StatefulSet/postgres spec.template.spec.containers[0].resources)
    /// unless the stack file sets its own, which replace them whole.
    #[test]
    fn postgres_has_the_charts_requests_unless_the_stack_file_sets_resources() {
        let resources = |yaml: &str| {
            let objects = rendered(yaml);
            rendered_object(&objects, "StatefulSet", "postgres")["spec"]["template"]["spec"]
                ["containers"][0]["resources"]
                .clone()
        };
        assert_eq!(
            resources("name: t\ntarget:\n  kubeconfig: {}\n"),
            json!({"requests": {"cpu": "250m", "memory": "256Mi"}})
        );
        assert_eq!(
            resources(
                "name: t\ntarget:\n  kubeconfig: {}\npachyderm:\n  postgres:\n    \
                 resources: {limits: {memory: 2Gi}}\n"
            ),
            json!({"limits": {"memory": "2Gi"}})
        );
    }

    /// `affinity` and `podLabels` as the chart renders them: the affinity
    /// at spec.template.spec.affinity and the labels in
    /// spec.template.metadata.labels of every workload (a component's own
    /// over the `pachyderm` default; pachw follows pachd), never in a
    /// selector; `serviceLabels` in metadata.labels of the component's
    /// Service only.
    #[test]
    fn affinity_pod_labels_and_service_labels_render_as_the_chart_does() {
        let objects = rendered(
            "name: t\ntarget:\n  kubeconfig: {}\npachyderm:\n  podLabels: {team: ml}\n  \
             affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        \
             nodeSelectorTerms:\n        - matchExpressions: [{key: pool, operator: In, values: [data]}]\n  \
             etcd:\n    podLabels: {tier: metadata}\n    serviceLabels: {tier: metadata}\n    \
             affinity:\n      podAntiAffinity:\n        requiredDuringSchedulingIgnoredDuringExecution:\n        \
             - {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: etcd}}}\n",
        );
        let find = |kind: &str, name: &str| rendered_object(&objects, kind, name);
        let default_affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["data"]}]}]}}});
        let etcd = find("StatefulSet", "etcd");
        assert_eq!(
            etcd["spec"]["template"]["spec"]["affinity"],
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                [{"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "etcd"}}}]}})
        );
        let etcd_labels = &etcd["spec"]["template"]["metadata"]["labels"];
        assert_eq!(etcd_labels["tier"], json!("metadata"));
        assert!(
            etcd_labels["team"].is_null(),
            "etcd's own podLabels replace the default"
        );
        assert_eq!(etcd_labels["app"], json!("etcd"));
        for (kind, name) in [
            ("Deployment", "pachd"),
            ("Deployment", "pachw"),
            ("Deployment", "pg-bouncer"),
            ("StatefulSet", "postgres"),
            ("Deployment", "console"),
            ("Deployment", "pachyderm-proxy"),
        ] {
            let object = find(kind, name);
            assert_eq!(
                object["spec"]["template"]["spec"]["affinity"], default_affinity,
                "{name}"
            );
            assert_eq!(
                object["spec"]["template"]["metadata"]["labels"]["team"],
                json!("ml"),
                "{name}"
            );
            assert!(
                object["spec"]["selector"]["matchLabels"]["team"].is_null(),
                "{name}"
            );
        }
        assert!(etcd["spec"]["selector"]["matchLabels"]["tier"].is_null());
        assert_eq!(
            find("Service", "etcd")["metadata"]["labels"]["tier"],
            json!("metadata")
        );
        assert_eq!(
            find("Service", "etcd")["metadata"]["labels"]["app"],
            json!("etcd")
        );
        assert!(find("Service", "etcd")["spec"]["selector"]["tier"].is_null());
        assert!(find("Service", "etcd-headless")["metadata"]["labels"]["tier"].is_null());
        assert!(find("Service", "pachd")["metadata"]["labels"]["tier"].is_null());

        let objects = rendered("name: t\ntarget:\n  kubeconfig: {}\n");
        let affinity = |kind: &str, name: &str| {
            rendered_object(&objects, kind, name)["spec"]["template"]["spec"]["affinity"].clone()
        };
        assert!(affinity("Deployment", "pachd").is_null());
        // Without one, the chart's own: the proxy near pachd, PostgreSQL
        // pods apart (Bitnami's soft anti-affinity).
        assert_eq!(
            affinity("Deployment", "pachyderm-proxy")["podAffinity"]
                ["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
                ["labelSelector"],
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["pachd"]}]})
        );
        let postgres = affinity("StatefulSet", "postgres");
        let term =
            &postgres["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
        assert_eq!(term["weight"], json!(1));
        assert_eq!(
            term["podAffinityTerm"]["labelSelector"]["matchLabels"]["app"],
            json!("postgres")
        );
        assert_eq!(
            term["podAffinityTerm"]["topologyKey"],
            json!("kubernetes.io/hostname")
        );
    }

    /// `outboundProxy` becomes the env the chart's `global.proxy` and
    /// `global.noProxy` give: http_proxy, https_proxy, HTTP_PROXY,
    /// HTTPS_PROXY, no_proxy, NO_PROXY in
    /// spec.template.spec.containers[0].env of Deployment/pachd and
    /// Deployment/console, httpsProxy defaulting to httpProxy; pachw does
    /// not get them in the chart either.
    #[test]
    fn outbound_proxy_env_is_on_pachd_and_the_console_as_the_chart_sets_it() {
        let objects = rendered(
            "name: t\ntarget:\n  kubeconfig: {}\npachyderm:\n  outboundProxy:\n    \
             httpProxy: http://proxy.corp:3128\n    noProxy: .svc,10.0.0.0/8\n",
        );
        let proxy_env = |name: &str| -> Vec<(String, String)> {
            let object = rendered_object(&objects, "Deployment", name);
            object["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| {
                    e["name"]
                        .as_str()
                        .is_some_and(|n| n.to_lowercase().ends_with("_proxy"))
                })
                .map(|e| {
                    (
                        e["name"].as_str().unwrap_or_default().to_string(),
                        e["value"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        };
        let want: Vec<(String, String)> = [
            ("http_proxy", "http://proxy.corp:3128"),
            ("https_proxy", "http://proxy.corp:3128"),
            ("HTTP_PROXY", "http://proxy.corp:3128"),
            ("HTTPS_PROXY", "http://proxy.corp:3128"),
            ("no_proxy", ".svc,10.0.0.0/8"),
            ("NO_PROXY", ".svc,10.0.0.0/8"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(proxy_env("pachd"), want);
        assert_eq!(proxy_env("console"), want);
        assert!(proxy_env("pachw").is_empty());

        let objects = rendered("name: t\ntarget:\n  kubeconfig: {}\n");
        let pachd = rendered_object(&objects, "Deployment", "pachd");
        let names: Vec<&str> = pachd["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert!(
            !names.iter().any(|n| n.to_lowercase().ends_with("_proxy")),
            "{names:?}"
        );
    }
}
