//! The rules serde cannot express: names, versions, quantities, storage
//! combinations, scheduling settings. Every rule runs and every problem is
//! kept, each located at the key or value it is about, so one run of
//! `howdah plan` lists everything to fix.

use super::bucket_url::check_bucket_url;
use super::errors::SpecProblem;
use super::location::{locate, Part, YamlPath};
use super::names::{dns1123_label, dns1123_subdomain};
use super::quantity::{check_quantity, QuantityUse};
use super::state_url::StateUrl;
use super::structural::{did_you_mean, position_of};
use super::supported_versions;
use super::types::{BucketStorage, Identity, Pachyderm, Stack, StateConfig, Storage, Target};

const LOG_LEVELS: &[&str] = &["debug", "info", "error"];
const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];
const ETCD_MEMBERS: &[u32] = &[1, 3, 5];
/// Long enough for real names, short enough for every name derived from
/// it: an IAM role `howdah-<name>-<suffix>` (at most 64) leaves 17
/// characters for a suffix such as `-ebs-csi`, an EKS cluster name may have
/// 100, a Kubernetes label value 63.
const MAX_NAME: usize = 40;

/// Every semantic problem in a stack that serde accepted.
/// Node directories a hostPath must not be: the system's own (a directory
/// below them, such as /var/pachyderm, is fine).
const SYSTEM_DIRECTORIES: &[&str] = &[
    "bin",
    "boot",
    "dev",
    "etc",
    "home",
    "lib",
    "lib64",
    "opt",
    "proc",
    "root",
    "run",
    "sbin",
    "srv",
    "sys",
    "tmp",
    "usr",
    "var",
    "var/lib",
    "var/lib/kubelet",
    "var/lib/docker",
    "var/lib/containerd",
    "var/log",
    "var/run",
];

pub(crate) fn validate(stack: &Stack, source: &str) -> Vec<SpecProblem> {
    let mut check = Checker {
        source,
        problems: Vec::new(),
    };
    check.name(&stack.name);
    check.target(&stack.target);
    check.cluster(stack);
    if stack.target.is_cloud() {
        check.cloud_storage(&stack.storage, stack.pachyderm.identity);
    } else {
        check.storage(&stack.storage);
    }
    check.pachyderm(stack);
    check.labels(&YamlPath::of(&["tags"]), &stack.tags, true);
    if let Some(state) = &stack.state {
        check.state(state);
    }
    check.problems
}

pub(super) struct Checker<'s> {
    source: &'s str,
    problems: Vec<SpecProblem>,
}

impl Checker<'_> {
    pub(super) fn report(
        &mut self,
        path: &YamlPath,
        part: Part,
        message: String,
        help: Option<String>,
    ) {
        let at = position_of(self.source, path, part);
        self.problems.push(SpecProblem {
            line: at.line,
            column: at.column,
            path: path.to_string(),
            message,
            help,
        });
    }

    fn name(&mut self, name: &str) {
        if let Some((message, help)) = stack_name_problem(name) {
            self.report(&YamlPath::of(&["name"]), Part::Value, message, help);
        }
    }

    fn target(&mut self, target: &Target) {
        match target {
            Target::Kubeconfig(kubeconfig) => {
                let base = YamlPath::of(&["target", "kubeconfig"]);
                for (key, value, default) in [
                    ("context", &kubeconfig.context, "the current context"),
                    ("path", &kubeconfig.path, "$KUBECONFIG or ~/.kube/config"),
                ] {
                    if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                        self.report(
                            &base.key(key),
                            Part::Value,
                            format!("`{key}` is empty"),
                            Some(format!("omit it to use {default}")),
                        );
                    }
                }
                if let Some(file) = &kubeconfig.path {
                    self.file_path(&base.key("path"), file);
                }
            }
            Target::Aws(aws) => self.aws_target(aws),
        }
    }

    /// Storage on the kubeconfig target: a directory on the node, or a
    /// bucket that already exists.
    fn storage(&mut self, storage: &Storage) {
        let path = YamlPath::of(&["storage"]);
        match (&storage.local, &storage.bucket) {
            (Some(_), Some(_)) => self.report(
                &path,
                Part::Key,
                "`storage` must have exactly one of `local` and `bucket`, found both".into(),
                Some("remove one of them".into()),
            ),
            (None, None) => self.report(
                &path,
                Part::Key,
                "`storage` must have exactly one of `local` and `bucket`, found neither".into(),
                Some("add `local: {}` for a volume on the node, or `bucket: {url: …}`".into()),
            ),
            _ => {}
        }
        if let Some(local) = &storage.local {
            self.host_path(&path.key("local").key("hostPath"), &local.host_path);
        }
        if let Some(bucket) = &storage.bucket {
            self.bucket(&path.key("bucket"), bucket);
        }
    }

    /// The node directory pachd and every pipeline worker mount read-write.
    fn host_path(&mut self, path: &YamlPath, host_path: &str) {
        let refuse = |message: String| (message, Some("e.g. /var/pachyderm/".to_string()));
        let parts: Vec<&str> = host_path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let problem = if !host_path.starts_with('/') {
            Some(refuse(format!(
                "hostPath {host_path:?} must be an absolute path"
            )))
        } else if parts.contains(&"..") {
            Some(refuse(format!(
                "hostPath {host_path:?} must not contain `..`"
            )))
        } else if parts.is_empty() {
            Some(refuse(
                "hostPath / would mount the node's whole filesystem, read-write, into pachd and \
                 every pipeline worker"
                    .into(),
            ))
        } else if SYSTEM_DIRECTORIES.contains(&parts.join("/").as_str()) {
            Some(refuse(format!(
                "hostPath {host_path:?} is a system directory of the node: pachd and every \
                 pipeline worker would write into it; give a directory of its own"
            )))
        } else {
            None
        };
        if let Some((message, help)) = problem {
            self.report(path, Part::Value, message, help);
        }
    }

    fn bucket(&mut self, path: &YamlPath, bucket: &BucketStorage) {
        if bucket.url.is_none() {
            self.report(
                path,
                Part::Key,
                "`url` is required on the kubeconfig target: howdah does not create \
                 buckets there"
                    .into(),
                Some("e.g. url: s3://my-bucket?region=us-east-1".into()),
            );
        }
        if bucket.name.is_some() {
            self.report(
                &path.key("name"),
                Part::Key,
                "`name` is for cloud targets, where howdah creates the bucket; on the \
                 kubeconfig target the bucket is given by `url`"
                    .into(),
                Some("remove `name` and give the existing bucket as `url`".into()),
            );
        }
        if let Some(url) = &bucket.url {
            if let Err((message, help)) = check_bucket_url(url) {
                self.report(&path.key("url"), Part::Value, message, help);
            }
        }
        if let Some(secret) = &bucket.credentials_secret {
            self.credentials_secret(&path.key("credentialsSecret"), secret);
        }
    }

    /// The user's Secret with static keys for the bucket.
    pub(super) fn credentials_secret(&mut self, path: &YamlPath, secret: &str) {
        self.secret_name(path, secret);
        if secret == "pachyderm-storage-secret" {
            self.report(
                path,
                Part::Value,
                "`pachyderm-storage-secret` is the Secret howdah writes for pachd and its workers"
                    .into(),
                Some(
                    "name the Secret holding your keys something else; howdah copies its keys in"
                        .into(),
                ),
            );
        }
    }

    pub(super) fn secret_name(&mut self, path: &YamlPath, name: &str) {
        if let Some(problem) = dns1123_subdomain(name) {
            self.report(
                path,
                Part::Value,
                format!("invalid Secret name {name:?}: {problem}"),
                None,
            );
        }
    }

    fn pachyderm(&mut self, stack: &Stack) {
        let p = &stack.pachyderm;
        let base = YamlPath::of(&["pachyderm"]);
        self.version(&base.key("version"), &p.version);
        if let Some(problem) = dns1123_label(&p.namespace, 63) {
            self.report(
                &base.key("namespace"),
                Part::Value,
                format!("invalid namespace {:?}: {problem}", p.namespace),
                None,
            );
        }
        self.identity(&base.key("identity"), p, stack);
        self.service_accounts(&base.key("serviceAccounts"), stack);
        self.image_registry(&base.key("imageRegistry"), &p.image_registry);
        for (i, secret) in p.image_pull_secrets.iter().enumerate() {
            self.secret_name(&base.key("imagePullSecrets").index(i), secret);
        }
        self.labels(&base.key("nodeSelector"), &p.node_selector, false);
        self.tolerations(&base.key("tolerations"), &p.tolerations);
        self.annotation_keys(&base.key("annotations"), &p.annotations);
        if let Some(class) = &p.priority_class_name {
            self.priority_class(&base.key("priorityClassName"), class);
        }
        if let Some(affinity) = &p.affinity {
            self.affinity(&base.key("affinity"), affinity);
        }
        self.own_labels(&base.key("podLabels"), &p.pod_labels);
        if let Some(proxy) = &p.outbound_proxy {
            self.outbound_proxy(&base.key("outboundProxy"), proxy);
        }
        if let Some(ingress) = &p.ingress {
            self.ingress(&base.key("ingress"), ingress, p);
        }
        if let Some(ca) = &p.ca_certificates {
            self.ca_certificates(&base.key("caCertificates"), ca);
        }
        if let Some(enterprise) = &p.enterprise {
            self.enterprise(&base.key("enterprise"), enterprise, p);
        }

        let etcd = base.key("etcd");
        self.quantity(&etcd.key("size"), &p.etcd.size, QuantityUse::VolumeSize);
        self.storage_class(&etcd.key("storageClass"), &p.etcd.storage_class);
        if !ETCD_MEMBERS.contains(&p.etcd.replicas) {
            self.report(
                &etcd.key("replicas"),
                Part::Value,
                format!(
                    "etcd needs an odd number of members for a quorum: 1, 3 or 5, not {}",
                    p.etcd.replicas
                ),
                None,
            );
        }
        let e = &p.etcd;
        self.workload(&etcd, &e.settings());

        let postgres = base.key("postgres");
        self.quantity(
            &postgres.key("size"),
            &p.postgres.size,
            QuantityUse::VolumeSize,
        );
        self.storage_class(&postgres.key("storageClass"), &p.postgres.storage_class);
        if let Some(external) = &p.postgres.external {
            self.external_postgres(&postgres.key("external"), external);
            // A value other than the default, written beside `external`
            // (the default may be written: serialized stacks carry it).
            let default = super::types::Postgres::default();
            for (key, changed) in [
                ("size", p.postgres.size != default.size),
                (
                    "storageClass",
                    p.postgres.storage_class != default.storage_class,
                ),
            ] {
                let written = postgres.key(key);
                if changed && locate(self.source, &written, Part::Key, 0).is_some() {
                    self.report(
                        &written,
                        Part::Key,
                        format!(
                            "`{key}` is for the database howdah runs in the cluster; with \
                             `external` there is none, so it would be ignored"
                        ),
                        Some(format!("remove `{key}`, or remove `external`")),
                    );
                }
            }
        }
        let pg = &p.postgres;
        self.workload(&postgres, &pg.settings());

        let bouncer = base.key("pgBouncer");
        self.at_least_one(&bouncer.key("replicas"), p.pg_bouncer.replicas);
        self.at_least_one(&bouncer.key("maxConnections"), p.pg_bouncer.max_connections);
        let b = &p.pg_bouncer;
        self.workload(&bouncer, &b.settings());

        let pachd = base.key("pachd");
        self.at_least_one(&pachd.key("replicas"), p.pachd.replicas);
        // On a cloud target `local` is refused outright (`cloud_storage`).
        if p.pachd.replicas > 1 && stack.storage.local.is_some() && !stack.target.is_cloud() {
            self.report(
                &pachd.key("replicas"),
                Part::Value,
                format!(
                    "pachd must run as 1 replica with local storage (a hostPath volume on one \
                     node), not {}",
                    p.pachd.replicas
                ),
                Some("use a bucket for more replicas, or set replicas: 1".into()),
            );
        }
        self.one_of(
            &pachd.key("logLevel"),
            "log level",
            &p.pachd.log_level,
            LOG_LEVELS,
        );
        self.annotation_keys(
            &pachd.key("serviceAnnotations"),
            &p.pachd.service_annotations,
        );
        let d = &p.pachd;
        self.workload(&pachd, &d.settings());
        if let Some(service) = &d.external_service {
            self.external_service(&pachd.key("externalService"), service);
        }
        if let Some(tls) = &d.tls {
            self.secret_name(&pachd.key("tls").key("secret"), &tls.secret);
        }
        let pachw = pachd.key("pachw");
        self.at_least_one(&pachw.key("maxReplicas"), d.pachw.max_replicas);
        if d.pachw.min_replicas > d.pachw.max_replicas {
            self.report(
                &pachw.key("minReplicas"),
                Part::Value,
                format!(
                    "minReplicas {} is above maxReplicas {}",
                    d.pachw.min_replicas, d.pachw.max_replicas
                ),
                Some("pachd scales pachw between the two: min ≤ max".into()),
            );
        }

        let console = base.key("console");
        let c = &p.console;
        self.workload(&console, &c.settings());

        let proxy = base.key("proxy");
        self.annotation_keys(
            &proxy.key("serviceAnnotations"),
            &p.proxy.service_annotations,
        );
        self.workload(&proxy, &p.proxy.settings());
    }

    fn version(&mut self, path: &YamlPath, version: &str) {
        let supported = supported_versions();
        if supported.iter().any(|v| v == version) {
            return;
        }
        let trimmed = version.trim_start_matches(['v', 'V']);
        let help = if supported.iter().any(|v| v == trimmed) {
            Some(format!("drop the leading v: {trimmed}"))
        } else if let Some(full) = supported
            .iter()
            .rfind(|v| v.starts_with(&format!("{trimmed}.")))
        {
            Some(format!("give the full version, e.g. {full}"))
        } else {
            // A patch this howdah does not know: point at its line's newest.
            let line = trimmed.rsplit_once('.').map_or(trimmed, |(line, _)| line);
            supported
                .iter()
                .rfind(|v| v.starts_with(&format!("{line}.")))
                .map(|newest| format!("the newest supported {line} release is {newest}"))
        };
        self.report(
            path,
            Part::Value,
            format!(
                "unsupported Pachyderm version {version:?}: this howdah supports {}",
                summarize_versions(&supported)
            ),
            help,
        );
    }

    fn identity(&mut self, path: &YamlPath, p: &Pachyderm, stack: &Stack) {
        let Some(bucket) = &stack.storage.bucket else {
            if p.identity == Identity::Keys && stack.storage.local.is_some() {
                self.report(
                    path,
                    Part::Value,
                    "identity `keys` is how pachd signs in to a bucket; with `storage.local` \
                     there is no bucket, so the keys would never be used"
                        .into(),
                    Some("remove `identity: keys`, or use storage.bucket".into()),
                );
            }
            return;
        };
        // On a cloud target howdah makes the keys itself.
        if p.identity == Identity::Keys
            && bucket.credentials_secret.is_none()
            && !stack.target.is_cloud()
        {
            self.report(
                path,
                Part::Value,
                format!(
                    "identity `keys` on the {} target needs \
                     `storage.bucket.credentialsSecret`, the Secret holding the keys",
                    stack.target.name()
                ),
                Some("add credentialsSecret: <secret name> under storage.bucket".into()),
            );
        }
    }

    /// The typed identity settings, and the rule that a bucket reached with
    /// workload identity on an existing cluster names the identity: without
    /// it pachd silently falls back to the node's credentials.
    fn service_accounts(&mut self, path: &YamlPath, stack: &Stack) {
        let accounts = &stack.pachyderm.service_accounts;
        if stack.target.is_cloud() {
            if !accounts.is_empty() {
                self.report(
                    path,
                    Part::Key,
                    format!(
                        "`serviceAccounts` is for the kubeconfig target: on {} howdah makes \
                         the identity and annotates the service accounts itself",
                        stack.target.name()
                    ),
                    Some("remove `serviceAccounts`".into()),
                );
            }
            return;
        }
        let checks: [(&str, &Option<String>, FormatCheck); 3] = [
            ("awsRoleArn", &accounts.aws_role_arn, aws_role_arn_problem),
            (
                "gcpServiceAccount",
                &accounts.gcp_service_account,
                gcp_service_account_problem,
            ),
            (
                "azureClientId",
                &accounts.azure_client_id,
                azure_client_id_problem,
            ),
        ];
        for (key, value, check) in checks {
            if let Some(problem) = value.as_deref().and_then(check) {
                self.report(&path.key(key), Part::Value, problem, None);
            }
        }
        self.annotation_keys(&path.key("annotations"), &accounts.annotations);

        let Some(url) = stack.storage.bucket.as_ref().and_then(|b| b.url.as_deref()) else {
            return;
        };
        // A custom endpoint (MinIO, an emulator) is not the cloud's identity,
        // and a credentials Secret is a choice made another way.
        let has_secret = stack
            .storage
            .bucket
            .as_ref()
            .is_some_and(|b| b.credentials_secret.is_some());
        // A URL or storage block that is wrong already has its own problem.
        let settled = check_bucket_url(url).is_ok()
            && stack.storage.local.is_none()
            && stack
                .storage
                .bucket
                .as_ref()
                .is_some_and(|b| b.name.is_none());
        if !settled
            || stack.pachyderm.identity != Identity::Workload
            || url.contains("endpoint=")
            || has_secret
        {
            return;
        }
        let scheme = url.split("://").next().unwrap_or_default();
        let (wanted, value, cloud) = match scheme {
            "s3" => (
                "awsRoleArn",
                &accounts.aws_role_arn,
                "an EKS cluster (IRSA): the IAM role",
            ),
            "gs" => (
                "gcpServiceAccount",
                &accounts.gcp_service_account,
                "a GKE cluster: the Google service account",
            ),
            "azblob" => (
                "azureClientId",
                &accounts.azure_client_id,
                "an AKS cluster: the managed identity's client id",
            ),
            // An unknown scheme is refused by the URL's own check.
            _ => return,
        };
        if value.is_none() && accounts.annotations.is_empty() {
            self.report(
                &YamlPath::of(&["storage", "bucket", "url"]),
                Part::Value,
                format!(
                    "with identity `workload` nothing says which cloud identity pachd uses for \
                     {scheme}://: it would fall back to the node's credentials"
                ),
                Some(format!(
                    "on {cloud}, under pachyderm.serviceAccounts.{wanted}; or identity: keys \
                     with storage.bucket.credentialsSecret"
                )),
            );
        }
    }

    fn image_registry(&mut self, path: &YamlPath, registry: &str) {
        let problem = if registry.contains("://") {
            Some(("must not include a scheme", registry.split("://").nth(1)))
        } else if registry.chars().any(char::is_whitespace) {
            Some(("must not contain spaces", None))
        } else if registry.ends_with('/') {
            Some((
                "must not end with '/'",
                Some(registry.trim_end_matches('/')),
            ))
        } else {
            None
        };
        if let Some((problem, fixed)) = problem {
            self.report(
                path,
                Part::Value,
                format!("image registry {registry:?} {problem}"),
                fixed.map(|f| format!("write {f}")),
            );
        }
    }

    fn storage_class(&mut self, path: &YamlPath, class: &str) {
        if class.is_empty() {
            return;
        }
        if let Some(problem) = dns1123_subdomain(class) {
            self.report(
                path,
                Part::Value,
                format!("invalid StorageClass name {class:?}: {problem}"),
                None,
            );
        }
    }

    fn external_postgres(&mut self, path: &YamlPath, external: &super::types::ExternalPostgres) {
        for (key, value) in [
            ("host", &external.host),
            ("user", &external.user),
            ("database", &external.database),
        ] {
            if value.trim().is_empty() {
                self.report(
                    &path.key(key),
                    Part::Value,
                    format!("`{key}` must not be empty"),
                    None,
                );
            }
        }
        if !external.host.trim().is_empty() {
            if let Some((problem, help)) = host_problem(&external.host) {
                self.report(
                    &path.key("host"),
                    Part::Value,
                    format!("host {:?} {problem}", external.host),
                    help,
                );
            }
        }
        if external.port == 0 {
            self.report(
                &path.key("port"),
                Part::Value,
                "port 0 is not a port".into(),
                Some("PostgreSQL listens on 5432 by default".into()),
            );
        }
        self.secret_name(&path.key("passwordSecret"), &external.password_secret);
        self.one_of(
            &path.key("sslMode"),
            "sslMode",
            &external.ssl_mode,
            SSL_MODES,
        );
        self.one_of(
            &path.key("authType"),
            "authType",
            &external.auth_type,
            &["md5", "scram-sha-256"],
        );
    }

    fn at_least_one(&mut self, path: &YamlPath, value: u32) {
        if value == 0 {
            self.report(path, Part::Value, "must be at least 1".into(), None);
        }
    }

    pub(super) fn one_of(&mut self, path: &YamlPath, what: &str, value: &str, allowed: &[&str]) {
        if allowed.contains(&value) {
            return;
        }
        self.report(
            path,
            Part::Value,
            format!(
                "unknown {what} {value:?}: expected one of {}",
                allowed.join(", ")
            ),
            did_you_mean(value, allowed).map(|v| format!("did you mean {v}?")),
        );
    }

    pub(super) fn quantity(&mut self, path: &YamlPath, text: &str, usage: QuantityUse) {
        if let Err(error) = check_quantity(text, usage) {
            self.report(path, Part::Value, error.message, error.help);
        }
    }

    /// The one rule for paths of files on this machine: absolute, relative
    /// to the stack file's directory, or starting with `~/` (the home
    /// directory). Variables and `~user` are not expanded, so they are
    /// refused rather than taken literally. False if refused.
    fn file_path(&mut self, path: &YamlPath, file: &str) -> bool {
        let problem = if file.contains('$') {
            Some("howdah does not expand variables (`$…`) in the stack file")
        } else if file.starts_with('~') && file != "~" && !file.starts_with("~/") {
            Some("only `~/` is expanded (to your home directory), not `~user`")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.report(
                path,
                Part::Value,
                format!("path {file:?}: {problem}"),
                Some(
                    "write the path itself: absolute, relative to the stack file, or \
                     starting with ~/"
                        .into(),
                ),
            );
        }
        problem.is_none()
    }

    /// `state`: a file (`path`) or a shared location (`url`), not both.
    fn state(&mut self, state: &StateConfig) {
        match (&state.path, &state.url) {
            (Some(_), Some(_)) => self.report(
                &YamlPath::of(&["state"]),
                Part::Key,
                "`state` takes one of `path` and `url`, found both".into(),
                Some("keep `path` for a file on this machine, or `url` for shared state".into()),
            ),
            (None, None) => self.report(
                &YamlPath::of(&["state"]),
                Part::Key,
                "`state` needs `path` or `url`".into(),
                Some(
                    "e.g. `path: .howdah/my-stack.state.json`, or \
                     `url: s3://my-team-state/howdah?region=us-east-1`; or remove `state` \
                     for the default file"
                        .into(),
                ),
            ),
            _ => {}
        }
        if let Some(path) = &state.path {
            self.state_path(path);
        }
        if let Some(url) = &state.url {
            if let Err((message, help)) = StateUrl::parse(url) {
                self.report(&YamlPath::of(&["state", "url"]), Part::Value, message, help);
            }
        }
    }

    fn state_path(&mut self, state: &str) {
        let path = YamlPath::of(&["state", "path"]);
        let last = state.trim_end().rsplit(['/', '\\']).next().unwrap_or("");
        if !state.trim().is_empty() && !self.file_path(&path, state) {
            return;
        }
        let message = if state.trim().is_empty() {
            "`path` must not be empty".to_string()
        } else if state.ends_with(['/', '\\']) || last == "." || last == ".." {
            format!("state path {state:?} names a directory; it must name a file")
        } else {
            return;
        };
        self.report(
            &path,
            Part::Value,
            message,
            Some("e.g. .howdah/my-stack.state.json".into()),
        );
    }
}

/// What is wrong with a value of one format, if anything.
type FormatCheck = fn(&str) -> Option<String>;

fn aws_role_arn_problem(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && matches!(parts[1], "aws" | "aws-cn" | "aws-us-gov")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5]
            .strip_prefix("role/")
            .is_some_and(|name| !name.is_empty());
    (!ok).then(|| {
        format!(
            "{arn:?} is not an IAM role ARN: expected arn:aws:iam::<12-digit account>:role/<name>"
        )
    })
}

fn gcp_service_account_problem(email: &str) -> Option<String> {
    let (name, domain) = email.split_once('@').unwrap_or((email, ""));
    let project_domain = domain
        .strip_suffix(".iam.gserviceaccount.com")
        .is_some_and(|project| !project.is_empty());
    let ok = (6..=30).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && (project_domain || domain.ends_with(".gserviceaccount.com"));
    (!ok).then(|| {
        format!(
            "{email:?} is not a Google service account: expected \
             <name>@<project>.iam.gserviceaccount.com"
        )
    })
}

fn azure_client_id_problem(id: &str) -> Option<String> {
    let groups: Vec<&str> = id.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
    (!ok).then(|| {
        format!(
            "{id:?} is not a client id: expected a GUID like 00000000-0000-0000-0000-000000000000"
        )
    })
}

/// What is wrong with a host name or address where one belongs (not a
/// URL, no port, no path).
pub(super) fn host_problem(host: &str) -> Option<(String, Option<String>)> {
    if let Some((scheme, rest)) = host.split_once("://") {
        let bare = rest.split(['/', '?']).next().unwrap_or(rest);
        return Some((
            format!("is a URL ({scheme}://…); a host name or address belongs here"),
            Some(format!(
                "write host: {}, and the port separately",
                bare.rsplit_once(':').map_or(bare, |(h, _)| h)
            )),
        ));
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    if let Some((name, port)) = host.rsplit_once(':') {
        if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() {
            return Some((
                "includes a port".into(),
                Some(format!("write host: {name} and port: {port}")),
            ));
        }
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Some((
            "is not a host name (letters, digits, '-' and '.') or an IP address".into(),
            None,
        ));
    }
    None
}

/// `2.9.0 to 2.9.7, 2.10.0 to 2.10.7`: the supported versions by minor
/// line, oldest first as the charts list them.
fn summarize_versions(versions: &[String]) -> String {
    let line_of = |v: &str| {
        v.rsplit_once('.')
            .map_or(v.to_string(), |(l, _)| l.to_string())
    };
    let mut groups: Vec<(String, &str, &str)> = Vec::new();
    for version in versions {
        let line = line_of(version);
        match groups.last_mut() {
            Some((last, _, end)) if *last == line => *end = version,
            _ => groups.push((line, version, version)),
        }
    }
    groups
        .iter()
        .map(|(_, first, last)| {
            if first == last {
                (*first).to_string()
            } else {
                format!("{first} to {last}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What is wrong with a stack name and, when one can be made, a name to
/// use instead; `None` when the name is fine. The rule of `name:` in the
/// stack file, and of `howdah init --name`.
pub(crate) fn stack_name_problem(name: &str) -> Option<(String, Option<String>)> {
    let problem = dns1123_label(name, MAX_NAME).or_else(|| {
        (!name.starts_with(|c: char| c.is_ascii_lowercase()))
            .then(|| "must start with a letter".to_string())
    })?;
    let help = suggest_name(name).map(|n| format!("e.g. {n}"));
    Some((format!("invalid stack name {name:?}: {problem}"), help))
}

/// A valid stack name close to an invalid one, to show in the help.
fn suggest_name(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let trimmed = out
        .trim_start_matches(|c: char| c.is_ascii_digit() || c == '-')
        .chars()
        .take(MAX_NAME)
        .collect::<String>();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    (!trimmed.is_empty() && trimmed != name).then_some(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_summarized_by_line() {
        let versions: Vec<String> = ["2.9.0", "2.9.1", "2.9.7", "2.10.6", "2.11.0", "2.11.6"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            summarize_versions(&versions),
            "2.9.0 to 2.9.7, 2.10.6, 2.11.0 to 2.11.6"
        );
    }

    #[test]
    fn name_suggestions() {
        assert_eq!(suggest_name("My_Stack").as_deref(), Some("my-stack"));
        assert_eq!(suggest_name("1demo").as_deref(), Some("demo"));
        assert_eq!(suggest_name("---"), None);
    }
}
