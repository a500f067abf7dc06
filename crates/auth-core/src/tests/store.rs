//! The broker over its store: one InstantDB call per Clerk session at a time, a full
//! store that sheds instead of signing users out, a store that is down, and how long a
//! signed-out session stays refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use clerk_jwt::testing::{TEST_SESSION_ID, TokenBuilder};
use instant_client::{IdToken, Query, RefreshToken, SignedIn, Transaction, TxId, User, Uuid};

use super::{Fixture, ISSUER, NOW, down, id_token, key, rt, settle, signed};
use crate::ports::MockInstantAuth;
use crate::store::{
    Inserted, MessageClaim, Refused, StoreError, StoreResult, StoredSession, UserLink,
};
use crate::{Code, ErrorKind, InstantAuth, SessionBroker, SessionStore};

/// InstantDB whose id-token sign-in takes a while (so sign-ins overlap) and counts its
/// calls; each call mints another refresh token, as InstantDB does without one. Its
/// sign-out fails while `down` is set, and, given a store, records whether the test
/// session was stored while it ran (what a webhook racing a sign-out would see).
#[derive(Default)]
struct CountingInstant {
    sign_ins: AtomicUsize,
    sign_outs: AtomicUsize,
    down: std::sync::atomic::AtomicBool,
    watched: Option<Arc<crate::MemorySessionStore>>,
    stored_during_sign_out: std::sync::Mutex<Vec<bool>>,
}

#[async_trait]
impl InstantAuth for CountingInstant {
    async fn sign_in_with_id_token(
        &self,
        _: &IdToken,
        _: &str,
        refresh_token: Option<RefreshToken>,
    ) -> Result<SignedIn, instant_client::Error> {
        let n = self.sign_ins.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut answer = signed(u8::try_from(n + 1).unwrap(), n == 0);
        if let Some(token) = refresh_token {
            answer.refresh_token = token;
        }
        Ok(answer)
    }

    async fn create_token_for_email(&self, _: &str) -> Result<SignedIn, instant_client::Error> {
        Err(down())
    }

    async fn sign_out(&self, _: &RefreshToken) -> Result<(), instant_client::Error> {
        if let Some(store) = &self.watched {
            let stored = store.get(TEST_SESSION_ID, NOW).await.unwrap().is_some();
            self.stored_during_sign_out.lock().unwrap().push(stored);
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(down());
        }
        self.sign_outs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn verify_refresh_token(&self, _: &RefreshToken) -> Result<User, instant_client::Error> {
        Err(down())
    }

    async fn query_as(
        &self,
        _: &RefreshToken,
        _: &Query,
    ) -> Result<Box<serde_json::value::RawValue>, instant_client::Error> {
        Err(down())
    }

    async fn transact_as(
        &self,
        _: &RefreshToken,
        _: &Transaction,
    ) -> Result<TxId, instant_client::Error> {
        Err(down())
    }

    async fn sign_out_user(&self, _: Uuid) -> Result<(), instant_client::Error> {
        Err(down())
    }

    async fn delete_user(&self, _: Uuid) -> Result<bool, instant_client::Error> {
        Err(down())
    }
}

fn broker_over(
    f: &Fixture,
    instant: Arc<CountingInstant>,
    config: crate::BrokerConfig,
) -> SessionBroker {
    SessionBroker::new(config, f.verifier.clone(), instant, None, f.store.clone())
        .with_clock(f.clock.clone())
}

#[tokio::test]
async fn concurrent_sign_ins_of_one_session_make_one_instantdb_call() {
    let f = Fixture::new();
    let instant = Arc::new(CountingInstant::default());
    let broker = broker_over(&f, Arc::clone(&instant), id_token());
    let token = f.token();
    let results = at_once(&broker, &token, 8).await;
    assert_eq!(
        instant.sign_ins.load(Ordering::SeqCst),
        1,
        "one InstantDB call"
    );
    for result in results {
        assert_eq!(result.unwrap().refresh_token, rt(1));
    }
    settle(&broker).await;
    assert_eq!(
        instant.sign_outs.load(Ordering::SeqCst),
        0,
        "no token minted to waste"
    );

    // Past the reuse window too: the confirmations are single-flighted.
    f.clock.advance(61);
    let token = f.token();
    let results = at_once(&broker, &token, 8).await;
    assert_eq!(
        instant.sign_ins.load(Ordering::SeqCst),
        2,
        "one confirmation"
    );
    for result in results {
        assert_eq!(result.unwrap().refresh_token, rt(1));
    }
}

/// `n` sign-ins of one token, all in flight at once.
async fn at_once(
    broker: &SessionBroker,
    token: &str,
    n: usize,
) -> Vec<Result<crate::SignIn, crate::Error>> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (broker, token) = (broker.clone(), token.to_owned());
        set.spawn(async move { broker.sign_in(&token).await });
    }
    set.join_all().await
}

#[tokio::test(start_paused = true)]
async fn a_lock_left_by_a_crashed_holder_delays_the_sign_in_until_it_lapses() {
    let f = Fixture::new();
    let instant = Arc::new(CountingInstant::default());
    let broker = broker_over(&f, Arc::clone(&instant), id_token());
    assert!(
        f.store
            .try_lock(TEST_SESSION_ID, "crashed", NOW, NOW + 15)
            .await
            .unwrap()
    );
    let token = f.token();
    let waiting = tokio::spawn({
        let broker = broker.clone();
        async move { broker.sign_in(&token).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished(), "the lock is held");
    assert_eq!(instant.sign_ins.load(Ordering::SeqCst), 0);
    f.clock.advance(15);
    let signed_in = waiting.await.unwrap().unwrap();
    assert_eq!(signed_in.refresh_token, rt(1));
    assert_eq!(instant.sign_ins.load(Ordering::SeqCst), 1);
    // Released on the way out: the next sign-in past the reuse window is not delayed.
    assert!(
        f.store
            .try_lock(TEST_SESSION_ID, "probe", NOW + 15, NOW + 16)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_full_store_sheds_new_sign_ins_and_signs_no_one_out() {
    let f = Fixture {
        store: Arc::new(crate::MemorySessionStore::new(
            crate::StoreLimits::default().max_entries(1),
        )),
        ..Fixture::new()
    };
    let other = StoredSession::new(
        "user_other",
        rt(9),
        Arc::new(User::new(Uuid::from_u128(9))),
        NOW,
        NOW + 3600,
    );
    f.store.insert("sess_other", other, NOW).await.unwrap();
    let mut instant = MockInstantAuth::new();
    instant.expect_sign_in_with_id_token().never();
    instant.expect_sign_out().never();
    let broker = f.broker(id_token(), instant, None);
    let error = broker.sign_in(&f.token()).await.unwrap_err();
    assert_eq!(error.code(), Code::StoreFull);
    assert_eq!(error.code().as_str(), "store-full");
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
    settle(&broker).await;
    assert!(
        f.store.get("sess_other", NOW).await.unwrap().is_some(),
        "kept"
    );
}

/// A store that cannot be reached.
struct DownStore;

#[derive(Debug, thiserror::Error)]
#[error("connection refused")]
struct Refused_;

fn unreachable<T>() -> StoreResult<T> {
    Err(StoreError::unavailable(Refused_))
}

#[async_trait]
impl SessionStore for DownStore {
    async fn get(&self, _: &str, _: i64) -> StoreResult<Option<StoredSession>> {
        unreachable()
    }
    async fn insert(&self, _: &str, _: StoredSession, _: i64) -> StoreResult<Inserted> {
        unreachable()
    }
    async fn insert_if_absent(
        &self,
        _: &str,
        _: StoredSession,
        _: i64,
    ) -> StoreResult<Result<Inserted, StoredSession>> {
        unreachable()
    }
    async fn has_room(&self, _: i64) -> StoreResult<bool> {
        unreachable()
    }
    async fn remove(&self, _: &str) -> StoreResult<Option<StoredSession>> {
        unreachable()
    }
    async fn sweep(&self, _: i64) -> StoreResult<Vec<StoredSession>> {
        unreachable()
    }
    async fn sessions_of(&self, _: &str) -> StoreResult<Vec<(String, StoredSession)>> {
        unreachable()
    }
    async fn link_user(&self, _: &str, _: UserLink, _: i64, _: i64) -> StoreResult<()> {
        unreachable()
    }
    async fn user_link(&self, _: &str, _: i64) -> StoreResult<Option<UserLink>> {
        unreachable()
    }
    async fn unlink_user(&self, _: &str) -> StoreResult<()> {
        unreachable()
    }
    async fn refuse(&self, _: &Refused, _: i64, _: i64) -> StoreResult<()> {
        unreachable()
    }
    async fn is_refused(&self, _: &[Refused], _: i64) -> StoreResult<bool> {
        unreachable()
    }
    async fn claim_message(&self, _: &str, _: &str, _: i64, _: i64) -> StoreResult<MessageClaim> {
        unreachable()
    }
    async fn complete_message(&self, _: &str, _: i64, _: i64) -> StoreResult<()> {
        unreachable()
    }
    async fn release_message(&self, _: &str, _: &str) -> StoreResult<bool> {
        unreachable()
    }
    async fn try_lock(&self, _: &str, _: &str, _: i64, _: i64) -> StoreResult<bool> {
        unreachable()
    }
    async fn unlock(&self, _: &str, _: &str) -> StoreResult<()> {
        unreachable()
    }
    async fn len(&self) -> StoreResult<usize> {
        unreachable()
    }
    fn kind(&self) -> &'static str {
        "down"
    }
}

/// The memory store, except that its next message claims are written but answered
/// with an error (a Redis that hung, then ran what it was sent after its caller gave
/// up), and its next completions and releases fail unapplied.
#[derive(Default)]
struct LosesAnswers {
    inner: crate::MemorySessionStore,
    lose_claims: AtomicUsize,
    fail_completes: AtomicUsize,
    fail_releases: AtomicUsize,
}

/// Takes one from `n` if it is not zero: whether it did.
fn take_one(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

#[async_trait]
impl SessionStore for LosesAnswers {
    async fn get(&self, id: &str, now: i64) -> StoreResult<Option<StoredSession>> {
        self.inner.get(id, now).await
    }
    async fn insert(&self, id: &str, s: StoredSession, now: i64) -> StoreResult<Inserted> {
        self.inner.insert(id, s, now).await
    }
    async fn insert_if_absent(
        &self,
        id: &str,
        s: StoredSession,
        now: i64,
    ) -> StoreResult<Result<Inserted, StoredSession>> {
        self.inner.insert_if_absent(id, s, now).await
    }
    async fn has_room(&self, now: i64) -> StoreResult<bool> {
        self.inner.has_room(now).await
    }
    async fn remove(&self, id: &str) -> StoreResult<Option<StoredSession>> {
        self.inner.remove(id).await
    }
    async fn sweep(&self, now: i64) -> StoreResult<Vec<StoredSession>> {
        self.inner.sweep(now).await
    }
    async fn sessions_of(&self, user: &str) -> StoreResult<Vec<(String, StoredSession)>> {
        self.inner.sessions_of(user).await
    }
    async fn link_user(&self, user: &str, link: UserLink, now: i64, until: i64) -> StoreResult<()> {
        self.inner.link_user(user, link, now, until).await
    }
    async fn user_link(&self, user: &str, now: i64) -> StoreResult<Option<UserLink>> {
        self.inner.user_link(user, now).await
    }
    async fn unlink_user(&self, user: &str) -> StoreResult<()> {
        self.inner.unlink_user(user).await
    }
    async fn refuse(&self, who: &Refused, now: i64, until: i64) -> StoreResult<()> {
        self.inner.refuse(who, now, until).await
    }
    async fn is_refused(&self, who: &[Refused], now: i64) -> StoreResult<bool> {
        self.inner.is_refused(who, now).await
    }
    async fn claim_message(
        &self,
        id: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> StoreResult<MessageClaim> {
        let claim = self.inner.claim_message(id, holder, now, until).await?;
        if take_one(&self.lose_claims) {
            return unreachable();
        }
        Ok(claim)
    }
    async fn complete_message(&self, id: &str, now: i64, until: i64) -> StoreResult<()> {
        if take_one(&self.fail_completes) {
            return unreachable();
        }
        self.inner.complete_message(id, now, until).await
    }
    async fn release_message(&self, id: &str, holder: &str) -> StoreResult<bool> {
        if take_one(&self.fail_releases) {
            return unreachable();
        }
        self.inner.release_message(id, holder).await
    }
    async fn try_lock(&self, id: &str, holder: &str, now: i64, until: i64) -> StoreResult<bool> {
        self.inner.try_lock(id, holder, now, until).await
    }
    async fn unlock(&self, id: &str, holder: &str) -> StoreResult<()> {
        self.inner.unlock(id, holder).await
    }
    async fn len(&self) -> StoreResult<usize> {
        self.inner.len().await
    }
    fn kind(&self) -> &'static str {
        "loses-answers"
    }
}

#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_given_back_once_the_store_answers() {
    let f = Fixture::new();
    let store = Arc::new(LosesAnswers::default());
    let broker = SessionBroker::new(
        id_token(),
        f.verifier.clone(),
        Arc::new(MockInstantAuth::new()),
        None,
        Arc::clone(&store) as Arc<dyn SessionStore>,
    )
    .with_clock(f.clock.clone());
    let found = async |id| match broker.claim_delivery(id).await.unwrap() {
        crate::DeliveryClaim::Claimed(held) => Ok(held),
        other => Err(format!("{other:?}")),
    };

    // The claim is written, its answer lost; the store then fails twice more.
    store.lose_claims.store(1, Ordering::SeqCst);
    store.fail_releases.store(2, Ordering::SeqCst);
    let error = broker.claim_delivery("msg_1").await.unwrap_err();
    assert!(error.is_retry_later());
    assert_eq!(found("msg_1").await.unwrap_err(), "InProgress");
    // Given back in the background once the store answers: the retry applies it.
    settle(&broker).await;
    assert_eq!(store.fail_releases.load(Ordering::SeqCst), 0, "retried");
    let retry = found("msg_1").await.unwrap();

    // A release that fails is given back the same way.
    store.fail_releases.store(1, Ordering::SeqCst);
    assert!(broker.release_delivery(retry).await.is_err());
    settle(&broker).await;
    let again = found("msg_1").await.unwrap();

    // So is a completion that fails: the message is not done, and the retry may run.
    store.fail_completes.store(1, Ordering::SeqCst);
    assert!(broker.complete_delivery(&again).await.is_err());
    settle(&broker).await;
    let last = found("msg_1").await.unwrap();
    broker.complete_delivery(&last).await.unwrap();
    assert_eq!(found("msg_1").await.unwrap_err(), "Done");
}

#[tokio::test]
async fn a_store_that_is_down_answers_retry_later_and_touches_nothing() {
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant.expect_sign_in_with_id_token().never();
    instant.expect_sign_out().never();
    let broker = SessionBroker::new(
        id_token(),
        f.verifier.clone(),
        Arc::new(instant),
        None,
        Arc::new(DownStore),
    )
    .with_clock(f.clock.clone());
    let token = f.token();
    for error in [
        broker.sign_in(&token).await.unwrap_err(),
        broker.sign_out(&token, None).await.unwrap_err(),
        broker.end_session(TEST_SESSION_ID).await.unwrap_err(),
        broker.claim_delivery("msg_1").await.unwrap_err(),
    ] {
        assert_eq!(error.code(), Code::StoreUnavailable);
        assert_eq!(error.kind(), ErrorKind::Unavailable);
        assert!(error.is_retry_later());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));
        let source = std::error::Error::source(&error).unwrap();
        assert_eq!(source.to_string(), "the session store is unavailable");
    }
    assert!(broker.sweep().await.is_err());
}

#[tokio::test]
async fn a_long_lived_token_stays_refused_after_sign_out_until_it_expires() {
    let f = Fixture::new();
    let mut instant = MockInstantAuth::new();
    instant
        .expect_sign_in_with_id_token()
        .times(1)
        .returning(|_, _, _| Ok(signed(1, true)));
    instant.expect_sign_out().times(1).returning(|_| Ok(()));
    let broker = f.broker(id_token(), instant, None);
    // A Backend-API token living an hour.
    let long = TokenBuilder::session(key(), ISSUER, NOW)
        .claim("exp", NOW + 3600)
        .sign();
    broker.sign_in(&long).await.unwrap();
    broker.sign_out(&long, None).await.unwrap();
    for later in [92, 1800, 3600 + 4] {
        f.clock.set(NOW + later);
        let refused = broker.sign_in(&long).await.unwrap_err();
        assert_eq!(refused.code(), Code::SessionSignedOut, "{later} s later");
    }
}

#[tokio::test]
async fn a_sign_out_keeps_the_session_stored_until_instantdb_has_ended_it() {
    // Found by the fault soak: the sign-out used to drop the session before calling
    // InstantDB and store it again when InstantDB failed; a `session.revoked` webhook
    // landing in between found nothing, was acknowledged, and the token leaked.
    let f = Fixture::new();
    let instant = Arc::new(CountingInstant {
        down: std::sync::atomic::AtomicBool::new(true),
        watched: Some(f.store.clone()),
        ..CountingInstant::default()
    });
    let broker = broker_over(&f, Arc::clone(&instant), id_token());
    let token = f.token();
    broker.sign_in(&token).await.unwrap();
    let out = broker.sign_out(&token, None).await.unwrap();
    assert!(out.instant.is_failed());
    assert_eq!(
        *instant.stored_during_sign_out.lock().unwrap(),
        [true],
        "a webhook racing the sign-out must find the session"
    );
    // The webhook that comes while InstantDB is down finds it too, and once InstantDB
    // is back its retry ends it.
    assert!(broker.end_session(TEST_SESSION_ID).await.is_err());
    instant.down.store(false, Ordering::SeqCst);
    assert!(matches!(
        broker.end_session(TEST_SESSION_ID).await.unwrap(),
        crate::SessionEnded::SignedOut { .. }
    ));
    assert_eq!(instant.sign_outs.load(Ordering::SeqCst), 1);
    assert!(f.store.is_empty().await.unwrap());
}
