//! Talking to moto: the HTTP client, forwarding a request unchanged, and
//! the buffered answer the proxy may rewrite before passing it on.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A complete upstream response.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Replaces the body with `value` (and its length); keeps status and headers.
    pub fn with_json(mut self, value: &Value) -> Answer {
        self.body = Bytes::from(value.to_string());
        self.headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(self.body.len() as u64),
        );
        self
    }

    /// A synthetic 200 JSON answer with the headers of `like` (request id, server).
    pub fn ok_json(like: &Answer, value: &Value) -> Answer {
        let mut headers = HeaderMap::new();
        for (name, v) in like.headers.iter() {
            if name.as_str().starts_with("x-amzn") && name.as_str() != "x-amzn-errortype" {
                headers.append(name.clone(), v.clone());
            }
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Answer {
            status: StatusCode::OK,
            headers,
            body: Bytes::new(),
        }
        .with_json(value)
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = without_hop_by_hop(&self.headers);
        response
    }
}

/// Sends `method path_and_query` to `base` with `headers` and `body` exactly
/// as given, and buffers the answer.
pub async fn send(
    client: &HttpClient,
    base: &str,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> anyhow::Result<Answer> {
    let uri: Uri = format!("{}{}", base.trim_end_matches('/'), path_and_query).parse()?;
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = without_hop_by_hop(headers);
    let response = client.request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1),
/// plus `Expect`, which hyper has already answered for the client.
fn without_hop_by_hop(headers: &HeaderMap) -> HeaderMap {
    const HOP_BY_HOP: [&str; 9] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    let named_by_connection: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || n == "expect" || named_by_connection.contains(name) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_headers_and_those_named_by_connection() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-private"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("host", HeaderValue::from_static("127.0.0.1:1"));
        h.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 x"),
        );
        let out = without_hop_by_hop(&h);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["host", "authorization"]);
    }
}
