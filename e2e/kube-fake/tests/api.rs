//! The fake against kube-rs: CRUD semantics, server-side apply, errors,
//! selectors, watches and request accounting.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ReplicationController};
use kube::api::{DeleteParams, ListParams, Patch, PostParams, WatchEvent, WatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use serde_json::json;

fn cm(name: &str, data: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": data})
}

/// The resourceVersion of a Deployment once its rollout is complete (no
/// more controller writes).
async fn settled_rv(api: &Api<Deployment>, name: &str) -> String {
    eventually(10, || async {
        let d = api.get(name).await.ok()?;
        let s = d.status.as_ref()?;
        (s.available_replicas == Some(1) && s.updated_replicas == Some(1))
            .then(|| d.metadata.resource_version.clone())
            .flatten()
    })
    .await
}

#[tokio::test]
async fn ssa_creates_updates_and_noop_keeps_resource_version() {
    let h = start().await;
    let api: Api<Deployment> = Api::namespaced(h.client.clone(), "default");
    let d = deployment("web", "nginx:1.27", 1);
    let created = json(&apply(&api, "howdah", &d).await.unwrap());
    assert_eq!(created["metadata"]["generation"], 1);
    // The deployment controller writes status at once, as the real one
    // does, so the no-op is checked once the rollout settled.
    let rv = settled_rv(&api, "web").await;
    assert!(created["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| u.len() == 36));
    let mf = &created["metadata"]["managedFields"][0];
    assert_eq!(mf["manager"], "howdah");
    assert_eq!(mf["operation"], "Apply");
    assert_eq!(mf["fieldsType"], "FieldsV1");
    assert!(mf["fieldsV1"]["f:spec"]["f:replicas"].is_object());

    // The same apply again changes nothing.
    let again = json(&apply(&api, "howdah", &d).await.unwrap());
    assert_eq!(again["metadata"]["resourceVersion"], rv.as_str());
    assert_eq!(again["metadata"]["generation"], 1);

    // A metadata-only change moves the resourceVersion but not the generation.
    let mut labelled = d.clone();
    labelled["metadata"]["labels"]["tier"] = json!("front");
    let l = json(&apply(&api, "howdah", &labelled).await.unwrap());
    assert_ne!(l["metadata"]["resourceVersion"], rv.as_str());
    assert_eq!(l["metadata"]["generation"], 1);

    // Dropping the label from the applied config removes it; a spec change bumps generation.
    let mut scaled = d.clone();
    scaled["spec"]["replicas"] = json!(3);
    let s = json(&apply(&api, "howdah", &scaled).await.unwrap());
    assert_eq!(s["metadata"]["generation"], 2);
    assert_eq!(s["spec"]["replicas"], 3);
    assert!(s["metadata"]["labels"].get("tier").is_none());

    // Status written through the main endpoint is ignored.
    let mut with_status = scaled.clone();
    with_status["status"] = json!({"replicas": 42});
    let ws = json(&apply(&api, "howdah", &with_status).await.unwrap());
    assert_ne!(ws["status"]["replicas"], 42);
}

#[tokio::test]
async fn ssa_conflicts_between_managers_unless_forced() {
    let h = start().await;
    let api: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    apply(&api, "alpha", &cm("shared", json!({"k": "1", "a": "x"})))
        .await
        .unwrap();
    // Same value: shared ownership, no conflict.
    apply(&api, "beta", &cm("shared", json!({"k": "1"})))
        .await
        .unwrap();
    // Different value: conflict naming the field and the other manager.
    let err = apply(&api, "gamma", &cm("shared", json!({"a": "y"})))
        .await
        .unwrap_err();
    let (code, reason, message) = api_error(err);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(
        message.contains(".data.a") && message.contains("\"alpha\""),
        "{message}"
    );
    // Forced: gamma takes the field, alpha loses it.
    let forced = api
        .patch(
            "shared",
            &ssa("gamma").force(),
            &Patch::Apply(cm("shared", json!({"a": "y"}))),
        )
        .await
        .unwrap();
    let forced = json(&forced);
    assert_eq!(forced["data"]["a"], "y");
    let alpha = forced["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "alpha")
        .unwrap()
        .clone();
    assert!(alpha["fieldsV1"]["f:data"].get("f:a").is_none());
    assert!(alpha["fieldsV1"]["f:data"].get("f:k").is_some());
    // alpha now omits "a": it is not removed, gamma still owns it.
    let after = json(
        &apply(&api, "alpha", &cm("shared", json!({"k": "1"})))
            .await
            .unwrap(),
    );
    assert_eq!(after["data"], json!({"k": "1", "a": "y"}));
}

#[tokio::test]
async fn errors_are_status_objects_with_reasons() {
    let h = start().await;
    let api: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    let (code, reason, message) = api_error(api.get("missing").await.unwrap_err());
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (404, "NotFound", "configmaps \"missing\" not found")
    );

    let obj: ConfigMap = serde_json::from_value(cm("one", json!({"a": "1"}))).unwrap();
    let created = api.create(&PostParams::default(), &obj).await.unwrap();
    let (code, reason, _) = api_error(api.create(&PostParams::default(), &obj).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    // PUT with a stale resourceVersion.
    let mut first = created.clone();
    first.data = Some([("a".to_string(), "2".to_string())].into());
    api.replace("one", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = created.clone();
    stale.data = Some([("a".to_string(), "3".to_string())].into());
    let (code, reason, message) = api_error(
        api.replace("one", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(
        message.contains("the object has been modified"),
        "{message}"
    );

    // Creating in a namespace that does not exist.
    let nowhere: Api<ConfigMap> = Api::namespaced(h.client.clone(), "nowhere");
    let mut elsewhere = obj.clone();
    elsewhere.metadata.namespace = None;
    let (code, reason, message) = api_error(
        nowhere
            .create(&PostParams::default(), &elsewhere)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (404, "NotFound", "namespaces \"nowhere\" not found")
    );

    // Unknown patch content type → 415; POST on a named object → 405.
    let http = reqwest_like(
        &h,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/one",
        "text/plain",
        "{}",
    )
    .await;
    assert_eq!(http.0, 415);
    assert_eq!(http.1["reason"], "UnsupportedMediaType");
    let http = reqwest_like(
        &h,
        "POST",
        "/api/v1/namespaces/default/configmaps/one",
        "application/json",
        "{}",
    )
    .await;
    assert_eq!(http.0, 405);

    // Immutable ConfigMaps stay immutable.
    let frozen = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "frozen", "namespace": "default"},
        "immutable": true, "data": {"a": "1"}});
    apply(&api, "howdah", &frozen).await.unwrap();
    let mut changed = frozen.clone();
    changed["data"]["a"] = json!("2");
    let (code, reason, _) = api_error(apply(&api, "howdah", &changed).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
}

/// A raw request through the kube client (for status codes kube-rs's typed API never produces).
async fn reqwest_like(
    h: &Harness,
    method: &str,
    path: &str,
    ct: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(body.as_bytes().to_vec())
        .unwrap();
    let text = h.client.request_text(req).await;
    match text {
        Ok(t) => (200, serde_json::from_str(&t).unwrap_or_default()),
        Err(kube::Error::Api(s)) => (s.code, json!({"reason": s.reason, "message": s.message})),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn label_and_field_selectors() {
    let h = start().await;
    let api: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    for (name, tier, env) in [
        ("a", "db", "prod"),
        ("b", "web", "prod"),
        ("c", "web", "dev"),
    ] {
        let mut o = cm(name, json!({}));
        o["metadata"]["labels"] = json!({"tier": tier, "env": env, "howdah.io/stack": "s1"});
        apply(&api, "howdah", &o).await.unwrap();
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        let mut v: Vec<String> = l
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        v.sort();
        v.join(",")
    };
    let q = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(api.list(&q("tier=web")).await.unwrap()), "b,c");
    assert_eq!(
        names(api.list(&q("tier==web,env!=dev")).await.unwrap()),
        "b"
    );
    assert_eq!(names(api.list(&q("env in (dev,qa)")).await.unwrap()), "c");
    assert_eq!(
        names(
            api.list(&q("howdah.io/stack,tier notin (web)"))
                .await
                .unwrap()
        ),
        "a"
    );
    assert_eq!(
        names(api.list(&q("howdah.io/stack,!missing")).await.unwrap()),
        "a,b,c"
    );
    assert_eq!(names(api.list(&q("missing")).await.unwrap()), "");
    let by_name = ListParams::default().fields("metadata.name=b");
    assert_eq!(names(api.list(&by_name).await.unwrap()), "b");
    // Across namespaces, with a list resourceVersion.
    let all: Api<ConfigMap> = Api::all(h.client.clone());
    let l = all.list(&q("howdah.io/stack=s1")).await.unwrap();
    assert_eq!(l.items.len(), 3);
    assert!(l.metadata.resource_version.is_some_and(|rv| !rv.is_empty()));
    // Pagination.
    let page = all
        .list(&ListParams::default().labels("howdah.io/stack=s1").limit(2))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_.clone().unwrap();
    let rest = all
        .list(
            &ListParams::default()
                .labels("howdah.io/stack=s1")
                .limit(2)
                .continue_token(&token),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    // Delete a collection by label.
    api.delete_collection(&DeleteParams::default(), &q("env=prod"))
        .await
        .unwrap();
    assert_eq!(names(api.list(&q("howdah.io/stack")).await.unwrap()), "c");
}

#[tokio::test]
async fn watches_resume_from_a_resource_version_and_watcher_works() {
    let h = start().await;
    let api: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    apply(&api, "howdah", &cm("w1", json!({"a": "1"})))
        .await
        .unwrap();
    apply(&api, "howdah", &cm("w1", json!({"a": "2"})))
        .await
        .unwrap();
    api.delete("w1", &DeleteParams::default()).await.unwrap();
    use futures::{StreamExt, TryStreamExt};
    let wp = WatchParams::default().fields("metadata.name=w1").timeout(2);
    let events: Vec<_> = api
        .watch(&wp, &rv)
        .await
        .unwrap()
        .take(3)
        .try_collect()
        .await
        .unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark(_) => "BOOKMARK",
            WatchEvent::Error(_) => "ERROR",
        })
        .collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);

    // The runtime watcher sees objects created after it starts.
    let stream =
        watcher(api.clone(), watcher::Config::default().labels("watch=me")).applied_objects();
    let mut stream = Box::pin(stream);
    let mut o = cm("w2", json!({}));
    o["metadata"]["labels"] = json!({"watch": "me"});
    apply(&api, "howdah", &o).await.unwrap();
    let seen = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen.metadata.name.as_deref(), Some("w2"));
}

#[tokio::test]
async fn counts_reads_and_writes_and_records_requests() {
    let h = start().await;
    let api: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    h.fake.reset_stats();
    apply(&api, "howdah", &cm("counted", json!({"a": "1"})))
        .await
        .unwrap();
    api.get("counted").await.unwrap();
    api.list(&ListParams::default()).await.unwrap();
    // dryRun writes count as writes but do not persist.
    let dry: ConfigMap = serde_json::from_value(cm("dry", json!({}))).unwrap();
    api.create(
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
        &dry,
    )
    .await
    .unwrap();
    assert!(api.get_opt("dry").await.unwrap().is_none());
    api.delete("counted", &DeleteParams::default())
        .await
        .unwrap();
    let stats = h.fake.stats();
    assert_eq!((stats.reads, stats.writes), (3, 3));
    let reqs = h.fake.requests();
    assert_eq!(reqs.len(), 6);
    assert_eq!(reqs[0].method, "PATCH");
    assert_eq!(
        reqs[0].content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert!(reqs[0].path.contains("fieldManager=howdah"));
    assert_eq!(reqs[0].status, 201);
    assert_eq!(reqs[4].status, 404);
    // The HTTP control endpoints answer without being counted.
    let body = fetch(&format!("{}/fake/stats", h.fake.url())).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        json!({"reads": 3, "writes": 3, "faults": 0})
    );
    h.fake.reset_stats();
    assert_eq!((h.fake.stats().reads, h.fake.stats().writes), (0, 0));
}

/// Minimal HTTP/1.1 GET (the fake's control endpoints are plain HTTP).
async fn fetch(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(
        format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}

#[tokio::test]
async fn namespace_deletion_cascades() {
    let h = start_with(howdah_kube_fake::FakeOptions {
        ready_delay: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let nss: Api<Namespace> = Api::all(h.client.clone());
    let ns = apply(
        &nss,
        "howdah",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}}),
    )
    .await
    .unwrap();
    let uid = ns.metadata.uid.clone().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(h.client.clone(), "doomed");
    let mut o = cm("c", json!({}));
    o["metadata"]["namespace"] = json!("doomed");
    apply(&cms, "howdah", &o).await.unwrap();
    let deps: Api<Deployment> = Api::namespaced(h.client.clone(), "doomed");
    let mut d = deployment("app", "nginx:1.27", 2);
    d["metadata"]["namespace"] = json!("doomed");
    apply(&deps, "howdah", &d).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), "doomed");
    eventually(10, || async {
        (pods.list(&ListParams::default()).await.unwrap().items.len() == 2).then_some(())
    })
    .await;

    let deleted = nss
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = deleted.left().expect("namespace deletion is graceful");
    assert_eq!(json(&terminating)["status"]["phase"], "Terminating");
    // New content is refused while terminating.
    let mut late = cm("late", json!({}));
    late["metadata"]["namespace"] = json!("doomed");
    let (code, reason, _) = api_error(apply(&cms, "howdah", &late).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    let gone = kube::runtime::wait::await_condition(
        nss.clone(),
        "doomed",
        kube::runtime::conditions::is_deleted(&uid),
    );
    tokio::time::timeout(std::time::Duration::from_secs(10), gone)
        .await
        .unwrap()
        .unwrap();
    assert!(h.fake.list("v1", "configmaps", Some("doomed")).is_empty());
    assert!(h.fake.list("v1", "pods", Some("doomed")).is_empty());
    assert!(h
        .fake
        .list("apps/v1", "replicasets", Some("doomed"))
        .is_empty());
}

#[tokio::test]
async fn status_subresource_and_main_endpoint_are_separate() {
    let h = start_with(howdah_kube_fake::FakeOptions {
        ready_delay: std::time::Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    // A ReplicationController: a type with a status subresource and no
    // simulated controller writing that status (a Deployment's controller
    // now writes its status at once, as the real one does).
    let api: Api<ReplicationController> = Api::namespaced(h.client.clone(), "default");
    let rc = json!({"apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "s", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"app": "s"},
            "template": {"metadata": {"labels": {"app": "s"}},
                "spec": {"containers": [{"name": "s", "image": "nginx:1.27"}]}}}});
    apply(&api, "howdah", &rc).await.unwrap();
    let pp = kube::api::PatchParams::default();
    let patched = api
        .patch_status(
            "s",
            &pp,
            &Patch::Merge(json!({"status": {"replicas": 7}, "spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    let p = json(&patched);
    assert_eq!(
        (
            p["status"]["replicas"].as_i64(),
            p["spec"]["replicas"].as_i64()
        ),
        (Some(7), Some(1))
    );
    assert_eq!(p["metadata"]["generation"], 1);
    let st = json(&api.get_status("s").await.unwrap());
    assert_eq!(st["status"]["replicas"], 7);
    // The main endpoint ignores status.
    let main = api
        .patch(
            "s",
            &pp,
            &Patch::Merge(json!({"status": {"replicas": 1}, "spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    let m = json(&main);
    assert_eq!(
        (
            m["status"]["replicas"].as_i64(),
            m["spec"]["replicas"].as_i64()
        ),
        (Some(7), Some(2))
    );
    assert_eq!(m["metadata"]["generation"], 2);
}

#[tokio::test]
async fn propagation_policies_and_dry_run() {
    let h = start().await;
    let api: Api<Deployment> = Api::namespaced(h.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), "default");
    let wait_pods = |n: usize| {
        let pods = pods.clone();
        async move {
            eventually(10, || async {
                let l = pods.list(&ListParams::default()).await.unwrap();
                (l.items
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .count()
                    == n)
                    .then_some(())
            })
            .await
        }
    };
    // Orphan: the ReplicaSet and pods stay, without the owner reference.
    apply(&api, "howdah", &deployment("orphaner", "nginx:1.27", 1))
        .await
        .unwrap();
    wait_pods(1).await;
    api.delete("orphaner", &DeleteParams::orphan())
        .await
        .unwrap();
    eventually(10, || async {
        h.fake
            .get("apps/v1", "deployments", Some("default"), "orphaner")
            .is_none()
            .then_some(())
    })
    .await;
    let rs = h.fake.list("apps/v1", "replicasets", Some("default"));
    assert_eq!(rs.len(), 1);
    assert!(rs[0]["metadata"]
        .get("ownerReferences")
        .is_none_or(|r| r.as_array().unwrap().is_empty()));
    let rs_name = rs[0]["metadata"]["name"].as_str().unwrap().to_string();
    let rsapi: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(h.client.clone(), "default");
    // Foreground: the owner waits for its dependents.
    let gone = rsapi
        .delete(&rs_name, &DeleteParams::foreground())
        .await
        .unwrap();
    let pending = json(&gone.left().expect("foreground deletion is pending"));
    assert!(pending["metadata"]["finalizers"]
        .as_array()
        .unwrap()
        .contains(&json!("foregroundDeletion")));
    eventually(10, || async {
        (h.fake
            .list("apps/v1", "replicasets", Some("default"))
            .is_empty()
            && h.fake.list("v1", "pods", Some("default")).is_empty())
        .then_some(())
    })
    .await;

    // dryRun apply: validated and returned, not stored; no-op dry runs keep the resourceVersion.
    let dry = kube::api::PatchParams::apply("howdah").dry_run();
    let d = api
        .patch(
            "dry",
            &dry,
            &Patch::Apply(deployment("dry", "nginx:1.27", 1)),
        )
        .await
        .unwrap();
    assert!(json(&d)["metadata"]["uid"].is_string());
    assert!(api.get_opt("dry").await.unwrap().is_none());
    let mut live = json(
        &apply(&api, "howdah", &deployment("dry", "nginx:1.27", 1))
            .await
            .unwrap(),
    );
    // Compare with the resourceVersion after the controller's status writes.
    live["metadata"]["resourceVersion"] = json!(settled_rv(&api, "dry").await);
    let same = json(
        &api.patch(
            "dry",
            &dry,
            &Patch::Apply(deployment("dry", "nginx:1.27", 1)),
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        same["metadata"]["resourceVersion"],
        live["metadata"]["resourceVersion"]
    );
    let changed = json(
        &api.patch(
            "dry",
            &dry,
            &Patch::Apply(deployment("dry", "nginx:1.28", 1)),
        )
        .await
        .unwrap(),
    );
    assert_eq!(changed["metadata"]["generation"], 2);
    assert_eq!(
        json(&api.get("dry").await.unwrap())["metadata"]["generation"],
        1
    );
}

#[tokio::test]
async fn generate_name_and_secret_string_data() {
    let h = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    let obj: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "run-"}})).unwrap();
    let made = cms.create(&PostParams::default(), &obj).await.unwrap();
    let name = made.metadata.name.unwrap();
    assert!(name.starts_with("run-") && name.len() == 9, "{name}");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(h.client.clone(), "default");
    let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "default"},
        "stringData": {"password": "hunter2"}});
    let made = json(&apply(&secrets, "howdah", &s).await.unwrap());
    assert_eq!(made["data"]["password"], "aHVudGVyMg==");
    assert_eq!(made["type"], "Opaque");
    assert!(made.get("stringData").is_none());
    // Re-applying the same stringData is a no-op.
    let again = json(&apply(&secrets, "howdah", &s).await.unwrap());
    assert_eq!(
        again["metadata"]["resourceVersion"],
        made["metadata"]["resourceVersion"]
    );
}

/// A Secret with nothing in it has no `data` field at all, as on a real
/// server (the field is omitted when empty), whether it was written with
/// no data, an empty `data` or an empty `stringData`.
#[tokio::test]
async fn a_secret_without_data_has_no_data_field() {
    let h = start().await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(h.client.clone(), "default");
    for (name, extra) in [
        ("bare", json!({})),
        ("empty-data", json!({"data": {}})),
        ("empty-string-data", json!({"stringData": {}})),
    ] {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"}});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        let made = json(&apply(&secrets, "howdah", &s).await.unwrap());
        assert!(made.get("data").is_none(), "{name}: {made}");
        let read = json(&secrets.get(name).await.unwrap());
        assert!(read.get("data").is_none(), "{name}: {read}");
    }
}

/// Server-side apply with force keeps list entries another manager owns:
/// an env entry added by `kubectl set env` (a strategic-merge patch, an
/// Update by manager "kubectl-set") survives howdah's forced re-apply, as
/// it does on a real server (kube-recordings README fact 12: ownership is
/// per field; a forced apply takes conflicting fields, it does not drop
/// fields it never set).
#[tokio::test]
async fn forced_apply_keeps_list_entries_owned_by_another_manager() {
    let h = start().await;
    let api: Api<Deployment> = Api::namespaced(h.client.clone(), "default");
    let mut d = deployment("envy", "nginx:1.27", 1);
    d["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
    let force = kube::api::PatchParams::apply("howdah").force();
    api.patch("envy", &force, &Patch::Apply(&d)).await.unwrap();

    // kubectl set env envy B=2
    let set_env = kube::api::PatchParams {
        field_manager: Some("kubectl-set".into()),
        ..Default::default()
    };
    let smp = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "envy", "env": [{"name": "B", "value": "2"}]}]}}}});
    api.patch("envy", &set_env, &Patch::Strategic(smp))
        .await
        .unwrap();
    // A label by a merge patch (another Update manager).
    let label = kube::api::PatchParams {
        field_manager: Some("ops".into()),
        ..Default::default()
    };
    api.patch(
        "envy",
        &label,
        &Patch::Merge(json!({"metadata": {"labels": {"team": "data"}}})),
    )
    .await
    .unwrap();

    let env_of = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["value"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    // Re-applying the same configuration, forced.
    let again = json(&api.patch("envy", &force, &Patch::Apply(&d)).await.unwrap());
    let pairs = |xs: &[(&str, &str)]| -> Vec<(String, String)> {
        xs.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(env_of(&again), pairs(&[("A", "1"), ("B", "2")]));
    assert_eq!(again["metadata"]["labels"]["team"], "data");

    // Changing howdah's own entry and adding one still keeps B.
    d["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "A", "value": "9"}, {"name": "C", "value": "3"}]);
    let changed = json(&api.patch("envy", &force, &Patch::Apply(&d)).await.unwrap());
    let mut env = env_of(&changed);
    env.sort();
    assert_eq!(env, pairs(&[("A", "9"), ("B", "2"), ("C", "3")]));
    assert_eq!(changed["metadata"]["labels"]["team"], "data");
    let managers: Vec<&str> = changed["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubectl-set"), "{managers:?}");

    // Dropping A from howdah's configuration removes A (howdah owned it
    // alone) but still not B.
    d["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "C", "value": "3"}]);
    let dropped = json(&api.patch("envy", &force, &Patch::Apply(&d)).await.unwrap());
    let mut env = env_of(&dropped);
    env.sort();
    assert_eq!(env, pairs(&[("B", "2"), ("C", "3")]));
}
