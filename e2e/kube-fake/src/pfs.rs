//! The part of pachd's file API (`pfs_v2.API`, pachyderm v2.11
//! `src/pfs/pfs.proto`) a storage round trip uses: CreateRepo, ListRepo,
//! DeleteRepo, StartCommit, ModifyFile, FinishCommit, InspectCommit and
//! GetFile. Repos and files live per fake cluster, as a real pachd keeps
//! them in its bucket, so a test can see what a client left behind.
//!
//! It answers as pachd does: a repo that exists is ALREADY_EXISTS, one that
//! does not is NOT_FOUND, ModifyFile's first message must name the commit,
//! a finished commit takes no more files. Faults a test can inject: the
//! object store refusing writes (pachd's error for a wrong identity
//! binding) and reads that come back changed.
//!
//! The messages are this crate's own, written from the contract, not shared
//! with the client: a field number either side gets wrong fails a test.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use futures::StreamExt;
use http::{Request, Response};
use hyper::body::Incoming;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Project {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Repo {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub r#type: String,
    #[prost(message, optional, tag = "3")]
    pub project: Option<Project>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Branch {
    #[prost(message, optional, tag = "1")]
    pub repo: Option<Repo>,
    #[prost(string, tag = "2")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Commit {
    #[prost(message, optional, tag = "1")]
    pub branch: Option<Branch>,
    #[prost(string, tag = "2")]
    pub id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct File {
    #[prost(message, optional, tag = "1")]
    pub commit: Option<Commit>,
    #[prost(string, tag = "2")]
    pub path: String,
    #[prost(string, tag = "3")]
    pub datum: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateRepoRequest {
    #[prost(message, optional, tag = "1")]
    pub repo: Option<Repo>,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(bool, tag = "3")]
    pub update: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteRepoRequest {
    #[prost(message, optional, tag = "1")]
    pub repo: Option<Repo>,
    #[prost(bool, tag = "2")]
    pub force: bool,
}

/// pachd 2.11 answers DeleteRepo with this (older ones with Empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteRepoResponse {
    #[prost(bool, tag = "1")]
    pub deleted: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListRepoRequest {
    #[prost(string, tag = "1")]
    pub r#type: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RepoInfo {
    #[prost(message, optional, tag = "1")]
    pub repo: Option<Repo>,
    #[prost(string, tag = "4")]
    pub description: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StartCommitRequest {
    #[prost(message, optional, tag = "1")]
    pub parent: Option<Commit>,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(message, optional, tag = "3")]
    pub branch: Option<Branch>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FinishCommitRequest {
    #[prost(message, optional, tag = "1")]
    pub commit: Option<Commit>,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(string, tag = "3")]
    pub error: String,
    #[prost(bool, tag = "4")]
    pub force: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InspectCommitRequest {
    #[prost(message, optional, tag = "1")]
    pub commit: Option<Commit>,
    #[prost(int32, tag = "2")]
    pub wait: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CommitInfo {
    #[prost(message, optional, tag = "1")]
    pub commit: Option<Commit>,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "10")]
    pub error: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BytesValue {
    #[prost(bytes = "vec", tag = "1")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AddFile {
    #[prost(string, tag = "1")]
    pub path: String,
    #[prost(string, tag = "2")]
    pub datum: String,
    #[prost(message, optional, tag = "3")]
    pub raw: Option<BytesValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteFile {
    #[prost(string, tag = "1")]
    pub path: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModifyFileRequest {
    #[prost(message, optional, tag = "1")]
    pub set_commit: Option<Commit>,
    #[prost(message, optional, tag = "2")]
    pub add_file: Option<AddFile>,
    #[prost(message, optional, tag = "3")]
    pub delete_file: Option<DeleteFile>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetFileRequest {
    #[prost(message, optional, tag = "1")]
    pub file: Option<File>,
    #[prost(string, tag = "2")]
    pub url: String,
    #[prost(int64, tag = "3")]
    pub offset: i64,
}

/// Where a commit is (pfs.proto CommitState, as far as a client sees it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum CommitState {
    /// Started: takes files.
    #[default]
    Open,
    /// FinishCommit was accepted; pachd finishes it in the background, so
    /// a reader must wait (InspectCommit with wait FINISHED) first.
    Finishing,
    Finished,
}

#[derive(Debug, Default)]
struct CommitData {
    files: BTreeMap<String, Vec<u8>>,
    state: CommitState,
}

#[derive(Debug, Default)]
struct RepoData {
    r#type: String,
    description: String,
    commits: BTreeMap<String, CommitData>,
    /// branch → head commit id.
    branches: BTreeMap<String, String>,
}

/// What the pachd stand-ins of one fake cluster keep.
#[derive(Debug, Default)]
pub struct Pfs {
    /// "project/repo" → repo.
    repos: Mutex<BTreeMap<String, RepoData>>,
    next_id: Mutex<u64>,
    /// When set, writes to the object store fail with this text.
    storage_error: Mutex<Option<String>>,
    corrupt_reads: AtomicBool,
}

impl Pfs {
    /// The repos that exist, as "project/name".
    pub fn repos(&self) -> Vec<String> {
        self.lock_repos().keys().cloned().collect()
    }

    /// Makes the object store refuse writes with `error` (None: heal).
    pub fn set_storage_error(&self, error: Option<String>) {
        *self.storage_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    /// Makes every read return data with one byte changed.
    pub fn set_corrupt_reads(&self, on: bool) {
        self.corrupt_reads.store(on, Ordering::SeqCst);
    }

    /// Makes a repo as a user of the cluster would (pachctl create repo).
    pub fn create_repo(&self, project: &str, name: &str) {
        self.lock_repos().insert(
            format!("{project}/{name}"),
            RepoData {
                r#type: "user".into(),
                ..RepoData::default()
            },
        );
    }

    fn lock_repos(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, RepoData>> {
        self.repos.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn storage_error(&self) -> Option<String> {
        self.storage_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// "project/name" of a repo; pachd puts a repo without one in "default".
fn repo_key(repo: Option<&Repo>) -> Result<String, tonic::Status> {
    let repo = repo.ok_or_else(|| tonic::Status::invalid_argument("repo must be set"))?;
    if repo.name.is_empty() {
        return Err(tonic::Status::invalid_argument("repo name must be set"));
    }
    let project = repo
        .project
        .as_ref()
        .map(|p| p.name.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("default");
    Ok(format!("{project}/{}", repo.name))
}

fn not_found(key: &str) -> tonic::Status {
    tonic::Status::not_found(format!("repo {key} not found"))
}

/// The commit a request names: by id, or the head of its branch.
fn commit_of(
    repos: &BTreeMap<String, RepoData>,
    commit: Option<&Commit>,
) -> Result<(String, String), tonic::Status> {
    let commit = commit.ok_or_else(|| tonic::Status::invalid_argument("commit must be set"))?;
    let branch = commit
        .branch
        .as_ref()
        .ok_or_else(|| tonic::Status::invalid_argument("commit has no branch"))?;
    let key = repo_key(branch.repo.as_ref())?;
    let repo = repos.get(&key).ok_or_else(|| not_found(&key))?;
    let id = if commit.id.is_empty() {
        repo.branches.get(&branch.name).cloned().ok_or_else(|| {
            tonic::Status::not_found(format!("branch {} not found in repo {key}", branch.name))
        })?
    } else {
        commit.id.clone()
    };
    if !repo.commits.contains_key(&id) {
        return Err(tonic::Status::not_found(format!(
            "commit {key}@{id} not found"
        )));
    }
    Ok((key, id))
}

impl Pfs {
    fn create(&self, req: CreateRepoRequest) -> Result<(), tonic::Status> {
        let key = repo_key(req.repo.as_ref())?;
        let mut repos = self.lock_repos();
        if repos.contains_key(&key) && !req.update {
            return Err(tonic::Status::already_exists(format!(
                "repo {key} already exists"
            )));
        }
        let r#type = req
            .repo
            .map(|r| r.r#type)
            .filter(|t| !t.is_empty())
            .unwrap_or("user".into());
        repos.entry(key).or_default().r#type = r#type;
        Ok(())
    }

    fn delete(&self, req: DeleteRepoRequest) -> Result<DeleteRepoResponse, tonic::Status> {
        let key = repo_key(req.repo.as_ref())?;
        match self.lock_repos().remove(&key) {
            Some(_) => Ok(DeleteRepoResponse { deleted: true }),
            None => Err(not_found(&key)),
        }
    }

    fn list(&self, req: ListRepoRequest) -> Vec<RepoInfo> {
        self.lock_repos()
            .iter()
            .filter(|(_, r)| req.r#type.is_empty() || r.r#type == req.r#type)
            .map(|(key, r)| {
                let (project, name) = key.split_once('/').unwrap_or(("default", key));
                RepoInfo {
                    repo: Some(Repo {
                        name: name.into(),
                        r#type: r.r#type.clone(),
                        project: Some(Project {
                            name: project.into(),
                        }),
                    }),
                    description: r.description.clone(),
                }
            })
            .collect()
    }

    fn start(&self, req: StartCommitRequest) -> Result<Commit, tonic::Status> {
        let branch = req
            .branch
            .ok_or_else(|| tonic::Status::invalid_argument("branch must be set"))?;
        let key = repo_key(branch.repo.as_ref())?;
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            format!("{:032x}", *next)
        };
        let mut repos = self.lock_repos();
        let repo = repos.get_mut(&key).ok_or_else(|| not_found(&key))?;
        repo.commits.insert(id.clone(), CommitData::default());
        repo.branches.insert(branch.name.clone(), id.clone());
        Ok(Commit {
            branch: Some(branch),
            id,
        })
    }

    fn modify(&self, messages: Vec<ModifyFileRequest>) -> Result<(), tonic::Status> {
        let mut messages = messages.into_iter();
        let commit = messages.next().and_then(|m| m.set_commit).ok_or_else(|| {
            tonic::Status::invalid_argument("the first ModifyFile message must set the commit")
        })?;
        let mut repos = self.lock_repos();
        let (key, id) = commit_of(&repos, Some(&commit))?;
        let data = repos
            .get_mut(&key)
            .and_then(|r| r.commits.get_mut(&id))
            .ok_or_else(|| not_found(&key))?;
        if data.state != CommitState::Open {
            return Err(tonic::Status::failed_precondition(format!(
                "commit {id} in repo {key} is finished"
            )));
        }
        for message in messages {
            if let Some(error) = self.storage_error() {
                return Err(tonic::Status::unknown(error));
            }
            if let Some(add) = message.add_file {
                let bytes = add.raw.map(|r| r.value).unwrap_or_default();
                data.files.entry(add.path).or_default().extend(bytes);
            } else if let Some(delete) = message.delete_file {
                data.files.remove(&delete.path);
            }
        }
        Ok(())
    }

    fn finish(&self, req: FinishCommitRequest) -> Result<(), tonic::Status> {
        let mut repos = self.lock_repos();
        let (key, id) = commit_of(&repos, req.commit.as_ref())?;
        if let Some(data) = repos.get_mut(&key).and_then(|r| r.commits.get_mut(&id)) {
            if data.state == CommitState::Open {
                data.state = CommitState::Finishing;
            }
        }
        Ok(())
    }

    fn inspect(&self, req: InspectCommitRequest) -> Result<CommitInfo, tonic::Status> {
        let mut repos = self.lock_repos();
        let (key, id) = commit_of(&repos, req.commit.as_ref())?;
        if let Some(commit) = repos.get_mut(&key).and_then(|r| r.commits.get_mut(&id)) {
            // pachd blocks a wait for FINISHED until the commit is: one that
            // is finishing gets there; on an open one it would wait for ever,
            // so the client is told instead of hanging the test.
            match (req.wait, commit.state) {
                (4, CommitState::Finishing) => commit.state = CommitState::Finished,
                (4, CommitState::Open) => {
                    return Err(tonic::Status::deadline_exceeded(format!(
                        "commit {id} in repo {key} is not finished"
                    )))
                }
                _ => {}
            }
        }
        Ok(CommitInfo {
            commit: req.commit,
            description: String::new(),
            error: String::new(),
        })
    }

    fn get(&self, req: GetFileRequest) -> Result<Vec<u8>, tonic::Status> {
        let file = req
            .file
            .ok_or_else(|| tonic::Status::invalid_argument("file must be set"))?;
        let repos = self.lock_repos();
        let (key, id) = commit_of(&repos, file.commit.as_ref())?;
        let commit = repos.get(&key).and_then(|r| r.commits.get(&id));
        // The least pachd promises: data is readable once the commit is
        // finished, not as soon as FinishCommit returns.
        if commit.is_some_and(|c| c.state != CommitState::Finished) {
            return Err(tonic::Status::failed_precondition(format!(
                "commit {id} in repo {key} is not finished; wait for it with InspectCommit"
            )));
        }
        let mut bytes = commit
            .and_then(|c| c.files.get(&file.path))
            .cloned()
            .ok_or_else(|| {
                tonic::Status::not_found(format!(
                    "file {} not found in repo {key} at commit {id}",
                    file.path
                ))
            })?;
        if self.corrupt_reads.load(Ordering::SeqCst) {
            if let Some(first) = bytes.first_mut() {
                *first ^= 0x20;
            }
        }
        Ok(bytes)
    }
}

/// What a path of a commit is, as pachd's file server finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathEntry {
    File(Vec<u8>),
    /// The entries right under a directory: (full path, is a directory,
    /// size in bytes), directories with a trailing slash as pachd lists
    /// them.
    Dir(Vec<(String, bool, usize)>),
}

/// A path as pachd keeps it: absolute, no trailing slash ("/" for the root).
fn clean_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// A commit id as pachd prints it: a UUID without dashes.
pub fn is_commit_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Pfs {
    /// Commits `bytes` at `path` on `branch` of a repo (made if missing) and
    /// finishes the commit, as `pachctl put file repo@branch:path` does; the
    /// branch's earlier files stay. Returns the commit id.
    pub fn put_file(
        &self,
        project: &str,
        repo: &str,
        branch: &str,
        path: &str,
        bytes: &[u8],
    ) -> String {
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            format!("{:032x}", *next)
        };
        let mut repos = self.lock_repos();
        let data = repos
            .entry(format!("{project}/{repo}"))
            .or_insert_with(|| RepoData {
                r#type: "user".into(),
                ..RepoData::default()
            });
        let mut files = data
            .branches
            .get(branch)
            .and_then(|head| data.commits.get(head))
            .map(|c| c.files.clone())
            .unwrap_or_default();
        files.insert(clean_path(path), bytes.to_vec());
        data.commits.insert(
            id.clone(),
            CommitData {
                files,
                state: CommitState::Finished,
            },
        );
        data.branches.insert(branch.to_string(), id.clone());
        id
    }

    /// What `path` is at `commitish` (a commit id or a branch name) of
    /// `project/repo`: pachd's InspectFile and ListFile, with their errors.
    pub fn lookup(
        &self,
        project: &str,
        repo: &str,
        commitish: &str,
        path: &str,
    ) -> Result<PathEntry, tonic::Status> {
        let repo_ref = Repo {
            name: repo.into(),
            r#type: "user".into(),
            project: Some(Project {
                name: project.into(),
            }),
        };
        let (branch, id) = if is_commit_id(commitish) {
            (String::new(), commitish.to_string())
        } else {
            (commitish.to_string(), String::new())
        };
        let commit = Commit {
            branch: Some(Branch {
                repo: Some(repo_ref),
                name: branch,
            }),
            id,
        };
        let repos = self.lock_repos();
        let (key, id) = commit_of(&repos, Some(&commit))?;
        let Some(data) = repos.get(&key).and_then(|r| r.commits.get(&id)) else {
            return Err(not_found(&key));
        };
        if data.state != CommitState::Finished {
            return Err(tonic::Status::unavailable(format!(
                "commit {id} in repo {key} is not finished"
            )));
        }
        let wanted = clean_path(path);
        let stored = |p: &String| clean_path(p);
        if let Some((_, bytes)) = data.files.iter().find(|(p, _)| stored(p) == wanted) {
            let mut bytes = bytes.clone();
            if self.corrupt_reads.load(Ordering::SeqCst) {
                if let Some(first) = bytes.first_mut() {
                    *first ^= 0x20;
                }
            }
            return Ok(PathEntry::File(bytes));
        }
        let dir = if wanted == "/" {
            String::new()
        } else {
            wanted.clone()
        };
        let mut entries: BTreeMap<String, (bool, usize)> = BTreeMap::new();
        for (p, bytes) in &data.files {
            let p = stored(p);
            let Some(rest) = p.strip_prefix(&format!("{dir}/")) else {
                continue;
            };
            match rest.split_once('/') {
                Some((child, _)) => {
                    let e = entries
                        .entry(format!("{dir}/{child}/"))
                        .or_insert((true, 0));
                    e.1 += bytes.len();
                }
                None => {
                    entries.insert(p.clone(), (false, bytes.len()));
                }
            }
        }
        if entries.is_empty() && wanted != "/" {
            return Err(tonic::Status::not_found(format!(
                "file {wanted} not found in repo {key} at commit {id}"
            )));
        }
        Ok(PathEntry::Dir(
            entries.into_iter().map(|(p, (d, n))| (p, d, n)).collect(),
        ))
    }
}

/// Answers one `/pfs_v2.API/<method>` call.
pub async fn serve(
    pfs: &std::sync::Arc<Pfs>,
    path: &str,
    req: Request<Incoming>,
) -> Response<tonic::body::Body> {
    let method = path.trim_start_matches("/pfs_v2.API/");
    let pfs = pfs.clone();
    macro_rules! unary {
        ($req:ty, $resp:ty, $f:expr) => {{
            let mut grpc =
                tonic::server::Grpc::new(tonic_prost::ProstCodec::<$resp, $req>::default());
            grpc.unary(Unary::<$req, $resp>::new(pfs, $f), req).await
        }};
    }
    match method {
        "CreateRepo" => unary!(CreateRepoRequest, (), |p: &Pfs, r| p.create(r)),
        "DeleteRepo" => unary!(DeleteRepoRequest, DeleteRepoResponse, |p: &Pfs, r| p
            .delete(r)),
        "StartCommit" => unary!(StartCommitRequest, Commit, |p: &Pfs, r| p.start(r)),
        "FinishCommit" => unary!(FinishCommitRequest, (), |p: &Pfs, r| p.finish(r)),
        "InspectCommit" => unary!(InspectCommitRequest, CommitInfo, |p: &Pfs, r| p.inspect(r)),
        "ListRepo" => {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<
                RepoInfo,
                ListRepoRequest,
            >::default());
            grpc.server_streaming(Streaming::new(pfs, |p: &Pfs, r| Ok(p.list(r))), req)
                .await
        }
        "GetFile" => {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<
                BytesValue,
                GetFileRequest,
            >::default());
            grpc.server_streaming(
                Streaming::new(pfs, |p: &Pfs, r| {
                    // In chunks, as pachd streams a file.
                    let bytes = p.get(r)?;
                    Ok(bytes
                        .chunks(7)
                        .map(|c| BytesValue { value: c.to_vec() })
                        .collect())
                }),
                req,
            )
            .await
        }
        "ModifyFile" => {
            let mut grpc = tonic::server::Grpc::new(
                tonic_prost::ProstCodec::<(), ModifyFileRequest>::default(),
            );
            grpc.client_streaming(Modify(pfs), req).await
        }
        other => tonic::Status::unimplemented(format!(
            "pfs_v2.API/{other} is not served by the fake pachd"
        ))
        .into_http(),
    }
}

type Handler<Q, R> = fn(&Pfs, Q) -> Result<R, tonic::Status>;

struct Unary<Q, R> {
    pfs: std::sync::Arc<Pfs>,
    handler: Handler<Q, R>,
}

impl<Q, R> Unary<Q, R> {
    fn new(pfs: std::sync::Arc<Pfs>, handler: Handler<Q, R>) -> Self {
        Unary { pfs, handler }
    }
}

impl<Q: Send + 'static, R: Send + 'static> tonic::server::UnaryService<Q> for Unary<Q, R> {
    type Response = R;
    type Future = std::future::Ready<Result<tonic::Response<R>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Q>) -> Self::Future {
        std::future::ready(
            (self.handler)(&self.pfs, request.into_inner()).map(tonic::Response::new),
        )
    }
}

struct Streaming<Q, R> {
    pfs: std::sync::Arc<Pfs>,
    handler: Handler<Q, Vec<R>>,
}

impl<Q, R> Streaming<Q, R> {
    fn new(pfs: std::sync::Arc<Pfs>, handler: Handler<Q, Vec<R>>) -> Self {
        Streaming { pfs, handler }
    }
}

type Items<R> = futures::stream::Iter<std::vec::IntoIter<Result<R, tonic::Status>>>;

impl<Q: Send + 'static, R: Send + 'static> tonic::server::ServerStreamingService<Q>
    for Streaming<Q, R>
{
    type Response = R;
    type ResponseStream = Items<R>;
    type Future = std::future::Ready<Result<tonic::Response<Items<R>>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Q>) -> Self::Future {
        let items = (self.handler)(&self.pfs, request.into_inner()).map(|items| {
            let results: Vec<Result<R, tonic::Status>> = items.into_iter().map(Ok).collect();
            tonic::Response::new(futures::stream::iter(results))
        });
        std::future::ready(items)
    }
}

struct Modify(std::sync::Arc<Pfs>);

impl tonic::server::ClientStreamingService<ModifyFileRequest> for Modify {
    type Response = ();
    type Future = futures::future::BoxFuture<'static, Result<tonic::Response<()>, tonic::Status>>;

    fn call(
        &mut self,
        request: tonic::Request<tonic::Streaming<ModifyFileRequest>>,
    ) -> Self::Future {
        let pfs = self.0.clone();
        Box::pin(async move {
            let mut stream = request.into_inner();
            let mut messages = Vec::new();
            while let Some(message) = stream.next().await {
                messages.push(message?);
            }
            pfs.modify(messages).map(tonic::Response::new)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_servers_lookup_is_pachds_view_of_a_commit() {
        let pfs = Pfs::default();
        let first = pfs.put_file("default", "images", "master", "cats/tabby.txt", b"purr");
        pfs.put_file("default", "images", "master", "/dogs/rex.txt", b"woof!");
        let file = |commitish: &str, path: &str| {
            pfs.lookup("default", "images", commitish, path)
                .map_err(|s| s.code())
        };
        assert_eq!(
            file("master", "/cats/tabby.txt"),
            Ok(PathEntry::File(b"purr".to_vec()))
        );
        // The first commit has only the first file; the branch has both.
        assert_eq!(file(&first, "dogs/rex.txt"), Err(tonic::Code::NotFound));
        assert_eq!(
            file("master", "/"),
            Ok(PathEntry::Dir(vec![
                ("/cats/".into(), true, 4),
                ("/dogs/".into(), true, 5)
            ]))
        );
        for (commitish, path) in [("master", "/cats/lion.txt"), ("dev", "/cats/tabby.txt")] {
            assert_eq!(
                file(commitish, path),
                Err(tonic::Code::NotFound),
                "{commitish} {path}"
            );
        }
        assert_eq!(
            pfs.lookup("default", "videos", "master", "/")
                .map_err(|s| s.code()),
            Err(tonic::Code::NotFound)
        );
    }
}
