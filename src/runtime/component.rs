//! One chart component (etcd, pachd, ...) as a resource: plan it against
//! what is live, apply it with server-side apply, wait for it, delete it.
//! Plus the verification step that proves pachd answers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use howdah_provider::wait::{poll_until, Backoff, Poll};
use howdah_provider::{Action, Change, FieldChange, ProviderError, Resource, StepContext};
use serde_json::{json, Value};

use super::chart::Component;
use super::cluster::{kind_named, kind_of, owned_by, ObjectKey};
use super::diff::{diff_object, quantity, remove_foreign_entries};
use super::health::{match_labels, readiness, wait_ready};
use super::teardown::{delete_and_wait, deletions};
use super::{expected, step_id, verify, DesiredObject, Runtime, VERIFY_ID};

/// A chart component as a resource.
pub struct ComponentStep {
    rt: Arc<Runtime>,
    component: Component,
    id: String,
    deps: Vec<String>,
}

impl ComponentStep {
    pub fn new(rt: Arc<Runtime>, component: Component, deps: Vec<String>) -> Self {
        ComponentStep {
            rt,
            component,
            id: step_id(component),
            deps,
        }
    }
}

/// The work an `up` has to do on one component, object by object.
struct Work {
    /// Objects to apply, with what differs (empty for new objects).
    apply: Vec<(DesiredObject, Option<Vec<FieldChange>>)>,
    /// Live objects of the component that the stack no longer wants.
    remove: Vec<(ObjectKey, Value)>,
    /// StatefulSets whose immutable fields change: re-created without their
    /// pods (orphaned), after their claims are grown.
    recreate: Vec<ObjectKey>,
    /// Claims to grow: (claim selector, new size).
    grow: Vec<(String, String)>,
    /// Workloads in sync but not ready.
    unready: Vec<String>,
    /// Objects that exist but belong to someone else; used as they are.
    foreign: Vec<ObjectKey>,
    /// Ours but being deleted (a `down` that just ended, a namespace still
    /// terminating): waited out, then made anew. Applying to them would
    /// change an object on its way out, and a terminating namespace refuses
    /// new content (403 NamespaceTerminating).
    terminating: Vec<ObjectKey>,
    /// Containers whose image version changes.
    versions: Vec<VersionMove>,
}

/// One container's image moving from one version to another.
#[derive(Debug, Clone, PartialEq)]
struct VersionMove {
    /// `<workload>/<container>`.
    container: String,
    from: String,
    to: String,
    /// Greater: an upgrade; Less: a downgrade; None: not comparable.
    direction: Option<std::cmp::Ordering>,
}

impl VersionMove {
    fn describe(&self) -> String {
        let what = match self.direction {
            Some(std::cmp::Ordering::Greater) => "upgrade",
            Some(std::cmp::Ordering::Less) => "DOWNGRADE",
            _ => "image change",
        };
        format!("{what} {} {} → {}", self.container, self.from, self.to)
    }
}

/// The tag of an image reference (`registry:5000/pachyderm/pachd:2.11.6`
/// → `2.11.6`), without a digest.
fn image_tag(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map_or("", |(_, tag)| tag)
}

/// `v2.11.6-rc1` → [2, 11, 6]; None when the tag is not a version.
fn version_numbers(tag: &str) -> Option<Vec<u64>> {
    let tag = tag.trim_start_matches('v');
    let numeric: String = tag
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let parts: Option<Vec<u64>> = numeric
        .split('.')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().ok())
        .collect();
    parts.filter(|p| !p.is_empty())
}

/// How the images of a workload's containers move between `live` and
/// `desired`.
fn version_moves(key: &ObjectKey, desired: &Value, live: &Value) -> Vec<VersionMove> {
    let containers = |o: &Value| -> Vec<(String, String)> {
        o["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| {
                        Some((
                            c["name"].as_str()?.to_string(),
                            c["image"].as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let live = containers(live);
    containers(desired)
        .into_iter()
        .filter_map(|(name, to)| {
            let (_, from) = live.iter().find(|(n, _)| *n == name)?;
            let (from_tag, to_tag) = (image_tag(from), image_tag(&to));
            if from_tag == to_tag {
                return None;
            }
            let direction = match (version_numbers(from_tag), version_numbers(to_tag)) {
                (Some(a), Some(b)) => Some(b.cmp(&a)),
                _ => None,
            };
            Some(VersionMove {
                container: format!("{}/{name}", key.name),
                from: from_tag.to_string(),
                to: to_tag.to_string(),
                direction,
            })
        })
        .collect()
}

impl ComponentStep {
    async fn work(&self) -> Result<Work, ProviderError> {
        let rt = &self.rt;
        let live = rt.live().await?;
        let desired: Vec<DesiredObject> = rt
            .desired()
            .await?
            .into_iter()
            .filter(|d| d.component == self.component)
            .collect();
        let mut work = Work {
            apply: Vec::new(),
            remove: Vec::new(),
            recreate: Vec::new(),
            grow: Vec::new(),
            unready: Vec::new(),
            foreign: Vec::new(),
            terminating: Vec::new(),
            versions: Vec::new(),
        };
        // Everything in a namespace that is being deleted goes with it, even
        // what the namespace controller has not reached yet.
        let namespace_going = live.objects.iter().any(|(k, o)| {
            k.kind == "Namespace"
                && k.name == rt.namespace()
                && o["metadata"]["deletionTimestamp"].is_string()
        });
        for d in &desired {
            match live.objects.get(&d.key) {
                None if live.cluster_absent => work.apply.push((d.clone(), None)),
                None => {
                    // Not ours by label; is it there under someone else's name?
                    let kind = kind_of(&d.object)?;
                    if let Some(existing) = rt
                        .cluster
                        .get(&kind, d.key.namespace.as_deref(), &d.key.name)
                        .await?
                    {
                        if !owned_by(&existing, &rt.stack.name) {
                            if d.key.kind == "Namespace" {
                                work.foreign.push(d.key.clone());
                                continue;
                            }
                            return Err(ProviderError::api(format!(
                                "{} already exists in namespace {} and is not managed by stack `{}` (it lacks the howdah.io/stack label); remove it, or install into another namespace (pachyderm.namespace)",
                                d.key,
                                d.key.namespace.as_deref().unwrap_or("-"),
                                rt.stack.name
                            )));
                        }
                    }
                    work.apply.push((d.clone(), None));
                }
                Some(l)
                    if l["metadata"]["deletionTimestamp"].is_string()
                        || (namespace_going && d.key.namespace.is_some()) =>
                {
                    work.terminating.push(d.key.clone());
                    work.apply.push((d.clone(), None));
                }
                Some(l) => {
                    let changes = diff_object(&d.key.to_string(), &d.object, l);
                    if d.key.kind == "StatefulSet" {
                        self.immutable_changes(d, l, &changes, &mut work)?;
                    }
                    if matches!(d.key.kind, "Deployment" | "StatefulSet") {
                        work.versions.extend(version_moves(&d.key, &d.object, l));
                    }
                    if !changes.is_empty() {
                        work.apply.push((d.clone(), Some(changes)));
                    } else if let Err(why) = readiness(&kind_of(&d.object)?, l) {
                        work.unready.push(format!("{}: {why}", d.key));
                    }
                }
            }
        }
        for (key, object) in live.of_component(self.component) {
            if key.kind == "PersistentVolumeClaim" {
                continue; // claims are data: the volumes step owns them
            }
            if !desired.iter().any(|d| &d.key == key) {
                work.remove.push((key.clone(), object.clone()));
            }
        }
        Ok(work)
    }

    /// A version going back is refused unless asked for: pachd migrates
    /// its database forward only, and etcd and PostgreSQL read data a
    /// newer version wrote at their peril.
    fn refuse_downgrade(&self, work: &Work) -> Result<(), ProviderError> {
        if self.rt.allow_downgrade {
            return Ok(());
        }
        let down: Vec<String> = work
            .versions
            .iter()
            .filter(|m| m.direction == Some(std::cmp::Ordering::Less))
            .map(|m| format!("{} {} → {}", m.container, m.from, m.to))
            .collect();
        if down.is_empty() {
            return Ok(());
        }
        Err(ProviderError::config(format!(
            "this would downgrade {}: pachd's database migrations only go forward, so an \
             older version may not start on newer data; set pachyderm.version back, or pass \
             --allow-downgrade if you have checked it is safe",
            down.join(", ")
        )))
    }

    /// StatefulSet fields the API refuses to update. Growing a claim
    /// template is done by growing the claims and re-creating the
    /// StatefulSet without its pods; shrinking is refused here, before
    /// anything is touched.
    fn immutable_changes(
        &self,
        d: &DesiredObject,
        live: &Value,
        changes: &[FieldChange],
        work: &mut Work,
    ) -> Result<(), ProviderError> {
        let mut immutable = false;
        for c in changes {
            let field = c.path.split_once(": ").map(|(_, f)| f).unwrap_or(&c.path);
            // etcd members are fixed when the cluster forms (initial-cluster,
            // state "new"): more pods would try to form a second cluster.
            if self.component == Component::Etcd && field == "spec.replicas" {
                return Err(refuse(
                    &d.key,
                    "etcd membership cannot change after creation",
                    c,
                    "keep pachyderm.etcd.replicas at",
                ));
            }
            if field.starts_with("spec.volumeClaimTemplates") {
                immutable = true;
                if field.ends_with("resources.requests.storage") {
                    let old = c.old.as_deref().and_then(quantity).unwrap_or(0.0);
                    let new = c.new.as_deref().and_then(quantity).unwrap_or(0.0);
                    if new < old {
                        return Err(refuse(
                            &d.key,
                            "volumes cannot shrink",
                            c,
                            "keep the size at or above",
                        ));
                    }
                    work.grow.push((
                        match_labels(&live["spec"]["selector"]),
                        c.new.clone().unwrap_or_default(),
                    ));
                }
            } else if [
                "spec.selector",
                "spec.serviceName",
                "spec.podManagementPolicy",
            ]
            .iter()
            .any(|p| field.starts_with(p))
            {
                immutable = true;
            }
        }
        if immutable {
            work.recreate.push(d.key.clone());
        }
        Ok(())
    }
}

/// A change the plan refuses, saying what it was and what to keep.
fn refuse(key: &ObjectKey, why: &str, change: &FieldChange, keep: &str) -> ProviderError {
    let old = change.old.as_deref().unwrap_or("?");
    let new = change.new.as_deref().unwrap_or("?");
    ProviderError::api(format!("{key}: {why} ({old} -> {new}); {keep} {old}"))
}

fn join_keys(keys: &[ObjectKey]) -> String {
    keys.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn summarize(work: &Work, total: usize) -> Change {
    let mut fields = Vec::new();
    for (d, changes) in &work.apply {
        match changes {
            None => fields.push(FieldChange {
                path: d.key.to_string(),
                old: work
                    .terminating
                    .contains(&d.key)
                    .then(|| "(being deleted)".to_string()),
                new: Some("(new object)".into()),
            }),
            Some(c) => fields.extend(c.iter().cloned()),
        }
    }
    for (key, _) in &work.remove {
        fields.push(FieldChange {
            path: key.to_string(),
            old: Some("(exists)".into()),
            new: None,
        });
    }
    let new_objects = work.apply.iter().filter(|(_, c)| c.is_none()).count();
    let (action, reason) = if total == 0 && work.remove.is_empty() {
        (Action::Keep, "disabled".to_string())
    } else if total == 0 {
        (
            Action::Delete,
            format!("disabled: {} object(s) to remove", work.remove.len()),
        )
    } else if new_objects == total {
        (Action::Create, format!("{total} object(s) not found"))
    } else if !work.recreate.is_empty() {
        let why = if work.grow.is_empty() {
            "immutable fields change"
        } else {
            "volumes grow"
        };
        (
            Action::Replace,
            format!(
                "{why}: {} re-created without restarting its pods",
                join_keys(&work.recreate)
            ),
        )
    } else if !fields.is_empty() {
        let mut parts = Vec::new();
        if new_objects > 0 {
            parts.push(format!("{new_objects} object(s) missing"));
        }
        let changed = fields.len() - new_objects - work.remove.len();
        if changed > 0 {
            parts.push(format!("{changed} field(s) differ"));
        }
        if !work.remove.is_empty() {
            parts.push(format!("{} object(s) no longer wanted", work.remove.len()));
        }
        (Action::Update, parts.join(", "))
    } else if !work.unready.is_empty() {
        (
            Action::Keep,
            format!("in sync, not ready yet: {}", work.unready.join("; ")),
        )
    } else if !work.foreign.is_empty() {
        (
            Action::Keep,
            format!(
                "in sync ({} exists and is not howdah's: used as is, never deleted)",
                join_keys(&work.foreign)
            ),
        )
    } else {
        (Action::Keep, "in sync".to_string())
    };
    let reason = if work.terminating.is_empty() {
        reason
    } else {
        format!(
            "{reason}; first waits for {} to finish being deleted",
            join_keys(&work.terminating)
        )
    };
    let mut change = Change::new(action, reason);
    change.fields = fields;
    change
}

#[async_trait]
impl Resource for ComponentStep {
    fn id(&self) -> &str {
        &self.id
    }

    fn depends_on(&self) -> Vec<String> {
        self.deps.clone()
    }

    fn expected(&self, action: Action) -> Duration {
        match action {
            Action::Keep => Duration::ZERO,
            Action::Delete => Duration::from_secs(5),
            _ => expected(self.component),
        }
    }

    async fn plan_up(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        let desired_count = self
            .rt
            .desired()
            .await?
            .iter()
            .filter(|d| d.component == self.component)
            .count();
        let work = self.work().await?;
        self.refuse_downgrade(&work)?;
        let mut change = summarize(&work, desired_count);
        if !work.versions.is_empty() {
            let moves: Vec<String> = work.versions.iter().map(VersionMove::describe).collect();
            change.reason = format!(
                "{} (new images: the pods restart); {}",
                moves.join(", "),
                change.reason
            );
        }
        Ok(change)
    }

    async fn apply(&self, ctx: &StepContext, _change: &Change) -> Result<Value, ProviderError> {
        let rt = &self.rt;
        let work = self.work().await?;
        self.refuse_downgrade(&work)?;
        // Grow claims before re-creating their StatefulSet, so the new
        // template and the claims agree.
        for (selector, size) in &work.grow {
            ctx.progress.report(&format!("growing volumes to {size}"));
            self.grow_claims(selector, size).await?;
        }
        for key in &work.recreate {
            ctx.progress
                .report(&format!("re-creating {key} (pods keep running)"));
            self.orphan_delete(key, ctx).await?;
        }
        for key in &work.terminating {
            ctx.progress
                .report(&format!("{key} is being deleted: waiting for it to go"));
            wait_gone(rt, key, ctx).await?;
        }
        // Wait only on what was touched or was not ready: a converged
        // component costs no request at all.
        let mut workloads = Vec::new();
        for (d, _) in &work.apply {
            let mut applied = rt.cluster.apply(&d.object).await?;
            // What another field manager added to a list howdah renders
            // survives the apply; take it out with a write that removes it.
            if remove_foreign_entries(&d.object, &mut applied) > 0 {
                ctx.progress
                    .report(&format!("{}: removing entries another tool added", d.key));
                rt.cluster
                    .replace_with(
                        &kind_of(&d.object)?,
                        d.key.namespace.as_deref(),
                        &d.key.name,
                        |live| remove_foreign_entries(&d.object, live) > 0,
                    )
                    .await?;
            }
            if matches!(d.key.kind, "Deployment" | "StatefulSet") {
                workloads.push(d.object.clone());
            }
        }
        let desired: Vec<DesiredObject> = rt
            .desired()
            .await?
            .into_iter()
            .filter(|d| d.component == self.component)
            .collect();
        let objects: Vec<String> = desired.iter().map(|d| d.key.to_string()).collect();
        for d in &desired {
            let unready = work
                .unready
                .iter()
                .any(|u| u.starts_with(&format!("{}:", d.key)));
            if unready {
                workloads.push(d.object.clone());
            }
        }
        for (key, object) in &work.remove {
            let kind = kind_of(object)?;
            rt.cluster
                .delete(&kind, key.namespace.as_deref(), &key.name)
                .await?;
        }
        for w in &workloads {
            ctx.progress
                .report(&format!("waiting for {}", ObjectKey::of(w)?));
            wait_ready(&rt.cluster, w, rt.step_timeout, ctx.progress.as_ref()).await?;
        }
        Ok(json!({ "objects": objects }))
    }

    async fn plan_down(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        let targets = self.down_targets().await?;
        if targets.is_empty() {
            return Ok(Change::keep(self.nothing_to_delete_reason().await?));
        }
        Ok(deletions(&targets, "object(s)"))
    }

    async fn destroy(&self, ctx: &StepContext, _change: &Change) -> Result<(), ProviderError> {
        delete_and_wait(&self.rt, &self.down_targets().await?, ctx).await
    }
}

impl ComponentStep {
    /// What `down` deletes of this component: its live objects, less what
    /// holds retained data (the namespace of retained claims, the password
    /// the retained database was made with).
    async fn down_targets(&self) -> Result<Vec<(ObjectKey, Value)>, ProviderError> {
        let rt = &self.rt;
        let live = rt.live().await?;
        let claims_kept = !rt.delete_data
            && live
                .objects
                .keys()
                .any(|k| k.kind == "PersistentVolumeClaim");
        Ok(live
            .of_component(self.component)
            .into_iter()
            .filter(|(k, _)| k.kind != "PersistentVolumeClaim")
            .filter(|(k, _)| {
                !(claims_kept
                    && (k.kind == "Namespace"
                        || (k.kind == "Secret"
                            && super::KEPT_WITH_DATA.contains(&k.name.as_str()))))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn nothing_to_delete_reason(&self) -> Result<String, ProviderError> {
        let live = self.rt.live().await?;
        let kept = live.of_component(self.component).len();
        Ok(if kept > 0 {
            format!("{kept} object(s) kept with the retained data")
        } else {
            "already gone".into()
        })
    }

    async fn grow_claims(&self, selector: &str, size: &str) -> Result<(), ProviderError> {
        let rt = &self.rt;
        let kind = kind_named("PersistentVolumeClaim")
            .ok_or_else(|| ProviderError::api("PersistentVolumeClaim is not a known kind"))?;
        let patch = json!({"spec": {"resources": {"requests": {"storage": size}}}});
        for claim in rt
            .cluster
            .list(kind, Some(rt.namespace()), selector)
            .await?
        {
            let name = claim["metadata"]["name"].as_str().unwrap_or_default();
            rt.cluster
                .merge_patch(kind, Some(rt.namespace()), name, &patch)
                .await
                .map_err(|e| {
                    ProviderError::api(format!(
                        "{e} (does the claim's StorageClass allow volume expansion?)"
                    ))
                })?;
        }
        Ok(())
    }

    async fn orphan_delete(&self, key: &ObjectKey, ctx: &StepContext) -> Result<(), ProviderError> {
        let rt = &self.rt;
        let kind = kind_named(key.kind)
            .ok_or_else(|| ProviderError::api(format!("{} is not a known kind", key.kind)))?;
        if rt
            .cluster
            .delete_orphaning(kind, key.namespace.as_deref(), &key.name)
            .await?
        {
            wait_gone(rt, key, ctx).await?;
        }
        Ok(())
    }
}

/// Polls until the object no longer exists.
pub async fn wait_gone(
    rt: &Runtime,
    key: &ObjectKey,
    ctx: &StepContext,
) -> Result<(), ProviderError> {
    let kind = kind_named(key.kind)
        .ok_or_else(|| ProviderError::api(format!("{} is not a known kind", key.kind)))?;
    poll_until(
        &format!("{key} to be deleted"),
        rt.step_timeout,
        Backoff::default(),
        ctx.progress.as_ref(),
        || async {
            Ok(
                match rt
                    .cluster
                    .get(kind, key.namespace.as_deref(), &key.name)
                    .await?
                {
                    None => Poll::Ready(()),
                    Some(o) => Poll::Pending(terminating_reason(key, &o)),
                },
            )
        },
    )
    .await
}

/// Why an object is still there: its finalizers, and for a namespace the
/// conditions its controller set (content that will not go, an API group
/// it cannot list), which say what holds it.
fn terminating_reason(key: &ObjectKey, o: &Value) -> String {
    let mut text = format!("{key} is terminating");
    let finalizers: Vec<&str> = o["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !finalizers.is_empty() {
        text.push_str(&format!("; finalizers: {}", finalizers.join(", ")));
    }
    for c in o["status"]["conditions"].as_array().into_iter().flatten() {
        if c["status"].as_str() == Some("True") {
            text.push_str(&format!(
                "; {}: {}",
                c["type"].as_str().unwrap_or("condition"),
                c["message"].as_str().unwrap_or_default()
            ));
        }
    }
    text
}

/// Proves pachd works: gRPC health SERVING, the pinned version, and a
/// storage round trip through its file API.
pub struct Verify {
    pub rt: Arc<Runtime>,
    /// false under `up --no-verify`: nothing is asked, and the state
    /// records that verification was skipped.
    pub enabled: bool,
}

/// How long verification keeps trying a port-forward that fails every time
/// (within --timeout, whichever ends first).
pub const PORT_FORWARD_PATIENCE: Duration = Duration::from_secs(120);

/// The key of the verification step's outputs saying it was skipped.
pub const VERIFY_SKIPPED: &str = "skipped";

impl Verify {
    /// The selector of pachd's pods, from the rendered Deployment.
    pub async fn pachd_selector(rt: &Runtime) -> Result<String, ProviderError> {
        rt.desired()
            .await?
            .iter()
            .find(|d| d.component == Component::Pachd && d.key.kind == "Deployment")
            .map(|d| match_labels(&d.object["spec"]["selector"]))
            .ok_or_else(|| ProviderError::api("the runtime chart renders no pachd Deployment"))
    }

    /// How pachd reaches its object store, in words, for a round trip
    /// that fails: the identity binding is what is usually wrong.
    pub fn identity_hint(rt: &Runtime) -> String {
        let stack = &rt.stack;
        if let Some(local) = &stack.storage.local {
            return format!("the node directory {}", local.host_path);
        }
        if stack.pachyderm.identity == crate::spec::Identity::Keys {
            return "the static keys in pachyderm-storage-secret".into();
        }
        let mut annotations = stack.pachyderm.service_accounts.annotations();
        annotations.extend(
            rt.provider
                .runtime_inputs(&rt.outputs)
                .service_account_annotations,
        );
        if annotations.is_empty() {
            "the node's own credentials (the pachyderm service account has no workload \
             identity annotation)"
                .into()
        } else {
            let shown: Vec<String> = annotations
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("the service account pachyderm ({})", shown.join(", "))
        }
    }

    /// How verification reaches pachd: the plain peer port when pachd serves
    /// TLS on its public one, and with auth on the root token, read from
    /// the Secret pachd's AUTH_ROOT_TOKEN comes from.
    async fn access(rt: &Runtime) -> Result<verify::PachdAccess, ProviderError> {
        let p = &rt.stack.pachyderm;
        let port = if p.pachd.tls.is_some() {
            verify::PACHD_PEER_PORT
        } else {
            verify::PACHD_GRPC_PORT
        };
        let Some(enterprise) = p.enterprise.as_ref().filter(|e| e.auth) else {
            return Ok(verify::PachdAccess { port, token: None });
        };
        let (name, key) = match &enterprise.root_token_secret {
            Some(name) => (name.as_str(), super::inputs::ROOT_TOKEN.1),
            None => super::inputs::ROOT_TOKEN,
        };
        let kind = super::cluster::kind_named("Secret")
            .ok_or_else(|| ProviderError::api("Secret is not a known kind"))?;
        let secret = rt.cluster.get(kind, Some(rt.namespace()), name).await?;
        let token = secret
            .as_ref()
            .and_then(|s| super::secret_text(s, key))
            .ok_or_else(|| {
                ProviderError::config(format!(
                    "the root token (Secret `{name}`, key `{key}`) cannot be read, so howdah \
                     cannot check pachd's file API with auth on; check the Secret, or run with \
                     --no-verify"
                ))
            })?;
        Ok(verify::PachdAccess {
            port,
            token: Some(super::inputs::SecretText::new(token)),
        })
    }

    /// Asks pachd until it answers or `timeout` passes (a pod that just
    /// became ready may not serve yet; the API server may be busy). With
    /// `storage`, pachd must also write, read back and delete a file.
    pub async fn check(
        rt: &Runtime,
        timeout: Duration,
        storage: bool,
        progress: &dyn howdah_provider::Progress,
    ) -> Result<verify::Verified, ProviderError> {
        let identity = storage.then(|| Self::identity_hint(rt));
        let identity = identity.as_deref();
        let selector = Self::pachd_selector(rt).await?;
        let expected = rt.stack.pachyderm.version.clone();
        let access = Self::access(rt).await?;
        let access = &access;
        // Since when the port-forward itself has failed without a break:
        // a path the API server cannot open (no node address, a kubelet it
        // cannot dial) rarely heals, so it gets PORT_FORWARD_PATIENCE, not
        // the whole --timeout a slow pachd may need.
        let failing_since = std::sync::Mutex::new(None::<std::time::Instant>);
        let (failing_since, selector, expected) = (&failing_since, &selector, &expected);
        poll_until(
            "pachd to answer",
            timeout,
            Backoff::default(),
            progress,
            || async move {
                let result = verify::verify_pachd(
                    &rt.cluster,
                    rt.namespace(),
                    selector,
                    expected,
                    identity,
                    access,
                )
                .await;
                // A port-forward the API server cannot open, or a store
                // pachd cannot use, rarely heals: patience, not --timeout.
                let path_broken = matches!(&result, Err(e) if {
                    let text = e.to_string();
                    text.contains("port-forwarding") || text.contains("could not use its object store")
                });
                let since = {
                    let mut f = failing_since.lock().unwrap_or_else(|p| p.into_inner());
                    if !path_broken {
                        *f = None;
                    }
                    *f.get_or_insert_with(std::time::Instant::now)
                };
                match result {
                    Ok(v) => Ok(Poll::Ready(v)),
                    Err(e) if path_broken && since.elapsed() >= PORT_FORWARD_PATIENCE => {
                        Err(ProviderError::api(format!(
                            "{e} (the same for {}s)",
                            PORT_FORWARD_PATIENCE.as_secs()
                        )))
                    }
                    Err(e) if e.is_retryable() => Ok(Poll::Pending(e.to_string())),
                    Err(e) => Err(e),
                }
            },
        )
        .await
        .map_err(|e| {
            let text = e.to_string();
            if text.contains("port-forward") {
                ProviderError::api(format!(
                    "{text}; where port-forwarding to pods is not allowed, `howdah up --no-verify` skips this check"
                ))
            } else {
                e
            }
        })
    }
}

#[async_trait]
impl Resource for Verify {
    fn id(&self) -> &str {
        VERIFY_ID
    }

    fn depends_on(&self) -> Vec<String> {
        vec![
            step_id(Component::Pachd),
            step_id(Component::Console),
            step_id(Component::Proxy),
        ]
    }

    fn expected(&self, _action: Action) -> Duration {
        Duration::from_secs(3)
    }

    async fn plan_up(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        if !self.enabled {
            return Ok(Change::keep("skipped (--no-verify): pachd is not asked"));
        }
        Ok(Change::keep(format!(
            "check: pachd gRPC health is SERVING, GetVersion = {}, and a file written through \
             pachd reads back",
            self.rt.stack.pachyderm.version
        )))
    }

    /// Asks pachd for as long as any step may wait (`--timeout`): its pod
    /// was ready before this starts, so only a broken path waits long.
    async fn apply(&self, ctx: &StepContext, _change: &Change) -> Result<Value, ProviderError> {
        if !self.enabled {
            ctx.progress
                .report("verification skipped (--no-verify): pachd was not asked");
            return Ok(json!({ VERIFY_SKIPPED: "up --no-verify" }));
        }
        let verified =
            Self::check(&self.rt, self.rt.step_timeout, true, ctx.progress.as_ref()).await?;
        ctx.progress.report(&verified.summary());
        serde_json::to_value(&verified).map_err(|e| ProviderError::api(e.to_string()))
    }

    async fn plan_down(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
        Ok(Change::keep("nothing to delete"))
    }

    async fn destroy(&self, _ctx: &StepContext, _change: &Change) -> Result<(), ProviderError> {
        Ok(())
    }

    /// It only polls pachd: an interrupted run stops it at once.
    fn interruptible(&self) -> bool {
        true
    }
}
