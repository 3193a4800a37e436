//! Port-forwarding with kube-rs's `Api::<Pod>::portforward` to the pachd
//! gRPC stand-in (health and GetVersion through tonic), the console, and a
//! port with nothing behind it.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use howdah_kube_fake::PachdVersion;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::wait::{await_condition, conditions};
use kube::Api;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

fn pod(name: &str, image: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": image}]}})
}

async fn running(api: &Api<Pod>, name: &str) {
    let wait = await_condition(api.clone(), name, conditions::is_pod_running());
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("pod runs")
        .unwrap();
}

/// A tonic channel whose one connection is the port-forwarded stream.
async fn channel_over(stream: DuplexStream) -> tonic::transport::Channel {
    let slot = Arc::new(Mutex::new(Some(stream)));
    tonic::transport::Endpoint::from_static("http://pachd.fake")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let s = slot.lock().unwrap().take();
            async move {
                s.map(TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("stream already used"))
            }
        }))
        .await
        .expect("channel")
}

#[tokio::test]
async fn portforward_reaches_pachd_grpc() {
    let h = start().await;
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), "default");
    apply(
        &pods,
        "howdah",
        &pod("pachd-0", "docker.io/pachyderm/pachd:2.11.6-rc1"),
    )
    .await
    .unwrap();
    running(&pods, "pachd-0").await;

    let mut pf = pods
        .portforward("pachd-0", &[1650])
        .await
        .expect("port-forward upgrades");
    let stream = pf.take_stream(1650).unwrap();
    let channel = channel_over(stream).await;

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        resp.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let version: tonic::Response<PachdVersion> = grpc
        .unary(
            tonic::Request::new(()),
            http::uri::PathAndQuery::from_static("/versionpb_v2.API/GetVersion"),
            tonic_prost::ProstCodec::<(), PachdVersion>::default(),
        )
        .await
        .unwrap();
    let v = version.into_inner();
    assert_eq!(
        (v.major, v.minor, v.micro, v.additional.as_str()),
        (2, 11, 6, "-rc1")
    );
}

#[tokio::test]
async fn portforward_to_console_and_to_a_closed_port() {
    let h = start().await;
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), "default");
    apply(
        &pods,
        "howdah",
        &pod("console", "pachyderm/haberdashery:2.11.6"),
    )
    .await
    .unwrap();
    running(&pods, "console").await;

    let mut pf = pods.portforward("console", &[4000]).await.unwrap();
    let mut s = pf.take_stream(4000).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: console\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("console"), "{out}");

    let mut pf = pods.portforward("console", &[9999]).await.unwrap();
    let err = pf.take_error(9999).unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), err)
        .await
        .unwrap()
        .expect("error message");
    assert!(msg.contains("connection refused"), "{msg}");

    // Port-forwarding to a pod that does not exist is a 404.
    assert!(pods.portforward("nope", &[1650]).await.is_err());
}
