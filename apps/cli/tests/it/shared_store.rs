//! The CLI on the servers' Redis store: each command is a process sharing the store as
//! a server replica does (the server's own two-replica tests are in its `replicas`
//! module). A sign-in reuses what is stored there, a one-shot query keeps the shared
//! session, and a sign-out is honoured by every process sharing the store.

use devstack::RedisServer;

use crate::stack::{Setting, Stack, run};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn shared(stack: &Stack, redis: &RedisServer) -> Vec<Setting> {
    let mut settings = stack.settings();
    settings.push(("SESSION_STORE_URL", Some(redis.url())));
    settings.push(("SESSION_STORE_ENCRYPTION_KEY", Some(KEY.to_owned())));
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_shared_store_cli_processes_share_one_session_and_its_sign_out() {
    let stack = Stack::start().await;
    let redis = RedisServer::start().await.unwrap();
    let settings = shared(&stack, &redis);
    let (_, token) = stack.sign_in("carol@example.com");

    // Two sign-ins (two processes): one InstantDB session, stored in Redis.
    let first = run(&["sign-in", &token, "--json"], &settings, None);
    assert_eq!(first.code, 0, "{}", first.transcript());
    let second = run(&["sign-in", &token, "--json"], &settings, None);
    assert_eq!(second.code, 0, "{}", second.transcript());
    assert_eq!(
        first.json()["refresh_token"],
        second.json()["refresh_token"]
    );
    assert_eq!(stack.refresh_tokens(), 1);

    // A one-shot query uses the stored session and keeps it (the browser's too).
    let query = run(
        &["query", &token, r#"{"goals": {}}"#, "--json"],
        &settings,
        None,
    );
    assert_eq!(query.code, 0, "{}", query.transcript());
    assert_eq!(query.json()["sign_out"]["status"], "skipped");
    assert_eq!(stack.refresh_tokens(), 1);

    // Signed out by the CLI: the stored token ends, and the session is refused from
    // then on by anyone sharing the store.
    let out = run(&["sign-out", &token, "--json"], &settings, None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_eq!(
        out.json()["instant"]["status"],
        "done",
        "{}",
        out.transcript()
    );
    assert_eq!(stack.refresh_tokens(), 0);
    let again = run(&["sign-in", &token, "--json"], &settings, None);
    assert_eq!(again.code, 1, "{}", again.transcript());
    assert_eq!(again.json()["error"]["code"], "session-signed-out");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_whether_these_keys_open_what_the_shared_store_holds() {
    let stack = Stack::start().await;
    let redis = RedisServer::start().await.unwrap();
    let settings = shared(&stack, &redis);
    let (_, token) = stack.sign_in("dora@example.com");
    let first = run(&["sign-in", &token, "--json"], &settings, None);
    assert_eq!(first.code, 0, "{}", first.transcript());
    let store_check = |settings: &[Setting]| {
        let out = run(&["doctor", "--json"], settings, None);
        let checks = out.json()["checks"].as_array().unwrap().clone();
        let check = checks.into_iter().find(|c| c["id"] == "store").unwrap();
        (out.code, check)
    };

    let (_, check) = store_check(&settings);
    assert_eq!(check["status"], "pass", "{check}");

    // Another key (a servers' key this machine was not given): named, and failed.
    let mut other = stack.settings();
    other.push(("SESSION_STORE_URL", Some(redis.url())));
    other.push((
        "SESSION_STORE_ENCRYPTION_KEY",
        Some("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=".to_owned()),
    ));
    let (code, check) = store_check(&other);
    assert_ne!(code, 0);
    assert_eq!(check["status"], "fail", "{check}");
    let detail = check["detail"].as_str().unwrap();
    assert!(
        detail.contains("1 of the 1 newest sessions in Redis are sealed with a key"),
        "{detail}"
    );
    // Looking changed nothing: the session still serves with the right key.
    let again = run(&["sign-in", &token, "--json"], &settings, None);
    assert_eq!(again.json()["refresh_token"], first.json()["refresh_token"]);

    // Without a shared store there is nothing to check.
    let (_, check) = store_check(&stack.settings());
    assert_eq!(check["status"], "skip", "{check}");
}
