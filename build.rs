//! Records the git commit the binary is built from, for `howdah --version`.
//! Outside a git checkout of this project (a source tarball, no git on the
//! machine) the commit is "unknown": the build never fails for want of it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(&dir)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    // Only this project's own checkout counts: a tarball unpacked inside
    // some other repository must not report that repository's commit.
    let ours =
        git(&["rev-parse", "--show-toplevel"]).is_some_and(|top| same_dir(Path::new(&top), &dir));
    let commit = if ours {
        git(&["rev-parse", "--short", "HEAD"])
    } else {
        None
    };
    println!(
        "cargo:rustc-env=HOWDAH_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
    if !ours {
        return;
    }
    // Run again when HEAD moves: a checkout (HEAD), a commit on the branch
    // (its ref, or packed-refs once git packs it). Only files that exist
    // are named: cargo reruns every time for a missing one.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            let path = dir.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
