//! TEST DOUBLE — a reverse proxy in front of moto (the AWS emulator) for
//! howdah's end-to-end tests and benchmarks. Never part of the product.
//!
//! moto answers the AWS APIs howdah uses, but an EKS cluster is ACTIVE the
//! moment it is created and gone the moment it is deleted, EKS add-ons do
//! not exist, and nothing ever fails or is slow. The proxy forwards every
//! call to moto byte for byte and adds, after AWS's published API contracts:
//!
//! - the EKS lifecycle: clusters and nodegroups are CREATING and DELETING
//!   for configurable times, a cluster with nodegroups cannot be deleted,
//!   and nothing new can be made on a cluster that is not ACTIVE;
//! - the EKS add-on API (create, describe, list, update, delete, versions);
//! - faults: each service's own throttling and 5xx errors at seeded random
//!   rates, auth errors for chosen access keys, and added latency;
//! - counters of calls per `service:Operation`.
//!
//! It does not check signatures, and knows nothing of services howdah does
//! not call beyond forwarding them. Use [`Moto::start`] and
//! [`Proxy::start`] from a test, or the `howdah-aws-proxy` binary from a
//! shell.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

mod addon_catalog;
mod addons;
mod eks;
mod eks_route;
mod errors;
mod faults;
mod identify;
mod lifecycle;
mod moto;
mod server;
mod stats;
mod upstream;

pub use crate::lifecycle::Detection;
pub use crate::moto::{find_moto_server, Moto};
pub use crate::stats::Stats;

/// The account moto uses unless told otherwise; used when moto's answer names none.
pub const DEFAULT_ACCOUNT: &str = "123456789012";

/// How the proxy behaves. The default forwards everything unchanged (all
/// durations zero, no faults); `upstream` must be set.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// TCP port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// moto's base URL, e.g. `http://127.0.0.1:5000`.
    pub upstream: String,
    /// How long a new cluster stays CREATING.
    pub cluster_create: Duration,
    /// How long a deleted cluster stays DELETING.
    pub cluster_delete: Duration,
    /// How long a new nodegroup stays CREATING.
    pub nodegroup_create: Duration,
    /// How long a deleted nodegroup stays DELETING.
    pub nodegroup_delete: Duration,
    /// How long a new add-on stays CREATING (and an updated one UPDATING).
    pub addon_create: Duration,
    /// How long a deleted add-on stays DELETING.
    pub addon_delete: Duration,
    /// Percentage (0..=100) of calls answered with the service's throttling error.
    pub throttle_percent: u32,
    /// Percentage (0..=100) of calls answered with the service's 5xx error.
    pub error_percent: u32,
    /// Added before answering every AWS call.
    pub latency: Duration,
    /// Seed of the fault draws: the same seed and request order fail the same calls.
    pub seed: u64,
    /// Calls signed with these access key ids fail as with an unknown key.
    pub reject_access_keys: Vec<String>,
    /// Calls signed with these access key ids fail as with expired credentials.
    pub expired_access_keys: Vec<String>,
    /// Every cluster is FAILED once its create is over, never ACTIVE, as
    /// when EKS cannot make it (a quota, a subnet without free addresses).
    pub clusters_fail: bool,
}

/// A running proxy; dropping it stops it.
pub struct Proxy {
    shared: Arc<server::Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Binds 127.0.0.1:`port` and starts serving.
    pub async fn start(options: ProxyOptions) -> anyhow::Result<Proxy> {
        anyhow::ensure!(
            !options.upstream.is_empty(),
            "ProxyOptions::upstream is empty: give the moto URL (Moto::url)"
        );
        let listener = TcpListener::bind(("127.0.0.1", options.port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{}", options.port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(server::Shared {
            upstream: options.upstream.trim_end_matches('/').to_string(),
            timings: lifecycle::Timings {
                cluster_create: options.cluster_create,
                cluster_delete: options.cluster_delete,
                nodegroup_create: options.nodegroup_create,
                nodegroup_delete: options.nodegroup_delete,
                addon_create: options.addon_create,
                addon_delete: options.addon_delete,
                clusters_fail: options.clusters_fail,
            },
            latency: options.latency,
            reject_access_keys: options
                .reject_access_keys
                .iter()
                .cloned()
                .collect::<HashSet<_>>(),
            expired_access_keys: options
                .expired_access_keys
                .iter()
                .cloned()
                .collect::<HashSet<_>>(),
            client: upstream::client(),
            stats: Mutex::new(Stats::default()),
            faults: Mutex::new(faults::Faults::new(
                options.throttle_percent,
                options.error_percent,
                options.seed,
            )),
            lifecycle: Mutex::new(lifecycle::Lifecycle::default()),
            addons: Mutex::new(addons::Addons::default()),
        });
        let task = tokio::spawn(server::serve(listener, shared.clone()));
        Ok(Proxy { shared, addr, task })
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT`; give it to the AWS SDK as the endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Counters since start or the last reset.
    pub fn stats(&self) -> Stats {
        self.shared.stats().clone()
    }

    pub fn reset_stats(&self) {
        *self.shared.stats() = Stats::default();
    }

    /// For each EKS wait so far, how long after the resource reached its
    /// end state a Describe first showed it (see [`Detection`]).
    pub fn detections(&self) -> Vec<Detection> {
        self.shared.lifecycle().detections()
    }

    /// Changes the fault rates (percentages, capped at 100) from now on.
    pub fn set_faults(&self, throttle_percent: u32, error_percent: u32) {
        self.shared.faults().set(throttle_percent, error_percent);
    }

    /// Like `POST /_proxy/reset`: clears the counters and the proxy's own
    /// resources (lifecycle, add-ons), restarts the fault sequence from the
    /// seed, and resets moto.
    pub async fn reset(&self) -> anyhow::Result<()> {
        self.shared.reset_state();
        self.shared.reset_upstream().await
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
