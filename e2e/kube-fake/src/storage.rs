//! Volume provisioning and binding: a claim whose storageClassName names an
//! existing StorageClass (or, unset, gets the default class) is bound to a
//! freshly provisioned PersistentVolume after the ready delay; otherwise it
//! stays Pending with the Event the real PV controller records. Claims carry
//! the pvc-protection finalizer until no pod uses them; released volumes are
//! deleted or kept per their reclaim policy. Bound claims grow on request.

use serde_json::{json, Value};

use crate::controller::{Controller, MANAGER};
use crate::defaults::{default_storage_class, PVC_PROTECTION};
use crate::ops::{self, WriteCtx};
use crate::resources::rt;
use crate::store::{finalizers, is_terminating, name_of, ns_of, uid_of, State};
use crate::validate::quantity_bytes;

/// The PV binder runs inside kube-controller-manager and writes under that
/// manager name (kube-recordings 20-probes seq 53).
const COMPONENT: &str = "kube-controller-manager";
/// Its Events still name the controller as their source.
const EVENT_SOURCE: &str = "persistentvolume-controller";

fn used_by_pod(st: &State, ns: &str, claim: &str) -> bool {
    st.list(rt("", "pods"), Some(ns)).into_iter().any(|p| {
        !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
            && p["spec"]["volumes"].as_array().is_some_and(|vs| {
                vs.iter().any(|v| {
                    v.pointer("/persistentVolumeClaim/claimName")
                        .and_then(|c| c.as_str())
                        == Some(claim)
                })
            })
    })
}

pub fn claims(c: &mut Controller, st: &mut State) {
    let prt = rt("", "persistentvolumeclaims");
    let claims: Vec<Value> = st.list(prt, None).into_iter().cloned().collect();
    for pvc in claims {
        let (uid, ns, name) = (
            uid_of(&pvc).to_string(),
            ns_of(&pvc).to_string(),
            name_of(&pvc).to_string(),
        );
        if is_terminating(&pvc) {
            if finalizers(&pvc).iter().any(|f| f == PVC_PROTECTION) && !used_by_pod(st, &ns, &name)
            {
                ops::remove_finalizer(st, prt, &pvc, PVC_PROTECTION);
            }
            continue;
        }
        if pvc["status"]["phase"] == "Bound" {
            resize(c, st, &pvc);
            continue;
        }
        let class_field = pvc["spec"].get("storageClassName").filter(|v| !v.is_null());
        if class_field.is_none() {
            // Retroactive default class assignment (GA since Kubernetes 1.28).
            if let Some(default) = default_storage_class(st) {
                ops::mutate(
                    st,
                    prt,
                    Some(&ns),
                    &name,
                    &WriteCtx::controller(COMPONENT),
                    |o| {
                        o["spec"]["storageClassName"] = json!(default);
                    },
                );
                continue;
            }
        }
        let class = class_field
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        if class.is_empty() {
            c.event(
                st,
                &pvc,
                "Warning",
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
                EVENT_SOURCE,
            );
            continue;
        }
        let Some(sc) = st
            .get(rt("storage.k8s.io", "storageclasses"), None, &class)
            .cloned()
        else {
            c.event(
                st,
                &pvc,
                "Warning",
                "ProvisioningFailed",
                &format!("storageclass.storage.k8s.io \"{class}\" not found"),
                EVENT_SOURCE,
            );
            continue;
        };
        if sc["volumeBindingMode"] == "WaitForFirstConsumer" && !used_by_pod(st, &ns, &name) {
            c.event(
                st,
                &pvc,
                "Normal",
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding",
                EVENT_SOURCE,
            );
            continue;
        }
        if !c.due(format!("{uid}/bind")) {
            continue;
        }
        bind(c, st, &pvc, &sc);
    }
}

fn bind(c: &mut Controller, st: &mut State, pvc: &Value, sc: &Value) {
    let (ns, name) = (ns_of(pvc).to_string(), name_of(pvc).to_string());
    let pv_name = format!("pvc-{}", uid_of(pvc));
    let provisioner = sc["provisioner"]
        .as_str()
        .unwrap_or("rancher.io/local-path")
        .to_string();
    let storage = pvc
        .pointer("/spec/resources/requests/storage")
        .cloned()
        .unwrap_or(json!("1Gi"));
    let access = pvc["spec"]["accessModes"].clone();
    let pv = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": provisioner},
                     "finalizers": ["kubernetes.io/pv-protection"]},
        "spec": {
            "capacity": {"storage": storage}, "accessModes": access,
            "persistentVolumeReclaimPolicy": sc["reclaimPolicy"].as_str().unwrap_or("Delete"),
            "storageClassName": name_of(sc), "volumeMode": pvc["spec"]["volumeMode"].as_str().unwrap_or("Filesystem"),
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": name, "namespace": ns,
                         "uid": uid_of(pvc), "resourceVersion": pvc["metadata"]["resourceVersion"]},
            "hostPath": {"path": format!("/var/local-path-provisioner/{pv_name}_{ns}_{name}"), "type": "DirectoryOrCreate"},
        },
        "status": {"phase": "Bound", "lastPhaseTransitionTime": crate::store::now()},
    });
    let pvrt = rt("", "persistentvolumes");
    if !st.contains(pvrt, None, &pv_name) {
        let _ = ops::create(st, pvrt, None, pv, &WriteCtx::controller(COMPONENT), false);
    }
    let prt = rt("", "persistentvolumeclaims");
    ops::mutate(
        st,
        prt,
        Some(&ns),
        &name,
        &WriteCtx::controller(COMPONENT),
        |o| {
            o["spec"]["volumeName"] = json!(pv_name);
            let ann = o["metadata"]["annotations"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let mut ann = Value::Object(ann);
            ann["pv.kubernetes.io/bind-completed"] = json!("yes");
            ann["pv.kubernetes.io/bound-by-controller"] = json!("yes");
            ann["volume.beta.kubernetes.io/storage-provisioner"] = json!(provisioner);
            ann["volume.kubernetes.io/storage-provisioner"] = json!(provisioner);
            o["metadata"]["annotations"] = ann;
        },
    );
    ops::mutate(
        st,
        prt,
        Some(&ns),
        &name,
        &WriteCtx::status(COMPONENT),
        |o| {
            o["status"] =
                json!({"phase": "Bound", "accessModes": access, "capacity": {"storage": storage}});
        },
    );
    if let Some(pvc) = st.get(prt, Some(&ns), &name).cloned() {
        c.event(
            st,
            &pvc,
            "Normal",
            "ProvisioningSucceeded",
            &format!("Successfully provisioned volume {pv_name}"),
            &format!("{provisioner}_fake-node"),
        );
    }
}

/// A bound claim whose request grew gets the new capacity (volume expansion).
fn resize(c: &mut Controller, st: &mut State, pvc: &Value) {
    let want = pvc
        .pointer("/spec/resources/requests/storage")
        .cloned()
        .unwrap_or(Value::Null);
    let have = pvc
        .pointer("/status/capacity/storage")
        .cloned()
        .unwrap_or(Value::Null);
    let (Some(w), Some(h)) = (quantity_bytes(&want), quantity_bytes(&have)) else {
        return;
    };
    if w <= h || !c.due(format!("{}/resize/{want}", uid_of(pvc))) {
        return;
    }
    let (ns, name) = (ns_of(pvc).to_string(), name_of(pvc).to_string());
    if let Some(pv) = pvc["spec"]["volumeName"].as_str() {
        ops::mutate(
            st,
            rt("", "persistentvolumes"),
            None,
            pv,
            &WriteCtx::controller(COMPONENT),
            |o| {
                o["spec"]["capacity"]["storage"] = want.clone();
            },
        );
    }
    ops::mutate(
        st,
        rt("", "persistentvolumeclaims"),
        Some(&ns),
        &name,
        &WriteCtx::status(MANAGER),
        |o| {
            o["status"]["capacity"]["storage"] = want.clone();
        },
    );
}

pub fn volumes(_c: &mut Controller, st: &mut State) {
    let pvrt = rt("", "persistentvolumes");
    let prt = rt("", "persistentvolumeclaims");
    let pvs: Vec<Value> = st.list(pvrt, None).into_iter().cloned().collect();
    for pv in pvs {
        let name = name_of(&pv).to_string();
        let claim = &pv["spec"]["claimRef"];
        let bound_claim = claim["name"].as_str().and_then(|n| {
            st.get(prt, claim["namespace"].as_str(), n).filter(|p| {
                claim["uid"].is_null() || uid_of(p) == claim["uid"].as_str().unwrap_or_default()
            })
        });
        let claim_alive = bound_claim.is_some();
        if is_terminating(&pv) {
            if !claim_alive
                && finalizers(&pv)
                    .iter()
                    .any(|f| f == "kubernetes.io/pv-protection")
            {
                ops::remove_finalizer(st, pvrt, &pv, "kubernetes.io/pv-protection");
            }
            continue;
        }
        if claim.is_null() {
            if pv["status"]["phase"] == "Pending" {
                ops::mutate(st, pvrt, None, &name, &WriteCtx::status(COMPONENT), |o| {
                    o["status"]["phase"] = json!("Available")
                });
            }
            continue;
        }
        if !claim_alive && pv["status"]["phase"] == "Bound" {
            if pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete" {
                // The provisioner deletes the backing volume, then the object.
                st.remove(pvrt, None, &name);
            } else {
                ops::mutate(st, pvrt, None, &name, &WriteCtx::status(COMPONENT), |o| {
                    o["status"]["phase"] = json!("Released")
                });
            }
        }
    }
}
