//! Signatures and timestamps: the spec's known-good vector and the Standard Webhooks
//! test-suite cases, under both header name sets.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clerk_webhooks::{Error, Event, HeaderProblem, HeaderSet, Secret, Verifier};
use http::HeaderMap;

use crate::support::{
    BODY, EVENT, ID, OTHER_SECRET, SECRET, SIGNATURE, TIMESTAMP, at, headers, signed, verifier,
};

const TS: &str = "1649367553";

#[test]
fn the_known_good_vector_signs_and_verifies() {
    let secret = Secret::parse(SECRET).unwrap();
    assert_eq!(secret.sign(ID, TIMESTAMP, BODY), SIGNATURE);
    // The vector's body is not a Clerk envelope: refused only after the signature
    // matched and the timestamp passed.
    let err = verifier(SECRET)
        .verify(&headers(HeaderSet::Svix, ID, TS, SIGNATURE), BODY, at(0))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidPayload { .. }), "{err:?}");
}

#[test]
fn the_standard_webhooks_signing_vector() {
    let secret = Secret::parse(OTHER_SECRET).unwrap();
    assert_eq!(
        secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

#[test]
fn a_signed_clerk_event_verifies_under_either_header_set() {
    let verifier = verifier(SECRET);
    let signature = verifier.secrets().sign(ID, TIMESTAMP, EVENT);
    for set in [HeaderSet::Svix, HeaderSet::StandardWebhooks] {
        let delivery = verifier
            .verify(&headers(set, ID, TS, &signature), EVENT, at(0))
            .unwrap();
        assert_eq!(delivery.id, ID);
        assert_eq!(delivery.timestamp, TIMESTAMP);
        assert_eq!(delivery.signed_at(), at(0));
        assert_eq!(delivery.header_set, set);
        assert_eq!(delivery.secret_index, 0);
        assert_eq!(delivery.event.session_id(), Some("sess_1"));
    }
    // The text form reads the same values.
    let delivery = verifier
        .verify_parts(&format!(" {ID}\n"), TS, &signature, EVENT, at(0))
        .unwrap();
    assert!(matches!(delivery.event, Event::SessionRevoked(_)));
}

#[test]
fn the_system_clock_form_accepts_a_fresh_delivery() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let delivery = verifier(SECRET)
        .verify_now(&signed(SECRET, ID, now, EVENT), EVENT)
        .unwrap();
    assert_eq!(delivery.timestamp, now);
}

#[test]
fn one_matching_entry_among_several_passes() {
    let signature = Secret::parse(SECRET).unwrap().sign(ID, TIMESTAMP, EVENT);
    let wrong = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
    let list = format!("v1,{wrong} v2,{wrong} {signature} v1,{wrong}");
    let verifier = verifier(SECRET);
    verifier
        .verify(&headers(HeaderSet::Svix, ID, TS, &list), EVENT, at(0))
        .unwrap();
    // An entry that is not base64 does not spoil the one that matches.
    let list = format!("v1,not*base64! {signature}");
    verifier
        .verify(&headers(HeaderSet::Svix, ID, TS, &list), EVENT, at(0))
        .unwrap();
}

#[test]
fn entries_that_cannot_match_are_refused() {
    let verifier = verifier(SECRET);
    let refuse = |signature: &str| {
        verifier
            .verify(&headers(HeaderSet::Svix, ID, TS, signature), EVENT, at(0))
            .unwrap_err()
    };
    let good = Secret::parse(SECRET).unwrap().sign(ID, TIMESTAMP, EVENT);
    let good_b64 = good.strip_prefix("v1,").unwrap();

    // A bare `v1,`, an invalid base64 signature, a wrong one: a mismatch.
    for (signature, entries) in [
        ("v1,", 1),
        ("v1,dawfeoifkpqwoekfpqoekf", 1),
        ("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1,", 2),
        // The right tag truncated, or with its padding removed, is not the tag.
        (&format!("v1,{}", &good_b64[..20]), 1),
        (&format!("v1,{}", good_b64.trim_end_matches('=')), 1),
    ] {
        let err = refuse(signature);
        assert_eq!(
            err,
            Error::SignatureMismatch {
                header: "svix-signature",
                v1_entries: entries,
                secrets: 1
            },
            "{signature}"
        );
        assert!(err.is_bad_signature() && err.is_refused());
    }

    // Only `v1` counts: the right tag under another version, or with no version.
    for signature in [
        format!("v2,{good_b64}"),
        good_b64.to_owned(),
        format!("V1,{good_b64}"),
    ] {
        assert_eq!(
            refuse(&signature),
            Error::NoV1Signature {
                header: "svix-signature"
            },
            "{signature}"
        );
    }
}

#[test]
fn tampering_with_the_body_the_id_or_the_timestamp_breaks_the_signature() {
    let verifier = verifier(SECRET);
    let signature = verifier.secrets().sign(ID, TIMESTAMP, EVENT);
    let tampered_body = EVENT
        .to_vec()
        .into_iter()
        .map(|b| if b == b'1' { b'2' } else { b })
        .collect::<Vec<u8>>();
    // The same JSON, re-serialised with other whitespace, is another body.
    let reserialised =
        serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(EVENT).unwrap())
            .unwrap();
    for (id, ts, body) in [
        (ID, TS, tampered_body.as_slice()),
        (ID, TS, reserialised.as_slice()),
        ("msg_27UH4WbU6Z5A5EzD8u03UvzRbpl", TS, EVENT),
        (ID, "1649367554", EVENT),
    ] {
        let err = verifier
            .verify(&headers(HeaderSet::Svix, id, ts, &signature), body, at(0))
            .unwrap_err();
        assert!(err.is_bad_signature(), "{id} {ts}: {err:?}");
    }
}

#[test]
fn timestamps_pass_at_the_tolerance_and_fail_past_it() {
    let verifier = verifier(SECRET);
    let headers = signed(SECRET, ID, TIMESTAMP, EVENT);
    // Old: signed 300 s ago passes, 301 s does not.
    verifier.verify(&headers, EVENT, at(300)).unwrap();
    assert_eq!(
        verifier.verify(&headers, EVENT, at(301)).unwrap_err(),
        Error::TimestampTooOld {
            age_secs: 301,
            tolerance: Duration::from_secs(300)
        }
    );
    // Future: dated 300 s ahead passes, 301 s does not.
    verifier.verify(&headers, EVENT, at(-300)).unwrap();
    let err = verifier.verify(&headers, EVENT, at(-301)).unwrap_err();
    assert_eq!(
        err,
        Error::TimestampInFuture {
            ahead_secs: 301,
            tolerance: Duration::from_secs(300)
        }
    );
    assert!(err.is_out_of_tolerance() && err.is_refused());
    // A fraction of a second does not count (whole seconds, as the references do).
    verifier
        .verify(&headers, EVENT, at(300) + Duration::from_millis(999))
        .unwrap();
}

#[test]
fn the_tolerance_is_configurable() {
    let verifier = verifier(SECRET).with_tolerance(Duration::from_secs(10));
    assert_eq!(verifier.tolerance(), Duration::from_secs(10));
    let headers = signed(SECRET, ID, TIMESTAMP, EVENT);
    verifier.verify(&headers, EVENT, at(10)).unwrap();
    assert!(
        verifier
            .verify(&headers, EVENT, at(11))
            .unwrap_err()
            .is_out_of_tolerance()
    );
    assert!(
        verifier
            .verify(&headers, EVENT, at(-11))
            .unwrap_err()
            .is_out_of_tolerance()
    );
    assert_eq!(Verifier::DEFAULT_TOLERANCE, Duration::from_secs(300));
}

#[test]
fn the_signature_is_judged_before_the_timestamp() {
    // A forged and stale delivery is told it is forged: a stale error means authentic.
    let err = verifier(SECRET)
        .verify(
            &signed(OTHER_SECRET, ID, TIMESTAMP, EVENT),
            EVENT,
            at(10_000),
        )
        .unwrap_err();
    assert!(err.is_bad_signature(), "{err:?}");
}

#[test]
fn the_prefix_is_optional_on_the_secret() {
    let bare = SECRET.strip_prefix("whsec_").unwrap();
    let headers = signed(SECRET, ID, TIMESTAMP, EVENT);
    verifier(bare).verify(&headers, EVENT, at(0)).unwrap();
    verifier(SECRET)
        .verify(&signed(bare, ID, TIMESTAMP, EVENT), EVENT, at(0))
        .unwrap();
}

#[test]
fn each_missing_header_is_named_in_either_set() {
    let verifier = verifier(SECRET);
    for set in [HeaderSet::Svix, HeaderSet::StandardWebhooks] {
        let signature = verifier.secrets().sign(ID, TIMESTAMP, EVENT);
        for missing in [set.id(), set.timestamp(), set.signature()] {
            let mut headers = headers(set, ID, TS, &signature);
            headers.remove(missing);
            assert_eq!(
                verifier.verify(&headers, EVENT, at(0)).unwrap_err(),
                Error::MissingHeader { header: missing }
            );
        }
    }
    assert_eq!(
        verifier
            .verify(&HeaderMap::new(), EVENT, at(0))
            .unwrap_err(),
        Error::MissingHeader { header: "svix-id" }
    );
}

#[test]
fn unusable_header_values_are_refused_by_name() {
    let verifier = verifier(SECRET);
    let signature = verifier.secrets().sign(ID, TIMESTAMP, EVENT);
    let refuse = |id: &str, ts: &str, sig: &str| {
        verifier
            .verify(&headers(HeaderSet::Svix, id, ts, sig), EVENT, at(0))
            .unwrap_err()
    };
    let problem = |header, problem| Error::InvalidHeader { header, problem };
    assert_eq!(
        refuse("", TS, &signature),
        problem("svix-id", HeaderProblem::Empty)
    );
    assert_eq!(
        refuse("msg 1", TS, &signature),
        problem("svix-id", HeaderProblem::NotVisibleAscii)
    );
    assert_eq!(
        refuse(&"m".repeat(257), TS, &signature),
        problem("svix-id", HeaderProblem::TooLong(256))
    );
    assert_eq!(
        refuse(ID, "", &signature),
        problem("svix-timestamp", HeaderProblem::Empty)
    );
    assert_eq!(
        refuse(ID, "1649367553.0", &signature),
        problem("svix-timestamp", HeaderProblem::NotUnixSeconds)
    );
    assert_eq!(
        refuse(ID, TS, " "),
        problem("svix-signature", HeaderProblem::Empty)
    );

    // A header given twice is ambiguous.
    let mut headers = headers(HeaderSet::Svix, ID, TS, &signature);
    headers.append("svix-signature", signature.parse().unwrap());
    assert_eq!(
        verifier.verify(&headers, EVENT, at(0)).unwrap_err(),
        problem("svix-signature", HeaderProblem::Repeated)
    );

    // Not visible ASCII, as a header value or as text.
    let mut headers = headers.clone();
    headers.remove("svix-signature");
    headers.insert(
        "svix-signature",
        http::HeaderValue::from_bytes(b"v1,\xff").unwrap(),
    );
    assert_eq!(
        verifier.verify(&headers, EVENT, at(0)).unwrap_err(),
        problem("svix-signature", HeaderProblem::NotVisibleAscii)
    );
    assert_eq!(
        verifier
            .verify_parts("msg_\u{e9}", TS, &signature, EVENT, at(0))
            .unwrap_err(),
        problem("svix-id", HeaderProblem::NotVisibleAscii)
    );
}

#[test]
fn a_rotation_accepts_either_secret_and_says_which() {
    let both = verifier(&format!("{SECRET} {OTHER_SECRET}"));
    for (secret, index) in [(SECRET, 0), (OTHER_SECRET, 1)] {
        let delivery = both
            .verify(&signed(secret, ID, TIMESTAMP, EVENT), EVENT, at(0))
            .unwrap();
        assert_eq!(delivery.secret_index, index);
    }
    // A sender signing with both (as Svix does mid-rotation) passes either verifier.
    let signature = both.secrets().sign(ID, TIMESTAMP, EVENT);
    assert_eq!(signature.split(' ').count(), 2);
    for one in [SECRET, OTHER_SECRET] {
        verifier(one)
            .verify(&headers(HeaderSet::Svix, ID, TS, &signature), EVENT, at(0))
            .unwrap();
    }
    // A third secret is refused, naming how much was tried.
    let third = Secret::generate().expose_whsec();
    assert_eq!(
        both.verify(&signed(&third, ID, TIMESTAMP, EVENT), EVENT, at(0))
            .unwrap_err(),
        Error::SignatureMismatch {
            header: "svix-signature",
            v1_entries: 1,
            secrets: 2
        }
    );
}
