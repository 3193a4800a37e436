//! The pachyderm-proxy stand-in: an Envoy as far as howdah depends on one.
//! It reads the configuration its pod really mounts (the ConfigMap named in
//! the pod's volumes, at the path given to `envoy -c`), picks the first
//! route of the listener on the forwarded port that matches the request
//! (path prefix, separated prefix or exact path, the gRPC mark,
//! header prefixes), and sends the request to the cluster it names: that
//! cluster's DNS name is resolved to a Service in the fake, the Service's
//! port to a target port of a ready pod it selects, and that pod's port to
//! the stand-in behind it, as a port-forward would reach it.
//!
//! It is no kinder than Envoy: no matching route is 404, a cluster with no
//! ready endpoint (no Service, no ready pod, a port nobody serves) is 503
//! "no healthy upstream", and a configuration it cannot read serves
//! nothing at all (Envoy would not start).

use std::sync::Arc;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::io::DuplexStream;

use crate::http::{full, Body};
use crate::resources::rt;
use crate::store::{name_of, ns_of, Store};

/// What a proxy pod serves with: its store (Services, pods, ConfigMaps), the
/// pachd stand-ins' files, and the pod itself.
#[derive(Clone)]
pub struct ProxyContext {
    pub store: Arc<Store>,
    pub pfs: Arc<crate::pfs::Pfs>,
    pub pod: Value,
    /// The container port the client reached.
    pub port: u16,
}

/// Serves one forwarded connection as the proxy's HTTP listener.
pub async fn serve_proxy(io: DuplexStream, ctx: ProxyContext) {
    let config = match mounted_config(&ctx) {
        Ok(config) => Arc::new(config),
        Err(why) => {
            tracing::warn!(pod = name_of(&ctx.pod), "the proxy cannot start: {why}");
            return;
        }
    };
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let ctx = ctx.clone();
        let config = config.clone();
        async move { Ok::<_, std::convert::Infallible>(route(&ctx, &config, req).await) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// The Envoy configuration the pod mounts: `-c <file>` in its container's
/// arguments, the file found under a mounted ConfigMap volume.
fn mounted_config(ctx: &ProxyContext) -> Result<Value, String> {
    let spec = &ctx.pod["spec"];
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    let container = containers
        .iter()
        .find(|c| c["image"].as_str().is_some_and(|i| i.contains("envoy")))
        .ok_or("no envoy container")?;
    let args: Vec<&str> = container["args"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let file = args
        .iter()
        .position(|a| *a == "-c" || *a == "--config-path")
        .and_then(|i| args.get(i + 1))
        .ok_or("envoy is given no -c <file>")?;
    let (dir, key) = file
        .rsplit_once('/')
        .ok_or("the config path has no directory")?;
    let mount = container["volumeMounts"]
        .as_array()
        .and_then(|ms| {
            ms.iter()
                .find(|m| m["mountPath"].as_str().map(|p| p.trim_end_matches('/')) == Some(dir))
        })
        .ok_or_else(|| format!("nothing is mounted at {dir}"))?;
    let volume = spec["volumes"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == mount["name"]))
        .ok_or("the mount names no volume")?;
    let map_name = volume["configMap"]["name"]
        .as_str()
        .ok_or("the config volume is not a ConfigMap")?;
    let namespace = ns_of(&ctx.pod);
    let text = {
        let state = ctx.store.lock();
        let map = state
            .get(rt("", "configmaps"), Some(namespace), map_name)
            .ok_or_else(|| format!("ConfigMap {map_name} not found"))?;
        map["data"][key]
            .as_str()
            .ok_or_else(|| format!("ConfigMap {map_name} has no key {key}"))?
            .to_string()
    };
    // Envoy reads .yaml and .json files alike; JSON is YAML.
    serde_norway::from_str(&text).map_err(|e| format!("{file} does not parse: {e}"))
}

fn plain(status: u16, text: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(full(text.to_string()))
        .expect("valid response")
}

async fn route(ctx: &ProxyContext, config: &Value, req: Request<Incoming>) -> Response<Body> {
    let Some(cluster) = pick_cluster(config, ctx.port, &req) else {
        // Envoy: no route matched (NR), an empty 404.
        return Response::builder()
            .status(404)
            .body(full(""))
            .expect("valid response");
    };
    let Some((backend, http2)) = upstream(ctx, config, &cluster) else {
        return plain(503, "no healthy upstream");
    };
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    crate::portforward::serve_backend(backend, theirs, &ctx.store, &ctx.pfs);
    let io = TokioIo::new(ours);
    let answer = if http2 {
        match hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await {
            Ok((mut sender, conn)) => {
                tokio::spawn(conn);
                sender.send_request(req).await
            }
            Err(e) => Err(e),
        }
    } else {
        match hyper::client::conn::http1::handshake(io).await {
            Ok((mut sender, conn)) => {
                tokio::spawn(conn);
                sender.send_request(req).await
            }
            Err(e) => Err(e),
        }
    };
    match answer {
        Ok(resp) => resp.map(|body| body.map_err(std::io::Error::other).boxed()),
        // Envoy: the upstream reset or refused the connection.
        Err(_) => plain(
            503,
            "upstream connect error or disconnect/reset before headers",
        ),
    }
}

/// The cluster of the first route that matches `req` on the listener bound
/// to `port`.
fn pick_cluster(config: &Value, port: u16, req: &Request<Incoming>) -> Option<String> {
    let listener = config["static_resources"]["listeners"]
        .as_array()?
        .iter()
        .find(|l| l["address"]["socket_address"]["port_value"] == port)?;
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    for chain in listener["filter_chains"].as_array()? {
        for filter in chain["filters"].as_array()? {
            let hosts = filter["typed_config"]["route_config"]["virtual_hosts"].as_array()?;
            for vhost in hosts {
                let domains: Vec<&str> = vhost["domains"]
                    .as_array()
                    .map(|d| d.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if !domains.iter().any(|d| *d == "*" || *d == host) {
                    continue;
                }
                for r in vhost["routes"].as_array()? {
                    if matches(&r["match"], req) {
                        return r["route"]["cluster"].as_str().map(str::to_string);
                    }
                }
            }
        }
    }
    None
}

/// Envoy's RouteMatch for the parts the stand-in knows; any other part
/// makes the route not match (fail closed).
fn matches(m: &Value, req: &Request<Incoming>) -> bool {
    let Some(fields) = m.as_object() else {
        return false;
    };
    let path = req.uri().path();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    fields.iter().all(|(key, want)| match key.as_str() {
        "prefix" => want.as_str().is_some_and(|p| path.starts_with(p)),
        "path" => want.as_str() == Some(path),
        // "/pfs" matches "/pfs" and "/pfs/..." but not "/pfsx".
        "path_separated_prefix" => want.as_str().is_some_and(|p| {
            path == p
                || path
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        }),
        "grpc" => header("content-type").is_some_and(|t| t.starts_with("application/grpc")),
        "headers" => want.as_array().is_some_and(|hs| {
            hs.iter().all(|h| {
                let value = h["name"].as_str().and_then(header);
                let sm = &h["string_match"];
                match (value, sm["prefix"].as_str(), sm["exact"].as_str()) {
                    (Some(v), Some(p), None) => v.starts_with(p),
                    (Some(v), None, Some(e)) => v == e,
                    _ => false,
                }
            })
        }),
        _ => false,
    })
}

/// The stand-in behind a cluster, and whether the cluster speaks HTTP/2 to
/// it; None when Envoy would find no healthy endpoint.
fn upstream(
    ctx: &ProxyContext,
    config: &Value,
    cluster: &str,
) -> Option<(crate::portforward::Backend, bool)> {
    let c = config["static_resources"]["clusters"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == cluster)?;
    let http2 = c["typed_extension_protocol_options"]
        .as_object()
        .is_some_and(|o| {
            o.values().any(|v| {
                v["explicit_http_config"]
                    .get("http2_protocol_options")
                    .is_some()
            })
        });
    let address = &c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"];
    let host = address["address"].as_str()?;
    let port = address["port_value"].as_u64()?;
    // Cluster DNS: <service>, <service>.<namespace>, or the full name.
    let pod_ns = ns_of(&ctx.pod).to_string();
    let mut labels = host.split('.');
    let service = labels.next()?;
    let rest: Vec<&str> = labels.collect();
    let namespace = match rest.as_slice() {
        [] => pod_ns,
        [ns] | [ns, "svc"] | [ns, "svc", "cluster", "local"] => (*ns).to_string(),
        _ => return None,
    };
    let state = ctx.store.lock();
    let svc = state.get(rt("", "services"), Some(&namespace), service)?;
    let entry = svc["spec"]["ports"]
        .as_array()?
        .iter()
        .find(|p| p["port"].as_u64() == Some(port))?;
    let selector = svc["spec"]["selector"].as_object()?;
    let target = &entry["targetPort"];
    state
        .list(rt("", "pods"), Some(&namespace))
        .into_iter()
        .filter(|pod| {
            selector
                .iter()
                .all(|(k, v)| pod["metadata"]["labels"][k.as_str()] == *v)
        })
        .filter(|pod| crate::controller::is_pod_ready(pod))
        .find_map(|pod| {
            let number = match target {
                Value::Number(n) => u16::try_from(n.as_u64()?).ok()?,
                Value::String(name) => pod["spec"]["containers"]
                    .as_array()?
                    .iter()
                    .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                    .find(|p| p["name"] == name.as_str())
                    .and_then(|p| u16::try_from(p["containerPort"].as_u64()?).ok())?,
                // targetPort left out: the Service port itself.
                _ => u16::try_from(port).ok()?,
            };
            crate::portforward::backend_for(pod, number).map(|b| (b, http2))
        })
}
