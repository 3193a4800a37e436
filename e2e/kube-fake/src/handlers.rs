//! Verb handlers: turn a routed request into store operations and a
//! response (get, list with selectors and pagination, watch, create, update,
//! patch, delete, deletecollection, logs).

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::Response;
use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult};
use crate::http::{created_or_ok, json_response, Body, Query, Route, Shared};
use crate::ops::{self, DeleteOpts, Deleted, WriteCtx};
use crate::patch::PatchKind;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{name_of, ns_of, uid_of};

pub struct Call {
    pub route: Route,
    pub query: Query,
    pub accept: String,
    pub content_type: String,
    pub user_agent: String,
    pub body: Bytes,
}

impl Call {
    fn q(&self, k: &str) -> Option<&str> {
        self.query
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.q(k), Some("true" | "1"))
    }

    fn ns(&self) -> Option<&str> {
        self.route.ns.as_deref()
    }

    fn dry_run(&self) -> ApiResult<bool> {
        match self.q("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dry run option {other:?}: supported values are \"All\""
            ))),
        }
    }

    /// The field manager: explicit, or derived from the User-Agent as the
    /// real server does for non-apply requests.
    fn manager(&self) -> String {
        match self.q("fieldManager") {
            Some(m) => m.to_string(),
            None => self
                .user_agent
                .split('/')
                .next()
                .unwrap_or("unknown")
                .chars()
                .take(128)
                .collect(),
        }
    }

    fn sub(&self) -> Option<&str> {
        self.route.sub.as_deref()
    }

    pub fn selectors(&self) -> ApiResult<(LabelSelector, FieldSelector)> {
        let ls = LabelSelector::parse(self.q("labelSelector").unwrap_or_default())?;
        let mut fs =
            FieldSelector::parse(self.q("fieldSelector").unwrap_or_default(), self.route.rt)?;
        if self.route.watch {
            if let Some(name) = &self.route.name {
                fs = FieldSelector::parse(&format!("metadata.name={name}"), self.route.rt)?;
            }
        }
        Ok((ls, fs))
    }
}

fn parse_body(call: &Call) -> ApiResult<Value> {
    if call.body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    match serde_json::from_slice(&call.body) {
        Ok(v) => Ok(v),
        Err(e) => serde_norway::from_slice(&call.body).map_err(|_| {
            ApiError::bad_request(format!("the object provided is unrecognized: {e}"))
        }),
    }
}

fn with_type(rt: &crate::resources::ResourceType, mut v: Value) -> Value {
    v["apiVersion"] = json!(rt.api_version());
    v["kind"] = json!(rt.kind);
    v
}

pub fn get(shared: &Arc<Shared>, call: &Call) -> ApiResult<Response<Body>> {
    let rt = call.route.rt;
    if call.route.watch || (call.route.name.is_none() && call.flag("watch")) {
        return crate::watch::watch(shared, call);
    }
    let Some(name) = &call.route.name else {
        return list(shared, call);
    };
    match call.sub() {
        None | Some("status") => {}
        Some("log") => return crate::logs::logs(shared, call.ns(), name, &call.query),
        Some(_) => return Err(ApiError::method_not_allowed()),
    }
    let st = shared.store.lock();
    let obj = st
        .get(rt, call.ns(), name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(rt, name))?;
    drop(st);
    let obj = with_type(rt, obj);
    if crate::table::wants_table(&call.accept) {
        return Ok(json_response(200, &crate::table::table(rt, &[obj], None)));
    }
    Ok(json_response(200, &obj))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: String,
    start: String,
}

fn list(shared: &Arc<Shared>, call: &Call) -> ApiResult<Response<Body>> {
    let rt = call.route.rt;
    let (ls, fs) = call.selectors()?;
    let start_after = match call.q("continue") {
        Some(tok) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(tok)
                .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
            let t: ContinueToken = serde_json::from_slice(&raw)
                .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
            Some(t.start)
        }
        None => None,
    };
    let limit: Option<usize> = call
        .q("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0);
    let st = shared.store.lock();
    let rv = st.rv.to_string();
    let mut items: Vec<Value> = st
        .list(rt, call.ns())
        .into_iter()
        .filter(|o| ls.matches(o) && fs.matches(o))
        .filter(|o| {
            start_after
                .as_ref()
                .is_none_or(|s| format!("{}/{}", ns_of(o), name_of(o)) > *s)
        })
        .map(|o| with_type(rt, o.clone()))
        .collect();
    drop(st);
    let mut meta = json!({"resourceVersion": rv});
    if let Some(limit) = limit {
        if items.len() > limit {
            let remaining = items.len() - limit;
            items.truncate(limit);
            let last = items.last().expect("non-empty");
            let tok = ContinueToken {
                rv: rv.clone(),
                start: format!("{}/{}", ns_of(last), name_of(last)),
            };
            let enc = base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&tok).unwrap_or_default());
            meta["continue"] = json!(enc);
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    if crate::table::wants_table(&call.accept) {
        return Ok(json_response(
            200,
            &crate::table::table(rt, &items, Some(meta)),
        ));
    }
    Ok(json_response(
        200,
        &json!({
            "kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
            "metadata": meta, "items": items,
        }),
    ))
}

fn wake(shared: &Shared) {
    shared.store.changed.notify_one();
}

pub fn post(shared: &Arc<Shared>, call: &Call) -> ApiResult<Response<Body>> {
    let rt = call.route.rt;
    if call.route.name.is_some() || (rt.namespaced && call.ns().is_none()) {
        return Err(ApiError::method_not_allowed());
    }
    let body = parse_body(call)?;
    let manager = call.manager();
    let ctx = WriteCtx {
        manager: &manager,
        subresource: None,
        dry_run: call.dry_run()?,
        internal: false,
        force: false,
    };
    let created = {
        let mut st = shared.store.lock();
        ops::create(&mut st, rt, call.ns(), body, &ctx, false)?
    };
    wake(shared);
    Ok(created_or_ok(true, &created))
}

pub fn put(shared: &Arc<Shared>, call: &Call) -> ApiResult<Response<Body>> {
    let rt = call.route.rt;
    let Some(name) = &call.route.name else {
        return Err(ApiError::method_not_allowed());
    };
    let body = parse_body(call)?;
    let manager = call.manager();
    let sub = match call.sub() {
        Some("finalize") => None,
        other => other,
    };
    let ctx = WriteCtx {
        manager: &manager,
        subresource: sub,
        dry_run: call.dry_run()?,
        internal: false,
        force: false,
    };
    let updated = {
        let mut st = shared.store.lock();
        ops::update(&mut st, rt, call.ns(), name, body, &ctx)?
    };
    wake(shared);
    Ok(json_response(200, &updated))
}

pub fn patch(shared: &Arc<Shared>, call: &Call) -> ApiResult<Response<Body>> {
    let rt = call.route.rt;
    let Some(name) = &call.route.name else {
        return Err(ApiError::method_not_allowed());
    };
    let kind = PatchKind::from_content_type(&call.content_type)?;
    let force = call.flag("force");
    if kind == PatchKind::Apply && call.q("fieldManager").is_none() {
        return Err(ApiError::bad_request(
            "PATCH requests with apply content type must specify a field manager: fieldManager is required for apply requests",
        ));
    }
    if kind != PatchKind::Apply && call.q("force").is_some() {
        return Err(ApiError::bad_request(
            "force is not allowed for non-apply patch",
        ));
    }
    let manager = call.manager();
    let ctx = WriteCtx {
        manager: &manager,
        subresource: call.sub(),
        dry_run: call.dry_run()?,
        internal: false,
        force,
    };
    let (existed, result) = {
        let mut st = shared.store.lock();
        let existed = st.contains(rt, call.ns(), name);
        let r = ops::patch(&mut st, rt, call.ns(), name, kind, &call.body, &ctx)?;
        (existed, r)
    };
    wake(shared);
    Ok(created_or_ok(!existed, &result))
}

fn delete_opts(call: &Call) -> ApiResult<DeleteOpts> {
    let body: Value = if call.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&call.body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let propagation = call
        .q("propagationPolicy")
        .map(str::to_string)
        .or_else(|| body["propagationPolicy"].as_str().map(str::to_string))
        .or_else(|| {
            let orphan = call
                .q("orphanDependents")
                .map(|v| v == "true")
                .or(body["orphanDependents"].as_bool());
            match orphan {
                Some(true) => Some("Orphan".to_string()),
                Some(false) => Some("Background".to_string()),
                None => None,
            }
        });
    if let Some(p) = &propagation {
        if !matches!(p.as_str(), "Foreground" | "Background" | "Orphan") {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    let body_dry = body["dryRun"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOpts {
        propagation,
        grace_period: call
            .q("gracePeriodSeconds")
            .and_then(|g| g.parse().ok())
            .or(body["gracePeriodSeconds"].as_i64()),
        uid: body
            .pointer("/preconditions/uid")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        dry_run: call.dry_run()? || body_dry,
    })
}

/// The Status a completed (immediate) delete returns.
fn success_status(rt: &crate::resources::ResourceType, obj: &Value) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": name_of(obj), "group": rt.group, "kind": rt.plural, "uid": uid_of(obj)}
    })
}

pub fn delete(shared: &Arc<Shared>, call: &Call) -> ApiResult<Response<Body>> {
    let rt = call.route.rt;
    let opts = delete_opts(call)?;
    if call.sub().is_some() {
        return Err(ApiError::method_not_allowed());
    }
    let Some(name) = &call.route.name else {
        if rt.namespaced && call.ns().is_none() {
            return Err(ApiError::method_not_allowed());
        }
        return delete_collection(shared, call, &opts);
    };
    let result = {
        let mut st = shared.store.lock();
        ops::delete(&mut st, rt, call.ns(), name, &opts)?
    };
    wake(shared);
    Ok(match result {
        // Pods and services hand back the deleted object; other types a Status.
        Deleted::Gone(obj) if matches!(rt.plural, "pods" | "services") => json_response(200, &obj),
        Deleted::Gone(obj) => json_response(200, &success_status(rt, &obj)),
        Deleted::Pending(obj) => json_response(200, &obj),
    })
}

fn delete_collection(
    shared: &Arc<Shared>,
    call: &Call,
    opts: &DeleteOpts,
) -> ApiResult<Response<Body>> {
    let rt = call.route.rt;
    let (ls, fs) = call.selectors()?;
    let mut deleted = Vec::new();
    {
        let mut st = shared.store.lock();
        let targets: Vec<(String, String)> = st
            .list(rt, call.ns())
            .into_iter()
            .filter(|o| ls.matches(o) && fs.matches(o))
            .map(|o| (ns_of(o).to_string(), name_of(o).to_string()))
            .collect();
        for (ns, name) in targets {
            let ns = Some(ns.as_str()).filter(|n| !n.is_empty());
            match ops::delete(&mut st, rt, ns, &name, opts) {
                Ok(Deleted::Gone(o)) | Ok(Deleted::Pending(o)) => deleted.push(o),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    wake(shared);
    Ok(json_response(
        200,
        &json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
                "metadata": {}, "items": deleted}),
    ))
}
