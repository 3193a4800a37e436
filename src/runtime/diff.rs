//! What differs between an object as rendered and as it is live. The live
//! object carries fields the server filled in (defaults, status, uid), so
//! the comparison asks "does live hold everything we set?", with quantities
//! compared by value (500m == 0.5) and labels/annotations howdah once set
//! but no longer wants reported as removals. Secret values are never printed.
//!
//! Lists whose elements have a key (containers and env by `name`, mounts by
//! `mountPath`, ports by port and protocol) are compared entry by entry, and
//! an entry in such a list that the stack does not render is drift: another
//! tool added it (`kubectl set env`). Server-side apply never removes what
//! another field manager owns, so [`remove_foreign_entries`] gives `up` the
//! object without them, for a write that really removes them. Other lists
//! are compared whole (apply replaces them whole).

use howdah_provider::FieldChange;
use serde_json::Value;

use super::cluster::FIELD_MANAGER;

/// Text standing in for a secret value in plans and errors.
pub const SENSITIVE: &str = "(sensitive)";

/// Differences between `desired` and `live` for one object, with paths
/// prefixed by `prefix` (e.g. `StatefulSet/etcd`).
pub fn diff_object(prefix: &str, desired: &Value, live: &Value) -> Vec<FieldChange> {
    let secret = desired["kind"].as_str() == Some("Secret");
    let mut out = Vec::new();
    if let Some(map) = desired.as_object() {
        for (key, want) in map {
            match key.as_str() {
                "apiVersion" | "kind" | "status" => {}
                "metadata" => {
                    for field in ["labels", "annotations"] {
                        compare(
                            &format!("metadata.{field}"),
                            &want[field],
                            &live["metadata"][field],
                            false,
                            &mut out,
                        );
                        removed_owned_keys(field, &want[field], live, &mut out);
                    }
                }
                _ => compare(
                    key,
                    want,
                    &live[key.as_str()],
                    secret && (key == "data" || key == "stringData"),
                    &mut out,
                ),
            }
        }
    }
    for change in &mut out {
        change.path = format!("{prefix}: {}", change.path);
    }
    out
}

fn compare(path: &str, want: &Value, have: &Value, sensitive: bool, out: &mut Vec<FieldChange>) {
    match (want, have) {
        (Value::Object(w), _) => {
            if w.is_empty() {
                return;
            }
            for (k, v) in w {
                let child = if is_plain_key(k) {
                    format!("{path}.{k}")
                } else {
                    format!("{path}[{k}]")
                };
                compare(
                    &child,
                    v,
                    have.get(k).unwrap_or(&Value::Null),
                    sensitive,
                    out,
                );
            }
        }
        (Value::Array(w), Value::Array(h)) if keyed(w) && (h.is_empty() || keyed(h)) => {
            for wv in w {
                let child = format!("{path}[{}]", label(wv));
                match h.iter().find(|hv| element_key(hv) == element_key(wv)) {
                    Some(hv) => compare(&child, wv, hv, sensitive, out),
                    None => out.push(FieldChange {
                        path: child,
                        old: None,
                        new: show(wv, sensitive),
                    }),
                }
            }
            for hv in h {
                if !w.iter().any(|wv| element_key(wv) == element_key(hv)) {
                    // Only its key: a foreign entry may hold anything,
                    // a secret among it.
                    out.push(FieldChange {
                        path: format!("{path}[{}]", label(hv)),
                        old: Some(FOREIGN_ENTRY.into()),
                        new: None,
                    });
                }
            }
        }
        (Value::Array(w), Value::Array(h)) if w.len() == h.len() => {
            for (i, (wv, hv)) in w.iter().zip(h).enumerate() {
                let child = format!(
                    "{path}[{}]",
                    element_name(wv).unwrap_or_else(|| i.to_string())
                );
                compare(&child, wv, hv, sensitive, out);
            }
        }
        (Value::Array(w), _)
            if w.is_empty() && (have.is_null() || have == &Value::Array(vec![])) => {}
        (Value::Null, _) => {}
        _ => {
            if !same_scalar(path, want, have) {
                out.push(FieldChange {
                    path: path.to_string(),
                    old: show(have, sensitive),
                    new: show(want, sensitive),
                });
            }
        }
    }
}

/// Labels/annotations howdah's field manager owns on the live object that
/// the desired object no longer has: server-side apply will remove them.
fn removed_owned_keys(field: &str, want: &Value, live: &Value, out: &mut Vec<FieldChange>) {
    let Some(entries) = live["metadata"]["managedFields"].as_array() else {
        return;
    };
    for entry in entries {
        if entry["manager"].as_str() != Some(FIELD_MANAGER)
            || entry["operation"].as_str() != Some("Apply")
        {
            continue;
        }
        let Some(owned) = entry["fieldsV1"]["f:metadata"][format!("f:{field}")].as_object() else {
            continue;
        };
        for key in owned.keys().filter_map(|k| k.strip_prefix("f:")) {
            if want.get(key).is_none() {
                if let Some(old) = live["metadata"][field].get(key) {
                    out.push(FieldChange {
                        path: format!("metadata.{field}.{key}"),
                        old: show(old, false),
                        new: None,
                    });
                }
            }
        }
    }
}

fn is_plain_key(k: &str) -> bool {
    k.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// How a plan shows an entry another tool added to a keyed list.
pub const FOREIGN_ENTRY: &str = "(added outside howdah)";

/// The key server-side apply merges a list element by, or None for an
/// element of a list that is replaced whole. Ports default to TCP, as the
/// API server fills them.
fn element_key(v: &Value) -> Option<String> {
    let o = v.as_object()?;
    let protocol = || o.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
    if let Some(path) = o.get("mountPath").and_then(Value::as_str) {
        return Some(format!("mountPath={path}"));
    }
    if let Some(port) = o.get("containerPort").and_then(Value::as_i64) {
        return Some(format!("containerPort={port}/{}", protocol()));
    }
    if let Some(port) = o.get("port").and_then(Value::as_i64) {
        return Some(format!("port={port}/{}", protocol()));
    }
    element_name(v).map(|n| format!("name={n}"))
}

/// A list whose every element has a key.
fn keyed(list: &[Value]) -> bool {
    !list.is_empty() && list.iter().all(|e| element_key(e).is_some())
}

/// How a keyed element is named in a path: its name when it has one.
fn label(v: &Value) -> String {
    element_name(v)
        .or_else(|| element_key(v))
        .unwrap_or_default()
}

/// Removes from `live`, in place, every entry of a keyed list that
/// `desired` does not have (below `metadata` and `status`, which are not
/// howdah's to prune). Returns how many it removed.
pub fn remove_foreign_entries(desired: &Value, live: &mut Value) -> usize {
    let (Some(want), Some(have)) = (desired.as_object(), live.as_object_mut()) else {
        return 0;
    };
    want.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"))
        .map(|(k, w)| have.get_mut(k).map_or(0, |h| prune(w, h)))
        .sum()
}

fn prune(want: &Value, have: &mut Value) -> usize {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .map(|(k, wv)| h.get_mut(k).map_or(0, |hv| prune(wv, hv)))
            .sum(),
        (Value::Array(w), Value::Array(h)) if keyed(w) && (h.is_empty() || keyed(h)) => {
            let before = h.len();
            h.retain(|hv| w.iter().any(|wv| element_key(wv) == element_key(hv)));
            let mut removed = before - h.len();
            for hv in h.iter_mut() {
                let key = element_key(hv);
                if let Some(wv) = w.iter().find(|wv| element_key(wv) == key) {
                    removed += prune(wv, hv);
                }
            }
            removed
        }
        (Value::Array(w), Value::Array(h)) if w.len() == h.len() => w
            .iter()
            .zip(h.iter_mut())
            .map(|(wv, hv)| prune(wv, hv))
            .sum(),
        _ => 0,
    }
}

/// Names list elements (containers, env, ports, volumes) by their `name`,
/// claim templates by their `metadata.name`.
fn element_name(v: &Value) -> Option<String> {
    v.get("name")
        .or_else(|| v.get("metadata").and_then(|m| m.get("name")))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn show(v: &Value, sensitive: bool) -> Option<String> {
    if v.is_null() {
        return None;
    }
    if sensitive {
        return Some(SENSITIVE.into());
    }
    Some(match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn same_scalar(path: &str, want: &Value, have: &Value) -> bool {
    if want == have {
        return true;
    }
    // The server canonicalises quantities (0.5 -> 500m, 1024Mi -> 1Gi).
    if path.contains("resources") || path.contains("storage") {
        if let (Some(w), Some(h)) = (
            want.as_str().and_then(quantity),
            have.as_str().and_then(quantity),
        ) {
            return (w - h).abs() <= f64::EPSILON * w.abs().max(1.0);
        }
    }
    // An int-or-string field sent as "8080" may come back as 8080, and back.
    match (want, have) {
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            s == &n.to_string()
        }
        _ => false,
    }
}

/// The value of a Kubernetes quantity ("10Gi", "500m", "1.5", "2e3"):
/// the spec validator's parser, so both agree on what a quantity is.
pub fn quantity(text: &str) -> Option<f64> {
    crate::spec::quantity::parse_quantity(text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts(size: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "etcd", "labels": {"app": "etcd"}},
            "spec": {"replicas": 1, "volumeClaimTemplates": [
                {"metadata": {"name": "etcd-storage"}, "spec": {"resources": {"requests": {"storage": size}}}}
            ]}
        })
    }

    #[test]
    fn server_defaults_and_status_are_not_differences() {
        let desired = sts("10Gi");
        let mut live = sts("10Gi");
        live["metadata"]["uid"] = json!("u");
        live["spec"]["podManagementPolicy"] = json!("OrderedReady");
        live["status"] = json!({"readyReplicas": 1});
        assert!(diff_object("StatefulSet/etcd", &desired, &live).is_empty());
    }

    #[test]
    fn a_resized_volume_is_one_named_change() {
        let changes = diff_object("StatefulSet/etcd", &sts("20Gi"), &sts("10Gi"));
        assert_eq!(changes.len(), 1);
        assert_eq!(
            changes[0].path,
            "StatefulSet/etcd: spec.volumeClaimTemplates[etcd-storage].spec.resources.requests.storage"
        );
        assert_eq!(changes[0].old.as_deref(), Some("10Gi"));
        assert_eq!(changes[0].new.as_deref(), Some("20Gi"));
    }

    #[test]
    fn canonicalised_quantities_are_equal() {
        let want = json!({"kind": "Deployment", "spec": {"resources": {"cpu": "0.5", "memory": "1024Mi"}}});
        let have =
            json!({"kind": "Deployment", "spec": {"resources": {"cpu": "500m", "memory": "1Gi"}}});
        assert!(diff_object("d", &want, &have).is_empty());
    }

    #[test]
    fn secret_values_never_appear() {
        let want = json!({"kind": "Secret", "data": {"postgresql-password": "bmV3"}});
        let have = json!({"kind": "Secret", "data": {"postgresql-password": "b2xk"}});
        let changes = diff_object("Secret/postgres", &want, &have);
        assert_eq!(changes.len(), 1);
        let text = format!("{changes:?}");
        assert!(!text.contains("bmV3") && !text.contains("b2xk"), "{text}");
    }

    #[test]
    fn a_dropped_tag_is_a_removal_when_howdah_owned_it() {
        let want = json!({"kind": "ConfigMap", "metadata": {"labels": {"a": "1"}}});
        let have = json!({"kind": "ConfigMap", "metadata": {
            "labels": {"a": "1", "team": "ml", "other": "x"},
            "managedFields": [{"manager": "howdah", "operation": "Apply",
                "fieldsV1": {"f:metadata": {"f:labels": {"f:a": {}, "f:team": {}}}}}]
        }});
        let changes = diff_object("ConfigMap/c", &want, &have);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(changes[0].path.ends_with("metadata.labels.team"));
        assert_eq!(changes[0].new, None);
    }

    #[test]
    fn an_entry_another_tool_added_is_one_change_that_names_only_its_key() {
        let want = json!({"kind": "Deployment", "spec": {"containers": [{"name": "pachw",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}});
        let have = json!({"kind": "Deployment", "spec": {"containers": [{"name": "pachw",
            "env": [{"name": "A", "value": "1"}, {"name": "FOO", "value": "s3cret"}, {"name": "B", "value": "2"}]}]}});
        let changes = diff_object("Deployment/pachw", &want, &have);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(
            changes[0].path,
            "Deployment/pachw: spec.containers[pachw].env[FOO]"
        );
        assert_eq!(changes[0].old.as_deref(), Some(FOREIGN_ENTRY));
        assert_eq!(changes[0].new, None);
        assert!(!format!("{changes:?}").contains("s3cret"));

        let mut pruned = have.clone();
        assert_eq!(remove_foreign_entries(&want, &mut pruned), 1);
        assert!(diff_object("Deployment/pachw", &want, &pruned).is_empty());
        assert_eq!(
            pruned["spec"]["containers"][0]["env"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn a_missing_entry_is_one_change_and_order_does_not_matter() {
        let want = json!({"kind": "Service", "spec": {"ports": [
            {"name": "grpc", "port": 1650}, {"name": "s3", "port": 1600}]}});
        let have = json!({"kind": "Service", "spec": {"ports": [
            {"name": "s3", "port": 1600, "protocol": "TCP", "targetPort": 1600}]}});
        let changes = diff_object("Service/pachd", &want, &have);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(changes[0].path.ends_with("spec.ports[grpc]"));
        assert!(changes[0].old.is_none());

        let reordered = json!({"kind": "Service", "spec": {"ports": [
            {"name": "s3", "port": 1600, "protocol": "TCP"}, {"name": "grpc", "port": 1650, "protocol": "TCP"}]}});
        assert!(diff_object("Service/pachd", &want, &reordered).is_empty());
    }

    #[test]
    fn lists_without_keys_are_compared_whole() {
        let want = json!({"kind": "Deployment", "spec": {"args": ["a", "b"]}});
        let have = json!({"kind": "Deployment", "spec": {"args": ["a", "b", "c"]}});
        assert_eq!(diff_object("d", &want, &have).len(), 1);
        let mut live = have.clone();
        assert_eq!(remove_foreign_entries(&want, &mut live), 0);
    }

    #[test]
    fn quantities_parse() {
        assert_eq!(quantity("10Gi"), Some(10.0 * 1024f64.powi(3)));
        assert_eq!(quantity("500m"), Some(0.5));
        assert_eq!(quantity("2e3"), Some(2000.0));
        assert_eq!(quantity("10GB"), None);
        assert_eq!(quantity(""), None);
    }
}
