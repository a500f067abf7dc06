//! Every verification rule, both sides of each boundary, and the pitfalls of existing
//! verifiers (spec section 4).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clerk_jwt::testing::{TEST_EMAIL, TEST_SESSION_ID, TEST_USER_ID, TokenBuilder, jwks};
use clerk_jwt::{
    CAT_JWT_TEMPLATE, CAT_MACHINE, ConfigError, Error, KeySet, KeySource, MAX_TOKEN_BYTES,
    ManualClock, Reason, SessionStatus, Verifier, VerifierBuilder,
};
use serde_json::{Value, json};

use crate::support::{ISSUER, NOW, impostor_key, key, other_key, session};

fn keyset() -> KeySet {
    KeySet::from_jwks_json(jwks(&[key(), other_key()]).to_string().as_bytes()).unwrap()
}

fn base() -> VerifierBuilder {
    Verifier::builder()
        .issuer(ISSUER)
        .keys(keyset())
        .clock(Arc::new(ManualClock::new(NOW)))
}

/// Verifies with `builder` and names the outcome: `ok` or the reason code.
async fn outcome(builder: VerifierBuilder, token: &str) -> String {
    let verifier = builder.build().expect("valid configuration");
    match verifier.verify(token).await {
        Ok(_) => "ok".to_owned(),
        Err(Error::Rejected { reason, detail }) => {
            assert!(!detail.is_empty());
            assert!(
                token.is_empty() || !detail.contains(token),
                "the detail echoes the token"
            );
            reason.as_str().to_owned()
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

/// Runs a table of `(case, token, expected)` against one configuration and reports
/// every mismatch at once.
async fn check_table(builder: impl Fn() -> VerifierBuilder, cases: Vec<(&str, String, &str)>) {
    let mut failures = Vec::new();
    for (case, token, expected) in cases {
        let got = outcome(builder(), &token).await;
        if got != expected {
            failures.push(format!("{case}: expected {expected}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A token whose header and payload are given as raw JSON text, validly signed.
fn signed_raw(header: &str, payload: &str) -> String {
    key().sign_raw(&format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    ))
}

#[tokio::test]
async fn a_valid_session_token_verifies_into_typed_claims() {
    let verifier = base().build().unwrap();
    let claims = verifier.verify(&session().sign()).await.unwrap();
    assert_eq!(claims.sub, TEST_USER_ID);
    assert_eq!(claims.sid, TEST_SESSION_ID);
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.exp, NOW + 60);
    assert_eq!(claims.version, 2);
    assert_eq!(claims.status, Some(SessionStatus::Active));
    assert_eq!(claims.email.as_deref(), Some(TEST_EMAIL));
    assert_eq!(claims.email_verified, Some(true));
    assert!(claims.extra.is_empty(), "{:?}", claims.extra);
}

#[tokio::test]
async fn structure_rules_give_token_invalid() {
    let good = session().sign();
    let (header, rest) = good.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    check_table(
        base,
        vec![
            ("empty", String::new(), "token-invalid"),
            ("two parts", format!("{header}.{payload}"), "token-invalid"),
            (
                "four parts",
                format!("{header}.{payload}.{signature}.x"),
                "token-invalid",
            ),
            (
                "padding",
                format!("{header}.{payload}=.{signature}"),
                "token-invalid",
            ),
            (
                "standard base64 alphabet",
                format!("{header}.{payload}.{}", signature.replace(['-', '_'], "+")),
                "token-invalid",
            ),
            (
                "header is an array",
                signed_raw("[\"RS256\"]", "{}"),
                "token-invalid",
            ),
            (
                "payload is a string",
                signed_raw(r#"{"alg":"RS256","kid":"ins_2testinstance"}"#, "\"sub\""),
                "token-invalid",
            ),
            (
                "payload is not JSON",
                signed_raw(r#"{"alg":"RS256","kid":"ins_2testinstance"}"#, "sub=1"),
                "token-invalid",
            ),
            (
                "duplicate claim",
                signed_raw(
                    r#"{"alg":"RS256","kid":"ins_2testinstance"}"#,
                    r#"{"sub":"user_a","sub":"user_b"}"#,
                ),
                "token-invalid",
            ),
            (
                "duplicate header parameter",
                signed_raw(
                    r#"{"alg":"RS256","alg":"RS256","kid":"ins_2testinstance"}"#,
                    "{}",
                ),
                "token-invalid",
            ),
            (
                "duplicate key inside o",
                signed_raw(
                    r#"{"alg":"RS256","kid":"ins_2testinstance"}"#,
                    r#"{"o":{"id":"org_1","id":"org_2"}}"#,
                ),
                "token-invalid",
            ),
        ],
    )
    .await;
}

/// Builds a validly signed token of exactly `len` bytes by padding a custom claim.
fn token_of_length(len: usize) -> Option<String> {
    let header = json!({"alg": "RS256", "kid": key().kid(), "typ": "JWT"});
    let signature_len = 342; // RSA-2048: 256 bytes in base64url
    // Each filler byte adds 4/3 base64 characters: start just below the estimate.
    let fixed = b64(&header).len() + 2 + signature_len + b64(&session().claims_json()).len();
    let start = (len.saturating_sub(fixed + 16)) * 3 / 4;
    for filler in start..len {
        let payload = session().claim("pad", "x".repeat(filler)).claims_json();
        let total = b64(&header).len() + 1 + b64(&payload).len() + 1 + signature_len;
        if total == len {
            return Some(key().sign_json(&header, &payload));
        }
        if total > len {
            return None;
        }
    }
    None
}

#[tokio::test]
async fn size_limit_is_8_kib_on_both_sides() {
    // Base64 grows in steps of 4 characters per 3 bytes, so look for lengths near the
    // limit that can be hit exactly.
    let at_limit = (MAX_TOKEN_BYTES - 3..=MAX_TOKEN_BYTES)
        .rev()
        .find_map(token_of_length)
        .expect("a token at the limit");
    assert!(at_limit.len() <= MAX_TOKEN_BYTES && at_limit.len() >= MAX_TOKEN_BYTES - 3);
    assert_eq!(outcome(base(), &at_limit).await, "ok");
    let over = (MAX_TOKEN_BYTES + 1..=MAX_TOKEN_BYTES + 4)
        .find_map(token_of_length)
        .expect("a token over the limit");
    assert_eq!(outcome(base(), &over).await, "token-invalid");
}

#[tokio::test]
async fn header_rules() {
    let hmac_with_public_key = {
        // The classic confusion attack: HS256 "signed" with the RSA public key as secret.
        let header = json!({"alg": "HS256", "kid": key().kid(), "typ": "JWT"});
        let input = format!("{}.{}", b64(&header), b64(&session().claims_json()));
        let mac = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key().public_pem().as_bytes()),
            input.as_bytes(),
        );
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
    };
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": key().kid()})),
        b64(&session().claims_json())
    );
    check_table(
        base,
        vec![
            ("alg none", unsigned, "token-invalid-algorithm"),
            (
                "alg HS256 with public key",
                hmac_with_public_key,
                "token-invalid-algorithm",
            ),
            (
                "alg ES256",
                session().header("alg", "ES256").sign(),
                "token-invalid-algorithm",
            ),
            (
                "alg PS256",
                session().header("alg", "PS256").sign(),
                "token-invalid-algorithm",
            ),
            (
                "alg RS384",
                session().header("alg", "RS384").sign(),
                "token-invalid-algorithm",
            ),
            (
                "alg RS512",
                session().header("alg", "RS512").sign(),
                "token-invalid-algorithm",
            ),
            (
                "alg lowercase",
                session().header("alg", "rs256").sign(),
                "token-invalid-algorithm",
            ),
            (
                "alg missing",
                session().without_header("alg").sign(),
                "token-invalid-algorithm",
            ),
            (
                "alg not a string",
                session().header("alg", 256).sign(),
                "token-invalid-algorithm",
            ),
            ("typ absent", session().without_header("typ").sign(), "ok"),
            (
                "typ JOSE",
                session().header("typ", "JOSE").sign(),
                "token-invalid",
            ),
            (
                "typ lowercase jwt",
                session().header("typ", "jwt").sign(),
                "token-invalid",
            ),
            (
                "typ not a string",
                session().header("typ", 1).sign(),
                "token-invalid",
            ),
            (
                "crit",
                session().header("crit", json!(["exp"])).sign(),
                "token-invalid",
            ),
            (
                "crit empty",
                session().header("crit", json!([])).sign(),
                "token-invalid",
            ),
            (
                "kid missing",
                session().without_header("kid").sign(),
                "token-invalid",
            ),
            (
                "kid empty",
                session().header("kid", "").sign(),
                "token-invalid",
            ),
            (
                "kid not a string",
                session().header("kid", 7).sign(),
                "token-invalid",
            ),
            (
                "jku, x5u, jwk and x5c are ignored",
                session()
                    .header("jku", "https://evil.example/jwks.json")
                    .header("x5u", "https://evil.example/cert.pem")
                    .header("jwk", impostor_key().jwk())
                    .header("x5c", json!(["MIIB"]))
                    .sign_with(impostor_key()),
                "token-invalid-signature",
            ),
            (
                "unknown header parameters are ignored",
                session().header("oiat", NOW).sign(),
                "ok",
            ),
            ("cat of a session token", session().sign(), "ok"),
        ],
    )
    .await;
}

#[tokio::test]
async fn key_and_signature_rules() {
    let good = session().sign();
    let tampered = {
        let (header, rest) = good.split_once('.').unwrap();
        let signature = rest.split_once('.').unwrap().1;
        let payload = b64(&session().claim("sub", "user_attacker").claims_json());
        format!("{header}.{payload}.{signature}")
    };
    check_table(
        base,
        vec![
            (
                "unknown kid",
                session().header("kid", "ins_unknown").sign(),
                "jwk-kid-mismatch",
            ),
            (
                "another instance's token and kid (not in this key set)",
                TokenBuilder::session(other_key(), ISSUER, NOW)
                    .header("kid", "ins_2thirdinstance")
                    .sign(),
                "jwk-kid-mismatch",
            ),
            (
                "signed by another key under this kid",
                session().sign_with(impostor_key()),
                "token-invalid-signature",
            ),
            (
                "payload changed after signing",
                tampered,
                "token-invalid-signature",
            ),
            (
                "empty signature",
                format!("{}.", good.rsplit_once('.').unwrap().0),
                "token-invalid-signature",
            ),
            (
                "signature checked before claims: bad sig and bad exp",
                session().claim("exp", "soon").sign_with(impostor_key()),
                "token-invalid-signature",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn claim_types_give_token_verification_failed() {
    check_table(
        base,
        vec![
            (
                "sub missing",
                session().without_claim("sub").sign(),
                "token-verification-failed",
            ),
            (
                "sub a number",
                session().claim("sub", 42).sign(),
                "token-verification-failed",
            ),
            (
                "sub null",
                session().claim("sub", Value::Null).sign(),
                "token-verification-failed",
            ),
            (
                "exp missing",
                session().without_claim("exp").sign(),
                "token-verification-failed",
            ),
            (
                "exp a string",
                session().claim("exp", "1800000060").sign(),
                "token-verification-failed",
            ),
            (
                "exp null",
                session().claim("exp", Value::Null).sign(),
                "token-verification-failed",
            ),
            (
                "nbf a string",
                session().claim("nbf", "0").sign(),
                "token-verification-failed",
            ),
            (
                "iat a bool",
                session().claim("iat", true).sign(),
                "token-verification-failed",
            ),
            ("nbf absent", session().without_claim("nbf").sign(), "ok"),
            ("iat absent", session().without_claim("iat").sign(), "ok"),
            (
                "exp with a fraction",
                session().claim("exp", (NOW + 60) as f64 + 0.5).sign(),
                "ok",
            ),
            (
                "sid a number",
                session().claim("sid", 1).sign(),
                "token-verification-failed",
            ),
            (
                "azp an array",
                session().claim("azp", json!(["a"])).sign(),
                "token-verification-failed",
            ),
            (
                "o not an object",
                session().claim("o", "org_1").sign(),
                "token-verification-failed",
            ),
            (
                "fva of three",
                session().claim("fva", json!([1, 2, 3])).sign(),
                "token-verification-failed",
            ),
            (
                "act without sub",
                session().claim("act", json!({"iss": "x"})).sign(),
                "token-verification-failed",
            ),
            (
                "v a string",
                session().claim("v", "2").sign(),
                "token-verification-failed",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn time_rules_with_the_default_5_s_leeway() {
    check_table(
        base,
        vec![
            ("exp 4 s past", session().claim("exp", NOW - 4).sign(), "ok"),
            (
                "exp 5 s past",
                session().claim("exp", NOW - 5).sign(),
                "token-expired",
            ),
            (
                "exp 6 s past",
                session().claim("exp", NOW - 6).sign(),
                "token-expired",
            ),
            ("exp now", session().claim("exp", NOW).sign(), "ok"),
            (
                "nbf 5 s ahead",
                session().claim("nbf", NOW + 5).sign(),
                "ok",
            ),
            (
                "nbf 6 s ahead",
                session().claim("nbf", NOW + 6).sign(),
                "token-not-active-yet",
            ),
            (
                "iat 5 s ahead",
                session().claim("iat", NOW + 5).sign(),
                "ok",
            ),
            (
                "iat 6 s ahead",
                session().claim("iat", NOW + 6).sign(),
                "token-iat-in-the-future",
            ),
            (
                // Pitfall: a server clock 3 s behind Clerk sees a fresh token from the future.
                "server clock 3 s behind Clerk",
                TokenBuilder::session(key(), ISSUER, NOW + 3).sign(),
                "ok",
            ),
            (
                "expired beats wrong issuer (time is checked first)",
                session()
                    .claim("exp", NOW - 60)
                    .claim("iss", "https://evil.example")
                    .sign(),
                "token-expired",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn timestamps_beyond_i32_are_read() {
    // Pitfall: i32 timestamps. Year 2300 does not fit in an i32; a fresh token then.
    let year_2300 = 10_413_792_000_i64;
    let verifier = || base().clock(Arc::new(ManualClock::new(year_2300)));
    check_table(
        verifier,
        vec![(
            "iat and exp beyond i32",
            TokenBuilder::session(key(), ISSUER, year_2300).sign(),
            "ok",
        )],
    )
    .await;
}

#[tokio::test]
async fn a_token_living_longer_than_an_hour_is_refused_by_default() {
    let lives = |seconds: i64| session().claim("exp", NOW + seconds).sign();
    check_table(
        base,
        vec![
            ("Clerk's 60 s", lives(60), "ok"),
            ("an hour", lives(3600), "ok"),
            (
                "an hour and a second",
                lives(3601),
                "token-lifetime-too-long",
            ),
            (
                // The issue's case: minted with expires_in_seconds 36000.
                "ten hours",
                lives(36_000),
                "token-lifetime-too-long",
            ),
            (
                // Issued long ago, still valid: its lifetime, not the time left, counts.
                "issued 2 h ago, 10 s left",
                session()
                    .claim("iat", NOW - 7200)
                    .claim("exp", NOW + 10)
                    .sign(),
                "token-lifetime-too-long",
            ),
            (
                // Without iat, nbf starts the lifetime (Clerk's nbf is 10 s before iat).
                "no iat: exp - nbf, nbf 10 s back",
                session()
                    .without_claim("iat")
                    .claim("exp", NOW + 3590)
                    .sign(),
                "ok",
            ),
            (
                "no iat: exp - nbf over an hour",
                session()
                    .without_claim("iat")
                    .claim("exp", NOW + 3591)
                    .sign(),
                "token-lifetime-too-long",
            ),
            (
                "neither iat nor nbf: the time left",
                session()
                    .without_claim("iat")
                    .without_claim("nbf")
                    .claim("exp", NOW + 3600)
                    .sign(),
                "ok",
            ),
            (
                "neither iat nor nbf: more than an hour left",
                session()
                    .without_claim("iat")
                    .without_claim("nbf")
                    .claim("exp", NOW + 3601)
                    .sign(),
                "token-lifetime-too-long",
            ),
            (
                "expired beats too long (time is checked first)",
                session()
                    .claim("iat", NOW - 7200)
                    .claim("exp", NOW - 60)
                    .sign(),
                "token-expired",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_maximum_token_lifetime_is_configurable_and_bounded() {
    let clerk_only = || base().max_token_lifetime(Duration::from_secs(60));
    check_table(
        clerk_only,
        vec![
            ("Clerk's 60 s", session().sign(), "ok"),
            (
                "61 s",
                session().claim("exp", NOW + 61).sign(),
                "token-lifetime-too-long",
            ),
        ],
    )
    .await;
    let day = || base().max_token_lifetime(Duration::from_secs(24 * 3600));
    check_table(
        day,
        vec![(
            "ten hours",
            session().claim("exp", NOW + 36_000).sign(),
            "ok",
        )],
    )
    .await;
    assert_eq!(
        base().build().unwrap().max_token_lifetime(),
        clerk_jwt::DEFAULT_MAX_TOKEN_LIFETIME
    );
    assert_eq!(
        clerk_only().build().unwrap().max_token_lifetime(),
        Duration::from_secs(60)
    );
    for (seconds, ok) in [(59, false), (60, true), (86_400, true), (86_401, false)] {
        let built = base()
            .max_token_lifetime(Duration::from_secs(seconds))
            .build();
        match built {
            Ok(_) => assert!(ok, "{seconds} s accepted"),
            Err(err) => {
                assert!(!ok, "{seconds} s refused: {err}");
                assert!(
                    matches!(err, Error::Config(ConfigError::MaxTokenLifetime(s)) if s == seconds),
                    "{err}"
                );
            }
        }
    }
}

#[tokio::test]
async fn leeway_is_configurable_and_bounded() {
    let zero = || base().leeway(Duration::ZERO);
    check_table(
        zero,
        vec![
            (
                "zero leeway: exp now",
                session().claim("exp", NOW).sign(),
                "token-expired",
            ),
            (
                "zero leeway: exp 1 s ahead",
                session().claim("exp", NOW + 1).sign(),
                "ok",
            ),
            (
                // Pitfall: zero leeway rejects a fresh token from a clock 1 s ahead.
                "zero leeway: iat 1 s ahead",
                session().claim("iat", NOW + 1).sign(),
                "token-iat-in-the-future",
            ),
        ],
    )
    .await;
    let thirty = || base().leeway(Duration::from_secs(30));
    check_table(
        thirty,
        vec![
            (
                "30 s: exp 29 s past",
                session().claim("exp", NOW - 29).sign(),
                "ok",
            ),
            (
                "30 s: exp 30 s past",
                session().claim("exp", NOW - 30).sign(),
                "token-expired",
            ),
        ],
    )
    .await;
    // Pitfall: a fixed 60 s leeway doubles a 60 s token's life. It is refused.
    let err = base().leeway(Duration::from_secs(60)).build().unwrap_err();
    assert!(
        matches!(err, Error::Config(ConfigError::Leeway(60))),
        "{err}"
    );
}

#[tokio::test]
async fn issuer_rules() {
    check_table(
        base,
        vec![
            (
                "another instance's issuer",
                session().claim("iss", "https://clerk.other.com").sign(),
                "token-invalid-issuer",
            ),
            (
                "iss missing",
                session().without_claim("iss").sign(),
                "token-invalid-issuer",
            ),
            (
                "trailing slash is a different issuer",
                session().claim("iss", format!("{ISSUER}/")).sign(),
                "token-invalid-issuer",
            ),
            (
                "http instead of https",
                session().claim("iss", "http://clerk.example.com").sign(),
                "token-invalid-issuer",
            ),
        ],
    )
    .await;
    let satellite = || base().issuer("https://clerk.satellite.dev");
    check_table(
        satellite,
        vec![
            ("primary still accepted", session().sign(), "ok"),
            (
                "satellite accepted",
                session().claim("iss", "https://clerk.satellite.dev").sign(),
                "ok",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn authorized_party_rules() {
    check_table(
        base,
        vec![
            (
                "no list: any azp",
                session().claim("azp", "https://anything.dev").sign(),
                "ok",
            ),
            ("no list: no azp", session().sign(), "ok"),
        ],
    )
    .await;
    let listed = || {
        base()
            .authorized_party("https://app.example.com")
            .authorized_party("http://localhost:3000")
    };
    check_table(
        listed,
        vec![
            (
                "listed",
                session().claim("azp", "https://app.example.com").sign(),
                "ok",
            ),
            (
                "second listed",
                session().claim("azp", "http://localhost:3000").sign(),
                "ok",
            ),
            (
                "not listed",
                session().claim("azp", "https://evil.example.com").sign(),
                "token-invalid-authorized-parties",
            ),
            (
                "prefix of a listed origin",
                session()
                    .claim("azp", "https://app.example.com.evil.dev")
                    .sign(),
                "token-invalid-authorized-parties",
            ),
            (
                "missing azp",
                session().sign(),
                "token-invalid-authorized-parties",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn audience_is_checked_only_when_configured() {
    check_table(
        base,
        vec![
            // Pitfall (clerk-rs): tokens carrying aud rejected with no audience set.
            (
                "aud string, none configured",
                session().claim("aud", "convex").sign(),
                "ok",
            ),
            (
                "aud array, none configured",
                session().claim("aud", json!(["a", "b"])).sign(),
                "ok",
            ),
        ],
    )
    .await;
    let with_audience = || base().audience("https://api.example.com");
    check_table(
        with_audience,
        vec![
            (
                "matching string",
                session().claim("aud", "https://api.example.com").sign(),
                "ok",
            ),
            (
                "array containing it",
                session()
                    .claim("aud", json!(["x", "https://api.example.com"]))
                    .sign(),
                "ok",
            ),
            (
                "other",
                session().claim("aud", "x").sign(),
                "token-invalid-audience",
            ),
            ("missing", session().sign(), "token-invalid-audience"),
        ],
    )
    .await;
}

#[tokio::test]
async fn only_session_tokens_pass() {
    check_table(
        base,
        vec![
            (
                "no sid",
                session().without_claim("sid").sign(),
                "token-not-session",
            ),
            (
                "JWT template cat",
                session().header("cat", CAT_JWT_TEMPLATE).sign(),
                "token-not-session",
            ),
            (
                "machine token cat",
                session().header("cat", CAT_MACHINE).sign(),
                "token-not-session",
            ),
            (
                "OAuth access token typ",
                session().header("typ", "at+jwt").sign(),
                "token-not-session",
            ),
            (
                "template without sid and without cat",
                session().without_header("cat").without_claim("sid").sign(),
                "token-not-session",
            ),
        ],
    )
    .await;
    let any_kind = || base().require_session_token(false);
    check_table(
        any_kind,
        vec![(
            "no sid accepted when switched off",
            session().without_claim("sid").sign(),
            "ok",
        )],
    )
    .await;
}

#[tokio::test]
async fn sid_and_sub_must_be_clerk_session_and_user_ids() {
    let cases = |sid: &str, sub: &str| session().claim("sid", sid).claim("sub", sub).sign();
    let user = TEST_USER_ID;
    let sess = TEST_SESSION_ID;
    check_table(
        base,
        vec![
            ("Clerk's ids", cases(sess, user), "ok"),
            ("short ids", cases("sess_1", "user_1"), "ok"),
            ("empty sid", cases("", user), "token-not-session"),
            ("bare sess_", cases("sess_", user), "token-not-session"),
            (
                "another prefix",
                cases("session_2abc", user),
                "token-not-session",
            ),
            ("a user id as sid", cases(user, user), "token-not-session"),
            ("a space", cases("sess_2ab cd", user), "token-not-session"),
            (
                "too long",
                cases(&format!("sess_{}", "a".repeat(65)), user),
                "token-not-session",
            ),
            ("empty sub", cases(sess, ""), "token-not-session"),
            ("machine sub", cases(sess, "mch_2abc"), "token-not-session"),
            (
                "a session id as sub",
                cases(sess, sess),
                "token-not-session",
            ),
            ("user_ alone", cases(sess, "user_"), "token-not-session"),
        ],
    )
    .await;
    // A verifier that accepts any Clerk token (as InstantDB's) does not judge them.
    let any_kind = || base().require_session_token(false);
    check_table(
        any_kind,
        vec![
            ("empty ids", cases("", ""), "ok"),
            ("machine sub", cases(sess, "mch_2abc"), "ok"),
        ],
    )
    .await;
}

#[tokio::test]
async fn pending_sessions_are_refused_unless_allowed() {
    let pending = session().claim("sts", "pending").sign();
    assert_eq!(outcome(base(), &pending).await, "session-pending");
    assert_eq!(
        outcome(base().allow_pending_sessions(true), &pending).await,
        "ok"
    );
}

#[tokio::test]
async fn impersonation_is_kept_and_refused_only_when_asked() {
    let act =
        json!({"sub": "user_2admin", "iss": "https://dashboard.clerk.com", "sid": "sess_2admin"});
    let impersonated = session().claim("act", act).sign();
    let claims = base().build().unwrap().verify(&impersonated).await.unwrap();
    let actor = claims.actor.expect("the actor is kept");
    assert_eq!(actor.sub, "user_2admin");
    assert_eq!(actor.sid.as_deref(), Some("sess_2admin"));
    let refusing = || base().reject_impersonation(true);
    check_table(
        refusing,
        vec![
            ("impersonated", impersonated.clone(), "session-impersonated"),
            ("act null", session().claim("act", Value::Null).sign(), "ok"),
            ("not impersonated", session().sign(), "ok"),
        ],
    )
    .await;
    assert_eq!(
        outcome(base().reject_impersonation(false), &impersonated).await,
        "ok"
    );
}

#[tokio::test]
async fn only_the_statuses_clerk_issues_tokens_for_pass() {
    let sts = |status: Value| session().claim("sts", status).sign();
    check_table(
        base,
        vec![
            ("active", sts("active".into()), "ok"),
            ("no sts (v1)", session().without_claim("sts").sign(), "ok"),
            ("null", sts(Value::Null), "ok"),
            ("revoked", sts("revoked".into()), "session-not-active"),
            ("ended", sts("ended".into()), "session-not-active"),
            ("expired", sts("expired".into()), "session-not-active"),
            ("removed", sts("removed".into()), "session-not-active"),
            ("abandoned", sts("abandoned".into()), "session-not-active"),
            ("replaced", sts("replaced".into()), "session-not-active"),
            (
                "unknown",
                sts("reverification".into()),
                "session-not-active",
            ),
            ("empty", sts("".into()), "session-not-active"),
            ("Active", sts("Active".into()), "session-not-active"),
            ("not a string", sts(1.into()), "token-verification-failed"),
        ],
    )
    .await;
    // Allowing pending sessions allows no other status.
    let pending_allowed = || base().allow_pending_sessions(true);
    check_table(
        pending_allowed,
        vec![
            ("pending", sts("pending".into()), "ok"),
            ("revoked", sts("revoked".into()), "session-not-active"),
        ],
    )
    .await;
}

#[tokio::test]
async fn email_rules() {
    check_table(
        base,
        vec![
            (
                "missing",
                session().without_claim("email").sign(),
                "email-missing",
            ),
            (
                "null (phone-only user)",
                session().claim("email", Value::Null).sign(),
                "email-missing",
            ),
            (
                "empty",
                session().claim("email", "").sign(),
                "email-missing",
            ),
            (
                "a number",
                session().claim("email", 5).sign(),
                "email-missing",
            ),
            (
                "not an address",
                session().claim("email", "alice").sign(),
                "email-missing",
            ),
            (
                "unresolved shortcode",
                session()
                    .claim("email", "{{user.primary_email_address}}")
                    .sign(),
                "email-missing",
            ),
            (
                "verified false",
                session().claim("email_verified", false).sign(),
                "email-unverified",
            ),
            (
                "verified \"false\"",
                session().claim("email_verified", "false").sign(),
                "email-unverified",
            ),
            (
                "verified \"true\"",
                session().claim("email_verified", "true").sign(),
                "ok",
            ),
            (
                "verified absent",
                session().without_claim("email_verified").sign(),
                "ok",
            ),
            (
                "verified 1 is malformed",
                session().claim("email_verified", 1).sign(),
                "token-verification-failed",
            ),
        ],
    )
    .await;
    let optional = || base().require_email(false).require_verified_email(false);
    check_table(
        optional,
        vec![
            (
                "missing allowed",
                session().without_claim("email").sign(),
                "ok",
            ),
            (
                "unverified allowed",
                session().claim("email_verified", false).sign(),
                "ok",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn v2_and_v1_claims_are_typed() {
    let verifier = base().build().unwrap();
    let v2 = session()
        .claim("fea", "u:chat,o:dashboard,o:billing")
        .claim("pla", "o:pro")
        .claim("o", json!({"id": "org_1", "slg": "acme", "rol": "admin", "per": "read,manage", "fpm": "3,2"}))
        .claim("act", json!({"sub": "user_admin", "iss": "https://dashboard.clerk.com", "type": "impersonation"}))
        .claim("plan_seats", 5)
        .sign();
    let claims = verifier.verify(&v2).await.unwrap();
    let org = claims.organization.as_ref().unwrap();
    assert_eq!(org.id, "org_1");
    assert_eq!(org.slug.as_deref(), Some("acme"));
    assert_eq!(org.role.as_deref(), Some("org:admin"));
    assert_eq!(
        claims.org_permissions(),
        [
            "org:dashboard:read",
            "org:dashboard:manage",
            "org:billing:manage"
        ]
    );
    assert_eq!(claims.plan.as_deref(), Some("o:pro"));
    assert_eq!(claims.features_of("u"), ["chat"]);
    assert_eq!(claims.actor.as_ref().unwrap().sub, "user_admin");
    assert_eq!(claims.factor_age.unwrap().first, Some(0));
    assert_eq!(claims.factor_age.unwrap().second, None);
    assert_eq!(claims.extra.get("plan_seats"), Some(&json!(5)));

    // Pitfall: o without per/fpm must not crash or fail.
    let bare_org = session().claim("o", json!({"id": "org_2"})).sign();
    let claims = verifier.verify(&bare_org).await.unwrap();
    assert!(claims.org_permissions().is_empty());

    let v1 = session()
        .without_claim("v")
        .without_claim("fva")
        .without_claim("sts")
        .claim("org_id", "org_9")
        .claim("org_role", "org:member")
        .claim("org_slug", "nine")
        .claim("org_permissions", json!(["org:posts:read"]))
        .sign();
    let claims = verifier.verify(&v1).await.unwrap();
    assert_eq!(claims.version, 1);
    assert_eq!(claims.organization.as_ref().unwrap().id, "org_9");
    assert_eq!(claims.org_permissions(), ["org:posts:read"]);
    assert!(claims.extra.is_empty(), "{:?}", claims.extra);
}

#[tokio::test]
async fn errors_explain_what_to_do_and_never_echo_the_token() {
    let verifier = base().build().unwrap();
    let token = session().claim("exp", NOW - 100).sign();
    let err = verifier.verify(&token).await.unwrap_err();
    assert_eq!(err.reason(), Some(Reason::TokenExpired));
    assert!(err.is_token_rejection());
    assert!(err.hint().contains("clock"), "{}", err.hint());
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(&token));
    assert!(!shown.contains(token.rsplit('.').next().unwrap()));
    for reason in Reason::ALL {
        assert!(!reason.hint().is_empty());
    }
    let missing = verifier
        .verify(&session().without_claim("email").sign())
        .await
        .unwrap_err();
    assert!(
        missing.hint().contains("Customize session token"),
        "{}",
        missing.hint()
    );
}

#[tokio::test]
async fn a_pem_key_needs_no_kid() {
    let pem = KeySource::Pem(clerk_jwt::VerifyingKey::from_pem(&key().public_pem()).unwrap());
    let verifier = || {
        Verifier::builder()
            .issuer(ISSUER)
            .keys(pem.clone())
            .clock(Arc::new(ManualClock::new(NOW)))
    };
    check_table(
        verifier,
        vec![
            ("with kid", session().sign(), "ok"),
            ("without kid", session().without_header("kid").sign(), "ok"),
            (
                "other key",
                session().sign_with(impostor_key()),
                "token-invalid-signature",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_verified_token_cache_skips_work_but_changes_no_outcome() {
    let clock = Arc::new(ManualClock::new(NOW));
    let verifier = Verifier::builder()
        .issuer(ISSUER)
        .keys(keyset())
        .clock(clock.clone())
        .verified_token_cache(16)
        .build()
        .unwrap();
    let token = session().sign();
    let first = verifier.verify(&token).await.unwrap();
    let again = verifier.verify(&token).await.unwrap();
    assert_eq!(first, again);
    // Tampering with a cached token's payload is still caught.
    let (header, rest) = token.split_once('.').unwrap();
    let signature = rest.split_once('.').unwrap().1;
    let forged = format!(
        "{header}.{}.{signature}",
        b64(&session().claim("sub", "user_attacker").claims_json())
    );
    assert_eq!(
        verifier.verify(&forged).await.unwrap_err().reason(),
        Some(Reason::TokenInvalidSignature)
    );
    // Time is checked on every use: a cached token expires like any other.
    clock.set(NOW + 64);
    verifier.verify(&token).await.unwrap();
    clock.set(NOW + 65);
    assert_eq!(
        verifier.verify(&token).await.unwrap_err().reason(),
        Some(Reason::TokenExpired)
    );
    // Bounded: many distinct tokens keep verifying.
    clock.set(NOW);
    for i in 0..40 {
        let t = session().claim("jti", format!("jti_{i}")).sign();
        verifier.verify(&t).await.unwrap();
        verifier.verify(&t).await.unwrap();
    }
}
