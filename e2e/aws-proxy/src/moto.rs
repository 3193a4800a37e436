//! Running a moto server (the AWS emulator) as a child process for a test.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{HeaderMap, Method};
use tokio::process::{Child, Command};

use crate::upstream;

/// How to get moto when it cannot be found; part of every "not found" error.
const INSTALL_HINT: &str =
    "install it with `e2e/aws/moto.sh install` (a pinned moto[server] in a venv), \
then run the tests with HOWDAH_MOTO_SERVER=\"$(e2e/aws/moto.sh path)\", or put moto_server on PATH";

/// How long moto may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A moto server on 127.0.0.1, killed when dropped.
pub struct Moto {
    // Held so that dropping Moto kills the process (kill_on_drop).
    _child: Child,
    url: String,
    log: PathBuf,
    // Holds the log directory; removed on drop.
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Starts moto with AWS-managed IAM policies loaded, on a free port, and
    /// waits until it answers.
    ///
    /// moto_server is looked up in `HOWDAH_MOTO_SERVER` (a path), then on
    /// `PATH`, then in the venv `e2e/aws/moto.sh install` creates
    /// (`HOWDAH_MOTO_VENV`, default `~/.cache/howdah/moto-venv`). Not finding
    /// it is an error that says how to install it.
    pub async fn start() -> anyhow::Result<Moto> {
        let program = find_moto_server()?;
        let dir = tempfile::Builder::new()
            .prefix("howdah-moto-")
            .tempdir()
            .context("creating a directory for the moto log")?;
        let log = dir.path().join("moto.log");
        // The port is free when probed but could be taken before moto binds
        // it; moto then exits at once, and another port is tried.
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let log_file = std::fs::File::create(&log)
                .with_context(|| format!("creating {}", log.display()))?;
            let mut child = Command::new(&program)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
                .stdin(Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {}", program.display()))?;
            let url = format!("http://127.0.0.1:{port}");
            match wait_ready(&mut child, &url, &log).await {
                Ok(()) => {
                    return Ok(Moto {
                        _child: child,
                        url,
                        log,
                        _dir: dir,
                    })
                }
                // Only an early exit (port taken) is worth another try.
                Err(e) if matches!(child.try_wait(), Ok(Some(_))) => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("moto did not start")))
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// moto's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Forgets every resource (`POST /moto-api/reset`).
    pub async fn reset(&self) -> anyhow::Result<()> {
        let answer = upstream::send(
            &upstream::client(),
            &self.url,
            Method::POST,
            "/moto-api/reset",
            &HeaderMap::new(),
            Bytes::new(),
        )
        .await?;
        anyhow::ensure!(
            answer.status.is_success(),
            "moto reset answered {}",
            answer.status
        );
        Ok(())
    }
}

/// Where moto_server is, or an error saying how to install it.
pub fn find_moto_server() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("HOWDAH_MOTO_SERVER") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "HOWDAH_MOTO_SERVER is {}, which is not a file; {INSTALL_HINT}",
            path.display()
        );
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("moto_server");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let venv = std::env::var_os("HOWDAH_MOTO_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/howdah/moto-venv"))
        });
    if let Some(venv) = venv {
        let candidate = venv.join("bin/moto_server");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("moto_server (the AWS emulator) was not found: HOWDAH_MOTO_SERVER is unset, it is not on PATH, and the default venv has none; {INSTALL_HINT}")
}

/// Polls moto until it answers, failing early if it exits.
async fn wait_ready(child: &mut Child, url: &str, log: &Path) -> anyhow::Result<()> {
    let client = upstream::client();
    let no_headers = HeaderMap::new();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "moto_server exited ({status}) before answering; its log:\n{}",
                log_tail(log)
            );
        }
        let probe = upstream::send(
            &client,
            url,
            Method::GET,
            "/moto-api/",
            &no_headers,
            Bytes::new(),
        );
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), probe).await {
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!(
                "moto_server did not answer on {url} within {READY_TIMEOUT:?}; its log:\n{}",
                log_tail(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
