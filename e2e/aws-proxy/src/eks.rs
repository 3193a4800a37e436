//! EKS calls: forwarded to moto, with the answers rewritten so that clusters
//! and nodegroups go through CREATING and DELETING as on real EKS, and with
//! the ordering rules real EKS enforces (no cluster delete while nodegroups
//! exist, nothing new on a cluster that is not ACTIVE). Add-on calls go to
//! [`crate::addons`].

use bytes::Bytes;
use http::request::Parts;
use http::Response;
use http_body_util::Full;
use serde_json::{json, Value};

use crate::addons;
use crate::eks_route::EksRoute;
use crate::errors::{AwsError, Protocol};
use crate::identify::Call;
use crate::lifecycle::Phase;
use crate::server::{pass, Shared};
use crate::upstream::Answer;

/// Serves one EKS call.
pub async fn handle(
    shared: &Shared,
    call: &Call,
    parts: &Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let route = EksRoute::parse(&parts.method, parts.uri.path());
    let t = shared.timings;
    let region = call.region.clone();
    match route {
        EksRoute::CreateCluster => {
            let name = body_string(&body, "name");
            if let Some(name) = &name {
                let key = (region.clone(), name.clone());
                if shared.lifecycle().cluster_deleting(&key, &t) {
                    return in_use(format!("Cluster already exists with name: {name}"))
                        .with_field("clusterName", name)
                        .into_response(Protocol::RestJson);
                }
            }
            let answer = match shared.forward(parts, body).await {
                Ok(a) if a.status.is_success() => a,
                other => return pass(other),
            };
            let Some(name) = answer_name(&answer, "cluster", "name") else {
                return answer.into_response();
            };
            shared.lifecycle().cluster_created((region, name));
            if t.cluster_create.is_zero() {
                answer.into_response()
            } else {
                with_status(answer, "cluster", "CREATING").into_response()
            }
        }
        EksRoute::DescribeCluster { cluster } => {
            let answer = shared.forward(parts, body).await;
            let phase = shared.lifecycle().describe_cluster(&(region, cluster), &t);
            match answer {
                Ok(answer)
                    if t.clusters_fail && phase == Phase::Active && answer.status.is_success() =>
                {
                    with_status(answer, "cluster", "FAILED").into_response()
                }
                answer => show_phase(answer, "cluster", phase),
            }
        }
        EksRoute::ListClusters => {
            let answer = shared.forward(parts, body).await;
            let deleting = shared.lifecycle().deleting_clusters(&region, &t);
            add_to_list(answer, "clusters", deleting)
        }
        EksRoute::DeleteCluster { cluster } => {
            let attached = shared.lifecycle().live_nodegroups(&region, &cluster, &t);
            if let Some(nodegroup) = attached.first() {
                return in_use("Cluster has nodegroups attached".to_string())
                    .with_field("clusterName", &cluster)
                    .with_field("nodegroupName", nodegroup)
                    .into_response(Protocol::RestJson);
            }
            let answer = match shared.forward(parts, body).await {
                Ok(a) if a.status.is_success() => with_status(a, "cluster", "DELETING"),
                other => return pass(other),
            };
            let last = answer
                .json()
                .map(|v| v["cluster"].clone())
                .unwrap_or(Value::Null);
            shared
                .lifecycle()
                .cluster_deleted((region.clone(), cluster.clone()), last);
            shared.addons().drop_cluster(&region, &cluster);
            answer.into_response()
        }
        EksRoute::CreateNodegroup { cluster } => {
            let cluster_phase = shared
                .lifecycle()
                .cluster(&(region.clone(), cluster.clone()), &t);
            if cluster_phase != Phase::Active {
                let status = cluster_phase.status().unwrap_or("DELETED");
                return in_use(format!(
                    "Cluster {cluster} is in {status} status; nodegroups can be created only on an ACTIVE cluster"
                ))
                .with_field("clusterName", &cluster)
                .into_response(Protocol::RestJson);
            }
            if let Some(name) = body_string(&body, "nodegroupName") {
                let key = (region.clone(), cluster.clone(), name.clone());
                if matches!(shared.lifecycle().nodegroup(&key, &t), Phase::Deleting(_)) {
                    return in_use(format!(
                        "NodeGroup already exists with name {name} and cluster name {cluster}"
                    ))
                    .with_field("clusterName", &cluster)
                    .with_field("nodegroupName", &name)
                    .into_response(Protocol::RestJson);
                }
            }
            let answer = match shared.forward(parts, body).await {
                Ok(a) if a.status.is_success() => a,
                other => return pass(other),
            };
            let Some(name) = answer_name(&answer, "nodegroup", "nodegroupName") else {
                return answer.into_response();
            };
            shared
                .lifecycle()
                .nodegroup_created((region, cluster, name));
            if t.nodegroup_create.is_zero() {
                answer.into_response()
            } else {
                with_status(answer, "nodegroup", "CREATING").into_response()
            }
        }
        EksRoute::DescribeNodegroup { cluster, nodegroup } => {
            let answer = shared.forward(parts, body).await;
            let phase = shared
                .lifecycle()
                .describe_nodegroup(&(region, cluster, nodegroup), &t);
            show_phase(answer, "nodegroup", phase)
        }
        EksRoute::ListNodegroups { cluster } => {
            let answer = shared.forward(parts, body).await;
            let deleting = shared
                .lifecycle()
                .deleting_nodegroups(&region, &cluster, &t);
            add_to_list(answer, "nodegroups", deleting)
        }
        EksRoute::DeleteNodegroup { cluster, nodegroup } => {
            let answer = match shared.forward(parts, body).await {
                Ok(a) if a.status.is_success() => with_status(a, "nodegroup", "DELETING"),
                other => return pass(other),
            };
            let last = answer
                .json()
                .map(|v| v["nodegroup"].clone())
                .unwrap_or(Value::Null);
            shared
                .lifecycle()
                .nodegroup_deleted((region, cluster, nodegroup), last);
            answer.into_response()
        }
        EksRoute::CreateAddon { .. }
        | EksRoute::DescribeAddon { .. }
        | EksRoute::ListAddons { .. }
        | EksRoute::DeleteAddon { .. }
        | EksRoute::UpdateAddon { .. }
        | EksRoute::DescribeAddonVersions => {
            addons::handle(shared, call, route, parts, &body).await
        }
        _ => pass(shared.forward(parts, body).await),
    }
}

fn in_use(message: String) -> AwsError {
    AwsError::new(409, "ResourceInUseException", message)
}

fn body_string(body: &[u8], field: &str) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v[field].as_str().map(str::to_string))
}

/// `answer.<object>.<field>` as a string.
fn answer_name(answer: &Answer, object: &str, field: &str) -> Option<String> {
    answer
        .json()
        .and_then(|v| v[object][field].as_str().map(str::to_string))
}

/// Sets `<object>.status` in the answer's JSON body.
fn with_status(answer: Answer, object: &str, status: &str) -> Answer {
    match answer.json() {
        Some(mut v) if v[object].is_object() => {
            v[object]["status"] = json!(status);
            answer.with_json(&v)
        }
        _ => answer,
    }
}

/// A Describe answer as the proxy's view says it should look: CREATING
/// while the create lasts, and the last known body with DELETING while the
/// delete lasts (moto has already forgotten the resource and says 404).
fn show_phase(answer: anyhow::Result<Answer>, object: &str, phase: Phase) -> Response<Full<Bytes>> {
    let answer = match answer {
        Ok(a) => a,
        Err(_) => return pass(answer),
    };
    match phase {
        Phase::Creating if answer.status.is_success() => {
            with_status(answer, object, "CREATING").into_response()
        }
        Phase::Deleting(mut last) if answer.status == http::StatusCode::NOT_FOUND => {
            last["status"] = json!("DELETING");
            Answer::ok_json(&answer, &json!({ object: last })).into_response()
        }
        _ => answer.into_response(),
    }
}

/// Adds the names of DELETING resources, which moto has forgotten, to a List answer.
fn add_to_list(
    answer: anyhow::Result<Answer>,
    field: &str,
    deleting: Vec<String>,
) -> Response<Full<Bytes>> {
    let answer = match answer {
        Ok(a) if a.status.is_success() && !deleting.is_empty() => a,
        other => return pass(other),
    };
    let Some(mut v) = answer.json() else {
        return answer.into_response();
    };
    if let Some(list) = v[field].as_array_mut() {
        for name in deleting {
            if !list.iter().any(|n| n.as_str() == Some(name.as_str())) {
                list.push(json!(name));
            }
        }
    }
    answer.with_json(&v).into_response()
}
