//! Interrupted runs: killed mid-up, the next up converges without
//! duplicates; a live lock stops a second run.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::*;

const NS: &str = "pachyderm";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_mid_up_then_up_converges_without_duplicates() {
    let env = Env::with(howdah_kube_fake::FakeOptions {
        ready_delay: Duration::from_millis(2000),
        ..Default::default()
    })
    .await;
    let spec = env.stack("howdah.yaml", "killed", "");
    let state_file = env.dir.path().join(".howdah/killed.state.json");
    // Kill the first run once steps are recorded in its state, the second
    // early in its own run, while it still waits on workloads.
    for (kill_when, not_before) in [("\"runtime.rbac\"", 0u64), ("\"runtime.namespace\"", 400)] {
        let mut child = tokio::process::Command::new(BIN)
            .args(["up", "-f", path(&spec), "--output", "plain"])
            .current_dir(env.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        loop {
            let text = std::fs::read_to_string(&state_file).unwrap_or_default();
            if text.contains(kill_when) && started.elapsed() >= Duration::from_millis(not_before) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the run never got that far"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "still running when killed"
        );
        child.kill().await.unwrap(); // SIGKILL: no chance to clean up
    }
    let state = std::fs::read_to_string(env.dir.path().join(".howdah/killed.state.json"))
        .expect("state written before the kill");
    assert!(state.contains("\"command\": \"up\""));

    let up = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_eq!(up.code, 0, "{}", up.all());
    assert!(
        up.all().contains("took over the lock"),
        "stale lock noticed: {}",
        up.all()
    );
    let rendered = howdah::ops::render(&howdah::ops::Session::open(&spec, None).unwrap()).unwrap();
    let wanted = |kind: &str| {
        let mut n: Vec<String> = rendered
            .iter()
            .filter(|d| d.key.kind == kind)
            .map(|d| d.key.name.clone())
            .collect();
        n.sort();
        n
    };
    let deployments = list(&env, "Deployment", Some(NS), "howdah.io/stack=killed").await;
    assert_eq!(names(&deployments), wanted("Deployment"));
    assert!(names(&deployments).contains(&"pachd".to_string()));
    let sets = list(&env, "StatefulSet", Some(NS), "howdah.io/stack=killed").await;
    assert_eq!(names(&sets), wanted("StatefulSet"));
    let claims = list(
        &env,
        "PersistentVolumeClaim",
        Some(NS),
        "howdah.io/stack=killed",
    )
    .await;
    assert_eq!(claims.len(), 2, "{:?}", names(&claims));

    // And the state file can be lost entirely: up adopts what exists.
    std::fs::remove_file(env.dir.path().join(".howdah/killed.state.json")).unwrap();
    env.fake.reset_stats();
    let adopt = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_eq!(adopt.code, 0, "{}", adopt.all());
    assert_eq!(env.fake.stats().writes, 0, "adopted, nothing re-created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_lock_stops_a_second_run() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "locked", "");
    std::fs::create_dir_all(env.dir.path().join(".howdah")).unwrap();
    let holder = serde_json::json!({
        "owner": "ci", "pid": std::process::id(), "host": std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(),
        "command": "up", "since": "2026-01-01T00:00:00Z"
    });
    std::fs::write(
        env.dir.path().join(".howdah/locked.state.json.lock"),
        holder.to_string(),
    )
    .unwrap();
    env.fake.reset_stats();
    let up = env.howdah(&["up", "-f", path(&spec)]).await;
    assert_eq!(up.code, 4, "{}", up.all());
    assert!(up.stderr.contains("state unlock"), "{}", up.stderr);
    assert_eq!(env.fake.stats().writes, 0);
    // `state unlock` will not clear it either while that run goes on
    // (state_safety.rs has what it does instead).
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_stops_at_a_safe_point_saves_state_and_up_carries_on() {
    let env = Env::with(howdah_kube_fake::FakeOptions {
        ready_delay: Duration::from_millis(1500),
        ..Default::default()
    })
    .await;
    let spec = env.stack("howdah.yaml", "term", "");
    let mut child = tokio::process::Command::new(BIN)
        .args(["up", "-f", path(&spec), "--output", "json"])
        .current_dir(env.dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Signal once workloads are being waited on (a step is in flight).
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = String::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            stdout.push_str(&line);
            stdout.push('\n');
            if line.contains("\"step_started\"") && line.contains("runtime.etcd") {
                break;
            }
        }
    })
    .await
    .expect("the run reaches etcd");
    let pid = child.id().unwrap() as i32;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            stdout.push_str(&line);
            stdout.push('\n');
        }
        child.wait().await.unwrap()
    })
    .await
    .expect("stops within the grace period");
    assert_eq!(status.code(), Some(130), "{stdout}");
    assert!(
        stdout.contains("\"event\":\"warning\"") && stdout.contains("interrupted"),
        "{stdout}"
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.dir.path().join(".howdah/term.state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["last_run"]["interrupted"], true, "{state}");
    assert!(
        !env.dir.path().join(".howdah/term.state.json.lock").exists(),
        "lock released"
    );

    let up = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_eq!(up.code, 0, "{}", up.all());
}
