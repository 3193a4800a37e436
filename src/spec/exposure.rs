//! Rules for what exposes the runtime outside the cluster:
//! `pachyderm.ingress` and `pachyderm.pachd.externalService`. The API
//! server would refuse most of these mistakes only once `up` is half done.

use super::location::{Part, YamlPath};
use super::names::dns1123_subdomain;
use super::types::{ExternalService, Ingress, Pachyderm};
use super::validate::{host_problem, Checker};

impl Checker<'_> {
    pub(super) fn ingress(&mut self, path: &YamlPath, ingress: &Ingress, p: &Pachyderm) {
        if let Some(problem) = ingress_host_problem(&ingress.host) {
            self.report(
                &path.key("host"),
                Part::Value,
                format!("ingress host {:?} {problem}", ingress.host),
                Some("write the name users open, e.g. host: pachyderm.example.com".into()),
            );
        }
        if let Some(class) = &ingress.class_name {
            if let Some(problem) = dns1123_subdomain(class) {
                self.report(
                    &path.key("className"),
                    Part::Value,
                    format!("invalid IngressClass name {class:?}: {problem}"),
                    Some("list the classes with `kubectl get ingressclass`".into()),
                );
            }
        }
        if let Some(secret) = &ingress.tls_secret {
            self.secret_name(&path.key("tlsSecret"), secret);
        }
        self.annotation_keys(&path.key("annotations"), &ingress.annotations);
        if !p.console.enabled && !p.proxy_enabled() {
            self.report(
                path,
                Part::Key,
                "the ingress has nothing to route to: the console and pachyderm-proxy are both off"
                    .into(),
                Some(
                    "turn on the proxy (`proxy: true`) or the console, or remove `ingress`".into(),
                ),
            );
        }
    }

    pub(super) fn external_service(&mut self, path: &YamlPath, service: &ExternalService) {
        if let Some(ip) = &service.load_balancer_ip {
            if ip.parse::<std::net::IpAddr>().is_err() {
                self.report(
                    &path.key("loadBalancerIP"),
                    Part::Value,
                    format!("loadBalancerIP {ip:?} is not an IP address"),
                    Some(
                        "write the address the cloud reserved (e.g. 203.0.113.10), or remove the \
                         line to let it pick one"
                            .into(),
                    ),
                );
            }
        }
        for (key, port) in [
            ("apiGRPCPort", service.api_grpc_port),
            ("s3GatewayPort", service.s3_gateway_port),
        ] {
            if port == 0 {
                self.report(
                    &path.key(key),
                    Part::Value,
                    format!("{key} must be a port from 1 to 65535, not 0"),
                    None,
                );
            }
        }
        if service.api_grpc_port == service.s3_gateway_port && service.api_grpc_port != 0 {
            self.report(
                &path.key("s3GatewayPort"),
                Part::Value,
                format!(
                    "s3GatewayPort {} is also apiGRPCPort: one load balancer port cannot serve both",
                    service.s3_gateway_port
                ),
                Some("the chart's ports are apiGRPCPort: 30650 and s3GatewayPort: 30600".into()),
            );
        }
        self.annotation_keys(&path.key("annotations"), &service.annotations);
    }
}

/// Why `host` cannot be an Ingress rule's host: the API server takes a DNS
/// name (a leading `*.` wildcard allowed), never an address, port or URL.
fn ingress_host_problem(host: &str) -> Option<String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    if let Some((problem, _)) = host_problem(name) {
        return Some(problem);
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Some("is an IP address; an Ingress matches host names only".into());
    }
    dns1123_subdomain(name)
}

#[cfg(test)]
mod tests {
    use super::ingress_host_problem;

    #[test]
    fn ingress_hosts_are_dns_names() {
        assert_eq!(ingress_host_problem("pachyderm.example.com"), None);
        assert_eq!(ingress_host_problem("*.example.com"), None);
        for bad in [
            "",
            "10.0.0.1",
            "https://pachyderm.example.com",
            "pachyderm.example.com:443",
            "Pachyderm.Example.com",
            "a..b",
        ] {
            assert!(ingress_host_problem(bad).is_some(), "{bad:?} accepted");
        }
    }
}
