//! API errors rendered as metav1 `Status` objects, with the reasons, codes
//! and message shapes the real apiserver uses (clients match on `reason`).

use serde_json::{json, Value};

use crate::resources::ResourceType;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Marker reason: rendered as the mux's text/plain 404, never as a Status.
const PAGE_NOT_FOUND: &str = "<page not found>";

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, mut details: Value) -> Self {
        // The real server omits empty `group` (core types) and empty `name`
        // (kube-recordings 20-probes seq 18 vs 01-plan-fresh seq 22; seq 31).
        if let Some(m) = details.as_object_mut() {
            for k in ["group", "name"] {
                if m.get(k).is_some_and(|v| v == "") {
                    m.remove(k);
                }
            }
        }
        self.details = Some(details);
        self
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", rt.qualified(), name),
        )
        .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural}))
    }

    /// Creating inside a namespace that does not exist.
    pub fn namespace_not_found(ns: &str) -> Self {
        Self::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
            .with_details(json!({"name": ns, "kind": "namespaces"}))
    }

    /// The path names no served resource (what the real server answers for
    /// unknown URLs: a bare 404 Status).
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// A path outside the API (no such group/version): the server's mux
    /// answers a plain-text 404, not a Status (kube-recordings 20-probes seq 6).
    /// What a real API server says when it cannot reach a pod's node to
    /// proxy logs or port-forward: 500 with no reason (kube-recordings
    /// 20-probes seq 70, 73).
    pub fn node_unreachable() -> Self {
        Self::internal("no preferred addresses found; known addresses: []")
    }

    pub fn page_not_found() -> Self {
        Self::new(404, PAGE_NOT_FOUND, "404 page not found")
    }

    pub fn is_page_not_found(&self) -> bool {
        self.reason == PAGE_NOT_FOUND
    }

    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", rt.qualified(), name),
        )
        .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural}))
    }

    /// Optimistic-concurrency failure (stale resourceVersion / uid precondition).
    pub fn conflict(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                rt.qualified(),
                name,
                why
            ),
        )
        .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural}))
    }

    pub fn stale(rt: &ResourceType, name: &str) -> Self {
        Self::conflict(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// Server-side apply conflicts; `causes` are (manager description, field path).
    pub fn apply_conflict(conflicts: &[(String, String)]) -> Self {
        let message = if conflicts.len() == 1 {
            format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                conflicts[0].0, conflicts[0].1
            )
        } else {
            // Grouped by manager, managers sorted: the shape structured-merge-diff prints.
            let mut managers: Vec<&String> = conflicts.iter().map(|c| &c.0).collect();
            managers.sort();
            managers.dedup();
            let mut lines = Vec::new();
            for m in managers {
                lines.push(format!("conflicts with {m}:"));
                for (_, path) in conflicts.iter().filter(|c| &c.0 == m) {
                    lines.push(format!("- {path}"));
                }
            }
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                lines.join("\n")
            )
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, p)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": p})
            })
            .collect();
        Self::new(409, "Conflict", message).with_details(json!({ "causes": causes }))
    }

    /// 422 Invalid, formatted like the real validator: the message is
    /// `Kind.group "name" is invalid: field: Reason: detail` and each cause's
    /// message is the `Reason: detail` part (what kubectl prints).
    pub fn invalid(
        rt: &ResourceType,
        name: &str,
        causes: &[(String, &'static str, String)],
    ) -> Self {
        let body = |reason: &str, detail: &str| {
            let human = match reason {
                "FieldValueForbidden" => "Forbidden",
                "FieldValueRequired" => "Required value",
                "FieldValueInvalid" => "Invalid value",
                "FieldValueNotSupported" => "Unsupported value",
                other => other,
            };
            if detail.is_empty() {
                human.to_string()
            } else {
                format!("{human}: {detail}")
            }
        };
        let parts: Vec<String> = causes
            .iter()
            .map(|(field, reason, detail)| format!("{field}: {}", body(reason, detail)))
            .collect();
        let joined = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        let message = format!(
            "{} \"{}\" is invalid: {}",
            rt.qualified_kind(),
            name,
            joined
        );
        let causes_json: Vec<Value> = causes
            .iter()
            .map(|(field, reason, detail)| json!({"reason": reason, "message": body(reason, detail), "field": field}))
            .collect();
        Self::new(422, "Invalid", message).with_details(
            json!({"name": name, "group": rt.group, "kind": rt.kind, "causes": causes_json}),
        )
    }

    /// Apply without `fieldManager`: validation of the PatchOptions
    /// (kube-recordings 20-probes seq 31: 422, not 400).
    pub fn apply_needs_field_manager() -> Self {
        Self::new(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        )
        .with_details(json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{
            "reason": "FieldValueRequired",
            "message": "Required value: is required for apply patch",
            "field": "fieldManager"
        }]}))
    }

    /// A DELETE whose `preconditions.resourceVersion` is stale: the real
    /// server words it differently from an update conflict and puts the Kind,
    /// not the resource, in `details.kind` (kube-recordings 20-probes seq 49).
    pub fn delete_precondition(rt: &ResourceType, name: &str, want: &str, live: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the ResourceVersion in the precondition ({}) does not match the ResourceVersion in record ({}). The object might have been modified",
                rt.kind, name, want, live
            ),
        )
        .with_details(json!({"name": name, "group": rt.group, "kind": rt.kind}))
    }

    /// An internal error: code 500 and no `reason` (kube-recordings
    /// 20-probes seq 33-37 for apply with an unknown field).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "", message)
    }

    /// 504 for a list at a resourceVersion the server has not reached
    /// (kube-recordings 20-probes seq 93).
    pub fn rv_too_large(rv: &str, current: u64) -> Self {
        Self::new(
            504,
            "Timeout",
            format!("Timeout: Too large resource version: {rv}, current: {current}"),
        )
        .with_details(json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(json!({}))
    }

    pub fn unsupported_media_type(ct: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, \
                 application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})"
            ),
        )
    }

    pub fn namespace_terminating(rt: &ResourceType, name: &str, ns: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                rt.qualified(),
                name,
                ns
            ),
        )
        .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": [{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {ns} is being terminated"),
            "field": "metadata.namespace"
        }]}))
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason, "code": self.code,
        });
        if self.reason.is_empty() {
            // Internal errors carry no reason (kube-recordings 20-probes seq 33, 73).
            s.as_object_mut().map(|m| m.remove("reason"));
        }
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}
