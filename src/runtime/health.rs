//! Is a workload ready, and if not, why not. Readiness is a small predicate
//! over the live object; waiting watches the object until the predicate
//! holds; the diagnosis looks at the pods, claims and events behind a
//! workload and says what a person would find with kubectl describe/logs.

use std::time::Duration;

use howdah_provider::{Progress, ProviderError};
use k8s_openapi::api::core::v1::{Event as KubeEvent, Pod};
use kube::api::{Api, DynamicObject, ListParams, LogParams};
use kube::runtime::wait::await_condition;
use serde_json::Value;

use super::cluster::{kind_named, kind_of, map_err, ClusterHandle, Kind, ObjectKey};

/// Whether the live object, read as `kind`, is ready; `Err` carries what
/// is still missing. The kind comes from what was asked for, not from the
/// object (list items carry none). Fails closed: a kind this does not know,
/// or a status it cannot read, is not ready.
pub fn readiness(kind: &Kind, object: &Value) -> Result<(), String> {
    if object["metadata"]["deletionTimestamp"].is_string() {
        return Err(format!("{} is being deleted", kind.kind));
    }
    let status = &object["status"];
    let int = |k: &str| status[k].as_i64().unwrap_or(0);
    match kind.kind {
        "Deployment" | "StatefulSet" => {
            let Some(generation) = object["metadata"]["generation"].as_i64() else {
                return Err("the object has no metadata.generation".into());
            };
            // The API server always fills spec.replicas (default 1).
            let Some(spec_replicas) = object["spec"]["replicas"].as_i64() else {
                return Err("the object has no spec.replicas".into());
            };
            if int("observedGeneration") < generation {
                return Err("the controller has not seen the latest change yet".into());
            }
            let ready = int("readyReplicas");
            let updated = int("updatedReplicas");
            if ready < spec_replicas || updated < spec_replicas {
                return Err(format!(
                    "{ready}/{spec_replicas} ready, {updated}/{spec_replicas} updated"
                ));
            }
            if kind.kind == "Deployment" && int("availableReplicas") < spec_replicas {
                return Err(format!(
                    "{}/{spec_replicas} available",
                    int("availableReplicas")
                ));
            }
            if kind.kind == "StatefulSet" {
                let current = status["currentRevision"].as_str();
                let update = status["updateRevision"].as_str();
                if current.is_some() && update.is_some() && current != update {
                    return Err("rolling to the new revision".into());
                }
            }
            Ok(())
        }
        "PersistentVolumeClaim" => match status["phase"].as_str() {
            Some("Bound") => Ok(()),
            other => Err(format!("claim is {}", other.unwrap_or("Pending"))),
        },
        "Namespace" => match status["phase"].as_str() {
            Some("Active") => Ok(()),
            Some(other) => Err(format!("namespace is {other}")),
            None => Err("the namespace reports no phase".into()),
        },
        // Nothing to wait for: these are in effect once they exist.
        "ServiceAccount" | "Secret" | "ConfigMap" | "Service" | "Role" | "RoleBinding" => Ok(()),
        // The controller's address in status.loadBalancer comes later and
        // may never come (no controller watches this class): the route is
        // in place once it exists, and `status` says where it points.
        "Ingress" => Ok(()),
        other => Err(format!("howdah does not know when a {other} is ready")),
    }
}

/// Waits (with a watch) until `object` is ready, reporting why it is not
/// every little while; after `timeout` fails with the last diagnosis. A
/// state that cannot resolve by itself (no StorageClass to bind a claim)
/// fails at once.
pub async fn wait_ready(
    cluster: &ClusterHandle,
    object: &Value,
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<(), ProviderError> {
    let kind = kind_of(object)?;
    if !matches!(kind.kind, "Deployment" | "StatefulSet") {
        return Ok(());
    }
    let key = ObjectKey::of(object)?;
    let api: Api<DynamicObject> = cluster.api(&kind, key.namespace.as_deref()).await?;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut why = String::from("waiting for the controller");
    let mut next_look = Duration::from_secs(2);
    let mut broken_watches = 0u32;
    loop {
        // A watch the server drops (throttling, restart) is opened again;
        // the condition is checked on the fresh list it starts with.
        let watch = await_condition(api.clone(), &key.name, |o: Option<&DynamicObject>| {
            o.and_then(|o| serde_json::to_value(o).ok())
                .map(|v| readiness(&kind, &v).is_ok())
                .unwrap_or(false)
        });
        tokio::pin!(watch);
        loop {
            tokio::select! {
                done = &mut watch => {
                    match done {
                        Ok(_) => return Ok(()),
                        Err(e) => {
                            broken_watches += 1;
                            progress.report(&format!("{key}: watch interrupted ({e}); watching again"));
                            let pause = howdah_provider::wait::Backoff::default().delay(broken_watches.min(5));
                            tokio::time::sleep(pause).await;
                            break;
                        }
                    }
                }
                _ = tokio::time::sleep(next_look) => {
                    next_look = Duration::from_secs(10);
                    match diagnose(cluster, object).await {
                        Ok(Diagnosis::Waiting(text)) => { why = text; progress.report(&format!("{key}: {why}")); }
                        Ok(Diagnosis::Hopeless(text)) => {
                            return Err(ProviderError::api(format!("{key} cannot become ready: {text}")));
                        }
                        Err(e) => why = format!("could not look at its pods: {e}"),
                    }
                }
                _ = &mut deadline => {
                    if let Ok(Diagnosis::Waiting(text) | Diagnosis::Hopeless(text)) = diagnose(cluster, object).await {
                        why = text;
                    }
                    return Err(ProviderError::Timeout { what: format!("waiting for {key} to become ready: {why}"), after: timeout });
                }
            }
        }
    }
}

/// What is holding a workload back.
pub enum Diagnosis {
    /// Might still resolve by itself.
    Waiting(String),
    /// Will not resolve without a change by the user.
    Hopeless(String),
}

/// Looks behind a workload: its pods' container states (image pulls,
/// crash loops with their last log lines, scheduling) and its claims.
pub async fn diagnose(cluster: &ClusterHandle, object: &Value) -> Result<Diagnosis, ProviderError> {
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let selector = match_labels(&object["spec"]["selector"]);
    // Claims first: a pod waiting on an unbound claim says only that.
    if object["kind"].as_str() == Some("StatefulSet") {
        if let Some(d) = pending_claims(cluster, namespace, &selector).await? {
            return Ok(d);
        }
    }
    let client = cluster.client().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| map_err("listing pods", e))?;
    for pod in &list.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(status) = &pod.status else { continue };
        for cs in status.container_statuses.iter().flatten() {
            let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let reason = waiting.reason.clone().unwrap_or_default();
            let message = waiting.message.clone().unwrap_or_default();
            match reason.as_str() {
                "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" => {
                    return Ok(Diagnosis::Waiting(format!(
                        "pod {name}: {reason} for image {}: {message} (check pachyderm.imageRegistry / imagePullSecrets, or that the version exists)",
                        cs.image
                    )));
                }
                "CrashLoopBackOff" | "CreateContainerConfigError" | "RunContainerError" => {
                    let logs = pods
                        .logs(
                            &name,
                            &LogParams {
                                container: Some(cs.name.clone()),
                                previous: cs.restart_count > 0,
                                tail_lines: Some(5),
                                ..LogParams::default()
                            },
                        )
                        .await
                        .unwrap_or_default();
                    let tail: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
                    return Ok(Diagnosis::Waiting(format!(
                        "pod {name}: container {} {reason} (restarts: {}){}{}",
                        cs.name,
                        cs.restart_count,
                        if message.is_empty() {
                            String::new()
                        } else {
                            format!(": {message}")
                        },
                        if tail.is_empty() {
                            String::new()
                        } else {
                            format!("; last log lines:\n    {}", tail.join("\n    "))
                        }
                    )));
                }
                _ => {}
            }
        }
        for cond in status.conditions.iter().flatten() {
            if cond.type_ == "PodScheduled" && cond.status == "False" {
                return Ok(Diagnosis::Waiting(format!(
                    "pod {name} cannot be scheduled: {}",
                    cond.message.clone().unwrap_or_default()
                )));
            }
        }
    }
    // Judge the live object: the rendered one has no status or generation.
    let kind = kind_of(object)?;
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    Ok(Diagnosis::Waiting(
        match cluster.get(&kind, Some(namespace), name).await? {
            Some(live) => readiness(&kind, &live)
                .err()
                .unwrap_or_else(|| "pods are starting".into()),
            None => format!("{} {name} is not there yet", kind.kind),
        },
    ))
}

/// A claim of the workload that is not bound, with the events that say why.
async fn pending_claims(
    cluster: &ClusterHandle,
    namespace: &str,
    selector: &str,
) -> Result<Option<Diagnosis>, ProviderError> {
    let Some(pvc_kind) = kind_named("PersistentVolumeClaim") else {
        return Ok(None);
    };
    for claim in cluster.list(pvc_kind, Some(namespace), selector).await? {
        if claim["status"]["phase"].as_str() == Some("Bound") {
            continue;
        }
        let name = claim["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let class = claim["spec"]["storageClassName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let classes = storage_classes(cluster).await?;
        let has_default = classes.iter().any(|(_, default)| *default);
        let names: Vec<&str> = classes.iter().map(|(n, _)| n.as_str()).collect();
        let fix = if names.is_empty() {
            "install a provisioner and StorageClass, or mark one default".to_string()
        } else {
            format!(
                "set storageClass in the stack file to one of: {}",
                names.join(", ")
            )
        };
        if class.is_empty() && !has_default {
            return Ok(Some(Diagnosis::Hopeless(format!(
                "PVC {name} is Pending: it names no StorageClass and the cluster has no default one; {fix}"
            ))));
        }
        if !class.is_empty() && !names.contains(&class.as_str()) {
            return Ok(Some(Diagnosis::Hopeless(format!(
                "PVC {name} is Pending: StorageClass `{class}` does not exist; {fix}"
            ))));
        }
        let client = cluster.client().await?;
        let events: Api<KubeEvent> = Api::namespaced(client, namespace);
        let found = events
            .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await
            .map_err(|e| map_err("listing events", e))?;
        let last = found
            .items
            .iter()
            .filter_map(|e| e.message.clone())
            .next_back()
            .unwrap_or_else(|| "no events yet".into());
        return Ok(Some(Diagnosis::Waiting(format!(
            "PVC {name} is Pending: {last}"
        ))));
    }
    Ok(None)
}

async fn storage_classes(cluster: &ClusterHandle) -> Result<Vec<(String, bool)>, ProviderError> {
    let Some(kind) = kind_named("StorageClass") else {
        return Ok(Vec::new());
    };
    Ok(cluster
        .list(kind, None, "")
        .await?
        .iter()
        .map(|sc| {
            let default = sc["metadata"]["annotations"]
                ["storageclass.kubernetes.io/is-default-class"]
                .as_str()
                == Some("true");
            (
                sc["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                default,
            )
        })
        .collect())
}

/// `a=b,c=d` from a label selector's matchLabels.
pub fn match_labels(selector: &Value) -> String {
    selector["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(name: &str) -> Kind {
        *kind_named(name).expect("a known kind")
    }

    #[test]
    fn a_deployment_is_ready_only_when_the_controller_caught_up() {
        let deployment = kind("Deployment");
        let mut d = json!({"metadata": {"generation": 2},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1}});
        assert!(readiness(&deployment, &d).is_err());
        d["status"]["observedGeneration"] = json!(2);
        assert!(readiness(&deployment, &d).is_ok());
        d["status"]["availableReplicas"] = json!(0);
        assert!(readiness(&deployment, &d)
            .unwrap_err()
            .contains("available"));
    }

    /// What a real API server answers right after creating a Deployment,
    /// as an item of a list (no kind): kube-recordings 02-up-fresh seq 75.
    #[test]
    fn a_fresh_workload_from_a_list_is_not_ready() {
        let fresh = json!({"metadata": {"name": "pachd", "generation": 1},
            "spec": {"replicas": 1}, "status": {}});
        assert!(readiness(&kind("Deployment"), &fresh).is_err());
        assert!(readiness(&kind("StatefulSet"), &fresh).is_err());
    }

    #[test]
    fn what_readiness_does_not_understand_is_not_ready() {
        let pod = json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}});
        assert!(readiness(&kind("Pod"), &pod)
            .unwrap_err()
            .contains("does not know"));
        let no_generation = json!({"spec": {"replicas": 1},
            "status": {"readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1}});
        assert!(readiness(&kind("Deployment"), &no_generation).is_err());
        let terminating = json!({"metadata": {"deletionTimestamp": "2026-12-01T00:00:00Z"}});
        assert!(readiness(&kind("Secret"), &terminating).is_err());
        assert!(readiness(
            &kind("Namespace"),
            &json!({"status": {"phase": "Terminating"}})
        )
        .is_err());
        assert!(readiness(&kind("Namespace"), &json!({"status": {"phase": "Active"}})).is_ok());
    }

    #[test]
    fn a_statefulset_mid_roll_is_not_ready() {
        let s = json!({"metadata": {"generation": 1}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3,
                       "currentRevision": "a", "updateRevision": "b"}});
        assert!(readiness(&kind("StatefulSet"), &s)
            .unwrap_err()
            .contains("revision"));
    }

    #[test]
    fn match_labels_render_as_a_selector() {
        let sel = json!({"matchLabels": {"app": "etcd", "suite": "pachyderm"}});
        assert_eq!(match_labels(&sel), "app=etcd,suite=pachyderm");
    }
}
