//! The rejection texts people read: for every `Reason`, one real failure that produces
//! it, with its message, its causes and its hint, in one snapshot to review.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use clerk_jwt::{
    CAT_JWT_TEMPLATE, Error, KeySet, ManualClock, Reason, RemoteJwks, RemoteOptions, SecretKey,
    Verifier, VerifierBuilder, VerifyingKey,
};

use crate::support::{ISSUER, JwksServer, Mode, NOW, impostor_key, key, other_key, session};

fn base() -> VerifierBuilder {
    let keys = KeySet::from_jwks_json(key().jwks().to_string().as_bytes()).unwrap();
    Verifier::builder()
        .issuer(ISSUER)
        .keys(keys)
        .clock(Arc::new(ManualClock::new(NOW)))
}

async fn verify(builder: VerifierBuilder, token: &str) -> Error {
    builder
        .build()
        .expect("valid configuration")
        .verify(token)
        .await
        .expect_err("the case must fail")
}

/// One failure per case, each built the way a caller meets it.
async fn failures() -> Vec<(&'static str, Error)> {
    let mut out = Vec::new();
    let claim = |name: &str, value: serde_json::Value| session().claim(name, value).sign();

    out.push((
        "expired",
        verify(base(), &claim("exp", (NOW - 60).into())).await,
    ));
    out.push(("not a JWS", verify(base(), "abc.def").await));
    out.push((
        "HS256",
        verify(base(), &session().header("alg", "HS256").sign()).await,
    ));
    out.push((
        "azp of another origin",
        verify(
            base().authorized_party("https://app.example.com"),
            &claim("azp", "https://evil.example".into()),
        )
        .await,
    ));
    out.push((
        "signed by an impostor",
        verify(base(), &session().sign_with(impostor_key())).await,
    ));
    out.push((
        "nbf ahead",
        verify(base(), &claim("nbf", (NOW + 60).into())).await,
    ));
    out.push((
        "iat ahead",
        verify(base(), &claim("iat", (NOW + 60).into())).await,
    ));
    out.push((
        "sub of the wrong type",
        verify(base(), &claim("sub", 42.into())).await,
    ));
    out.push((
        "unknown kid",
        verify(
            base(),
            &clerk_jwt::testing::TokenBuilder::session(other_key(), ISSUER, NOW).sign(),
        )
        .await,
    ));
    out.push((
        "another issuer",
        verify(base(), &claim("iss", "https://clerk.other.dev".into())).await,
    ));
    out.push((
        "no aud",
        verify(
            base().audience("https://api.example.com"),
            &session().sign(),
        )
        .await,
    ));
    out.push((
        "lives ten hours",
        verify(base(), &claim("exp", (NOW + 36_000).into())).await,
    ));
    out.push((
        "a maximum token lifetime below Clerk's 60 s",
        base()
            .max_token_lifetime(std::time::Duration::from_secs(30))
            .build()
            .unwrap_err(),
    ));
    out.push((
        "JWT template",
        verify(
            base(),
            &session()
                .header("cat", CAT_JWT_TEMPLATE)
                .without_claim("sid")
                .sign(),
        )
        .await,
    ));
    out.push(("empty sid", verify(base(), &claim("sid", "".into())).await));
    out.push((
        "sub of a machine",
        verify(base(), &claim("sub", "mch_2machine".into())).await,
    ));
    out.push((
        "revoked session",
        verify(base(), &claim("sts", "revoked".into())).await,
    ));
    out.push((
        "pending session",
        verify(base(), &claim("sts", "pending".into())).await,
    ));
    out.push((
        "impersonated, refused",
        verify(
            base().reject_impersonation(true),
            &claim(
                "act",
                serde_json::json!({"sub": "user_2admin", "iss": "https://dashboard.clerk.com"}),
            ),
        )
        .await,
    ));
    out.push((
        "no email",
        verify(base(), &session().without_claim("email").sign()).await,
    ));
    out.push((
        "email not verified",
        verify(base(), &claim("email_verified", false.into())).await,
    ));
    out.push((
        "no key source",
        Verifier::builder().issuer(ISSUER).build().unwrap_err(),
    ));
    out.push((
        "a PEM that is no key",
        Error::from(VerifyingKey::from_pem("not a key").unwrap_err()),
    ));

    let down = JwksServer::start(Mode::Status(503)).await;
    out.push((
        "JWKS down",
        verify(
            base().keys(RemoteJwks::url(down.url(), RemoteOptions::default())),
            &session().sign(),
        )
        .await,
    ));
    down.stop().await;

    let backend =
        JwksServer::start_with_auth(Mode::Serve(key().jwks()), Some("sk_test_right")).await;
    out.push((
        "secret key refused",
        verify(
            base().keys(RemoteJwks::backend_api(
                SecretKey::new("sk_test_wrong").unwrap(),
                Some(&backend.base_url()),
                RemoteOptions::default(),
            )),
            &session().sign(),
        )
        .await,
    ));
    backend.stop().await;
    out
}

#[tokio::test]
async fn every_reason_reads_well() {
    let failures = failures().await;
    let mut text = String::new();
    let mut covered = BTreeSet::new();
    for (case, err) in &failures {
        let code = err.reason().map_or("-", Reason::as_str);
        covered.extend(err.reason().map(Reason::as_str));
        writeln!(text, "{case} ({code})\n  message: {err}").unwrap();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            writeln!(text, "  caused by: {cause}").unwrap();
            source = cause.source();
        }
        writeln!(text, "  hint: {}\n", err.hint()).unwrap();
    }
    let all: BTreeSet<_> = Reason::ALL.into_iter().map(Reason::as_str).collect();
    assert!(
        !text.contains("sk_test_"),
        "a text shows a secret key:\n{text}"
    );
    let missing: Vec<_> = all.difference(&covered).collect();
    assert!(missing.is_empty(), "no case produces {missing:?}");
    insta::with_settings!({filters => vec![(r"127\.0\.0\.1:\d+", "127.0.0.1:[port]")]}, {
        insta::assert_snapshot!(text);
    });
}
