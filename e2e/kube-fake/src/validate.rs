//! Validation the real apiserver performs that howdah can run into: names,
//! label values, required fields of workloads, and the immutable fields of
//! StatefulSets, Deployments, PVCs, Services, Secrets/ConfigMaps, Jobs,
//! RoleBindings and StorageClasses. Messages follow the real ones.

use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult};
use crate::resources::ResourceType;
use crate::selectors::selector_object_matches;
use crate::store::name_of;

type Cause = (String, &'static str, String);

fn invalid(field: &str, value: impl std::fmt::Display, detail: &str) -> Cause {
    (
        field.to_string(),
        "FieldValueInvalid",
        format!("{value}: {detail}"),
    )
}

fn required(field: &str) -> Cause {
    (field.to_string(), "FieldValueRequired", String::new())
}

fn forbidden(field: &str, detail: &str) -> Cause {
    (field.to_string(), "FieldValueForbidden", detail.to_string())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && (s.is_empty()
            || (s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
                && s.as_bytes()[0].is_ascii_alphanumeric()
                && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()))
}

fn check_metadata(rt: &ResourceType, obj: &Value, causes: &mut Vec<Cause>) {
    let name = name_of(obj);
    let label_only = matches!(rt.plural, "namespaces" | "services");
    let rbac = rt.group == "rbac.authorization.k8s.io";
    if label_only && !is_dns_label(name) {
        causes.push(invalid("metadata.name", format!("{name:?}"),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"));
    } else if !label_only && !rbac && !is_dns_subdomain(name) {
        causes.push(invalid("metadata.name", format!("{name:?}"),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(|l| l.as_object()) {
        for (k, v) in labels {
            let v = v.as_str().unwrap_or_default();
            if !is_label_value(v) {
                causes.push(invalid("metadata.labels", format!("{v:?}"),
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"));
            }
            let key_name = k.rsplit('/').next().unwrap_or_default();
            if !is_label_value(key_name) || key_name.is_empty() {
                causes.push(invalid("metadata.labels", format!("{k:?}"),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
        }
    }
}

fn check_pod_spec(spec: &Value, field: &str, causes: &mut Vec<Cause>) {
    match spec.get("containers").and_then(|c| c.as_array()) {
        Some(cs) if !cs.is_empty() => {
            for (i, c) in cs.iter().enumerate() {
                if c["name"].as_str().is_none_or(str::is_empty) {
                    causes.push(required(&format!("{field}.containers[{i}].name")));
                }
                if c["image"].as_str().is_none_or(str::is_empty) {
                    causes.push(required(&format!("{field}.containers[{i}].image")));
                }
            }
        }
        _ => causes.push(required(&format!("{field}.containers"))),
    }
}

fn check_workload(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    if spec["selector"].is_null() {
        causes.push(required("spec.selector"));
    } else {
        let labels = &spec["template"]["metadata"]["labels"];
        if !selector_object_matches(&spec["selector"], labels) {
            causes.push(invalid(
                "spec.template.metadata.labels",
                format!("{labels}"),
                "`selector` does not match template `labels`",
            ));
        }
    }
    check_pod_spec(&spec["template"]["spec"], "spec.template.spec", causes);
}

/// Validation common to create and update.
fn check_object(rt: &ResourceType, obj: &Value, causes: &mut Vec<Cause>) {
    check_metadata(rt, obj, causes);
    match (rt.group, rt.plural) {
        ("apps", "deployments" | "statefulsets" | "replicasets") => check_workload(obj, causes),
        ("", "pods") => check_pod_spec(&obj["spec"], "spec", causes),
        ("", "services") => {
            let headless = obj["spec"]["clusterIP"] == "None";
            let ext = obj["spec"]["type"] == "ExternalName";
            let no_ports = obj["spec"]["ports"].as_array().is_none_or(|p| p.is_empty());
            if no_ports && !headless && !ext {
                causes.push(required("spec.ports"));
            }
        }
        ("", "persistentvolumeclaims") => {
            if obj["spec"]["accessModes"]
                .as_array()
                .is_none_or(|a| a.is_empty())
            {
                causes.push(required("spec.accessModes"));
            }
            if obj
                .pointer("/spec/resources/requests/storage")
                .is_none_or(|v| v.is_null())
            {
                causes.push(required("spec.resources[storage]"));
            }
        }
        _ => {}
    }
}

fn fail(rt: &ResourceType, obj: &Value, causes: Vec<Cause>) -> ApiResult<()> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt, name_of(obj), &causes))
    }
}

pub fn validate_create(rt: &ResourceType, obj: &Value) -> ApiResult<()> {
    let mut causes = Vec::new();
    check_object(rt, obj, &mut causes);
    fail(rt, obj, causes)
}

/// Parses "10Gi", "500Mi", "1G", "1024" into bytes (for the grow-only check).
pub fn quantity_bytes(q: &Value) -> Option<f64> {
    let s = match q {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let units: &[(&str, f64)] = &[
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("m", 1e-3),
    ];
    for (suffix, mult) in units {
        if let Some(n) = s.strip_suffix(suffix) {
            return n.parse::<f64>().ok().map(|n| n * mult);
        }
    }
    s.parse().ok()
}

fn without(v: &Value, keys: &[&str]) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
    c
}

pub fn validate_update(rt: &ResourceType, old: &Value, new: &Value) -> ApiResult<()> {
    let mut causes = Vec::new();
    check_object(rt, new, &mut causes);
    let (os, ns) = (&old["spec"], &new["spec"]);
    match (rt.group, rt.plural) {
        ("apps", "statefulsets") => {
            // The v1.26.0 list and wording (kube-recordings 20-probes seq 51, 52).
            let mutable = [
                "replicas",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ];
            if without(os, &mutable) != without(ns, &mutable) {
                causes.push(forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
            }
        }
        ("apps", "deployments" | "replicasets") if os["selector"] != ns["selector"] => {
            causes.push(invalid(
                "spec.selector",
                format!("{}", ns["selector"]),
                "field is immutable",
            ));
        }
        ("", "persistentvolumeclaims") => {
            let strip = |s: &Value| {
                let mut c = without(s, &["volumeAttributesClassName"]);
                if let Some(r) = c
                    .pointer_mut("/resources/requests")
                    .and_then(|r| r.as_object_mut())
                {
                    r.remove("storage");
                }
                c
            };
            // A claim created without a class may get one later (retroactive default class).
            let mut old_cmp = strip(os);
            if os["storageClassName"].is_null() {
                old_cmp["storageClassName"] = ns["storageClassName"].clone();
            }
            if os["volumeName"].is_null() {
                old_cmp["volumeName"] = ns["volumeName"].clone();
            }
            let mut new_cmp = strip(ns);
            for k in ["storageClassName", "volumeName"] {
                if new_cmp[k].is_null() {
                    new_cmp.as_object_mut().map(|m| m.remove(k));
                }
                if old_cmp[k].is_null() {
                    old_cmp.as_object_mut().map(|m| m.remove(k));
                }
            }
            if old_cmp != new_cmp {
                causes.push(forbidden("spec", "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"));
            }
            let old_req = os
                .pointer("/resources/requests/storage")
                .and_then(quantity_bytes);
            let new_req = ns
                .pointer("/resources/requests/storage")
                .and_then(quantity_bytes);
            if let (Some(o), Some(n)) = (old_req, new_req) {
                if n < o {
                    causes.push(forbidden(
                        "spec.resources.requests.storage",
                        "field can not be less than status.capacity",
                    ));
                }
            }
        }
        ("", "services") => {
            let (o, n) = (&os["clusterIP"], &ns["clusterIP"]);
            if !o.is_null() && o != "" && o != n && ns["type"] != "ExternalName" {
                causes.push(invalid(
                    "spec.clusterIPs[0]",
                    format!("[]string{{{n}}}"),
                    "may not change once set",
                ));
            }
        }
        ("", "secrets" | "configmaps") if old["immutable"] == json!(true) => {
            for k in ["data", "binaryData", "stringData"] {
                if old[k] != new[k] {
                    causes.push(forbidden(k, "field is immutable when `immutable` is set"));
                }
            }
            if new["immutable"] != json!(true) {
                causes.push(forbidden(
                    "immutable",
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        ("batch", "jobs") => {
            if os["template"] != ns["template"] {
                causes.push(invalid("spec.template", "{...}", "field is immutable"));
            }
            if os["selector"] != ns["selector"] && !os["selector"].is_null() {
                causes.push(invalid("spec.selector", "{...}", "field is immutable"));
            }
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings")
            if old["roleRef"] != new["roleRef"] =>
        {
            causes.push(invalid(
                "roleRef",
                format!("{}", new["roleRef"]),
                "cannot change roleRef",
            ));
        }
        ("storage.k8s.io", "storageclasses") => {
            for (k, msg) in [
                ("parameters", "updates to parameters are forbidden."),
                ("provisioner", "updates to provisioner are forbidden."),
                ("reclaimPolicy", "updates to reclaimPolicy are forbidden."),
                ("volumeBindingMode", "field is immutable"),
            ] {
                if old[k] != new[k] {
                    causes.push(forbidden(k, msg));
                }
            }
        }
        _ => {}
    }
    fail(rt, new, causes)
}
