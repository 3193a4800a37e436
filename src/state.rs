//! The record of what howdah made for a stack: ids, outputs and timings per
//! resource, written atomically after every step, plus the lock that keeps
//! two runs off one stack. Never a secret: outputs are ids and endpoints.
//!
//! The state and lock logic lives here once; where the two objects are
//! kept (a local file, an S3 bucket) is a [`backend::Backend`].

pub mod backend;
mod s3;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::sync::MutexGuard;

use chrono::{DateTime, Utc};
use howdah_provider::{Intent, Intents, ProviderError};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::spec::StateUrl;
use backend::{Backend, BackendError, LocalFile, Object, Precondition, Version};

/// The state file's format version.
pub const FORMAT: u32 = 1;

/// Everything recorded for one stack.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub format: u32,
    pub stack: String,
    pub target: String,
    pub updated_at: DateTime<Utc>,
    pub resources: BTreeMap<String, ResourceRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunRecord>,
    /// Creates that were about to be sent and whose objects are not yet
    /// recorded (see [`howdah_provider::intent`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intents: Vec<Intent>,
}

impl State {
    pub fn new(stack: &str, target: &str) -> State {
        State {
            format: FORMAT,
            stack: stack.into(),
            target: target.into(),
            updated_at: Utc::now(),
            resources: BTreeMap::new(),
            last_run: None,
            intents: Vec::new(),
        }
    }

    /// Forgets the intents of `resource`: its object is recorded, or gone.
    pub fn clear_intents(&mut self, resource: &str) {
        self.intents.retain(|i| i.resource != resource);
    }
}

/// What the last step on one resource did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResourceRecord {
    /// create, update, replace, delete, no-op.
    pub action: String,
    /// applied, failed, deleted, skipped.
    pub status: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub outputs: serde_json::Value,
    pub at: DateTime<Utc>,
    pub elapsed_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The last command run on the stack.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    pub command: String,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub ok: bool,
    pub interrupted: bool,
    /// When each step of the run started and ended, in the order they
    /// ended (`howdah timeline`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepTiming>,
}

/// One step of a run, for the timeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepTiming {
    pub id: String,
    /// create, update, replace, delete, no-op.
    pub action: String,
    /// done, failed or skipped.
    pub outcome: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The steps it waited for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

impl State {
    /// A state as stored, checked: a newer format is refused before
    /// anything else is read (its fields may mean what this howdah cannot
    /// know), and anything that is not a state is corrupt. `at` names
    /// where it was read, for the message.
    pub fn parse(bytes: &[u8], at: &str) -> Result<State, StateError> {
        let corrupt = |e: serde_json::Error| StateError::Corrupt {
            at: at.to_string(),
            message: e.to_string(),
        };
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(corrupt)?;
        if let Some(found) = value["format"].as_u64().filter(|f| *f > u64::from(FORMAT)) {
            return Err(StateError::NewerFormat {
                at: at.to_string(),
                found,
            });
        }
        serde_json::from_value(value).map_err(corrupt)
    }

    /// Which stack this is the record of.
    pub fn identity(&self) -> StackIdentity {
        StackIdentity {
            stack: self.stack.clone(),
            target: self.target.clone(),
        }
    }
}

/// Who holds the lock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockInfo {
    pub owner: String,
    pub pid: u32,
    pub host: String,
    pub command: String,
    pub since: DateTime<Utc>,
    /// Remote locks: when the lock lapses unless its holder renews it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
}

impl LockInfo {
    /// Whether the lock is past its expiry (only remote locks have one).
    pub fn expired(&self) -> bool {
        self.expires.is_some_and(|e| e < Utc::now())
    }

    /// ", expires …" for a lock that has an expiry.
    fn expiry(&self) -> String {
        match self.expires {
            Some(e) if e < Utc::now() => format!(", expired {}", since(&e)),
            Some(e) => format!(", expires {} unless renewed", since(&e)),
            None => String::new(),
        }
    }
}

/// Which stack a state file is the record of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackIdentity {
    pub stack: String,
    pub target: String,
}

impl std::fmt::Display for StackIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stack `{}` on target `{}`", self.stack, self.target)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A remote store refused or failed; the message says what to do.
    #[error("{0}")]
    Remote(String),
    #[error("state file {at} is not valid: {message}; restore it from a backup, or move it away and run `howdah up` to rebuild it from what exists")]
    Corrupt { at: String, message: String },
    #[error("state file {at} has format {found}: it was written by a newer howdah; upgrade howdah (this one reads format {FORMAT}) and run again")]
    NewerFormat { at: String, found: u64 },
    #[error("state file {at} is the record of {recorded}, but this stack file is {wanted}; stack files sharing one state file overwrite each other's records. Give this stack its own state file (`state.path` in the stack file, or --state), or, if it is meant to take this one over, run `howdah up --take-over-state`")]
    OtherStack {
        at: String,
        // Boxed: every Result carrying a StateError would grow otherwise.
        recorded: Box<StackIdentity>,
        wanted: Box<StackIdentity>,
    },
    /// A conditional write was refused: someone wrote the state after this
    /// run read it.
    #[error("the state at {at} was changed by another run after this one read it, so it was not overwritten (nothing in it is lost); see what it holds now with `howdah state show -f <stack file>`, then run the command again: it starts from that state and finds what exists by its labels")]
    Changed { at: String },
    #[error("stack is locked by {} (pid {} on {}, `{}` since {}{}); if that run is gone, clear the lock with `howdah state unlock -f <stack file>`", .0.owner, .0.pid, .0.host, .0.command, since(&.0.since), .0.expiry())]
    Locked(LockInfo),
    #[error("lock file {at} is unreadable ({message}); if no howdah run is working on this stack, `howdah state unlock -f <stack file>` removes it")]
    LockUnreadable { at: String, message: String },
    #[error("not unlocked: the lock is held by a run still going on this host: pid {} (`{}` by {}, since {}); wait for it to finish, or stop it (kill {}), then run again", .0.pid, .0.command, .0.owner, since(&.0.since), .0.pid)]
    LockLive(LockInfo),
    #[error("not unlocked: the lock is held by {} on {} (pid {}, `{}` since {}{}), and howdah cannot tell from here whether that run is still going. Removing the lock of a live run lets two runs change the same stack at once; if you are sure it is gone, run `howdah state unlock -f <stack file> --force`", .0.owner, .0.host, .0.pid, .0.command, since(&.0.since), .0.expiry())]
    LockElsewhere(LockInfo),
    /// The lock lapsed during the run and another run took it.
    #[error("this run's lock on {at} was taken over by {} (pid {} on {}, `{}`) while it ran: it could not be renewed in time; check the state with `howdah state show -f <stack file>` before running again", .holder.owner, .holder.pid, .holder.host, .holder.command)]
    LockLost { at: String, holder: Box<LockInfo> },
}

impl StateError {
    fn from_backend(e: BackendError, changed_at: impl FnOnce() -> String) -> StateError {
        match e {
            BackendError::Conflict => StateError::Changed { at: changed_at() },
            BackendError::Io { what, path, source } => StateError::Io { what, path, source },
            BackendError::Remote(message) => StateError::Remote(message),
        }
    }
}

fn since(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// What `howdah state unlock` did.
#[derive(Debug, PartialEq)]
pub enum Unlocked {
    NotLocked,
    /// The lock of a run that is gone (or, with force, of one elsewhere).
    Removed(LockInfo),
    /// A lock file that could not be read, so held by no one known.
    RemovedUnreadable,
}

/// What the lock object says.
enum LockFile {
    Absent,
    Held(LockInfo, Version),
    Unreadable(String, Version),
}

/// The environment variable that shortens the lock's time to live, for
/// tests (seconds; default 120).
pub const LOCK_TTL_VAR: &str = "HOWDAH_STATE_LOCK_TTL_SECS";

const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(120);

fn lock_ttl() -> Duration {
    std::env::var(LOCK_TTL_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(DEFAULT_LOCK_TTL, Duration::from_secs)
}

/// Where a stack's state lives, as the command line or the stack file
/// gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    File(PathBuf),
    S3(StateUrl),
}

/// A stack's state and lock, wherever they are stored.
#[derive(Debug, Clone)]
pub struct StateStore {
    backend: Arc<dyn Backend>,
    /// The version of the state object this process last read or wrote,
    /// which the next write must still find: None before any read,
    /// Some(None) when there was no state.
    seen: Arc<Mutex<Option<Option<Version>>>>,
    location: StateLocation,
}

impl StateStore {
    /// The state file at `path`, its lock beside it.
    pub fn new(path: PathBuf) -> StateStore {
        StateStore::at(StateLocation::File(path), "")
    }

    /// The state of stack `stack` at `location`.
    pub fn at(location: StateLocation, stack: &str) -> StateStore {
        let backend: Arc<dyn Backend> = match &location {
            StateLocation::File(path) => Arc::new(LocalFile::new(path.clone())),
            StateLocation::S3(url) => Arc::new(s3::S3Backend::new(url.clone(), stack)),
        };
        StateStore {
            backend,
            seen: Arc::new(Mutex::new(None)),
            location,
        }
    }

    /// A store on any backend (tests: an in-memory one).
    #[cfg(test)]
    fn on(backend: Arc<dyn Backend>) -> StateStore {
        StateStore {
            backend,
            seen: Arc::new(Mutex::new(None)),
            location: StateLocation::File(PathBuf::from("memory")),
        }
    }

    pub fn location(&self) -> &StateLocation {
        &self.location
    }

    /// The state file's path, when it is a file on this machine.
    pub fn path(&self) -> Option<&Path> {
        match &self.location {
            StateLocation::File(p) => Some(p),
            StateLocation::S3(_) => None,
        }
    }

    /// Where the state is, for messages: a path or an s3:// URL.
    pub fn describe(&self) -> String {
        self.backend.locate(Object::State)
    }

    /// Where the lock is, for messages.
    pub fn describe_lock(&self) -> String {
        self.backend.locate(Object::Lock)
    }

    fn remember(&self, version: Option<Version>) {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(version);
    }

    /// The recorded state of `wanted`, or None if there is no state file
    /// yet. A state file of another stack or target is an error (the
    /// caller may take it over: [`StateError::OtherStack`]), as is one of a
    /// newer format.
    pub async fn load_for(&self, wanted: &StackIdentity) -> Result<Option<State>, StateError> {
        let Some(state) = self.load().await? else {
            return Ok(None);
        };
        let recorded = state.identity();
        if &recorded != wanted {
            return Err(StateError::OtherStack {
                at: self.describe(),
                recorded: Box::new(recorded),
                wanted: Box::new(wanted.clone()),
            });
        }
        Ok(Some(state))
    }

    /// The recorded state, whichever stack's, or None if there is no state
    /// file yet; a newer format or anything not a state is an error.
    pub async fn load(&self) -> Result<Option<State>, StateError> {
        match self.load_raw().await? {
            Some((state, _)) => Ok(Some(state)),
            None => Ok(None),
        }
    }

    /// The recorded state and its bytes as stored (`howdah state pull`).
    pub async fn load_raw(&self) -> Result<Option<(State, Vec<u8>)>, StateError> {
        let read = self
            .backend
            .read(Object::State)
            .await
            .map_err(|e| StateError::from_backend(e, || self.describe()))?;
        let Some(stored) = read else {
            self.remember(None);
            return Ok(None);
        };
        self.remember(Some(stored.version));
        let state = State::parse(&stored.bytes, &self.describe())?;
        Ok(Some((state, stored.bytes)))
    }

    /// Writes the state whole, only over the version this process last
    /// read or wrote (or only where there is none): a state another run
    /// wrote meanwhile is never overwritten ([`StateError::Changed`]).
    pub async fn save(&self, state: &State) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| StateError::Corrupt {
            at: self.describe(),
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let when = match seen.flatten() {
            Some(version) => Precondition::Matches(version),
            None => Precondition::Absent,
        };
        match self.backend.write(Object::State, &bytes, when).await {
            Ok(version) => {
                self.remember(Some(version));
                Ok(())
            }
            Err(BackendError::Conflict) => {
                // A write whose answer was lost and was sent again finds
                // its own first copy.
                match self.backend.read(Object::State).await {
                    Ok(Some(now)) if now.bytes == bytes => {
                        self.remember(Some(now.version));
                        Ok(())
                    }
                    _ => Err(StateError::Changed {
                        at: self.describe(),
                    }),
                }
            }
            Err(e) => Err(StateError::from_backend(e, || self.describe())),
        }
    }

    /// `howdah state push`: makes `state` the recorded state, under the
    /// caller's lock. Another stack's state (the one pushed, or the one
    /// there now) only with `other_stack`; over a state of a newer howdah
    /// never. A corrupt state there is replaced: pushing is how it is
    /// mended.
    pub async fn push(
        &self,
        state: &State,
        wanted: &StackIdentity,
        other_stack: bool,
    ) -> Result<(), StateError> {
        if state.format > FORMAT {
            return Err(StateError::NewerFormat {
                at: "the pushed file".into(),
                found: u64::from(state.format),
            });
        }
        let other = |recorded: StackIdentity, at: String| StateError::OtherStack {
            at,
            recorded: Box::new(recorded),
            wanted: Box::new(wanted.clone()),
        };
        if !other_stack && &state.identity() != wanted {
            return Err(other(state.identity(), "the pushed file".into()));
        }
        match self.load().await {
            Ok(Some(there)) if !other_stack && &there.identity() != wanted => {
                return Err(other(there.identity(), self.describe()))
            }
            Ok(_) | Err(StateError::Corrupt { .. }) => {}
            Err(e) => return Err(e),
        }
        self.save(state).await
    }

    /// Takes the lock. A lock left by a run that is gone is taken over and
    /// returned as `Some(stale)` so the caller can say so: on a remote
    /// store one past its expiry, in a local file one whose process no
    /// longer runs on this host. The takeover is itself conditional on the
    /// stale lock's version, so of two runs taking it over one wins. A
    /// live holder is an error, and so is a lock that cannot be read.
    pub async fn lock(&self, command: &str) -> Result<(StateLock, Option<LockInfo>), StateError> {
        let leases = self.backend.leases();
        let ttl = lock_ttl();
        let now = Utc::now();
        let info = LockInfo {
            owner: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
            pid: std::process::id(),
            host: hostname(),
            command: command.into(),
            since: now,
            expires: leases
                .then(|| chrono::Duration::from_std(ttl).ok().map(|d| now + d))
                .flatten(),
        };
        let body = lock_body(&info);
        let failed = |e| StateError::from_backend(e, || self.describe_lock());
        let mut stale = None;
        for _ in 0..3 {
            match self
                .backend
                .write(Object::Lock, &body, Precondition::Absent)
                .await
            {
                Ok(version) => return Ok((self.held(info, version, ttl), stale)),
                Err(BackendError::Conflict) => {}
                Err(e) => return Err(failed(e)),
            }
            match self.read_lock().await? {
                // Our own create, whose answer was lost and which was sent again.
                LockFile::Held(h, version) if h == info => {
                    return Ok((self.held(info, version, ttl), stale))
                }
                LockFile::Held(h, version) if is_stale(&h) => {
                    match self
                        .backend
                        .write(Object::Lock, &body, Precondition::Matches(version))
                        .await
                    {
                        Ok(version) => return Ok((self.held(info, version, ttl), Some(h))),
                        // Another run took it over first: look again.
                        Err(BackendError::Conflict) => stale = None,
                        Err(e) => return Err(failed(e)),
                    }
                }
                LockFile::Held(h, _) => return Err(StateError::Locked(h)),
                // Released this instant: try again.
                LockFile::Absent => {}
                // Perhaps being written this instant: try once more.
                LockFile::Unreadable(..) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        match self.read_lock().await? {
            LockFile::Held(h, _) => Err(StateError::Locked(h)),
            LockFile::Unreadable(message, _) => Err(StateError::LockUnreadable {
                at: self.describe_lock(),
                message,
            }),
            LockFile::Absent => Err(StateError::Remote(format!(
                "cannot take the lock {}: it was taken and released by other runs meanwhile; run again",
                self.describe_lock()
            ))),
        }
    }

    /// The handle of a lock just taken; on a remote store it renews the
    /// lock every third of its time to live until released.
    fn held(&self, info: LockInfo, version: Version, ttl: Duration) -> StateLock {
        let current = Arc::new(Mutex::new(Some(version)));
        let lost = Arc::new(Mutex::new(None));
        let renewal = self.backend.leases().then(|| {
            let stop = CancellationToken::new();
            let task = tokio::spawn(renew(
                self.backend.clone(),
                info,
                ttl,
                current.clone(),
                lost.clone(),
                stop.clone(),
            ));
            (stop, task)
        });
        StateLock {
            backend: self.backend.clone(),
            current,
            lost,
            renewal,
        }
    }

    /// Who holds the lock, if anyone; a lock file that cannot be read is
    /// an error that says how to remove it.
    pub async fn lock_holder(&self) -> Result<Option<LockInfo>, StateError> {
        match self.read_lock().await? {
            LockFile::Absent => Ok(None),
            LockFile::Held(h, _) => Ok(Some(h)),
            LockFile::Unreadable(message, _) => Err(StateError::LockUnreadable {
                at: self.describe_lock(),
                message,
            }),
        }
    }

    async fn read_lock(&self) -> Result<LockFile, StateError> {
        let read = self
            .backend
            .read(Object::Lock)
            .await
            .map_err(|e| StateError::from_backend(e, || self.describe_lock()))?;
        let Some(stored) = read else {
            return Ok(LockFile::Absent);
        };
        Ok(match serde_json::from_slice(&stored.bytes) {
            Ok(h) => LockFile::Held(h, stored.version),
            Err(e) if stored.bytes.is_empty() => {
                LockFile::Unreadable(format!("it is empty: {e}"), stored.version)
            }
            Err(e) => LockFile::Unreadable(format!("not a howdah lock: {e}"), stored.version),
        })
    }

    /// Removes the lock for `howdah state unlock`, when that cannot let
    /// two runs work on the stack at once: a holder that is gone from this
    /// host, a remote lock past its expiry, or a lock no one can be read
    /// from. A live holder on this host is refused; one on another host
    /// (or here, when this system cannot say whether it runs) only with
    /// `force`.
    pub async fn unlock(&self, force: bool) -> Result<Unlocked, StateError> {
        let mut lock = self.read_lock().await?;
        if let LockFile::Unreadable(..) = lock {
            // A run may be writing it this instant.
            tokio::time::sleep(Duration::from_millis(50)).await;
            lock = self.read_lock().await?;
        }
        let (removed, judged) = match lock {
            LockFile::Absent => return Ok(Unlocked::NotLocked),
            LockFile::Unreadable(_, version) => (Unlocked::RemovedUnreadable, version),
            LockFile::Held(holder, version) => {
                // A remote lock past its expiry is stale whoever held it.
                if !holder.expired() {
                    let here = if holder.host == hostname() {
                        process_alive(holder.pid)
                    } else {
                        None
                    };
                    match here {
                        Some(true) => return Err(StateError::LockLive(holder)),
                        None if !force => return Err(StateError::LockElsewhere(holder)),
                        Some(false) | None => {}
                    }
                }
                (Unlocked::Removed(holder), version)
            }
        };
        // Only the lock judged goes: a run that took it since keeps it.
        match self.read_lock().await? {
            LockFile::Absent => return Ok(Unlocked::NotLocked),
            LockFile::Held(_, now) | LockFile::Unreadable(_, now) if now == judged => {}
            LockFile::Held(h, _) => return Err(StateError::Locked(h)),
            LockFile::Unreadable(message, _) => {
                return Err(StateError::LockUnreadable {
                    at: self.describe_lock(),
                    message,
                })
            }
        }
        self.backend
            .delete(Object::Lock)
            .await
            .map_err(|e| StateError::from_backend(e, || self.describe_lock()))?;
        Ok(removed)
    }
}

/// The holder of a lock that could not be read back.
fn unknown_holder() -> LockInfo {
    LockInfo {
        owner: "another run".into(),
        pid: 0,
        host: "unknown".into(),
        command: "unknown".into(),
        since: Utc::now(),
        expires: None,
    }
}

fn lock_body(info: &LockInfo) -> Vec<u8> {
    serde_json::to_vec_pretty(info).unwrap_or_default()
}

/// Whether the holder of a lock is gone: past its expiry when it has one
/// (a remote lock), else no longer running on this host.
fn is_stale(holder: &LockInfo) -> bool {
    match holder.expires {
        Some(_) => holder.expired(),
        None => holder.host == hostname() && process_alive(holder.pid) == Some(false),
    }
}

/// Renews a remote lock every third of its time to live, each time only
/// over the version it wrote last, until told to stop. A renewal refused
/// because another run has taken the lock (it lapsed: the store could not
/// be reached in time) ends the renewals and is recorded in `lost`.
async fn renew(
    backend: Arc<dyn Backend>,
    mut info: LockInfo,
    ttl: Duration,
    current: Arc<Mutex<Option<Version>>>,
    lost: Arc<Mutex<Option<LockInfo>>>,
    stop: CancellationToken,
) {
    let every = (ttl / 3).max(Duration::from_millis(200));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let Some(version) = current.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return;
        };
        info.expires = chrono::Duration::from_std(ttl).ok().map(|d| Utc::now() + d);
        match backend
            .write(
                Object::Lock,
                &lock_body(&info),
                Precondition::Matches(version),
            )
            .await
        {
            Ok(version) => {
                *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(version);
            }
            Err(BackendError::Conflict) => {
                let holder = match backend.read(Object::Lock).await {
                    Ok(Some(stored)) => serde_json::from_slice(&stored.bytes).ok(),
                    _ => None,
                };
                tracing::warn!(
                    lock = %backend.locate(Object::Lock),
                    "the lock was taken over by another run; no longer renewing it"
                );
                *lost.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(holder.unwrap_or(unknown_holder()));
                *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
                return;
            }
            // The store did not answer this time; the lock still has two
            // thirds of its life to try again in.
            Err(e) => tracing::warn!(error = %e, "cannot renew the state lock; trying again"),
        }
    }
}

/// The state of a run that writes, shared by the run (a record per step)
/// and its steps (intents before creates): every change is saved at once,
/// one save at a time, so neither writer overwrites the other's (and the
/// store's conditional write never sees this run as a rival).
pub struct StateWriter {
    store: StateStore,
    state: Mutex<State>,
    saving: tokio::sync::Mutex<()>,
}

impl StateWriter {
    pub fn new(store: StateStore, state: State) -> StateWriter {
        StateWriter {
            store,
            state: Mutex::new(state),
            saving: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding it leaves a whole State (every change is
        // made before the save): take it rather than propagate the poison.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state as it is now.
    pub fn snapshot(&self) -> State {
        self.lock().clone()
    }

    /// Changes the state without saving it; [`StateWriter::save`] follows.
    pub fn modify<R>(&self, change: impl FnOnce(&mut State) -> R) -> R {
        change(&mut self.lock())
    }

    /// Saves the state as it is now.
    pub async fn save(&self) -> Result<(), StateError> {
        let _one_at_a_time = self.saving.lock().await;
        let snapshot = self.snapshot();
        self.store.save(&snapshot).await
    }

    /// Changes the state and saves it.
    pub async fn update<R>(&self, change: impl FnOnce(&mut State) -> R) -> Result<R, StateError> {
        let out = self.modify(change);
        self.save().await?;
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Intents for StateWriter {
    fn recorded(&self) -> Vec<Intent> {
        self.lock().intents.clone()
    }

    async fn record(&self, intent: Intent) -> Result<(), ProviderError> {
        let what = format!("{} {}", intent.kind, intent.name);
        self.update(|state| {
            state
                .intents
                .retain(|i| !(i.kind == intent.kind && i.name == intent.name));
            state.intents.push(intent);
        })
        .await
        .map_err(|e| {
            ProviderError::config(format!(
                "not creating {what}: the intent to create it could not be recorded ({e}); \
                 without it a run that stops halfway could not tell the object is this stack's. \
                 Fix the state's location and run again"
            ))
        })
    }
}

/// Held while a run works on the stack. [`StateLock::release`] removes
/// it at the end of the run; dropped without that (a panic), it is
/// removed as well as can be done without waiting.
#[derive(Debug)]
pub struct StateLock {
    backend: Arc<dyn Backend>,
    /// The version of the lock object this run wrote last; None once
    /// released, or lost to another run.
    current: Arc<Mutex<Option<Version>>>,
    lost: Arc<Mutex<Option<LockInfo>>>,
    renewal: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl StateLock {
    /// Stops renewing the lock and removes it, unless another run took it
    /// over meanwhile ([`StateError::LockLost`], naming that run).
    pub async fn release(mut self) -> Result<(), StateError> {
        if let Some((stop, task)) = self.renewal.take() {
            stop.cancel();
            let _ = task.await;
        }
        let current = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let at = || self.backend.locate(Object::Lock);
        if let Some(holder) = self.lost.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(StateError::LockLost {
                at: at(),
                holder: Box::new(holder),
            });
        }
        let Some(mine) = current else {
            return Ok(());
        };
        let now = self
            .backend
            .read(Object::Lock)
            .await
            .map_err(|e| StateError::from_backend(e, at))?;
        match now {
            Some(stored) if stored.version == mine => self
                .backend
                .delete(Object::Lock)
                .await
                .map_err(|e| StateError::from_backend(e, at)),
            Some(stored) => Err(StateError::LockLost {
                at: at(),
                holder: Box::new(serde_json::from_slice(&stored.bytes).unwrap_or(unknown_holder())),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.renewal.take() {
            stop.cancel();
            task.abort();
        }
        let held = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some();
        if !held || self.backend.delete_now(Object::Lock) {
            return;
        }
        // A remote lock: removed by a task, if the runtime lives on long
        // enough to run it; else it lapses at its expiry.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let backend = self.backend.clone();
            runtime.spawn(async move {
                let _ = backend.delete(Object::Lock).await;
            });
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether a process with `pid` runs on this host; None when there is no
/// /proc to ask (callers then treat it as alive, the safe answer).
fn process_alive(pid: u32) -> Option<bool> {
    Path::new("/proc/self")
        .exists()
        .then(|| Path::new(&format!("/proc/{pid}")).exists())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn lock_path(store: &StateStore) -> PathBuf {
        PathBuf::from(store.describe_lock())
    }

    #[tokio::test]
    async fn save_then_load_round_trips_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join(".howdah/s.state.json"));
        assert!(store.load().await.unwrap().is_none());
        let mut state = State::new("s", "kubeconfig");
        state.resources.insert(
            "runtime.etcd".into(),
            ResourceRecord {
                action: "create".into(),
                status: "applied".into(),
                outputs: serde_json::json!({"uid": "1"}),
                at: Utc::now(),
                elapsed_s: 1.5,
                error: None,
            },
        );
        store.save(&state).await.unwrap();
        assert_eq!(store.load().await.unwrap().unwrap(), state);
        let names: Vec<_> = fs::read_dir(dir.path().join(".howdah")).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    /// An intent is in the state file the moment it is recorded (before
    /// the create it announces), next to what the run recorded, and a
    /// second intent for the same object replaces the first.
    #[tokio::test]
    async fn intents_are_saved_at_once_beside_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s.json"));
        let writer = StateWriter::new(store.clone(), State::new("s", "aws"));
        writer
            .update(|s| {
                s.resources.insert(
                    "aws.network".into(),
                    ResourceRecord {
                        action: "create".into(),
                        status: "applied".into(),
                        outputs: serde_json::json!({"vpc_id": "vpc-1"}),
                        at: Utc::now(),
                        elapsed_s: 1.0,
                        error: None,
                    },
                )
            })
            .await
            .unwrap();
        let intent = |token: &str| Intent {
            resource: "aws.s3_bucket".into(),
            kind: "s3.bucket".into(),
            name: "data".into(),
            token: Some(token.into()),
            at: Utc::now(),
        };
        writer.record(intent("one")).await.unwrap();
        writer.record(intent("two")).await.unwrap();
        let saved = store.load().await.unwrap().unwrap();
        assert_eq!(saved.intents.len(), 1, "{:?}", saved.intents);
        assert_eq!(saved.intents[0].token.as_deref(), Some("two"));
        assert!(saved.resources.contains_key("aws.network"));
        writer
            .update(|s| s.clear_intents("aws.s3_bucket"))
            .await
            .unwrap();
        assert!(store.load().await.unwrap().unwrap().intents.is_empty());
    }

    #[tokio::test]
    async fn corrupt_state_says_how_to_recover() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        fs::write(&path, "{not json").unwrap();
        let err = StateStore::new(path).load().await.unwrap_err().to_string();
        assert!(err.contains("rebuild"), "{err}");
    }

    #[tokio::test]
    async fn a_live_lock_blocks_a_second_run_and_unlock_will_not_clear_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s.json"));
        let (held, stale) = store.lock("up").await.unwrap();
        assert!(stale.is_none());
        let err = store.lock("down").await.unwrap_err();
        assert!(matches!(err, StateError::Locked(ref h) if h.pid == std::process::id()));
        assert!(err.to_string().contains("state unlock"));
        for force in [false, true] {
            let err = store.unlock(force).await.unwrap_err();
            assert!(matches!(err, StateError::LockLive(_)), "{err}");
            assert!(err.to_string().contains("wait for it"), "{err}");
        }
        drop(held);
        let (_again, _) = store.lock("up").await.unwrap();
    }

    #[tokio::test]
    async fn a_lock_held_on_another_host_is_removed_only_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s.json"));
        let elsewhere = LockInfo {
            owner: "ci".into(),
            pid: 1,
            host: format!("not-{}", hostname()),
            command: "up".into(),
            since: Utc::now(),
            expires: None,
        };
        fs::write(lock_path(&store), serde_json::to_vec(&elsewhere).unwrap()).unwrap();
        let err = store.unlock(false).await.unwrap_err();
        assert!(err.to_string().contains("two runs"), "{err}");
        assert!(store.lock_holder().await.unwrap().is_some());
        assert_eq!(
            store.unlock(true).await.unwrap(),
            Unlocked::Removed(elsewhere)
        );
        assert_eq!(store.unlock(false).await.unwrap(), Unlocked::NotLocked);
    }

    #[tokio::test]
    async fn an_unreadable_lock_says_how_to_remove_it_and_unlock_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s.json"));
        fs::write(lock_path(&store), "{oops").unwrap();
        let err = store.lock("up").await.unwrap_err().to_string();
        assert!(
            err.contains("unreadable") && err.contains("howdah state unlock -f"),
            "{err}"
        );
        assert!(err.contains(lock_path(&store).to_str().unwrap()), "{err}");
        assert_eq!(
            store.unlock(false).await.unwrap(),
            Unlocked::RemovedUnreadable
        );
        let (_lock, _) = store.lock("up").await.unwrap();
    }

    #[tokio::test]
    async fn a_state_of_another_stack_or_a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s.json"));
        store
            .save(&State::new("alpha", "kubeconfig"))
            .await
            .unwrap();
        let beta = StackIdentity {
            stack: "beta".into(),
            target: "kubeconfig".into(),
        };
        let err = store.load_for(&beta).await.unwrap_err().to_string();
        assert!(err.contains("`alpha`") && err.contains("`beta`"), "{err}");
        let alpha = StackIdentity {
            stack: "alpha".into(),
            target: "kubeconfig".into(),
        };
        assert!(store.load_for(&alpha).await.unwrap().is_some());

        let mut newer = serde_json::to_value(State::new("alpha", "kubeconfig")).unwrap();
        newer["format"] = (FORMAT + 1).into();
        newer["resources"] = serde_json::json!([{"a": "list, this time"}]);
        fs::write(store.path().unwrap(), newer.to_string()).unwrap();
        let err = store.load_for(&alpha).await.unwrap_err().to_string();
        assert!(err.contains("written by a newer howdah; upgrade"), "{err}");
    }

    #[tokio::test]
    async fn a_lock_of_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s.json"));
        let dead = LockInfo {
            owner: "ci".into(),
            pid: u32::MAX - 1,
            host: hostname(),
            command: "up".into(),
            since: Utc::now(),
            expires: None,
        };
        fs::write(lock_path(&store), serde_json::to_vec(&dead).unwrap()).unwrap();
        let (_lock, stale) = store.lock("up").await.unwrap();
        assert_eq!(stale.unwrap().pid, u32::MAX - 1);
    }

    #[tokio::test]
    async fn dropping_the_lock_releases_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s.json"));
        drop(store.lock("up").await.unwrap());
        assert!(store.lock_holder().await.unwrap().is_none());
    }

    /// A store with S3's semantics (versions that change on every write,
    /// locks with a lease), in memory.
    #[derive(Debug, Default)]
    struct Memory {
        objects: Mutex<BTreeMap<&'static str, (Vec<u8>, u64)>>,
        writes: std::sync::atomic::AtomicU64,
    }

    fn name(object: Object) -> &'static str {
        match object {
            Object::State => "state",
            Object::Lock => "lock",
        }
    }

    #[async_trait::async_trait]
    impl Backend for Memory {
        fn locate(&self, object: Object) -> String {
            format!("mem://{}", name(object))
        }
        fn leases(&self) -> bool {
            true
        }
        async fn read(&self, object: Object) -> Result<Option<backend::Stored>, BackendError> {
            Ok(self
                .objects
                .lock()
                .unwrap()
                .get(name(object))
                .map(|(b, v)| backend::Stored {
                    bytes: b.clone(),
                    version: Version(v.to_string()),
                }))
        }
        async fn write(
            &self,
            object: Object,
            bytes: &[u8],
            when: Precondition,
        ) -> Result<Version, BackendError> {
            let mut objects = self.objects.lock().unwrap();
            let now = objects
                .get(name(object))
                .map(|(_, v)| Version(v.to_string()));
            let holds = match &when {
                Precondition::Absent => now.is_none(),
                Precondition::Matches(v) => now.as_ref() == Some(v),
            };
            if !holds {
                return Err(BackendError::Conflict);
            }
            let v = self
                .writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            objects.insert(name(object), (bytes.to_vec(), v));
            Ok(Version(v.to_string()))
        }
        async fn delete(&self, object: Object) -> Result<(), BackendError> {
            self.objects.lock().unwrap().remove(name(object));
            Ok(())
        }
    }

    fn lock_expiring(host: &str, in_secs: i64) -> Vec<u8> {
        lock_body(&LockInfo {
            owner: "ci".into(),
            pid: 7,
            host: host.into(),
            command: "up".into(),
            since: Utc::now(),
            expires: Some(Utc::now() + chrono::Duration::seconds(in_secs)),
        })
    }

    #[tokio::test]
    async fn a_leased_lock_is_refused_while_live_and_taken_over_once_expired() {
        let memory = Arc::new(Memory::default());
        let store = StateStore::on(memory.clone());
        memory
            .write(
                Object::Lock,
                &lock_expiring("elsewhere", 60),
                Precondition::Absent,
            )
            .await
            .unwrap();
        let err = store.lock("up").await.unwrap_err();
        assert!(matches!(err, StateError::Locked(ref h) if h.host == "elsewhere"));
        assert!(err.to_string().contains("unless renewed"), "{err}");
        assert!(matches!(
            store.unlock(false).await,
            Err(StateError::LockElsewhere(_))
        ));

        memory.delete(Object::Lock).await.unwrap();
        memory
            .write(
                Object::Lock,
                &lock_expiring("elsewhere", -1),
                Precondition::Absent,
            )
            .await
            .unwrap();
        let (held, stale) = store.lock("up").await.unwrap();
        assert_eq!(stale.unwrap().host, "elsewhere");
        let mine = store.lock_holder().await.unwrap().unwrap();
        assert_eq!(mine.pid, std::process::id());
        assert!(mine.expires.unwrap() > Utc::now());
        held.release().await.unwrap();
        assert!(store.lock_holder().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_state_written_by_another_run_after_it_was_read_is_not_overwritten() {
        let memory = Arc::new(Memory::default());
        let store = StateStore::on(memory.clone());
        assert!(store.load().await.unwrap().is_none());
        store.save(&State::new("s", "kubeconfig")).await.unwrap();
        store.save(&State::new("s", "kubeconfig")).await.unwrap();

        let other = StateStore::on(memory.clone());
        other.load().await.unwrap();
        let mut theirs = State::new("s", "kubeconfig");
        theirs.target = "theirs".into();
        other.save(&theirs).await.unwrap();

        let err = store
            .save(&State::new("s", "kubeconfig"))
            .await
            .unwrap_err();
        assert!(matches!(err, StateError::Changed { .. }), "{err}");
        assert!(err.to_string().contains("mem://state"), "{err}");
        assert_eq!(store.load().await.unwrap().unwrap().target, "theirs");

        // A fresh store that never read it must not create over it either.
        let blind = StateStore::on(memory);
        assert!(blind.save(&State::new("s", "kubeconfig")).await.is_err());
    }

    #[tokio::test]
    async fn a_live_lease_is_renewed_and_a_lock_taken_meanwhile_is_not_removed() {
        std::env::set_var(LOCK_TTL_VAR, "1");
        let memory = Arc::new(Memory::default());
        let store = StateStore::on(memory.clone());
        let (held, _) = store.lock("up").await.unwrap();
        let first = store.lock_holder().await.unwrap().unwrap().expires.unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        let renewed = store.lock_holder().await.unwrap().unwrap().expires.unwrap();
        assert!(renewed > first, "renewed: {first} -> {renewed}");

        // Another run writes the lock (as after a lapse): release leaves it.
        let current = memory.read(Object::Lock).await.unwrap().unwrap().version;
        memory
            .write(
                Object::Lock,
                &lock_expiring("elsewhere", 60),
                Precondition::Matches(current),
            )
            .await
            .unwrap();
        let err = held.release().await.unwrap_err();
        assert!(err.to_string().contains("taken over by ci"), "{err}");
        assert_eq!(
            store.lock_holder().await.unwrap().unwrap().host,
            "elsewhere"
        );
        std::env::remove_var(LOCK_TTL_VAR);
    }
}
