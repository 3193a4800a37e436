//! `howdah-aws-proxy`: runs the fault/lifecycle proxy in front of moto
//! (TEST DOUBLE, for the sandbox demo, benchmarks and manual poking).
//!
//!     howdah-aws-proxy [--port N] (--upstream URL | --start-moto) \
//!         [--cluster-create-ms N] ... [--throttle-percent P] [--error-percent P] \
//!         [--latency-ms N] [--seed S] [--reject-access-key AKID]... [--expired-access-key AKID]...
//!
//! Prints `READY http://127.0.0.1:PORT` once serving; runs until SIGTERM/SIGINT.

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use howdah_aws_proxy::{Moto, Proxy, ProxyOptions};

/// TEST DOUBLE: a proxy in front of moto that adds the EKS lifecycle, EKS
/// add-ons, AWS-shaped faults and latency.
#[derive(Debug, Parser)]
#[command(name = "howdah-aws-proxy")]
struct Args {
    /// Port on 127.0.0.1 (0: a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// moto's base URL.
    #[arg(
        long,
        required_unless_present = "start_moto",
        conflicts_with = "start_moto"
    )]
    upstream: Option<String>,
    /// Start moto (found as `Moto::start` finds it) and proxy to it.
    #[arg(long)]
    start_moto: bool,
    /// How long a new cluster stays CREATING.
    #[arg(long, default_value_t = 0)]
    cluster_create_ms: u64,
    /// How long a deleted cluster stays DELETING.
    #[arg(long, default_value_t = 0)]
    cluster_delete_ms: u64,
    /// How long a new nodegroup stays CREATING.
    #[arg(long, default_value_t = 0)]
    nodegroup_create_ms: u64,
    /// How long a deleted nodegroup stays DELETING.
    #[arg(long, default_value_t = 0)]
    nodegroup_delete_ms: u64,
    /// How long a new add-on stays CREATING.
    #[arg(long, default_value_t = 0)]
    addon_create_ms: u64,
    /// How long a deleted add-on stays DELETING.
    #[arg(long, default_value_t = 0)]
    addon_delete_ms: u64,
    /// Percentage of calls answered with the service's throttling error.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    throttle_percent: u32,
    /// Percentage of calls answered with the service's 5xx error.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    error_percent: u32,
    /// Latency added to every AWS call.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Seed of the fault draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Access key id whose calls fail as unknown (repeatable).
    #[arg(long = "reject-access-key")]
    reject_access_keys: Vec<String>,
    /// Access key id whose calls fail as expired (repeatable).
    #[arg(long = "expired-access-key")]
    expired_access_keys: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ms = Duration::from_millis;
    let moto = if args.start_moto {
        Some(Moto::start().await?)
    } else {
        None
    };
    let upstream = match (&moto, args.upstream) {
        (Some(moto), _) => moto.url().to_string(),
        (None, Some(url)) => url,
        (None, None) => anyhow::bail!("give --upstream URL or --start-moto"),
    };
    let proxy = Proxy::start(ProxyOptions {
        port: args.port,
        upstream,
        cluster_create: ms(args.cluster_create_ms),
        cluster_delete: ms(args.cluster_delete_ms),
        nodegroup_create: ms(args.nodegroup_create_ms),
        nodegroup_delete: ms(args.nodegroup_delete_ms),
        addon_create: ms(args.addon_create_ms),
        addon_delete: ms(args.addon_delete_ms),
        throttle_percent: args.throttle_percent,
        error_percent: args.error_percent,
        latency: ms(args.latency_ms),
        seed: args.seed,
        reject_access_keys: args.reject_access_keys,
        expired_access_keys: args.expired_access_keys,
        clusters_fail: false,
    })
    .await?;
    println!("READY {}", proxy.url());
    std::io::stdout().flush()?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    drop(proxy);
    drop(moto);
    Ok(())
}
