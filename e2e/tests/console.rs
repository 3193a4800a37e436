//! `howdah console` forwards local ports to pachd and the console through
//! the API server.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn console_forwards_pachd_grpc_and_the_web_console() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "ui", "");
    env.up_ok(&spec).await;
    let (pachd_port, console_port) = (free_port(), free_port());
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "console",
            "-f",
            path(&spec),
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
    .expect("console starts");
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
