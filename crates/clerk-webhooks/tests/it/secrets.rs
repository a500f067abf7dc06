//! Signing secrets: what is accepted, what is refused with a fix, and that they never
//! show.

use clerk_webhooks::{Error, Secret, SecretProblem, Secrets, Verifier};

use crate::support::{OTHER_SECRET, SECRET};

#[test]
fn unusable_secrets_are_refused_by_position_never_as_an_empty_key() {
    let invalid = |position, problem| Error::InvalidSecret { position, problem };
    for (text, expected) in [
        ("", Error::NoSecret),
        ("  \n", Error::NoSecret),
        (", ,", Error::NoSecret),
        ("whsec_", invalid(1, SecretProblem::NothingAfterPrefix)),
        ("whsec_not*base64", invalid(1, SecretProblem::NotBase64)),
        ("whsec_c2hvcnQ=", invalid(1, SecretProblem::TooShort(5))),
        // 23 bytes: one short of Svix's 24.
        (
            &format!("whsec_{}=", "A".repeat(31)),
            invalid(1, SecretProblem::TooShort(23)),
        ),
        (
            &format!("{SECRET},whsec_"),
            invalid(2, SecretProblem::NothingAfterPrefix),
        ),
        (
            &format!("{SECRET} {OTHER_SECRET}\nwhsec_c2hvcnQ="),
            invalid(3, SecretProblem::TooShort(5)),
        ),
    ] {
        let err = Secrets::parse(text).unwrap_err();
        assert_eq!(err, expected, "{text:?}");
        assert!(err.is_config() && !err.is_refused());
    }
    assert_eq!(Secret::parse(" ").unwrap_err(), Error::NoSecret);
    assert_eq!(
        Secret::from_bytes(vec![]).unwrap_err(),
        SecretProblem::TooShort(0)
    );
}

#[test]
fn debug_and_display_never_show_a_secret() {
    let secrets = Secrets::parse(&format!("{SECRET},{OTHER_SECRET}")).unwrap();
    let verifier = Verifier::new(secrets.clone());
    let secret = secrets.first().clone();
    let shown = format!(
        "{secrets:?} {secrets} {verifier:?} {secret:?} {secret} {:#?}",
        secrets.iter().collect::<Vec<_>>()
    );
    for value in [SECRET, OTHER_SECRET] {
        let encoded = value.strip_prefix("whsec_").unwrap();
        assert!(!shown.contains(encoded), "{shown}");
        assert!(!shown.contains(&encoded[..8]), "{shown}");
    }
    assert_eq!(format!("{secrets:?}"), "Secrets([whsec_…, whsec_…])");
    assert_eq!(secrets.to_string(), "2 webhook signing secret(s)");
    // Only the explicit call gives it out.
    assert_eq!(secret.expose_whsec(), SECRET);
}

#[test]
fn error_messages_never_quote_the_secret() {
    let text = "whsec_QUJDREVGR0hJSktMTU5PUA==";
    let err = Secrets::parse(text).unwrap_err();
    assert!(!err.to_string().contains("QUJDREVG"), "{err}");
}
