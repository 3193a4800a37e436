//! Defaulting and the mutating admission the real control plane applies on
//! every write: API defaults (so a re-apply that omits a defaulted field is
//! a no-op, and immutability checks compare like with like), Service IP and
//! node-port allocation, Secret `stringData`, the default StorageClass for
//! claims, and the pvc-protection finalizer.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::resources::{rt, ResourceType};
use crate::store::{name_of, State};

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(|x| x.is_object()) {
        v[key] = json!({});
    }
    v[key].as_object_mut().expect("object")
}

fn default(m: &mut Map<String, Value>, key: &str, v: Value) {
    if m.get(key).is_none_or(|x| x.is_null()) {
        m.insert(key.into(), v);
    }
}

pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// The StorageClass marked default, if any.
pub fn default_storage_class(st: &State) -> Option<String> {
    st.list(rt("storage.k8s.io", "storageclasses"), None)
        .into_iter()
        .find(|sc| {
            sc.pointer("/metadata/annotations")
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .and_then(|v| v.as_str())
                == Some("true")
        })
        .map(|sc| name_of(sc).to_string())
}

fn default_container(c: &mut Value) {
    let Some(m) = c.as_object_mut() else { return };
    default(m, "terminationMessagePath", json!("/dev/termination-log"));
    default(m, "terminationMessagePolicy", json!("File"));
    let image = m.get("image").and_then(|v| v.as_str()).unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or_default();
    let policy = if !last.contains(':') || last.ends_with(":latest") {
        "Always"
    } else {
        "IfNotPresent"
    };
    default(m, "imagePullPolicy", json!(policy));
    default(m, "resources", json!({}));
    // Probe defaults (kube-recordings 02-up-fresh seq 69: successThreshold).
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = m.get_mut(probe).and_then(|p| p.as_object_mut()) {
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
        }
    }
    if let Some(Value::Array(ports)) = m.get_mut("ports") {
        for p in ports.iter_mut().filter_map(|p| p.as_object_mut()) {
            default(p, "protocol", json!("TCP"));
        }
    }
}

pub fn default_pod_spec(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    default(m, "restartPolicy", json!("Always"));
    default(m, "terminationGracePeriodSeconds", json!(30));
    default(m, "dnsPolicy", json!("ClusterFirst"));
    default(m, "securityContext", json!({}));
    default(m, "schedulerName", json!("default-scheduler"));
    // The deprecated serviceAccount alias follows serviceAccountName, in
    // templates too (kube-recordings 02-up-fresh seq 85).
    if let Some(sa) = m.get("serviceAccountName").cloned() {
        default(m, "serviceAccount", sa);
    }
    // Secret and ConfigMap volumes default their mode to 0644
    // (kube-recordings 02-up-fresh seq 69, 85).
    if let Some(Value::Array(vols)) = m.get_mut("volumes") {
        for v in vols.iter_mut() {
            for src in ["secret", "configMap"] {
                if let Some(s) = v.get_mut(src).and_then(|s| s.as_object_mut()) {
                    default(s, "defaultMode", json!(420));
                }
            }
        }
    }
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = m.get_mut(list) {
            cs.iter_mut().for_each(default_container);
        }
    }
}

/// Embedded ObjectMeta (pod templates, claim templates) comes back with
/// `creationTimestamp: null`, as the real server serialises it
/// (kube-recordings 02-up-fresh seq 56, 75; 20-probes seq 50).
fn null_creation_timestamp(t: &mut Map<String, Value>) {
    let meta = t.entry("metadata").or_insert(json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.entry("creationTimestamp").or_insert(Value::Null);
    }
}

fn default_template(spec: &mut Map<String, Value>) {
    if let Some(t) = spec.get_mut("template").and_then(|t| t.as_object_mut()) {
        null_creation_timestamp(t);
    }
    if let Some(t) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        default_pod_spec(t);
    }
}

/// Applies defaults and admission mutations to `obj` (create when `old` is None).
pub fn admit(st: &mut State, rt: &ResourceType, obj: &mut Value, old: Option<&Value>) {
    match (rt.group, rt.plural) {
        ("", "namespaces") => {
            let name = name_of(obj).to_string();
            obj_mut(&mut obj["metadata"], "labels")
                .insert("kubernetes.io/metadata.name".into(), json!(name));
            default(obj_mut(obj, "spec"), "finalizers", json!(["kubernetes"]));
        }
        ("", "pods") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "serviceAccountName", json!("default"));
            default(spec, "enableServiceLinks", json!(true));
            default(spec, "priority", json!(0));
            default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
            if old.is_none() {
                admit_pod(spec);
            }
            default_pod_spec(&mut obj["spec"]);
        }
        ("", "secrets") => {
            let m = obj.as_object_mut().expect("object");
            default(m, "type", json!("Opaque"));
            // stringData is write-only: merged into data and dropped.
            if let Some(Value::Object(sd)) = m.remove("stringData") {
                let data = obj_mut(obj, "data");
                for (k, v) in sd {
                    let s = v.as_str().unwrap_or_default();
                    let enc = base64::engine::general_purpose::STANDARD.encode(s);
                    data.insert(k, json!(enc));
                }
            }
            // A real server omits an empty `data`: a Secret with nothing in
            // it has no `data` field at all, and clients must not assume one.
            if obj["data"].as_object().is_some_and(|d| d.is_empty()) {
                if let Some(m) = obj.as_object_mut() {
                    m.remove("data");
                }
            }
        }
        ("", "services") => admit_service(st, obj, old),
        ("", "persistentvolumeclaims") => {
            let default_sc = default_storage_class(st);
            let spec = obj_mut(obj, "spec");
            default(spec, "volumeMode", json!("Filesystem"));
            if old.is_none() && !spec.contains_key("storageClassName") {
                if let Some(sc) = default_sc {
                    spec.insert("storageClassName".into(), json!(sc));
                }
            }
            if old.is_none() {
                let meta = obj_mut(obj, "metadata");
                let fins = meta.entry("finalizers").or_insert(json!([]));
                if let Some(a) = fins.as_array_mut() {
                    if !a.iter().any(|f| f == PVC_PROTECTION) {
                        a.push(json!(PVC_PROTECTION));
                    }
                }
            }
        }
        ("", "persistentvolumes") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            default(spec, "volumeMode", json!("Filesystem"));
        }
        ("apps", "deployments") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            let strategy = spec
                .entry("strategy")
                .or_insert(json!({}))
                .as_object_mut()
                .expect("object");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                default(
                    strategy,
                    "rollingUpdate",
                    json!({"maxSurge": "25%", "maxUnavailable": "25%"}),
                );
            }
            default_template(spec);
        }
        ("apps", "statefulsets") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "replicas", json!(1));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            default(spec, "revisionHistoryLimit", json!(10));
            default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            // No persistentVolumeClaimRetentionPolicy default: its feature
            // gate is off in v1.26.0 (kube-recordings 20-probes seq 50).
            if let Some(Value::Array(vcts)) = spec.get_mut("volumeClaimTemplates") {
                for t in vcts.iter_mut().filter_map(|t| t.as_object_mut()) {
                    null_creation_timestamp(t);
                    default(t, "apiVersion", json!("v1"));
                    default(t, "kind", json!("PersistentVolumeClaim"));
                    if let Some(s) = t.get_mut("spec").and_then(|s| s.as_object_mut()) {
                        default(s, "volumeMode", json!("Filesystem"));
                    }
                    default(t, "status", json!({"phase": "Pending"}));
                }
            }
            default_template(spec);
        }
        ("apps", "replicasets") | ("", "replicationcontrollers") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "replicas", json!(1));
            default_template(spec);
        }
        ("batch", "jobs") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "backoffLimit", json!(6));
            default(spec, "completions", json!(1));
            default(spec, "parallelism", json!(1));
            default(spec, "completionMode", json!("NonIndexed"));
            default(spec, "suspend", json!(false));
            if let Some(t) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                default_pod_spec(t);
            }
        }
        ("storage.k8s.io", "storageclasses") => {
            let m = obj.as_object_mut().expect("object");
            default(m, "reclaimPolicy", json!("Delete"));
            default(m, "volumeBindingMode", json!("Immediate"));
        }
        _ => {}
    }
}

/// What the ServiceAccount and DefaultTolerationSeconds admission plugins
/// add to a new pod: the projected `kube-api-access-*` token volume mounted
/// into every container, and 300 s NoExecute tolerations for not-ready and
/// unreachable nodes (kube-recordings 20-probes seq 68).
fn admit_pod(spec: &mut Map<String, Value>) {
    let tolerations = spec.entry("tolerations").or_insert(json!([]));
    if let Some(ts) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            if !ts.iter().any(|t| t["key"] == key) {
                ts.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
    if spec.get("automountServiceAccountToken") == Some(&json!(false)) {
        return;
    }
    let name = format!("kube-api-access-{}", crate::store::random_suffix(5));
    const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    let mut added = false;
    for list in ["initContainers", "containers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs.iter_mut().filter_map(|c| c.as_object_mut()) {
                let mounts = c.entry("volumeMounts").or_insert(json!([]));
                if let Some(ms) = mounts.as_array_mut() {
                    if !ms.iter().any(|m| m["mountPath"] == MOUNT) {
                        ms.push(json!({"name": name, "readOnly": true, "mountPath": MOUNT}));
                        added = true;
                    }
                }
            }
        }
    }
    if added {
        let volumes = spec.entry("volumes").or_insert(json!([]));
        if let Some(vs) = volumes.as_array_mut() {
            vs.push(json!({"name": name, "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ], "defaultMode": 420}}));
        }
    }
}

fn admit_service(st: &mut State, obj: &mut Value, old: Option<&Value>) {
    let old_spec = old.map(|o| o["spec"].clone()).unwrap_or(Value::Null);
    let spec = obj_mut(obj, "spec");
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    default(spec, "internalTrafficPolicy", json!("Cluster"));
    let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    if ty == "ExternalName" {
        return;
    }
    // Allocated values carry over from the live object when an update omits them.
    for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        if spec.get(k).is_none_or(|v| v.is_null()) && !old_spec[k].is_null() {
            spec.insert(k.into(), old_spec[k].clone());
        }
    }
    if spec.get("clusterIP").is_none_or(|v| v.is_null() || v == "") {
        let n = st.next_counter("clusterIP");
        let ip = format!("10.96.{}.{}", n / 250, n % 250 + 2);
        spec.insert("clusterIP".into(), json!(ip));
    }
    let ip = spec["clusterIP"].clone();
    default(spec, "clusterIPs", json!([ip]));
    // Headless services get the families too (kube-recordings 02-up-fresh seq 51).
    default(spec, "ipFamilies", json!(["IPv4"]));
    default(spec, "ipFamilyPolicy", json!("SingleStack"));
    let wants_node_ports = ty == "NodePort" || ty == "LoadBalancer";
    if wants_node_ports {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    let old_ports = old_spec["ports"].as_array().cloned().unwrap_or_default();
    let mut allocate = Vec::new();
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for (i, p) in ports.iter_mut().enumerate() {
            let Some(pm) = p.as_object_mut() else {
                continue;
            };
            default(pm, "protocol", json!("TCP"));
            let port = pm.get("port").cloned().unwrap_or(Value::Null);
            default(pm, "targetPort", port.clone());
            if wants_node_ports && pm.get("nodePort").is_none_or(|v| v.is_null()) {
                match old_ports.iter().find(|o| o["port"] == port) {
                    Some(o) if !o["nodePort"].is_null() => {
                        pm.insert("nodePort".into(), o["nodePort"].clone());
                    }
                    _ => allocate.push(i),
                }
            }
        }
    }
    for i in allocate {
        let n = 30000 + st.next_counter("nodePort") % 2767;
        obj["spec"]["ports"][i]["nodePort"] = json!(n);
    }
}
