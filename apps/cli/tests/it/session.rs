//! `sign-in`, `sign-out`, `query` and `transact` against the local stack.

use devstack::Fault;

use crate::assert_redacted_snapshot;
use crate::stack::{Stack, run, with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_prints_the_instant_session_as_text_and_json() {
    let stack = Stack::start().await;
    let (_, token) = stack.sign_in("alice@example.com");

    let out = run(&["sign-in", &token], &stack.settings(), None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_redacted_snapshot!("sign_in_text", stack.redact(&out, Some(&token)));

    // From stdin, as JSON: the same user, now existing, with another refresh token.
    let out = run(
        &["sign-in", "-", "--json"],
        &stack.settings(),
        Some(&format!("{token}\n")),
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    let json = out.json();
    assert_eq!(json["user"]["email"], "alice@example.com");
    assert_eq!(json["created"], false);
    assert_eq!(json["clerk"]["email"], "alice@example.com");
    let refresh_token = json["refresh_token"].as_str().unwrap();
    assert_eq!(
        stack
            .stack
            .instant
            .refresh_token_user(
                &stack.stack.app.id,
                &devstack::RefreshToken::new(refresh_token)
            )
            .unwrap()
            .as_deref(),
        json["user"]["id"].as_str()
    );
    assert_redacted_snapshot!("sign_in_json", stack.redact(&out, Some(&token)));
    // sign-in exists to hand out a session: both are still valid.
    assert_eq!(stack.refresh_tokens(), 2);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_ends_the_instant_session_then_revokes_the_clerk_session() {
    let stack = Stack::start().await;
    let (session_id, token) = stack.sign_in("bob@example.com");
    let signed_in = run(&["sign-in", &token, "--json"], &stack.settings(), None);
    let refresh_token = signed_in.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(stack.refresh_tokens(), 1);

    let out = run(
        &["sign-out", &token, "--refresh-token", &refresh_token],
        &stack.settings(),
        None,
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(!out.transcript().contains(&refresh_token));
    assert_redacted_snapshot!("sign_out_text", stack.redact(&out, Some(&token)));
    assert_eq!(stack.refresh_tokens(), 0);
    assert_eq!(stack.clerk_session_status(&session_id), "revoked");
    // The local Clerk mints no more tokens for the revoked session.
    assert!(stack.stack.clerk.mint(&session_id).is_err());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_without_a_secret_key_skips_the_clerk_half() {
    let stack = Stack::start().await;
    let (session_id, token) = stack.sign_in("carol@example.com");
    let refresh_token =
        run(&["sign-in", &token, "--json"], &stack.settings(), None).json()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    let settings = with(stack.settings(), "CLERK_SECRET_KEY", None);

    // The refresh token from stdin, the Clerk token as an argument.
    let out = run(
        &["sign-out", &token, "--refresh-token", "-", "--json"],
        &settings,
        Some(&refresh_token),
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_redacted_snapshot!(
        "sign_out_no_secret_key_json",
        stack.redact(&out, Some(&token))
    );
    assert_eq!(stack.refresh_tokens(), 0);
    assert_eq!(stack.clerk_session_status(&session_id), "active");

    // Without --refresh-token, only the Clerk half is done.
    let out = run(&["sign-out", &token], &stack.settings(), None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_redacted_snapshot!(
        "sign_out_no_refresh_token_text",
        stack.redact(&out, Some(&token))
    );
    assert_eq!(stack.clerk_session_status(&session_id), "revoked");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_clerk_revoke_is_reported_and_the_instant_half_still_done() {
    let stack = Stack::start().await;
    let (session_id, token) = stack.sign_in("dave@example.com");
    let refresh_token =
        run(&["sign-in", &token, "--json"], &stack.settings(), None).json()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    stack
        .stack
        .clerk
        .faults()
        .inject("POST /v1/sessions/*/revoke", Fault::status(503), 1)
        .unwrap();

    let out = run(
        &["sign-out", &token, "--refresh-token", &refresh_token],
        &stack.settings(),
        None,
    );
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert_redacted_snapshot!(
        "sign_out_clerk_failed_text",
        stack.redact(&out, Some(&token))
    );
    assert_eq!(stack.refresh_tokens(), 0);
    assert_eq!(stack.clerk_session_status(&session_id), "active");

    // JSON: the error and both halves in one object; a retry revokes the session.
    stack
        .stack
        .clerk
        .faults()
        .inject("POST /v1/sessions/*/revoke", Fault::status(503), 1)
        .unwrap();
    let out = run(&["sign-out", &token, "--json"], &stack.settings(), None);
    assert_eq!(out.code, 1, "{}", out.transcript());
    let json = out.json();
    assert_eq!(json["error"]["code"], "sign-out-incomplete");
    assert_eq!(json["instant"]["status"], "skipped");
    assert_eq!(json["clerk_session"]["status"], "failed");
    let out = run(&["sign-out", &token, "--json"], &stack.settings(), None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_eq!(stack.clerk_session_status(&session_id), "revoked");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_transact_run_as_the_user_and_leave_no_refresh_token() {
    let stack = Stack::start().await;
    let (_, token) = stack.sign_in("erin@example.com");
    let goal = "00000000-0000-4000-8000-00000000000a";
    let steps = format!(r#"[["update", "goals", "{goal}", {{"title": "Run a marathon"}}]]"#);

    let out = run(&["transact", &token, &steps], &stack.settings(), None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_redacted_snapshot!("transact_text", stack.redact(&out, Some(&token)));
    assert_eq!(stack.refresh_tokens(), 0);

    // The wire format's object form, from a file, as JSON.
    let dir = std::env::temp_dir().join(format!("clerk-instant-cli-tx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("steps.json");
    std::fs::write(
        &file,
        format!(r#"{{"steps": [["update", "goals", "{goal}", {{"done": true}}]]}}"#),
    )
    .unwrap();
    let out = run(
        &[
            "transact",
            &token,
            &format!("@{}", file.display()),
            "--json",
        ],
        &stack.settings(),
        None,
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    let json = out.json();
    assert!(json["tx_id"].is_i64(), "{json}");
    assert_eq!(json["sign_out"]["status"], "done");

    let query = r#"{"goals": {}}"#;
    let out = run(&["query", &token, query], &stack.settings(), None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_redacted_snapshot!("query_text", stack.redact(&out, Some(&token)));

    // The query from stdin, as JSON.
    let out = run(
        &["query", &token, "@-", "--json"],
        &stack.settings(),
        Some(query),
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_redacted_snapshot!("query_json", stack.redact(&out, Some(&token)));
    assert_eq!(
        out.json()["result"]["goals"][0],
        serde_json::json!({"id": goal, "title": "Run a marathon", "done": true})
    );
    // Every command signed its session out again.
    assert_eq!(stack.refresh_tokens(), 0);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_bad_tokens_are_reported_without_calling_instant() {
    let stack = Stack::start().await;
    let (_, token) = stack.sign_in("frank@example.com");
    let settings = stack.settings();
    let cases: [(&str, &[&str], Option<&str>); 5] = [
        ("query_not_an_object", &["query", &token, "[1]"], None),
        ("query_not_json", &["query", &token, "{goals"], None),
        (
            "transact_bad_step",
            &[
                "transact",
                &token,
                r#"[["update", "goals", "not-a-uuid", {}]]"#,
            ],
            None,
        ),
        ("both_from_stdin", &["query", "-", "@-"], Some("x")),
        ("sign_in_not_a_token", &["sign-in", "not-a-token"], None),
    ];
    let mut transcripts = String::new();
    for (name, args, stdin) in cases {
        let out = run(args, &settings, stdin);
        let expected = if name == "sign_in_not_a_token" { 1 } else { 2 };
        assert_eq!(out.code, expected, "{name}: {}", out.transcript());
        transcripts.push_str(&format!("== {name}\n{}", stack.redact(&out, Some(&token))));
    }
    assert_redacted_snapshot!("bad_input", transcripts);
    let out = run(&["sign-in", "not-a-token", "--json"], &settings, None);
    assert_eq!(out.json()["error"]["code"], "token-invalid");
    assert_eq!(stack.refresh_tokens(), 0);
    stack.shutdown().await;
}

#[test]
fn bad_configuration_lists_every_problem_and_exits_2() {
    let settings = vec![
        (
            "CLERK_PUBLISHABLE_KEY",
            Some("pk_test_bm90LWEta2V5".to_owned()),
        ),
        ("CLERK_SECRET_KEY", Some("pk_test_oops".to_owned())),
        ("INSTANT_APP_ID", Some("my-app".to_owned())),
        ("INSTANT_API_URI", Some("api.instantdb.com".to_owned())),
        ("SIGN_IN_STRATEGY", Some("magic".to_owned())),
    ];
    let text = run(&["sign-in", "x"], &settings, None).transcript();
    assert!(text.starts_with("exit: 2\n"), "{text}");
    insta::assert_snapshot!("bad_configuration_text", text);
    let none = run(&["query", "x", "{}"], &[], None).transcript();
    insta::assert_snapshot!("no_configuration_text", none);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_strategy_signs_in_by_verified_email() {
    let stack = Stack::start().await;
    let (_, token) = stack.sign_in("gina@example.com");
    let settings = with(stack.settings(), "SIGN_IN_STRATEGY", Some("admin"));
    // The admin strategy needs no Clerk client in InstantDB.
    let settings = with(
        settings,
        "INSTANT_CLERK_CLIENT_NAME",
        Some("no-such-client"),
    );

    let out = run(&["sign-in", &token, "--json"], &settings, None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_eq!(out.json()["user"]["email"], "gina@example.com");
    let out = run(
        &["query", &token, r#"{"goals": {}}"#, "--json"],
        &settings,
        None,
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_eq!(out.json()["result"], serde_json::json!({"goals": []}));
    assert_eq!(stack.refresh_tokens(), 1);

    // A token without email_verified: the admin strategy refuses it.
    let unverified = stack.token_without("hank@example.com", "email_verified");
    let out = run(&["sign-in", &unverified, "--json"], &settings, None);
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert_eq!(out.json()["error"]["code"], "email-unverified");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_the_environment_a_file_or_stdin_not_only_arguments() {
    let stack = Stack::start().await;
    let secret_key = stack.stack.clerk.secret_key().expose().to_owned();
    let without_secret = with(stack.settings(), "CLERK_SECRET_KEY", None);
    let sign_in = |token: &str| {
        run(&["sign-in", token, "--json"], &stack.settings(), None).json()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let dir = std::env::temp_dir().join(format!("clerk-instant-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{text}\n")).unwrap();
        path.display().to_string()
    };

    // The refresh token from INSTANT_REFRESH_TOKEN, the secret key from a file.
    let (session_id, token) = stack.sign_in("erin@example.com");
    let refresh_token = sign_in(&token);
    let key_file = file("sk", &secret_key);
    let out = run(
        &["sign-out", &token, "--clerk-secret-key-file", &key_file],
        &with(
            without_secret.clone(),
            "INSTANT_REFRESH_TOKEN",
            Some(&refresh_token),
        ),
        None,
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_eq!(stack.refresh_tokens(), 0);
    assert_eq!(stack.clerk_session_status(&session_id), "revoked");

    // The refresh token from a file, the secret key from stdin.
    let (session_id, token) = stack.sign_in("frank@example.com");
    let refresh_token = sign_in(&token);
    let refresh_file = file("rt", &refresh_token);
    let out = run(
        &[
            "sign-out",
            &token,
            "--refresh-token-file",
            &refresh_file,
            "--clerk-secret-key-file",
            "-",
        ],
        &without_secret,
        Some(&secret_key),
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_eq!(stack.refresh_tokens(), 0);
    assert_eq!(stack.clerk_session_status(&session_id), "revoked");
    assert!(!out.transcript().contains(&secret_key));

    // stdin serves one value only; a file and the flag for one secret conflict.
    let out = run(
        &["sign-out", "-", "--clerk-secret-key-file", "-"],
        &without_secret,
        Some("x"),
    );
    assert_eq!(out.code, 2, "{}", out.transcript());
    assert!(
        out.stderr.contains("only one value can be read from stdin"),
        "{}",
        out.transcript()
    );
    let out = run(
        &[
            "sign-out",
            &token,
            "--refresh-token",
            "x",
            "--refresh-token-file",
            &refresh_file,
        ],
        &without_secret,
        None,
    );
    assert_eq!(out.code, 2, "{}", out.transcript());

    // --help says where each secret can come from.
    let help = run(&["sign-out", "--help"], &[], None).stdout;
    for said in [
        "--refresh-token-file",
        "INSTANT_REFRESH_TOKEN",
        "--clerk-secret-key-file",
        "--instant-admin-token-file",
        "visible in `ps`",
    ] {
        assert!(help.contains(said), "{said} in {help}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    stack.shutdown().await;
}
