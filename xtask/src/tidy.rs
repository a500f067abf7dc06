//! Hygiene checks of the whole tree, run as ordinary tests.

use std::path::{Path, PathBuf};

use crate::root;

/// Every file under `dir` (skipping build output and dependencies).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !matches!(
                    name.as_ref(),
                    "target" | "node_modules" | ".git" | "corpus" | "artifacts"
                ) {
                    stack.push(path);
                }
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The workspace members, from the root manifest.
fn members() -> Vec<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let start = manifest.find("members = [").expect("members list");
    let list = &manifest[start..manifest[start..].find(']').unwrap() + start];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_member_uses_the_workspace_lints() {
    for member in members() {
        let manifest = std::fs::read_to_string(root().join(&member).join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{member}/Cargo.toml must have `[lints] workspace = true`"
        );
    }
}

#[test]
fn nothing_reads_the_shared_directory() {
    // The shared directory exists only on the team's machines, never in a user's clone.
    let needle = ["..", "/shared"].concat();
    let absolute = ["/work", "/shared"].concat();
    for dir in ["crates", "apps", "xtask", ".ci"] {
        for file in files(&root().join(dir)) {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            assert!(
                !text.contains(&needle) && !text.contains(&absolute),
                "{} refers to the shared directory; copy the data into the project",
                file.display()
            );
        }
    }
}

#[test]
fn the_architecture_doc_covers_every_member() {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    for member in members() {
        assert!(
            doc.contains(&format!("`{member}`")),
            "docs/architecture.md does not describe `{member}`"
        );
    }
}

#[test]
fn the_readme_gives_the_test_command_and_the_toolchain_is_pinned() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("cargo xtask ci"));
    let toolchain = std::fs::read_to_string(root().join("rust-toolchain.toml")).unwrap();
    assert!(toolchain.contains("channel = \"1.95.0\""));
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(ci.contains("cargo xtask ci"));
}

#[test]
fn library_crates_do_not_read_the_environment_or_print() {
    // Only the apps (and xtask) read the environment and print.
    for file in files(&root().join("crates")) {
        let in_src = file.components().any(|c| c.as_os_str() == "src");
        if !in_src || file.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for forbidden in ["std::env::var", "env::var(", "println!", "eprintln!"] {
            assert!(
                !text.contains(forbidden),
                "{} uses `{forbidden}`: libraries take typed configuration and return data",
                file.display()
            );
        }
    }
}
