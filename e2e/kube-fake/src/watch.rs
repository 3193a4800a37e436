//! Watch streams: newline-delimited JSON events over a chunked response.
//! Semantics follow the apiserver: no resourceVersion (or "0") starts with
//! synthetic ADDED events for the current state; a resourceVersion resumes
//! after it from the history, or gets a 410 Expired ERROR event when the
//! history no longer reaches back. Selectors turn transitions into
//! ADDED/DELETED like the real filter does. Bookmarks when asked for.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::SinkExt;
use http::{header, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::errors::{ApiError, ApiResult};
use crate::handlers::Call;
use crate::http::{Body, Shared};
use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::WatchEvent;

/// Bookmarks, as v1.26.0 sent them: only on watches started from a given
/// resourceVersion, once a minute, and each second during the last two
/// seconds before `timeoutSeconds` (kube-recordings 20-probes seq 82: at
/// 2.9 s and 3.9 s of a 5 s watch; none on seq 80 and 89, which started
/// without one or from 0).
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
const BOOKMARK_BEFORE_END: Duration = Duration::from_millis(2100);

struct Filter {
    rt: &'static ResourceType,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The event a watcher with this filter sees for a store event, if any.
    fn translate(&self, ev: &WatchEvent) -> Option<(&'static str, Value)> {
        if ev.rt.group != self.rt.group || ev.rt.plural != self.rt.plural {
            return None;
        }
        if let Some(ns) = &self.ns {
            if self.rt.namespaced && &ev.ns != ns {
                return None;
            }
        }
        let now = self.matches(&ev.object);
        let before = ev.old.as_ref().map(|o| self.matches(o));
        let etype = match (ev.etype.as_str(), before, now) {
            ("MODIFIED", Some(true), true) => "MODIFIED",
            ("MODIFIED", Some(true), false) => "DELETED",
            ("MODIFIED", Some(false), true) => "ADDED",
            ("MODIFIED", _, _) => return None,
            (t, _, true) => t,
            _ => return None,
        };
        Some((etype, ev.object.clone()))
    }
}

fn line(etype: &str, mut object: Value, rt: &ResourceType) -> Bytes {
    if etype != "ERROR" {
        object["apiVersion"] = json!(rt.api_version());
        object["kind"] = json!(rt.kind);
    }
    let mut s = serde_json::to_vec(&json!({"type": etype, "object": object})).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

/// Encodes events as plain objects, or as one-row Tables when the client
/// asked for server-side printing (`kubectl get -w`); column definitions
/// only on the first row, as the real server sends them.
struct Encoder {
    rt: &'static ResourceType,
    table: bool,
    headers_sent: bool,
}

impl Encoder {
    fn encode(&mut self, etype: &str, object: Value) -> Bytes {
        if !self.table {
            return line(etype, object, self.rt);
        }
        let mut obj = object;
        obj["apiVersion"] = json!(self.rt.api_version());
        obj["kind"] = json!(self.rt.kind);
        let mut t = crate::table::table(self.rt, &[obj], None);
        if self.headers_sent {
            t["columnDefinitions"] = json!([]);
        }
        self.headers_sent = true;
        let mut s = serde_json::to_vec(&json!({"type": etype, "object": t})).unwrap_or_default();
        s.push(b'\n');
        Bytes::from(s)
    }
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    // Only kind, apiVersion and this metadata, with a null creationTimestamp
    // (kube-recordings 20-probes seq 82).
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line("BOOKMARK", json!({"metadata": meta}), rt)
}

fn expired(rv: u64, oldest: u64) -> Bytes {
    expired_with(format!("too old resource version: {rv} ({oldest})"))
}

fn expired_with(message: String) -> Bytes {
    let e = ApiError::gone(message);
    let mut s =
        serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()})).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

pub fn watch(shared: &Arc<Shared>, call: &Call) -> ApiResult<Response<Body>> {
    let rt = call.route.rt;
    let (labels, fields) = call.selectors()?;
    let filter = Filter {
        rt,
        ns: call.route.ns.clone(),
        labels,
        fields,
    };
    let q = |k: &str| {
        call.query
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let bookmarks = matches!(q("allowWatchBookmarks"), Some("true" | "1"));
    let send_initial = matches!(q("sendInitialEvents"), Some("true" | "1"));
    let timeout = q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let requested: Option<u64> = match q("resourceVersion") {
        None | Some("0") => None,
        Some(rv) => Some(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?,
        ),
    };

    // Snapshot and subscription under one lock: nothing can fall in between.
    let mut enc = Encoder {
        rt,
        table: crate::table::wants_table(&call.accept),
        headers_sent: false,
    };
    let (mut rx, mut first, mut last_rv) = {
        let st = shared.store.lock();
        let rx = st.subscribe();
        let mut first: Vec<Bytes> = Vec::new();
        let last;
        match requested {
            // Events are not watch-cached and etcd was compacted since boot
            // (kube-recordings 20-probes seq 91).
            Some(rv) if !send_initial && rt.plural == "events" && rv < st.seed_rv => {
                first.push(expired_with(
                    "The resourceVersion for the provided watch is too old.".into(),
                ));
                last = u64::MAX;
            }
            // A node's heartbeats move the watch cache window on
            // (kube-recordings 20-probes seq 90).
            Some(rv) if !send_initial && rt.plural == "nodes" && rv < st.seed_rv => {
                first.push(expired(rv, st.seed_rv + 1));
                last = u64::MAX;
            }
            Some(rv) if !send_initial => match st.history_since(rv) {
                Some(events) => {
                    for ev in events {
                        if let Some((t, o)) = filter.translate(&ev) {
                            first.push(enc.encode(t, o));
                        }
                    }
                    last = st.rv.max(rv);
                }
                None => {
                    first.push(expired(rv, st.compacted + 1));
                    last = u64::MAX;
                }
            },
            _ => {
                for obj in st.list(rt, filter.ns.as_deref()) {
                    if filter.matches(obj) {
                        first.push(enc.encode("ADDED", obj.clone()));
                    }
                }
                last = st.rv;
                if send_initial && bookmarks {
                    first.push(bookmark(rt, last, true));
                }
            }
        }
        (rx, first, last)
    };

    let (mut tx, body_rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(64);
    let shutdown = shared.shutdown.clone();
    tokio::spawn(async move {
        for b in first.drain(..) {
            if tx.send(Ok(Frame::data(b))).await.is_err() {
                return;
            }
        }
        if last_rv == u64::MAX {
            return; // expired: the ERROR event ends the watch
        }
        let started = tokio::time::Instant::now();
        let end = started + timeout;
        let deadline = tokio::time::sleep_until(end);
        tokio::pin!(deadline);
        let bookmarks = bookmarks && requested.is_some();
        // The two bookmarks before the end: 2.1 s and 1.1 s before it.
        let late = [
            end.checked_sub(BOOKMARK_BEFORE_END).unwrap_or(started),
            end.checked_sub(BOOKMARK_BEFORE_END - Duration::from_secs(1))
                .unwrap_or(started),
        ];
        let next_bookmark = |now: tokio::time::Instant| {
            let periodic = now + BOOKMARK_EVERY;
            late.iter()
                .copied()
                .filter(|t| *t > now)
                .fold(periodic, |a, b| a.min(b))
        };
        let mut bookmark_at = next_bookmark(started);
        loop {
            let tick = tokio::time::sleep_until(bookmark_at);
            let ev = tokio::select! {
                _ = &mut deadline => return,
                _ = shutdown.cancelled() => return,
                _ = tick, if bookmarks => {
                    bookmark_at = next_bookmark(tokio::time::Instant::now());
                    if tx.send(Ok(Frame::data(bookmark(rt, last_rv, false)))).await.is_err() {
                        return;
                    }
                    continue;
                }
                ev = rx.recv() => ev,
            };
            match ev {
                Ok(ev) => {
                    if ev.rv <= last_rv {
                        continue;
                    }
                    last_rv = ev.rv;
                    if let Some((t, o)) = filter.translate(&ev) {
                        if tx.send(Ok(Frame::data(enc.encode(t, o)))).await.is_err() {
                            return;
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Too slow a reader: like the apiserver, end the watch
                    // with Expired so the client relists.
                    let _ = tx.send(Ok(Frame::data(expired(last_rv, last_rv)))).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            }
        }
    });

    let body = StreamBody::new(body_rx).boxed();
    Ok(Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("valid response"))
}
