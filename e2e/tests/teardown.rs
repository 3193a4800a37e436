//! `down` in the corners: load balancers and pipeline workers first, the
//! leak scan failing the run when something is left, `status` noticing a
//! missing part.

use crate::support::*;

const NS: &str = "pachyderm";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_balancers_and_pipeline_workers_are_removed_first() {
    let env = Env::start().await;
    let spec = env.stack(
        "howdah.yaml",
        "lb",
        "pachyderm:\n  pachd:\n    serviceType: LoadBalancer\n",
    );
    env.up_ok(&spec).await;
    // What pachd makes for a pipeline: a replication controller and a
    // service (here exposed through a load balancer), labelled as pachd does.
    let c = cluster(&env);
    let labels = serde_json::json!({"suite": "pachyderm", "component": "worker", "app": "pipeline-edges-v1"});
    c.apply(&serde_json::json!({"apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "pipeline-edges-v1", "namespace": NS, "labels": labels},
        "spec": {"replicas": 1, "selector": {"app": "pipeline-edges-v1"},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "user", "image": "busybox"}]}}}}))
        .await
        .unwrap();
    c.apply(&serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "pipeline-edges-v1-user", "namespace": NS, "labels": labels},
        "spec": {"type": "LoadBalancer", "selector": {"app": "pipeline-edges-v1"}, "ports": [{"port": 80}]}}))
        .await
        .unwrap();

    let plan = env
        .howdah(&["plan", "-f", path(&spec), "--destroy", "--json"])
        .await;
    assert_eq!(plan.code, 0, "{}", plan.all());
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let item = |id: &str| {
        plan["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap()
            .clone()
    };
    let lbs = item("runtime.load-balancers");
    assert_eq!(lbs["action"], "delete");
    let lb_paths: Vec<&str> = lbs["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        lb_paths.contains(&"Service/pachd") && lb_paths.contains(&"Service/pipeline-edges-v1-user"),
        "{lb_paths:?}"
    );
    assert_eq!(item("runtime.workers")["action"], "delete");
    let pachd_deps = item("runtime.pachd")["depends_on"].clone();
    assert!(pachd_deps
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d == "runtime.load-balancers"));

    env.down_ok(&spec, &[]).await;
    assert!(
        get(&env, "ReplicationController", Some(NS), "pipeline-edges-v1")
            .await
            .is_none()
    );
    assert!(get(&env, "Service", Some(NS), "pipeline-edges-v1-user")
        .await
        .is_none());
    assert!(get(&env, "Service", Some(NS), "pachd").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leftover_fails_down_and_is_named() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "leaky", "");
    env.up_ok(&spec).await;
    // Something labelled as the stack's, outside what down knows to remove.
    cluster(&env)
        .apply(&serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "stray", "namespace": "default",
                         "labels": {"howdah.io/stack": "leaky", "howdah.io/managed": "true"}}}))
        .await
        .unwrap();
    let down = env
        .howdah(&[
            "down",
            "-f",
            path(&spec),
            "--delete-data",
            "--yes",
            "--timeout",
            "60s",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(down.code, 5, "{}", down.all());
    let leftovers = down
        .events()
        .into_iter()
        .find(|e| e["event"] == "leftovers")
        .expect("leftovers event");
    let left: Vec<String> = leftovers["leftovers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["retained"] == false)
        .map(|l| {
            format!(
                "{} {}",
                l["kind"].as_str().unwrap(),
                l["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(left, vec!["kubernetes.ConfigMap default/stray"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_reports_a_missing_part_and_up_repairs_it() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "repair", "");
    env.up_ok(&spec).await;
    let deploy = howdah::runtime::cluster::kind_named("Deployment").unwrap();
    cluster(&env)
        .delete(deploy, Some(NS), "pachd")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let status = env.howdah(&["status", "-f", path(&spec), "--json"]).await;
    assert_eq!(status.code, 1, "{}", status.all());
    let report: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(report["healthy"], false);
    let pachd = report["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "runtime.pachd")
        .unwrap();
    assert_ne!(pachd["state"], "healthy", "{pachd}");

    let up = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_eq!(up.code, 0, "{}", up.all());
    assert!(
        up.stdout.contains("Deployment/pachd"),
        "the plan names what it repairs: {}",
        up.stdout
    );
    assert_eq!(env.howdah(&["status", "-f", path(&spec)]).await.code, 0);
}
