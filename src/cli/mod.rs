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
mod state;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use howdah::events::{Event, EventSink};
use howdah::ops::{self, OpsError, Options, Session};
use howdah::state::StateLocation;
use state::StateCommand;
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

/// `howdah --help` after the commands: what the exit codes mean and what
/// the environment changes (README "Exit codes", "Environment").
const AFTER_HELP: &str = "\
Exit codes:
  0    success (plan --detailed-exitcode: no changes)
  1    a step or check failed (the message says which and why)
  2    plan --detailed-exitcode: there are changes
  3    invalid stack file or command line; nothing was contacted
  4    the stack is locked by another run, or the state is unreadable,
       from a newer howdah, of another stack or target, or was changed
       by another run during this one
  5    down finished but the leak scan found objects left
  130  interrupted; state saved, run again to carry on

Environment:
  HOWDAH_FILE             the stack file when -f is not given (default howdah.yaml)
  HOWDAH_OUTPUT           --output when it is not given
  HOWDAH_LOG              diagnostic logs on stderr: a tracing filter (info, debug, kube=debug)
  NO_COLOR                set and not empty: no colour unless --color always
  KUBECONFIG              kubeconfig files for the kubeconfig target (default ~/.kube/config);
                          `howdah kubeconfig` writes to the first
  HOWDAH_KUBE_ENDPOINT    cloud targets: use this API endpoint instead of the one the cloud
                          reports (test clusters)
  HOWDAH_AWS_POLL_MAX_MS  aws: longest pause between status reads while waiting (default 15000)
  HOWDAH_AWS_TIME_SCALE   aws, benchmarks only: divide the usual EKS durations and poll
                          intervals by this, to match an emulator's scaled waits
  AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_STS
                          aws: send AWS calls elsewhere (an emulator); S3 then uses path-style
  AWS_PROFILE, AWS_REGION, AWS_ACCESS_KEY_ID, ...
                          aws: the AWS SDK's standard credential chain
  HOME, USER, HOSTNAME    ~/ in paths; who and where holds a lock
  HOWDAH_STATE_LOCK_TTL_SECS
                          for tests only: how long a shared (S3) state lock lives unless
                          renewed, in seconds (default 120)";

#[derive(Parser)]
#[command(
    name = "howdah",
    version = VERSION,
    about = "One file to stand up, verify and tear down Pachyderm on Kubernetes",
    long_about = None,
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `howdah -V`: the version and the commit it was built from (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HOWDAH_GIT_COMMIT"),
    ")"
);

/// `howdah --version`: also the Pachyderm versions this build installs,
/// which come from the charts compiled in.
fn long_version() -> String {
    format!(
        "{VERSION}\nPachyderm versions: {} (default {})",
        howdah::runtime::chart::supported_versions().join(", "),
        howdah::runtime::chart::default_version()
    )
}

/// The command line as parsed and as completed: the derived one with what
/// only run time knows.
fn command() -> clap::Command {
    Cli::command().long_version(long_version())
}

/// How a command shows what it does; only on commands that show progress
/// or can fail on a stack file.
#[derive(clap::Args, Clone)]
struct DisplayArgs {
    /// How to show progress: auto (live view on a terminal, plain lines otherwise), human, plain, json (one event per line).
    #[arg(long, value_enum, default_value_t = OutputMode::Auto, env = "HOWDAH_OUTPUT")]
    output: OutputMode,
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Print only errors and the final summary (JSON output is unchanged).
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// Diagnostic logs on stderr: -v as HOWDAH_LOG=info, -vv as debug
    /// (HOWDAH_LOG, when set, wins).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

impl Default for DisplayArgs {
    fn default() -> Self {
        DisplayArgs {
            output: OutputMode::Auto,
            color: ColorChoice::Auto,
            quiet: false,
            verbose: 0,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether text for a stream gets colour. An explicit `always` wins
    /// over NO_COLOR, as no-color.org asks of command-line flags.
    fn paint(self, stream_is_terminal: bool) -> output::Paint {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        output::Paint::new(match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stream_is_terminal && !no_color,
        })
    }
}

/// How this run shows things: the mode and, per stream, colour.
struct Shown {
    mode: OutputMode,
    stdout: output::Paint,
    stderr: output::Paint,
    quiet: bool,
}

impl Shown {
    fn new(display: &DisplayArgs) -> Shown {
        Shown {
            mode: mode(display.output),
            stdout: display.color.paint(std::io::stdout().is_terminal()),
            stderr: display.color.paint(std::io::stderr().is_terminal()),
            quiet: display.quiet,
        }
    }
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
    /// Where the state lives: a file, or shared state at
    /// s3://bucket/prefix?region=R (default: the stack file's state.path or
    /// state.url, else .howdah/<name>.state.json beside the stack file).
    #[arg(long, value_parser = parse_state_location)]
    state: Option<StateLocation>,
    #[command(flatten)]
    display: DisplayArgs,
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
    #[arg(long, default_value_t = DEFAULT_PARALLELISM, value_parser = clap::value_parser!(u16).range(1..=64))]
    parallelism: u16,
    /// How long one step may wait for readiness or deletion, 1s to 24h (e.g. 90s, 10m).
    #[arg(long, default_value = DEFAULT_TIMEOUT, value_parser = parse_duration)]
    timeout: Duration,
}

const DEFAULT_PARALLELISM: u16 = 8;
const DEFAULT_TIMEOUT: &str = "10m";

/// What `status`, which offers neither flag, runs with.
/// How long `status` may take to read everything (it has no `--timeout`).
const STATUS_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            parallelism: DEFAULT_PARALLELISM,
            // Invariant: the default is in range (`durations_parse_with_units`).
            timeout: parse_duration(DEFAULT_TIMEOUT).unwrap_or(Duration::from_secs(600)),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Print (or write) a commented starter stack file.
    Init {
        /// kubeconfig (an existing cluster) or aws (a new EKS cluster).
        #[arg(long, default_value = "kubeconfig")]
        target: String,
        /// The stack name (lower-case letters, digits and '-', starting
        /// with a letter, at most 40); default: my-stack.
        #[arg(long)]
        name: Option<String>,
        /// kubeconfig target: the context to use; default: the
        /// kubeconfig's current context.
        #[arg(long)]
        context: Option<String>,
        /// Write the file here instead of printing it; an existing file is
        /// kept unless --force is given.
        #[arg(long)]
        out: Option<PathBuf>,
        /// With --out: replace an existing file.
        #[arg(long, requires = "out")]
        force: bool,
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
        /// Plan a Pachyderm version going back instead of refusing it.
        #[arg(long)]
        allow_downgrade: bool,
        /// Also write the plan to FILE, for `howdah up --plan FILE` to
        /// carry out exactly (it holds no secret).
        #[arg(long, value_name = "FILE", conflicts_with = "destroy")]
        out: Option<PathBuf>,
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
        /// Carry out a Pachyderm version going back (refused otherwise:
        /// pachd's database migrations only go forward).
        #[arg(long)]
        allow_downgrade: bool,
        /// Carry out exactly the plan `howdah plan --out FILE` wrote; refused,
        /// changing nothing, if the stack file, the state or what is live
        /// no longer give that plan.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["allow_downgrade", "no_verify"])]
        plan: Option<PathBuf>,
        #[command(flatten)]
        take_over: TakeOverArgs,
    },
    /// Live health of every part of the stack.
    Status {
        #[command(flatten)]
        stack: StackArgs,
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
    /// Port-forward pachd and the console (through pachyderm-proxy when it
    /// runs, with pachd's file preview and download) to this machine until Ctrl-C.
    Console {
        #[command(flatten)]
        stack: StackArgs,
        /// Local port for pachd's gRPC API.
        #[arg(long, default_value_t = 30650)]
        pachd_port: u16,
        /// Local port for the console (pachyderm-proxy's address when it runs).
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
        /// Delete without asking. Without a terminal, `--delete-data` needs it.
        #[arg(long, visible_alias = "auto-approve")]
        yes: bool,
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
    /// Show where the time of the last `up` or `down` went: a chart of its
    /// steps with the critical path marked.
    Timeline {
        #[command(flatten)]
        stack: StackArgs,
        /// Also write the chart as an SVG image to this file.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Print the JSON Schema of the stack file.
    Schema,
    /// Print a shell completion script.
    ///
    /// For example `howdah completion bash > /etc/bash_completion.d/howdah`,
    /// `howdah completion zsh > "${fpath[1]}/_howdah"`,
    /// `howdah completion fish > ~/.config/fish/completions/howdah.fish`,
    /// `howdah completion powershell >> $PROFILE`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Show, unlock, pull or push the state (a file, or shared in S3).
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
}

impl Command {
    /// The display flags of the command; commands without them print
    /// only text of their own (a starter, a schema, a script).
    fn display(&self) -> DisplayArgs {
        match self {
            Command::Validate { stack }
            | Command::Plan { stack, .. }
            | Command::Up { stack, .. }
            | Command::Status { stack, .. }
            | Command::Render { stack }
            | Command::Console { stack, .. }
            | Command::Down { stack, .. }
            | Command::Kubeconfig { stack, .. }
            | Command::Timeline { stack, .. } => stack.display.clone(),
            Command::State { command } => command.stack().display.clone(),
            Command::Init { .. }
            | Command::Token { .. }
            | Command::Schema
            | Command::Completion { .. } => DisplayArgs::default(),
        }
    }
}

/// The range `--timeout` takes: below a second nothing can become ready,
/// above a day a hung run would hold its lock (and a CI runner) for good.
const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(86_400));

/// `--state`: an s3:// URL (checked like `state.url`), else a file path.
fn parse_state_location(text: &str) -> Result<StateLocation, String> {
    if text.contains("://") {
        howdah::spec::StateUrl::parse(text)
            .map(StateLocation::S3)
            .map_err(|(message, help)| match help {
                Some(help) => format!("{message}; {help}"),
                None => message,
            })
    } else {
        Ok(StateLocation::File(PathBuf::from(text)))
    }
}

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
    let cli = match command()
        .try_get_matches()
        .and_then(|mut matches| Cli::from_arg_matches_mut(&mut matches))
    {
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
    let display = cli.command.display();
    init_logs(
        display.verbose,
        display.color.paint(std::io::stderr().is_terminal()),
    );
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
/// `-v` stands for `HOWDAH_LOG=info` (`-vv` for debug) when the variable
/// is not set.
fn init_logs(verbose: u8, paint: output::Paint) {
    let from_flag = match verbose {
        0 => None,
        1 => Some("info".to_string()),
        _ => Some("debug".to_string()),
    };
    let Some(directives) = std::env::var("HOWDAH_LOG")
        .ok()
        .filter(|d| !d.trim().is_empty())
        .or(from_flag)
    else {
        return;
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
        .with_ansi(paint.on())
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

fn sink(shown: &Shown) -> Arc<dyn EventSink> {
    let sink: Arc<dyn EventSink> = match shown.mode {
        // Machines get every event, -q or not.
        OutputMode::Json => return Arc::new(output::JsonLines),
        OutputMode::Human => Arc::new(output::LiveView::new(shown.stderr)),
        _ => Arc::new(output::PlainLines::new(shown.stdout)),
    };
    if shown.quiet {
        Arc::new(output::ErrorsAndSummary(sink))
    } else {
        sink
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
        allow_downgrade: false,
        parallelism: usize::from(run.parallelism),
        timeout: run.timeout,
        delete_data,
        verify: true,
        sink,
        cancel,
        take_over_state: false,
        saved_plan: None,
    }
}

fn open(stack: &StackArgs) -> Result<Session, OpsError> {
    Session::open(&stack.file, stack.state.clone())
}

/// Prints an error the way its kind deserves and picks the exit code.
/// With JSON output a stack file's problems are also printed as one
/// `invalid` event on stdout, for CI annotations.
fn fail(shown: &Shown, e: OpsError) -> u8 {
    match &e {
        OpsError::Spec(spec) => {
            match shown.mode {
                OutputMode::Json => {
                    output::invalid(spec);
                    eprintln!("{spec}");
                }
                // On a terminal: the source with each problem underlined.
                OutputMode::Human => output::spec_report(spec, shown.stderr),
                _ => eprintln!("{spec}"),
            }
            exit::INVALID
        }
        OpsError::State(_) => {
            eprintln!("error: {e}");
            exit::STATE
        }
        OpsError::Usage(_) => {
            eprintln!("error: {e}");
            exit::INVALID
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

/// `howdah timeline`: the last run's chart, printed, and drawn to `svg`.
async fn timeline(session: &Session, svg: Option<&std::path::Path>) -> u8 {
    let state = match session.state.load().await {
        Ok(state) => state,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::STATE;
        }
    };
    let Some(run) = state.and_then(|s| s.last_run) else {
        eprintln!(
            "no run recorded yet in {} (run `howdah up`)",
            session.state.describe()
        );
        return exit::FAILED;
    };
    let Some(chart) = howdah::timeline::of_run(&run) else {
        eprintln!(
            "the last `{}` recorded no step times (it stopped before any step, or an older howdah ran it); run `howdah up` again",
            run.command
        );
        return exit::FAILED;
    };
    let width = output::terminal_width().unwrap_or(100).max(60);
    out!("{}", howdah::timeline::text(&chart, width));
    let Some(path) = svg else {
        return exit::OK;
    };
    let written = howdah::timeline::svg(&chart)
        .map_err(|e| format!("cannot draw the chart: {e}"))
        .and_then(|doc| {
            std::fs::write(path, doc).map_err(|e| format!("cannot write {}: {e}", path.display()))
        });
    match written {
        Ok(()) => {
            outln!("wrote {}", path.display());
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILED
        }
    }
}

/// `howdah init`: the starter with the values filled in, printed or
/// written to `out`. An existing `out` is never replaced without `force`
/// (the check and the creation are one step, so a file that appears in
/// between is not overwritten either).
fn init(
    target: &str,
    name: Option<&str>,
    context: Option<&str>,
    out: Option<PathBuf>,
    force: bool,
) -> u8 {
    use howdah::spec::{StarterError, StarterValues};
    let text = match howdah::spec::starter_with(target, &StarterValues { name, context }) {
        Ok(text) => text,
        Err(StarterError::InvalidName { message, help }) => {
            let help = help.map(|h| format!(" (help: {h})")).unwrap_or_default();
            eprintln!("error: --name: {message}{help}");
            return exit::INVALID;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID;
        }
    };
    let Some(path) = out else {
        out!("{text}");
        return exit::OK;
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let written = options
        .open(&path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, text.as_bytes()));
    match written {
        Ok(()) => {
            outln!(
                "wrote {}; check it with `howdah validate -f {}`",
                path.display(),
                path.display()
            );
            exit::OK
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!(
                "error: {} already exists; give --force to replace it",
                path.display()
            );
            exit::INVALID
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            exit::FAILED
        }
    }
}

async fn run(cli: Cli) -> u8 {
    let shown = Shown::new(&cli.command.display());
    let mode = shown.mode;
    match cli.command {
        Command::Init {
            target,
            name,
            context,
            out,
            force,
        } => init(&target, name.as_deref(), context.as_deref(), out, force),
        Command::Validate { stack } => match open(&stack) {
            Ok(s) => {
                output::validated(mode, &s);
                exit::OK
            }
            Err(e) => fail(&shown, e),
        },
        Command::Completion { shell } => {
            // Into a buffer first: the generators panic on a closed stdout.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command(), "howdah", &mut script);
            out!("{}", String::from_utf8_lossy(&script));
            exit::OK
        }
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
            Err(e) => fail(&shown, e),
        },
        Command::Plan {
            stack,
            run,
            destroy,
            delete_data,
            json,
            detailed_exitcode,
            allow_downgrade,
            out,
        } => {
            let session = match open(&stack) {
                Ok(s) => s,
                Err(e) => return fail(&shown, e),
            };
            let opts = Options {
                allow_downgrade,
                ..options(&run, delete_data, Arc::new(howdah::events::Quiet))
            };
            let plan = if destroy {
                ops::down::plan(&session, &opts).await
            } else if let Some(out) = &out {
                match ops::up::save_plan(&session, &opts).await {
                    Ok(saved) => match saved.write(out) {
                        Ok(()) => Ok(saved.plan),
                        Err(e) => {
                            eprintln!("error: {e}");
                            return exit::FAILED;
                        }
                    },
                    Err(e) => Err(e),
                }
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
                        // The plan's own sink is quiet; a setting that leaves
                        // something not working is still worth saying.
                        for message in session.stack.pachyderm.warnings() {
                            eprintln!("warning: {message}");
                        }
                        output::print_plan(&plan);
                    }
                    if let Some(out) = &out {
                        eprintln!(
                            "Saved the plan to {0}; `howdah up -f {1} --plan {0}` carries out exactly this.",
                            out.display(),
                            stack.file.display()
                        );
                    }
                    if detailed_exitcode && plan.has_changes() {
                        exit::CHANGES
                    } else {
                        exit::OK
                    }
                }
                Err(e) => fail(&shown, e),
            }
        }
        Command::Up {
            stack,
            run,
            no_verify,
            allow_downgrade,
            plan,
            take_over,
        } => {
            let session = match open(&stack) {
                Ok(s) => s,
                Err(e) => return fail(&shown, e),
            };
            let saved = match plan.as_deref().map(howdah::saved_plan::SavedPlan::read) {
                None => None,
                Some(Ok(saved)) => Some(Arc::new(saved)),
                Some(Err(e)) => {
                    eprintln!("error: {e}");
                    return exit::INVALID;
                }
            };
            let sink = sink(&shown);
            let opts = Options {
                verify: !no_verify,
                allow_downgrade: allow_downgrade
                    || saved.as_ref().is_some_and(|s| s.allow_downgrade),
                take_over_state: take_over.take_over_state,
                saved_plan: saved,
                ..options(&run, false, sink.clone())
            };
            match ops::up::up(&session, &opts).await {
                Ok(report) => output::up_done(sink.as_ref(), &report, &session),
                Err(e) => fail(&shown, e),
            }
        }
        Command::Down {
            stack,
            run,
            delete_data,
            yes,
            take_over,
        } => {
            let session = match open(&stack) {
                Ok(s) => s,
                Err(e) => return fail(&shown, e),
            };
            let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
            if delete_data && !yes && !interactive {
                eprintln!(
                    "error: `down --delete-data` deletes the stack's data (volumes, bucket \
                     contents) and there is no terminal to confirm on: add --yes (or \
                     --auto-approve) to delete it"
                );
                return exit::INVALID;
            }
            let sink = sink(&shown);
            let opts = Options {
                take_over_state: take_over.take_over_state,
                ..options(&run, delete_data, sink.clone())
            };
            if interactive && !yes {
                let plan = match ops::down::plan(&session, &opts).await {
                    Ok(plan) => plan,
                    Err(e) => return fail(&shown, e),
                };
                if !output::confirm_destroy(&plan, &session.stack.name, shown.stderr) {
                    eprintln!("down cancelled: nothing was changed");
                    return exit::FAILED;
                }
            }
            match ops::down::down(&session, &opts).await {
                Ok(report) => output::down_done(mode, sink.as_ref(), &report, &stack.file),
                Err(e) => fail(&shown, e),
            }
        }
        Command::Status {
            stack,
            json,
            no_verify,
            deep,
        } => {
            let session = match open(&stack) {
                Ok(s) => s,
                Err(e) => return fail(&shown, e),
            };
            let opts = Options {
                verify: !no_verify,
                deep,
                // status only reads: a cluster that does not answer within
                // a minute is reported, not waited on for --timeout's 10m.
                ..options(
                    &RunArgs {
                        timeout: STATUS_TIMEOUT,
                        ..RunArgs::default()
                    },
                    false,
                    Arc::new(howdah::events::Quiet),
                )
            };
            match ops::status::status(&session, &opts).await {
                Ok(report) => {
                    output::status(
                        if json { OutputMode::Json } else { mode },
                        &report,
                        shown.stdout,
                    );
                    if report.healthy {
                        exit::OK
                    } else {
                        exit::FAILED
                    }
                }
                Err(e) => fail(&shown, e),
            }
        }
        Command::Console {
            stack,
            pachd_port,
            console_port,
        } => {
            let session = match open(&stack) {
                Ok(s) => s,
                Err(e) => return fail(&shown, e),
            };
            match console::serve(&session, pachd_port, console_port).await {
                Ok(()) => exit::OK,
                Err(e) => fail(&shown, e),
            }
        }
        Command::Kubeconfig { stack, out } => {
            let session = match open(&stack) {
                Ok(s) => s,
                Err(e) => return fail(&shown, e),
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
                Err(e) => fail(&shown, e),
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
        Command::Timeline { stack, svg } => match open(&stack) {
            Ok(session) => timeline(&session, svg.as_deref()).await,
            Err(e) => fail(&shown, e),
        },
        Command::State { command } => state::run(command, &shown).await,
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
        command().debug_assert();
        assert_eq!(RunArgs::default().timeout, Duration::from_secs(600));
    }

    /// Every environment variable the code reads is explained in `--help`:
    /// the source is searched for `env::var("X")`, `env = "X"` and the
    /// names a line or two before an `env::var(v)` loop.
    #[test]
    fn help_explains_every_environment_variable_read() {
        let help = command().render_long_help().to_string();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        let mut dirs = vec![root.join("src"), root.join("providers")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let mut read = std::collections::BTreeSet::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            // Tests set variables of their own; they sit at the end.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let lines: Vec<&str> = code.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if !(line.contains("env::var")
                    || line.contains("env = \"")
                    || line.contains("_VAR: &str"))
                {
                    continue;
                }
                for near in &lines[i.saturating_sub(2)..=i] {
                    for literal in near.split('"').skip(1).step_by(2) {
                        let name = !literal.is_empty()
                            && literal.starts_with(|c: char| c.is_ascii_uppercase())
                            && literal
                                .chars()
                                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                        if name {
                            read.insert(literal.to_string());
                        }
                    }
                }
            }
        }
        for expected in [
            "HOWDAH_OUTPUT",
            "HOWDAH_LOG",
            "HOWDAH_FILE",
            "KUBECONFIG",
            "HOWDAH_KUBE_ENDPOINT",
        ] {
            assert!(
                read.contains(expected),
                "the search missed {expected}: {read:?}"
            );
        }
        let missing: Vec<_> = read.iter().filter(|v| !help.contains(v.as_str())).collect();
        assert!(
            missing.is_empty(),
            "--help does not explain {missing:?}:\n{help}"
        );
    }
}
