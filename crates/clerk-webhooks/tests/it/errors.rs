//! Every error's message, snapshotted: what failed and where, never a value.

use std::time::Duration;

use clerk_webhooks::{Error, HeaderProblem, JsonProblem, SecretProblem};

fn every_error() -> Vec<Error> {
    let tolerance = Duration::from_secs(300);
    let mut all = vec![Error::MissingHeader { header: "svix-id" }];
    for problem in [
        HeaderProblem::Empty,
        HeaderProblem::NotVisibleAscii,
        HeaderProblem::TooLong(256),
        HeaderProblem::Repeated,
        HeaderProblem::NotUnixSeconds,
    ] {
        all.push(Error::InvalidHeader {
            header: "svix-timestamp",
            problem,
        });
    }
    all.extend([
        Error::NoV1Signature {
            header: "webhook-signature",
        },
        Error::SignatureMismatch {
            header: "svix-signature",
            v1_entries: 2,
            secrets: 1,
        },
        Error::TimestampTooOld {
            age_secs: 301,
            tolerance,
        },
        Error::TimestampInFuture {
            ahead_secs: 3600,
            tolerance,
        },
    ]);
    for (event_type, problem) in [
        (None, JsonProblem::Syntax),
        (None, JsonProblem::Eof),
        (Some("user.deleted"), JsonProblem::Shape),
    ] {
        all.push(Error::InvalidPayload {
            event_type,
            problem,
            line: 1,
            column: 42,
        });
    }
    all.push(Error::NoSecret);
    for problem in [
        SecretProblem::NothingAfterPrefix,
        SecretProblem::NotBase64,
        SecretProblem::TooShort(16),
    ] {
        all.push(Error::InvalidSecret {
            position: 2,
            problem,
        });
    }
    all
}

#[test]
fn error_messages() {
    let lines: Vec<String> = every_error()
        .iter()
        .map(|e| format!("{}: {e}", e.code()))
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn messages_are_lowercase_without_a_final_period_and_predicates_partition() {
    for err in every_error() {
        let text = err.to_string();
        assert!(text.starts_with(|c: char| c.is_lowercase()), "{text}");
        assert!(!text.ends_with('.'), "{text}");
        assert_ne!(err.is_config(), err.is_refused(), "{text}");
        assert!(err.code().starts_with("webhook-"));
    }
}
