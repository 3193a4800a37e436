//! In-process stand-ins for the servers behind port-forwards: a pachd gRPC
//! endpoint (`grpc.health.v1.Health` via tonic-health,
//! `versionpb_v2.API/GetVersion` answering the version from the pod's image
//! tag, and the part of `pfs_v2.API` a storage round trip uses, keeping
//! repos and files per fake cluster, as pachd keeps them in its bucket) and
//! the console's HTTP endpoint. Each forwarded connection is served over an
//! in-memory duplex stream; nothing listens on a real port.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::DuplexStream;
use tower_service::Service;

/// `versionpb_v2.Version`, written by hand (no protoc at build time).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Version {
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
    #[prost(string, tag = "6")]
    pub git_tree_modified: String,
    #[prost(string, tag = "7")]
    pub build_date: String,
    #[prost(string, tag = "8")]
    pub go_version: String,
    #[prost(string, tag = "9")]
    pub platform: String,
}

/// The version a pachd image tag names: "2.11.6" → 2/11/6; "v2.11.6-rc1" →
/// 2/11/6 with additional "-rc1" (Pachyderm prints major.minor.micro+additional).
pub fn version_from_image(image: &str) -> Version {
    let tag = crate::kubelet::image_tag(image).trim_start_matches('v');
    let split = tag
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(tag.len());
    let (nums, additional) = tag.split_at(split);
    let mut parts = nums.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    Version {
        major: parts.next().unwrap_or(0),
        minor: parts.next().unwrap_or(0),
        micro: parts.next().unwrap_or(0),
        additional: additional.to_string(),
        git_commit: "0000000000000000000000000000000000000000".into(),
        git_tree_modified: "false".into(),
        build_date: "2025-01-01T00:00:00Z".into(),
        go_version: "go1.23.0".into(),
        platform: "amd64".into(),
    }
}

#[derive(Clone)]
struct GetVersion(Version);

impl tonic::server::UnaryService<()> for GetVersion {
    type Response = Version;
    type Future = Ready<Result<tonic::Response<Version>, tonic::Status>>;

    fn call(&mut self, _req: tonic::Request<()>) -> Self::Future {
        ready(Ok(tonic::Response::new(self.0.clone())))
    }
}

/// Serves one forwarded connection as pachd's gRPC port.
pub async fn serve_pachd(io: DuplexStream, version: Version, pfs: Arc<crate::pfs::Pfs>) {
    let (reporter, health) = tonic_health::server::health_reporter();
    // The reporter must live as long as the connection: dropping it would
    // end Watch streams. Check answers SERVING for "" by default.
    let _reporter = reporter;
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let version = version.clone();
        let mut health = health.clone();
        let pfs = pfs.clone();
        async move {
            let path = req.uri().path().to_string();
            let resp = if path.starts_with("/pfs_v2.API/") {
                crate::pfs::serve(&pfs, &path, req).await
            } else if path.starts_with("/grpc.health.v1.Health/") {
                match health.call(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            } else if path == "/versionpb_v2.API/GetVersion" {
                let mut grpc =
                    tonic::server::Grpc::new(tonic_prost::ProstCodec::<Version, ()>::default());
                grpc.unary(GetVersion(version), req).await
            } else {
                tonic::Status::unimplemented(format!("{path} is not served by the fake pachd"))
                    .into_http()
            };
            Ok::<_, Infallible>(resp)
        }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// Serves one forwarded connection as the console's HTTP port.
pub async fn serve_console(io: DuplexStream) {
    let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .status(200)
                .header("content-type", "text/plain")
                .body(crate::http::full("console"))
                .expect("valid response"),
        )
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_from_tags() {
        let v = version_from_image("pachyderm/pachd:2.11.6");
        assert_eq!(
            (v.major, v.minor, v.micro, v.additional.as_str()),
            (2, 11, 6, "")
        );
        let v = version_from_image("docker.io/pachyderm/pachd:v2.12.0-rc1");
        assert_eq!(
            (v.major, v.minor, v.micro, v.additional.as_str()),
            (2, 12, 0, "-rc1")
        );
    }
}
