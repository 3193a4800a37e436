//! Shared setup for the fake's tests: a fake cluster plus a kube-rs client
//! configured through the kubeconfig the fake writes (the path howdah uses).

#![allow(dead_code)]

use std::time::Duration;

use howdah_kube_fake::{FakeCluster, FakeOptions};
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::Value;

pub struct Harness {
    pub fake: FakeCluster,
    pub client: Client,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub fn kubeconfig(&self) -> std::path::PathBuf {
        self.dir.path().join("kubeconfig")
    }
}

pub async fn start_with(opts: FakeOptions) -> Harness {
    let fake = FakeCluster::start(opts).await.expect("fake starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&path, "fake")
        .expect("kubeconfig written");
    let kc = Kubeconfig::read_from(&path).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    let client = Client::try_from(config).expect("client");
    Harness { fake, client, dir }
}

pub async fn start() -> Harness {
    start_with(FakeOptions {
        ready_delay: Duration::from_millis(50),
        ..FakeOptions::default()
    })
    .await
}

pub fn ssa(manager: &str) -> PatchParams {
    PatchParams::apply(manager)
}

/// Server-side applies `obj` (JSON) through a typed Api.
pub async fn apply<K>(api: &Api<K>, manager: &str, obj: &Value) -> Result<K, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = obj["metadata"]["name"].as_str().expect("name").to_string();
    api.patch(&name, &ssa(manager), &Patch::Apply(obj)).await
}

pub fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("serializable")
}

/// The API error (status code, reason, message) of a failed call.
pub fn api_error(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Polls `f` until it returns Some, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn deployment(name: &str, image: &str, replicas: i64) -> Value {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image, "ports": [{"containerPort": 8080}]}]}}}
    })
}

pub fn statefulset(name: &str, image: &str, storage: &str) -> Value {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"serviceName": name, "replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}}]}
    })
}
