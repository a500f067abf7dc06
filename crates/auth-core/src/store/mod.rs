//! Where the broker remembers which InstantDB session belongs to which Clerk session.
//!
//! InstantDB refresh tokens never expire and every sign-in without one mints another,
//! so the broker keeps one per Clerk session and reuses it. [`SessionStore`] is the
//! seam; [`MemorySessionStore`] keeps it in one process, and a shared store (the
//! `redis-store` crate) lets several replicas agree.
//!
//! Beside the sessions the store keeps what Clerk's webhooks need: the Clerk user →
//! InstantDB user link written at every sign-in ([`UserLink`]), the Clerk sessions and
//! users refused for a while ([`Refused`]), the webhook message ids being or already
//! processed ([`MessageClaim`]), and the per-session sign-in locks that make one
//! InstantDB call per Clerk session at a time, across replicas.
//!
//! # The contract
//!
//! - Every method is one atomic step on one key (or one scan of a user's sessions), so
//!   a shared store maps each to one command or one short script. No method needs a
//!   lock held across two calls; the broker's operations re-check what they rely on.
//! - Every method can fail with [`StoreError`]: a shared store may be down or slow.
//!   The broker then answers "retry later" and never falls back to another store,
//!   which would split the truth.
//! - Times are clock seconds, passed in (`now`); a store gives every key a lifetime
//!   derived from them, so what it holds is bounded by the live sessions.
//! - A session leaves the store only through [`SessionStore::remove`],
//!   [`SessionStore::sweep`] or a displacement reported in [`Inserted`]: the broker
//!   signs out whatever leaves, so no InstantDB refresh token outlives its entry.

mod memory;

use std::sync::Arc;

use async_trait::async_trait;
use instant_client::{RefreshToken, User, Uuid};

pub use memory::{MemorySessionStore, StoreLimits};

/// One InstantDB session, kept for one Clerk session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StoredSession {
    /// The Clerk user the session belongs to (`sub`).
    pub clerk_user_id: String,
    /// The InstantDB session.
    pub refresh_token: RefreshToken,
    /// The InstantDB user, as InstantDB last returned it.
    pub user: Arc<User>,
    /// When InstantDB last confirmed the refresh token (clock seconds).
    pub confirmed_at: i64,
    /// When the entry stops being used (clock seconds).
    pub expires_at: i64,
}

impl StoredSession {
    /// A session confirmed at `now`, kept until `expires_at`.
    pub fn new(
        clerk_user_id: impl Into<String>,
        refresh_token: RefreshToken,
        user: Arc<User>,
        now: i64,
        expires_at: i64,
    ) -> Self {
        StoredSession {
            clerk_user_id: clerk_user_id.into(),
            refresh_token,
            user,
            confirmed_at: now,
            expires_at,
        }
    }
}

/// The outcome of [`SessionStore::insert`] and [`SessionStore::insert_if_absent`].
#[derive(Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Inserted {
    /// Sessions that left the store because this one replaced them with another token,
    /// or because they had expired: sign their tokens out.
    pub displaced: Vec<StoredSession>,
}

/// The InstantDB user a Clerk user signed in as, recorded at every sign-in that reached
/// InstantDB (Clerk's `user.deleted` carries no email, so this is how the broker finds
/// the InstantDB user to sign out or delete).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserLink {
    /// The InstantDB user id.
    pub instant_user_id: Uuid,
    /// The InstantDB user's email, as InstantDB last returned it.
    pub email: Option<String>,
}

impl UserLink {
    /// The link to this InstantDB user.
    pub fn new(instant_user_id: Uuid, email: Option<String>) -> Self {
        UserLink {
            instant_user_id,
            email,
        }
    }
}

/// A Clerk session or user whose tokens are refused for a while.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refused {
    /// A Clerk session id (`sid`): signed out here, or ended at Clerk.
    Session(String),
    /// A Clerk user id (`sub`): deleted at Clerk.
    User(String),
}

impl Refused {
    /// A stable key for this refusal (`session:<sid>` or `user:<sub>`), for stores.
    pub fn key(&self) -> String {
        match self {
            Refused::Session(id) => format!("session:{id}"),
            Refused::User(id) => format!("user:{id}"),
        }
    }
}

/// The state of a webhook message id, as [`SessionStore::claim_message`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageClaim {
    /// It was free: the caller now holds it and must complete or release it.
    Claimed,
    /// Another delivery of the same message holds it and has not finished.
    InProgress,
    /// It was applied already.
    Done,
}

/// What [`SessionStore::lookup`] found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Lookup {
    /// One of the Clerk sessions or users asked about is refused.
    Refused,
    /// Nothing is refused; the live session stored, if any.
    Found(Option<StoredSession>),
}

/// Why the store could not do what was asked. Nothing was changed unless the variant
/// says so.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached or did not answer in time: retry later. (The
    /// command may or may not have been applied; every broker operation is written to
    /// be retried.)
    #[error("the session store is unavailable")]
    Unavailable {
        /// What failed (the client's error, with no credentials).
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The store holds as many sessions as it may: a new session cannot be kept, so no
    /// new InstantDB session is started (none is evicted either: that would sign a
    /// live user out).
    #[error("the session store is full")]
    Full,
}

impl StoreError {
    /// An [`StoreError::Unavailable`] caused by `source`.
    pub fn unavailable(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Unavailable {
            source: Arc::new(source),
        }
    }
}

/// What a [`SessionStore`] method returns.
pub type StoreResult<T> = Result<T, StoreError>;

/// Sessions by Clerk session id, and what the webhooks need (see the module docs).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The live session stored for a Clerk session (expired entries count as absent).
    async fn get(&self, session_id: &str, now: i64) -> StoreResult<Option<StoredSession>>;

    /// Stores a session, replacing the one stored for `session_id`. When no session is
    /// stored for it and the store is full: [`StoreError::Full`].
    async fn insert(
        &self,
        session_id: &str,
        session: StoredSession,
        now: i64,
    ) -> StoreResult<Inserted>;

    /// Stores a session unless a live one is already stored, in which case that one is
    /// returned (`Ok(Err(existing))`) and nothing changes: two sign-ins racing for one
    /// Clerk session. When the store is full: [`StoreError::Full`].
    async fn insert_if_absent(
        &self,
        session_id: &str,
        session: StoredSession,
        now: i64,
    ) -> StoreResult<Result<Inserted, StoredSession>>;

    /// Whether a new session can be stored now (a full memory store cannot). Checked
    /// before InstantDB is asked for a new session, so a full store mints nothing.
    async fn has_room(&self, now: i64) -> StoreResult<bool>;

    /// Records that InstantDB accepted `refresh_token` at `at` (a query or transaction
    /// made with it succeeded): the stored session's `confirmed_at` moves up to `at`,
    /// only while that token is still the one stored for `session_id` and the entry is
    /// live at `at` (a session replaced, removed or expired meanwhile stays as it is).
    /// Whether it was recorded. Nothing else changes, and nothing is created.
    ///
    /// The default records nothing: every sign-in past its reuse window then asks
    /// InstantDB, as before this method existed.
    async fn reconfirm(
        &self,
        session_id: &str,
        refresh_token: &RefreshToken,
        at: i64,
    ) -> StoreResult<bool> {
        let _ = (session_id, refresh_token, at);
        Ok(false)
    }

    /// Removes and returns the session stored for a Clerk session, expired or not.
    async fn remove(&self, session_id: &str) -> StoreResult<Option<StoredSession>>;

    /// Removes expired sessions and returns them (a shared store may return them in
    /// batches: call again until it returns none). Of several replicas sweeping at
    /// once, each expired session goes to exactly one.
    async fn sweep(&self, now: i64) -> StoreResult<Vec<StoredSession>>;

    /// Every session stored for a Clerk user, expired or not, with its Clerk session
    /// id.
    async fn sessions_of(&self, clerk_user_id: &str) -> StoreResult<Vec<(String, StoredSession)>>;

    /// Records (or refreshes) the InstantDB user of a Clerk user, kept until `until`.
    async fn link_user(
        &self,
        clerk_user_id: &str,
        link: UserLink,
        now: i64,
        until: i64,
    ) -> StoreResult<()>;

    /// The InstantDB user last recorded for a Clerk user, if the record is live.
    async fn user_link(&self, clerk_user_id: &str, now: i64) -> StoreResult<Option<UserLink>>;

    /// Forgets the InstantDB user of a Clerk user.
    async fn unlink_user(&self, clerk_user_id: &str) -> StoreResult<()>;

    /// Refuses a Clerk session or user until `until` (a later `until` wins).
    async fn refuse(&self, who: &Refused, now: i64, until: i64) -> StoreResult<()>;

    /// Whether any of these Clerk sessions or users is refused at `now` (one round
    /// trip for the session and the user of a token).
    async fn is_refused(&self, who: &[Refused], now: i64) -> StoreResult<bool>;

    /// [`is_refused`](Self::is_refused) and, when nothing is refused,
    /// [`get`](Self::get): what every sign-in asks first. A shared store answers both
    /// in one round trip; the default asks them in turn.
    async fn lookup(&self, session_id: &str, who: &[Refused], now: i64) -> StoreResult<Lookup> {
        if self.is_refused(who, now).await? {
            return Ok(Lookup::Refused);
        }
        Ok(Lookup::Found(self.get(session_id, now).await?))
    }

    /// Claims a webhook message id for `holder` atomically: of two deliveries racing,
    /// one gets [`MessageClaim::Claimed`]. A claim not completed or released lapses at
    /// `lease_until` (a crashed claimant does not block Svix's retries forever).
    async fn claim_message(
        &self,
        message_id: &str,
        holder: &str,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<MessageClaim>;

    /// Marks a claimed message applied, remembered until `keep_until`.
    async fn complete_message(
        &self,
        message_id: &str,
        now: i64,
        keep_until: i64,
    ) -> StoreResult<()>;

    /// Gives a claim back if `holder` still holds it (applying failed, or the claim's
    /// answer was lost), so the next delivery applies it; whether it did. A message
    /// done, or claimed by another holder since, stays as it is.
    async fn release_message(&self, message_id: &str, holder: &str) -> StoreResult<bool>;

    /// Takes the sign-in lock of a Clerk session for `holder` until `until`, if no one
    /// else holds it (a lock whose `until` passed is free: a crashed holder blocks the
    /// session no longer). Whether it was taken.
    async fn try_lock(
        &self,
        session_id: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> StoreResult<bool>;

    /// Releases the sign-in lock of a Clerk session if `holder` still holds it.
    async fn unlock(&self, session_id: &str, holder: &str) -> StoreResult<()>;

    /// How many sessions are stored.
    async fn len(&self) -> StoreResult<usize>;

    /// Whether no session is stored.
    async fn is_empty(&self) -> StoreResult<bool> {
        Ok(self.len().await? == 0)
    }

    /// Checks that the store answers (for readiness probes).
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    /// A short name for logs and readiness (`memory`, `redis`).
    fn kind(&self) -> &'static str;
}
