//! Sets what `clerk_instant_build_info` reports besides the version: the git commit
//! (`CLERK_INSTANT_GIT_COMMIT` when the build sets it, else `git rev-parse`, else
//! `unknown`, as in a crates.io download) and the compiler's version. Standard
//! library only: a missing `git` or `rustc --version` failing gives `unknown`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CLERK_INSTANT_GIT_COMMIT");
    let commit = match std::env::var("CLERK_INSTANT_GIT_COMMIT") {
        Ok(commit) if !commit.trim().is_empty() => commit.trim().to_owned(),
        _ => git_commit().unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo::rustc-env=CLERK_INSTANT_GIT_COMMIT={commit}");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = output(Command::new(rustc).arg("--version"))
        // `rustc 1.95.0 (hash date)`.
        .and_then(|text| text.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo::rustc-env=CLERK_INSTANT_RUSTC_VERSION={version}");
}

/// The commit checked out, rebuilt when it changes (a commit or a checkout moves the
/// checkout's `HEAD` reflog).
fn git_commit() -> Option<String> {
    let git_dir = PathBuf::from(output(
        Command::new("git").args(["rev-parse", "--absolute-git-dir"]),
    )?);
    for file in ["HEAD", "logs/HEAD"] {
        let path = git_dir.join(file);
        if path.exists() {
            println!("cargo::rerun-if-changed={}", path.display());
        }
    }
    // No `-dirty` mark: edits to the working tree do not rerun this script, so it
    // would go stale.
    output(Command::new("git").args(["rev-parse", "--short=12", "HEAD"]))
}

/// The trimmed standard output of a command that succeeded.
fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
