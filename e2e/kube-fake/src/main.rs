//! `howdah-kube-fake`: runs the fake Kubernetes API server (TEST FAKE, for
//! the sandbox demo and manual poking with kubectl).
//!
//!     howdah-kube-fake --port 0 --kubeconfig PATH --context NAME \
//!         [--ready-delay-ms N] [--no-default-storage-class] [--fault-every N]
//!
//! Prints `READY http://127.0.0.1:PORT` once serving; runs until SIGTERM/SIGINT.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use howdah_kube_fake::{FakeCluster, FakeOptions};

const USAGE: &str = "usage: howdah-kube-fake [--port N] --kubeconfig PATH [--context NAME] [--ready-delay-ms N] [--no-default-storage-class] [--fault-every N] [--node-unreachable]";

struct Args {
    opts: FakeOptions,
    kubeconfig: PathBuf,
    context: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut opts = FakeOptions::default();
    let mut kubeconfig = None;
    let mut context = "howdah-fake".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = |name: &str| -> anyhow::Result<String> {
            inline
                .clone()
                .or_else(|| it.next())
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--port" => {
                opts.port = value("--port")?
                    .parse()
                    .context("--port: not a port number")?
            }
            "--kubeconfig" => kubeconfig = Some(PathBuf::from(value("--kubeconfig")?)),
            "--context" => context = value("--context")?,
            "--ready-delay-ms" => {
                opts.ready_delay = Duration::from_millis(
                    value("--ready-delay-ms")?
                        .parse()
                        .context("--ready-delay-ms: not a number")?,
                )
            }
            "--no-default-storage-class" => opts.default_storage_class = false,
            "--node-unreachable" => opts.node_unreachable = true,
            "--fault-every" => {
                opts.fault_every = value("--fault-every")?
                    .parse()
                    .context("--fault-every: not a number")?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let Some(kubeconfig) = kubeconfig else {
        bail!("--kubeconfig is required\n{USAGE}");
    };
    Ok(Args {
        opts,
        kubeconfig,
        context,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("howdah-kube-fake: {e}");
            std::process::exit(2);
        }
    };
    let fake = FakeCluster::start(args.opts).await?;
    fake.write_kubeconfig(&args.kubeconfig, &args.context)?;
    println!("READY {}", fake.url());
    std::io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    fake.shutdown().await;
    Ok(())
}
