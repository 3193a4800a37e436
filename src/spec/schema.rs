//! `howdah schema`: the JSON Schema (draft 2020-12) of the stack file,
//! derived by schemars from the same types serde parses, plus the few
//! hand-written pieces for fields whose YAML shape is wider than their Rust
//! type (`console: false`, quantities written as numbers).

use schemars::{json_schema, Schema, SchemaGenerator};
use serde_json::Value;

use super::aws::AWS_REGIONS;
use super::location::{Segment, YamlPath};
use super::types::{Console, Proxy, Stack, KUBERNETES_VERSIONS};

/// A Kubernetes quantity, for editors; `quantity.rs` is the real check.
pub(crate) const QUANTITY_PATTERN: &str =
    r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[mkMGTPE]|[eE][+-]?[0-9]+)?$";

/// The schema of a whole stack file.
pub fn json_schema() -> Value {
    let mut schema = schemars::schema_for!(Stack).to_value();
    if let Some(object) = schema.as_object_mut() {
        object.insert("title".into(), Value::from("howdah stack file"));
    }
    // The versions come from the charts compiled in, not from the types;
    // the cloud lists are consts the checks share.
    let enums = [
        (
            "/$defs/Pachyderm/properties/version",
            Value::from(super::supported_versions()),
        ),
        (
            "/$defs/Cluster/properties/version",
            Value::from(KUBERNETES_VERSIONS),
        ),
        (
            "/$defs/AwsTarget/properties/region",
            Value::from(AWS_REGIONS),
        ),
    ];
    for (pointer, values) in enums {
        if let Some(object) = schema.pointer_mut(pointer).and_then(Value::as_object_mut) {
            object.insert("enum".into(), values);
        }
    }
    schema
}

/// `console`: a bool shorthand, the full mapping, or empty for the defaults.
pub(crate) fn console_schema(generator: &mut SchemaGenerator) -> Schema {
    let console = generator.subschema_for::<Console>();
    json_schema!({
        "anyOf": [{"type": "boolean"}, console, {"type": "null"}]
    })
}

/// `proxy`: like `console`, a bool shorthand, the mapping, or empty.
pub(crate) fn proxy_schema(generator: &mut SchemaGenerator) -> Schema {
    let proxy = generator.subschema_for::<Proxy>();
    json_schema!({
        "anyOf": [{"type": "boolean"}, proxy, {"type": "null"}]
    })
}

/// A quantity: YAML reads `cpu: 1.5` as a number, which serde accepts too.
pub(crate) fn quantity(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [
            {"type": "string", "pattern": QUANTITY_PATTERN},
            {"type": "number", "minimum": 0}
        ]
    })
}

/// An optional quantity.
pub(crate) fn optional_quantity(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [
            {"type": "string", "pattern": QUANTITY_PATTERN},
            {"type": "number", "minimum": 0},
            {"type": "null"}
        ]
    })
}

/// Follows `$ref`s to the schema they name.
pub(crate) fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    // A bounded loop: a `$ref` cycle would otherwise never end.
    for _ in 0..16 {
        let Some(target) = node.get("$ref").and_then(Value::as_str) else {
            break;
        };
        match target.strip_prefix('#').and_then(|p| root.pointer(p)) {
            Some(next) => node = next,
            None => break,
        }
    }
    node
}

/// The branches of a node: itself, or its `anyOf`/`oneOf` alternatives.
fn branches<'a>(root: &'a Value, node: &'a Value) -> Vec<&'a Value> {
    let node = resolve(root, node);
    let mut out = Vec::new();
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = node.get(combinator).and_then(Value::as_array) {
            for branch in list {
                out.extend(branches(root, branch));
            }
        }
    }
    if out.is_empty() || node.get("properties").is_some() || node.get("enum").is_some() {
        out.push(node);
    }
    out
}

/// The schema node describing the value at `path`, if the schema has one.
pub(crate) fn node_at<'a>(root: &'a Value, path: &YamlPath) -> Option<&'a Value> {
    let mut node = root;
    for segment in path.segments() {
        let next = branches(root, node)
            .into_iter()
            .find_map(|branch| match segment {
                Segment::Key(key) => branch
                    .get("properties")
                    .and_then(|p| p.get(key))
                    .or_else(|| branch.get("additionalProperties").filter(|a| a.is_object())),
                Segment::Index(_) => branch.get("items"),
            });
        node = next?;
    }
    Some(node)
}

/// The values an enum-valued field accepts, for messages.
pub(crate) fn allowed_values(path: &YamlPath) -> Option<Vec<String>> {
    let root = json_schema();
    let node = node_at(&root, path)?;
    let mut values = Vec::new();
    for branch in branches(&root, node) {
        if let Some(list) = branch.get("enum").and_then(Value::as_array) {
            values.extend(list.iter().filter_map(Value::as_str).map(String::from));
        }
        if let Some(value) = branch.get("const").and_then(Value::as_str) {
            values.push(value.to_string());
        }
    }
    (!values.is_empty()).then_some(values)
}

#[cfg(test)]
pub(crate) mod check {
    //! A small JSON Schema checker, enough for the keywords schemars emits
    //! (no `pattern`: the parser's own rules cover those strings).

    use serde_json::Value;

    use super::resolve;

    /// Every place `instance` breaks `schema`, as `path: reason`.
    pub(crate) fn violations(root: &Value, instance: &Value) -> Vec<String> {
        let mut out = Vec::new();
        check(root, root, instance, "", &mut out);
        out
    }

    fn type_matches(name: &str, value: &Value) -> bool {
        match name {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            "number" => value.is_number(),
            "integer" => value.is_i64() || value.is_u64(),
            _ => false,
        }
    }

    fn check(root: &Value, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
        let schema = resolve(root, schema);
        if let Some(kind) = schema.get("type") {
            let ok = match kind {
                Value::String(name) => type_matches(name, value),
                Value::Array(names) => names
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|n| type_matches(n, value)),
                _ => true,
            };
            if !ok {
                out.push(format!("{path}: {value} is not of type {kind}"));
                return;
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                out.push(format!("{path}: {value} is not one of {allowed:?}"));
            }
        }
        if let Some(constant) = schema.get("const") {
            if constant != value {
                out.push(format!("{path}: {value} is not {constant}"));
            }
        }
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64) {
            if value.as_f64().is_some_and(|v| v < minimum) {
                out.push(format!("{path}: {value} is less than {minimum}"));
            }
        }
        if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64) {
            if value.as_f64().is_some_and(|v| v > maximum) {
                out.push(format!("{path}: {value} is more than {maximum}"));
            }
        }
        if let Some(text) = value.as_str() {
            let len = text.chars().count() as u64;
            if schema
                .get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len < m)
            {
                out.push(format!("{path}: {value} is too short"));
            }
            if schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len > m)
            {
                out.push(format!("{path}: {value} is too long"));
            }
        }
        for (keyword, exactly_one) in [("anyOf", false), ("oneOf", true)] {
            if let Some(list) = schema.get(keyword).and_then(Value::as_array) {
                let passing = list
                    .iter()
                    .filter(|branch| {
                        let mut inner = Vec::new();
                        check(root, branch, value, path, &mut inner);
                        inner.is_empty()
                    })
                    .count();
                if passing == 0 || (exactly_one && passing > 1) {
                    out.push(format!(
                        "{path}: {value} matches {passing} branches of {keyword}"
                    ));
                }
            }
        }
        if let Some(list) = schema.get("allOf").and_then(Value::as_array) {
            for branch in list {
                check(root, branch, value, path, out);
            }
        }
        if let Some(object) = value.as_object() {
            let properties = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for key in required.iter().filter_map(Value::as_str) {
                    if !object.contains_key(key) {
                        out.push(format!("{path}: missing required {key}"));
                    }
                }
            }
            let count = object.len() as u64;
            if schema
                .get("minProperties")
                .and_then(Value::as_u64)
                .is_some_and(|m| count < m)
                || schema
                    .get("maxProperties")
                    .and_then(Value::as_u64)
                    .is_some_and(|m| count > m)
            {
                out.push(format!("{path}: wrong number of keys ({count})"));
            }
            for (key, child) in object {
                let child_path = format!("{path}.{key}");
                match properties.and_then(|p| p.get(key)) {
                    Some(property) => check(root, property, child, &child_path, out),
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            out.push(format!("{path}: unknown property {key}"));
                        }
                        Some(extra @ Value::Object(_)) => {
                            check(root, extra, child, &child_path, out);
                        }
                        _ => {}
                    },
                }
            }
        }
        if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
            for (i, item) in list.iter().enumerate() {
                check(root, items, item, &format!("{path}[{i}]"), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{json, Value};

    use super::*;
    use crate::spec::parse;

    /// Every structure the stack file has, each present once, so an unknown
    /// key can be planted in any of them.
    fn every_struct() -> Value {
        json!({
            "name": "demo",
            "target": {"kubeconfig": {}},
            "cluster": {
                "network": {},
                "nodePools": [{"name": "demo", "machineType": "m5.large", "min": 1, "max": 2}]
            },
            "storage": {"local": {}, "bucket": {}},
            "state": {"path": "x"},
            "pachyderm": {
                "etcd": {"resources": {"requests": {}, "limits": {}}},
                "tolerations": [{}],
                "postgres": {"external": {"host": "h", "user": "u", "passwordSecret": "s"}},
                "pgBouncer": {},
                "pachd": {},
                "console": {},
                "proxy": {}
            }
        })
    }

    /// `every_struct`, with the target the struct at `pointer` belongs to.
    fn every_struct_for(pointer: &str) -> Value {
        let mut doc = every_struct();
        if pointer.starts_with("/target/aws") {
            doc["target"] = json!({"aws": {"region": "us-east-1"}});
        }
        doc
    }

    /// The paths (JSON pointers into `every_struct`) of every struct the
    /// parser reads.
    const STRUCT_PATHS: &[&str] = &[
        "",
        "/target",
        "/target/kubeconfig",
        "/target/aws",
        "/cluster",
        "/cluster/network",
        "/cluster/nodePools/0",
        "/storage",
        "/storage/local",
        "/storage/bucket",
        "/state",
        "/pachyderm",
        "/pachyderm/etcd",
        "/pachyderm/etcd/resources",
        "/pachyderm/etcd/resources/requests",
        "/pachyderm/tolerations/0",
        "/pachyderm/postgres",
        "/pachyderm/postgres/external",
        "/pachyderm/pgBouncer",
        "/pachyderm/pachd",
        "/pachyderm/console",
        "/pachyderm/proxy",
    ];

    fn yaml_path(pointer: &str) -> YamlPath {
        let mut path = YamlPath::root();
        for part in pointer.split('/').skip(1) {
            path = match part.parse() {
                Ok(index) => path.index(index),
                Err(_) => path.key(part),
            };
        }
        path
    }

    /// The keys the schema allows at a path (across `oneOf` branches).
    fn schema_keys(root: &Value, pointer: &str) -> BTreeSet<String> {
        let node = node_at(root, &yaml_path(pointer)).unwrap_or(&Value::Null);
        branches(root, node)
            .into_iter()
            .filter_map(|b| b.get("properties").and_then(Value::as_object))
            .flat_map(|p| p.keys().cloned())
            .collect()
    }

    fn schema_required(root: &Value, pointer: &str) -> BTreeSet<String> {
        let node = node_at(root, &yaml_path(pointer)).unwrap_or(&Value::Null);
        branches(root, node)
            .into_iter()
            .filter(|b| b.get("properties").is_some())
            .filter_map(|b| b.get("required").and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    }

    /// The keys the parser allows at a path: plant an unknown key there and
    /// read the list serde answers with.
    fn parser_keys(pointer: &str) -> BTreeSet<String> {
        let mut doc = every_struct_for(pointer);
        if let Some(Value::Object(object)) = doc.pointer_mut(pointer) {
            object.insert("zzUnknown".into(), json!(1));
        }
        let yaml = serde_norway::to_string(&doc).unwrap();
        let error = parse("t.yaml", &yaml).unwrap_err();
        let problem = &error.problems()[0];
        assert!(problem.message.contains("zzUnknown"), "{pointer}: {error}");
        let help = problem.help.clone().unwrap_or_default();
        let listed = help.strip_prefix("allowed here: ").unwrap_or_default();
        listed.split(", ").map(String::from).collect()
    }

    /// The keys the parser requires at a path: start from an empty mapping
    /// and add whatever it reports missing until it stops.
    fn parser_required(pointer: &str) -> BTreeSet<String> {
        let samples = json!({
            "name": "demo", "target": {"kubeconfig": {}}, "path": "x",
            "host": "h", "user": "u", "passwordSecret": "s",
            "region": "us-east-1", "machineType": "m5.large", "min": 1, "max": 2
        });
        let mut doc = every_struct_for(pointer);
        if let Some(slot) = doc.pointer_mut(pointer) {
            *slot = json!({});
        }
        let mut required = BTreeSet::new();
        for _ in 0..10 {
            let yaml = serde_norway::to_string(&doc).unwrap();
            let Err(error) = parse("t.yaml", &yaml) else {
                break;
            };
            let message = &error.problems()[0].message;
            let Some(key) = message.strip_prefix("missing required key ") else {
                break;
            };
            let key = key.trim_matches('`').to_string();
            if let Some(Value::Object(object)) = doc.pointer_mut(pointer) {
                object.insert(key.clone(), samples[&key].clone());
            }
            required.insert(key);
        }
        required
    }

    #[test]
    fn schema_and_parser_agree_on_keys_and_required_keys() {
        let root = json_schema();
        for pointer in STRUCT_PATHS {
            assert_eq!(
                schema_keys(&root, pointer),
                parser_keys(pointer),
                "keys at {pointer:?}"
            );
            if *pointer != "/target" {
                assert_eq!(
                    schema_required(&root, pointer),
                    parser_required(pointer),
                    "required at {pointer:?}"
                );
            }
        }
        let top: BTreeSet<String> = ["name", "target"].into_iter().map(String::from).collect();
        assert_eq!(schema_required(&root, ""), top);
    }

    #[test]
    fn every_object_with_properties_denies_unknown_keys() {
        fn walk(node: &Value, at: &str, out: &mut Vec<String>) {
            match node {
                Value::Object(object) => {
                    if object.contains_key("properties")
                        && object.get("additionalProperties") != Some(&Value::Bool(false))
                    {
                        out.push(at.to_string());
                    }
                    for (key, child) in object {
                        walk(child, &format!("{at}/{key}"), out);
                    }
                }
                Value::Array(list) => {
                    for (i, child) in list.iter().enumerate() {
                        walk(child, &format!("{at}/{i}"), out);
                    }
                }
                _ => {}
            }
        }
        let mut open = Vec::new();
        walk(&json_schema(), "", &mut open);
        assert!(open.is_empty(), "objects allowing unknown keys: {open:?}");
    }

    #[test]
    fn schema_is_2020_12_and_lists_the_supported_versions() {
        let schema = json_schema();
        assert_eq!(
            schema["$schema"],
            json!("https://json-schema.org/draft/2020-12/schema")
        );
        let version = &schema["$defs"]["Pachyderm"]["properties"]["version"];
        assert_eq!(version["enum"], json!(crate::spec::supported_versions()));
        let console = node_at(&schema, &YamlPath::of(&["pachyderm", "console"]));
        assert!(console.is_some_and(|c| c.to_string().contains("boolean")));
    }

    #[test]
    fn schema_lists_kubernetes_versions_and_aws_regions() {
        let kubernetes = allowed_values(&YamlPath::of(&["cluster", "version"]));
        assert_eq!(
            kubernetes,
            Some(KUBERNETES_VERSIONS.iter().map(|v| v.to_string()).collect())
        );
        let regions = allowed_values(&YamlPath::of(&["target", "aws", "region"]));
        assert!(regions.is_some_and(|r| r.len() == AWS_REGIONS.len()));
    }

    #[test]
    fn enum_fields_list_their_values() {
        let policy = allowed_values(&YamlPath::of(&["storage", "dataPolicy"]));
        assert_eq!(
            policy,
            Some(vec!["retain".to_string(), "delete".to_string()])
        );
        let service = allowed_values(&YamlPath::of(&["pachyderm", "pachd", "serviceType"]));
        assert_eq!(service.map(|v| v.len()), Some(3));
    }

    #[test]
    fn the_checker_catches_what_it_should() {
        let schema = json_schema();
        let good = json!({"name": "demo", "target": {"kubeconfig": null}});
        assert_eq!(check::violations(&schema, &good), Vec::<String>::new());
        let aws =
            json!({"name": "demo", "target": {"aws": {"region": "us-east-1"}}, "cluster": {}});
        assert_eq!(check::violations(&schema, &aws), Vec::<String>::new());
        for bad in [
            json!({"name": "demo"}),
            json!({"name": "demo", "target": {"kubeconfig": {}}, "extra": 1}),
            json!({"name": "demo", "target": {}}),
            json!({"name": "demo", "target": {"kubeconfig": {"ctx": "a"}}}),
            json!({"name": "demo", "target": {"kubeconfig": {}}, "pachyderm": {"console": 3}}),
            json!({"name": "demo", "target": {"kubeconfig": {}}, "storage": {"dataPolicy": "x"}}),
            json!({"name": "demo", "target": {"aws": {}}}),
            json!({"name": "demo", "target": {"aws": {"region": "mars-1"}}}),
            json!({"name": "demo", "target": {"aws": {"region": "us-east-1"}}, "cluster": {"version": 1.3}}),
            json!({"name": "demo", "target": {"aws": {"region": "us-east-1"}}, "cluster": {"nodePools": [{"name": "a"}]}}),
        ] {
            assert!(!check::violations(&schema, &bad).is_empty(), "{bad}");
        }
    }
}
