//! The broker: Clerk token in, InstantDB session out; sign-out of both.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use clerk_jwt::{Clock, SystemClock};
use instant_client::{IdToken, Query, RefreshToken, SignedIn, Transaction, TxId};
use serde_json::value::RawValue;

use crate::background::Background;
use crate::error::{Error, InstantOp, is_dead_refresh_token};
use crate::ports::{ClerkSessions, InstantAuth, TokenVerifier};
use crate::session::{
    BrokerConfig, ClerkIdentity, Half, HalfError, SignIn, SignOut, Strategy, Verified,
};
use crate::store::{Lookup, Refused, SessionStore, StoreError, StoredSession, UserLink};

pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// How long a Clerk session's stored InstantDB session is trusted after InstantDB last
/// confirmed it, in seconds: `revalidate_after`, less up to a quarter of it, by the
/// session id. Sessions signed in together (after a deploy, a restart of a memory
/// store, a morning rush) would otherwise all come due in the same second, every one
/// of their next requests would wait for an InstantDB confirmation at once, and they
/// would come due together again a minute later, for ever: with the windows spread by
/// session id, the first round is spread over a quarter of the period, and each round
/// spreads them further. Never longer than `revalidate_after`, so it stays the most a
/// stored session goes unconfirmed; the same session gets the same window on every
/// replica (a fixed hash of its id).
pub(crate) fn revalidate_window(revalidate_after: Duration, session_id: &str) -> i64 {
    let period = secs(revalidate_after);
    let spread = u64::try_from(period / 4).unwrap_or(0);
    let hash = session_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    // FNV-1a mixes the last bytes poorly (ids that differ there, as Clerk's may, would
    // bunch up): MurmurHash3's finalizer spreads every input bit over the whole word.
    let mut mixed = hash ^ (hash >> 33);
    mixed = mixed.wrapping_mul(0xff51_afd7_ed55_8ccd);
    mixed ^= mixed >> 33;
    mixed = mixed.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    mixed ^= mixed >> 33;
    period - i64::try_from(mixed % (spread + 1)).unwrap_or(0)
}

/// The first pause of a sign-in waiting for another's lock, doubled up to
/// [`LOCK_POLL_MAX`].
const LOCK_POLL_FIRST: Duration = Duration::from_millis(5);
const LOCK_POLL_MAX: Duration = Duration::from_millis(100);
/// How much longer than the lock's lifetime a waiter waits before it blames the store.
const LOCK_WAIT_SLACK: Duration = Duration::from_secs(2);

/// What a stored session is good for, for a given token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judgement {
    /// Hand it out as is.
    Fresh,
    /// Its reuse window passed, and nothing else: a sign-in asks InstantDB first; a
    /// query or transaction uses it as is, since InstantDB checks the token on that
    /// call anyway (one it no longer knows fails it, and the broker signs in again; one
    /// that succeeds is recorded as the confirmation, see `judge_and_renews`).
    Due,
    /// Ask InstantDB first (the token's email changed).
    Confirm,
    /// It is not this token's: drop it and sign it out.
    Drop,
}

impl Judgement {
    /// Whether a stored session so judged serves a caller that needs `enough`.
    fn serves(self, enough: Judgement) -> bool {
        match self {
            Judgement::Fresh => true,
            Judgement::Due => enough == Judgement::Due,
            Judgement::Confirm | Judgement::Drop => false,
        }
    }
}

/// Who holds a sign-in lock or a webhook claim: random per sign-in (per delivery), so
/// a lapsed holder cannot release a lock or claim another took since.
#[derive(Clone)]
pub(crate) struct LockHolder(String);

impl LockHolder {
    pub(crate) fn new() -> Self {
        use std::hash::{BuildHasher as _, Hasher as _};
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        // `RandomState` is seeded from the OS's randomness per process; the counter
        // makes every holder of this process distinct.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u32(std::process::id());
        let random = hasher.finish();
        let mut second = std::collections::hash_map::RandomState::new().build_hasher();
        second.write_u64(random);
        LockHolder(format!("{random:016x}{:016x}", second.finish()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A sign-in lock that outlived its lifetime by the store's answers.
#[derive(Debug, thiserror::Error)]
#[error("another sign-in of this Clerk session held its lock past the lock's lifetime")]
struct LockNotReleased;

impl SessionBroker {
    /// Until when a Clerk session (or user) stays refused from `now`, given the token
    /// that ended it.
    pub(crate) fn refused_until(&self, now: i64, token_exp: Option<i64>) -> i64 {
        let bound = now.saturating_add(secs(self.config.refuse_for));
        token_exp.map_or(bound, |exp| bound.max(exp.saturating_add(LEEWAY)))
    }
}

/// The verifier's leeway on `exp`, at most (clerk-jwt's maximum).
const LEEWAY: i64 = secs_const(clerk_jwt::MAX_LEEWAY);

const fn secs_const(d: Duration) -> i64 {
    d.as_secs() as i64
}

/// Turns Clerk sessions into InstantDB sessions. Cheap to clone.
#[derive(Clone)]
pub struct SessionBroker {
    verifier: Arc<dyn TokenVerifier>,
    pub(crate) instant: Arc<dyn InstantAuth>,
    clerk: Option<Arc<dyn ClerkSessions>>,
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: BrokerConfig,
    pub(crate) background: Arc<Background>,
}

impl fmt::Debug for SessionBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionBroker")
            .field("config", &self.config)
            .field("revokes_clerk_sessions", &self.clerk.is_some())
            .finish_non_exhaustive()
    }
}

impl SessionBroker {
    /// A broker over these seams. `clerk` is the Backend API used to revoke Clerk
    /// sessions on sign-out; without it that half is skipped (and reported so).
    pub fn new(
        config: BrokerConfig,
        verifier: Arc<dyn TokenVerifier>,
        instant: Arc<dyn InstantAuth>,
        clerk: Option<Arc<dyn ClerkSessions>>,
        store: Arc<dyn SessionStore>,
    ) -> Self {
        SessionBroker {
            verifier,
            instant,
            clerk,
            store,
            clock: Arc::new(SystemClock),
            config,
            background: Arc::default(),
        }
    }

    /// Uses this clock (for tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The settings.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The session store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// Verifies a token and returns who it says the caller is (no InstantDB call).
    pub async fn identify(&self, token: &str) -> Result<ClerkIdentity, Error> {
        let claims = self.verifier.verify(token).await?;
        Ok(ClerkIdentity::from(&claims))
    }

    /// Verifies the Clerk token once, for a caller that must know it is good before it
    /// reads the rest of a request; hand the result to the `*_verified` calls.
    pub async fn authenticate<'a>(&self, token: &'a str) -> Result<Verified<'a>, Error> {
        Ok(Verified {
            token: Cow::Borrowed(token),
            identity: self.identify(token).await?,
        })
    }

    /// The InstantDB session stored for a Clerk session, if any (no InstantDB call).
    pub async fn stored_session(
        &self,
        identity: &ClerkIdentity,
    ) -> Result<Option<StoredSession>, Error> {
        Ok(self
            .store
            .get(&identity.session_id, self.clock.now())
            .await?
            .filter(|s| s.clerk_user_id == identity.user_id))
    }

    /// The InstantDB session stored for the Clerk session of a verified token, as
    /// `/v1/me` shows it: [`Error::SessionSignedOut`] when the session (or its user) is
    /// refused, as every other operation answers; no InstantDB call.
    pub async fn current_session(
        &self,
        identity: &ClerkIdentity,
    ) -> Result<Option<StoredSession>, Error> {
        if self.is_refused(identity, self.clock.now()).await? {
            return Err(Error::SessionSignedOut);
        }
        self.stored_session(identity).await
    }

    /// Signs in: verifies the Clerk token locally (a bad token never reaches InstantDB),
    /// then returns the InstantDB session of this Clerk session, reusing the stored one.
    pub async fn sign_in(&self, token: &str) -> Result<SignIn, Error> {
        let claims = self.verifier.verify(token).await?;
        let identity = ClerkIdentity::from(&claims);
        self.sign_in_verified(token, identity).await
    }

    /// The sign-in behind every operation: the stored session when it can be used
    /// as is; otherwise, holding the Clerk session's sign-in lock (so one InstantDB call
    /// is made per Clerk session at a time, across replicas), the stored session
    /// confirmed or a new one.
    /// [`sign_in`](Self::sign_in) for a token [`authenticate`](Self::authenticate)
    /// verified.
    pub async fn sign_in_authenticated(&self, token: &Verified<'_>) -> Result<SignIn, Error> {
        self.sign_in_verified(&token.token, token.identity.clone())
            .await
    }

    /// The sign-in's common path alone: the stored session when it can be used as is
    /// (one round trip to the store, no InstantDB call, nothing written), `None` when
    /// InstantDB must be asked ([`sign_in_authenticated`](Self::sign_in_authenticated)
    /// does that); [`Error::SessionSignedOut`] when the session or its user is refused.
    /// Nothing is minted here, so a caller that is dropped midway loses nothing: a
    /// server can answer most sign-ins with this alone and save the detached task the
    /// full sign-in needs.
    pub async fn stored_sign_in(&self, token: &Verified<'_>) -> Result<Option<SignIn>, Error> {
        Ok(self
            .reusable(token.identity.clone(), Judgement::Fresh)
            .await?
            .ok()
            .map(|reuse| reuse.sign_in))
    }

    /// See [`stored_sign_in`](Self::stored_sign_in); hands the identity back when
    /// InstantDB must be asked. `enough`: the judgement the stored session needs at
    /// least (`Fresh` for a sign-in, `Due` for a call that checks the token itself).
    async fn reusable(
        &self,
        identity: ClerkIdentity,
        enough: Judgement,
    ) -> Result<Result<Reuse, ClerkIdentity>, Error> {
        let now = self.clock.now();
        match self
            .store
            .lookup(&identity.session_id, &refusals(&identity), now)
            .await?
        {
            Lookup::Refused => Err(Error::SessionSignedOut),
            Lookup::Found(Some(stored)) => {
                let (judged, renew) = self.judge_and_renews(&identity, &stored, now);
                if judged.serves(enough) {
                    Ok(Ok(Reuse {
                        sign_in: reused(identity, stored),
                        reconfirm_at: renew.then_some(now),
                    }))
                } else {
                    Ok(Err(identity))
                }
            }
            Lookup::Found(None) => Ok(Err(identity)),
        }
    }

    async fn sign_in_verified(
        &self,
        token: &str,
        identity: ClerkIdentity,
    ) -> Result<SignIn, Error> {
        // One round trip to the store on the common path: refused, or the stored
        // session as is.
        let identity = match self.reusable(identity, Judgement::Fresh).await? {
            Ok(ready) => return Ok(ready.sign_in),
            Err(identity) => identity,
        };
        let holder = LockHolder::new();
        if let Some(ready) = self.lock_sign_in(&identity, &holder).await? {
            return Ok(ready);
        }
        let result = self.sign_in_locked(token, &identity).await;
        if let Err(error) = self
            .store
            .unlock(&identity.session_id, holder.as_str())
            .await
        {
            // The lock lapses by itself; a failed release only delays the next sign-in.
            tracing::warn!(
                session = %identity.session_id,
                error = &error as &dyn std::error::Error,
                "could not release a sign-in lock"
            );
        }
        result
    }

    /// The stored session, when it can be handed out without asking InstantDB.
    async fn usable_as_is(
        &self,
        identity: &ClerkIdentity,
        now: i64,
    ) -> Result<Option<SignIn>, Error> {
        let Some(stored) = self.store.get(&identity.session_id, now).await? else {
            return Ok(None);
        };
        Ok((self.judge(identity, &stored, now) == Judgement::Fresh)
            .then(|| reused(identity.clone(), stored)))
    }

    /// What a stored session is good for, for this token.
    fn judge(&self, identity: &ClerkIdentity, stored: &StoredSession, now: i64) -> Judgement {
        self.judge_and_renews(identity, stored, now).0
    }

    /// [`judge`](Self::judge), and whether a call that succeeds with the stored session
    /// records InstantDB's confirmation: from three quarters of its window on, so an
    /// active user's session is renewed before it comes due, and its sign-ins never
    /// wait for InstantDB (not with a zero window, where nothing is reused without
    /// asking). One window computed for both.
    fn judge_and_renews(
        &self,
        identity: &ClerkIdentity,
        stored: &StoredSession,
        now: i64,
    ) -> (Judgement, bool) {
        let email_differs = email_differs(identity, stored);
        if stored.clerk_user_id != identity.user_id
            || (email_differs && self.config.strategy == Strategy::Admin)
        {
            // A session id never changes hands in Clerk: the entry is inconsistent.
            // Admin strategy: the session was minted for another email (the Clerk
            // user's primary email changed), so it is not this token's any more.
            return (Judgement::Drop, false);
        }
        if email_differs {
            return (Judgement::Confirm, false);
        }
        let window = revalidate_window(self.config.revalidate_after, &identity.session_id);
        let age = now.saturating_sub(stored.confirmed_at);
        let judged = if age < window {
            Judgement::Fresh
        } else {
            Judgement::Due
        };
        (judged, window > 0 && age >= window - window / 4)
    }

    /// Takes the sign-in lock of the token's Clerk session. While another sign-in
    /// holds it, waits (polling with backoff) until it is released or lapses; when the
    /// other sign-in stored a session this token can use, that is returned instead
    /// (`Some`), without taking the lock.
    async fn lock_sign_in(
        &self,
        identity: &ClerkIdentity,
        holder: &LockHolder,
    ) -> Result<Option<SignIn>, Error> {
        let sid = &identity.session_id;
        let ttl = secs(self.config.sign_in_lock);
        // A lock lapses after `ttl` by the store's clock; waiting a little longer than
        // that by ours means the store is not honouring it.
        let give_up = tokio::time::Instant::now() + self.config.sign_in_lock + LOCK_WAIT_SLACK;
        let mut pause = LOCK_POLL_FIRST;
        loop {
            let now = self.clock.now();
            if self
                .store
                .try_lock(sid, holder.as_str(), now, now.saturating_add(ttl))
                .await?
            {
                return Ok(None);
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(Error::Store(StoreError::unavailable(LockNotReleased)));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LOCK_POLL_MAX);
            if let Some(ready) = self.usable_as_is(identity, self.clock.now()).await? {
                return Ok(Some(ready));
            }
        }
    }

    /// The sign-in, holding the lock: the store is read again (another replica may have
    /// just signed in), then the stored session is confirmed with InstantDB or a new
    /// one obtained.
    async fn sign_in_locked(&self, token: &str, identity: &ClerkIdentity) -> Result<SignIn, Error> {
        let sid = &identity.session_id;
        let now = self.clock.now();
        if let Some(stored) = self.store.get(sid, now).await? {
            match self.judge(identity, &stored, now) {
                Judgement::Fresh => {
                    return Ok(reused(identity.clone(), stored));
                }
                Judgement::Drop => {
                    if let Some(stale) = self.store.remove(sid).await? {
                        self.sign_out_in_background(vec![stale]);
                    }
                }
                Judgement::Due | Judgement::Confirm => match self
                    .confirm(token, identity, &stored)
                    .await
                {
                    Ok(signed) => {
                        let reused = signed.refresh_token == stored.refresh_token;
                        let user = Arc::new(signed.user);
                        let session = StoredSession::new(
                            identity.user_id.clone(),
                            signed.refresh_token.clone(),
                            Arc::clone(&user),
                            now,
                            stored.expires_at,
                        );
                        let inserted = match self.store.insert(sid, session, now).await {
                            Ok(inserted) => inserted,
                            Err(error) => {
                                self.end_unstored(identity, &signed.refresh_token, &stored, &user);
                                return Err(error.into());
                            }
                        };
                        self.sign_out_in_background(inserted.displaced);
                        self.link(identity, &user, now).await?;
                        self.recheck_refusal(identity, now).await?;
                        return Ok(SignIn {
                            clerk: identity.clone(),
                            user,
                            refresh_token: signed.refresh_token,
                            created: signed.created,
                            reused,
                        });
                    }
                    Err(Error::Instant { source, .. }) if is_dead_refresh_token(&source) => {
                        tracing::info!(
                            session = %sid,
                            "InstantDB no longer knows the stored refresh token; signing in again"
                        );
                        self.store.remove(sid).await?;
                    }
                    Err(other) => return Err(other),
                },
            }
        }

        // A full store mints nothing: a token it could not keep would outlive its entry.
        if !self.store.has_room(now).await? {
            return Err(Error::Store(StoreError::Full));
        }
        let signed = self.fresh(token, identity).await?;
        let user = Arc::new(signed.user);
        let session = StoredSession::new(
            identity.user_id.clone(),
            signed.refresh_token.clone(),
            Arc::clone(&user),
            now,
            now.saturating_add(secs(self.config.session_ttl)),
        );
        let outcome = match self.store.insert_if_absent(sid, session, now).await {
            Ok(outcome) => outcome,
            Err(error) => {
                // Not stored (the store filled up or went down since): end the new
                // token rather than hand out one no entry holds.
                self.sign_out_in_background(vec![StoredSession::new(
                    identity.user_id.clone(),
                    signed.refresh_token,
                    user,
                    now,
                    now,
                )]);
                return Err(error.into());
            }
        };
        match outcome {
            Ok(inserted) => {
                self.sign_out_in_background(inserted.displaced);
                self.link(identity, &user, now).await?;
                self.recheck_refusal(identity, now).await?;
                Ok(SignIn {
                    clerk: identity.clone(),
                    user,
                    refresh_token: signed.refresh_token,
                    created: signed.created,
                    reused: false,
                })
            }
            Err(existing) => {
                // Another sign-in of the same Clerk session stored its token first (its
                // lock lapsed): use that one and end ours, so tokens do not pile up.
                if existing.refresh_token != signed.refresh_token {
                    self.sign_out_in_background(vec![StoredSession::new(
                        identity.user_id.clone(),
                        signed.refresh_token,
                        user,
                        now,
                        now,
                    )]);
                }
                Ok(reused(identity.clone(), existing))
            }
        }
    }

    /// A confirmed token that could not be stored: InstantDB may have minted a new one
    /// in place of the stored one; end it unless it is the stored one (which stays).
    fn end_unstored(
        &self,
        identity: &ClerkIdentity,
        token: &RefreshToken,
        stored: &StoredSession,
        user: &Arc<instant_client::User>,
    ) {
        if *token != stored.refresh_token {
            self.sign_out_in_background(vec![StoredSession::new(
                identity.user_id.clone(),
                token.clone(),
                Arc::clone(user),
                0,
                0,
            )]);
        }
    }

    /// Whether this Clerk session or user is refused (signed out, ended, deleted).
    async fn is_refused(&self, identity: &ClerkIdentity, now: i64) -> Result<bool, Error> {
        Ok(self.store.is_refused(&refusals(identity), now).await?)
    }

    /// A sign-in that passed the refusal check before a revocation or deletion landed
    /// may store its session after the webhook's operation has cleared the store: check
    /// again once stored, and end the session if it is refused now.
    async fn recheck_refusal(&self, identity: &ClerkIdentity, now: i64) -> Result<(), Error> {
        if !self.is_refused(identity, now).await? {
            return Ok(());
        }
        // Whatever is stored for the refused session goes: ours, or a racing sign-in's
        // that replaced ours (which that sign-in's insert handed back to sign out).
        let ended: Vec<StoredSession> = self
            .store
            .remove(&identity.session_id)
            .await?
            .into_iter()
            .collect();
        self.sign_out_in_background(ended);
        Err(Error::SessionSignedOut)
    }

    /// Records which InstantDB user this Clerk user signed in as.
    async fn link(
        &self,
        identity: &ClerkIdentity,
        user: &instant_client::User,
        now: i64,
    ) -> Result<(), Error> {
        self.store
            .link_user(
                &identity.user_id,
                UserLink::new(user.id, user.email.clone()),
                now,
                now.saturating_add(secs(self.config.user_link_ttl)),
            )
            .await?;
        Ok(())
    }

    /// Asks InstantDB whether the stored session is still good.
    async fn confirm(
        &self,
        token: &str,
        identity: &ClerkIdentity,
        stored: &StoredSession,
    ) -> Result<SignedIn, Error> {
        match &self.config.strategy {
            Strategy::IdToken { client_name } => self
                .instant
                .sign_in_with_id_token(
                    &id_token(token)?,
                    client_name,
                    Some(stored.refresh_token.clone()),
                )
                .await
                .map_err(Error::instant(InstantOp::Confirm)),
            Strategy::Admin => {
                require_verified_email(identity)?;
                let user = self
                    .instant
                    .verify_refresh_token(&stored.refresh_token)
                    .await
                    .map_err(Error::instant(InstantOp::Confirm))?;
                Ok(SignedIn::new(user, stored.refresh_token.clone(), false))
            }
        }
    }

    /// Obtains a new InstantDB session.
    async fn fresh(&self, token: &str, identity: &ClerkIdentity) -> Result<SignedIn, Error> {
        match &self.config.strategy {
            Strategy::IdToken { client_name } => self
                .instant
                .sign_in_with_id_token(&id_token(token)?, client_name, None)
                .await
                .map_err(Error::instant(InstantOp::SignIn)),
            Strategy::Admin => {
                let email = require_verified_email(identity)?;
                self.instant
                    .create_token_for_email(email)
                    .await
                    .map_err(Error::instant(InstantOp::SignIn))
            }
        }
    }

    /// Signs out of both: InstantDB first (the stored session's refresh token, or
    /// `refresh_token` when none is stored and it belongs to the same user), then the
    /// Clerk session through the Backend API, in that order as InstantDB's guide does.
    /// Each half is reported; a failure of one never skips the other.
    pub async fn sign_out(
        &self,
        token: &str,
        refresh_token: Option<RefreshToken>,
    ) -> Result<SignOut, Error> {
        self.sign_out_verified(&self.authenticate(token).await?, refresh_token)
            .await
    }

    /// [`sign_out`](Self::sign_out) for a token [`authenticate`](Self::authenticate)
    /// verified.
    pub async fn sign_out_verified(
        &self,
        token: &Verified<'_>,
        refresh_token: Option<RefreshToken>,
    ) -> Result<SignOut, Error> {
        let identity = token.identity.clone();
        let sid = identity.session_id.clone();
        let stored = self
            .store
            .get(&sid, self.clock.now())
            .await?
            .filter(|s| s.clerk_user_id == identity.user_id);

        // A refresh token named by the client must belong to the same person; someone
        // else's aborts everything. When InstantDB cannot say, the InstantDB half fails
        // and the Clerk half still runs.
        let instant_token = match (&stored, refresh_token) {
            (Some(stored), _) => Ok(Some(stored.refresh_token.clone())),
            (None, Some(given)) => match self.check_ownership(&identity, &given).await {
                Ok(()) => Ok(Some(given)),
                Err(Error::NotYourSession) => return Err(Error::NotYourSession),
                Err(Error::Instant { source, .. }) => Err(source),
                Err(other) => return Err(other),
            },
            (None, None) => Ok(None),
        };
        // From now on, tokens of this session no longer sign in here, even those Clerk
        // still honours until they expire.
        let now = self.clock.now();
        self.store
            .refuse(
                &Refused::Session(sid.clone()),
                now,
                self.refused_until(now, Some(identity.expires_at)),
            )
            .await?;
        // The stored session stays stored until InstantDB has signed its token out: a
        // webhook's `end_session` racing this sign-out then still finds it, and when
        // InstantDB fails, the retry (of either) ends it.
        let instant = match instant_token {
            Err(error) => {
                tracing::warn!(session = %sid, error = &error as &dyn std::error::Error, "could not check the refresh token's owner");
                Half::Failed(HalfError::Instant(error))
            }
            Ok(None) => Half::Skipped("no InstantDB session is known for this Clerk session"),
            Ok(Some(rt)) => match self.instant.sign_out(&rt).await {
                Ok(()) => {
                    if stored.is_some() {
                        self.forget_signed_out(&sid, &rt).await;
                    }
                    Half::Done
                }
                Err(error) => {
                    tracing::warn!(session = %sid, error = &error as &dyn std::error::Error, "InstantDB sign-out failed; the session stays stored for the retry");
                    Half::Failed(HalfError::Instant(error))
                }
            },
        };
        let clerk_session = match &self.clerk {
            None => Half::Skipped(
                "no Clerk secret key is configured, so the Clerk session was not revoked",
            ),
            Some(clerk) => match clerk.revoke_session(&sid).await {
                Ok(()) => Half::Done,
                Err(error) => {
                    tracing::warn!(session = %sid, error = &error as &dyn std::error::Error, "Clerk session revoke failed");
                    Half::Failed(HalfError::Clerk(error))
                }
            },
        };
        Ok(SignOut {
            clerk: identity,
            instant,
            clerk_session,
        })
    }

    /// Drops a session whose token InstantDB just signed out; a session stored since
    /// with another token (a sign-in that passed the refusal check first) is signed out
    /// too. A store failure here leaves a dead token stored, which harms nothing: the
    /// session is refused, and the sweep or a retry drops it.
    async fn forget_signed_out(&self, sid: &str, signed_out: &RefreshToken) {
        match self.store.remove(sid).await {
            Ok(Some(removed)) if removed.refresh_token != *signed_out => {
                self.sign_out_in_background(vec![removed]);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(
                session = %sid,
                error = &error as &dyn std::error::Error,
                "could not drop a signed-out session from the store"
            ),
        }
    }

    /// A refresh token named by the client is signed out only if InstantDB says it
    /// belongs to the same person: the same email.
    async fn check_ownership(
        &self,
        identity: &ClerkIdentity,
        refresh_token: &RefreshToken,
    ) -> Result<(), Error> {
        let user = match self.instant.verify_refresh_token(refresh_token).await {
            Ok(user) => user,
            // Already dead: signing it out again is harmless.
            Err(e) if is_dead_refresh_token(&e) => return Ok(()),
            Err(e) => return Err(Error::instant(InstantOp::SignOut)(e)),
        };
        let same = match (&user.email, &identity.email) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        };
        if same {
            Ok(())
        } else {
            Err(Error::NotYourSession)
        }
    }

    /// Runs an InstaQL query as the user of the Clerk token (InstantDB's permission
    /// rules apply), signing in first if needed. The result tree is as InstantDB sent
    /// it, unparsed: pass it on as is, or `serde_json::from_str(result.get())`.
    pub async fn query(&self, token: &str, query: &Query) -> Result<Box<RawValue>, Error> {
        self.query_verified(&self.authenticate(token).await?, query)
            .await
    }

    /// [`query`](Self::query) for a token [`authenticate`](Self::authenticate) verified.
    pub async fn query_verified(
        &self,
        token: &Verified<'_>,
        query: &Query,
    ) -> Result<Box<RawValue>, Error> {
        let instant = &self.instant;
        self.as_user(token, InstantOp::Query, |rt| async move {
            instant.query_as(&rt, query).await
        })
        .await
    }

    /// Runs a transaction as the user of the Clerk token (InstantDB's permission rules
    /// apply), signing in first if needed.
    pub async fn transact(&self, token: &str, transaction: &Transaction) -> Result<TxId, Error> {
        self.transact_verified(&self.authenticate(token).await?, transaction)
            .await
    }

    /// [`transact`](Self::transact) for a token [`authenticate`](Self::authenticate)
    /// verified.
    pub async fn transact_verified(
        &self,
        token: &Verified<'_>,
        transaction: &Transaction,
    ) -> Result<TxId, Error> {
        let instant = &self.instant;
        self.as_user(token, InstantOp::Transact, |rt| async move {
            instant.transact_as(&rt, transaction).await
        })
        .await
    }

    /// [`query_verified`](Self::query_verified) when the stored session can be used as
    /// is: the result, or `None` when the caller must run `query_verified` (no usable
    /// stored session, or InstantDB no longer knows its token), which may mint a token.
    /// Nothing is minted here, so a caller dropped midway loses nothing: a server answers
    /// most queries with this alone, without the detached task a sign-in needs.
    pub async fn query_stored(
        &self,
        token: &Verified<'_>,
        query: &Query,
    ) -> Result<Option<Box<RawValue>>, Error> {
        let instant = &self.instant;
        self.as_stored_user(token, InstantOp::Query, |rt| async move {
            instant.query_as(&rt, query).await
        })
        .await
    }

    /// [`transact_verified`](Self::transact_verified) when the stored session can be
    /// used as is; `None` as for [`query_stored`](Self::query_stored) (a transaction
    /// InstantDB refused for a dead token was not applied, so running it again through
    /// `transact_verified` is safe).
    pub async fn transact_stored(
        &self,
        token: &Verified<'_>,
        transaction: &Transaction,
    ) -> Result<Option<TxId>, Error> {
        let instant = &self.instant;
        self.as_stored_user(token, InstantOp::Transact, |rt| async move {
            instant.transact_as(&rt, transaction).await
        })
        .await
    }

    /// Runs `call` with the stored session's refresh token when it can be used as is:
    /// fresh, or past its reuse window (the call is InstantDB's check of the token;
    /// `None` when InstantDB no longer knows it).
    async fn as_stored_user<T, F, Fut>(
        &self,
        token: &Verified<'_>,
        op: InstantOp,
        call: F,
    ) -> Result<Option<T>, Error>
    where
        F: FnOnce(RefreshToken) -> Fut,
        Fut: Future<Output = Result<T, instant_client::Error>>,
    {
        // Past its reuse window too: this call is InstantDB's check of the token.
        let Ok(reuse) = self
            .reusable(token.identity.clone(), Judgement::Due)
            .await?
        else {
            return Ok(None);
        };
        let Reuse {
            sign_in: session,
            reconfirm_at,
        } = reuse;
        // The token is cloned only when the call's success is to be recorded.
        let renewal = reconfirm_at.map(|at| (session.refresh_token.clone(), at));
        match call(session.refresh_token).await {
            Err(e) if is_dead_refresh_token(&e) => Ok(None),
            Ok(answer) => {
                if let Some((refresh_token, at)) = renewal {
                    self.reconfirm_in_background(&session.clerk.session_id, refresh_token, at);
                }
                Ok(Some(answer))
            }
            Err(other) => Err(Error::instant(op)(other)),
        }
    }

    /// Runs `call` with the user's refresh token; when InstantDB no longer knows the
    /// token, signs in again once and retries.
    async fn as_user<T, F, Fut>(
        &self,
        token: &Verified<'_>,
        op: InstantOp,
        call: F,
    ) -> Result<T, Error>
    where
        F: Fn(RefreshToken) -> Fut,
        Fut: Future<Output = Result<T, instant_client::Error>>,
    {
        // A stored session past its reuse window serves too: this call checks it.
        let (session, reconfirm_at) = match self
            .reusable(token.identity.clone(), Judgement::Due)
            .await?
        {
            Ok(reuse) => (reuse.sign_in, reuse.reconfirm_at),
            Err(identity) => (self.sign_in_verified(&token.token, identity).await?, None),
        };
        match call(session.refresh_token.clone()).await {
            Err(e) if is_dead_refresh_token(&e) => {
                let session = self.renew(&token.token, session).await?;
                call(session.refresh_token)
                    .await
                    .map_err(Error::instant(op))
            }
            Ok(answer) => {
                if let Some(at) = reconfirm_at {
                    self.reconfirm_in_background(
                        &session.clerk.session_id,
                        session.refresh_token,
                        at,
                    );
                }
                Ok(answer)
            }
            Err(other) => Err(Error::instant(op)(other)),
        }
    }

    /// A call made with a stored session late in or past its reuse window (`at`: when
    /// it was judged so, see [`judge_and_renews`](Self::judge_and_renews)) succeeded:
    /// InstantDB accepted the token then, which is what a sign-in would have asked it.
    /// Recording that starts the session's next window, so an active user's sign-ins
    /// keep finding it fresh and never wait for InstantDB; only a session idle past its
    /// window is confirmed by the sign-in itself. In the background: the answer waits
    /// for nothing, and a failure only leaves the confirmation to the next sign-in.
    fn reconfirm_in_background(&self, session_id: &str, refresh_token: RefreshToken, at: i64) {
        let store = Arc::clone(&self.store);
        let session_id = session_id.to_owned();
        let task = async move {
            if let Err(error) = store.reconfirm(&session_id, &refresh_token, at).await {
                tracing::debug!(
                    session = %session_id,
                    error = &error as &dyn std::error::Error,
                    "could not record InstantDB's acceptance of a stored session; its next sign-in confirms it"
                );
            }
        };
        // Outside a runtime nothing is recorded, which only costs a confirmation.
        let _spawned = self.background.spawn(task);
    }

    /// Drops a session InstantDB refused and signs in again, once.
    async fn renew(&self, token: &str, dead: SignIn) -> Result<SignIn, Error> {
        let sid = dead.clerk.session_id.clone();
        if let Some(stored) = self.store.remove(&sid).await?
            && stored.refresh_token != dead.refresh_token
        {
            self.store.insert(&sid, stored, self.clock.now()).await?;
        }
        self.sign_in_verified(token, dead.clerk).await
    }

    /// Signs out the sessions that expired in the store; returns how many. (With
    /// several replicas sweeping one shared store, each expired session goes to one.)
    pub async fn sweep(&self) -> Result<usize, Error> {
        let mut count = 0;
        loop {
            let expired = self.store.sweep(self.clock.now()).await?;
            if expired.is_empty() {
                return Ok(count);
            }
            count += expired.len();
            self.sign_out_in_background(expired);
        }
    }

    /// Waits for the background sign-outs (of sessions displaced or swept) to finish,
    /// at most `deadline`; returns how many background tasks were still running then
    /// (0: all finished). Nothing is cancelled. Call it at shutdown, after the last
    /// request, so a sign-out the broker started is not dropped.
    pub async fn drain(&self, deadline: Duration) -> usize {
        self.background.drain(deadline).await
    }

    pub(crate) fn sign_out_in_background(&self, sessions: Vec<StoredSession>) {
        if sessions.is_empty() {
            return;
        }
        let instant = Arc::clone(&self.instant);
        let task = async move {
            for session in sessions {
                if let Err(error) = instant.sign_out(&session.refresh_token).await {
                    tracing::warn!(
                        error = &error as &dyn std::error::Error,
                        "could not sign out a displaced InstantDB session"
                    );
                }
            }
        };
        if !self.background.spawn(task) {
            tracing::warn!("no runtime to sign out displaced InstantDB sessions");
        }
    }
}

/// A stored session that serves a caller as is.
struct Reuse {
    sign_in: SignIn,
    /// When it was judged late in or past its reuse window, if it was: a call that
    /// succeeds with it is recorded as InstantDB's confirmation at that time.
    reconfirm_at: Option<i64>,
}

/// A stored session handed back as it is.
fn reused(clerk: ClerkIdentity, stored: StoredSession) -> SignIn {
    SignIn {
        clerk,
        user: stored.user,
        refresh_token: stored.refresh_token,
        created: false,
        reused: true,
    }
}

/// The refusals that stop a token: its Clerk session's and its user's.
fn refusals(identity: &ClerkIdentity) -> [Refused; 2] {
    [
        Refused::Session(identity.session_id.clone()),
        Refused::User(identity.user_id.clone()),
    ]
}

fn id_token(token: &str) -> Result<IdToken, Error> {
    // The token was verified, so this cannot fail in practice.
    IdToken::new(token.to_owned()).map_err(|_| {
        Error::Token(clerk_jwt::Error::Rejected {
            reason: clerk_jwt::Reason::TokenInvalid,
            detail: "the token cannot be forwarded".to_owned(),
        })
    })
}

fn require_verified_email(identity: &ClerkIdentity) -> Result<&str, Error> {
    match (&identity.email, identity.email_verified) {
        (Some(email), Some(true)) => Ok(email),
        _ => Err(Error::EmailNotVerified),
    }
}

/// Whether the token carries a verified email and the stored session's InstantDB user
/// has another (or none).
fn email_differs(identity: &ClerkIdentity, stored: &StoredSession) -> bool {
    match (&identity.email, identity.email_verified) {
        (Some(email), Some(true)) => !stored
            .user
            .email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(email)),
        _ => false,
    }
}
