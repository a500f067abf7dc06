//! `clerk-instant webhook verify`: captured deliveries checked offline, each verdict
//! with its exit code, and the secret and the body never in the output.

use clerk_webhooks::Secret;

use crate::stack::{Run, Setting, run};
use crate::temp_file;

/// The known-good vector Svix and Standard Webhooks publish.
const SPEC_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const SPEC_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const SPEC_TIMESTAMP: u64 = 1_649_367_553;
const SPEC_BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
const SPEC_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

const SESSION_REVOKED: &str = include_str!("../fixtures/webhooks/session.revoked.json");
const USER_DELETED: &str = include_str!("../fixtures/webhooks/user.deleted.json");

/// When the test deliveries are signed, and ten seconds later, when they are checked.
const SIGNED: u64 = 1_800_000_000;
const AT: &str = "1800000010";

/// A second secret, for rotations (the spec's is the first).
fn new_secret() -> Secret {
    Secret::from_bytes(vec![7u8; 32]).unwrap()
}

fn spec_secret() -> Secret {
    SPEC_SECRET.parse().unwrap()
}

fn env_secret(value: &str) -> Vec<Setting> {
    vec![("CLERK_WEBHOOK_SIGNING_SECRET", Some(value.to_owned()))]
}

/// A headers file as `curl -v` prints a request, with `name` as the header prefix.
fn headers_file(file: &str, prefix: &str, id: &str, timestamp: u64, signature: &str) -> String {
    let text = format!(
        "> POST /v1/webhooks/clerk HTTP/1.1\n> Host: localhost:3000\n> Content-Type: application/json\n> {prefix}-id: {id}\n> {prefix}-timestamp: {timestamp}\n> {prefix}-signature: {signature}\n>\n"
    );
    temp_file(file, &text).display().to_string()
}

/// Writes `body` and its headers, signed by `secret` at `timestamp`, as files; returns
/// their paths.
fn delivery(name: &str, body: &str, secret: &Secret, timestamp: u64) -> (String, String) {
    let id = format!("msg_{}", name.replace(['.', '-'], "_"));
    let signature = secret.sign(&id, timestamp, body.as_bytes());
    let body_path = temp_file(&format!("{name}.body"), body)
        .display()
        .to_string();
    let headers = headers_file(
        &format!("{name}.headers"),
        "svix",
        &id,
        timestamp,
        &signature,
    );
    (body_path, headers)
}

/// The transcript with temporary paths replaced.
fn transcript(out: &Run) -> String {
    let dir = std::env::temp_dir()
        .join(format!("clerk-instant-cli-{}", std::process::id()))
        .display()
        .to_string();
    out.transcript().replace(&dir, "[tmp]")
}

/// Runs `webhook verify` with `args`, checking that neither the secrets in play nor the
/// body show in the output.
fn verify(args: &[&str], settings: &[Setting], stdin: Option<&str>) -> Run {
    let mut all = vec!["webhook", "verify"];
    all.extend_from_slice(args);
    let out = run(&all, settings, stdin);
    let text = out.transcript();
    for secret in [spec_secret(), new_secret()] {
        let whsec = secret.expose_whsec();
        let bare = whsec.trim_start_matches("whsec_");
        assert!(!text.contains(bare), "a secret is in the output:\n{text}");
    }
    for body in ["test@example.com", "user_agent", "client_ip"] {
        assert!(!text.contains(body), "the body is in the output:\n{text}");
    }
    out
}

#[test]
fn the_spec_vector_is_authentic_but_not_a_clerk_event() {
    let body = temp_file("spec.body", SPEC_BODY).display().to_string();
    let headers = headers_file(
        "spec.headers",
        "svix",
        SPEC_ID,
        SPEC_TIMESTAMP,
        SPEC_SIGNATURE,
    );
    let settings = env_secret(SPEC_SECRET);
    let at = "2022-04-07T21:39:23Z";
    let out = verify(
        &["--body", &body, "--headers", &headers, "--at", at],
        &settings,
        None,
    );
    insta::assert_snapshot!("webhook_spec_vector", transcript(&out));
    let out = verify(
        &["--body", &body, "--headers", &headers, "--at", at, "--json"],
        &settings,
        None,
    );
    insta::assert_snapshot!("webhook_spec_vector_json", transcript(&out));
    // The same with the header values as flags and the body on stdin.
    let out = verify(
        &[
            "--body",
            "-",
            "--id",
            SPEC_ID,
            "--timestamp",
            &SPEC_TIMESTAMP.to_string(),
            "--signature",
            SPEC_SIGNATURE,
            "--at",
            "1649367563",
            "--json",
        ],
        &settings,
        Some(SPEC_BODY),
    );
    assert_eq!(out.code, 1, "{}", out.transcript());
    let json = out.json();
    assert_eq!(json["code"], "webhook-invalid-payload");
    assert_eq!(json["signature"], "valid");
    assert_eq!(json["envelope"], "unreadable");
    assert_eq!(json["id"], SPEC_ID);
    assert_eq!(json["age_secs"], 10);
}

#[test]
fn clerk_deliveries_verify_with_their_ids() {
    let secret = spec_secret();
    let settings = env_secret(SPEC_SECRET);
    let (body, headers) = delivery("session.revoked", SESSION_REVOKED, &secret, SIGNED);
    let args = ["--body", &*body, "--headers", &*headers, "--at", AT];
    insta::assert_snapshot!(
        "webhook_session_revoked",
        transcript(&verify(&args, &settings, None))
    );
    let mut json_args = args.to_vec();
    json_args.push("--json");
    insta::assert_snapshot!(
        "webhook_session_revoked_json",
        transcript(&verify(&json_args, &settings, None))
    );
    let (body, headers) = delivery("user.deleted", USER_DELETED, &secret, SIGNED);
    let out = verify(
        &["--json", "--body", &body, "--headers", &headers, "--at", AT],
        &settings,
        None,
    );
    insta::assert_snapshot!("webhook_user_deleted_json", transcript(&out));
}

#[test]
fn a_tampered_body_is_refused() {
    let (body, headers) = delivery("tampered", SESSION_REVOKED, &spec_secret(), SIGNED);
    let tampered = SESSION_REVOKED.replace("session.revoked", "session.created");
    std::fs::write(&body, tampered).unwrap();
    let settings = env_secret(SPEC_SECRET);
    let out = verify(
        &["--body", &body, "--headers", &headers, "--at", AT],
        &settings,
        None,
    );
    insta::assert_snapshot!("webhook_tampered", transcript(&out));
    let out = verify(
        &["--body", &body, "--headers", &headers, "--at", AT, "--json"],
        &settings,
        None,
    );
    assert_eq!(out.code, 1);
    let json = out.json();
    assert_eq!(json["verified"], false);
    assert_eq!(json["signature"], "invalid");
    assert_eq!(json["code"], "webhook-signature-mismatch");
    assert!(
        json.get("type").is_none() && json.get("id").is_none(),
        "{json}"
    );
}

#[test]
fn stale_and_future_deliveries_are_refused_but_named_authentic() {
    let (body, headers) = delivery("stale", SESSION_REVOKED, &spec_secret(), SIGNED);
    let settings = env_secret(SPEC_SECRET);
    let out = verify(
        &["--body", &body, "--headers", &headers, "--at", "1800000301"],
        &settings,
        None,
    );
    insta::assert_snapshot!("webhook_stale", transcript(&out));
    // Exactly the tolerance passes; --tolerance widens it; --at reads RFC 3339.
    let at_limit = ["--body", &*body, "--headers", &*headers, "--json"];
    for (extra, code) in [
        (&["--at", "1800000300"][..], 0),
        (&["--at", "1800000301", "--tolerance", "301"], 0),
        (&["--at", "2027-01-15T08:05:01Z"], 1),
        (
            &["--at", "2027-01-15T09:59:59+02:00", "--tolerance", "3600"],
            0,
        ),
        (&["--at", "1799999699"], 1),
    ] {
        let mut args = at_limit.to_vec();
        args.extend_from_slice(extra);
        let out = verify(&args, &settings, None);
        assert_eq!(out.code, code, "{extra:?}: {}", out.transcript());
        let json = out.json();
        assert_eq!(json["signature"], "valid", "{extra:?}: {json}");
        assert_eq!(json["type"], "session.revoked", "{extra:?}: {json}");
    }
    let out = verify(
        &[
            "--body",
            &body,
            "--headers",
            &headers,
            "--at",
            "1799999699",
            "--json",
        ],
        &settings,
        None,
    );
    assert_eq!(out.json()["code"], "webhook-timestamp-in-future");
    assert_eq!(out.json()["age_secs"], -301);
}

#[test]
fn a_missing_header_is_refused_with_the_way_to_give_it() {
    let body = temp_file("missing.body", SESSION_REVOKED)
        .display()
        .to_string();
    let id = "msg_missing";
    let signature = spec_secret().sign(id, SIGNED, SESSION_REVOKED.as_bytes());
    let settings = env_secret(SPEC_SECRET);
    let out = verify(
        &[
            "--body",
            &body,
            "--id",
            id,
            "--signature",
            &signature,
            "--at",
            AT,
        ],
        &settings,
        None,
    );
    insta::assert_snapshot!("webhook_missing_header", transcript(&out));
    // A headers file with no delivery header at all is told it lacks svix-id.
    let headers = temp_file("none.headers", "Content-Type: application/json\n")
        .display()
        .to_string();
    let out = verify(
        &["--body", &body, "--headers", &headers, "--json"],
        &settings,
        None,
    );
    assert_eq!(out.code, 1);
    assert_eq!(out.json()["code"], "webhook-missing-header");
    assert_eq!(out.json()["signature"], "unchecked");
}

#[test]
fn webhook_headers_from_stdin_verify_too() {
    let body = temp_file("std.body", USER_DELETED).display().to_string();
    let id = "msg_std";
    let signature = spec_secret().sign(id, SIGNED, USER_DELETED.as_bytes());
    let headers = format!(
        "< Webhook-Id: {id}\r\n< WEBHOOK-TIMESTAMP: {SIGNED}\r\n< webhook-signature: v1,bm90IGl0 {signature}\r\n"
    );
    let out = verify(
        &["--body", &body, "--headers", "-", "--at", AT, "--json"],
        &env_secret(SPEC_SECRET),
        Some(&headers),
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    let json = out.json();
    assert_eq!(json["header_set"], "webhook");
    assert_eq!(json["type"], "user.deleted");
    assert_eq!(json["user_id"], "user_29wBMCtzATuFJut8jO2VNTVekS4");
    // Both from stdin cannot be.
    let out = verify(
        &["--body", "-", "--headers", "-", "--json"],
        &env_secret(SPEC_SECRET),
        None,
    );
    assert_eq!(out.code, 2);
    assert_eq!(out.json()["error"]["code"], "invalid-input");
}

#[test]
fn during_a_rotation_the_matching_secret_is_named_by_index() {
    let (body, headers) = delivery("rotation", SESSION_REVOKED, &new_secret(), SIGNED);
    let both = format!("{SPEC_SECRET}, {}", new_secret().expose_whsec());
    let args = [
        "--body",
        &*body,
        "--headers",
        &*headers,
        "--at",
        AT,
        "--json",
    ];
    let out = verify(&args, &env_secret(&both), None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_eq!(out.json()["secret_index"], 1);
    assert_eq!(out.json()["secrets"], 2);
    // Only the old secret: refused.
    let out = verify(&args, &env_secret(SPEC_SECRET), None);
    assert_eq!(out.code, 1);
    assert_eq!(out.json()["code"], "webhook-signature-mismatch");
    // An authentic body that is no envelope still names the secret that signed it.
    let (body, headers) = delivery("rotation-spec", SPEC_BODY, &new_secret(), SIGNED);
    let out = verify(
        &["--body", &body, "--headers", &headers, "--at", AT, "--json"],
        &env_secret(&both),
        None,
    );
    assert_eq!(out.code, 1);
    assert_eq!(out.json()["signature"], "valid");
    assert_eq!(out.json()["secret_index"], 1);
}

#[test]
fn the_secret_comes_from_a_file_or_the_environment_only() {
    let (body, headers) = delivery("secret-file", SESSION_REVOKED, &spec_secret(), SIGNED);
    let args = [
        "--body",
        &*body,
        "--headers",
        &*headers,
        "--at",
        AT,
        "--json",
    ];
    let file = temp_file("secret", &format!("{SPEC_SECRET}\n"))
        .display()
        .to_string();
    let mut with_file = args.to_vec();
    with_file.extend(["--secret-file", &file]);
    // The file wins over the environment.
    let out = verify(&with_file, &env_secret(&new_secret().expose_whsec()), None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    let out = verify(&args, &env_secret(SPEC_SECRET), None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    // There is no flag that takes the secret itself.
    let mut with_flag = args.to_vec();
    with_flag.extend(["--secret", SPEC_SECRET]);
    let out = run(
        &[&["webhook", "verify"][..], &with_flag].concat(),
        &[],
        None,
    );
    assert_eq!(out.code, 2);
    assert_eq!(out.json()["error"]["code"], "invalid-input");
}

#[test]
fn no_usable_secret_is_a_configuration_error_naming_the_variable() {
    let (body, headers) = delivery("no-secret", SESSION_REVOKED, &spec_secret(), SIGNED);
    let args = ["--body", &*body, "--headers", &*headers, "--at", AT];
    insta::assert_snapshot!("webhook_no_secret", transcript(&verify(&args, &[], None)));
    let mut json_args = args.to_vec();
    json_args.push("--json");
    for (settings, code) in [
        (vec![], "webhook-no-secret"),
        (env_secret(" , "), "webhook-no-secret"),
        (env_secret("whsec_"), "webhook-invalid-secret"),
        (env_secret("whsec_c2hvcnQ="), "webhook-invalid-secret"),
        (
            env_secret(&format!("{SPEC_SECRET} whsec_!!!")),
            "webhook-invalid-secret",
        ),
    ] {
        let out = verify(&json_args, &settings, None);
        assert_eq!(out.code, 2, "{settings:?}: {}", out.transcript());
        let json = out.json();
        assert_eq!(json["error"]["code"], code, "{settings:?}: {json}");
        let hint = json["error"]["hint"].as_str().unwrap();
        assert!(hint.contains("CLERK_WEBHOOK_SIGNING_SECRET"), "{hint}");
    }
    let out = verify(&json_args, &env_secret("whsec_c2hvcnQ="), None);
    insta::assert_snapshot!("webhook_short_secret_json", transcript(&out));
    let empty = temp_file("empty-secret", "").display().to_string();
    let mut with_file = json_args.clone();
    with_file.extend(["--secret-file", &empty]);
    let out = verify(&with_file, &env_secret(SPEC_SECRET), None);
    assert_eq!(out.code, 2, "{}", out.transcript());
    assert_eq!(out.json()["error"]["code"], "webhook-no-secret");
}

#[test]
fn without_at_the_check_is_as_of_now() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (body, headers) = delivery("now", SESSION_REVOKED, &spec_secret(), now);
    let settings = env_secret(SPEC_SECRET);
    let out = verify(
        &["--body", &body, "--headers", &headers, "--json"],
        &settings,
        None,
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    let (body, headers) = delivery("then", SESSION_REVOKED, &spec_secret(), now - 3600);
    let out = verify(
        &["--body", &body, "--headers", &headers, "--json"],
        &settings,
        None,
    );
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert_eq!(out.json()["code"], "webhook-timestamp-too-old");
}

#[test]
fn a_bad_at_is_a_usage_error() {
    let out = verify(
        &[
            "--body",
            "b",
            "--headers",
            "h",
            "--at",
            "yesterday",
            "--json",
        ],
        &env_secret(SPEC_SECRET),
        None,
    );
    assert_eq!(out.code, 2);
    assert_eq!(out.json()["error"]["code"], "invalid-input");
}

#[test]
fn an_unknown_event_type_verifies_and_says_so() {
    let body = r#"{"type":"organization.created","object":"event","data":{"id":"org_1"}}"#;
    let (body, headers) = delivery("unknown", body, &spec_secret(), SIGNED);
    let args = ["--body", &*body, "--headers", &*headers, "--at", AT];
    let settings = env_secret(SPEC_SECRET);
    let out = verify(&args, &settings, None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(
        out.stdout
            .contains("organization.created (a type this version does not know)"),
        "{}",
        out.transcript()
    );
    let out = verify(&[&args[..], &["--json"]].concat(), &settings, None);
    let json = out.json();
    assert_eq!(json["type"], "organization.created");
    assert_eq!(json["known_type"], false);
    assert_eq!(json["user_id"], serde_json::Value::Null);
}

#[test]
fn headers_come_from_a_file_or_flags_not_both() {
    let out = verify(
        &["--body", "b", "--headers", "h", "--id", "msg_1", "--json"],
        &env_secret(SPEC_SECRET),
        None,
    );
    assert_eq!(out.code, 2, "{}", out.transcript());
    assert_eq!(out.json()["error"]["code"], "invalid-input");
}
