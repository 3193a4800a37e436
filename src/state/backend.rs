//! Where a stack's state and lock are stored: the few object operations
//! the state and lock logic ([`super::StateStore`]) needs, each with the
//! precondition that makes it safe when two runs race. The local file is
//! one backend, S3 another; GCS and Azure Blob implement the same trait.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

/// The two objects of a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    State,
    Lock,
}

/// What one stored version of an object is known by: an ETag on S3, a
/// digest of the contents for a local file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(pub String);

/// An object's contents with the version they were read at.
#[derive(Debug, Clone)]
pub struct Stored {
    pub bytes: Vec<u8>,
    pub version: Version,
}

/// When a write may happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Only if there is no object (create; `If-None-Match: *`).
    Absent,
    /// Only if the object is still at this version (`If-Match`).
    Matches(Version),
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The precondition did not hold: another run wrote (or removed) the
    /// object since it was read.
    #[error("the object changed since it was read")]
    Conflict,
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A remote store refused or failed; the message says where, why and
    /// what to do.
    #[error("{0}")]
    Remote(String),
}

/// The object operations of a state backend.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// Where `object` lives, for messages: a path, or a URL.
    fn locate(&self, object: Object) -> String;

    /// Whether locks here carry an expiry that the holder renews (remote
    /// stores, where the holder's process cannot be looked up). Without
    /// it, a lock is stale when its process is gone from this host.
    fn leases(&self) -> bool;

    /// The object and its version, or None if there is none.
    async fn read(&self, object: Object) -> Result<Option<Stored>, BackendError>;

    /// Writes the whole object if `when` holds, else [`BackendError::Conflict`];
    /// the new version on success. A reader sees the old or the new
    /// contents, never part of either.
    async fn write(
        &self,
        object: Object,
        bytes: &[u8],
        when: Precondition,
    ) -> Result<Version, BackendError>;

    /// Removes the object; one already gone is not an error.
    async fn delete(&self, object: Object) -> Result<(), BackendError>;

    /// Removes the object at once, without a runtime, when that can be
    /// done (a local file): for a lock dropped without being released.
    /// False when it cannot be done this way.
    fn delete_now(&self, _object: Object) -> bool {
        false
    }
}

/// The state file on this machine and its lock beside it
/// (`<state file>.lock`).
#[derive(Debug, Clone)]
pub struct LocalFile {
    path: PathBuf,
}

impl LocalFile {
    pub fn new(path: PathBuf) -> LocalFile {
        LocalFile { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn path_of(&self, object: Object) -> PathBuf {
        match object {
            Object::State => self.path.clone(),
            Object::Lock => {
                let mut p = self.path.clone().into_os_string();
                p.push(".lock");
                PathBuf::from(p)
            }
        }
    }
}

/// A local file's version: the digest of its contents.
fn digest(bytes: &[u8]) -> Version {
    let hash = Sha256::digest(bytes);
    Version(hash.iter().map(|b| format!("{b:02x}")).collect())
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BackendError + 'a {
    move |source| BackendError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn read_file(path: &Path) -> Result<Option<Stored>, BackendError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(Stored {
            version: digest(&bytes),
            bytes,
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", path)(e)),
    }
}

#[async_trait]
impl Backend for LocalFile {
    fn locate(&self, object: Object) -> String {
        self.path_of(object).display().to_string()
    }

    fn leases(&self) -> bool {
        false
    }

    async fn read(&self, object: Object) -> Result<Option<Stored>, BackendError> {
        read_file(&self.path_of(object))
    }

    /// A sibling is written and synced first, then put in place: renamed
    /// over the old file (`Matches`, checked just before: the lock keeps
    /// other runs away), or linked where none is (`Absent`: the link fails
    /// if one appeared, so only one creator wins). A crash leaves the old
    /// file or the new one.
    async fn write(
        &self,
        object: Object,
        bytes: &[u8],
        when: Precondition,
    ) -> Result<Version, BackendError> {
        let path = self.path_of(object);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io("create the directory of", &path))?;
        }
        if let Precondition::Matches(expected) = &when {
            match read_file(&path)? {
                Some(now) if &now.version == expected => {}
                _ => return Err(BackendError::Conflict),
            }
        }
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".tmp.{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let written = (|| {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io("write", &path)(e));
        }
        let placed = match when {
            Precondition::Matches(_) => fs::rename(&tmp, &path).map_err(io("replace", &path)),
            Precondition::Absent => match fs::hard_link(&tmp, &path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Err(BackendError::Conflict)
                }
                // A file system without hard links: create it in place.
                Err(_) => create_new(&path, bytes),
            },
        };
        let _ = fs::remove_file(&tmp);
        placed.map(|()| digest(bytes))
    }

    async fn delete(&self, object: Object) -> Result<(), BackendError> {
        let path = self.path_of(object);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &path)(e)),
        }
    }

    fn delete_now(&self, object: Object) -> bool {
        let _ = fs::remove_file(self.path_of(object));
        true
    }
}

fn create_new(path: &Path, bytes: &[u8]) -> Result<(), BackendError> {
    let mut file = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(BackendError::Conflict)
        }
        Err(e) => return Err(io("create", path)(e)),
    };
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_writes_hold_only_under_their_precondition() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalFile::new(dir.path().join("s.json"));
        assert!(local.read(Object::State).await.unwrap().is_none());
        let v1 = local
            .write(Object::State, b"one", Precondition::Absent)
            .await
            .unwrap();
        assert!(matches!(
            local
                .write(Object::State, b"two", Precondition::Absent)
                .await,
            Err(BackendError::Conflict)
        ));
        let v2 = local
            .write(Object::State, b"two", Precondition::Matches(v1.clone()))
            .await
            .unwrap();
        assert!(matches!(
            local
                .write(Object::State, b"three", Precondition::Matches(v1))
                .await,
            Err(BackendError::Conflict)
        ));
        let read = local.read(Object::State).await.unwrap().unwrap();
        assert_eq!((read.bytes.as_slice(), read.version), (&b"two"[..], v2));
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
        local.delete(Object::State).await.unwrap();
        local.delete(Object::State).await.unwrap();
        assert!(local.read(Object::State).await.unwrap().is_none());
    }
}
