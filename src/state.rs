//! The record of what howdah made for a stack: ids, outputs and timings per
//! resource, written atomically after every step, plus the lock that keeps
//! two runs off one stack. Never a secret: outputs are ids and endpoints.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use howdah_provider::{Intent, Intents, ProviderError};
use serde::{Deserialize, Serialize};

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

/// Who holds the lock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockInfo {
    pub owner: String,
    pub pid: u32,
    pub host: String,
    pub command: String,
    pub since: DateTime<Utc>,
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
    #[error("state file {path} is not valid: {message}; restore it from a backup, or move it away and run `howdah up` to rebuild it from what exists")]
    Corrupt { path: PathBuf, message: String },
    #[error("state file {path} has format {found}: it was written by a newer howdah; upgrade howdah (this one reads format {FORMAT}) and run again")]
    NewerFormat { path: PathBuf, found: u64 },
    #[error("state file {path} is the record of {recorded}, but this stack file is {wanted}; stack files sharing one state file overwrite each other's records. Give this stack its own state file (`state.path` in the stack file, or --state), or, if it is meant to take this one over, run `howdah up --take-over-state`")]
    OtherStack {
        path: PathBuf,
        // Boxed: every Result carrying a StateError would grow otherwise.
        recorded: Box<StackIdentity>,
        wanted: Box<StackIdentity>,
    },
    #[error("stack is locked by {} (pid {} on {}, `{}` since {}); if that run is gone, clear the lock with `howdah state unlock -f <stack file>`", .0.owner, .0.pid, .0.host, .0.command, since(&.0.since))]
    Locked(LockInfo),
    #[error("lock file {path} is unreadable ({message}); if no howdah run is working on this stack, `howdah state unlock -f <stack file>` removes it")]
    LockUnreadable { path: PathBuf, message: String },
    #[error("not unlocked: the lock is held by a run still going on this host: pid {} (`{}` by {}, since {}); wait for it to finish, or stop it (kill {}), then run again", .0.pid, .0.command, .0.owner, since(&.0.since), .0.pid)]
    LockLive(LockInfo),
    #[error("not unlocked: the lock is held by {} on {} (pid {}, `{}` since {}), and howdah cannot tell from here whether that run is still going. Removing the lock of a live run lets two runs change the same stack at once; if you are sure it is gone, run `howdah state unlock -f <stack file> --force`", .0.owner, .0.host, .0.pid, .0.command, since(&.0.since))]
    LockElsewhere(LockInfo),
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

/// What the lock file says.
enum LockFile {
    Absent,
    Held(LockInfo),
    Unreadable(String),
}

/// Where a stack's state and lock live.
#[derive(Debug, Clone)]
pub struct StateStore {
    path: PathBuf,
}

impl StateStore {
    pub fn new(path: PathBuf) -> StateStore {
        StateStore { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file: the state file's path with `.lock` added.
    pub fn lock_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".lock");
        PathBuf::from(p)
    }

    /// The recorded state of `wanted`, or None if there is no state file
    /// yet. A state file of another stack or target is an error (the
    /// caller may take it over: [`StateError::OtherStack`]), as is one of a
    /// newer format.
    pub fn load_for(&self, wanted: &StackIdentity) -> Result<Option<State>, StateError> {
        let Some(state) = self.load()? else {
            return Ok(None);
        };
        let recorded = StackIdentity {
            stack: state.stack.clone(),
            target: state.target.clone(),
        };
        if &recorded != wanted {
            return Err(StateError::OtherStack {
                path: self.path.clone(),
                recorded: Box::new(recorded),
                wanted: Box::new(wanted.clone()),
            });
        }
        Ok(Some(state))
    }

    /// The recorded state, whichever stack's, or None if there is no state
    /// file yet. A newer format is refused before anything else is read:
    /// its fields may mean what this howdah cannot know.
    pub fn load(&self) -> Result<Option<State>, StateError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Io {
                    what: "read",
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let corrupt = |e: serde_json::Error| StateError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(corrupt)?;
        if let Some(found) = value["format"].as_u64().filter(|f| *f > u64::from(FORMAT)) {
            return Err(StateError::NewerFormat {
                path: self.path.clone(),
                found,
            });
        }
        serde_json::from_value(value).map(Some).map_err(corrupt)
    }

    /// Writes the state so that a crash leaves either the old or the new
    /// file, never half of one: write a sibling, fsync, rename over.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let io = |what, source| StateError::Io {
            what,
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
        }
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(format!(".tmp.{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let text = serde_json::to_vec_pretty(state).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let mut file = fs::File::create(&tmp).map_err(|e| io("write", e))?;
        file.write_all(&text).map_err(|e| io("write", e))?;
        file.write_all(b"\n").map_err(|e| io("write", e))?;
        file.sync_all().map_err(|e| io("sync", e))?;
        fs::rename(&tmp, &self.path).map_err(|e| io("replace", e))?;
        Ok(())
    }

    /// Takes the lock. A lock left by a process that no longer runs on this
    /// host (killed, crashed) is taken over and returned as `Some(stale)` so
    /// the caller can say so; a live or foreign holder is an error, and so
    /// is a lock file that cannot be read.
    pub fn lock(&self, command: &str) -> Result<(StateLock, Option<LockInfo>), StateError> {
        let path = self.lock_path();
        let io = |what, source| StateError::Io {
            what,
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
        }
        let info = LockInfo {
            owner: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
            pid: std::process::id(),
            host: hostname(),
            command: command.into(),
            since: Utc::now(),
        };
        let body = serde_json::to_vec_pretty(&info).unwrap_or_default();
        let mut stale = None;
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(&body).map_err(|e| io("write", e))?;
                    return Ok((StateLock { path: path.clone() }, stale));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    match self.read_lock()? {
                        LockFile::Held(h)
                            if h.host == info.host && process_alive(h.pid) == Some(false) =>
                        {
                            fs::remove_file(&path).map_err(|e| io("remove the stale lock", e))?;
                            stale = Some(h);
                        }
                        LockFile::Held(h) => return Err(StateError::Locked(h)),
                        // Released this instant: try again.
                        LockFile::Absent => {}
                        // Perhaps being written this instant: try once more.
                        LockFile::Unreadable(_) => {
                            std::thread::sleep(std::time::Duration::from_millis(50))
                        }
                    }
                }
                Err(e) => return Err(io("create", e)),
            }
        }
        match self.read_lock()? {
            LockFile::Held(h) => Err(StateError::Locked(h)),
            LockFile::Unreadable(message) => Err(StateError::LockUnreadable {
                path: path.clone(),
                message,
            }),
            LockFile::Absent => Err(io(
                "take",
                std::io::Error::other(
                    "the lock was taken and released by other runs meanwhile; run again",
                ),
            )),
        }
    }

    /// Who holds the lock, if anyone; a lock file that cannot be read is
    /// an error that says how to remove it.
    pub fn lock_holder(&self) -> Result<Option<LockInfo>, StateError> {
        match self.read_lock()? {
            LockFile::Absent => Ok(None),
            LockFile::Held(h) => Ok(Some(h)),
            LockFile::Unreadable(message) => Err(StateError::LockUnreadable {
                path: self.lock_path(),
                message,
            }),
        }
    }

    fn read_lock(&self) -> Result<LockFile, StateError> {
        match fs::read(self.lock_path()) {
            Ok(bytes) => Ok(match serde_json::from_slice(&bytes) {
                Ok(h) => LockFile::Held(h),
                Err(e) if bytes.is_empty() => LockFile::Unreadable(format!("it is empty: {e}")),
                Err(e) => LockFile::Unreadable(format!("not a howdah lock: {e}")),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LockFile::Absent),
            Err(source) => Err(StateError::Io {
                what: "read",
                path: self.lock_path(),
                source,
            }),
        }
    }

    /// Removes the lock for `howdah state unlock`, when that cannot let
    /// two runs work on the stack at once: a holder that is gone from this
    /// host, or a lock no one can be read from. A live holder on this host
    /// is refused; one on another host (or here, when this system cannot
    /// say whether it runs) only with `force`.
    pub fn unlock(&self, force: bool) -> Result<Unlocked, StateError> {
        let mut lock = self.read_lock()?;
        if let LockFile::Unreadable(_) = lock {
            // A run may be writing it this instant.
            std::thread::sleep(std::time::Duration::from_millis(50));
            lock = self.read_lock()?;
        }
        let removed = match lock {
            LockFile::Absent => return Ok(Unlocked::NotLocked),
            LockFile::Unreadable(_) => Unlocked::RemovedUnreadable,
            LockFile::Held(holder) => {
                let here = if holder.host == hostname() {
                    process_alive(holder.pid)
                } else {
                    None
                };
                match here {
                    Some(true) => return Err(StateError::LockLive(holder)),
                    None if !force => return Err(StateError::LockElsewhere(holder)),
                    Some(false) | None => Unlocked::Removed(holder),
                }
            }
        };
        match fs::remove_file(self.lock_path()) {
            Ok(()) => Ok(removed),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Unlocked::NotLocked),
            Err(source) => Err(StateError::Io {
                what: "remove",
                path: self.lock_path(),
                source,
            }),
        }
    }
}

/// The state of a run that writes, shared by the run (a record per step)
/// and its steps (intents before creates): every change is saved at once,
/// under one lock, so neither writer overwrites the other's.
pub struct StateWriter {
    store: StateStore,
    state: Mutex<State>,
}

impl StateWriter {
    pub fn new(store: StateStore, state: State) -> StateWriter {
        StateWriter {
            store,
            state: Mutex::new(state),
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

    /// Changes the state and saves it.
    pub fn update<R>(&self, change: impl FnOnce(&mut State) -> R) -> Result<R, StateError> {
        let mut state = self.lock();
        let out = change(&mut state);
        self.store.save(&state)?;
        Ok(out)
    }
}

impl Intents for StateWriter {
    fn recorded(&self) -> Vec<Intent> {
        self.lock().intents.clone()
    }

    fn record(&self, intent: Intent) -> Result<(), ProviderError> {
        let what = format!("{} {}", intent.kind, intent.name);
        self.update(|state| {
            state
                .intents
                .retain(|i| !(i.kind == intent.kind && i.name == intent.name));
            state.intents.push(intent);
        })
        .map_err(|e| {
            ProviderError::config(format!(
                "not creating {what}: the intent to create it could not be recorded ({e}); \
                 without it a run that stops halfway could not tell the object is this stack's. \
                 Fix the state file's location and run again"
            ))
        })
    }
}

/// Held while a run works on the stack; released on drop.
#[derive(Debug)]
pub struct StateLock {
    path: PathBuf,
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
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

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join(".howdah/s.state.json"));
        assert!(store.load().unwrap().is_none());
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
        store.save(&state).unwrap();
        assert_eq!(store.load().unwrap().unwrap(), state);
        let names: Vec<_> = fs::read_dir(dir.path().join(".howdah")).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    /// An intent is in the state file the moment it is recorded (before
    /// the create it announces), next to what the run recorded, and a
    /// second intent for the same object replaces the first.
    #[test]
    fn intents_are_saved_at_once_beside_the_records() {
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
            .unwrap();
        let intent = |token: &str| Intent {
            resource: "aws.s3_bucket".into(),
            kind: "s3.bucket".into(),
            name: "data".into(),
            token: Some(token.into()),
            at: Utc::now(),
        };
        writer.record(intent("one")).unwrap();
        writer.record(intent("two")).unwrap();
        let saved = store.load().unwrap().unwrap();
        assert_eq!(saved.intents.len(), 1, "{:?}", saved.intents);
        assert_eq!(saved.intents[0].token.as_deref(), Some("two"));
        assert!(saved.resources.contains_key("aws.network"));
        writer.update(|s| s.clear_intents("aws.s3_bucket")).unwrap();
        assert!(store.load().unwrap().unwrap().intents.is_empty());
    }

    #[test]
    fn corrupt_state_says_how_to_recover() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        fs::write(&path, "{not json").unwrap();
        let err = StateStore::new(path).load().unwrap_err().to_string();
        assert!(err.contains("rebuild"), "{err}");
    }

    #[test]
    fn a_live_lock_blocks_a_second_run_and_unlock_will_not_clear_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s.json"));
        let (held, stale) = store.lock("up").unwrap();
        assert!(stale.is_none());
        let err = store.lock("down").unwrap_err();
        assert!(matches!(err, StateError::Locked(ref h) if h.pid == std::process::id()));
        assert!(err.to_string().contains("state unlock"));
        for force in [false, true] {
            let err = store.unlock(force).unwrap_err();
            assert!(matches!(err, StateError::LockLive(_)), "{err}");
            assert!(err.to_string().contains("wait for it"), "{err}");
        }
        drop(held);
        let (_again, _) = store.lock("up").unwrap();
    }

    #[test]
    fn a_lock_held_on_another_host_is_removed_only_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s.json"));
        let elsewhere = LockInfo {
            owner: "ci".into(),
            pid: 1,
            host: format!("not-{}", hostname()),
            command: "up".into(),
            since: Utc::now(),
        };
        fs::write(store.lock_path(), serde_json::to_vec(&elsewhere).unwrap()).unwrap();
        let err = store.unlock(false).unwrap_err();
        assert!(err.to_string().contains("two runs"), "{err}");
        assert!(store.lock_holder().unwrap().is_some());
        assert_eq!(store.unlock(true).unwrap(), Unlocked::Removed(elsewhere));
        assert_eq!(store.unlock(false).unwrap(), Unlocked::NotLocked);
    }

    #[test]
    fn an_unreadable_lock_says_how_to_remove_it_and_unlock_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s.json"));
        fs::write(store.lock_path(), "{oops").unwrap();
        let err = store.lock("up").unwrap_err().to_string();
        assert!(
            err.contains("unreadable") && err.contains("howdah state unlock -f"),
            "{err}"
        );
        assert!(err.contains(store.lock_path().to_str().unwrap()), "{err}");
        assert_eq!(store.unlock(false).unwrap(), Unlocked::RemovedUnreadable);
        let (_lock, _) = store.lock("up").unwrap();
    }

    #[test]
    fn a_state_of_another_stack_or_a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s.json"));
        store.save(&State::new("alpha", "kubeconfig")).unwrap();
        let beta = StackIdentity {
            stack: "beta".into(),
            target: "kubeconfig".into(),
        };
        let err = store.load_for(&beta).unwrap_err().to_string();
        assert!(err.contains("`alpha`") && err.contains("`beta`"), "{err}");
        let alpha = StackIdentity {
            stack: "alpha".into(),
            target: "kubeconfig".into(),
        };
        assert!(store.load_for(&alpha).unwrap().is_some());

        let mut newer = serde_json::to_value(State::new("alpha", "kubeconfig")).unwrap();
        newer["format"] = (FORMAT + 1).into();
        newer["resources"] = serde_json::json!([{"a": "list, this time"}]);
        fs::write(store.path(), newer.to_string()).unwrap();
        let err = store.load_for(&alpha).unwrap_err().to_string();
        assert!(err.contains("written by a newer howdah; upgrade"), "{err}");
    }

    #[test]
    fn a_lock_of_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s.json"));
        let dead = LockInfo {
            owner: "ci".into(),
            pid: u32::MAX - 1,
            host: hostname(),
            command: "up".into(),
            since: Utc::now(),
        };
        fs::write(store.lock_path(), serde_json::to_vec(&dead).unwrap()).unwrap();
        let (_lock, stale) = store.lock("up").unwrap();
        assert_eq!(stale.unwrap().pid, u32::MAX - 1);
    }

    #[test]
    fn dropping_the_lock_releases_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s.json"));
        drop(store.lock("up").unwrap());
        assert!(store.lock_holder().unwrap().is_none());
    }
}
