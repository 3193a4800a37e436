//! The simulated scheduler and kubelet: pods are scheduled to the single
//! node once their claims are bound, then start after the ready delay.
//! Images decide the outcome: names containing "doesnotexist" or from the
//! registry host "invalid.example" never pull (ImagePullBackOff); tags
//! containing "crashloop" start and crash (CrashLoopBackOff); anything else
//! runs and is Ready. Graceful deletion finishes after the ready delay.

use serde_json::{json, Value};

use crate::controller::{condition, merge_conditions, Controller};
use crate::ops::{self, WriteCtx};
use crate::resources::rt;
use crate::store::{self, finalizers, is_terminating, name_of, ns_of, uid_of, State};

pub const NODE: &str = "fake-node";
pub const NODE_IP: &str = "172.18.0.2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFate {
    Runs,
    PullFails,
    Crashes,
}

/// The registry host of an image reference, if it names one.
fn registry_host(image: &str) -> Option<&str> {
    let (first, rest) = image.split_once('/')?;
    (!rest.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost"))
        .then_some(first)
}

/// The tag of an image reference (after the last ':' of the last path part).
pub fn image_tag(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or_default();
    let last = no_digest.rsplit('/').next().unwrap_or_default();
    last.split_once(':').map(|(_, t)| t).unwrap_or("latest")
}

pub fn image_fate(image: &str) -> ImageFate {
    if image.contains("doesnotexist") || registry_host(image) == Some("invalid.example") {
        ImageFate::PullFails
    } else if image_tag(image).contains("crashloop") {
        ImageFate::Crashes
    } else {
        ImageFate::Runs
    }
}

fn hex_id(seed: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in seed.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!(
        "{h:016x}{:016x}{h:016x}{:016x}",
        h.rotate_left(17),
        h.rotate_left(31)
    )
}

fn container_status(pod: &Value, c: &Value, now: &str) -> Value {
    let name = c["name"].as_str().unwrap_or_default();
    let image = c["image"].as_str().unwrap_or_default();
    let id = hex_id(&format!("{}/{name}", uid_of(pod)));
    match image_fate(image) {
        ImageFate::Runs => json!({
            "name": name, "image": image, "imageID": format!("{image}@sha256:{}", &id[..64]),
            "containerID": format!("containerd://{id}"), "ready": true, "started": true,
            "restartCount": 0, "state": {"running": {"startedAt": now}}, "lastState": {},
        }),
        ImageFate::PullFails => json!({
            "name": name, "image": image, "imageID": "", "ready": false, "started": false,
            "restartCount": 0, "lastState": {},
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\"")}},
        }),
        ImageFate::Crashes => json!({
            "name": name, "image": image, "imageID": format!("{image}@sha256:{}", &id[..64]),
            "containerID": format!("containerd://{id}"), "ready": false, "started": false, "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                "message": format!("back-off 1m20s restarting failed container={name} pod={}_{}({})", name_of(pod), ns_of(pod), uid_of(pod))}},
            "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "startedAt": now, "finishedAt": now,
                "containerID": format!("containerd://{id}")}},
        }),
    }
}

fn claims_of(pod: &Value) -> Vec<String> {
    pod["spec"]["volumes"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter_map(|v| {
                    v.pointer("/persistentVolumeClaim/claimName")
                        .and_then(|c| c.as_str())
                })
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// (image, name) pairs the status was computed for, to notice image changes.
fn images(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_string(),
                        c["image"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn pods(c: &mut Controller, st: &mut State) {
    let prt = rt("", "pods");
    let pods: Vec<Value> = st.list(prt, None).into_iter().cloned().collect();
    for pod in pods {
        let (uid, ns, name) = (
            uid_of(&pod).to_string(),
            ns_of(&pod).to_string(),
            name_of(&pod).to_string(),
        );
        if is_terminating(&pod) {
            // Containers "stop", then the kubelet removes the pod.
            if c.due(format!("{uid}/terminate")) {
                if finalizers(&pod).is_empty() {
                    st.remove(prt, Some(&ns), &name);
                } else {
                    // Containers are gone; the pod waits for its finalizers.
                    ops::mutate(
                        st,
                        prt,
                        Some(&ns),
                        &name,
                        &WriteCtx::controller("kubelet"),
                        |o| {
                            o["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                        },
                    );
                }
            }
            continue;
        }
        let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
        if matches!(phase, "Succeeded" | "Failed") {
            continue;
        }
        let started = pod["status"]["startTime"].is_string();
        if started {
            // Restart containers whose image changed.
            if images(&pod["spec"]["containers"]) != images(&pod["status"]["containerStatuses"]) {
                let now = store::now();
                let status = pod_status(&pod, &now);
                ops::mutate(
                    st,
                    prt,
                    Some(&ns),
                    &name,
                    &WriteCtx::status("kubelet"),
                    |o| o["status"] = status,
                );
            }
            continue;
        }
        // Scheduling waits for the pod's claims to be bound.
        let pvcrt = rt("", "persistentvolumeclaims");
        let unbound: Vec<String> = claims_of(&pod)
            .into_iter()
            .filter(|cl| {
                st.get(pvcrt, Some(&ns), cl)
                    .is_none_or(|p| p["status"]["phase"] != "Bound")
            })
            .collect();
        if !unbound.is_empty() {
            let missing = unbound.iter().any(|cl| !st.contains(pvcrt, Some(&ns), cl));
            let msg = if missing {
                format!("persistentvolumeclaim \"{}\" not found", unbound[0])
            } else {
                "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.".to_string()
            };
            let cond = condition("PodScheduled", false, "Unschedulable", &msg);
            let conds = merge_conditions(&pod["status"]["conditions"], vec![cond]);
            ops::mutate(
                st,
                prt,
                Some(&ns),
                &name,
                &WriteCtx::status("kube-scheduler"),
                |o| {
                    o["status"]["conditions"] = conds;
                },
            );
            c.event(
                st,
                &pod,
                "Warning",
                "FailedScheduling",
                &msg,
                "default-scheduler",
            );
            continue;
        }
        if !c.due(format!("{uid}/start")) {
            continue;
        }
        // Binding (pods/binding) sets nodeName without a managedFields entry.
        ops::mutate_unrecorded(st, prt, Some(&ns), &name, |o| {
            o["spec"]["nodeName"] = json!(NODE);
        });
        let Some(pod) = st.get(prt, Some(&ns), &name).cloned() else {
            continue;
        };
        let now = store::now();
        let status = pod_status(&pod, &now);
        c.event(
            st,
            &pod,
            "Normal",
            "Scheduled",
            &format!("Successfully assigned {ns}/{name} to {NODE}"),
            "default-scheduler",
        );
        for cs in status["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let (cname, image) = (
                cs["name"].as_str().unwrap_or_default(),
                cs["image"].as_str().unwrap_or_default(),
            );
            match image_fate(image) {
                ImageFate::Runs => c.event(
                    st,
                    &pod,
                    "Normal",
                    "Started",
                    &format!("Started container {cname}"),
                    "kubelet",
                ),
                ImageFate::PullFails => {
                    c.event(st, &pod, "Warning", "Failed", &format!("Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"), "kubelet");
                    c.event(
                        st,
                        &pod,
                        "Warning",
                        "BackOff",
                        &format!("Back-off pulling image \"{image}\""),
                        "kubelet",
                    );
                }
                ImageFate::Crashes => c.event(
                    st,
                    &pod,
                    "Warning",
                    "BackOff",
                    &format!(
                        "Back-off restarting failed container {cname} in pod {name}_{ns}({uid})"
                    ),
                    "kubelet",
                ),
            }
        }
        ops::mutate(
            st,
            prt,
            Some(&ns),
            &name,
            &WriteCtx::status("kubelet"),
            |o| o["status"] = status,
        );
    }
}

/// The full status of a started pod.
fn pod_status(pod: &Value, now: &str) -> Value {
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let inits = pod["spec"]["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let init_statuses: Vec<Value> = inits
        .iter()
        .map(|c| {
            let mut s = container_status(pod, c, now);
            if image_fate(c["image"].as_str().unwrap_or_default()) != ImageFate::PullFails {
                s["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}});
                s["ready"] = json!(true);
                s["started"] = json!(false);
            }
            s
        })
        .collect();
    let inits_done = init_statuses.iter().all(|s| s["ready"] == true);
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            if inits_done {
                container_status(pod, c, now)
            } else {
                json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false, "started": false,
                       "restartCount": 0, "lastState": {}, "state": {"waiting": {"reason": "PodInitializing"}}})
            }
        })
        .collect();
    let unready: Vec<&str> = statuses
        .iter()
        .filter(|s| s["ready"] != true)
        .filter_map(|s| s["name"].as_str())
        .collect();
    let pull_fail = statuses
        .iter()
        .chain(&init_statuses)
        .any(|s| s["state"]["waiting"]["reason"] == "ImagePullBackOff");
    let ready = unready.is_empty();
    let not_ready_msg = format!("containers with unready status: [{}]", unready.join(" "));
    let ip_seed = u32::from_str_radix(&hex_id(uid_of(pod))[..4], 16).unwrap_or(7);
    let pod_ip = format!("10.244.0.{}", ip_seed % 250 + 3);
    let conditions = vec![
        // No PodReadyToStartContainers: v1.26.0 has no such condition
        // (kube-recordings 20-probes seq 69).
        if inits_done {
            condition("Initialized", true, "", "")
        } else {
            condition(
                "Initialized",
                false,
                "ContainersNotInitialized",
                "containers with incomplete status: [init]",
            )
        },
        if ready {
            condition("Ready", true, "", "")
        } else {
            condition("Ready", false, "ContainersNotReady", &not_ready_msg)
        },
        if ready {
            condition("ContainersReady", true, "", "")
        } else {
            condition(
                "ContainersReady",
                false,
                "ContainersNotReady",
                &not_ready_msg,
            )
        },
        condition("PodScheduled", true, "", ""),
    ];
    let mut status = json!({
        "phase": if pull_fail { "Pending" } else { "Running" },
        // Pod conditions carry a null lastProbeTime (kube-recordings 20-probes seq 69).
        "conditions": conditions.into_iter().map(|mut c| {
            c["lastProbeTime"] = Value::Null;
            c
        }).collect::<Vec<Value>>(),
        // No hostIPs: v1.26.0 has no such field (kube-recordings 20-probes seq 69).
        "hostIP": NODE_IP,
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "qosClass": pod["status"]["qosClass"].as_str().unwrap_or("BestEffort"),
        "containerStatuses": statuses,
    });
    if !init_statuses.is_empty() {
        status["initContainerStatuses"] = json!(init_statuses);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_fates() {
        assert_eq!(image_fate("pachyderm/pachd:2.11.6"), ImageFate::Runs);
        assert_eq!(
            image_fate("invalid.example/pachd:2.11.6"),
            ImageFate::PullFails
        );
        assert_eq!(
            image_fate("docker.io/x/doesnotexist:1"),
            ImageFate::PullFails
        );
        assert_eq!(image_fate("pachd:2.11.6-crashloop"), ImageFate::Crashes);
        assert_eq!(image_fate("registry:5000/crashloop:1"), ImageFate::Runs);
        assert_eq!(image_tag("localhost:5000/a/b"), "latest");
        assert_eq!(image_tag("a/b:1.2@sha256:abc"), "1.2");
    }
}
