//! Command-line parsing and dispatch. Thin: every command calls one library
//! operation and hands its result to `output` to show.

/// `println!` that a closed stdout cannot turn into a panic: with
/// `howdah schema | head -c 10` the reader has gone, the rest of the text
/// is dropped, and the command ends with its own exit code. A run that is
/// changing things (up, down) carries on to a consistent end.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` with the same rule as `outln!`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let _ = write!(stdout, $($arg)*);
        let _ = stdout.flush();
    }};
}

mod console;
mod output;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use howdah::events::{Event, EventSink};
use howdah::ops::{self, OpsError, Options, Session};
use howdah::state::Unlocked;
use tokio_util::sync::CancellationToken;

/// Exit codes (documented in README.md).
pub mod exit {
    pub const OK: u8 = 0;
    /// A step or check failed.
    pub const FAILED: u8 = 1;
    /// `plan --detailed-exitcode`: there are changes.
    pub const CHANGES: u8 = 2;
    /// The stack file or the command line is invalid; nothing was touched.
    pub const INVALID: u8 = 3;
    /// The state is locked by another run, or unreadable.
    pub const STATE: u8 = 4;
    /// `down` finished but something howdah made is still there.
    pub const LEAKED: u8 = 5;
    /// Interrupted (Ctrl-C / SIGTERM); state was saved.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Parser)]
#[command(name = "howdah", version, about = "One file to stand up, verify and tear down Pachyderm on Kubernetes", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How to show progress: auto (live view on a terminal, plain lines otherwise), human, plain, json (one event per line).
    #[arg(long, global = true, value_enum, default_value_t = OutputMode::Auto, env = "HOWDAH_OUTPUT")]
    output: OutputMode,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputMode {
    Auto,
    Human,
    Plain,
    Json,
}

#[derive(clap::Args, Clone)]
struct StackArgs {
    /// The stack file.
    #[arg(
        short = 'f',
        long = "file",
        default_value = "howdah.yaml",
        env = "HOWDAH_FILE"
    )]
    file: PathBuf,
    /// State file (default: .howdah/<name>.state.json beside the stack file, or the file's state.path).
    #[arg(long)]
    state: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
struct TakeOverArgs {
    /// Use the state file even though it records another stack or target
    /// (two stack files sharing one state.path, or a renamed stack): it
    /// becomes this stack's and its records are replaced. Without this the
    /// command stops with exit 4. A state file from a newer howdah is
    /// refused either way.
    #[arg(long)]
    take_over_state: bool,
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Steps run at once, at most.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    parallelism: u16,
    /// How long one step may wait for readiness or deletion, 1s to 24h (e.g. 90s, 10m).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Subcommand)]
enum Command {
    /// Print a commented starter stack file.
    Init {
        /// kubeconfig (an existing cluster).
        #[arg(long, default_value = "kubeconfig")]
        target: String,
    },
    /// Check a stack file offline.
    Validate {
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Show what `up` (or `down` with --destroy) would change, and how long it takes.
    Plan {
        #[command(flatten)]
        stack: StackArgs,
        #[command(flatten)]
        run: RunArgs,
        /// Plan `down` instead of `up`.
        #[arg(long)]
        destroy: bool,
        /// With --destroy: plan as if --delete-data were given.
        #[arg(long)]
        delete_data: bool,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// Exit 0 when there are no changes, 2 when there are.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Create or repair everything, wait until ready, verify Pachyderm.
    Up {
        #[command(flatten)]
        stack: StackArgs,
        #[command(flatten)]
        run: RunArgs,
        /// Do not ask pachd whether it works (for clusters that do not
        /// allow port-forwarding to pods); status then shows verification
        /// as skipped.
        #[arg(long)]
        no_verify: bool,
        #[command(flatten)]
        take_over: TakeOverArgs,
    },
    /// Live health of every part of the stack.
    Status {
        #[command(flatten)]
        stack: StackArgs,
        #[command(flatten)]
        run: RunArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Do not ask pachd (verification is shown as skipped).
        #[arg(long, conflicts_with = "deep")]
        no_verify: bool,
        /// Also write a file through pachd, read it back and remove it (a
        /// scratch repo): proves pachd can use its object store.
        #[arg(long)]
        deep: bool,
    },
    /// Print the Kubernetes manifests `up` applies (secrets redacted).
    Render {
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Port-forward pachd and the console to this machine until Ctrl-C.
    Console {
        #[command(flatten)]
        stack: StackArgs,
        /// Local port for pachd's gRPC API.
        #[arg(long, default_value_t = 30650)]
        pachd_port: u16,
        /// Local port for the console.
        #[arg(long, default_value_t = 4000)]
        console_port: u16,
    },
    /// Remove everything `up` made, then prove nothing is left.
    Down {
        #[command(flatten)]
        stack: StackArgs,
        #[command(flatten)]
        run: RunArgs,
        /// Also delete data (PVCs, bucket contents), whatever dataPolicy says.
        #[arg(long)]
        delete_data: bool,
        #[command(flatten)]
        take_over: TakeOverArgs,
    },
    /// Write a kubeconfig context for the stack's cluster (cloud targets),
    /// whose credentials plugin is howdah itself: no aws CLI needed.
    Kubeconfig {
        #[command(flatten)]
        stack: StackArgs,
        /// File to write; default: $KUBECONFIG's first file, else
        /// ~/.kube/config. The context is merged in and made current.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print an EKS token as a kubectl ExecCredential (the credentials
    /// plugin `howdah kubeconfig` writes).
    #[command(hide = true)]
    Token {
        /// EKS cluster name.
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        region: String,
        #[arg(long)]
        profile: Option<String>,
    },
    /// Print the JSON Schema of the stack file.
    Schema,
    /// Inspect or unlock the state.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
}

#[derive(Subcommand)]
enum StateCommand {
    /// Print the state file.
    Show {
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Remove a stale lock left by a run that is gone. The lock of a run
    /// still going on this host is never removed; an unreadable lock file
    /// is.
    Unlock {
        #[command(flatten)]
        stack: StackArgs,
        /// Also remove a lock held on another host, which howdah cannot
        /// check: if that run is still going, two runs then change the
        /// same stack at once.
        #[arg(long)]
        force: bool,
    },
}

/// The range `--timeout` takes: below a second nothing can become ready,
/// above a day a hung run would hold its lock (and a CI runner) for good.
const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(86_400));

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let out_of_range = || format!("`{text}` is outside the range of --timeout, 1s to 24h");
    let n: u64 = match number.parse() {
        Ok(n) => n,
        Err(_) if !number.is_empty() => return Err(out_of_range()),
        Err(_) => return Err(format!("`{text}` is not a duration like 90s, 10m or 1h")),
    };
    let duration = match unit {
        "" | "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        "ms" => Some(Duration::from_millis(n)),
        _ => return Err(format!("`{text}`: unit must be ms, s, m or h")),
    };
    match duration {
        Some(d) if (TIMEOUT_RANGE.0..=TIMEOUT_RANGE.1).contains(&d) => Ok(d),
        _ => Err(out_of_range()),
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::INVALID,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logs();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    ExitCode::from(runtime.block_on(run(cli)))
}

/// Diagnostic logs (ours and the client libraries') only when asked for
/// with `HOWDAH_LOG`: without it the user sees howdah's own messages and
/// nothing else, in every output mode. An unset variable must not fall back
/// to tracing's default of printing every ERROR event, which is how a
/// retried 500 used to reach stderr as a coloured library line.
fn init_logs() {
    let Some(directives) = std::env::var("HOWDAH_LOG")
        .ok()
        .filter(|d| !d.trim().is_empty())
    else {
        return;
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn mode(requested: OutputMode) -> OutputMode {
    match requested {
        OutputMode::Auto if std::io::stderr().is_terminal() => OutputMode::Human,
        OutputMode::Auto => OutputMode::Plain,
        other => other,
    }
}

fn sink(mode: OutputMode) -> Arc<dyn EventSink> {
    match mode {
        OutputMode::Json => Arc::new(output::JsonLines),
        OutputMode::Human => Arc::new(output::LiveView::new()),
        _ => Arc::new(output::PlainLines),
    }
}

/// Ctrl-C / SIGTERM: the first stops launching steps; the second quits.
fn cancel_on_signals(sink: Arc<dyn EventSink>) -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            wait_for_signal().await;
            count += 1;
            if count == 1 {
                sink.emit(&Event::Warning {
                    message: "interrupted: no new steps start; running ones finish or stop at a safe point (again to quit now)".into(),
                });
                t.cancel();
            } else {
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
        }
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn options(run: &RunArgs, delete_data: bool, sink: Arc<dyn EventSink>) -> Options {
    let cancel = cancel_on_signals(sink.clone());
    Options {
        deep: false,
        parallelism: usize::from(run.parallelism),
        timeout: run.timeout,
        delete_data,
        verify: true,
        sink,
        cancel,
        take_over_state: false,
    }
}

fn open(stack: &StackArgs) -> Result<Session, OpsError> {
    Session::open(&stack.file, stack.state.clone())
}

/// Prints an error the way its kind deserves and picks the exit code.
/// With JSON output a stack file's problems are also printed as one
/// `invalid` event on stdout, for CI annotations.
fn fail(mode: OutputMode, e: OpsError) -> u8 {
    match &e {
        OpsError::Spec(spec) => {
            match mode {
                OutputMode::Json => {
                    output::invalid(spec);
                    eprintln!("{spec}");
                }
                // On a terminal: the source with each problem underlined.
                OutputMode::Human => output::spec_report(spec),
                _ => eprintln!("{spec}"),
            }
            exit::INVALID
        }
        OpsError::State(_) => {
            eprintln!("error: {e}");
            exit::STATE
        }
        OpsError::Interrupted(_) => {
            eprintln!("{e}");
            exit::INTERRUPTED
        }
        _ => {
            eprintln!("error: {e}");
            exit::FAILED
        }
    }
}

async fn run(cli: Cli) -> u8 {
    let mode = mode(cli.output);
    match cli.command {
        Command::Init { target } => match howdah::spec::starter(&target) {
            Some(text) => {
                out!("{text}");
                exit::OK
            }
            None => {
                eprintln!(
                    "error: unknown target `{target}`; available: {}",
                    howdah::spec::starter_targets().join(", ")
                );
                exit::INVALID
            }
        },
        Command::Validate { stack } => match open(&stack) {
            Ok(s) => {
                output::validated(mode, &s);
                exit::OK
            }
            Err(e) => fail(mode, e),
        },
        Command::Schema => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&howdah::spec::json_schema()).unwrap_or_default()
            );
            exit::OK
        }
        Command::Render { stack } => match open(&stack).and_then(|s| ops::render(&s)) {
            Ok(objects) => {
                output::manifests(&objects);
                exit::OK
            }
            Err(e) => fail(mode, e),
        },
        Command::Plan {
            stack,
            run,
            destroy,
            delete_data,
            json,
            detailed_exitcode,
        } => {
            let session = match open(&stack) {
                Ok(s) => s,
                Err(e) => return fail(mode, e),
            };
            let opts = options(&run, delete_data, Arc::new(howdah::events::Quiet));
            let plan = if destroy {
                ops::down::plan(&session, &opts).await
            } else {
                ops::up::plan(&session, &opts).await
            };
            match plan {
                Ok(plan) => {
                    if json || mode == OutputMode::Json {
                        outln!(
                            "{}",
                            serde_json::to_string_pretty(&plan).unwrap_or_default()
                        );
                    } else {
                        output::print_plan(&plan);
                    }
                    if detailed_exitcode && plan.has_changes() {
                        exit::CHANGES
                    } else {
                        exit::OK
                    }
                }
                Err(e) => fail(mode, e),
            }
        }
        Command::Up {
            stack,
            run,
            no_verify,
            take_over,
        } => {
            let session = match open(&stack) {
                Ok(s) => s,
                Err(e) => return fail(mode, e),
            };
            let sink = sink(mode);
            let opts = Options {
                verify: !no_verify,
                take_over_state: take_over.take_over_state,
                ..options(&run, false, sink.clone())
            };
            match ops::up::up(&session, &opts).await {
                Ok(report) => output::up_done(sink.as_ref(), &report),
                Err(e) => fail(mode, e),
            }
        }
        Command::Down {
            stack,
            run,
            delete_data,
            take_over,
        } => {
            let session = match open(&stack) {
                Ok(s) => s,
                Err(e) => return fail(mode, e),
            };
            let sink = sink(mode);
            let opts = Options {
                take_over_state: take_over.take_over_state,
                ..options(&run, delete_data, sink.clone())
            };
            match ops::down::down(&session, &opts).await {
                Ok(report) => output::down_done(mode, sink.as_ref(), &report, &stack.file),
                Err(e) => fail(mode, e),
            }
        }
        Command::Status {
            stack,
            run,
            json,
            no_verify,
            deep,
        } => {
            let session = match open(&stack) {
                Ok(s) => s,
                Err(e) => return fail(mode, e),
            };
            let opts = Options {
                verify: !no_verify,
                deep,
                ..options(&run, false, Arc::new(howdah::events::Quiet))
            };
            match ops::status::status(&session, &opts).await {
                Ok(report) => {
                    output::status(if json { OutputMode::Json } else { mode }, &report);
                    if report.healthy {
                        exit::OK
                    } else {
                        exit::FAILED
                    }
                }
                Err(e) => fail(mode, e),
            }
        }
        Command::Console {
            stack,
            pachd_port,
            console_port,
        } => {
            let session = match open(&stack) {
                Ok(s) => s,
                Err(e) => return fail(mode, e),
            };
            match console::serve(&session, pachd_port, console_port).await {
                Ok(()) => exit::OK,
                Err(e) => fail(mode, e),
            }
        }
        Command::Kubeconfig { stack, out } => {
            let session = match open(&stack) {
                Ok(s) => s,
                Err(e) => return fail(mode, e),
            };
            match ops::kubeconfig::write(&session, out).await {
                Ok(written) => {
                    outln!(
                        "wrote context `{}` to {} and made it current",
                        written.context,
                        written.path.display()
                    );
                    exit::OK
                }
                Err(e) => fail(mode, e),
            }
        }
        Command::Token {
            cluster,
            region,
            profile,
        } => {
            match howdah_provider_aws::exec_credential(&cluster, &region, profile.as_deref()).await
            {
                Ok(credential) => {
                    outln!("{credential}");
                    exit::OK
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    exit::FAILED
                }
            }
        }
        Command::State { command } => match command {
            StateCommand::Show { stack } => match open(&stack) {
                Ok(s) => match s.state.load() {
                    Ok(Some(state)) => {
                        outln!(
                            "{}",
                            serde_json::to_string_pretty(&state).unwrap_or_default()
                        );
                        exit::OK
                    }
                    Ok(None) => {
                        eprintln!(
                            "no state yet at {} (run `howdah up`)",
                            s.state.path().display()
                        );
                        exit::OK
                    }
                    Err(e) => fail(mode, e.into()),
                },
                Err(e) => fail(mode, e),
            },
            StateCommand::Unlock { stack, force } => match open(&stack) {
                Ok(s) => match s.state.unlock(force) {
                    Ok(Unlocked::Removed(holder)) => {
                        outln!(
                            "removed the lock held by {} (pid {} on {}, `{}`)",
                            holder.owner,
                            holder.pid,
                            holder.host,
                            holder.command
                        );
                        exit::OK
                    }
                    Ok(Unlocked::RemovedUnreadable) => {
                        outln!(
                            "removed the unreadable lock file {}",
                            s.state.lock_path().display()
                        );
                        exit::OK
                    }
                    Ok(Unlocked::NotLocked) => {
                        outln!("not locked");
                        exit::OK
                    }
                    Err(e) => fail(mode, e.into()),
                },
                Err(e) => fail(mode, e),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
        for absurd in [
            "0",
            "0s",
            "999ms",
            "25h",
            "18446744073709551615s",
            "99999999999999999999s",
            "18446744073709551615h",
        ] {
            let error = parse_duration(absurd).unwrap_err();
            assert!(error.contains("1s to 24h"), "{absurd}: {error}");
        }
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("1000ms").unwrap(), Duration::from_secs(1));
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
