//! What Clerk's decisions do to InstantDB: the operations behind the server's webhook
//! endpoint, in the broker's own terms (Clerk session ids, Clerk user ids, emails).
//!
//! Each operation is idempotent and reports what it did as a typed outcome, never
//! "applied" when it did nothing. When InstantDB fails, the operation returns the
//! error ([`Error::is_retry_later`] says whether a retry may succeed) and leaves the
//! store so that the retry does the remaining work: a session is dropped only once
//! InstantDB signed it out, and the user link only once the policy's admin calls
//! succeeded.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use instant_client::Uuid;

use crate::broker::{LockHolder, SessionBroker, secs};
use crate::error::{Error, InstantOp, is_dead_refresh_token};
use crate::store::{MessageClaim, Refused, StoredSession};

/// What `user.deleted` does to the InstantDB user, after its stored sessions are signed
/// out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UserDeletedPolicy {
    /// Sign out all of the InstantDB user's sessions, then delete the user
    /// (`delete-user`, the default).
    #[default]
    DeleteUser,
    /// Sign out all of the InstantDB user's sessions, keep the user and its data
    /// (`sign-out`).
    SignOut,
    /// Only the sessions this server stored are signed out (`ignore`).
    Ignore,
}

impl UserDeletedPolicy {
    /// Every policy, in documentation order.
    pub const ALL: [UserDeletedPolicy; 3] = [
        UserDeletedPolicy::DeleteUser,
        UserDeletedPolicy::SignOut,
        UserDeletedPolicy::Ignore,
    ];

    /// `delete-user`, `sign-out` or `ignore`.
    pub const fn as_str(self) -> &'static str {
        match self {
            UserDeletedPolicy::DeleteUser => "delete-user",
            UserDeletedPolicy::SignOut => "sign-out",
            UserDeletedPolicy::Ignore => "ignore",
        }
    }
}

impl fmt::Display for UserDeletedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value that names no [`UserDeletedPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown user-deleted policy; expected delete-user, sign-out or ignore")]
#[non_exhaustive]
pub struct UnknownPolicy;

impl FromStr for UserDeletedPolicy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserDeletedPolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim())
            .ok_or(UnknownPolicy)
    }
}

/// What [`SessionBroker::end_session`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEnded {
    /// The stored InstantDB session was signed out and dropped; the Clerk session is
    /// refused.
    SignedOut {
        /// The InstantDB user whose session it was.
        instant_user_id: Uuid,
    },
    /// No InstantDB session was stored for it (never signed in here, or already ended):
    /// only the refusal was recorded, so a sign-in that comes later is refused.
    NothingStored,
}

/// What [`SessionBroker::delete_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserDeleted {
    /// The Clerk user's stored sessions were signed out and the policy applied to the
    /// InstantDB users it signed in as.
    Applied {
        /// The policy applied.
        policy: UserDeletedPolicy,
        /// How many stored InstantDB sessions were signed out.
        sessions_signed_out: usize,
        /// The InstantDB users the policy was applied to.
        instant_users: Vec<Uuid>,
        /// How many of them InstantDB deleted (`delete-user`; 0 otherwise, or when
        /// they were gone already).
        users_deleted: usize,
    },
    /// Nothing is known of this Clerk user here (never signed in, the link expired, the
    /// memory store restarted, or the deletion was applied already): nothing was done
    /// in InstantDB. Log and count it.
    Unmapped,
}

/// What [`SessionBroker::primary_email_changed`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmailChanged {
    /// This many stored sessions belonged to another email and were signed out.
    SignedOut {
        /// How many.
        sessions: usize,
    },
    /// Every stored session of the user already belongs to the new email (or none is
    /// stored): nothing was done.
    Unchanged,
}

/// What [`SessionBroker::claim_delivery`] found.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeliveryClaim {
    /// It was free: this delivery holds it. Apply it, then
    /// [`complete_delivery`](SessionBroker::complete_delivery) (or
    /// [`release_delivery`](SessionBroker::release_delivery) when applying failed).
    Claimed(HeldDelivery),
    /// Another delivery of the same message holds it and has not finished.
    InProgress,
    /// It was applied already.
    Done,
}

/// A webhook message this delivery claimed, under a holder of its own (so that a
/// give-back never frees a claim another delivery took since).
#[derive(Clone)]
pub struct HeldDelivery {
    message_id: String,
    holder: LockHolder,
}

impl HeldDelivery {
    /// The message id.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }
}

/// The message id only: the holder is an internal nonce.
impl fmt::Debug for HeldDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldDelivery")
            .field("message_id", &self.message_id)
            .finish_non_exhaustive()
    }
}

/// The first pause of a background give-back of a claim, doubled up to
/// [`GIVE_BACK_PAUSE_MAX`].
const GIVE_BACK_PAUSE_FIRST: Duration = Duration::from_millis(100);
const GIVE_BACK_PAUSE_MAX: Duration = Duration::from_secs(2);

impl SessionBroker {
    /// A Clerk session ended (`session.ended`, `session.removed`, `session.revoked`):
    /// refuses the Clerk session id for as long as its tokens can be valid (also when
    /// nothing is stored yet, so a sign-in racing or following the revocation fails),
    /// then signs out the stored InstantDB session and drops it.
    pub async fn end_session(&self, clerk_session_id: &str) -> Result<SessionEnded, Error> {
        let now = self.clock.now();
        self.store
            .refuse(
                &Refused::Session(clerk_session_id.to_owned()),
                now,
                self.refused_until(now, None),
            )
            .await?;
        let Some(stored) = self.store.get(clerk_session_id, i64::MIN).await? else {
            return Ok(SessionEnded::NothingStored);
        };
        let instant_user_id = stored.user.id;
        self.end_stored(clerk_session_id, stored).await?;
        tracing::info!(session = %clerk_session_id, instant_user = %instant_user_id, "Clerk session ended; InstantDB session signed out");
        Ok(SessionEnded::SignedOut { instant_user_id })
    }

    /// A Clerk user was deleted (`user.deleted`): refuses the user's tokens for as long
    /// as they can be valid, signs out every stored InstantDB session of the user, then
    /// applies `policy` to the InstantDB users the Clerk user signed in as (by the link
    /// recorded at sign-in and the stored sessions).
    ///
    /// An unknown user is [`UserDeleted::Unmapped`], not applied. InstantDB's own
    /// records (`$oauthUserLinks`, or a `clerkUserId` attribute on `$users`) are not
    /// consulted: the first is undocumented, can move to another user and is absent
    /// under the `admin` strategy; the second needs a schema attribute and an update
    /// rule in the app. A shared store (issue 10) keeps the link across restarts.
    pub async fn delete_user(
        &self,
        clerk_user_id: &str,
        policy: UserDeletedPolicy,
    ) -> Result<UserDeleted, Error> {
        let now = self.clock.now();
        self.store
            .refuse(
                &Refused::User(clerk_user_id.to_owned()),
                now,
                self.refused_until(now, None),
            )
            .await?;
        let sessions = self.store.sessions_of(clerk_user_id).await?;
        let link = self.store.user_link(clerk_user_id, now).await?;
        if sessions.is_empty() && link.is_none() {
            tracing::warn!(clerk_user = %clerk_user_id, "Clerk user deleted, but no InstantDB user is known for it");
            return Ok(UserDeleted::Unmapped);
        }
        let mut users: BTreeSet<Uuid> = link.iter().map(|l| l.instant_user_id).collect();
        users.extend(sessions.iter().map(|(_, s)| s.user.id));
        let sessions_signed_out = sessions.len();
        for (sid, session) in sessions {
            self.end_stored(&sid, session).await?;
        }
        let mut users_deleted = 0;
        if policy != UserDeletedPolicy::Ignore {
            for &user in &users {
                match self.instant.sign_out_user(user).await {
                    Ok(()) => {}
                    // Gone already (a retry after the deletion succeeded).
                    Err(e) if is_dead_refresh_token(&e) => {}
                    Err(e) => return Err(Error::instant(InstantOp::SignOutUser)(e)),
                }
                if policy == UserDeletedPolicy::DeleteUser
                    && self
                        .instant
                        .delete_user(user)
                        .await
                        .map_err(Error::instant(InstantOp::DeleteUser))?
                {
                    users_deleted += 1;
                }
            }
        }
        self.store.unlink_user(clerk_user_id).await?;
        let instant_users: Vec<Uuid> = users.into_iter().collect();
        tracing::info!(clerk_user = %clerk_user_id, policy = %policy, sessions = sessions_signed_out, users_deleted, "Clerk user deleted; InstantDB brought in step");
        Ok(UserDeleted::Applied {
            policy,
            sessions_signed_out,
            instant_users,
            users_deleted,
        })
    }

    /// A Clerk user's primary email changed (`user.updated`): the user's stored
    /// sessions whose InstantDB user has another email are signed out and dropped, so
    /// the next sign-in follows the new email.
    pub async fn primary_email_changed(
        &self,
        clerk_user_id: &str,
        new_email: &str,
    ) -> Result<EmailChanged, Error> {
        let stale: Vec<(String, StoredSession)> = self
            .store
            .sessions_of(clerk_user_id)
            .await?
            .into_iter()
            .filter(|(_, s)| {
                !s.user
                    .email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(new_email))
            })
            .collect();
        if stale.is_empty() {
            return Ok(EmailChanged::Unchanged);
        }
        let sessions = stale.len();
        for (sid, session) in stale {
            self.end_stored(&sid, session).await?;
        }
        tracing::info!(clerk_user = %clerk_user_id, sessions, "primary email changed; sessions of the old email signed out");
        Ok(EmailChanged::SignedOut { sessions })
    }

    /// Claims a webhook message id: [`MessageClaim::Claimed`] means apply it, then
    /// [`complete_delivery`](Self::complete_delivery) (or
    /// [`release_delivery`](Self::release_delivery) when applying failed); the others
    /// mean a duplicate (answer 2xx, do nothing; `InProgress` may also be answered
    /// with a retryable status, since the first delivery may still fail).
    ///
    /// When the store fails, the claim may have been written all the same (a Redis
    /// that hung runs what it was sent once it answers again, after the caller gave
    /// up): it is given back in the background as soon as the store answers, so it
    /// does not hold off Svix's retries for `delivery_lease`.
    pub async fn claim_delivery(&self, message_id: &str) -> Result<DeliveryClaim, Error> {
        let now = self.clock.now();
        let held = HeldDelivery {
            message_id: message_id.to_owned(),
            holder: LockHolder::new(),
        };
        let lease_until = now.saturating_add(secs(self.config.delivery_lease));
        match self
            .store
            .claim_message(message_id, held.holder.as_str(), now, lease_until)
            .await
        {
            Ok(MessageClaim::Claimed) => Ok(DeliveryClaim::Claimed(held)),
            Ok(MessageClaim::InProgress) => Ok(DeliveryClaim::InProgress),
            Ok(MessageClaim::Done) => Ok(DeliveryClaim::Done),
            Err(error) => {
                self.give_back_in_background(held);
                Err(error.into())
            }
        }
    }

    /// Marks a claimed message applied; duplicates are recognised for
    /// `delivery_retention` (28 hours by default). When the store fails, the effect
    /// stands but a redelivery may apply it again (every operation is idempotent):
    /// answer "retry later", since the delivery is not yet durable as done (the claim
    /// is then given back in the background, so the retry is not held off; a message
    /// recorded done after all stays done).
    pub async fn complete_delivery(&self, held: &HeldDelivery) -> Result<(), Error> {
        let now = self.clock.now();
        if let Err(error) = self
            .store
            .complete_message(
                &held.message_id,
                now,
                now.saturating_add(secs(self.config.delivery_retention)),
            )
            .await
        {
            self.give_back_in_background(held.clone());
            return Err(error.into());
        }
        Ok(())
    }

    /// Gives a claim back after applying failed, so Svix's retry is applied. When the
    /// store fails here too, it is given back in the background once the store
    /// answers (or lapses after `delivery_lease`).
    pub async fn release_delivery(&self, held: HeldDelivery) -> Result<(), Error> {
        if let Err(error) = self
            .store
            .release_message(&held.message_id, held.holder.as_str())
            .await
        {
            self.give_back_in_background(held);
            return Err(error.into());
        }
        Ok(())
    }

    /// Gives a claim back once the store answers: retried with backoff until it does,
    /// or until the claim would have lapsed anyway. Only this holder's claim is freed.
    fn give_back_in_background(&self, held: HeldDelivery) {
        let store = std::sync::Arc::clone(&self.store);
        // Past the lease the claim has lapsed by itself.
        let give_up = tokio::time::Instant::now() + self.config.delivery_lease;
        let task = async move {
            let mut pause = GIVE_BACK_PAUSE_FIRST;
            while tokio::time::Instant::now() < give_up {
                match store
                    .release_message(&held.message_id, held.holder.as_str())
                    .await
                {
                    Ok(released) => {
                        if released {
                            tracing::info!(
                                message = %held.message_id,
                                "gave back a Clerk webhook claim whose answer was lost"
                            );
                        }
                        return;
                    }
                    Err(_) => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(GIVE_BACK_PAUSE_MAX);
                    }
                }
            }
        };
        if !self.background.spawn(task) {
            tracing::warn!("no runtime to give back a Clerk webhook claim; it lapses by itself");
        }
    }

    /// Signs out one stored session, then drops it. When InstantDB fails the session
    /// stays stored for the retry. A newer session stored meanwhile is signed out too.
    async fn end_stored(&self, session_id: &str, session: StoredSession) -> Result<(), Error> {
        match self.instant.sign_out(&session.refresh_token).await {
            Ok(()) => {}
            Err(e) if is_dead_refresh_token(&e) => {}
            Err(e) => {
                tracing::warn!(session = %session_id, error = &e as &dyn std::error::Error, "InstantDB sign-out failed; kept for the retry");
                return Err(Error::instant(InstantOp::SignOut)(e));
            }
        }
        if let Some(removed) = self.store.remove(session_id).await?
            && removed.refresh_token != session.refresh_token
        {
            self.sign_out_in_background(vec![removed]);
        }
        Ok(())
    }
}
