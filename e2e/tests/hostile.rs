//! Runtime input a careless script or a broken network gives: an API
//! server that accepts connections and never answers, and a signal while
//! howdah waits on it.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::support::{path, BIN};

/// A listener that accepts every connection and never says a word, as a
/// hung API server (or a black-holing proxy) does. Connections are kept
/// open until the test ends.
fn silent_server() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("address").port();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
            if held.len() > 200 {
                break;
            }
        }
    });
    (port, handle)
}

fn stack_for_silent_server(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: hung\n  cluster:\n    \
             server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\n\
             contexts:\n- name: hung\n  context: {{cluster: hung, user: u}}\n\
             current-context: hung\nusers:\n- name: u\n  user: {{token: t}}\n"
        ),
    )
    .expect("kubeconfig");
    let spec = dir.join("howdah.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: hung\ntarget:\n  kubeconfig:\n    path: {}\n",
            kubeconfig.display()
        ),
    )
    .expect("stack file");
    spec
}

#[tokio::test]
async fn a_server_that_never_answers_is_given_up_on_after_the_timeout() {
    let (port, _server) = silent_server();
    let dir = tempfile::tempdir().expect("dir");
    let spec = stack_for_silent_server(dir.path(), port);
    // `status` offers no --timeout: it gives up after its own minute.
    for command in ["up", "down", "plan"] {
        let started = Instant::now();
        let out = tokio::process::Command::new(BIN)
            .args([command, "-f", path(&spec), "--timeout", "3s"])
            .env("HOWDAH_OUTPUT", "plain")
            .output()
            .await
            .expect("howdah runs");
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert!(
            stderr.contains("did not answer in time"),
            "{command}: {stderr}"
        );
        // Before, each of these waited out kube's 30 s connect timeout on
        // every retry: minutes. A generous bound, not a timing benchmark.
        assert!(took < Duration::from_secs(20), "{command} took {took:?}");
    }
}

#[tokio::test]
async fn sigterm_while_waiting_on_a_silent_server_exits_130_at_once() {
    let (port, _server) = silent_server();
    let dir = tempfile::tempdir().expect("dir");
    let spec = stack_for_silent_server(dir.path(), port);
    for command in ["up", "plan", "status"] {
        let child = tokio::process::Command::new(BIN)
            .args([command, "-f", path(&spec)])
            .env("HOWDAH_OUTPUT", "plain")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("howdah starts");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let pid = child.id().expect("pid").to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let started = Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{command} ignored SIGTERM"))
            .expect("howdah ends");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{command}: {stderr}");
        assert!(
            stderr.contains("nothing was changed"),
            "{command}: {stderr}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{command}");
    }
}
