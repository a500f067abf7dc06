//! The remote key cache, driven by a JWKS server on 127.0.0.1 that counts requests.
//! Time moves only through the injected clock.

use std::sync::Arc;
use std::time::Duration;

use clerk_jwt::testing::{TokenBuilder, jwks};
use clerk_jwt::{
    Error, FetchError, ManualClock, Reason, RemoteJwks, RemoteOptions, SecretKey, Verifier,
};

use crate::support::{ISSUER, JwksServer, Mode, NOW, key, other_key, session};

struct Fixture {
    server: JwksServer,
    clock: Arc<ManualClock>,
    remote: RemoteJwks,
    verifier: Verifier,
}

async fn fixture(mode: Mode, options: RemoteOptions) -> Fixture {
    let server = JwksServer::start(mode).await;
    let clock = Arc::new(ManualClock::new(NOW));
    let remote = RemoteJwks::url(server.url(), options);
    let verifier = Verifier::builder()
        .issuer(ISSUER)
        .keys(remote.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    Fixture {
        server,
        clock,
        remote,
        verifier,
    }
}

fn serve_key() -> Mode {
    Mode::Serve(key().jwks())
}

/// A fresh token as of the fixture clock.
fn token_at(now: i64) -> String {
    TokenBuilder::session(key(), ISSUER, now).sign()
}

fn reason(result: &Result<clerk_jwt::SessionClaims, Error>) -> Option<Reason> {
    result.as_ref().err().and_then(Error::reason)
}

/// The error and its causes joined as anyhow's `{:#}` prints them, checking on the way
/// that no message repeats its cause (each is printed once).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error;
    while let Some(cause) = current.source() {
        let (outer, inner) = (current.to_string(), cause.to_string());
        assert!(
            !outer.contains(&inner),
            "{outer:?} repeats its cause {inner:?}"
        );
        text.push_str(": ");
        text.push_str(&inner);
        current = cause;
    }
    text
}

#[tokio::test(flavor = "current_thread")]
async fn two_hundred_concurrent_verifications_on_a_cold_cache_make_one_request() {
    let f = fixture(Mode::Gated(key().jwks()), RemoteOptions::default()).await;
    let token = token_at(NOW);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let verifier = f.verifier.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move { verifier.verify(&token).await }));
    }
    // All 200 tasks run before the server's connection is served; hold the first
    // request until every task has had many chances to start its own fetch.
    f.server.request_arrived().await;
    for _ in 0..1000 {
        tokio::task::yield_now().await;
    }
    f.server.open_gate();
    for task in tasks {
        task.await.unwrap().expect("verified");
    }
    assert_eq!(f.server.hits(), 1);
    assert_eq!(f.remote.status().fetches, 1);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_refreshes_at_most_once_per_cooldown() {
    let f = fixture(serve_key(), RemoteOptions::default()).await;
    f.verifier.verify(&token_at(NOW)).await.unwrap();
    assert_eq!(f.server.hits(), 1);

    let unknown = |i: usize| session().header("kid", format!("ins_attacker_{i}")).sign();
    for i in 0..100 {
        let result = f.verifier.verify(&unknown(i)).await;
        assert_eq!(reason(&result), Some(Reason::JwkKidMismatch));
    }
    assert_eq!(
        f.server.hits(),
        1,
        "no refresh within 10 s of the last fetch"
    );

    // 10 s after the first fetch, one unknown kid refreshes (it may be a rotation)...
    f.clock.advance(10);
    for i in 0..100 {
        let result = f.verifier.verify(&unknown(1000 + i)).await;
        assert_eq!(reason(&result), Some(Reason::JwkKidMismatch));
    }
    assert_eq!(f.server.hits(), 2);

    // ...and then no other until the cooldown has passed since that refresh.
    f.clock.advance(299);
    f.verifier.verify(&unknown(2000)).await.unwrap_err();
    assert_eq!(f.server.hits(), 2);
    f.clock.advance(1);
    for i in 0..50 {
        let result = f.verifier.verify(&unknown(3000 + i)).await;
        assert_eq!(reason(&result), Some(Reason::JwkKidMismatch));
    }
    assert_eq!(f.server.hits(), 3);
    // Known keys keep verifying from the cache throughout.
    f.verifier.verify(&token_at(NOW + 310)).await.unwrap();
    assert_eq!(f.server.hits(), 3);
}

#[tokio::test]
async fn a_flood_costs_one_fetch_per_cooldown_over_a_long_run() {
    // An hour of unknown kids, one every second (60 distinct ones, cycled), with a known
    // token every minute: one fetch per 5 min, the first 10 s after the last fetch.
    let f = fixture(serve_key(), RemoteOptions::default()).await;
    f.verifier.verify(&token_at(NOW)).await.unwrap();
    let attacks: Vec<String> = (0..60)
        .map(|i| session().header("kid", format!("ins_attacker_{i}")).sign())
        .collect();
    let mut kid_fetches = Vec::new();
    for second in 1..=3600 {
        f.clock.set(NOW + second);
        let before = f.server.hits();
        let attack = &attacks[usize::try_from(second).unwrap() % attacks.len()];
        f.verifier.verify(attack).await.unwrap_err();
        if f.server.hits() > before {
            kid_fetches.push(second);
        }
        if second % 60 == 0 {
            f.verifier.verify(&token_at(NOW + second)).await.unwrap();
        }
    }
    // The first at 10 s, then one every 300 s. Each renews the keys, so the known
    // tokens bring no TTL refresh.
    assert_eq!(
        kid_fetches,
        (0..12).map(|i| 10 + 300 * i).collect::<Vec<_>>()
    );
    assert_eq!(f.server.hits(), 1 + 12);
}

#[tokio::test]
async fn the_cooldown_never_goes_below_ten_seconds() {
    let f = fixture(
        serve_key(),
        RemoteOptions::default().kid_refresh_cooldown(Duration::from_secs(1)),
    )
    .await;
    assert_eq!(
        f.remote.options().kid_refresh_cooldown,
        clerk_jwt::MIN_REFRESH_INTERVAL
    );
    f.verifier.verify(&token_at(NOW)).await.unwrap();
    let unknown = session().header("kid", "ins_nope").sign();
    f.clock.advance(9);
    f.verifier.verify(&unknown).await.unwrap_err();
    assert_eq!(f.server.hits(), 1);
    f.clock.advance(1);
    f.verifier.verify(&unknown).await.unwrap_err();
    assert_eq!(f.server.hits(), 2);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_within_seconds_of_the_last_fetch() {
    let f = fixture(serve_key(), RemoteOptions::default()).await;
    f.verifier.verify(&token_at(NOW)).await.unwrap();

    // The instance publishes a new key and signs with it.
    f.server.set_mode(Mode::Serve(jwks(&[key(), other_key()])));
    let rotated = |now| TokenBuilder::session(other_key(), ISSUER, now).sign();
    // Within 10 s of the last fetch the new kid is not fetched yet...
    f.clock.advance(9);
    assert_eq!(
        reason(&f.verifier.verify(&rotated(NOW + 9)).await),
        Some(Reason::JwkKidMismatch)
    );
    assert_eq!(f.server.hits(), 1);
    // ...10 s after it, the first token with the new kid triggers one refresh and passes.
    f.clock.advance(1);
    f.verifier.verify(&rotated(NOW + 10)).await.unwrap();
    assert_eq!(f.server.hits(), 2);
    f.verifier.verify(&token_at(NOW + 10)).await.unwrap();
    assert_eq!(f.server.hits(), 2);
    assert_eq!(
        f.remote.status().kids,
        [key().kid().to_owned(), other_key().kid().to_owned()]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_rotation_after_a_ttl_or_readiness_refresh_is_picked_up_within_seconds() {
    let f = fixture(serve_key(), RemoteOptions::default()).await;
    f.verifier.verify(&token_at(NOW)).await.unwrap();
    let rotated = |now| TokenBuilder::session(other_key(), ISSUER, now).sign();

    // The TTL refresh at 1 h, then the rotation 10 s later.
    f.clock.set(NOW + 3600);
    f.verifier.verify(&token_at(NOW + 3600)).await.unwrap();
    assert_eq!(f.server.hits(), 2);
    f.server.set_mode(Mode::Serve(jwks(&[key(), other_key()])));
    f.clock.set(NOW + 3610);
    f.verifier.verify(&rotated(NOW + 3610)).await.unwrap();
    assert_eq!(f.server.hits(), 3);

    // A readiness probe's refresh does not hold a rotation back either.
    let f = fixture(serve_key(), RemoteOptions::default()).await;
    f.verifier.verify(&token_at(NOW)).await.unwrap();
    f.clock.set(NOW + 100);
    f.remote.refresh(NOW + 100).await.unwrap();
    f.server.set_mode(Mode::Serve(jwks(&[key(), other_key()])));
    f.clock.set(NOW + 110);
    f.verifier.verify(&rotated(NOW + 110)).await.unwrap();
    assert_eq!(f.server.hits(), 3);
}

#[tokio::test]
async fn after_an_unknown_kid_fetched_a_rotation_waits_for_the_cooldown() {
    // The price of the flood bound: one unknown kid just before the rotation spends the
    // fetch of this cooldown.
    let f = fixture(serve_key(), RemoteOptions::default()).await;
    f.verifier.verify(&token_at(NOW)).await.unwrap();
    f.clock.set(NOW + 10);
    let stray = session().header("kid", "ins_2development").sign();
    f.verifier.verify(&stray).await.unwrap_err();
    assert_eq!(f.server.hits(), 2);
    f.server.set_mode(Mode::Serve(jwks(&[key(), other_key()])));
    let rotated = |now| TokenBuilder::session(other_key(), ISSUER, now).sign();
    f.clock.set(NOW + 309);
    assert_eq!(
        reason(&f.verifier.verify(&rotated(NOW + 309)).await),
        Some(Reason::JwkKidMismatch)
    );
    f.clock.set(NOW + 310);
    f.verifier.verify(&rotated(NOW + 310)).await.unwrap();
    assert_eq!(f.server.hits(), 3);
}

#[tokio::test]
async fn cached_tokens_of_a_retired_key_are_refused_after_the_refresh() {
    let server = JwksServer::start(serve_key()).await;
    let clock = Arc::new(ManualClock::new(NOW));
    let remote = RemoteJwks::url(server.url(), RemoteOptions::default());
    let verifier = Verifier::builder()
        .issuer(ISSUER)
        .keys(remote.clone())
        .clock(clock.clone())
        .verified_token_cache(100)
        .build()
        .unwrap();
    // A long-lived token (within the hour) verified and cached.
    let long = session().claim("exp", NOW + 3000).sign();
    verifier.verify(&long).await.unwrap();
    verifier.verify(&long).await.unwrap();
    assert_eq!(server.hits(), 1);

    // The instance rotates to a new key only; a token signed by it brings the refresh.
    server.set_mode(Mode::Serve(other_key().jwks()));
    clock.set(NOW + 10);
    let rotated = TokenBuilder::session(other_key(), ISSUER, NOW + 10).sign();
    verifier.verify(&rotated).await.unwrap();
    assert_eq!(server.hits(), 2);
    assert_eq!(remote.status().kids, [other_key().kid()]);

    // The cached token of the retired key is refused at once, not served until exp.
    let result = verifier.verify(&long).await;
    assert_eq!(reason(&result), Some(Reason::JwkKidMismatch));
    // Tokens of the key that stays keep verifying.
    verifier.verify(&rotated).await.unwrap();
}

#[tokio::test]
async fn a_readiness_refresh_that_retires_a_key_empties_the_cache_of_its_tokens() {
    let server = JwksServer::start(Mode::Serve(jwks(&[key(), other_key()]))).await;
    let clock = Arc::new(ManualClock::new(NOW));
    let remote = RemoteJwks::url(server.url(), RemoteOptions::default());
    let verifier = Verifier::builder()
        .issuer(ISSUER)
        .keys(remote.clone())
        .clock(clock.clone())
        .verified_token_cache(100)
        .build()
        .unwrap();
    let old = session().claim("exp", NOW + 3000).sign();
    let new = TokenBuilder::session(other_key(), ISSUER, NOW)
        .claim("exp", NOW + 3000)
        .sign();
    verifier.verify(&old).await.unwrap();
    verifier.verify(&new).await.unwrap();

    // The same key published again (a TTL refresh) changes nothing.
    clock.set(NOW + 100);
    remote.refresh(NOW + 100).await.unwrap();
    verifier.verify(&old).await.unwrap();

    // The old key is retired.
    server.set_mode(Mode::Serve(other_key().jwks()));
    clock.set(NOW + 200);
    remote.refresh(NOW + 200).await.unwrap();
    assert_eq!(
        reason(&verifier.verify(&old).await),
        Some(Reason::JwkKidMismatch)
    );
    verifier.verify(&new).await.unwrap();

    // A key replaced under the same kid (a new modulus) retires the old one too.
    let replacement = clerk_jwt::testing::TestKey::generate(other_key().kid());
    server.set_mode(Mode::Serve(replacement.jwks()));
    clock.set(NOW + 300);
    remote.refresh(NOW + 300).await.unwrap();
    assert_eq!(
        reason(&verifier.verify(&new).await),
        Some(Reason::TokenInvalidSignature)
    );
    assert_eq!(server.hits(), 4);
}

#[tokio::test]
async fn the_ttl_refreshes_known_keys_and_drops_retired_ones() {
    let f = fixture(serve_key(), RemoteOptions::default()).await;
    f.verifier.verify(&token_at(NOW)).await.unwrap();
    f.clock.advance(3599);
    f.verifier.verify(&token_at(NOW + 3599)).await.unwrap();
    assert_eq!(f.server.hits(), 1, "within the TTL");
    // The old key is retired: after the TTL the refresh drops it.
    f.server.set_mode(Mode::Serve(other_key().jwks()));
    f.clock.advance(1);
    let result = f.verifier.verify(&token_at(NOW + 3600)).await;
    assert_eq!(reason(&result), Some(Reason::JwkKidMismatch));
    assert_eq!(f.server.hits(), 2);
}

#[tokio::test]
async fn cached_keys_keep_serving_while_the_jwks_is_down_then_expire() {
    for failure in [Mode::Status(500), Mode::Garbage, Mode::Status(404)] {
        let f = fixture(serve_key(), RemoteOptions::default()).await;
        f.verifier.verify(&token_at(NOW)).await.unwrap();
        f.server.set_mode(failure.clone());

        // TTL passed, the refresh fails: the cached key still verifies, and the cause
        // is reported.
        let later = NOW + 3600;
        f.clock.set(later);
        f.verifier.verify(&token_at(later)).await.unwrap();
        assert_eq!(f.server.hits(), 2, "{failure:?}");
        let status = f.remote.status();
        assert!(status.last_error.is_some(), "{failure:?}");
        assert_eq!(status.fetched_at, Some(NOW));

        // Further requests do not hammer the JWKS: at most one retry per 10 s.
        f.verifier.verify(&token_at(later)).await.unwrap();
        assert_eq!(f.server.hits(), 2, "{failure:?}");
        f.clock.set(later + 10);
        f.verifier.verify(&token_at(later + 10)).await.unwrap();
        assert_eq!(f.server.hits(), 3, "{failure:?}");

        // Past the stale window (6 h after the TTL), the keys are no longer trusted.
        let beyond = NOW + 3600 + 6 * 3600;
        f.clock.set(beyond);
        let result = f.verifier.verify(&token_at(beyond)).await;
        assert_eq!(
            reason(&result),
            Some(Reason::JwkRemoteFailedToLoad),
            "{failure:?}"
        );
        assert!(result.unwrap_err().is_unavailable());

        // And when the JWKS recovers, verification recovers.
        f.server.set_mode(serve_key());
        f.clock.set(beyond + 10);
        f.verifier.verify(&token_at(beyond + 10)).await.unwrap();
    }
}

#[tokio::test]
async fn a_cold_cache_with_the_jwks_down_reports_the_cause() {
    let cases = [
        (Mode::Status(503), "HTTP 503"),
        (Mode::Garbage, "unusable JWKS"),
        (
            Mode::Serve(serde_json::json!({"keys": []})),
            "no usable RS256 signing key",
        ),
    ];
    for (mode, cause) in cases {
        let f = fixture(mode, RemoteOptions::default()).await;
        let err = f.verifier.verify(&token_at(NOW)).await.unwrap_err();
        assert_eq!(err.reason(), Some(Reason::JwkRemoteFailedToLoad));
        let text = chain(&err);
        assert!(text.contains(cause), "{text}");
        assert!(text.contains(&f.server.url()), "{text}");
        assert_eq!(text.matches(&f.server.url()).count(), 1, "{text}");
    }

    // Connection refused.
    let f = fixture(serve_key(), RemoteOptions::default()).await;
    let url = f.server.url();
    f.server.stop().await;
    let err = f.verifier.verify(&token_at(NOW)).await.unwrap_err();
    assert_eq!(err.reason(), Some(Reason::JwkRemoteFailedToLoad));
    assert!(
        matches!(
            &err,
            Error::KeysUnavailable { source: FetchError::Transport { url: u, .. }, .. } if *u == url
        ),
        "{err:?}"
    );
    // What reqwest says is kept as the cause, printed once, and the URL only once.
    let text = chain(&err);
    assert!(
        text.starts_with(&format!(
            "jwk-remote-failed-to-load: the signing keys could not be loaded: GET {url} failed: "
        )),
        "{text}"
    );
    assert_eq!(text.matches(&url).count(), 1, "{text}");
    // The cache reports the same cause.
    assert!(matches!(
        f.remote.status().last_error,
        Some(FetchError::Transport { .. })
    ));
}

#[tokio::test]
async fn a_hanging_jwks_times_out() {
    let f = fixture(
        Mode::Hang,
        RemoteOptions::default().timeout(Duration::from_millis(200)),
    )
    .await;
    let err = f.verifier.verify(&token_at(NOW)).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::KeysUnavailable {
                source: FetchError::Timeout { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn oversize_jwks_is_refused() {
    let huge = serde_json::json!({"keys": [key().jwk()], "padding": "x".repeat(300 * 1024)});
    let f = fixture(Mode::Serve(huge), RemoteOptions::default()).await;
    let err = f.verifier.verify(&token_at(NOW)).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::KeysUnavailable {
                source: FetchError::TooLarge { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn backend_api_jwks_sends_the_secret_key_and_reports_a_bad_one() {
    let secret = "sk_test_localsecret123";
    let server = JwksServer::start_with_auth(serve_key(), Some(secret)).await;
    let clock = Arc::new(ManualClock::new(NOW));
    let verifier = |secret: &str| {
        Verifier::builder()
            .issuer(ISSUER)
            .keys(RemoteJwks::backend_api(
                SecretKey::new(secret).unwrap(),
                Some(&server.base_url()),
                RemoteOptions::default(),
            ))
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    verifier(secret).verify(&token_at(NOW)).await.unwrap();
    let err = verifier("sk_test_wrong")
        .verify(&token_at(NOW))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some(Reason::SecretKeyInvalid));
    assert!(err.is_config());
    assert!(!format!("{err} {err:?}").contains("sk_test_wrong"));
}

#[tokio::test]
async fn caches_are_scoped_per_jwks_url() {
    // Two instances, two JWKS URLs: a token of one never verifies with the other's
    // verifier, even after both caches are warm.
    let a = fixture(serve_key(), RemoteOptions::default()).await;
    let b = fixture(Mode::Serve(other_key().jwks()), RemoteOptions::default()).await;
    a.verifier.verify(&token_at(NOW)).await.unwrap();
    let token_b = TokenBuilder::session(other_key(), ISSUER, NOW).sign();
    b.verifier.verify(&token_b).await.unwrap();
    assert_eq!(
        reason(&a.verifier.verify(&token_b).await),
        Some(Reason::JwkKidMismatch)
    );
    assert_eq!(
        reason(&b.verifier.verify(&token_at(NOW)).await),
        Some(Reason::JwkKidMismatch)
    );
}

#[tokio::test]
async fn refresh_warms_the_cache_for_readiness_checks() {
    let f = fixture(serve_key(), RemoteOptions::default()).await;
    assert_eq!(f.remote.refresh(NOW).await.unwrap(), 1);
    f.verifier.verify(&token_at(NOW)).await.unwrap();
    assert_eq!(f.server.hits(), 1);
    let status = f.remote.status();
    assert_eq!(status.kids, [key().kid()]);
    assert_eq!(status.fetched_at, Some(NOW));
    assert!(status.last_error.is_none(), "{:?}", status.last_error);
}

#[tokio::test]
async fn the_default_client_does_not_follow_a_redirect_with_the_secret_key() {
    use axum::http::{StatusCode, Uri};
    use axum::response::IntoResponse as _;

    async fn serve(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }
    let called = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = called.clone();
    let target = serve(axum::Router::new().fallback(move || {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { "{\"keys\": []}" }
    }))
    .await;
    let redirector = serve(axum::Router::new().fallback(move |uri: Uri| {
        let location = format!("{target}{uri}");
        async move { (StatusCode::TEMPORARY_REDIRECT, [("location", location)]).into_response() }
    }))
    .await;
    let secret = "sk_test_redirectsecret1";
    let remote = RemoteJwks::backend_api(
        SecretKey::new(secret).unwrap(),
        Some(&redirector),
        RemoteOptions::default(),
    );
    let err = remote.refresh(NOW).await.unwrap_err();
    assert!(err.to_string().contains("307"), "{err}");
    assert!(!format!("{err} {err:?}").contains(secret));
    assert_eq!(called.load(std::sync::atomic::Ordering::SeqCst), 0);
}
