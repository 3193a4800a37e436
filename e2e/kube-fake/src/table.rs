//! Server-side printing (`Accept: application/json;as=Table;...`), which
//! kubectl asks for on `get`: the columns kubectl users expect for the
//! common types, Name and Age for the rest.

use serde_json::{json, Value};

use crate::resources::ResourceType;
use crate::store::name_of;

pub fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

fn age(obj: &Value) -> String {
    let Some(ts) = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(|v| v.as_str())
    else {
        return "<unknown>".into();
    };
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(ts) else {
        return "<unknown>".into();
    };
    let s = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s if s < 8 * 86400 => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "<none>".into(),
        Value::String(x) if x.is_empty() => "<none>".into(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn pod_status(p: &Value) -> String {
    if p.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    let statuses = p["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in &statuses {
        if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
            return r.to_string();
        }
    }
    p["status"]["phase"]
        .as_str()
        .unwrap_or("Pending")
        .to_string()
}

/// (column names, cells of one object).
fn columns(rt: &ResourceType, o: &Value) -> (Vec<&'static str>, Vec<Value>) {
    let name = json!(name_of(o));
    let st = &o["status"];
    let sp = &o["spec"];
    match rt.plural {
        "pods" => {
            let cs = st["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = sp["containers"].as_array().map_or(0, |c| c.len());
            let ready = cs.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = cs.iter().map(|c| n(&c["restartCount"])).sum();
            (
                vec!["Name", "Ready", "Status", "Restarts", "Age"],
                vec![
                    name,
                    json!(format!("{ready}/{total}")),
                    json!(pod_status(o)),
                    json!(restarts),
                    json!(age(o)),
                ],
            )
        }
        "deployments" => (
            vec!["Name", "Ready", "Up-to-date", "Available", "Age"],
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    n(&st["readyReplicas"]),
                    n(&sp["replicas"])
                )),
                json!(n(&st["updatedReplicas"])),
                json!(n(&st["availableReplicas"])),
                json!(age(o)),
            ],
        ),
        "statefulsets" => (
            vec!["Name", "Ready", "Age"],
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    n(&st["readyReplicas"]),
                    n(&sp["replicas"])
                )),
                json!(age(o)),
            ],
        ),
        "replicasets" => (
            vec!["Name", "Desired", "Current", "Ready", "Age"],
            vec![
                name,
                json!(n(&sp["replicas"])),
                json!(n(&st["replicas"])),
                json!(n(&st["readyReplicas"])),
                json!(age(o)),
            ],
        ),
        "services" => {
            let ports: Vec<String> = sp["ports"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|p| match p["nodePort"].as_i64() {
                    Some(np) => format!("{}:{}/{}", n(&p["port"]), np, s(&p["protocol"])),
                    None => format!("{}/{}", n(&p["port"]), s(&p["protocol"])),
                })
                .collect();
            let ext = st["loadBalancer"]["ingress"]
                .as_array()
                .map(|i| {
                    i.iter()
                        .filter_map(|x| x["ip"].as_str().or(x["hostname"].as_str()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|x| !x.is_empty())
                .unwrap_or_else(|| {
                    if sp["type"] == "LoadBalancer" {
                        "<pending>".into()
                    } else {
                        "<none>".into()
                    }
                });
            (
                vec![
                    "Name",
                    "Type",
                    "Cluster-IP",
                    "External-IP",
                    "Port(s)",
                    "Age",
                ],
                vec![
                    name,
                    json!(s(&sp["type"])),
                    json!(s(&sp["clusterIP"])),
                    json!(ext),
                    json!(ports.join(",")),
                    json!(age(o)),
                ],
            )
        }
        "persistentvolumeclaims" => (
            vec![
                "Name",
                "Status",
                "Volume",
                "Capacity",
                "Access Modes",
                "StorageClass",
                "Age",
            ],
            vec![
                name,
                json!(s(&st["phase"])),
                json!(sp["volumeName"].as_str().unwrap_or("")),
                json!(st["capacity"]["storage"].as_str().unwrap_or("")),
                json!(access(&st["accessModes"])),
                json!(s(&sp["storageClassName"])),
                json!(age(o)),
            ],
        ),
        "persistentvolumes" => {
            let claim = &sp["claimRef"];
            let claim_s = if claim.is_null() {
                String::new()
            } else {
                format!("{}/{}", s(&claim["namespace"]), s(&claim["name"]))
            };
            (
                vec![
                    "Name",
                    "Capacity",
                    "Access Modes",
                    "Reclaim Policy",
                    "Status",
                    "Claim",
                    "StorageClass",
                    "Age",
                ],
                vec![
                    name,
                    json!(sp["capacity"]["storage"].as_str().unwrap_or("")),
                    json!(access(&sp["accessModes"])),
                    json!(s(&sp["persistentVolumeReclaimPolicy"])),
                    json!(s(&st["phase"])),
                    json!(claim_s),
                    json!(s(&sp["storageClassName"])),
                    json!(age(o)),
                ],
            )
        }
        "namespaces" => (
            vec!["Name", "Status", "Age"],
            vec![name, json!(s(&st["phase"])), json!(age(o))],
        ),
        "nodes" => (
            vec!["Name", "Status", "Roles", "Age", "Version"],
            vec![
                name,
                json!("Ready"),
                json!("control-plane"),
                json!(age(o)),
                json!(s(&st["nodeInfo"]["kubeletVersion"])),
            ],
        ),
        "events" => (
            vec!["Last Seen", "Type", "Reason", "Object", "Message"],
            vec![
                json!(age(o)),
                json!(s(&o["type"])),
                json!(s(&o["reason"])),
                json!(format!(
                    "{}/{}",
                    s(&o["involvedObject"]["kind"]).to_lowercase(),
                    s(&o["involvedObject"]["name"])
                )),
                json!(s(&o["message"])),
            ],
        ),
        "storageclasses" => {
            let default = o
                .pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
                == Some(&json!("true"));
            let shown = if default {
                format!("{} (default)", name_of(o))
            } else {
                name_of(o).to_string()
            };
            (
                vec![
                    "Name",
                    "Provisioner",
                    "ReclaimPolicy",
                    "VolumeBindingMode",
                    "AllowVolumeExpansion",
                    "Age",
                ],
                vec![
                    json!(shown),
                    json!(s(&o["provisioner"])),
                    json!(s(&o["reclaimPolicy"])),
                    json!(s(&o["volumeBindingMode"])),
                    json!(o["allowVolumeExpansion"].as_bool().unwrap_or(false)),
                    json!(age(o)),
                ],
            )
        }
        "secrets" => (
            vec!["Name", "Type", "Data", "Age"],
            vec![
                name,
                json!(s(&o["type"])),
                json!(o["data"].as_object().map_or(0, |d| d.len())),
                json!(age(o)),
            ],
        ),
        "configmaps" => (
            vec!["Name", "Data", "Age"],
            vec![
                name,
                json!(
                    o["data"].as_object().map_or(0, |d| d.len())
                        + o["binaryData"].as_object().map_or(0, |d| d.len())
                ),
                json!(age(o)),
            ],
        ),
        "jobs" => (
            vec!["Name", "Status", "Completions", "Age"],
            vec![
                name,
                json!(if st["completionTime"].is_string() {
                    "Complete"
                } else {
                    "Running"
                }),
                json!(format!("{}/{}", n(&st["succeeded"]), n(&sp["completions"]))),
                json!(age(o)),
            ],
        ),
        _ => (vec!["Name", "Age"], vec![name, json!(age(o))]),
    }
}

fn access(modes: &Value) -> String {
    modes
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|x| x.as_str())
                .map(|x| match x {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub fn table(rt: &ResourceType, items: &[Value], list_meta: Option<Value>) -> Value {
    let names = columns(rt, &json!({})).0;
    let defs: Vec<Value> = names
        .iter()
        .map(|c| {
            let format = if *c == "Name" { "name" } else { "" };
            json!({"name": c, "type": "string", "format": format, "description": "", "priority": 0})
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            json!({"cells": columns(rt, o).1, "object": {
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}})
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta.unwrap_or_else(|| json!({})),
        "columnDefinitions": defs, "rows": rows,
    })
}
