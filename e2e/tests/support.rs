//! Shared plumbing: a fake cluster per test, a stack file pointing at it,
//! and running the real binary.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use howdah_kube_fake::{FakeCluster, FakeOptions};

pub const BIN: &str = env!("CARGO_BIN_EXE_howdah");

pub struct Env {
    pub fake: FakeCluster,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Env {
    pub async fn start() -> Env {
        Env::with(FakeOptions::default()).await
    }

    pub async fn with(opts: FakeOptions) -> Env {
        let fake = FakeCluster::start(FakeOptions {
            ready_delay: Duration::from_millis(200),
            ..opts
        })
        .await
        .expect("fake cluster starts");
        Env::on(fake)
    }

    /// An environment around a fake already started, with its kubeconfig.
    pub fn on(fake: FakeCluster) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        fake.write_kubeconfig(&kubeconfig, "fake")
            .expect("kubeconfig written");
        Env {
            fake,
            dir,
            kubeconfig,
        }
    }

    /// Writes a stack file named `name` with `body` appended under the
    /// header (name + target), and returns its path.
    pub fn stack(&self, file: &str, name: &str, body: &str) -> PathBuf {
        let text = format!(
            "name: {name}\ntarget:\n  kubeconfig:\n    path: {}\n    context: fake\n{body}",
            self.kubeconfig.display()
        );
        let path = self.dir.path().join(file);
        std::fs::write(&path, text).expect("stack file written");
        path
    }

    pub async fn howdah(&self, args: &[&str]) -> Run {
        run(self.dir.path(), args).await
    }

    /// `howdah down` (with `extra` flags) that must succeed.
    pub async fn down_ok(&self, spec: &Path, extra: &[&str]) -> Run {
        let mut args = vec!["down", "-f", path(spec), "--timeout", "60s"];
        args.extend_from_slice(extra);
        let down = self.howdah(&args).await;
        assert_eq!(down.code, 0, "down failed:\n{}", down.all());
        down
    }

    /// `howdah up` that must succeed.
    pub async fn up_ok(&self, spec: &Path) -> Run {
        self.up_ok_with(spec, &[]).await
    }

    /// `howdah up` with `extra` flags (e.g. `--output json`) that must succeed.
    pub async fn up_ok_with(&self, spec: &Path, extra: &[&str]) -> Run {
        let mut args = vec!["up", "-f", path(spec), "--timeout", "60s"];
        args.extend_from_slice(extra);
        let up = self.howdah(&args).await;
        assert_eq!(up.code, 0, "up failed:\n{}", up.all());
        up
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// The JSON events printed with --output json.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

pub async fn run(dir: &Path, args: &[&str]) -> Run {
    run_with_kubeconfig(dir, args, None).await
}

/// Runs howdah with $KUBECONFIG set (or removed when None).
pub async fn run_with_kubeconfig(dir: &Path, args: &[&str], kubeconfig: Option<&Path>) -> Run {
    let mut command = tokio::process::Command::new(BIN);
    match kubeconfig {
        Some(k) => command.env("KUBECONFIG", k),
        None => command.env_remove("KUBECONFIG"),
    };
    let out: Output = command
        .args(args)
        .current_dir(dir)
        .env("HOWDAH_OUTPUT", "plain")
        .output()
        .await
        .expect("howdah runs");
    Run::from(out)
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A client of the fake for assertions (its requests count in the fake's
/// statistics, so read them outside measured windows).
pub fn cluster(env: &Env) -> howdah::runtime::cluster::ClusterHandle {
    let provider = howdah_provider_kubeconfig::KubeconfigProvider::new(
        Some(env.kubeconfig.clone()),
        Some("fake".into()),
    );
    howdah::runtime::cluster::ClusterHandle::new(
        std::sync::Arc::new(provider),
        howdah_provider::Outputs::default(),
    )
}

pub async fn get(env: &Env, kind: &str, ns: Option<&str>, name: &str) -> Option<serde_json::Value> {
    let k = howdah::runtime::cluster::kind_named(kind).expect("known kind");
    cluster(env).get(k, ns, name).await.expect("get works")
}

pub async fn list(
    env: &Env,
    kind: &str,
    ns: Option<&str>,
    selector: &str,
) -> Vec<serde_json::Value> {
    let k = howdah::runtime::cluster::kind_named(kind).expect("known kind");
    cluster(env)
        .list(k, ns, selector)
        .await
        .expect("list works")
}

pub fn names(objects: &[serde_json::Value]) -> Vec<String> {
    let mut n: Vec<String> = objects
        .iter()
        .map(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    n.sort();
    n
}

/// An object of a fake cluster that must exist (for tests that reach the
/// fake through an endpoint override rather than an `Env`).
pub async fn get_at(
    fake: &howdah_kube_fake::FakeCluster,
    kind: &str,
    ns: Option<&str>,
    name: &str,
) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig, "fake")
        .expect("kubeconfig written");
    let provider =
        howdah_provider_kubeconfig::KubeconfigProvider::new(Some(kubeconfig), Some("fake".into()));
    let handle = howdah::runtime::cluster::ClusterHandle::new(
        std::sync::Arc::new(provider),
        howdah_provider::Outputs::default(),
    );
    let k = howdah::runtime::cluster::kind_named(kind).expect("known kind");
    handle
        .get(k, ns, name)
        .await
        .expect("get works")
        .unwrap_or_else(|| panic!("{kind} {name} not found"))
}

/// SDK configuration straight to moto at `url`, with keys of its own, for
/// a test's assertions (not through the proxy, so they are not counted as
/// the product's calls).
pub async fn moto_sdk(url: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(url)
        .credentials_provider(aws_credential_types::Credentials::new(
            "AKIDASSERT",
            "assert",
            None,
            None,
            "test",
        ))
        .load()
        .await
}
