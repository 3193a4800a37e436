//! `howdah console` forwards local ports to pachd and the console through
//! the API server; with pachyderm-proxy deployed the web address is the
//! proxy's, and the console's file preview path (pachd's `/pfs/...`) works
//! through it.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::support::*;

const NS: &str = "pachyderm";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `howdah console` on free ports; returns the child, what it printed
/// up to "Forwarding", and the (pachd, web) ports.
async fn start_console(
    env: &Env,
    spec: &std::path::Path,
) -> (tokio::process::Child, String, u16, u16) {
    let (pachd_port, console_port) = (free_port(), free_port());
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "console",
            "-f",
            path(spec),
            "--pachd-port",
            &pachd_port.to_string(),
            "--console-port",
            &console_port.to_string(),
        ])
        .current_dir(env.dir.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if line.contains("Forwarding") {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("console starts; printed:\n{printed}"));
    (child, printed, pachd_port, console_port)
}

/// One HTTP/1.1 GET: (status code, lowercased headers, body bytes).
async fn get_http(port: u16, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut web = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
    web.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), web.read_to_end(&mut raw))
        .await
        .expect("an answer")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if header("transfer-encoding").as_deref() == Some("chunked") {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 4 + size..];
    }
    out
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_previews_through_the_proxy_howdah_console_forwards() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "files", "");
    env.up_ok(&spec).await;
    // A user's file, as `pachctl put file images@master:/cats/tabby.txt` leaves it.
    let bytes = b"a tabby cat, 4 kg\n";
    let commit = env
        .fake
        .pfs()
        .put_file("default", "images", "master", "/cats/tabby.txt", bytes);

    let (mut child, printed, _, web_port) = start_console(&env, &spec).await;
    assert!(
        printed.contains(&format!("http://127.0.0.1:{web_port}"))
            && printed.contains("pachyderm-proxy"),
        "{printed}"
    );

    // The console's preview: pachd's file server, through the proxy.
    let (status, headers, body) =
        get_http(web_port, "/pfs/default/images/master/cats/tabby.txt").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, bytes);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        header(&headers, "content-length"),
        Some(bytes.len().to_string().as_str())
    );
    // By commit id too; a finished commit may be cached.
    let (status, headers, body) = get_http(
        web_port,
        &format!("/pfs/default/images/{commit}/cats/tabby.txt"),
    )
    .await;
    assert_eq!((status, body.as_slice()), (200, &bytes[..]));
    assert_eq!(header(&headers, "cache-control"), Some("private"));
    // A directory lists its entries.
    let (status, _, body) = get_http(web_port, "/pfs/default/images/master/cats/").await;
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).contains("-\t18\t/cats/tabby.txt"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    // No kinder than pachd: what is not there is 404, with pachd's words.
    for missing in [
        "/pfs/default/images/master/cats/siamese.txt",
        "/pfs/default/videos/master/cats/tabby.txt",
        "/pfs/default/images/nosuchbranch/cats/tabby.txt",
        "/pfs/default/images",
    ] {
        let (status, _, body) = get_http(web_port, missing).await;
        assert_eq!(status, 404, "{missing}: {}", String::from_utf8_lossy(&body));
    }
    // Everything else is the console's.
    let (status, _, body) = get_http(web_port, "/lineage/default").await;
    assert_eq!((status, body.as_slice()), (200, &b"console"[..]));
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_proxy_alone_serves_files_and_has_no_console_behind_it() {
    let env = Env::start().await;
    let spec = env.stack(
        "howdah.yaml",
        "alone",
        "pachyderm:\n  console: false\n  proxy: true\n",
    );
    env.up_ok(&spec).await;
    assert!(get(&env, "Deployment", Some(NS), "console").await.is_none());
    env.fake
        .pfs()
        .put_file("default", "logs", "master", "/today.log", b"ok\n");
    let (mut child, printed, _, web_port) = start_console(&env, &spec).await;
    assert!(printed.contains("pachyderm-proxy"), "{printed}");
    let (status, _, body) = get_http(web_port, "/pfs/default/logs/master/today.log").await;
    assert_eq!((status, body.as_slice()), (200, &b"ok\n"[..]));
    // Envoy with no ready console pod: 503, not a made-up page.
    let (status, _, body) = get_http(web_port, "/").await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_without_its_proxy_is_forwarded_directly_with_a_warning() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "direct", "pachyderm:\n  proxy: false\n");
    let validate = env.howdah(&["validate", "-f", path(&spec)]).await;
    assert_eq!(validate.code, 0, "{}", validate.all());
    assert!(
        validate.all().contains("cannot preview"),
        "{}",
        validate.all()
    );
    let plan = env.howdah(&["plan", "-f", path(&spec)]).await;
    assert!(plan.all().contains("cannot preview"), "{}", plan.all());
    let up = env.up_ok(&spec).await;
    assert!(up.all().contains("cannot preview"), "{}", up.all());
    assert!(get(&env, "Deployment", Some(NS), "pachyderm-proxy")
        .await
        .is_none());
    let (mut child, printed, _, web_port) = start_console(&env, &spec).await;
    assert!(!printed.contains("pachyderm-proxy"), "{printed}");
    let (status, _, body) = get_http(web_port, "/").await;
    assert_eq!((status, body.as_slice()), (200, &b"console"[..]));
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn down_removes_the_proxy_and_leaves_nothing() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "gone", "");
    env.up_ok(&spec).await;
    for (kind, name) in [
        ("Deployment", "pachyderm-proxy"),
        ("Service", "pachyderm-proxy"),
        ("Service", "pachd-proxy-backend"),
        ("Service", "console-proxy-backend"),
        ("ConfigMap", "pachyderm-proxy-config"),
    ] {
        assert!(
            get(&env, kind, Some(NS), name).await.is_some(),
            "{kind} {name}"
        );
    }
    let status = env
        .howdah(&["status", "-f", path(&spec), "--no-verify"])
        .await;
    assert!(status.all().contains("runtime.proxy"), "{}", status.all());
    // Exit 0: the leak scan found nothing of the stack left.
    env.down_ok(&spec, &["--delete-data", "--yes"]).await;
    for (kind, name) in [
        ("Deployment", "pachyderm-proxy"),
        ("Service", "pachd-proxy-backend"),
        ("ConfigMap", "pachyderm-proxy-config"),
    ] {
        assert!(
            get(&env, kind, Some(NS), name).await.is_none(),
            "{kind} {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn console_forwards_pachd_grpc_and_the_web_console() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "ui", "");
    env.up_ok(&spec).await;
    let (mut child, printed, pachd_port, console_port) = start_console(&env, &spec).await;
    assert!(
        printed.contains(&format!("grpc://127.0.0.1:{pachd_port}")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("http://127.0.0.1:{console_port}")),
        "{printed}"
    );

    let mut web = tokio::net::TcpStream::connect(("127.0.0.1", console_port))
        .await
        .unwrap();
    web.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    web.read_to_string(&mut body).await.unwrap();
    assert!(
        body.starts_with("HTTP/1.1 200") && body.contains("console"),
        "{body}"
    );

    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{pachd_port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let answer = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    child.kill().await.unwrap();
}
