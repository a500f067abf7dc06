//! The broker's logic against `mockall` doubles of InstantDB and Clerk's Backend API,
//! with the real verifier (tokens minted by clerk-jwt's `testing` feature).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clerk_jwt::testing::{TEST_EMAIL, TEST_SESSION_ID, TEST_USER_ID, TestKey, TokenBuilder};
use clerk_jwt::{KeySet, ManualClock, Verifier};
use instant_client::{
    Endpoint, ErrorType, Outage, Query, RefreshToken, Rejection, SignedIn, Transaction, TxId, User,
    Uuid,
};
use mockall::Sequence;
use mockall::predicate::{always, eq};
use serde_json::json;

use crate::broker::revalidate_window;
use crate::ports::{MockClerkSessions, MockInstantAuth};
use crate::{
    BrokerConfig, Error, ErrorKind, Half, MemorySessionStore, SessionBroker, SessionStore,
    StoreLimits, Strategy,
};

const ISSUER: &str = "https://clerk.example.com";
const NOW: i64 = 1_800_000_000;

fn key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::generate("ins_2brokertest"))
}

struct Fixture {
    clock: Arc<ManualClock>,
    store: Arc<MemorySessionStore>,
    verifier: Arc<Verifier>,
}

impl Fixture {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new(NOW));
        let verifier = Verifier::builder()
            .issuer(ISSUER)
            .keys(KeySet::from_jwks_json(key().jwks().to_string().as_bytes()).unwrap())
            .clock(clock.clone())
            .build()
            .unwrap();
        Fixture {
            clock,
            store: Arc::new(MemorySessionStore::new(StoreLimits::default())),
            verifier: Arc::new(verifier),
        }
    }

    /// A fresh token for the test session, as of the clock.
    fn token(&self) -> String {
        TokenBuilder::session(key(), ISSUER, clerk_jwt::Clock::now(&*self.clock)).sign()
    }

    fn broker(
        &self,
        config: BrokerConfig,
        instant: MockInstantAuth,
        clerk: Option<MockClerkSessions>,
    ) -> SessionBroker {
        SessionBroker::new(
            config,
            self.verifier.clone(),
            Arc::new(instant),
            clerk.map(|c| Arc::new(c) as Arc<dyn crate::ClerkSessions>),
            self.store.clone(),
        )
        .with_clock(self.clock.clone())
    }
}

fn id_token() -> BrokerConfig {
    BrokerConfig::new(Strategy::IdToken {
        client_name: "clerk".into(),
    })
}

fn rt(n: u8) -> RefreshToken {
    RefreshToken::new(format!("00000000-0000-4000-8000-0000000000{n:02}")).unwrap()
}

fn signed(n: u8, created: bool) -> SignedIn {
    let mut user = User::new(Uuid::from_u128(42));
    user.email = Some(TEST_EMAIL.to_owned());
    SignedIn::new(user, rt(n), created)
}

fn rejected(error_type: ErrorType, message: &str) -> instant_client::Error {
    instant_client::Error::Rejected {
        endpoint: Endpoint::SignInWithIdToken,
        status: 400,
        rejection: Box::new(Rejection::new(error_type, Some(message))),
    }
}

fn dead_token() -> instant_client::Error {
    rejected(ErrorType::RecordNotFound, "Record not found: app-user")
}

fn down() -> instant_client::Error {
    instant_client::Error::Unavailable {
        endpoint: Endpoint::SignInWithIdToken,
        cause: Outage::Connect,
        attempts: 1,
        source: None,
    }
}

/// Waits for the broker's background sign-outs to finish.
async fn settle(broker: &SessionBroker) {
    let running = broker.drain(Duration::from_secs(10)).await;
    assert_eq!(running, 0, "background sign-outs still running");
}

/// A query result as InstantDB would send it.
fn raw(json: &str) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(json.to_owned()).unwrap()
}

#[tokio::test]
async fn id_token_strategy_forwards_the_token_with_the_client_name() {
    let f = Fixture::new();
    let token = f.token();
    let mut instant = MockInstantAuth::new();
    let expected = token.clone();
    instant
        .expect_sign_in_with_id_token()
        .withf(move |id, client, refresh| {
            id.expose() == expected && client == "clerk" && refresh.is_none()
        })
        .times(1)
        .returning(|_, _, _| Ok(signed(1, true)));
    instant.expect_create_token_for_email().never();
    let broker = f.broker(id_token(), instant, None);
    let session = broker.sign_in(&token).await.unwrap();
    assert_eq!(session.clerk.user_id, TEST_USER_ID);
    assert_eq!(session.clerk.session_id, TEST_SESSION_ID);
    assert_eq!(session.refresh_token, rt(1));
    assert!(session.created);
    assert!(!session.reused);
    assert_eq!(f.store.len().await.unwrap(), 1);
    assert!(!format!("{session:?}").contains(rt(1).expose()));
}

#[tokio::test]
async fn admin_strategy_creates_a_token_for_the_verified_email_only() {
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_create_token_for_email()
        .with(eq(TEST_EMAIL))
        .times(1)
        .returning(|_| Ok(signed(1, false)));
    instant.expect_sign_in_with_id_token().never();
    let broker = f.broker(BrokerConfig::new(Strategy::Admin), instant, None);
    broker.sign_in(&f.token()).await.unwrap();

    // Unverified (or absent) email_verified: refused before InstantDB is asked.
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant.expect_create_token_for_email().never();
    let broker = f.broker(BrokerConfig::new(Strategy::Admin), instant, None);
    let unverified = TokenBuilder::session(key(), ISSUER, NOW)
        .without_claim("email_verified")
        .sign();
    let err = broker.sign_in(&unverified).await.unwrap_err();
    assert!(matches!(err, Error::EmailNotVerified), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(err.code().as_str(), "email-unverified");
}

#[tokio::test]
async fn a_bad_token_never_reaches_instantdb() {
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant.expect_sign_in_with_id_token().never();
    let broker = f.broker(id_token(), instant, None);
    let expired = TokenBuilder::session(key(), ISSUER, NOW - 3600).sign();
    let err = broker.sign_in(&expired).await.unwrap_err();
    assert_eq!(err.code().as_str(), "token-expired");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    let err = broker.sign_in("not.a.token").await.unwrap_err();
    assert_eq!(err.code().as_str(), "token-invalid");
}

#[tokio::test]
async fn repeated_sign_ins_reuse_the_session_and_pass_its_token_back_when_revalidating() {
    let f = Fixture::new();
    let mut seq = Sequence::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_sign_in_with_id_token()
        .withf(|_, _, refresh| refresh.is_none())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(signed(1, true)));
    // After the revalidation window, the stored token goes back to InstantDB.
    instant
        .expect_sign_in_with_id_token()
        .withf(|_, _, refresh| refresh.as_ref() == Some(&rt(1)))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(signed(1, false)));
    instant.expect_sign_out().never();
    let broker = f.broker(
        id_token().revalidate_after(Duration::from_secs(60)),
        instant,
        None,
    );
    let first = broker.sign_in(&f.token()).await.unwrap();
    // This session's window: 60 s less up to 15 s, by its id.
    let window = revalidate_window(Duration::from_secs(60), TEST_SESSION_ID);
    assert!((45..=60).contains(&window), "{window}");
    // Within the window: no InstantDB call at all.
    for step in [10, 10, 10, 10, window - 41] {
        f.clock.advance(step);
        let again = broker.sign_in(&f.token()).await.unwrap();
        assert_eq!(again.refresh_token, first.refresh_token);
        assert!(again.reused);
        assert!(!again.created);
    }
    // At the end of its window (second `window`), the stored token goes back.
    f.clock.advance(1);
    let revalidated = broker.sign_in(&f.token()).await.unwrap();
    assert_eq!(revalidated.refresh_token, rt(1));
    assert!(revalidated.reused);
    assert_eq!(f.store.len().await.unwrap(), 1);
}

#[tokio::test]
async fn a_verified_token_outlives_its_request_and_never_shows_in_debug() {
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_sign_in_with_id_token()
        .times(1)
        .returning(|_, _, _| Ok(signed(1, true)));
    let broker = f.broker(id_token(), instant, None);
    let owned = {
        let token = f.token();
        let verified = broker.authenticate(&token).await.unwrap();
        let shown = format!("{verified:?}");
        assert!(!shown.contains(&token), "{shown}");
        assert!(shown.contains(TEST_SESSION_ID), "{shown}");
        verified.into_owned()
    };
    // The request's token is gone; the owned one signs in without a second check.
    let signed = broker.sign_in_authenticated(&owned).await.unwrap();
    assert_eq!(signed.refresh_token, rt(1));
}

#[test]
fn revalidation_windows_are_spread_over_the_last_quarter_by_session_id() {
    let period = Duration::from_secs(60);
    let windows: Vec<i64> = (0..2000)
        .map(|i| revalidate_window(period, &format!("sess_2spread{i:018}")))
        .collect();
    // Never longer than the setting, never shorter than three quarters of it.
    assert!(windows.iter().all(|w| (45..=60).contains(w)));
    // Spread over the whole range, about evenly: every second of it is someone's.
    for second in 45..=60 {
        let n = windows.iter().filter(|w| **w == second).count();
        assert!(
            (60..=200).contains(&n),
            "{n} sessions come due at {second} s"
        );
    }
    // The same session, the same window (on every replica).
    assert_eq!(
        revalidate_window(period, "sess_2abc"),
        revalidate_window(period, "sess_2abc")
    );
    // Zero still asks every time; periods under 4 s are not spread.
    assert_eq!(revalidate_window(Duration::ZERO, "sess_2abc"), 0);
    assert_eq!(revalidate_window(Duration::from_secs(3), "sess_2abc"), 3);
}

#[tokio::test]
async fn a_stored_token_instantdb_rejects_is_dropped_and_the_sign_in_retried_once_without_it() {
    let f = Fixture::new();
    let mut seq = Sequence::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_sign_in_with_id_token()
        .withf(|_, _, refresh| refresh.is_none())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(signed(1, true)));
    instant
        .expect_sign_in_with_id_token()
        .withf(|_, _, refresh| refresh.is_some())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Err(dead_token()));
    instant
        .expect_sign_in_with_id_token()
        .withf(|_, _, refresh| refresh.is_none())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(signed(2, false)));
    let broker = f.broker(id_token().revalidate_after(Duration::ZERO), instant, None);
    broker.sign_in(&f.token()).await.unwrap();
    let renewed = broker.sign_in(&f.token()).await.unwrap();
    assert_eq!(renewed.refresh_token, rt(2));
    assert!(!renewed.reused);
    let stored = f.store.get(TEST_SESSION_ID, NOW).await.unwrap().unwrap();
    assert_eq!(stored.refresh_token, rt(2));
}

#[tokio::test]
async fn other_failures_while_revalidating_are_reported_and_keep_the_session() {
    let f = Fixture::new();
    let mut seq = Sequence::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_sign_in_with_id_token()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(signed(1, true)));
    instant
        .expect_sign_in_with_id_token()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Err(down()));
    let broker = f.broker(id_token().revalidate_after(Duration::ZERO), instant, None);
    broker.sign_in(&f.token()).await.unwrap();
    let err = broker.sign_in(&f.token()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.code().as_str(), "instant-unavailable");
    assert!(f.store.get(TEST_SESSION_ID, NOW).await.unwrap().is_some());

    // An unknown client name is a configuration problem, not a dead refresh token.
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_sign_in_with_id_token()
        .times(1)
        .returning(|_, _, _| {
            Err(rejected(
                ErrorType::RecordNotFound,
                "Record not found: app-oauth-client",
            ))
        });
    let broker = f.broker(id_token(), instant, None);
    let err = broker.sign_in(&f.token()).await.unwrap_err();
    assert_eq!(err.code().as_str(), "instant-misconfigured");
    assert_eq!(err.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn sign_out_ends_instantdb_then_clerk_and_forgets_the_session() {
    let f = Fixture::new();
    let mut seq = Sequence::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_sign_in_with_id_token()
        .returning(|_, _, _| Ok(signed(1, true)));
    instant
        .expect_sign_out()
        .withf(|token| *token == rt(1))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    let mut clerk = MockClerkSessions::new();
    clerk
        .expect_revoke_session()
        .with(eq(TEST_SESSION_ID))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    let broker = f.broker(id_token(), instant, Some(clerk));
    broker.sign_in(&f.token()).await.unwrap();
    let out = broker.sign_out(&f.token(), None).await.unwrap();
    assert!(matches!(out.instant, Half::Done));
    assert!(matches!(out.clerk_session, Half::Done));
    assert_eq!(f.store.len().await.unwrap(), 0);
}

#[tokio::test]
async fn a_failing_half_is_reported_and_never_skips_the_other() {
    // InstantDB down: Clerk is still revoked, and the session is kept for a retry.
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_sign_in_with_id_token()
        .returning(|_, _, _| Ok(signed(1, true)));
    instant
        .expect_sign_out()
        .times(1)
        .returning(|_| Err(down()));
    let mut clerk = MockClerkSessions::new();
    clerk.expect_revoke_session().times(1).returning(|_| Ok(()));
    let broker = f.broker(id_token(), instant, Some(clerk));
    broker.sign_in(&f.token()).await.unwrap();
    let out = broker.sign_out(&f.token(), None).await.unwrap();
    assert!(matches!(&out.instant, Half::Failed(e) if e.is_unavailable()));
    assert!(matches!(out.clerk_session, Half::Done));
    assert_eq!(f.store.len().await.unwrap(), 1);

    // Clerk down: InstantDB is still signed out.
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_sign_in_with_id_token()
        .returning(|_, _, _| Ok(signed(1, true)));
    instant.expect_sign_out().times(1).returning(|_| Ok(()));
    let mut clerk = MockClerkSessions::new();
    clerk.expect_revoke_session().times(1).returning(|_| {
        Err(clerk_backend::Error::Unavailable {
            call: "revoke session",
            cause: clerk_backend::Outage::Status { status: 503 },
            source: None,
        })
    });
    let broker = f.broker(id_token(), instant, Some(clerk));
    broker.sign_in(&f.token()).await.unwrap();
    let out = broker.sign_out(&f.token(), None).await.unwrap();
    assert!(matches!(out.instant, Half::Done));
    assert!(matches!(&out.clerk_session, Half::Failed(e) if e.is_unavailable()));

    // No secret key: the Clerk half is skipped, and says why.
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant.expect_sign_out().never();
    let broker = f.broker(id_token(), instant, None);
    let out = broker.sign_out(&f.token(), None).await.unwrap();
    assert!(matches!(out.instant, Half::Skipped(_)));
    assert!(matches!(out.clerk_session, Half::Skipped(why) if why.contains("secret key")));
}

#[tokio::test]
async fn a_refresh_token_named_for_sign_out_must_belong_to_the_same_person() {
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant.expect_verify_refresh_token().returning(|token| {
        let mut user = User::new(Uuid::from_u128(7));
        user.email = Some(if *token == rt(5) {
            TEST_EMAIL.to_uppercase()
        } else {
            "mallory@example.com".into()
        });
        Ok(user)
    });
    instant
        .expect_sign_out()
        .withf(|token| *token == rt(5))
        .times(1)
        .returning(|_| Ok(()));
    let mut clerk = MockClerkSessions::new();
    clerk.expect_revoke_session().times(1).returning(|_| Ok(()));
    let broker = f.broker(id_token(), instant, Some(clerk));
    let err = broker.sign_out(&f.token(), Some(rt(6))).await.unwrap_err();
    assert!(matches!(err, Error::NotYourSession));
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    let out = broker.sign_out(&f.token(), Some(rt(5))).await.unwrap();
    assert!(matches!(out.instant, Half::Done));
}

#[tokio::test]
async fn a_lost_race_keeps_the_first_session_and_ends_the_second() {
    let f = Fixture::new();
    let store = f.store.clone();
    let mut instant = MockInstantAuth::new();
    // While this sign-in is with InstantDB, another one stores its session first.
    instant
        .expect_sign_in_with_id_token()
        .times(1)
        .returning(move |_, _, _| {
            let store = store.clone();
            let winner = crate::StoredSession::new(
                TEST_USER_ID,
                rt(1),
                Arc::new(User::new(Uuid::from_u128(42))),
                NOW,
                NOW + 3600,
            );
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                rt.block_on(store.insert(TEST_SESSION_ID, winner, NOW))
                    .unwrap();
            })
            .join()
            .unwrap();
            Ok(signed(2, false))
        });
    instant
        .expect_sign_out()
        .withf(|token| *token == rt(2))
        .times(1)
        .returning(|_| Ok(()));
    let broker = f.broker(id_token(), instant, None);
    let session = broker.sign_in(&f.token()).await.unwrap();
    assert_eq!(session.refresh_token, rt(1));
    assert!(session.reused);
    settle(&broker).await;
}

#[tokio::test]
async fn query_and_transact_run_as_the_user_and_renew_a_dead_session_once() {
    let f = Fixture::new();
    let mut seq = Sequence::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_sign_in_with_id_token()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(signed(1, true)));
    instant
        .expect_query_as()
        .withf(|token, _| *token == rt(1))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Err(dead_token()));
    instant
        .expect_sign_in_with_id_token()
        .withf(|_, _, refresh| refresh.is_none())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(signed(2, false)));
    instant
        .expect_query_as()
        .withf(|token, _| *token == rt(2))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(raw(r#"{"goals":[]}"#)));
    instant
        .expect_transact_as()
        .with(eq(rt(2)), always())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(TxId(7)));
    let broker = f.broker(id_token(), instant, None);
    let result = broker
        .query(&f.token(), &Query::new(json!({"goals": {}})))
        .await
        .unwrap();
    assert_eq!(result.get(), r#"{"goals":[]}"#);
    let tx = Transaction::new().update("goals", Uuid::from_u128(1), json!({"title": "x"}));
    assert_eq!(broker.transact(&f.token(), &tx).await.unwrap(), TxId(7));
}

#[tokio::test]
async fn the_stored_session_path_runs_only_a_usable_session_and_leaves_the_rest_to_the_full_path() {
    let f = Fixture::new();
    let mut seq = Sequence::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_sign_in_with_id_token()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(signed(1, true)));
    instant
        .expect_query_as()
        .withf(|token, _| *token == rt(1))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(raw(r#"{"goals":[]}"#)));
    instant
        .expect_transact_as()
        .with(eq(rt(1)), always())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Err(dead_token()));
    let broker = f.broker(id_token(), instant, None);
    let token = f.token();
    let verified = broker.authenticate(&token).await.unwrap();
    let query = Query::new(json!({"goals": {}}));
    let tx = Transaction::new().update("goals", Uuid::from_u128(1), json!({"title": "x"}));
    // Nothing stored yet: the stored path asks nothing of InstantDB (no sign-in, no
    // query) and leaves it to the full path.
    assert!(
        broker
            .query_stored(&verified, &query)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(broker.transact_stored(&verified, &tx).await.unwrap(), None);
    broker.sign_in(&token).await.unwrap();
    // Stored: run as the user without a sign-in.
    let result = broker.query_stored(&verified, &query).await.unwrap();
    assert_eq!(
        result.map(|r| r.get().to_owned()).as_deref(),
        Some(r#"{"goals":[]}"#)
    );
    // InstantDB no longer knows the token: `None`, and no renewal here (it may mint).
    assert_eq!(broker.transact_stored(&verified, &tx).await.unwrap(), None);
    settle(&broker).await;
}

#[tokio::test]
async fn late_in_or_past_its_reuse_window_a_call_that_succeeds_confirms_the_stored_session() {
    let f = Fixture::new();
    let window = revalidate_window(Duration::from_secs(60), TEST_SESSION_ID);
    let renew_from = window - window / 4;
    let mut seq = Sequence::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_sign_in_with_id_token()
        .withf(|_, _, refresh| refresh.is_none())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(signed(1, true)));
    // Idle past the window, a sign-in passes the stored token back first.
    instant
        .expect_sign_in_with_id_token()
        .withf(|_, _, refresh| refresh.as_ref() == Some(&rt(1)))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(signed(1, false)));
    let ok_query = |instant: &mut MockInstantAuth, seq: &mut Sequence, times| {
        instant
            .expect_query_as()
            .withf(|token, _| *token == rt(1))
            .times(times)
            .in_sequence(seq)
            .returning(|_, _| Ok(raw(r#"{"goals":[]}"#)));
    };
    // Early in the window: a query, nothing recorded.
    ok_query(&mut instant, &mut seq, 1);
    // Past the window: a query that fails for another reason proves nothing...
    instant
        .expect_query_as()
        .withf(|token, _| *token == rt(1))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Err(rejected(ErrorType::PermissionDenied, "Permission denied")));
    // ...one that succeeds is InstantDB's check of the stored token: no sign-in before
    // it, and none after it for the rest of the new window.
    ok_query(&mut instant, &mut seq, 2);
    instant
        .expect_transact_as()
        .with(eq(rt(1)), always())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(TxId(3)));
    // In the window's last quarter a call that succeeds renews it before it comes due.
    ok_query(&mut instant, &mut seq, 1);
    // Past the window again, InstantDB no longer knows the token: the call fails, the
    // stored path says so, and the full path signs in afresh and runs it again.
    instant
        .expect_query_as()
        .withf(|token, _| *token == rt(1))
        .times(2)
        .in_sequence(&mut seq)
        .returning(|_, _| Err(dead_token()));
    instant
        .expect_sign_in_with_id_token()
        .withf(|_, _, refresh| refresh.is_none())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(signed(2, true)));
    instant
        .expect_query_as()
        .withf(|token, _| *token == rt(2))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(raw(r#"{"goals":[]}"#)));
    instant.expect_sign_out().returning(|_| Ok(()));
    let broker = f.broker(id_token(), instant, None);
    let query = Query::new(json!({"goals": {}}));
    let tx = Transaction::new().update("goals", Uuid::from_u128(1), json!({"title": "x"}));
    let confirmed_at = async || {
        settle(&broker).await;
        let stored = f.store.get(TEST_SESSION_ID, NOW).await.unwrap();
        stored.unwrap().confirmed_at
    };
    broker.sign_in(&f.token()).await.unwrap();

    f.clock.advance(61);
    let confirmed = broker.sign_in(&f.token()).await.unwrap();
    assert!(confirmed.reused);
    assert_eq!(confirmed.refresh_token, rt(1));
    assert_eq!(confirmed_at().await, NOW + 61);
    f.clock.advance(renew_from - 1);
    assert!(broker.query(&f.token(), &query).await.is_ok());
    assert_eq!(confirmed_at().await, NOW + 61, "early in the window");

    f.clock.advance(61 - renew_from + 1);
    let token = f.token();
    let verified = broker.authenticate(&token).await.unwrap();
    let refused = broker.query_stored(&verified, &query).await;
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::Forbidden);
    assert_eq!(
        confirmed_at().await,
        NOW + 61,
        "a failed call confirms nothing"
    );
    assert!(
        broker
            .query_stored(&verified, &query)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(confirmed_at().await, NOW + 122);
    assert!(broker.query(&token, &query).await.is_ok());
    assert_eq!(
        broker.transact_stored(&verified, &tx).await.unwrap(),
        Some(TxId(3))
    );
    let again = broker.sign_in(&token).await.unwrap();
    assert!(again.reused);
    assert_eq!(again.refresh_token, rt(1));

    f.clock.advance(renew_from);
    let token = f.token();
    let verified = broker.authenticate(&token).await.unwrap();
    assert!(
        broker
            .query_stored(&verified, &query)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(confirmed_at().await, NOW + 122 + renew_from);

    f.clock.advance(61);
    let token = f.token();
    let verified = broker.authenticate(&token).await.unwrap();
    assert!(
        broker
            .query_stored(&verified, &query)
            .await
            .unwrap()
            .is_none()
    );
    // The full path tries the stored token too, drops it when the query fails the
    // same way, and signs in afresh.
    assert!(broker.query_verified(&verified, &query).await.is_ok());
    assert_eq!(f.store.len().await.unwrap(), 1);
    settle(&broker).await;
}

#[tokio::test]
async fn permission_and_input_errors_of_queries_are_the_callers() {
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_sign_in_with_id_token()
        .returning(|_, _, _| Ok(signed(1, true)));
    instant
        .expect_query_as()
        .times(1)
        .returning(|_, _| Err(rejected(ErrorType::PermissionDenied, "Permission denied")));
    instant
        .expect_query_as()
        .times(1)
        .returning(|_, _| Err(rejected(ErrorType::ValidationFailed, "Validation failed")));
    let broker = f.broker(id_token(), instant, None);
    let q = Query::new(json!({"secrets": {}}));
    let err = broker.query(&f.token(), &q).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    assert_eq!(err.code().as_str(), "instant-permission-denied");
    let err = broker.query(&f.token(), &q).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
}

#[tokio::test]
async fn expired_store_entries_are_swept_and_signed_out() {
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_sign_in_with_id_token()
        .returning(|_, _, _| Ok(signed(1, true)));
    instant
        .expect_sign_out()
        .withf(|token| *token == rt(1))
        .times(1)
        .returning(|_| Ok(()));
    let broker = f.broker(
        id_token().session_ttl(Duration::from_secs(100)),
        instant,
        None,
    );
    broker.sign_in(&f.token()).await.unwrap();
    f.clock.advance(99);
    assert_eq!(broker.sweep().await.unwrap(), 0);
    f.clock.advance(1);
    assert_eq!(broker.sweep().await.unwrap(), 1);
    settle(&broker).await;
}

/// InstantDB whose sign-out waits until the test releases it.
struct SlowSignOut {
    release: tokio::sync::Semaphore,
    signed_out: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl crate::InstantAuth for SlowSignOut {
    async fn sign_in_with_id_token(
        &self,
        _: &instant_client::IdToken,
        _: &str,
        _: Option<RefreshToken>,
    ) -> Result<SignedIn, instant_client::Error> {
        Ok(signed(1, true))
    }

    async fn create_token_for_email(&self, _: &str) -> Result<SignedIn, instant_client::Error> {
        Err(down()) // not used by this test
    }

    async fn sign_out(&self, _: &RefreshToken) -> Result<(), instant_client::Error> {
        self.release.acquire().await.unwrap().forget();
        self.signed_out
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn verify_refresh_token(&self, _: &RefreshToken) -> Result<User, instant_client::Error> {
        Err(down()) // not used by this test
    }

    async fn query_as(
        &self,
        _: &RefreshToken,
        _: &Query,
    ) -> Result<Box<serde_json::value::RawValue>, instant_client::Error> {
        Err(down()) // not used by this test
    }

    async fn transact_as(
        &self,
        _: &RefreshToken,
        _: &Transaction,
    ) -> Result<TxId, instant_client::Error> {
        Err(down()) // not used by this test
    }

    async fn sign_out_user(&self, _: Uuid) -> Result<(), instant_client::Error> {
        Err(down()) // not used by this test
    }

    async fn delete_user(&self, _: Uuid) -> Result<bool, instant_client::Error> {
        Err(down()) // not used by this test
    }
}

#[tokio::test(start_paused = true)]
async fn drain_waits_for_a_slow_background_sign_out_until_the_deadline() {
    use std::sync::atomic::Ordering;
    use tokio::time::Instant;

    let f = Fixture::new();
    let instant = Arc::new(SlowSignOut {
        release: tokio::sync::Semaphore::new(0),
        signed_out: Default::default(),
    });
    let broker = SessionBroker::new(
        id_token().session_ttl(Duration::from_secs(100)),
        f.verifier.clone(),
        instant.clone(),
        None,
        f.store.clone(),
    )
    .with_clock(f.clock.clone());
    broker.sign_in(&f.token()).await.unwrap();
    f.clock.advance(100);
    assert_eq!(broker.sweep().await.unwrap(), 1);

    // InstantDB does not answer: drain gives up at the deadline and says so.
    let start = Instant::now();
    assert_eq!(broker.drain(Duration::from_secs(5)).await, 1);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(instant.signed_out.load(Ordering::SeqCst), 0);

    // It answers after 2 s: a longer drain waits for it, and no longer.
    let answer = Arc::clone(&instant);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        answer.release.add_permits(1);
    });
    let start = Instant::now();
    assert_eq!(broker.drain(Duration::from_secs(60)).await, 0);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(instant.signed_out.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn tokens_of_a_signed_out_session_no_longer_sign_in() {
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_sign_in_with_id_token()
        .times(2)
        .returning(|_, _, _| Ok(signed(1, true)));
    instant.expect_sign_out().returning(|_| Ok(()));
    let broker = f.broker(id_token(), instant, None);
    let token = f.token();
    broker.sign_in(&token).await.unwrap();
    broker.sign_out(&token, None).await.unwrap();
    // The token is still valid at Clerk for the rest of its minute, but not here.
    let err = broker.sign_in(&token).await.unwrap_err();
    assert!(matches!(err, Error::SessionSignedOut), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(err.code().as_str(), "session-signed-out");
    // Once every token of that moment has expired, a new token of a session Clerk still
    // honours (no secret key, so it was not revoked) signs in again.
    f.clock.advance(90);
    broker.sign_in(&f.token()).await.unwrap();
}

#[tokio::test]
async fn instantdb_down_while_checking_a_named_token_still_revokes_clerk() {
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_verify_refresh_token()
        .times(1)
        .returning(|_| Err(down()));
    instant.expect_sign_out().never();
    let mut clerk = MockClerkSessions::new();
    clerk.expect_revoke_session().times(1).returning(|_| Ok(()));
    let broker = f.broker(id_token(), instant, Some(clerk));
    let out = broker.sign_out(&f.token(), Some(rt(5))).await.unwrap();
    assert!(matches!(&out.instant, Half::Failed(e) if e.is_unavailable()));
    assert!(matches!(out.clerk_session, Half::Done));
}

#[tokio::test]
async fn a_refused_owner_check_leaves_the_session_usable() {
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant.expect_verify_refresh_token().returning(|_| {
        let mut user = User::new(Uuid::from_u128(9));
        user.email = Some("mallory@example.com".into());
        Ok(user)
    });
    instant
        .expect_sign_in_with_id_token()
        .times(1)
        .returning(|_, _, _| Ok(signed(1, true)));
    let mut clerk = MockClerkSessions::new();
    clerk.expect_revoke_session().never();
    let broker = f.broker(id_token(), instant, Some(clerk));
    let err = broker.sign_out(&f.token(), Some(rt(6))).await.unwrap_err();
    assert!(matches!(err, Error::NotYourSession));
    // Nothing was signed out, so the session still signs in.
    broker.sign_in(&f.token()).await.unwrap();
}

// ---- Clerk's decisions reach InstantDB (issue 9) ------------------------------------

mod effects {
    use super::*;
    use crate::{
        DeliveryClaim, EmailChanged, HeldDelivery, MessageClaim, Refused, SessionEnded,
        UserDeleted, UserDeletedPolicy,
    };

    const OTHER_SESSION: &str = "sess_2other00000000000000000000";
    const INSTANT_USER: Uuid = Uuid::from_u128(42);

    impl Fixture {
        /// A fresh token of the test user for another Clerk session.
        fn token_of_session(&self, sid: &str) -> String {
            TokenBuilder::session(key(), ISSUER, clerk_jwt::Clock::now(&*self.clock))
                .claim("sid", sid)
                .sign()
        }
    }

    fn signed_with_email(n: u8, email: &str) -> SignedIn {
        let mut user = User::new(INSTANT_USER);
        user.email = Some(email.to_owned());
        SignedIn::new(user, rt(n), false)
    }

    /// InstantDB that hands out rt(1), rt(2), … to successive id-token sign-ins.
    fn counting_sign_ins(instant: &mut MockInstantAuth) {
        let next = std::sync::atomic::AtomicU8::new(1);
        instant
            .expect_sign_in_with_id_token()
            .returning(move |_, _, _| {
                Ok(signed(
                    next.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
                    false,
                ))
            });
    }

    #[tokio::test]
    async fn end_session_signs_out_the_stored_token_drops_it_and_refuses_the_session() {
        let f = Fixture::new();
        let mut instant = MockInstantAuth::new();
        counting_sign_ins(&mut instant);
        instant
            .expect_sign_out()
            .withf(|token| *token == rt(1))
            .times(1)
            .returning(|_| Ok(()));
        let broker = f.broker(id_token(), instant, None);
        let token = f.token();
        broker.sign_in(&token).await.unwrap();

        let ended = broker.end_session(TEST_SESSION_ID).await.unwrap();
        assert_eq!(
            ended,
            SessionEnded::SignedOut {
                instant_user_id: INSTANT_USER
            }
        );
        assert!(f.store.is_empty().await.unwrap());
        // The same refusal as after sign-out: a token Clerk still honours is refused.
        let err = broker.sign_in(&token).await.unwrap_err();
        assert!(matches!(err, Error::SessionSignedOut), "{err:?}");
        // Applied twice = once: nothing stored, no second InstantDB sign-out.
        assert_eq!(
            broker.end_session(TEST_SESSION_ID).await.unwrap(),
            SessionEnded::NothingStored
        );
        settle(&broker).await;
    }

    #[tokio::test]
    async fn a_revocation_that_arrives_before_any_sign_in_still_prevents_one() {
        let f = Fixture::new();
        let mut instant = MockInstantAuth::new();
        instant.expect_sign_in_with_id_token().never();
        instant.expect_sign_out().never();
        let broker = f.broker(id_token(), instant, None);
        assert_eq!(
            broker.end_session(TEST_SESSION_ID).await.unwrap(),
            SessionEnded::NothingStored
        );
        f.clock.advance(30);
        let err = broker.sign_in(&f.token()).await.unwrap_err();
        assert_eq!(err.code().as_str(), "session-signed-out");
        assert!(f.store.is_empty().await.unwrap());
    }

    #[tokio::test]
    async fn instantdb_down_while_ending_a_session_keeps_it_so_the_retry_ends_it_once() {
        let f = Fixture::new();
        let mut seq = Sequence::new();
        let mut instant = MockInstantAuth::new();
        counting_sign_ins(&mut instant);
        instant
            .expect_sign_out()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Err(down()));
        instant
            .expect_sign_out()
            .withf(|token| *token == rt(1))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        let broker = f.broker(id_token(), instant, None);
        broker.sign_in(&f.token()).await.unwrap();

        let err = broker.end_session(TEST_SESSION_ID).await.unwrap_err();
        assert!(err.is_retry_later(), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(f.store.len().await.unwrap(), 1, "kept for the retry");
        // Refused already, even though InstantDB has not caught up yet.
        assert!(broker.sign_in(&f.token()).await.is_err());

        assert!(matches!(
            broker.end_session(TEST_SESSION_ID).await.unwrap(),
            SessionEnded::SignedOut { .. }
        ));
        assert!(f.store.is_empty().await.unwrap());
        assert_eq!(
            broker.end_session(TEST_SESSION_ID).await.unwrap(),
            SessionEnded::NothingStored
        );
    }

    #[tokio::test]
    async fn a_sign_in_in_flight_when_the_revocation_lands_is_refused_and_its_token_ended() {
        let f = Fixture::new();
        let store = f.store.clone();
        let mut instant = MockInstantAuth::new();
        // While InstantDB mints the session, the revocation is recorded.
        instant
            .expect_sign_in_with_id_token()
            .times(1)
            .returning(move |_, _, _| {
                let store = store.clone();
                std::thread::spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap()
                        .block_on(store.refuse(
                            &Refused::Session(TEST_SESSION_ID.into()),
                            NOW,
                            NOW + 90,
                        ))
                })
                .join()
                .unwrap()
                .unwrap();
                Ok(signed(1, true))
            });
        instant
            .expect_sign_out()
            .withf(|token| *token == rt(1))
            .times(1)
            .returning(|_| Ok(()));
        let broker = f.broker(id_token(), instant, None);
        let err = broker.sign_in(&f.token()).await.unwrap_err();
        assert!(matches!(err, Error::SessionSignedOut), "{err:?}");
        assert!(f.store.is_empty().await.unwrap());
        settle(&broker).await;
    }

    /// The test user signed in on two Clerk sessions: rt(1) and rt(2).
    async fn two_sessions(f: &Fixture, broker: &SessionBroker) {
        broker.sign_in(&f.token()).await.unwrap();
        broker
            .sign_in(&f.token_of_session(OTHER_SESSION))
            .await
            .unwrap();
        assert_eq!(f.store.len().await.unwrap(), 2);
    }

    fn signs_out_rt1_and_rt2_once(instant: &mut MockInstantAuth) {
        for n in [1, 2] {
            instant
                .expect_sign_out()
                .withf(move |token| *token == rt(n))
                .times(1)
                .returning(|_| Ok(()));
        }
    }

    #[tokio::test]
    async fn user_deletion_signs_out_every_session_then_deletes_the_instantdb_user() {
        let f = Fixture::new();
        let mut seq = Sequence::new();
        let mut instant = MockInstantAuth::new();
        counting_sign_ins(&mut instant);
        signs_out_rt1_and_rt2_once(&mut instant);
        instant
            .expect_sign_out_user()
            .with(eq(INSTANT_USER))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        instant
            .expect_delete_user()
            .with(eq(INSTANT_USER))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(true));
        let broker = f.broker(id_token(), instant, None);
        two_sessions(&f, &broker).await;

        let outcome = broker
            .delete_user(TEST_USER_ID, UserDeletedPolicy::default())
            .await
            .unwrap();
        assert_eq!(
            outcome,
            UserDeleted::Applied {
                policy: UserDeletedPolicy::DeleteUser,
                sessions_signed_out: 2,
                instant_users: vec![INSTANT_USER],
                users_deleted: 1,
            }
        );
        assert!(f.store.is_empty().await.unwrap());
        assert!(
            f.store
                .user_link(TEST_USER_ID, NOW)
                .await
                .unwrap()
                .is_none()
        );
        // The user's still-unexpired tokens are refused, on every session.
        let err = broker.sign_in(&f.token()).await.unwrap_err();
        assert!(matches!(err, Error::SessionSignedOut), "{err:?}");
        let err = broker
            .sign_in(&f.token_of_session("sess_2third0000000000000000000"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::SessionSignedOut), "{err:?}");
        // Applied twice = once: no InstantDB call the second time, and not "applied".
        assert_eq!(
            broker
                .delete_user(TEST_USER_ID, UserDeletedPolicy::DeleteUser)
                .await
                .unwrap(),
            UserDeleted::Unmapped
        );
    }

    #[tokio::test]
    async fn the_sign_out_and_ignore_policies_keep_the_instantdb_user() {
        // sign-out: every InstantDB session of the user ends, the user stays.
        let f = Fixture::new();
        let mut instant = MockInstantAuth::new();
        counting_sign_ins(&mut instant);
        signs_out_rt1_and_rt2_once(&mut instant);
        instant
            .expect_sign_out_user()
            .with(eq(INSTANT_USER))
            .times(1)
            .returning(|_| Ok(()));
        instant.expect_delete_user().never();
        let broker = f.broker(id_token(), instant, None);
        two_sessions(&f, &broker).await;
        let outcome = broker
            .delete_user(TEST_USER_ID, UserDeletedPolicy::SignOut)
            .await
            .unwrap();
        assert!(matches!(
            outcome,
            UserDeleted::Applied {
                policy: UserDeletedPolicy::SignOut,
                sessions_signed_out: 2,
                users_deleted: 0,
                ..
            }
        ));

        // ignore: only the sessions this server stored end.
        let f = Fixture::new();
        let mut instant = MockInstantAuth::new();
        counting_sign_ins(&mut instant);
        signs_out_rt1_and_rt2_once(&mut instant);
        instant.expect_sign_out_user().never();
        instant.expect_delete_user().never();
        let broker = f.broker(id_token(), instant, None);
        two_sessions(&f, &broker).await;
        let outcome = broker
            .delete_user(TEST_USER_ID, UserDeletedPolicy::Ignore)
            .await
            .unwrap();
        assert!(matches!(
            outcome,
            UserDeleted::Applied {
                policy: UserDeletedPolicy::Ignore,
                sessions_signed_out: 2,
                ..
            }
        ));
        assert!(f.store.is_empty().await.unwrap());
    }

    #[tokio::test]
    async fn the_link_alone_finds_the_instantdb_user_after_its_sessions_expired() {
        let f = Fixture::new();
        let mut instant = MockInstantAuth::new();
        counting_sign_ins(&mut instant);
        instant.expect_sign_out().times(1).returning(|_| Ok(()));
        instant
            .expect_sign_out_user()
            .with(eq(INSTANT_USER))
            .times(1)
            .returning(|_| Ok(()));
        instant
            .expect_delete_user()
            .with(eq(INSTANT_USER))
            .times(1)
            .returning(|_| Ok(true));
        let broker = f.broker(
            id_token().session_ttl(Duration::from_secs(100)),
            instant,
            None,
        );
        broker.sign_in(&f.token()).await.unwrap();
        f.clock.advance(100);
        assert_eq!(broker.sweep().await.unwrap(), 1);
        settle(&broker).await;
        let outcome = broker
            .delete_user(TEST_USER_ID, UserDeletedPolicy::DeleteUser)
            .await
            .unwrap();
        assert!(matches!(
            outcome,
            UserDeleted::Applied {
                sessions_signed_out: 0,
                users_deleted: 1,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn deleting_a_user_never_seen_is_unmapped_and_touches_nothing() {
        let f = Fixture::new();
        let mut instant = MockInstantAuth::new();
        instant.expect_sign_out().never();
        instant.expect_sign_out_user().never();
        instant.expect_delete_user().never();
        instant.expect_sign_in_with_id_token().never();
        let broker = f.broker(id_token(), instant, None);
        assert_eq!(
            broker
                .delete_user(
                    "user_2never0000000000000000000",
                    UserDeletedPolicy::DeleteUser
                )
                .await
                .unwrap(),
            UserDeleted::Unmapped
        );
        // Its tokens are refused all the same.
        let token = TokenBuilder::session(key(), ISSUER, NOW)
            .claim("sub", "user_2never0000000000000000000")
            .sign();
        let err = broker.sign_in(&token).await.unwrap_err();
        assert!(matches!(err, Error::SessionSignedOut), "{err:?}");
    }

    #[tokio::test]
    async fn instantdb_down_mid_deletion_is_retryable_and_the_retry_completes_exactly_once() {
        let f = Fixture::new();
        let mut seq = Sequence::new();
        let mut instant = MockInstantAuth::new();
        counting_sign_ins(&mut instant);
        signs_out_rt1_and_rt2_once(&mut instant);
        instant
            .expect_sign_out_user()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Err(down()));
        instant
            .expect_sign_out_user()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        instant
            .expect_delete_user()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(true));
        let broker = f.broker(id_token(), instant, None);
        two_sessions(&f, &broker).await;

        let err = broker
            .delete_user(TEST_USER_ID, UserDeletedPolicy::DeleteUser)
            .await
            .unwrap_err();
        assert!(err.is_retry_later(), "{err:?}");
        assert_eq!(err.code().as_str(), "instant-unavailable");
        assert!(
            f.store.is_empty().await.unwrap(),
            "the sessions InstantDB ended are dropped"
        );
        assert!(
            f.store
                .user_link(TEST_USER_ID, NOW)
                .await
                .unwrap()
                .is_some(),
            "the link stays for the retry"
        );

        let outcome = broker
            .delete_user(TEST_USER_ID, UserDeletedPolicy::DeleteUser)
            .await
            .unwrap();
        assert!(matches!(
            outcome,
            UserDeleted::Applied {
                sessions_signed_out: 0,
                users_deleted: 1,
                ..
            }
        ));
        assert_eq!(
            broker
                .delete_user(TEST_USER_ID, UserDeletedPolicy::DeleteUser)
                .await
                .unwrap(),
            UserDeleted::Unmapped
        );
    }

    #[tokio::test]
    async fn a_primary_email_change_signs_out_the_sessions_of_the_old_email() {
        let f = Fixture::new();
        let mut instant = MockInstantAuth::new();
        counting_sign_ins(&mut instant);
        instant
            .expect_sign_out()
            .withf(|token| *token == rt(1) || *token == rt(2))
            .times(2)
            .returning(|_| Ok(()));
        let broker = f.broker(id_token(), instant, None);
        two_sessions(&f, &broker).await;

        // The same email (any case): nothing to do.
        assert_eq!(
            broker
                .primary_email_changed(TEST_USER_ID, &TEST_EMAIL.to_uppercase())
                .await
                .unwrap(),
            EmailChanged::Unchanged
        );
        assert_eq!(f.store.len().await.unwrap(), 2);
        assert_eq!(
            broker
                .primary_email_changed(TEST_USER_ID, "alice@new.example.com")
                .await
                .unwrap(),
            EmailChanged::SignedOut { sessions: 2 }
        );
        assert!(f.store.is_empty().await.unwrap());
        assert_eq!(
            broker
                .primary_email_changed(TEST_USER_ID, "alice@new.example.com")
                .await
                .unwrap(),
            EmailChanged::Unchanged
        );
        // Not a refusal: the next sign-in mints a session for the new email.
        broker.sign_in(&f.token()).await.unwrap();
    }

    #[tokio::test]
    async fn the_admin_strategy_never_hands_back_a_session_of_another_email() {
        let f = Fixture::new();
        let mut seq = Sequence::new();
        let mut instant = MockInstantAuth::new();
        instant
            .expect_create_token_for_email()
            .with(eq("alice@old.example.com"))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|email| Ok(signed_with_email(1, email)));
        instant
            .expect_create_token_for_email()
            .with(eq(TEST_EMAIL))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|email| Ok(signed_with_email(2, email)));
        instant
            .expect_sign_out()
            .withf(|token| *token == rt(1))
            .times(1)
            .returning(|_| Ok(()));
        let broker = f.broker(BrokerConfig::new(Strategy::Admin), instant, None);
        let old = TokenBuilder::session(key(), ISSUER, NOW)
            .claim("email", "alice@old.example.com")
            .sign();
        assert_eq!(broker.sign_in(&old).await.unwrap().refresh_token, rt(1));
        // Within the reuse window, a token with the new verified email: not reused.
        f.clock.advance(5);
        let renewed = broker.sign_in(&f.token()).await.unwrap();
        assert_eq!(renewed.refresh_token, rt(2));
        assert!(!renewed.reused);
        assert_eq!(renewed.user.email.as_deref(), Some(TEST_EMAIL));
        settle(&broker).await;
        // And the new one is reused as before.
        assert!(broker.sign_in(&f.token()).await.unwrap().reused);
    }

    #[tokio::test]
    async fn the_id_token_strategy_asks_instantdb_when_the_email_differs() {
        let f = Fixture::new();
        let mut seq = Sequence::new();
        let mut instant = MockInstantAuth::new();
        instant
            .expect_sign_in_with_id_token()
            .withf(|_, _, refresh| refresh.is_none())
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _| Ok(signed_with_email(1, "alice@old.example.com")));
        // Within the reuse window, yet the stored token goes back to InstantDB, which
        // decides the user (its links follow `sub`).
        instant
            .expect_sign_in_with_id_token()
            .withf(|_, _, refresh| refresh.as_ref() == Some(&rt(1)))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _| Ok(signed_with_email(1, TEST_EMAIL)));
        let broker = f.broker(id_token(), instant, None);
        broker.sign_in(&f.token()).await.unwrap();
        f.clock.advance(5);
        let again = broker.sign_in(&f.token()).await.unwrap();
        assert_eq!(again.user.email.as_deref(), Some(TEST_EMAIL));
        assert!(again.reused);
        // Now the emails agree: the fast path again, no InstantDB call.
        assert!(broker.sign_in(&f.token()).await.unwrap().reused);
    }

    /// What a claim found, in a word.
    fn found(claim: &DeliveryClaim) -> &'static str {
        match claim {
            DeliveryClaim::Claimed(_) => "claimed",
            DeliveryClaim::InProgress => "in-progress",
            DeliveryClaim::Done => "done",
        }
    }

    /// The claim, for a test that expects to win it.
    fn held(claim: DeliveryClaim) -> HeldDelivery {
        match claim {
            DeliveryClaim::Claimed(held) => held,
            other => panic!("expected to claim it, found {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_delivery_claimed_twice_concurrently_is_applied_once() {
        let f = Fixture::new();
        let broker = f.broker(id_token(), MockInstantAuth::new(), None);
        let (a, b) = tokio::join!(
            broker.claim_delivery("msg_1"),
            broker.claim_delivery("msg_1")
        );
        let mut claims = [found(&a.unwrap()), found(&b.unwrap())];
        claims.sort_unstable();
        assert_eq!(claims, ["claimed", "in-progress"]);

        // Across threads too: exactly one of many wins.
        let store = f.store.clone();
        let winners: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|n| {
                    let store = store.clone();
                    scope.spawn(move || {
                        tokio::runtime::Builder::new_current_thread()
                            .build()
                            .unwrap()
                            .block_on(store.claim_message(
                                "msg_2",
                                &format!("holder_{n}"),
                                NOW,
                                NOW + 300,
                            ))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap().unwrap() == MessageClaim::Claimed))
                .sum()
        });
        assert_eq!(winners, 1);
    }

    #[tokio::test]
    async fn a_released_claim_is_applied_by_the_retry_and_a_completed_one_remembered_28_hours() {
        let f = Fixture::new();
        let broker = f.broker(id_token(), MockInstantAuth::new(), None);
        let first = held(broker.claim_delivery("msg_1").await.unwrap());
        assert_eq!(first.message_id(), "msg_1");
        // Applying failed: the retry gets the claim.
        broker.release_delivery(first.clone()).await.unwrap();
        let retry = held(broker.claim_delivery("msg_1").await.unwrap());
        // A late give-back of the first delivery's claim frees nothing of the retry's.
        broker.release_delivery(first).await.unwrap();
        let claim = broker.claim_delivery("msg_1").await.unwrap();
        assert_eq!(found(&claim), "in-progress");
        broker.complete_delivery(&retry).await.unwrap();
        // Releasing a completed message changes nothing.
        broker.release_delivery(retry).await.unwrap();
        let claim = broker.claim_delivery("msg_1").await.unwrap();
        assert_eq!(found(&claim), "done");
        f.clock.advance(28 * 3600 - 1);
        let claim = broker.claim_delivery("msg_1").await.unwrap();
        assert_eq!(found(&claim), "done");
        f.clock.advance(1);
        let claim = broker.claim_delivery("msg_1").await.unwrap();
        assert_eq!(found(&claim), "claimed");

        // A claim never completed nor released lapses after the lease.
        let claim = broker.claim_delivery("msg_2").await.unwrap();
        assert_eq!(found(&claim), "claimed");
        f.clock.advance(299);
        let claim = broker.claim_delivery("msg_2").await.unwrap();
        assert_eq!(found(&claim), "in-progress");
        f.clock.advance(1);
        let claim = broker.claim_delivery("msg_2").await.unwrap();
        assert_eq!(found(&claim), "claimed");
    }

    #[test]
    fn the_user_deleted_policy_parses_its_three_names_and_nothing_else() {
        assert_eq!(UserDeletedPolicy::default(), UserDeletedPolicy::DeleteUser);
        for policy in UserDeletedPolicy::ALL {
            assert_eq!(policy.as_str().parse::<UserDeletedPolicy>(), Ok(policy));
            assert_eq!(policy.to_string(), policy.as_str());
        }
        assert_eq!(
            ["delete-user", "sign-out", "ignore"],
            UserDeletedPolicy::ALL.map(UserDeletedPolicy::as_str)
        );
        let err = "delete".parse::<UserDeletedPolicy>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown user-deleted policy; expected delete-user, sign-out or ignore"
        );
    }
}

mod store;
