#![doc = include_str!("../README.md")]
//!
//! # Boundary
//!
//! It knows Redis, the store contract of `auth-core` and how to seal a
//! value; it decides nothing about sessions (the broker does) and reads no
//! environment (the apps turn settings into a [`RedisStoreConfig`]).
//!
//! # Key layout
//!
//! Every key starts with the prefix `{p}` (default `clerk-instant:`) and has a TTL, so
//! what Redis holds is bounded by the live sessions:
//!
//! | Key | Type | Holds | TTL |
//! |---|---|---|---|
//! | `{p}s:{sid}` | hash | `exp` (the session's `expires_at`, plain), `u` (the Clerk user id), `v` (the sealed session: Clerk user, refresh token, InstantDB user, `confirmed_at`, `expires_at`) | `expires_at` − now + 1 h ([`SESSION_GRACE_SECS`]), so the sweep still finds it expired |
//! | `{p}expiry` | sorted set | every session id, scored by `expires_at` (for the sweep and `len`) | extended at every write to the longest session TTL |
//! | `{p}u:{clerk_user_id}` | set | the user's session ids (for `sessions_of`; stale members pruned when read) | extended at every write to the longest TTL of its sessions |
//! | `{p}link:{clerk_user_id}` | string | the sealed InstantDB user id and email | until the link's `until` |
//! | `{p}refused:session:{sid}`, `{p}refused:user:{sub}` | string | the refusal's `until` (a later one wins) | until `until` |
//! | `{p}msg:{message_id}` | string | `c:<lease until>` (claimed) or `d:<keep until>` (done) | until the lease or the keep |
//! | `{p}lock:{sid}` | string | `<until>:<holder>` | until `until` |
//!
//! Times in values are the broker's clock (`now` passed in), compared by the store;
//! TTLs only bound memory. Each store method is one command or one Lua script, so it
//! is one atomic step: of two replicas racing in `insert_if_absent`, `claim_message`
//! or `try_lock` one wins, and each expired session goes to exactly one `sweep`. The
//! scripts touch a session's user set by name, so the store needs a standalone Redis
//! (or a Sentinel-managed primary), not a Redis Cluster, of version 7.0 or later
//! (script flags, `ZRANGE … BYSCORE`).
//!
//! # Memory: run Redis with `maxmemory-policy noeviction`
//!
//! A session costs about 1.3 KB of Redis memory (measured on Redis 7.0: the hash
//! ~720 bytes, the user's set ~250, the expiry set's entry ~150), so size `maxmemory`
//! at twice that times the most live sessions expected. Every key has a TTL, so any
//! `volatile-*` policy could evict any of them, and eviction is silent loss: an
//! evicted session is an InstantDB refresh token no one signs out (and the next
//! sign-in mints a second one), an evicted refusal honours a signed-out session
//! again, an evicted lock or message id lets a sign-in or a webhook run twice.
//! `volatile-ttl` is the worst: it evicts the shortest-lived keys first, which are
//! the locks and refusals. With `noeviction` a full Redis refuses writes instead: the
//! store answers [`auth_core::StoreError::Full`] for new sessions, locks and the
//! other writes (nothing changed, nothing evicted: the broker sheds the sign-in with
//! 503 and `Retry-After`), while reads, removals and sweeps keep working and free
//! memory, and refusals are still recorded (that script runs `allow-oom`), so a
//! sign-out is honoured when Redis is full.
//!
//! # Security defaults
//!
//! - **Nothing readable in Redis gives an InstantDB session.** With
//!   [`Sealing::Keys`] every session and user link is sealed with AES-256-GCM
//!   (aws-lc-rs) under a random 96-bit nonce, with the full Redis key as additional
//!   authenticated data: a value copied under another session's key does not open.
//!   The first key seals, all keys open, so keys rotate without a flag day.
//!   [`Sealing::Plaintext`] is the explicit opt-out (development only).
//! - **A value that does not open is never used.** Tampered, malformed, or
//!   plaintext in a keyed store (so no one who can write to Redis can plant a
//!   session): it is logged at warn (the key, never the value), treated as absent and
//!   removed (only if it still holds that exact value). Its InstantDB token, if it had
//!   one, is not signed out: the store cannot read it.
//! - **Another replica's value is left alone.** A well-formed value sealed with a key
//!   this store does not have (its key id names none of ours), or sealed while this
//!   store has none, belongs to a replica whose keys differ: a rotation rolled out with
//!   the new key first while older replicas still run, or a replica given the wrong
//!   key. Removing it would leave its InstantDB token alive with no entry holding it,
//!   so reading it fails instead ([`Outage::SealedElsewhere`], retry later, logged at
//!   warn) and it stays for the replicas that can open it. The scan of a user's
//!   sessions (a `user.deleted` webhook) fails the same way, so the delivery is
//!   retried; the sweep leaves such an expired session where it is, due again a
//!   minute later for a replica that has the key. A key rotation that drops a key too
//!   early therefore fails the sessions it sealed until they expire; their users sign
//!   in anew on another Clerk session.
//! - **No secret in messages.** The URL's password shows as `***` in `Display` and
//!   `Debug` ([`RedisUrl`]) and is scrubbed from every error text; `Debug` of the
//!   keys shows key ids (the first four bytes of each key's SHA-256), never a key.
//! - **Down or slow is an error, never a wait or a fall-back.** [`RedisStore::new`]
//!   does not connect; the first call does, and the connection is re-made after it
//!   breaks or after a call timed out on it (a connection that went silent, as after
//!   a fail-over, is not waited on for ever). A read or idempotent write that finds
//!   its connection dropped (Redis restarted) runs once more on a new one, so a
//!   restart costs no failed read; `insert`, `remove`, `sweep`, `claim_message` and
//!   `try_lock` report the failure instead (a second run would answer differently).
//!   Every call waits at most [`Timeouts::bound`] (1 s to connect + 2 s for the
//!   answer by default), then fails with [`auth_core::StoreError::Unavailable`] whose
//!   source is an [`Outage`] naming the server and the method.
//! - The connection belongs to the Tokio runtime of the store's first call: use a
//!   store within one runtime.
//! - `rediss://` uses TLS through rustls (aws-lc-rs) with the system's root
//!   certificates.

mod error;
mod keys;
mod scripts;
mod sealing;
mod store;
mod url;

pub use error::{Error, Outage, RedisText};
pub use keys::SESSION_GRACE_SECS;
pub use sealing::{EncryptionKeys, KEY_LEN, KeyError, Sealing};
pub use store::{DEFAULT_PREFIX, ForeignSeals, RedisStore, RedisStoreConfig, Timeouts};
pub use url::RedisUrl;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
