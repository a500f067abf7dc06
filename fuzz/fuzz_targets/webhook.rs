//! Feeds arbitrary deliveries to clerk-webhooks: the input is split on its first three
//! newlines into the id, timestamp and signature header values, the rest is the body.
//! Verification runs on the headers as given (as an `http::HeaderMap` under both
//! header name sets, and as text), then again with a correct signature for those
//! values, so event parsing is reached; the body is also parsed directly, and the
//! signature line is read as a secret list. None of it may panic, a correctly signed
//! current delivery is never refused for its signature or time, and a verified one
//! carries its id and an envelope that parses on its own.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use clerk_webhooks::{Envelope, HeaderSet, Secrets, Verifier};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const DEFAULT_TIMESTAMP: u64 = 1_649_367_553;

fn headers(set: HeaderSet, id: &[u8], timestamp: &[u8], signature: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        (set.id(), id),
        (set.timestamp(), timestamp),
        (set.signature(), signature),
    ] {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(name, value);
        }
    }
    headers
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let id = parts.next().unwrap_or_default();
    let timestamp = parts.next().unwrap_or_default();
    let signature = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();

    let _ = Secrets::parse(&String::from_utf8_lossy(signature));

    let secrets = Secrets::parse(SECRET).unwrap();
    let verifier = Verifier::new(secrets.clone());
    let signed_at = std::str::from_utf8(timestamp)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_TIMESTAMP);
    let now = UNIX_EPOCH
        .checked_add(Duration::from_secs(signed_at))
        .unwrap_or(UNIX_EPOCH);

    // As given.
    for set in [HeaderSet::Svix, HeaderSet::StandardWebhooks] {
        let _ = verifier.verify(&headers(set, id, timestamp, signature), body, now);
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let _ = verifier.verify_parts(&text(id), &text(timestamp), &text(signature), body, now);

    // Correctly signed for these values, at its own time.
    let id_text = text(id);
    let good = secrets.sign(id_text.trim(), signed_at, body);
    match verifier.verify_parts(&id_text, &text(timestamp), &good, body, now) {
        Ok(delivery) => {
            assert_eq!(delivery.id, id_text.trim());
            assert_eq!(delivery.timestamp, signed_at);
            let envelope = Envelope::from_json(body).expect("a verified body parses alone");
            assert_eq!(envelope.event, delivery.event);
        }
        Err(err) => {
            assert!(!err.is_bad_signature(), "{err}");
            assert!(!err.is_out_of_tolerance(), "{err}");
            assert!(err.is_refused(), "{err}");
        }
    }

    // The body on its own.
    if let Ok(envelope) = Envelope::from_json(body) {
        let event = &envelope.event;
        let _ = (event.event_type(), event.user_id(), event.session_id());
        let _ = (event.ends_session(), event.is_unknown());
    }
});
