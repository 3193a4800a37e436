//! Proof that Pachyderm works, through the Kubernetes API alone: port-forward
//! to a ready pachd pod, ask its gRPC health service, and ask its version
//! service for the version, which must be the pinned one. Also the local
//! port-forwarding behind `howdah console`.

use std::time::Duration;

use howdah_provider::ProviderError;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::Serialize;
use tokio::io::DuplexStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::cluster::{map_err, ClusterHandle};

/// pachd's gRPC port.
pub const PACHD_GRPC_PORT: u16 = 1650;
/// pachd's peer port: the same API, always plain text (pachd's TLS covers
/// only its public port), where workers and the console call it.
pub const PACHD_PEER_PORT: u16 = 1653;

/// How verification reaches pachd's API: the port, and the root token
/// when auth is on (its file API wants one; never printed).
pub struct PachdAccess {
    pub port: u16,
    pub token: Option<super::inputs::SecretText>,
}
/// The console's HTTP port.
pub const CONSOLE_PORT: u16 = 4000;
/// pachyderm-proxy's HTTP port (container port behind its Service's 80).
pub const PROXY_HTTP_PORT: u16 = 8080;

/// pachd's answer to GetVersion (versionpb_v2.Version), written out by hand:
/// two messages do not justify a protoc build step.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PachdVersion {
    #[prost(uint32, tag = "1")]
    pub major: u32,
    #[prost(uint32, tag = "2")]
    pub minor: u32,
    #[prost(uint32, tag = "3")]
    pub micro: u32,
    #[prost(string, tag = "4")]
    pub additional: String,
    #[prost(string, tag = "5")]
    pub git_commit: String,
}

impl PachdVersion {
    pub fn text(&self) -> String {
        format!(
            "{}.{}.{}{}",
            self.major, self.minor, self.micro, self.additional
        )
    }
}

/// What verification found.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub pod: String,
    pub health: String,
    pub version: String,
    /// The storage round trip, when it was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<super::pfs::RoundTrip>,
}

impl Verified {
    /// One line for the progress view and `status`.
    pub fn summary(&self) -> String {
        let mut text = format!("pachd {} in {} is {}", self.version, self.pod, self.health);
        if let Some(trip) = &self.storage {
            text.push_str(&format!(
                "; storage round trip ({} bytes written, read back, removed) in {:.2} s",
                trip.bytes,
                trip.millis as f64 / 1000.0
            ));
        }
        text
    }
}

/// A ready pod matching `selector` in `namespace`.
pub async fn ready_pod(
    cluster: &ClusterHandle,
    namespace: &str,
    selector: &str,
) -> Result<String, ProviderError> {
    let pods: Api<Pod> = Api::namespaced(cluster.client().await?, namespace);
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| map_err("listing pods", e))?;
    list.items
        .iter()
        .find(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .map(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                    .unwrap_or(false)
        })
        .and_then(|p| p.metadata.name.clone())
        .ok_or_else(|| {
            ProviderError::retryable(format!("no ready pod matches {selector} in {namespace}"))
        })
}

/// A byte stream to `port` of `pod`, through the API server.
pub async fn forward(
    cluster: &ClusterHandle,
    namespace: &str,
    pod: &str,
    port: u16,
) -> Result<DuplexStream, ProviderError> {
    let pods: Api<Pod> = Api::namespaced(cluster.client().await?, namespace);
    // A port-forward that does not open is worth another try (pod
    // restarting, API server busy, a kubelet tunnel still coming up):
    // callers poll. Not when the user may not port-forward at all.
    let mut forwarder = pods.portforward(pod, &[port]).await.map_err(|e| {
        let denied = matches!(&e, kube::Error::Api(s) if s.code == 401 || s.code == 403);
        let text = map_err(&format!("port-forwarding to {pod}:{port}"), e).to_string();
        if denied {
            ProviderError::api(text)
        } else {
            ProviderError::retryable(text)
        }
    })?;
    let stream = forwarder.take_stream(port).ok_or_else(|| {
        ProviderError::api(format!("port-forward to {pod}:{port} gave no stream"))
    })?;
    // The forwarder's task ends when the stream is dropped; its errors
    // show up as the stream closing, which the caller sees.
    tokio::spawn(async move {
        let _ = forwarder.join().await;
    });
    Ok(stream)
}

/// A gRPC channel over one port-forwarded stream.
async fn channel_over(stream: DuplexStream) -> Result<Channel, ProviderError> {
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(stream)));
    let endpoint =
        Endpoint::from_static("http://pachd.port-forward").connect_timeout(Duration::from_secs(10));
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let taken = slot.lock().ok().and_then(|mut s| s.take());
            async move {
                taken.map(TokioIo::new).ok_or_else(|| {
                    std::io::Error::other("the port-forward stream was already used")
                })
            }
        }))
        .await
        .map_err(|e| {
            ProviderError::retryable(format!("connecting to pachd over the port-forward: {e}"))
        })
}

/// Health and version of the pachd behind `selector`; the version must be
/// `expected`. With `storage` (how pachd reaches its object store, for
/// the message when it cannot), also a round trip through its file API.
pub async fn verify_pachd(
    cluster: &ClusterHandle,
    namespace: &str,
    selector: &str,
    expected: &str,
    storage: Option<&str>,
    access: &PachdAccess,
) -> Result<Verified, ProviderError> {
    let pod = ready_pod(cluster, namespace, selector).await?;
    let channel = channel_over(forward(cluster, namespace, &pod, access.port).await?).await?;

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|s| {
            ProviderError::retryable(format!("pachd health check failed: {}", s.message()))
        })?
        .into_inner();
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    if answer.status != serving {
        return Err(ProviderError::retryable(format!(
            "pachd reports health status {} (want SERVING)",
            answer.status().as_str_name()
        )));
    }

    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| ProviderError::retryable(format!("pachd is not accepting calls: {e}")))?;
    let path = http::uri::PathAndQuery::from_static("/versionpb_v2.API/GetVersion");
    let codec: tonic_prost::ProstCodec<(), PachdVersion> = tonic_prost::ProstCodec::default();
    let version = grpc
        .unary(tonic::Request::new(()), path, codec)
        .await
        .map_err(|s| ProviderError::retryable(format!("pachd GetVersion failed: {}", s.message())))?
        .into_inner();
    let got = version.text();
    if got != expected {
        return Err(ProviderError::api(format!(
            "pachd in pod {pod} runs version {got}, but the stack pins {expected}; check pachyderm.imageRegistry mirrors the right tag"
        )));
    }
    let storage = match storage {
        Some(identity) => {
            // Random, so a store that returns stale or other data fails.
            let payload = format!(
                "howdah storage check {} {}\n",
                chrono::Utc::now().to_rfc3339(),
                super::inputs::SecretText::generate_of(64).expose()
            );
            let token = access.token.as_ref().map(|t| t.expose());
            let trip = super::pfs::round_trip(channel, payload.as_bytes(), identity, token);
            let trip = tokio::time::timeout(super::pfs::ROUND_TRIP_LIMIT, trip)
                .await
                .map_err(|_| {
                    ProviderError::retryable(format!(
                        "pachd could not use its object store: the round trip took over {} s; \
                         pachd reaches the store as {identity}",
                        super::pfs::ROUND_TRIP_LIMIT.as_secs()
                    ))
                })??;
            Some(trip)
        }
        None => None,
    };
    Ok(Verified {
        pod,
        health: "SERVING".into(),
        version: got,
        storage,
    })
}
