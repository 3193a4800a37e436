//! The life of a stack: fresh up, no-op up, an edit, down with data kept,
//! down with data deleted.

use base64::Engine as _;

use crate::support::*;

const NS: &str = "pachyderm";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn up_converges_verifies_and_a_second_up_writes_nothing() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "ml-dev", "tags:\n  team: ml\n");
    let up = env.up_ok_with(&spec, &["--output", "json"]).await;

    // Every part is there with the fields the stack asks for.
    let etcd = get(&env, "StatefulSet", Some(NS), "etcd")
        .await
        .expect("etcd StatefulSet");
    assert_eq!(
        etcd["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "10Gi"
    );
    assert_eq!(etcd["metadata"]["labels"]["howdah.io/stack"], "ml-dev");
    assert_eq!(etcd["metadata"]["labels"]["team"], "ml");
    let pachd = get(&env, "Deployment", Some(NS), "pachd")
        .await
        .expect("pachd Deployment");
    let image = pachd["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert!(image.ends_with("pachd:2.11.6"), "{image}");
    for sa in ["pachyderm", "pachyderm-worker"] {
        assert!(
            get(&env, "ServiceAccount", Some(NS), sa).await.is_some(),
            "service account {sa}"
        );
    }
    assert!(get(&env, "Deployment", Some(NS), "pg-bouncer")
        .await
        .is_some());
    assert!(get(&env, "StatefulSet", Some(NS), "postgres")
        .await
        .is_some());
    assert!(get(&env, "Deployment", Some(NS), "console").await.is_some());
    let claims = list(
        &env,
        "PersistentVolumeClaim",
        Some(NS),
        "howdah.io/stack=ml-dev",
    )
    .await;
    assert!(
        claims.len() >= 2,
        "etcd and postgres claims: {:?}",
        names(&claims)
    );

    // The run verified pachd for real and said so.
    let events = up.events();
    let verify = events
        .iter()
        .find(|e| e["event"] == "step_finished" && e["step"] == "runtime.verify")
        .expect("verify step finished");
    assert!(verify["elapsed_s"].as_f64().is_some());
    let summary = events
        .iter()
        .find(|e| e["event"] == "summary")
        .expect("summary event");
    assert_eq!(summary["ok"], true);
    assert!(
        summary["message"]
            .as_str()
            .unwrap()
            .contains("pachd 2.11.6 is SERVING"),
        "{summary}"
    );

    // The password is in the cluster's Secret and nowhere else.
    let secret = get(&env, "Secret", Some(NS), "postgres")
        .await
        .expect("postgres secret");
    let b64 = secret["data"]["postgres-password"]
        .as_str()
        .expect("password key");
    let password = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    assert!(password.len() >= 16);
    let state = std::fs::read_to_string(env.dir.path().join(".howdah/ml-dev.state.json"))
        .expect("state file");
    assert!(!state.contains(&password) && !state.contains(b64));
    assert!(!up.all().contains(&password) && !up.all().contains(b64));

    let status = env.howdah(&["status", "-f", path(&spec)]).await;
    assert_eq!(status.code, 0, "{}", status.all());
    assert!(status.stdout.contains("healthy"), "{}", status.stdout);

    // Second up: nothing to do, and not a single write.
    env.fake.reset_stats();
    let again = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    let stats = env.fake.stats();
    assert_eq!(
        stats.writes,
        0,
        "a converged up must not write: {:?}",
        env.fake.requests()
    );
    let objects = howdah::ops::render(&howdah::ops::Session::open(&spec, None).unwrap())
        .unwrap()
        .len() as u64;
    assert!(
        stats.reads <= objects,
        "{} reads for {objects} objects",
        stats.reads
    );

    // The password survived the re-run (read back, not regenerated).
    let secret = get(&env, "Secret", Some(NS), "postgres").await.unwrap();
    assert_eq!(secret["data"]["postgres-password"].as_str(), Some(b64));

    let plan = env
        .howdah(&["plan", "-f", path(&spec), "--detailed-exitcode"])
        .await;
    assert_eq!(plan.code, 0, "{}", plan.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn growing_etcd_plans_exactly_that_and_applies_it() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "grow", "");
    env.up_ok(&spec).await;

    let spec = env.stack(
        "howdah.yaml",
        "grow",
        "pachyderm:\n  etcd:\n    size: 20Gi\n",
    );
    let plan = env
        .howdah(&["plan", "-f", path(&spec), "--json", "--detailed-exitcode"])
        .await;
    assert_eq!(plan.code, 2, "changes pending: {}", plan.all());
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan json");
    let changed: Vec<&serde_json::Value> = plan["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] != "no-op")
        .collect();
    assert_eq!(changed.len(), 1, "only etcd changes: {changed:?}");
    assert_eq!(changed[0]["id"], "runtime.etcd");
    let fields = changed[0]["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 1, "{fields:?}");
    assert!(fields[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("resources.requests.storage"));
    assert_eq!(fields[0]["old"], "10Gi");
    assert_eq!(fields[0]["new"], "20Gi");

    let up = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_eq!(up.code, 0, "{}", up.all());
    let etcd = get(&env, "StatefulSet", Some(NS), "etcd").await.unwrap();
    assert_eq!(
        etcd["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "20Gi"
    );
    let claim = get(
        &env,
        "PersistentVolumeClaim",
        Some(NS),
        "etcd-storage-etcd-0",
    )
    .await
    .expect("etcd claim kept");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "20Gi");

    // Shrinking is refused before anything is touched.
    let spec = env.stack(
        "howdah.yaml",
        "grow",
        "pachyderm:\n  etcd:\n    size: 5Gi\n",
    );
    env.fake.reset_stats();
    let shrink = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_ne!(shrink.code, 0);
    assert!(shrink.all().contains("cannot shrink"), "{}", shrink.all());
    assert_eq!(env.fake.stats().writes, 0);

    // So is changing etcd's membership, which would split the cluster.
    let spec = env.stack(
        "howdah.yaml",
        "grow",
        "pachyderm:\n  etcd:\n    size: 20Gi\n    replicas: 3\n",
    );
    let members = env.howdah(&["plan", "-f", path(&spec)]).await;
    assert_eq!(members.code, 1, "{}", members.all());
    assert!(
        members.all().contains("membership cannot change"),
        "{}",
        members.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn down_removes_the_runtime_keeps_data_unless_asked_and_proves_it() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "gone", "");
    env.up_ok(&spec).await;
    let password = |s: Option<serde_json::Value>| {
        s.expect("postgres secret")["data"]["postgres-password"].clone()
    };
    let before = password(get(&env, "Secret", Some(NS), "postgres").await);

    let down = env.down_ok(&spec, &[]).await;
    assert!(get(&env, "Deployment", Some(NS), "pachd").await.is_none());
    assert!(get(&env, "StatefulSet", Some(NS), "etcd").await.is_none());
    let claims = list(
        &env,
        "PersistentVolumeClaim",
        Some(NS),
        "howdah.io/stack=gone",
    )
    .await;
    assert!(!claims.is_empty(), "data retained by default");
    assert!(down.stdout.contains("KEPT"), "{}", down.stdout);
    assert!(down.stdout.contains("--delete-data"), "{}", down.stdout);

    // Up again on retained data: the old password is kept with the data,
    // or the retained database would refuse pachd.
    env.up_ok(&spec).await;
    assert_eq!(
        password(get(&env, "Secret", Some(NS), "postgres").await),
        before
    );

    let down = env.down_ok(&spec, &["--delete-data", "--yes"]).await;
    assert!(list(
        &env,
        "PersistentVolumeClaim",
        Some(NS),
        "howdah.io/stack=gone"
    )
    .await
    .is_empty());
    assert!(
        get(&env, "Namespace", None, NS).await.is_none(),
        "owned namespace removed"
    );
    assert!(down.stdout.contains("nothing left"), "{}", down.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn static_keys_reach_the_storage_secret_and_never_the_output() {
    let env = Env::start().await;
    let spec = env.stack(
        "howdah.yaml",
        "keys",
        "storage:\n  bucket:\n    url: s3://data?region=us-east-1&endpoint=http://minio:9000\n    credentialsSecret: bucket-keys\npachyderm:\n  identity: keys\n",
    );
    let c = cluster(&env);
    c.apply(
        &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    )
    .await
    .unwrap();
    let keys = |secret: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bucket-keys", "namespace": NS},
            "stringData": {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": secret}})
    };
    c.apply(&keys("first-s3cr3t")).await.unwrap();
    let up = env.up_ok(&spec).await;
    let digest = |d: serde_json::Value| {
        d["spec"]["template"]["metadata"]["annotations"]["howdah.io/storage-secret-digest"].clone()
    };
    let before = digest(get(&env, "Deployment", Some(NS), "pachd").await.unwrap());
    assert!(before.is_string());

    let storage = get(&env, "Secret", Some(NS), "pachyderm-storage-secret")
        .await
        .unwrap();
    let decode = |v: &serde_json::Value| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        decode(&storage["data"]["AWS_SECRET_ACCESS_KEY"]),
        "first-s3cr3t"
    );
    assert_eq!(decode(&storage["data"]["AMAZON_BUCKET"]), "data");

    // Rotating the user's keys is a planned, redacted change.
    c.apply(&keys("second-s3cr3t")).await.unwrap();
    let plan = env
        .howdah(&["plan", "-f", path(&spec), "--detailed-exitcode"])
        .await;
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("Secret/pachyderm-storage-secret: data.AWS_SECRET_ACCESS_KEY: (sensitive) → (sensitive)"), "{}", plan.stdout);
    let again = env.up_ok(&spec).await;
    let storage = get(&env, "Secret", Some(NS), "pachyderm-storage-secret")
        .await
        .unwrap();
    assert_eq!(
        decode(&storage["data"]["AWS_SECRET_ACCESS_KEY"]),
        "second-s3cr3t"
    );
    // pachd reads the keys when it starts: the rotation rolled its pods.
    let after = digest(get(&env, "Deployment", Some(NS), "pachd").await.unwrap());
    assert_ne!(before, after);

    let state = std::fs::read_to_string(env.dir.path().join(".howdah/keys.state.json")).unwrap();
    for text in [up.all(), again.all(), plan.all(), state] {
        assert!(!text.contains("s3cr3t"), "a key leaked: {text}");
        assert!(!text.contains(&base64::engine::general_purpose::STANDARD.encode("second-s3cr3t")));
    }
}

/// Two clusters running a stack of the same name get different deployment
/// ids (the chart's random id, kept in a Secret), and a cluster keeps its
/// id across runs: re-running `up` changes nothing.
#[tokio::test]
async fn each_cluster_gets_its_own_deployment_id_and_keeps_it() {
    let first = Env::start().await;
    let second = Env::start().await;
    let id = |secret: Option<serde_json::Value>| {
        let b64 = secret.expect("deployment id Secret")["data"]["CLUSTER_DEPLOYMENT_ID"]
            .as_str()
            .expect("CLUSTER_DEPLOYMENT_ID")
            .to_string();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    let mut ids = Vec::new();
    for env in [&first, &second] {
        let spec = env.stack("howdah.yaml", "same-name", "");
        env.up_ok(&spec).await;
        let made = id(get(env, "Secret", Some(NS), "pachyderm-deployment-id-secret").await);
        assert_eq!(made.len(), 32, "{made}");
        assert!(!made.contains("same-name"), "{made}");
        let again = env
            .howdah(&["plan", "-f", path(&spec), "--detailed-exitcode"])
            .await;
        assert_eq!(
            again.code,
            0,
            "the id changed on a re-plan:\n{}",
            again.all()
        );
        env.up_ok(&spec).await;
        assert_eq!(
            id(get(env, "Secret", Some(NS), "pachyderm-deployment-id-secret").await),
            made
        );
        ids.push(made);
    }
    assert_ne!(ids[0], ids[1]);
}

/// A version change is planned as what it is: an upgrade says which
/// images change and that pods restart; a downgrade is refused unless
/// asked for, before anything is written.
#[tokio::test]
async fn version_changes_are_upgrades_or_refused_downgrades() {
    let env = Env::start().await;
    let older = env.stack(
        "howdah.yaml",
        "versions",
        "pachyderm:\n  version: \"2.11.5\"\n",
    );
    env.up_ok(&older).await;
    let newer = env.stack(
        "howdah.yaml",
        "versions",
        "pachyderm:\n  version: \"2.11.6\"\n",
    );
    let plan = env.howdah(&["plan", "-f", path(&newer)]).await;
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(
        plan.stdout.contains("upgrade pachd/pachd 2.11.5 → 2.11.6")
            && plan.stdout.contains("(new images: the pods restart)"),
        "{}",
        plan.stdout
    );
    env.up_ok(&newer).await;

    let writes = env.fake.stats().writes;
    let back = env.stack(
        "howdah.yaml",
        "versions",
        "pachyderm:\n  version: \"2.11.5\"\n",
    );
    for command in ["plan", "up"] {
        let refused = env.howdah(&[command, "-f", path(&back)]).await;
        assert_eq!(refused.code, 1, "{command}: {}", refused.all());
        assert!(
            refused
                .all()
                .contains("downgrade pachd/pachd 2.11.6 → 2.11.5"),
            "{command}: {}",
            refused.all()
        );
        assert!(
            refused.all().contains("--allow-downgrade"),
            "{}",
            refused.all()
        );
    }
    assert_eq!(env.fake.stats().writes, writes, "a refused downgrade wrote");
    let allowed = env
        .howdah(&["plan", "-f", path(&back), "--allow-downgrade"])
        .await;
    assert_eq!(allowed.code, 0, "{}", allowed.all());
    assert!(
        allowed.stdout.contains("DOWNGRADE pachd/pachd"),
        "{}",
        allowed.stdout
    );
}

/// After `up`, the summary says what to do next, with the stack file as
/// given: reach pachd and the console, point pachctl at it, look again.
#[tokio::test]
async fn the_up_summary_says_what_to_do_next() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "next", "");
    let up = env.up_ok(&spec).await;
    let file = path(&spec);
    for wanted in [
        "Next:".to_string(),
        format!("howdah console -f {file}"),
        "http://localhost:4000".to_string(),
        "pachctl connect grpc://localhost:30650".to_string(),
        format!("howdah status -f {file} --deep"),
    ] {
        assert!(up.stdout.contains(&wanted), "{wanted}:\n{}", up.stdout);
    }
    // A cluster the user already reaches needs no kubeconfig from howdah.
    assert!(!up.stdout.contains("howdah kubeconfig"), "{}", up.stdout);
}
