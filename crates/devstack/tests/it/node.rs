//! The official `@instantdb/admin` SDK against the emulator. Needs Node.js and the
//! package installed with `npm ci --prefix crates/devstack/tests/node`; without them
//! the test fails and says so (it is never skipped).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::stack;

const INSTALL: &str = "npm ci --prefix crates/devstack/tests/node";

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_admin_sdk_works_against_the_emulator() {
    let dir = node_dir();
    let version = std::process::Command::new("node").arg("--version").output();
    let Some(version) = version.ok().filter(|o| o.status.success()) else {
        panic!(
            "Node.js (20 or later) is needed for this test: install it, then run `{INSTALL}` from the workspace root"
        );
    };
    let package = dir.join("node_modules/@instantdb/admin/package.json");
    assert!(
        package.exists(),
        "@instantdb/admin is not installed ({} missing): run `{INSTALL}` from the workspace root (node {})",
        package.display(),
        String::from_utf8_lossy(&version.stdout).trim()
    );

    let stack = stack().await;
    let child = tokio::process::Command::new("node")
        .arg("conformance.mjs")
        .current_dir(&dir)
        .env("INSTANT_API_URI", stack.instant.url())
        .env("INSTANT_APP_ID", &stack.app.id)
        .env("INSTANT_APP_ADMIN_TOKEN", stack.app.admin_token.expose())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the script finishes within 60 s")
        .expect("the script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "conformance.mjs failed ({}):\n{stderr}\n{stdout}",
        output.status
    );
    let report: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("unexpected output ({e}): {stdout}"));
    assert_eq!(report["ok"], true);

    // What the SDK did is in the store.
    let app = &stack.app.id;
    assert_eq!(stack.instant.users(app).unwrap(), Vec::<Value>::new());
    assert_eq!(stack.instant.refresh_tokens_total(app).unwrap(), 0);
    let goals = stack.instant.entities(app, "goals").unwrap();
    assert_eq!(goals[0]["id"], report["goalId"]);
    assert_eq!(goals[0]["title"], "Get fit");
    stack.shutdown().await;
}
