//! Server-side apply (`application/apply-patch+yaml`): merges an applied
//! configuration into the live object with per-manager field ownership,
//! conflicts with other managers, and removal of fields the manager applied
//! before but omits now. A structural approximation of structured-merge-diff
//! driven by the list table in `fields`.

use serde_json::{Map, Value};

use crate::errors::{ApiError, ApiResult};
use crate::fields::{self, key_element, list_type, ListType, Managed, PathSet, Scope};

/// Parses an apply body: YAML or JSON (JSON is YAML, but serde_json first
/// gives better errors for the common case).
pub fn parse_body(body: &[u8]) -> ApiResult<Value> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => serde_norway::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the apply configuration must be an object",
        ));
    }
    Ok(v)
}

/// Nulls in an applied configuration mean "not specified".
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Server-owned metadata an applied configuration may not set.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The configuration restricted to what this endpoint may change.
pub fn scoped_config(config: &Value, scope: Scope) -> Value {
    let mut c = strip_nulls(config);
    let m = c.as_object_mut().expect("apply config is an object");
    if let Some(meta) = m.get_mut("metadata").and_then(|v| v.as_object_mut()) {
        for k in SERVER_METADATA {
            meta.remove(*k);
        }
    }
    match scope {
        Scope::All => {}
        Scope::NoStatus => {
            m.remove("status");
        }
        Scope::StatusOnly => {
            m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
            if let Some(meta) = m.get_mut("metadata").and_then(|v| v.as_object_mut()) {
                meta.retain(|k, _| k == "name" || k == "namespace");
            }
        }
    }
    c
}

fn merge_value(live: &mut Value, config: &Value, field: &str) {
    match config {
        Value::Object(cm) => {
            if !live.is_object() {
                *live = Value::Object(Map::new());
            }
            let lm = live.as_object_mut().expect("object");
            for (k, cv) in cm {
                match lm.get_mut(k) {
                    Some(lv) => merge_value(lv, cv, k),
                    None => {
                        lm.insert(k.clone(), cv.clone());
                    }
                }
            }
        }
        Value::Array(items) => {
            let live_items = live.as_array().cloned();
            let sample = if items.is_empty() {
                live_items.clone().unwrap_or_default()
            } else {
                items.clone()
            };
            match (list_type(field, &sample), live_items) {
                (ListType::Map(keys), Some(old)) => {
                    // Applied elements in applied order, then elements only
                    // others set, in their existing order.
                    let mut out = Vec::new();
                    for it in items {
                        let k = key_element(it, keys);
                        match old.iter().find(|o| key_element(o, keys) == k) {
                            Some(o) => {
                                let mut merged = o.clone();
                                merge_value(&mut merged, it, "");
                                out.push(merged);
                            }
                            None => out.push(it.clone()),
                        }
                    }
                    for o in old {
                        let k = key_element(&o, keys);
                        if !items.iter().any(|it| key_element(it, keys) == k) {
                            out.push(o);
                        }
                    }
                    *live = Value::Array(out);
                }
                (ListType::Set, Some(mut old)) => {
                    for it in items {
                        if !old.contains(it) {
                            old.push(it.clone());
                        }
                    }
                    *live = Value::Array(old);
                }
                _ => *live = config.clone(),
            }
        }
        other => *live = other.clone(),
    }
}

pub struct ApplyRequest<'a> {
    pub manager: &'a str,
    pub force: bool,
    pub subresource: Option<&'a str>,
    pub scope: Scope,
    pub now: &'a str,
}

/// Computes the object after applying `config` (already scoped) as
/// `req.manager`. `live` is None when the apply creates the object.
pub fn apply(live: Option<&Value>, config: &Value, req: &ApplyRequest) -> ApiResult<Value> {
    let new_mine: PathSet = fields::collect(config, req.scope);
    let mut entries: Vec<Managed> = live.map(fields::read_managed).unwrap_or_default();
    let old_mine: PathSet = entries
        .iter()
        .find(|e| e.same_owner(req.manager, "Apply", req.subresource))
        .map(|e| e.set.clone())
        .unwrap_or_default();

    let base = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let mut merged = base.clone();
    merge_value(&mut merged, config, "");

    // Conflicts: another manager owns a field this apply sets to a different value.
    let mut conflicts: Vec<(usize, Vec<String>)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.same_owner(req.manager, "Apply", req.subresource) {
            continue;
        }
        for p in e.set.intersection(&new_mine) {
            if fields::is_element(p) {
                continue;
            }
            if fields::get_at(&base, p) != fields::get_at(&merged, p) {
                conflicts.push((i, p.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !req.force {
            let described: Vec<(String, String)> = conflicts
                .iter()
                .map(|(i, p)| (entries[*i].describe(), fields::display(p)))
                .collect();
            return Err(ApiError::apply_conflict(&described));
        }
        for (i, p) in &conflicts {
            entries[*i].set.remove(p);
        }
    }

    // Fields this manager applied before but omits now, and nobody else owns,
    // are removed. Shallowest paths first: a list element nobody else owns
    // anything in goes as a whole (removing its key field first would leave
    // a nameless element that can no longer be found by its key), and what
    // lay inside it needs no further work.
    let mut gone: Vec<&Vec<String>> = old_mine.difference(&new_mine).collect();
    gone.sort_by_key(|p| p.len());
    let mut removed: Vec<&Vec<String>> = Vec::new();
    for p in gone {
        if removed.iter().any(|r| p.starts_with(r)) {
            continue;
        }
        let owned_elsewhere = entries.iter().any(|e| {
            !e.same_owner(req.manager, "Apply", req.subresource)
                && e.set.iter().any(|q| q.starts_with(p))
        }) || new_mine.iter().any(|q| q.starts_with(p));
        if !owned_elsewhere {
            fields::remove_at(&mut merged, p);
            removed.push(p);
        }
    }

    let api_version = config["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match entries
        .iter_mut()
        .find(|e| e.same_owner(req.manager, "Apply", req.subresource))
    {
        Some(e) => {
            if e.set != new_mine {
                e.time = req.now.to_string();
            }
            e.set = new_mine;
            e.api_version = api_version;
        }
        None => entries.push(Managed {
            manager: req.manager.to_string(),
            operation: "Apply".into(),
            api_version,
            time: req.now.to_string(),
            subresource: req.subresource.map(str::to_string),
            set: new_mine,
        }),
    }
    fields::prune(&mut entries, &merged);
    fields::write_managed(&mut merged, &entries);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req<'a>(manager: &'a str, force: bool) -> ApplyRequest<'a> {
        ApplyRequest {
            manager,
            force,
            subresource: None,
            scope: Scope::NoStatus,
            now: "2025-01-01T00:00:00Z",
        }
    }

    #[test]
    fn removes_fields_the_manager_dropped_and_conflicts_with_others() {
        let c1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x",
            "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
        let o1 = apply(None, &c1, &req("m1", false)).unwrap();
        let c2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x",
            "labels": {"a": "1"}}, "data": {"k": "v"}});
        let o2 = apply(Some(&o1), &c2, &req("m1", false)).unwrap();
        assert_eq!(o2["metadata"]["labels"], json!({"a": "1"}));
        let c3 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
            "data": {"k": "other"}});
        let err = apply(Some(&o2), &c3, &req("m2", false)).unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"m1\": .data.k"
        );
        let o3 = apply(Some(&o2), &c3, &req("m2", true)).unwrap();
        assert_eq!(o3["data"]["k"], "other");
        let owners = fields::read_managed(&o3);
        assert!(owners.iter().all(|e| e.manager != "m1"
            || !e
                .set
                .contains(&vec!["f:data".to_string(), "f:k".to_string()])));
    }
}
