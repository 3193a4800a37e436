//! An API server that throttles and fails now and then (429 and 503 on
//! every 10th request) slows a run down but does not fail it.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn up_and_down_succeed_through_throttling_and_server_errors() {
    let env = Env::with(howdah_kube_fake::FakeOptions {
        fault_every: 10,
        ..Default::default()
    })
    .await;
    let spec = env.stack("howdah.yaml", "busy", "");
    let up = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_eq!(up.code, 0, "{}", up.all());
    assert!(
        env.fake.stats().faults >= 3,
        "faults were injected: {:?}",
        env.fake.stats()
    );
    assert!(up.all().contains("SERVING"), "{}", up.all());

    let status = env.howdah(&["status", "-f", path(&spec)]).await;
    assert_eq!(status.code, 0, "{}", status.all());

    let down = env.down_ok(&spec, &["--delete-data", "--yes"]).await;
    assert!(down.stdout.contains("nothing left"), "{}", down.stdout);
}
