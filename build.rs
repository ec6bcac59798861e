//! Build-time inputs of the crate, before any of its code compiles:
//!
//! - Rebuilds when a migration is added or changed: `sqlx::migrate!` embeds the migrations at
//!   compile time, and cargo does not otherwise know that they are inputs.
//! - Sets `BILLSYNC_COMMIT` to the short commit hash (`git rev-parse --short HEAD`), or
//!   `unknown` when the source is not a git checkout (a tarball) or git is missing; read as
//!   `billsync::COMMIT` and shown by `billsync --version`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=BILLSYNC_COMMIT={commit}");
    // A new commit moves HEAD or the branch it names; rebuild then. Only files that exist
    // are named: cargo reruns a build script on every build when a named path is missing.
    let mut watched = Vec::new();
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        watched.push(format!("{git_dir}/HEAD"));
    }
    if let (Some(common), Some(head_ref)) = (
        git(&["rev-parse", "--git-common-dir"]),
        git(&["rev-parse", "--symbolic-full-name", "HEAD"]),
    ) {
        watched.push(format!("{common}/{head_ref}"));
        watched.push(format!("{common}/packed-refs"));
    }
    for path in watched {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// What git prints for `args`, trimmed, when git runs and succeeds with an answer.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}
