//! A state file or lock that is not this stack's, not this howdah's, or not
//! readable: every command that reads it says so and stops (exit 4), and
//! nothing is written unless the user says to take it over.

use crate::support::*;

/// Two stack files, `alpha` and `beta`, with one `state.path`; beta's
/// runtime in its own namespace so both can be up on one cluster.
fn two_stacks_one_state(env: &Env) -> (std::path::PathBuf, std::path::PathBuf) {
    let alpha = env.stack("alpha.yaml", "alpha", "state:\n  path: shared.state.json\n");
    let beta = env.stack(
        "beta.yaml",
        "beta",
        "pachyderm:\n  namespace: beta-ns\nstate:\n  path: shared.state.json\n",
    );
    (alpha, beta)
}

fn assert_refused(run: &Run, what: &str, wanted: &[&str]) {
    assert_eq!(run.code, 4, "{what}: {}", run.all());
    for w in wanted {
        assert!(
            run.stderr.contains(w),
            "{what}: no `{w}` in: {}",
            run.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_state_file_of_another_stack_is_refused_until_taken_over() {
    let env = Env::start().await;
    let (alpha, beta) = two_stacks_one_state(&env);
    env.up_ok(&alpha).await;
    let state_path = env.dir.path().join("shared.state.json");
    let before = std::fs::read(&state_path).expect("alpha's state");

    env.fake.reset_stats();
    for args in [
        vec!["plan", "-f", path(&beta)],
        vec!["plan", "-f", path(&beta), "--destroy"],
        vec!["status", "-f", path(&beta)],
        vec!["up", "-f", path(&beta), "--timeout", "60s"],
        vec!["down", "-f", path(&beta), "--timeout", "60s"],
    ] {
        let run = env.howdah(&args).await;
        // Both names: what the state file says and what the stack file says.
        assert_refused(&run, args[0], &["`alpha`", "`beta`", "--take-over-state"]);
        assert_eq!(
            std::fs::read(&state_path).unwrap(),
            before,
            "{} rewrote alpha's state",
            args[0]
        );
    }
    assert_eq!(env.fake.stats().writes, 0, "nothing written to the cluster");

    // Told to, `up` takes the state file over and says so.
    let up = env.up_ok_with(&beta, &["--take-over-state"]).await;
    assert!(up.all().contains("alpha"), "{}", up.all());
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    assert_eq!(state["stack"], "beta");
    // ...and from then on it is beta's, and alpha is the one refused.
    let plan = env.howdah(&["plan", "-f", path(&beta)]).await;
    assert_eq!(plan.code, 0, "{}", plan.all());
    let plan = env.howdah(&["plan", "-f", path(&alpha)]).await;
    assert_refused(&plan, "plan alpha", &["`alpha`", "`beta`"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_state_file_of_another_target_is_refused() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "moved", "");
    env.up_ok(&spec).await;
    let state_path = env.dir.path().join(".howdah/moved.state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    state["target"] = "aws".into();
    std::fs::write(&state_path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    let before = std::fs::read(&state_path).unwrap();

    for command in ["plan", "status", "up"] {
        let run = env.howdah(&[command, "-f", path(&spec)]).await;
        assert_refused(&run, command, &["`aws`", "`kubeconfig`"]);
        assert_eq!(std::fs::read(&state_path).unwrap(), before);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_state_file_from_a_newer_howdah_is_always_refused() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "future", "");
    env.up_ok(&spec).await;
    let state_path = env.dir.path().join(".howdah/future.state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    state["format"] = 99.into();
    std::fs::write(&state_path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    let before = std::fs::read(&state_path).unwrap();

    for args in [
        vec!["plan", "-f", path(&spec)],
        vec!["status", "-f", path(&spec)],
        vec!["up", "-f", path(&spec), "--timeout", "60s"],
        vec![
            "up",
            "-f",
            path(&spec),
            "--timeout",
            "60s",
            "--take-over-state",
        ],
        vec!["down", "-f", path(&spec), "--take-over-state"],
        vec!["state", "show", "-f", path(&spec)],
    ] {
        let run = env.howdah(&args).await;
        assert_refused(
            &run,
            &args.join(" "),
            &["written by a newer howdah; upgrade"],
        );
        assert_eq!(std::fs::read(&state_path).unwrap(), before);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_on_a_corrupt_state_file_stops_as_up_does() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "corrupt", "");
    std::fs::create_dir_all(env.dir.path().join(".howdah")).unwrap();
    let state_path = env.dir.path().join(".howdah/corrupt.state.json");
    std::fs::write(&state_path, "{\"format\": 1, \"stack\": ").unwrap();

    let up = env.howdah(&["up", "-f", path(&spec)]).await;
    for args in [
        vec!["plan", "-f", path(&spec)],
        vec!["plan", "-f", path(&spec), "--destroy"],
    ] {
        let plan = env.howdah(&args).await;
        assert_eq!(plan.code, up.code, "{}", plan.all());
        assert_refused(
            &plan,
            "plan",
            &[state_path.to_str().unwrap(), "is not valid"],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_lock_file_names_itself_and_how_to_remove_it() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "garbled", "");
    std::fs::create_dir_all(env.dir.path().join(".howdah")).unwrap();
    let lock = env.dir.path().join(".howdah/garbled.state.json.lock");
    std::fs::write(&lock, "\u{0}\u{0}not a lock").unwrap();

    env.fake.reset_stats();
    let up = env.howdah(&["up", "-f", path(&spec)]).await;
    assert_refused(
        &up,
        "up",
        &[
            "unreadable",
            lock.to_str().unwrap(),
            "howdah state unlock -f",
        ],
    );
    assert_eq!(env.fake.stats().writes, 0);

    // What the message says works.
    let unlock = env.howdah(&["state", "unlock", "-f", path(&spec)]).await;
    assert_eq!(unlock.code, 0, "{}", unlock.all());
    assert!(!lock.exists(), "the unreadable lock is gone");
    let plan = env.howdah(&["plan", "-f", path(&spec)]).await;
    assert_eq!(plan.code, 0, "{}", plan.all());
}

fn write_lock(env: &Env, stack: &str, pid: u32, host: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(env.dir.path().join(".howdah")).unwrap();
    let lock = env
        .dir
        .path()
        .join(format!(".howdah/{stack}.state.json.lock"));
    let holder = serde_json::json!({
        "owner": "ci", "pid": pid, "host": host,
        "command": "up", "since": chrono::Utc::now().to_rfc3339(),
    });
    std::fs::write(&lock, holder.to_string()).unwrap();
    lock
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_refuses_the_lock_of_a_live_run_on_this_host() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "busy", "");
    // A live process on this host holds the lock: this test.
    let pid = std::process::id();
    let lock = write_lock(&env, "busy", pid, &this_host());
    let text = std::fs::read(&lock).unwrap();

    for args in [
        vec!["state", "unlock", "-f", path(&spec)],
        vec!["state", "unlock", "-f", path(&spec), "--force"],
    ] {
        let unlock = env.howdah(&args).await;
        assert_refused(
            &unlock,
            &args.join(" "),
            &[&format!("pid {pid}"), "`up`", "wait"],
        );
        assert_eq!(std::fs::read(&lock).unwrap(), text, "the lock is kept");
    }
    let up = env.howdah(&["up", "-f", path(&spec)]).await;
    assert_eq!(up.code, 4, "{}", up.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_of_a_lock_held_on_another_host_needs_force() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "remote", "");
    let lock = write_lock(&env, "remote", 4242, "build-7.example.internal");

    let unlock = env.howdah(&["state", "unlock", "-f", path(&spec)]).await;
    assert_refused(
        &unlock,
        "unlock",
        &["build-7.example.internal", "--force", "two runs"],
    );
    assert!(lock.exists(), "the lock is kept");

    let forced = env
        .howdah(&["state", "unlock", "-f", path(&spec), "--force"])
        .await;
    assert_eq!(forced.code, 0, "{}", forced.all());
    assert!(!lock.exists(), "the lock is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_removes_the_lock_of_a_run_that_is_gone() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "gone", "");
    let lock = write_lock(&env, "gone", u32::MAX - 1, &this_host());
    let unlock = env.howdah(&["state", "unlock", "-f", path(&spec)]).await;
    assert_eq!(unlock.code, 0, "{}", unlock.all());
    assert!(unlock.stdout.contains("pid"), "{}", unlock.stdout);
    assert!(!lock.exists());
}
