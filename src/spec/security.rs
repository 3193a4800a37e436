//! Rules for TLS, trusted CA certificates and Pachyderm Enterprise: the
//! Secrets they name and the addresses login redirects to. The Secrets
//! themselves are checked against the cluster before `up` writes anything
//! (`Runtime::reference_problems`).

use super::location::{Part, YamlPath};
use super::types::{CaCertificates, Enterprise, Pachyderm};
use super::validate::Checker;

/// The principal kinds pachd's auth takes in a role binding.
const PRINCIPAL_PREFIXES: &[&str] = &["user:", "group:", "robot:", "pipeline:"];

/// The roles pachd knows (src/auth/auth.go at v2.11.6); an unknown one
/// fails pachd's start, every time.
const ROLES: &[&str] = &[
    "clusterAdmin",
    "repoOwner",
    "repoWriter",
    "repoReader",
    "oidcAppAdmin",
    "idpAdmin",
    "identityAdmin",
    "debugger",
    "lokiLogReader",
    "robotUser",
    "licenseAdmin",
    "secretAdmin",
    "pachdLogReader",
    "projectViewer",
    "projectWriter",
    "projectOwner",
    "projectCreator",
];

/// Secrets howdah writes itself for enterprise; a user's Secret of the
/// same name would be taken over.
const OWN_SECRETS: &[&str] = &[
    "pachyderm-auth",
    "pachyderm-enterprise",
    "pachyderm-identity",
    "pachyderm-console-secret",
    "pachyderm-storage-secret",
    "pachyderm-deployment-id-secret",
];

impl Checker<'_> {
    pub(super) fn ca_certificates(&mut self, path: &YamlPath, ca: &CaCertificates) {
        // pachd names the volume of pipeline workers after the Secret, and
        // a volume name is a DNS label.
        if let Some(problem) = super::names::dns1123_label(&ca.secret, 63) {
            self.report(
                &path.key("secret"),
                Part::Value,
                format!(
                    "caCertificates.secret {:?} {problem}: pachd names pipeline workers' volume \
                     after it, and a volume name is a DNS label (no dots)",
                    ca.secret
                ),
                Some("copy the certificates into a Secret named like corp-ca".into()),
            );
        }
        self.not_own_secret(&path.key("secret"), &ca.secret);
        if let Some(problem) = secret_key_problem(&ca.key) {
            self.report(
                &path.key("key"),
                Part::Value,
                format!("invalid Secret key {:?}: {problem}", ca.key),
                Some("keys are file names such as ca.crt".into()),
            );
        }
    }

    /// A Secret the user names must not be one howdah writes.
    fn not_own_secret(&mut self, path: &YamlPath, name: &str) {
        if OWN_SECRETS.contains(&name) {
            self.report(
                path,
                Part::Value,
                format!("`{name}` is a Secret howdah writes itself"),
                Some("name your Secret something else".into()),
            );
        }
    }

    pub(super) fn enterprise(&mut self, path: &YamlPath, e: &Enterprise, p: &Pachyderm) {
        self.secret_name(&path.key("licenseSecret"), &e.license_secret);
        self.not_own_secret(&path.key("licenseSecret"), &e.license_secret);
        for (key, secret) in [
            ("rootTokenSecret", &e.root_token_secret),
            ("upstreamIdpsSecret", &e.upstream_idps_secret),
            ("dexCredentialsSecret", &e.dex_credentials_secret),
        ] {
            if let Some(secret) = secret {
                self.secret_name(&path.key(key), secret);
                self.not_own_secret(&path.key(key), secret);
            }
        }
        let bindings = path.key("clusterRoleBindings");
        for (principal, roles) in &e.cluster_role_bindings {
            let known = principal == "allClusterUsers"
                || PRINCIPAL_PREFIXES
                    .iter()
                    .any(|prefix| principal.len() > prefix.len() && principal.starts_with(prefix));
            if !known {
                self.report(
                    &bindings.key(principal),
                    Part::Key,
                    format!("{principal:?} is not a principal pachd knows"),
                    Some(
                        "write user:<email>, group:<name>, robot:<name>, pipeline:<name> or \
                         allClusterUsers"
                            .into(),
                    ),
                );
            }
            if roles.is_empty() {
                self.report(
                    &bindings.key(principal),
                    Part::Value,
                    format!("{principal:?} needs at least one role"),
                    Some("e.g. [clusterAdmin] or [projectCreator]".into()),
                );
            }
            for (i, role) in roles.iter().enumerate() {
                if !ROLES.contains(&role.as_str()) {
                    let near = ROLES.iter().find(|r| r.eq_ignore_ascii_case(role));
                    self.report(
                        &bindings.key(principal).index(i),
                        Part::Value,
                        format!(
                            "{role:?} is not a role pachd knows; pachd would fail at every start"
                        ),
                        Some(match near {
                            Some(r) => format!("did you mean {r}?"),
                            None => format!("roles: {}", ROLES.join(", ")),
                        }),
                    );
                }
            }
        }
        if !e.auth && !e.cluster_role_bindings.is_empty() {
            self.report(
                &bindings,
                Part::Key,
                "role bindings need auth, which `auth: false` leaves off".into(),
                Some("remove `auth: false`, or remove `clusterRoleBindings`".into()),
            );
        }
        if let Some(issuer) = &e.issuer_uri {
            if let Some(problem) = web_address_problem(issuer, true) {
                self.report(
                    &path.key("issuerUri"),
                    Part::Value,
                    format!("issuerUri {issuer:?} {problem}"),
                    Some("e.g. https://pachyderm.example.com/dex".into()),
                );
            } else if p.proxy_enabled() && !issuer.trim_end_matches('/').ends_with("/dex") {
                // The identity service serves under the issuer's path, and
                // the proxy routes only /dex to it (the chart refuses it too).
                self.report(
                    &path.key("issuerUri"),
                    Part::Value,
                    format!(
                        "issuerUri {issuer:?} must end in /dex: pachyderm-proxy sends only /dex \
                         to pachd's identity service"
                    ),
                    Some("e.g. https://pachyderm.example.com/dex".into()),
                );
            }
        }
        if let Some(ingress) = &p.ingress {
            if ingress.host.starts_with("*.") && e.console_url.is_none() && e.issuer_uri.is_none() {
                self.report(
                    &path.key("consoleUrl"),
                    Part::Key,
                    format!(
                        "the ingress host {:?} is a wildcard, which is no address to send a \
                         browser back to after login",
                        ingress.host
                    ),
                    Some("set consoleUrl to the address users open, e.g. https://pachyderm.example.com".into()),
                );
            }
        }
        if let Some(url) = &e.console_url {
            if let Some(problem) = web_address_problem(url, false) {
                self.report(
                    &path.key("consoleUrl"),
                    Part::Value,
                    format!("consoleUrl {url:?} {problem}"),
                    Some("e.g. http://127.0.0.1:4000 (howdah console's address)".into()),
                );
            }
        }
        if e.auth && p.console.enabled && !p.proxy_enabled() {
            self.report(
                &YamlPath::of(&["pachyderm", "proxy"]),
                Part::Key,
                "pachyderm.enterprise's console login goes through pachyderm-proxy (the \
                 identity service and the console share its address), which is off"
                    .into(),
                Some("remove `proxy: false`, or set `auth: false` under enterprise".into()),
            );
        }
    }
}

/// Why `key` cannot be a Secret data key (`[-._a-zA-Z0-9]+`, at most 253).
fn secret_key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("must not be empty".into());
    }
    if key.len() > 253 {
        return Some("is longer than 253 characters".into());
    }
    if let Some(bad) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        return Some(format!(
            "contains {bad:?}: only letters, digits, '-', '.' and '_' are allowed"
        ));
    }
    if key == "." || key == ".." {
        return Some("must not be . or ..".into());
    }
    None
}

/// Why `address` is not an http(s) address a browser or pachd can use;
/// `path_allowed`: whether it may have a path (an issuer has one).
fn web_address_problem(address: &str, path_allowed: bool) -> Option<String> {
    let url = match url::Url::parse(address) {
        Ok(url) => url,
        Err(e) => return Some(format!("is not a URL: {e}")),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Some(format!("has scheme `{}`; use http or https", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Some("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Some("carries credentials; it is shown in pod specs and plans".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Some("has a query or fragment".into());
    }
    if !path_allowed && url.path() != "/" {
        return Some("has a path; write only the scheme, host and port".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{secret_key_problem, web_address_problem};

    #[test]
    fn secret_keys_are_file_names() {
        assert_eq!(secret_key_problem("ca.crt"), None);
        assert_eq!(secret_key_problem("ca-bundle_2.pem"), None);
        for bad in ["", "a/b", "a b", ".."] {
            assert!(secret_key_problem(bad).is_some(), "{bad:?} accepted");
        }
    }

    #[test]
    fn login_addresses_are_plain_web_addresses() {
        assert_eq!(web_address_problem("http://localhost:4000", false), None);
        assert_eq!(web_address_problem("https://p.example.com/dex", true), None);
        assert!(web_address_problem("https://p.example.com/dex", false).is_some());
        assert!(web_address_problem("localhost:4000", false).is_some());
        assert!(web_address_problem("ftp://p.example.com", false).is_some());
        assert!(web_address_problem("https://u:p@p.example.com", true).is_some());
    }
}
