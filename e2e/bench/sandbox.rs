//! Figures, not pass/fail: validate and render time on the sample stack,
//! peak memory of a sandbox `up`, and the requests a no-op `up` makes.
//! Run with `cargo bench --bench sandbox`. Targets (issue #2): validate
//! < 50 ms, no-op up 0 writes and at most one read per resource, peak RSS
//! < 100 MB.

#[path = "common.rs"]
mod common;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use howdah_kube_fake::{FakeCluster, FakeOptions};

const BIN: &str = env!("CARGO_BIN_EXE_howdah");

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_command(dir: &Path, args: &[&str], runs: usize) -> Duration {
    let samples = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let out = Command::new(BIN)
                .args(args)
                .current_dir(dir)
                .output()
                .expect("howdah runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            t.elapsed()
        })
        .collect();
    median(samples)
}

/// Runs howdah and returns its peak resident set size in bytes (from
/// wait4's rusage, so it is the child's own high-water mark).
fn peak_rss(dir: &Path, args: &[&str]) -> u64 {
    let child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("howdah runs");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "up failed"
    );
    std::mem::forget(child);
    (usage.ru_maxrss as u64) * 1024
}

fn main() {
    common::print_build();
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let fake = rt
        .block_on(FakeCluster::start(FakeOptions {
            ready_delay: Duration::from_millis(200),
            ..Default::default()
        }))
        .expect("fake starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig, "bench")
        .expect("kubeconfig");
    let starter = Command::new(BIN)
        .args(["init"])
        .output()
        .expect("init")
        .stdout;
    let spec = String::from_utf8(starter)
        .expect("utf-8")
        .replace("name: my-stack", "name: bench")
        .replace("    # context: kind-kind", "    context: bench")
        .replace(
            "    # path: ~/.kube/config",
            &format!("    path: {}", kubeconfig.display()),
        );
    std::fs::write(dir.path().join("howdah.yaml"), spec).expect("stack file");

    let stack = dir.path().join("howdah.yaml");
    let t = Instant::now();
    let runs = 200;
    for _ in 0..runs {
        howdah::spec::load(&stack).expect("valid");
    }
    let in_process = t.elapsed() / runs;
    let validate = time_command(dir.path(), &["validate"], 21);
    let render = time_command(dir.path(), &["render"], 21);
    println!(
        "validate (parse + all checks, in-process): {:>8.3} ms   target < 50 ms",
        in_process.as_secs_f64() * 1e3
    );
    println!(
        "validate (whole command, median of 21):    {:>8.3} ms   target < 50 ms",
        validate.as_secs_f64() * 1e3
    );
    println!(
        "render   (whole command, median of 21):    {:>8.3} ms",
        render.as_secs_f64() * 1e3
    );

    let t = Instant::now();
    let rss = peak_rss(dir.path(), &["up", "--output", "plain", "--timeout", "60s"]);
    println!(
        "sandbox up: {:.2} s wall, peak RSS {:.1} MB   target < 100 MB",
        t.elapsed().as_secs_f64(),
        rss as f64 / 1e6
    );

    let resources =
        howdah::ops::render(&howdah::ops::Session::open(&stack, None).expect("session"))
            .expect("render")
            .len();
    fake.reset_stats();
    let t = Instant::now();
    let out = Command::new(BIN)
        .args(["up", "--output", "plain"])
        .current_dir(dir.path())
        .output()
        .expect("up");
    assert!(out.status.success());
    let stats = fake.stats();
    println!(
        "no-op up: {:.2} s, {} writes (target 0), {} reads for {} resources (target <= 1 per resource)",
        t.elapsed().as_secs_f64(),
        stats.writes,
        stats.reads,
        resources
    );
    rt.block_on(fake.shutdown());
}
