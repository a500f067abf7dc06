//! Shared values: the spec's known-good vector, a second secret, a clock, and
//! deliveries signed on the spot.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clerk_webhooks::{HeaderSet, Secrets, Verifier};
use http::HeaderMap;

/// The known-good vector of Svix and Standard Webhooks (spec section 5).
pub(crate) const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub(crate) const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
pub(crate) const TIMESTAMP: u64 = 1_649_367_553;
pub(crate) const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
pub(crate) const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

/// Another valid secret (the Standard Webhooks suite's signing key).
pub(crate) const OTHER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A small Clerk event, for cases where the body must parse.
pub(crate) const EVENT: &[u8] =
    br#"{"type":"session.revoked","object":"event","data":{"id":"sess_1","user_id":"user_1"}}"#;

/// `secs` seconds after the vector's timestamp.
pub(crate) fn at(secs: i64) -> SystemTime {
    let base = UNIX_EPOCH + Duration::from_secs(TIMESTAMP);
    if secs >= 0 {
        base + Duration::from_secs(secs.unsigned_abs())
    } else {
        base - Duration::from_secs(secs.unsigned_abs())
    }
}

pub(crate) fn verifier(secrets: &str) -> Verifier {
    Verifier::new(Secrets::parse(secrets).unwrap())
}

/// The three headers of `set`, with the given values.
pub(crate) fn headers(set: HeaderSet, id: &str, timestamp: &str, signature: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(set.id(), id.parse().unwrap());
    headers.insert(set.timestamp(), timestamp.parse().unwrap());
    headers.insert(set.signature(), signature.parse().unwrap());
    headers
}

/// `body` signed with `secret` as a sender would, under Svix's headers.
pub(crate) fn signed(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
    let signature = Secrets::parse(secret).unwrap().sign(id, timestamp, body);
    headers(HeaderSet::Svix, id, &timestamp.to_string(), &signature)
}

/// A fixture's bytes, exactly as stored (they are signed as is).
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
