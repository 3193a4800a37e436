//! e2e/sandbox-demo.sh shows the build's progress instead of sitting
//! silent while cargo compiles (up to 15 minutes on a cold machine).

use std::os::unix::fs::PermissionsExt;

/// The demo run with a stand-in `cargo` first on PATH: it reports
/// progress the way cargo does (status lines on stderr, none with
/// `--quiet`/`-q`) and then fails, so the demo stops after its build.
#[test]
fn the_demo_shows_the_build_progress() {
    let bin = tempfile::tempdir().unwrap();
    let cargo = bin.path().join("cargo");
    std::fs::write(
        &cargo,
        "#!/bin/sh\n\
         for a in \"$@\"; do case \"$a\" in --quiet|-q) exit 1;; esac; done\n\
         echo '   Compiling howdah v0.1.0' >&2\n\
         echo '    Building [=====>    ] 120/400' >&2\n\
         exit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/sandbox-demo.sh"))
        .env("PATH", path)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("Compiling howdah"),
        "the build was silent:\n{all}"
    );
}
