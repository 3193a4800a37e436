//! A storage round trip through pachd's own file API (pfs_v2), the proof
//! that pachd can reach its object store: health and version only prove it
//! started, and a wrong identity binding (the most common failure on EKS,
//! GKE and AKS) shows only when pachd writes and reads data.
//!
//! The messages are written out from pachd's API contract
//! (`src/pfs/pfs.proto` of pachyderm v2.11; field numbers as published);
//! only the fields used here. A no-data reply is decoded as `()`: prost
//! skips fields it does not know, so `DeleteRepo`'s response (a message in
//! later versions) reads the same as `google.protobuf.Empty`.

use std::time::{Duration, Instant};

use howdah_provider::ProviderError;
use serde::Serialize;
use tonic::transport::Channel;

/// Prefix of the scratch repos verification makes (and removes).
pub const SCRATCH_PREFIX: &str = "howdah-verify-";

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
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateRepoRequest {
    #[prost(message, optional, tag = "1")]
    pub repo: Option<Repo>,
    #[prost(string, tag = "2")]
    pub description: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteRepoRequest {
    #[prost(message, optional, tag = "1")]
    pub repo: Option<Repo>,
    #[prost(bool, tag = "2")]
    pub force: bool,
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
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StartCommitRequest {
    #[prost(message, optional, tag = "3")]
    pub branch: Option<Branch>,
    #[prost(string, tag = "2")]
    pub description: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FinishCommitRequest {
    #[prost(message, optional, tag = "1")]
    pub commit: Option<Commit>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InspectCommitRequest {
    #[prost(message, optional, tag = "1")]
    pub commit: Option<Commit>,
    /// CommitState: FINISHED is 4.
    #[prost(int32, tag = "2")]
    pub wait: i32,
}

const FINISHED: i32 = 4;

#[derive(Clone, PartialEq, prost::Message)]
pub struct CommitInfo {
    #[prost(message, optional, tag = "1")]
    pub commit: Option<Commit>,
    #[prost(string, tag = "10")]
    pub error: String,
}

/// google.protobuf.BytesValue.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BytesValue {
    #[prost(bytes = "vec", tag = "1")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AddFile {
    #[prost(string, tag = "1")]
    pub path: String,
    /// The `raw` member of the `source` oneof.
    #[prost(message, optional, tag = "3")]
    pub raw: Option<BytesValue>,
}

/// ModifyFileRequest's `body` oneof, as the two members used.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModifyFileRequest {
    #[prost(message, optional, tag = "1")]
    pub set_commit: Option<Commit>,
    #[prost(message, optional, tag = "2")]
    pub add_file: Option<AddFile>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetFileRequest {
    #[prost(message, optional, tag = "1")]
    pub file: Option<File>,
}

/// What the round trip did, for the summary and the state.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RoundTrip {
    pub repo: String,
    pub bytes: usize,
    /// Time from creating the repo to reading the file back, in ms.
    pub millis: u64,
    /// Scratch repos of earlier, interrupted runs removed first.
    pub stale_removed: usize,
}

/// Where the failure happened, to say what it likely means.
fn failed(step: &str, status: &tonic::Status, identity: &str) -> ProviderError {
    let message = status.message();
    let storage = matches!(
        step,
        "ModifyFile" | "FinishCommit" | "InspectCommit" | "GetFile"
    );
    if storage {
        ProviderError::retryable(format!(
            "pachd could not use its object store ({step}: {message}); pachd reaches the \
             store as {identity}: check that it may read and write there"
        ))
    } else {
        ProviderError::retryable(format!("pachd {step} failed: {message}"))
    }
}

/// A request to pachd's file API, with the caller's token when auth is on
/// (pachd reads it from the `authn-token` metadata; it is never logged).
fn authed<T>(token: Option<&str>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = token.and_then(|t| t.parse().ok()) {
        request.metadata_mut().insert("authn-token", value);
    }
    request
}

/// Makes a scratch repo, commits `payload` to it, reads it back byte for
/// byte and deletes the repo, through `channel` to pachd. `identity` names
/// how pachd reaches its store, for the message when it cannot.
pub async fn round_trip(
    channel: Channel,
    payload: &[u8],
    identity: &str,
    token: Option<&str>,
) -> Result<RoundTrip, ProviderError> {
    let mut grpc = tonic::client::Grpc::new(channel);
    let ready = |grpc: &mut tonic::client::Grpc<Channel>| {
        let mut grpc = grpc.clone();
        async move {
            grpc.ready()
                .await
                .map_err(|e| ProviderError::retryable(format!("pachd is not accepting calls: {e}")))
                .map(|()| grpc)
        }
    };
    let path = |method: &'static str| http::uri::PathAndQuery::from_static(method);

    let stale_removed = remove_stale(&mut ready(&mut grpc).await?, token).await?;

    let name = format!(
        "{SCRATCH_PREFIX}{}",
        super::inputs::SecretText::generate_of(8)
            .expose()
            .to_lowercase()
    );
    let repo = Repo {
        name: name.clone(),
        r#type: "user".into(),
        project: Some(Project {
            name: "default".into(),
        }),
    };
    let started = Instant::now();
    ready(&mut grpc)
        .await?
        .unary(
            authed(
                token,
                CreateRepoRequest {
                    repo: Some(repo.clone()),
                    description: "howdah verification: a scratch repo, removed at once".into(),
                },
            ),
            path("/pfs_v2.API/CreateRepo"),
            tonic_prost::ProstCodec::<CreateRepoRequest, ()>::default(),
        )
        .await
        .map_err(|s| failed("CreateRepo", &s, identity))?;

    let result = commit_and_read(&mut grpc, &repo, payload, identity, token).await;
    // The repo goes whatever happened to the data in it.
    let deleted = delete_repo(&mut ready(&mut grpc).await?, &repo, token).await;
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    result?;
    deleted.map_err(|s| failed("DeleteRepo", &s, identity))?;
    Ok(RoundTrip {
        repo: name,
        bytes: payload.len(),
        millis,
        stale_removed,
    })
}

async fn commit_and_read(
    grpc: &mut tonic::client::Grpc<Channel>,
    repo: &Repo,
    payload: &[u8],
    identity: &str,
    token: Option<&str>,
) -> Result<(), ProviderError> {
    let path = |method: &'static str| http::uri::PathAndQuery::from_static(method);
    let not_ready = |e: tonic::transport::Error| {
        ProviderError::retryable(format!("pachd is not accepting calls: {e}"))
    };
    let branch = Branch {
        repo: Some(repo.clone()),
        name: "master".into(),
    };
    grpc.ready().await.map_err(not_ready)?;
    let commit = grpc
        .unary(
            authed(
                token,
                StartCommitRequest {
                    branch: Some(branch),
                    description: "howdah verification".into(),
                },
            ),
            path("/pfs_v2.API/StartCommit"),
            tonic_prost::ProstCodec::<StartCommitRequest, Commit>::default(),
        )
        .await
        .map_err(|s| failed("StartCommit", &s, identity))?
        .into_inner();

    let file_path = "/howdah-check";
    let messages = vec![
        ModifyFileRequest {
            set_commit: Some(commit.clone()),
            add_file: None,
        },
        ModifyFileRequest {
            set_commit: None,
            add_file: Some(AddFile {
                path: file_path.into(),
                raw: Some(BytesValue {
                    value: payload.to_vec(),
                }),
            }),
        },
    ];
    grpc.ready().await.map_err(not_ready)?;
    grpc.client_streaming(
        authed(token, futures::stream::iter(messages)),
        path("/pfs_v2.API/ModifyFile"),
        tonic_prost::ProstCodec::<ModifyFileRequest, ()>::default(),
    )
    .await
    .map_err(|s| failed("ModifyFile", &s, identity))?;

    grpc.ready().await.map_err(not_ready)?;
    grpc.unary(
        authed(
            token,
            FinishCommitRequest {
                commit: Some(commit.clone()),
            },
        ),
        path("/pfs_v2.API/FinishCommit"),
        tonic_prost::ProstCodec::<FinishCommitRequest, ()>::default(),
    )
    .await
    .map_err(|s| failed("FinishCommit", &s, identity))?;

    grpc.ready().await.map_err(not_ready)?;
    let info = grpc
        .unary(
            authed(
                token,
                InspectCommitRequest {
                    commit: Some(commit.clone()),
                    wait: FINISHED,
                },
            ),
            path("/pfs_v2.API/InspectCommit"),
            tonic_prost::ProstCodec::<InspectCommitRequest, CommitInfo>::default(),
        )
        .await
        .map_err(|s| failed("InspectCommit", &s, identity))?
        .into_inner();
    if !info.error.is_empty() {
        return Err(failed(
            "FinishCommit",
            &tonic::Status::internal(info.error),
            identity,
        ));
    }

    grpc.ready().await.map_err(not_ready)?;
    let mut stream = grpc
        .server_streaming(
            authed(
                token,
                GetFileRequest {
                    file: Some(File {
                        commit: Some(commit),
                        path: file_path.into(),
                    }),
                },
            ),
            path("/pfs_v2.API/GetFile"),
            tonic_prost::ProstCodec::<GetFileRequest, BytesValue>::default(),
        )
        .await
        .map_err(|s| failed("GetFile", &s, identity))?
        .into_inner();
    let mut read = Vec::with_capacity(payload.len());
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|s| failed("GetFile", &s, identity))?
    {
        read.extend_from_slice(&chunk.value);
    }
    if read != payload {
        return Err(ProviderError::api(format!(
            "pachd read back {} bytes that differ from the {} it was given: its object store \
             does not keep data faithfully",
            read.len(),
            payload.len()
        )));
    }
    Ok(())
}

async fn delete_repo(
    grpc: &mut tonic::client::Grpc<Channel>,
    repo: &Repo,
    token: Option<&str>,
) -> Result<(), tonic::Status> {
    grpc.unary(
        authed(
            token,
            DeleteRepoRequest {
                repo: Some(repo.clone()),
                force: true,
            },
        ),
        http::uri::PathAndQuery::from_static("/pfs_v2.API/DeleteRepo"),
        tonic_prost::ProstCodec::<DeleteRepoRequest, ()>::default(),
    )
    .await
    .map(|_| ())
}

/// Deletes scratch repos an interrupted verification left behind.
async fn remove_stale(
    grpc: &mut tonic::client::Grpc<Channel>,
    token: Option<&str>,
) -> Result<usize, ProviderError> {
    let mut stream = grpc
        .server_streaming(
            authed(
                token,
                ListRepoRequest {
                    r#type: "user".into(),
                },
            ),
            http::uri::PathAndQuery::from_static("/pfs_v2.API/ListRepo"),
            tonic_prost::ProstCodec::<ListRepoRequest, RepoInfo>::default(),
        )
        .await
        .map_err(|s| ProviderError::retryable(format!("pachd ListRepo failed: {}", s.message())))?
        .into_inner();
    let mut stale = Vec::new();
    while let Some(info) = stream
        .message()
        .await
        .map_err(|s| ProviderError::retryable(format!("pachd ListRepo failed: {}", s.message())))?
    {
        if let Some(repo) = info.repo.filter(|r| r.name.starts_with(SCRATCH_PREFIX)) {
            stale.push(repo);
        }
    }
    for repo in &stale {
        grpc.ready()
            .await
            .map_err(|e| ProviderError::retryable(format!("pachd is not accepting calls: {e}")))?;
        delete_repo(grpc, repo, token).await.map_err(|s| {
            ProviderError::retryable(format!(
                "removing the scratch repo {} of an earlier check: {}",
                repo.name,
                s.message()
            ))
        })?;
    }
    Ok(stale.len())
}

/// How long the round trip may take before it counts as failed: pachd
/// answers in well under a second when its store works.
pub const ROUND_TRIP_LIMIT: Duration = Duration::from_secs(60);
