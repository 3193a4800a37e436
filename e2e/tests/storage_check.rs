//! Verification proves pachd can use its object store: a scratch repo, a
//! file committed, read back byte for byte, the repo deleted, through
//! pachd's own file API (the fake's pachd stand-in keeps repos and files
//! per cluster, as pachd keeps them in its bucket).

use crate::support::*;

const STORAGE_ERROR: &str = "failed to put object: AccessDenied: User: \
    arn:aws:sts::123456789012:assumed-role/node/i-0abc is not authorized to perform: s3:PutObject";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn up_writes_a_file_through_pachd_reads_it_back_and_leaves_nothing() {
    let env = Env::start().await;
    // A user's repo, and a scratch repo an interrupted check left behind.
    env.fake.pfs().create_repo("default", "images");
    env.fake
        .pfs()
        .create_repo("default", "howdah-verify-stale0ld");
    let spec = env.stack("howdah.yaml", "trip", "");
    let up = env.up_ok(&spec).await;
    assert!(
        up.all().contains("storage round trip took"),
        "the round trip and its time are in the summary:\n{}",
        up.all()
    );
    assert_eq!(env.fake.pfs().repos(), vec!["default/images".to_string()]);

    let state = std::fs::read_to_string(env.dir.path().join(".howdah/trip.state.json"))
        .expect("state file");
    let state: serde_json::Value = serde_json::from_str(&state).expect("state JSON");
    let trip = &state["resources"]["runtime.verify"]["outputs"]["storage"];
    assert!(trip["bytes"].as_u64().unwrap_or(0) > 0, "{trip}");
    assert!(trip["millis"].is_u64(), "{trip}");
    assert_eq!(trip["stale_removed"], 1, "{trip}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_pachd_cannot_write_fails_verification_naming_the_error_and_identity() {
    let env = Env::start().await;
    env.fake
        .pfs()
        .set_storage_error(Some(STORAGE_ERROR.to_string()));
    let spec = env.stack(
        "howdah.yaml",
        "denied",
        "storage:\n  bucket:\n    url: s3://data?region=us-east-1\npachyderm:\n  \
         serviceAccounts:\n    awsRoleArn: arn:aws:iam::123456789012:role/pachyderm\n",
    );
    let up = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "8s"])
        .await;
    assert_eq!(up.code, 1, "{}", up.all());
    let all = up.all();
    assert!(all.contains("could not use its object store"), "{all}");
    assert!(
        all.contains("s3:PutObject"),
        "pachd's own error is shown:\n{all}"
    );
    assert!(
        all.contains("eks.amazonaws.com/role-arn=arn:aws:iam::123456789012:role/pachyderm"),
        "the identity in use is named:\n{all}"
    );
    // Every attempt removed its scratch repo.
    assert!(
        env.fake.pfs().repos().is_empty(),
        "{:?}",
        env.fake.pfs().repos()
    );

    // Plain status only reads; --deep runs the same check.
    env.fake.pfs().set_storage_error(None);
    let healed = env.up_ok(&spec).await;
    assert!(
        healed.all().contains("storage round trip"),
        "{}",
        healed.all()
    );
    env.fake
        .pfs()
        .set_storage_error(Some(STORAGE_ERROR.to_string()));
    let status = env.howdah(&["status", "-f", path(&spec)]).await;
    assert_eq!(
        status.code,
        0,
        "plain status writes nothing:\n{}",
        status.all()
    );
    let deep = env.howdah(&["status", "-f", path(&spec), "--deep"]).await;
    assert_ne!(deep.code, 0, "{}", deep.all());
    assert!(deep.all().contains("s3:PutObject"), "{}", deep.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_that_comes_back_changed_fails_at_once() {
    let env = Env::start().await;
    env.fake.pfs().set_corrupt_reads(true);
    let spec = env.stack("howdah.yaml", "corrupt", "");
    let up = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s"])
        .await;
    assert_eq!(up.code, 1, "{}", up.all());
    assert!(up.all().contains("differ"), "{}", up.all());
    assert!(
        env.fake.pfs().repos().is_empty(),
        "{:?}",
        env.fake.pfs().repos()
    );
}
