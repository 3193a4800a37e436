//! `down` asks before it deletes, as Terraform does: on a terminal it shows
//! what goes (data first) and wants the stack name typed back before data
//! goes; without a terminal, `--delete-data` needs `--yes`.

use std::io::Write;

use crate::support::*;

const NS: &str = "pachyderm";

/// Runs `howdah args…` under a pseudo-terminal (util-linux `script`) with
/// `typed` as what the user types; returns (exit code, what the terminal
/// showed).
fn on_a_terminal(dir: &std::path::Path, args: &[&str], typed: &str) -> (i32, String) {
    let command = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir)
        .env_remove("HOWDAH_OUTPUT")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script runs");
    // Type once the question is up; the pty keeps it until it is read.
    std::thread::sleep(std::time::Duration::from_secs(3));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(typed.as_bytes());
    }
    let out = child.wait_with_output().expect("script ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_terminal_delete_data_needs_yes() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "careful", "");
    env.up_ok(&spec).await;
    let down = env
        .howdah(&["down", "-f", path(&spec), "--delete-data"])
        .await;
    assert_eq!(down.code, 3, "{}", down.all());
    assert!(down.stderr.contains("--yes"), "{}", down.stderr);
    assert!(
        get(&env, "Deployment", Some(NS), "pachd").await.is_some(),
        "down deleted something without --yes"
    );
    env.down_ok(&spec, &["--delete-data", "--auto-approve"])
        .await;
    assert!(get(&env, "Deployment", Some(NS), "pachd").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_terminal_data_goes_only_when_the_stack_name_is_typed() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("util-linux `script` is needed to drive a terminal");
    }
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "typed", "");
    env.up_ok(&spec).await;
    let args = [
        "down",
        "-f",
        path(&spec),
        "--delete-data",
        "--timeout",
        "60s",
    ];

    let (code, shown) = on_a_terminal(env.dir.path(), &args, "yes\n");
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("These delete data"), "{shown}");
    assert!(shown.contains("runtime.volumes"), "{shown}");
    assert!(shown.contains("Type the stack name (typed)"), "{shown}");
    assert!(shown.contains("nothing was changed"), "{shown}");
    assert!(get(&env, "Deployment", Some(NS), "pachd").await.is_some());

    let (code, shown) = on_a_terminal(env.dir.path(), &args, "typed\n");
    assert_eq!(code, 0, "{shown}");
    assert!(get(&env, "Deployment", Some(NS), "pachd").await.is_none());
}
