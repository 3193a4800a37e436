//! The `kubeconfig` target: an existing Kubernetes cluster (kind, minikube,
//! a team cluster) reached through a kubeconfig context. It makes no cloud
//! objects, so its resource list is empty and its leak scan has nothing of
//! its own to look at; the runtime does all the work on the cluster.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use howdah_provider::wait::{retry, Backoff};
use howdah_provider::{Leftover, Outputs, Provider, ProviderError, Resource, RuntimeInputs};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// An existing cluster.
pub struct KubeconfigProvider {
    /// Explicit kubeconfig file; None: $KUBECONFIG, then ~/.kube/config.
    pub path: Option<PathBuf>,
    /// Context; None: the file's current context.
    pub context: Option<String>,
}

impl KubeconfigProvider {
    pub fn new(path: Option<PathBuf>, context: Option<String>) -> Self {
        KubeconfigProvider { path, context }
    }

    fn load(&self) -> Result<Kubeconfig, ProviderError> {
        let loaded = match &self.path {
            Some(path) => Kubeconfig::read_from(path).map_err(|e| {
                ProviderError::config(format!(
                    "cannot read kubeconfig {}: {e}; set target.kubeconfig.path to an existing file",
                    path.display()
                ))
            }),
            None => Kubeconfig::read().map_err(|e| {
                ProviderError::config(format!(
                    "cannot read a kubeconfig from $KUBECONFIG or ~/.kube/config: {e}; set target.kubeconfig.path"
                ))
            }),
        }?;
        if let Some(context) = &self.context {
            if !loaded.contexts.iter().any(|c| &c.name == context) {
                let known: Vec<&str> = loaded.contexts.iter().map(|c| c.name.as_str()).collect();
                return Err(ProviderError::config(format!(
                    "kubeconfig has no context `{context}` (it has: {}); fix target.kubeconfig.context",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )));
            }
        }
        Ok(loaded)
    }
}

#[async_trait]
impl Provider for KubeconfigProvider {
    fn name(&self) -> &'static str {
        "kubeconfig"
    }

    async fn preflight(&self) -> Result<(), ProviderError> {
        let config = self.kube_config(&Outputs::default()).await?;
        let client = kube::Client::try_from(config)
            .map_err(|e| ProviderError::config(format!("cannot build a Kubernetes client: {e}")))?;
        // A busy server (429/5xx) is asked again; an absent one fails at once.
        let backoff = Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(4),
            jitter: 0.3,
        };
        retry(5, backoff, || async {
            client.apiserver_version().await.map(|_| ()).map_err(|e| match &e {
                kube::Error::Api(s) if s.code == 429 || s.code >= 500 => {
                    ProviderError::retryable(format!("the cluster is busy: {e}"))
                }
                _ => ProviderError::config(format!(
                    "the cluster does not answer: {e}; check that it is running and the context is right"
                )),
            })
        })
        .await
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        Vec::new()
    }

    fn cluster_ready_after(&self) -> Vec<String> {
        Vec::new()
    }

    async fn kube_config(&self, _outputs: &Outputs) -> Result<kube::Config, ProviderError> {
        let kubeconfig = self.load()?;
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| ProviderError::config(format!("kubeconfig is not usable: {e}")))
    }

    fn runtime_inputs(&self, _outputs: &Outputs) -> RuntimeInputs {
        RuntimeInputs::default()
    }

    async fn leftovers(&self) -> Result<Vec<Leftover>, ProviderError> {
        Ok(Vec::new())
    }
}
