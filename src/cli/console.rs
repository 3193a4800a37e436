//! `howdah console`: local ports forwarded through the API server to pachd
//! and the console, one port-forward per accepted connection, until Ctrl-C.
//! With pachyderm-proxy deployed the web address is the proxy's: the
//! console and pachd's HTTP paths (file preview and download) behind one
//! origin, as the console expects; without it, the console's own port.

use howdah::ops::{OpsError, Session};
use howdah::runtime::chart::Component;
use howdah::runtime::component::Verify;
use howdah::runtime::health::match_labels;
use howdah::runtime::verify::{forward, ready_pod, CONSOLE_PORT, PACHD_GRPC_PORT, PROXY_HTTP_PORT};
use howdah_provider::Outputs;
use tokio::net::TcpListener;

pub async fn serve(session: &Session, pachd_port: u16, console_port: u16) -> Result<(), OpsError> {
    session.provider.preflight().await?;
    let rt = session.runtime(
        &Outputs::default(),
        std::time::Duration::from_secs(60),
        false,
        false,
    );
    let pachd_selector = Verify::pachd_selector(&rt).await?;
    // With pachd.tls its API speaks only TLS: pachctl connects grpcs://.
    let grpc = if session.stack.pachyderm.pachd.tls.is_some() {
        "grpcs"
    } else {
        "grpc"
    };
    let mut forwards = vec![(
        pachd_selector,
        PACHD_GRPC_PORT,
        pachd_port,
        "pachd gRPC",
        grpc,
    )];
    let desired = rt.desired().await?;
    let selector_of = |component: Component| {
        desired
            .iter()
            .find(|d| d.component == component && d.key.kind == "Deployment")
            .map(|d| match_labels(&d.object["spec"]["selector"]))
    };
    if let Some(address) = login_address_mismatch(&session.stack.pachyderm, console_port) {
        eprintln!(
            "warning: login sends the browser back to {address} (pachyderm.enterprise.consoleUrl \
             or its default), not to port {console_port}: use --console-port to match, or set \
             consoleUrl"
        );
    }
    if let Some(selector) = selector_of(Component::Proxy) {
        forwards.push((
            selector,
            PROXY_HTTP_PORT,
            console_port,
            "console and pachd's HTTP API (/pfs, /archive, /api) through pachyderm-proxy",
            "http",
        ));
    } else if let Some(selector) = selector_of(Component::Console) {
        for warning in session.stack.pachyderm.warnings() {
            eprintln!("warning: {warning}");
        }
        forwards.push((selector, CONSOLE_PORT, console_port, "console", "http"));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (selector, remote, local, what, scheme) in forwards {
        let pod = ready_pod(&rt.cluster, rt.namespace(), &selector).await?;
        let listener = TcpListener::bind(("127.0.0.1", local)).await.map_err(|e| {
            howdah_provider::ProviderError::config(format!(
                "cannot listen on 127.0.0.1:{local} for the {what}: {e}; pick another port"
            ))
        })?;
        outln!("{what}: {scheme}://127.0.0.1:{local}  (pod {pod}, port {remote})");
        let cluster = rt.cluster.clone();
        let namespace = rt.namespace().to_string();
        tasks.spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    break;
                };
                let cluster = cluster.clone();
                let namespace = namespace.clone();
                let pod = pod.clone();
                tokio::spawn(async move {
                    match forward(&cluster, &namespace, &pod, remote).await {
                        Ok(mut upstream) => {
                            let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
                        }
                        Err(e) => eprintln!("port-forward to {pod}:{remote} failed: {e}"),
                    }
                });
            }
        });
    }
    outln!("Forwarding; press Ctrl-C to stop.");
    let _ = tokio::signal::ctrl_c().await;
    tasks.abort_all();
    Ok(())
}

/// The login address users are sent back to, when it is not this
/// machine's `console_port` (only without an ingress, whose host is the
/// login address instead).
fn login_address_mismatch(p: &howdah::spec::types::Pachyderm, console_port: u16) -> Option<String> {
    let enterprise = p.enterprise.as_ref().filter(|e| e.auth)?;
    let address = match (&enterprise.console_url, &p.ingress) {
        (Some(url), _) => url.clone(),
        (None, Some(_)) => return None,
        (None, None) => howdah::spec::types::DEFAULT_CONSOLE_URL.to_string(),
    };
    let url = url::Url::parse(&address).ok()?;
    let local = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    (local && url.port_or_known_default() != Some(console_port)).then_some(address)
}

#[cfg(test)]
mod tests {
    use super::login_address_mismatch;

    fn pachyderm(text: &str) -> howdah::spec::types::Pachyderm {
        let stack = howdah::spec::parse(
            "t.yaml",
            &format!("name: t\ntarget: {{kubeconfig: {{}}}}\npachyderm:\n{text}"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        stack.pachyderm
    }

    #[test]
    fn a_console_port_login_cannot_return_to_is_named() {
        let enterprise = pachyderm("  enterprise: {licenseSecret: lic}\n");
        assert_eq!(login_address_mismatch(&enterprise, 4000), None);
        assert_eq!(
            login_address_mismatch(&enterprise, 8080).as_deref(),
            Some("http://127.0.0.1:4000")
        );
        let behind_ingress =
            pachyderm("  ingress: {host: p.example.com}\n  enterprise: {licenseSecret: lic}\n");
        assert_eq!(login_address_mismatch(&behind_ingress, 8080), None);
        assert_eq!(
            login_address_mismatch(&pachyderm("  console: true\n"), 8080),
            None
        );
    }
}
