//! Exposure, TLS, extra CA certificates and enterprise render where the
//! official chart (v2.11.6) puts them for the same values: each test names
//! the field paths a user of the chart relies on.

use serde_json::{json, Value};

use super::tests::{rendered, rendered_object};
use super::DesiredObject;

fn stack(pachyderm: &str) -> Vec<DesiredObject> {
    rendered(&format!(
        "name: t\ntarget:\n  kubeconfig: {{}}\npachyderm:\n{pachyderm}"
    ))
}

fn has(objects: &[DesiredObject], kind: &str, name: &str) -> bool {
    objects
        .iter()
        .any(|o| o.key.kind == kind && o.key.name == name)
}

fn container<'a>(object: &'a Value, name: &str) -> &'a Value {
    object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// The env entry `name` of a container, the test failing without it.
fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .and_then(|env| env.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("no env {name} in {}", container["name"]))
}

fn env_names(container: &Value) -> Vec<String> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str().map(str::to_string))
        .collect()
}

fn mount_path(container: &Value, volume: &str) -> Option<String> {
    container["volumeMounts"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == volume)?["mountPath"]
        .as_str()
        .map(str::to_string)
}

fn volume(pod_owner: &Value, name: &str) -> Option<Value> {
    pod_owner["spec"]["template"]["spec"]["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
        .cloned()
}

fn secret_text(objects: &[DesiredObject], name: &str, key: &str) -> String {
    let secret = rendered_object(objects, "Secret", name);
    super::secret_text(&secret, key).unwrap_or_else(|| panic!("Secret {name} has no {key}"))
}

/// A JSON document howdah keeps in a rendered Secret (pachd reads it as YAML).
fn secret_json(objects: &[DesiredObject], name: &str, key: &str) -> Value {
    serde_json::from_str(&secret_text(objects, name, key)).expect("json")
}

#[test]
fn external_service_is_the_charts_pachd_lb() {
    let objects = stack(
        "  pachd:\n    externalService:\n      loadBalancerIP: 203.0.113.10\n      \
         apiGRPCPort: 31650\n      annotations: {a.example/internal: \"true\"}\n",
    );
    let lb = rendered_object(&objects, "Service", "pachd-lb");
    assert_eq!(lb["spec"]["type"], "LoadBalancer");
    assert_eq!(lb["spec"]["loadBalancerIP"], "203.0.113.10");
    assert_eq!(lb["metadata"]["annotations"]["a.example/internal"], "true");
    assert_eq!(lb["spec"]["selector"]["app"], "pachd");
    let ports: Vec<(Value, Value, Value)> = lb["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].clone(),
                p["port"].clone(),
                p["targetPort"].clone(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            (json!("api-grpc-port"), json!(31650), json!("api-grpc-port")),
            (
                json!("s3gateway-port"),
                json!(30600),
                json!("s3gateway-port")
            ),
        ]
    );
    assert!(!has(&stack("  console: true\n"), "Service", "pachd-lb"));
}

#[test]
fn the_ingress_routes_to_the_proxy_or_else_to_the_console_and_login() {
    let objects = stack(
        "  ingress:\n    host: p.example.com\n    tlsSecret: p-tls\n    \
         annotations: {nginx.ingress.kubernetes.io/proxy-body-size: \"0\"}\n",
    );
    let ingress = rendered_object(&objects, "Ingress", "pachyderm-proxy");
    assert_eq!(ingress["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(
        ingress["spec"]["tls"],
        json!([{"secretName": "p-tls", "hosts": ["p.example.com"]}])
    );
    assert_eq!(
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"],
        "0"
    );
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "p.example.com");
    assert_eq!(
        rule["http"]["paths"],
        json!([{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "pachyderm-proxy", "port": {"name": "http-port"}}}}])
    );
    assert!(ingress["spec"].get("ingressClassName").is_none());
    assert!(!has(&objects, "Ingress", "console"));

    let objects = stack("  proxy: false\n  ingress: {host: p.example.com, className: nginx}\n");
    let ingress = rendered_object(&objects, "Ingress", "console");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert!(ingress["spec"].get("tls").is_none());
    let routes: Vec<(Value, Value, Value)> = ingress["spec"]["rules"][0]["http"]["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .map(|p| {
            let service = &p["backend"]["service"];
            (
                p["path"].clone(),
                service["name"].clone(),
                service["port"]["name"].clone(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            (json!("/dex"), json!("pachd"), json!("identity-port")),
            (
                json!("/authorization-code/callback"),
                json!("pachd"),
                json!("oidc-port")
            ),
            (json!("/"), json!("console"), json!("console-http")),
        ]
    );
    assert!(!has(&objects, "Ingress", "pachyderm-proxy"));
}

#[test]
fn pachd_tls_mounts_the_secret_on_pachd_and_pachw_and_the_proxy_encrypts_to_it() {
    let objects = stack("  pachd:\n    tls: {secret: pachd-tls}\n");
    for name in ["pachd", "pachw"] {
        let deployment = rendered_object(&objects, "Deployment", name);
        assert_eq!(
            mount_path(container(&deployment, name), "pachd-tls-cert").as_deref(),
            Some("/pachd-tls-cert"),
            "{name}"
        );
        assert_eq!(
            volume(&deployment, "pachd-tls-cert").map(|v| v["secret"]["secretName"].clone()),
            Some(json!("pachd-tls")),
            "{name}"
        );
    }
    let envoy = |objects: &[DesiredObject]| -> Value {
        let config = rendered_object(objects, "ConfigMap", "pachyderm-proxy-config");
        envoy_yaml(config["data"]["envoy.yaml"].as_str().expect("config"))
    };
    let clusters = |config: &Value| -> Vec<(String, bool)> {
        config["static_resources"]["clusters"]
            .as_array()
            .expect("clusters")
            .iter()
            .map(|c| {
                let tls = c["transport_socket"]["name"] == "envoy.transport_sockets.tls";
                (c["name"].as_str().unwrap_or_default().to_string(), tls)
            })
            .collect()
    };
    let with = clusters(&envoy(&objects));
    let encrypted: Vec<&str> = with.iter().filter(|c| c.1).map(|c| c.0.as_str()).collect();
    assert_eq!(encrypted, ["pachd-grpc", "pachd-s3"]);
    let without = clusters(&envoy(&stack("  console: true\n")));
    assert!(without.iter().all(|c| !c.1), "{without:?}");
}

fn envoy_yaml(text: &str) -> Value {
    serde_norway::from_str(text).expect("envoy.yaml is YAML")
}

#[test]
fn ca_certificates_are_trusted_by_pachd_pachw_workers_and_the_console() {
    let objects = stack("  caCertificates: {secret: corp-ca, key: bundle.pem}\n");
    for name in ["pachd", "pachw"] {
        let deployment = rendered_object(&objects, "Deployment", name);
        let c = container(&deployment, name);
        assert_eq!(
            env(c, "SSL_CERT_DIR")["value"],
            "/howdah-ca-certs",
            "{name}"
        );
        assert_eq!(
            mount_path(c, "ca-certificates").as_deref(),
            Some("/howdah-ca-certs")
        );
        assert_eq!(
            volume(&deployment, "ca-certificates").map(|v| v["secret"]["secretName"].clone()),
            Some(json!("corp-ca"))
        );
    }
    // pachd mounts TLS_CERT_SECRET_NAME at SSL_CERT_DIR in workers' sidecars.
    let pachd = rendered_object(&objects, "Deployment", "pachd");
    assert_eq!(
        env(container(&pachd, "pachd"), "TLS_CERT_SECRET_NAME")["value"],
        "corp-ca"
    );
    let console = rendered_object(&objects, "Deployment", "console");
    let c = container(&console, "console");
    assert_eq!(
        env(c, "NODE_EXTRA_CA_CERTS")["value"],
        "/howdah-ca-certs/bundle.pem"
    );
    assert_eq!(
        mount_path(c, "ca-certificates").as_deref(),
        Some("/howdah-ca-certs")
    );
    let plain = stack("  console: true\n");
    let pachd = rendered_object(&plain, "Deployment", "pachd");
    assert!(!env_names(container(&pachd, "pachd")).contains(&"SSL_CERT_DIR".to_string()));
}

#[test]
fn enterprise_sets_the_env_pachd_bootstraps_from_as_the_chart_does() {
    let objects = stack("  enterprise: {licenseSecret: lic}\n");
    let pachd = rendered_object(&objects, "Deployment", "pachd");
    let c = container(&pachd, "pachd");
    let from = |name: &str| -> (String, String, String) {
        let source = &env(c, name)["valueFrom"];
        let (kind, r) = if source["secretKeyRef"].is_object() {
            ("secret", &source["secretKeyRef"])
        } else {
            ("configMap", &source["configMapKeyRef"])
        };
        (
            kind.to_string(),
            r["name"].as_str().unwrap_or_default().to_string(),
            r["key"].as_str().unwrap_or_default().to_string(),
        )
    };
    let want = [
        ("LICENSE_KEY", "secret", "lic", "enterprise-license-key"),
        (
            "IDP_CONNECTORS",
            "secret",
            "pachyderm-identity",
            "upstream-idps",
        ),
        (
            "IDP_CONFIG",
            "configMap",
            "pachyderm-identity-config",
            "identity-config",
        ),
        (
            "ENTERPRISE_SECRET",
            "secret",
            "pachyderm-enterprise",
            "enterprise-secret",
        ),
        ("AUTH_ROOT_TOKEN", "secret", "pachyderm-auth", "root-token"),
        ("AUTH_CONFIG", "secret", "pachyderm-auth", "auth-config"),
        (
            "AUTH_CLIENT_SECRET",
            "secret",
            "pachyderm-auth",
            "pachd-oauth-client-secret",
        ),
        (
            "IDP_CLIENTS",
            "configMap",
            "pachyderm-identity-config",
            "oidc-clients",
        ),
        (
            "AUTH_CLUSTER_RBAC",
            "secret",
            "pachyderm-auth",
            "cluster-role-bindings",
        ),
        (
            "CONSOLE_OAUTH_SECRET",
            "secret",
            "pachyderm-console-secret",
            "OAUTH_CLIENT_SECRET",
        ),
    ];
    for (name, kind, object, key) in want {
        assert_eq!(
            from(name),
            (kind.to_string(), object.to_string(), key.to_string()),
            "{name}"
        );
    }
    assert_eq!(env(c, "ACTIVATE_AUTH")["value"], "true");
    assert_eq!(env(c, "CONSOLE_OAUTH_ID")["value"], "console");
    // The chart's order: the license before auth.
    let names = env_names(c);
    let at = |n: &str| names.iter().position(|x| x == n).expect(n);
    assert!(at("LICENSE_KEY") < at("ENTERPRISE_SECRET"));
    assert!(at("ENTERPRISE_SECRET") < at("ACTIVATE_AUTH"));

    // The test login and its bindings, as the chart's mock IDP has them.
    let idps: Value = secret_json(&objects, "pachyderm-identity", "upstream-idps");
    assert_eq!(idps[0]["type"], "mockPassword");
    let rbac: Value = secret_json(&objects, "pachyderm-auth", "cluster-role-bindings");
    assert_eq!(rbac["user:kilgore@kilgore.trout"], json!(["clusterAdmin"]));
    assert_eq!(rbac["allClusterUsers"], json!(["projectCreator"]));

    // Login addresses: howdah console's by default, behind the proxy.
    let auth: Value = secret_json(&objects, "pachyderm-auth", "auth-config");
    assert_eq!(auth["client_id"], "pachd");
    assert_eq!(auth["issuer"], "http://pachd:30658/dex");
    assert_eq!(auth["localhost_issuer"], true);
    assert_eq!(
        auth["redirect_uri"],
        "http://127.0.0.1:4000/authorization-code/callback"
    );
    assert_eq!(auth["user_accessible_issuer_host"], "http://127.0.0.1:4000");
    let config = rendered_object(&objects, "ConfigMap", "pachyderm-identity-config");
    let clients: Value =
        serde_json::from_str(config["data"]["oidc-clients"].as_str().expect("clients"))
            .expect("json");
    assert_eq!(clients[0]["id"], "pachd");
    assert_eq!(clients[0]["trusted_peers"], json!(["console"]));
    assert_eq!(
        clients[1]["redirect_uris"],
        json!(["http://127.0.0.1:4000/oauth/callback/?inline=true"])
    );
    let console = rendered_object(&objects, "Deployment", "console");
    let cc = container(&console, "console");
    assert_eq!(env(cc, "ISSUER_URI")["value"], "http://pachd:30658/dex");
    assert_eq!(
        env(cc, "REACT_APP_RUNTIME_ISSUER_URI")["value"],
        "http://127.0.0.1:4000"
    );
    assert_eq!(env(cc, "OAUTH_CLIENT_ID")["value"], "console");
    assert_eq!(env(cc, "OAUTH_PACHD_CLIENT_ID")["value"], "pachd");
    assert_eq!(
        env(cc, "OAUTH_CLIENT_SECRET")["valueFrom"]["secretKeyRef"]["name"],
        "pachyderm-console-secret"
    );
    // The proxy routes login to pachd.
    let envoy = rendered_object(&objects, "ConfigMap", "pachyderm-proxy-config");
    let text = envoy["data"]["envoy.yaml"].as_str().expect("config");
    assert!(text.contains("path_separated_prefix: \"/dex\""), "{text}");
}

#[test]
fn enterprise_with_the_users_secrets_and_an_ingress_uses_them() {
    let objects = stack(
        "  ingress: {host: p.example.com, tlsSecret: p-tls}\n  enterprise:\n    \
         licenseSecret: lic\n    rootTokenSecret: root\n    upstreamIdpsSecret: idps\n    \
         dexCredentialsSecret: dex\n    clusterRoleBindings: {\"group:eng\": [clusterAdmin]}\n",
    );
    let pachd = rendered_object(&objects, "Deployment", "pachd");
    let c = container(&pachd, "pachd");
    assert_eq!(
        env(c, "AUTH_ROOT_TOKEN")["valueFrom"]["secretKeyRef"]["name"],
        "root"
    );
    assert_eq!(
        env(c, "IDP_CONNECTORS")["valueFrom"]["secretKeyRef"]["name"],
        "idps"
    );
    assert!(!has(&objects, "Secret", "pachyderm-identity"));
    let auth = rendered_object(&objects, "Secret", "pachyderm-auth");
    assert!(auth["data"].get("root-token").is_none(), "{auth}");
    let rbac: Value = secret_json(&objects, "pachyderm-auth", "cluster-role-bindings");
    assert_eq!(rbac, json!({"group:eng": ["clusterAdmin"]}));
    for name in ["pachd", "pachw"] {
        let d = rendered_object(&objects, "Deployment", name);
        assert_eq!(
            mount_path(container(&d, name), "dex-creds").as_deref(),
            Some("/dexcreds")
        );
    }
    let config: Value = secret_json(&objects, "pachyderm-auth", "auth-config");
    assert_eq!(config["issuer"], "https://p.example.com/dex");
    assert_eq!(
        config["redirect_uri"],
        "https://p.example.com/authorization-code/callback"
    );
    let console = rendered_object(&objects, "Deployment", "console");
    assert_eq!(
        env(container(&console, "console"), "OAUTH_REDIRECT_URI")["value"],
        "https://p.example.com/oauth/callback/?inline=true"
    );

    let plain = stack("  console: true\n");
    for name in [
        "pachyderm-auth",
        "pachyderm-enterprise",
        "pachyderm-console-secret",
    ] {
        assert!(!has(&plain, "Secret", name), "{name}");
    }
    let pachd = rendered_object(&plain, "Deployment", "pachd");
    assert!(!env_names(container(&pachd, "pachd")).contains(&"LICENSE_KEY".to_string()));
}

#[test]
fn a_changed_enterprise_setting_rolls_pachd() {
    let digest = |objects: &[DesiredObject]| {
        let pachd = rendered_object(objects, "Deployment", "pachd");
        pachd["spec"]["template"]["metadata"]["annotations"]["howdah.io/enterprise-config-digest"]
            .clone()
    };
    let one = digest(&stack("  enterprise: {licenseSecret: lic}\n"));
    let other = digest(&stack(
        "  enterprise: {licenseSecret: lic, clusterRoleBindings: {\"group:a\": [clusterAdmin]}}\n",
    ));
    assert!(one.is_string(), "{one}");
    assert_ne!(one, other);
    assert_eq!(digest(&stack("  console: true\n")), Value::Null);
}

#[test]
fn a_written_console_url_is_where_login_returns_even_behind_an_ingress() {
    // TLS ends in front of the ingress: the chart's uriHttpsProtoOverride.
    let objects = stack(
        "  ingress: {host: p.example.com}\n  enterprise:\n    licenseSecret: lic\n    \
         consoleUrl: https://p.example.com\n",
    );
    let config: Value = secret_json(&objects, "pachyderm-auth", "auth-config");
    assert_eq!(config["issuer"], "https://p.example.com/dex");
    assert_eq!(
        config["redirect_uri"],
        "https://p.example.com/authorization-code/callback"
    );
    let plain_ingress =
        stack("  ingress: {host: p.example.com}\n  enterprise: {licenseSecret: lic}\n");
    let config: Value = secret_json(&plain_ingress, "pachyderm-auth", "auth-config");
    assert_eq!(config["issuer"], "http://p.example.com/dex");
}
