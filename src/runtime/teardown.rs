//! The parts of `down` that are not chart components: what Kubernetes made
//! in the cloud (load balancers), what pachd made (pipeline workers), the
//! data volumes (deleted only when the data may go), and the scan that
//! proves nothing else is left.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use howdah_provider::wait::{poll_until, Backoff, Poll};
use howdah_provider::{
    Action, Change, FieldChange, Leftover, ProviderError, Resource, StepContext,
};
use serde_json::Value;

use super::chart::Component;
use super::cluster::{kind_named, stack_selector, ObjectKey, KINDS, PERSISTENT_VOLUME};
use super::component::wait_gone;
use super::{step_id, Runtime};

pub const LOAD_BALANCERS_ID: &str = "runtime.load-balancers";
pub const WORKERS_ID: &str = "runtime.workers";
pub const VOLUMES_ID: &str = "runtime.volumes";

/// Label selector of the objects pachd makes for pipeline workers.
pub const WORKER_SELECTOR: &str = "suite=pachyderm,component=worker";

/// A plan line deleting `targets`.
pub(super) fn deletions(targets: &[(ObjectKey, Value)], what: &str) -> Change {
    if targets.is_empty() {
        return Change::keep(format!("no {what}"));
    }
    let mut change = Change::new(Action::Delete, format!("{} {what}", targets.len()));
    change.fields = targets
        .iter()
        .map(|(k, _)| FieldChange {
            path: k.to_string(),
            old: Some("(exists)".into()),
            new: None,
        })
        .collect();
    change
}

/// Deletes every target, then waits until each is really gone.
pub(super) async fn delete_and_wait(
    rt: &Runtime,
    targets: &[(ObjectKey, Value)],
    ctx: &StepContext,
) -> Result<(), ProviderError> {
    for (key, _) in targets {
        if let Some(kind) = kind_named(key.kind) {
            rt.cluster
                .delete(kind, key.namespace.as_deref(), &key.name)
                .await?;
        }
    }
    for (key, _) in targets {
        ctx.progress
            .report(&format!("waiting for {key} to be gone"));
        wait_gone(rt, key, ctx).await?;
    }
    Ok(())
}

async fn list_keyed(
    rt: &Runtime,
    kind: &str,
    selector: &str,
) -> Result<Vec<(ObjectKey, Value)>, ProviderError> {
    let Some(k) = kind_named(kind) else {
        return Ok(Vec::new());
    };
    if rt.live().await?.cluster_absent {
        return Ok(Vec::new());
    }
    rt.cluster
        .list(k, Some(rt.namespace()), selector)
        .await?
        .into_iter()
        .map(|o| Ok((ObjectKey::of(&o)?, o)))
        .collect()
}

/// Services of type LoadBalancer (the stack's and its pipelines'): deleted
/// first and awaited, so the cloud controller removes the cloud load
/// balancers while it still runs.
pub struct LoadBalancers {
    pub rt: Arc<Runtime>,
}

impl LoadBalancers {
    async fn targets(&self) -> Result<Vec<(ObjectKey, Value)>, ProviderError> {
        let mut out = list_keyed(&self.rt, "Service", &stack_selector(&self.rt.stack.name)).await?;
        out.extend(list_keyed(&self.rt, "Service", WORKER_SELECTOR).await?);
        out.retain(|(_, o)| o["spec"]["type"].as_str() == Some("LoadBalancer"));
        out.dedup_by(|a, b| a.0 == b.0);
        Ok(out)
    }
}

/// Pipeline workers pachd created (replication controllers, services,
/// secrets, pods): not in the chart, but in the namespace.
pub struct Workers {
    pub rt: Arc<Runtime>,
}

impl Workers {
    async fn targets(&self) -> Result<Vec<(ObjectKey, Value)>, ProviderError> {
        let mut out = Vec::new();
        for kind in ["ReplicationController", "Service", "Secret", "Pod"] {
            out.extend(list_keyed(&self.rt, kind, WORKER_SELECTOR).await?);
        }
        Ok(out)
    }
}

/// The stack's claims: deleted under dataPolicy delete / --delete-data,
/// otherwise kept and reported.
pub struct Volumes {
    pub rt: Arc<Runtime>,
}

impl Volumes {
    async fn claims(&self) -> Result<Vec<(ObjectKey, Value)>, ProviderError> {
        list_keyed(
            &self.rt,
            "PersistentVolumeClaim",
            &stack_selector(&self.rt.stack.name),
        )
        .await
    }
}

macro_rules! down_only {
    ($ty:ty, $id:expr, $what:expr, $deps:expr, holds_data: $data:expr) => {
        // $what names the resource for readers of the invocation.
        #[async_trait]
        impl Resource for $ty {
            fn id(&self) -> &str {
                $id
            }
            fn holds_data(&self) -> bool {
                $data
            }
            fn depends_on(&self) -> Vec<String> {
                $deps
            }
            fn expected(&self, action: Action) -> Duration {
                if action == Action::Keep {
                    Duration::ZERO
                } else {
                    Duration::from_secs(10)
                }
            }
            async fn plan_up(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
                Ok(Change::keep("only used by down"))
            }
            async fn plan_down(&self, _ctx: &StepContext) -> Result<Change, ProviderError> {
                self.plan_delete().await
            }
            async fn apply(
                &self,
                _ctx: &StepContext,
                _change: &Change,
            ) -> Result<Value, ProviderError> {
                Ok(Value::Null)
            }
            async fn destroy(
                &self,
                ctx: &StepContext,
                _change: &Change,
            ) -> Result<(), ProviderError> {
                self.delete(ctx).await
            }
        }
    };
}

impl LoadBalancers {
    async fn plan_delete(&self) -> Result<Change, ProviderError> {
        Ok(deletions(
            &self.targets().await?,
            "load balancer service(s)",
        ))
    }
    async fn delete(&self, ctx: &StepContext) -> Result<(), ProviderError> {
        delete_and_wait(&self.rt, &self.targets().await?, ctx).await
    }
}

impl Workers {
    async fn plan_delete(&self) -> Result<Change, ProviderError> {
        Ok(deletions(
            &self.targets().await?,
            "pipeline worker object(s)",
        ))
    }
    async fn delete(&self, ctx: &StepContext) -> Result<(), ProviderError> {
        delete_and_wait(&self.rt, &self.targets().await?, ctx).await
    }
}

impl Volumes {
    async fn plan_delete(&self) -> Result<Change, ProviderError> {
        let claims = self.claims().await?;
        if claims.is_empty() {
            return Ok(Change::keep("no volumes"));
        }
        if !self.rt.delete_data {
            let names: Vec<String> = claims.iter().map(|(k, _)| k.name.clone()).collect();
            return Ok(Change::keep(format!(
                "retained (dataPolicy: retain): {}; `howdah down --delete-data` removes them",
                names.join(", ")
            )));
        }
        let mut change = deletions(&claims, "data volume(s), data will be lost");
        let mut kept = Vec::new();
        for (_, claim) in &claims {
            let Some(volume) = claim["spec"]["volumeName"].as_str() else {
                continue;
            };
            if let Some(pv) = self
                .rt
                .cluster
                .get(&PERSISTENT_VOLUME, None, volume)
                .await?
            {
                if pv["spec"]["persistentVolumeReclaimPolicy"].as_str() == Some("Retain") {
                    kept.push(volume.to_string());
                }
            }
        }
        if !kept.is_empty() {
            change.reason = format!(
                "{}; their volume(s) {} have reclaim policy Retain and stay (Released, data on disk) until deleted by hand",
                change.reason,
                kept.join(", ")
            );
        }
        Ok(change)
    }
    async fn delete(&self, ctx: &StepContext) -> Result<(), ProviderError> {
        if !self.rt.delete_data {
            return Ok(());
        }
        let claims = self.claims().await?;
        delete_and_wait(&self.rt, &claims, ctx).await?;
        // A claim's volume outlives it: with reclaim policy Delete the
        // provisioner removes it (and the disk) shortly after; awaited here
        // so the disk is gone before the cluster is. Retain keeps it, which
        // the leak scan reports.
        for (_, claim) in &claims {
            let Some(volume) = claim["spec"]["volumeName"].as_str() else {
                continue;
            };
            let uid = claim["metadata"]["uid"].as_str().unwrap_or_default();
            self.wait_volume_released(volume, uid, ctx).await?;
        }
        Ok(())
    }

    async fn wait_volume_released(
        &self,
        volume: &str,
        claim_uid: &str,
        ctx: &StepContext,
    ) -> Result<(), ProviderError> {
        let rt = &self.rt;
        poll_until(
            &format!("PersistentVolume {volume} to be reclaimed"),
            rt.step_timeout,
            Backoff::default(),
            ctx.progress.as_ref(),
            || async {
                let Some(pv) = readable_volume(rt, volume).await? else {
                    return Ok(Poll::Ready(()));
                };
                let policy = pv["spec"]["persistentVolumeReclaimPolicy"].as_str();
                let phase = pv["status"]["phase"].as_str().unwrap_or("unknown");
                let same_claim = pv["spec"]["claimRef"]["uid"].as_str() == Some(claim_uid);
                Ok(match (policy, phase) {
                    // Kept by the cluster's policy, the deleter gave up, or
                    // the provisioner already made it anew for someone
                    // else: nothing more will happen by waiting.
                    (Some("Retain"), _) | (_, "Failed" | "Available") => Poll::Ready(()),
                    _ if !same_claim => Poll::Ready(()),
                    _ => Poll::Pending(format!("PersistentVolume {volume} is {phase}")),
                })
            },
        )
        .await
    }
}

/// A PersistentVolume, or None when it is gone or the user may not read
/// volumes (they are the cluster's; namespaced rights do not cover them):
/// then there is nothing to wait for or say about it.
async fn readable_volume(rt: &Runtime, name: &str) -> Result<Option<Value>, ProviderError> {
    match rt.cluster.get(&PERSISTENT_VOLUME, None, name).await {
        Ok(pv) => Ok(pv),
        Err(e) if !e.is_retryable() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Volumes left by the stack's deleted claims: a PersistentVolume whose
/// claimRef names a claim of the stack's StatefulSets (`<template>-<set>-<n>`
/// in the runtime namespace) that no longer exists. Retain keeps them
/// Released, with the data on the disk behind them.
async fn orphaned_volumes(
    rt: &Runtime,
    live_claims: &[String],
) -> Result<Vec<Leftover>, ProviderError> {
    // The claim names need no secret: a redacted render reads nothing
    // (the real one would read Secrets from a namespace just deleted).
    let mut prefixes = Vec::new();
    let rendered = super::render_stack(
        &rt.stack,
        &rt.provider.runtime_inputs(&rt.outputs),
        &super::inputs::RenderSecrets::redacted(),
    )?;
    for d in rendered {
        if d.key.kind != "StatefulSet" {
            continue;
        }
        for t in d.object["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(template) = t["metadata"]["name"].as_str() {
                prefixes.push(format!("{template}-{}-", d.key.name));
            }
        }
    }
    let ours = |claim: &str| {
        prefixes.iter().any(|p| {
            claim
                .strip_prefix(p.as_str())
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
    };
    let mut out = Vec::new();
    // Volumes are cluster-scoped: a user who may not list them (RBAC) gets
    // the rest of the scan rather than none, as with pipeline workers.
    let volumes = match rt.cluster.list(&PERSISTENT_VOLUME, None, "").await {
        Ok(v) => v,
        Err(e) if !e.is_retryable() => Vec::new(),
        Err(e) => return Err(e),
    };
    for pv in volumes {
        let claim_ref = &pv["spec"]["claimRef"];
        let Some(claim) = claim_ref["name"].as_str() else {
            continue;
        };
        if claim_ref["namespace"].as_str() != Some(rt.namespace())
            || !ours(claim)
            || live_claims.iter().any(|c| c == claim)
        {
            continue;
        }
        let name = pv["metadata"]["name"].as_str().unwrap_or_default();
        let phase = pv["status"]["phase"].as_str().unwrap_or("unknown");
        let retained = pv["spec"]["persistentVolumeReclaimPolicy"].as_str() == Some("Retain");
        out.push(Leftover {
            kind: "kubernetes.PersistentVolume".into(),
            name: name.to_string(),
            retained,
            remove_with: if retained {
                format!(
                    "kubectl delete pv {name} (it is {phase} with reclaim policy Retain, the data of claim {}/{claim} still on it; delete the disk behind it too)",
                    rt.namespace()
                )
            } else {
                format!("kubectl delete pv {name} (it is {phase}; its claim {}/{claim} is gone)", rt.namespace())
            },
            status: None,
        });
    }
    Ok(out)
}

down_only!(
    LoadBalancers,
    LOAD_BALANCERS_ID,
    "load balancers",
    Vec::new(),
    holds_data: false
);
down_only!(
    Workers,
    WORKERS_ID,
    "workers",
    vec![step_id(Component::Pachd)],
    holds_data: false
);
down_only!(
    Volumes,
    VOLUMES_ID,
    "volumes",
    vec![step_id(Component::Etcd), step_id(Component::Postgres)],
    holds_data: true
);

/// Everything of the stack still in the cluster, by ownership label, in
/// every namespace, plus pipeline workers in the runtime namespace. What
/// the data policy keeps is marked retained; the rest has leaked.
pub async fn leftovers(rt: &Runtime) -> Result<Vec<Leftover>, ProviderError> {
    let selector = stack_selector(&rt.stack.name);
    let mut found: Vec<Value> = Vec::new();
    if !rt.provider.cluster_exists().await? {
        return Ok(Vec::new()); // the cluster went, and everything in it
    }
    for kind in KINDS {
        found.extend(rt.cluster.list(kind, None, &selector).await?);
    }
    for kind in ["ReplicationController", "Service", "Secret", "Pod"] {
        if let Some(k) = kind_named(kind) {
            // The namespace may be gone: then so are its workers.
            found.extend(
                rt.cluster
                    .list(k, Some(rt.namespace()), WORKER_SELECTOR)
                    .await
                    .unwrap_or_default(),
            );
        }
    }
    let claims_kept = !rt.delete_data
        && found
            .iter()
            .any(|o| o["kind"].as_str() == Some("PersistentVolumeClaim"));
    let mut out = Vec::new();
    for object in found {
        let key = ObjectKey::of(&object)?;
        if object["metadata"]["deletionTimestamp"].is_string() && key.kind == "Pod" {
            continue; // on its way out with its owner
        }
        let retained = claims_kept
            && (key.kind == "PersistentVolumeClaim"
                || key.kind == "Namespace"
                || (key.kind == "Secret" && super::KEPT_WITH_DATA.contains(&key.name.as_str())));
        let ns = key.namespace.clone().unwrap_or_default();
        out.push(Leftover {
            kind: format!("kubernetes.{}", key.kind),
            name: if ns.is_empty() {
                key.name.clone()
            } else {
                format!("{ns}/{}", key.name)
            },
            retained,
            remove_with: if retained {
                "howdah down --delete-data -f <stack file>".into()
            } else if ns.is_empty() {
                format!("kubectl delete {} {}", key.kind.to_lowercase(), key.name)
            } else {
                format!(
                    "kubectl delete -n {ns} {} {}",
                    key.kind.to_lowercase(),
                    key.name
                )
            },
            status: None,
        });
    }
    out.dedup_by(|a, b| a.kind == b.kind && a.name == b.name);
    let live_claims: Vec<String> = out
        .iter()
        .filter(|l| l.kind == "kubernetes.PersistentVolumeClaim")
        .filter_map(|l| l.name.rsplit('/').next().map(str::to_string))
        .collect();
    out.extend(orphaned_volumes(rt, &live_claims).await?);
    Ok(out)
}
