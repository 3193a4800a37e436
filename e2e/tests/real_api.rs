//! What a real kube-apiserver exposed (issue "Works on a real Kubernetes
//! API server"), each against the fake answering the way the real one does
//! (list items without kind, foreign field managers, Retain volumes): every
//! command after the first `up`, waits that really wait, drift another tool
//! made, quiet client libraries, Retain volumes after `down --delete-data`,
//! and `up --no-verify`.

use howdah_kube_fake::FakeOptions;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::*;

const NS: &str = "pachyderm";

async fn client(env: &Env) -> kube::Client {
    cluster(env).client().await.expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_command_works_once_the_stack_exists() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "rec", "");
    env.up_ok(&spec).await;

    let plan = env
        .howdah(&["plan", "-f", path(&spec), "--detailed-exitcode"])
        .await;
    assert_eq!(
        plan.code,
        0,
        "a converged stack plans no change:\n{}",
        plan.all()
    );
    assert!(!plan.all().contains("does not know"), "{}", plan.all());

    let status = env.howdah(&["status", "-f", path(&spec)]).await;
    assert_eq!(status.code, 0, "{}", status.all());

    let destroy = env
        .howdah(&["plan", "-f", path(&spec), "--destroy", "--json"])
        .await;
    assert_eq!(destroy.code, 0, "{}", destroy.all());
    let plan: serde_json::Value = serde_json::from_str(&destroy.stdout).expect("plan JSON");
    let pachd = plan["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["id"] == "runtime.pachd"))
        .expect("runtime.pachd in the destroy plan");
    assert_eq!(pachd["action"], "delete", "{pachd}");

    env.down_ok(&spec, &["--delete-data", "--yes"]).await;
    assert!(get(&env, "Deployment", Some(NS), "pachd").await.is_none());
}

/// The first object a wait sees comes from a list and has no kind; `up`
/// must still wait until the workloads are ready before it says done.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn up_says_done_only_when_workloads_are_ready() {
    // The fake takes 200 ms per transition (Env); a workload needs several
    // (claims, pods, readiness) after its apply.
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "waits", "");
    let up = env
        .howdah(&[
            "up",
            "-f",
            path(&spec),
            "--no-verify",
            "--timeout",
            "60s",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(up.code, 0, "{}", up.all());
    for (kind, name) in [
        ("StatefulSet", "etcd"),
        ("StatefulSet", "postgres"),
        ("Deployment", "pg-bouncer"),
        ("Deployment", "pachd"),
        ("Deployment", "console"),
        ("Deployment", "pachyderm-proxy"),
    ] {
        let o = get(&env, kind, Some(NS), name)
            .await
            .unwrap_or_else(|| panic!("{kind} {name}"));
        let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
        assert!(
            o["status"]["readyReplicas"].as_i64().unwrap_or(0) >= want,
            "{kind}/{name} is not ready although up finished: {}",
            o["status"]
        );
    }
    let etcd = up
        .events()
        .into_iter()
        .find(|e| e["event"] == "step_finished" && e["step"] == "runtime.etcd")
        .expect("etcd finished");
    assert!(
        etcd["elapsed_s"].as_f64().unwrap_or(0.0) >= 0.2,
        "etcd cannot be ready before the fake's first transition: {etcd}"
    );
}

/// `kubectl set env deploy/pachw FOO=bar`: a strategic merge patch under
/// another field manager. Server-side apply keeps what that manager owns,
/// so `up` must remove it with a write that does, and plan must agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drift_another_tool_made_is_shown_briefly_and_repaired() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "drift", "");
    env.up_ok(&spec).await;

    let kind = howdah::runtime::cluster::kind_named("Deployment").expect("kind");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client(&env).await, NS, &kind.api_resource());
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "pachw", "env": [{"name": "FOO", "value": "not-for-plans"}]}]}}}});
    let params = PatchParams {
        field_manager: Some("kubectl-set".into()),
        ..PatchParams::default()
    };
    api.patch("pachw", &params, &Patch::Strategic(&patch))
        .await
        .expect("foreign patch");

    let plan = env
        .howdah(&["plan", "-f", path(&spec), "--detailed-exitcode"])
        .await;
    assert_eq!(plan.code, 2, "the foreign entry is drift:\n{}", plan.all());
    let text = plan.all();
    assert!(text.contains("env[FOO]"), "{text}");
    assert!(
        !text.contains("not-for-plans"),
        "a foreign value may be a secret: {text}"
    );
    let longest = text.lines().map(str::len).max().unwrap_or(0);
    assert!(
        longest < 300,
        "one entry, not two whole lists ({longest} chars):\n{text}"
    );

    env.up_ok(&spec).await;
    let pachw = get(&env, "Deployment", Some(NS), "pachw")
        .await
        .expect("pachw");
    let env_names: Vec<&str> = pachw["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["env"].as_array().into_iter().flatten())
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        !env_names.contains(&"FOO"),
        "FOO survived up: {env_names:?}"
    );
    assert!(!env_names.is_empty(), "howdah's own entries stay");

    let again = env
        .howdah(&["plan", "-f", path(&spec), "--detailed-exitcode"])
        .await;
    assert_eq!(again.code, 0, "up converged:\n{}", again.all());
}

/// Retried 429/503 answers are howdah's business: no client library line
/// reaches stderr unless HOWDAH_LOG asks for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_library_logs_stay_quiet_without_howdah_log() {
    let env = Env::with(FakeOptions {
        fault_every: 7,
        ..FakeOptions::default()
    })
    .await;
    let spec = env.stack("howdah.yaml", "quiet", "");
    let up = env.up_ok_with(&spec, &["--output", "json"]).await;
    assert!(env.fake.stats().faults > 0, "faults were injected");
    for needle in ["kube_client", "ERROR", "WARN", "\u{1b}["] {
        assert!(
            !up.stderr.contains(needle),
            "`{needle}` on stderr:\n{}",
            up.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retained_volumes_are_reported_after_delete_data() {
    let env = Env::start().await;
    let class = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "keep"}, "provisioner": "rancher.io/local-path",
        "reclaimPolicy": "Retain", "volumeBindingMode": "Immediate"});
    let sc_kind = howdah::runtime::cluster::kind_named("StorageClass").expect("kind");
    let api: Api<DynamicObject> = Api::all_with(client(&env).await, &sc_kind.api_resource());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(class).expect("object"),
    )
    .await
    .expect("StorageClass keep");
    let spec = env.stack(
        "howdah.yaml",
        "keep",
        "pachyderm:\n  etcd: {storageClass: keep}\n  postgres: {storageClass: keep}\n",
    );
    env.up_ok(&spec).await;

    let plan = env
        .howdah(&["plan", "-f", path(&spec), "--destroy", "--delete-data"])
        .await;
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(plan.all().contains("Retain"), "{}", plan.all());

    let down = env.down_ok(&spec, &["--delete-data", "--yes"]).await;
    let text = down.all();
    assert!(text.contains("kubectl delete pv"), "{text}");
    assert!(text.contains("Retain"), "{text}");
    assert!(!text.contains("nothing left"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_verify_asks_nothing_and_status_says_skipped() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "nov", "");
    let up = env
        .howdah(&["up", "-f", path(&spec), "--no-verify", "--timeout", "60s"])
        .await;
    assert_eq!(up.code, 0, "{}", up.all());
    let forwarded = env
        .fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("portforward"))
        .count();
    assert_eq!(forwarded, 0, "--no-verify opened a port-forward");

    let status = env.howdah(&["status", "-f", path(&spec), "--json"]).await;
    assert_eq!(status.code, 0, "{}", status.all());
    let report: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    let verify = report["parts"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["id"] == "runtime.verify"))
        .expect("verify part");
    assert_eq!(verify["state"], "skipped", "{verify}");
    assert_eq!(
        env.fake
            .requests()
            .iter()
            .filter(|r| r.path.contains("portforward"))
            .count(),
        0,
        "status asked pachd after up --no-verify"
    );

    // A later up with verification checks pachd again, and status follows.
    env.up_ok(&spec).await;
    let status = env.howdah(&["status", "-f", path(&spec), "--json"]).await;
    let report: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    let verify = report["parts"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["id"] == "runtime.verify"))
        .expect("verify part");
    assert_eq!(verify["state"], "healthy", "{verify}");
}

/// A nightly rebuild: `up` while the namespace of the last run is still
/// Terminating (a real one takes seconds; here an object with a finalizer
/// holds it). A terminating namespace refuses new content, so `up` must
/// wait for it to go and then make it anew, not fail or write into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn up_waits_out_a_namespace_still_being_deleted() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "again", "");
    env.up_ok(&spec).await;

    let client = client(&env).await;
    let cm_kind = howdah::runtime::cluster::kind_named("ConfigMap").expect("kind");
    let cms: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &cm_kind.api_resource());
    let hold = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "hold", "namespace": NS, "finalizers": ["example.com/hold"]}});
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(hold).expect("object"),
    )
    .await
    .expect("hold created");
    let ns_kind = howdah::runtime::cluster::kind_named("Namespace").expect("kind");
    let namespaces: Api<DynamicObject> = Api::all_with(client.clone(), &ns_kind.api_resource());
    namespaces
        .delete(NS, &kube::api::DeleteParams::default())
        .await
        .expect("namespace delete accepted");

    let plan = env.howdah(&["plan", "-f", path(&spec)]).await;
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(plan.all().contains("being deleted"), "{}", plan.all());

    let dir = env.dir.path().to_path_buf();
    let spec_arg = path(&spec).to_string();
    let up =
        tokio::spawn(async move { run(&dir, &["up", "-f", &spec_arg, "--timeout", "60s"]).await });
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        !up.is_finished(),
        "up cannot finish while the namespace is held"
    );
    cms.patch(
        "hold",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("hold released");
    let up = up.await.expect("up ran");
    assert_eq!(up.code, 0, "{}", up.all());
    let ns = get(&env, "Namespace", None, NS)
        .await
        .expect("namespace made anew");
    assert!(ns["metadata"]["deletionTimestamp"].is_null(), "{ns}");
    assert!(get(&env, "Deployment", Some(NS), "pachd").await.is_some());
}

/// A cluster whose API server cannot reach the node (kube-recordings:
/// every port-forward got 500 "no preferred addresses found"). Verification
/// keeps asking for as long as --timeout allows, then fails naming the way
/// out; `up --no-verify` gets the stack up there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verification_follows_timeout_and_names_no_verify() {
    let env = Env::with(FakeOptions {
        node_unreachable: true,
        ..FakeOptions::default()
    })
    .await;
    let spec = env.stack("howdah.yaml", "nopf", "");
    let started = std::time::Instant::now();
    let up = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "8s"])
        .await;
    assert_eq!(up.code, 1, "{}", up.all());
    let text = up.all();
    assert!(text.contains("no preferred addresses"), "{text}");
    assert!(text.contains("--no-verify"), "{text}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(8),
        "verification gave up before --timeout"
    );

    let up = env
        .howdah(&["up", "-f", path(&spec), "--no-verify", "--timeout", "60s"])
        .await;
    assert_eq!(up.code, 0, "{}", up.all());
}

/// Ctrl-C while verification polls a pachd that does not answer: the run
/// stops at once (exit 130), not after the 30 s grace running steps get.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupt_during_verification_stops_at_once() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let env = Env::with(FakeOptions {
        node_unreachable: true,
        ..FakeOptions::default()
    })
    .await;
    let spec = env.stack("howdah.yaml", "intr", "");
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "up",
            "-f",
            path(&spec),
            "--output",
            "json",
            "--timeout",
            "120s",
        ])
        .current_dir(env.dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("howdah starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stdout = String::new();
    // Signal once verification has been refused at least once.
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("reads") {
            stdout.push_str(&line);
            stdout.push('\n');
            if line.contains("\"step_progress\"")
                && line.contains("runtime.verify")
                && line.contains("no preferred addresses")
            {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("verification never started:\n{stdout}"));
    let pid = child.id().expect("pid") as i32;
    let signalled = std::time::Instant::now();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("reads") {
            stdout.push_str(&line);
            stdout.push('\n');
        }
        child.wait().await.expect("exits")
    })
    .await
    .expect("exits");
    assert_eq!(status.code(), Some(130), "{stdout}");
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}: the 30 s grace was waited out",
        signalled.elapsed()
    );
}
