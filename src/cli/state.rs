//! `howdah state show|unlock|pull|push`: look at, unlock, copy out and
//! copy in a stack's state, wherever it is kept (a local file, S3).

use std::path::PathBuf;

use clap::Subcommand;
use howdah::ops::{OpsError, Session};
use howdah::state::{State, Unlocked};

use super::{exit, fail, open, Shown, StackArgs};

#[derive(Subcommand)]
pub(super) enum StateCommand {
    /// Print the recorded state readably: where it is, the last run, every
    /// resource, and who holds the lock.
    Show {
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Remove a stale lock left by a run that is gone. The lock of a run
    /// still going on this host is never removed; an unreadable lock file
    /// is, and so is a shared lock past its expiry.
    Unlock {
        #[command(flatten)]
        stack: StackArgs,
        /// Also remove a lock held on another host, which howdah cannot
        /// check: if that run is still going, two runs then change the
        /// same stack at once.
        #[arg(long)]
        force: bool,
    },
    /// Write the state JSON to stdout, or to --out FILE.
    Pull {
        #[command(flatten)]
        stack: StackArgs,
        /// Write it to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Make a state JSON file (from `state pull`, or a local state file)
    /// the stack's recorded state, under the stack's lock.
    Push {
        #[command(flatten)]
        stack: StackArgs,
        /// The state file to upload.
        #[arg(value_name = "FILE")]
        state_file: PathBuf,
        /// Push even though the file (or the state there now) records
        /// another stack or target; without this, that is refused (exit 4).
        #[arg(long)]
        other_stack: bool,
    },
}

impl StateCommand {
    pub(super) fn stack(&self) -> &StackArgs {
        match self {
            StateCommand::Show { stack }
            | StateCommand::Unlock { stack, .. }
            | StateCommand::Pull { stack, .. }
            | StateCommand::Push { stack, .. } => stack,
        }
    }
}

pub(super) async fn run(command: StateCommand, shown: &Shown) -> u8 {
    let session = match open(command.stack()) {
        Ok(s) => s,
        Err(e) => return fail(shown, e),
    };
    let done = match command {
        StateCommand::Show { .. } => show(&session).await,
        StateCommand::Unlock { force, .. } => unlock(&session, force).await,
        StateCommand::Pull { out, .. } => pull(&session, out).await,
        StateCommand::Push {
            state_file,
            other_stack,
            ..
        } => push(&session, &state_file, other_stack).await,
    };
    done.unwrap_or_else(|e| fail(shown, e))
}

async fn show(session: &Session) -> Result<u8, OpsError> {
    let Some(state) = session.state.load().await? else {
        eprintln!(
            "no state yet at {} (run `howdah up`)",
            session.state.describe()
        );
        return Ok(exit::OK);
    };
    outln!("{}", describe(&state, &session.state.describe()));
    if state.identity() != session.identity() {
        outln!(
            "note: this stack file is {}; `up` and `down` refuse this state without --take-over-state",
            session.identity()
        );
    }
    match session.state.lock_holder().await {
        Ok(None) => outln!("lock: none"),
        Ok(Some(h)) => outln!(
            "lock: held by {} (pid {} on {}, `{}` since {}{})",
            h.owner,
            h.pid,
            h.host,
            h.command,
            h.since.format("%Y-%m-%d %H:%M:%S UTC"),
            match h.expires {
                Some(e) if h.expired() => format!(", expired {}", e.format("%H:%M:%S UTC")),
                Some(e) => format!(", expires {}", e.format("%H:%M:%S UTC")),
                None => String::new(),
            }
        ),
        Err(e) => outln!("lock: {e}"),
    }
    Ok(exit::OK)
}

/// The state as a reader wants it: whose it is, where, the last run, and
/// one line per resource.
fn describe(state: &State, at: &str) -> String {
    let time = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let mut lines = vec![
        format!("{} at {at}", state.identity()),
        format!("updated {}", time(&state.updated_at)),
    ];
    match &state.last_run {
        Some(run) => {
            let outcome = match (run.finished_at, run.ok, run.interrupted) {
                (None, ..) => "did not finish (still going, or stopped)".to_string(),
                (Some(_), _, true) => "interrupted".to_string(),
                (Some(_), true, _) => "ok".to_string(),
                (Some(_), false, _) => "failed".to_string(),
            };
            lines.push(format!(
                "last run: `{}` started {}{}: {outcome}",
                run.command,
                time(&run.started_at),
                run.finished_at
                    .map(|f| format!(", finished {}", time(&f)))
                    .unwrap_or_default(),
            ));
        }
        None => lines.push("last run: none recorded".into()),
    }
    if state.resources.is_empty() {
        lines.push("resources: none".into());
    } else {
        lines.push(format!("resources ({}):", state.resources.len()));
        let width = state.resources.keys().map(String::len).max().unwrap_or(0);
        for (id, r) in &state.resources {
            let mut line = format!(
                "  {id:width$}  {:<8} {:<8} {} ({:.1}s)",
                r.action,
                r.status,
                time(&r.at),
                r.elapsed_s
            );
            if let Some(error) = &r.error {
                line.push_str(&format!(": {error}"));
            }
            lines.push(line);
        }
    }
    lines.join("\n")
}

async fn unlock(session: &Session, force: bool) -> Result<u8, OpsError> {
    match session.state.unlock(force).await? {
        Unlocked::Removed(holder) => outln!(
            "removed the lock held by {} (pid {} on {}, `{}`)",
            holder.owner,
            holder.pid,
            holder.host,
            holder.command
        ),
        Unlocked::RemovedUnreadable => outln!(
            "removed the unreadable lock file {}",
            session.state.describe_lock()
        ),
        Unlocked::NotLocked => outln!("not locked"),
    }
    Ok(exit::OK)
}

async fn pull(session: &Session, out: Option<PathBuf>) -> Result<u8, OpsError> {
    let Some((_, bytes)) = session.state.load_raw().await? else {
        eprintln!(
            "no state at {}: nothing to pull (run `howdah up` first)",
            session.state.describe()
        );
        return Ok(exit::FAILED);
    };
    match out {
        None => {
            use std::io::Write as _;
            let _ = std::io::stdout().lock().write_all(&bytes);
        }
        Some(path) => {
            if let Err(e) = std::fs::write(&path, &bytes) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return Ok(exit::FAILED);
            }
            eprintln!(
                "wrote the state of {} from {} to {}",
                session.identity(),
                session.state.describe(),
                path.display()
            );
        }
    }
    Ok(exit::OK)
}

async fn push(
    session: &Session,
    file: &std::path::Path,
    other_stack: bool,
) -> Result<u8, OpsError> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return Ok(exit::FAILED);
        }
    };
    let state = State::parse(&bytes, &file.display().to_string())?;
    let (lock, stale) = session.state.lock("state push").await?;
    if let Some(stale) = stale {
        eprintln!(
            "warning: took over the lock of an earlier `{}` by {} (pid {} on {}) that is gone",
            stale.command, stale.owner, stale.pid, stale.host
        );
    }
    let pushed = session
        .state
        .push(&state, &session.identity(), other_stack)
        .await;
    let released = lock.release().await;
    pushed?;
    if let Err(e) = released {
        eprintln!("warning: {e}");
    }
    outln!(
        "pushed {} ({}, {} resources) to {}",
        file.display(),
        state.identity(),
        state.resources.len(),
        session.state.describe()
    );
    Ok(exit::OK)
}
