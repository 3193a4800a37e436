//! Non-apply patches: JSON merge patch (RFC 7386), strategic merge patch
//! (approximated: merge patch whose keyed lists merge by key, plus the
//! `$patch` and `$deleteFromPrimitiveList` directives), JSON patch (RFC 6902).

use serde_json::Value;

use crate::errors::{ApiError, ApiResult};
use crate::fields::{key_element, list_type, ListType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> ApiResult<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
            _ => Err(ApiError::unsupported_media_type(ct)),
        }
    }
}

/// Applies a non-apply patch body to a copy of the live object.
pub fn apply_patch(kind: PatchKind, live: &Value, body: &[u8]) -> ApiResult<Value> {
    let mut doc = live.clone();
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
        }
        PatchKind::Merge => {
            let p = parse_json(body)?;
            json_patch::merge(&mut doc, &p);
        }
        PatchKind::Strategic => {
            let p = parse_json(body)?;
            strategic_merge(&mut doc, &p);
        }
        PatchKind::Apply => unreachable!("apply patches go through apply::apply"),
    }
    Ok(doc)
}

fn parse_json(body: &[u8]) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the patch must be a JSON object".to_string(),
        ));
    }
    Ok(v)
}

fn without_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), without_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_directives).collect()),
        other => other.clone(),
    }
}

/// Strategic merge of `patch` into `target` (both objects).
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(pm) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if pm.get("$patch").and_then(|v| v.as_str()) == Some("replace") {
        *target = without_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    // `$deleteFromPrimitiveList/<field>` removes values from a primitive list.
    for (k, v) in pm {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (target.get_mut(field), v.as_array()) {
                list.retain(|x| !del.contains(x));
            }
        }
    }
    let tm = target.as_object_mut().expect("object");
    for (k, pv) in pm {
        if k.starts_with('$') {
            continue;
        }
        match pv {
            Value::Null => {
                tm.remove(k);
            }
            Value::Object(_) => {
                let entry = tm.entry(k.clone()).or_insert(Value::Null);
                strategic_merge(entry, pv);
            }
            Value::Array(items) => {
                let live = tm.get(k).and_then(|v| v.as_array()).cloned();
                let sample = live.clone().unwrap_or_default();
                let lt = list_type(k, if items.is_empty() { &sample } else { items });
                let merged = match (lt, live) {
                    (ListType::Map(keys), Some(mut live)) => {
                        merge_keyed(&mut live, items, keys);
                        live
                    }
                    (ListType::Set, Some(mut live)) => {
                        for it in items {
                            if !live.contains(it) {
                                live.push(it.clone());
                            }
                        }
                        live
                    }
                    _ => items
                        .iter()
                        .filter(|i| i.get("$patch").and_then(|v| v.as_str()) != Some("delete"))
                        .map(without_directives)
                        .collect(),
                };
                tm.insert(k.clone(), Value::Array(merged));
            }
            other => {
                tm.insert(k.clone(), other.clone());
            }
        }
    }
}

fn merge_keyed(live: &mut Vec<Value>, items: &[Value], keys: &[&str]) {
    for it in items {
        let key = key_element(it, keys);
        let pos = live.iter().position(|l| key_element(l, keys) == key);
        let directive = it.get("$patch").and_then(|v| v.as_str());
        match (pos, directive) {
            (Some(i), Some("delete")) => {
                live.remove(i);
            }
            (None, Some("delete")) => {}
            (Some(i), Some("replace")) => live[i] = without_directives(it),
            (Some(i), _) => strategic_merge(&mut live[i], it),
            (None, _) => live.push(without_directives(it)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let live = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}]}});
        let patch = json!({"spec": {"containers": [
            {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
            {"name": "b", "$patch": "delete"}],
            "$setElementOrder/containers": [{"name": "a"}]}});
        let out = apply_patch(PatchKind::Strategic, &live, patch.to_string().as_bytes()).unwrap();
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "a", "image": "a:2",
                "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]}})
        );
    }

    #[test]
    fn merge_patch_replaces_lists_and_deletes_nulls() {
        let live = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": [1, 2]}});
        let patch = json!({"metadata": {"labels": {"a": null}}, "spec": {"x": [3]}});
        let out = apply_patch(PatchKind::Merge, &live, patch.to_string().as_bytes()).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"x": [3]}})
        );
    }
}
