//! The fixed table of resource types the fake serves, and the discovery
//! documents (`/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`, `/openapi/v3`)
//! derived from it. Clients (kubectl, kube-rs discovery) only learn what
//! exists from these documents, so they must agree with the router.

use serde_json::{json, Value};

/// One served resource type. Every type has exactly one served version.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Has a `/status` subresource: main-endpoint writes keep the live status.
    pub has_status: bool,
    /// The server maintains `metadata.generation` (types with a spec the
    /// controllers observe). Others never carry a generation, like the real API.
    pub has_generation: bool,
    /// Extra subresources besides `status` (for discovery).
    pub extra_subresources: &'static [&'static str],
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// "deployments.apps" / "pods": how the real server names a resource in
    /// error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// "StatefulSet.apps" / "Pod": the kind-qualified name used in 422 messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

macro_rules! rt {
    ($g:expr, $v:expr, $p:expr, $s:expr, $k:expr, $ns:expr, $short:expr, $st:expr, $gen:expr, $extra:expr) => {
        ResourceType {
            group: $g,
            version: $v,
            plural: $p,
            singular: $s,
            kind: $k,
            namespaced: $ns,
            short_names: $short,
            has_status: $st,
            has_generation: $gen,
            extra_subresources: $extra,
        }
    };
}

#[rustfmt::skip]
pub static RESOURCES: &[ResourceType] = &[
    rt!("", "v1", "namespaces", "namespace", "Namespace", false, &["ns"], true, false, &[]),
    rt!("", "v1", "nodes", "node", "Node", false, &["no"], true, false, &[]),
    rt!("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, &["sa"], false, false, &[]),
    rt!("", "v1", "secrets", "secret", "Secret", true, &[], false, false, &[]),
    rt!("", "v1", "configmaps", "configmap", "ConfigMap", true, &["cm"], false, false, &[]),
    rt!("", "v1", "services", "service", "Service", true, &["svc"], true, false, &[]),
    rt!("", "v1", "pods", "pod", "Pod", true, &["po"], true, false, &["log", "portforward"]),
    rt!("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true, &["pvc"], true, false, &[]),
    rt!("", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", false, &["pv"], true, false, &[]),
    rt!("", "v1", "replicationcontrollers", "replicationcontroller", "ReplicationController", true, &["rc"], true, true, &[]),
    rt!("", "v1", "events", "event", "Event", true, &["ev"], false, false, &[]),
    rt!("", "v1", "endpoints", "endpoints", "Endpoints", true, &["ep"], false, false, &[]),
    rt!("apps", "v1", "deployments", "deployment", "Deployment", true, &["deploy"], true, true, &[]),
    rt!("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, &["sts"], true, true, &[]),
    rt!("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, &["rs"], true, true, &[]),
    rt!("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", true, &[], false, false, &[]),
    rt!("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", true, &[], false, false, &[]),
    rt!("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", false, &[], false, false, &[]),
    rt!("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", false, &[], false, false, &[]),
    rt!("storage.k8s.io", "v1", "storageclasses", "storageclass", "StorageClass", false, &["sc"], false, false, &[]),
    rt!("batch", "v1", "jobs", "job", "Job", true, &[], true, true, &[]),
    rt!("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", true, &["pdb"], true, true, &[]),
    rt!("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", true, &["ing"], true, true, &[]),
];

/// Looks a type up by group and plural (the URL form).
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks a type up by apiVersion ("v1", "apps/v1") and plural.
pub fn by_api_version(api_version: &str, plural: &str) -> Option<&'static ResourceType> {
    let (group, version) = split_api_version(api_version);
    find(group, version, plural)
}

/// Looks a type up by apiVersion and kind (for ownerReferences, apply bodies).
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    let (group, version) = split_api_version(api_version);
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The named type (compile-time constant lookups used by the controllers).
pub fn rt(group: &str, plural: &str) -> &'static ResourceType {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .unwrap_or_else(|| panic!("unknown resource {group}/{plural}"))
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Distinct (group, version) pairs other than core, in table order.
fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

pub fn has_group_version(group: &str, version: &str) -> bool {
    RESOURCES
        .iter()
        .any(|r| r.group == group && r.version == version)
}

pub fn version_doc() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.0-howdah-fake",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn core_versions(server: &str) -> Value {
    json!({
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}]
    })
}

fn group_entry(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

pub fn group_list() -> Value {
    let groups: Vec<Value> = groups().iter().map(|(g, v)| group_entry(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>` (APIGroup).
pub fn group_doc(group: &str) -> Option<Value> {
    let (g, v) = groups().into_iter().find(|(g, _)| *g == group)?;
    let mut doc = group_entry(g, v);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    if !has_group_version(group, version) {
        return None;
    }
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut main = json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            main["shortNames"] = json!(r.short_names);
        }
        if r.group == "apps" || r.plural == "pods" || r.plural == "services" {
            main["categories"] = json!(["all"]);
        }
        resources.push(main);
        if r.has_status {
            resources.push(json!({
                "name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        for sub in r.extra_subresources {
            let (kind, verbs) = match *sub {
                "portforward" => ("PodPortForwardOptions", json!(["create", "get"])),
                _ => ("Pod", json!(["get"])),
            };
            resources.push(json!({
                "name": format!("{}/{}", r.plural, sub), "singularName": "", "namespaced": r.namespaced,
                "kind": kind, "verbs": verbs,
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// `/openapi/v3`: the index of per-group-version documents. kubectl reads it
/// to decide whether the server validates fields itself (the
/// `fieldValidation` query parameter); without it kubectl falls back to
/// client-side schema validation, which needs full schemas the fake lacks.
pub fn openapi_v3_root() -> Value {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".into(),
        json!({"serverRelativeURL": "/openapi/v3/api/v1?hash=fake"}),
    );
    for (g, v) in groups() {
        paths.insert(
            format!("apis/{g}/{v}"),
            json!({"serverRelativeURL": format!("/openapi/v3/apis/{g}/{v}?hash=fake")}),
        );
    }
    json!({ "paths": paths })
}

/// A minimal OpenAPI v3 document for one group-version: only the PATCH
/// operations, tagged with their GVK and declaring `fieldValidation`, which
/// is what kubectl's query-parameter verifier looks for.
pub fn openapi_v3_gv(group: &str, version: &str) -> Option<Value> {
    if !has_group_version(group, version) {
        return None;
    }
    let prefix = if group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = serde_json::Map::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let op = json!({
            "operationId": format!("patch{}", r.kind),
            "parameters": [
                {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                {"name": "force", "in": "query", "schema": {"type": "boolean"}}
            ],
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind}
        });
        paths.insert(path, json!({ "patch": op }));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}
