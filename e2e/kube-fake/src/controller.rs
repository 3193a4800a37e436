//! The simulated control plane: a level-triggered loop that wakes on every
//! store change (or when a delayed transition falls due) and reconciles
//! everything: namespaces (default service account, termination), garbage
//! collection by ownerReferences and deletion finalizers, workloads
//! (`workloads`), pods (`kubelet`), volumes (`storage`), load balancers and
//! jobs. Each visible transition waits `ready_delay` from when it first
//! became possible, so clients observe intermediate states as on a cluster.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::ops::{self, DeleteOpts, WriteCtx};
use crate::resources::{rt, ResourceType, RESOURCES};
use crate::store::{self, finalizers, is_terminating, name_of, ns_of, uid_of, State, Store};

pub const MANAGER: &str = "kube-controller-manager";

pub struct Controller {
    pub store: Arc<Store>,
    /// When each pending transition first became possible.
    delays: HashMap<String, Instant>,
    touched: HashSet<String>,
    next_due: Option<Instant>,
    /// Events already recorded (uid/reason/message), to record each once.
    emitted: HashSet<String>,
}

impl Controller {
    pub fn new(store: Arc<Store>) -> Self {
        Controller {
            store,
            delays: HashMap::new(),
            touched: HashSet::new(),
            next_due: None,
            emitted: HashSet::new(),
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let due = self.pass();
            let sleep = async {
                match due {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.store.changed.notified() => {}
                _ = sleep => {}
            }
        }
    }

    /// Is the transition named `key` due? Starts its clock on first ask.
    pub fn due(&mut self, key: String) -> bool {
        let now = Instant::now();
        let start = *self.delays.entry(key.clone()).or_insert(now);
        self.touched.insert(key);
        let at = start + self.store.ready_delay;
        if now >= at {
            true
        } else {
            self.next_due = Some(self.next_due.map_or(at, |d| d.min(at)));
            false
        }
    }

    /// One reconcile pass, repeated while it keeps changing things (so
    /// chains like ReplicaSet → Pods settle in one wake-up). Returns when
    /// the next delayed transition falls due.
    fn pass(&mut self) -> Option<Instant> {
        let store = self.store.clone();
        let mut st = store.lock();
        self.next_due = None;
        for _ in 0..20 {
            let before = st.rv;
            self.reconcile(&mut st);
            if st.rv == before {
                break;
            }
        }
        let touched = std::mem::take(&mut self.touched);
        self.delays.retain(|k, _| touched.contains(k));
        self.next_due
    }

    fn reconcile(&mut self, st: &mut State) {
        self.namespaces(st);
        self.garbage_collect(st);
        crate::workloads::deployments(self, st);
        crate::workloads::replicasets(self, st);
        crate::workloads::statefulsets(self, st);
        crate::storage::claims(self, st);
        crate::storage::volumes(self, st);
        crate::kubelet::pods(self, st);
        self.services(st);
        self.jobs(st);
    }

    /// Records an Event about `involved` once per (object, reason, message).
    pub fn event(
        &mut self,
        st: &mut State,
        involved: &Value,
        etype: &str,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        let key = format!("{}/{reason}/{message}", uid_of(involved));
        if !self.emitted.insert(key) {
            return;
        }
        let ns = match ns_of(involved) {
            "" => "default".to_string(),
            ns => ns.to_string(),
        };
        let now = store::now();
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{}.{:016x}", name_of(involved), rand::random::<u64>()), "namespace": ns},
            "involvedObject": {
                "apiVersion": involved["apiVersion"], "kind": involved["kind"],
                "name": name_of(involved), "namespace": ns_of(involved),
                "uid": uid_of(involved), "resourceVersion": involved["metadata"]["resourceVersion"],
            },
            "reason": reason, "message": message, "type": etype,
            "source": {"component": component},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": component, "reportingInstance": "",
        });
        let _ = ops::create(
            st,
            rt("", "events"),
            Some(&ns),
            ev,
            &WriteCtx::controller(component),
            false,
        );
    }

    fn namespaces(&mut self, st: &mut State) {
        let nss: Vec<Value> = st
            .list(rt("", "namespaces"), None)
            .into_iter()
            .cloned()
            .collect();
        for n in nss {
            let name = name_of(&n).to_string();
            if !is_terminating(&n) {
                ensure_namespace_defaults(st, &name);
                continue;
            }
            // Terminating: delete everything inside, then the namespace itself.
            let mut left = 0;
            for r in RESOURCES.iter().filter(|r| r.namespaced) {
                let names: Vec<(String, bool)> = st
                    .list(r, Some(&name))
                    .into_iter()
                    .map(|o| (name_of(o).to_string(), is_terminating(o)))
                    .collect();
                left += names.len();
                for (obj, terminating) in names {
                    if !terminating {
                        let _ = ops::delete(st, r, Some(&name), &obj, &DeleteOpts::default());
                    }
                }
            }
            if left == 0 && self.due(format!("{}/ns-final", uid_of(&n))) {
                st.remove(rt("", "namespaces"), None, &name);
            }
        }
    }

    fn garbage_collect(&mut self, st: &mut State) {
        let uids: HashSet<String> = st.all().map(|(_, o)| uid_of(o).to_string()).collect();
        let mut orphans: Vec<(&'static ResourceType, String, String)> = Vec::new();
        let mut dependents: HashMap<String, Vec<(&'static ResourceType, String, String)>> =
            HashMap::new();
        for (k, o) in st.all() {
            let Some(refs) = o
                .pointer("/metadata/ownerReferences")
                .and_then(|r| r.as_array())
            else {
                continue;
            };
            if refs.is_empty() {
                continue;
            }
            let r = by_key(k.group, k.plural);
            let entry = (r, k.ns.clone(), k.name.clone());
            for owner in refs {
                let uid = owner["uid"].as_str().unwrap_or_default().to_string();
                dependents.entry(uid).or_default().push(entry.clone());
            }
            let all_gone = refs
                .iter()
                .all(|o| !uids.contains(o["uid"].as_str().unwrap_or_default()));
            if all_gone && !is_terminating(o) {
                orphans.push(entry);
            }
        }
        for (r, ns, name) in orphans {
            let ns = Some(ns.as_str()).filter(|n| !n.is_empty());
            let _ = ops::delete(st, r, ns, &name, &DeleteOpts::default());
        }
        // Owners being deleted in the foreground or with orphaning.
        let owners: Vec<(&'static ResourceType, Value)> = st
            .all()
            .filter(|(_, o)| is_terminating(o))
            .filter(|(_, o)| {
                let f = finalizers(o);
                f.iter().any(|f| f == "foregroundDeletion" || f == "orphan")
            })
            .map(|(k, o)| (by_key(k.group, k.plural), o.clone()))
            .collect();
        for (r, owner) in owners {
            let uid = uid_of(&owner).to_string();
            let deps = dependents.get(&uid).cloned().unwrap_or_default();
            let fins = finalizers(&owner);
            // The garbage collector works asynchronously: an orphaning delete
            // stays visible, terminating, for a while (about 0.5 s in
            // kube-recordings 06-up-etcd-resize seq 14-16, 20-probes seq 57,
            // 58). A foreground delete without dependents finishes at once
            // (09-down-delete-data seq 27: the namespace's finalizer is gone
            // 40 ms later).
            if fins.iter().any(|f| f == "orphan") {
                if !self.due(format!("{uid}/gc")) {
                    continue;
                }
                for (dr, dns, dname) in &deps {
                    let dns = Some(dns.as_str()).filter(|n| !n.is_empty());
                    ops::mutate(st, dr, dns, dname, &WriteCtx::controller(MANAGER), |d| {
                        if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
                            refs.retain(|o| o["uid"] != uid.as_str());
                        }
                    });
                }
                ops::remove_finalizer(st, r, &owner, "orphan");
            } else {
                let live: Vec<_> = deps
                    .iter()
                    .filter(|(dr, dns, dname)| st.contains(dr, Some(dns), dname))
                    .cloned()
                    .collect();
                for (dr, dns, dname) in &live {
                    let dns = Some(dns.as_str()).filter(|n| !n.is_empty());
                    let opts = DeleteOpts {
                        propagation: Some("Foreground".into()),
                        ..Default::default()
                    };
                    let _ = ops::delete(st, dr, dns, dname, &opts);
                }
                if live.is_empty() {
                    ops::remove_finalizer(st, r, &owner, "foregroundDeletion");
                }
            }
        }
    }

    fn services(&mut self, st: &mut State) {
        let svcs: Vec<Value> = st
            .list(rt("", "services"), None)
            .into_iter()
            .cloned()
            .collect();
        for s in svcs {
            let is_lb = s["spec"]["type"] == "LoadBalancer";
            let has_ingress = s
                .pointer("/status/loadBalancer/ingress")
                .is_some_and(|i| !i.is_null());
            let want = if is_lb && !has_ingress {
                if !self.due(format!("{}/lb", uid_of(&s))) {
                    continue;
                }
                json!({"ingress": [{"ip": "127.0.0.1", "ipMode": "VIP"}]})
            } else if !is_lb && has_ingress {
                json!({})
            } else {
                continue;
            };
            ops::mutate(
                st,
                rt("", "services"),
                Some(ns_of(&s)),
                name_of(&s),
                &WriteCtx::status(MANAGER),
                |o| {
                    o["status"]["loadBalancer"] = want;
                },
            );
        }
    }

    fn jobs(&mut self, st: &mut State) {
        let jobs: Vec<Value> = st
            .list(rt("batch", "jobs"), None)
            .into_iter()
            .cloned()
            .collect();
        for j in jobs {
            if is_terminating(&j)
                || j.pointer("/status/completionTime").is_some()
                || j["spec"]["suspend"] == true
            {
                continue;
            }
            if !self.due(format!("{}/job", uid_of(&j))) {
                continue;
            }
            let now = store::now();
            let completions = j["spec"]["completions"].as_i64().unwrap_or(1);
            ops::mutate(
                st,
                rt("batch", "jobs"),
                Some(ns_of(&j)),
                name_of(&j),
                &WriteCtx::status(MANAGER),
                |o| {
                    o["status"] = json!({
                        "startTime": now, "completionTime": now, "succeeded": completions,
                        "ready": 0, "terminating": 0, "uncountedTerminatedPods": {},
                        "conditions": [
                            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                             "message": "Reached expected number of succeeded pods", "lastProbeTime": now, "lastTransitionTime": now},
                            {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                             "message": "Reached expected number of succeeded pods", "lastProbeTime": now, "lastTransitionTime": now}
                        ]
                    });
                },
            );
        }
    }
}

fn by_key(group: &str, plural: &str) -> &'static ResourceType {
    rt(group, plural)
}

/// Every namespace gets a `default` ServiceAccount and the root CA ConfigMap.
fn ensure_namespace_defaults(st: &mut State, ns: &str) {
    let ctx = WriteCtx::controller(MANAGER);
    if !st.contains(rt("", "serviceaccounts"), Some(ns), "default") {
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
        let _ = ops::create(st, rt("", "serviceaccounts"), Some(ns), sa, &ctx, false);
    }
    if !st.contains(rt("", "configmaps"), Some(ns), "kube-root-ca.crt") {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kube-root-ca.crt", "namespace": ns,
                         "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
            "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nZmFrZS1jYQ==\n-----END CERTIFICATE-----\n"}});
        let _ = ops::create(st, rt("", "configmaps"), Some(ns), cm, &ctx, false);
    }
}

// ---- helpers shared by the controllers ----

pub fn owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": name_of(owner),
        "uid": uid_of(owner), "controller": true, "blockOwnerDeletion": true
    })
}

pub fn owned_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(|r| r.as_array())
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
}

/// JSON with object keys sorted, whatever serde_json's map order is.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json!(k).to_string());
                out.push(':');
                canonical(&m[*k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A pod-template-hash / controller-revision-hash: FNV-32a of the template,
/// printed in decimal and "safe-encoded" like the real controllers do.
pub fn template_hash(template: &Value) -> String {
    let mut s = String::new();
    canonical(template, &mut s);
    let mut h: u32 = 0x811c9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|b| ALPHABET[(b as usize) % ALPHABET.len()] as char)
        .collect()
}

/// Conditions with timestamps kept from the previous status when a
/// condition's status/reason/message did not change (so an unchanged
/// status is a no-op write).
pub fn merge_conditions(old: &Value, new: Vec<Value>) -> Value {
    let old = old.as_array().cloned().unwrap_or_default();
    let out: Vec<Value> = new
        .into_iter()
        .map(|c| match old.iter().find(|o| o["type"] == c["type"]) {
            Some(o)
                if o["status"] == c["status"]
                    && o["reason"] == c["reason"]
                    && o["message"] == c["message"] =>
            {
                o.clone()
            }
            _ => c,
        })
        .collect();
    Value::Array(out)
}

pub fn condition(kind: &str, status: bool, reason: &str, message: &str) -> Value {
    let now = store::now();
    let mut c = json!({"type": kind, "status": if status { "True" } else { "False" }, "lastTransitionTime": now});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    c
}

pub fn is_pod_ready(pod: &Value) -> bool {
    !is_terminating(pod)
        && pod
            .pointer("/status/conditions")
            .and_then(|c| c.as_array())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
}
