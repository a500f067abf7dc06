//! [`MemorySessionStore`]: the store of one process, bounded.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use instant_client::RefreshToken;

use super::{
    Inserted, MessageClaim, Refused, SessionStore, StoreError, StoreResult, StoredSession, UserLink,
};

/// Limits of a [`MemorySessionStore`]. (Each entry carries its own expiry, set by the
/// broker.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreLimits {
    /// The most sessions kept. When it is reached, expired sessions are dropped (and
    /// handed back to be signed out); if none has expired, a new session is refused
    /// with [`StoreError::Full`]: a live session is never evicted, since that would
    /// sign its user out of InstantDB. The user links and the refusals have the same
    /// limit each (the oldest go first there). Default 100,000.
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
#[derive(Debug, Clone, PartialEq, Eq)]
enum Message {
    /// By this holder.
    Claimed(String),
    Done,
}

/// The most sessions [`MemorySessionStore::new`] makes room for up front.
const PRESIZED_SESSIONS: usize = 1_000_000;

/// The sessions, with an index by expiry (for the sweep and for making room).
#[derive(Default)]
struct Inner {
    entries: HashMap<String, StoredSession>,
    by_expiry: BTreeSet<(i64, String)>,
}

impl Inner {
    fn put(&mut self, session_id: &str, session: StoredSession) -> Option<StoredSession> {
        self.by_expiry
            .insert((session.expires_at, session_id.to_owned()));
        let previous = self.entries.insert(session_id.to_owned(), session);
        if let Some(previous) = &previous {
            self.unindex(session_id, previous.expires_at);
        }
        previous
    }

    fn unindex(&mut self, session_id: &str, expires_at: i64) {
        if self
            .entries
            .get(session_id)
            .is_none_or(|current| current.expires_at != expires_at)
        {
            self.by_expiry.remove(&(expires_at, session_id.to_owned()));
        }
    }

    fn take(&mut self, session_id: &str) -> Option<StoredSession> {
        let session = self.entries.remove(session_id)?;
        self.by_expiry
            .remove(&(session.expires_at, session_id.to_owned()));
        Some(session)
    }

    fn has_expired(&self, now: i64) -> bool {
        self.by_expiry.first().is_some_and(|(at, _)| *at <= now)
    }

    fn take_expired(&mut self, now: i64) -> Vec<StoredSession> {
        let mut expired = Vec::new();
        while let Some((at, id)) = self.by_expiry.first().cloned()
            && at <= now
        {
            self.by_expiry.pop_first();
            if let Some(session) = self.entries.remove(&id) {
                expired.push(session);
            }
        }
        expired
    }

    /// Room for one more session: expired sessions go (handed back to be signed out);
    /// a live one never does.
    fn make_room(
        &mut self,
        max: usize,
        now: i64,
        displaced: &mut Vec<StoredSession>,
    ) -> StoreResult<()> {
        if self.entries.len() < max {
            return Ok(());
        }
        displaced.extend(self.take_expired(now));
        if self.entries.len() < max {
            Ok(())
        } else {
            Err(StoreError::Full)
        }
    }
}

#[derive(Default)]
struct Webhooks {
    links: Expiring<UserLink>,
    refused: Expiring<()>,
    messages: Expiring<Message>,
    locks: HashMap<String, (String, i64)>,
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
        // Room for every session up front (up to a million): a hash map that grows
        // moves all its entries at once, under the lock every request takes, which
        // stalled every request for milliseconds at 57,000 and 114,000 sessions. Only
        // the table's control bytes are written now (one per slot); the slots are
        // touched as sessions arrive.
        let entries = HashMap::with_capacity(limits.max_entries.min(PRESIZED_SESSIONS));
        MemorySessionStore {
            inner: Arc::new(Mutex::new(Inner {
                entries,
                by_expiry: BTreeSet::new(),
            })),
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
    async fn get(&self, session_id: &str, now: i64) -> StoreResult<Option<StoredSession>> {
        let inner = self.lock();
        Ok(inner
            .entries
            .get(session_id)
            .filter(|s| s.expires_at > now)
            .cloned())
    }

    async fn insert(
        &self,
        session_id: &str,
        session: StoredSession,
        now: i64,
    ) -> StoreResult<Inserted> {
        let mut inner = self.lock();
        let mut displaced = Vec::new();
        if !inner.entries.contains_key(session_id) {
            inner.make_room(self.limits.max_entries, now, &mut displaced)?;
        }
        let token = session.refresh_token.clone();
        if let Some(previous) = inner.put(session_id, session)
            && (previous.refresh_token != token || previous.expires_at <= now)
        {
            displaced.push(previous);
        }
        Ok(Inserted { displaced })
    }

    async fn insert_if_absent(
        &self,
        session_id: &str,
        session: StoredSession,
        now: i64,
    ) -> StoreResult<Result<Inserted, StoredSession>> {
        let mut inner = self.lock();
        let mut displaced = Vec::new();
        match inner.entries.get(session_id) {
            Some(existing) if existing.expires_at > now => return Ok(Err(existing.clone())),
            Some(_) => {}
            None => inner.make_room(self.limits.max_entries, now, &mut displaced)?,
        }
        if let Some(expired) = inner.put(session_id, session) {
            displaced.push(expired);
        }
        Ok(Ok(Inserted { displaced }))
    }

    async fn has_room(&self, now: i64) -> StoreResult<bool> {
        let inner = self.lock();
        Ok(inner.entries.len() < self.limits.max_entries || inner.has_expired(now))
    }

    async fn reconfirm(
        &self,
        session_id: &str,
        refresh_token: &RefreshToken,
        at: i64,
    ) -> StoreResult<bool> {
        let mut inner = self.lock();
        Ok(match inner.entries.get_mut(session_id) {
            Some(stored) if stored.refresh_token == *refresh_token && stored.expires_at > at => {
                stored.confirmed_at = stored.confirmed_at.max(at);
                true
            }
            _ => false,
        })
    }

    async fn remove(&self, session_id: &str) -> StoreResult<Option<StoredSession>> {
        Ok(self.lock().take(session_id))
    }

    async fn sweep(&self, now: i64) -> StoreResult<Vec<StoredSession>> {
        Ok(self.lock().take_expired(now))
    }

    async fn sessions_of(&self, clerk_user_id: &str) -> StoreResult<Vec<(String, StoredSession)>> {
        // A scan: webhooks are rare and the store is bounded. A shared store keeps a set
        // of session ids per user instead.
        Ok(self
            .lock()
            .entries
            .iter()
            .filter(|(_, s)| s.clerk_user_id == clerk_user_id)
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect())
    }

    async fn link_user(
        &self,
        clerk_user_id: &str,
        link: UserLink,
        now: i64,
        until: i64,
    ) -> StoreResult<()> {
        let max = self.limits.max_entries;
        self.webhooks()
            .links
            .insert(clerk_user_id, link, until, now, max);
        Ok(())
    }

    async fn user_link(&self, clerk_user_id: &str, now: i64) -> StoreResult<Option<UserLink>> {
        Ok(self.webhooks().links.get(clerk_user_id, now).cloned())
    }

    async fn unlink_user(&self, clerk_user_id: &str) -> StoreResult<()> {
        self.webhooks().links.remove(clerk_user_id);
        Ok(())
    }

    async fn refuse(&self, who: &Refused, now: i64, until: i64) -> StoreResult<()> {
        let key = who.key();
        let mut webhooks = self.webhooks();
        if let Some((_, current)) = webhooks.refused.get_mut(&key) {
            *current = (*current).max(until);
            return Ok(());
        }
        webhooks
            .refused
            .insert(&key, (), until, now, self.limits.max_entries);
        Ok(())
    }

    async fn is_refused(&self, who: &[Refused], now: i64) -> StoreResult<bool> {
        let webhooks = self.webhooks();
        Ok(who
            .iter()
            .any(|who| webhooks.refused.get(&who.key(), now).is_some()))
    }

    async fn claim_message(
        &self,
        message_id: &str,
        holder: &str,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<MessageClaim> {
        let mut webhooks = self.webhooks();
        Ok(match webhooks.messages.get(message_id, now) {
            Some(Message::Done) => MessageClaim::Done,
            Some(Message::Claimed(_)) => MessageClaim::InProgress,
            None => {
                webhooks.messages.insert(
                    message_id,
                    Message::Claimed(holder.to_owned()),
                    lease_until,
                    now,
                    self.limits.max_messages,
                );
                MessageClaim::Claimed
            }
        })
    }

    async fn complete_message(
        &self,
        message_id: &str,
        now: i64,
        keep_until: i64,
    ) -> StoreResult<()> {
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
                now,
                self.limits.max_messages,
            ),
        }
        Ok(())
    }

    async fn release_message(&self, message_id: &str, holder: &str) -> StoreResult<bool> {
        let mut webhooks = self.webhooks();
        let held = webhooks
            .messages
            .get_mut(message_id)
            .is_some_and(|(state, _)| matches!(state, Message::Claimed(by) if by == holder));
        if held {
            webhooks.messages.remove(message_id);
        }
        Ok(held)
    }

    async fn try_lock(
        &self,
        session_id: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> StoreResult<bool> {
        let mut webhooks = self.webhooks();
        let locks = &mut webhooks.locks;
        if locks.len() > self.limits.max_entries {
            locks.retain(|_, (_, lock_until)| *lock_until > now);
        }
        match locks.get(session_id) {
            Some((_, lock_until)) if *lock_until > now => Ok(false),
            _ => {
                locks.insert(session_id.to_owned(), (holder.to_owned(), until));
                Ok(true)
            }
        }
    }

    async fn unlock(&self, session_id: &str, holder: &str) -> StoreResult<()> {
        let mut webhooks = self.webhooks();
        if webhooks
            .locks
            .get(session_id)
            .is_some_and(|(current, _)| current == holder)
        {
            webhooks.locks.remove(session_id);
        }
        Ok(())
    }

    async fn len(&self) -> StoreResult<usize> {
        Ok(self.lock().entries.len())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use instant_client::{RefreshToken, User, Uuid};

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

    #[test]
    fn the_table_has_room_for_every_session_up_front_up_to_a_million() {
        let room = |max| {
            let store = MemorySessionStore::new(StoreLimits::default().max_entries(max));
            store.lock().entries.capacity()
        };
        assert!(room(5_000) >= 5_000);
        let capped = room(50_000_000);
        assert!(
            (PRESIZED_SESSIONS..2 * PRESIZED_SESSIONS).contains(&capped),
            "{capped}"
        );
    }

    #[tokio::test]
    async fn entries_expire() {
        let store = MemorySessionStore::new(StoreLimits::default());
        store
            .insert("sess_a", session(&token(1), 100, 10), 100)
            .await
            .unwrap();
        assert!(store.get("sess_a", 109).await.unwrap().is_some());
        assert!(store.get("sess_a", 110).await.unwrap().is_none());
        let swept = store.sweep(110).await.unwrap();
        assert_eq!(swept.len(), 1);
        assert_eq!(store.len().await.unwrap(), 0);
        assert!(store.lock().by_expiry.is_empty());
    }

    #[tokio::test]
    async fn a_full_store_refuses_new_sessions_and_evicts_no_live_one() {
        let store = MemorySessionStore::new(StoreLimits::default().max_entries(3));
        for i in 0..3 {
            let out = store
                .insert(&format!("sess_{i}"), session(&token(i), 0, 100), 0)
                .await
                .unwrap();
            assert!(out.displaced.is_empty());
        }
        assert!(!store.has_room(0).await.unwrap());
        let full = store.insert("sess_3", session(&token(3), 0, 100), 0).await;
        assert!(matches!(full, Err(StoreError::Full)), "{full:?}");
        let full = store
            .insert_if_absent("sess_3", session(&token(3), 0, 100), 0)
            .await;
        assert!(matches!(full, Err(StoreError::Full)), "{full:?}");
        for i in 0..3 {
            assert!(store.get(&format!("sess_{i}"), 0).await.unwrap().is_some());
        }
        // Replacing a stored session needs no room.
        store
            .insert("sess_0", session(&token(9), 1, 100), 1)
            .await
            .unwrap();
        // Once sessions expire, they make room, handed back to be signed out.
        assert!(store.has_room(100).await.unwrap());
        let out = store
            .insert("sess_3", session(&token(3), 100, 100), 100)
            .await
            .unwrap();
        assert_eq!(out.displaced.len(), 2, "sess_1 and sess_2 had expired");
        assert_eq!(store.len().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn the_expiry_index_follows_replacements() {
        let store = MemorySessionStore::new(StoreLimits::default().max_entries(100));
        for i in 0..10_000u32 {
            let id = format!("sess_{}", i % 50);
            store
                .insert(&id, session(&token(i), i64::from(i), 100), i64::from(i))
                .await
                .unwrap();
        }
        assert_eq!(store.len().await.unwrap(), 50);
        assert_eq!(store.lock().by_expiry.len(), 50);
    }

    #[tokio::test]
    async fn replacing_with_another_token_displaces_the_old_one() {
        let store = MemorySessionStore::new(StoreLimits::default());
        store
            .insert("sess_a", session(&token(1), 0, 100), 0)
            .await
            .unwrap();
        let same = store
            .insert("sess_a", session(&token(1), 5, 100), 5)
            .await
            .unwrap();
        assert!(same.displaced.is_empty(), "same token: nothing to sign out");
        let other = store
            .insert("sess_a", session(&token(2), 6, 100), 6)
            .await
            .unwrap();
        assert_eq!(other.displaced[0].refresh_token.expose(), token(1));
    }

    #[tokio::test]
    async fn a_reconfirmation_moves_up_the_stored_token_only() {
        let store = MemorySessionStore::new(StoreLimits::default());
        let first = RefreshToken::new(token(1)).unwrap();
        assert!(
            !store.reconfirm("sess_a", &first, 5).await.unwrap(),
            "absent"
        );
        store
            .insert("sess_a", session(&token(1), 0, 100), 0)
            .await
            .unwrap();
        assert!(store.reconfirm("sess_a", &first, 40).await.unwrap());
        assert_eq!(
            store.get("sess_a", 40).await.unwrap().unwrap().confirmed_at,
            40
        );
        // An older confirmation never moves it back.
        assert!(store.reconfirm("sess_a", &first, 30).await.unwrap());
        let stored = store.get("sess_a", 40).await.unwrap().unwrap();
        assert_eq!((stored.confirmed_at, stored.expires_at), (40, 100));
        // Not once the entry expired, nor for a token that is no longer the stored one.
        assert!(!store.reconfirm("sess_a", &first, 100).await.unwrap());
        store
            .insert("sess_a", session(&token(2), 50, 100), 50)
            .await
            .unwrap();
        assert!(!store.reconfirm("sess_a", &first, 60).await.unwrap());
        assert_eq!(
            store.get("sess_a", 60).await.unwrap().unwrap().confirmed_at,
            50
        );
        store.remove("sess_a").await.unwrap();
        let second = RefreshToken::new(token(2)).unwrap();
        assert!(!store.reconfirm("sess_a", &second, 70).await.unwrap());
        assert!(store.is_empty().await.unwrap(), "nothing is created");
    }

    #[tokio::test]
    async fn insert_if_absent_keeps_the_first_live_session() {
        let store = MemorySessionStore::new(StoreLimits::default());
        assert!(
            store
                .insert_if_absent("sess_a", session(&token(1), 0, 10), 0)
                .await
                .unwrap()
                .is_ok()
        );
        let lost = store
            .insert_if_absent("sess_a", session(&token(2), 1, 10), 1)
            .await
            .unwrap();
        assert_eq!(lost.unwrap_err().refresh_token.expose(), token(1));
        // Once expired, the slot is free again and the expired one is handed back.
        let won = store
            .insert_if_absent("sess_a", session(&token(3), 20, 10), 20)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(won.displaced[0].refresh_token.expose(), token(1));
    }

    #[tokio::test]
    async fn message_ids_stay_bounded_oldest_first_and_expired_first() {
        let store = MemorySessionStore::new(StoreLimits::default().max_messages(3));
        for i in 0..3 {
            let id = format!("msg_{i}");
            assert_eq!(
                store.claim_message(&id, "holder", 0, 100).await.unwrap(),
                MessageClaim::Claimed
            );
            store.complete_message(&id, 0, 1000).await.unwrap();
        }
        // Full: the oldest goes to make room.
        store
            .claim_message("msg_3", "holder", 0, 100)
            .await
            .unwrap();
        assert_eq!(store.remembered_messages(), 3);
        assert_eq!(
            store
                .claim_message("msg_1", "holder", 0, 100)
                .await
                .unwrap(),
            MessageClaim::Done
        );
        assert_eq!(
            store
                .claim_message("msg_0", "holder", 0, 100)
                .await
                .unwrap(),
            MessageClaim::Claimed,
            "evicted"
        );
        // (That claim evicted msg_1, the oldest then.) Full again, with expired
        // entries (msg_3's and msg_0's leases): those go first, msg_2 stays.
        store
            .claim_message("msg_4", "holder", 200, 300)
            .await
            .unwrap();
        assert_eq!(store.remembered_messages(), 2);
        assert_eq!(
            store
                .claim_message("msg_2", "holder", 200, 300)
                .await
                .unwrap(),
            MessageClaim::Done
        );
        assert!(store.remembered_messages() <= 3);
    }

    #[tokio::test]
    async fn a_claim_is_given_back_by_its_holder_only() {
        let store = MemorySessionStore::new(StoreLimits::default());
        let claim = |holder: &'static str, now: i64| {
            let store = store.clone();
            async move {
                store
                    .claim_message("msg_1", holder, now, now + 100)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(claim("first", 0).await, MessageClaim::Claimed);
        assert!(!store.release_message("msg_1", "second").await.unwrap());
        assert_eq!(claim("second", 1).await, MessageClaim::InProgress);
        assert!(store.release_message("msg_1", "first").await.unwrap());
        assert_eq!(claim("second", 2).await, MessageClaim::Claimed);
        store.complete_message("msg_1", 3, 1000).await.unwrap();
        assert!(
            !store.release_message("msg_1", "second").await.unwrap(),
            "done stays done"
        );
        assert_eq!(claim("third", 4).await, MessageClaim::Done);
    }

    #[tokio::test]
    async fn links_and_refusals_expire_and_a_later_refusal_wins() {
        let store = MemorySessionStore::new(StoreLimits::default());
        let link = UserLink::new(Uuid::from_u128(1), Some("a@example.com".into()));
        store
            .link_user("user_1", link.clone(), 0, 10)
            .await
            .unwrap();
        assert_eq!(store.user_link("user_1", 9).await.unwrap(), Some(link));
        assert_eq!(store.user_link("user_1", 10).await.unwrap(), None);

        let who = Refused::Session("sess_a".into());
        store.refuse(&who, 0, 90).await.unwrap();
        store.refuse(&who, 10, 50).await.unwrap();
        let both = [Refused::User("user_1".into()), who.clone()];
        assert!(store.is_refused(&both, 89).await.unwrap());
        assert!(!store.is_refused(&both, 90).await.unwrap());
        // A session and a user of the same id are different refusals.
        assert!(
            !store
                .is_refused(&[Refused::User("sess_a".into())], 0)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_lock_has_one_holder_until_released_or_lapsed() {
        let store = MemorySessionStore::new(StoreLimits::default());
        assert!(store.try_lock("sess_a", "one", 0, 10).await.unwrap());
        assert!(!store.try_lock("sess_a", "two", 5, 15).await.unwrap());
        // Only the holder releases it.
        store.unlock("sess_a", "two").await.unwrap();
        assert!(!store.try_lock("sess_a", "two", 5, 15).await.unwrap());
        store.unlock("sess_a", "one").await.unwrap();
        assert!(store.try_lock("sess_a", "two", 5, 15).await.unwrap());
        // A holder that never releases blocks the session until its lock lapses.
        assert!(!store.try_lock("sess_a", "three", 14, 24).await.unwrap());
        assert!(store.try_lock("sess_a", "three", 15, 25).await.unwrap());
        // Other sessions are independent.
        assert!(store.try_lock("sess_b", "one", 15, 25).await.unwrap());
    }
}
