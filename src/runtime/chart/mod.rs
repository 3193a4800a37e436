//! The Pachyderm runtime chart: the catalog of installable versions
//! (`charts/pachyderm/versions.yaml`) and the rendering of one stack's
//! [`Values`] through the templates under `charts/pachyderm/<dir>/` into the
//! Kubernetes objects of every runtime component, in apply order.
//!
//! Both the catalog and the templates are compiled into the binary, so
//! nothing is read from disk at run time and no helm is involved.
//!
//! Not for: deciding the values (that is `Values::from_stack`), applying,
//! diffing or waiting on objects (the runtime's apply and wait steps), or
//! validating the spec. `render` only rejects values it cannot render.

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

use super::values::Values;

/// The runtime components, in the order templates are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Component {
    Namespace,
    Rbac,
    Storage,
    Postgres,
    Etcd,
    PgBouncer,
    Pachd,
    Console,
    Proxy,
}

impl Component {
    /// Every component, in render (and apply) order.
    pub const ALL: [Component; 9] = [
        Component::Namespace,
        Component::Rbac,
        Component::Storage,
        Component::Postgres,
        Component::Etcd,
        Component::PgBouncer,
        Component::Pachd,
        Component::Console,
        Component::Proxy,
    ];

    /// The component's name: its template's file stem and the value of the
    /// `component` label on its objects.
    pub fn name(self) -> &'static str {
        match self {
            Component::Namespace => "namespace",
            Component::Rbac => "rbac",
            Component::Storage => "storage",
            Component::Postgres => "postgres",
            Component::Etcd => "etcd",
            Component::PgBouncer => "pg-bouncer",
            Component::Pachd => "pachd",
            Component::Console => "console",
            Component::Proxy => "proxy",
        }
    }
}

/// One rendered Kubernetes object and the component it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderedObject {
    pub component: Component,
    /// The object as it is sent to the API server.
    pub object: serde_json::Value,
}

impl RenderedObject {
    /// `apiVersion`; every rendered object has one.
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }

    /// `kind`; every rendered object has one.
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    /// `metadata.name`; every rendered object has one.
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// `metadata.namespace`, absent for cluster-scoped objects.
    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }
}

mod catalog;

pub use catalog::{
    default_version, supported_versions, version_info, Features, ImageRef, VersionImages,
    VersionInfo,
};

/// Why the chart could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("Pachyderm {version} is not supported; supported versions: {supported}")]
    UnsupportedVersion { version: String, supported: String },
    #[error("cannot render the runtime: {0}")]
    InvalidValues(String),
    /// A template failed to parse or render; `template` is its path in the
    /// source tree.
    #[error("{template}{}: {message}", at_line(.line))]
    Template {
        template: String,
        line: Option<usize>,
        message: String,
    },
    /// A template rendered text that is not YAML; `line` is in the output.
    #[error("{template} rendered invalid YAML (output line {}): {message}", .line.map_or("?".to_string(), |l| l.to_string()))]
    Yaml {
        template: String,
        line: Option<usize>,
        message: String,
    },
    #[error("{template} rendered a document that is not a Kubernetes object: {message}")]
    NotAnObject { template: String, message: String },
}

fn at_line(line: &Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Templates

/// One directory of templates: a file per component plus shared helpers.
struct TemplateSet {
    dir: &'static str,
    helpers: &'static [(&'static str, &'static str)],
    components: &'static [(Component, &'static str, &'static str)],
}

const TEMPLATES_2X: TemplateSet = TemplateSet {
    dir: "2.x",
    helpers: &[(
        "_helpers.yaml",
        include_str!("../../../charts/pachyderm/2.x/_helpers.yaml"),
    )],
    components: &[
        (
            Component::Namespace,
            "namespace.yaml",
            include_str!("../../../charts/pachyderm/2.x/namespace.yaml"),
        ),
        (
            Component::Rbac,
            "rbac.yaml",
            include_str!("../../../charts/pachyderm/2.x/rbac.yaml"),
        ),
        (
            Component::Storage,
            "storage.yaml",
            include_str!("../../../charts/pachyderm/2.x/storage.yaml"),
        ),
        (
            Component::Postgres,
            "postgres.yaml",
            include_str!("../../../charts/pachyderm/2.x/postgres.yaml"),
        ),
        (
            Component::Etcd,
            "etcd.yaml",
            include_str!("../../../charts/pachyderm/2.x/etcd.yaml"),
        ),
        (
            Component::PgBouncer,
            "pg-bouncer.yaml",
            include_str!("../../../charts/pachyderm/2.x/pg-bouncer.yaml"),
        ),
        (
            Component::Pachd,
            "pachd.yaml",
            include_str!("../../../charts/pachyderm/2.x/pachd.yaml"),
        ),
        (
            Component::Console,
            "console.yaml",
            include_str!("../../../charts/pachyderm/2.x/console.yaml"),
        ),
        (
            Component::Proxy,
            "proxy.yaml",
            include_str!("../../../charts/pachyderm/2.x/proxy.yaml"),
        ),
    ],
};

fn template_set(dir: &str) -> Option<&'static TemplateSet> {
    [&TEMPLATES_2X].into_iter().find(|set| set.dir == dir)
}

impl TemplateSet {
    fn path(&self, name: &str) -> String {
        format!("charts/pachyderm/{}/{name}", self.dir)
    }

    fn template_error(&self, fallback: &str, err: &minijinja::Error) -> ChartError {
        let mut message = err.kind().to_string();
        if let Some(detail) = err.detail() {
            message = format!("{message}: {detail}");
        }
        ChartError::Template {
            template: self.path(err.name().unwrap_or(fallback)),
            line: err.line(),
            message,
        }
    }

    fn environment(&self) -> Result<Environment<'static>, ChartError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Typos in a template are errors, not silently empty strings.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // YAML is not HTML; values are quoted with `tojson` where it matters.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.add_filter("tojson", filter_tojson);
        env.add_filter("b64encode", filter_b64encode);
        env.add_filter("merge", filter_merge);
        env.add_filter("compact", filter_compact);
        env.add_filter("sha256", filter_sha256);
        let helpers = self.helpers.iter().copied();
        let components = self
            .components
            .iter()
            .map(|(_, name, source)| (*name, *source));
        for (name, source) in helpers.chain(components) {
            env.add_template(name, source)
                .map_err(|e| self.template_error(name, &e))?;
        }
        Ok(env)
    }
}

fn filter_tojson(value: Value) -> Result<String, minijinja::Error> {
    serde_json::to_string(&value)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))
}

/// Hex SHA-256 of a text: a digest of rendered configuration on a pod
/// template, so a change rolls the pods that read it only at start.
fn filter_sha256(text: String) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn filter_b64encode(text: String) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

/// `base | merge(overrides)`: a new map, keys of `overrides` win. An
/// undefined or none side counts as empty.
fn filter_merge(base: Value, overrides: Value) -> Result<Value, minijinja::Error> {
    let mut merged = BTreeMap::new();
    for map in [base, overrides] {
        if map.is_undefined() || map.is_none() {
            continue;
        }
        if map.kind() != minijinja::value::ValueKind::Map {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("merge takes maps, not {}", map.kind()),
            ));
        }
        for key in map.try_iter()? {
            let item = map.get_item(&key)?;
            merged.insert(key.to_string(), item);
        }
    }
    Ok(Value::from_serialize(&merged))
}

/// Drops nulls and empty maps and lists, recursively: the API server drops
/// them too, and what is sent must equal what is read back.
fn filter_compact(value: Value) -> Result<Value, minijinja::Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(Value::from_serialize(serde_json::Value::Null));
    }
    let json = serde_json::to_value(&value).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
    })?;
    Ok(Value::from_serialize(compact(json)))
}

fn compact(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    let is_empty = |v: &J| match v {
        J::Null => true,
        J::Object(m) => m.is_empty(),
        J::Array(a) => a.is_empty(),
        _ => false,
    };
    match value {
        J::Object(map) => J::Object(
            map.into_iter()
                .map(|(k, v)| (k, compact(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        J::Array(items) => J::Array(
            items
                .into_iter()
                .map(compact)
                .filter(|v| !is_empty(v))
                .collect(),
        ),
        other => other,
    }
}

// ---------------------------------------------------------------------------
// Rendering

/// Values the templates need that follow from `Values` by rules, not by
/// choice; computed here so the templates stay declarative.
#[derive(Serialize)]
struct Derived {
    /// pachd's STORAGE_URL (Go CDK bucket URL); empty for LOCAL.
    storage_url: String,
    /// The node directory pachd and workers mount for LOCAL storage.
    storage_host_path: String,
    /// `storage.endpoint` split for the clients that take it in parts.
    endpoint_scheme: String,
    endpoint_host: String,
    /// Where pachd and pg-bouncer reach PostgreSQL.
    postgres_host: String,
    postgres_port: u16,
    postgres_ssl_mode: String,
    /// The database of pachd's identity service (pachd's default name).
    identity_database: &'static str,
}

/// The in-cluster PostgreSQL Service the postgres template creates.
const IN_CLUSTER_POSTGRES_SERVICE: &str = "postgres";

fn derive(values: &Values) -> Derived {
    let storage = &values.storage;
    let (endpoint_scheme, endpoint_host) = split_endpoint(&storage.endpoint);
    let storage_url = match storage.backend.as_str() {
        "AMAZON" => {
            let mut query = Vec::new();
            if !storage.region.is_empty() {
                query.push(format!("region={}", query_escape(&storage.region)));
            }
            if !storage.endpoint.is_empty() {
                query.push(format!("endpoint={}", query_escape(&storage.endpoint)));
            }
            let mut url = format!("s3://{}", storage.bucket);
            if !query.is_empty() {
                url = format!("{url}?{}", query.join("&"));
            }
            url
        }
        "GOOGLE" => format!("gs://{}", storage.bucket),
        "MICROSOFT" => format!("azblob://{}", storage.bucket),
        _ => String::new(),
    };
    let postgres = &values.postgres;
    let (postgres_host, postgres_port, postgres_ssl_mode) = if postgres.in_cluster {
        // The in-cluster server has no TLS; it is reached by its Service's
        // full name, as upstream does: pg-bouncer's own resolver may not
        // apply the pod's DNS search list.
        (
            format!(
                "{IN_CLUSTER_POSTGRES_SERVICE}.{}.svc.cluster.local",
                values.namespace
            ),
            5432,
            "disable".to_string(),
        )
    } else {
        (
            postgres.host.clone(),
            postgres.port,
            postgres.ssl_mode.clone(),
        )
    };
    Derived {
        storage_url,
        storage_host_path: format!("{}/pachd", storage.local_host_path.trim_end_matches('/')),
        endpoint_scheme,
        endpoint_host,
        postgres_host,
        postgres_port,
        postgres_ssl_mode,
        identity_database: "dex",
    }
}

/// `http://host:port/path` → ("http", "host:port"); no scheme means https.
fn split_endpoint(endpoint: &str) -> (String, String) {
    if endpoint.is_empty() {
        return (String::new(), String::new());
    }
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("https", endpoint));
    let host = rest.split('/').next().unwrap_or_default();
    (scheme.to_string(), host.to_string())
}

/// Percent-encodes a URL query value (RFC 3986 unreserved characters stay).
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Rejects values the templates cannot turn into working objects. The spec
/// is validated before this; these are the chart's own preconditions.
fn check(values: &Values) -> Result<(), ChartError> {
    let fail = |msg: String| Err(ChartError::InvalidValues(msg));
    if values.namespace.is_empty() {
        return fail("the namespace is empty".into());
    }
    let storage = &values.storage;
    match storage.backend.as_str() {
        "LOCAL" => {
            if !storage.local_host_path.starts_with('/') {
                return fail(format!(
                    "LOCAL storage needs an absolute host path, got {:?}",
                    storage.local_host_path
                ));
            }
        }
        "AMAZON" | "GOOGLE" | "MICROSOFT" => {
            if storage.bucket.is_empty() {
                return fail(format!("{} storage needs a bucket", storage.backend));
            }
            if storage.backend == "MICROSOFT" && storage.account.is_empty() {
                return fail("MICROSOFT storage needs the storage account".into());
            }
        }
        other => {
            return fail(format!(
                "storage backend {other:?} is not one of LOCAL, AMAZON, GOOGLE, MICROSOFT"
            ))
        }
    }
    let replicas = values.etcd.replicas;
    if ![1, 3, 5, 7].contains(&replicas) {
        return fail(format!(
            "etcd needs an odd number of members (1, 3, 5 or 7), got {replicas}"
        ));
    }
    let postgres = &values.postgres;
    if postgres.password_secret.is_empty() || postgres.password_key.is_empty() {
        return fail("the PostgreSQL password Secret and key must be named".into());
    }
    if postgres.in_cluster && values.secrets.postgres_password_b64.is_empty() {
        return fail("the in-cluster PostgreSQL password is empty".into());
    }
    if !postgres.in_cluster && postgres.host.is_empty() {
        return fail("an external PostgreSQL needs a host".into());
    }
    Ok(())
}

/// Every object of every component for `values`, as JSON values, in apply
/// order: components in [`Component::ALL`] order, objects in template order.
pub fn render(values: &Values) -> Result<Vec<RenderedObject>, ChartError> {
    let info = version_info(&values.version).ok_or_else(|| ChartError::UnsupportedVersion {
        version: values.version.clone(),
        supported: supported_versions().join(", "),
    })?;
    check(values)?;
    let set = template_set(&info.templates).ok_or_else(|| {
        ChartError::InvalidValues(format!(
            "version {} names template directory {:?}, which is not compiled in",
            info.version, info.templates
        ))
    })?;
    let objects = render_set(set, &info, values)?;
    tracing::debug!(
        version = %info.version,
        objects = objects.len(),
        "rendered the runtime chart"
    );
    Ok(objects)
}

fn render_set(
    set: &TemplateSet,
    info: &VersionInfo,
    values: &Values,
) -> Result<Vec<RenderedObject>, ChartError> {
    let env = set.environment()?;
    let context = context(values, info)?;

    let mut objects = Vec::new();
    for component in Component::ALL {
        let Some((_, name, _)) = set.components.iter().find(|(c, _, _)| *c == component) else {
            continue;
        };
        let text = env
            .get_template(name)
            .and_then(|template| template.render(&context))
            .map_err(|e| set.template_error(name, &e))?;
        for object in parse_documents(&set.path(name), &text)? {
            objects.push(RenderedObject { component, object });
        }
    }
    Ok(objects)
}

/// The template context: every field of `values` at the top level, plus
/// `chart` (version, line, features) and `derived`.
fn context(values: &Values, info: &VersionInfo) -> Result<Value, ChartError> {
    let invalid = |e: serde_json::Error| ChartError::InvalidValues(e.to_string());
    let mut context = match serde_json::to_value(values).map_err(invalid)? {
        serde_json::Value::Object(map) => map,
        _ => return Err(ChartError::InvalidValues("values are not a map".into())),
    };
    context.insert(
        "chart".into(),
        serde_json::json!({
            "version": info.version,
            "line": info.line,
            "features": info.features,
        }),
    );
    context.insert(
        "derived".into(),
        serde_json::to_value(derive(values)).map_err(invalid)?,
    );
    Ok(Value::from_serialize(&context))
}

/// Splits rendered text into its YAML documents, dropping empty ones, and
/// checks each is an object with apiVersion, kind and metadata.name.
fn parse_documents(template: &str, text: &str) -> Result<Vec<serde_json::Value>, ChartError> {
    let mut objects = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(document).map_err(|e| ChartError::Yaml {
            template: template.to_string(),
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        let not_object = |message: String| ChartError::NotAnObject {
            template: template.to_string(),
            message,
        };
        for field in ["apiVersion", "kind"] {
            if !value[field].is_string() {
                return Err(not_object(format!("a document has no {field}")));
            }
        }
        if !value["metadata"]["name"].is_string() {
            return Err(not_object(format!(
                "a {} has no metadata.name",
                value["kind"].as_str().unwrap_or_default()
            )));
        }
        objects.push(value);
    }
    Ok(objects)
}

#[cfg(test)]
mod tests;
