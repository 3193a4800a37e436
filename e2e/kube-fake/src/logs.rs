//! `pods/{name}/log`: a few plausible lines per container, the kubelet's
//! errors for containers that never started, and for crash-looping images a
//! log that ends in a panic. Honours container, previous, tailLines,
//! timestamps and limitBytes.

use std::sync::Arc;

use http::Response;

use crate::errors::{ApiError, ApiResult};
use crate::http::{text_response, Body, Query, Shared};
use crate::kubelet::{image_fate, image_tag, ImageFate};
use crate::resources::rt;

fn lines_for(pod: &str, container: &str, image: &str) -> Vec<String> {
    let mut lines = vec![format!("starting {container} (image {image}) in pod {pod}")];
    if image.contains("pachd") {
        lines.push(format!(
            "{{\"severity\":\"info\",\"message\":\"pachd version {}\"}}",
            image_tag(image)
        ));
        lines.push("{\"severity\":\"info\",\"message\":\"connected to etcd\"}".into());
        lines.push("{\"severity\":\"info\",\"message\":\"connected to postgres\"}".into());
        lines.push(
            "{\"severity\":\"info\",\"message\":\"pachd ready: serving gRPC on :1650\"}".into(),
        );
    } else {
        lines.push(format!("{container}: configuration loaded"));
        lines.push(format!("{container}: ready to accept connections"));
    }
    if image_fate(image) == ImageFate::Crashes {
        lines.truncate(2);
        lines.push("goroutine 1 [running]:".into());
        lines.push("panic: simulated crash".into());
    }
    lines
}

pub fn logs(
    shared: &Arc<Shared>,
    ns: Option<&str>,
    name: &str,
    q: &Query,
) -> ApiResult<Response<Body>> {
    let prt = rt("", "pods");
    if shared.node_unreachable && shared.store.lock().get(prt, ns, name).is_some() {
        return Err(ApiError::node_unreachable());
    }
    let pod = shared
        .store
        .lock()
        .get(prt, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(prt, name))?;
    let param = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let mut all: Vec<&serde_json::Value> = pod["spec"]["containers"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let inits: Vec<&serde_json::Value> = pod["spec"]["initContainers"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let names = |cs: &[&serde_json::Value]| {
        cs.iter()
            .filter_map(|c| c["name"].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let container = match param("container") {
        Some(c) => c.to_string(),
        None if all.len() == 1 => all[0]["name"].as_str().unwrap_or_default().to_string(),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names(&all)
            );
            if !inits.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    names(&inits)
                ));
            }
            return Err(ApiError::bad_request(msg));
        }
    };
    all.extend(inits);
    let Some(spec) = all.iter().find(|c| c["name"] == container.as_str()) else {
        return Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    };
    let image = spec["image"].as_str().unwrap_or_default();
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .chain(pod["status"]["initContainerStatuses"].as_array())
        .flatten();
    let status = statuses
        .into_iter()
        .find(|s| s["name"] == container.as_str())
        .cloned();
    let waiting = status
        .as_ref()
        .and_then(|s| s["state"]["waiting"]["reason"].as_str().map(str::to_string));
    match (&status, waiting.as_deref()) {
        (None, _) => {
            return Err(ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
            )))
        }
        (_, Some("ImagePullBackOff" | "ErrImagePull")) => {
            return Err(ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: trying and failing to pull image"
            )))
        }
        (_, Some("PodInitializing")) => {
            return Err(ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: PodInitializing"
            )))
        }
        _ => {}
    }
    let restarts = status
        .as_ref()
        .and_then(|s| s["restartCount"].as_i64())
        .unwrap_or(0);
    if matches!(param("previous"), Some("true" | "1")) && restarts == 0 {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    let mut lines = lines_for(name, &container, image);
    if let Some(n) = param("tailLines").and_then(|t| t.parse::<usize>().ok()) {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let stamp = pod["status"]["startTime"]
        .as_str()
        .unwrap_or("1970-01-01T00:00:00Z")
        .replace('Z', ".000000000Z");
    let mut text: String = lines
        .iter()
        .map(|l| {
            if matches!(param("timestamps"), Some("true" | "1")) {
                format!("{stamp} {l}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    if let Some(limit) = param("limitBytes").and_then(|b| b.parse::<usize>().ok()) {
        let mut cut = limit.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Ok(text_response(200, text))
}
