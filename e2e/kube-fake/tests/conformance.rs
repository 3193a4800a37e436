//! Conformance: replays the recorded requests of a real kube-apiserver
//! v1.26.0 (the shared kube-recordings beside the checkout,
//! `../shared/kube-recordings`; see its README.md) against a fresh fake and compares the SHAPE of each answer
//! with the recorded one: status code, media type, the Status fields clients
//! branch on, which keys exist and which are absent (recursively), the
//! managedFields entries, and for watches the event types in order.
//!
//! Volatile values (uids, resourceVersions, timestamps, generated names,
//! cluster IPs, ...) are not compared, but their presence is. Every exchange
//! that is not compared strictly is named in `DIVERGENT` with its reason, and
//! the test prints one summary line per file. Nothing is skipped silently:
//! an exchange neither compared nor listed fails the test.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use howdah_kube_fake::{FakeCluster, FakeOptions};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// The table of exchanges not compared strictly.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// Not sent to the fake at all.
    Skip,
    /// Sent (the state that follows depends on it), answer not compared.
    Unchecked,
    /// Sent; only the status code class is compared.
    Loose,
    /// A polling GET: re-sent (as the client polls) until the fake answers
    /// the recorded status, then compared strictly. Listed because the number
    /// of polls and the moment of the answer depend on timing. When the fake
    /// already answers what the poll ended with (404: gone), that counts.
    Poll,
    /// Compared strictly except the objects' `status` (of the body, of list
    /// items, of watch events), which depends on how far a controller got
    /// at that moment.
    StatusVolatile,
    /// Like Settle (re-sent until equal, at most 15 s), comparing all but
    /// the objects' `status`: lists of pods that the controllers are still
    /// creating.
    SettleNoStatus,
    /// A read of state that controllers converge to (readiness, binding):
    /// re-sent until it compares equal, for at most 15 s, then compared
    /// strictly. Listed because when the state is reached depends on timing.
    Settle,
}

struct Divergent {
    file: &'static str,
    /// Inclusive seq ranges.
    seqs: &'static [(u32, u32)],
    how: How,
    why: &'static str,
}

const DIVERGENT: &[Divergent] = &[
    // ---- 20-probes
    Divergent {
        file: "20-probes",
        seqs: &[(1, 1)],
        how: How::Loose,
        why: "/version: the fake reports its own build (different fields and values by design)",
    },
    Divergent {
        file: "20-probes",
        seqs: &[(2, 5)],
        how: How::Loose,
        why: "discovery documents: the fake serves only the resources it emulates (fewer groups, resources and verbs)",
    },
    Divergent {
        file: "20-probes",
        seqs: &[(53, 53), (56, 56), (60, 60), (69, 69)],
        how: How::Settle,
        why: "reads of state the controllers/kubelet converge to (claim bound, StatefulSet/Deployment ready, pod running): waited for",
    },
    Divergent {
        file: "20-probes",
        seqs: &[(64, 66)],
        how: How::Poll,
        why: "deletion poll: the GC finishes the foreground delete after a timing-dependent delay",
    },
    Divergent {
        file: "20-probes",
        seqs: &[(63, 63)],
        how: How::StatusVolatile,
        why: "second DELETE during a foreground cascade: the Deployment's status shows how far the cascade got (timing)",
    },
    Divergent {
        file: "20-probes",
        seqs: &[(70, 70), (77, 77)],
        how: How::Unchecked,
        why: "pod logs: the fake simulates a kubelet that serves logs; the recording had none (500 no preferred addresses / connection refused)",
    },
    Divergent {
        file: "20-probes",
        seqs: &[(73, 74), (76, 76), (78, 79)],
        how: How::Unchecked,
        why: "port-forward: the fake simulates a kubelet (WebSocket upgrade, refused ports on the error channel; no SPDY); the recording had none, so every attempt got 500",
    },
    Divergent {
        file: "20-probes",
        seqs: &[(103, 108)],
        how: How::Poll,
        why: "namespace-termination poll: the namespace controller's speed differs (real 5-7 s)",
    },
    // ---- howdah's scenarios (01-09)
    Divergent {
        file: "02-up-fresh",
        seqs: &[(100, 100), (102, 102), (104, 104), (106, 106), (108, 108), (110, 110), (112, 112), (114, 114), (116, 116), (118, 118), (120, 120), (122, 122), (124, 124)],
        how: How::Skip,
        why: PORT_FORWARD_WHY,
    },
    Divergent {
        file: "03-status",
        seqs: &[(13, 13), (15, 15), (17, 17), (19, 19), (21, 21), (23, 23), (25, 25)],
        how: How::Skip,
        why: PORT_FORWARD_WHY,
    },
    Divergent {
        file: "04-up-noop",
        seqs: &[(13, 13), (15, 15), (17, 17), (19, 19), (21, 21), (23, 23), (25, 25), (27, 27), (29, 29), (31, 31), (33, 33), (35, 35), (37, 37)],
        how: How::Skip,
        why: PORT_FORWARD_WHY,
    },
    Divergent {
        file: "06-up-etcd-resize",
        seqs: &[(20, 20), (22, 22), (24, 24), (26, 26), (28, 28), (30, 30), (32, 32), (34, 34), (36, 36), (38, 38), (40, 40), (42, 42), (44, 44), (46, 46)],
        how: How::Skip,
        why: PORT_FORWARD_WHY,
    },
    Divergent {
        file: "07-drift-repair",
        seqs: &[(30, 30), (32, 32), (34, 34), (36, 36), (38, 38), (40, 40), (42, 42), (44, 44), (46, 46), (48, 48), (50, 50), (52, 52), (54, 54), (56, 56)],
        how: How::Skip,
        why: PORT_FORWARD_WHY,
    },
    Divergent {
        file: "02-up-fresh",
        seqs: &[(59, 59), (63, 63), (70, 71), (76, 77), (87, 88), (90, 91), (96, 97)],
        how: How::StatusVolatile,
        why: READINESS_WHY,
    },
    Divergent {
        file: "06-up-etcd-resize",
        seqs: &[(18, 18)],
        how: How::StatusVolatile,
        why: READINESS_WHY,
    },
    Divergent {
        file: "07-drift-repair",
        seqs: &[(27, 28)],
        how: How::StatusVolatile,
        why: READINESS_WHY,
    },
    Divergent {
        file: "02-up-fresh",
        seqs: &[(78, 78), (89, 89), (98, 99), (101, 101), (103, 103), (105, 105), (107, 107), (109, 109), (111, 111), (113, 113), (115, 115), (117, 117), (119, 119), (121, 121), (123, 123)],
        how: How::SettleNoStatus,
        why: PODS_WHY,
    },
    Divergent {
        file: "03-status",
        seqs: &[(12, 12), (14, 14), (16, 16), (18, 18), (20, 20), (22, 22), (24, 24)],
        how: How::SettleNoStatus,
        why: PODS_WHY,
    },
    Divergent {
        file: "04-up-noop",
        seqs: &[(12, 12), (14, 14), (16, 16), (18, 18), (20, 20), (22, 22), (24, 24), (26, 26), (28, 28), (30, 30), (32, 32), (34, 34), (36, 36)],
        how: How::SettleNoStatus,
        why: PODS_WHY,
    },
    Divergent {
        file: "06-up-etcd-resize",
        seqs: &[(19, 19), (21, 21), (23, 23), (25, 25), (27, 27), (29, 29), (31, 31), (33, 33), (35, 35), (37, 37), (39, 39), (41, 41), (43, 43), (45, 45)],
        how: How::SettleNoStatus,
        why: PODS_WHY,
    },
    Divergent {
        file: "07-drift-repair",
        seqs: &[(29, 29), (31, 31), (33, 33), (35, 35), (37, 37), (39, 39), (41, 41), (43, 43), (45, 45), (47, 47), (49, 49), (51, 51), (53, 53), (55, 55)],
        how: How::SettleNoStatus,
        why: PODS_WHY,
    },
    Divergent {
        file: "06-up-etcd-resize",
        seqs: &[(15, 16)],
        how: How::Poll,
        why: DELETE_POLL_WHY,
    },
    Divergent {
        file: "08-down-keep-data",
        seqs: &[(21, 23), (28, 34), (39, 39), (45, 45), (48, 48), (50, 64), (69, 75)],
        how: How::Poll,
        why: DELETE_POLL_WHY,
    },
    Divergent {
        file: "09-down-delete-data",
        seqs: &[(20, 20), (24, 25), (27, 31)],
        how: How::Poll,
        why: DELETE_POLL_WHY,
    },
];

const PORT_FORWARD_WHY: &str = "port-forward to pachd: the fake serves a pachd stand-in through its simulated kubelet (101 + gRPC); the recording had no kubelet (500 no preferred addresses). Not sent";
const READINESS_WHY: &str = "readiness wait (list by fieldSelector + watch from its resourceVersion): the workload status at that moment depends on controller timing; all but status compared, and the watch's event types";
const PODS_WHY: &str = "pod list while waiting (readiness, port-forward retries): waited until the fake's pods exist; all but status compared (pod status depends on the kubelet's timing)";
const DELETE_POLL_WHY: &str = "GET poll after a delete: re-sent until the recorded status (the GC/namespace controller speed differs); all but status compared";

/// Fields a real kubelet writes that the recording's simulated kubelet (an
/// API client patching pod status) did not: a fake that simulates a kubelet
/// keeps them. An exchange where one of these made the only difference is
/// counted as listed, with this reason.
const KUBELET_FIELDS: &[&str] = &[
    ".status.podIP",
    ".status.podIPs",
    ".status.containerStatuses[].containerID",
];
const KUBELET_WHY: &str =
    "pod status has podIP/podIPs/containerID, which a real kubelet sets and the recording's simulated kubelet did not";

fn divergent(file: &str, seq: u32) -> Option<&'static Divergent> {
    DIVERGENT
        .iter()
        .find(|d| d.file == file && d.seqs.iter().any(|(a, b)| (*a..=*b).contains(&seq)))
}

// ---------------------------------------------------------------------------
// Recordings.

#[derive(Debug, Clone)]
struct Rec {
    seq: u32,
    t_ms: u64,
    note: String,
    method: String,
    path: String,
    query: Vec<(String, String)>,
    content_type: Option<String>,
    accept: Option<String>,
    body: Value,
    upgrade_headers: Vec<(String, String)>,
    status: u16,
    resp_ct: Option<String>,
    resp_body: Value,
    watch_events: Option<Vec<Value>>,
    client_closed: bool,
    elapsed_ms: f64,
}

fn recordings_dir() -> PathBuf {
    match std::env::var_os("KUBE_RECORDINGS") {
        Some(d) => PathBuf::from(d),
        // The workspace root's sibling, as CI lays it out; read in place
        // so newer recordings are never shadowed by a stale copy.
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kube-recordings"),
    }
}

fn load(file: &str) -> Vec<Rec> {
    let path = recordings_dir().join(format!("{file}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e} (the kube recordings live in shared/ beside the checkout; set KUBE_RECORDINGS to their folder)",
            path.display()
        )
    });
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let r: Value = serde_json::from_str(l).expect("recording line is JSON");
            let req = &r["request"];
            let resp = &r["response"];
            let mut query = Vec::new();
            if let Some(q) = req["query"].as_object() {
                for (k, v) in q {
                    match v {
                        Value::Array(vs) => {
                            for v in vs {
                                query.push((k.clone(), v.as_str().unwrap_or_default().into()))
                            }
                        }
                        v => query.push((k.clone(), v.as_str().unwrap_or_default().into())),
                    }
                }
            }
            let s = |v: &Value| v.as_str().map(str::to_string);
            Rec {
                seq: r["seq"].as_u64().expect("seq") as u32,
                t_ms: r["t_ms"].as_u64().unwrap_or(0),
                note: r["note"].as_str().unwrap_or_default().to_string(),
                method: req["method"].as_str().expect("method").to_string(),
                path: req["path"].as_str().expect("path").to_string(),
                query,
                content_type: s(&req["headers"]["content-type"]),
                accept: s(&req["headers"]["accept"]),
                body: req["body"].clone(),
                upgrade_headers: req["upgrade_headers"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().into()))
                            .collect()
                    })
                    .unwrap_or_default(),
                status: resp["status"].as_u64().expect("status") as u16,
                resp_ct: s(&resp["headers"]["content-type"]),
                resp_body: resp["body"].clone(),
                watch_events: r["watch_events"].as_array().cloned(),
                client_closed: r["client_closed_stream"].as_bool().unwrap_or(false),
                elapsed_ms: r["elapsed_ms"].as_f64().unwrap_or(0.0),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client (one connection per request).

struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Value,
    /// Watch events, when the request was a watch.
    events: Option<Vec<Value>>,
    elapsed: Duration,
}

fn media_type(ct: &Option<String>) -> Option<String> {
    ct.as_ref()
        .map(|c| c.split(';').next().unwrap_or_default().trim().to_string())
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

struct Sent {
    user_agent: Option<&'static str>,
    method: String,
    uri: String,
    content_type: Option<String>,
    accept: Option<String>,
    body: Vec<u8>,
    upgrade_headers: Vec<(String, String)>,
    /// Read a watch stream: stop after `max_events` non-bookmark events
    /// (client hang-up) or when the server ends it, bounded by `deadline`.
    watch: Option<(usize, Duration)>,
}

async fn send(addr: &str, s: Sent) -> Answer {
    let started = Instant::now();
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to fake");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http handshake");
    let conn_task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut b = http::Request::builder()
        .method(s.method.as_str())
        .uri(&s.uri)
        .header("host", addr);
    if let Some(ua) = s.user_agent {
        b = b.header("user-agent", ua);
    }
    if let Some(ct) = &s.content_type {
        b = b.header("content-type", ct);
    }
    if let Some(a) = &s.accept {
        b = b.header("accept", a);
    }
    for (k, v) in &s.upgrade_headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let req = b.body(Full::new(Bytes::from(s.body))).expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = resp.into_body();
    let mut raw = Vec::new();
    let mut events = None;
    match s.watch {
        Some((max_events, deadline)) if status == 200 => {
            let mut evs: Vec<Value> = Vec::new();
            let mut buf: Vec<u8> = Vec::new();
            let end = tokio::time::Instant::now() + deadline;
            loop {
                let frame = tokio::time::timeout_at(end, body.frame()).await;
                match frame {
                    Ok(Some(Ok(f))) => {
                        if let Some(d) = f.data_ref() {
                            buf.extend_from_slice(d);
                        }
                        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = buf.drain(..=i).collect();
                            if line.iter().all(u8::is_ascii_whitespace) {
                                continue;
                            }
                            evs.push(serde_json::from_slice(&line).expect("watch event JSON"));
                        }
                        let real = evs.iter().filter(|e| e["type"] != "BOOKMARK").count();
                        if real >= max_events {
                            break;
                        }
                    }
                    Ok(Some(Err(_))) | Ok(None) => break,
                    Err(_) => break,
                }
            }
            events = Some(evs);
        }
        _ => {
            if let Ok(c) = body.collect().await {
                raw = c.to_bytes().to_vec();
            }
        }
    }
    let elapsed = started.elapsed();
    conn_task.abort();
    let body = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()))
    };
    Answer {
        status,
        content_type,
        body,
        events,
        elapsed,
    }
}

// ---------------------------------------------------------------------------
// Normalisation of recorded values to the fake's world.

/// Recorded volatile values (resourceVersions, continue tokens, generated
/// names) mapped to the fake's values, learned from earlier answers.
#[derive(Default)]
struct Learned {
    values: HashMap<String, String>,
}

impl Learned {
    fn map(&self, s: &str) -> String {
        let s = normalise_name(s);
        self.values.get(&s).cloned().unwrap_or(s)
    }

    fn map_value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.map(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.map_value(x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.map_value(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn learn(&mut self, rec: &Value, fake: &Value) {
        match (rec, fake) {
            (Value::Object(r), Value::Object(f)) => {
                for k in ["resourceVersion", "continue", "uid"] {
                    if let (Some(Value::String(a)), Some(Value::String(b))) = (r.get(k), f.get(k)) {
                        self.values.insert(a.clone(), b.clone());
                    }
                }
                for (k, rv) in r {
                    if let Some(fv) = f.get(k) {
                        self.learn(rv, fv);
                    }
                }
            }
            (Value::Array(r), Value::Array(f)) => {
                for (a, b) in r.iter().zip(f) {
                    self.learn(a, b);
                }
            }
            _ => {}
        }
    }

    fn learn_name(&mut self, rec: &str, fake: &str) {
        if rec != fake {
            self.values.insert(rec.to_string(), fake.to_string());
        }
    }
}

/// The recording's simulated node was `fake-node-1`; the fake seeds `fake-node`.
/// Marks a comparison whose only differences were KUBELET_FIELDS.
const KUBELET_MARK: &str = "<kubelet fields only>";

fn normalise_name(s: &str) -> String {
    if s == "fake-node-1" {
        "fake-node".to_string()
    } else {
        s.to_string()
    }
}

// ---------------------------------------------------------------------------
// Shape comparison.

/// Keys whose values are compared exactly (after normalisation); every other
/// scalar is compared by JSON type only.
fn value_compared(path: &str, key: &str) -> bool {
    matches!(
        key,
        "kind"
            | "apiVersion"
            | "reason"
            | "code"
            | "manager"
            | "operation"
            | "fieldsType"
            | "subresource"
            | "type"
            | "phase"
            | "propagationPolicy"
    ) || (key == "status" && !path.contains(".spec"))
        || (key == "field" && path.contains("causes"))
        || (key == "group" && path.ends_with("details"))
        || path.ends_with("metadata.finalizers")
        || path.ends_with("spec.finalizers")
        || (key == "name" && path.ends_with("details"))
        || (key == "namespace" && path.ends_with(".metadata"))
}

/// Paths whose content is opaque (only presence compared).
fn opaque(path: &str) -> bool {
    path.ends_with(".fieldsV1")
        || path.contains(".annotations")
        || path.ends_with(".managedFields[].time")
}

/// Managers that stand for the cluster's own actors. The recording's
/// simulated kubelet wrote with kubectl; the fake's with its own names.
fn normalise_manager(m: &str) -> String {
    match m {
        "kubectl-patch" | "kubectl" | "kubelet" | "howdah-kube-fake" | "kubectl-label" => {
            "<kubelet>".to_string()
        }
        other => other.to_string(),
    }
}

/// `body.status`, `body.items[x].status` or `watch[i].object.status`.
fn is_object_status(path: &str) -> bool {
    path == "body.status"
        || (path.starts_with("body.items[") && path.ends_with("].status"))
        || (path.starts_with("watch[") && path.ends_with("].object.status"))
}

struct Cmp<'a> {
    learned: &'a Learned,
    diffs: Vec<String>,
    /// A list served from the watch cache (resourceVersion=0): items in no
    /// defined order (fact 5), compared by name.
    unordered: bool,
    /// A KUBELET_FIELDS difference was let through.
    kubelet_fields: bool,
    /// Ignore the top-level `status` of objects.
    no_status: bool,
}

impl Cmp<'_> {
    fn diff(&mut self, path: &str, what: String) {
        if self.no_status && later_in_life(path) && what.contains("absent in the recording") {
            return;
        }
        if what.contains("absent in the recording")
            && KUBELET_FIELDS.iter().any(|k| path.ends_with(k))
        {
            self.kubelet_fields = true;
            return;
        }
        self.diffs.push(format!("{path}: {what}"));
    }

    fn shape(&mut self, path: &str, key: &str, rec: &Value, fake: &Value) {
        if opaque(path) {
            return;
        }
        if self.no_status && rec.is_object() && is_object_status(path) {
            return;
        }
        match (rec, fake) {
            (Value::Object(r), Value::Object(f)) => {
                let keys: BTreeSet<&String> = r.keys().chain(f.keys()).collect();
                for k in keys {
                    let p = format!("{path}.{k}");
                    match (r.get(k), f.get(k)) {
                        (Some(a), Some(b)) => self.shape(&p, k, a, b),
                        (Some(_), None) => {
                            self.diff(&p, "present in the recording, absent in the fake".into())
                        }
                        (None, Some(_)) => {
                            self.diff(&p, "absent in the recording, present in the fake".into())
                        }
                        (None, None) => {}
                    }
                }
            }
            (Value::Array(r), Value::Array(f)) => {
                if key == "items" {
                    return self.items(path, r, f);
                }
                if key == "managedFields" {
                    return self.managed_fields(path, r, f);
                }
                if value_compared(path, key) {
                    let a: Vec<Value> = r.iter().map(|x| self.learned.map_value(x)).collect();
                    if &a != f {
                        self.diff(path, format!("recorded {a:?}, fake {f:?}"));
                    }
                    return;
                }
                if r.len() != f.len() {
                    self.diff(
                        path,
                        format!("recorded {} elements, fake {}", r.len(), f.len()),
                    );
                    return;
                }
                for (a, b) in r.iter().zip(f) {
                    self.shape(&format!("{path}[]"), key, a, b);
                }
            }
            (a, b) => {
                let t = |v: &Value| match v {
                    Value::Null => "null",
                    Value::Bool(_) => "bool",
                    Value::Number(_) => "number",
                    Value::String(_) => "string",
                    Value::Array(_) => "array",
                    Value::Object(_) => "object",
                };
                if t(a) != t(b) {
                    self.diff(path, format!("recorded {} {a}, fake {} {b}", t(a), t(b)));
                    return;
                }
                if value_compared(path, key) {
                    let a = self.learned.map_value(a);
                    let (a, b) = if key == "manager" {
                        (
                            json!(normalise_manager(a.as_str().unwrap_or_default())),
                            json!(normalise_manager(b.as_str().unwrap_or_default())),
                        )
                    } else {
                        (a, b.clone())
                    };
                    if a != b {
                        self.diff(path, format!("recorded {a}, fake {b}"));
                    }
                }
            }
        }
    }

    /// List items: same names in the same order (etcd lists are in name
    /// order, fact 5), each compared recursively.
    fn items(&mut self, path: &str, r: &[Value], f: &[Value]) {
        // Generated names (pods of a ReplicaSet) are volatile: such items are
        // named by their generateName with the template hash blanked.
        let name = |v: &Value| {
            let meta = &v["metadata"];
            match meta["generateName"].as_str() {
                Some(g) => {
                    let hash = meta["labels"]["pod-template-hash"]
                        .as_str()
                        .unwrap_or("\u{0}");
                    format!("{}*", g.replace(hash, "*"))
                }
                None => meta["name"].as_str().unwrap_or_default().to_string(),
            }
        };
        let mut r: Vec<&Value> = r.iter().collect();
        let mut f: Vec<&Value> = f.iter().collect();
        if self.unordered {
            r.sort_by_key(|v| self.learned.map(&name(v)));
            f.sort_by_key(|v| name(v));
        }
        let rn: Vec<String> = r.iter().map(|v| self.learned.map(&name(v))).collect();
        let fnames: Vec<String> = f.iter().map(|v| name(v)).collect();
        if rn != fnames {
            self.diff(
                path,
                format!("recorded items {rn:?}, fake items {fnames:?}"),
            );
            return;
        }
        for (a, b) in r.into_iter().zip(f) {
            self.shape(&format!("{path}[{}]", name(b)), "", a, b);
        }
    }

    /// managedFields: the same (manager, operation, subresource) entries, in
    /// order, each with the same keys.
    fn managed_fields(&mut self, path: &str, r: &[Value], f: &[Value]) {
        let id = |v: &Value| {
            format!(
                "{}/{}/{}",
                normalise_manager(v["manager"].as_str().unwrap_or_default()),
                v["operation"].as_str().unwrap_or_default(),
                v["subresource"].as_str().unwrap_or_default()
            )
        };
        let ri: Vec<String> = r.iter().map(id).collect();
        let fi: Vec<String> = f.iter().map(id).collect();
        // A pod caught later in its life has more writers (scheduler binding,
        // kubelet status) than the recorded one: a prefix is enough then.
        let progressed = self.no_status && fi.len() > ri.len() && fi[..ri.len()] == ri[..];
        if ri != fi && !progressed {
            self.diff(
                path,
                format!("recorded entries {ri:?}, fake entries {fi:?}"),
            );
            return;
        }
        for (a, b) in r.iter().zip(f) {
            self.shape(&format!("{path}[]"), "", a, b);
        }
    }
}

/// In status-volatile comparisons, a pod already bound to the node.
fn later_in_life(path: &str) -> bool {
    path.ends_with(".spec.nodeName")
}

// ---------------------------------------------------------------------------
// Replay.

struct Pending {
    seq: u32,
    rec: Rec,
    how: Option<How>,
    handle: tokio::task::JoinHandle<Answer>,
}

struct Replay {
    file: &'static str,
    addr: String,
    learned: Learned,
    /// Last list resourceVersion per path, recorded and fake (watches start from it).
    compared: usize,
    listed: BTreeMap<u32, (How, &'static str)>,
    failures: Vec<String>,
    /// Failed exchanges that are not in the table.
    failed_unlisted: usize,
    pending: Vec<Pending>,
}

fn is_watch(r: &Rec) -> bool {
    r.watch_events.is_some()
        || (r.status == 200
            && (r.query.iter().any(|(k, v)| k == "watch" && v == "true")
                || r.path.contains("/watch/")))
}

impl Replay {
    fn sent(&self, r: &Rec) -> Sent {
        let mut uri = normalise_name(&r.path)
            .split('/')
            .map(|seg| self.learned.map(seg))
            .collect::<Vec<_>>()
            .join("/");
        if !r.query.is_empty() {
            let q: Vec<String> = r
                .query
                .iter()
                .map(|(k, v)| {
                    // Keep deliberate rv values (1, 0, far future); map learned ones.
                    let v = self.learned.map(v);
                    format!("{}={}", enc(k), enc(&v))
                })
                .collect();
            uri = format!("{uri}?{}", q.join("&"));
        }
        let body = match &r.body {
            Value::Null => Vec::new(),
            Value::String(s) => self.learned.map(s).into_bytes(),
            v => serde_json::to_vec(&self.learned.map_value(v)).expect("json"),
        };
        let watch = is_watch(r).then(|| {
            let rec_events = r
                .watch_events
                .as_ref()
                .map(|e| e.iter().filter(|e| e["type"] != "BOOKMARK").count())
                .unwrap_or(0);
            let max = if r.client_closed {
                rec_events.max(1)
            } else {
                usize::MAX
            };
            let timeout = r
                .query
                .iter()
                .find(|(k, _)| k == "timeoutSeconds")
                .and_then(|(_, v)| v.parse::<u64>().ok())
                .unwrap_or(30);
            let deadline = if r.client_closed {
                Duration::from_millis((r.elapsed_ms as u64).max(1000) + 3_000)
            } else {
                Duration::from_secs(timeout + 5)
            };
            (max, deadline)
        });
        Sent {
            // The probes were made with curl (its User-Agent names the field
            // manager, fact 15); howdah's client sent none ("unknown").
            user_agent: (self.file == "20-probes").then_some("curl/8.5.0"),
            method: r.method.clone(),
            uri,
            content_type: r.content_type.clone(),
            accept: r.accept.clone(),
            body,
            upgrade_headers: r.upgrade_headers.clone(),
            watch,
        }
    }

    fn check(&mut self, r: &Rec, a: &Answer, how: Option<How>) {
        let diffs = self.diffs(r, a, how);
        self.record(r, a, how, diffs);
    }

    fn diffs(&self, r: &Rec, a: &Answer, how: Option<How>) -> Vec<String> {
        let mut cmp = Cmp {
            learned: &self.learned,
            diffs: Vec::new(),
            unordered: false,
            kubelet_fields: false,
            no_status: matches!(
                how,
                Some(How::Poll | How::StatusVolatile | How::SettleNoStatus)
            ),
        };
        if how == Some(How::Unchecked) {
            return Vec::new();
        }
        if how == Some(How::Loose) {
            if r.status / 100 != a.status / 100 {
                cmp.diff(
                    "status",
                    format!("recorded {}, fake {}", r.status, a.status),
                );
            }
        } else {
            if r.status != a.status {
                cmp.diff(
                    "status",
                    format!("recorded {}, fake {}", r.status, a.status),
                );
            }
            if media_type(&r.resp_ct) != media_type(&a.content_type) {
                cmp.diff(
                    "content-type",
                    format!("recorded {:?}, fake {:?}", r.resp_ct, a.content_type),
                );
            }
            match (&r.watch_events, &a.events) {
                (Some(re), Some(fe)) => compare_events(&mut cmp, r, re, fe, a.elapsed),
                (Some(_), None) => cmp.diff("watch", "recorded a stream, fake did not".into()),
                _ => {
                    cmp.unordered = r
                        .query
                        .iter()
                        .any(|(k, v)| k == "resourceVersion" && v == "0");
                    cmp.shape("body", "", &r.resp_body, &a.body)
                }
            }
        }
        if cmp.kubelet_fields && cmp.diffs.is_empty() && how.is_none() {
            cmp.diffs.push(KUBELET_MARK.to_string());
        }
        cmp.diffs
    }

    fn record(&mut self, r: &Rec, a: &Answer, how: Option<How>, mut diffs: Vec<String>) {
        let mut listed_now = false;
        if diffs == [KUBELET_MARK] {
            diffs.clear();
            self.listed.insert(r.seq, (How::Loose, KUBELET_WHY));
            listed_now = true;
        }
        if diffs.is_empty() {
            if listed_now {
                // Counted as listed (KUBELET_FIELDS).
            } else if how.is_none() {
                self.compared += 1;
            }
        } else {
            if how.is_none() {
                self.failed_unlisted += 1;
            }
            self.failures.push(format!(
                "{} seq {} {} {} ({}):\n    {}",
                self.file,
                r.seq,
                r.method,
                r.path,
                r.note,
                diffs.join("\n    ")
            ));
        }
        // Learn volatile values in any case so later requests can refer to them.
        if let (Some(re), Some(fe)) = (&r.watch_events, &a.events) {
            for (x, y) in re.iter().zip(fe) {
                self.learned.learn(x, y);
            }
        } else {
            self.learned.learn(&r.resp_body, &a.body);
            learn_generated_names(&mut self.learned, &r.resp_body, &a.body);
        }
    }

    async fn finish_ended_before(&mut self, t_ms: u64) {
        let (done, open): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.rec.t_ms + p.rec.elapsed_ms as u64 <= t_ms);
        self.pending = open;
        for p in done {
            let a = p.handle.await.expect("watch task");
            self.check(&p.rec, &a, p.how);
        }
    }

    async fn finish_pending(&mut self) {
        for p in std::mem::take(&mut self.pending) {
            let a = p.handle.await.expect("watch task");
            let _ = p.seq;
            self.check(&p.rec, &a, p.how);
        }
    }

    async fn run(&mut self, recs: &[Rec]) {
        for r in recs {
            let d = divergent(self.file, r.seq);
            if let Some(d) = d {
                self.listed.insert(r.seq, (d.how, d.why));
                if d.how == How::Skip {
                    continue;
                }
            }
            let how = d.map(|d| d.how);
            if is_watch(r) {
                // Watches run concurrently with the requests that follow
                // (the recorded writes happened while the stream was open).
                let sent = self.sent(r);
                let addr = self.addr.clone();
                let handle = tokio::spawn(send_owned(addr, sent));
                self.pending.push(Pending {
                    seq: r.seq,
                    rec: r.clone(),
                    how,
                    handle,
                });
                tokio::time::sleep(Duration::from_millis(150)).await;
                // Without later writes, finish it now so the order of
                // events stays that of the recording.
                continue;
            }
            // Requests recorded after a watch ended wait for it.
            self.finish_ended_before(r.t_ms).await;
            if how == Some(How::Poll) {
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    let a = send(&self.addr, self.sent(r)).await;
                    if a.status == 404 && r.status == 200 {
                        // The fake finished sooner than the real cluster.
                        break;
                    }
                    if a.status == r.status || Instant::now() > deadline {
                        self.check(r, &a, how);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
            if matches!(
                how,
                Some(How::Settle | How::SettleNoStatus | How::StatusVolatile)
            ) && !is_watch(r)
                && (how != Some(How::StatusVolatile) || r.method == "GET")
            {
                // StatusVolatile reads also get a moment for the controller
                // to have reacted at all (the real one took ~50 ms).
                let secs = if how == Some(How::StatusVolatile) {
                    3
                } else {
                    15
                };
                let deadline = Instant::now() + Duration::from_secs(secs);
                loop {
                    let a = send(&self.addr, self.sent(r)).await;
                    let ok = self.diffs(r, &a, how).is_empty();
                    if ok || Instant::now() > deadline {
                        self.check(r, &a, how);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
            let a = send(&self.addr, self.sent(r)).await;
            self.check(r, &a, how);
        }
        self.finish_pending().await;
    }
}

/// Changes the recorded scenarios made outside the recorder, done again
/// here before the file is replayed.
async fn out_of_band(file: &str, addr: &str) {
    if file == "07-drift-repair" {
        // "Deployment pachd deleted out of band (kubectl straight to the
        // apiserver, not recorded)" (recordings README): kubectl's default
        // background deletion, then wait until it is gone.
        let path = "/apis/apps/v1/namespaces/pachyderm/deployments/pachd";
        let plain = |method: &str| Sent {
            user_agent: Some("kubectl/v1.26.0"),
            method: method.to_string(),
            uri: path.to_string(),
            content_type: None,
            accept: None,
            body: Vec::new(),
            upgrade_headers: Vec::new(),
            watch: None,
        };
        let a = send(addr, plain("DELETE")).await;
        assert_eq!(a.status, 200, "out-of-band delete of deployment pachd");
        let deadline = Instant::now() + Duration::from_secs(15);
        while send(addr, plain("GET")).await.status != 404 {
            assert!(Instant::now() < deadline, "deployment pachd not gone");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn send_owned(addr: String, s: Sent) -> Answer {
    send(&addr, s).await
}

/// Items the real server named with random suffixes (pods, ReplicaSets) are
/// matched to the fake's by position within a list.
fn learn_generated_names(l: &mut Learned, rec: &Value, fake: &Value) {
    if let (Some(ri), Some(fi)) = (rec["items"].as_array(), fake["items"].as_array()) {
        for (a, b) in ri.iter().zip(fi) {
            if let (Some(x), Some(y)) = (
                a["metadata"]["name"].as_str(),
                b["metadata"]["name"].as_str(),
            ) {
                if a["metadata"]["generateName"].is_string() {
                    l.learn_name(x, y);
                }
            }
        }
    }
}

fn compare_events(cmp: &mut Cmp, r: &Rec, re: &[Value], fe: &[Value], elapsed: Duration) {
    let types = |es: &[Value]| -> Vec<String> {
        es.iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let named = |es: &[Value]| -> Vec<String> {
        es.iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["type"].as_str().unwrap_or_default(),
                    e["object"]["metadata"]["name"].as_str().unwrap_or_default()
                )
            })
            .collect()
    };
    let rt = types(re);
    let ft = types(fe);
    // The initial synthetic ADDED events come in no defined order (fact 27):
    // compare them as a set, by name.
    let initial = |es: &[Value]| -> Vec<String> {
        let mut v: Vec<String> = es
            .iter()
            .take_while(|e| e["type"] == "ADDED")
            .map(|e| {
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    };
    let no_rv = !r
        .query
        .iter()
        .any(|(k, v)| k == "resourceVersion" && v != "0");
    if cmp.no_status && r.client_closed {
        // A readiness wait: howdah hung up once an event showed readiness.
        // How many status updates come before that depends on timing (none
        // when the fake was ready by the time of the list), so the fake's
        // events only have to be changes of the watched object, each shaped
        // like the recorded last one.
        let last = re.last().expect("recorded events");
        for (i, e) in fe.iter().enumerate() {
            if !matches!(e["type"].as_str(), Some("MODIFIED" | "ADDED")) {
                cmp.diff("watch.types", format!("fake sent {:?}", named(fe)));
            }
            cmp.shape(&format!("watch[{i}]"), "", last, e);
        }
        return;
    }
    if rt != ft {
        cmp.diff(
            "watch.types",
            format!("recorded {:?}, fake {:?}", named(re), named(fe)),
        );
        return;
    }
    if no_rv {
        let a: Vec<String> = initial(re).iter().map(|n| cmp.learned.map(n)).collect();
        let b = initial(fe);
        if a != b {
            cmp.diff("watch.initial", format!("recorded {a:?}, fake {b:?}"));
        }
    }
    let mut re_sorted: Vec<&Value> = re.iter().collect();
    let mut fe_sorted: Vec<&Value> = fe.iter().collect();
    if no_rv {
        let n = re_sorted
            .iter()
            .take_while(|e| e["type"] == "ADDED")
            .count();
        let key = |e: &&Value| {
            e["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        re_sorted[..n].sort_by_key(|e| cmp.learned.map(&key(e)));
        fe_sorted[..n].sort_by_key(key);
    }
    for (i, (a, b)) in re_sorted.into_iter().zip(fe_sorted).enumerate() {
        cmp.shape(&format!("watch[{i}]"), "", a, b);
    }
    // A stream the server ended by itself (timeoutSeconds) must end in the fake too.
    if !r.client_closed && re.last().is_none_or(|e| e["type"] != "ERROR") {
        let want = Duration::from_millis(r.elapsed_ms as u64);
        if elapsed + Duration::from_millis(1500) < want || elapsed > want + Duration::from_secs(3) {
            cmp.diff(
                "watch.duration",
                format!("recorded {:?}, fake {elapsed:?}", want),
            );
        }
    }
}

// ---------------------------------------------------------------------------

async fn fresh_fake() -> FakeCluster {
    FakeCluster::start(FakeOptions {
        ready_delay: Duration::from_millis(300),
        ..FakeOptions::default()
    })
    .await
    .expect("fake starts")
}

fn summary(r: &Replay, total: usize) {
    let mut by_reason: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (seq, (_, why)) in &r.listed {
        by_reason.entry(why).or_default().push(*seq);
    }
    let reasons: Vec<String> = by_reason
        .iter()
        .map(|(why, seqs)| format!("seq {seqs:?}: {why}"))
        .collect();
    println!(
        "conformance {}: {total} exchanges, compared {}, listed-as-divergent {}{}",
        r.file,
        r.compared,
        r.listed.len(),
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join("; "))
        }
    );
}

async fn replay_files(files: &[&'static str]) -> Vec<String> {
    let fake = fresh_fake().await;
    let addr = fake.url().trim_start_matches("http://").to_string();
    let mut all_failures = Vec::new();
    let mut learned = Learned::default();
    for file in files {
        let recs = load(file);
        let mut r = Replay {
            file,
            addr: addr.clone(),
            learned: std::mem::take(&mut learned),
            compared: 0,
            listed: BTreeMap::new(),
            failures: Vec::new(),
            failed_unlisted: 0,
            pending: Vec::new(),
        };
        out_of_band(file, &addr).await;
        r.run(&recs).await;
        summary(&r, recs.len());
        let _ = std::fs::write(
            std::env::temp_dir().join(format!("conformance-{file}.txt")),
            r.failures.join("\n"),
        );
        let accounted = r.compared + r.listed.len() + r.failed_unlisted;
        if accounted != recs.len() {
            r.failures.push(format!(
                "{file}: {accounted} exchanges accounted for, {} recorded",
                recs.len()
            ));
        }
        all_failures.append(&mut r.failures);
        learned = r.learned;
    }
    fake.shutdown().await;
    all_failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_match_the_real_api_server() {
    let failures = replay_files(&["20-probes"]).await;
    assert!(
        failures.is_empty(),
        "{} exchanges differ from the recording:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// howdah's own scenarios, in order, against one fake (each starts from the
/// state the previous one left, as recorded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn howdah_scenarios_match_the_real_api_server() {
    let failures = replay_files(&[
        "01-plan-fresh",
        "02-up-fresh",
        "03-status",
        "04-up-noop",
        "05-plan-etcd-resize",
        "06-up-etcd-resize",
        "07-drift-repair",
        "08-down-keep-data",
        "09-down-delete-data",
    ])
    .await;
    assert!(
        failures.is_empty(),
        "{} exchanges differ from the recording:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
