//! From the stack file and the target's outputs to the chart's values:
//! defaults merged (stack-wide node selector and tolerations under each
//! workload's own), storage resolved (the target's bucket, or the spec's
//! URL, or the node directory), ownership labels added.

use std::collections::BTreeMap;

use base64::Engine as _;
use howdah_provider::{RuntimeInputs, StorageBinding};
use serde_json::{json, Value};

use super::chart;
use super::cluster::{MANAGED_LABEL, STACK_LABEL};
use super::values::*;
use crate::spec::{self, Stack};

/// A generated or read-back secret value; prints as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(text: String) -> Self {
        SecretText(text)
    }

    /// A fresh random password (24 alphanumerics, ~142 bits).
    pub fn generate() -> Self {
        Self::generate_of(24)
    }

    /// `length` random alphanumerics.
    pub fn generate_of(length: usize) -> Self {
        use rand::Rng;
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        SecretText(
            (0..length)
                .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                .collect(),
        )
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// howdah's own Secret of per-stack keys, generated once and kept.
pub const STACK_KEY_SECRET: &str = "howdah-stack-keys";
/// Its key for the storage digest's HMAC.
pub const DIGEST_KEY: &str = "storage-digest-key";
/// The Secret pachd reads CLUSTER_DEPLOYMENT_ID from (the chart's name).
pub const DEPLOYMENT_ID_SECRET: &str = "pachyderm-deployment-id-secret";
/// Its one key, which pachd reads as an environment variable.
pub const DEPLOYMENT_ID_KEY: &str = "CLUSTER_DEPLOYMENT_ID";

/// The pod label AKS's workload identity webhook acts on.
pub const AZURE_USE_LABEL: &str = "azure.workload.identity/use";

/// The marker rendered in place of secrets by `render` and offline plans.
pub const REDACTED: &str = "<generated-at-apply>";

/// The key of the PostgreSQL password in its Secret (the in-cluster one
/// howdah writes, or the user's `passwordSecret`): pachd, pg-bouncer and
/// the in-cluster server read it from there.
pub const POSTGRES_PASSWORD_KEY: &str = "postgres-password";

/// The keys a Secret's readers need: every entry of `all_of`, each met by
/// any one of its keys.
#[derive(Debug, Clone, Copy)]
pub struct SecretKeys {
    /// Who reads them, with the verb, for messages ("pachd reads").
    pub readers: &'static str,
    pub all_of: &'static [&'static [&'static str]],
}

/// The keys of a credentials Secret that pachd and its workers read for
/// `backend` once they are copied into pachyderm-storage-secret (their
/// object store clients take them from the environment; a Google key file
/// is pointed at by GOOGLE_APPLICATION_CREDENTIALS only when GOOGLE_CRED
/// is there). No keys are known for other backends.
pub fn storage_credential_keys(backend: &str) -> SecretKeys {
    const READERS: &str = "pachd and its workers read";
    let all_of: &'static [&'static [&'static str]] = match backend {
        "AMAZON" => &[&["AWS_ACCESS_KEY_ID"], &["AWS_SECRET_ACCESS_KEY"]],
        "GOOGLE" => &[&["GOOGLE_CRED"]],
        "MICROSOFT" => &[&["AZURE_STORAGE_KEY"]],
        _ => &[],
    };
    SecretKeys {
        readers: READERS,
        all_of,
    }
}

/// Label naming the runtime component an object belongs to.
pub const COMPONENT_LABEL: &str = "howdah.io/component";

/// The ownership labels of a stack.
pub fn ownership_labels(stack: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (STACK_LABEL.to_string(), stack.to_string()),
        (MANAGED_LABEL.to_string(), "true".to_string()),
    ])
}

/// Where pachd's objects go, from the target (if it made a bucket) or the spec.
pub fn storage_values(stack: &Stack, inputs: &RuntimeInputs) -> StorageValues {
    let binding: Option<StorageBinding> = inputs.storage.clone().or_else(|| {
        stack.storage.bucket.as_ref().and_then(|b| {
            b.url
                .as_deref()
                .and_then(|url| parse_bucket_url(url, b.credentials_secret.clone()))
        })
    });
    let host_path = stack
        .storage
        .local
        .as_ref()
        .map(|l| l.host_path.clone())
        .unwrap_or_default();
    match binding {
        Some(b) => StorageValues {
            backend: b.backend,
            local_host_path: String::new(),
            bucket: b.bucket,
            region: b.region,
            endpoint: b.endpoint,
            account: b.account,
            credentials_secret: b.credentials_secret,
        },
        None => StorageValues {
            backend: "LOCAL".into(),
            local_host_path: host_path,
            bucket: String::new(),
            region: String::new(),
            endpoint: String::new(),
            account: String::new(),
            credentials_secret: String::new(),
        },
    }
}

/// `s3://b?region=r&endpoint=e`, `gs://b`, `azblob://c` to a binding. The
/// spec validator has already checked the shape.
pub fn parse_bucket_url(url: &str, credentials_secret: Option<String>) -> Option<StorageBinding> {
    let (scheme, rest) = url.split_once("://")?;
    let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    };
    let backend = match scheme {
        "s3" => "AMAZON",
        "gs" => "GOOGLE",
        "azblob" => "MICROSOFT",
        _ => return None,
    };
    Some(StorageBinding {
        backend: backend.into(),
        bucket: bucket.trim_end_matches('/').to_string(),
        region: param("region"),
        endpoint: param("endpoint"),
        credentials_secret: credentials_secret.unwrap_or_default(),
        account: param("account"),
    })
}

fn pod(stack: &Stack, settings: &spec::WorkloadSettings<'_>) -> PodValues {
    let p = &stack.pachyderm;
    let spec::WorkloadSettings {
        resources,
        node_selector,
        tolerations,
        pod_annotations,
        priority_class_name,
        affinity,
        pod_labels,
        service_labels,
    } = *settings;
    let quantities = |list: &spec::ResourceList| {
        let mut m = serde_json::Map::new();
        if let Some(c) = &list.cpu {
            m.insert("cpu".into(), json!(c));
        }
        if let Some(mem) = &list.memory {
            m.insert("memory".into(), json!(mem));
        }
        Value::Object(m)
    };
    let resources = match resources {
        Some(r) => {
            let mut m = serde_json::Map::new();
            let requests = quantities(&r.requests);
            let limits = quantities(&r.limits);
            if requests.as_object().is_some_and(|o| !o.is_empty()) {
                m.insert("requests".into(), requests);
            }
            if limits.as_object().is_some_and(|o| !o.is_empty()) {
                m.insert("limits".into(), limits);
            }
            Value::Object(m)
        }
        None => json!({}),
    };
    PodValues {
        resources,
        node_selector: node_selector
            .clone()
            .unwrap_or_else(|| p.node_selector.clone()),
        tolerations: tolerations
            .as_ref()
            .unwrap_or(&p.tolerations)
            .iter()
            .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
            .collect(),
        pod_annotations: pod_annotations.clone(),
        priority_class_name: priority_class_name
            .clone()
            .or_else(|| p.priority_class_name.clone())
            .unwrap_or_default(),
        affinity: affinity
            .as_ref()
            .or(p.affinity.as_ref())
            .and_then(|a| serde_json::to_value(a).ok())
            .unwrap_or_else(|| json!({})),
        pod_labels: pod_labels.clone().unwrap_or_else(|| p.pod_labels.clone()),
        service_labels: service_labels.clone(),
    }
}

/// The proxy's resources when the stack file sets none, the official
/// chart's: Envoy is told to shed load before its heap reaches 500 MB
/// (charts/pachyderm/2.x/proxy.yaml), so 512Mi is the limit that fits it;
/// it needs little CPU.
fn proxy_default_resources() -> Value {
    json!({
        "requests": {"cpu": "100m", "memory": "512Mi"},
        "limits": {"memory": "512Mi"},
    })
}

/// PostgreSQL's resources when the stack file sets none: the requests of
/// the Bitnami PostgreSQL chart the official chart runs (`resources` in
/// its values), and no limits, so the scheduler reserves room for it.
fn postgres_default_resources() -> Value {
    json!({"requests": {"cpu": "250m", "memory": "256Mi"}})
}

/// PostgreSQL's affinity when none is set: the Bitnami chart's default
/// soft anti-affinity (`primary.podAntiAffinityPreset: soft`), which
/// keeps PostgreSQL pods of the stack off one node where it can.
fn postgres_default_affinity(namespace: &str, selector_labels: &BTreeMap<String, String>) -> Value {
    let mut match_labels = selector_labels.clone();
    match_labels.insert("app".into(), "postgres".into());
    json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 1,
        "podAffinityTerm": {
            "labelSelector": {"matchLabels": match_labels},
            "namespaces": [namespace],
            "topologyKey": "kubernetes.io/hostname",
        },
    }]}})
}

/// The proxy's affinity when none is set, the official chart's: on a node
/// running pachd where it can, so proxy-to-pachd traffic stays on the node.
fn proxy_default_affinity() -> Value {
    json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100,
        "podAffinityTerm": {
            "topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["pachd"]}]},
        },
    }]}})
}

fn is_empty_map(value: &Value) -> bool {
    value.as_object().is_some_and(|m| m.is_empty())
}

/// Images for a version the chart does not know. Validation refuses such
/// versions before anything renders, so this only keeps rendering total.
fn unreachable_images(version: &str) -> Images {
    let missing = format!("unsupported-version-{version}");
    Images {
        pachd: missing.clone(),
        worker: missing.clone(),
        etcd: missing.clone(),
        postgres: missing.clone(),
        pg_bouncer: missing.clone(),
        console: missing.clone(),
        proxy: missing,
    }
}

/// The secret inputs of a render: real when applying, redacted offline.
#[derive(Clone)]
pub struct RenderSecrets {
    pub postgres_password: SecretText,
    /// The stack's key for the storage digest.
    pub digest_key: SecretText,
    /// This cluster's CLUSTER_DEPLOYMENT_ID.
    pub deployment_id: SecretText,
    /// The user's credentials Secret's data (base64 values), if one is named.
    pub storage_credentials_b64: BTreeMap<String, String>,
    /// Enterprise's generated secrets; read only when enterprise is on.
    pub enterprise: EnterpriseSecrets,
}

/// Secrets howdah generates for enterprise and auth, kept in its Secrets.
#[derive(Clone)]
pub struct EnterpriseSecrets {
    pub enterprise_secret: SecretText,
    pub root_token: SecretText,
    pub pachd_oauth_secret: SecretText,
    pub console_oauth_secret: SecretText,
}

impl EnterpriseSecrets {
    pub fn redacted() -> EnterpriseSecrets {
        EnterpriseSecrets {
            enterprise_secret: SecretText::new(REDACTED.into()),
            root_token: SecretText::new(REDACTED.into()),
            pachd_oauth_secret: SecretText::new(REDACTED.into()),
            console_oauth_secret: SecretText::new(REDACTED.into()),
        }
    }
}

/// Where howdah keeps enterprise's generated secrets: (Secret, key).
pub const ENTERPRISE_SECRET: (&str, &str) = ("pachyderm-enterprise", "enterprise-secret");
pub const ROOT_TOKEN: (&str, &str) = ("pachyderm-auth", "root-token");
pub const PACHD_OAUTH_SECRET: (&str, &str) = ("pachyderm-auth", "pachd-oauth-client-secret");
pub const CONSOLE_OAUTH_SECRET: (&str, &str) = ("pachyderm-console-secret", "OAUTH_CLIENT_SECRET");
/// Where the extra CA certificates are mounted.
pub const CA_DIR: &str = "/howdah-ca-certs";

impl RenderSecrets {
    /// For `render` and offline plans: nothing real in it.
    pub fn redacted() -> RenderSecrets {
        RenderSecrets {
            postgres_password: SecretText::new(REDACTED.into()),
            digest_key: SecretText::new(REDACTED.into()),
            deployment_id: SecretText::new(REDACTED.into()),
            storage_credentials_b64: BTreeMap::new(),
            enterprise: EnterpriseSecrets::redacted(),
        }
    }
}

impl std::fmt::Debug for RenderSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RenderSecrets(***)")
    }
}

/// Everything the chart needs.
pub fn values_for(stack: &Stack, inputs: &RuntimeInputs, secrets: &RenderSecrets) -> Values {
    let p = &stack.pachyderm;
    let mut labels = ownership_labels(&stack.name);
    labels.insert("suite".into(), "pachyderm".into());
    for (k, v) in &stack.tags {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let mut selector_labels = ownership_labels(&stack.name);
    selector_labels.insert("suite".into(), "pachyderm".into());
    let storage_class = |own: &str| {
        if own.is_empty() {
            inputs.storage_class.clone().unwrap_or_default()
        } else {
            own.to_string()
        }
    };
    let (pg_in_cluster, host, port, user, database, ssl_mode, password_secret) =
        match &p.postgres.external {
            Some(e) => (
                false,
                e.host.clone(),
                e.port,
                e.user.clone(),
                e.database.clone(),
                e.ssl_mode.clone(),
                e.password_secret.clone(),
            ),
            None => (
                true,
                "postgres".to_string(),
                5432,
                "pachyderm".to_string(),
                "pachyderm".to_string(),
                "disable".to_string(),
                "postgres".to_string(),
            ),
        };
    Values {
        stack: stack.name.clone(),
        namespace: p.namespace.clone(),
        version: p.version.clone(),
        labels,
        selector_labels: selector_labels.clone(),
        annotations: p.annotations.clone(),
        pod_labels: inputs.pod_labels.clone(),
        images: chart::version_info(&p.version)
            .or_else(|| chart::version_info(&chart::default_version()))
            .map(|v| v.qualified_images(&p.image_registry))
            .unwrap_or_else(|| unreachable_images(&p.version)),
        image_pull_policy: "IfNotPresent".into(),
        image_pull_secrets: p.image_pull_secrets.clone(),
        storage: storage_values(stack, inputs),
        service_account_annotations: {
            // The target's own (a cloud target's role) win over the file's,
            // which validation allows only on the kubeconfig target.
            let mut all = p.service_accounts.annotations();
            all.extend(inputs.service_account_annotations.clone());
            all
        },
        identity_pod_labels: if p.service_accounts.azure_client_id.is_some() {
            BTreeMap::from([(AZURE_USE_LABEL.to_string(), "true".to_string())])
        } else {
            BTreeMap::new()
        },
        outbound_proxy_env: p
            .outbound_proxy
            .iter()
            .flat_map(|proxy| proxy.env())
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect(),
        etcd: EtcdValues {
            replicas: p.etcd.replicas,
            size: p.etcd.size.clone(),
            storage_class: storage_class(&p.etcd.storage_class),
            pod: pod(stack, &p.etcd.settings()),
        },
        postgres: PostgresValues {
            in_cluster: pg_in_cluster,
            size: p.postgres.size.clone(),
            storage_class: storage_class(&p.postgres.storage_class),
            host,
            port,
            user,
            database,
            ssl_mode,
            auth_type: p
                .postgres
                .external
                .as_ref()
                .map(|e| e.auth_type.clone())
                .unwrap_or_else(|| "md5".into()),
            password_secret,
            password_key: POSTGRES_PASSWORD_KEY.into(),
            pod: {
                let mut pod = pod(stack, &p.postgres.settings());
                if p.postgres.resources.is_none() {
                    pod.resources = postgres_default_resources();
                }
                if is_empty_map(&pod.affinity) {
                    pod.affinity = postgres_default_affinity(&p.namespace, &selector_labels);
                }
                pod
            },
        },
        pg_bouncer: PgBouncerValues {
            replicas: p.pg_bouncer.replicas,
            max_connections: p.pg_bouncer.max_connections,
            pod: pod(stack, &p.pg_bouncer.settings()),
        },
        pachd: PachdValues {
            replicas: p.pachd.replicas,
            service_type: format!("{:?}", p.pachd.service_type),
            service_annotations: p.pachd.service_annotations.clone(),
            log_level: p.pachd.log_level.clone(),
            metrics: p.pachd.metrics,
            pachw_min_replicas: p.pachd.pachw.min_replicas,
            pachw_max_replicas: p.pachd.pachw.max_replicas,
            tls_secret: p
                .pachd
                .tls
                .as_ref()
                .map(|t| t.secret.clone())
                .unwrap_or_default(),
            external_service: p
                .pachd
                .external_service
                .as_ref()
                .map(|e| ExternalServiceValues {
                    load_balancer_ip: e.load_balancer_ip.clone().unwrap_or_default(),
                    api_grpc_port: e.api_grpc_port,
                    s3_gateway_port: e.s3_gateway_port,
                    annotations: e.annotations.clone(),
                }),
            pod: pod(stack, &p.pachd.settings()),
        },
        console: ConsoleValues {
            enabled: p.console.enabled,
            pod: pod(stack, &p.console.settings()),
        },
        proxy: ProxyValues {
            enabled: p.proxy_enabled(),
            service_type: format!("{:?}", p.proxy.service_type),
            service_annotations: p.proxy.service_annotations.clone(),
            pod: {
                let mut pod = pod(stack, &p.proxy.settings());
                if p.proxy.resources.is_none() {
                    pod.resources = proxy_default_resources();
                }
                if is_empty_map(&pod.affinity) {
                    pod.affinity = proxy_default_affinity();
                }
                pod
            },
        },
        ingress: p.ingress.as_ref().map(|i| IngressValues {
            host: i.host.clone(),
            class_name: i.class_name.clone().unwrap_or_default(),
            annotations: i.annotations.clone(),
            tls_secret: i.tls_secret.clone().unwrap_or_default(),
        }),
        ca_certificates: p.ca_certificates.as_ref().map(|ca| CaValues {
            secret: ca.secret.clone(),
            key: ca.key.clone(),
            dir: CA_DIR.into(),
        }),
        enterprise: p.enterprise.as_ref().map(|e| enterprise_values(p, e)),
        secrets: SecretValues {
            postgres_password_b64: base64::engine::general_purpose::STANDARD
                .encode(secrets.postgres_password.expose()),
            stack_key_secret: STACK_KEY_SECRET.into(),
            digest_key_name: DIGEST_KEY.into(),
            digest_key_b64: base64::engine::general_purpose::STANDARD
                .encode(secrets.digest_key.expose()),
            deployment_id_b64: base64::engine::general_purpose::STANDARD
                .encode(secrets.deployment_id.expose()),
            enterprise_secret_b64: b64(&secrets.enterprise.enterprise_secret),
            root_token_b64: b64(&secrets.enterprise.root_token),
            pachd_oauth_secret_b64: b64(&secrets.enterprise.pachd_oauth_secret),
            console_oauth_secret_b64: b64(&secrets.enterprise.console_oauth_secret),
            storage_credentials_b64: secrets.storage_credentials_b64.clone(),
        },
    }
}

fn b64(secret: &SecretText) -> String {
    base64::engine::general_purpose::STANDARD.encode(secret.expose())
}

/// pachd's and the console's OAuth client ids, as the chart names them.
const PACHD_CLIENT_ID: &str = "pachd";
const CONSOLE_CLIENT_ID: &str = "console";

/// Enterprise's addresses and documents, worked out as the chart does:
/// users reach the identity service, pachd's OIDC callback and the
/// console at one address (`consoleUrl`, else the ingress host, else
/// `howdah console`'s), where pachyderm-proxy routes `/dex` and
/// `/authorization-code/callback` to pachd; pachd and the console reach
/// the issuer inside the cluster unless the ingress makes it public.
fn enterprise_values(p: &spec::Pachyderm, e: &spec::types::Enterprise) -> EnterpriseValues {
    let public = match (&e.console_url, &p.ingress) {
        (Some(url), _) => url.trim_end_matches('/').to_string(),
        (None, Some(ingress)) => {
            let scheme = if ingress.tls_secret.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{}", ingress.host)
        }
        (None, None) => spec::types::DEFAULT_CONSOLE_URL.to_string(),
    };
    let proxy = p.proxy_enabled();
    let issuer = e.issuer_uri.clone().unwrap_or_else(|| {
        if p.ingress.is_some() {
            format!("{public}/dex")
        } else if proxy {
            "http://pachd:30658/dex".into()
        } else if p.pachd.service_type == spec::types::ServiceType::NodePort {
            "http://pachd:1658".into()
        } else {
            "http://pachd:30658".into()
        }
    });
    // Without the proxy nothing serves pachd's callback at `public`: it is
    // pachd's own OIDC port, forwarded to this machine (the chart's).
    let (pachd_redirect, user_issuer_host) = if proxy || p.ingress.is_some() {
        (
            format!("{public}/authorization-code/callback"),
            public.clone(),
        )
    } else {
        (
            "http://localhost:30657/authorization-code/callback".to_string(),
            "http://localhost:30658".to_string(),
        )
    };
    let console_redirect = format!("{public}/oauth/callback/?inline=true");
    let mock_idp = e.upstream_idps_secret.is_none();
    let mut bindings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if mock_idp {
        // The test provider's only user, and everyone as project creator,
        // as the chart grants them with its mock login.
        bindings.insert(
            "user:kilgore@kilgore.trout".into(),
            vec!["clusterAdmin".into()],
        );
        bindings.insert("allClusterUsers".into(), vec!["projectCreator".into()]);
    }
    bindings.extend(e.cluster_role_bindings.clone());
    let mut clients = vec![json!({
        "id": PACHD_CLIENT_ID,
        "name": PACHD_CLIENT_ID,
        "redirect_uris": [pachd_redirect],
        "trusted_peers": if p.console.enabled { vec![CONSOLE_CLIENT_ID] } else { vec![] },
    })];
    if p.console.enabled {
        clients.push(json!({
            "id": CONSOLE_CLIENT_ID,
            "name": CONSOLE_CLIENT_ID,
            "redirect_uris": [console_redirect],
        }));
    }
    EnterpriseValues {
        license_secret: e.license_secret.clone(),
        auth: e.auth,
        root_token_secret: e
            .root_token_secret
            .clone()
            .unwrap_or_else(|| ROOT_TOKEN.0.into()),
        own_root_token: e.root_token_secret.is_none(),
        idp_secret: e
            .upstream_idps_secret
            .clone()
            .unwrap_or_else(|| "pachyderm-identity".into()),
        mock_idp,
        mock_idps: json!([{
            "id": "test",
            "name": "test",
            "type": "mockPassword",
            "config": {"username": "admin", "password": "password"},
        }])
        .to_string(),
        auth_config: json!({
            "client_id": PACHD_CLIENT_ID,
            "issuer": issuer,
            "localhost_issuer": true,
            "require_email_verified": false,
            "user_accessible_issuer_host": user_issuer_host,
            "redirect_uri": pachd_redirect,
            "scopes": ["email", "profile", "groups", "openid"],
        })
        .to_string(),
        identity_config: json!({
            "issuer": issuer,
            "id_token_expiry": "24h",
            "rotation_token_expiry": "48h",
        })
        .to_string(),
        oidc_clients: Value::Array(clients).to_string(),
        cluster_role_bindings: if bindings.is_empty() {
            String::new()
        } else {
            json!(bindings).to_string()
        },
        dex_credentials_secret: e.dex_credentials_secret.clone().unwrap_or_default(),
        issuer_uri: issuer,
        browser_issuer_uri: public,
        console_redirect_uri: console_redirect,
        console_client_id: CONSOLE_CLIENT_ID.into(),
        pachd_client_id: PACHD_CLIENT_ID.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_urls_become_bindings() {
        let b = parse_bucket_url(
            "s3://data?region=us-east-1&endpoint=http://minio:9000",
            None,
        )
        .unwrap();
        assert_eq!(
            (b.backend.as_str(), b.bucket.as_str(), b.region.as_str()),
            ("AMAZON", "data", "us-east-1")
        );
        assert_eq!(b.endpoint, "http://minio:9000");
        assert_eq!(
            parse_bucket_url("gs://g", Some("creds".into()))
                .unwrap()
                .credentials_secret,
            "creds"
        );
        assert_eq!(
            parse_bucket_url("azblob://c", None).unwrap().backend,
            "MICROSOFT"
        );
        assert!(parse_bucket_url("ftp://x", None).is_none());
    }

    #[test]
    fn generated_passwords_differ_and_never_print() {
        let a = SecretText::generate();
        let b = SecretText::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 24);
        assert_eq!(format!("{a:?}"), "***");
    }
}
