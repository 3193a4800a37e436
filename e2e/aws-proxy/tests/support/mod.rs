//! A plain-HTTP AWS client for the self-tests: requests carry a
//! SigV4-shaped `Authorization` header with the right credential scope
//! (moto does not check signatures, and neither does the proxy).

#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use howdah_aws_proxy::{Moto, Proxy, ProxyOptions};
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub const ACCESS_KEY: &str = "AKIDHOWDAHTEST";

/// moto plus a proxy in front of it.
pub struct Env {
    pub moto: Moto,
    pub proxy: Proxy,
    pub aws: Aws,
}

/// Starts moto and a proxy with `options` (whose upstream is filled in).
pub async fn start(options: ProxyOptions) -> Env {
    let moto = Moto::start()
        .await
        .expect("moto must be installed for these tests");
    let proxy = Proxy::start(ProxyOptions {
        upstream: moto.url().to_string(),
        ..options
    })
    .await
    .expect("proxy starts");
    let aws = Aws::new(&proxy.url());
    Env { moto, proxy, aws }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One complete answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The EKS error code (from `x-amzn-ErrorType`).
    pub fn error_type(&self) -> &str {
        self.header("x-amzn-errortype").unwrap_or("")
    }
}

#[derive(Clone)]
pub struct Aws {
    client: Client<HttpConnector, Full<Bytes>>,
    pub base: String,
    pub access_key: String,
    pub region: String,
}

impl Aws {
    pub fn new(base: &str) -> Aws {
        Aws {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.trim_end_matches('/').to_string(),
            access_key: ACCESS_KEY.to_string(),
            region: "us-east-1".to_string(),
        }
    }

    pub fn with_key(&self, access_key: &str) -> Aws {
        Aws {
            access_key: access_key.to_string(),
            ..self.clone()
        }
    }

    /// A signed-looking request to `service`.
    pub async fn call(
        &self,
        service: &str,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/20240101/{}/{}/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123456789abcdef",
            self.access_key, self.region, service
        );
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path_and_query))
            .header("authorization", authorization)
            .header("x-amz-date", "20240101T000000Z");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        self.send(builder.body(Full::new(body.into())).expect("request"))
            .await
    }

    /// An unsigned request (control endpoints, moto's own API).
    pub async fn plain(&self, method: Method, path: &str, body: impl Into<Bytes>) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .body(Full::new(body.into()))
            .expect("request");
        self.send(request).await
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Reply {
        let response = self.client.request(request).await.expect("proxy answers");
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.collect().await.expect("body").to_bytes(),
        }
    }

    /// EKS (REST-JSON).
    pub async fn eks(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.call(
            "eks",
            method,
            path,
            &[("content-type", "application/json")],
            body,
        )
        .await
    }

    /// A query-protocol call (ec2, iam, sts) with a form body.
    pub async fn query(&self, service: &str, form: &str) -> Reply {
        self.call(
            service,
            Method::POST,
            "/",
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            form.to_string(),
        )
        .await
    }

    pub async fn s3(&self, method: Method, path: &str, body: impl Into<Bytes>) -> Reply {
        self.call("s3", method, path, &[], body).await
    }

    pub async fn tagging(&self, operation: &str, body: &str) -> Reply {
        let target = format!("ResourceGroupsTaggingAPI_20170126.{operation}");
        self.call(
            "tagging",
            Method::POST,
            "/",
            &[
                ("x-amz-target", target.as_str()),
                ("content-type", "application/x-amz-json-1.1"),
            ],
            body.to_string(),
        )
        .await
    }

    pub async fn create_cluster(&self, name: &str) -> Reply {
        self.eks(
            Method::POST,
            "/clusters",
            Some(serde_json::json!({
                "name": name,
                "version": "1.31",
                "roleArn": "arn:aws:iam::123456789012:role/cluster",
                "resourcesVpcConfig": { "subnetIds": ["subnet-1", "subnet-2"] },
            })),
        )
        .await
    }

    pub async fn create_nodegroup(&self, cluster: &str, name: &str) -> Reply {
        self.eks(
            Method::POST,
            &format!("/clusters/{cluster}/node-groups"),
            Some(serde_json::json!({
                "nodegroupName": name,
                "nodeRole": "arn:aws:iam::123456789012:role/node",
                "subnets": ["subnet-1"],
            })),
        )
        .await
    }

    pub async fn describe_cluster(&self, name: &str) -> Reply {
        self.eks(Method::GET, &format!("/clusters/{name}"), None)
            .await
    }
}
