//! AWS `up` schedule benchmark: moto behind e2e/aws-proxy with EKS's real
//! durations scaled from minutes to seconds (cluster 13 min → 13 s, node
//! group 4 min → 4 s, add-on 1 min → 1 s), the new cluster's Kubernetes
//! side on e2e/kube-fake. Prints `up`'s wall time against the critical-path
//! lower bound from the same latencies, the schedule a tool doing one step
//! after another would take, and how many Describe calls each wait made.
//! Target: up ≤ 1.10 × critical path (printed as met or missed; the
//! figure is not a pass/fail gate, since machine load moves it).
//!
//! Run: `cargo bench --bench aws` (needs moto: `e2e/aws/moto.sh install`).

#[path = "common.rs"]
mod common;
use std::time::{Duration, Instant};

use howdah_aws_proxy::{Moto, Proxy, ProxyOptions};
use howdah_kube_fake::{FakeCluster, FakeOptions};

const BIN: &str = env!("CARGO_BIN_EXE_howdah");

/// One minute of real EKS time is one second here.
const CLUSTER: Duration = Duration::from_secs(13);
const NODEGROUP: Duration = Duration::from_secs(4);
const ADDON: Duration = Duration::from_secs(1);
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
        // 15 s between polls of a 13-minute create, scaled like the rest.
        .env("HOWDAH_AWS_POLL_MAX_MS", "250")
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
    let proxy = Proxy::start(ProxyOptions {
        upstream: moto.url().to_string(),
        cluster_create: CLUSTER,
        cluster_delete: Duration::from_secs(8),
        nodegroup_create: NODEGROUP,
        nodegroup_delete: Duration::from_secs(5),
        addon_create: ADDON,
        addon_delete: ADDON,
        ..ProxyOptions::default()
    })
    .await
    .expect("proxy starts");

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

    // The runtime's own time on the same fake, with the cluster already
    // there: the tail of the critical path that is not an AWS latency.
    let fake = FakeCluster::start(FakeOptions {
        ready_delay: KUBE_DELAY,
        default_storage_class: false,
        ..FakeOptions::default()
    })
    .await
    .expect("fake starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("bench.yaml");
    std::fs::write(&spec, STACK).expect("stack written");
    let spec = spec.to_str().unwrap();

    let (up, _) = run(
        &["up", "-f", spec, "--timeout", "300s"],
        dir.path(),
        &proxy.url(),
        &fake.url(),
    )
    .await;
    let stats = proxy.stats();
    let describes = |op: &str| stats.count(&format!("eks:{op}"));
    let (cluster_polls, nodegroup_polls, addon_polls) = (
        describes("DescribeCluster"),
        describes("DescribeNodegroup"),
        describes("DescribeAddon"),
    );

    // The runtime alone, on a fresh fake with the same delays, through the
    // kubeconfig target: the tail of the critical path that is not an AWS
    // latency.
    let fake2 = FakeCluster::start(FakeOptions {
        ready_delay: KUBE_DELAY,
        default_storage_class: true,
        ..FakeOptions::default()
    })
    .await
    .expect("fake starts");
    let kubeconfig = dir.path().join("kubeconfig");
    fake2
        .write_kubeconfig(&kubeconfig, "bench")
        .expect("kubeconfig");
    let runtime_spec = dir.path().join("runtime.yaml");
    std::fs::write(
        &runtime_spec,
        format!(
            "name: runtime\ntarget:\n  kubeconfig: {{path: {}, context: bench}}\n",
            kubeconfig.display()
        ),
    )
    .expect("stack written");
    let (runtime_only, _) = run(
        &[
            "up",
            "-f",
            runtime_spec.to_str().unwrap(),
            "--timeout",
            "300s",
        ],
        dir.path(),
        &proxy.url(),
        &fake2.url(),
    )
    .await;

    // Critical path: cluster, then the longer of node groups (parallel)
    // and OIDC → EBS role → add-on, then the runtime.
    let aws_path = CLUSTER + NODEGROUP.max(ADDON);
    let critical = aws_path + runtime_only;
    // One step after another: every AWS wait in turn (two node groups),
    // then the runtime.
    let sequential = CLUSTER + NODEGROUP * 2 + ADDON + runtime_only;
    let ratio = up.as_secs_f64() / critical.as_secs_f64();

    println!(
        "AWS up schedule (EKS latencies scaled 1 min → 1 s; kube fake {} ms per transition)",
        KUBE_DELAY.as_millis()
    );
    println!(
        "  up, wall time                       {:>7.2} s",
        up.as_secs_f64()
    );
    println!("  critical path lower bound           {:>7.2} s  (cluster {} s + node group {} s + runtime {:.2} s)", critical.as_secs_f64(), CLUSTER.as_secs(), NODEGROUP.as_secs(), runtime_only.as_secs_f64());
    println!(
        "  one step after another              {:>7.2} s",
        sequential.as_secs_f64()
    );
    println!("  up / critical path                  {ratio:>7.3}   (target ≤ 1.10)");
    println!("  Describe calls per wait: cluster {cluster_polls}, node groups {nodegroup_polls} (2 groups), add-on {addon_polls}");
    println!(
        "  AWS calls in all: {}, of which writes: {}",
        stats.total(),
        stats.writes().iter().map(|(_, n)| n).sum::<u64>()
    );

    let (down, _) = run(
        &["down", "-f", spec, "--timeout", "300s"],
        dir.path(),
        &proxy.url(),
        &fake.url(),
    )
    .await;
    println!(
        "  down, wall time                     {:>7.2} s",
        down.as_secs_f64()
    );
    // A figure, not a gate: a loaded machine moves it by a few percent.
    println!(
        "  target up ≤ 1.10 × critical path: {}",
        if ratio <= 1.10 {
            "met"
        } else {
            "MISSED on this run"
        }
    );
}
