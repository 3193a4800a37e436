//! `pods/{name}/portforward` over WebSocket, as the apiserver proxies the
//! kubelet: subprotocol `v4.channel.k8s.io` (kube-rs offers v5 and v4; the
//! kubelet's port-forward only speaks v4), per requested port i a data
//! channel 2i and an error channel 2i+1, the first frame on each carrying
//! the port as two little-endian bytes, then `[channel, payload...]` binary
//! frames. Ports with no server behind them get an error message on their
//! error channel ("connection refused"), like a real kubelet. Behind the
//! ports: pachd's gRPC and HTTP servers, the console, pachyderm-proxy.

use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{header, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, WriteHalf};
use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role, Message};
use tokio_tungstenite::WebSocketStream;

use crate::errors::ApiError;
use crate::http::{error_response, full, Body, Query, Route, Shared};
use crate::store::{name_of, ns_of, uid_of};

/// The stand-in that answers on one port of one pod.
pub(crate) enum Backend {
    /// pachd's gRPC API (1650, and the peer port 1653), of this pod.
    Pachd(crate::pachd::Version, Box<Value>, u16),
    /// pachd's HTTP server (1659): file preview and download.
    PachdHttp,
    Console,
    /// pachyderm-proxy's listener on this port of this pod.
    Proxy(Box<Value>, u16),
}

/// What answers on `port` of this pod, by its containers' images.
pub(crate) fn backend_for(pod: &Value, port: u16) -> Option<Backend> {
    let images: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["image"].as_str()).collect())
        .unwrap_or_default();
    let find = |needle: &str| images.iter().find(|i| i.contains(needle)).copied();
    match (port, find("pachd"), find("haberdashery"), find("envoy")) {
        (1650 | 1653, Some(img), _, _) => Some(Backend::Pachd(
            crate::pachd::version_from_image(img),
            Box::new(pod.clone()),
            port,
        )),
        (1659, Some(_), _, _) => Some(Backend::PachdHttp),
        (4000, _, Some(_), _) => Some(Backend::Console),
        (8080, _, _, Some(_)) => Some(Backend::Proxy(Box::new(pod.clone()), port)),
        _ => None,
    }
}

/// Starts the stand-in for `backend` on one connection.
pub(crate) fn serve_backend(
    backend: Backend,
    io: DuplexStream,
    store: &Arc<crate::store::Store>,
    pfs: &Arc<crate::pfs::Pfs>,
) {
    match backend {
        // As pachd: with a certificate at /pachd-tls-cert its public port
        // speaks only TLS (the peer port stays plain); with auth activated
        // its file API wants the caller's token.
        Backend::Pachd(_, pod, 1650) if crate::pachd::serves_tls(&pod) => {
            tokio::spawn(crate::pachd::refuse_plain_text(io))
        }
        Backend::Pachd(v, pod, _) => {
            let token = crate::pachd::root_token(&pod, store);
            tokio::spawn(crate::pachd::serve_pachd(io, v, pfs.clone(), token))
        }
        Backend::PachdHttp => tokio::spawn(crate::pachd::serve_pachd_http(io, pfs.clone())),
        Backend::Console => tokio::spawn(crate::pachd::serve_console(io)),
        Backend::Proxy(pod, port) => tokio::spawn(crate::proxy::serve_proxy(
            io,
            crate::proxy::ProxyContext {
                store: store.clone(),
                pfs: pfs.clone(),
                pod: *pod,
                port,
            },
        )),
    };
}

fn pick_protocol(offered: &str) -> Option<&'static str> {
    let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
    ["v4.channel.k8s.io", "channel.k8s.io"]
        .into_iter()
        .find(|p| offered.contains(p))
}

pub async fn handle(
    shared: &Arc<Shared>,
    route: &Route,
    query: &Query,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let prt = route.rt;
    let name = route.name.clone().unwrap_or_default();
    let pod = match shared.store.lock().get(prt, route.ns.as_deref(), &name) {
        Some(p) => p.clone(),
        None => return error_response(&ApiError::not_found(prt, &name)),
    };
    if shared.node_unreachable {
        return error_response(&ApiError::node_unreachable());
    }
    let ports: Vec<u16> = match query.get("ports").map(|p| {
        p.split(',')
            .map(|x| x.trim().parse::<u16>())
            .collect::<Result<Vec<_>, _>>()
    }) {
        Some(Ok(p)) if !p.is_empty() => p,
        _ => {
            return error_response(&ApiError::bad_request(
                "at least one valid port must be specified (ports=N)",
            ))
        }
    };
    if pod["status"]["phase"] != "Running" || crate::store::is_terminating(&pod) {
        let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
        return error_response(&ApiError::bad_request(format!(
            "unable to upgrade connection: pod {name} is not running - status: {phase}"
        )));
    }
    let headers = req.headers();
    let is_ws = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec());
    let (true, Some(key)) = (is_ws, key) else {
        return error_response(&ApiError::bad_request(
            "unable to upgrade connection: this fake only supports WebSocket port-forwarding",
        ));
    };
    let offered = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Some(protocol) = pick_protocol(&offered) else {
        return error_response(&ApiError::bad_request(format!(
            "unable to upgrade connection: none of the offered subprotocols {offered:?} is supported (v4.channel.k8s.io)"
        )));
    };
    let upgrade = hyper::upgrade::on(&mut req);
    let shutdown = shared.shutdown.clone();
    let pfs = shared.pfs.clone();
    let store = shared.store.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = forward(ws, pod, ports, store, pfs) => {}
        }
    });
    Response::builder()
        .status(101)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(&key))
        .header(header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(full(Bytes::new()))
        .expect("valid response")
}

fn frame(channel: u8, payload: &[u8]) -> Message {
    let mut v = Vec::with_capacity(payload.len() + 1);
    v.push(channel);
    v.extend_from_slice(payload);
    Message::binary(v)
}

async fn forward<S>(
    ws: WebSocketStream<S>,
    pod: Value,
    ports: Vec<u16>,
    store: Arc<crate::store::Store>,
    pfs: Arc<crate::pfs::Pfs>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u8, Option<Bytes>)>(64);
    let mut writers: Vec<Option<WriteHalf<DuplexStream>>> = Vec::new();
    let mut open = 0usize;
    for (i, port) in ports.iter().enumerate() {
        let (data_ch, err_ch) = (2 * i as u8, 2 * i as u8 + 1);
        let le = port.to_le_bytes();
        if sink.send(frame(data_ch, &le)).await.is_err()
            || sink.send(frame(err_ch, &le)).await.is_err()
        {
            return;
        }
        let Some(backend) = backend_for(&pod, *port) else {
            let msg = format!(
                "error forwarding port {port} to pod {}, uid : failed to connect to localhost:{port} inside namespace \"{}\", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused IPv6 dial tcp6 [::1]:{port}: connect: connection refused ",
                uid_of(&pod),
                ns_of(&pod)
            );
            tracing::debug!(
                pod = name_of(&pod),
                port,
                "port-forward to a port nothing serves"
            );
            let _ = sink.send(frame(err_ch, msg.as_bytes())).await;
            writers.push(None);
            continue;
        };
        let (ours, theirs) = tokio::io::duplex(256 * 1024);
        serve_backend(backend, theirs, &store, &pfs);
        let (mut reader, writer) = tokio::io::split(ours);
        writers.push(Some(writer));
        open += 1;
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send((data_ch, None)).await;
                        return;
                    }
                    Ok(n) => {
                        if tx
                            .send((data_ch, Some(Bytes::copy_from_slice(&buf[..n]))))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
    }
    drop(tx);
    // Every port failed: the kubelet ends the stream.
    if open == 0 {
        let _ = sink.send(Message::Close(None)).await;
        return;
    }
    loop {
        tokio::select! {
            from_backend = rx.recv() => match from_backend {
                Some((ch, Some(data))) => {
                    if sink.send(frame(ch, &data)).await.is_err() {
                        return;
                    }
                }
                Some((_, None)) => {
                    open -= 1;
                    if open == 0 {
                        let _ = sink.send(Message::Close(None)).await;
                        return;
                    }
                }
                None => return,
            },
            from_client = stream.next() => match from_client {
                Some(Ok(Message::Binary(b))) if b.len() > 1 => {
                    let ch = b[0] as usize;
                    if ch.is_multiple_of(2) {
                        if let Some(Some(w)) = writers.get_mut(ch / 2) {
                            if w.write_all(&b[1..]).await.is_err() {
                                writers[ch / 2] = None;
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    for w in writers.iter_mut().flatten() {
                        let _ = w.shutdown().await;
                    }
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
}
