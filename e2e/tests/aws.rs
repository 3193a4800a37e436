//! The AWS path end to end: the real binary against moto (the AWS
//! emulator, started per test) behind e2e/aws-proxy (a test double that
//! adds EKS's CREATING/DELETING phases, the add-on API moto lacks,
//! throttling and auth failures), with the created cluster's Kubernetes
//! side sent to e2e/kube-fake through `HOWDAH_KUBE_ENDPOINT`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use howdah_aws_proxy::{Moto, Proxy, ProxyOptions, Stats};
use howdah_kube_fake::{FakeCluster, FakeOptions};

use crate::support::{path, Run, BIN};

const REGION: &str = "us-east-1";

pub struct AwsEnv {
    pub moto: Moto,
    pub proxy: Proxy,
    pub fake: FakeCluster,
    pub dir: tempfile::TempDir,
}

/// EKS phases long enough to be seen, short enough for a test.
pub fn phases() -> ProxyOptions {
    ProxyOptions {
        cluster_create: Duration::from_millis(1500),
        cluster_delete: Duration::from_millis(600),
        nodegroup_create: Duration::from_millis(800),
        nodegroup_delete: Duration::from_millis(500),
        addon_create: Duration::from_millis(400),
        addon_delete: Duration::from_millis(300),
        ..ProxyOptions::default()
    }
}

impl AwsEnv {
    pub async fn start(opts: ProxyOptions) -> AwsEnv {
        let moto = Moto::start()
            .await
            .expect("moto starts (install it with `e2e/aws/moto.sh install`)");
        let proxy = Proxy::start(ProxyOptions {
            upstream: moto.url().to_string(),
            ..opts
        })
        .await
        .expect("proxy starts");
        let fake = FakeCluster::start(FakeOptions {
            ready_delay: Duration::from_millis(150),
            default_storage_class: false,
            ..FakeOptions::default()
        })
        .await
        .expect("fake cluster starts");
        let dir = tempfile::tempdir().expect("temp dir");
        AwsEnv {
            moto,
            proxy,
            fake,
            dir,
        }
    }

    /// A stack file on the aws target with `body` below the target.
    pub fn stack(&self, name: &str, body: &str) -> PathBuf {
        let text = format!("name: {name}\ntarget:\n  aws: {{region: {REGION}}}\n{body}");
        let p = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&p, text).expect("stack written");
        p
    }

    pub fn command(&self, args: &[&str], access_key: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(BIN);
        c.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("HOWDAH_OUTPUT", "plain")
            .env("AWS_ENDPOINT_URL", self.proxy.url())
            .env("AWS_ACCESS_KEY_ID", access_key)
            .env("AWS_SECRET_ACCESS_KEY", "emulator-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("HOWDAH_KUBE_ENDPOINT", self.fake.url())
            .env("HOWDAH_AWS_POLL_MAX_MS", "100")
            .kill_on_drop(true);
        c
    }

    pub async fn howdah(&self, args: &[&str]) -> Run {
        self.howdah_as(args, "AKIDHOWDAHTEST").await
    }

    pub async fn howdah_as(&self, args: &[&str], access_key: &str) -> Run {
        Run::from(
            self.command(args, access_key)
                .output()
                .await
                .expect("howdah runs"),
        )
    }

    pub async fn up_ok(&self, spec: &Path) -> Run {
        let up = self
            .howdah(&["up", "-f", path(spec), "--timeout", "120s"])
            .await;
        assert_eq!(up.code, 0, "up failed:\n{}", up.all());
        up
    }

    /// `down --delete-data --yes`, which must succeed.
    pub async fn down_delete_data_ok(&self, spec: &Path) -> Run {
        let down = self
            .howdah(&[
                "down",
                "-f",
                path(spec),
                "--delete-data",
                "--yes",
                "--timeout",
                "120s",
            ])
            .await;
        assert_eq!(down.code, 0, "down --delete-data failed:\n{}", down.all());
        down
    }

    /// SDK configuration straight to moto (not through the proxy, so
    /// assertions do not count as the product's calls).
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        crate::support::moto_sdk(self.moto.url(), REGION).await
    }

    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let sdk = self.sdk().await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        )
    }

    /// Buckets, VPCs tagged with the stack, EKS clusters and IAM roles in
    /// the emulated account, for "nothing duplicated / nothing left".
    pub async fn inventory(&self, stack: &str) -> Inventory {
        let sdk = self.sdk().await;
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let ours = || {
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:howdah.io/stack")
                .values(stack)
                .build()
        };
        let vpcs = ec2
            .describe_vpcs()
            .filters(ours())
            .send()
            .await
            .expect("describe vpcs");
        let subnets = ec2
            .describe_subnets()
            .filters(ours())
            .send()
            .await
            .expect("describe subnets");
        let buckets = self
            .s3()
            .await
            .list_buckets()
            .send()
            .await
            .expect("list buckets");
        let eks = aws_sdk_eks::Client::new(&sdk);
        let clusters = eks.list_clusters().send().await.expect("list clusters");
        let nodegroups = match clusters.clusters().first() {
            Some(c) => eks
                .list_nodegroups()
                .cluster_name(c)
                .send()
                .await
                .map(|n| n.nodegroups().to_vec())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let iam = aws_sdk_iam::Client::new(&sdk);
        let roles = iam.list_roles().send().await.expect("list roles");
        let oidc = iam
            .list_open_id_connect_providers()
            .send()
            .await
            .expect("list oidc");
        Inventory {
            vpcs: vpcs.vpcs().len(),
            subnets: subnets.subnets().len(),
            buckets: buckets
                .buckets()
                .iter()
                .filter_map(|b| b.name().map(str::to_string))
                .collect(),
            clusters: clusters.clusters().to_vec(),
            nodegroups,
            roles: roles
                .roles()
                .iter()
                .map(|r| r.role_name().to_string())
                .filter(|n| n.starts_with("howdah-"))
                .collect(),
            oidc_providers: oidc.open_id_connect_provider_list().len(),
        }
    }
}

#[derive(Debug, PartialEq)]
pub struct Inventory {
    pub vpcs: usize,
    pub subnets: usize,
    pub buckets: Vec<String>,
    pub clusters: Vec<String>,
    pub nodegroups: Vec<String>,
    pub roles: Vec<String>,
    pub oidc_providers: usize,
}

impl Inventory {
    fn empty(&self) -> bool {
        self.vpcs == 0
            && self.subnets == 0
            && self.buckets.is_empty()
            && self.clusters.is_empty()
            && self.roles.is_empty()
            && self.oidc_providers == 0
    }
}

/// Calls that change something (everything but reads).
pub fn writes(stats: &Stats) -> Vec<String> {
    stats
        .writes()
        .into_iter()
        .map(|(k, n)| format!("{k}×{n}"))
        .collect()
}

const STACK: &str = "storage:\n  dataPolicy: delete\ncluster:\n  nodePools:\n    - {name: default, machineType: m5.large, min: 1, max: 3}\n    - {name: batch, machineType: m5.xlarge, min: 0, max: 2, spot: true}\n";

#[tokio::test(flavor = "multi_thread")]
async fn aws_empty_to_verified_to_empty() {
    let env = AwsEnv::start(phases()).await;
    let spec = env.stack("ml", STACK);
    let up = env.up_ok(&spec).await;
    let out = up.all();
    // The cluster was seen CREATING and waited for, with an estimate.
    assert!(out.contains("CREATING (about"), "{out}");
    // The summary says how to reach the new cluster with kubectl.
    assert!(
        out.contains(&format!("howdah kubeconfig -f {}", path(&spec))),
        "{out}"
    );
    assert!(out.contains("runtime.verify"), "{out}");
    // Node groups were created in parallel: both started before either finished.
    let pos = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("{needle} in\n{out}"))
    };
    assert!(pos("aws.nodegroup.batch: create started") < pos("aws.nodegroup.default: create done"));
    assert!(pos("aws.nodegroup.default: create started") < pos("aws.nodegroup.batch: create done"));
    let inv = env.inventory("ml").await;
    assert_eq!((inv.vpcs, inv.subnets), (1, 2), "{inv:?}");
    assert_eq!(inv.clusters, vec!["howdah-ml".to_string()]);
    let mut ngs = inv.nodegroups.clone();
    ngs.sort();
    assert_eq!(ngs, vec!["batch".to_string(), "default".to_string()]);
    assert_eq!(inv.buckets.len(), 1, "{inv:?}");
    assert!(inv.buckets[0].starts_with("ml-pachyderm-"), "{inv:?}");

    // The runtime got the IRSA role on both service accounts, the bucket
    // in the AMAZON backend, and the gp3 class; no static key anywhere.
    let fake_sa = crate::support::get_at(
        &env.fake,
        "ServiceAccount",
        Some("pachyderm"),
        "pachyderm-worker",
    )
    .await;
    let arn = fake_sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        .as_str()
        .expect("role annotation")
        .to_string();
    assert!(arn.ends_with(":role/howdah-ml-pachyderm"), "{arn}");
    let class = crate::support::get_at(&env.fake, "StorageClass", None, "gp3").await;
    assert_eq!(
        class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    let storage = crate::support::get_at(
        &env.fake,
        "Secret",
        Some("pachyderm"),
        "pachyderm-storage-secret",
    )
    .await;
    assert!(
        storage["data"].get("AWS_SECRET_ACCESS_KEY").is_none(),
        "{storage}"
    );

    // The role trusts only the two service accounts, and grants only the bucket.
    let iam = aws_sdk_iam::Client::new(&env.sdk().await);
    let role = iam
        .get_role()
        .role_name("howdah-ml-pachyderm")
        .send()
        .await
        .unwrap();
    let trust = urlencoding_decode(role.role().unwrap().assume_role_policy_document().unwrap());
    assert!(
        trust.contains("system:serviceaccount:pachyderm:pachyderm\""),
        "{trust}"
    );
    assert!(
        trust.contains("system:serviceaccount:pachyderm:pachyderm-worker"),
        "{trust}"
    );
    let policy = iam
        .get_role_policy()
        .role_name("howdah-ml-pachyderm")
        .policy_name("howdah")
        .send()
        .await
        .unwrap();
    let policy = urlencoding_decode(policy.policy_document());
    assert!(
        policy.contains(&format!("arn:aws:s3:::{}/*", inv.buckets[0])),
        "{policy}"
    );

    let status = env.howdah(&["status", "-f", path(&spec)]).await;
    assert_eq!(status.code, 0, "status:\n{}", status.all());

    // A converged stack: no AWS writes, no Kubernetes writes.
    env.proxy.reset_stats();
    env.fake.reset_stats();
    let again = env.up_ok(&spec).await;
    assert!(
        again.all().contains("No changes") || again.all().contains("0 to create"),
        "{}",
        again.all()
    );
    let aws_writes = writes(&env.proxy.stats());
    assert!(
        aws_writes.is_empty(),
        "second up wrote to AWS: {aws_writes:?}"
    );
    assert_eq!(env.fake.stats().writes, 0, "second up wrote to the cluster");

    let down = env
        .howdah(&["down", "-f", path(&spec), "--timeout", "120s"])
        .await;
    assert_eq!(down.code, 0, "down failed:\n{}", down.all());
    let d = down.all();
    // In-cluster first, then node groups, then the cluster, then the network.
    assert!(
        pos_in(&d, "runtime.pachd: delete done") < pos_in(&d, "aws.nodegroup.default: delete done"),
        "{d}"
    );
    assert!(
        pos_in(&d, "aws.nodegroup.default: delete done")
            < pos_in(&d, "aws.eks_cluster: delete done"),
        "{d}"
    );
    assert!(
        pos_in(&d, "aws.eks_cluster: delete done") < pos_in(&d, "aws.network: delete done"),
        "{d}"
    );
    let inv = env.inventory("ml").await;
    assert!(inv.empty(), "left behind: {inv:?}");
}

fn pos_in(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in\n{text}"))
}

fn urlencoding_decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_plan_on_an_empty_account_lists_every_object_and_policy() {
    let env = AwsEnv::start(phases()).await;
    let spec = env.stack("pl", STACK);
    let plan = env.howdah(&["plan", "-f", path(&spec), "--json"]).await;
    assert_eq!(plan.code, 0, "{}", plan.all());
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan JSON");
    let items = json["items"].as_array().expect("items");
    let created: Vec<&str> = items
        .iter()
        .filter(|i| i["action"] == "create")
        .filter_map(|i| i["id"].as_str())
        .collect();
    for id in [
        "aws.network",
        "aws.iam.cluster_role",
        "aws.iam.node_role",
        "aws.s3_bucket",
        "aws.eks_cluster",
        "aws.oidc_provider",
        "aws.iam.ebs_csi_role",
        "aws.addon.ebs_csi",
        "aws.iam.runtime_role",
        "aws.nodegroup.default",
        "aws.nodegroup.batch",
        "aws.storage_class",
        "runtime.pachd",
    ] {
        assert!(
            created.contains(&id),
            "{id} not planned for creation: {created:?}"
        );
    }
    let text = plan.stdout.clone();
    assert!(
        text.contains("AmazonEKSClusterPolicy"),
        "managed policies shown"
    );
    assert!(text.contains("s3:PutObject"), "the bucket policy is shown");
    // Planning wrote nothing.
    assert!(
        writes(&env.proxy.stats()).is_empty(),
        "{:?}",
        env.proxy.stats()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_bad_credentials_fail_clearly_and_create_nothing() {
    let env = AwsEnv::start(ProxyOptions {
        reject_access_keys: vec!["AKIDREVOKED".into()],
        expired_access_keys: vec!["AKIDEXPIRED".into()],
        ..phases()
    })
    .await;
    let spec = env.stack("creds", STACK);
    let bad = env
        .howdah_as(&["up", "-f", path(&spec)], "AKIDREVOKED")
        .await;
    assert_eq!(bad.code, 1, "{}", bad.all());
    assert!(
        bad.stderr.contains("credentials are not valid"),
        "{}",
        bad.stderr
    );
    let expired = env
        .howdah_as(&["up", "-f", path(&spec)], "AKIDEXPIRED")
        .await;
    assert_eq!(expired.code, 1, "{}", expired.all());
    assert!(expired.stderr.contains("expired"), "{}", expired.stderr);
    assert!(
        !expired.all().contains("emulator-secret"),
        "the secret key leaked"
    );

    // A profile that does not exist is named as such.
    let spec2 = env.dir.path().join("profile.yaml");
    std::fs::write(
        &spec2,
        "name: prof\ntarget:\n  aws: {region: us-east-1, profile: nosuchprofile}\n",
    )
    .unwrap();
    let mut cmd = env.command(&["up", "-f", path(&spec2)], "AKIDHOWDAHTEST");
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let out = cmd.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("AWS profile `nosuchprofile` is not defined"),
        "{stderr}"
    );

    // An unknown region is refused offline.
    let spec3 = env.dir.path().join("region.yaml");
    std::fs::write(&spec3, "name: reg\ntarget:\n  aws: {region: us-east-7}\n").unwrap();
    let region = env.howdah(&["up", "-f", path(&spec3)]).await;
    assert_eq!(region.code, 3, "{}", region.all());

    let w = writes(&env.proxy.stats());
    assert!(w.is_empty(), "something was created: {w:?}");
    assert!(env.inventory("creds").await.empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_throttling_on_a_tenth_of_calls_still_converges() {
    let env = AwsEnv::start(ProxyOptions {
        throttle_percent: 10,
        error_percent: 2,
        seed: 7,
        ..phases()
    })
    .await;
    let spec = env.stack("thr", STACK);
    env.up_ok(&spec).await;
    let down = env
        .howdah(&["down", "-f", path(&spec), "--timeout", "120s"])
        .await;
    assert_eq!(down.code, 0, "down failed:\n{}", down.all());
    let stats = env.proxy.stats();
    assert!(stats.throttled > 10, "throttling was injected: {stats:?}");
    assert!(env.inventory("thr").await.empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_retained_bucket_with_data_is_kept_and_reported() {
    let env = AwsEnv::start(phases()).await;
    let spec = env.stack(
        "keep",
        "storage:\n  bucket: {name: keep-data-bucket}\n  dataPolicy: retain\ncluster:\n  nodePools:\n    - {name: default, machineType: m5.large, min: 1, max: 2}\n",
    );
    env.up_ok(&spec).await;
    env.s3()
        .await
        .put_object()
        .bucket("keep-data-bucket")
        .key("pfs/object-1")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"data"))
        .send()
        .await
        .expect("object written");
    let down = env
        .howdah(&["down", "-f", path(&spec), "--timeout", "120s"])
        .await;
    assert_eq!(down.code, 0, "retained data is not a leak:\n{}", down.all());
    assert!(down.all().contains("KEPT"), "{}", down.all());
    assert!(down.all().contains("keep-data-bucket"), "{}", down.all());
    let inv = env.inventory("keep").await;
    assert_eq!(inv.buckets, vec!["keep-data-bucket".to_string()]);
    assert!(
        inv.clusters.is_empty() && inv.roles.is_empty() && inv.vpcs == 0,
        "{inv:?}"
    );
    let obj = env
        .s3()
        .await
        .get_object()
        .bucket("keep-data-bucket")
        .key("pfs/object-1")
        .send()
        .await;
    assert!(obj.is_ok(), "the data survived");
    // And a later delete-data down removes it, versions and all.
    env.down_delete_data_ok(&spec).await;
    assert!(env.inventory("keep").await.buckets.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_killed_during_up_and_down_converges_without_duplicates() {
    let env = AwsEnv::start(ProxyOptions {
        cluster_create: Duration::from_millis(3000),
        ..phases()
    })
    .await;
    let spec = env.stack("kill", STACK);
    // Kill points: early (network/IAM), while the cluster is CREATING,
    // while node groups are CREATING.
    for (wait_for, label) in [
        ("aws.network: creating VPC", "network"),
        ("CREATING", "cluster creating"),
        ("aws.nodegroup.default: creating", "node groups creating"),
    ] {
        kill_when(
            &env,
            &["up", "-f", path(&spec), "--timeout", "120s"],
            wait_for,
            label,
        )
        .await;
    }
    env.up_ok(&spec).await;
    let inv = env.inventory("kill").await;
    assert_eq!(
        (
            inv.vpcs,
            inv.subnets,
            inv.clusters.len(),
            inv.oidc_providers
        ),
        (1, 2, 1, 1),
        "{inv:?}"
    );
    assert_eq!(inv.buckets.len(), 1, "{inv:?}");
    // Kill down while the node groups are being deleted; the rerun finishes.
    kill_when(
        &env,
        &["down", "-f", path(&spec), "--timeout", "120s"],
        "aws.nodegroup.default: DELETING",
        "down",
    )
    .await;
    let down = env
        .howdah(&["down", "-f", path(&spec), "--timeout", "120s"])
        .await;
    assert_eq!(down.code, 0, "{}", down.all());
    assert!(env.inventory("kill").await.empty());
}

/// Starts howdah, SIGKILLs it once `needle` shows in its output.
async fn kill_when(env: &AwsEnv, args: &[&str], needle: &str, label: &str) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = env
        .command(args, "AKIDHOWDAHTEST")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("howdah starts");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut errs = BufReader::new(stderr).lines();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            tokio::select! {
                l = lines.next_line() => match l { Ok(Some(l)) if l.contains(needle) => return true, Ok(Some(_)) => {}, _ => return false },
                l = errs.next_line() => match l { Ok(Some(l)) if l.contains(needle) => return true, Ok(Some(_)) => {}, _ => return false },
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(found, "never saw `{needle}` ({label})");
    child.kill().await.expect("killed");
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_static_keys_go_to_a_secret_and_nowhere_else() {
    let env = AwsEnv::start(phases()).await;
    let spec = env.stack(
        "keys",
        "pachyderm: {identity: keys}\nstorage: {dataPolicy: delete}\ncluster:\n  nodePools:\n    - {name: default, machineType: m5.large, min: 1, max: 2}\n",
    );
    let up = env.up_ok(&spec).await;
    let secret = crate::support::get_at(
        &env.fake,
        "Secret",
        Some("pachyderm"),
        "howdah-storage-keys",
    )
    .await;
    let b64 = secret["data"]["AWS_SECRET_ACCESS_KEY"]
        .as_str()
        .expect("secret key stored");
    use base64::Engine as _;
    let key = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    assert!(!key.is_empty());
    let state = std::fs::read_to_string(env.dir.path().join(".howdah/keys.state.json")).unwrap();
    assert!(
        !state.contains(&key) && !up.all().contains(&key),
        "the key leaked"
    );
    let storage = crate::support::get_at(
        &env.fake,
        "Secret",
        Some("pachyderm"),
        "pachyderm-storage-secret",
    )
    .await;
    assert_eq!(
        storage["data"]["AWS_SECRET_ACCESS_KEY"], b64,
        "workers read the same key"
    );
    // No IRSA role for the runtime when keys are used.
    let iam = aws_sdk_iam::Client::new(&env.sdk().await);
    assert!(iam
        .get_role()
        .role_name("howdah-keys-pachyderm")
        .send()
        .await
        .is_err());
    let down = env
        .howdah(&["down", "-f", path(&spec), "--timeout", "120s"])
        .await;
    assert_eq!(down.code, 0, "{}", down.all());
    assert!(
        iam.get_user()
            .user_name("howdah-keys-pachyderm")
            .send()
            .await
            .is_err(),
        "user removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_kubeconfig_names_howdah_as_the_credentials_plugin() {
    let env = AwsEnv::start(phases()).await;
    let spec = env.stack("kc", STACK);
    env.up_ok(&spec).await;
    let out = env.dir.path().join("kube.yaml");
    let kc = env
        .howdah(&["kubeconfig", "-f", path(&spec), "--out", path(&out)])
        .await;
    assert_eq!(kc.code, 0, "{}", kc.all());
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains(BIN), "exec command is howdah: {text}");
    assert!(text.contains("howdah-kc"), "{text}");
    // The plugin works: it prints an ExecCredential with an EKS token.
    let token = env
        .howdah(&["token", "--cluster", "howdah-kc", "--region", REGION])
        .await;
    assert_eq!(token.code, 0, "{}", token.all());
    let cred: serde_json::Value = serde_json::from_str(&token.stdout).unwrap();
    assert!(cred["status"]["token"]
        .as_str()
        .unwrap()
        .starts_with("k8s-aws-v1."));
    assert!(!token.stdout.contains("emulator-secret"));
}

/// A cluster EKS could not make (FAILED) is unhealthy everywhere: `up`
/// fails on it, `plan` says so instead of "no-op", and `status` never
/// shows it healthy.
#[tokio::test(flavor = "multi_thread")]
async fn aws_a_failed_cluster_is_never_reported_healthy() {
    let env = AwsEnv::start(ProxyOptions {
        clusters_fail: true,
        ..phases()
    })
    .await;
    let spec = env.stack("failing", STACK);
    let up = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_eq!(up.code, 1, "{}", up.all());
    assert!(up.all().contains("FAILED"), "{}", up.all());

    let plan = env.howdah(&["plan", "-f", path(&spec)]).await;
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(plan.all().contains("is FAILED"), "{}", plan.all());

    let status = env.howdah(&["status", "-f", path(&spec)]).await;
    assert_ne!(status.code, 0, "{}", status.all());
    let all = status.all();
    let eks: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("aws.eks_cluster"))
        .map(str::trim)
        .collect();
    assert!(!eks.is_empty(), "{}", status.all());
    assert!(
        eks.iter().all(|l| !l.contains("healthy")),
        "a FAILED cluster shown healthy: {eks:?}"
    );
}

/// A cluster whose node group is gone is not healthy: `status` shows the
/// group missing and the "nodes are in" mark (aws.cluster_cloud_objects)
/// not healthy, and `plan` makes the group again instead of saying no-op.
#[tokio::test(flavor = "multi_thread")]
async fn aws_a_cluster_without_its_node_group_is_not_healthy() {
    let env = AwsEnv::start(phases()).await;
    let spec = env.stack(
        "nonodes",
        "storage: {dataPolicy: delete}\ncluster:\n  nodePools:\n    - {name: default, machineType: m5.large, min: 1, max: 2}\n",
    );
    env.up_ok(&spec).await;
    // The node group goes behind howdah's back (straight to moto).
    aws_sdk_eks::Client::new(&env.sdk().await)
        .delete_nodegroup()
        .cluster_name("howdah-nonodes")
        .nodegroup_name("default")
        .send()
        .await
        .expect("node group deleted");

    let status = env.howdah(&["status", "-f", path(&spec)]).await;
    assert_ne!(status.code, 0, "{}", status.all());
    let all = status.all();
    for id in ["aws.nodegroup.default", "aws.cluster_cloud_objects"] {
        let line = all
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} not in\n{all}"));
        assert!(
            !line.contains('✓') && !line.contains("healthy"),
            "{id} shown healthy without its node group: {line}"
        );
    }
    assert!(all.contains("node group default"), "{all}");

    let plan = env.howdah(&["plan", "-f", path(&spec), "--json"]).await;
    assert_eq!(plan.code, 0, "{}", plan.all());
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan JSON");
    let action = |id: &str| {
        json["items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["id"] == id))
            .map(|i| i["action"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(action("aws.nodegroup.default").as_deref(), Some("create"));
    assert_ne!(
        action("aws.cluster_cloud_objects").as_deref(),
        Some("no-op")
    );
}

/// Against an endpoint without the EKS add-on API (moto itself, no proxy)
/// the failure names the operation and what a bare 404 means, never
/// `HTTP 404: ` with nothing after it.
#[tokio::test(flavor = "multi_thread")]
async fn aws_an_endpoint_without_the_addon_api_is_named_as_such() {
    let env = AwsEnv::start(phases()).await;
    let spec = env.stack(
        "noaddons",
        "storage: {dataPolicy: delete}\ncluster:\n  nodePools:\n    - {name: default, machineType: m5.large, min: 1, max: 2}\n",
    );
    let mut cmd = env.command(
        &["up", "-f", path(&spec), "--timeout", "60s"],
        "AKIDHOWDAHTEST",
    );
    cmd.env("AWS_ENDPOINT_URL", env.moto.url());
    let up = Run::from(cmd.output().await.expect("howdah runs"));
    assert_eq!(up.code, 1, "{}", up.all());
    let all = up.all();
    let line = all
        .lines()
        .find(|l| l.contains("aws-ebs-csi-driver (eks:"))
        .unwrap_or_else(|| panic!("the add-on operation is not named:\n{all}"));
    assert!(line.contains("does not serve this API"), "{line}");
    assert!(
        !all.contains("HTTP 404: \n") && !all.trim_end().ends_with("HTTP 404:"),
        "{all}"
    );
}

const ONE_POOL: &str = "storage: {dataPolicy: delete}\ncluster:\n  nodePools:\n    - {name: default, machineType: m5.large, min: 1, max: 2}\n";

/// Objects of `kind` tagged with the stack, counted straight in moto.
async fn tagged_ec2(env: &AwsEnv, stack: &str) -> (usize, usize) {
    let ec2 = aws_sdk_ec2::Client::new(&env.sdk().await);
    let ours = aws_sdk_ec2::types::Filter::builder()
        .name("tag:howdah.io/stack")
        .values(stack)
        .build();
    let igws = ec2
        .describe_internet_gateways()
        .filters(ours.clone())
        .send()
        .await
        .expect("describe internet gateways");
    let tables = ec2
        .describe_route_tables()
        .filters(ours)
        .send()
        .await
        .expect("describe route tables");
    (igws.internet_gateways().len(), tables.route_tables().len())
}

/// Creates whose answer is lost after AWS carried them out (a 5xx, or a
/// connection closed before the answer) are not sent blindly again: the
/// retry reads by tag first, so `up` ends with exactly one of each, and
/// the OIDC provider it made is recognised as its own.
#[tokio::test(flavor = "multi_thread")]
async fn aws_lost_create_responses_make_exactly_one_of_each() {
    use howdah_aws_proxy::Scripted;
    let env = AwsEnv::start(phases()).await;
    let spec = env.stack("lost", ONE_POOL);
    for op in [
        "ec2:CreateVpc",
        "ec2:CreateSubnet",
        "ec2:CreateInternetGateway",
        "iam:CreateOpenIDConnectProvider",
    ] {
        env.proxy.script(op, Scripted::LoseResponse, 1);
    }
    env.proxy
        .script("ec2:CreateRouteTable", Scripted::DropConnection, 1);
    // Not creates, but their retries meet what the lost call did.
    for op in ["ec2:AttachInternetGateway", "ec2:AssociateRouteTable"] {
        env.proxy.script(op, Scripted::LoseResponse, 1);
    }
    let up = env.up_ok(&spec).await;
    assert!(!up.all().contains("not tagged"), "{}", up.all());
    let inv = env.inventory("lost").await;
    assert_eq!(
        (inv.vpcs, inv.subnets, inv.oidc_providers),
        (1, 2, 1),
        "{inv:?}"
    );
    assert_eq!(
        tagged_ec2(&env, "lost").await,
        (1, 1),
        "gateways, route tables"
    );
    let stats = env.proxy.stats();
    for op in [
        "ec2:CreateVpc",
        "ec2:CreateInternetGateway",
        "ec2:CreateRouteTable",
    ] {
        assert_eq!(
            stats.count(op),
            1,
            "{op} sent again after it was made: {stats:?}"
        );
    }
    assert_eq!(stats.count("ec2:CreateSubnet"), 2, "{stats:?}");

    env.proxy.reset_stats();
    let again = env.up_ok(&spec).await;
    assert!(writes(&env.proxy.stats()).is_empty(), "{}", again.all());
    let down = env
        .howdah(&["down", "-f", path(&spec), "--timeout", "120s"])
        .await;
    assert_eq!(down.code, 0, "{}", down.all());
    assert!(env.inventory("lost").await.empty());
    assert_eq!(tagged_ec2(&env, "lost").await, (0, 0));
}

/// Tags of a bucket, straight from moto (empty when it has none).
async fn bucket_tags(env: &AwsEnv, bucket: &str) -> Vec<(String, String)> {
    match env
        .s3()
        .await
        .get_bucket_tagging()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(t) => t
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A bucket named in the stack file, made but not yet tagged when the run
/// stopped (tagging refused, or the run killed between CreateBucket and
/// PutBucketTagging), is this stack's: `down --delete-data` removes it, and
/// the next `up` tags it and converges, instead of calling it foreign.
#[tokio::test(flavor = "multi_thread")]
async fn aws_a_named_bucket_left_untagged_is_still_the_stacks() {
    use howdah_aws_proxy::Scripted;
    let env = AwsEnv::start(phases()).await;
    let spec = env.stack(
        "half",
        "storage:\n  bucket: {name: half-made-bucket}\n  dataPolicy: retain\ncluster:\n  nodePools:\n    - {name: default, machineType: m5.large, min: 1, max: 2}\n",
    );
    let refuse = || Scripted::Refuse {
        status: 403,
        code: "AccessDenied".into(),
        message: "Access Denied".into(),
    };
    // Refused: the bucket is made, its tags are not.
    env.proxy.script("s3:PutBucketTagging", refuse(), 1000);
    let up = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_eq!(up.code, 1, "{}", up.all());
    assert!(bucket_tags(&env, "half-made-bucket").await.is_empty());
    env.proxy.script("s3:PutBucketTagging", refuse(), 0);
    env.down_delete_data_ok(&spec).await;
    let inv = env.inventory("half").await;
    assert!(inv.empty(), "left behind: {inv:?}");

    // Killed while the tagging call goes unanswered.
    env.proxy
        .script("s3:PutBucketTagging", Scripted::DropConnection, 1000);
    let mut child = env
        .command(
            &["up", "-f", path(&spec), "--timeout", "60s"],
            "AKIDHOWDAHTEST",
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("howdah starts");
    let started = std::time::Instant::now();
    while env.proxy.stats().count("s3:PutBucketTagging") == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never tagged the bucket"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().await.expect("killed");
    env.proxy
        .script("s3:PutBucketTagging", Scripted::DropConnection, 0);
    assert!(bucket_tags(&env, "half-made-bucket").await.is_empty());
    let up = env.up_ok(&spec).await;
    assert!(!up.all().contains("not tagged"), "{}", up.all());
    let tags = bucket_tags(&env, "half-made-bucket").await;
    assert!(
        tags.contains(&("howdah.io/stack".to_string(), "half".to_string())),
        "tagging was completed: {tags:?}"
    );
    env.down_delete_data_ok(&spec).await;
    assert!(env.inventory("half").await.empty());
}

/// A `down --delete-data` that fails lists what is left with what AWS says
/// of it, apart from any command, and asks to run the same command again
/// with the real stack file, not to add `--delete-data` it already had.
#[tokio::test(flavor = "multi_thread")]
async fn aws_a_failed_down_says_what_is_left_and_to_run_it_again() {
    use howdah_aws_proxy::Scripted;
    let env = AwsEnv::start(phases()).await;
    let spec = env.stack("stuck", ONE_POOL);
    env.up_ok(&spec).await;
    env.proxy.script(
        "eks:DeleteCluster",
        Scripted::Refuse {
            status: 403,
            code: "AccessDeniedException".into(),
            message: "not allowed to delete clusters".into(),
        },
        1000,
    );
    let down = env
        .howdah(&[
            "down",
            "-f",
            path(&spec),
            "--delete-data",
            "--yes",
            "--timeout",
            "60s",
        ])
        .await;
    assert_eq!(down.code, 1, "{}", down.all());
    let all = down.all();
    let cluster = all
        .lines()
        .find(|l| l.contains("LEFT") && l.contains("aws.eks_cluster"))
        .unwrap_or_else(|| panic!("the cluster is not listed:\n{all}"));
    assert!(cluster.contains("ACTIVE"), "{cluster}");
    assert!(!cluster.contains("remove with"), "{cluster}");
    assert!(!all.contains("<stack file>"), "{all}");
    assert!(
        !all.contains("remove with: howdah down"),
        "a command to run again is not a per-object hint: {all}"
    );
    assert!(
        all.contains(&format!(
            "run the same command again (`howdah down -f {} --delete-data`)",
            path(&spec)
        )),
        "{all}"
    );
}

/// A bucket of someone else's with the stack file's bucket name is never
/// taken for a half-made one of the stack's: not without an intent, and
/// not by an intent recorded long before it was made.
#[tokio::test(flavor = "multi_thread")]
async fn aws_someone_elses_bucket_is_not_claimed_by_an_old_intent() {
    let env = AwsEnv::start(phases()).await;
    let spec = env.stack(
        "claim",
        "storage:\n  bucket: {name: someone-elses-bucket}\ncluster:\n  nodePools:\n    - {name: default, machineType: m5.large, min: 1, max: 2}\n",
    );
    env.s3()
        .await
        .create_bucket()
        .bucket("someone-elses-bucket")
        .send()
        .await
        .expect("bucket made");
    let plan = env.howdah(&["plan", "-f", path(&spec)]).await;
    assert_ne!(plan.code, 0, "{}", plan.all());
    assert!(
        plan.all().contains("not tagged howdah.io/stack=claim"),
        "{}",
        plan.all()
    );

    std::fs::create_dir_all(env.dir.path().join(".howdah")).unwrap();
    let state = serde_json::json!({
        "format": 1, "stack": "claim", "target": "aws",
        "updated_at": "2020-01-01T00:00:00Z", "resources": {},
        "intents": [{"resource": "aws.s3_bucket", "kind": "s3.bucket",
                     "name": "someone-elses-bucket", "at": "2020-01-01T00:00:00Z"}]
    });
    std::fs::write(
        env.dir.path().join(".howdah/claim.state.json"),
        state.to_string(),
    )
    .unwrap();
    for args in [
        vec!["up", "-f", path(&spec), "--timeout", "60s"],
        vec!["down", "-f", path(&spec), "--delete-data", "--yes"],
    ] {
        let run = env.howdah(&args).await;
        assert_ne!(run.code, 0, "{}", run.all());
        assert!(
            run.all().contains("not tagged howdah.io/stack=claim"),
            "{}",
            run.all()
        );
    }
    let inv = env.inventory("claim").await;
    assert_eq!(
        inv.buckets,
        vec!["someone-elses-bucket".to_string()],
        "{inv:?}"
    );
    assert!(inv.clusters.is_empty() && inv.vpcs == 0, "{inv:?}");
}

/// After a lost CreateOpenIDConnectProvider answer, IAM may not show the
/// new provider at once (here: GetOpenIDConnectProvider says NoSuchEntity
/// for a while), so the create goes again and meets EntityAlreadyExists.
/// That is resolved by reading the provider's tags: it is the stack's own,
/// not "not tagged howdah.io/stack".
#[tokio::test(flavor = "multi_thread")]
async fn aws_an_oidc_provider_that_already_exists_is_read_before_it_is_called_foreign() {
    use howdah_aws_proxy::Scripted;
    let env = AwsEnv::start(phases()).await;
    let spec = env.stack("oidc", ONE_POOL);
    env.proxy
        .script("iam:CreateOpenIDConnectProvider", Scripted::LoseResponse, 1);
    env.proxy.script(
        "iam:GetOpenIDConnectProvider",
        Scripted::Refuse {
            status: 404,
            code: "NoSuchEntity".into(),
            message: "OpenIDConnect Provider not found".into(),
        },
        3,
    );
    let up = env.up_ok(&spec).await;
    assert!(!up.all().contains("not tagged"), "{}", up.all());
    let stats = env.proxy.stats();
    assert_eq!(
        stats.count("iam:CreateOpenIDConnectProvider"),
        2,
        "sent again once the looks found nothing: {stats:?}"
    );
    assert_eq!(env.inventory("oidc").await.oidc_providers, 1);
}
