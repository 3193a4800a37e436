//! Rules for what every pod accepts (resources, node selectors,
//! tolerations, pod annotations) and for labels and annotations in general:
//! the checks the Kubernetes API server would make when howdah applies them.

use std::collections::BTreeMap;

use super::location::{Part, YamlPath};
use super::names::dns1123_subdomain;
use super::names::{label_value, qualified_key, RESERVED_PREFIX};
use super::quantity::{parse_quantity, QuantityUse};
use super::types::{Affinity, Resources, Toleration, WorkloadSettings};
use super::validate::Checker;

const OPERATORS: &[&str] = &["Exists", "Equal"];
const EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
/// The keys each part of an affinity takes.
const AFFINITY_RULES: &[&str] = &[
    "requiredDuringSchedulingIgnoredDuringExecution",
    "preferredDuringSchedulingIgnoredDuringExecution",
];
/// Labels howdah puts on every pod and Service it renders (besides
/// `howdah.io/*`); the selectors use them.
const HOWDAH_LABELS: &[&str] = &["app", "component", "suite"];

type TypeCheck = fn(serde_json::Value) -> Result<(), String>;
/// One part of an affinity as the stack file holds it.
type AffinityPart = BTreeMap<String, serde_json::Value>;

fn reads_as<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<(), String> {
    serde_json::from_value::<T>(value)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl Checker<'_> {
    pub(super) fn workload(&mut self, path: &YamlPath, settings: &WorkloadSettings<'_>) {
        let WorkloadSettings {
            resources,
            node_selector,
            tolerations,
            pod_annotations,
            priority_class_name,
            affinity,
            pod_labels,
            service_labels,
        } = *settings;
        if let Some(affinity) = affinity {
            self.affinity(&path.key("affinity"), affinity);
        }
        if let Some(labels) = pod_labels {
            self.own_labels(&path.key("podLabels"), labels);
        }
        self.own_labels(&path.key("serviceLabels"), service_labels);
        if let Some(class) = priority_class_name {
            self.priority_class(&path.key("priorityClassName"), class);
        }
        if let Some(resources) = resources {
            self.resources(&path.key("resources"), resources);
        }
        if let Some(selector) = node_selector {
            self.labels(&path.key("nodeSelector"), selector, false);
        }
        if let Some(tolerations) = tolerations {
            self.tolerations(&path.key("tolerations"), tolerations);
        }
        self.annotation_keys(&path.key("podAnnotations"), pod_annotations);
    }

    /// A pod affinity: each part must read as its Kubernetes type, with
    /// only the keys that type has (the API server would drop others
    /// silently, leaving pods scheduled where the user did not mean).
    pub(super) fn affinity(&mut self, path: &YamlPath, affinity: &Affinity) {
        use k8s_openapi::api::core::v1::{NodeAffinity, PodAffinity, PodAntiAffinity};
        let parts: [(&str, &Option<AffinityPart>, TypeCheck); 3] = [
            (
                "nodeAffinity",
                &affinity.node_affinity,
                reads_as::<NodeAffinity>,
            ),
            (
                "podAffinity",
                &affinity.pod_affinity,
                reads_as::<PodAffinity>,
            ),
            (
                "podAntiAffinity",
                &affinity.pod_anti_affinity,
                reads_as::<PodAntiAffinity>,
            ),
        ];
        for (name, part, check) in parts {
            let Some(part) = part else { continue };
            let at = path.key(name);
            for key in part.keys() {
                if !AFFINITY_RULES.contains(&key.as_str()) {
                    let help = super::structural::did_you_mean(key, AFFINITY_RULES)
                        .map(|k| format!("did you mean `{k}`?"))
                        .unwrap_or_else(|| {
                            format!("{name} takes {}", AFFINITY_RULES.join(" and "))
                        });
                    self.report(
                        &at.key(key),
                        Part::Key,
                        format!("unknown key `{key}` in {name}"),
                        Some(help),
                    );
                }
            }
            let value = serde_json::Value::Object(part.clone().into_iter().collect());
            if let Err(problem) = check(value) {
                self.report(
                    &at,
                    Part::Key,
                    format!("{name} is not a Kubernetes {name}: {problem}"),
                    Some("see `kubectl explain pod.spec.affinity`".into()),
                );
            }
        }
    }

    /// Labels the user adds to pods or Services: valid label keys and
    /// values, none of which overrides one howdah's selectors and
    /// ownership rely on.
    pub(super) fn own_labels(&mut self, path: &YamlPath, labels: &BTreeMap<String, String>) {
        self.labels(path, labels, true);
        for key in labels.keys() {
            if HOWDAH_LABELS.contains(&key.as_str()) {
                self.report(
                    &path.key(key),
                    Part::Key,
                    format!("label `{key}` is howdah's own: it selects and names the component"),
                    Some(format!(
                        "use another key; howdah sets {} and `howdah.io/*` itself",
                        HOWDAH_LABELS
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                );
            }
        }
    }

    fn resources(&mut self, path: &YamlPath, resources: &Resources) {
        for (kind, list) in [
            ("requests", &resources.requests),
            ("limits", &resources.limits),
        ] {
            if let Some(cpu) = &list.cpu {
                self.quantity(&path.key(kind).key("cpu"), cpu, QuantityUse::Cpu);
            }
            if let Some(memory) = &list.memory {
                self.quantity(&path.key(kind).key("memory"), memory, QuantityUse::Memory);
            }
        }
        for (name, request, limit) in [
            ("cpu", &resources.requests.cpu, &resources.limits.cpu),
            (
                "memory",
                &resources.requests.memory,
                &resources.limits.memory,
            ),
        ] {
            let (Some(request), Some(limit)) = (request, limit) else {
                continue;
            };
            let (Some(r), Some(l)) = (parse_quantity(request), parse_quantity(limit)) else {
                continue;
            };
            if r > l {
                self.report(
                    &path.key("requests").key(name),
                    Part::Value,
                    format!("requests.{name} {request} is more than limits.{name} {limit}"),
                    Some("a request must not exceed its limit".into()),
                );
            }
        }
    }

    pub(super) fn tolerations(&mut self, path: &YamlPath, tolerations: &[Toleration]) {
        for (i, toleration) in tolerations.iter().enumerate() {
            self.toleration(&path.index(i), toleration);
        }
    }

    fn toleration(&mut self, path: &YamlPath, t: &Toleration) {
        let operator = t.operator.as_deref().unwrap_or("Equal");
        if !OPERATORS.contains(&operator) {
            self.one_of(&path.key("operator"), "operator", operator, OPERATORS);
        }
        if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
            self.one_of(&path.key("effect"), "effect", effect, EFFECTS);
        }
        let value = t.value.as_deref().unwrap_or("");
        if operator == "Exists" && !value.is_empty() {
            self.report(
                &path.key("value"),
                Part::Value,
                "`value` must be empty with operator Exists".into(),
                Some("remove `value`, or use operator Equal".into()),
            );
        }
        if operator == "Equal" {
            if let Some(problem) = label_value(value) {
                self.report(
                    &path.key("value"),
                    Part::Value,
                    format!("invalid taint value {value:?}: {problem}"),
                    None,
                );
            }
        }
        match t.key.as_deref().filter(|k| !k.is_empty()) {
            None if operator != "Exists" => self.report(
                path,
                Part::Value,
                "a toleration without a `key` must use operator Exists".into(),
                Some("add `operator: Exists` to tolerate every taint, or give a key".into()),
            ),
            Some(key) => {
                if let Some(problem) = qualified_key(key) {
                    self.report(
                        &path.key("key"),
                        Part::Value,
                        format!("invalid taint key {key:?}: {problem}"),
                        None,
                    );
                }
            }
            None => {}
        }
        if t.toleration_seconds.is_some() && t.effect.as_deref() != Some("NoExecute") {
            self.report(
                &path.key("tolerationSeconds"),
                Part::Key,
                "`tolerationSeconds` only applies with effect NoExecute".into(),
                None,
            );
        }
    }

    /// Label keys and values (`tags`, node selectors). `reserved` refuses
    /// keys under howdah's own prefix, which ownership depends on.
    /// A PriorityClass name: a DNS subdomain, and not one of the two the
    /// cluster reserves for its own components.
    pub(super) fn priority_class(&mut self, path: &YamlPath, class: &str) {
        let problem = dns1123_subdomain(class).or_else(|| {
            matches!(class, "system-cluster-critical" | "system-node-critical").then(|| {
                "is reserved for the cluster's own components (the API server refuses it \
                 outside kube-system)"
                    .to_string()
            })
        });
        if let Some(problem) = problem {
            self.report(
                path,
                Part::Value,
                format!("invalid PriorityClass name {class:?}: {problem}"),
                None,
            );
        }
    }

    pub(super) fn labels(
        &mut self,
        path: &YamlPath,
        labels: &BTreeMap<String, String>,
        reserved: bool,
    ) {
        for (key, value) in labels {
            let entry = path.key(key);
            if let Some(problem) = qualified_key(key) {
                self.report(
                    &entry,
                    Part::Key,
                    format!("invalid label key {key:?}: {problem}"),
                    None,
                );
            } else if reserved && key.starts_with(RESERVED_PREFIX) {
                self.report(
                    &entry,
                    Part::Key,
                    format!("label keys under `{RESERVED_PREFIX}` are reserved for howdah"),
                    Some("howdah sets howdah.io/stack and howdah.io/managed itself".into()),
                );
            }
            if let Some(problem) = label_value(value) {
                self.report(
                    &entry,
                    Part::Value,
                    format!("invalid label value {value:?}: {problem}"),
                    None,
                );
            }
        }
    }

    pub(super) fn annotation_keys(
        &mut self,
        path: &YamlPath,
        annotations: &BTreeMap<String, String>,
    ) {
        for key in annotations.keys() {
            if let Some(problem) = qualified_key(key) {
                self.report(
                    &path.key(key),
                    Part::Key,
                    format!("invalid annotation key {key:?}: {problem}"),
                    None,
                );
            }
        }
    }
}
