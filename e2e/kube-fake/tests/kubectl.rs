//! The fake against the real kubectl (skipped when kubectl is not on PATH):
//! discovery, server-side apply, client-side apply, get and delete.

mod common;

use common::*;
use tokio::process::Command;

async fn kubectl(h: &Harness, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use tokio::io::AsyncWriteExt;
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig").arg(h.kubeconfig()).args(args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl runs");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .await
        .unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn have_kubectl() -> bool {
    std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  mode: fast
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_apply_delete() {
    if !have_kubectl() {
        eprintln!("kubectl not found; skipping");
        return;
    }
    let h = start().await;
    let (ok, out) = kubectl(&h, &["get", "ns"], None).await;
    assert!(
        ok && out.contains("kube-system") && out.contains("Active"),
        "{out}"
    );

    let (ok, out) = kubectl(
        &h,
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "demo",
            "-f",
            "-",
        ],
        Some(MANIFEST),
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let (ok, out) = kubectl(
        &h,
        &[
            "rollout",
            "status",
            "deployment/web",
            "-n",
            "demo",
            "--timeout=20s",
        ],
        None,
    )
    .await;
    assert!(ok && out.contains("successfully rolled out"), "{out}");
    let (ok, out) = kubectl(&h, &["get", "pods", "-A"], None).await;
    assert!(
        ok && out.matches("Running").count() == 2 && out.contains("demo"),
        "{out}"
    );

    // Client-side apply (strategic merge patch) on top, then a no-op re-apply.
    let changed = MANIFEST.replace("mode: fast", "mode: slow");
    let (ok, out) = kubectl(&h, &["apply", "-f", "-"], Some(&changed)).await;
    assert!(ok, "{out}");
    let cm = h
        .fake
        .get("v1", "configmaps", Some("demo"), "settings")
        .unwrap();
    assert_eq!(cm["data"]["mode"], "slow");
    let (ok, out) = kubectl(&h, &["apply", "-f", "-"], Some(&changed)).await;
    assert!(ok && out.contains("configmap/settings unchanged"), "{out}");

    let (ok, out) = kubectl(&h, &["delete", "deployment", "web", "-n", "demo"], None).await;
    assert!(ok && out.contains("deleted"), "{out}");
    let (ok, out) = kubectl(&h, &["delete", "namespace", "demo", "--timeout=20s"], None).await;
    assert!(ok && out.contains("deleted"), "{out}");
    let (ok, out) = kubectl(&h, &["get", "ns", "demo"], None).await;
    assert!(!ok && out.contains("NotFound"), "{out}");
}
