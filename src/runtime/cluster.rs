//! Talking to the cluster: a lazily built client, the kinds the runtime
//! manages, and the few calls it makes (list by ownership label, get,
//! server-side apply, delete), with Kubernetes errors mapped to the engine's
//! retryable / fail-fast split.

use std::sync::Arc;
use std::time::Duration;

use howdah_provider::wait::{retry, Backoff};
use howdah_provider::{Outputs, Provider, ProviderError};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use serde_json::Value;
use tokio::sync::OnceCell;

/// The field manager every apply uses, so ownership is one name.
pub const FIELD_MANAGER: &str = "howdah";
/// Label naming the stack an object belongs to.
pub const STACK_LABEL: &str = "howdah.io/stack";
/// Label marking an object as made by howdah.
pub const MANAGED_LABEL: &str = "howdah.io/managed";

/// A kind the runtime creates or cleans up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

impl Kind {
    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group, self.version, self.kind),
            self.plural,
        )
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const fn kind(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> Kind {
    Kind {
        group,
        version,
        kind,
        plural,
        namespaced,
    }
}

/// Every kind the chart renders or the runtime leaves behind, in the order
/// a leak scan reports them.
pub const KINDS: &[Kind] = &[
    kind("", "v1", "Namespace", "namespaces", false),
    kind("", "v1", "ServiceAccount", "serviceaccounts", true),
    kind("", "v1", "Secret", "secrets", true),
    kind("", "v1", "ConfigMap", "configmaps", true),
    kind("", "v1", "Service", "services", true),
    kind(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    kind("", "v1", "Pod", "pods", true),
    kind(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        true,
    ),
    kind("apps", "v1", "Deployment", "deployments", true),
    kind("apps", "v1", "StatefulSet", "statefulsets", true),
    kind("networking.k8s.io", "v1", "Ingress", "ingresses", true),
    kind("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    kind(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    kind(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    kind(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    kind(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    kind(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
    ),
];

/// PersistentVolumes are the cluster's, not the stack's (nothing of howdah
/// labels them): read only to follow the stack's claims to their volumes.
pub const PERSISTENT_VOLUME: Kind = kind("", "v1", "PersistentVolume", "persistentvolumes", false);

/// The kind of an object by its apiVersion and kind. Fails closed: an
/// object without them, or of a kind not in [`KINDS`], is refused with its
/// name, never guessed at.
pub fn kind_of(object: &Value) -> Result<Kind, ProviderError> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind_name = object["kind"].as_str().unwrap_or_default();
    KINDS
        .iter()
        .find(|k| k.kind == kind_name && k.api_version() == api_version)
        .copied()
        .ok_or_else(|| {
            let meta = &object["metadata"];
            let name = match (meta["namespace"].as_str(), meta["name"].as_str()) {
                (Some(ns), Some(n)) => format!("`{ns}/{n}`"),
                (None, Some(n)) => format!("`{n}`"),
                _ => "an unnamed object".to_string(),
            };
            if api_version.is_empty() || kind_name.is_empty() {
                ProviderError::api(format!(
                    "{name} came without apiVersion/kind, so howdah cannot tell what it is"
                ))
            } else {
                ProviderError::api(format!(
                    "{name} is a {api_version} {kind_name}, which howdah does not manage"
                ))
            }
        })
}

/// `object` with the apiVersion and kind of `kind`. A real API server
/// leaves both off the items of a list (only the list says what they are),
/// so everything read is stamped with the kind it was read as.
pub fn typed(kind: &Kind, mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(kind.api_version()));
        map.insert("kind".into(), Value::String(kind.kind.to_string()));
    }
    object
}

/// Where an object lives, for messages and lookups.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: &'static str,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    pub fn of(object: &Value) -> Result<ObjectKey, ProviderError> {
        let k = kind_of(object)?;
        Ok(ObjectKey {
            kind: k.kind,
            namespace: if k.namespaced {
                object["metadata"]["namespace"].as_str().map(str::to_string)
            } else {
                None
            },
            name: object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// Maps a client error: throttling, server errors and broken connections
/// are worth retrying; the rest is the API saying no, passed on verbatim.
pub fn map_err(context: &str, e: kube::Error) -> ProviderError {
    match &e {
        // A v1.26 server answers an apply carrying a field its schema does
        // not declare with a bare 500 (kube-recordings 20-probes seq 33-37):
        // no retry will change that, so say what it means.
        kube::Error::Api(status)
            if status.code == 500 && status.message.contains("field not declared in schema") =>
        {
            ProviderError::api(format!(
                "{context}: the API server does not know a field howdah sets ({}); is the cluster's Kubernetes older than the version this Pachyderm release needs?",
                status.message
            ))
        }
        kube::Error::Api(status) => {
            let retry = status.code == 429 || status.code >= 500;
            let message = format!(
                "{context}: {} ({}{})",
                status.message,
                status.code,
                if status.reason.is_empty() {
                    String::new()
                } else {
                    format!(" {}", status.reason)
                }
            );
            if retry {
                ProviderError::retryable(message)
            } else {
                ProviderError::api(message)
            }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            ProviderError::retryable(format!("{context}: {e}"))
        }
        _ => ProviderError::api(format!("{context}: {e}")),
    }
}

/// A client that is built the first time something needs the cluster (on a
/// cloud target, only after the cluster exists).
#[derive(Clone)]
pub struct ClusterHandle {
    provider: Arc<dyn Provider>,
    outputs: Outputs,
    client: Arc<OnceCell<Client>>,
}

impl ClusterHandle {
    pub fn new(provider: Arc<dyn Provider>, outputs: Outputs) -> ClusterHandle {
        ClusterHandle {
            provider,
            outputs,
            client: Arc::new(OnceCell::new()),
        }
    }

    pub async fn client(&self) -> Result<Client, ProviderError> {
        self.client
            .get_or_try_init(|| async {
                let mut config = self.provider.kube_config(&self.outputs).await?;
                // kube's default is 30 s per attempt, and calls are retried.
                config.connect_timeout = Some(CONNECT_TIMEOUT);
                Client::try_from(config).map_err(|e| {
                    ProviderError::config(format!("cannot build a Kubernetes client: {e}"))
                })
            })
            .await
            .cloned()
    }

    /// The API for `kind` in `namespace` (ignored for cluster-scoped kinds);
    /// `None` namespace on a namespaced kind means all namespaces.
    pub async fn api(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
    ) -> Result<Api<DynamicObject>, ProviderError> {
        let client = self.client().await?;
        let ar = kind.api_resource();
        Ok(match (kind.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(client, ns, &ar),
            _ => Api::all_with(client, &ar),
        })
    }

    /// Objects of `kind` carrying `selector`, as JSON.
    pub async fn list(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        selector: &str,
    ) -> Result<Vec<Value>, ProviderError> {
        let api = self.api(kind, namespace).await?;
        let list = api
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| map_err(&format!("listing {}", kind.plural), e))?;
        list.items
            .into_iter()
            .map(|o| to_json(o).map(|v| typed(kind, v)))
            .collect()
    }

    /// One object, or None if it does not exist.
    pub async fn get(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ProviderError> {
        let api = self.api(kind, namespace).await?;
        match api.get_opt(name).await {
            Ok(Some(o)) => to_json(o).map(|v| Some(typed(kind, v))),
            Ok(None) => Ok(None),
            Err(e) => Err(map_err(&format!("reading {}/{name}", kind.kind), e)),
        }
    }

    /// Server-side apply under howdah's field manager, forcing ownership of
    /// the fields howdah sets (the stack file is the source of truth).
    pub async fn apply(&self, object: &Value) -> Result<Value, ProviderError> {
        let kind = kind_of(object)?;
        let key = ObjectKey::of(object)?;
        let api = self.api(&kind, key.namespace.as_deref()).await?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = with_retries(|| async {
            api.patch(&key.name, &params, &Patch::Apply(object))
                .await
                .map_err(|e| map_err(&format!("applying {key}"), e))
        })
        .await?;
        to_json(applied).map(|v| typed(&kind, v))
    }

    /// Deletes an object in the foreground (it disappears only after what
    /// its controller made, such as pods, is gone); gone already counts as
    /// done. Returns whether a delete request was accepted.
    pub async fn delete(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<bool, ProviderError> {
        self.delete_with(kind, namespace, name, &DeleteParams::foreground())
            .await
    }

    /// Deletes an object but leaves what its controller made (a
    /// StatefulSet's pods keep running, for a new StatefulSet to adopt).
    pub async fn delete_orphaning(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<bool, ProviderError> {
        self.delete_with(kind, namespace, name, &DeleteParams::orphan())
            .await
    }

    async fn delete_with(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
        params: &DeleteParams,
    ) -> Result<bool, ProviderError> {
        let api = self.api(kind, namespace).await?;
        with_retries(|| async {
            match api.delete(name, params).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
                Err(e) => Err(map_err(&format!("deleting {}/{name}", kind.kind), e)),
            }
        })
        .await
    }

    /// Read, change, write back: `edit` changes the live object (returning
    /// false when there is nothing to change), and a PUT guarded by the
    /// resourceVersion it read writes it back, so what `edit` removed is
    /// really gone (server-side apply never removes fields another manager
    /// owns). A 409 Conflict (someone wrote in between) reads again.
    /// Returns whether anything was written.
    pub async fn replace_with(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
        mut edit: impl FnMut(&mut Value) -> bool,
    ) -> Result<bool, ProviderError> {
        let api = self.api(kind, namespace).await?;
        let params = kube::api::PostParams {
            dry_run: false,
            field_manager: Some(FIELD_MANAGER.to_string()),
        };
        for _ in 0..5 {
            let Some(mut live) = self.get(kind, namespace, name).await? else {
                return Ok(false);
            };
            if !edit(&mut live) {
                return Ok(false);
            }
            // Left out, the server keeps the managed fields as they are and
            // drops what was removed from every manager's set.
            if let Some(meta) = live["metadata"].as_object_mut() {
                meta.remove("managedFields");
            }
            let object: DynamicObject = serde_json::from_value(live)
                .map_err(|e| ProviderError::api(format!("unreadable object: {e}")))?;
            let written = with_retries(|| async {
                match api.replace(name, &params, &object).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(map_err(&format!("replacing {}/{name}", kind.kind), e)),
                }
            })
            .await?;
            if written {
                return Ok(true);
            }
        }
        Err(ProviderError::retryable(format!(
            "{}/{name} kept changing while howdah tried to write it (409 Conflict five times)",
            kind.kind
        )))
    }

    /// A JSON merge patch (RFC 7386) on a live object howdah does not
    /// apply itself, such as a claim a StatefulSet made.
    pub async fn merge_patch(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ProviderError> {
        let api = self.api(kind, namespace).await?;
        let patched = with_retries(|| async {
            api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(|e| map_err(&format!("patching {}/{name}", kind.kind), e))
        })
        .await?;
        to_json(patched).map(|v| typed(kind, v))
    }
}

/// How long opening one connection to the API server may take (TCP and
/// TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One API call, retried with backoff while the server throttles (429),
/// fails (5xx) or drops the connection. Every call here is idempotent
/// (reads, server-side apply, delete), so retrying cannot double an effect.
pub async fn with_retries<T, F, Fut>(call: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    retry(
        6,
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(8),
            jitter: 0.3,
        },
        call,
    )
    .await
}

fn to_json(object: DynamicObject) -> Result<Value, ProviderError> {
    serde_json::to_value(object).map_err(|e| ProviderError::api(format!("unreadable object: {e}")))
}

/// The selector matching everything of one stack.
pub fn stack_selector(stack: &str) -> String {
    format!("{STACK_LABEL}={stack},{MANAGED_LABEL}=true")
}

/// Whether a live object belongs to `stack`.
pub fn owned_by(object: &Value, stack: &str) -> bool {
    let labels = &object["metadata"]["labels"];
    labels[STACK_LABEL].as_str() == Some(stack) && labels[MANAGED_LABEL].as_str() == Some("true")
}

pub fn kind_named(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.kind == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A list item as a real API server sends it (kube-recordings
    /// 02-up-fresh seq 59): no apiVersion, no kind.
    fn list_item() -> Value {
        json!({"metadata": {"name": "pachd", "namespace": "pachyderm"}, "spec": {}})
    }

    #[test]
    fn an_object_without_kind_is_refused_by_name_not_blamed_on_the_chart() {
        let err = kind_of(&list_item()).unwrap_err().to_string();
        assert!(err.contains("`pachyderm/pachd`"), "{err}");
        assert!(err.contains("without apiVersion/kind"), "{err}");
        assert!(!err.contains("chart"), "{err}");
        let foreign = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}});
        let err = kind_of(&foreign).unwrap_err().to_string();
        assert!(err.contains("batch/v1 Job"), "{err}");
    }

    #[test]
    fn an_undeclared_field_is_not_retried() {
        // The body of kube-recordings 20-probes seq 33.
        let status = kube::core::Status::failure(
            "failed to create typed patch object (/v1, Kind=ConfigMap): .bogus: field not declared in schema",
            "",
        )
        .with_code(500);
        let e = map_err("applying ConfigMap/x", kube::Error::Api(status.into()));
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("does not know a field"), "{e}");
        let busy = kube::core::Status::failure("etcdserver: request timed out", "").with_code(500);
        assert!(map_err("x", kube::Error::Api(busy.into())).is_retryable());
    }

    #[test]
    fn an_item_read_as_a_kind_is_keyed_as_that_kind() {
        let deployment = kind_named("Deployment").expect("known");
        let item = typed(deployment, list_item());
        let key = ObjectKey::of(&item).expect("typed item has a key");
        assert_eq!(key.kind, "Deployment");
        assert_eq!(key.namespace.as_deref(), Some("pachyderm"));
        assert_eq!(key.to_string(), "Deployment/pachd");
    }
}
