//! The values the runtime chart is rendered from: everything the templates
//! under charts/ may read. Built from the spec and the provider's outputs by
//! `Values::from_stack`; the templates never see the spec itself, so a
//! provider can feed them (bucket, region, identity annotations) without the
//! chart knowing which cloud it runs on.

use std::collections::BTreeMap;

use serde::Serialize;

/// Everything a chart template may read.
#[derive(Debug, Clone, Serialize)]
pub struct Values {
    /// Stack name.
    pub stack: String,
    /// Runtime namespace.
    pub namespace: String,
    /// Pachyderm version, e.g. "2.11.6".
    pub version: String,
    /// Labels on every object (ownership labels, suite=pachyderm, user tags).
    pub labels: BTreeMap<String, String>,
    /// The subset of `labels` used in selectors (never changes for a stack).
    pub selector_labels: BTreeMap<String, String>,
    /// Annotations on every object.
    pub annotations: BTreeMap<String, String>,
    /// Extra labels on every pod template (never in selectors), for
    /// admission webhooks that select pods by label, e.g.
    /// `azure.workload.identity/use: "true"`. Usually empty.
    pub pod_labels: BTreeMap<String, String>,
    /// Fully qualified images (registry prefix applied).
    pub images: Images,
    pub image_pull_policy: String,
    pub image_pull_secrets: Vec<String>,
    pub storage: StorageValues,
    /// Annotations on the `pachyderm` and `pachyderm-worker` service
    /// accounts (workload identity: eks.amazonaws.com/role-arn, ...).
    pub service_account_annotations: BTreeMap<String, String>,
    /// Labels on pachd's and pachw's pods for the cluster's workload
    /// identity (AKS: azure.workload.identity/use).
    pub identity_pod_labels: BTreeMap<String, String>,
    /// `{name, value}` env entries for outbound HTTP(S) through a proxy,
    /// on pachd and the console; empty: none.
    pub outbound_proxy_env: Vec<serde_json::Value>,
    pub etcd: EtcdValues,
    pub postgres: PostgresValues,
    pub pg_bouncer: PgBouncerValues,
    pub pachd: PachdValues,
    pub console: ConsoleValues,
    pub proxy: ProxyValues,
    /// The Ingress in front of the proxy (or the console); none: no Ingress.
    pub ingress: Option<IngressValues>,
    /// Extra trusted CA certificates; none: the system's only.
    pub ca_certificates: Option<CaValues>,
    /// Enterprise and login; none: off.
    pub enterprise: Option<EnterpriseValues>,
    /// Generated secrets. During `render` and `plan` these hold a redaction
    /// marker, never the real value.
    pub secrets: SecretValues,
}

#[derive(Debug, Clone, Serialize)]
pub struct Images {
    pub pachd: String,
    pub worker: String,
    pub etcd: String,
    pub postgres: String,
    pub pg_bouncer: String,
    pub console: String,
    /// pachyderm-proxy's Envoy.
    pub proxy: String,
}

/// Pod scheduling settings shared by every workload, already merged with the
/// stack-wide defaults.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PodValues {
    /// `{requests: {cpu, memory}, limits: {...}}`, empty maps when unset.
    pub resources: serde_json::Value,
    pub node_selector: BTreeMap<String, String>,
    /// Kubernetes toleration objects.
    pub tolerations: Vec<serde_json::Value>,
    pub pod_annotations: BTreeMap<String, String>,
    /// PriorityClass of the pods; empty: none.
    pub priority_class_name: String,
    /// A Kubernetes Affinity; `{}` when none.
    pub affinity: serde_json::Value,
    /// Extra labels on the pods, never in selectors.
    pub pod_labels: BTreeMap<String, String>,
    /// Extra labels on the component's Service, never in selectors.
    pub service_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StorageValues {
    /// pachd STORAGE_BACKEND: LOCAL, AMAZON, GOOGLE or MICROSOFT.
    pub backend: String,
    /// For LOCAL: the node directory holding the object store.
    pub local_host_path: String,
    /// For buckets: the bucket or container name.
    pub bucket: String,
    /// AWS region for AMAZON.
    pub region: String,
    /// Custom S3 endpoint (MinIO, emulators); empty for the cloud's own.
    pub endpoint: String,
    /// For MICROSOFT: the storage account holding the container
    /// (AZURE_STORAGE_ACCOUNT); empty for the other backends.
    pub account: String,
    /// Name of a user Secret with static credentials; empty: workload identity.
    pub credentials_secret: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EtcdValues {
    pub replicas: u32,
    pub size: String,
    pub storage_class: String,
    pub pod: PodValues,
}

#[derive(Debug, Clone, Serialize)]
pub struct PostgresValues {
    /// true: run PostgreSQL in the cluster; false: `host` is external.
    pub in_cluster: bool,
    pub size: String,
    pub storage_class: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub ssl_mode: String,
    /// pg-bouncer's authentication to the server: md5 or scram-sha-256.
    pub auth_type: String,
    /// Secret and key holding the password pachd and pg-bouncer use.
    pub password_secret: String,
    pub password_key: String,
    pub pod: PodValues,
}

#[derive(Debug, Clone, Serialize)]
pub struct PgBouncerValues {
    pub replicas: u32,
    pub max_connections: u32,
    pub pod: PodValues,
}

#[derive(Debug, Clone, Serialize)]
pub struct PachdValues {
    pub replicas: u32,
    pub service_type: String,
    pub service_annotations: BTreeMap<String, String>,
    pub log_level: String,
    pub metrics: bool,
    pub pachw_min_replicas: u32,
    pub pachw_max_replicas: u32,
    /// The `pachd-lb` LoadBalancer Service; none: not made.
    pub external_service: Option<ExternalServiceValues>,
    /// Secret with pachd's TLS certificate and key; empty: no TLS.
    pub tls_secret: String,
    pub pod: PodValues,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExternalServiceValues {
    /// Empty: the cloud picks the address.
    pub load_balancer_ip: String,
    pub api_grpc_port: u16,
    pub s3_gateway_port: u16,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaValues {
    pub secret: String,
    pub key: String,
    /// Where the Secret is mounted (and SSL_CERT_DIR points).
    pub dir: String,
}

/// Enterprise and auth, with every address and document pachd's start-up
/// reads already worked out (documents as JSON, which pachd reads as YAML).
#[derive(Debug, Clone, Serialize)]
pub struct EnterpriseValues {
    pub license_secret: String,
    pub auth: bool,
    /// Where AUTH_ROOT_TOKEN comes from: the user's Secret or `pachyderm-auth`.
    pub root_token_secret: String,
    /// Whether howdah keeps the root token in `pachyderm-auth`.
    pub own_root_token: bool,
    /// Where IDP_CONNECTORS comes from: the user's Secret or `pachyderm-identity`.
    pub idp_secret: String,
    /// The test login (admin/password) instead of real identity providers.
    pub mock_idp: bool,
    /// JSON of the identity providers when `mock_idp`.
    pub mock_idps: String,
    /// JSON of pachd's OIDC client configuration (AUTH_CONFIG).
    pub auth_config: String,
    /// JSON of the identity service's configuration (IDP_CONFIG).
    pub identity_config: String,
    /// JSON of the OIDC clients (IDP_CLIENTS).
    pub oidc_clients: String,
    /// JSON of the cluster role bindings; empty: none.
    pub cluster_role_bindings: String,
    pub dex_credentials_secret: String,
    /// The console's login settings.
    pub issuer_uri: String,
    pub browser_issuer_uri: String,
    pub console_redirect_uri: String,
    pub console_client_id: String,
    pub pachd_client_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngressValues {
    pub host: String,
    /// Empty: the cluster's default IngressClass.
    pub class_name: String,
    pub annotations: BTreeMap<String, String>,
    /// Secret with the certificate; empty: plain HTTP.
    pub tls_secret: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsoleValues {
    pub enabled: bool,
    pub pod: PodValues,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProxyValues {
    pub enabled: bool,
    pub service_type: String,
    pub service_annotations: BTreeMap<String, String>,
    pub pod: PodValues,
}

/// Secrets the chart puts into Secret objects, already base64-encoded.
#[derive(Clone, Serialize)]
pub struct SecretValues {
    /// The in-cluster PostgreSQL password, base64.
    pub postgres_password_b64: String,
    /// howdah's Secret of per-stack keys, its digest key's name and value
    /// (base64).
    pub stack_key_secret: String,
    pub digest_key_name: String,
    pub digest_key_b64: String,
    /// pachd's CLUSTER_DEPLOYMENT_ID, base64.
    pub deployment_id_b64: String,
    /// Enterprise: the license server's shared secret, the root token,
    /// pachd's and the console's OAuth client secrets, base64.
    pub enterprise_secret_b64: String,
    pub root_token_b64: String,
    pub pachd_oauth_secret_b64: String,
    pub console_oauth_secret_b64: String,
    /// With static keys: the user's credentials Secret, key by key, values
    /// base64 as stored; copied into pachyderm-storage-secret. Empty with
    /// workload identity and when rendering offline.
    pub storage_credentials_b64: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValues(***)")
    }
}
