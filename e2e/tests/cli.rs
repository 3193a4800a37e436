//! The command line itself: completion scripts, what `--version` and
//! `--help` tell, and flags offered only where they do something.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_scripts_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F _howdah"),
        ("zsh", "#compdef howdah"),
        ("fish", "complete -c howdah"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let run = run(dir.path(), &["completion", shell]).await;
        assert_eq!(run.code, 0, "{shell}: {}", run.all());
        assert!(run.stdout.contains(marker), "{shell}:\n{}", run.stdout);
        for command in ["up", "plan", "status", "down", "completion"] {
            assert!(run.stdout.contains(command), "{shell} lacks {command}");
        }
    }
    let unknown = run(dir.path(), &["completion", "tcsh"]).await;
    assert_eq!(unknown.code, 3, "{}", unknown.all());
    assert!(unknown.stderr.contains("bash"), "{}", unknown.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_names_the_build_and_the_pachyderm_versions() {
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path(), &["--version"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .starts_with(&format!("howdah {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        run.stdout
    );
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    assert!(
        run.stdout.contains(&format!("commit {commit}")),
        "wants commit {commit}:\n{}",
        run.stdout
    );
    for version in howdah::runtime::chart::supported_versions() {
        assert!(run.stdout.contains(&version), "{version}:\n{}", run.stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_exit_codes_and_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path(), &["--help"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    // Every code of the README's table, each on its own line.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("## Exit codes")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap();
    let codes: Vec<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next())
        .filter(|c| c.parse::<u8>().is_ok())
        .collect();
    assert!(codes.len() >= 7, "{codes:?}");
    for code in codes {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{code} "))),
            "exit code {code} is not explained:\n{}",
            run.stdout
        );
    }
    for variable in ["HOWDAH_FILE", "HOWDAH_OUTPUT", "HOWDAH_LOG", "KUBECONFIG"] {
        assert!(run.stdout.contains(variable), "{variable}:\n{}", run.stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_are_offered_only_where_they_apply() {
    let dir = tempfile::tempdir().unwrap();
    let status_help = run(dir.path(), &["status", "--help"]).await;
    assert_eq!(status_help.code, 0);
    for flag in ["--timeout", "--parallelism"] {
        assert!(!status_help.stdout.contains(flag), "status offers {flag}");
        let refused = run(dir.path(), &["status", flag, "5"]).await;
        assert_eq!(refused.code, 3, "status {flag}: {}", refused.all());
        assert!(refused.stderr.contains(flag), "{}", refused.stderr);
    }
    let up_help = run(dir.path(), &["up", "--help"]).await;
    for flag in ["--timeout", "--parallelism", "--output"] {
        assert!(up_help.stdout.contains(flag), "up lacks {flag}");
    }
    for command in [&["schema"][..], &["completion", "bash"]] {
        let help = run(dir.path(), &[command, &["--help"]].concat()).await;
        assert!(
            !help.stdout.contains("--output"),
            "{command:?} offers --output"
        );
        let refused = run(dir.path(), &[command, &["--output", "json"]].concat()).await;
        assert_eq!(refused.code, 3, "{command:?}: {}", refused.all());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_fills_in_the_name_and_context_and_keeps_existing_files() {
    let env = Env::start().await;
    let dir = env.dir.path();
    let run_here = |args: &'static [&'static str]| {
        let kubeconfig = env.kubeconfig.clone();
        async move { run_with_kubeconfig(dir, args, Some(&kubeconfig)).await }
    };
    let init = run_here(&[
        "init",
        "--target",
        "kubeconfig",
        "--name",
        "demo",
        "--context",
        "fake",
        "--out",
        "stack.yaml",
    ])
    .await;
    assert_eq!(init.code, 0, "{}", init.all());
    assert!(init.all().contains("stack.yaml"), "{}", init.all());
    let validate = run_here(&["validate", "-f", "stack.yaml"]).await;
    assert_eq!(validate.code, 0, "{}", validate.all());
    assert!(
        validate.stdout.contains("stack `demo`"),
        "{}",
        validate.stdout
    );
    let plan = run_here(&["plan", "-f", "stack.yaml"]).await;
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(
        plan.stdout.contains("Plan for stack `demo`"),
        "{}",
        plan.stdout
    );
    // The context is the one given, not the kubeconfig's current one.
    let init = run_here(&["init", "--context", "elsewhere", "--out", "elsewhere.yaml"]).await;
    assert_eq!(init.code, 0, "{}", init.all());
    let plan = run_here(&["plan", "-f", "elsewhere.yaml"]).await;
    assert_ne!(plan.code, 0, "{}", plan.all());
    assert!(plan.stderr.contains("elsewhere"), "{}", plan.stderr);

    let written = std::fs::read_to_string(dir.join("stack.yaml")).unwrap();
    let again = run_here(&["init", "--name", "other", "--out", "stack.yaml"]).await;
    assert_eq!(again.code, 3, "{}", again.all());
    assert!(again.stderr.contains("stack.yaml"), "{}", again.stderr);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("stack.yaml")).unwrap(),
        written
    );
    let forced = run_here(&["init", "--name", "other", "--out", "stack.yaml", "--force"]).await;
    assert_eq!(forced.code, 0, "{}", forced.all());
    let validate = run_here(&["validate", "-f", "stack.yaml"]).await;
    assert!(
        validate.stdout.contains("stack `other`"),
        "{}",
        validate.stdout
    );

    let printed = run_here(&["init", "--target", "aws", "--name", "ml-prod"]).await;
    assert_eq!(printed.code, 0, "{}", printed.all());
    std::fs::write(dir.join("aws.yaml"), &printed.stdout).unwrap();
    let validate = run_here(&["validate", "-f", "aws.yaml"]).await;
    assert!(
        validate.stdout.contains("stack `ml-prod`"),
        "{}",
        validate.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_refuses_a_name_the_stack_file_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "name: Demo_1\ntarget: {kubeconfig: {}}\n",
    )
    .unwrap();
    let validate = run(dir.path(), &["validate", "-f", "bad.yaml"]).await;
    assert_eq!(validate.code, 3);
    // What validate says of the name, without the file's position.
    let rule = validate
        .stderr
        .split("name: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap()
        .to_string();
    let init = run(
        dir.path(),
        &["init", "--name", "Demo_1", "--out", "new.yaml"],
    )
    .await;
    assert_eq!(init.code, 3, "{}", init.all());
    assert!(
        init.stderr.contains(&rule),
        "wants `{rule}` in:\n{}",
        init.stderr
    );
    assert!(!dir.path().join("new.yaml").exists());
    let context = run(dir.path(), &["init", "--target", "aws", "--context", "x"]).await;
    assert_eq!(context.code, 3, "{}", context.all());
    assert!(context.stderr.contains("kubeconfig"), "{}", context.stderr);
}
