//! Shared state in an S3 bucket that already exists: the state object
//! `<prefix>/<stack>.state.json` and the lock object beside it
//! (`….state.json.lock`), written with conditional puts (`If-Match` on the
//! ETag read, `If-None-Match: *` to create) and encrypted at rest (SSE-S3).
//! Credentials and endpoint come from the standard AWS chain, built the way
//! the aws target builds its clients (`AWS_ENDPOINT_URL` for an emulator).

use async_trait::async_trait;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use howdah_provider_aws::clients;

use super::backend::{Backend, BackendError, Object, Precondition, Stored, Version};
use crate::spec::StateUrl;

/// One stack's state and lock in S3.
pub struct S3Backend {
    url: StateUrl,
    state_key: String,
    lock_key: String,
    clients: clients::Lazy,
}

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Backend")
            .field("url", &self.url.to_string())
            .finish()
    }
}

impl S3Backend {
    pub fn new(url: StateUrl, stack: &str) -> S3Backend {
        let state_key = url.key(&format!("{stack}.state.json"));
        let lock_key = format!("{state_key}.lock");
        let clients = clients::Lazy::new(&url.region, None);
        S3Backend {
            url,
            state_key,
            lock_key,
            clients,
        }
    }

    fn key(&self, object: Object) -> &str {
        match object {
            Object::State => &self.state_key,
            Object::Lock => &self.lock_key,
        }
    }

    async fn s3(&self) -> &aws_sdk_s3::Client {
        &self.clients.get().await.s3
    }

    /// What S3's refusal means for the user, and what to do about it.
    fn failure<E>(&self, what: &str, object: Object, e: SdkError<E, HttpResponse>) -> BackendError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let at = self.locate(object);
        let bucket = &self.url.bucket;
        let status = e.raw_response().map(|r| r.status().as_u16());
        match clients::code(&e) {
            Some("NoSuchBucket") => BackendError::Remote(format!(
                "cannot {what} {at}: the state bucket `{bucket}` does not exist (in region {}); \
                 howdah does not create it: create it once for the team (private, versioned), \
                 or fix `state.url` / --state",
                self.url.region
            )),
            Some(code) if code.starts_with("AccessDenied") || status == Some(403) => {
                BackendError::Remote(format!(
                    "cannot {what} {at}: access denied ({code}); the identity running howdah \
                     needs s3:GetObject, s3:PutObject and s3:DeleteObject on \
                     arn:aws:s3:::{bucket}/{}* (and s3:ListBucket on the bucket, without which \
                     S3 answers 403 for an object that is not there yet)",
                    self.url.key("")
                ))
            }
            Some("PermanentRedirect" | "AuthorizationHeaderMalformed") => {
                BackendError::Remote(format!(
                    "cannot {what} {at}: the bucket `{bucket}` is not in region {}; \
                     put its region in the state url (?region=…)",
                    self.url.region
                ))
            }
            _ => BackendError::Remote(clients::err(&format!("cannot {what} {at}"), e).to_string()),
        }
    }
}

type HttpResponse = aws_sdk_s3::config::http::HttpResponse;

/// Whether S3 refused a write because its precondition did not hold (412),
/// or because another conditional write to the key was under way (409).
fn precondition_failed<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    e: &SdkError<E, HttpResponse>,
) -> bool {
    let status = e.raw_response().map(|r| r.status().as_u16());
    matches!(status, Some(412 | 409))
        || matches!(
            clients::code(e),
            Some("PreconditionFailed" | "ConditionalRequestConflict")
        )
}

/// The ETag as S3 gives it (quoted) is what `If-Match` takes back.
fn version(etag: Option<&str>) -> Version {
    Version(etag.unwrap_or_default().to_string())
}

#[async_trait]
impl Backend for S3Backend {
    fn locate(&self, object: Object) -> String {
        format!("s3://{}/{}", self.url.bucket, self.key(object))
    }

    fn leases(&self) -> bool {
        true
    }

    async fn read(&self, object: Object) -> Result<Option<Stored>, BackendError> {
        let got = self
            .s3()
            .await
            .get_object()
            .bucket(&self.url.bucket)
            .key(self.key(object))
            .send()
            .await;
        let out = match got {
            Ok(out) => out,
            Err(e) if clients::code(&e) == Some("NoSuchKey") => return Ok(None),
            Err(e) => return Err(self.failure("read", object, e)),
        };
        let version = version(out.e_tag());
        let bytes = out.body.collect().await.map_err(|e| {
            BackendError::Remote(format!(
                "cannot read {}: the download broke off ({e}); run again",
                self.locate(object)
            ))
        })?;
        Ok(Some(Stored {
            bytes: bytes.into_bytes().to_vec(),
            version,
        }))
    }

    async fn write(
        &self,
        object: Object,
        bytes: &[u8],
        when: Precondition,
    ) -> Result<Version, BackendError> {
        let put = self
            .s3()
            .await
            .put_object()
            .bucket(&self.url.bucket)
            .key(self.key(object))
            .content_type("application/json")
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(bytes.to_vec()));
        let put = match when {
            Precondition::Absent => put.if_none_match("*"),
            Precondition::Matches(Version(etag)) => put.if_match(etag),
        };
        match put.send().await {
            Ok(out) => Ok(version(out.e_tag())),
            Err(e) if precondition_failed(&e) => Err(BackendError::Conflict),
            Err(e) => Err(self.failure("write", object, e)),
        }
    }

    async fn delete(&self, object: Object) -> Result<(), BackendError> {
        self.s3()
            .await
            .delete_object()
            .bucket(&self.url.bucket)
            .key(self.key(object))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.failure("remove", object, e))
    }
}
