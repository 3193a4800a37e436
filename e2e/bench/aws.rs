//! AWS schedule benchmark: moto behind e2e/aws-proxy, the new cluster's
//! Kubernetes side on e2e/kube-fake. It reports three things apart, since
//! scaling EKS's waits (minutes → seconds) but not howdah's own calls would
//! mix them in one ratio:
//!
//! (a) howdah's own overhead: `up` and `down` with every cloud delay 0,
//!     less the runtime's own time on the same fake;
//! (b) detection lag per wait: how long after the proxy made a cluster or
//!     node group ACTIVE (or gone) howdah's Describe first saw it, with
//!     EKS's durations and howdah's poll schedule both scaled 1 min → 1 s,
//!     so 1 ms here is 60 ms of real time;
//! (c) the projected real-world `up` and `down` from (a) and (b) against
//!     their critical paths at EKS's real durations.
//!
//! Targets (printed as met or missed, never a gate: machine load moves
//! them): projected up ≤ 1.02 × critical path, detection lag ≤ 5 s real
//! per wait, the scaled `down` ≤ 1.10 × its own critical path. The scaled
//! `up` against its critical path is printed as before.
//!
//! Run: `cargo bench --bench aws` (needs moto: `e2e/aws/moto.sh install`).

#[path = "common.rs"]
mod common;
use std::time::{Duration, Instant};

use howdah_aws_proxy::{Detection, Moto, Proxy, ProxyOptions};
use howdah_kube_fake::{FakeCluster, FakeOptions};

const BIN: &str = env!("CARGO_BIN_EXE_howdah");

/// One minute of real EKS time is one second here.
const CLUSTER: Duration = Duration::from_secs(13);
const NODEGROUP: Duration = Duration::from_secs(4);
const ADDON: Duration = Duration::from_secs(1);
const NODEGROUP_DELETE: Duration = Duration::from_secs(5);
const CLUSTER_DELETE: Duration = Duration::from_secs(8);
/// Real time per second of scaled time.
const SCALE: f64 = 60.0;
/// The kube fake's per-transition delay (pods starting, claims binding).
const KUBE_DELAY: Duration = Duration::from_millis(200);

const STACK: &str = "name: bench
target:
  aws: {region: us-east-1}
cluster:
  nodePools:
    - {name: default, machineType: m5.large, min: 2, max: 4}
    - {name: gpu, machineType: m5.xlarge, min: 0, max: 2}
storage: {dataPolicy: delete}
";

/// Runs howdah against the proxy and a kube fake; returns the wall time.
async fn run(args: &[&str], dir: &std::path::Path, proxy: &str, kube: &str) -> (Duration, String) {
    let start = Instant::now();
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("HOWDAH_OUTPUT", "plain")
        .env("AWS_ENDPOINT_URL", proxy)
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOWDAH_KUBE_ENDPOINT", kube)
        // howdah's usual EKS durations and poll schedule, scaled like the
        // proxy's waits (a minute is a second).
        .env("HOWDAH_AWS_TIME_SCALE", "60")
        .output()
        .await
        .expect("howdah runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "howdah {args:?} failed:\n{text}");
    (start.elapsed(), text)
}

#[tokio::main]
async fn main() {
    common::print_build();
    let moto = Moto::start()
        .await
        .expect("moto starts (e2e/aws/moto.sh install)");
    // moto loads the AWS-managed IAM policies on its first IAM call
    // (seconds): an emulator start-up cost, paid before measuring.
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(moto.url())
        .credentials_provider(aws_credential_types::Credentials::new(
            "w", "w", None, None, "bench",
        ))
        .load()
        .await;
    aws_sdk_iam::Client::new(&sdk)
        .list_roles()
        .send()
        .await
        .expect("moto answers IAM");
    let dir = tempfile::tempdir().expect("temp dir");

    // The runtime alone, through the kubeconfig target on a fake with the
    // same delays: the part of every figure that is not AWS.
    let runtime_fake = fake(true).await;
    let kubeconfig = dir.path().join("kubeconfig");
    runtime_fake
        .write_kubeconfig(&kubeconfig, "bench")
        .expect("kubeconfig");
    let runtime_spec = write(
        dir.path(),
        "runtime.yaml",
        &format!(
            "name: runtime\ntarget:\n  kubeconfig: {{path: {}, context: bench}}\n",
            kubeconfig.display()
        ),
    );
    let none = "http://127.0.0.1:9"; // the kubeconfig target calls no AWS
    let (runtime_up, _) = run(
        &up_args(&runtime_spec),
        dir.path(),
        none,
        &runtime_fake.url(),
    )
    .await;
    let (runtime_down, _) = run(
        &down_args(&runtime_spec),
        dir.path(),
        none,
        &runtime_fake.url(),
    )
    .await;

    // (a) Every cloud delay 0: what is left is howdah (and moto).
    let instant = Proxy::start(ProxyOptions {
        upstream: moto.url().to_string(),
        ..ProxyOptions::default()
    })
    .await
    .expect("proxy starts");
    let zero_fake = fake(false).await;
    let zero_spec = write(
        dir.path(),
        "zero.yaml",
        &STACK.replace("name: bench", "name: zero"),
    );
    let (zero_up, _) = run(
        &up_args(&zero_spec),
        dir.path(),
        &instant.url(),
        &zero_fake.url(),
    )
    .await;
    let (zero_down, _) = run(
        &down_args(&zero_spec),
        dir.path(),
        &instant.url(),
        &zero_fake.url(),
    )
    .await;
    let overhead_up = zero_up.saturating_sub(runtime_up);
    let overhead_down = zero_down.saturating_sub(runtime_down);

    // (b) EKS's durations and the poll schedule scaled 1 min → 1 s.
    let proxy = Proxy::start(ProxyOptions {
        upstream: moto.url().to_string(),
        cluster_create: CLUSTER,
        cluster_delete: CLUSTER_DELETE,
        nodegroup_create: NODEGROUP,
        nodegroup_delete: NODEGROUP_DELETE,
        addon_create: ADDON,
        addon_delete: ADDON,
        ..ProxyOptions::default()
    })
    .await
    .expect("proxy starts");
    let scaled_fake = fake(false).await;
    let spec = write(dir.path(), "bench.yaml", STACK);
    let (up, _) = run(
        &up_args(&spec),
        dir.path(),
        &proxy.url(),
        &scaled_fake.url(),
    )
    .await;
    let stats = proxy.stats();
    let describes = |op: &str| stats.count(&format!("eks:{op}"));
    let (cluster_polls, nodegroup_polls, addon_polls) = (
        describes("DescribeCluster"),
        describes("DescribeNodegroup"),
        describes("DescribeAddon"),
    );
    let up_detections = proxy.detections();
    let (down, _) = run(
        &down_args(&spec),
        dir.path(),
        &proxy.url(),
        &scaled_fake.url(),
    )
    .await;
    let down_detections: Vec<Detection> = proxy
        .detections()
        .into_iter()
        .skip(up_detections.len())
        .collect();

    // Critical paths. up: the cluster, then the longer of the node groups
    // (in parallel) and OIDC → EBS role → add-on, then the runtime. down:
    // the runtime, the node groups (in parallel), the cluster.
    let critical_up = CLUSTER + NODEGROUP.max(ADDON) + runtime_up;
    let critical_down = runtime_down + NODEGROUP_DELETE + CLUSTER_DELETE;
    let sequential = CLUSTER + NODEGROUP * 2 + ADDON + runtime_up;
    let ratio_up = ratio(up, critical_up);
    let ratio_down = ratio(down, critical_down);

    println!(
        "AWS schedule (moto behind the proxy; kube fake {} ms per transition)",
        KUBE_DELAY.as_millis()
    );
    println!("(a) howdah's own overhead, every cloud delay 0");
    println!("  up                                  {:>7.2} s  (runtime alone {:.2} s; AWS side {:.2} s)", secs(zero_up), secs(runtime_up), secs(overhead_up));
    println!("  down                                {:>7.2} s  (runtime alone {:.2} s; AWS side {:.2} s)", secs(zero_down), secs(runtime_down), secs(overhead_down));
    println!("(b) detection lag per wait (EKS durations and polls scaled 1 min → 1 s; real = ×60)");
    let lag_target = Duration::from_secs(5);
    let mut worst = Duration::ZERO;
    for d in up_detections.iter().chain(&down_detections) {
        let real = d.lag.mul_f64(SCALE);
        worst = worst.max(real);
        println!(
            "  {:<18} {:<22} {:>6} ms → {:>5.1} s real",
            d.what,
            d.name,
            d.lag.as_millis(),
            secs(real)
        );
    }
    println!(
        "  worst {:.1} s real per wait (target ≤ {} s): {}",
        secs(worst),
        lag_target.as_secs(),
        met(worst <= lag_target)
    );
    // (c) Real EKS durations, howdah's overhead as measured, and the lag
    // of the waits on the critical path (the cluster, then the later node
    // group; in down the later node group, then the cluster).
    let lag_of = |ds: &[Detection], what: &str| -> Duration {
        ds.iter()
            .filter(|d| d.what == what)
            .map(|d| d.lag)
            .max()
            .unwrap_or_default()
            .mul_f64(SCALE)
    };
    let real = |d: Duration| d.mul_f64(SCALE);
    let real_critical_up = real(CLUSTER + NODEGROUP.max(ADDON)) + runtime_up;
    let projected_up = real_critical_up
        + overhead_up
        + lag_of(&up_detections, "cluster create")
        + lag_of(&up_detections, "nodegroup create");
    let real_critical_down = runtime_down + real(NODEGROUP_DELETE + CLUSTER_DELETE);
    let projected_down = real_critical_down
        + overhead_down
        + lag_of(&down_detections, "nodegroup delete")
        + lag_of(&down_detections, "cluster delete");
    let projected_ratio = ratio(projected_up, real_critical_up);
    println!("(c) projected real-world schedule (EKS cluster 13 min, node group 4 min; delete 5 + 8 min)");
    println!(
        "  up    {:>7.1} s against a critical path of {:>7.1} s: {:.3}  (target ≤ 1.02): {}",
        secs(projected_up),
        secs(real_critical_up),
        projected_ratio,
        met(projected_ratio <= 1.02)
    );
    let projected_down_ratio = ratio(projected_down, real_critical_down);
    println!(
        "  down  {:>7.1} s against a critical path of {:>7.1} s: {:.3}  (target ≤ 1.10): {}",
        secs(projected_down),
        secs(real_critical_down),
        projected_down_ratio,
        met(projected_down_ratio <= 1.10)
    );
    println!("scaled runs (both kinds of time scaled together, as before)");
    println!("  up, wall time                       {:>7.2} s", secs(up));
    println!(
        "  critical path lower bound           {:>7.2} s  (cluster {} s + node group {} s + runtime {:.2} s)",
        secs(critical_up),
        CLUSTER.as_secs(),
        NODEGROUP.as_secs(),
        secs(runtime_up)
    );
    println!(
        "  one step after another              {:>7.2} s",
        secs(sequential)
    );
    println!(
        "  up / critical path                  {ratio_up:>7.3}   (target ≤ 1.10): {}",
        met(ratio_up <= 1.10)
    );
    println!("  down, wall time                     {:>7.2} s  against its critical path {:.2} s (runtime {:.2} s + node groups {} s + cluster {} s): {ratio_down:.3} (target ≤ 1.10): {}", secs(down), secs(critical_down), secs(runtime_down), NODEGROUP_DELETE.as_secs(), CLUSTER_DELETE.as_secs(), met(ratio_down <= 1.10));
    println!("  Describe calls per wait: cluster {cluster_polls}, node groups {nodegroup_polls} (2 groups), add-on {addon_polls}");
    println!(
        "  AWS calls in up: {}, of which writes: {}",
        stats.total(),
        stats.writes().iter().map(|(_, n)| n).sum::<u64>()
    );
}

async fn fake(default_storage_class: bool) -> FakeCluster {
    FakeCluster::start(FakeOptions {
        ready_delay: KUBE_DELAY,
        default_storage_class,
        ..FakeOptions::default()
    })
    .await
    .expect("fake starts")
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("stack written");
    path.to_str().expect("utf-8 path").to_string()
}

fn up_args(spec: &str) -> Vec<&str> {
    vec!["up", "-f", spec, "--timeout", "300s"]
}

fn down_args(spec: &str) -> Vec<&str> {
    vec!["down", "-f", spec, "--timeout", "300s"]
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// A figure, not a gate: a loaded machine moves it by a few percent.
fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED on this run"
    }
}
