//! `cargo xtask dist`: the release artefacts for this platform, in `target/dist/`.
//!
//! 1. Builds the release server (`--no-default-features`: no local stack, as a
//!    production server should be) and the CLI (default features: its `dev` commands
//!    are for developers).
//! 2. Packs both binaries with `README.md`, the licence files present and the changelog
//!    section into `clerk-instant-<version>-<target triple>.tar.gz` (by `tar`).
//! 3. Writes `SHA256SUMS` (the `sha256sum -c` format) for the archive.
//! 4. Writes `CHANGELOG.md`: a section for this version, one line per commit subject
//!    since the last tag (every commit when there is no tag yet).
//! 5. Runs `cargo package --no-verify` for every library crate under `crates/`, so a
//!    publish would not fail on metadata. A crate that depends on other crates of the
//!    workspace is packed with `--exclude-lockfile`: those are not on crates.io yet, so
//!    its lockfile cannot be resolved; the others are resolved against crates.io as a
//!    publish would. A cargo warning fails the step.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};

use crate::{cargo, root, step};

/// The files of the archive besides the binaries, when present at the root.
const DOCS: &[&str] = &[
    "README.md",
    "LICENSE",
    "LICENSE-MIT",
    "LICENSE-APACHE",
    "LICENSE.md",
];

/// The binaries: (package, binary name, extra cargo build arguments).
const BINARIES: &[(&str, &str, &[&str])] = &[
    (
        "clerk-instant-server",
        "clerk-instant-server",
        &["--no-default-features"],
    ),
    ("clerk-instant-cli", "clerk-instant", &[]),
];

pub(crate) const USAGE: &str = "dist: release server and CLI archives, SHA256SUMS, CHANGELOG.md and a cargo package check, in target/dist/";

pub(crate) fn run() -> anyhow::Result<()> {
    let start = Instant::now();
    let version = workspace_version(&std::fs::read_to_string(root().join("Cargo.toml"))?)
        .context("the root Cargo.toml has no [workspace.package] version")?;
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let triple = host_triple(&output(Command::new(&rustc).arg("-vV"))?)
        .context("`rustc -vV` names no host")?;
    let target = target_dir();
    let dist = target.join("dist");
    std::fs::create_dir_all(&dist)?;

    for (package, _, extra) in BINARIES {
        let mut build = cargo();
        build
            .args(["build", "--release", "--locked", "-p", package])
            .args(*extra);
        step(&format!("build {package}"), build)?;
    }

    let changelog = changelog_section(&version, &commit_date()?, &commit_subjects()?);
    std::fs::write(dist.join("CHANGELOG.md"), &changelog)?;

    let name = archive_stem(&version, &triple);
    let staging = dist.join(&name);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging)?;
    for (_, binary, _) in BINARIES {
        let file = format!("{binary}{}", std::env::consts::EXE_SUFFIX);
        std::fs::copy(target.join("release").join(&file), staging.join(&file))
            .with_context(|| format!("copying the built {file}"))?;
    }
    for doc in DOCS {
        let path = root().join(doc);
        if path.exists() {
            std::fs::copy(&path, staging.join(doc))?;
        }
    }
    std::fs::copy(dist.join("CHANGELOG.md"), staging.join("CHANGELOG.md"))?;
    let archive = format!("{name}.tar.gz");
    let mut tar = Command::new("tar");
    tar.current_dir(&dist).args(["-czf", &archive, &name]);
    step("archive", tar)?;
    std::fs::remove_dir_all(&staging)?;

    let bytes = std::fs::read(dist.join(&archive))?;
    let sums = sums_file(&[(archive.clone(), sha256_hex(&bytes))]);
    std::fs::write(dist.join("SHA256SUMS"), &sums)?;

    check_packaging()?;

    eprintln!(
        "\nxtask dist: {} in {:.0} s\n  {archive}\n  SHA256SUMS\n  CHANGELOG.md\n\n{sums}\n{changelog}",
        dist.display(),
        start.elapsed().as_secs_f64(),
    );
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// A command's stdout as text; fails when it cannot start or fails.
fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .current_dir(root())
        .output()
        .with_context(|| format!("could not start {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The version in the `[workspace.package]` table of the root manifest.
fn workspace_version(manifest: &str) -> Option<String> {
    let table = &manifest[manifest.find("[workspace.package]")?..];
    let table = &table[..table[1..].find("\n[").map_or(table.len(), |end| end + 1)];
    table.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "version").then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The `host:` line of `rustc -vV`.
fn host_triple(rustc_version: &str) -> Option<String> {
    rustc_version
        .lines()
        .find_map(|line| line.strip_prefix("host:"))
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
}

fn archive_stem(version: &str, triple: &str) -> String {
    format!("clerk-instant-{version}-{triple}")
}

/// The date of the commit the release is built from (`YYYY-MM-DD`), so the section
/// does not change with the day it is built on.
fn commit_date() -> anyhow::Result<String> {
    Ok(
        output(Command::new("git").args(["log", "-1", "--format=%cs"]))?
            .trim()
            .to_owned(),
    )
}

/// The newest tag reachable from `HEAD`, or none.
fn last_tag() -> Option<String> {
    let out = Command::new("git")
        .current_dir(root())
        .args(["describe", "--tags", "--abbrev=0"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|tag| !tag.is_empty())
}

/// The `git log` arguments for the commits since `tag` (all of them without one).
fn log_args(tag: Option<&str>) -> Vec<String> {
    let range = tag.map_or_else(|| "HEAD".to_owned(), |tag| format!("{tag}..HEAD"));
    vec!["log".into(), "--format=%s".into(), range]
}

/// The subject lines of the commits since the last tag, newest first.
fn commit_subjects() -> anyhow::Result<Vec<String>> {
    let tag = last_tag();
    let log = output(Command::new("git").args(log_args(tag.as_deref())))?;
    Ok(log.lines().map(str::to_owned).collect())
}

/// A changelog section: the version and date as a heading, then one item per commit
/// subject, in the order given.
fn changelog_section(version: &str, date: &str, subjects: &[String]) -> String {
    let mut out = format!("## {version} ({date})\n\n");
    let subjects: Vec<&str> = subjects
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if subjects.is_empty() {
        out.push_str("- No changes since the last release.\n");
    }
    for subject in subjects {
        let _ = writeln!(out, "- {subject}");
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref().iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// `SHA256SUMS` in the format `sha256sum -c` reads: `<hex>  <file name>` lines, sorted
/// by file name.
fn sums_file(entries: &[(String, String)]) -> String {
    let mut entries = entries.to_vec();
    entries.sort();
    entries.iter().fold(String::new(), |mut out, (file, hex)| {
        let _ = writeln!(out, "{hex}  {file}");
        out
    })
}

/// A library crate of the workspace and whether it depends on another one.
struct Library {
    name: String,
    uses_workspace_crates: bool,
}

fn libraries() -> anyhow::Result<Vec<Library>> {
    let metadata = output(cargo().args([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]))?;
    let metadata: serde_json::Value = serde_json::from_str(&metadata)?;
    libraries_of(&metadata, &root())
}

/// The packages under `crates/`, from `cargo metadata --no-deps`.
fn libraries_of(metadata: &serde_json::Value, root: &Path) -> anyhow::Result<Vec<Library>> {
    let crates = root.join("crates");
    let mut out = Vec::new();
    for package in metadata["packages"].as_array().context("no packages")? {
        let name = package["name"].as_str().context("a package without name")?;
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        if !manifest.starts_with(&crates) {
            continue;
        }
        let uses_workspace_crates = package["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|dep| dep["path"].is_string() && dep["name"] != name);
        out.push(Library {
            name: name.to_owned(),
            uses_workspace_crates,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `cargo package --no-verify` for every library crate; a warning fails the step.
fn check_packaging() -> anyhow::Result<()> {
    let libraries = libraries()?;
    if libraries.is_empty() {
        bail!("no library crate found under crates/");
    }
    for library in &libraries {
        let mut cmd = cargo();
        cmd.args([
            "package",
            "--no-verify",
            "--allow-dirty",
            "-p",
            &library.name,
        ]);
        if library.uses_workspace_crates {
            cmd.arg("--exclude-lockfile");
        }
        let shown = format!("cargo package -p {}", library.name);
        eprintln!("\n==> package {}", library.name);
        let out = cmd
            .output()
            .with_context(|| format!("could not start `{shown}`"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprint!("{stderr}");
        if !out.status.success() {
            bail!("`{shown}` failed ({}): a publish would fail", out.status);
        }
        if let Some(warning) = stderr.lines().find(|l| l.starts_with("warning:")) {
            bail!("`{shown}` warns, fix the manifest: {warning}");
        }
    }
    eprintln!(
        "==> package: {} library crates pack (target/package/)",
        libraries.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_changelog_lists_each_subject_under_the_version() {
        let subjects = vec![
            "Server: a second listener for /metrics".to_owned(),
            "  ".to_owned(),
            "CLI: completions".to_owned(),
        ];
        assert_eq!(
            changelog_section("0.2.0", "2026-12-01", &subjects),
            "## 0.2.0 (2026-12-01)\n\n- Server: a second listener for /metrics\n- CLI: completions\n"
        );
        assert_eq!(
            changelog_section("0.2.0", "2026-12-01", &[]),
            "## 0.2.0 (2026-12-01)\n\n- No changes since the last release.\n"
        );
    }

    #[test]
    fn the_changelog_starts_after_the_last_tag_or_takes_every_commit() {
        assert_eq!(
            log_args(Some("v0.1.0")),
            ["log", "--format=%s", "v0.1.0..HEAD"]
        );
        assert_eq!(log_args(None), ["log", "--format=%s", "HEAD"]);
    }

    #[test]
    fn sums_are_sha256_in_the_sha256sum_format_sorted_by_name() {
        // FIPS 180-2's test vectors.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let sums = sums_file(&[
            ("b.tar.gz".into(), sha256_hex(b"abc")),
            ("a.tar.gz".into(), sha256_hex(b"")),
        ]);
        assert_eq!(
            sums,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a.tar.gz\n\
             ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  b.tar.gz\n"
        );
    }

    #[test]
    fn sums_files_pass_sha256sum_check() {
        let dir = std::env::temp_dir().join(format!("xtask-dist-sums-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("one.tar.gz"), b"one").unwrap();
        std::fs::write(dir.join("two.tar.gz"), b"two").unwrap();
        let sums = sums_file(&[
            ("one.tar.gz".into(), sha256_hex(b"one")),
            ("two.tar.gz".into(), sha256_hex(b"two")),
        ]);
        std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
        let check = Command::new("sha256sum")
            .current_dir(&dir)
            .args(["-c", "SHA256SUMS"])
            .output()
            .expect("sha256sum runs");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );
    }

    #[test]
    fn names_come_from_the_manifest_and_rustc() {
        let manifest = "[workspace]\nmembers = []\n\n[workspace.package]\nversion = \"1.2.3\"\nedition = \"2024\"\n\n[workspace.dependencies]\nversion = \"9\"\n";
        assert_eq!(workspace_version(manifest).as_deref(), Some("1.2.3"));
        assert_eq!(workspace_version("[package]\nversion = \"1\"\n"), None);
        let rustc = "rustc 1.95.0 (abc 2026-01-01)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\n";
        let triple = host_triple(rustc).unwrap();
        assert_eq!(triple, "x86_64-unknown-linux-gnu");
        assert_eq!(
            archive_stem("1.2.3", &triple),
            "clerk-instant-1.2.3-x86_64-unknown-linux-gnu"
        );
    }

    #[test]
    fn library_crates_are_the_members_under_crates() {
        let metadata = serde_json::json!({"packages": [
            {"name": "leaf", "manifest_path": "/ws/crates/leaf/Cargo.toml",
             "dependencies": [{"name": "serde"}, {"name": "leaf", "path": "/ws/crates/leaf"}]},
            {"name": "core", "manifest_path": "/ws/crates/core/Cargo.toml",
             "dependencies": [{"name": "leaf", "path": "/ws/crates/leaf"}]},
            {"name": "app", "manifest_path": "/ws/apps/app/Cargo.toml", "dependencies": []},
        ]});
        let libraries = libraries_of(&metadata, Path::new("/ws")).unwrap();
        let found: Vec<(&str, bool)> = libraries
            .iter()
            .map(|l| (l.name.as_str(), l.uses_workspace_crates))
            .collect();
        assert_eq!(found, [("core", true), ("leaf", false)]);
    }
}
