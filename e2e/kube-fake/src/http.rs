//! The HTTP server: connection handling, URL routing (discovery, resource
//! paths, the fake's own `/fake/*` control endpoints), request accounting
//! (read/write counters and the request log), and response helpers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{header, Method, Request, Response};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::errors::ApiError;
use crate::resources::{self, ResourceType};
use crate::store::Store;

pub type Body = BoxBody<Bytes, std::io::Error>;

/// One API request as the fake saw it (control endpoints excluded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub content_type: Option<String>,
    pub status: u16,
}

/// Read/write request counts since start or the last reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub reads: u64,
    pub writes: u64,
    /// Requests answered with an injected fault.
    pub faults: u64,
}

pub struct Shared {
    pub store: Arc<Store>,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub requests: Mutex<Vec<RequestRecord>>,
    pub shutdown: CancellationToken,
    /// host:port, for discovery's serverAddressByClientCIDRs.
    pub address: String,
    /// Every Nth API request fails (0: never); see `FakeOptions::fault_every`.
    pub fault_every: u64,
    /// See `FakeOptions::node_unreachable`.
    pub node_unreachable: bool,
    /// API requests seen, for fault injection.
    pub seen: AtomicU64,
    /// Faults injected so far.
    pub faults: AtomicU64,
    /// What the pachd stand-ins keep in their object store.
    pub pfs: Arc<crate::pfs::Pfs>,
}

impl Shared {
    pub fn stats(&self) -> Stats {
        Stats {
            reads: self.reads.load(Ordering::SeqCst),
            writes: self.writes.load(Ordering::SeqCst),
            faults: self.faults.load(Ordering::SeqCst),
        }
    }

    pub fn reset_stats(&self) {
        self.reads.store(0, Ordering::SeqCst);
        self.writes.store(0, Ordering::SeqCst);
        self.faults.store(0, Ordering::SeqCst);
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

pub fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(serde_json::to_vec(v).unwrap_or_default()))
        .expect("valid response")
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    if e.is_page_not_found() {
        return Response::builder()
            .status(404)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header("X-Content-Type-Options", "nosniff")
            .body(full("404 page not found\n"))
            .expect("valid response");
    }
    json_response(e.code, &e.to_status())
}

pub fn text_response(code: u16, text: String) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(full(text))
        .expect("valid response")
}

/// Accepts connections until shutdown; each connection may upgrade (port-forward).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let shared = shared.clone();
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
        // Reap finished connections so the set does not grow without bound.
        while conns.try_join_next().is_some() {}
    }
    conns.abort_all();
}

pub type Query = HashMap<String, String>;

fn parse_query(q: Option<&str>) -> Query {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// A resolved resource URL.
#[derive(Debug, Clone)]
pub struct Route {
    pub rt: &'static ResourceType,
    pub ns: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
    /// Legacy `/watch/` path prefix.
    pub watch: bool,
}

enum Target {
    Doc(Value),
    Resource(Route),
}

fn resolve(path: &str, address: &str) -> Result<Target, ApiError> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Ok(Target::Doc(resources::version_doc())),
        ["api"] => return Ok(Target::Doc(resources::core_versions(address))),
        ["apis"] => return Ok(Target::Doc(resources::group_list())),
        ["openapi", "v3"] => return Ok(Target::Doc(resources::openapi_v3_root())),
        ["openapi", "v3", "api", "v1"] => {
            return resources::openapi_v3_gv("", "v1")
                .map(Target::Doc)
                .ok_or_else(ApiError::no_route)
        }
        ["openapi", "v3", "apis", g, v] => {
            return resources::openapi_v3_gv(g, v)
                .map(Target::Doc)
                .ok_or_else(ApiError::no_route)
        }
        ["apis", g] => {
            return resources::group_doc(g)
                .map(Target::Doc)
                .ok_or_else(ApiError::page_not_found)
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::page_not_found()),
    };
    if !resources::has_group_version(group, version) {
        // An unserved group/version is not an API path at all: plain-text
        // 404 (kube-recordings 20-probes seq 6).
        return Err(ApiError::page_not_found());
    }
    let (watch, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let find = |p: &str| resources::find(group, version, p).ok_or_else(ApiError::no_route);
    let s = |x: &&str| Some(x.to_string());
    let route = match rest {
        [] => {
            return resources::resource_list(group, version)
                .map(Target::Doc)
                .ok_or_else(ApiError::no_route)
        }
        ["namespaces", ns, plural, tail @ ..]
            if resources::find(group, version, plural).is_some_and(|r| r.namespaced) =>
        {
            let rt = find(plural)?;
            match tail {
                [] => Route {
                    rt,
                    ns: s(ns),
                    name: None,
                    sub: None,
                    watch,
                },
                [name] => Route {
                    rt,
                    ns: s(ns),
                    name: s(name),
                    sub: None,
                    watch,
                },
                [name, sub] => Route {
                    rt,
                    ns: s(ns),
                    name: s(name),
                    sub: s(sub),
                    watch,
                },
                _ => return Err(ApiError::no_route()),
            }
        }
        [plural] => Route {
            rt: find(plural)?,
            ns: None,
            name: None,
            sub: None,
            watch,
        },
        [plural, name] => {
            let rt = find(plural)?;
            if rt.namespaced {
                return Err(ApiError::no_route());
            }
            Route {
                rt,
                ns: None,
                name: s(name),
                sub: None,
                watch,
            }
        }
        [plural, name, sub] => {
            let rt = find(plural)?;
            if rt.namespaced {
                return Err(ApiError::no_route());
            }
            Route {
                rt,
                ns: None,
                name: s(name),
                sub: s(sub),
                watch,
            }
        }
        _ => return Err(ApiError::no_route()),
    };
    if let Some(sub) = &route.sub {
        let ok = (sub == "status" && route.rt.has_status)
            || (sub == "finalize" && route.rt.plural == "namespaces")
            || route.rt.extra_subresources.contains(&sub.as_str());
        if !ok {
            return Err(ApiError::no_route());
        }
    }
    Ok(Target::Resource(route))
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if let Some(control) = path.strip_prefix("/fake/") {
        return control_endpoint(&shared, req.method(), control);
    }
    let method = req.method().clone();
    let record_path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match method {
        Method::GET => shared.reads.fetch_add(1, Ordering::SeqCst),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
            shared.writes.fetch_add(1, Ordering::SeqCst)
        }
        _ => 0,
    };
    let resp = match injected_fault(&shared) {
        Some(fault) => fault,
        None => dispatch(&shared, req, &path).await,
    };
    tracing::debug!(%method, path = %record_path, status = resp.status().as_u16(), "request");
    shared
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(RequestRecord {
            method: method.to_string(),
            path: record_path,
            content_type,
            status: resp.status().as_u16(),
        });
    resp
}

/// The injected failure for this request, if it is one of every Nth.
fn injected_fault(shared: &Shared) -> Option<Response<Body>> {
    if shared.fault_every == 0 {
        return None;
    }
    let n = shared.seen.fetch_add(1, Ordering::SeqCst) + 1;
    if !n.is_multiple_of(shared.fault_every) {
        return None;
    }
    let k = shared.faults.fetch_add(1, Ordering::SeqCst);
    let (code, reason, message) = if k.is_multiple_of(2) {
        (
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        )
    } else {
        (
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        )
    };
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "details": {"retryAfterSeconds": 1}, "code": code});
    Some(
        Response::builder()
            .status(code)
            .header(header::CONTENT_TYPE, "application/json")
            .header("Retry-After", "1")
            .body(full(serde_json::to_vec(&status).unwrap_or_default()))
            .expect("valid response"),
    )
}

fn control_endpoint(shared: &Shared, method: &Method, path: &str) -> Response<Body> {
    match (method, path) {
        (&Method::GET, "stats") => json_response(200, &json!(shared.stats())),
        (&Method::POST, "stats/reset") => {
            shared.reset_stats();
            json_response(200, &json!(shared.stats()))
        }
        (&Method::GET, "requests") => json_response(200, &json!(shared.requests())),
        _ => json_response(404, &json!({"error": "unknown fake control endpoint"})),
    }
}

async fn dispatch(shared: &Arc<Shared>, req: Request<Incoming>, path: &str) -> Response<Body> {
    let target = match resolve(path, &shared.address) {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    let route = match target {
        Target::Doc(doc) if req.method() == Method::GET => return json_response(200, &doc),
        Target::Doc(_) => return error_response(&ApiError::method_not_allowed()),
        Target::Resource(r) => r,
    };
    let query = parse_query(req.uri().query());
    if route.sub.as_deref() == Some("portforward") {
        return crate::portforward::handle(shared, &route, &query, req).await;
    }
    if req.method() == Method::GET
        && route.name.is_none()
        && !route.watch
        && !matches!(query.get("watch").map(String::as_str), Some("true" | "1"))
    {
        if let Err(e) = list_resource_version(shared, &query).await {
            return error_response(&e);
        }
    }
    let header_text = |name: header::HeaderName, missing: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(missing)
            .to_string()
    };
    let accept = header_text(header::ACCEPT, "");
    let content_type = header_text(header::CONTENT_TYPE, "");
    let user_agent = header_text(header::USER_AGENT, "unknown");
    let method = req.method().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error_response(&ApiError::bad_request(format!("reading body: {e}"))),
    };
    let call = crate::handlers::Call {
        route,
        query,
        accept,
        content_type,
        user_agent,
        body,
    };
    let result = match method {
        Method::GET => crate::handlers::get(shared, &call),
        Method::POST => crate::handlers::post(shared, &call),
        Method::PUT => crate::handlers::put(shared, &call),
        Method::PATCH => crate::handlers::patch(shared, &call),
        Method::DELETE => crate::handlers::delete(shared, &call),
        _ => Err(ApiError::method_not_allowed()),
    };
    match result {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// A list at a given resourceVersion. One the store has not reached yet
/// waits about 3 s for it, then fails with 504 Timeout (kube-recordings
/// 20-probes seq 93). An `Exact` match on an older one needs a snapshot the
/// fake does not keep; the real server answers 410 once etcd has compacted
/// it (seq 95), and so does the fake for every older one.
async fn list_resource_version(shared: &Shared, query: &Query) -> Result<(), ApiError> {
    let Some(rv) = query.get("resourceVersion").filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    if rv == "0" {
        return Ok(());
    }
    let Ok(want) = rv.parse::<u64>() else {
        return Err(ApiError::bad_request(format!(
            "invalid resource version: {rv}"
        )));
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let current = shared.store.lock().rv;
        if want <= current {
            let exact = query.get("resourceVersionMatch").map(String::as_str) == Some("Exact");
            if exact && want < current {
                return Err(ApiError::gone(
                    "The resourceVersion for the provided list is too old.",
                ));
            }
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::rv_too_large(rv, current));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// 200/201 JSON helper used by handlers.
pub fn created_or_ok(created: bool, v: &Value) -> Response<Body> {
    json_response(if created { 201 } else { 200 }, v)
}
