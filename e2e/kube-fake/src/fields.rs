//! Field sets for server-side apply: paths in the `FieldsV1` notation
//! (`f:name`, `k:{"name":"c"}`, `v:"x"`, `i:0`), conversion to and from the
//! `managedFields` JSON, per-manager entries, and the small schema table that
//! says which lists merge by key (the real server reads this from OpenAPI
//! `x-kubernetes-list-type`/`x-kubernetes-list-map-keys`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

pub type Path = Vec<String>;
pub type PathSet = BTreeSet<Path>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    Atomic,
    Map(&'static [&'static str]),
    Set,
}

/// The list semantics of a field, keyed by its name (and for `ports`, by the
/// shape of its elements: container ports and service ports have different keys).
pub fn list_type(field: &str, sample: &[Value]) -> ListType {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => ListType::Map(&["name"]),
        "volumeMounts" => ListType::Map(&["mountPath"]),
        "volumeDevices" => ListType::Map(&["devicePath"]),
        "ownerReferences" => ListType::Map(&["uid"]),
        "conditions" => ListType::Map(&["type"]),
        "hostAliases" => ListType::Map(&["ip"]),
        "topologySpreadConstraints" => ListType::Map(&["topologyKey", "whenUnsatisfiable"]),
        "finalizers" => ListType::Set,
        "ports" => {
            let first = sample.iter().find_map(|v| v.as_object());
            match first {
                Some(o) if o.contains_key("containerPort") => {
                    ListType::Map(&["containerPort", "protocol"])
                }
                Some(o) if o.contains_key("port") => ListType::Map(&["port", "protocol"]),
                _ => ListType::Atomic,
            }
        }
        _ => ListType::Atomic,
    }
}

/// A key field's value; `protocol` defaults to TCP as the API defaults it,
/// so an applied port without a protocol matches the defaulted live one.
fn key_value(elem: &Value, key: &str) -> Value {
    match elem.get(key) {
        Some(v) if !v.is_null() => v.clone(),
        _ if key == "protocol" => json!("TCP"),
        _ => Value::Null,
    }
}

/// `k:{...}` with keys in sorted order (independent of serde_json's map order).
pub fn key_element(elem: &Value, keys: &[&str]) -> String {
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort();
    let parts: Vec<String> = sorted
        .iter()
        .map(|k| format!("{}:{}", json!(k), key_value(elem, k)))
        .collect();
    format!("k:{{{}}}", parts.join(","))
}

/// Which parts of an object a field set covers: the main resource (without
/// status for types with a status subresource) or the status subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    NoStatus,
    StatusOnly,
}

const TRACKED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// The fields an object (or an applied configuration) sets.
pub fn collect(obj: &Value, scope: Scope) -> PathSet {
    let mut out = PathSet::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for (k, v) in map {
        if v.is_null() || k == "apiVersion" || k == "kind" {
            continue;
        }
        let in_scope = match scope {
            Scope::All => true,
            Scope::NoStatus => k != "status",
            Scope::StatusOnly => k == "status",
        };
        if k == "metadata" {
            if scope == Scope::StatusOnly {
                continue;
            }
            if let Some(meta) = v.as_object() {
                for mk in TRACKED_METADATA {
                    if let Some(mv) = meta.get(*mk) {
                        collect_field(mk, mv, vec!["f:metadata".into()], &mut out);
                    }
                }
            }
        } else if in_scope {
            collect_field(k, v, Vec::new(), &mut out);
        }
    }
    out
}

fn collect_field(name: &str, v: &Value, prefix: Path, out: &mut PathSet) {
    if v.is_null() {
        return;
    }
    let mut p = prefix;
    p.push(format!("f:{name}"));
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, cv) in m {
                collect_field(k, cv, p.clone(), out);
            }
        }
        Value::Array(items) => match list_type(name, items) {
            ListType::Atomic => {
                out.insert(p);
            }
            ListType::Set => {
                for item in items {
                    let mut ep = p.clone();
                    ep.push(format!("v:{item}"));
                    out.insert(ep);
                }
                if items.is_empty() {
                    out.insert(p);
                }
            }
            ListType::Map(keys) => {
                for item in items {
                    let mut ep = p.clone();
                    ep.push(key_element(item, keys));
                    out.insert(ep.clone());
                    if let Some(m) = item.as_object() {
                        for (k, cv) in m {
                            collect_field(k, cv, ep.clone(), out);
                        }
                    }
                }
                if items.is_empty() {
                    out.insert(p);
                }
            }
        },
        _ => {
            out.insert(p);
        }
    }
}

fn elem_matches(elem: &Value, step: &str) -> bool {
    if let Some(k) = step.strip_prefix("k:") {
        let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(k) else {
            return false;
        };
        keys.iter().all(|(kk, kv)| key_value(elem, kk) == *kv)
    } else if let Some(v) = step.strip_prefix("v:") {
        serde_json::from_str::<Value>(v).ok().as_ref() == Some(elem)
    } else {
        false
    }
}

fn step_index(arr: &[Value], step: &str) -> Option<usize> {
    if let Some(i) = step.strip_prefix("i:") {
        return i.parse().ok().filter(|i| *i < arr.len());
    }
    arr.iter().position(|e| elem_matches(e, step))
}

pub fn get_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for step in path {
        cur = match (cur, step.strip_prefix("f:")) {
            (Value::Object(m), Some(f)) => m.get(f)?,
            (Value::Array(a), None) => &a[step_index(a, step)?],
            _ => return None,
        };
    }
    Some(cur)
}

fn get_at_mut<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = v;
    for step in path {
        cur = match (cur, step.strip_prefix("f:")) {
            (Value::Object(m), Some(f)) => m.get_mut(f)?,
            (Value::Array(a), None) => {
                let i = step_index(a, step)?;
                &mut a[i]
            }
            _ => return None,
        };
    }
    Some(cur)
}

/// Removes the field or list element a path names; true if something went.
pub fn remove_at(v: &mut Value, path: &[String]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    match (get_at_mut(v, parent), last.strip_prefix("f:")) {
        (Some(Value::Object(m)), Some(f)) => m.remove(f).is_some(),
        (Some(Value::Array(a)), None) => match step_index(a, last) {
            Some(i) => {
                a.remove(i);
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// A path ending in a list element (`k:`/`v:`/`i:`) only asserts the element
/// exists; such paths never conflict on their own.
pub fn is_element(path: &[String]) -> bool {
    path.last().is_some_and(|s| !s.starts_with("f:"))
}

/// `.spec.template.spec.containers[name="app"].image`, as conflicts print paths.
pub fn display(path: &[String]) -> String {
    let mut s = String::new();
    for step in path {
        if let Some(f) = step.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = step.strip_prefix("k:") {
            let parts: Vec<String> = match serde_json::from_str::<Value>(k) {
                Ok(Value::Object(m)) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                _ => vec![k.to_string()],
            };
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = step.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = step.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

#[derive(Default)]
struct Node {
    member: bool,
    children: BTreeMap<String, Node>,
}

pub fn to_fields_v1(set: &PathSet) -> Value {
    let mut root = Node::default();
    for p in set {
        let mut n = &mut root;
        for step in p {
            n = n.children.entry(step.clone()).or_default();
        }
        n.member = true;
    }
    fn render(n: &Node) -> Value {
        let mut m = Map::new();
        if n.member && !n.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &n.children {
            m.insert(k.clone(), render(c));
        }
        Value::Object(m)
    }
    render(&root)
}

pub fn from_fields_v1(v: &Value) -> PathSet {
    fn walk(v: &Value, prefix: &Path, out: &mut PathSet) {
        let Some(m) = v.as_object() else { return };
        for (k, c) in m {
            if k == "." {
                out.insert(prefix.clone());
                continue;
            }
            let mut p = prefix.clone();
            p.push(k.clone());
            if c.as_object().is_none_or(|o| o.is_empty()) {
                out.insert(p);
            } else {
                walk(c, &p, out);
            }
        }
    }
    let mut out = PathSet::new();
    walk(v, &Vec::new(), &mut out);
    out
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Managed {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub set: PathSet,
}

impl Managed {
    pub fn same_owner(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    /// How a conflict names the other manager (as the real apiserver prints it).
    pub fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {} at {}", self.api_version, self.time));
        }
        s
    }
}

pub fn read_managed(obj: &Value) -> Vec<Managed> {
    let Some(arr) = obj
        .pointer("/metadata/managedFields")
        .and_then(|v| v.as_array())
    else {
        return Vec::new();
    };
    arr.iter()
        .map(|e| Managed {
            manager: e["manager"].as_str().unwrap_or_default().to_string(),
            operation: e["operation"].as_str().unwrap_or("Update").to_string(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: e["time"].as_str().unwrap_or_default().to_string(),
            subresource: e["subresource"].as_str().map(str::to_string),
            set: from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

pub fn write_managed(obj: &mut Value, entries: &[Managed]) {
    let Some(meta) = obj.get_mut("metadata").and_then(|m| m.as_object_mut()) else {
        return;
    };
    let arr: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.set),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if arr.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(arr));
    }
}

/// Drops ownership of paths that no longer exist in `obj`.
pub fn prune(entries: &mut Vec<Managed>, obj: &Value) {
    for e in entries.iter_mut() {
        e.set.retain(|p| get_at(obj, p).is_some());
    }
    entries.retain(|e| !e.set.is_empty());
}

/// Records a non-apply write (create, update, patch, or a controller write):
/// the fields it changed become owned by `manager` (operation Update) and are
/// taken from every other manager; fields that disappeared lose all owners.
/// The entries are read from `obj` (the caller carries them over from the
/// live object unless the request replaced them).
pub fn record_update(
    obj: &mut Value,
    old: Option<&Value>,
    manager: &str,
    subresource: Option<&str>,
    api_version: &str,
    scope: Scope,
    now: &str,
) {
    let mut entries = read_managed(obj);
    let changed: PathSet = collect(obj, scope)
        .into_iter()
        .filter(|p| old.and_then(|o| get_at(o, p)) != get_at(obj, p))
        .collect();
    if !changed.is_empty() {
        for e in entries.iter_mut() {
            e.set.retain(|p| !changed.contains(p));
        }
        match entries
            .iter_mut()
            .find(|e| e.same_owner(manager, "Update", subresource))
        {
            Some(e) => {
                e.set.extend(changed);
                e.time = now.to_string();
                e.api_version = api_version.to_string();
            }
            None => entries.push(Managed {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now.to_string(),
                subresource: subresource.map(str::to_string),
                set: changed,
            }),
        }
    }
    prune(&mut entries, obj);
    write_managed(obj, &entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_fields_v1() {
        let obj = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"replicas": 1,
            "template": {"spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}]}}}});
        let set = collect(&obj, Scope::All);
        let v1 = to_fields_v1(&set);
        assert_eq!(from_fields_v1(&v1), set);
        let c = &v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"];
        assert!(c.get(".").is_some());
        assert!(c["f:ports"]
            .get("k:{\"containerPort\":80,\"protocol\":\"TCP\"}")
            .is_some());
        let p: Path = vec![
            "f:spec".into(),
            "f:template".into(),
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"c\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(get_at(&obj, &p), Some(&json!("i")));
        assert_eq!(
            display(&p),
            ".spec.template.spec.containers[name=\"c\"].image"
        );
    }
}
