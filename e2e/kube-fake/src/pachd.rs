//! In-process stand-ins for the servers behind port-forwards: a pachd gRPC
//! endpoint (`grpc.health.v1.Health` via tonic-health,
//! `versionpb_v2.API/GetVersion` answering the version from the pod's image
//! tag, and the part of `pfs_v2.API` a storage round trip uses, keeping
//! repos and files per fake cluster, as pachd keeps them in its bucket) and
//! the console's HTTP endpoint, and pachd's HTTP port with the file server
//! the console's preview and download use. Each forwarded connection is served over an
//! in-memory duplex stream; nothing listens on a real port.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
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
/// The pachd container of a pod spec.
fn pachd_container(pod: &Value) -> Option<&Value> {
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["image"].as_str().is_some_and(|i| i.contains("pachd")))
}

/// Whether pachd finds a certificate where it looks (`/pachd-tls-cert`),
/// and so serves only TLS on its public port.
pub fn serves_tls(pod: &Value) -> bool {
    pachd_container(pod)
        .and_then(|c| c["volumeMounts"].as_array())
        .is_some_and(|mounts| mounts.iter().any(|m| m["mountPath"] == "/pachd-tls-cert"))
}

/// A TLS server met with plain text: reads the client's first bytes and
/// hangs up, as a Go TLS listener does with a bad handshake.
pub async fn refuse_plain_text(mut io: DuplexStream) {
    use tokio::io::AsyncReadExt as _;
    let mut first = [0u8; 64];
    let _ = io.read(&mut first).await;
}

/// The root token auth was activated with, when the pod's pachd activates
/// auth (ACTIVATE_AUTH and AUTH_ROOT_TOKEN from a Secret), read from the
/// Secret as the kubelet would; `Some("")` when it cannot be read, so no
/// token matches.
pub fn root_token(pod: &Value, store: &crate::store::Store) -> Option<String> {
    let env = pachd_container(pod)?["env"].as_array()?;
    let entry = |name: &str| env.iter().find(|e| e["name"] == name);
    if entry("ACTIVATE_AUTH")?["value"] != "true" {
        return None;
    }
    let reference = &entry("AUTH_ROOT_TOKEN")?["valueFrom"]["secretKeyRef"];
    let (Some(name), Some(key)) = (reference["name"].as_str(), reference["key"].as_str()) else {
        return Some(String::new());
    };
    let namespace = pod["metadata"]["namespace"].as_str();
    let secrets = crate::resources::find("", "v1", "secrets")?;
    let state = store.lock();
    let token = state
        .get(secrets, namespace, name)
        .and_then(|s| s["data"][key].as_str())
        .and_then(|b64| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(b64).ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok());
    Some(token.unwrap_or_default())
}

/// pachd's answer to a file API call without the right token, as its auth
/// interceptor gives it.
fn unauthenticated(req: &Request<Incoming>, token: &str) -> Option<Response<tonic::body::Body>> {
    match req
        .headers()
        .get("authn-token")
        .and_then(|v| v.to_str().ok())
    {
        Some(given) if !token.is_empty() && given == token => None,
        Some(_) => Some(
            tonic::Status::unauthenticated(
                "provided auth token is corrupted or has expired (try logging in again)",
            )
            .into_http(),
        ),
        None => Some(
            tonic::Status::unauthenticated("no authentication token (try logging in)").into_http(),
        ),
    }
}

pub async fn serve_pachd(
    io: DuplexStream,
    version: Version,
    pfs: Arc<crate::pfs::Pfs>,
    root_token: Option<String>,
) {
    let (reporter, health) = tonic_health::server::health_reporter();
    // The reporter must live as long as the connection: dropping it would
    // end Watch streams. Check answers SERVING for "" by default.
    let _reporter = reporter;
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let version = version.clone();
        let mut health = health.clone();
        let pfs = pfs.clone();
        let root_token = root_token.clone();
        async move {
            let path = req.uri().path().to_string();
            let refused = root_token
                .as_deref()
                .filter(|_| path.starts_with("/pfs_v2.API/"))
                .and_then(|token| unauthenticated(&req, token));
            let resp = if let Some(refused) = refused {
                refused
            } else if path.starts_with("/pfs_v2.API/") {
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

/// Serves one connection as pachd's HTTP port (1659), as its mux routes:
/// `/pfs/` is the file server the console's preview and download use,
/// `/healthz` answers, `/archive/`, `/api/` and `/jsonschema/` exist in
/// pachd but not in this stand-in (501), anything else is Go's 404.
pub async fn serve_pachd_http(io: DuplexStream, pfs: Arc<crate::pfs::Pfs>) {
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let pfs = pfs.clone();
        async move { Ok::<_, Infallible>(pachd_http(&pfs, &req)) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

fn text(status: u16, content_type: &str, body: String) -> Response<crate::http::Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(crate::http::full(body))
        .expect("valid response")
}

fn redirect(to: String) -> Response<crate::http::Body> {
    let body = format!("<a href=\"{to}\">Moved Permanently</a>.\n\n");
    Response::builder()
        .status(301)
        .header("location", to)
        .header("content-type", "text/html; charset=utf-8")
        .body(crate::http::full(body))
        .expect("valid response")
}

fn pachd_http(pfs: &crate::pfs::Pfs, req: &Request<Incoming>) -> Response<crate::http::Body> {
    let path = req.uri().path();
    if path == "/healthz" {
        return text(200, "text/plain; charset=utf-8", "healthy\n".into());
    }
    if path == "/pfs" || path == "/archive" || path == "/api" || path == "/jsonschema" {
        // Go's ServeMux sends a subtree's bare name to the subtree.
        return redirect(format!("{path}/"));
    }
    if path.starts_with("/pfs/") {
        return file_server(pfs, req);
    }
    if ["/archive/", "/api/", "/jsonschema/"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        return text(
            501,
            "text/plain; charset=utf-8",
            format!("{path} is pachd's, but not served by the fake pachd\n"),
        );
    }
    text(
        404,
        "text/plain; charset=utf-8",
        "404 page not found\n".into(),
    )
}

/// pachd's file server (src/internal/fileserver in 2.11): GET and HEAD of
/// `/pfs/<project>/<repo>/<commit|branch>/<path...>`; plain-text errors
/// with gRPC codes mapped to HTTP (NotFound 404, others 500).
fn file_server(pfs: &crate::pfs::Pfs, req: &Request<Incoming>) -> Response<crate::http::Body> {
    let error = |status: u16, message: String| text(status, "text/plain", message);
    let head = req.method() == http::Method::HEAD;
    if !(head || req.method() == http::Method::GET) {
        return error(
            405,
            format!("unknown HTTP method {:?}", req.method().as_str()),
        );
    }
    let path = req.uri().path();
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() == 5 && !parts[4].is_empty() {
        return redirect(format!("{path}/"));
    }
    if parts.len() < 6 {
        return error(
            404,
            format!(
                "invalid URL; expecting /pfs/<project>/<repo>/<commit|branch>/<path...>, got {path}"
            ),
        );
    }
    let (project, repo, commitish) = (parts[2], parts[3], parts[4]);
    let file = parts[5..].join("/");
    let cache = if crate::pfs::is_commit_id(commitish) {
        "private"
    } else {
        "private, no-cache"
    };
    let entry = match pfs.lookup(project, repo, commitish, &file) {
        Ok(entry) => entry,
        Err(status) => {
            let code = match status.code() {
                tonic::Code::NotFound => 404,
                tonic::Code::Unauthenticated => 401,
                tonic::Code::PermissionDenied => 403,
                _ => 500,
            };
            return error(
                code,
                format!(
                    "problem inspecting file: rpc error: code = {:?} desc = {}",
                    status.code(),
                    status.message()
                ),
            );
        }
    };
    match entry {
        crate::pfs::PathEntry::Dir(entries) => {
            if !path.ends_with('/') {
                return redirect(format!("{path}/"));
            }
            let mut listing = String::new();
            for (p, dir, size) in entries {
                listing.push_str(&format!("{}\t{size}\t{p}\n", if dir { "d" } else { "-" }));
            }
            let mut resp = text(200, "text/plain; charset=utf-8", listing);
            resp.headers_mut()
                .insert("cache-control", http::HeaderValue::from_static(cache));
            resp
        }
        crate::pfs::PathEntry::File(bytes) => {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut hasher);
            let builder = Response::builder()
                .status(200)
                .header("cache-control", cache)
                .header("vary", "authn-token")
                .header("etag", format!("\"{:016x}\"", hasher.finish()))
                .header("accept-ranges", "bytes")
                .header("content-type", sniff(&bytes))
                .header("content-length", bytes.len());
            let body = if head { Vec::new() } else { bytes };
            builder
                .body(crate::http::full(body))
                .expect("valid response")
        }
    }
}

/// The content type Go's http server gives a body that names none
/// (net/http DetectContentType), for the kinds a test writes.
fn sniff(bytes: &[u8]) -> &'static str {
    let start = bytes
        .iter()
        .position(|b| !b" \t\n\r\x0c".contains(b))
        .map_or(&[][..], |i| &bytes[i..]);
    let lower: Vec<u8> = start.iter().take(14).map(u8::to_ascii_lowercase).collect();
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(b"%PDF-") {
        "application/pdf"
    } else if lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html") {
        "text/html; charset=utf-8"
    } else if bytes
        .iter()
        .take(512)
        .any(|b| matches!(b, 0x00..=0x08 | 0x0b | 0x0e..=0x1a | 0x1c..=0x1f))
    {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_get_the_content_type_go_would_sniff() {
        assert_eq!(sniff(b"a tabby cat\n"), "text/plain; charset=utf-8");
        assert_eq!(sniff(b""), "text/plain; charset=utf-8");
        assert_eq!(sniff(b"  <!DOCTYPE html><p>"), "text/html; charset=utf-8");
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0"), "image/png");
        assert_eq!(sniff(&[0, 1, 2, 3]), "application/octet-stream");
    }

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
