//! A real browser against the dev server: the dev console driven through every step,
//! CORS from app pages on other origins, and the frontend guide's snippet with the
//! real `@instantdb/core`. Needs Node.js, Debian's `chromium` and the test package
//! (`npm ci --prefix apps/server/tests/browser`); without them the tests fail and say
//! what to install (they are never skipped).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{any, get};
use clerk_instant_server::Running;
use clerk_instant_server::config::Mode;
use clerk_instant_server::cors::CorsOrigins;
use devstack::MintOptions;
use serde_json::Value;

const INSTALL: &str = "npm ci --prefix apps/server/tests/browser";
const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Fails, naming the install command, unless Node, Chromium and the package are here.
fn require_tools(dir: &Path) {
    let version = std::process::Command::new("node").arg("--version").output();
    let Some(version) = version.ok().filter(|o| o.status.success()) else {
        panic!(
            "Node.js (20 or later) is needed for this test: install it, then run `{INSTALL}` from the workspace root"
        );
    };
    assert!(
        Path::new(CHROMIUM).exists(),
        "Chromium is needed for this test ({CHROMIUM} missing): run `apt-get install -y chromium` (Debian), then `{INSTALL}` from the workspace root"
    );
    for package in ["playwright-core", "@instantdb/core"] {
        let manifest = dir.join("node_modules").join(package).join("package.json");
        assert!(
            manifest.exists(),
            "{package} is not installed ({} missing): run `{INSTALL}` from the workspace root (node {})",
            manifest.display(),
            String::from_utf8_lossy(&version.stdout).trim()
        );
    }
}

/// A listener on loopback for an app's pages, and its origin as a browser names it.
async fn app_listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    (listener, origin)
}

/// The dev server (the local stack in-process), allowing `origin` cross-origin.
async fn dev_server(origin: &str) -> Running {
    let mut options = crate::support::options();
    options.cors_origins = CorsOrigins::Only(vec![origin.to_owned()]);
    clerk_instant_server::start(Mode::Dev(Box::new(options)))
        .await
        .unwrap()
}

/// An app's pages: `/` (with an import map for `@instantdb/core`), `/core.js` (its
/// standalone build), `/frontend.js` (the guide's snippet), and `/instant/…`, the
/// InstantDB emulator behind the app's origin (the emulator answers no CORS).
fn app(dir: &Path, emulator: String) -> Router {
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let core = read(dir.join("node_modules/@instantdb/core/dist/standalone/index.js"));
    let snippet = read(dir.join("frontend.js"));
    let script = |body: String| {
        move || async move { ([(header::CONTENT_TYPE, "text/javascript")], body).into_response() }
    };
    Router::new()
        .route(
            "/",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html")],
                    r#"<!doctype html><title>app</title><script type="importmap">{"imports": {"@instantdb/core": "/core.js"}}</script>"#,
                )
            }),
        )
        .route("/core.js", get(script(core)))
        .route("/frontend.js", get(script(snippet)))
        .route("/instant/{*rest}", any(proxy))
        .with_state(emulator)
}

/// Forwards a request under `/instant` to the emulator.
async fn proxy(
    State(emulator): State<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let path = path.strip_prefix("/instant").unwrap_or(path);
    let mut request = reqwest::Client::new()
        .request(method, format!("{emulator}{path}"))
        .body(body);
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let Ok(answer) = request.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = answer.bytes().await.unwrap_or_default();
    let mut response = (status, bytes).into_response();
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

/// Serves `router` on `listener` until the test ends.
fn serve(listener: tokio::net::TcpListener, router: Router) {
    tokio::spawn(async move { axum::serve(listener, router).await });
}

/// Runs `node <script>` in the test package with `env`; its last stdout line as JSON.
async fn run_node(dir: &Path, script: &str, env: &[(&str, &str)]) -> Value {
    let child = tokio::process::Command::new("node")
        .arg(script)
        .current_dir(dir)
        .envs(env.iter().copied())
        .env("CHROMIUM", CHROMIUM)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} finishes within 90 s"))
        .expect("the script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stderr}\n{stdout}",
        output.status
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("unexpected output of {script} ({e}): {stdout}\n{stderr}"))
}

/// The outcome and error code a console step showed.
fn shown(report: &Value, step: &str) -> (String, String) {
    let step = &report[step];
    (
        step["outcome"].as_str().unwrap_or("(none)").to_owned(),
        step["code"].as_str().unwrap_or("(none)").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_console_walks_the_whole_flow_in_chromium_and_cors_holds_there() {
    let dir = browser_dir();
    require_tools(&dir);
    let (allowed, app_origin) = app_listener().await;
    let (other, other_origin) = app_listener().await;
    let running = dev_server(&app_origin).await;
    let stack = running.dev.as_ref().unwrap();
    let router = app(&dir, stack.instant.url().to_owned());
    serve(allowed, router.clone());
    serve(other, router);
    // A token that expired an hour ago, for the error the console must show.
    let signed_in = stack.clerk.sign_in("expired@example.com").unwrap();
    let expired = stack
        .clerk
        .mint_with(
            &signed_in.session.id,
            &MintOptions::new().issued_at(stack.clerk.now() - 3600),
        )
        .unwrap();

    let url = running.url();
    let report = run_node(
        &dir,
        "console.mjs",
        &[
            ("SERVER_URL", &url),
            ("EXPIRED_TOKEN", &expired),
            ("APP_ORIGIN", &app_origin),
            ("OTHER_ORIGIN", &other_origin),
        ],
    )
    .await;
    let ok = ("ok".to_owned(), String::new());
    for step in [
        "mint",
        "signIn",
        "me",
        "transact",
        "query",
        "signOut",
        "mintAgain",
        "signInAgain",
    ] {
        assert_eq!(shown(&report, step), ok, "{step}: {}", report[step]);
    }
    assert_eq!(report["minted"], true, "{report}");
    assert!(
        report["session"]
            .as_str()
            .unwrap_or("")
            .starts_with("sess_"),
        "{report}"
    );
    // The Clerk identity and the InstantDB user are shown.
    let signed_in = &report["signIn"];
    assert!(
        signed_in["clerk"]
            .as_str()
            .unwrap_or("")
            .contains("\"user_id\": \"user_"),
        "{signed_in}"
    );
    assert!(
        signed_in["instant"]
            .as_str()
            .unwrap_or("")
            .contains("browser@example.com"),
        "{signed_in}"
    );
    assert!(
        report["me"]["instant"]
            .as_str()
            .unwrap_or("")
            .contains("browser@example.com"),
        "{report}"
    );
    // The transaction's goal comes back from the query.
    assert!(
        report["query"]["output"]
            .as_str()
            .unwrap_or("")
            .contains("Get fit"),
        "{report}"
    );
    // Signed out: the server refuses the session.
    assert_eq!(
        shown(&report, "meAfterSignOut"),
        ("error".to_owned(), "session-signed-out".to_owned())
    );
    // Revoked in the local Clerk: the webhook ends the InstantDB session, the page
    // shows it, and a query is refused.
    assert_eq!(
        shown(&report, "revoke"),
        ("ok".to_owned(), "session-signed-out".to_owned()),
        "{}",
        report["revoke"]
    );
    assert!(
        report["revoke"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("InstantDB session ended"),
        "{report}"
    );
    assert_eq!(
        shown(&report, "queryAfterRevoke"),
        ("error".to_owned(), "session-signed-out".to_owned())
    );
    // An expired token is shown as such.
    assert_eq!(
        shown(&report, "expired"),
        ("error".to_owned(), "token-expired".to_owned()),
        "{}",
        report["expired"]
    );
    // The console loaded nothing from elsewhere and threw nothing.
    assert_eq!(
        report["foreign"],
        serde_json::json!([]),
        "the console loaded other sites' files"
    );
    assert_eq!(report["pageErrors"], serde_json::json!([]), "{report}");

    // CORS in a real browser: the allowed app reads the answer (with credentials),
    // the other origin's call is blocked by the browser.
    assert_eq!(
        report["corsAllowed"],
        serde_json::json!({"status": 200, "email": "cors@example.com"}),
        "{report}"
    );
    assert!(report["corsOther"]["blocked"].is_string(), "{report}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frontend_guide_signs_in_and_out_with_the_real_instantdb_core() {
    let dir = browser_dir();
    require_tools(&dir);
    let (listener, app_origin) = app_listener().await;
    let running = dev_server(&app_origin).await;
    let stack = running.dev.as_ref().unwrap();
    serve(listener, app(&dir, stack.instant.url().to_owned()));
    let app_id = stack.app.id.clone();

    let url = running.url();
    let report = run_node(
        &dir,
        "guide.mjs",
        &[
            ("SERVER_URL", &url),
            ("APP_ORIGIN", &app_origin),
            ("INSTANT_APP_ID", &app_id),
        ],
    )
    .await;
    assert_eq!(
        report["signedIn"],
        serde_json::json!({"email": "frontend@example.com", "hasRefreshToken": true}),
        "{report}"
    );
    assert_eq!(
        report["signedOut"],
        serde_json::json!({"user": null, "clerkSignedOut": true}),
        "{report}"
    );
    assert_eq!(report["reuse"], "refused", "{report}");
    assert_eq!(report["signInAgain"], "session-signed-out", "{report}");
    // subscribeAuth saw the user arrive and leave.
    let states = report["states"].as_array().cloned().unwrap_or_default();
    assert!(
        states.contains(&Value::from("frontend@example.com"))
            && states.last() == Some(&Value::Null),
        "{report}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn the_console_and_the_revoke_endpoint_exist_in_dev_mode_on_loopback_only() {
    // Configured mode: no dev route at all.
    let h = crate::support::Harness::start().await;
    for (method, path) in [
        (Method::GET, "/dev/console"),
        (Method::GET, "/dev/console/console.js"),
        (Method::POST, "/dev/session/revoke"),
    ] {
        let (status, body) = h.call(method, path, None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    h.shutdown().await;

    let running = dev_server("http://localhost:3000").await;
    let http = reqwest::Client::new();
    let get = |path: &str, host: Option<&str>| {
        let mut request = http.get(format!("{}{path}", running.url()));
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        request.send()
    };
    let page = get("/dev/console", None).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self'"),
        "{csp}"
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("/dev/console/console.js")
    );
    let script = get("/dev/console/console.js", None).await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(
        script.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    let missing = get("/dev/console/secrets.txt", None).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // A page on another site whose name resolves to 127.0.0.1 sends its own Host.
    let rebound = get("/dev/console", Some("evil.example.com")).await.unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    let body: Value = rebound.json().await.unwrap();
    assert_eq!(crate::support::code(&body), "dev-loopback-only");

    // Revoking: a session of the local Clerk is revoked there; a made-up one is a 404
    // and a malformed id a 400 (schemathesis found the made-up one answered 502, a
    // server error, for the client's mistake).
    let stack = running.dev.as_ref().unwrap();
    let signed_in = stack.clerk.sign_in("revoke@example.com").unwrap();
    let revoke = |id: String| {
        http.post(format!("{}/dev/session/revoke", running.url()))
            .json(&serde_json::json!({"session_id": id}))
            .send()
    };
    let answer = revoke(signed_in.session.id.clone()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"session_id": signed_in.session.id, "status": "revoked"})
    );
    let answer = revoke("sess_doesnotexist".to_owned()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(crate::support::code(&body), "not-found", "{body}");
    let answer = revoke("user_notasession".to_owned()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(crate::support::code(&body), "invalid-body", "{body}");
    running.shutdown().await;
}

#[test]
fn the_guide_shows_the_tested_snippet() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let guide = std::fs::read_to_string(root.join("docs/frontend.md")).unwrap();
    let snippet = std::fs::read_to_string(browser_dir().join("frontend.js")).unwrap();
    assert!(
        guide.contains(snippet.trim()),
        "docs/frontend.md must show apps/server/tests/browser/frontend.js as it is"
    );
}
