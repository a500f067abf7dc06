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

/// The architecture, as `cargo metadata` sees it: which project crate depends on which.
mod dependencies {
    use std::collections::{BTreeMap, BTreeSet};
    use std::process::Command;

    use serde_json::Value;

    use crate::root;

    /// Crates that depend on no project crate and may be used by any other.
    const LEAVES: &[&str] = &["clerk-jwt", "clerk-webhooks", "instant-client"];
    /// Small crates below the leaves: they too depend on no project crate.
    const FOUNDATIONS: &[&str] = &["http-retry"];
    /// Crates with the `testing` feature of another project crate in their normal
    /// dependencies (everyone else takes it only as a dev-dependency).
    const MAY_USE_TESTING: &[&str] = &["devstack"];
    /// Crates only the apps may depend on (the settings they read from flags and the
    /// environment).
    const APPS_ONLY: &[&str] = &["service-config"];
    /// Crates that may have `anyhow` among their normal dependencies.
    fn may_use_anyhow(name: &str, is_app: bool) -> bool {
        is_app || name == "xtask"
    }

    /// One dependency edge between workspace members.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    pub(super) struct Edge {
        pub(super) from: String,
        pub(super) to: String,
        /// `normal`, `dev` or `build`.
        pub(super) kind: String,
        pub(super) features: Vec<String>,
    }

    /// What the rules need to know of the workspace.
    #[derive(Debug, Default)]
    pub(super) struct Workspace {
        /// Member name → whether it is an app (it lives under `apps/`).
        pub(super) members: BTreeMap<String, bool>,
        pub(super) edges: Vec<Edge>,
        /// Members with `anyhow` among their normal dependencies.
        pub(super) anyhow: BTreeSet<String>,
    }

    impl Workspace {
        /// Reads `cargo metadata` (no network, no dependency resolution).
        pub(super) fn load() -> Workspace {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let output = Command::new(cargo)
                .current_dir(root())
                .args([
                    "metadata",
                    "--format-version",
                    "1",
                    "--no-deps",
                    "--offline",
                ])
                .output()
                .expect("cargo metadata runs");
            assert!(
                output.status.success(),
                "cargo metadata failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let metadata: Value = serde_json::from_slice(&output.stdout).expect("JSON");
            Workspace::from_metadata(&metadata)
        }

        pub(super) fn from_metadata(metadata: &Value) -> Workspace {
            let root = metadata["workspace_root"].as_str().unwrap_or_default();
            let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
            let mut workspace = Workspace::default();
            for package in &packages {
                let name = package["name"].as_str().unwrap_or_default().to_owned();
                let manifest = package["manifest_path"].as_str().unwrap_or_default();
                let relative = manifest.strip_prefix(root).unwrap_or(manifest);
                let is_app = relative.trim_start_matches('/').starts_with("apps/");
                workspace.members.insert(name, is_app);
            }
            for package in &packages {
                let from = package["name"].as_str().unwrap_or_default();
                for dep in package["dependencies"].as_array().into_iter().flatten() {
                    let to = dep["name"].as_str().unwrap_or_default();
                    let kind = dep["kind"].as_str().unwrap_or("normal").to_owned();
                    if to == "anyhow" && kind != "dev" {
                        workspace.anyhow.insert(from.to_owned());
                    }
                    if !workspace.members.contains_key(to) || to == from {
                        continue;
                    }
                    let features = dep["features"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|f| f.as_str().map(str::to_owned))
                        .collect();
                    workspace.edges.push(Edge {
                        from: from.to_owned(),
                        to: to.to_owned(),
                        kind,
                        features,
                    });
                }
            }
            workspace.edges.sort();
            workspace
        }

        /// Every broken rule, as a sentence.
        pub(super) fn violations(
            &self,
            declared: &BTreeMap<String, BTreeSet<String>>,
        ) -> Vec<String> {
            let mut out = Vec::new();
            let is_app = |name: &str| self.members.get(name).copied().unwrap_or(false);
            for edge in &self.edges {
                let (from, to) = (edge.from.as_str(), edge.to.as_str());
                if is_app(to) {
                    out.push(format!(
                        "{from} depends on the app {to}: nothing depends on an app"
                    ));
                }
                if (LEAVES.contains(&from) && !FOUNDATIONS.contains(&to))
                    || FOUNDATIONS.contains(&from)
                {
                    out.push(format!(
                        "{from} depends on {to}: the leaves depend on no project crate but the foundations, which depend on none"
                    ));
                }
                if APPS_ONLY.contains(&to) && !is_app(from) && edge.kind != "dev" {
                    out.push(format!("{from} depends on {to}: only the apps may"));
                }
                if from == "devstack" && to == "instant-client" {
                    out.push(
                        "devstack depends on instant-client: the emulator must not be shaped by the client it tests"
                            .to_owned(),
                    );
                }
                if edge.features.iter().any(|f| f == "testing")
                    && edge.kind != "dev"
                    && !MAY_USE_TESTING.contains(&from)
                {
                    out.push(format!(
                        "{from} enables {to}'s `testing` feature outside its dev-dependencies"
                    ));
                }
            }
            for name in &self.anyhow {
                if !may_use_anyhow(name, is_app(name)) {
                    out.push(format!(
                        "{name} depends on anyhow: libraries return their own typed Error"
                    ));
                }
            }
            // The documented table and the manifests say the same.
            for name in self.members.keys() {
                let actual: BTreeSet<String> = self
                    .edges
                    .iter()
                    .filter(|e| e.from == *name && e.kind != "dev")
                    .map(|e| e.to.clone())
                    .collect();
                match declared.get(name) {
                    None => out.push(format!(
                        "docs/architecture.md's dependency table has no line for {name}"
                    )),
                    Some(listed) if *listed != actual => out.push(format!(
                        "{name}: docs/architecture.md lists {listed:?}, the manifest has {actual:?}"
                    )),
                    Some(_) => {}
                }
            }
            for name in declared.keys() {
                if !self.members.contains_key(name) {
                    out.push(format!(
                        "docs/architecture.md's dependency table names {name}, which is no member"
                    ));
                }
            }
            out
        }
    }

    /// The table between `<!-- dependencies -->` and `<!-- /dependencies -->` in the
    /// architecture doc: one `crate: dep dep …` line per member (`-` for none).
    pub(super) fn declared(doc: &str) -> BTreeMap<String, BTreeSet<String>> {
        let start = doc
            .find("<!-- dependencies -->")
            .expect("docs/architecture.md has a <!-- dependencies --> table");
        let end = doc[start..]
            .find("<!-- /dependencies -->")
            .expect("the dependency table is closed")
            + start;
        doc[start..end]
            .lines()
            .filter_map(|line| line.split_once(':'))
            .filter(|(name, _)| !name.contains(' ') && !name.starts_with("<!--"))
            .map(|(name, deps)| {
                let deps = deps
                    .split_whitespace()
                    .filter(|d| *d != "-")
                    .map(str::to_owned)
                    .collect();
                (name.trim().to_owned(), deps)
            })
            .collect()
    }
}

#[test]
fn dependencies_point_the_way_the_architecture_doc_says() {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let declared = dependencies::declared(&doc);
    let workspace = dependencies::Workspace::load();
    assert!(workspace.members.contains_key("clerk-jwt"), "{workspace:?}");
    let violations = workspace.violations(&declared);
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn each_dependency_rule_catches_its_breach() {
    use serde_json::json;
    let package = |name: &str, dir: &str, deps: serde_json::Value| {
        json!({
            "name": name,
            "manifest_path": format!("/ws/{dir}/{name}/Cargo.toml"),
            "dependencies": deps,
        })
    };
    let dep = |name: &str, kind: Option<&str>, features: &[&str]| json!({"name": name, "kind": kind, "features": features});
    let metadata = json!({
        "workspace_root": "/ws",
        "packages": [
            package("clerk-jwt", "crates", json!([dep("auth-core", None, &[])])),
            package("http-retry", "crates", json!([])),
            package("instant-client", "crates", json!([dep("http-retry", None, &[])])),
            package("service-config", "crates", json!([])),
            package("auth-core", "crates", json!([
                dep("service-config", None, &[]),
                dep("clerk-jwt", None, &["testing"]),
                dep("anyhow", None, &[]),
                dep("server", None, &[]),
            ])),
            package("devstack", "crates", json!([
                dep("instant-client", None, &[]),
                dep("clerk-jwt", None, &["testing"]),
            ])),
            package("server", "apps", json!([
                dep("anyhow", None, &[]),
                dep("clerk-jwt", Some("dev"), &["testing"]),
                dep("auth-core", None, &[]),
            ])),
        ],
    });
    let workspace = dependencies::Workspace::from_metadata(&metadata);
    let declared = dependencies::declared(
        "<!-- dependencies -->\nclerk-jwt: auth-core\nhttp-retry: -\ninstant-client: http-retry\nservice-config: -\nauth-core: clerk-jwt\ndevstack: clerk-jwt instant-client\nserver: auth-core\nghost: -\n<!-- /dependencies -->",
    );
    let violations = workspace.violations(&declared).join("\n");
    for expected in [
        "clerk-jwt depends on auth-core: the leaves",
        "auth-core depends on the app server",
        "auth-core depends on service-config: only the apps may",
        "devstack depends on instant-client",
        "auth-core enables clerk-jwt's `testing` feature",
        "auth-core depends on anyhow",
        "auth-core: docs/architecture.md lists",
        "names ghost, which is no member",
    ] {
        assert!(
            violations.contains(expected),
            "missing {expected:?} in:\n{violations}"
        );
    }
    for allowed in [
        "instant-client depends on http-retry",
        "server depends on anyhow",
        "devstack enables",
        "server enables",
    ] {
        assert!(
            !violations.contains(allowed),
            "{allowed:?} is allowed:\n{violations}"
        );
    }
}

#[test]
fn production_builds_of_the_apps_carry_no_test_code() {
    // Without the default `local-stack` feature, neither app links the local stack nor
    // any crate's `testing` feature (token minting).
    for app in ["clerk-instant-server", "clerk-instant-cli"] {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = std::process::Command::new(cargo)
            .current_dir(root())
            .args(["tree", "--offline", "-e", "normal,features", "-p", app])
            .arg("--no-default-features")
            .output()
            .expect("cargo tree runs");
        assert!(
            output.status.success(),
            "cargo tree failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let tree = String::from_utf8_lossy(&output.stdout);
        assert!(tree.contains("auth-core"), "{tree}");
        for forbidden in ["devstack", "feature \"testing\""] {
            assert!(
                !tree.contains(forbidden),
                "{app} --no-default-features links {forbidden}:\n{tree}"
            );
        }
    }
}
