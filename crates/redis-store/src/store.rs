//! [`RedisStore`]: the [`SessionStore`] on Redis.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use auth_core::{
    Inserted, Lookup, MessageClaim, Refused, SessionStore, StoreError, StoreResult, StoredSession,
    UserLink,
};
use instant_client::{RefreshToken, User, Uuid};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisResult, ScriptInvocation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Outage};
use crate::keys::{Keys, session_ttl, ttl_until};
use crate::scripts::Scripts;
use crate::sealing::Sealing;
use crate::url::RedisUrl;

/// The key prefix used unless another is configured.
pub const DEFAULT_PREFIX: &str = "clerk-instant:";

/// How many expired sessions one [`SessionStore::sweep`] call takes out at most.
const SWEEP_BATCH: usize = 100;
/// How long an expired session sealed with a key this replica lacks waits before a
/// sweep looks at it again (by then, one that has the key may have swept it).
const SWEEP_RETRY_FOREIGN_SECS: i64 = 60;

/// How long the store waits for Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// For a connection to be made (TCP, TLS and the handshake). Default 1 s.
    pub connect: Duration,
    /// For the answer to a command. Default 2 s.
    pub response: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(1),
            response: Duration::from_secs(2),
        }
    }
}

impl Timeouts {
    /// These timeouts (each at least 1 ms).
    pub fn new(connect: Duration, response: Duration) -> Self {
        let floor = Duration::from_millis(1);
        Timeouts {
            connect: connect.max(floor),
            response: response.max(floor),
        }
    }

    /// The longest a store method waits: connecting, then the answer.
    pub fn bound(&self) -> Duration {
        self.connect + self.response
    }
}

/// What a [`RedisStore`] needs. `Debug` shows neither the URL's password nor a key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisStoreConfig {
    /// Where Redis is.
    pub url: RedisUrl,
    /// What every key starts with ([`DEFAULT_PREFIX`] unless set), so several
    /// deployments can share one Redis.
    pub prefix: String,
    /// How values are protected.
    pub sealing: Sealing,
    /// How long to wait for Redis.
    pub timeouts: Timeouts,
}

impl RedisStoreConfig {
    /// A configuration with the default prefix and timeouts.
    pub fn new(url: RedisUrl, sealing: Sealing) -> Self {
        RedisStoreConfig {
            url,
            prefix: DEFAULT_PREFIX.to_owned(),
            sealing,
            timeouts: Timeouts::default(),
        }
    }

    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }
}

struct Inner {
    url: RedisUrl,
    client: redis::Client,
    /// The connection (with its generation), made at the first call and replaced
    /// after a timeout.
    manager: Mutex<Option<(u64, ConnectionManager)>>,
    generation: AtomicU64,
    keys: Keys,
    sealing: Sealing,
    timeouts: Timeouts,
    scripts: Scripts,
    /// Sessions opened lately (see [`Opened`]).
    opened: Mutex<Opened>,
}

/// How many opened sessions are kept; when full, the whole set is dropped (it fills
/// again with the sessions in use).
const OPENED_CAPACITY: usize = 4096;

/// Sessions opened lately, by key, each with the sealed bytes it was opened from. The
/// same bytes open to the same session (they were authenticated when opened), so a
/// session read again unchanged (every reused sign-in) is not decrypted and parsed
/// again; a value that changed in any byte is opened afresh. Holds what the memory
/// store holds, for the sessions this replica serves.
#[derive(Default)]
struct Opened(std::collections::HashMap<String, (Box<[u8]>, StoredSession)>);

impl Opened {
    fn get(&self, key: &str, blob: &[u8]) -> Option<StoredSession> {
        self.0
            .get(key)
            .filter(|(sealed, _)| **sealed == *blob)
            .map(|(_, session)| session.clone())
    }

    /// The value and session last opened for `key`, whatever the value is now.
    fn last(&self, key: &str) -> Option<(Vec<u8>, StoredSession)> {
        self.0
            .get(key)
            .map(|(sealed, session)| (sealed.to_vec(), session.clone()))
    }

    fn put(&mut self, key: &str, blob: &[u8], session: &StoredSession) {
        if self.0.len() >= OPENED_CAPACITY && !self.0.contains_key(key) {
            self.0.clear();
        }
        self.0
            .insert(key.to_owned(), (blob.into(), session.clone()));
    }
}

/// A [`SessionStore`] on Redis, shared by every replica pointed at the same Redis and
/// prefix. Cheap to clone; clones share one connection. See the crate docs for the
/// key layout and what happens when Redis is down.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.inner.url)
            .field("prefix", &self.inner.keys.prefix())
            .field("encrypted", &self.inner.sealing.is_encrypted())
            .field("timeouts", &self.inner.timeouts)
            .finish_non_exhaustive()
    }
}

/// Whether a call may run again when its connection dropped: it may have been applied
/// already.
#[derive(Debug, Clone, Copy)]
enum Rerun {
    /// A read, or a write that changes nothing the second time.
    Safe,
    /// A write whose second run would answer differently (what it removed, whether it
    /// won), so the caller gets the failure and decides.
    Unsafe,
}

/// What the sealed value of a session holds.
#[derive(Serialize)]
struct SessionOut<'a> {
    sub: &'a str,
    rt: &'a str,
    user: &'a User,
    at: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct SessionIn {
    sub: String,
    rt: RefreshToken,
    user: User,
    at: i64,
    exp: i64,
}

/// What the sealed value of a user link holds.
#[derive(Serialize, Deserialize)]
struct LinkRecord {
    id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    until: i64,
}

impl RedisStore {
    /// A store for this configuration. Does not connect: the first call does (so a
    /// server starts while Redis is down, and reports it through
    /// [`SessionStore::ping`]); after that the connection is kept and re-made when it
    /// breaks. Every call waits at most [`Timeouts::bound`], then fails with
    /// [`StoreError::Unavailable`].
    pub fn new(config: RedisStoreConfig) -> Result<Self, Error> {
        let client = redis::Client::open(config.url.expose()).map_err(|e| Error::UnusableUrl {
            source: config.url.scrub(&e),
        })?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                url: config.url,
                client,
                manager: Mutex::new(None),
                generation: AtomicU64::new(0),
                keys: Keys::new(&config.prefix),
                sealing: config.sealing,
                timeouts: config.timeouts,
                scripts: Scripts::new(),
                opened: Mutex::default(),
            }),
        })
    }

    /// The Redis URL (its `Display` hides the password).
    pub fn url(&self) -> &RedisUrl {
        &self.inner.url
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        self.inner.keys.prefix()
    }

    /// Whether values are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.inner.sealing.is_encrypted()
    }

    /// The connection and its generation: made lazily (connecting at its first
    /// command), kept while it works; the manager re-makes it when it breaks.
    fn connection(&self) -> RedisResult<(u64, ConnectionManager)> {
        let mut slot = self
            .inner
            .manager
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = slot.as_ref() {
            return Ok(current.clone());
        }
        let timeouts = self.inner.timeouts;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeouts.connect))
            .set_response_timeout(Some(timeouts.response))
            // One attempt per call: a call fails fast while Redis is down, and the
            // next one connects again.
            .set_number_of_retries(0);
        let manager = ConnectionManager::new_lazy_with_config(self.inner.client.clone(), config)?;
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed);
        *slot = Some((generation, manager.clone()));
        Ok((generation, manager))
    }

    /// Drops the connection of this generation, so the next call makes a new one. A
    /// connection whose answers stopped (a peer gone without a reset, a fail-over to
    /// another address) is not re-made by the manager, which only reacts to errors.
    fn forget_connection(&self, generation: u64) {
        let mut slot = self
            .inner
            .manager
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot
            .as_ref()
            .is_some_and(|(current, _)| *current == generation)
        {
            *slot = None;
        }
    }

    /// Runs `work` on the connection, bounded by the timeouts. When the connection
    /// turns out to have dropped (Redis restarted, a proxy closed it while idle) and
    /// running `work` twice is harmless ([`Rerun::Safe`]), it runs once more on the
    /// connection the manager makes anew, so a restart costs no failed call.
    async fn run<T, F, Fut>(&self, op: &'static str, rerun: Rerun, work: F) -> StoreResult<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.inner.timeouts.bound();
        let mut reruns = match rerun {
            Rerun::Safe => 1,
            Rerun::Unsafe => 0,
        };
        let e = loop {
            let e = match self.connection() {
                Err(e) => e,
                Ok((generation, connection)) => {
                    match tokio::time::timeout_at(deadline, work(connection)).await {
                        Ok(Ok(value)) => return Ok(value),
                        Ok(Err(e)) if !e.is_timeout() => e,
                        Ok(Err(_)) | Err(_) => {
                            self.forget_connection(generation);
                            return Err(StoreError::unavailable(self.timeout(op)));
                        }
                    }
                }
            };
            if reruns == 0 || !e.is_connection_dropped() {
                break e;
            }
            reruns -= 1;
        };
        // Redis is at its maxmemory and evicts nothing (the policy to run it with): the
        // write was refused and nothing changed.
        if e.code() == Some("OOM") {
            return Err(StoreError::Full);
        }
        Err(StoreError::unavailable(Outage::Failed {
            server: self.inner.url.server().to_owned(),
            op,
            source: self.inner.url.scrub(&e),
        }))
    }

    fn timeout(&self, op: &'static str) -> Outage {
        Outage::Timeout {
            server: self.inner.url.server().to_owned(),
            op,
            after: self.inner.timeouts.bound(),
        }
    }

    /// Runs a plain command: every one this store sends is a read or an idempotent
    /// write, so it may run again after a dropped connection.
    async fn query<T: FromRedisValue>(&self, op: &'static str, cmd: &redis::Cmd) -> StoreResult<T> {
        self.run(op, Rerun::Safe, |mut c| async move {
            cmd.query_async(&mut c).await
        })
        .await
    }

    async fn invoke<T: FromRedisValue>(
        &self,
        op: &'static str,
        rerun: Rerun,
        script: &ScriptInvocation<'_>,
    ) -> StoreResult<T> {
        self.run(op, rerun, |mut c| async move {
            script.invoke_async(&mut c).await
        })
        .await
    }

    /// [`SessionStore::reconfirm`] on the session `blob` opens to: replaced only if Redis
    /// still holds exactly `blob`. Whether the session (with that token, live at `at`)
    /// is now confirmed at `at` or later.
    async fn reconfirm_value(
        &self,
        key: &str,
        blob: &[u8],
        mut session: StoredSession,
        refresh_token: &RefreshToken,
        at: i64,
    ) -> StoreResult<bool> {
        if session.refresh_token != *refresh_token || session.expires_at <= at {
            return Ok(false);
        }
        if session.confirmed_at >= at {
            return Ok(true);
        }
        session.confirmed_at = at;
        let sealed = self.seal_session(key, &session);
        let mut reconfirm = self.inner.scripts.reconfirm.prepare_invoke();
        reconfirm.key(key).arg(blob).arg(&sealed);
        let replaced: i64 = self.invoke("reconfirm", Rerun::Unsafe, &reconfirm).await?;
        if replaced == 1 {
            self.opened().put(key, &sealed, &session);
        }
        Ok(replaced == 1)
    }

    fn seal_session(&self, key: &str, session: &StoredSession) -> Vec<u8> {
        let record = SessionOut {
            sub: &session.clerk_user_id,
            rt: session.refresh_token.expose(),
            user: &session.user,
            at: session.confirmed_at,
            exp: session.expires_at,
        };
        let json = serde_json::to_vec(&record).expect("a session serializes to JSON");
        self.inner.sealing.seal(key.as_bytes(), &json)
    }

    /// Opens a session's value; one that does not open is removed (only if it still
    /// holds exactly that value) and counts as absent, unless it is sealed with a key
    /// this store does not have: that one is another replica's, whose keys differ
    /// (a rotation rolled out with the new key first, or a replica given the wrong
    /// key), and removing it would leave its InstantDB token alive with no entry
    /// holding it. It stays, and the call fails (retry later) until the keys agree.
    async fn open_session(
        &self,
        session_id: &str,
        key: &str,
        blob: &[u8],
    ) -> StoreResult<Option<StoredSession>> {
        self.sealed_here(key, blob)?;
        match self.decode_session(key, blob) {
            Some(session) => Ok(Some(session)),
            None => {
                let mut discard = self.inner.scripts.discard_session.prepare_invoke();
                discard
                    .key(key)
                    .key(self.inner.keys.expiry())
                    .arg(session_id)
                    .arg(blob)
                    .arg(self.inner.keys.prefix());
                let _: i64 = self.invoke("discard", Rerun::Safe, &discard).await?;
                Ok(None)
            }
        }
    }

    /// The session read as `HMGET exp v`, if it is live at `now`.
    async fn live_session(
        &self,
        session_id: &str,
        key: &str,
        exp: Option<i64>,
        blob: Option<Vec<u8>>,
        now: i64,
    ) -> StoreResult<Option<StoredSession>> {
        match (exp, blob) {
            (Some(exp), Some(blob)) if exp > now => Ok(self
                .open_session(session_id, key, &blob)
                .await?
                .filter(|s| s.expires_at > now)),
            _ => Ok(None),
        }
    }

    /// Opens a session's value (or finds it opened already), or logs why not (never
    /// the value) and returns `None`.
    fn decode_session(&self, key: &str, blob: &[u8]) -> Option<StoredSession> {
        if let Some(session) = self.opened().get(key, blob) {
            return Some(session);
        }
        let session = self.open_sealed(key, blob)?;
        self.opened().put(key, blob, &session);
        Some(session)
    }

    /// Fails (and logs the key, never the value) when a value is sealed with a key this
    /// store does not have, or sealed while it has none: a header check, no
    /// decryption. See `open_session` for why such a value is left alone.
    fn sealed_here(&self, key: &str, blob: &[u8]) -> StoreResult<()> {
        if !self.inner.sealing.is_sealed_elsewhere(blob) {
            return Ok(());
        }
        tracing::warn!(
            key,
            "a stored value is sealed with a key this replica does not have: left for the replicas that have it; give every replica the same encryption keys"
        );
        Err(StoreError::unavailable(Outage::SealedElsewhere {
            server: self.inner.url.server().to_owned(),
        }))
    }

    fn opened(&self) -> std::sync::MutexGuard<'_, Opened> {
        self.inner
            .opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Decrypts and parses a session's value.
    fn open_sealed(&self, key: &str, blob: &[u8]) -> Option<StoredSession> {
        let plain = match self.inner.sealing.open(key.as_bytes(), blob) {
            Ok(plain) => plain,
            Err(reason) => {
                tracing::warn!(
                    key,
                    %reason,
                    "a stored session does not open: it is treated as absent and removed, its InstantDB token not signed out"
                );
                return None;
            }
        };
        match serde_json::from_slice::<SessionIn>(&plain) {
            Ok(record) => Some(StoredSession::new(
                record.sub,
                record.rt,
                Arc::new(record.user),
                record.at,
                record.exp,
            )),
            Err(e) => {
                tracing::warn!(
                    key,
                    line = e.line(),
                    column = e.column(),
                    "a stored session opens but is not a session record: it is treated as absent and removed"
                );
                None
            }
        }
    }

    /// Stores a session (`only_if_absent`: unless a live one is stored). Returns
    /// whether it was stored, and the previous value (if any).
    async fn put(
        &self,
        op: &'static str,
        session_id: &str,
        session: &StoredSession,
        now: i64,
        only_if_absent: bool,
    ) -> StoreResult<(bool, Vec<u8>)> {
        let keys = &self.inner.keys;
        let key = keys.session(session_id);
        let blob = self.seal_session(&key, session);
        let mut insert = self.inner.scripts.insert.prepare_invoke();
        insert
            .key(&key)
            .key(keys.expiry())
            .key(keys.user(&session.clerk_user_id))
            .arg(session_id)
            .arg(session.expires_at)
            .arg(blob)
            .arg(&session.clerk_user_id)
            .arg(session_ttl(session.expires_at, now))
            .arg(now)
            .arg(if only_if_absent { "1" } else { "0" })
            .arg(keys.prefix());
        let (stored, previous): (i64, Vec<u8>) = self.invoke(op, Rerun::Unsafe, &insert).await?;
        Ok((stored == 1, previous))
    }

    fn seal_link(&self, key: &str, link: &UserLink, until: i64) -> Vec<u8> {
        let record = LinkRecord {
            id: link.instant_user_id,
            email: link.email.clone(),
            until,
        };
        let json = serde_json::to_vec(&record).expect("a link serializes to JSON");
        self.inner.sealing.seal(key.as_bytes(), &json)
    }
}

/// What [`RedisStore::foreign_seals`] found among the newest stored sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForeignSeals {
    /// How many sessions were looked at.
    pub sampled: usize,
    /// How many of them are sealed with a key this store does not have.
    pub foreign: usize,
    /// The ids of those keys (the first four bytes of each key's SHA-256, hex): safe
    /// to log, and what `Debug` of the right [`EncryptionKeys`](crate::EncryptionKeys)
    /// shows.
    pub key_ids: std::collections::BTreeSet<String>,
}

impl RedisStore {
    /// Looks at the `sample` newest stored sessions (by expiry) and counts those
    /// sealed with a key this store does not have: another replica's keys differ, and
    /// this one would answer 503 for their sessions (see the crate docs). A server
    /// checks this at start-up, so that a replica given the wrong keys says so at
    /// once. Reads only.
    pub async fn foreign_seals(&self, sample: usize) -> StoreResult<ForeignSeals> {
        let keys = &self.inner.keys;
        let newest = isize::try_from(sample).unwrap_or(isize::MAX).max(1) - 1;
        let ids: Vec<String> = self
            .query(
                "foreign_seals",
                redis::cmd("ZRANGE")
                    .arg(keys.expiry())
                    .arg(0)
                    .arg(newest)
                    .arg("REV"),
            )
            .await?;
        let mut found = ForeignSeals::default();
        if ids.is_empty() {
            return Ok(found);
        }
        // One round trip for the values, as `sessions_of` reads a user's.
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGET").arg(keys.session(id)).arg("v");
        }
        let pipe = &pipe;
        let blobs: Vec<Option<Vec<u8>>> = self
            .run("foreign_seals", Rerun::Safe, |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        for blob in blobs.into_iter().flatten() {
            found.sampled += 1;
            if let Some(key_id) = self.inner.sealing.foreign_key_id(&blob) {
                found.foreign += 1;
                found.key_ids.insert(key_id);
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn get(&self, session_id: &str, now: i64) -> StoreResult<Option<StoredSession>> {
        let key = self.inner.keys.session(session_id);
        let (exp, blob): (Option<i64>, Option<Vec<u8>>) = self
            .query("get", redis::cmd("HMGET").arg(&key).arg("exp").arg("v"))
            .await?;
        self.live_session(session_id, &key, exp, blob, now).await
    }

    async fn insert(
        &self,
        session_id: &str,
        session: StoredSession,
        now: i64,
    ) -> StoreResult<Inserted> {
        let (_, previous) = self.put("insert", session_id, &session, now, false).await?;
        let mut inserted = Inserted::default();
        if !previous.is_empty() {
            let key = self.inner.keys.session(session_id);
            if let Some(previous) = self.decode_session(&key, &previous)
                && (previous.refresh_token != session.refresh_token || previous.expires_at <= now)
            {
                inserted.displaced.push(previous);
            }
        }
        Ok(inserted)
    }

    async fn insert_if_absent(
        &self,
        session_id: &str,
        session: StoredSession,
        now: i64,
    ) -> StoreResult<Result<Inserted, StoredSession>> {
        let key = self.inner.keys.session(session_id);
        // A live entry that does not open is removed and the insert tried again; twice
        // is enough unless someone keeps planting values.
        for _ in 0..3 {
            let (stored, previous) = self
                .put("insert_if_absent", session_id, &session, now, true)
                .await?;
            if stored {
                let mut inserted = Inserted::default();
                if !previous.is_empty()
                    && let Some(expired) = self.decode_session(&key, &previous)
                {
                    inserted.displaced.push(expired);
                }
                return Ok(Ok(inserted));
            }
            if let Some(existing) = self.open_session(session_id, &key, &previous).await? {
                return Ok(Err(existing));
            }
        }
        Err(StoreError::unavailable(Outage::Unopenable {
            server: self.inner.url.server().to_owned(),
            op: "insert_if_absent",
        }))
    }

    async fn has_room(&self, _now: i64) -> StoreResult<bool> {
        // Redis is bounded by the keys' TTLs and its own maxmemory.
        Ok(true)
    }

    async fn reconfirm(
        &self,
        session_id: &str,
        refresh_token: &RefreshToken,
        at: i64,
    ) -> StoreResult<bool> {
        let key = self.inner.keys.session(session_id);
        // The value this replica opened last (it served the call being recorded): the
        // common case is one round trip.
        let last = self.opened().last(&key);
        if let Some((blob, session)) = last
            && self
                .reconfirm_value(&key, &blob, session, refresh_token, at)
                .await?
        {
            return Ok(true);
        }
        // Never opened here, or changed since (another replica wrote it): read afresh.
        let blob: Option<Vec<u8>> = self
            .query("reconfirm", redis::cmd("HGET").arg(&key).arg("v"))
            .await?;
        let Some(blob) = blob else {
            return Ok(false);
        };
        let Some(session) = self.open_session(session_id, &key, &blob).await? else {
            return Ok(false);
        };
        self.reconfirm_value(&key, &blob, session, refresh_token, at)
            .await
    }

    async fn remove(&self, session_id: &str) -> StoreResult<Option<StoredSession>> {
        let keys = &self.inner.keys;
        let key = keys.session(session_id);
        let mut remove = self.inner.scripts.remove.prepare_invoke();
        remove
            .key(&key)
            .key(keys.expiry())
            .arg(session_id)
            .arg(keys.prefix());
        let blob: Vec<u8> = self.invoke("remove", Rerun::Unsafe, &remove).await?;
        Ok(if blob.is_empty() {
            None
        } else {
            self.decode_session(&key, &blob)
        })
    }

    async fn sweep(&self, now: i64) -> StoreResult<Vec<StoredSession>> {
        let keys = &self.inner.keys;
        loop {
            let mut sweep = self.inner.scripts.sweep.prepare_invoke();
            sweep
                .key(keys.expiry())
                .arg(now)
                .arg(SWEEP_BATCH)
                .arg(keys.prefix())
                .arg(now.saturating_add(SWEEP_RETRY_FOREIGN_SECS));
            for id in self.inner.sealing.key_ids() {
                sweep.arg(&id[..]);
            }
            let (taken, found): (usize, Vec<(String, Vec<u8>)>) =
                self.invoke("sweep", Rerun::Unsafe, &sweep).await?;
            let swept: Vec<StoredSession> = found
                .iter()
                .filter_map(|(sid, blob)| self.decode_session(&keys.session(sid), blob))
                .collect();
            // A batch of entries that did not open (or had gone) returns nothing: take
            // the next one, so an empty answer means nothing expired is left.
            if !swept.is_empty() || taken == 0 {
                return Ok(swept);
            }
        }
    }

    async fn sessions_of(&self, clerk_user_id: &str) -> StoreResult<Vec<(String, StoredSession)>> {
        let keys = &self.inner.keys;
        let set = keys.user(clerk_user_id);
        let ids: Vec<String> = self
            .query("sessions_of", redis::cmd("SMEMBERS").arg(&set))
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET").arg(keys.session(id)).arg("u").arg("v");
        }
        let pipe = &pipe;
        let rows: Vec<(Option<String>, Option<Vec<u8>>)> = self
            .run("sessions_of", Rerun::Safe, |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        let mut found = Vec::new();
        let mut stale = Vec::new();
        for (id, (user, blob)) in ids.into_iter().zip(rows) {
            match (user, blob) {
                (Some(user), Some(blob)) if user == clerk_user_id => {
                    let key = keys.session(&id);
                    match self.open_session(&id, &key, &blob).await? {
                        Some(session) if session.clerk_user_id == clerk_user_id => {
                            found.push((id, session));
                        }
                        _ => stale.push(id),
                    }
                }
                _ => stale.push(id),
            }
        }
        if !stale.is_empty() {
            let _: i64 = self
                .query("sessions_of", redis::cmd("SREM").arg(&set).arg(&stale))
                .await?;
        }
        Ok(found)
    }

    async fn link_user(
        &self,
        clerk_user_id: &str,
        link: UserLink,
        now: i64,
        until: i64,
    ) -> StoreResult<()> {
        let key = self.inner.keys.link(clerk_user_id);
        match ttl_until(until, now) {
            Some(ttl) => {
                let blob = self.seal_link(&key, &link, until);
                self.query(
                    "link_user",
                    redis::cmd("SET").arg(&key).arg(blob).arg("EX").arg(ttl),
                )
                .await
            }
            None => self.query("link_user", redis::cmd("DEL").arg(&key)).await,
        }
    }

    async fn user_link(&self, clerk_user_id: &str, now: i64) -> StoreResult<Option<UserLink>> {
        let key = self.inner.keys.link(clerk_user_id);
        let Some(blob): Option<Vec<u8>> =
            self.query("user_link", redis::cmd("GET").arg(&key)).await?
        else {
            return Ok(None);
        };
        // Another replica's, whose keys differ: left for it (see `open_session`).
        self.sealed_here(&key, &blob)?;
        let record = self
            .inner
            .sealing
            .open(key.as_bytes(), &blob)
            .map_err(|reason| reason.to_string())
            .and_then(|plain| {
                serde_json::from_slice::<LinkRecord>(&plain)
                    .map_err(|_| "it opens but is not a link record".to_owned())
            });
        match record {
            Ok(record) if record.until > now => Ok(Some(UserLink::new(record.id, record.email))),
            Ok(_) => Ok(None),
            Err(reason) => {
                tracing::warn!(
                    key,
                    %reason,
                    "a stored user link does not open: it is treated as absent and removed"
                );
                let mut discard = self.inner.scripts.discard_value.prepare_invoke();
                discard.key(&key).arg(blob);
                let _: i64 = self.invoke("user_link", Rerun::Safe, &discard).await?;
                Ok(None)
            }
        }
    }

    async fn unlink_user(&self, clerk_user_id: &str) -> StoreResult<()> {
        let key = self.inner.keys.link(clerk_user_id);
        self.query("unlink_user", redis::cmd("DEL").arg(key)).await
    }

    async fn refuse(&self, who: &Refused, now: i64, until: i64) -> StoreResult<()> {
        let Some(ttl) = ttl_until(until, now) else {
            return Ok(());
        };
        let mut refuse = self.inner.scripts.refuse.prepare_invoke();
        refuse.key(self.inner.keys.refused(who)).arg(until).arg(ttl);
        let _: i64 = self.invoke("refuse", Rerun::Safe, &refuse).await?;
        Ok(())
    }

    async fn is_refused(&self, who: &[Refused], now: i64) -> StoreResult<bool> {
        if who.is_empty() {
            return Ok(false);
        }
        let keys: Vec<String> = who.iter().map(|w| self.inner.keys.refused(w)).collect();
        let untils: Vec<Option<String>> = self
            .query("is_refused", redis::cmd("MGET").arg(keys))
            .await?;
        Ok(any_refused(&untils, now))
    }

    async fn lookup(&self, session_id: &str, who: &[Refused], now: i64) -> StoreResult<Lookup> {
        if who.is_empty() {
            return Ok(Lookup::Found(self.get(session_id, now).await?));
        }
        // The refusals and the session in one round trip (a pipeline of two reads).
        let key = self.inner.keys.session(session_id);
        let refused: Vec<String> = who.iter().map(|w| self.inner.keys.refused(w)).collect();
        let mut pipe = redis::pipe();
        pipe.cmd("MGET").arg(&refused);
        pipe.cmd("HMGET").arg(&key).arg("exp").arg("v");
        let (untils, (exp, blob)): (Vec<Option<String>>, (Option<i64>, Option<Vec<u8>>)) = self
            .run("lookup", Rerun::Safe, |mut c| {
                let pipe = &pipe;
                async move { pipe.query_async(&mut c).await }
            })
            .await?;
        if any_refused(&untils, now) {
            return Ok(Lookup::Refused);
        }
        Ok(Lookup::Found(
            self.live_session(session_id, &key, exp, blob, now).await?,
        ))
    }

    async fn claim_message(
        &self,
        message_id: &str,
        holder: &str,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<MessageClaim> {
        let mut claim = self.inner.scripts.claim.prepare_invoke();
        claim
            .key(self.inner.keys.message(message_id))
            .arg(now)
            .arg(lease_until)
            .arg(ttl_until(lease_until, now).unwrap_or(1))
            .arg(holder);
        let state: i64 = self.invoke("claim_message", Rerun::Unsafe, &claim).await?;
        Ok(match state {
            0 => MessageClaim::Claimed,
            2 => MessageClaim::Done,
            _ => MessageClaim::InProgress,
        })
    }

    async fn complete_message(
        &self,
        message_id: &str,
        now: i64,
        keep_until: i64,
    ) -> StoreResult<()> {
        let key = self.inner.keys.message(message_id);
        let cmd = match ttl_until(keep_until, now) {
            Some(ttl) => redis::cmd("SET")
                .arg(&key)
                .arg(format!("d:{keep_until}"))
                .arg("EX")
                .arg(ttl)
                .to_owned(),
            None => redis::cmd("DEL").arg(&key).to_owned(),
        };
        self.query("complete_message", &cmd).await
    }

    async fn release_message(&self, message_id: &str, holder: &str) -> StoreResult<bool> {
        let mut release = self.inner.scripts.release.prepare_invoke();
        release.key(self.inner.keys.message(message_id)).arg(holder);
        // Run again after a dropped connection, it releases nothing more (it may then
        // answer false for a release the first run made).
        let released: i64 = self
            .invoke("release_message", Rerun::Safe, &release)
            .await?;
        Ok(released == 1)
    }

    async fn try_lock(
        &self,
        session_id: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> StoreResult<bool> {
        let mut lock = self.inner.scripts.try_lock.prepare_invoke();
        lock.key(self.inner.keys.lock(session_id))
            .arg(now)
            .arg(until)
            .arg(holder)
            .arg(ttl_until(until, now).unwrap_or(1));
        let taken: i64 = self.invoke("try_lock", Rerun::Unsafe, &lock).await?;
        Ok(taken == 1)
    }

    async fn unlock(&self, session_id: &str, holder: &str) -> StoreResult<()> {
        let mut unlock = self.inner.scripts.unlock.prepare_invoke();
        unlock.key(self.inner.keys.lock(session_id)).arg(holder);
        let _: i64 = self.invoke("unlock", Rerun::Safe, &unlock).await?;
        Ok(())
    }

    async fn len(&self) -> StoreResult<usize> {
        self.query("len", redis::cmd("ZCARD").arg(self.inner.keys.expiry()))
            .await
    }

    async fn ping(&self) -> StoreResult<()> {
        let _: String = self.query("ping", &redis::cmd("PING")).await?;
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

/// Whether any refusal read as `MGET` still holds at `now`.
fn any_refused(untils: &[Option<String>], now: i64) -> bool {
    untils
        .iter()
        .flatten()
        .any(|until| until.parse::<i64>().is_ok_and(|until| until > now))
}
