//! Helpers: a Redis, stores on it, sessions with realistic values, and raw access to
//! what Redis holds.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::StoredSession;
use devstack::RedisServer;
use instant_client::{RefreshToken, User, Uuid};
use redis::aio::MultiplexedConnection;
use redis_store::{EncryptionKeys, RedisStore, RedisStoreConfig, RedisUrl, Sealing, Timeouts};

pub(crate) const PREFIX: &str = "it:";

/// A fresh `redis-server`, or a failure that names the install command.
pub(crate) async fn redis() -> RedisServer {
    RedisServer::start()
        .await
        .unwrap_or_else(|e| panic!("redis-server is needed for these tests: {e}"))
}

/// The key the tests seal with (seed 1) and others.
pub(crate) fn keys(seeds: &[u8]) -> EncryptionKeys {
    EncryptionKeys::from_bytes(seeds.iter().map(|s| [*s; 32])).unwrap()
}

pub(crate) fn timeouts() -> Timeouts {
    Timeouts::new(Duration::from_secs(1), Duration::from_secs(1))
}

pub(crate) fn config(url: &str, sealing: Sealing) -> RedisStoreConfig {
    RedisStoreConfig::new(RedisUrl::parse(url).unwrap(), sealing)
        .prefix(PREFIX)
        .timeouts(timeouts())
}

/// A store sealing with key seed 1.
pub(crate) fn store(redis: &RedisServer) -> RedisStore {
    store_with(redis, Sealing::Keys(keys(&[1])))
}

pub(crate) fn store_with(redis: &RedisServer, sealing: Sealing) -> RedisStore {
    RedisStore::new(config(&redis.url(), sealing)).unwrap()
}

/// Wall-clock seconds: the TTLs Redis enforces run on its own clock, so the tests'
/// times start from the real one.
pub(crate) fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

/// A refresh token, numbered.
pub(crate) fn token(n: u32) -> String {
    format!("4d1f7c2a-9b3e-4c51-8f0a-{n:012}")
}

/// An InstantDB user as InstantDB returns it (with the refresh token it sends, which
/// the store must not keep twice).
pub(crate) fn user(n: u32) -> Arc<User> {
    let user: User = serde_json::from_value(serde_json::json!({
        "id": Uuid::from_u128(u128::from(n) + 1).to_string(),
        "app_id": "0b6a4f2e-3c1d-4e5f-8a9b-7c6d5e4f3a2b",
        "email": format!("person.{n}@example.com"),
        "created_at": "2026-05-01T12:00:00.123Z",
        "type": "user",
        "isGuest": false,
        "imageURL": null,
    }))
    .unwrap();
    Arc::new(user)
}

/// A session of `user_{user}` with refresh token `n`, confirmed at `now`.
pub(crate) fn session(user_n: u32, n: u32, now: i64, ttl: i64) -> StoredSession {
    StoredSession::new(
        format!("user_2{user_n:026}"),
        RefreshToken::new(token(n)).unwrap(),
        user(user_n),
        now,
        now + ttl,
    )
}

pub(crate) fn clerk_user(n: u32) -> String {
    format!("user_2{n:026}")
}

/// A plain connection to the same Redis, to look at (and tamper with) what it holds.
pub(crate) async fn raw(redis: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Every key under the prefix.
pub(crate) async fn all_keys(con: &mut MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{PREFIX}*"))
        .query_async(con)
        .await
        .unwrap();
    keys.sort();
    keys
}

/// Every byte Redis holds under the prefix: key names and values of every type.
pub(crate) async fn everything(con: &mut MultiplexedConnection) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let all: Vec<String> = redis::cmd("KEYS").arg("*").query_async(con).await.unwrap();
    for key in all {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(con).await.unwrap();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![redis::cmd("GET").arg(&key).query_async(con).await.unwrap()],
            "hash" => redis::cmd("HGETALL")
                .arg(&key)
                .query_async(con)
                .await
                .unwrap(),
            "set" => redis::cmd("SMEMBERS")
                .arg(&key)
                .query_async(con)
                .await
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(con)
                .await
                .unwrap(),
            other => panic!("unexpected type {other} for {key}"),
        };
        out.push(key.into_bytes());
        out.extend(values);
    }
    out
}

pub(crate) fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
