//! Saved plans (`plan --out FILE`, `up --plan FILE`) and the timeline of
//! the last run (`howdah timeline`).

use crate::support::*;

const DEBUG_LOGS: &str = "pachyderm:\n  pachd:\n    logLevel: debug\n";

fn pachd_log_level(env: &Env) -> String {
    let pachd = env
        .fake
        .get("apps/v1", "deployments", Some("pachyderm"), "pachd")
        .expect("pachd Deployment");
    pachd["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "PACHYDERM_LOG_LEVEL")
        .and_then(|e| e["value"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn pachd_replicas(env: &Env) -> i64 {
    env.fake
        .get("apps/v1", "deployments", Some("pachyderm"), "pachd")
        .expect("pachd Deployment")["spec"]["replicas"]
        .as_i64()
        .unwrap_or(-1)
}

/// The generated secrets' values as they are live, plain and base64.
fn secret_values(env: &Env) -> Vec<String> {
    let mut values = Vec::new();
    for s in env.fake.list("v1", "secrets", Some("pachyderm")) {
        for (_, v) in s["data"].as_object().into_iter().flatten() {
            if let Some(b64) = v.as_str() {
                values.push(b64.to_string());
                use base64::Engine;
                if let Ok(plain) = base64::engine::general_purpose::STANDARD.decode(b64) {
                    values.push(String::from_utf8_lossy(&plain).into_owned());
                }
            }
        }
    }
    values.retain(|v| v.len() >= 8);
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_is_carried_out_exactly_and_holds_no_secret() {
    let env = Env::start().await;
    let (spec, file) = planned(&env, "saved").await;
    // Planning changed nothing.
    assert_eq!(pachd_log_level(&env), "info");
    let text = std::fs::read_to_string(&file).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(saved["format"], 1);
    assert_eq!(saved["stack_digest"].as_str().map(str::len), Some(64));
    let pachd = saved["plan"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "runtime.pachd")
        .expect("pachd planned");
    assert_eq!(pachd["action"], "update", "{pachd}");
    let secrets = secret_values(&env);
    assert!(!secrets.is_empty(), "the stack has generated secrets");
    for value in &secrets {
        assert!(
            !text.contains(value.as_str()),
            "a secret value is in the plan file"
        );
    }

    let up = up_with_plan(&env, &spec, &file).await;
    assert_eq!(up.code, 0, "{}", up.all());
    assert_eq!(pachd_log_level(&env), "debug");
    // Carried out: the same plan file is now stale (the state moved on).
    let again = up_with_plan(&env, &spec, &file).await;
    assert_eq!(again.code, 1, "{}", again.all());
    assert!(
        again.stderr.contains("another run changed"),
        "{}",
        again.stderr
    );
}

/// A converged stack, its file then asking for debug logs, and a saved
/// plan of that change: (stack file, plan file).
async fn planned(env: &Env, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let spec = env.stack("howdah.yaml", name, "");
    env.up_ok(&spec).await;
    let spec = env.stack("howdah.yaml", name, DEBUG_LOGS);
    let file = env.dir.path().join("up.plan");
    let plan = env
        .howdah(&["plan", "-f", path(&spec), "--out", path(&file)])
        .await;
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(
        plan.stderr.contains("--plan"),
        "says how to apply it: {}",
        plan.stderr
    );
    (spec, file)
}

async fn up_with_plan(env: &Env, spec: &std::path::Path, file: &std::path::Path) -> Run {
    env.howdah(&[
        "up",
        "-f",
        path(spec),
        "--plan",
        path(file),
        "--timeout",
        "60s",
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_is_refused_when_the_stack_file_changed() {
    let env = Env::start().await;
    let (spec, file) = planned(&env, "stale").await;
    let reviewed = std::fs::read_to_string(&spec).unwrap();
    let other = env.stack(
        "howdah.yaml",
        "stale",
        "pachyderm:\n  pachd:\n    logLevel: error\n",
    );
    let up = up_with_plan(&env, &other, &file).await;
    assert_eq!(up.code, 1, "{}", up.all());
    assert!(
        up.stderr.contains("the stack file changed"),
        "{}",
        up.stderr
    );
    assert!(up.stderr.contains("Nothing was changed"), "{}", up.stderr);
    assert_eq!(pachd_log_level(&env), "info");
    // A comment is not a change: the reviewed file with one is applied.
    std::fs::write(&spec, format!("# reviewed by ops\n{reviewed}")).unwrap();
    let up = up_with_plan(&env, &spec, &file).await;
    assert_eq!(up.code, 0, "{}", up.all());
    assert_eq!(pachd_log_level(&env), "debug");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_is_refused_when_what_is_live_moved() {
    let env = Env::start().await;
    let (spec, file) = planned(&env, "moved").await;
    // Someone scales pachd by hand after the review.
    cluster(&env)
        .merge_patch(
            howdah::runtime::cluster::kind_named("Deployment").unwrap(),
            Some("pachyderm"),
            "pachd",
            &serde_json::json!({"spec": {"replicas": 5}}),
        )
        .await
        .unwrap();
    let up = up_with_plan(&env, &spec, &file).await;
    assert_eq!(up.code, 1, "{}", up.all());
    assert!(up.stderr.contains("what is live changed"), "{}", up.stderr);
    assert!(up.stderr.contains("runtime.pachd"), "{}", up.stderr);
    assert_eq!(pachd_replicas(&env), 5, "nothing was applied");
    assert_eq!(pachd_log_level(&env), "info");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_no_plan_is_refused_before_anything_is_read() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "noplan", "");
    let up = env
        .howdah(&["up", "-f", path(&spec), "--plan", path(&spec)])
        .await;
    assert_eq!(up.code, 3, "{}", up.all());
    assert!(up.stderr.contains("not a plan file"), "{}", up.stderr);
    let both = env
        .howdah(&["plan", "-f", path(&spec), "--destroy", "--out", "x"])
        .await;
    assert_eq!(both.code, 3, "{}", both.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_shows_the_last_run_and_draws_it() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "timed", "");
    let none = env.howdah(&["timeline", "-f", path(&spec)]).await;
    assert_eq!(none.code, 1, "{}", none.all());
    assert!(
        none.stderr.contains("no run recorded yet"),
        "{}",
        none.stderr
    );
    env.up_ok(&spec).await;
    let svg = env.dir.path().join("up.svg");
    let shown = env
        .howdah(&["timeline", "-f", path(&spec), "--svg", path(&svg)])
        .await;
    assert_eq!(shown.code, 0, "{}", shown.all());
    let out = &shown.stdout;
    assert!(out.contains("Last `up` of this stack"), "{out}");
    for id in ["runtime.namespace", "runtime.pachd", "runtime.verify"] {
        assert!(out.lines().any(|l| l.contains(id)), "{id} missing:\n{out}");
    }
    // pachd waits for the database; verification for pachd: the path
    // ends with verification, and its rows are marked.
    // The path may wrap onto indented lines.
    let path_text = out
        .lines()
        .skip_while(|l| !l.starts_with("* critical path:"))
        .take_while(|l| !l.starts_with("wrote"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(path_text.ends_with("runtime.verify"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("* runtime.verify") && l.contains('█')),
        "{out}"
    );
    let doc = std::fs::read_to_string(&svg).unwrap();
    assert!(doc.starts_with("<svg"), "{doc}");
    assert!(doc.contains("runtime.pachd"), "{doc}");
}
