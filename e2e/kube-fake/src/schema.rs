//! The fields each served type declares at its top level and in
//! `metadata`: enough of the OpenAPI schema to treat unknown fields as the
//! real server does (kube-recordings 20-probes seq 33-40). Nested levels
//! are not checked.

use serde_json::Value;

use crate::resources::ResourceType;

const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Top-level fields besides apiVersion, kind and metadata; None: not checked.
fn top_level(rt: &ResourceType) -> Option<&'static [&'static str]> {
    Some(match (rt.group, rt.plural) {
        ("", "configmaps") => &["data", "binaryData", "immutable"],
        ("", "secrets") => &["data", "stringData", "type", "immutable"],
        ("", "serviceaccounts") => &[
            "secrets",
            "imagePullSecrets",
            "automountServiceAccountToken",
        ],
        ("", "events") => return None,
        ("", "endpoints") => &["subsets"],
        ("rbac.authorization.k8s.io", "roles") => &["rules"],
        ("rbac.authorization.k8s.io", "clusterroles") => &["rules", "aggregationRule"],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            &["subjects", "roleRef"]
        }
        ("storage.k8s.io", "storageclasses") => &[
            "provisioner",
            "parameters",
            "reclaimPolicy",
            "mountOptions",
            "allowVolumeExpansion",
            "volumeBindingMode",
            "allowedTopologies",
        ],
        _ => &["spec", "status"],
    })
}

/// Paths (`.bogus`, `.metadata.bogus`) of the fields the schema does not declare.
pub fn unknown_fields(rt: &ResourceType, obj: &Value) -> Vec<String> {
    let Some(extra) = top_level(rt) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(m) = obj.as_object() {
        for k in m.keys() {
            if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                && !extra.contains(&k.as_str())
            {
                out.push(format!(".{k}"));
            }
        }
    }
    if let Some(m) = obj["metadata"].as_object() {
        for k in m.keys() {
            if !OBJECT_META.contains(&k.as_str()) {
                out.push(format!(".metadata.{k}"));
            }
        }
    }
    out
}

/// Removes undeclared fields (what decoding into the typed object does).
pub fn drop_unknown(rt: &ResourceType, obj: &mut Value) {
    for p in unknown_fields(rt, obj) {
        let parts: Vec<&str> = p.trim_start_matches('.').split('.').collect();
        match parts.as_slice() {
            [k] => {
                obj.as_object_mut().map(|m| m.remove(*k));
            }
            ["metadata", k] => {
                obj["metadata"].as_object_mut().map(|m| m.remove(*k));
            }
            _ => {}
        }
    }
}
