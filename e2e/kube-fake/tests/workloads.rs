//! The simulated controllers, observed through kube-rs the way howdah waits
//! on them: deployments, statefulsets with claims, volume binding, events,
//! immutable fields, garbage collection, pod failures and logs.

mod common;

use std::time::Duration;

use common::*;
use howdah_kube_fake::FakeOptions;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Service};
use kube::api::{DeleteParams, ListParams, LogParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::Api;
use serde_json::json;

async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("timed out")
}

fn sts_ready(obj: Option<&StatefulSet>) -> bool {
    obj.map(json).is_some_and(|s| {
        s["status"]["observedGeneration"] == s["metadata"]["generation"]
            && s["status"]["readyReplicas"] == s["spec"]["replicas"]
            && s["status"]["currentRevision"] == s["status"]["updateRevision"]
    })
}

#[tokio::test]
async fn deployment_becomes_available_and_rolls_on_template_change() {
    let h = start().await;
    let api: Api<Deployment> = Api::namespaced(h.client.clone(), "default");
    let d = apply(&api, "howdah", &deployment("web", "nginx:1.27", 2))
        .await
        .unwrap();
    // Nothing is ready at once: the controller takes its delay.
    assert!(json(&d)["status"].get("readyReplicas").is_none());
    let done = within(
        10,
        await_condition(api.clone(), "web", conditions::is_deployment_completed()),
    )
    .await
    .unwrap()
    .unwrap();
    let s = json(&done)["status"].clone();
    assert_eq!(
        (
            s["replicas"].as_i64(),
            s["readyReplicas"].as_i64(),
            s["availableReplicas"].as_i64()
        ),
        (Some(2), Some(2), Some(2))
    );
    assert_eq!(s["observedGeneration"], 1);
    let avail = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available")
        .unwrap()
        .clone();
    assert_eq!(avail["status"], "True");

    let pods: Api<Pod> = Api::namespaced(h.client.clone(), "default");
    let list = pods
        .list(&kube::api::ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);
    let p = json(&list.items[0]);
    assert!(p["metadata"]["labels"]["pod-template-hash"].is_string());
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
    assert_eq!(p["status"]["containerStatuses"][0]["image"], "nginx:1.27");
    assert!(p["status"]["containerStatuses"][0]["state"]["running"].is_object());

    // A template change rolls new pods and reports the new generation.
    let rolled = apply(&api, "howdah", &deployment("web", "nginx:1.28", 2))
        .await
        .unwrap();
    assert_eq!(json(&rolled)["metadata"]["generation"], 2);
    within(
        10,
        await_condition(api.clone(), "web", |d: Option<&Deployment>| {
            d.map(json).is_some_and(|d| {
                d["status"]["observedGeneration"] == 2
                    && d["status"]["updatedReplicas"] == 2
                    && d["status"]["replicas"] == 2
                    && d["status"]["availableReplicas"] == 2
            })
        }),
    )
    .await
    .unwrap();
    let images: Vec<String> = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            json(p)["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(images, ["nginx:1.28", "nginx:1.28"]);

    // Deleting the deployment garbage-collects its ReplicaSets and pods.
    api.delete("web", &DeleteParams::background())
        .await
        .unwrap();
    eventually(10, || async {
        (h.fake
            .list("apps/v1", "replicasets", Some("default"))
            .is_empty()
            && h.fake.list("v1", "pods", Some("default")).is_empty())
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn statefulset_pods_wait_for_bound_claims() {
    let h = start().await;
    let api: Api<StatefulSet> = Api::namespaced(h.client.clone(), "default");
    let mut s = statefulset("etcd", "pachyderm/etcd:v3.5.5", "10Gi");
    s["spec"]["replicas"] = json!(2);
    apply(&api, "howdah", &s).await.unwrap();
    within(15, await_condition(api.clone(), "etcd", sts_ready))
        .await
        .unwrap();

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(h.client.clone(), "default");
    for i in 0..2 {
        let pvc = json(&pvcs.get(&format!("data-etcd-{i}")).await.unwrap());
        assert_eq!(pvc["status"]["phase"], "Bound");
        assert_eq!(pvc["spec"]["storageClassName"], "standard");
        assert_eq!(pvc["metadata"]["labels"]["app"], "etcd");
        let pv = h
            .fake
            .get(
                "v1",
                "persistentvolumes",
                None,
                pvc["spec"]["volumeName"].as_str().unwrap(),
            )
            .unwrap();
        assert_eq!(pv["status"]["phase"], "Bound");
        assert_eq!(pv["spec"]["claimRef"]["name"], format!("data-etcd-{i}"));
        let pod = h
            .fake
            .get("v1", "pods", Some("default"), &format!("etcd-{i}"))
            .unwrap();
        assert_eq!(pod["status"]["phase"], "Running");
        let vol = pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "data")
            .unwrap()
            .clone();
        assert_eq!(
            vol["persistentVolumeClaim"]["claimName"],
            format!("data-etcd-{i}")
        );
    }

    // Deleting the StatefulSet removes its pods but keeps the claims.
    api.delete("etcd", &DeleteParams::default()).await.unwrap();
    eventually(10, || async {
        h.fake
            .list("v1", "pods", Some("default"))
            .is_empty()
            .then_some(())
    })
    .await;
    assert_eq!(
        h.fake
            .list("v1", "persistentvolumeclaims", Some("default"))
            .len(),
        2
    );
    // With no pod using it, a claim deletes (pvc-protection lifts) and its volume goes.
    pvcs.delete("data-etcd-0", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, || async {
        (h.fake
            .get(
                "v1",
                "persistentvolumeclaims",
                Some("default"),
                "data-etcd-0",
            )
            .is_none()
            && h.fake.list("v1", "persistentvolumes", None).len() == 1)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn statefulset_immutable_fields_are_rejected() {
    let h = start().await;
    let api: Api<StatefulSet> = Api::namespaced(h.client.clone(), "default");
    apply(
        &api,
        "howdah",
        &statefulset("etcd", "pachyderm/etcd:v3.5.5", "10Gi"),
    )
    .await
    .unwrap();
    let (code, reason, message) = api_error(
        apply(
            &api,
            "howdah",
            &statefulset("etcd", "pachyderm/etcd:v3.5.5", "20Gi"),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    // v1.26.0's wording (kube-recordings 20-probes seq 51): no 'ordinals'
    // or 'revisionHistoryLimit' yet.
    assert!(message.starts_with("StatefulSet.apps \"etcd\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"), "{message}");
    // Mutable fields are fine.
    let mut ok = statefulset("etcd", "pachyderm/etcd:v3.5.6", "10Gi");
    ok["spec"]["replicas"] = json!(2);
    apply(&api, "howdah", &ok).await.unwrap();

    // PVC: may grow, may not shrink.
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(h.client.clone(), "default");
    let claim = |size: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}})
    };
    apply(&pvcs, "howdah", &claim("5Gi")).await.unwrap();
    apply(&pvcs, "howdah", &claim("8Gi")).await.unwrap();
    let (code, _, message) = api_error(apply(&pvcs, "howdah", &claim("1Gi")).await.unwrap_err());
    assert_eq!(code, 422, "{message}");
}

#[tokio::test]
async fn claims_stay_pending_without_a_default_storage_class() {
    let h = start_with(FakeOptions {
        ready_delay: Duration::from_millis(50),
        default_storage_class: false,
        ..Default::default()
    })
    .await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(h.client.clone(), "default");
    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "lonely", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    apply(&pvcs, "howdah", &claim).await.unwrap();
    let events: Api<Event> = Api::namespaced(h.client.clone(), "default");
    let ev = eventually(5, || async {
        let l = events
            .list(&ListParams::default().fields("involvedObject.name=lonely"))
            .await
            .unwrap();
        l.items.into_iter().next()
    })
    .await;
    let ev = json(&ev);
    assert_eq!(ev["reason"], "FailedBinding");
    assert_eq!(ev["type"], "Warning");
    assert_eq!(
        ev["message"],
        "no persistent volumes available for this claim and no storage class is set"
    );
    assert_eq!(ev["involvedObject"]["kind"], "PersistentVolumeClaim");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        json(&pvcs.get("lonely").await.unwrap())["status"]["phase"],
        "Pending"
    );

    // A class that does not exist: ProvisioningFailed.
    let mut named = claim.clone();
    named["metadata"]["name"] = json!("classy");
    named["spec"]["storageClassName"] = json!("gp3");
    apply(&pvcs, "howdah", &named).await.unwrap();
    let ev = eventually(5, || async {
        h.fake.events_for("default", "classy").into_iter().next()
    })
    .await;
    assert_eq!(ev["reason"], "ProvisioningFailed");
}

#[tokio::test]
async fn broken_images_and_crashloops_are_reported() {
    let h = start().await;
    let api: Api<Deployment> = Api::namespaced(h.client.clone(), "default");
    apply(
        &api,
        "howdah",
        &deployment("nopull", "invalid.example/pachd:2.11.6", 1),
    )
    .await
    .unwrap();
    apply(
        &api,
        "howdah",
        &deployment("crashy", "pachyderm/pachd:2.11.6-crashloop", 1),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), "default");
    let waiting = |app: &'static str| {
        let pods = pods.clone();
        async move {
            let l = pods
                .list(&ListParams::default().labels(&format!("app={app}")))
                .await
                .unwrap();
            let p = json(l.items.first()?);
            p["status"]["containerStatuses"][0]["state"]["waiting"]
                .as_object()
                .cloned()
                .map(|w| (p, w))
        }
    };
    let (p, w) = eventually(10, || waiting("nopull")).await;
    assert_eq!(w["reason"], "ImagePullBackOff");
    assert_eq!(
        w["message"],
        "Back-off pulling image \"invalid.example/pachd:2.11.6\""
    );
    assert_eq!(p["status"]["phase"], "Pending");
    let (p, w) = eventually(10, || waiting("crashy")).await;
    assert_eq!(w["reason"], "CrashLoopBackOff");
    assert!(
        p["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap()
            > 0
    );
    let name = p["metadata"]["name"].as_str().unwrap();
    let log = pods.logs(name, &LogParams::default()).await.unwrap();
    assert!(log.trim_end().ends_with("panic: simulated crash"), "{log}");
    let tail = pods
        .logs(
            name,
            &LogParams {
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail, "panic: simulated crash\n");
    let d = json(&api.get("crashy").await.unwrap());
    assert_ne!(d["status"]["readyReplicas"], 1);
}

#[tokio::test]
async fn load_balancers_get_an_address() {
    let h = start().await;
    let api: Api<Service> = Api::namespaced(h.client.clone(), "default");
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "pachd-lb", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "pachd"}, "ports": [{"name": "grpc", "port": 30650, "targetPort": 1650}]}});
    let created = json(&apply(&api, "howdah", &svc).await.unwrap());
    let ip = created["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.96."));
    assert!(created["spec"]["ports"][0]["nodePort"].as_i64().is_some());
    let done = within(
        10,
        await_condition(
            api.clone(),
            "pachd-lb",
            conditions::is_service_loadbalancer_provisioned(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        json(&done)["status"]["loadBalancer"]["ingress"][0]["ip"],
        "127.0.0.1"
    );
    // Re-applying without clusterIP keeps the allocated one; changing it is refused.
    let again = json(&apply(&api, "howdah", &svc).await.unwrap());
    assert_eq!(again["spec"]["clusterIP"], ip.as_str());
    let mut moved = svc.clone();
    moved["spec"]["clusterIP"] = json!("10.96.99.99");
    let (code, _, _) = api_error(apply(&api, "other", &moved).await.unwrap_err());
    assert!(code == 409 || code == 422, "{code}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_parallel_applies_and_waits() {
    let h = start().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = h.client.clone();
        tasks.push(tokio::spawn(async move {
            let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
            let name = format!("app{i}");
            apply(&api, "howdah", &deployment(&name, "nginx:1.27", 2))
                .await
                .unwrap();
            let sts: Api<StatefulSet> = Api::namespaced(client, "default");
            apply(
                &sts,
                "howdah",
                &statefulset(&format!("db{i}"), "postgres:16", "1Gi"),
            )
            .await
            .unwrap();
            within(
                20,
                await_condition(api, &name, conditions::is_deployment_completed()),
            )
            .await
            .unwrap();
            within(20, await_condition(sts, &format!("db{i}"), sts_ready))
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        h.fake
            .list("v1", "persistentvolumeclaims", Some("default"))
            .len(),
        8
    );
    assert_eq!(h.fake.list("v1", "pods", Some("default")).len(), 24);
}
