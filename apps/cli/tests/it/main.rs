//! The `clerk-instant` binary, run as a user runs it; output snapshot-tested.

mod doctor;
mod output;
mod session;
mod shared_store;
mod stack;
mod webhook;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use clerk_jwt::testing::{TestKey, TokenBuilder};
use clerk_jwt::{CAT_JWT_TEMPLATE, InstanceKind, PublishableKey};

const ISSUER: &str = "https://clerk.example.com";
const PK: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k";
const IAT: i64 = 1_800_000_000;
const AT: &str = "1800000010";

fn key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let pem = include_str!("../fixtures/test-signing-key.pem");
        TestKey::from_pem("ins_2clitestinstance", pem).unwrap()
    })
}

fn session() -> TokenBuilder<'static> {
    TokenBuilder::session(key(), ISSUER, IAT)
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clerk-instant-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn jwks_file() -> String {
    temp_file("jwks.json", &key().jwks().to_string())
        .display()
        .to_string()
}

/// Runs the binary with a clean Clerk environment and returns a transcript.
fn run(args: &[&str], stdin: Option<&str>) -> String {
    stack::run(args, &[], stdin).transcript()
}

fn redact_paths(text: &str) -> String {
    text.replace(&jwks_file(), "[jwks file]")
}

#[test]
fn a_pasted_placeholder_key_is_called_a_placeholder() {
    for placeholder in ["pk_test_…", "pk_test_xxx", "pk_live_...", "<your key>"] {
        let out = stack::run(&["key", "decode", placeholder], &[], None);
        assert_eq!(out.code, 2, "{}", out.transcript());
        assert!(
            out.stderr.contains("is a placeholder"),
            "{}",
            out.transcript()
        );
        assert!(
            !out.stderr.contains("Invalid symbol"),
            "{}",
            out.transcript()
        );
    }
}

#[test]
fn key_decode() {
    insta::assert_snapshot!("key_decode", run(&["key", "decode", PK], None));
    insta::assert_snapshot!(
        "key_decode_json",
        run(&["key", "decode", PK, "--json"], None)
    );
    insta::assert_snapshot!(
        "key_decode_secret_key",
        run(&["key", "decode", "sk_test_abc"], None)
    );
    insta::assert_snapshot!(
        "key_decode_no_dollar",
        run(&["key", "decode", "pk_test_Y2xlcmsuZXhhbXBsZS5jb20"], None)
    );
}

#[test]
fn token_inspect() {
    insta::assert_snapshot!(
        "inspect_session",
        run(&["token", "inspect", &session().sign(), "--at", AT], None)
    );
    let problems = session()
        .header("cat", CAT_JWT_TEMPLATE)
        .without_claim("sid")
        .without_claim("email_verified")
        .claim("email", serde_json::Value::Null)
        .sign();
    insta::assert_snapshot!(
        "inspect_template_token_json",
        run(
            &["token", "inspect", "-", "--json", "--at", "1800000100"],
            Some(&problems)
        )
    );
    insta::assert_snapshot!(
        "inspect_malformed",
        run(&["token", "inspect", "not-a-token"], None)
    );
}

#[test]
fn token_verify_with_a_jwks_file() {
    let jwks = jwks_file();
    let token = session().claim("azp", "https://app.example.com").sign();
    let base = [
        "token",
        "verify",
        "--jwks-file",
        &jwks,
        "--issuer",
        ISSUER,
        "--at",
        AT,
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| (*s).to_owned()).collect()
    };
    let run = |args: &[String], stdin: Option<&str>| {
        run(&args.iter().map(String::as_str).collect::<Vec<_>>(), stdin)
    };
    insta::assert_snapshot!("verify_valid", run(&with(&[&token]), None));
    insta::assert_snapshot!(
        "verify_valid_json",
        run(&with(&["--json", "-"]), Some(&format!("{token}\n")))
    );
    insta::assert_snapshot!(
        "verify_bearer_prefix_accepted",
        run(&with(&["--json", &format!("Bearer {token}")]), None)
    );
    let expired = session().claim("exp", IAT + 4).sign();
    insta::assert_snapshot!("verify_expired", run(&with(&[&expired]), None));
    insta::assert_snapshot!(
        "verify_expired_json",
        run(&with(&["--json", &expired]), None)
    );
    insta::assert_snapshot!(
        "verify_wrong_party_json",
        run(
            &with(&[
                "--json",
                "--authorized-party",
                "https://other.example.com",
                &token
            ]),
            None
        )
    );
    let unknown_kid = session().header("kid", "ins_other").sign();
    insta::assert_snapshot!(
        "verify_unknown_kid_json",
        run(&with(&["--json", &unknown_kid]), None)
    );
    let transcript = run(&with(&["--json", "--leeway", "60", &token]), None);
    insta::assert_snapshot!("verify_leeway_too_large", redact_paths(&transcript));
}

#[test]
fn token_verify_usage_errors() {
    let token = session().sign();
    // No issuer: neither --publishable-key nor --issuer.
    let jwks = jwks_file();
    let transcript = run(&["token", "verify", "--jwks-file", &jwks, &token], None);
    insta::assert_snapshot!("verify_no_issuer", redact_paths(&transcript));
    insta::assert_snapshot!(
        "verify_no_key_source",
        run(&["token", "verify", "--issuer", ISSUER, &token], None)
    );
    insta::assert_snapshot!(
        "verify_two_key_sources",
        run(
            &[
                "token",
                "verify",
                "--jwks-file",
                "a",
                "--pem-file",
                "b",
                &token
            ],
            None
        )
    );
    let missing = run(
        &[
            "token",
            "verify",
            "--issuer",
            ISSUER,
            "--jwks-file",
            "/nonexistent/jwks.json",
            &token,
        ],
        None,
    );
    assert!(missing.starts_with("exit: 2\n"), "{missing}");
    assert!(missing.contains("/nonexistent/jwks.json"), "{missing}");
}

#[test]
fn token_verify_with_a_pem_key_from_the_environment_or_a_file() {
    let token = session().without_header("kid").sign();
    let pem = key().public_pem();
    let file = temp_file("key.pem", &pem);
    let out = run(
        &[
            "token",
            "verify",
            "--pem-file",
            &file.display().to_string(),
            "--issuer",
            ISSUER,
            "--at",
            AT,
            "--json",
            &token,
        ],
        None,
    );
    assert!(out.starts_with("exit: 0\n"), "{out}");
    let out = Command::new(env!("CARGO_BIN_EXE_clerk-instant"))
        .env("CLERK_JWT_KEY", pem.replace('\n', "\\n"))
        .env("CLERK_PUBLISHABLE_KEY", PK)
        .args(["token", "verify", "--at", AT, "--json", &token])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["claims"]["iss"], ISSUER);
}

#[test]
fn token_verify_fetches_the_jwks_named_by_a_publishable_key() {
    // A JWKS server on loopback, named by a publishable key as the local stack does.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body = key().jwks().to_string();
    let server = std::thread::spawn(move || {
        use std::io::{BufRead as _, BufReader};
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        request_line
    });
    let pk = PublishableKey::for_host(InstanceKind::Development, &addr.to_string()).unwrap();
    let token = TokenBuilder::session(key(), &pk.issuer(), IAT).sign();
    let out = run(
        &[
            "token",
            "verify",
            "--publishable-key",
            pk.as_str(),
            "--at",
            AT,
            "--json",
            &token,
        ],
        None,
    );
    assert!(out.starts_with("exit: 0\n"), "{out}");
    assert_eq!(
        server.join().unwrap().trim(),
        "GET /.well-known/jwks.json HTTP/1.1"
    );
}

#[test]
fn authorized_parties_are_read_as_the_server_reads_them() {
    let jwks = jwks_file();
    let token = session().claim("azp", "https://app.example.com").sign();
    let verify = |party: &str| {
        stack::run(
            &[
                "token",
                "verify",
                "--jwks-file",
                &jwks,
                "--issuer",
                ISSUER,
                "--at",
                AT,
                "--authorized-party",
                party,
                &token,
            ],
            &[],
            None,
        )
    };
    // A trailing slash, as origins are often pasted, and the host's case.
    for party in ["https://app.example.com/", "https://App.Example.com"] {
        let out = verify(party);
        assert_eq!(out.code, 0, "{party}: {}", out.transcript());
    }
    assert_eq!(verify("*").code, 0);
    // A path can never match an origin: a usage error, not a rejected token.
    let out = verify("https://app.example.com/dashboard");
    assert_eq!(out.code, 2, "{}", out.transcript());
    assert!(
        out.stderr.contains("can never match"),
        "{}",
        out.transcript()
    );
}

/// Every subcommand, as users type them.
const SUBCOMMANDS: [&str; 11] = [
    "key",
    "token",
    "dev",
    "sign-in",
    "sign-out",
    "query",
    "transact",
    "doctor",
    "webhook",
    "completions",
    "man",
];

#[test]
fn completions_name_every_subcommand() {
    let out = stack::run(&["completions", "bash"], &[], None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(
        out.stdout.contains("complete -F"),
        "a bash completion script"
    );
    for name in SUBCOMMANDS {
        assert!(
            out.stdout.contains(name),
            "{name} missing from the bash script"
        );
    }
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = stack::run(&["completions", shell], &[], None);
        assert_eq!(out.code, 0, "{shell}: {}", out.transcript());
        assert!(out.stdout.contains("clerk-instant"), "{shell}");
    }
    let out = stack::run(&["completions", "tcsh"], &[], None);
    assert_eq!(out.code, 2, "{}", out.transcript());
}

#[test]
fn the_man_page_is_roff_with_every_subcommand() {
    let out = stack::run(&["man"], &[], None);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(
        out.stdout.contains("\n.TH clerk-instant 1 "),
        "{}",
        out.stdout
    );
    let (_, subcommands) = out
        .stdout
        .split_once(".SH SUBCOMMANDS")
        .expect("a SUBCOMMANDS section");
    for name in SUBCOMMANDS {
        // roff escapes the hyphen.
        let name = name.replace('-', "\\-");
        assert!(
            subcommands.contains(&name),
            "{name} missing from the man page"
        );
    }
    let json = stack::run(&["man", "--json"], &[], None).json();
    assert_eq!(json["man"].as_str(), Some(out.stdout.as_str()));
}
