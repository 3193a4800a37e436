//! Rendering checks a user would notice: ownership, selectors, sizes,
//! storage backends, images, redaction, every supported version.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Value as Json};

use super::super::values::{
    ConsoleValues, EtcdValues, PachdValues, PgBouncerValues, PodValues, PostgresValues,
    ProxyValues, SecretValues, StorageValues,
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
        priority_class_name: String::new(),
        affinity: json!({}),
        pod_labels: BTreeMap::new(),
        service_labels: BTreeMap::new(),
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
        identity_pod_labels: BTreeMap::new(),
        outbound_proxy_env: Vec::new(),
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
            auth_type: "md5".into(),
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
            pachw_min_replicas: 0,
            pachw_max_replicas: 1,
            external_service: None,
            tls_secret: String::new(),
            pod: PodValues {
                resources: json!({"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}),
                ..pod()
            },
        },
        console: ConsoleValues {
            enabled: true,
            pod: pod(),
        },
        proxy: ProxyValues {
            enabled: true,
            service_type: "ClusterIP".into(),
            service_annotations: BTreeMap::new(),
            pod: pod(),
        },
        ingress: None,
        ca_certificates: None,
        enterprise: None,
        secrets: SecretValues {
            postgres_password_b64: MARKER_B64.into(),
            stack_key_secret: "howdah-stack-keys".into(),
            digest_key_name: "storage-digest-key".into(),
            digest_key_b64: MARKER_B64.into(),
            deployment_id_b64: MARKER_B64.into(),
            enterprise_secret_b64: MARKER_B64.into(),
            root_token_b64: MARKER_B64.into(),
            pachd_oauth_secret_b64: MARKER_B64.into(),
            console_oauth_secret_b64: MARKER_B64.into(),
            storage_credentials_b64: BTreeMap::new(),
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
    // pachyderm-proxy runs the upstream Envoy image the chart pins.
    assert_eq!(
        info.images.proxy.qualified(""),
        "envoyproxy/envoy-distroless:v1.29.3"
    );
    assert_eq!(version_info("2.9.7").unwrap().images.proxy.tag, "v1.27.4");
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

/// The proxy's Envoy configuration, parsed from its ConfigMap.
fn envoy_config(objects: &[RenderedObject]) -> Json {
    let config = find(objects, "ConfigMap", "pachyderm-proxy-config");
    let text = config.object["data"]["envoy.yaml"]
        .as_str()
        .expect("envoy.yaml is text");
    serde_norway::from_str(text).expect("envoy.yaml is YAML")
}

/// (prefix or separated prefix, cluster) of the HTTP listener's routes, in
/// the order Envoy tries them, and the address each cluster dials.
fn envoy_routes(config: &Json) -> (Vec<(String, String)>, BTreeMap<String, String>) {
    let listener = &config["static_resources"]["listeners"][0];
    assert_eq!(listener["address"]["socket_address"]["port_value"], 8080);
    let manager = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    let routes = manager["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| {
            let m = &r["match"];
            let mut what = m["prefix"]
                .as_str()
                .or(m["path_separated_prefix"].as_str())
                .unwrap_or_default()
                .to_string();
            if m.get("grpc").is_some() {
                what.push_str(" (grpc)");
            }
            if let Some(h) = m["headers"][0]["string_match"]["prefix"].as_str() {
                what.push_str(&format!(" (authorization: {h})"));
            }
            (
                what,
                r["route"]["cluster"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let clusters = config["static_resources"]["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .map(|c| {
            let address = &c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
                ["address"]["socket_address"];
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                format!(
                    "{}:{}",
                    address["address"].as_str().unwrap_or_default(),
                    address["port_value"]
                ),
            )
        })
        .collect();
    (routes, clusters)
}

#[test]
fn the_proxy_sends_file_paths_to_pachds_http_port_and_the_rest_to_the_console() {
    let objects = render(&sample_values()).unwrap();
    let (routes, clusters) = envoy_routes(&envoy_config(&objects));
    let route = |what: &str| {
        routes
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, c)| c.as_str())
            .unwrap_or_else(|| panic!("no route {what}: {routes:?}"))
    };
    for path in ["/pfs", "/archive/", "/api/", "/jsonschema/"] {
        assert_eq!(route(path), "pachd-http", "{path}");
    }
    assert_eq!(route("/ (grpc)"), "pachd-grpc");
    assert_eq!(route("/ (authorization: AWS4-HMAC-SHA256)"), "pachd-s3");
    // The catch-all is the console's, and it comes last.
    assert_eq!(
        routes.last().map(|(w, c)| (w.as_str(), c.as_str())),
        Some(("/", "console"))
    );
    let ns = "pachyderm-demo.svc.cluster.local";
    assert_eq!(
        clusters["pachd-http"],
        format!("pachd-proxy-backend.{ns}:1659")
    );
    assert_eq!(
        clusters["pachd-grpc"],
        format!("pachd-proxy-backend.{ns}:1650")
    );
    assert_eq!(
        clusters["pachd-s3"],
        format!("pachd-proxy-backend.{ns}:1600")
    );
    assert_eq!(
        clusters["console"],
        format!("console-proxy-backend.{ns}:4000")
    );

    // Each backend port is one the backend Service has, aimed at a port
    // pachd's (or the console's) container names.
    let pachd = container(find(&objects, "Deployment", "pachd"), "pachd");
    let backend = find(&objects, "Service", "pachd-proxy-backend");
    assert_eq!(backend.object["spec"]["clusterIP"], "None");
    assert_eq!(
        backend.object["spec"]["selector"],
        find(&objects, "Deployment", "pachd").object["spec"]["selector"]["matchLabels"]
    );
    for port in [1650, 1600, 1659] {
        let entry = backend.object["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == port)
            .unwrap_or_else(|| panic!("pachd-proxy-backend has no port {port}"));
        let named = pachd["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == entry["targetPort"])
            .unwrap_or_else(|| panic!("pachd names no port {}", entry["targetPort"]));
        assert_eq!(named["containerPort"], port);
    }
    let console = find(&objects, "Service", "console-proxy-backend");
    assert_eq!(console.object["spec"]["ports"][0]["port"], 4000);
    assert_eq!(
        console.object["spec"]["ports"][0]["targetPort"],
        "console-http"
    );
}

#[test]
fn the_proxy_is_a_deployment_with_a_service_like_every_component() {
    let mut values = sample_values();
    values.proxy.service_type = "NodePort".into();
    values.proxy.service_annotations = map(&[("example.com/lb", "internal")]);
    let objects = render(&values).unwrap();
    let proxy: Vec<&RenderedObject> = objects
        .iter()
        .filter(|o| o.component == Component::Proxy)
        .collect();
    let names: Vec<(&str, &str)> = proxy.iter().map(|o| (o.kind(), o.name())).collect();
    assert_eq!(
        names,
        [
            ("ConfigMap", "pachyderm-proxy-config"),
            ("Service", "pachd-proxy-backend"),
            ("Service", "console-proxy-backend"),
            ("Service", "pachyderm-proxy"),
            ("Deployment", "pachyderm-proxy"),
        ]
    );
    for o in &proxy {
        assert_eq!(o.object["metadata"]["labels"]["component"], "proxy");
        assert_eq!(o.object["metadata"]["labels"]["howdah.io/stack"], "demo");
        assert_eq!(o.namespace(), Some("pachyderm-demo"));
    }
    let service = find(&objects, "Service", "pachyderm-proxy");
    assert_eq!(service.object["spec"]["type"], "NodePort");
    assert_eq!(service.object["spec"]["ports"][0]["port"], 80);
    assert_eq!(service.object["spec"]["ports"][0]["nodePort"], 30080);
    assert_eq!(
        service.object["metadata"]["annotations"]["example.com/lb"],
        "internal"
    );
    let deployment = find(&objects, "Deployment", "pachyderm-proxy");
    assert_eq!(
        service.object["spec"]["selector"],
        deployment.object["spec"]["selector"]["matchLabels"]
    );
    let envoy = container(deployment, "envoy");
    assert_eq!(
        envoy["image"],
        format!("{REGISTRY}/envoyproxy/envoy-distroless:v1.29.3")
    );
    let http = envoy["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http-port");
    assert_eq!(http.map(|p| p["containerPort"].clone()), Some(json!(8080)));
    assert_eq!(envoy["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(envoy["securityContext"]["readOnlyRootFilesystem"], true);
    let pod = &deployment.object["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        pod["volumes"][0]["configMap"]["name"],
        "pachyderm-proxy-config"
    );
}

#[test]
fn a_changed_envoy_configuration_rolls_the_proxy_pods() {
    let digest = |values: &Values| {
        let objects = render(values).unwrap();
        find(&objects, "Deployment", "pachyderm-proxy").object["spec"]["template"]["metadata"]
            ["annotations"]["howdah.io/envoy-config-digest"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let values = sample_values();
    let first = digest(&values);
    assert_eq!(first.len(), 64);
    assert_eq!(digest(&values), first);
    let mut moved = sample_values();
    moved.namespace = "elsewhere".into();
    assert_ne!(digest(&moved), first);
}

#[test]
fn the_proxy_can_run_alone_and_be_left_out() {
    let mut values = sample_values();
    values.console.enabled = false;
    let objects = render(&values).unwrap();
    assert!(objects.iter().any(|o| o.name() == "pachyderm-proxy"));
    assert!(objects.iter().all(|o| o.component != Component::Console));

    let mut values = sample_values();
    values.proxy.enabled = false;
    let objects = render(&values).unwrap();
    assert!(objects.iter().all(|o| o.component != Component::Proxy));
    // The console then takes its subscriptions on its own port; behind the
    // proxy on the address the page came from.
    let console = container(find(&objects, "Deployment", "console"), "console");
    assert_eq!(
        env_value(console, "REACT_APP_RUNTIME_SUBSCRIPTIONS_PREFIX").as_deref(),
        Some(":4000/graphql")
    );
    let objects = render(&sample_values()).unwrap();
    let console = container(find(&objects, "Deployment", "console"), "console");
    assert_eq!(
        env_value(console, "REACT_APP_RUNTIME_SUBSCRIPTIONS_PREFIX"),
        None
    );
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
        Some("postgres.pachyderm-demo.svc.cluster.local")
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
        json!([
            {"secretRef": {"name": "pachyderm-storage-secret"}},
            {"secretRef": {"name": "pachyderm-deployment-id-secret"}},
            {"configMapRef": {"name": "pachd-config", "optional": true}}
        ])
    );
}

#[test]
fn static_keys_are_copied_into_the_secret_workers_read() {
    let mut values = sample_values();
    values.storage.credentials_secret = "s3-keys".into();
    values.storage.endpoint = "http://minio.storage:9000".into();
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    values.secrets.storage_credentials_b64 = BTreeMap::from([
        ("AWS_ACCESS_KEY_ID".to_string(), b64("AKIDEXAMPLE")),
        ("AWS_SECRET_ACCESS_KEY".to_string(), b64("s3cr3t")),
    ]);
    let objects = render(&values).unwrap();
    assert!(objects.iter().all(|o| o.name() != "s3-keys"));
    let secret = find(&objects, "Secret", "pachyderm-storage-secret");
    assert_eq!(
        decoded(secret, "CUSTOM_ENDPOINT").as_deref(),
        Some("http://minio.storage:9000")
    );
    assert_eq!(
        decoded(secret, "AWS_ACCESS_KEY_ID").as_deref(),
        Some("AKIDEXAMPLE")
    );
    assert_eq!(
        decoded(secret, "AWS_SECRET_ACCESS_KEY").as_deref(),
        Some("s3cr3t")
    );
    for deployment in ["pachd", "pachw"] {
        let c = container(find(&objects, "Deployment", deployment), deployment);
        // One source for pachd, pachw and (by pachd's fixed name) workers.
        assert_eq!(
            c["envFrom"][0],
            json!({"secretRef": {"name": "pachyderm-storage-secret"}})
        );
        assert_eq!(
            env_value(c, "STORAGE_URL").as_deref(),
            Some("s3://demo-pachyderm-data?region=eu-west-1&endpoint=http%3A%2F%2Fminio.storage%3A9000")
        );
    }
}

#[test]
fn a_google_key_file_is_read_where_the_storage_secret_is_mounted() {
    let mut values = sample_values();
    values.storage.backend = "GOOGLE".into();
    values.storage.credentials_secret = "gcs-key".into();
    values.secrets.storage_credentials_b64 = BTreeMap::from([(
        "GOOGLE_CRED".to_string(),
        base64::engine::general_purpose::STANDARD.encode("{}"),
    )]);
    let objects = render(&values).unwrap();
    let secret = find(&objects, "Secret", "pachyderm-storage-secret");
    assert_eq!(
        decoded(secret, "GOOGLE_APPLICATION_CREDENTIALS").as_deref(),
        Some("/pachyderm-storage-secret/GOOGLE_CRED")
    );
    let pachd = container(find(&objects, "Deployment", "pachd"), "pachd");
    assert!(pachd["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["mountPath"] == "/pachyderm-storage-secret"));
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

/// Every field the chart renders exists in the Kubernetes API: a typo
/// would pass the e2e fake (it keeps unknown fields) but a real API server
/// rejects it under server-side apply ("field not declared in schema").
/// Each object goes through its typed k8s-openapi struct and back; any
/// field that does not survive the trip is unknown to the API.
#[test]
fn every_rendered_field_is_known_to_the_kubernetes_api() {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};

    fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Json) -> Json {
        let typed: T = serde_json::from_value(object.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", object["metadata"]["name"]));
        serde_json::to_value(typed).unwrap()
    }

    fn missing(path: &str, want: &Json, got: &Json, out: &mut Vec<String>) {
        match (want, got) {
            (Json::Object(w), Json::Object(g)) => {
                for (k, v) in w {
                    match g.get(k) {
                        Some(gv) => missing(&format!("{path}.{k}"), v, gv, out),
                        None => out.push(format!("{path}.{k}")),
                    }
                }
            }
            (Json::Array(w), Json::Array(g)) => {
                for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                    missing(&format!("{path}[{i}]"), wv, gv, out);
                }
            }
            _ => {}
        }
    }

    // The check itself notices a misspelt field.
    let planted = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 1, "tragetPort": 2}]}});
    let mut found = Vec::new();
    missing(
        "Service/x",
        &planted,
        &round_trip::<Service>(&planted),
        &mut found,
    );
    assert_eq!(found, vec!["Service/x.spec.ports[0].tragetPort"]);

    let mut configurations = vec![sample_values()];
    let mut external = sample_values();
    external.postgres.in_cluster = false;
    external.postgres.host = "db.example.com".into();
    configurations.push(external);
    let mut amazon = sample_values();
    amazon.storage.backend = "AMAZON".into();
    amazon.storage.bucket = "b".into();
    amazon.storage.region = "us-east-1".into();
    amazon.storage.local_host_path = String::new();
    configurations.push(amazon);

    let mut unknown = Vec::new();
    for values in &configurations {
        for r in render(values).unwrap() {
            let o = &r.object;
            let back = match o["kind"].as_str().unwrap() {
                "Deployment" => round_trip::<Deployment>(o),
                "StatefulSet" => round_trip::<StatefulSet>(o),
                "Service" => round_trip::<Service>(o),
                "ConfigMap" => round_trip::<ConfigMap>(o),
                "Secret" => round_trip::<Secret>(o),
                "ServiceAccount" => round_trip::<ServiceAccount>(o),
                "Namespace" => round_trip::<Namespace>(o),
                "Role" => round_trip::<Role>(o),
                "RoleBinding" => round_trip::<RoleBinding>(o),
                other => panic!("no typed check for {other}"),
            };
            let name = format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            );
            missing(&name, o, &back, &mut unknown);
        }
    }
    unknown.sort();
    unknown.dedup();
    assert!(
        unknown.is_empty(),
        "fields the Kubernetes API does not have: {unknown:#?}"
    );
}

#[test]
fn node_ports_are_the_service_ports_upstream_pins() {
    let mut values = sample_values();
    values.pachd.service_type = "NodePort".into();
    let objects = render(&values).unwrap();
    let ports = find(&objects, "Service", "pachd").object["spec"]["ports"].clone();
    for p in ports.as_array().unwrap() {
        assert_eq!(p["nodePort"], p["port"], "{p}");
    }
    let objects = render(&sample_values()).unwrap();
    let ports = find(&objects, "Service", "pachd").object["spec"]["ports"].clone();
    assert!(ports
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p.get("nodePort").is_none()));
}

#[test]
fn pg_bouncer_authenticates_the_way_the_server_wants() {
    let mut values = sample_values();
    values.postgres.in_cluster = false;
    values.postgres.host = "db.example.com".into();
    values.postgres.auth_type = "scram-sha-256".into();
    let objects = render(&values).unwrap();
    let bouncer = container(find(&objects, "Deployment", "pg-bouncer"), "pg-bouncer");
    assert_eq!(
        env_value(bouncer, "PGBOUNCER_AUTH_TYPE").as_deref(),
        Some("scram-sha-256")
    );
    assert_eq!(
        env_value(bouncer, "POSTGRESQL_HOST").as_deref(),
        Some("db.example.com")
    );
}

/// `pachctl enterprise pause` works as with the chart: it writes
/// `MODE=paused` into the ConfigMap `pachd-config` and rolls pachd, which
/// must read its mode from there (Deployment/pachd
/// spec.template.spec.containers[0].args `--mode $(MODE)`, envFrom
/// configMapRef pachd-config optional) and know what unpause restores
/// (env UNPAUSED_MODE=full). pachw keeps its fixed mode but reads the
/// ConfigMap too, as the chart has it.
#[test]
fn pachd_reads_its_mode_from_the_optional_pachd_config_map() {
    let objects = render(&sample_values()).unwrap();
    let pachd = container(find(&objects, "Deployment", "pachd"), "pachd");
    assert_eq!(pachd["args"], json!(["--mode", "$(MODE)"]));
    assert_eq!(env_value(pachd, "UNPAUSED_MODE").as_deref(), Some("full"));
    let pachw = container(find(&objects, "Deployment", "pachw"), "pachw");
    assert_eq!(pachw["args"], json!(["--mode", "pachw"]));
    assert!(env(pachw, "UNPAUSED_MODE").is_none());
    for c in [pachd, pachw] {
        let env_from = c["envFrom"].as_array().expect("envFrom");
        assert!(
            env_from.contains(&json!({"configMapRef": {"name": "pachd-config", "optional": true}})),
            "{} envFrom: {env_from:?}",
            c["name"]
        );
    }
    // howdah never makes the ConfigMap: applying it would undo a pause.
    assert!(!objects
        .iter()
        .any(|o| o.kind() == "ConfigMap" && o.name() == "pachd-config"));
}
