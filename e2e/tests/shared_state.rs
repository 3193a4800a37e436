//! Shared state in S3 (`state.url`, `--state s3://…`): the real binary on
//! the kubeconfig target against the Kubernetes fake, with only the state
//! and its lock in moto (the AWS emulator, started per test) in a bucket
//! made beforehand, as a team would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use howdah_aws_proxy::Moto;
use howdah_kube_fake::{FakeCluster, FakeOptions};

use crate::support::{path, Env, Run, BIN};

const BUCKET: &str = "team-howdah-state";
const REGION: &str = "us-east-1";

fn state_url() -> String {
    format!("s3://{BUCKET}/ci/stacks?region={REGION}")
}

fn state_key(stack: &str) -> String {
    format!("ci/stacks/{stack}.state.json")
}

struct Shared {
    env: Env,
    moto: Moto,
    s3: aws_sdk_s3::Client,
}

impl Shared {
    async fn start() -> Shared {
        Shared::on(Env::start().await).await
    }

    /// With a cluster whose workloads take `delay` to become ready, so a
    /// run lasts long enough to be interfered with.
    async fn slow(delay: Duration) -> Shared {
        let fake = FakeCluster::start(FakeOptions {
            ready_delay: delay,
            ..FakeOptions::default()
        })
        .await
        .expect("fake cluster starts");
        Shared::on(Env::on(fake)).await
    }

    async fn on(env: Env) -> Shared {
        let moto = Moto::start()
            .await
            .expect("moto starts (install it with `e2e/aws/moto.sh install`)");
        let sdk = crate::support::moto_sdk(moto.url(), REGION).await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .expect("state bucket created");
        Shared { env, moto, s3 }
    }

    /// A stack file keeping its state at [`state_url`].
    fn stack(&self, name: &str) -> PathBuf {
        self.env.stack(
            &format!("{name}.yaml"),
            name,
            &format!("state:\n  url: {}\n", state_url()),
        )
    }

    fn command(&self, dir: &Path, args: &[&str], ttl_secs: Option<u64>) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(BIN);
        c.args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("USER", "tester")
            .env("HOWDAH_OUTPUT", "plain")
            .env("AWS_ENDPOINT_URL", self.moto.url())
            .env("AWS_ACCESS_KEY_ID", "AKIDHOWDAHSTATE")
            .env("AWS_SECRET_ACCESS_KEY", "emulator-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(ttl) = ttl_secs {
            c.env("HOWDAH_STATE_LOCK_TTL_SECS", ttl.to_string());
        }
        c
    }

    async fn howdah_in(&self, dir: &Path, args: &[&str]) -> Run {
        Run::from(
            self.command(dir, args, None)
                .output()
                .await
                .expect("howdah runs"),
        )
    }

    async fn howdah(&self, args: &[&str]) -> Run {
        self.howdah_in(self.env.dir.path(), args).await
    }

    async fn object(&self, key: &str) -> Option<Vec<u8>> {
        match self.s3.get_object().bucket(BUCKET).key(key).send().await {
            Ok(out) => Some(out.body.collect().await.unwrap().into_bytes().to_vec()),
            Err(_) => None,
        }
    }

    async fn put(&self, key: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(body.into())
            .send()
            .await
            .expect("object written");
    }

    async fn state(&self, stack: &str) -> serde_json::Value {
        let bytes = self
            .object(&state_key(stack))
            .await
            .expect("a state object");
        serde_json::from_slice(&bytes).expect("state is JSON")
    }

    /// Waits until the object exists (a run has got that far).
    async fn wait_for(&self, key: &str, what: &str) -> Vec<u8> {
        for _ in 0..400 {
            if let Some(bytes) = self.object(key).await {
                return bytes;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{what} never appeared at {key}");
    }
}

fn lock_of(host: &str, expires_in: chrono::Duration) -> Vec<u8> {
    let now = chrono::Utc::now();
    serde_json::to_vec(&serde_json::json!({
        "owner": "ci-runner", "pid": 4242, "host": host, "command": "up",
        "since": (now - chrono::Duration::minutes(10)).to_rfc3339(),
        "expires": (now + expires_in).to_rfc3339(),
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_ups_on_one_shared_stack_one_runs_and_the_other_exits_4_naming_it() {
    let shared = Shared::start().await;
    let spec = shared.stack("race");
    let args = ["up", "-f", path(&spec), "--timeout", "60s"];
    let dir = shared.env.dir.path();
    let (a, b) = tokio::join!(
        shared.command(dir, &args, None).output(),
        shared.command(dir, &args, None).output()
    );
    let (a, b) = (Run::from(a.unwrap()), Run::from(b.unwrap()));
    let mut codes = [a.code, b.code];
    codes.sort();
    assert_eq!(
        codes,
        [0, 4],
        "one runs, one is refused:\n{}\n{}",
        a.all(),
        b.all()
    );
    let refused = if a.code == 4 { &a } else { &b };
    // S3 lets exactly one If-None-Match create of the lock succeed; moto
    // checks and writes without a lock of its own, so two creates in the
    // same instant can both pass there. The state's conditional write is
    // the second guard: the run that lost is refused by it, nothing lost.
    let lock_refused = refused.stderr.contains("stack is locked by tester (pid")
        && refused.stderr.contains("`up` since")
        && refused.stderr.contains("expires");
    let write_refused = refused.stderr.contains("was changed by another run")
        && refused.stderr.contains("it was not overwritten");
    assert!(
        lock_refused || write_refused,
        "the holder is named, or the second guard says why: {}",
        refused.stderr
    );
    // The winner's records are there, its lock is gone, nothing local.
    let state = shared.state("race").await;
    assert_eq!(state["last_run"]["ok"], true, "{state}");
    assert!(shared
        .object(&format!("{}.lock", state_key("race")))
        .await
        .is_none());
    assert!(!dir.join(".howdah").exists(), "no local state file");
    let head = shared
        .s3
        .head_object()
        .bucket(BUCKET)
        .key(state_key("race"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption().map(|e| e.as_str()),
        Some("AES256"),
        "the state is encrypted at rest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_shared_lock_stops_up_and_an_expired_one_is_taken_over() {
    let shared = Shared::start().await;
    let spec = shared.stack("held");
    let lock_key = format!("{}.lock", state_key("held"));

    // Held elsewhere and renewed: refused, and unlock needs --force.
    let live = lock_of("build-7.example.internal", chrono::Duration::minutes(2));
    shared.put(&lock_key, live.clone()).await;
    let up = shared
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_eq!(up.code, 4, "{}", up.all());
    assert!(
        up.stderr
            .contains("ci-runner (pid 4242 on build-7.example.internal"),
        "{}",
        up.stderr
    );
    let unlock = shared.howdah(&["state", "unlock", "-f", path(&spec)]).await;
    assert_eq!(unlock.code, 4, "{}", unlock.all());
    assert!(unlock.stderr.contains("--force"), "{}", unlock.stderr);
    assert_eq!(
        shared.object(&lock_key).await,
        Some(live),
        "the lock is kept"
    );

    // Its holder stopped renewing it: the next run takes it over, says
    // whose it was, and completes.
    shared
        .put(
            &lock_key,
            lock_of("build-7.example.internal", chrono::Duration::seconds(-5)),
        )
        .await;
    let up = shared
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_eq!(up.code, 0, "{}", up.all());
    assert!(
        up.all().contains("took over the lock")
            && up
                .all()
                .contains("ci-runner (pid 4242 on build-7.example.internal"),
        "the warning names the old holder: {}",
        up.all()
    );
    assert!(
        shared.object(&lock_key).await.is_none(),
        "released at the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_holder_is_taken_over_once_its_lock_expires() {
    // Long enough for the second run to start within it on a busy machine.
    const TTL: u64 = 5;
    let shared = Shared::slow(Duration::from_millis(1500)).await;
    let spec = shared.stack("killed");
    let lock_key = format!("{}.lock", state_key("killed"));
    let dir = shared.env.dir.path();
    let args = ["up", "-f", path(&spec), "--timeout", "60s"];
    let mut first = shared.command(dir, &args, Some(TTL)).spawn().unwrap();
    shared.wait_for(&lock_key, "the first run's lock").await;
    let pid = first.id().unwrap() as i32;
    // SAFETY: signalling a child process of this test.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = first.wait().await;
    assert!(
        shared.object(&lock_key).await.is_some(),
        "kill -9 leaves the lock"
    );

    // At once: the lock is still within its time to live.
    let early = Run::from(
        shared
            .command(dir, &args, Some(TTL))
            .output()
            .await
            .unwrap(),
    );
    assert_eq!(early.code, 4, "{}", early.all());
    assert!(
        early.stderr.contains(&format!("pid {pid}")),
        "{}",
        early.stderr
    );

    tokio::time::sleep(Duration::from_secs(TTL) + Duration::from_millis(500)).await;
    let after = Run::from(
        shared
            .command(dir, &args, Some(TTL))
            .output()
            .await
            .unwrap(),
    );
    assert_eq!(after.code, 0, "{}", after.all());
    assert!(
        after.all().contains("took over the lock") && after.all().contains(&format!("pid {pid}")),
        "{}",
        after.all()
    );
    assert_eq!(shared.state("killed").await["last_run"]["ok"], true);
    assert!(shared.object(&lock_key).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_run_renews_its_lock_so_it_is_not_taken_over() {
    // ttl 1 s; the run takes several: without renewal the second run
    // would find the lock expired and take it over.
    let shared = Shared::slow(Duration::from_millis(1500)).await;
    let spec = shared.stack("renewed");
    let lock_key = format!("{}.lock", state_key("renewed"));
    let dir = shared.env.dir.path();
    let args = ["up", "-f", path(&spec), "--timeout", "60s"];
    let first = shared.command(dir, &args, Some(1)).spawn().unwrap();
    shared.wait_for(&lock_key, "the first run's lock").await;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let second = Run::from(shared.command(dir, &args, Some(1)).output().await.unwrap());
    let first = Run::from(first.wait_with_output().await.unwrap());
    assert_eq!(first.code, 0, "{}", first.all());
    assert_eq!(
        second.code,
        4,
        "the live run kept its lock: {}",
        second.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn down_on_another_machine_finds_the_state_remotely() {
    let shared = Shared::start().await;
    let spec = shared.stack("handoff");
    let up = shared
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_eq!(up.code, 0, "{}", up.all());

    // Another machine: a fresh directory with only the stack file, the
    // state named on the command line instead.
    let other = tempfile::tempdir().unwrap();
    let copy = other.path().join("howdah.yaml");
    let text = std::fs::read_to_string(&spec).unwrap();
    let without_state = text.split("state:").next().unwrap().to_string();
    std::fs::write(&copy, without_state).unwrap();
    let url = state_url();
    let show = shared
        .howdah_in(
            other.path(),
            &["state", "show", "-f", path(&copy), "--state", &url],
        )
        .await;
    assert_eq!(show.code, 0, "{}", show.all());
    assert!(
        show.stdout.contains("runtime.pachd") && show.stdout.contains("last run: `up`"),
        "the first machine's records are seen: {}",
        show.stdout
    );
    let down = shared
        .howdah_in(
            other.path(),
            &[
                "down",
                "-f",
                path(&copy),
                "--state",
                &url,
                "--timeout",
                "60s",
            ],
        )
        .await;
    assert_eq!(down.code, 0, "{}", down.all());
    let state = shared.state("handoff").await;
    assert_eq!(state["last_run"]["command"], "down");
    assert_eq!(state["last_run"]["ok"], true);
    assert!(
        !other.path().join(".howdah").exists(),
        "no local state made"
    );
    let pachd = crate::support::get(&shared.env, "Deployment", Some("pachyderm"), "pachd").await;
    assert!(pachd.is_none(), "down removed the runtime");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_show_pull_and_push_round_trip_and_push_refuses_what_is_not_this_stacks() {
    let shared = Shared::start().await;
    let spec = shared.stack("trip");
    let up = shared
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_eq!(up.code, 0, "{}", up.all());
    let dir = shared.env.dir.path();

    let show = shared.howdah(&["state", "show", "-f", path(&spec)]).await;
    assert_eq!(show.code, 0, "{}", show.all());
    for wanted in [
        "stack `trip` on target `kubeconfig`",
        &format!("at s3://{BUCKET}/{}", state_key("trip")),
        "last run: `up`",
        ": ok",
        "resources (",
        "runtime.pachd",
        "lock: none",
    ] {
        assert!(
            show.stdout.contains(wanted),
            "no `{wanted}` in:\n{}",
            show.stdout
        );
    }

    let pulled = shared.howdah(&["state", "pull", "-f", path(&spec)]).await;
    assert_eq!(pulled.code, 0, "{}", pulled.all());
    assert_eq!(
        pulled.stdout.as_bytes(),
        shared.object(&state_key("trip")).await.unwrap(),
        "pull prints the state as stored"
    );
    let file = dir.join("pulled.json");
    let to_file = shared
        .howdah(&["state", "pull", "-f", path(&spec), "--out", path(&file)])
        .await;
    assert_eq!(to_file.code, 0, "{}", to_file.all());

    // Edited and pushed back: that is the state now.
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    state["resources"]
        .as_object_mut()
        .unwrap()
        .remove("runtime.verify");
    std::fs::write(&file, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    let push = shared
        .howdah(&["state", "push", "-f", path(&spec), path(&file)])
        .await;
    assert_eq!(push.code, 0, "{}", push.all());
    let now = shared.state("trip").await;
    assert_eq!(now["resources"], state["resources"]);
    assert!(
        shared
            .object(&format!("{}.lock", state_key("trip")))
            .await
            .is_none(),
        "push released its lock"
    );

    // Another stack's state, or one from a newer howdah: refused, and
    // the state there is left as it was.
    let before = shared.object(&state_key("trip")).await;
    let mut other = state.clone();
    other["stack"] = "someone-else".into();
    let other_file = dir.join("other.json");
    std::fs::write(&other_file, other.to_string()).unwrap();
    let refused = shared
        .howdah(&["state", "push", "-f", path(&spec), path(&other_file)])
        .await;
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(
        refused.stderr.contains("`someone-else`") && refused.stderr.contains("`trip`"),
        "{}",
        refused.stderr
    );
    let mut newer = state.clone();
    newer["format"] = 99.into();
    std::fs::write(&other_file, newer.to_string()).unwrap();
    let refused = shared
        .howdah(&["state", "push", "-f", path(&spec), path(&other_file)])
        .await;
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(
        refused.stderr.contains("newer howdah"),
        "{}",
        refused.stderr
    );
    assert_eq!(shared.object(&state_key("trip")).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_state_changed_underneath_a_run_is_not_overwritten_and_the_error_says_so() {
    let shared = Shared::slow(Duration::from_millis(1500)).await;
    let spec = shared.stack("changed");
    let key = state_key("changed");
    let dir = shared.env.dir.path();
    let run = shared
        .command(dir, &["up", "-f", path(&spec), "--timeout", "60s"], None)
        .spawn()
        .unwrap();
    // The run has written its first record; someone else writes now.
    let first = shared.wait_for(&key, "the run's first state").await;
    let mut theirs: serde_json::Value = serde_json::from_slice(&first).unwrap();
    theirs["last_run"]["command"] = "someone else's up".into();
    let theirs = serde_json::to_vec_pretty(&theirs).unwrap();
    shared.put(&key, theirs.clone()).await;
    let run = Run::from(run.wait_with_output().await.unwrap());
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(
        run.all().contains(&format!("s3://{BUCKET}/{key}"))
            && run.all().contains("changed by another run")
            && run.all().contains("not overwritten"),
        "{}",
        run.all()
    );
    assert_eq!(
        shared.object(&key).await,
        Some(theirs),
        "their write is kept"
    );
    assert!(
        shared.object(&format!("{key}.lock")).await.is_none(),
        "the lock is released after the error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_state_bucket_is_a_clear_error_before_anything_is_done() {
    let shared = Shared::start().await;
    let spec = shared.env.stack(
        "nobucket.yaml",
        "nobucket",
        &format!("state:\n  url: s3://no-such-state-bucket/x?region={REGION}\n"),
    );
    shared.env.fake.reset_stats();
    let up = shared
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_ne!(up.code, 0, "{}", up.all());
    assert!(
        up.stderr.contains("`no-such-state-bucket` does not exist")
            && up.stderr.contains("howdah does not create it"),
        "{}",
        up.stderr
    );
    assert_eq!(
        shared.env.fake.stats().writes,
        0,
        "nothing written to the cluster"
    );

    let bad = shared
        .howdah(&["plan", "-f", path(&spec), "--state", "s3://Bad_Bucket/x"])
        .await;
    assert_eq!(bad.code, 3, "{}", bad.all());
    assert!(bad.stderr.contains("--state"), "{}", bad.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_pull_and_push_work_on_the_local_state_file_too() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "local", "");
    env.up_ok(&spec).await;
    let file = env.dir.path().join(".howdah/local.state.json");

    let show = env.howdah(&["state", "show", "-f", path(&spec)]).await;
    assert_eq!(show.code, 0, "{}", show.all());
    assert!(
        show.stdout.contains(&format!("at {}", file.display()))
            && show.stdout.contains("runtime.pachd")
            && show.stdout.contains("lock: none"),
        "{}",
        show.stdout
    );
    let pulled = env.howdah(&["state", "pull", "-f", path(&spec)]).await;
    assert_eq!(pulled.stdout.as_bytes(), std::fs::read(&file).unwrap());

    let mut state: serde_json::Value = serde_json::from_str(&pulled.stdout).unwrap();
    state["last_run"]["command"] = "down".into();
    let edited = env.dir.path().join("edited.json");
    std::fs::write(&edited, state.to_string()).unwrap();
    let push = env
        .howdah(&["state", "push", "-f", path(&spec), path(&edited)])
        .await;
    assert_eq!(push.code, 0, "{}", push.all());
    let now: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(now["last_run"]["command"], "down");
    assert!(!env
        .dir
        .path()
        .join(".howdah/local.state.json.lock")
        .exists());
}
