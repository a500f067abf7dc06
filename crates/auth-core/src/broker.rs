//! The broker: Clerk token in, InstantDB session out; sign-out of both.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use clerk_jwt::{Clock, SystemClock};
use instant_client::{IdToken, Query, RefreshToken, SignedIn, Transaction, TxId};
use serde_json::Value;

use crate::background::Background;
use crate::error::{Error, InstantOp, is_dead_refresh_token};
use crate::ports::{ClerkSessions, InstantAuth, TokenVerifier};
use crate::session::{
    BrokerConfig, ClerkIdentity, Half, HalfError, SignIn, SignOut, Strategy, Verified,
};
use crate::store::{Refused, SessionStore, StoredSession, UserLink};

pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// How long a Clerk session or user stays refused after it was signed out, ended or
/// deleted: a session token lives 60 s at Clerk and the verifier's leeway adds at most
/// 30 s, so no token minted before that moment is valid after it.
pub(crate) const TOKEN_LIFETIME_BOUND: i64 = 60 + 30;

/// Turns Clerk sessions into InstantDB sessions. Cheap to clone.
#[derive(Clone)]
pub struct SessionBroker {
    verifier: Arc<dyn TokenVerifier>,
    pub(crate) instant: Arc<dyn InstantAuth>,
    clerk: Option<Arc<dyn ClerkSessions>>,
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: BrokerConfig,
    background: Arc<Background>,
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
            token,
            identity: self.identify(token).await?,
        })
    }

    /// The InstantDB session stored for a Clerk session, if any (no InstantDB call).
    pub async fn stored_session(&self, identity: &ClerkIdentity) -> Option<StoredSession> {
        self.store
            .get(&identity.session_id, self.clock.now())
            .await
            .filter(|s| s.clerk_user_id == identity.user_id)
    }

    /// Signs in: verifies the Clerk token locally (a bad token never reaches InstantDB),
    /// then returns the InstantDB session of this Clerk session, reusing the stored one.
    pub async fn sign_in(&self, token: &str) -> Result<SignIn, Error> {
        let claims = self.verifier.verify(token).await?;
        let identity = ClerkIdentity::from(&claims);
        self.sign_in_verified(token, identity).await
    }

    async fn sign_in_verified(
        &self,
        token: &str,
        identity: ClerkIdentity,
    ) -> Result<SignIn, Error> {
        let sid = identity.session_id.clone();
        let now = self.clock.now();
        if self.is_refused(&identity, now).await {
            return Err(Error::SessionSignedOut);
        }
        if let Some(stored) = self.store.get(&sid, now).await {
            let email_differs = email_differs(&identity, &stored);
            if stored.clerk_user_id != identity.user_id
                || (email_differs && self.config.strategy == Strategy::Admin)
            {
                // A session id never changes hands in Clerk; drop the inconsistent entry.
                // Admin strategy: the session was minted for another email (the Clerk
                // user's primary email changed), so it is not this token's any more.
                if let Some(stale) = self.store.remove(&sid).await {
                    self.sign_out_in_background(vec![stale]);
                }
            } else if !email_differs
                && now.saturating_sub(stored.confirmed_at) < secs(self.config.revalidate_after)
            {
                return Ok(SignIn {
                    clerk: identity,
                    user: stored.user,
                    refresh_token: stored.refresh_token,
                    created: false,
                    reused: true,
                });
            } else {
                match self.confirm(token, &identity, &stored).await {
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
                        let inserted = self.store.insert(&sid, session, now).await;
                        self.sign_out_in_background(inserted.displaced);
                        self.link(&identity, &user, now).await;
                        self.recheck_refusal(&identity, now).await?;
                        return Ok(SignIn {
                            clerk: identity,
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
                        self.store.remove(&sid).await;
                    }
                    Err(other) => return Err(other),
                }
            }
        }

        let signed = self.fresh(token, &identity).await?;
        let user = Arc::new(signed.user);
        let session = StoredSession::new(
            identity.user_id.clone(),
            signed.refresh_token.clone(),
            Arc::clone(&user),
            now,
            now.saturating_add(secs(self.config.session_ttl)),
        );
        match self.store.insert_if_absent(&sid, session, now).await {
            Ok(inserted) => {
                self.sign_out_in_background(inserted.displaced);
                self.link(&identity, &user, now).await;
                self.recheck_refusal(&identity, now).await?;
                Ok(SignIn {
                    clerk: identity,
                    user,
                    refresh_token: signed.refresh_token,
                    created: signed.created,
                    reused: false,
                })
            }
            Err(existing) => {
                // Another sign-in of the same Clerk session stored its token first: use
                // that one and end ours, so tokens do not pile up.
                if existing.refresh_token != signed.refresh_token {
                    self.sign_out_in_background(vec![StoredSession::new(
                        identity.user_id.clone(),
                        signed.refresh_token,
                        user,
                        now,
                        now,
                    )]);
                }
                Ok(SignIn {
                    clerk: identity,
                    user: existing.user,
                    refresh_token: existing.refresh_token,
                    created: false,
                    reused: true,
                })
            }
        }
    }

    /// Whether this Clerk session or user is refused (signed out, ended, deleted).
    async fn is_refused(&self, identity: &ClerkIdentity, now: i64) -> bool {
        self.store
            .is_refused(&Refused::Session(identity.session_id.clone()), now)
            .await
            || self
                .store
                .is_refused(&Refused::User(identity.user_id.clone()), now)
                .await
    }

    /// A sign-in that passed the refusal check before a revocation or deletion landed
    /// may store its session after the webhook's operation has cleared the store: check
    /// again once stored, and end the session if it is refused now.
    async fn recheck_refusal(&self, identity: &ClerkIdentity, now: i64) -> Result<(), Error> {
        if !self.is_refused(identity, now).await {
            return Ok(());
        }
        // Whatever is stored for the refused session goes: ours, or a racing sign-in's
        // that replaced ours (which that sign-in's insert handed back to sign out).
        let ended: Vec<StoredSession> = self
            .store
            .remove(&identity.session_id)
            .await
            .into_iter()
            .collect();
        self.sign_out_in_background(ended);
        Err(Error::SessionSignedOut)
    }

    /// Records which InstantDB user this Clerk user signed in as.
    async fn link(&self, identity: &ClerkIdentity, user: &instant_client::User, now: i64) {
        self.store
            .link_user(
                &identity.user_id,
                UserLink::new(user.id, user.email.clone()),
                now,
                now.saturating_add(secs(self.config.user_link_ttl)),
            )
            .await;
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
            .await
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
                now + TOKEN_LIFETIME_BOUND,
            )
            .await;
        if stored.is_some() {
            self.store.remove(&sid).await;
        }
        let instant = match instant_token {
            Err(error) => {
                tracing::warn!(session = %sid, error = &error as &dyn std::error::Error, "could not check the refresh token's owner");
                Half::Failed(HalfError::Instant(error))
            }
            Ok(None) => Half::Skipped("no InstantDB session is known for this Clerk session"),
            Ok(Some(rt)) => match self.instant.sign_out(&rt).await {
                Ok(()) => Half::Done,
                Err(error) => {
                    // Keep the session so a retried sign-out can end it.
                    if let Some(stored) = stored {
                        self.store.insert(&sid, stored, self.clock.now()).await;
                    }
                    tracing::warn!(session = %sid, error = &error as &dyn std::error::Error, "InstantDB sign-out failed");
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
    /// rules apply), signing in first if needed.
    pub async fn query(&self, token: &str, query: &Query) -> Result<Value, Error> {
        self.query_verified(&self.authenticate(token).await?, query)
            .await
    }

    /// [`query`](Self::query) for a token [`authenticate`](Self::authenticate) verified.
    pub async fn query_verified(
        &self,
        token: &Verified<'_>,
        query: &Query,
    ) -> Result<Value, Error> {
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
        let session = self
            .sign_in_verified(token.token, token.identity.clone())
            .await?;
        match call(session.refresh_token.clone()).await {
            Err(e) if is_dead_refresh_token(&e) => {
                let session = self.renew(token.token, session).await?;
                call(session.refresh_token)
                    .await
                    .map_err(Error::instant(op))
            }
            other => other.map_err(Error::instant(op)),
        }
    }

    /// Drops a session InstantDB refused and signs in again, once.
    async fn renew(&self, token: &str, dead: SignIn) -> Result<SignIn, Error> {
        let sid = dead.clerk.session_id.clone();
        if let Some(stored) = self.store.remove(&sid).await
            && stored.refresh_token != dead.refresh_token
        {
            self.store.insert(&sid, stored, self.clock.now()).await;
        }
        self.sign_in_verified(token, dead.clerk).await
    }

    /// Signs out the sessions that expired in the store; returns how many.
    pub async fn sweep(&self) -> usize {
        let expired = self.store.sweep(self.clock.now()).await;
        let count = expired.len();
        self.sign_out_in_background(expired);
        count
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
