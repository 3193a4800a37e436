//! The contract between howdah's engine and a target: an existing cluster,
//! AWS, GCP or Azure.
//!
//! A provider turns its part of the stack into [`Resource`]s (cloud objects
//! with stable ids, dependencies and read/create/update/delete), says how to
//! reach the cluster once those exist, what the runtime must be told about
//! storage and identity, and how to scan for leftovers after `down`.
//! It knows nothing of the CLI, the plan printer or any other provider; the
//! engine knows nothing of any one cloud.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub mod intent;
pub mod wait;

pub use intent::{Intent, Intents};

/// What a plan does to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    /// Already as desired: nothing to do. Written `no-op` everywhere
    /// (plans, events, state); `keep` is still read from older state files.
    #[serde(rename = "no-op", alias = "keep")]
    Keep,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Keep => "no-op",
        }
    }

    /// Whether carrying out this action writes anything.
    pub fn is_change(self) -> bool {
        self != Action::Keep
    }
}

/// One field that differs between live and desired. Values of secret
/// fields are replaced by `(sensitive)` before they get here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Where, e.g. `StatefulSet/etcd: spec.volumeClaimTemplates[etcd-storage].spec.resources.requests.storage`.
    pub path: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The planned change to one resource, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub action: Action,
    /// One line for a reviewer: "not found", "2 fields differ", "in sync".
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    /// Documents a reviewer should read before approving (IAM policies, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub documents: BTreeMap<String, serde_json::Value>,
}

impl Change {
    pub fn keep(reason: impl Into<String>) -> Change {
        Change {
            action: Action::Keep,
            reason: reason.into(),
            fields: Vec::new(),
            documents: BTreeMap::new(),
        }
    }

    pub fn new(action: Action, reason: impl Into<String>) -> Change {
        Change {
            action,
            reason: reason.into(),
            fields: Vec::new(),
            documents: BTreeMap::new(),
        }
    }
}

/// Outputs of finished steps (ids, endpoints, ARNs), keyed by resource id.
/// Shared between steps: a step reads its dependencies' outputs.
#[derive(Debug, Clone, Default)]
pub struct Outputs(Arc<Mutex<BTreeMap<String, serde_json::Value>>>);

impl Outputs {
    pub fn get(&self, id: &str) -> Option<serde_json::Value> {
        self.lock().get(id).cloned()
    }

    pub fn set(&self, id: &str, value: serde_json::Value) {
        self.lock().insert(id.to_string(), value);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, serde_json::Value>> {
        // A panic while holding this lock leaves a plain map behind, which is
        // still consistent: take it rather than propagate the poison.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where a running step reports progress ("waiting for pachd: 0/1 ready").
pub trait Progress: Send + Sync {
    fn report(&self, message: &str);
}

/// A progress sink that drops everything (plans, tests).
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&self, _message: &str) {}
}

/// What a resource operation is given.
#[derive(Clone)]
pub struct StepContext {
    pub outputs: Outputs,
    pub progress: Arc<dyn Progress>,
}

/// Errors from a provider or resource operation.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Worth another try: throttling, 5xx, a reset connection.
    #[error("{message}")]
    Retryable { message: String },
    /// The API said no: bad input, conflict, permission. Fails the step.
    #[error("{message}")]
    Api { message: String },
    /// Preflight or configuration problem with what to do about it.
    #[error("{message}")]
    Config { message: String },
    /// The step ran out of time.
    #[error("timed out after {after:?} {what}")]
    Timeout { what: String, after: Duration },
}

impl ProviderError {
    pub fn api(message: impl Into<String>) -> Self {
        ProviderError::Api {
            message: message.into(),
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        ProviderError::Config {
            message: message.into(),
        }
    }

    pub fn retryable(message: impl Into<String>) -> Self {
        ProviderError::Retryable {
            message: message.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, ProviderError::Retryable { .. })
    }
}

/// One object a provider (or the runtime) manages.
#[async_trait]
pub trait Resource: Send + Sync {
    /// Stable id: `aws.eks_cluster`, `runtime.pachd`.
    fn id(&self) -> &str;
    /// Ids of resources that must be in place before this one is created
    /// (and removed only after this one is deleted).
    fn depends_on(&self) -> Vec<String>;
    /// How long `action` usually takes, for the plan and the progress view.
    fn expected(&self, action: Action) -> Duration;
    /// Reads the live object and says what `up` would do to it.
    async fn plan_up(&self, ctx: &StepContext) -> Result<Change, ProviderError>;
    /// Reads the live object and says what `down` would do to it.
    async fn plan_down(&self, ctx: &StepContext) -> Result<Change, ProviderError>;
    /// Carries out `change` (from `plan_up`), waits until the object is
    /// usable, and returns its outputs for dependents and the state file.
    async fn apply(
        &self,
        ctx: &StepContext,
        change: &Change,
    ) -> Result<serde_json::Value, ProviderError>;
    /// Deletes the object and waits until it is really gone.
    async fn destroy(&self, ctx: &StepContext, change: &Change) -> Result<(), ProviderError>;
    /// Whether an interrupted run may stop this step at once instead of
    /// letting it reach a safe point: true only for steps that write
    /// nothing (a check that polls), where stopping loses nothing.
    fn interruptible(&self) -> bool {
        false
    }
    /// Whether deleting this removes the stack's data (volumes, bucket
    /// contents), not only what serves it: `down` asks for more before it.
    fn holds_data(&self) -> bool {
        false
    }
}

/// How pachd reaches its object store, as the target arranged it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StorageBinding {
    /// pachd STORAGE_BACKEND: AMAZON, GOOGLE, MICROSOFT.
    pub backend: String,
    pub bucket: String,
    pub region: String,
    /// Custom endpoint (S3-compatible stores, emulators); empty for the cloud's own.
    pub endpoint: String,
    /// A user Secret with static keys; empty: workload identity.
    pub credentials_secret: String,
    /// Azure storage account holding the container; empty elsewhere.
    #[serde(default)]
    pub account: String,
}

/// What the target tells the runtime chart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInputs {
    /// Storage the target created (None: use what the spec names).
    pub storage: Option<StorageBinding>,
    /// Annotations for the pachyderm and pachyderm-worker service accounts.
    pub service_account_annotations: BTreeMap<String, String>,
    /// StorageClass the target installed for PVCs, if any.
    pub storage_class: Option<String>,
    /// Labels every runtime pod needs (identity webhooks select on them).
    #[serde(default)]
    pub pod_labels: BTreeMap<String, String>,
}

/// Something howdah made that still exists after `down`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leftover {
    /// `kubernetes.PersistentVolumeClaim`, `aws.s3_bucket`, ...
    pub kind: String,
    pub name: String,
    /// Retained on purpose (data policy) rather than leaked.
    pub retained: bool,
    /// How to remove it: a command to paste (`<stack file>` stands for
    /// the stack file, which the CLI fills in), never a status.
    pub remove_with: String,
    /// What its cloud says of it (`EKS reports it ACTIVE`), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A target: everything about one cloud (or an existing cluster).
#[async_trait]
pub trait Provider: Send + Sync {
    /// `kubeconfig`, `aws`, `gcp`, `azure`.
    fn name(&self) -> &'static str;
    /// Checks that need the network but write nothing: credentials resolve,
    /// the cluster answers, names are free. Runs before any write.
    async fn preflight(&self) -> Result<(), ProviderError>;
    /// The target's own resources (cluster, node pools, bucket, identity).
    fn resources(&self) -> Vec<Arc<dyn Resource>>;
    /// Ids the runtime waits for before touching the cluster.
    fn cluster_ready_after(&self) -> Vec<String>;
    /// How to reach the cluster, once the resources above exist.
    async fn kube_config(&self, outputs: &Outputs) -> Result<kube::Config, ProviderError>;
    /// Whether the cluster is there to be read. A target that creates its
    /// cluster answers false before it exists, and the runtime then plans
    /// every object as new instead of calling a cluster that is not there.
    async fn cluster_exists(&self) -> Result<bool, ProviderError> {
        Ok(true)
    }
    /// `down --delete-data`: data the stack file says to keep goes too.
    fn set_delete_data(&self, _delete: bool) {}
    /// Where this command records intents to create and reads those of
    /// earlier runs (see [`intent`]); set before preflight.
    fn set_intents(&self, _intents: std::sync::Arc<dyn Intents>) {}
    /// A kubeconfig for the target's cluster, for `howdah kubeconfig`;
    /// None when the target is itself a kubeconfig.
    async fn kubeconfig_file(&self) -> Result<Option<kube::config::Kubeconfig>, ProviderError> {
        Ok(None)
    }
    /// What the runtime chart must know about storage and identity.
    fn runtime_inputs(&self, outputs: &Outputs) -> RuntimeInputs;
    /// Anything of the stack's left in the cloud after `down`.
    async fn leftovers(&self) -> Result<Vec<Leftover>, ProviderError>;
}
