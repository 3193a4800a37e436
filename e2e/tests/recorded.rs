//! howdah's own logic against what a real kube-apiserver v1.26.0 answered
//! (../shared/kube-recordings): the objects it listed back after an `up`
//! must key, diff and judge the way the real server's answers demand. No
//! fake is involved: these are the real server's bytes.

use std::path::PathBuf;

use howdah::runtime::cluster::{kind_named, typed, ObjectKey};
use howdah::runtime::diff::diff_object;
use howdah::runtime::health::readiness;
use howdah::runtime::inputs::{RenderSecrets, SecretText};
use howdah::runtime::render_stack;
use serde_json::Value;

fn recordings() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/kube-recordings");
    assert!(
        dir.join("README.md").is_file(),
        "the kube recordings are missing: expected {} (shared/ beside the checkout)",
        dir.display()
    );
    dir
}

fn exchanges(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(recordings().join(file))
        .unwrap_or_else(|e| panic!("reading {file}: {e}"));
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The kind a list path is of: `/apis/apps/v1/namespaces/x/deployments`.
fn kind_of_path(path: &str) -> Option<&'static howdah::runtime::cluster::Kind> {
    let plural = path.rsplit('/').next()?;
    howdah::runtime::Runtime::live_kinds()
        .into_iter()
        .find(|k| k.plural == plural)
}

/// The stack the recordings were made with (s.yaml there), at the etcd
/// size of the scenario.
fn recorded_stack(etcd_size: &str) -> howdah::spec::Stack {
    let text = std::fs::read_to_string(recordings().join("s.yaml"))
        .expect("s.yaml")
        .replace("size: 20Gi", &format!("size: {etcd_size}"))
        // The default when the recordings were made; it is the chart's
        // 100000 since. They were made before howdah ran pachyderm-proxy.
        .replace(
            "  console:",
            "  pgBouncer:\n    maxConnections: 1000\n  proxy: false\n  console:",
        );
    howdah::spec::parse("s.yaml", &text).expect("the recorded stack parses")
}

/// Every object a no-op `up` listed (04-up-noop seq 1–11), as the real
/// server sent it: list items without kind.
fn listed(file: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for x in exchanges(file) {
        let req = &x["request"];
        let selector = req["query"]["labelSelector"].as_str().unwrap_or_default();
        if req["method"] != "GET" || !selector.starts_with("howdah.io/stack=rec") {
            continue;
        }
        let Some(kind) = kind_of_path(req["path"].as_str().unwrap_or_default()) else {
            continue;
        };
        for item in x["response"]["body"]["items"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(
                item.get("kind").is_none(),
                "the real server sends no kind on list items"
            );
            out.push(typed(kind, item.clone()));
        }
    }
    out
}

#[test]
fn a_converged_stack_read_from_a_real_server_plans_no_change() {
    let live = listed("04-up-noop.jsonl");
    assert!(
        live.len() >= 20,
        "the no-op up listed the stack: {}",
        live.len()
    );
    // The recorder replaced every Secret value by base64("redacted").
    let secrets = RenderSecrets {
        postgres_password: SecretText::new("redacted".into()),
        ..RenderSecrets::redacted()
    };
    let desired = render_stack(
        &recorded_stack("10Gi"),
        &howdah_provider::RuntimeInputs::default(),
        &secrets,
    )
    .expect("renders");
    let mut compared = 0;
    for d in &desired {
        if NEW_SINCE_RECORDING.contains(&d.key.to_string().as_str()) {
            compared += 1;
            continue;
        }
        let l = live
            .iter()
            .find(|l| ObjectKey::of(l).ok().as_ref() == Some(&d.key))
            .unwrap_or_else(|| panic!("{} was not listed back", d.key));
        let mut changes = diff_object(&d.key.to_string(), &d.object, l);
        if d.key.kind == "Secret" {
            changes.retain(|c| !c.path.contains(": data"));
        }
        changes.retain(|c| !CHANGED_SINCE_RECORDING.iter().any(|f| c.path.contains(f)));
        assert!(
            changes.is_empty(),
            "{} differs on a no-op: {changes:?}",
            d.key
        );
        compared += 1;
    }
    assert_eq!(compared, desired.len());
}

/// Objects the runtime gained after the recordings were made (the
/// recordings are facts of a real server and are not re-made here): the
/// per-cluster deployment id and the key of the storage digest.
const NEW_SINCE_RECORDING: &[&str] = &[
    "Secret/pachyderm-deployment-id-secret",
    "Secret/howdah-stack-keys",
];

/// Fields rendered differently since, on purpose: CLUSTER_DEPLOYMENT_ID
/// comes from that Secret (envFrom) instead of a value, and the storage
/// digest is keyed; pachd reads its mode from pachd-config (envFrom) for
/// `pachctl enterprise pause`; PostgreSQL has the chart's default requests
/// and soft anti-affinity, pachyderm-proxy its affinity to pachd.
const CHANGED_SINCE_RECORDING: &[&str] = &[
    "env[CLUSTER_DEPLOYMENT_ID]",
    "envFrom",
    "howdah.io/storage-secret-digest",
    "Deployment/pachd: spec.template.spec.containers[pachd].args",
    "Deployment/pachd: spec.template.spec.containers[pachd].env[UNPAUSED_MODE]",
    "StatefulSet/postgres: spec.template.spec.affinity",
    "StatefulSet/postgres: spec.template.spec.containers[postgres].resources.requests",
    "Deployment/pachyderm-proxy: spec.template.spec.affinity",
];

#[test]
fn workloads_a_real_controller_made_ready_are_ready_and_fresh_ones_are_not() {
    for o in listed("04-up-noop.jsonl") {
        let key = ObjectKey::of(&o).expect("typed");
        let kind = kind_named(key.kind).expect("known");
        if matches!(
            key.kind,
            "Deployment" | "StatefulSet" | "PersistentVolumeClaim"
        ) {
            assert!(
                readiness(kind, &o).is_ok(),
                "{key} is ready on the real server: {:?}",
                readiness(kind, &o)
            );
        }
    }
    // What the server answers to the creating apply (02-up-fresh): not ready.
    let mut fresh = 0;
    for x in exchanges("02-up-fresh.jsonl") {
        let body = &x["response"]["body"];
        if x["request"]["method"] != "PATCH" || x["response"]["status"] != 201 {
            continue;
        }
        let Some(kind) = body["kind"].as_str().and_then(kind_named) else {
            continue;
        };
        if matches!(kind.kind, "Deployment" | "StatefulSet") {
            assert!(
                readiness(kind, body).is_err(),
                "a just-created {} counted as ready",
                kind.kind
            );
            fresh += 1;
        }
    }
    assert!(fresh >= 5, "the fresh up created the workloads: {fresh}");
}
