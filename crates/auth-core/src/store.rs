//! Where the broker remembers which InstantDB session belongs to which Clerk session.
//!
//! InstantDB refresh tokens never expire and every sign-in without one mints another,
//! so the broker keeps one per Clerk session and reuses it. [`SessionStore`] is the
//! seam (a shared store such as Redis fits behind it); [`MemorySessionStore`] is the
//! bounded in-memory one: entries expire, the oldest are evicted when it is full, and
//! whatever leaves the store is handed back so the broker can sign its token out.
//!
//! Beside the sessions the store keeps what Clerk's webhooks need: the Clerk user →
//! InstantDB user link written at every sign-in ([`UserLink`]), the Clerk sessions and
//! users refused for a while ([`Refused`]), and the webhook message ids being or
//! already processed ([`MessageClaim`]).
//!
//! # Shaped for a shared store
//!
//! Every method is one atomic step on one key (or one scan of a user's sessions), so a
//! Redis implementation maps each to one command or one short script: `get`/`insert`
//! to `GET`/`SET`, `insert_if_absent` to `SET NX` (or a script comparing expiry),
//! `remove` to `GETDEL`, `sessions_of` to a per-user set of session ids, the links and
//! refusals to keys with a TTL, `claim_message` to `SET NX PX` (the lease),
//! `complete_message` to `SET EX` (the retention), `release_message` to `DEL`. No
//! method needs a lock held across two calls; the broker's operations are written to
//! stay correct when another instance interleaves (each re-checks what it relies on).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use instant_client::{RefreshToken, User, Uuid};

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

/// The outcome of [`SessionStore::insert`].
#[derive(Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Inserted {
    /// Sessions that left the store to make room or that were replaced by one with
    /// another token: sign their tokens out.
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
    fn key(&self) -> String {
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

/// Sessions by Clerk session id, and what the webhooks need (see the module docs).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The live session stored for a Clerk session (expired entries count as absent).
    async fn get(&self, session_id: &str, now: i64) -> Option<StoredSession>;

    /// Stores a session, replacing the one stored for `session_id`.
    async fn insert(&self, session_id: &str, session: StoredSession, now: i64) -> Inserted;

    /// Stores a session unless a live one is already stored, in which case that one is
    /// returned and nothing changes (two sign-ins racing for one Clerk session).
    async fn insert_if_absent(
        &self,
        session_id: &str,
        session: StoredSession,
        now: i64,
    ) -> Result<Inserted, StoredSession>;

    /// Removes and returns the session stored for a Clerk session, expired or not.
    async fn remove(&self, session_id: &str) -> Option<StoredSession>;

    /// Removes expired sessions and returns them.
    async fn sweep(&self, now: i64) -> Vec<StoredSession>;

    /// Every session stored for a Clerk user, expired or not, with its Clerk session
    /// id.
    async fn sessions_of(&self, clerk_user_id: &str) -> Vec<(String, StoredSession)>;

    /// Records (or refreshes) the InstantDB user of a Clerk user, kept until `until`.
    async fn link_user(&self, clerk_user_id: &str, link: UserLink, now: i64, until: i64);

    /// The InstantDB user last recorded for a Clerk user, if the record is live.
    async fn user_link(&self, clerk_user_id: &str, now: i64) -> Option<UserLink>;

    /// Forgets the InstantDB user of a Clerk user.
    async fn unlink_user(&self, clerk_user_id: &str);

    /// Refuses a Clerk session or user until `until` (a later `until` wins).
    async fn refuse(&self, who: &Refused, now: i64, until: i64);

    /// Whether a Clerk session or user is refused at `now`.
    async fn is_refused(&self, who: &Refused, now: i64) -> bool;

    /// Claims a webhook message id atomically: of two deliveries racing, one gets
    /// [`MessageClaim::Claimed`]. A claim not completed or released lapses at
    /// `lease_until` (a crashed claimant does not block Svix's retries forever).
    async fn claim_message(&self, message_id: &str, now: i64, lease_until: i64) -> MessageClaim;

    /// Marks a claimed message applied, remembered until `keep_until`.
    async fn complete_message(&self, message_id: &str, keep_until: i64);

    /// Gives a claim back (applying failed), so the next delivery applies it.
    async fn release_message(&self, message_id: &str);

    /// How many sessions are stored.
    async fn len(&self) -> usize;

    /// Whether no session is stored.
    async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}

/// Limits of a [`MemorySessionStore`]. (Each entry carries its own expiry, set by the
/// broker.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreLimits {
    /// The most sessions kept; the oldest go first. The user links and the refusals
    /// have the same limit each. Default 100,000.
    pub max_entries: usize,
    /// The most webhook message ids remembered; the oldest go first. Default 100,000.
    pub max_messages: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_entries: 100_000,
            max_messages: 100_000,
        }
    }
}

impl StoreLimits {
    /// Sets the entry limit (at least 1).
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(1);
        self
    }

    /// Sets the message id limit (at least 1).
    pub fn max_messages(mut self, max: usize) -> Self {
        self.max_messages = max.max(1);
        self
    }
}

/// A bounded map whose entries expire: when full, expired entries are purged, then the
/// oldest inserted go first.
struct Expiring<V> {
    entries: HashMap<String, (V, i64, u64)>,
    order: VecDeque<(String, u64)>,
    generation: u64,
}

impl<V> Default for Expiring<V> {
    fn default() -> Self {
        Expiring {
            entries: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
        }
    }
}

impl<V> Expiring<V> {
    fn get(&self, key: &str, now: i64) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|(_, until, _)| *until > now)
            .map(|(v, _, _)| v)
    }

    fn get_mut(&mut self, key: &str) -> Option<(&mut V, &mut i64)> {
        self.entries.get_mut(key).map(|(v, until, _)| (v, until))
    }

    fn insert(&mut self, key: &str, value: V, until: i64, now: i64, max: usize) {
        if !self.entries.contains_key(key) && self.entries.len() >= max {
            self.entries.retain(|_, (_, until, _)| *until > now);
            while self.entries.len() >= max {
                let Some((old, generation)) = self.order.pop_front() else {
                    break;
                };
                if self
                    .entries
                    .get(&old)
                    .is_some_and(|(_, _, g)| *g == generation)
                {
                    self.entries.remove(&old);
                }
            }
        }
        self.generation += 1;
        let generation = self.generation;
        self.order.push_back((key.to_owned(), generation));
        self.entries
            .insert(key.to_owned(), (value, until, generation));
        if self.order.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.order
                .retain(|(k, g)| entries.get(k).is_some_and(|(_, _, current)| current == g));
        }
    }

    fn remove(&mut self, key: &str) -> Option<V> {
        self.entries.remove(key).map(|(v, _, _)| v)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A message id's state in the memory store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    Claimed,
    Done,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, (StoredSession, u64)>,
    /// Insertion order, for eviction: `(session id, generation)`; stale pairs (whose
    /// generation no longer matches the entry) are skipped and compacted away.
    order: VecDeque<(String, u64)>,
    generation: u64,
}

impl Inner {
    fn push(&mut self, session_id: &str, session: StoredSession) -> Option<StoredSession> {
        self.generation += 1;
        let generation = self.generation;
        self.order.push_back((session_id.to_owned(), generation));
        let previous = self
            .entries
            .insert(session_id.to_owned(), (session, generation))
            .map(|(s, _)| s);
        if self.order.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.order
                .retain(|(id, g)| entries.get(id).is_some_and(|(_, current)| current == g));
        }
        previous
    }

    fn evict_oldest(&mut self) -> Option<StoredSession> {
        while let Some((id, generation)) = self.order.pop_front() {
            if self
                .entries
                .get(&id)
                .is_some_and(|(_, current)| *current == generation)
            {
                return self.entries.remove(&id).map(|(s, _)| s);
            }
        }
        None
    }

    fn make_room(&mut self, max: usize, displaced: &mut Vec<StoredSession>) {
        while self.entries.len() >= max {
            match self.evict_oldest() {
                Some(old) => displaced.push(old),
                None => break,
            }
        }
    }
}

#[derive(Default)]
struct Webhooks {
    links: Expiring<UserLink>,
    refused: Expiring<()>,
    messages: Expiring<Message>,
}

/// A bounded in-memory [`SessionStore`]. Cheap to clone; clones share the entries.
///
/// Everything is lost at a restart: the user links too, so a `user.deleted` for a user
/// who signed in before the restart finds no link (the broker reports it `Unmapped`).
#[derive(Clone, Default)]
pub struct MemorySessionStore {
    inner: Arc<Mutex<Inner>>,
    webhooks: Arc<Mutex<Webhooks>>,
    limits: StoreLimits,
}

impl std::fmt::Debug for MemorySessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySessionStore")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl MemorySessionStore {
    /// A store with these limits.
    pub fn new(limits: StoreLimits) -> Self {
        MemorySessionStore {
            inner: Arc::default(),
            webhooks: Arc::default(),
            limits,
        }
    }

    /// The limits.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn webhooks(&self) -> std::sync::MutexGuard<'_, Webhooks> {
        self.webhooks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many webhook message ids are remembered (claimed or done).
    pub fn remembered_messages(&self) -> usize {
        self.webhooks().messages.len()
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn get(&self, session_id: &str, now: i64) -> Option<StoredSession> {
        let inner = self.lock();
        let (session, _) = inner.entries.get(session_id)?;
        (session.expires_at > now).then(|| session.clone())
    }

    async fn insert(&self, session_id: &str, session: StoredSession, now: i64) -> Inserted {
        let mut inner = self.lock();
        let mut displaced = Vec::new();
        if !inner.entries.contains_key(session_id) {
            inner.make_room(self.limits.max_entries, &mut displaced);
        }
        let token = session.refresh_token.clone();
        if let Some(previous) = inner.push(session_id, session)
            && (previous.refresh_token != token || previous.expires_at <= now)
        {
            displaced.push(previous);
        }
        Inserted { displaced }
    }

    async fn insert_if_absent(
        &self,
        session_id: &str,
        session: StoredSession,
        now: i64,
    ) -> Result<Inserted, StoredSession> {
        let mut inner = self.lock();
        let mut displaced = Vec::new();
        match inner.entries.get(session_id) {
            Some((existing, _)) if existing.expires_at > now => return Err(existing.clone()),
            Some(_) => {}
            None => inner.make_room(self.limits.max_entries, &mut displaced),
        }
        if let Some(expired) = inner.push(session_id, session) {
            displaced.push(expired);
        }
        Ok(Inserted { displaced })
    }

    async fn remove(&self, session_id: &str) -> Option<StoredSession> {
        self.lock().entries.remove(session_id).map(|(s, _)| s)
    }

    async fn sweep(&self, now: i64) -> Vec<StoredSession> {
        let mut inner = self.lock();
        let expired: Vec<String> = inner
            .entries
            .iter()
            .filter(|(_, (s, _))| s.expires_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|id| inner.entries.remove(&id).map(|(s, _)| s))
            .collect()
    }

    async fn sessions_of(&self, clerk_user_id: &str) -> Vec<(String, StoredSession)> {
        // A scan: webhooks are rare and the store is bounded. A shared store keeps a set
        // of session ids per user instead.
        self.lock()
            .entries
            .iter()
            .filter(|(_, (s, _))| s.clerk_user_id == clerk_user_id)
            .map(|(id, (s, _))| (id.clone(), s.clone()))
            .collect()
    }

    async fn link_user(&self, clerk_user_id: &str, link: UserLink, now: i64, until: i64) {
        let max = self.limits.max_entries;
        self.webhooks()
            .links
            .insert(clerk_user_id, link, until, now, max);
    }

    async fn user_link(&self, clerk_user_id: &str, now: i64) -> Option<UserLink> {
        self.webhooks().links.get(clerk_user_id, now).cloned()
    }

    async fn unlink_user(&self, clerk_user_id: &str) {
        self.webhooks().links.remove(clerk_user_id);
    }

    async fn refuse(&self, who: &Refused, now: i64, until: i64) {
        let key = who.key();
        let mut webhooks = self.webhooks();
        if let Some((_, current)) = webhooks.refused.get_mut(&key) {
            *current = (*current).max(until);
            return;
        }
        webhooks
            .refused
            .insert(&key, (), until, now, self.limits.max_entries);
    }

    async fn is_refused(&self, who: &Refused, now: i64) -> bool {
        self.webhooks().refused.get(&who.key(), now).is_some()
    }

    async fn claim_message(&self, message_id: &str, now: i64, lease_until: i64) -> MessageClaim {
        let mut webhooks = self.webhooks();
        match webhooks.messages.get(message_id, now) {
            Some(Message::Done) => MessageClaim::Done,
            Some(Message::Claimed) => MessageClaim::InProgress,
            None => {
                webhooks.messages.insert(
                    message_id,
                    Message::Claimed,
                    lease_until,
                    now,
                    self.limits.max_messages,
                );
                MessageClaim::Claimed
            }
        }
    }

    async fn complete_message(&self, message_id: &str, keep_until: i64) {
        let mut webhooks = self.webhooks();
        match webhooks.messages.get_mut(message_id) {
            Some((state, until)) => {
                *state = Message::Done;
                *until = keep_until;
            }
            None => webhooks.messages.insert(
                message_id,
                Message::Done,
                keep_until,
                i64::MIN,
                self.limits.max_messages,
            ),
        }
    }

    async fn release_message(&self, message_id: &str) {
        let mut webhooks = self.webhooks();
        if webhooks
            .messages
            .get_mut(message_id)
            .is_some_and(|(state, _)| *state == Message::Claimed)
        {
            webhooks.messages.remove(message_id);
        }
    }

    async fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use instant_client::Uuid;

    fn session(token: &str, now: i64, ttl: i64) -> StoredSession {
        StoredSession::new(
            "user_1",
            RefreshToken::new(token).unwrap(),
            Arc::new(User::new(Uuid::nil())),
            now,
            now + ttl,
        )
    }

    fn token(n: u32) -> String {
        format!("00000000-0000-4000-8000-{n:012}")
    }

    #[tokio::test]
    async fn entries_expire() {
        let store = MemorySessionStore::new(StoreLimits::default());
        store
            .insert("sess_a", session(&token(1), 100, 10), 100)
            .await;
        assert!(store.get("sess_a", 109).await.is_some());
        assert!(store.get("sess_a", 110).await.is_none());
        let swept = store.sweep(110).await;
        assert_eq!(swept.len(), 1);
        assert_eq!(store.len().await, 0);
    }

    #[tokio::test]
    async fn the_oldest_are_evicted_and_handed_back() {
        let store = MemorySessionStore::new(StoreLimits::default().max_entries(3));
        for i in 0..3 {
            let out = store
                .insert(&format!("sess_{i}"), session(&token(i), 0, 100), 0)
                .await;
            assert!(out.displaced.is_empty());
        }
        let out = store.insert("sess_3", session(&token(3), 0, 100), 0).await;
        assert_eq!(out.displaced.len(), 1);
        assert_eq!(out.displaced[0].refresh_token.expose(), token(0));
        assert!(store.get("sess_0", 0).await.is_none());
        assert_eq!(store.len().await, 3);
    }

    #[tokio::test]
    async fn memory_stays_bounded_under_churn() {
        let store = MemorySessionStore::new(StoreLimits::default().max_entries(100));
        for i in 0..10_000u32 {
            // Replacing the same few ids over and over must not grow the order queue.
            store
                .insert(&format!("sess_{}", i % 150), session(&token(i), 0, 100), 0)
                .await;
        }
        assert_eq!(store.len().await, 100);
        assert!(store.lock().order.len() <= 2 * 100 + 64 + 1);
    }

    #[tokio::test]
    async fn replacing_with_another_token_displaces_the_old_one() {
        let store = MemorySessionStore::new(StoreLimits::default());
        store.insert("sess_a", session(&token(1), 0, 100), 0).await;
        let same = store.insert("sess_a", session(&token(1), 5, 100), 5).await;
        assert!(same.displaced.is_empty(), "same token: nothing to sign out");
        let other = store.insert("sess_a", session(&token(2), 6, 100), 6).await;
        assert_eq!(other.displaced[0].refresh_token.expose(), token(1));
    }

    #[tokio::test]
    async fn insert_if_absent_keeps_the_first_live_session() {
        let store = MemorySessionStore::new(StoreLimits::default());
        assert!(
            store
                .insert_if_absent("sess_a", session(&token(1), 0, 10), 0)
                .await
                .is_ok()
        );
        let lost = store
            .insert_if_absent("sess_a", session(&token(2), 1, 10), 1)
            .await;
        assert_eq!(lost.unwrap_err().refresh_token.expose(), token(1));
        // Once expired, the slot is free again and the expired one is handed back.
        let won = store
            .insert_if_absent("sess_a", session(&token(3), 20, 10), 20)
            .await
            .unwrap();
        assert_eq!(won.displaced[0].refresh_token.expose(), token(1));
    }

    #[tokio::test]
    async fn message_ids_stay_bounded_oldest_first_and_expired_first() {
        let store = MemorySessionStore::new(StoreLimits::default().max_messages(3));
        for i in 0..3 {
            let id = format!("msg_{i}");
            assert_eq!(
                store.claim_message(&id, 0, 100).await,
                MessageClaim::Claimed
            );
            store.complete_message(&id, 1000).await;
        }
        // Full: the oldest goes to make room.
        store.claim_message("msg_3", 0, 100).await;
        assert_eq!(store.remembered_messages(), 3);
        assert_eq!(
            store.claim_message("msg_1", 0, 100).await,
            MessageClaim::Done
        );
        assert_eq!(
            store.claim_message("msg_0", 0, 100).await,
            MessageClaim::Claimed,
            "evicted"
        );
        // (That claim evicted msg_1, the oldest then.) Full again, with expired
        // entries (msg_3's and msg_0's leases): those go first, msg_2 stays.
        store.claim_message("msg_4", 200, 300).await;
        assert_eq!(store.remembered_messages(), 2);
        assert_eq!(
            store.claim_message("msg_2", 200, 300).await,
            MessageClaim::Done
        );
        assert!(store.remembered_messages() <= 3);
    }

    #[tokio::test]
    async fn links_and_refusals_expire_and_a_later_refusal_wins() {
        let store = MemorySessionStore::new(StoreLimits::default());
        let link = UserLink::new(Uuid::from_u128(1), Some("a@example.com".into()));
        store.link_user("user_1", link.clone(), 0, 10).await;
        assert_eq!(store.user_link("user_1", 9).await, Some(link));
        assert_eq!(store.user_link("user_1", 10).await, None);

        let who = Refused::Session("sess_a".into());
        store.refuse(&who, 0, 90).await;
        store.refuse(&who, 10, 50).await;
        assert!(store.is_refused(&who, 89).await);
        assert!(!store.is_refused(&who, 90).await);
        // A session and a user of the same id are different refusals.
        assert!(!store.is_refused(&Refused::User("sess_a".into()), 0).await);
    }
}
