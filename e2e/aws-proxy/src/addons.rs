//! The EKS add-on API, which moto does not have (it answers 404), served by
//! the proxy itself after the EKS API reference: CreateAddon, DescribeAddon,
//! ListAddons, DeleteAddon, UpdateAddon and DescribeAddonVersions. The
//! cluster an add-on belongs to is looked up in moto, so add-ons exist only
//! on clusters that do.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http::Response;
use http_body_util::Full;
use serde_json::{json, Map, Value};

use crate::addon_catalog;
use crate::eks_route::EksRoute;
use crate::errors::{new_request_id, AwsError, Protocol};
use crate::identify::Call;
use crate::lifecycle::{Phase, Timings};
use crate::server::{pass, Shared};

/// (region, cluster, add-on)
type AddonKey = (String, String, String);

/// The add-ons installed through the proxy.
#[derive(Debug, Default)]
pub struct Addons {
    installed: HashMap<AddonKey, Addon>,
}

#[derive(Debug, Clone)]
struct Addon {
    name: String,
    cluster: String,
    version: String,
    arn: String,
    service_account_role_arn: Option<String>,
    configuration_values: Option<String>,
    tags: Map<String, Value>,
    client_request_token: Option<String>,
    created: Instant,
    created_at: f64,
    modified_at: f64,
    updating_since: Option<Instant>,
    deleting_since: Option<Instant>,
}

impl Addon {
    /// The status EKS would report now; None once a delete has finished.
    fn status(&self, t: &Timings) -> Option<&'static str> {
        let elapsed = |since: Instant| since.elapsed();
        match self.deleting_since {
            Some(since) if elapsed(since) < t.addon_delete => Some("DELETING"),
            Some(_) => None,
            None if elapsed(self.created) < t.addon_create => Some("CREATING"),
            None => match self.updating_since {
                Some(since) if elapsed(since) < t.addon_create => Some("UPDATING"),
                _ => Some("ACTIVE"),
            },
        }
    }

    fn to_json(&self, status: &str) -> Value {
        let mut addon = json!({
            "addonName": self.name,
            "clusterName": self.cluster,
            "status": status,
            "addonVersion": self.version,
            "health": { "issues": [] },
            "addonArn": self.arn,
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
            "tags": self.tags,
        });
        if let Some(role) = &self.service_account_role_arn {
            addon["serviceAccountRoleArn"] = json!(role);
        }
        if let Some(config) = &self.configuration_values {
            addon["configurationValues"] = json!(config);
        }
        addon
    }
}

impl Addons {
    /// The add-on and its status, unless it does not exist (any more).
    fn live(&mut self, key: &AddonKey, t: &Timings) -> Option<(&mut Addon, &'static str)> {
        let status = self.installed.get(key).map(|a| a.status(t));
        match status {
            Some(Some(status)) => self.installed.get_mut(key).map(|a| (a, status)),
            Some(None) => {
                self.installed.remove(key);
                None
            }
            None => None,
        }
    }

    fn names(&mut self, region: &str, cluster: &str, t: &Timings) -> Vec<String> {
        let keys: Vec<AddonKey> = self
            .installed
            .keys()
            .filter(|(r, c, _)| r == region && c == cluster)
            .cloned()
            .collect();
        let mut names: Vec<String> = keys
            .into_iter()
            .filter_map(|key| self.live(&key, t).map(|(a, _)| a.name.clone()))
            .collect();
        names.sort();
        names
    }

    /// A deleted cluster takes its add-ons with it.
    pub fn drop_cluster(&mut self, region: &str, cluster: &str) {
        self.installed
            .retain(|(r, c, _), _| !(r == region && c == cluster));
    }
}

/// Serves one add-on operation.
pub async fn handle(
    shared: &Shared,
    call: &Call,
    route: EksRoute,
    parts: &Parts,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let result = match route {
        EksRoute::CreateAddon { cluster } => create(shared, call, parts, &cluster, body).await,
        EksRoute::DescribeAddon { cluster, addon } => {
            describe(shared, call, parts, &cluster, &addon).await
        }
        EksRoute::ListAddons { cluster } => list(shared, call, parts, &cluster).await,
        EksRoute::DeleteAddon { cluster, addon } => {
            delete(shared, call, parts, &cluster, &addon).await
        }
        EksRoute::UpdateAddon { cluster, addon } => {
            update(shared, call, parts, &cluster, &addon, body).await
        }
        EksRoute::DescribeAddonVersions => {
            let query: HashMap<String, String> =
                form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
            Ok(addon_catalog::describe_versions(
                query.get("addonName").map(String::as_str),
                query.get("kubernetesVersion").map(String::as_str),
            ))
        }
        _ => {
            Err(AwsError::new(404, "ResourceNotFoundException", "Unknown add-on operation").into())
        }
    };
    match result {
        Ok(value) => ok(value),
        Err(Refusal::Eks(error)) => error.into_response(Protocol::RestJson),
        Err(Refusal::Upstream(response)) => *response,
    }
}

/// Why an add-on call is not served.
enum Refusal {
    /// An EKS error of the proxy's making.
    Eks(AwsError),
    /// moto's own answer (an error other than 404), passed on.
    Upstream(Box<Response<Full<Bytes>>>),
}

impl From<AwsError> for Refusal {
    fn from(error: AwsError) -> Refusal {
        Refusal::Eks(error)
    }
}

/// The JSON body of a 200, or the refusal.
type Answered = Result<Value, Refusal>;

/// What the proxy needs to know of the cluster an add-on belongs to.
struct ClusterInfo {
    account: String,
}

/// Looks the cluster up in moto, answering EKS's 404 when it is not there.
async fn existing_cluster(
    shared: &Shared,
    parts: &Parts,
    cluster: &str,
) -> Result<ClusterInfo, Refusal> {
    let answer = shared.describe_cluster_upstream(parts, cluster).await;
    match answer {
        Ok(a) if a.status.is_success() => {
            let account = a
                .json()
                .and_then(|v| v["cluster"]["arn"].as_str().map(str::to_string))
                .and_then(|arn| arn.split(':').nth(4).map(str::to_string))
                .unwrap_or_else(|| crate::DEFAULT_ACCOUNT.to_string());
            Ok(ClusterInfo { account })
        }
        Ok(a) if a.status == http::StatusCode::NOT_FOUND => Err(no_cluster(cluster).into()),
        other => Err(Refusal::Upstream(Box::new(pass(other)))),
    }
}

fn no_cluster(cluster: &str) -> AwsError {
    AwsError::new(
        404,
        "ResourceNotFoundException",
        format!("No cluster found for name: {cluster}."),
    )
    .with_field("clusterName", cluster)
}

/// The 404 for a missing add-on: of the cluster when it is missing too.
async fn no_addon(shared: &Shared, parts: &Parts, cluster: &str, addon: &str) -> Answered {
    existing_cluster(shared, parts, cluster).await?;
    Err(AwsError::new(
        404,
        "ResourceNotFoundException",
        format!("No addon: {addon} found in cluster: {cluster}."),
    )
    .with_field("clusterName", cluster)
    .with_field("addonName", addon)
    .into())
}

fn invalid_parameter(message: impl Into<String>, cluster: &str) -> Refusal {
    AwsError::new(400, "InvalidParameterException", message)
        .with_field("clusterName", cluster)
        .into()
}

fn in_use(message: impl Into<String>, cluster: &str, addon: &str) -> Refusal {
    AwsError::new(409, "ResourceInUseException", message)
        .with_field("clusterName", cluster)
        .with_field("addonName", addon)
        .into()
}

fn ok(value: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(id) = http::HeaderValue::from_str(&new_request_id()) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

fn parse_body(body: &[u8], cluster: &str) -> Result<Map<String, Value>, Refusal> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(invalid_parameter(
            "The request body is not a JSON object",
            cluster,
        )),
    }
}

fn string_field(body: &Map<String, Value>, name: &str) -> Option<String> {
    body.get(name).and_then(Value::as_str).map(str::to_string)
}

fn epoch_seconds() -> f64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    since.as_millis() as f64 / 1000.0
}

fn key(call: &Call, cluster: &str, addon: &str) -> AddonKey {
    (call.region.clone(), cluster.to_string(), addon.to_string())
}

async fn create(
    shared: &Shared,
    call: &Call,
    parts: &Parts,
    cluster: &str,
    body: &[u8],
) -> Answered {
    let request = parse_body(body, cluster)?;
    let Some(name) = string_field(&request, "addonName") else {
        return Err(invalid_parameter("addonName is required", cluster));
    };
    let cluster_key = (call.region.clone(), cluster.to_string());
    if shared
        .lifecycle()
        .cluster_deleting(&cluster_key, &shared.timings)
    {
        return Err(in_use(
            format!("Cluster {cluster} is being deleted"),
            cluster,
            &name,
        ));
    }
    let info = existing_cluster(shared, parts, cluster).await?;
    let phase = shared.lifecycle().cluster(&cluster_key, &shared.timings);
    if phase != Phase::Active {
        let status = phase.status().unwrap_or("DELETED");
        return Err(in_use(
            format!("Cluster {cluster} is in {status} status; add-ons can be created only on an ACTIVE cluster"),
            cluster,
            &name,
        ));
    }
    let Some(offered) = addon_catalog::find(&name) else {
        return Err(invalid_parameter(
            "Addon specified is not supported",
            cluster,
        ));
    };
    let version = match string_field(&request, "addonVersion") {
        Some(v) if offered.offers(&v) => v,
        Some(_) => {
            return Err(invalid_parameter(
                "Addon version specified is not supported",
                cluster,
            ))
        }
        None => offered.default_version().to_string(),
    };
    let token = string_field(&request, "clientRequestToken");
    let t = shared.timings;
    let mut addons = shared.addons();
    let key = key(call, cluster, &name);
    if let Some((existing, status)) = addons.live(&key, &t) {
        // A retry of the same request (same token) is answered, not refused.
        if token.is_some() && existing.client_request_token == token {
            return Ok(json!({ "addon": existing.to_json(status) }));
        }
        return Err(in_use("Addon already exists.", cluster, &name));
    }
    let now = epoch_seconds();
    let addon = Addon {
        arn: format!(
            "arn:aws:eks:{}:{}:addon/{}/{}/{}",
            call.region,
            info.account,
            cluster,
            name,
            new_request_id()
        ),
        name,
        cluster: cluster.to_string(),
        version,
        service_account_role_arn: string_field(&request, "serviceAccountRoleArn"),
        configuration_values: string_field(&request, "configurationValues"),
        tags: request
            .get("tags")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        client_request_token: token,
        created: Instant::now(),
        created_at: now,
        modified_at: now,
        updating_since: None,
        deleting_since: None,
    };
    let status = addon.status(&t).unwrap_or("ACTIVE");
    let body = json!({ "addon": addon.to_json(status) });
    addons.installed.insert(key, addon);
    Ok(body)
}

async fn describe(
    shared: &Shared,
    call: &Call,
    parts: &Parts,
    cluster: &str,
    addon: &str,
) -> Answered {
    let found = {
        let mut addons = shared.addons();
        addons
            .live(&key(call, cluster, addon), &shared.timings)
            .map(|(a, status)| a.to_json(status))
    };
    match found {
        Some(addon) => Ok(json!({ "addon": addon })),
        None => no_addon(shared, parts, cluster, addon).await,
    }
}

async fn list(shared: &Shared, call: &Call, parts: &Parts, cluster: &str) -> Answered {
    let cluster_key = (call.region.clone(), cluster.to_string());
    let deleting = shared
        .lifecycle()
        .cluster_deleting(&cluster_key, &shared.timings);
    if !deleting {
        existing_cluster(shared, parts, cluster).await?;
    }
    let names = shared
        .addons()
        .names(&call.region, cluster, &shared.timings);
    Ok(json!({ "addons": names, "nextToken": null }))
}

async fn delete(
    shared: &Shared,
    call: &Call,
    parts: &Parts,
    cluster: &str,
    addon: &str,
) -> Answered {
    let query = parts.uri.query().unwrap_or("");
    if let Some((_, preserve)) =
        form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "preserve")
    {
        if preserve != "true" && preserve != "false" {
            return Err(invalid_parameter("preserve must be true or false", cluster));
        }
    }
    let deleted = {
        let t = shared.timings;
        let mut addons = shared.addons();
        match addons.live(&key(call, cluster, addon), &t) {
            Some((a, _)) => {
                if a.deleting_since.is_none() {
                    a.deleting_since = Some(Instant::now());
                    a.modified_at = epoch_seconds();
                }
                Some(a.to_json("DELETING"))
            }
            None => None,
        }
    };
    match deleted {
        Some(addon) => Ok(json!({ "addon": addon })),
        None => no_addon(shared, parts, cluster, addon).await,
    }
}

async fn update(
    shared: &Shared,
    call: &Call,
    parts: &Parts,
    cluster: &str,
    addon: &str,
    body: &[u8],
) -> Answered {
    let request = parse_body(body, cluster)?;
    let t = shared.timings;
    let updated = {
        let mut addons = shared.addons();
        match addons.live(&key(call, cluster, addon), &t) {
            None => None,
            Some((_, status)) if status != "ACTIVE" => {
                return Err(in_use(
                    format!(
                        "Addon {addon} is in {status} status; it can be updated only when ACTIVE"
                    ),
                    cluster,
                    addon,
                ))
            }
            Some((a, _)) => {
                let mut params = Vec::new();
                if let Some(version) = string_field(&request, "addonVersion") {
                    let offered = addon_catalog::find(&a.name).is_some_and(|c| c.offers(&version));
                    if !offered {
                        return Err(invalid_parameter(
                            "Addon version specified is not supported",
                            cluster,
                        ));
                    }
                    params.push(json!({ "type": "AddonVersion", "value": version }));
                    a.version = version;
                }
                if let Some(role) = string_field(&request, "serviceAccountRoleArn") {
                    params.push(json!({ "type": "ServiceAccountRoleArn", "value": role }));
                    a.service_account_role_arn = Some(role);
                }
                if let Some(config) = string_field(&request, "configurationValues") {
                    params.push(json!({ "type": "ConfigurationValues", "value": config }));
                    a.configuration_values = Some(config);
                }
                if let Some(resolve) = string_field(&request, "resolveConflicts") {
                    params.push(json!({ "type": "ResolveConflicts", "value": resolve }));
                }
                a.updating_since = Some(Instant::now());
                a.modified_at = epoch_seconds();
                Some(json!({
                    "update": {
                        "id": new_request_id(),
                        "status": "InProgress",
                        "type": "AddonUpdate",
                        "params": params,
                        "createdAt": a.modified_at,
                        "errors": [],
                    }
                }))
            }
        }
    };
    match updated {
        Some(update) => Ok(update),
        None => no_addon(shared, parts, cluster, addon).await,
    }
}
