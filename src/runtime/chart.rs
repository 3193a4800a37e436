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
use std::sync::OnceLock;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

use super::values::{Images, Values};

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
}

impl Component {
    /// Every component, in render (and apply) order.
    pub const ALL: [Component; 8] = [
        Component::Namespace,
        Component::Rbac,
        Component::Storage,
        Component::Postgres,
        Component::Etcd,
        Component::PgBouncer,
        Component::Pachd,
        Component::Console,
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

/// An image as the chart of one version pins it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// Repository without registry, e.g. `pachyderm/pachd`.
    pub repository: String,
    pub tag: String,
}

impl ImageRef {
    /// `registry/repository:tag`; an empty registry means Docker Hub.
    pub fn qualified(&self, registry: &str) -> String {
        let registry = registry.trim_end_matches('/');
        if registry.is_empty() {
            format!("{}:{}", self.repository, self.tag)
        } else {
            format!("{registry}/{}:{}", self.repository, self.tag)
        }
    }
}

/// The images one Pachyderm version runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionImages {
    pub pachd: ImageRef,
    pub worker: ImageRef,
    pub etcd: ImageRef,
    pub postgres: ImageRef,
    pub pg_bouncer: ImageRef,
    pub console: ImageRef,
}

/// The environment differences between minor lines, as templates see them
/// (`chart.features.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    /// pachd reads GOCDK_ENABLED (2.9, 2.10): set it so STORAGE_URL is used.
    pub gocdk_enabled_env: bool,
    /// pachd reads PACHW_IN_SIDECARS (2.9, 2.10).
    pub pachw_in_sidecars_env: bool,
}

/// A supported Pachyderm version: its images and how it is rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// e.g. "2.11.6".
    pub version: String,
    /// The minor line, e.g. "2.11".
    pub line: String,
    pub images: VersionImages,
    pub features: Features,
    /// The template directory under charts/pachyderm/.
    pub templates: String,
}

impl VersionInfo {
    /// The fully qualified images of this version under `registry` (empty:
    /// Docker Hub), in the shape [`Values::images`] takes.
    pub fn qualified_images(&self, registry: &str) -> Images {
        Images {
            pachd: self.images.pachd.qualified(registry),
            worker: self.images.worker.qualified(registry),
            etcd: self.images.etcd.qualified(registry),
            postgres: self.images.postgres.qualified(registry),
            pg_bouncer: self.images.pg_bouncer.qualified(registry),
            console: self.images.console.qualified(registry),
        }
    }
}

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
// Version catalog

const VERSIONS_YAML: &str = include_str!("../../charts/pachyderm/versions.yaml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Catalog {
    default: String,
    images: Repositories,
    lines: Vec<Line>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Repositories {
    pachd: String,
    worker: String,
    etcd: String,
    postgres: String,
    pg_bouncer: String,
    console: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    line: String,
    templates: String,
    tags: LineTags,
    features: Features,
    patches: Vec<String>,
}

/// Tags of the images that do not follow the Pachyderm version.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineTags {
    etcd: String,
    postgres: String,
    pg_bouncer: String,
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        // Invariant: versions.yaml is compiled in and parsed by the unit
        // tests (`catalog_parses_and_every_line_has_templates`), so a
        // malformed file cannot reach a release.
        serde_norway::from_str(VERSIONS_YAML)
            .expect("charts/pachyderm/versions.yaml is valid (checked by unit tests)")
    })
}

/// Every supported version, oldest first.
pub fn supported_versions() -> Vec<String> {
    catalog()
        .lines
        .iter()
        .flat_map(|line| line.patches.iter().cloned())
        .collect()
}

/// The version installed when the stack names none.
pub fn default_version() -> String {
    catalog().default.clone()
}

/// What the catalog pins for `version`, or None when it is not supported.
pub fn version_info(version: &str) -> Option<VersionInfo> {
    let catalog = catalog();
    let line = catalog
        .lines
        .iter()
        .find(|line| line.patches.iter().any(|p| p == version))?;
    let image = |repository: &str, tag: &str| ImageRef {
        repository: repository.to_string(),
        tag: tag.to_string(),
    };
    let repos = &catalog.images;
    Some(VersionInfo {
        version: version.to_string(),
        line: line.line.clone(),
        images: VersionImages {
            pachd: image(&repos.pachd, version),
            worker: image(&repos.worker, version),
            etcd: image(&repos.etcd, &line.tags.etcd),
            postgres: image(&repos.postgres, &line.tags.postgres),
            pg_bouncer: image(&repos.pg_bouncer, &line.tags.pg_bouncer),
            console: image(&repos.console, version),
        },
        features: line.features,
        templates: line.templates.clone(),
    })
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
        include_str!("../../charts/pachyderm/2.x/_helpers.yaml"),
    )],
    components: &[
        (
            Component::Namespace,
            "namespace.yaml",
            include_str!("../../charts/pachyderm/2.x/namespace.yaml"),
        ),
        (
            Component::Rbac,
            "rbac.yaml",
            include_str!("../../charts/pachyderm/2.x/rbac.yaml"),
        ),
        (
            Component::Storage,
            "storage.yaml",
            include_str!("../../charts/pachyderm/2.x/storage.yaml"),
        ),
        (
            Component::Postgres,
            "postgres.yaml",
            include_str!("../../charts/pachyderm/2.x/postgres.yaml"),
        ),
        (
            Component::Etcd,
            "etcd.yaml",
            include_str!("../../charts/pachyderm/2.x/etcd.yaml"),
        ),
        (
            Component::PgBouncer,
            "pg-bouncer.yaml",
            include_str!("../../charts/pachyderm/2.x/pg-bouncer.yaml"),
        ),
        (
            Component::Pachd,
            "pachd.yaml",
            include_str!("../../charts/pachyderm/2.x/pachd.yaml"),
        ),
        (
            Component::Console,
            "console.yaml",
            include_str!("../../charts/pachyderm/2.x/console.yaml"),
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
    /// CLUSTER_DEPLOYMENT_ID: stable per stack, so a re-render is no change.
    deployment_id: String,
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
        // The in-cluster server has no TLS; it is reached by its Service.
        (
            IN_CLUSTER_POSTGRES_SERVICE.to_string(),
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
        deployment_id: format!("{}-{}", values.stack, values.namespace),
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
mod tests {
    use std::collections::BTreeMap;

    use base64::Engine as _;
    use serde_json::{json, Value as Json};

    use super::super::values::{
        ConsoleValues, EtcdValues, PachdValues, PgBouncerValues, PodValues, PostgresValues,
        SecretValues, StorageValues,
    };
    use super::*;

    const REGISTRY: &str = "registry.corp:5000/mirror";
    /// What `render` and offline plans put where generated secrets go:
    /// base64 of the runtime's redaction marker, "<generated-at-apply>".
    const MARKER_B64: &str = "PGdlbmVyYXRlZC1hdC1hcHBseT4=";

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pod() -> PodValues {
        PodValues {
            resources: json!({"requests": {}, "limits": {}}),
            node_selector: map(&[("pool", "runtime")]),
            tolerations: vec![
                json!({"key": "dedicated", "operator": "Equal", "value": "pachyderm", "effect": "NoSchedule", "tolerationSeconds": null}),
            ],
            pod_annotations: BTreeMap::new(),
        }
    }

    /// A stack on EKS: S3 bucket through IRSA, in-cluster PostgreSQL, images
    /// from a mirror, one user tag.
    fn sample_values() -> Values {
        let info = version_info("2.11.6").expect("2.11.6 is supported");
        let selector_labels = map(&[
            ("howdah.io/stack", "demo"),
            ("howdah.io/managed", "true"),
            ("suite", "pachyderm"),
        ]);
        let mut labels = selector_labels.clone();
        labels.insert("team".into(), "data-platform".into());
        Values {
            stack: "demo".into(),
            namespace: "pachyderm-demo".into(),
            version: info.version.clone(),
            labels,
            selector_labels,
            annotations: map(&[("example.com/owner", "platform")]),
            pod_labels: BTreeMap::new(),
            images: info.qualified_images(REGISTRY),
            image_pull_policy: "IfNotPresent".into(),
            image_pull_secrets: vec!["mirror-pull".into()],
            storage: StorageValues {
                backend: "AMAZON".into(),
                local_host_path: String::new(),
                bucket: "demo-pachyderm-data".into(),
                region: "eu-west-1".into(),
                endpoint: String::new(),
                account: String::new(),
                credentials_secret: String::new(),
            },
            service_account_annotations: map(&[(
                "eks.amazonaws.com/role-arn",
                "arn:aws:iam::123456789012:role/demo-pachyderm",
            )]),
            etcd: EtcdValues {
                replicas: 1,
                size: "25Gi".into(),
                storage_class: "gp3".into(),
                pod: pod(),
            },
            postgres: PostgresValues {
                in_cluster: true,
                size: "40Gi".into(),
                storage_class: String::new(),
                host: "postgres".into(),
                port: 5432,
                user: "pachyderm".into(),
                database: "pachyderm".into(),
                ssl_mode: "disable".into(),
                password_secret: "postgres".into(),
                password_key: "postgresql-password".into(),
                pod: pod(),
            },
            pg_bouncer: PgBouncerValues {
                replicas: 1,
                max_connections: 1000,
                pod: pod(),
            },
            pachd: PachdValues {
                replicas: 1,
                service_type: "LoadBalancer".into(),
                service_annotations: map(&[(
                    "service.beta.kubernetes.io/aws-load-balancer-scheme",
                    "internal",
                )]),
                log_level: "info".into(),
                metrics: false,
                pod: PodValues {
                    resources: json!({"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}),
                    ..pod()
                },
            },
            console: ConsoleValues {
                enabled: true,
                pod: pod(),
            },
            secrets: SecretValues {
                postgres_password_b64: MARKER_B64.into(),
            },
        }
    }

    fn find<'a>(objects: &'a [RenderedObject], kind: &str, name: &str) -> &'a RenderedObject {
        objects
            .iter()
            .find(|o| o.kind() == kind && o.name() == name)
            .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
    }

    fn container<'a>(object: &'a RenderedObject, name: &str) -> &'a Json {
        object.object["spec"]["template"]["spec"]["containers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == name))
            .unwrap_or_else(|| panic!("no container {name} in {}", object.name()))
    }

    fn env<'a>(container: &'a Json, name: &str) -> Option<&'a Json> {
        container["env"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == name)
    }

    fn env_value(container: &Json, name: &str) -> Option<String> {
        env(container, name).and_then(|e| e["value"].as_str().map(str::to_string))
    }

    fn decoded(secret: &RenderedObject, key: &str) -> Option<String> {
        let b64 = secret.object["data"][key].as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        String::from_utf8(bytes).ok()
    }

    fn workloads(objects: &[RenderedObject]) -> impl Iterator<Item = &RenderedObject> {
        objects
            .iter()
            .filter(|o| matches!(o.kind(), "Deployment" | "StatefulSet"))
    }

    #[test]
    fn catalog_parses_and_every_line_has_templates() {
        let versions = supported_versions();
        assert!(versions.contains(&default_version()));
        assert_eq!(default_version(), "2.11.6");
        for line in ["2.9.", "2.10.", "2.11."] {
            assert!(versions.iter().any(|v| v.starts_with(line)), "no {line}x");
        }
        for version in &versions {
            let info = version_info(version).expect("listed versions have info");
            assert!(template_set(&info.templates).is_some(), "{version}");
        }
    }

    #[test]
    fn unknown_version_is_not_supported() {
        assert_eq!(version_info("2.12.0"), None);
        assert_eq!(version_info("1.13.4"), None);
        assert_eq!(version_info(""), None);
        let mut values = sample_values();
        values.version = "2.12.0".into();
        assert!(matches!(
            render(&values),
            Err(ChartError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn versions_pin_the_images_their_chart_pins() {
        let info = version_info("2.9.3").unwrap();
        assert_eq!(info.images.etcd.qualified(""), "pachyderm/etcd:v3.5.5");
        assert_eq!(
            info.images.console.qualified("docker.io/"),
            "docker.io/pachyderm/haberdashery:2.9.3"
        );
        let info = version_info("2.11.6").unwrap();
        assert_eq!(info.images.pachd.qualified(""), "pachyderm/pachd:2.11.6");
        assert_eq!(info.images.worker.tag, "2.11.6");
        assert_eq!(info.images.etcd.tag, "v3.5.12");
        assert_eq!(
            info.images.postgres.qualified(""),
            "pachyderm/postgresql:13.3.0"
        );
        assert_eq!(
            info.images.pg_bouncer.qualified(""),
            "pachyderm/pgbouncer:1.16.2"
        );
    }

    #[test]
    fn every_supported_version_renders() {
        for version in supported_versions() {
            let info = version_info(&version).unwrap();
            let mut values = sample_values();
            values.version = version.clone();
            values.images = info.qualified_images(REGISTRY);
            let objects = render(&values).unwrap_or_else(|e| panic!("{version}: {e}"));
            let pachd = container(find(&objects, "Deployment", "pachd"), "pachd");
            assert!(pachd["image"]
                .as_str()
                .unwrap()
                .ends_with(&format!(":{version}")));
            // Before 2.11 the Go CDK storage path had to be switched on.
            let gocdk = env_value(pachd, "GOCDK_ENABLED");
            if version.starts_with("2.11.") {
                assert_eq!(gocdk, None, "{version}");
            } else {
                assert_eq!(gocdk.as_deref(), Some("true"), "{version}");
            }
        }
    }

    #[test]
    fn components_render_in_apply_order() {
        let objects = render(&sample_values()).unwrap();
        let order: Vec<Component> = objects.iter().map(|o| o.component).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
        assert_eq!(objects[0].kind(), "Namespace");
        for component in Component::ALL {
            assert!(order.contains(&component), "{component:?} rendered nothing");
        }
    }

    #[test]
    fn every_object_has_ownership_labels_annotations_and_namespace() {
        let values = sample_values();
        for object in render(&values).unwrap() {
            let meta = &object.object["metadata"];
            for (key, value) in &values.labels {
                assert_eq!(
                    meta["labels"][key],
                    *value,
                    "{} {}",
                    object.kind(),
                    object.name()
                );
            }
            assert_eq!(meta["labels"]["component"], object.component.name());
            assert_eq!(meta["annotations"]["example.com/owner"], "platform");
            if object.kind() == "Namespace" {
                assert_eq!(object.name(), values.namespace);
                assert_eq!(object.namespace(), None);
            } else {
                assert_eq!(
                    object.namespace(),
                    Some(values.namespace.as_str()),
                    "{}",
                    object.name()
                );
            }
        }
    }

    #[test]
    fn annotations_key_is_omitted_when_empty() {
        let mut values = sample_values();
        values.annotations.clear();
        let objects = render(&values).unwrap();
        let etcd = find(&objects, "StatefulSet", "etcd");
        assert!(etcd.object["metadata"].get("annotations").is_none());
        // The pachd Service still carries its own.
        let service = find(&objects, "Service", "pachd");
        assert_eq!(
            service.object["metadata"]["annotations"]
                ["service.beta.kubernetes.io/aws-load-balancer-scheme"],
            "internal"
        );
    }

    #[test]
    fn selectors_use_stable_labels_only() {
        let values = sample_values();
        let objects = render(&values).unwrap();
        let mut selectors = Vec::new();
        for object in workloads(&objects) {
            let selector = &object.object["spec"]["selector"]["matchLabels"];
            let pod_labels = &object.object["spec"]["template"]["metadata"]["labels"];
            for (key, value) in selector.as_object().unwrap() {
                assert_eq!(
                    &pod_labels[key],
                    value,
                    "{} selects labels its pods lack",
                    object.name()
                );
            }
            selectors.push((object.name().to_string(), selector.clone()));
        }
        for object in objects.iter().filter(|o| o.kind() == "Service") {
            selectors.push((
                object.name().to_string(),
                object.object["spec"]["selector"].clone(),
            ));
        }
        for (name, selector) in selectors {
            let selector = selector.as_object().unwrap();
            assert!(
                !selector.contains_key("team"),
                "{name} selects on a user tag"
            );
            for (key, value) in &values.selector_labels {
                assert_eq!(selector[key], *value, "{name}");
            }
            assert!(selector.contains_key("app"), "{name}");
        }
    }

    #[test]
    fn claim_templates_do_not_carry_user_tags() {
        // Claim templates are immutable; a changed tag would fail every apply.
        let objects = render(&sample_values()).unwrap();
        for object in objects.iter().filter(|o| o.kind() == "StatefulSet") {
            for claim in object.object["spec"]["volumeClaimTemplates"]
                .as_array()
                .unwrap()
            {
                assert!(
                    claim["metadata"]["labels"].get("team").is_none(),
                    "{}",
                    object.name()
                );
            }
        }
    }

    #[test]
    fn etcd_claim_is_sized_from_values() {
        let objects = render(&sample_values()).unwrap();
        let etcd = find(&objects, "StatefulSet", "etcd");
        let claim = &etcd.object["spec"]["volumeClaimTemplates"][0];
        assert_eq!(claim["metadata"]["name"], "etcd-storage");
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "25Gi");
        assert_eq!(claim["spec"]["storageClassName"], "gp3");
        let postgres = find(&objects, "StatefulSet", "postgres");
        let claim = &postgres.object["spec"]["volumeClaimTemplates"][0];
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "40Gi");
        assert!(claim["spec"].get("storageClassName").is_none());
    }

    #[test]
    fn three_member_etcd_lists_three_initial_peers() {
        let mut values = sample_values();
        values.etcd.replicas = 3;
        let objects = render(&values).unwrap();
        let etcd = find(&objects, "StatefulSet", "etcd");
        assert_eq!(etcd.object["spec"]["replicas"], 3);
        assert_eq!(etcd.object["spec"]["podManagementPolicy"], "Parallel");
        let command = container(etcd, "etcd")["command"].as_array().unwrap();
        let flag = command
            .iter()
            .filter_map(|a| a.as_str()?.strip_prefix("--initial-cluster="))
            .next()
            .expect("--initial-cluster is passed");
        let peers: Vec<&str> = flag.split(',').collect();
        assert_eq!(
            peers,
            (0..3)
                .map(|i| format!(
                    "etcd-{i}=http://etcd-{i}.etcd-headless.pachyderm-demo.svc.cluster.local:2380"
                ))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn even_etcd_membership_is_rejected() {
        let mut values = sample_values();
        values.etcd.replicas = 2;
        assert!(matches!(render(&values), Err(ChartError::InvalidValues(_))));
    }

    #[test]
    fn console_objects_absent_when_disabled() {
        let mut values = sample_values();
        values.console.enabled = false;
        let objects = render(&values).unwrap();
        assert!(objects.iter().all(|o| o.component != Component::Console));
        assert!(objects.iter().all(|o| o.name() != "console"));
    }

    #[test]
    fn external_postgres_renders_no_database_and_points_pachd_at_it() {
        let mut values = sample_values();
        values.postgres.in_cluster = false;
        values.postgres.host = "pachyderm.abc123.eu-west-1.rds.amazonaws.com".into();
        values.postgres.ssl_mode = "require".into();
        values.postgres.password_secret = "rds-password".into();
        values.postgres.password_key = "postgres-password".into();
        values.secrets.postgres_password_b64 = String::new();
        let objects = render(&values).unwrap();
        assert!(objects.iter().all(|o| o.component != Component::Postgres));
        assert!(
            objects.iter().all(|o| o.name() != "rds-password"),
            "the user's Secret is not ours"
        );
        let pachd = container(find(&objects, "Deployment", "pachd"), "pachd");
        assert_eq!(
            env_value(pachd, "POSTGRES_HOST").as_deref(),
            Some(values.postgres.host.as_str())
        );
        assert_eq!(env_value(pachd, "POSTGRES_SSL").as_deref(), Some("require"));
        assert_eq!(
            env(pachd, "POSTGRES_PASSWORD").unwrap()["valueFrom"]["secretKeyRef"],
            json!({"name": "rds-password", "key": "postgres-password"})
        );
        let bouncer = container(find(&objects, "Deployment", "pg-bouncer"), "pg-bouncer");
        assert_eq!(
            env_value(bouncer, "POSTGRESQL_HOST").as_deref(),
            Some(values.postgres.host.as_str())
        );
        assert_eq!(
            env_value(bouncer, "PGBOUNCER_SERVER_TLS_SSLMODE").as_deref(),
            Some("require")
        );
    }

    #[test]
    fn in_cluster_postgres_creates_the_identity_database() {
        let objects = render(&sample_values()).unwrap();
        let scripts = find(&objects, "ConfigMap", "postgres-init-scripts");
        let script = scripts.object["data"]["create-identity-database.sh"]
            .as_str()
            .unwrap();
        assert!(script.contains("CREATE DATABASE dex;"));
        let pachd = container(find(&objects, "Deployment", "pachd"), "pachd");
        assert_eq!(
            env_value(pachd, "POSTGRES_HOST").as_deref(),
            Some("postgres")
        );
        find(&objects, "Service", "postgres");
        // The Bitnami image writes group-root directories: no group 1000.
        let postgres = find(&objects, "StatefulSet", "postgres");
        let pod = &postgres.object["spec"]["template"]["spec"];
        assert!(pod["securityContext"].get("runAsGroup").is_none());
        assert!(container(postgres, "postgres")["securityContext"]
            .get("runAsGroup")
            .is_none());
    }

    #[test]
    fn amazon_secret_has_bucket_and_region_and_no_keys() {
        let objects = render(&sample_values()).unwrap();
        let secret = find(&objects, "Secret", "pachyderm-storage-secret");
        assert_eq!(
            decoded(secret, "AMAZON_BUCKET").as_deref(),
            Some("demo-pachyderm-data")
        );
        assert_eq!(
            decoded(secret, "AMAZON_REGION").as_deref(),
            Some("eu-west-1")
        );
        let keys: Vec<&String> = secret.object["data"].as_object().unwrap().keys().collect();
        for key in &keys {
            for credential in ["_ID", "SECRET", "TOKEN", "ACCESS_KEY", "_CRED"] {
                assert!(!key.contains(credential), "{key} in the storage secret");
            }
        }
        let pachd = container(find(&objects, "Deployment", "pachd"), "pachd");
        assert_eq!(
            env_value(pachd, "STORAGE_URL").as_deref(),
            Some("s3://demo-pachyderm-data?region=eu-west-1")
        );
        assert_eq!(
            pachd["envFrom"],
            json!([{"secretRef": {"name": "pachyderm-storage-secret"}}])
        );
    }

    #[test]
    fn user_credentials_secret_is_referenced_not_copied() {
        let mut values = sample_values();
        values.storage.credentials_secret = "s3-keys".into();
        values.storage.endpoint = "http://minio.storage:9000".into();
        let objects = render(&values).unwrap();
        assert!(objects.iter().all(|o| o.name() != "s3-keys"));
        let secret = find(&objects, "Secret", "pachyderm-storage-secret");
        assert_eq!(
            decoded(secret, "CUSTOM_ENDPOINT").as_deref(),
            Some("http://minio.storage:9000")
        );
        for deployment in ["pachd", "pachw"] {
            let c = container(find(&objects, "Deployment", deployment), deployment);
            assert!(c["envFrom"]
                .as_array()
                .unwrap()
                .contains(&json!({"secretRef": {"name": "s3-keys"}})));
            assert_eq!(
                env_value(c, "STORAGE_URL").as_deref(),
                Some("s3://demo-pachyderm-data?region=eu-west-1&endpoint=http%3A%2F%2Fminio.storage%3A9000")
            );
        }
    }

    #[test]
    fn a_user_secret_named_like_the_storage_secret_replaces_it() {
        let mut values = sample_values();
        values.storage.credentials_secret = "pachyderm-storage-secret".into();
        let objects = render(&values).unwrap();
        assert!(objects
            .iter()
            .all(|o| o.name() != "pachyderm-storage-secret"));
        let pachd = container(find(&objects, "Deployment", "pachd"), "pachd");
        assert_eq!(
            pachd["envFrom"],
            json!([{"secretRef": {"name": "pachyderm-storage-secret"}}])
        );
    }

    #[test]
    fn google_and_microsoft_buckets_are_addressed_by_url() {
        let mut values = sample_values();
        values.storage.backend = "GOOGLE".into();
        let objects = render(&values).unwrap();
        let pachd = container(find(&objects, "Deployment", "pachd"), "pachd");
        assert_eq!(
            env_value(pachd, "STORAGE_URL").as_deref(),
            Some("gs://demo-pachyderm-data")
        );
        assert_eq!(
            env(pachd, "GOOGLE_APPLICATION_CREDENTIALS"),
            None,
            "workload identity"
        );

        values.storage.backend = "MICROSOFT".into();
        values.storage.account = "demodata".into();
        values.storage.endpoint = "http://azurite.storage:10000".into();
        let objects = render(&values).unwrap();
        let secret = find(&objects, "Secret", "pachyderm-storage-secret");
        assert_eq!(
            decoded(secret, "AZURE_STORAGE_ACCOUNT").as_deref(),
            Some("demodata")
        );
        assert_eq!(
            decoded(secret, "AZURE_STORAGE_DOMAIN").as_deref(),
            Some("azurite.storage:10000")
        );
        assert_eq!(
            decoded(secret, "AZURE_STORAGE_IS_LOCAL_EMULATOR").as_deref(),
            Some("true")
        );
        let pachd = container(find(&objects, "Deployment", "pachd"), "pachd");
        assert_eq!(
            env_value(pachd, "STORAGE_URL").as_deref(),
            Some("azblob://demo-pachyderm-data")
        );

        values.storage.account.clear();
        assert!(matches!(render(&values), Err(ChartError::InvalidValues(_))));
    }

    #[test]
    fn local_storage_mounts_the_host_path_for_pachd_and_workers() {
        let mut values = sample_values();
        values.storage.backend = "LOCAL".into();
        values.storage.local_host_path = "/var/pachyderm/".into();
        values.storage.bucket.clear();
        let objects = render(&values).unwrap();
        let deployment = find(&objects, "Deployment", "pachd");
        let pachd = container(deployment, "pachd");
        assert_eq!(
            env_value(pachd, "STORAGE_HOST_PATH").as_deref(),
            Some("/var/pachyderm/pachd")
        );
        assert_eq!(env_value(pachd, "STORAGE_URL"), None);
        assert_eq!(
            env_value(pachd, "WORKER_USES_ROOT").as_deref(),
            Some("true")
        );
        let spec = &deployment.object["spec"]["template"]["spec"];
        let disk = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "pach-disk")
            .unwrap();
        assert_eq!(
            disk["hostPath"],
            json!({"path": "/var/pachyderm/pachd", "type": "DirectoryOrCreate"})
        );
        assert_eq!(spec["securityContext"]["runAsUser"], 0);
        let secret = find(&objects, "Secret", "pachyderm-storage-secret");
        assert!(
            secret.object.get("data").is_none(),
            "LOCAL needs no settings"
        );

        // 2.9 reads GOCDK_ENABLED; LOCAL must keep it off.
        values.version = "2.9.7".into();
        let objects = render(&values).unwrap();
        let pachd = container(find(&objects, "Deployment", "pachd"), "pachd");
        assert_eq!(env_value(pachd, "GOCDK_ENABLED").as_deref(), Some("false"));
    }

    #[test]
    fn images_carry_the_registry_prefix() {
        let objects = render(&sample_values()).unwrap();
        let prefix = format!("{REGISTRY}/");
        for object in workloads(&objects) {
            for c in object.object["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
            {
                assert!(
                    c["image"].as_str().unwrap().starts_with(&prefix),
                    "{}",
                    c["image"]
                );
            }
            let pull = &object.object["spec"]["template"]["spec"]["imagePullSecrets"];
            assert_eq!(*pull, json!([{"name": "mirror-pull"}]), "{}", object.name());
        }
        let pachd = container(find(&objects, "Deployment", "pachd"), "pachd");
        assert_eq!(
            env_value(pachd, "WORKER_IMAGE").as_deref(),
            Some("registry.corp:5000/mirror/pachyderm/worker:2.11.6")
        );
        assert_eq!(
            env_value(pachd, "WORKER_SIDECAR_IMAGE").as_deref(),
            Some("registry.corp:5000/mirror/pachyderm/pachd:2.11.6")
        );
        assert_eq!(
            env_value(pachd, "IMAGE_PULL_SECRETS").as_deref(),
            Some("mirror-pull")
        );
    }

    #[test]
    fn the_redaction_marker_appears_only_in_secrets() {
        let objects = render(&sample_values()).unwrap();
        let mut seen_in_secret = false;
        for object in &objects {
            let text = object.object.to_string();
            if object.kind() == "Secret" {
                seen_in_secret |= text.contains(MARKER_B64);
            } else {
                assert!(
                    !text.contains(MARKER_B64),
                    "{} {}",
                    object.kind(),
                    object.name()
                );
            }
        }
        assert!(seen_in_secret, "the postgres Secret carries the password");
        let secret = find(&objects, "Secret", "postgres");
        assert_eq!(secret.object["data"]["postgresql-password"], MARKER_B64);
    }

    #[test]
    fn service_accounts_carry_the_workload_identity() {
        let objects = render(&sample_values()).unwrap();
        for name in ["pachyderm", "pachyderm-worker"] {
            let account = find(&objects, "ServiceAccount", name);
            assert_eq!(
                account.object["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
                "arn:aws:iam::123456789012:role/demo-pachyderm"
            );
        }
        let pachd = find(&objects, "Deployment", "pachd");
        assert_eq!(
            pachd.object["spec"]["template"]["spec"]["serviceAccountName"],
            "pachyderm"
        );
        assert_eq!(
            env_value(container(pachd, "pachd"), "WORKER_SERVICE_ACCOUNT").as_deref(),
            Some("pachyderm-worker")
        );
    }

    #[test]
    fn pachd_service_type_and_pachw_replicas() {
        let objects = render(&sample_values()).unwrap();
        let service = find(&objects, "Service", "pachd");
        assert_eq!(service.object["spec"]["type"], "LoadBalancer");
        let ports: Vec<i64> = service.object["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["port"].as_i64().unwrap())
            .collect();
        assert!(ports.contains(&30650));
        // pachd scales pachw; applying a replica count would fight it.
        let pachw = find(&objects, "Deployment", "pachw");
        assert!(pachw.object["spec"].get("replicas").is_none());
    }

    #[test]
    fn pod_settings_are_rendered_and_empty_ones_omitted() {
        let objects = render(&sample_values()).unwrap();
        let pachd = find(&objects, "Deployment", "pachd");
        assert_eq!(
            container(pachd, "pachd")["resources"],
            json!({"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}})
        );
        let spec = &pachd.object["spec"]["template"]["spec"];
        assert_eq!(spec["nodeSelector"], json!({"pool": "runtime"}));
        assert_eq!(
            spec["tolerations"],
            json!([{"key": "dedicated", "operator": "Equal", "value": "pachyderm", "effect": "NoSchedule"}])
        );
        let etcd = find(&objects, "StatefulSet", "etcd");
        assert!(container(etcd, "etcd").get("resources").is_none());

        // Nothing anywhere is an empty map, an empty list or null, except the
        // emptyDir volume sources that mean "an empty directory".
        fn walk(path: &str, value: &Json) {
            match value {
                Json::Null => panic!("null at {path}"),
                Json::Array(items) => {
                    assert!(!items.is_empty(), "empty list at {path}");
                    for (i, item) in items.iter().enumerate() {
                        walk(&format!("{path}[{i}]"), item);
                    }
                }
                Json::Object(map) => {
                    assert!(
                        !map.is_empty() || path.ends_with(".emptyDir"),
                        "empty map at {path}"
                    );
                    for (key, item) in map {
                        walk(&format!("{path}.{key}"), item);
                    }
                }
                _ => {}
            }
        }
        let mut values = sample_values();
        values.annotations.clear();
        values.image_pull_secrets.clear();
        values.service_account_annotations.clear();
        values.pachd.service_annotations.clear();
        for object in render(&values).unwrap() {
            walk(
                &format!("{}/{}", object.kind(), object.name()),
                &object.object,
            );
        }
    }

    #[test]
    fn template_errors_name_the_file_and_line() {
        const BROKEN: TemplateSet = TemplateSet {
            dir: "test",
            helpers: &[],
            components: &[(
                Component::Etcd,
                "etcd.yaml",
                "apiVersion: v1\nkind: Service\n{{ etcd.no_such_field }}\n",
            )],
        };
        let values = sample_values();
        let info = version_info(&values.version).unwrap();
        match render_set(&BROKEN, &info, &values) {
            Err(ChartError::Template { template, line, .. }) => {
                assert_eq!(template, "charts/pachyderm/test/etcd.yaml");
                assert_eq!(line, Some(3));
            }
            other => panic!("expected a template error, got {other:?}"),
        }
        const NOT_YAML: TemplateSet = TemplateSet {
            dir: "test",
            helpers: &[],
            components: &[(Component::Etcd, "etcd.yaml", "kind: [unclosed\n")],
        };
        let error = render_set(&NOT_YAML, &info, &values).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("charts/pachyderm/test/etcd.yaml rendered invalid YAML"),
            "{error}"
        );
    }
}
