//! The one output path: `--json` anywhere gives one JSON document whatever the
//! outcome, a closed stdout ends quietly, and each outcome has its exit code.

use std::process::{Command, Stdio};

use crate::stack::run;
use crate::{AT, ISSUER, PK, jwks_file, session};

#[test]
fn json_anywhere_makes_a_usage_error_one_json_document() {
    for args in [
        &[
            "--json",
            "token",
            "verify",
            "--jwks-file",
            "a",
            "--pem-file",
            "b",
            "t",
        ][..],
        &[
            "token",
            "verify",
            "--jwks-file",
            "a",
            "--pem-file",
            "b",
            "t",
            "--json",
        ],
        &["--json", "no-such-command"],
        &["key", "decode", "--json", "--no-such-flag", PK],
        &["--json"],
    ] {
        let out = run(args, &[], None);
        assert_eq!(out.code, 2, "{args:?}: {}", out.transcript());
        assert_eq!(out.stderr, "", "{args:?}");
        let json = out.json();
        assert_eq!(json["error"]["code"], "invalid-input", "{args:?}: {json}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(
            !message.is_empty() && !message.starts_with("error:"),
            "{args:?}: {json}"
        );
    }
    let out = run(
        &[
            "token",
            "verify",
            "--jwks-file",
            "a",
            "--pem-file",
            "b",
            "t",
            "--json",
        ],
        &[],
        None,
    );
    insta::assert_snapshot!("usage_error_json", out.transcript());
}

#[test]
fn json_makes_every_other_failure_one_json_document_too() {
    // A verifier configuration error (it went to stderr as text before).
    let out = run(
        &[
            "token",
            "verify",
            "--jwks-file",
            &jwks_file(),
            "--json",
            "t",
        ],
        &[],
        None,
    );
    assert_eq!(out.code, 2, "{}", out.transcript());
    assert_eq!(out.json()["error"]["code"], "invalid-configuration");
    // A publishable key that does not decode.
    let out = run(&["key", "decode", "--json", "sk_test_abc"], &[], None);
    assert_eq!(out.code, 2, "{}", out.transcript());
    assert_eq!(out.json()["error"]["code"], "invalid-input");
    assert_eq!(out.stderr, "");
}

#[test]
fn a_closed_stdout_ends_quietly_with_success() {
    // A real pipe whose reader is gone, as after `| head -1`: every write is EPIPE.
    for args in [
        &["key", "decode", PK][..],
        &["key", "decode", PK, "--json"],
        &["token", "inspect", "not-a-token"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_clerk-instant"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
}

#[test]
fn an_empty_token_is_a_rejected_token() {
    let jwks = jwks_file();
    let verify = ["token", "verify", "--jwks-file", &jwks, "--issuer", ISSUER];
    let out = run(&[&verify[..], &[""]].concat(), &[], None);
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert!(
        out.stdout.starts_with("rejected: token-invalid\n"),
        "{}",
        out.transcript()
    );
    let out = run(&[&verify[..], &["--json", "-"]].concat(), &[], Some("\n"));
    assert_eq!(out.code, 1, "{}", out.transcript());
    let json = out.json();
    assert_eq!(
        (json["valid"].as_bool(), json["reason"].as_str()),
        (Some(false), Some("token-invalid"))
    );
    let out = run(&["token", "inspect", "", "--json"], &[], None);
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert_eq!(out.json()["reason"], "token-invalid");
}

#[test]
fn a_token_whose_keys_cannot_be_fetched_is_not_checked_exit_3() {
    // A port on 127.0.0.1 that refuses connections: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/.well-known/jwks.json");
    let token = session().sign();
    let verify = [
        "token",
        "verify",
        "--jwks-url",
        &url,
        "--issuer",
        ISSUER,
        "--at",
        AT,
    ];
    let out = run(&[&verify[..], &[&token]].concat(), &[], None);
    assert_eq!(out.code, 3, "{}", out.transcript());
    assert_eq!(out.stdout, "", "not a verdict: nothing on stdout");
    let first = out.stderr.lines().next().unwrap();
    assert!(
        first.starts_with(
            "error: jwk-remote-failed-to-load: the token could not be checked: the signing keys could not be fetched: "
        ) && first.contains(&url),
        "{}",
        out.transcript()
    );
    assert!(!out.stderr.contains("rejected"), "{}", out.transcript());
    assert!(out.stderr.contains("\nhint: "), "{}", out.transcript());

    let out = run(&[&verify[..], &["--json", &token]].concat(), &[], None);
    assert_eq!(out.code, 3, "{}", out.transcript());
    let json = out.json();
    assert_eq!(json["error"]["code"], "jwk-remote-failed-to-load", "{json}");
    assert!(json.get("valid").is_none(), "{json}");
    // What failed, then the cause once: the verifier's own text ("<reason>: <cause>")
    // is not repeated before its cause.
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "the token could not be checked: the signing keys could not be fetched: GET {url} failed: "
        )) && !message.contains("jwk-remote-failed-to-load"),
        "{message}"
    );
}

#[test]
fn help_lists_the_exit_codes() {
    let out = run(&["--help"], &[], None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(
        out.stdout.contains("Exit codes:\n")
            && out.stdout.contains("  3  the token could not be checked"),
        "{}",
        out.stdout
    );
}
