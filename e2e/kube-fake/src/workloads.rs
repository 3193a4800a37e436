//! Workload controllers: Deployment → ReplicaSet (per pod-template hash,
//! old ones scaled down once the new one is ready) → Pods; StatefulSet →
//! ordered Pods `<name>-<i>` with their claims from volumeClaimTemplates,
//! rolling updates from the highest ordinal down. Status fields are the
//! ones rollout checks read (observedGeneration, replicas, ready, updated,
//! available, revisions, conditions).

use serde_json::{json, Map, Value};

use crate::controller::{
    condition, is_pod_ready, merge_conditions, owned_by, owner_ref, template_hash, Controller,
    MANAGER,
};
use crate::ops::{self, DeleteOpts, WriteCtx};
use crate::resources::rt;
use crate::store::{self, is_terminating, name_of, ns_of, uid_of, State};

fn int(v: &Value, default: i64) -> i64 {
    v.as_i64().unwrap_or(default)
}

fn generation(o: &Value) -> i64 {
    int(&o["metadata"]["generation"], 1)
}

/// A pod from a template, owned by `owner`.
fn pod_from_template(
    template: &Value,
    name: &str,
    ns: &str,
    owner: &Value,
    extra_labels: &Map<String, Value>,
) -> Value {
    let mut labels = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.extend(extra_labels.clone());
    let mut meta = json!({"name": name, "namespace": ns, "labels": labels, "ownerReferences": [owner_ref(owner)]});
    if let Some(a) = template["metadata"].get("annotations") {
        meta["annotations"] = a.clone();
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"].clone()})
}

fn owned_pods<'a>(st: &'a State, ns: &str, uid: &str) -> Vec<&'a Value> {
    st.list(rt("", "pods"), Some(ns))
        .into_iter()
        .filter(|p| owned_by(p, uid))
        .collect()
}

fn set_status(st: &mut State, plural: &str, obj: &Value, status: Value) {
    let r = rt("apps", plural);
    ops::mutate(
        st,
        r,
        Some(ns_of(obj)),
        name_of(obj),
        &WriteCtx::status(MANAGER),
        |o| {
            o["status"] = status;
        },
    );
}

fn max_unavailable(d: &Value, replicas: i64) -> i64 {
    match &d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map(|p| replicas * p / 100)
            .unwrap_or(0),
        _ => 0,
    }
}

pub fn deployments(_c: &mut Controller, st: &mut State) {
    let deps: Vec<Value> = st
        .list(rt("apps", "deployments"), None)
        .into_iter()
        .cloned()
        .collect();
    for d in deps {
        if is_terminating(&d) {
            continue;
        }
        let (uid, ns, name) = (
            uid_of(&d).to_string(),
            ns_of(&d).to_string(),
            name_of(&d).to_string(),
        );
        let gen = generation(&d);
        // The controller reacts at once: the real one had written status
        // (observedGeneration, its managedFields entry, the revision
        // annotation) within 60 ms of an apply (kube-recordings 02-up-fresh
        // seq 56-59, 75-76). Only pods take `ready_delay` to start.
        let replicas = int(&d["spec"]["replicas"], 1);
        let paused = d["spec"]["paused"] == true;
        let hash = template_hash(&d["spec"]["template"]);
        let new_name = format!("{name}-{hash}");
        let rsrt = rt("apps", "replicasets");
        let owned: Vec<Value> = st
            .list(rsrt, Some(&ns))
            .into_iter()
            .filter(|r| owned_by(r, &uid))
            .cloned()
            .collect();
        let max_rev = owned
            .iter()
            .filter_map(|r| r.pointer("/metadata/annotations/deployment.kubernetes.io~1revision"))
            .filter_map(|v| v.as_str().and_then(|s| s.parse::<i64>().ok()))
            .max()
            .unwrap_or(0);
        match owned.iter().find(|r| name_of(r) == new_name) {
            None if !paused => {
                let mut template = d["spec"]["template"].clone();
                template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                let mut selector = d["spec"]["selector"].clone();
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                let rs = json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": new_name, "namespace": ns, "labels": template["metadata"]["labels"],
                        "annotations": {"deployment.kubernetes.io/revision": (max_rev + 1).to_string(),
                                        "deployment.kubernetes.io/desired-replicas": replicas.to_string()},
                        "ownerReferences": [owner_ref(&d)]},
                    "spec": {"replicas": replicas, "selector": selector, "template": template,
                             "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0)}
                });
                let _ = ops::create(
                    st,
                    rsrt,
                    Some(&ns),
                    rs,
                    &WriteCtx::controller(MANAGER),
                    false,
                );
            }
            Some(rs) if int(&rs["spec"]["replicas"], 0) != replicas => {
                ops::mutate(
                    st,
                    rsrt,
                    Some(&ns),
                    &new_name,
                    &WriteCtx::controller(MANAGER),
                    |o| {
                        o["spec"]["replicas"] = json!(replicas);
                    },
                );
            }
            _ => {}
        }
        // Old ReplicaSets scale to zero once the new one is fully ready.
        let new_rs = st.get(rsrt, Some(&ns), &new_name).cloned();
        let new_ready = new_rs
            .as_ref()
            .map_or(0, |r| int(&r["status"]["readyReplicas"], 0));
        if new_ready >= replicas || d["spec"]["strategy"]["type"] == "Recreate" {
            for old in owned.iter().filter(|r| name_of(r) != new_name) {
                if int(&old["spec"]["replicas"], 0) != 0 {
                    ops::mutate(
                        st,
                        rsrt,
                        Some(&ns),
                        name_of(old),
                        &WriteCtx::controller(MANAGER),
                        |o| {
                            o["spec"]["replicas"] = json!(0);
                        },
                    );
                }
            }
        }
        // Status from the ReplicaSets as they are now.
        let all: Vec<Value> = st
            .list(rsrt, Some(&ns))
            .into_iter()
            .filter(|r| owned_by(r, &uid))
            .cloned()
            .collect();
        let sum = |f: &str| all.iter().map(|r| int(&r["status"][f], 0)).sum::<i64>();
        let (total, ready, available) = (
            sum("replicas"),
            sum("readyReplicas"),
            sum("availableReplicas"),
        );
        let updated = new_rs
            .as_ref()
            .map_or(0, |r| int(&r["status"]["replicas"], 0));
        let new_available = new_rs
            .as_ref()
            .map_or(0, |r| int(&r["status"]["availableReplicas"], 0));
        let min_available = replicas - max_unavailable(&d, replicas);
        let complete = updated == replicas && total == replicas && new_available == replicas;
        let conditions = vec![
            if available >= min_available {
                condition(
                    "Available",
                    true,
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                )
            } else {
                condition(
                    "Available",
                    false,
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                )
            },
            if complete {
                condition(
                    "Progressing",
                    true,
                    "NewReplicaSetAvailable",
                    &format!("ReplicaSet \"{new_name}\" has successfully progressed."),
                )
            } else {
                condition(
                    "Progressing",
                    true,
                    "ReplicaSetUpdated",
                    &format!("ReplicaSet \"{new_name}\" is progressing."),
                )
            },
        ];
        // Deployment conditions also carry lastUpdateTime (kube-recordings
        // 20-probes seq 60).
        let conditions: Vec<Value> = conditions
            .into_iter()
            .map(|mut c| {
                c["lastUpdateTime"] = c["lastTransitionTime"].clone();
                c
            })
            .collect();
        let mut status = json!({
            "observedGeneration": gen, "replicas": total, "updatedReplicas": updated,
            "readyReplicas": ready, "availableReplicas": available,
            "conditions": merge_conditions(&d["status"]["conditions"], conditions),
        });
        if replicas - available > 0 {
            status["unavailableReplicas"] = json!(replicas - available);
        }
        strip_zero(
            &mut status,
            &[
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
            ],
        );
        // The controller stamps the revision of the newest ReplicaSet on the
        // Deployment, through the status endpoint (kube-recordings 20-probes
        // seq 60: the annotation is in kube-controller-manager's status entry).
        let revision = st
            .get(rsrt, Some(&ns), &new_name)
            .and_then(|r| r.pointer("/metadata/annotations/deployment.kubernetes.io~1revision"))
            .cloned();
        ops::mutate(
            st,
            rt("apps", "deployments"),
            Some(&ns),
            &name,
            &WriteCtx::status(MANAGER),
            |o| {
                o["status"] = status;
                if let Some(rev) = revision {
                    o["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = rev;
                }
            },
        );
    }
}

/// The real API omits zero-valued counters (`omitempty`).
fn strip_zero(status: &mut Value, keys: &[&str]) {
    if let Some(m) = status.as_object_mut() {
        for k in keys {
            if m.get(*k) == Some(&json!(0)) {
                m.remove(*k);
            }
        }
    }
}

pub fn replicasets(_c: &mut Controller, st: &mut State) {
    let rsrt = rt("apps", "replicasets");
    let sets: Vec<Value> = st.list(rsrt, None).into_iter().cloned().collect();
    for rs in sets {
        if is_terminating(&rs) {
            continue;
        }
        let (uid, ns) = (uid_of(&rs).to_string(), ns_of(&rs).to_string());
        let desired = int(&rs["spec"]["replicas"], 1) as usize;
        let alive: Vec<Value> = owned_pods(st, &ns, &uid)
            .into_iter()
            .filter(|p| !is_terminating(p))
            .cloned()
            .collect();
        if alive.len() < desired {
            for _ in alive.len()..desired {
                let name = format!("{}-{}", name_of(&rs), store::random_suffix(5));
                let mut pod =
                    pod_from_template(&rs["spec"]["template"], &name, &ns, &rs, &Map::new());
                // The ReplicaSet controller names pods by generateName
                // (kube-recordings 02-up-fresh seq 99).
                pod["metadata"]["generateName"] = json!(format!("{}-", name_of(&rs)));
                let _ = ops::create(
                    st,
                    rt("", "pods"),
                    Some(&ns),
                    pod,
                    &WriteCtx::controller(MANAGER),
                    false,
                );
            }
        } else if alive.len() > desired {
            // Not-ready pods go first, then the newest.
            let mut victims = alive.clone();
            victims.sort_by_key(|p| {
                (
                    is_pod_ready(p),
                    std::cmp::Reverse(
                        p["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    ),
                )
            });
            for p in victims.iter().take(alive.len() - desired) {
                let _ = ops::delete(
                    st,
                    rt("", "pods"),
                    Some(&ns),
                    name_of(p),
                    &DeleteOpts::default(),
                );
            }
        }
        let pods: Vec<Value> = owned_pods(st, &ns, &uid)
            .into_iter()
            .filter(|p| !is_terminating(p))
            .cloned()
            .collect();
        let ready = pods.iter().filter(|p| is_pod_ready(p)).count();
        let mut status = json!({
            "replicas": pods.len(), "fullyLabeledReplicas": pods.len(), "readyReplicas": ready,
            "availableReplicas": ready, "observedGeneration": generation(&rs),
        });
        strip_zero(
            &mut status,
            &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"],
        );
        let r = rt("apps", "replicasets");
        ops::mutate(
            st,
            r,
            Some(&ns),
            name_of(&rs),
            &WriteCtx::status(MANAGER),
            |o| {
                o["status"] = status;
            },
        );
    }
}

fn claim_name(template: &Value, sts: &str, ordinal: i64) -> String {
    format!("{}-{sts}-{ordinal}", name_of(template))
}

fn ensure_claims(st: &mut State, s: &Value, ordinal: i64) {
    let (ns, name) = (ns_of(s).to_string(), name_of(s).to_string());
    let retain_delete =
        s["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete";
    for t in s["spec"]["volumeClaimTemplates"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let claim = claim_name(&t, &name, ordinal);
        if st.contains(rt("", "persistentvolumeclaims"), Some(&ns), &claim) {
            continue;
        }
        let mut labels = t["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if let Some(ml) = s["spec"]["selector"]["matchLabels"].as_object() {
            labels.extend(ml.clone());
        }
        let mut meta = json!({"name": claim, "namespace": ns, "labels": labels});
        if let Some(a) = t["metadata"].get("annotations") {
            meta["annotations"] = a.clone();
        }
        if retain_delete {
            meta["ownerReferences"] = json!([owner_ref(s)]);
        }
        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": t["spec"]});
        let _ = ops::create(
            st,
            rt("", "persistentvolumeclaims"),
            Some(&ns),
            pvc,
            &WriteCtx::controller(MANAGER),
            false,
        );
    }
}

fn sts_pod(s: &Value, ordinal: i64, revision: &str) -> Value {
    let (ns, name) = (ns_of(s), name_of(s));
    let pod_name = format!("{name}-{ordinal}");
    let mut extra = Map::new();
    extra.insert("statefulset.kubernetes.io/pod-name".into(), json!(pod_name));
    extra.insert(
        "apps.kubernetes.io/pod-index".into(),
        json!(ordinal.to_string()),
    );
    extra.insert("controller-revision-hash".into(), json!(revision));
    let mut pod = pod_from_template(&s["spec"]["template"], &pod_name, ns, s, &extra);
    pod["spec"]["hostname"] = json!(pod_name);
    if let Some(svc) = s["spec"]["serviceName"].as_str().filter(|s| !s.is_empty()) {
        pod["spec"]["subdomain"] = json!(svc);
    }
    let mut volumes = pod["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for t in s["spec"]["volumeClaimTemplates"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let vname = name_of(&t).to_string();
        volumes.retain(|v| v["name"] != vname.as_str());
        volumes.push(json!({"name": vname, "persistentVolumeClaim": {"claimName": claim_name(&t, name, ordinal)}}));
    }
    if !volumes.is_empty() {
        pod["spec"]["volumes"] = json!(volumes);
    }
    pod
}

fn revision_of(pod: &Value) -> &str {
    pod.pointer("/metadata/labels/controller-revision-hash")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
}

pub fn statefulsets(_c: &mut Controller, st: &mut State) {
    let srt = rt("apps", "statefulsets");
    let prt = rt("", "pods");
    let sets: Vec<Value> = st.list(srt, None).into_iter().cloned().collect();
    for s in sets {
        if is_terminating(&s) {
            continue;
        }
        let (uid, ns, name) = (
            uid_of(&s).to_string(),
            ns_of(&s).to_string(),
            name_of(&s).to_string(),
        );
        let gen = generation(&s);
        // Observed at once, as the real controller does (see deployments).
        let replicas = int(&s["spec"]["replicas"], 1);
        let start = int(&s["spec"]["ordinals"]["start"], 0);
        let parallel = s["spec"]["podManagementPolicy"] == "Parallel";
        let rolling = s["spec"]["updateStrategy"]["type"] != "OnDelete";
        let partition = int(
            &s["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
            0,
        );
        let revision = format!("{name}-{}", template_hash(&s["spec"]["template"]));
        let pod_at = |st: &State, i: i64| -> Option<Value> {
            st.get(prt, Some(&ns), &format!("{name}-{i}"))
                .filter(|p| owned_by(p, &uid))
                .cloned()
        };
        // Adopt orphans: a pod of ours by name and selector with no
        // controller owner (left by an orphaning delete of an earlier
        // StatefulSet) becomes this one's, as the real controller does.
        for i in start..start + replicas {
            let pod_name = format!("{name}-{i}");
            let orphan = st.get(prt, Some(&ns), &pod_name).is_some_and(|p| {
                !is_terminating(p)
                    && crate::selectors::selector_object_matches(
                        &s["spec"]["selector"],
                        &p["metadata"]["labels"],
                    )
                    && !p["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|refs| refs.iter().any(|r| r["controller"] == true))
            });
            if orphan {
                let owner = owner_ref(&s);
                ops::mutate(
                    st,
                    prt,
                    Some(&ns),
                    &pod_name,
                    &WriteCtx::controller(MANAGER),
                    |p| match p["metadata"]["ownerReferences"].as_array_mut() {
                        Some(refs) => refs.push(owner),
                        None => p["metadata"]["ownerReferences"] = json!([owner]),
                    },
                );
            }
        }
        // Scale up / recreate, in ordinal order.
        for i in start..start + replicas {
            match pod_at(st, i) {
                None => {
                    ensure_claims(st, &s, i);
                    let pod = sts_pod(&s, i, &revision);
                    let _ = ops::create(
                        st,
                        prt,
                        Some(&ns),
                        pod,
                        &WriteCtx::controller(MANAGER),
                        false,
                    );
                    if !parallel {
                        break;
                    }
                }
                Some(p) if !parallel && (is_terminating(&p) || !is_pod_ready(&p)) => break,
                Some(_) => {}
            }
        }
        // Scale down from the highest ordinal.
        let existing: Vec<Value> = owned_pods(st, &ns, &uid).into_iter().cloned().collect();
        let mut extra: Vec<&Value> = existing
            .iter()
            .filter(|p| {
                let idx = name_of(p)
                    .rsplit('-')
                    .next()
                    .and_then(|i| i.parse::<i64>().ok())
                    .unwrap_or(-1);
                idx < start || idx >= start + replicas
            })
            .collect();
        extra.sort_by_key(|p| {
            std::cmp::Reverse(
                name_of(p)
                    .rsplit('-')
                    .next()
                    .and_then(|i| i.parse::<i64>().ok()),
            )
        });
        for p in extra
            .iter()
            .filter(|p| !is_terminating(p))
            .take(if parallel { usize::MAX } else { 1 })
        {
            let _ = ops::delete(st, prt, Some(&ns), name_of(p), &DeleteOpts::default());
        }
        // Rolling update: replace the highest out-of-date pod once all are ready.
        let in_range: Vec<Option<Value>> =
            (start..start + replicas).map(|i| pod_at(st, i)).collect();
        let all_ready = in_range
            .iter()
            .all(|p| p.as_ref().is_some_and(is_pod_ready));
        if rolling && all_ready {
            let stale = (start..start + replicas)
                .rev()
                .filter(|i| i - start >= partition)
                .find_map(|i| pod_at(st, i).filter(|p| revision_of(p) != revision));
            if let Some(p) = stale {
                let _ = ops::delete(st, prt, Some(&ns), name_of(&p), &DeleteOpts::default());
            }
        }
        // Status.
        let pods: Vec<Value> = owned_pods(st, &ns, &uid).into_iter().cloned().collect();
        let ready = pods.iter().filter(|p| is_pod_ready(p)).count() as i64;
        let updated = pods.iter().filter(|p| revision_of(p) == revision).count() as i64;
        let prev_current = s["status"]["currentRevision"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let current_revision =
            if updated == replicas && pods.len() as i64 == replicas || prev_current.is_empty() {
                revision.clone()
            } else {
                prev_current
            };
        let current = pods
            .iter()
            .filter(|p| revision_of(p) == current_revision)
            .count() as i64;
        let mut status = json!({
            "observedGeneration": gen, "replicas": pods.len(), "readyReplicas": ready,
            "availableReplicas": ready, "currentReplicas": current, "updatedReplicas": updated,
            "currentRevision": current_revision, "updateRevision": revision, "collisionCount": 0,
        });
        strip_zero(
            &mut status,
            &["readyReplicas", "currentReplicas", "updatedReplicas"],
        );
        set_status(st, "statefulsets", &s, status);
    }
}
