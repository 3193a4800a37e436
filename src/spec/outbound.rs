//! Rules for `pachyderm.outboundProxy`: addresses pachd's and the
//! console's HTTP clients can use, caught before pods start and fail
//! every request to the object store.

use super::location::{Part, YamlPath};
use super::types::OutboundProxy;
use super::validate::Checker;

/// The proxy schemes Go's and Node's HTTP clients take from HTTP_PROXY.
const SCHEMES: &[&str] = &["http", "https", "socks5"];

impl Checker<'_> {
    pub(super) fn outbound_proxy(&mut self, path: &YamlPath, proxy: &OutboundProxy) {
        for (key, address) in [
            ("httpProxy", &proxy.http_proxy),
            ("httpsProxy", &proxy.https_proxy),
        ] {
            if let Some(address) = address {
                if let Some(problem) = proxy_address_problem(address) {
                    self.report(
                        &path.key(key),
                        Part::Value,
                        // Not echoed: it may carry credentials.
                        format!("the proxy address {problem}"),
                        Some("write it as http://host:port, e.g. http://proxy.corp:3128".into()),
                    );
                }
            }
        }
        if let Some(no_proxy) = &proxy.no_proxy {
            if no_proxy.chars().any(char::is_whitespace) {
                self.report(
                    &path.key("noProxy"),
                    Part::Value,
                    format!("noProxy {no_proxy:?} must not contain spaces"),
                    Some("separate hosts with commas only: .svc,.cluster.local,10.0.0.0/8".into()),
                );
            }
        }
        if proxy.http_proxy.is_none() && proxy.https_proxy.is_none() && proxy.no_proxy.is_some() {
            self.report(
                &path.key("noProxy"),
                Part::Key,
                "`noProxy` without `httpProxy` or `httpsProxy` changes nothing".into(),
                Some("add the proxy's address as `httpProxy`, or remove `outboundProxy`".into()),
            );
        }
    }
}

/// Why `address` is not a usable proxy URL, if it is not.
fn proxy_address_problem(address: &str) -> Option<String> {
    if address.chars().any(char::is_whitespace) {
        return Some("must not contain spaces".into());
    }
    if !address.contains("://") {
        // Go reads a bare `host:port` as http://host:port, Node does not:
        // require the scheme so the console reads it as pachd does.
        return Some("has no scheme".into());
    }
    let url = match url::Url::parse(address) {
        Ok(url) => url,
        Err(e) => return Some(format!("is not a URL: {e}")),
    };
    if !SCHEMES.contains(&url.scheme()) {
        return Some(format!(
            "has scheme `{}`; a proxy is reached over {}",
            url.scheme(),
            SCHEMES.join(", ")
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Some("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        // It would be rendered into pod specs and shown by `plan`.
        return Some(
            "carries credentials, which howdah would show in plans and pod specs; \
             use a proxy that admits the cluster's addresses"
                .into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::proxy_address_problem;
    use crate::spec::OutboundProxy;

    #[test]
    fn each_proxy_variable_is_set_only_when_its_address_is_known() {
        let names = |proxy: OutboundProxy| -> Vec<String> {
            proxy.env().into_iter().map(|(name, _)| name).collect()
        };
        let https_only = OutboundProxy {
            https_proxy: Some("http://p:1".into()),
            ..OutboundProxy::default()
        };
        assert_eq!(names(https_only), ["https_proxy", "HTTPS_PROXY"]);
        let both = OutboundProxy {
            http_proxy: Some("http://a:1".into()),
            https_proxy: Some("http://b:1".into()),
            no_proxy: None,
        };
        let env = both.env();
        assert_eq!(env[0], ("http_proxy".to_string(), "http://a:1".to_string()));
        assert_eq!(
            env[3],
            ("HTTPS_PROXY".to_string(), "http://b:1".to_string())
        );
        assert_eq!(env.len(), 4);
    }

    #[test]
    fn proxy_addresses_need_a_scheme_and_a_host() {
        assert_eq!(proxy_address_problem("http://proxy.corp:3128"), None);
        assert_eq!(proxy_address_problem("https://10.0.0.1"), None);
        assert!(proxy_address_problem("https://user:pw@10.0.0.1").is_some());
        assert!(proxy_address_problem("proxy.corp:3128").is_some());
        assert!(proxy_address_problem("ftp://proxy.corp").is_some());
        assert!(proxy_address_problem("http:// proxy").is_some());
    }
}
