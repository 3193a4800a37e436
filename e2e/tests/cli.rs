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

/// A stack whose cluster refuses every connection: the client library
/// logs an ERROR (visible with HOWDAH_LOG=info) before howdah gives up.
fn unreachable_stack(dir: &std::path::Path) -> std::path::PathBuf {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"http://127.0.0.1:1\"}}]\n\
         users: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
    )
    .unwrap();
    let spec = dir.join("howdah.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: gone\ntarget: {{kubeconfig: {{path: {}}}}}\n",
            kubeconfig.display()
        ),
    )
    .unwrap();
    spec
}

/// The log lines of a run, without their timestamps.
fn log_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(" INFO ") || l.contains(" ERROR ") || l.contains(" WARN "))
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_shows_what_howdah_log_info_shows() {
    let dir = tempfile::tempdir().unwrap();
    let spec = unreachable_stack(dir.path());
    let status = |args: &[&str], log: Option<&str>| {
        let mut command = std::process::Command::new(BIN);
        command.arg("status").arg("-f").arg(&spec).args(args);
        command
            .env_remove("HOWDAH_LOG")
            .env("HOWDAH_OUTPUT", "plain");
        if let Some(log) = log {
            command.env("HOWDAH_LOG", log);
        }
        let out = command.output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let plain = status(&[], None);
    assert!(log_lines(&plain).is_empty(), "{plain}");
    let info = status(&[], Some("info"));
    assert!(
        !log_lines(&info).is_empty(),
        "HOWDAH_LOG=info shows nothing:\n{info}"
    );
    let verbose = status(&["-v"], None);
    assert_eq!(log_lines(&verbose), log_lines(&info), "{verbose}");
    let debug = status(&["-vv"], None);
    assert!(debug.contains(" DEBUG "), "{debug}");
    let both = run(dir.path(), &["status", "-q", "-v"]).await;
    assert_eq!(both.code, 3, "{}", both.all());
}

/// Runs `command` under a pseudo-terminal (util-linux `script`), as a
/// user at a terminal would, and returns what the terminal got.
fn on_a_terminal(command: &str, no_color: bool) -> Option<String> {
    let mut script = std::process::Command::new("script");
    script.args(["-qec", command, "/dev/null"]);
    script.env_remove("HOWDAH_OUTPUT").env_remove("NO_COLOR");
    if no_color {
        script.env("NO_COLOR", "1");
    }
    let out = script.output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colour_marks_the_outcome_and_never_or_no_color_turn_it_off() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "colour", "");
    let up = env
        .howdah(&[
            "up",
            "-f",
            path(&spec),
            "--timeout",
            "60s",
            "--color",
            "always",
        ])
        .await;
    assert_eq!(up.code, 0, "{}", up.all());
    assert!(
        up.stdout.contains("\x1b[32m"),
        "no green in:\n{}",
        up.stdout
    );
    let status = env
        .howdah(&["status", "-f", path(&spec), "--color", "always"])
        .await;
    assert_eq!(status.code, 0, "{}", status.all());
    assert!(status.stdout.contains("\x1b[32m✓"), "{}", status.stdout);
    for args in [&["--color", "never"][..], &[]] {
        let status = env
            .howdah(&[&["status", "-f", path(&spec)], args].concat())
            .await;
        assert!(
            !status.all().contains('\x1b'),
            "{args:?}:\n{}",
            status.all()
        );
    }
    // At a terminal colour is the default, and NO_COLOR turns it off,
    // log lines included.
    let command = format!("{BIN} status -v -f {}", path(&spec));
    let Some(coloured) = on_a_terminal(&command, false) else {
        eprintln!("no `script` on this machine: the terminal half is not run");
        return;
    };
    assert!(coloured.contains("\x1b[32m✓"), "{coloured}");
    let plain = on_a_terminal(&command, true).unwrap();
    assert!(plain.contains('✓'), "{plain}");
    assert!(!plain.contains('\x1b'), "{plain:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_prints_only_errors_and_the_summary() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "hush", "");
    let up = env
        .howdah(&["up", "-f", path(&spec), "--timeout", "60s", "-q"])
        .await;
    assert_eq!(up.code, 0, "{}", up.all());
    // The summary (its first line, then what to do next) and nothing else.
    let lines: Vec<&str> = up.stdout.lines().collect();
    assert!(lines[0].contains("up: "), "{}", up.stdout);
    assert_eq!(lines.get(1).copied(), Some("Next:"), "{}", up.stdout);
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("started") && !l.contains("done in")),
        "{}",
        up.stdout
    );
    assert!(up.stderr.is_empty(), "{}", up.stderr);
    let down = env
        .howdah(&[
            "down",
            "-f",
            path(&spec),
            "--timeout",
            "60s",
            "-q",
            "--delete-data",
            "--yes",
        ])
        .await;
    assert_eq!(down.code, 0, "{}", down.all());
    assert!(!down.stdout.contains("started"), "{}", down.stdout);
    assert!(down.stdout.contains("down: "), "{}", down.stdout);
}

/// On a terminal `up` shows one header line for the whole run: steps done
/// of all, elapsed, and the time left on the critical path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_has_a_header_with_overall_progress() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "header", "");
    let command = format!("{BIN} up -f {} --timeout 60s", path(&spec));
    let shown = on_a_terminal(&command, true).expect("util-linux `script` drives a terminal");
    assert!(shown.contains("up: 0/"), "{shown}");
    assert!(shown.contains("steps done · about"), "{shown}");
    assert!(shown.contains("left on the critical path"), "{shown}");
    assert!(shown.contains("elapsed"), "{shown}");
}

/// The screen a user sees after the run: `raw` played on a terminal
/// emulator `cols` wide and tall enough that nothing scrolls away (run the
/// command with `stty rows 1000`), one string per non-empty row.
fn visible_rows(raw: &str, cols: u16) -> Vec<String> {
    let mut terminal = vt100::Parser::new(1000, cols, 0);
    terminal.process(raw.as_bytes());
    terminal
        .screen()
        .rows(0, cols)
        .map(|r| r.trim_end().to_string())
        .filter(|r| !r.is_empty())
        .collect()
}

/// At 80 and 120 columns the plan's rows fit the terminal (reasons wrap
/// between words), and verification is a `check`, not a `no-op`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_fits_80_and_120_columns() {
    for columns in [80u16, 120] {
        let env = Env::start().await;
        let spec = env.stack(
            "howdah.yaml",
            "narrow",
            "pachyderm:\n  version: \"2.11.5\"\n",
        );
        env.up_ok(&spec).await;
        // An upgrade: the pachd row's reason is far longer than 80 columns.
        let spec = env.stack("howdah.yaml", "narrow", "");
        let command = format!(
            "stty cols {columns} rows 1000; {BIN} up -f {} --timeout 60s",
            path(&spec)
        );
        let raw = on_a_terminal(&command, true).expect("util-linux `script` drives a terminal");
        let rows = visible_rows(&raw, columns);
        let plan: Vec<&String> = rows
            .iter()
            .skip_while(|r| !r.starts_with("Plan for stack"))
            .take_while(|r| !r.starts_with("Expected time") && !r.starts_with("No changes"))
            .collect();
        assert!(plan.len() > 5, "{columns}: no plan in\n{}", rows.join("\n"));
        for row in &plan {
            assert!(
                row.chars().count() <= usize::from(columns),
                "{columns}: a plan row is wider than the terminal: {row:?}"
            );
        }
        assert!(
            plan.iter().any(|r| r.contains("upgrade pachd/pachd")),
            "{columns}: {plan:?}"
        );
        let verify: Vec<&String> = rows
            .iter()
            .filter(|r| r.contains("runtime.verify"))
            .collect();
        assert!(
            verify.iter().any(|r| r.contains("check")),
            "{columns}: {verify:?}"
        );
        assert!(
            verify.iter().all(|r| !r.contains("no-op")),
            "{columns}: {verify:?}"
        );
    }
}

/// A failure on a terminal: the failed rows come first, each with its
/// whole error once (the summary only names the steps), then the steps
/// it made skip; finished rows are printed once, never redrawn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_shows_a_failure_once_and_before_what_it_skipped() {
    let env = Env::with(howdah_kube_fake::FakeOptions {
        default_storage_class: false,
        ..Default::default()
    })
    .await;
    let spec = env.stack("howdah.yaml", "failing", "");
    let command = format!(
        "stty cols 80 rows 1000; {BIN} up -f {} --timeout 60s",
        path(&spec)
    );
    let raw = on_a_terminal(&command, true).expect("util-linux `script` drives a terminal");
    let rows = visible_rows(&raw, 80);
    let failed: Vec<usize> = (0..rows.len())
        .filter(|i| rows[*i].starts_with("✗ "))
        .collect();
    assert!(!failed.is_empty(), "{}", rows.join("\n"));
    for i in &failed {
        // The error's first line follows its row, and is shown once.
        let error = rows[i + 1].trim();
        assert!(rows[i + 1].starts_with("    "), "{}", rows.join("\n"));
        let shown = rows.iter().filter(|r| r.contains(error)).count();
        assert_eq!(
            shown,
            1,
            "{error:?} shown {shown} times:\n{}",
            rows.join("\n")
        );
    }
    let skipped: Vec<usize> = (0..rows.len())
        .filter(|i| rows[*i].starts_with("- ") && rows[*i].contains("skipped"))
        .collect();
    assert!(!skipped.is_empty(), "{}", rows.join("\n"));
    assert!(
        skipped.iter().all(|s| *s > failed[0]),
        "a skipped step is above the failure that made it skip:\n{}",
        rows.join("\n")
    );
    for row in rows
        .iter()
        .filter(|r| r.starts_with("- ") || r.starts_with("✓ "))
    {
        assert!(row.chars().count() <= 80, "{row:?}");
    }
    let summary = rows
        .iter()
        .find(|r| r.starts_with("up failed:"))
        .unwrap_or_else(|| panic!("no summary:\n{}", rows.join("\n")));
    assert!(summary.contains("runtime.postgres"), "{summary}");
    // Finished rows are printed once, not redrawn with every tick.
    let namespace = rows
        .iter()
        .filter(|r| r.starts_with("✓ runtime.namespace"))
        .count();
    assert_eq!(namespace, 1, "{}", rows.join("\n"));
}

/// Ctrl-C on a terminal: what finished before it is shown once, the rest
/// as skipped, and the summary says how to carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_after_ctrl_c_draws_each_finished_step_once() {
    for columns in [80u16, 120] {
        let env = Env::start().await;
        let spec = env.stack("howdah.yaml", "interrupted", "");
        let command = format!(
            "stty cols {columns} rows 1000; timeout -s INT 2 {BIN} up -f {} --timeout 60s",
            path(&spec)
        );
        let raw = on_a_terminal(&command, true).expect("util-linux `script` drives a terminal");
        let rows = visible_rows(&raw, columns);
        assert!(
            rows.iter().any(|r| r.contains("interrupted")),
            "{columns}: {}",
            rows.join("\n")
        );
        let mut seen = std::collections::HashMap::new();
        for row in rows.iter().filter(|r| r.starts_with("✓ ")) {
            let id = row
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            *seen.entry(id).or_insert(0) += 1;
        }
        assert!(
            seen.contains_key("runtime.namespace"),
            "{columns}: {}",
            rows.join("\n")
        );
        assert!(
            seen.values().all(|n| *n == 1),
            "{columns}: a finished row drawn more than once: {seen:?}\n{}",
            rows.join("\n")
        );
        for row in &rows {
            assert!(
                row.chars().count() <= usize::from(columns),
                "{columns}: {row:?}"
            );
        }
    }
}
