//! TEST FAKE — a Kubernetes API server stand-in for howdah's end-to-end
//! tests (no real kube-apiserver can run on the test machines). It follows
//! the published API contract where howdah depends on it: JSON over plain
//! HTTP, discovery, CRUD with resourceVersion/generation/uid, server-side
//! apply with field ownership and conflicts, merge/strategic/JSON patches,
//! watches with history, status subresources, garbage collection, namespace
//! termination, a simulated controller that makes workloads ready after a
//! delay, pod logs, and WebSocket port-forwarding to in-process pachd and
//! console stand-ins. Never part of the product.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod apply;
mod controller;
mod defaults;
mod errors;
mod fields;
mod handlers;
mod http;
mod kubelet;
mod logs;
mod ops;
mod pachd;
mod patch;
mod pfs;
mod portforward;
mod proxy;
mod resources;
mod schema;
mod selectors;
mod storage;
mod store;
mod table;
mod validate;
mod watch;
mod workloads;

pub use pfs::Pfs;

pub use crate::http::{RequestRecord, Stats};
pub use crate::pachd::Version as PachdVersion;

/// How the fake cluster behaves.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// How long each simulated transition takes (pods starting, claims
    /// binding, load balancers getting an address, ...).
    pub ready_delay: Duration,
    /// Create the StorageClass "standard" marked as the default class (as kind does).
    pub default_storage_class: bool,
    /// TCP port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Fault injection: every Nth API request fails as an overloaded real
    /// API server fails (429 TooManyRequests and 503 ServiceUnavailable,
    /// alternating, with Retry-After). 0 turns it off.
    pub fault_every: u64,
    /// The API server cannot reach the node's kubelet, as on a cluster
    /// whose node has no addresses: port-forward and pod logs get the 500
    /// a real server gives then ("no preferred addresses found; known
    /// addresses: []", no reason, before any upgrade: kube-recordings
    /// 02-up-fresh seq 100-124, 20-probes seq 70, 73, 74).
    pub node_unreachable: bool,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            ready_delay: Duration::from_millis(300),
            default_storage_class: true,
            port: 0,
            fault_every: 0,
            node_unreachable: false,
        }
    }
}

/// A running fake API server.
pub struct FakeCluster {
    shared: Arc<http::Shared>,
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

const SEED_MANAGER: &str = "kube-apiserver";

fn seed(st: &mut store::State, opts: &FakeOptions) -> anyhow::Result<()> {
    let ctx = ops::WriteCtx::controller(SEED_MANAGER);
    let ns = resources::rt("", "namespaces");
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        ops::create(
            st,
            ns,
            None,
            json!({"metadata": {"name": name}}),
            &ctx,
            false,
        )
        .map_err(|e| anyhow::anyhow!("seeding namespace {name}: {e}"))?;
    }
    let node = json!({
        "metadata": {"name": kubelet::NODE, "labels": {
            "kubernetes.io/hostname": kubelet::NODE, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "node-role.kubernetes.io/control-plane": ""}},
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
            "addresses": [{"type": "InternalIP", "address": kubelet::NODE_IP}, {"type": "Hostname", "address": kubelet::NODE}],
            "capacity": {"cpu": "2", "memory": "24Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "allocatable": {"cpu": "2", "memory": "24Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "nodeInfo": {"kubeletVersion": "v1.32.0", "containerRuntimeVersion": "containerd://1.7.0",
                         "operatingSystem": "linux", "architecture": "amd64", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "kernelVersion": "6.1.0", "kubeProxyVersion": "v1.32.0", "machineID": "", "systemUUID": "", "bootID": ""}
        }
    });
    ops::create(st, resources::rt("", "nodes"), None, node, &ctx, false)
        .map_err(|e| anyhow::anyhow!("seeding node: {e}"))?;
    let svc = json!({"metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}});
    ops::create(
        st,
        resources::rt("", "services"),
        Some("default"),
        svc,
        &ctx,
        false,
    )
    .map_err(|e| anyhow::anyhow!("seeding service: {e}"))?;
    if opts.default_storage_class {
        let sc = json!({"metadata": {"name": "standard", "annotations": {defaults::DEFAULT_CLASS_ANNOTATION: "true"}},
            "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"});
        ops::create(
            st,
            resources::rt("storage.k8s.io", "storageclasses"),
            None,
            sc,
            &ctx,
            false,
        )
        .map_err(|e| anyhow::anyhow!("seeding storage class: {e}"))?;
    }
    Ok(())
}

impl FakeCluster {
    /// Binds 127.0.0.1:`opts.port`, seeds the cluster (namespaces default,
    /// kube-system, kube-public, kube-node-lease; node "fake-node"; service
    /// "kubernetes"; optionally StorageClass "standard") and starts serving.
    pub async fn start(opts: FakeOptions) -> anyhow::Result<FakeCluster> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{}", opts.port))?;
        let addr = listener.local_addr()?;
        let store = store::Store::new(opts.ready_delay);
        {
            let mut st = store.lock();
            seed(&mut st, &opts)?;
            st.seed_rv = st.rv;
        }
        let shared = Arc::new(http::Shared {
            store: store.clone(),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
            shutdown: CancellationToken::new(),
            address: addr.to_string(),
            fault_every: opts.fault_every,
            node_unreachable: opts.node_unreachable,
            seen: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            pfs: Arc::new(pfs::Pfs::default()),
        });
        let controller = controller::Controller::new(store);
        let tasks = vec![
            tokio::spawn(http::serve(listener, shared.clone())),
            tokio::spawn(controller.run(shared.shutdown.clone())),
        ];
        Ok(FakeCluster {
            shared,
            addr,
            tasks,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig whose cluster, user (bearer token "fake-token")
    /// and context are all named `context`, with current-context set.
    pub fn write_kubeconfig(&self, path: &Path, context: &str) -> anyhow::Result<()> {
        let cfg = json!({
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": {"server": self.url()}}],
            "users": [{"name": context, "user": {"token": "fake-token"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": "default"}}],
            "current-context": context,
        });
        let text = serde_norway::to_string(&cfg)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// What the cluster's pachd stand-ins keep in their object store, and
    /// its fault switches.
    pub fn pfs(&self) -> &Pfs {
        &self.shared.pfs
    }

    /// API read/write request counts since start or the last reset.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Zeroes the counters and clears the request log.
    pub fn reset_stats(&self) {
        self.shared.reset_stats()
    }

    /// Every API request (since start or the last reset), in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests()
    }

    /// One object, by apiVersion ("v1", "apps/v1"), plural resource name,
    /// namespace (None for cluster-scoped) and name.
    pub fn get(
        &self,
        api_version: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let rt = resources::by_api_version(api_version, plural)?;
        self.shared.store.lock().get(rt, namespace, name).cloned()
    }

    /// All objects of a type, in one namespace or (None) across all.
    pub fn list(&self, api_version: &str, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(rt) = resources::by_api_version(api_version, plural) else {
            return Vec::new();
        };
        self.shared
            .store
            .lock()
            .list(rt, namespace)
            .into_iter()
            .cloned()
            .collect()
    }

    /// Events whose involvedObject has this name, in a namespace.
    pub fn events_for(&self, namespace: &str, name: &str) -> Vec<Value> {
        self.list("v1", "events", Some(namespace))
            .into_iter()
            .filter(|e| e["involvedObject"]["name"] == name)
            .collect()
    }

    /// Creates an object directly (test setup; not counted, no validation),
    /// typed by its apiVersion/kind.
    pub fn create(&self, obj: Value) -> anyhow::Result<Value> {
        let av = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let rt =
            resources::by_kind(av, kind).with_context(|| format!("unknown type {av} {kind}"))?;
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let created = {
            let mut st = self.shared.store.lock();
            ops::create(
                &mut st,
                rt,
                ns.as_deref(),
                obj,
                &ops::WriteCtx::controller("howdah-kube-fake"),
                false,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?
        };
        self.shared.store.changed.notify_one();
        Ok(created)
    }

    /// Stops serving: closes the listener, ends watches and port-forwards,
    /// stops the controller.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}
