//! When something cannot become ready, howdah says why, and what it will
//! not touch it leaves alone.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unpullable_image_is_named_in_the_failure() {
    let env = Env::start().await;
    let spec = env.stack(
        "howdah.yaml",
        "pull",
        "pachyderm:\n  imageRegistry: invalid.example\n",
    );
    let up = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "4s"])
        .await;
    assert_eq!(up.code, 1, "{}", up.all());
    assert!(up.all().contains("ImagePullBackOff"), "{}", up.all());
    assert!(
        up.all().contains("imageRegistry"),
        "says what to check: {}",
        up.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_storage_class_fails_fast_with_the_fix() {
    let env = Env::with(howdah_kube_fake::FakeOptions {
        default_storage_class: false,
        ..Default::default()
    })
    .await;
    let spec = env.stack("howdah.yaml", "nosc", "");
    let started = std::time::Instant::now();
    let up = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "120s"])
        .await;
    assert_eq!(up.code, 1, "{}", up.all());
    assert!(
        up.all().contains("Pending") && up.all().contains("StorageClass"),
        "{}",
        up.all()
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "did not wait out the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_object_howdah_does_not_own_is_not_taken_over() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "mine", "");
    // Someone else's pachd Service in the namespace.
    let cluster = cluster(&env);
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pachyderm"}});
    cluster.apply(&ns).await.unwrap();
    let svc = serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "pachd", "namespace": "pachyderm"},
        "spec": {"ports": [{"port": 80}]}});
    cluster.apply(&svc).await.unwrap();
    env.fake.reset_stats();
    let up = env.howdah(&["up", "-f", path(&spec)]).await;
    assert_eq!(up.code, 1, "{}", up.all());
    assert!(up.all().contains("not managed by stack"), "{}", up.all());
    assert_eq!(
        env.fake.stats().writes,
        0,
        "refused at plan time, before any write"
    );
    // The user's namespace is used but never deleted by down.
    let down = env.howdah(&["down", "-f", path(&spec)]).await;
    assert_eq!(down.code, 0, "{}", down.all());
    assert!(get(&env, "Namespace", None, "pachyderm").await.is_some());
    assert!(get(&env, "Service", Some("pachyderm"), "pachd")
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_named_secret_that_does_not_exist_stops_up_before_any_write() {
    let env = Env::start().await;
    let spec = env.stack(
        "howdah.yaml",
        "refs",
        "storage:\n  bucket:\n    url: s3://data?region=us-east-1\n    credentialsSecret: bucket-keys\npachyderm:\n  imagePullSecrets: [mirror]\n",
    );
    env.fake.reset_stats();
    let up = env.howdah(&["up", "-f", path(&spec)]).await;
    assert_eq!(up.code, 1, "{}", up.all());
    assert!(
        up.stderr
            .contains("`bucket-keys` (storage.bucket.credentialsSecret)"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains("`mirror` (pachyderm.imagePullSecrets)"),
        "{}",
        up.stderr
    );
    assert_eq!(env.fake.stats().writes, 0);

    // Once they exist, up goes ahead.
    let c = cluster(&env);
    c.apply(&serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pachyderm"}}))
        .await
        .unwrap();
    // ...with the keys their readers read.
    c.apply(&serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "bucket-keys", "namespace": "pachyderm"},
        "stringData": {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example"}}))
        .await
        .unwrap();
    c.apply(&serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "mirror", "namespace": "pachyderm"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": "{\"auths\": {}}"}}))
        .await
        .unwrap();
    let plan = env.howdah(&["plan", "-f", path(&spec)]).await;
    assert_eq!(plan.code, 0, "{}", plan.all());
}

/// Applies a Namespace and a Secret with `string_data` (None: no data at
/// all) through the API, as a user would with kubectl.
async fn user_secret(env: &Env, name: &str, string_data: Option<serde_json::Value>) {
    let c = cluster(env);
    c.apply(&serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pachyderm"}}))
        .await
        .unwrap();
    let mut secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "pachyderm"}});
    if let Some(data) = string_data {
        secret["stringData"] = data;
    }
    c.apply(&secret).await.unwrap();
}

/// plan and up both stop before any write, with one message naming the
/// Secret, the keys it has and the key the pods read; never a value.
async fn assert_plan_and_up_name_the_keys(env: &Env, spec: &std::path::Path, wanted: &[&str]) {
    env.fake.reset_stats();
    for command in ["plan", "up"] {
        let run = env.howdah(&[command, "-f", path(spec)]).await;
        assert_eq!(run.code, 1, "{command}: {}", run.all());
        for w in wanted {
            assert!(
                run.stderr.contains(w),
                "{command}: no `{w}` in: {}",
                run.stderr
            );
        }
        assert!(
            !run.all().contains("hunter2"),
            "a value leaked: {}",
            run.all()
        );
    }
    assert_eq!(env.fake.stats().writes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_password_secret_without_its_key_stops_plan_and_up() {
    let env = Env::start().await;
    let spec = env.stack(
        "howdah.yaml",
        "pgkey",
        "pachyderm:\n  postgres:\n    external:\n      host: db.example.internal\n      user: pachyderm\n      passwordSecret: pg-pass\n",
    );
    user_secret(
        &env,
        "pg-pass",
        Some(serde_json::json!({"wrong-key": "hunter2"})),
    )
    .await;
    assert_plan_and_up_name_the_keys(
        &env,
        &spec,
        &[
            "`pg-pass`",
            "passwordSecret",
            "`wrong-key`",
            "`postgres-password`",
        ],
    )
    .await;

    // A Secret with no data at all (the API then has no `data` field).
    cluster(&env)
        .delete(
            howdah::runtime::cluster::kind_named("Secret").unwrap(),
            Some("pachyderm"),
            "pg-pass",
        )
        .await
        .unwrap();
    user_secret(&env, "pg-pass", None).await;
    assert_plan_and_up_name_the_keys(
        &env,
        &spec,
        &["`pg-pass`", "no keys", "`postgres-password`"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bucket_credentials_without_the_keys_the_pods_read_stop_plan_and_up() {
    let env = Env::start().await;
    let spec = env.stack(
        "howdah.yaml",
        "s3key",
        "storage:\n  bucket:\n    url: s3://data?region=us-east-1\n    credentialsSecret: bucket-keys\npachyderm:\n  identity: keys\n",
    );
    user_secret(
        &env,
        "bucket-keys",
        Some(serde_json::json!({"access-key": "hunter2a", "AWS_SECRET_ACCESS_KEY": "hunter2b"})),
    )
    .await;
    assert_plan_and_up_name_the_keys(
        &env,
        &spec,
        &[
            "`bucket-keys`",
            "credentialsSecret",
            "`access-key`",
            "`AWS_ACCESS_KEY_ID`",
        ],
    )
    .await;
}

/// `howdah schema | head -c 10`: the reader goes away; howdah must end
/// quietly with its own exit code, not panic with "Broken pipe" (101).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_quietly() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "pipe", "");
    for args in [
        vec!["schema"],
        vec!["render", "-f", path(&spec)],
        vec!["init"],
    ] {
        let mut child = tokio::process::Command::new(BIN)
            .args(&args)
            .current_dir(env.dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("howdah starts");
        drop(child.stdout.take()); // the reader is gone before the first write
        let out = child.wait_with_output().await.expect("exits");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
