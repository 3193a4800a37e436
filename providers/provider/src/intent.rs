//! Intents: a create about to be sent, recorded in the stack's state
//! before the call goes out. Between a create and the record of what it
//! made lies a gap — a response lost on the way back, a run killed, a
//! second call (tagging) refused — in which the cloud may hold an object
//! with no proof on it that it is the stack's. The intent is that proof
//! for the next run: it names the object (and the idempotency token the
//! create carried, where the API takes one), so an untagged or half-made
//! object of that name is recognised as the stack's own and finished, and
//! a repeated create sends the same token. The engine keeps intents in
//! the state file and drops a resource's intents once its step has
//! recorded the object (or deleted it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ProviderError;

/// One create about to be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The step that makes the object: `aws.s3_bucket`.
    pub resource: String,
    /// What kind of object, in the cloud's words: `s3.bucket`, `eks.cluster`.
    pub kind: String,
    /// Its name, known before the create answers.
    pub name: String,
    /// The idempotency token sent with the create, where the API takes
    /// one: every try of this create sends the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// When it was recorded: an object older than its intent is not the
    /// one the intent was for.
    pub at: DateTime<Utc>,
}

/// Where a provider records what it is about to create, and reads what
/// earlier runs were about to create.
#[async_trait::async_trait]
pub trait Intents: Send + Sync {
    /// Intents recorded by this run or earlier ones, not yet cleared.
    fn recorded(&self) -> Vec<Intent>;
    /// Records `intent` durably (the state may be remote), replacing one
    /// of the same kind and name. When this fails the create must not be
    /// sent.
    async fn record(&self, intent: Intent) -> Result<(), ProviderError>;
}

/// The intents of earlier runs, for commands that only read (plan,
/// status): recording refuses, since nothing may be created.
pub struct ReadOnly(pub Vec<Intent>);

#[async_trait::async_trait]
impl Intents for ReadOnly {
    fn recorded(&self) -> Vec<Intent> {
        self.0.clone()
    }

    async fn record(&self, intent: Intent) -> Result<(), ProviderError> {
        Err(ProviderError::api(format!(
            "{} {} was about to be created by a command that only reads; this is a bug in howdah",
            intent.kind, intent.name
        )))
    }
}

/// The recorded intent for `kind` `name`, if any.
pub fn find(intents: &dyn Intents, kind: &str, name: &str) -> Option<Intent> {
    intents
        .recorded()
        .into_iter()
        .find(|i| i.kind == kind && i.name == name)
}
