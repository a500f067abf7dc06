//! `doctor` against the local stack: all pass, then one dashboard step wrong at a time.

use crate::assert_redacted_snapshot;
use crate::stack::{Stack, run, with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_every_check_on_a_good_setup() {
    let stack = Stack::start().await;
    let (_, token) = stack.sign_in("alice@example.com");

    let out = run(&["doctor", "--token", &token], &stack.settings(), None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_redacted_snapshot!("doctor_all_pass", stack.redact(&out, Some(&token)));
    // The trial sign-in created the user and signed its refresh token out again.
    assert!(
        stack
            .stack
            .instant
            .user_by_email(&stack.stack.app.id, "alice@example.com")
            .unwrap()
            .is_some()
    );
    assert_eq!(stack.refresh_tokens(), 0);

    // Without a token, the token's checks are skipped, and the rest still run.
    let out = run(&["doctor", "--json"], &stack.settings(), None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_redacted_snapshot!("doctor_no_token_json", stack.redact(&out, None));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_a_client_name_instant_does_not_know() {
    let stack = Stack::start().await;
    let (_, token) = stack.sign_in("alice@example.com");
    let settings = with(
        stack.settings(),
        "INSTANT_CLERK_CLIENT_NAME",
        Some("clerk-prod"),
    );

    let out = run(&["doctor", "--token", "-"], &settings, Some(&token));
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert_redacted_snapshot!("doctor_wrong_client_name", stack.redact(&out, Some(&token)));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_a_wrong_admin_token_and_a_wrong_secret_key() {
    let stack = Stack::start().await;
    let (_, token) = stack.sign_in("alice@example.com");
    let settings = with(
        stack.settings(),
        "INSTANT_APP_ADMIN_TOKEN",
        Some("00000000-0000-4000-8000-000000000000"),
    );
    let settings = with(
        settings,
        "CLERK_SECRET_KEY",
        Some("sk_test_not_this_instance"),
    );

    let out = run(&["doctor", "--token", &token, "--json"], &settings, None);
    assert_eq!(out.code, 1, "{}", out.transcript());
    let json = out.json();
    assert_eq!(json["ok"], false);
    let failed: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    // The id-token sign-in needs no admin token: it still passes.
    assert_eq!(failed, ["instant-admin", "secret-key"]);
    assert_redacted_snapshot!(
        "doctor_wrong_admin_token_json",
        stack.redact(&out, Some(&token))
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_missing_email_claims() {
    let stack = Stack::start().await;

    let token = stack.token_without("alice@example.com", "email");
    let out = run(&["doctor", "--token", &token], &stack.settings(), None);
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert_redacted_snapshot!(
        "doctor_token_without_email",
        stack.redact(&out, Some(&token))
    );

    // Without email_verified the server accepts the token, but InstantDB keeps no email.
    let token = stack.token_without("bob@example.com", "email_verified");
    let out = run(&["doctor", "--token", &token], &stack.settings(), None);
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert_redacted_snapshot!(
        "doctor_token_without_email_verified",
        stack.redact(&out, Some(&token))
    );
    assert_eq!(stack.refresh_tokens(), 0);
    stack.shutdown().await;
}

#[test]
fn doctor_lists_every_configuration_problem_and_exits_2() {
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
    let out = run(&["doctor", "--json"], &settings, None);
    assert_eq!(out.code, 2, "{}", out.transcript());
    assert_eq!(out.json()["error"]["problems"].as_array().unwrap().len(), 5);
    insta::assert_snapshot!("doctor_bad_configuration_json", out.transcript());
}

/// Only the publishable key set: the Clerk checks run, the InstantDB ones are skipped
/// saying why, and a run with skips and no failure exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_runs_what_the_settings_allow_and_skips_the_rest() {
    let stack = Stack::start().await;
    let (_, token) = stack.sign_in("alice@example.com");
    let statuses = |out: &crate::stack::Run| -> Vec<(String, String)> {
        out.json()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap().to_owned(),
                    c["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let pair = |id: &str, status: &str| (id.to_owned(), status.to_owned());

    let only_pk: Vec<_> = stack
        .settings()
        .into_iter()
        .filter(|(name, _)| *name == "CLERK_PUBLISHABLE_KEY")
        .collect();
    let out = run(&["doctor", "--token", &token, "--json"], &only_pk, None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_eq!(
        statuses(&out),
        [
            pair("publishable-key", "pass"),
            pair("jwks", "pass"),
            pair("token", "pass"),
            pair("email", "pass"),
            pair("email-verified", "pass"),
            pair("instant-admin", "skip"),
            pair("sign-in", "skip"),
            pair("secret-key", "skip"),
            pair("store", "skip"),
        ]
    );
    let json = out.json();
    assert_eq!(json["ok"], true);
    let admin = &json["checks"][5]["detail"];
    assert!(
        admin
            .as_str()
            .unwrap()
            .starts_with("INSTANT_APP_ID is not set"),
        "{admin}"
    );

    // Only the InstantDB side (and the secret key): the Clerk checks are skipped.
    let without_pk = with(stack.settings(), "CLERK_PUBLISHABLE_KEY", None);
    let out = run(&["doctor", "--token", &token, "--json"], &without_pk, None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_eq!(
        statuses(&out),
        [
            pair("publishable-key", "skip"),
            pair("jwks", "skip"),
            pair("token", "skip"),
            pair("email", "skip"),
            pair("email-verified", "skip"),
            pair("instant-admin", "pass"),
            pair("sign-in", "skip"),
            pair("secret-key", "pass"),
            pair("store", "skip"),
        ]
    );

    // Neither required setting: nothing to check, a configuration error as before.
    let neither: Vec<crate::stack::Setting> = Vec::new();
    let out = run(&["doctor", "--json"], &neither, None);
    assert_eq!(out.code, 2, "{}", out.transcript());
    stack.shutdown().await;
}
