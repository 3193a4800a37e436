//! The HTTP side: accepting connections, the proxy's `/_proxy/*` control
//! endpoints, and the path of one AWS call (count, latency, auth and fault
//! injection, then EKS handling or plain forwarding to moto).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::addons::Addons;
use crate::errors;
use crate::faults::{Faults, Script, Scripted, Verdict};
use crate::identify::{identify, Call};
use crate::lifecycle::{Lifecycle, Timings};
use crate::stats::Stats;
use crate::upstream::{self, Answer, HttpClient};

/// State shared by every connection.
pub struct Shared {
    pub upstream: String,
    pub timings: Timings,
    pub latency: Duration,
    pub reject_access_keys: HashSet<String>,
    pub expired_access_keys: HashSet<String>,
    pub client: HttpClient,
    pub stats: Mutex<Stats>,
    pub faults: Mutex<Faults>,
    pub script: Mutex<Script>,
    pub lifecycle: Mutex<Lifecycle>,
    pub addons: Mutex<Addons>,
}

/// Locks, ignoring poisoning: a panicked handler leaves counters and maps
/// usable, and a test double should keep answering.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn stats(&self) -> MutexGuard<'_, Stats> {
        lock(&self.stats)
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    pub fn script(&self) -> MutexGuard<'_, Script> {
        lock(&self.script)
    }

    pub fn lifecycle(&self) -> MutexGuard<'_, Lifecycle> {
        lock(&self.lifecycle)
    }

    pub fn addons(&self) -> MutexGuard<'_, Addons> {
        lock(&self.addons)
    }

    /// Sends the request to moto unchanged.
    pub async fn forward(&self, parts: &Parts, body: Bytes) -> anyhow::Result<Answer> {
        let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        upstream::send(
            &self.client,
            &self.upstream,
            parts.method.clone(),
            path_and_query,
            &parts.headers,
            body,
        )
        .await
    }

    /// Asks moto for the cluster, signed as the client's request was.
    pub async fn describe_cluster_upstream(
        &self,
        parts: &Parts,
        cluster: &str,
    ) -> anyhow::Result<Answer> {
        let mut headers = HeaderMap::new();
        for (name, value) in parts.headers.iter() {
            let n = name.as_str();
            if n == "host" || n == "authorization" || n == "user-agent" || n.starts_with("x-amz-") {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.remove("x-amz-target");
        upstream::send(
            &self.client,
            &self.upstream,
            Method::GET,
            &format!("/clusters/{cluster}"),
            &headers,
            Bytes::new(),
        )
        .await
    }

    /// Forgets every count and every resource of the proxy's own, and
    /// restarts the fault sequence from the seed.
    pub fn reset_state(&self) {
        *self.stats() = Stats::default();
        *self.lifecycle() = Lifecycle::default();
        *self.addons() = Addons::default();
        *self.script() = Script::default();
        self.faults().reseed();
    }

    /// Resets moto (`POST /moto-api/reset`).
    pub async fn reset_upstream(&self) -> anyhow::Result<()> {
        let answer = upstream::send(
            &self.client,
            &self.upstream,
            Method::POST,
            "/moto-api/reset",
            &HeaderMap::new(),
            Bytes::new(),
        )
        .await?;
        anyhow::ensure!(
            answer.status.is_success(),
            "moto reset answered {}",
            answer.status
        );
        Ok(())
    }
}

/// Moto's answer, or 502 when moto cannot be reached.
pub fn pass(answer: anyhow::Result<Answer>) -> Response<Full<Bytes>> {
    match answer {
        Ok(a) => a.into_response(),
        Err(e) => text(
            StatusCode::BAD_GATEWAY,
            format!("howdah-aws-proxy: moto did not answer: {e:#}\n"),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json_response(value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Accepts connections until the task is aborted; aborting it also ends
/// every connection (they live in its JoinSet).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| handle(shared.clone(), req));
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("connection ended: {e}");
            }
        });
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
}

/// Why a connection is closed without an answer (a scripted fault).
#[derive(Debug)]
struct Dropped(String);

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection dropped after {} (scripted fault)", self.0)
    }
}

impl std::error::Error for Dropped {}

/// Serves one request; an error closes the connection without an answer.
async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                format!("howdah-aws-proxy: could not read the request body: {e}\n"),
            ))
        }
    };
    let path = parts.uri.path();
    if path.starts_with("/_proxy/") {
        return Ok(control(&shared, &parts, &body).await);
    }
    if path.starts_with("/moto-api") {
        return Ok(pass(shared.forward(&parts, body).await));
    }
    // AWS carries out a request it received even when the caller goes
    // away before the answer (a run killed mid-call). Served in a task of
    // its own, the call is not cancelled with a dropped connection: moto's
    // work and the proxy's record of it (a node group deleted) stay in step.
    let call = tokio::spawn(async move { aws_call(&shared, parts, body).await });
    match call.await {
        Ok(answer) => answer,
        Err(e) => Ok(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("howdah-aws-proxy: the call failed: {e}\n"),
        )),
    }
}

/// `POST /_proxy/script`: `{"operation": "ec2:CreateVpc", "times": 1,
/// "fault": {"mode": "lose_response"}}`.
#[derive(Deserialize)]
struct ScriptRequest {
    operation: String,
    times: u32,
    fault: Scripted,
}

#[derive(Deserialize)]
struct FaultRates {
    throttle_percent: Option<u32>,
    error_percent: Option<u32>,
}

async fn control(shared: &Shared, parts: &Parts, body: &[u8]) -> Response<Full<Bytes>> {
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/_proxy/stats") => {
            json_response(serde_json::to_value(&*shared.stats()).unwrap_or_default())
        }
        (&Method::POST, "/_proxy/faults") => {
            let rates: FaultRates = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!("expected {{\"throttle_percent\": N, \"error_percent\": N}}: {e}\n"),
                    )
                }
            };
            let mut faults = shared.faults();
            let (throttle, error) = faults.rates();
            faults.set(
                rates.throttle_percent.unwrap_or(throttle),
                rates.error_percent.unwrap_or(error),
            );
            let (throttle_percent, error_percent) = faults.rates();
            json_response(json!({
                "throttle_percent": throttle_percent,
                "error_percent": error_percent,
            }))
        }
        (&Method::POST, "/_proxy/script") => {
            let request: ScriptRequest = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!("expected {{\"operation\": \"ec2:CreateVpc\", \"times\": N, \"fault\": {{\"mode\": \"lose_response\" | \"drop_connection\" | \"refuse\", ...}}}}: {e}\n"),
                    )
                }
            };
            shared
                .script()
                .set(&request.operation, request.fault, request.times);
            json_response(json!({}))
        }
        (&Method::POST, "/_proxy/reset") => {
            shared.reset_state();
            match shared.reset_upstream().await {
                Ok(()) => json_response(json!({})),
                Err(e) => text(StatusCode::BAD_GATEWAY, format!("{e:#}\n")),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "howdah-aws-proxy: control endpoints are GET /_proxy/stats, POST /_proxy/faults, POST /_proxy/script, POST /_proxy/reset\n"
                .to_string(),
        ),
    }
}

async fn aws_call(
    shared: &Shared,
    parts: Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let call: Call = identify(
        &parts.method,
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        &parts.headers,
        &body,
    );
    tracing::debug!(call = %call.key(), "aws call");
    *shared.stats().calls.entry(call.key()).or_insert(0) += 1;
    if !shared.latency.is_zero() {
        tokio::time::sleep(shared.latency).await;
    }
    if let Some(key) = &call.access_key {
        let refusal = if shared.reject_access_keys.contains(key) {
            Some(errors::rejected_key(call.protocol))
        } else if shared.expired_access_keys.contains(key) {
            Some(errors::expired_key(call.protocol))
        } else {
            None
        };
        if let Some(error) = refusal {
            shared.stats().auth_failures += 1;
            return Ok(error.into_response(call.protocol));
        }
    }
    let scripted = shared.script().take(&call.key());
    if let Some(Scripted::Refuse {
        status,
        code,
        message,
    }) = &scripted
    {
        shared.stats().errors += 1;
        return Ok(
            errors::AwsError::new(*status, code.clone(), message.clone())
                .into_response(call.protocol),
        );
    }
    if scripted.is_none() {
        match shared.faults().draw() {
            Verdict::Throttle => {
                shared.stats().throttled += 1;
                return Ok(errors::throttling(call.protocol).into_response(call.protocol));
            }
            Verdict::Error => {
                shared.stats().errors += 1;
                return Ok(errors::internal(call.protocol).into_response(call.protocol));
            }
            Verdict::Pass => {}
        }
    }
    let answer = if call.service == "eks" {
        crate::eks::handle(shared, &call, &parts, body).await
    } else {
        pass(shared.forward(&parts, body).await)
    };
    // The call was carried out; what the caller hears of it is lost.
    match scripted {
        Some(Scripted::LoseResponse) => {
            shared.stats().errors += 1;
            Ok(errors::internal(call.protocol).into_response(call.protocol))
        }
        Some(Scripted::DropConnection) => {
            shared.stats().errors += 1;
            Err(Dropped(call.key()))
        }
        _ => Ok(answer),
    }
}
