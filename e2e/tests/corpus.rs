//! Every broken stack file in e2e/specs/broken gets a clear error at the
//! right line and column, and howdah makes no API call for any of them.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_specs_fail_offline_with_their_position() {
    let env = Env::start().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/specs/broken");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 30, "the corpus has {} files", files.len());
    env.fake.reset_stats();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", file.display()));
        let (position, message) = expect.split_once(' ').unwrap();
        let copy = env.dir.path().join(file.file_name().unwrap());
        std::fs::write(&copy, &text).unwrap();
        for command in ["validate", "up", "plan"] {
            // $KUBECONFIG points at the fake, so any call would be counted.
            let run = run_with_kubeconfig(
                env.dir.path(),
                &[command, "-f", path(&copy)],
                Some(&env.kubeconfig),
            )
            .await;
            assert_eq!(run.code, 3, "{command} {}: {}", file.display(), run.all());
            let name = copy.file_name().unwrap().to_str().unwrap();
            assert!(
                run.stderr.contains(&format!("{name}:{position}")),
                "{command} {}: wants {name}:{position} in:\n{}",
                file.display(),
                run.stderr
            );
            assert!(
                run.stderr.contains(message),
                "{}: wants `{message}` in:\n{}",
                file.display(),
                run.stderr
            );
        }
    }
    let stats = env.fake.stats();
    assert_eq!(
        (stats.reads, stats.writes),
        (0, 0),
        "no API call for a broken spec"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_specs_validate_and_the_schema_and_starter_agree() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/specs/good");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        let run = run(&dir, &["validate", "-f", path(&file)]).await;
        assert_eq!(run.code, 0, "{}: {}", file.display(), run.all());
    }
    let tmp = tempfile::tempdir().unwrap();
    let init = run(tmp.path(), &["init", "--target", "kubeconfig"]).await;
    assert_eq!(init.code, 0);
    std::fs::write(tmp.path().join("howdah.yaml"), &init.stdout).unwrap();
    assert_eq!(run(tmp.path(), &["validate"]).await.code, 0);
    let unknown = run(tmp.path(), &["init", "--target", "openstack"]).await;
    assert_eq!(unknown.code, 3);
    assert!(unknown.stderr.contains("kubeconfig"));
    let schema = run(tmp.path(), &["schema"]).await;
    let schema: serde_json::Value = serde_json::from_str(&schema.stdout).expect("schema is JSON");
    assert_eq!(schema["additionalProperties"], false);
    assert!(schema["properties"]["pachyderm"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_carries_each_problem_with_its_position() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/specs/broken");
    let run = run(
        &dir,
        &["validate", "-f", "etcd-size-gb.yaml", "--output", "json"],
    )
    .await;
    assert_eq!(run.code, 3);
    let event = run.events().into_iter().next().expect("one JSON event");
    assert_eq!(event["event"], "invalid");
    let problem = &event["problems"][0];
    assert_eq!(
        (problem["line"].as_u64(), problem["column"].as_u64()),
        (Some(7), Some(11))
    );
    assert_eq!(problem["path"], "pachyderm.etcd.size");
    assert!(problem["help"].as_str().unwrap().contains("10Gi"));
}
