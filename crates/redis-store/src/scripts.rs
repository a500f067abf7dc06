//! The Lua scripts that make each store method one atomic step. `redis::Script` sends
//! them by SHA-1 (`EVALSHA`) and loads them again when Redis answers `NOSCRIPT` (after
//! a restart).
//!
//! A script's first write is the one Redis refuses when it is full (`maxmemory` with
//! `noeviction`): scripts that store begin with the write that needs memory, so a full
//! Redis changes nothing; scripts that remove begin with `DEL`/`ZREM`, which Redis
//! allows when full, so removals and sweeps keep freeing memory.
//!
//! Scripts that remove a session also remove it from its user's set, whose key they
//! build from the prefix and the hash's `u` field: a key not passed in `KEYS`, so the
//! store runs on a standalone Redis (or a primary behind Sentinel), not on a Redis
//! Cluster.

use redis::Script;

/// Extends a key's TTL to at least `ttl` seconds (never shortens it).
const EXTEND: &str = r"
local function extend(key, ttl)
  if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
end
";

/// Stores a session. KEYS: session hash, expiry set, user set. ARGV: sid, expires_at,
/// sealed value, clerk user id, ttl, now, only-if-absent (`1`/`0`), prefix.
/// Returns `{stored (1/0), previous value or ''}`: with only-if-absent and a live
/// session already stored, `{0, its value}` and nothing changes.
const INSERT: &str = r"
local old = redis.call('HMGET', KEYS[1], 'exp', 'v', 'u')
if ARGV[7] == '1' and old[1] and old[2] and tonumber(old[1]) > tonumber(ARGV[6]) then
  return {0, old[2]}
end
local ttl = tonumber(ARGV[5])
-- The first write: when Redis is full (maxmemory, noeviction) it is refused and the
-- script stops with nothing changed. (Every field is written, so no DEL is needed.)
redis.call('HSET', KEYS[1], 'exp', ARGV[2], 'u', ARGV[4], 'v', ARGV[3])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
extend(KEYS[2], ttl)
redis.call('SADD', KEYS[3], ARGV[1])
extend(KEYS[3], ttl)
if old[3] and old[3] ~= ARGV[4] then
  redis.call('SREM', ARGV[8] .. 'u:' .. old[3], ARGV[1])
end
return {1, old[2] or ''}
";

/// Replaces a session's value only if it still holds exactly the old one (a session
/// InstantDB confirmed again; the value is sealed, so the store compares the bytes it
/// read). KEYS: session hash. ARGV: old value, new value. Returns 1 if replaced.
const RECONFIRM: &str = r"
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2])
return 1
";

/// Removes a session, expired or not. KEYS: session hash, expiry set. ARGV: sid,
/// prefix. Returns its value or ''.
const REMOVE: &str = r"
local old = redis.call('HMGET', KEYS[1], 'v', 'u')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if old[2] then redis.call('SREM', ARGV[2] .. 'u:' .. old[2], ARGV[1]) end
return old[1] or ''
";

/// Removes a session only if it still holds exactly this value (one that did not
/// open). KEYS: session hash, expiry set. ARGV: sid, value, prefix. Returns 1 if
/// removed.
const DISCARD_SESSION: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'v', 'u')
if cur[1] ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if cur[2] then redis.call('SREM', ARGV[3] .. 'u:' .. cur[2], ARGV[1]) end
return 1
";

/// Deletes a string key only if it still holds exactly this value. KEYS: the key.
/// ARGV: the value. Returns 1 if deleted.
const DISCARD_VALUE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Takes up to `limit` expired sessions out. KEYS: expiry set. ARGV: now, limit,
/// prefix, retry at, then the sweeper's key ids (4 bytes each; none for a plaintext
/// store). Returns `{ids taken, values of those still stored (sid, value, …)}`.
/// Atomic, so of several sweepers each session goes to one. A value sealed (format
/// byte 1) with a key id the sweeper lacks is another replica's: its token cannot be
/// signed out here, so it stays, due again at `retry at` for a sweeper that has it.
const SWEEP: &str = r"
local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[2])
local now = tonumber(ARGV[1])
local ours = {}
for i = 5, #ARGV do ours[ARGV[i]] = true end
local out = {}
for _, sid in ipairs(ids) do
  redis.call('ZREM', KEYS[1], sid)
  local key = ARGV[3] .. 's:' .. sid
  local h = redis.call('HMGET', key, 'exp', 'v', 'u')
  if h[1] and tonumber(h[1]) <= now and h[2] and string.byte(h[2], 1) == 1
      and not ours[string.sub(h[2], 2, 5)] then
    redis.call('ZADD', KEYS[1], ARGV[4], sid)
  elseif h[1] and tonumber(h[1]) <= now then
    redis.call('DEL', key)
    if h[3] then redis.call('SREM', ARGV[3] .. 'u:' .. h[3], sid) end
    if h[2] then
      table.insert(out, sid)
      table.insert(out, h[2])
    end
  elseif h[1] then
    redis.call('ZADD', KEYS[1], h[1], sid)
  end
end
return {#ids, out}
";

/// Refuses until `until`, unless refused until later already. KEYS: the refusal.
/// ARGV: until, ttl. Runs even when Redis is full (`allow-oom`, Redis 7): a sign-out
/// is recorded when new sign-ins are shed.
const REFUSE: &str = r"#!lua flags=allow-oom
local cur = tonumber(redis.call('GET', KEYS[1]) or '')
if cur and cur >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
";

/// Claims a message id. KEYS: the message. ARGV: now, lease until, ttl, holder.
/// Values are `c:<until>:<holder>` (claimed) and `d:<until>` (done). Returns 0
/// claimed, 1 in progress, 2 done.
const CLAIM: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local state, untl = string.match(cur, '^(%a):(%-?%d+)')
  if state and tonumber(untl) > tonumber(ARGV[1]) then
    if state == 'd' then return 2 end
    return 1
  end
end
redis.call('SET', KEYS[1], 'c:' .. ARGV[2] .. ':' .. ARGV[4], 'EX', ARGV[3])
return 0
";

/// Gives a claim back: deletes the message only while this holder claims it (not
/// done, not claimed by another since). KEYS: the message. ARGV: holder. Returns 1 if
/// deleted.
const RELEASE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.match(cur, '^c:%-?%d+:(.*)$') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Takes a lock unless held by someone until later than now. KEYS: the lock. ARGV:
/// now, until, holder, ttl. The value is `<until>:<holder>`. Returns 1 if taken.
const TRY_LOCK: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local untl = tonumber(string.match(cur, '^(%-?%d+):'))
  if untl and untl > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2] .. ':' .. ARGV[3], 'EX', ARGV[4])
return 1
";

/// Releases a lock if this holder holds it. KEYS: the lock. ARGV: holder.
const UNLOCK: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.match(cur, '^%-?%d+:(.*)$') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The scripts, hashed once.
pub(crate) struct Scripts {
    pub(crate) insert: Script,
    pub(crate) reconfirm: Script,
    pub(crate) remove: Script,
    pub(crate) discard_session: Script,
    pub(crate) discard_value: Script,
    pub(crate) sweep: Script,
    pub(crate) refuse: Script,
    pub(crate) claim: Script,
    pub(crate) release: Script,
    pub(crate) try_lock: Script,
    pub(crate) unlock: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            insert: Script::new(&format!("{EXTEND}{INSERT}")),
            reconfirm: Script::new(RECONFIRM),
            remove: Script::new(REMOVE),
            discard_session: Script::new(DISCARD_SESSION),
            discard_value: Script::new(DISCARD_VALUE),
            sweep: Script::new(SWEEP),
            refuse: Script::new(REFUSE),
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
            try_lock: Script::new(TRY_LOCK),
            unlock: Script::new(UNLOCK),
        }
    }
}
