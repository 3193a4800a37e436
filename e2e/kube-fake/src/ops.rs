//! The write paths shared by the HTTP handlers and the simulated
//! controllers: create, update (PUT), patch (all four content types), and
//! delete with finalizers and propagation policies. Each runs admission,
//! validation, managed-field bookkeeping and the no-op check in the order
//! the real registry does, and honours dryRun by not storing.

use serde_json::{json, Value};

use crate::apply::{self, ApplyRequest};
use crate::defaults;
use crate::errors::{ApiError, ApiResult};
use crate::fields::{self, Scope};
use crate::patch::{self, PatchKind};
use crate::resources::ResourceType;
use crate::store::{self, comparable, finalizers, is_terminating, name_of, State};
use crate::validate;

pub struct WriteCtx<'a> {
    pub manager: &'a str,
    pub subresource: Option<&'a str>,
    pub dry_run: bool,
    /// Controller writes: skip validation, keep provided status on create.
    pub internal: bool,
    /// Server-side apply `force=true`: take conflicting fields.
    pub force: bool,
}

impl WriteCtx<'_> {
    pub fn controller(manager: &str) -> WriteCtx<'_> {
        WriteCtx {
            manager,
            subresource: None,
            dry_run: false,
            internal: true,
            force: false,
        }
    }

    pub fn status(manager: &str) -> WriteCtx<'_> {
        WriteCtx {
            manager,
            subresource: Some("status"),
            dry_run: false,
            internal: true,
            force: false,
        }
    }
}

pub fn scope_for(rt: &ResourceType, subresource: Option<&str>) -> Scope {
    match subresource {
        Some("status") => Scope::StatusOnly,
        _ if rt.has_status => Scope::NoStatus,
        _ => Scope::All,
    }
}

/// Objects in a namespace need the namespace to exist and not be terminating.
pub fn check_namespace(st: &State, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<()> {
    let nsrt = crate::resources::rt("", "namespaces");
    match st.get(nsrt, None, ns) {
        None => Err(ApiError::namespace_not_found(ns)),
        Some(n) if is_terminating(n) => Err(ApiError::namespace_terminating(rt, name, ns)),
        Some(_) => Ok(()),
    }
}

fn check_type(rt: &ResourceType, obj: &Value, require: bool) -> ApiResult<()> {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let av = obj["apiVersion"].as_str().unwrap_or_default();
    if require && (kind.is_empty() || av.is_empty()) {
        return Err(ApiError::bad_request(
            "Object 'Kind' is missing in the request body",
        ));
    }
    if (!kind.is_empty() && kind != rt.kind) || (!av.is_empty() && av != rt.api_version()) {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    Ok(())
}

fn initial_status(rt: &ResourceType, obj: &Value) -> Option<Value> {
    match rt.plural {
        "pods" => {
            let has_resources = obj["spec"]["containers"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["resources"].as_object().is_some_and(|r| !r.is_empty()))
            });
            let qos = if has_resources {
                "Burstable"
            } else {
                "BestEffort"
            };
            Some(json!({"phase": "Pending", "qosClass": qos}))
        }
        "persistentvolumeclaims" | "persistentvolumes" => Some(json!({"phase": "Pending"})),
        "namespaces" => Some(json!({"phase": "Active"})),
        // Every Service has an (empty) load-balancer status (kube-recordings
        // 02-up-fresh seq 51, 55).
        "services" => Some(json!({"loadBalancer": {}})),
        // The registry's create strategy starts a StatefulSet's status at
        // zero (kube-recordings 02-up-fresh seq 56, 20-probes seq 50).
        "statefulsets" => Some(json!({"replicas": 0, "availableReplicas": 0})),
        _ if rt.has_status => Some(json!({})),
        _ => None,
    }
}

const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// Creates an object. `keep_managed` is set by apply-create, which computed
/// managedFields itself.
pub fn create(
    st: &mut State,
    rt: &'static ResourceType,
    url_ns: Option<&str>,
    mut obj: Value,
    ctx: &WriteCtx,
    keep_managed: bool,
) -> ApiResult<Value> {
    if !obj.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    check_type(rt, &obj, false)?;
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let meta = obj["metadata"].as_object_mut().expect("object");
    for k in SERVER_METADATA {
        meta.remove(*k);
    }
    if !keep_managed {
        meta.remove("managedFields");
    }
    let mut name = meta
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        match meta.get("generateName").and_then(|v| v.as_str()) {
            Some(prefix) if !prefix.is_empty() => {
                name = format!("{prefix}{}", store::random_suffix(5));
                meta.insert("name".into(), json!(name));
            }
            _ => {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    &[(
                        "metadata.name".into(),
                        "FieldValueRequired",
                        "name or generateName is required".into(),
                    )],
                ))
            }
        }
    }
    if rt.namespaced {
        let body_ns = meta
            .get("namespace")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let ns = url_ns.unwrap_or(body_ns).to_string();
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if ns.is_empty() {
            return Err(ApiError::bad_request("a namespace is required"));
        }
        meta.insert("namespace".into(), json!(ns));
        check_namespace(st, rt, &ns, &name)?;
    } else {
        meta.remove("namespace");
    }
    let ns = store::ns_of(&obj).to_string();
    if st.contains(rt, Some(&ns), &name) {
        return Err(ApiError::already_exists(rt, &name));
    }
    if !(ctx.internal && obj.get("status").is_some()) {
        match initial_status(rt, &obj) {
            Some(s) => obj["status"] = s,
            None => {
                obj.as_object_mut().map(|m| m.remove("status"));
            }
        }
    }
    defaults::admit(st, rt, &mut obj, None);
    if !ctx.internal {
        validate::validate_create(rt, &obj)?;
    }
    if !keep_managed {
        let scope = scope_for(rt, None);
        fields::record_update(
            &mut obj,
            None,
            ctx.manager,
            None,
            &rt.api_version(),
            scope,
            &store::now(),
        );
    }
    if ctx.dry_run {
        let meta = obj["metadata"].as_object_mut().expect("object");
        meta.insert("uid".into(), json!(store::new_uid()));
        meta.insert("creationTimestamp".into(), json!(store::now()));
        if rt.has_generation {
            meta.insert("generation".into(), json!(1));
        }
        return Ok(obj);
    }
    Ok(st.insert_new(rt, obj))
}

/// The shared tail of every update: endpoint scoping (main vs status),
/// server-owned metadata, admission, validation, managed fields, no-op check.
fn commit_update(
    st: &mut State,
    rt: &'static ResourceType,
    live: &Value,
    mut new: Value,
    ctx: &WriteCtx,
    record: bool,
) -> ApiResult<Value> {
    let scope = scope_for(rt, ctx.subresource);
    match scope {
        Scope::StatusOnly => {
            let status = new["status"].take();
            let managed = new["metadata"]["managedFields"].take();
            let annotations = new["metadata"]["annotations"].take();
            new = live.clone();
            new["status"] = status;
            new["metadata"]["managedFields"] = managed;
            // The Deployment status strategy resets only spec and labels, so
            // annotations written through status stick (the controller's
            // revision annotation, kube-recordings 20-probes seq 60).
            if rt.plural == "deployments" && !annotations.is_null() {
                new["metadata"]["annotations"] = annotations;
            }
        }
        Scope::NoStatus => match live.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().map(|m| m.remove("status"));
            }
        },
        Scope::All => {}
    }
    new["apiVersion"] = json!(rt.api_version());
    new["kind"] = json!(rt.kind);
    let meta = new["metadata"].as_object_mut().expect("metadata");
    // Clients cannot change server-owned metadata; controllers (internal) may.
    let owned: &[&str] = if ctx.internal {
        &["name", "namespace", "uid"]
    } else {
        &[]
    };
    let preserved = SERVER_METADATA
        .iter()
        .chain(&["name", "namespace"])
        .filter(|k| !ctx.internal || owned.contains(k));
    for k in preserved {
        match live["metadata"].get(*k) {
            Some(v) => meta.insert(k.to_string(), v.clone()),
            None => meta.remove(*k),
        };
    }
    if meta.get("managedFields").is_none_or(|m| m.is_null()) {
        match live["metadata"].get("managedFields") {
            Some(v) => meta.insert("managedFields".into(), v.clone()),
            None => meta.remove("managedFields"),
        };
    }
    defaults::admit(st, rt, &mut new, Some(live));
    if !ctx.internal {
        validate::validate_update(rt, live, &new)?;
    }
    if record {
        let now = store::now();
        fields::record_update(
            &mut new,
            Some(live),
            ctx.manager,
            ctx.subresource,
            &rt.api_version(),
            scope,
            &now,
        );
    }
    if comparable(live) == comparable(&new) {
        return Ok(live.clone());
    }
    if ctx.dry_run {
        // What would be stored, without storing it (resourceVersion unchanged).
        store::set_generation(rt, live, &mut new);
        return Ok(new);
    }
    Ok(st.replace(rt, new))
}

fn live_or_404(st: &State, rt: &ResourceType, ns: Option<&str>, name: &str) -> ApiResult<Value> {
    st.get(rt, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(rt, name))
}

fn check_preconditions(rt: &ResourceType, live: &Value, body: &Value) -> ApiResult<()> {
    let want_rv = body
        .pointer("/metadata/resourceVersion")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let live_rv = live["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    if !want_rv.is_empty() && want_rv != live_rv {
        return Err(ApiError::stale(rt, name_of(live)));
    }
    let want_uid = body
        .pointer("/metadata/uid")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let live_uid = store::uid_of(live);
    if !want_uid.is_empty() && want_uid != live_uid {
        return Err(ApiError::conflict(
            rt,
            name_of(live),
            &format!("Precondition failed: UID in precondition: {want_uid}, UID in object meta: {live_uid}"),
        ));
    }
    Ok(())
}

fn check_name(body: &Value, name: &str) -> ApiResult<()> {
    let body_name = body
        .pointer("/metadata/name")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

/// PUT: full replacement with optimistic concurrency on metadata.resourceVersion.
pub fn update(
    st: &mut State,
    rt: &'static ResourceType,
    ns: Option<&str>,
    name: &str,
    body: Value,
    ctx: &WriteCtx,
) -> ApiResult<Value> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    check_type(rt, &body, false)?;
    check_name(&body, name)?;
    let live = live_or_404(st, rt, ns, name)?;
    check_preconditions(rt, &live, &body)?;
    let mut body = body;
    if !body["metadata"].is_object() {
        body["metadata"] = json!({});
    }
    commit_update(st, rt, &live, body, ctx, true)
}

/// PATCH with any of the four patch types; apply creates when absent.
pub fn patch(
    st: &mut State,
    rt: &'static ResourceType,
    ns: Option<&str>,
    name: &str,
    kind: PatchKind,
    body: &[u8],
    ctx: &WriteCtx,
) -> ApiResult<Value> {
    if kind != PatchKind::Apply {
        let live = live_or_404(st, rt, ns, name)?;
        let new = patch::apply_patch(kind, &live, body)?;
        if !new.is_object() || !new["metadata"].is_object() {
            return Err(ApiError::bad_request(
                "the patch removed the object metadata",
            ));
        }
        check_name(&new, name)?;
        // A patch that sets resourceVersion/uid makes them preconditions.
        let mut pre = new.clone();
        if pre["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"] {
            pre["metadata"]["resourceVersion"] = Value::Null;
        }
        check_preconditions(rt, &live, &pre)?;
        return commit_update(st, rt, &live, new, ctx, true);
    }
    let config = apply::parse_body(body)?;
    check_type(rt, &config, true)?;
    check_name(&config, name)?;
    if rt.namespaced {
        let body_ns = config
            .pointer("/metadata/namespace")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        if !body_ns.is_empty() && Some(body_ns) != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let scope = scope_for(rt, ctx.subresource);
    let scoped = apply::scoped_config(&config, scope);
    let now = store::now();
    let req = ApplyRequest {
        manager: ctx.manager,
        force: ctx.force,
        subresource: ctx.subresource,
        scope,
        now: &now,
    };
    match st.get(rt, ns, name).cloned() {
        None => {
            if ctx.subresource.is_some() {
                return Err(ApiError::not_found(rt, name));
            }
            let mut obj = apply::apply(None, &scoped, &req)?;
            obj["metadata"]["name"] = json!(name);
            create(st, rt, ns, obj, ctx, true)
        }
        Some(live) => {
            check_preconditions(rt, &live, &config)?;
            let merged = apply::apply(Some(&live), &scoped, &req)?;
            commit_update(st, rt, &live, merged, ctx, false)
        }
    }
}

/// A write that records no managedFields entry, as `pods/binding` does
/// (the scheduler's nodeName: kube-recordings 20-probes seq 69 shows no
/// entry for it).
pub fn mutate_unrecorded(
    st: &mut State,
    rt: &'static ResourceType,
    ns: Option<&str>,
    name: &str,
    f: impl FnOnce(&mut Value),
) -> Option<Value> {
    let live = st.get(rt, ns, name)?.clone();
    let mut new = live.clone();
    f(&mut new);
    if new == live {
        return Some(live);
    }
    commit_update(
        st,
        rt,
        &live,
        new,
        &WriteCtx::controller("kube-scheduler"),
        false,
    )
    .ok()
}

/// Controller convenience: mutate an object's main resource (or its status
/// with `WriteCtx::status`) through the normal update path.
pub fn mutate(
    st: &mut State,
    rt: &'static ResourceType,
    ns: Option<&str>,
    name: &str,
    ctx: &WriteCtx,
    f: impl FnOnce(&mut Value),
) -> Option<Value> {
    let live = st.get(rt, ns, name)?.clone();
    let mut new = live.clone();
    f(&mut new);
    if new == live {
        return Some(live);
    }
    commit_update(st, rt, &live, new, ctx, true).ok()
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub propagation: Option<String>,
    pub grace_period: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

pub enum Deleted {
    /// Removed from storage.
    Gone(Value),
    /// Still present with deletionTimestamp set (finalizers, graceful pods, namespaces).
    Pending(Value),
}

pub fn delete(
    st: &mut State,
    rt: &'static ResourceType,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOpts,
) -> ApiResult<Deleted> {
    let live = live_or_404(st, rt, ns, name)?;
    if let Some(want) = opts.resource_version.as_deref().filter(|v| !v.is_empty()) {
        let have = live["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if want != have {
            return Err(ApiError::delete_precondition(rt, name, want, have));
        }
    }
    let pre = json!({"metadata": {"uid": opts.uid}});
    check_preconditions(rt, &live, &pre)?;
    if is_terminating(&live) {
        return Ok(Deleted::Pending(live));
    }
    let mut obj = live.clone();
    let mut fins = finalizers(&obj);
    match opts.propagation.as_deref() {
        Some("Foreground") => fins.push("foregroundDeletion".into()),
        Some("Orphan") => fins.push("orphan".into()),
        _ => {}
    }
    let now = store::now();
    let meta = obj["metadata"].as_object_mut().expect("metadata");
    let pending = if rt.plural == "namespaces" {
        obj["status"]["phase"] = json!("Terminating");
        true
    } else if rt.plural == "pods" {
        // Graceful termination: the simulated kubelet removes the pod once
        // its containers "stopped" (after the ready delay).
        let grace = opts
            .grace_period
            .or_else(|| live["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30);
        let scheduled = live["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        (grace > 0 && scheduled) || !fins.is_empty()
    } else {
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        !fins.is_empty()
    };
    if pending {
        obj["metadata"]["deletionTimestamp"] = json!(now);
        if !fins.is_empty() {
            obj["metadata"]["finalizers"] = json!(fins);
        }
        if opts.dry_run {
            return Ok(Deleted::Pending(obj));
        }
        return Ok(Deleted::Pending(st.replace(rt, obj)));
    }
    if opts.dry_run {
        return Ok(Deleted::Gone(live));
    }
    let gone = st.remove(rt, ns, name).unwrap_or(live);
    Ok(Deleted::Gone(gone))
}

/// Removes one finalizer (controllers finishing their cleanup).
pub fn remove_finalizer(st: &mut State, rt: &'static ResourceType, obj: &Value, finalizer: &str) {
    let ns = Some(store::ns_of(obj).to_string());
    mutate(
        st,
        rt,
        ns.as_deref().filter(|n| !n.is_empty()),
        name_of(obj),
        &WriteCtx::controller("kube-controller-manager"),
        |o| {
            let fins: Vec<String> = finalizers(o)
                .into_iter()
                .filter(|f| f != finalizer)
                .collect();
            o["metadata"]["finalizers"] = json!(fins);
            if fins.is_empty() {
                o["metadata"]
                    .as_object_mut()
                    .map(|m| m.remove("finalizers"));
            }
        },
    );
}
