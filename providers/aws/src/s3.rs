//! `aws.s3_bucket`: Pachyderm's object store. Private (every public access
//! setting blocked), encrypted at rest (SSE-S3), tagged. Deleted only under
//! `dataPolicy: delete` or `down --delete-data`, and then emptied first,
//! every version and delete marker.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
};
use howdah_provider::{Action, Change, FieldChange, ProviderError, Resource, StepContext};
use serde_json::{json, Value};

use crate::clients::{code, err, not_found};
use crate::{ids, Ctx};

pub struct Bucket {
    ctx: Arc<Ctx>,
}

/// The kind of a bucket's intent to create.
const INTENT_KIND: &str = "s3.bucket";

/// Whether a bucket made at `created` is the one `intent` announced: made
/// in the hour after it, or up to five minutes before it by this
/// machine's clock (clocks differ).
fn made_for(intent: &howdah_provider::Intent, created: chrono::DateTime<chrono::Utc>) -> bool {
    let skew = chrono::Duration::minutes(5);
    let window = chrono::Duration::hours(1);
    created + skew >= intent.at && created <= intent.at + window
}

/// Who has the bucket name.
pub enum Owner {
    Nobody,
    /// This account, tagged as this stack's.
    Us,
    /// This account, with no tags yet, and a name this stack makes: the
    /// derived name, or a name of the stack file this stack recorded its
    /// intent to create before the bucket was made (a run stopped between
    /// create and tag): ours to tag.
    Untagged,
    /// This account, but tagged for something else, or named by the user
    /// and untagged: not taken over.
    Foreign,
    /// Someone else (S3 names are global).
    Other,
}

/// What differs from a private, encrypted, tagged bucket.
struct Settings {
    public_blocked: bool,
    encrypted: bool,
}

impl Bucket {
    pub fn new(ctx: Arc<Ctx>) -> Bucket {
        Bucket { ctx }
    }

    pub async fn owner(ctx: &Ctx, name: &str) -> Result<Owner, ProviderError> {
        let s3 = &ctx.aws().await.s3;
        match s3.head_bucket().bucket(name).send().await {
            Ok(_) => {}
            Err(e) if not_found(&e) => return Ok(Owner::Nobody),
            Err(e) => {
                let status = match &e {
                    aws_sdk_s3::error::SdkError::ServiceError(s) => s.raw().status().as_u16(),
                    _ => 0,
                };
                if status == 403 {
                    return Ok(Owner::Other);
                }
                if status == 301 {
                    return Err(ProviderError::config(format!(
                        "bucket {name} exists in another region than {}; choose another storage.bucket.name",
                        ctx.cfg.region
                    )));
                }
                return Err(err(&format!("looking up bucket {name}"), e));
            }
        }
        let tags = match s3.get_bucket_tagging().bucket(name).send().await {
            Ok(t) => t.tag_set().to_vec(),
            Err(e) if code(&e) == Some("NoSuchTagSet") => Vec::new(),
            Err(e) => return Err(err(&format!("reading the tags of bucket {name}"), e)),
        };
        Ok(if ctx.owns(tags.iter().map(|t| (t.key(), t.value()))) {
            Owner::Us
        } else if tags.is_empty()
            && (ctx.cfg.bucket.is_none() || Self::made_as_intended(ctx, name).await?)
        {
            // The derived name hashes this account, region and stack: an
            // untagged bucket of that name is ours, left by a run killed
            // between CreateBucket and PutBucketTagging. A name of the
            // stack file is ours only by the intent recorded before the
            // create.
            Owner::Untagged
        } else {
            Owner::Foreign
        })
    }

    /// Whether this stack recorded its intent to create bucket `name` and
    /// the bucket was made then: CreateBucket follows its intent within
    /// seconds (a minute with the SDK's retries), so a bucket made well
    /// before or long after is someone else's that happens to have the
    /// name. Fails closed: no intent, or no creation date to compare, is
    /// not ours.
    async fn made_as_intended(ctx: &Ctx, name: &str) -> Result<bool, ProviderError> {
        let Some(intent) = ctx.intended(INTENT_KIND, name) else {
            return Ok(false);
        };
        let buckets = ctx
            .aws()
            .await
            .s3
            .list_buckets()
            // Only the buckets whose names begin with this one: a page, not
            // every bucket of the account.
            .prefix(name)
            .send()
            .await
            .map_err(|e| err("listing buckets", e))?;
        let created = buckets
            .buckets()
            .iter()
            .find(|b| b.name() == Some(name))
            .and_then(|b| b.creation_date())
            .and_then(|d| chrono::DateTime::from_timestamp(d.secs(), d.subsec_nanos()));
        Ok(created.is_some_and(|c| made_for(&intent, c)))
    }

    async fn settings(&self, name: &str) -> Result<Settings, ProviderError> {
        let s3 = &self.ctx.aws().await.s3;
        let public_blocked = match s3.get_public_access_block().bucket(name).send().await {
            Ok(out) => out.public_access_block_configuration().is_some_and(|c| {
                c.block_public_acls() == Some(true)
                    && c.ignore_public_acls() == Some(true)
                    && c.block_public_policy() == Some(true)
                    && c.restrict_public_buckets() == Some(true)
            }),
            Err(e) if not_found(&e) => false,
            Err(e) => return Err(err("reading the bucket's public access block", e)),
        };
        let encrypted = match s3.get_bucket_encryption().bucket(name).send().await {
            Ok(out) => out
                .server_side_encryption_configuration()
                .is_some_and(|c| !c.rules().is_empty()),
            Err(e) if not_found(&e) => false,
            Err(e) => return Err(err("reading the bucket's encryption", e)),
        };
        Ok(Settings {
            public_blocked,
            encrypted,
        })
    }

    fn taken(&self, name: &str, untagged: bool) -> ProviderError {
        if untagged {
            ProviderError::config(format!(
                "bucket {name} exists in this account but is not tagged howdah.io/stack={}: howdah will not take over a bucket it did not make; choose another storage.bucket.name, or tag the bucket if it really belongs to this stack",
                self.ctx.cfg.stack
            ))
        } else {
            ProviderError::config(format!(
                "bucket {name} is not accessible: another AWS account has the name (S3 names are global), or these credentials lack s3:ListBucket on it; choose another storage.bucket.name or grant the permission"
            ))
        }
    }

    async fn configure(&self, name: &str, s: &Settings) -> Result<(), ProviderError> {
        let s3 = &self.ctx.aws().await.s3;
        if !s.public_blocked {
            s3.put_public_access_block()
                .bucket(name)
                .public_access_block_configuration(
                    PublicAccessBlockConfiguration::builder()
                        .block_public_acls(true)
                        .ignore_public_acls(true)
                        .block_public_policy(true)
                        .restrict_public_buckets(true)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| err("blocking public access to the bucket", e))?;
        }
        if !s.encrypted {
            let rule = ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build()
                        .map_err(|e| ProviderError::api(e.to_string()))?,
                )
                .build();
            s3.put_bucket_encryption()
                .bucket(name)
                .server_side_encryption_configuration(
                    ServerSideEncryptionConfiguration::builder()
                        .rules(rule)
                        .build()
                        .map_err(|e| ProviderError::api(e.to_string()))?,
                )
                .send()
                .await
                .map_err(|e| err("turning on bucket encryption", e))?;
        }
        Ok(())
    }

    async fn tag(&self, name: &str) -> Result<(), ProviderError> {
        howdah_provider::wait::retry(10, crate::eks::poll_backoff(), || self.tag_once(name)).await
    }

    async fn tag_once(&self, name: &str) -> Result<(), ProviderError> {
        let tags: Vec<Tag> = self
            .ctx
            .tags(ids::BUCKET)
            .into_iter()
            .map(|(k, v)| {
                Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .expect("key and value are set")
            })
            .collect();
        self.ctx
            .aws()
            .await
            .s3
            .put_bucket_tagging()
            .bucket(name)
            .tagging(
                Tagging::builder()
                    .set_tag_set(Some(tags))
                    .build()
                    .map_err(|e| ProviderError::api(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| {
                if code(&e) == Some("NoSuchBucket") {
                    ProviderError::retryable(format!("bucket {name} is not visible yet"))
                } else {
                    err("tagging the bucket", e)
                }
            })?;
        Ok(())
    }

    /// Deletes every object version and delete marker, 1000 at a time.
    /// Returns how many were deleted.
    async fn empty(&self, name: &str, ctx: &StepContext) -> Result<usize, ProviderError> {
        let s3 = &self.ctx.aws().await.s3;
        let mut deleted = 0usize;
        loop {
            let page = s3
                .list_object_versions()
                .bucket(name)
                .max_keys(1000)
                .send()
                .await
                .map_err(|e| err("listing the bucket's objects", e))?;
            let mut batch: Vec<ObjectIdentifier> = Vec::new();
            for v in page.versions() {
                if let Some(key) = v.key() {
                    batch.push(
                        ObjectIdentifier::builder()
                            .key(key)
                            .set_version_id(v.version_id().map(str::to_string))
                            .build()
                            .map_err(|e| ProviderError::api(e.to_string()))?,
                    );
                }
            }
            for m in page.delete_markers() {
                if let Some(key) = m.key() {
                    batch.push(
                        ObjectIdentifier::builder()
                            .key(key)
                            .set_version_id(m.version_id().map(str::to_string))
                            .build()
                            .map_err(|e| ProviderError::api(e.to_string()))?,
                    );
                }
            }
            if batch.is_empty() {
                break;
            }
            let n = batch.len();
            let out = s3
                .delete_objects()
                .bucket(name)
                .delete(
                    Delete::builder()
                        .set_objects(Some(batch))
                        .quiet(true)
                        .build()
                        .map_err(|e| ProviderError::api(e.to_string()))?,
                )
                .send()
                .await
                .map_err(|e| err("deleting the bucket's objects", e))?;
            if let Some(first) = out.errors().first() {
                return Err(ProviderError::api(format!(
                    "deleting {} from bucket {name}: {}: {}",
                    first.key().unwrap_or_default(),
                    first.code().unwrap_or_default(),
                    first.message().unwrap_or_default()
                )));
            }
            deleted += n;
            ctx.progress
                .report(&format!("emptying bucket {name}: {deleted} deleted"));
        }
        // Unfinished multipart uploads keep a bucket from being deleted.
        if let Ok(uploads) = s3.list_multipart_uploads().bucket(name).send().await {
            for u in uploads.uploads() {
                if let (Some(key), Some(id)) = (u.key(), u.upload_id()) {
                    let _ = s3
                        .abort_multipart_upload()
                        .bucket(name)
                        .key(key)
                        .upload_id(id)
                        .send()
                        .await;
                }
            }
        }
        Ok(deleted)
    }

    /// Whether the bucket holds any object (for the plan and the report).
    pub async fn has_objects(ctx: &Ctx, name: &str) -> Result<bool, ProviderError> {
        let out = ctx
            .aws()
            .await
            .s3
            .list_objects_v2()
            .bucket(name)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| err("listing the bucket", e))?;
        Ok(out.key_count().unwrap_or(0) > 0 || !out.contents().is_empty())
    }
}

#[async_trait]
impl Resource for Bucket {
    fn id(&self) -> &str {
        ids::BUCKET
    }

    fn holds_data(&self) -> bool {
        true
    }

    fn depends_on(&self) -> Vec<String> {
        Vec::new()
    }

    fn expected(&self, action: Action) -> Duration {
        match action {
            Action::Keep => Duration::from_millis(500),
            _ => Duration::from_secs(4),
        }
    }

    async fn plan_up(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        let name = self.ctx.bucket_name().await?;
        match Self::owner(&self.ctx, &name).await? {
            Owner::Nobody => {
                let mut c = Change::new(Action::Create, format!("{name}: not found"));
                c.fields = vec![
                    FieldChange {
                        path: "public_access_block".into(),
                        old: None,
                        new: Some("all four settings on".into()),
                    },
                    FieldChange {
                        path: "encryption".into(),
                        old: None,
                        new: Some("SSE-S3 (AES256)".into()),
                    },
                ];
                Ok(c)
            }
            Owner::Us => {
                let s = self.settings(&name).await?;
                let mut fields = Vec::new();
                if !s.public_blocked {
                    fields.push(FieldChange {
                        path: "public_access_block".into(),
                        old: Some("not fully blocked".into()),
                        new: Some("all four settings on".into()),
                    });
                }
                if !s.encrypted {
                    fields.push(FieldChange {
                        path: "encryption".into(),
                        old: Some("none".into()),
                        new: Some("SSE-S3 (AES256)".into()),
                    });
                }
                if fields.is_empty() {
                    Ok(Change::keep(format!("{name}: private, encrypted")))
                } else {
                    let mut c = Change::new(
                        Action::Update,
                        format!("{name}: {} setting(s) differ", fields.len()),
                    );
                    c.fields = fields;
                    Ok(c)
                }
            }
            Owner::Untagged => Ok(Change::new(
                Action::Update,
                format!("{name}: created by an interrupted run; tag it"),
            )),
            Owner::Foreign => Err(self.taken(&name, true)),
            Owner::Other => Err(self.taken(&name, false)),
        }
    }

    async fn plan_down(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        let name = self.ctx.bucket_name().await?;
        match Self::owner(&self.ctx, &name).await? {
            Owner::Us | Owner::Untagged if self.ctx.delete_data() => Ok(Change::new(
                Action::Delete,
                format!("{name}: emptied (every version), then deleted"),
            )),
            Owner::Us | Owner::Untagged => {
                let holds = if Self::has_objects(&self.ctx, &name).await? {
                    "holds data"
                } else {
                    "empty"
                };
                Ok(Change::keep(format!(
                    "{name} ({holds}): retained (dataPolicy: retain); `down --delete-data` removes it"
                )))
            }
            _ => Ok(Change::keep("already gone")),
        }
    }

    async fn apply(&self, ctx: &StepContext, _change: &Change) -> Result<Value, ProviderError> {
        let name = self.ctx.bucket_name().await?;
        let s3 = &self.ctx.aws().await.s3;
        let settings = match Self::owner(&self.ctx, &name).await? {
            Owner::Us => self.settings(&name).await?,
            Owner::Untagged => {
                self.tag(&name).await?;
                self.settings(&name).await?
            }
            Owner::Foreign => return Err(self.taken(&name, true)),
            Owner::Other => return Err(self.taken(&name, false)),
            Owner::Nobody => {
                ctx.progress.report(&format!("creating bucket {name}"));
                // S3 takes no tags with CreateBucket: until PutBucketTagging
                // lands, this intent is what says the bucket is ours.
                self.ctx.intend(ids::BUCKET, INTENT_KIND, &name).await?;
                let mut create = s3.create_bucket().bucket(&name);
                if self.ctx.cfg.region != "us-east-1" {
                    create = create.create_bucket_configuration(
                        CreateBucketConfiguration::builder()
                            .location_constraint(BucketLocationConstraint::from(
                                self.ctx.cfg.region.as_str(),
                            ))
                            .build(),
                    );
                }
                match create.send().await {
                    Ok(_) => {}
                    Err(e) if code(&e) == Some("BucketAlreadyOwnedByYou") => {}
                    Err(e) if code(&e) == Some("BucketAlreadyExists") => {
                        return Err(self.taken(&name, false))
                    }
                    Err(e) => return Err(err(&format!("creating bucket {name}"), e)),
                }
                // Tag first: from here on a rerun recognises the bucket.
                self.tag(&name).await?;
                Settings {
                    public_blocked: false,
                    encrypted: false,
                }
            }
        };
        self.configure(&name, &settings).await?;
        Ok(json!({
            "name": name,
            "arn": format!("arn:{}:s3:::{name}", self.ctx.partition()),
            "region": self.ctx.cfg.region,
        }))
    }

    async fn destroy(&self, ctx: &StepContext, _change: &Change) -> Result<(), ProviderError> {
        let name = self.ctx.bucket_name().await?;
        if !matches!(
            Self::owner(&self.ctx, &name).await?,
            Owner::Us | Owner::Untagged
        ) {
            return Ok(());
        }
        let n = self.empty(&name, ctx).await?;
        ctx.progress
            .report(&format!("bucket {name} emptied ({n} versions); deleting"));
        match self
            .ctx
            .aws()
            .await
            .s3
            .delete_bucket()
            .bucket(&name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) if code(&e) == Some("BucketNotEmpty") => Err(ProviderError::retryable(format!(
                "bucket {name} got new objects while being emptied"
            ))),
            Err(e) => Err(err(&format!("deleting bucket {name}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a bucket made around its intent is taken for the one it
    /// announced; one far older or newer is not the stack's.
    #[test]
    fn a_bucket_is_ours_by_intent_only_when_made_around_it() {
        let at = chrono::Utc::now();
        let intent = howdah_provider::Intent {
            resource: ids::BUCKET.into(),
            kind: INTENT_KIND.into(),
            name: "data".into(),
            token: None,
            at,
        };
        let minutes = chrono::Duration::minutes;
        assert!(made_for(&intent, at + minutes(0)));
        assert!(made_for(&intent, at + minutes(2)));
        assert!(made_for(&intent, at - minutes(3)), "clock skew");
        assert!(
            !made_for(&intent, at - minutes(30)),
            "made before it was meant"
        );
        assert!(!made_for(&intent, at + minutes(24 * 60)), "made long after");
    }
}
