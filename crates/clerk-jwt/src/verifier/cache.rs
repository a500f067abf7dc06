//! The verifier's two caches: the last header that passed the rules, and (when
//! configured) the tokens that passed every rule.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::claims::SessionClaims;
use crate::keys::{KeySource, VerifyingKey};
use crate::token::CheckedHeader;

/// What the header rules found, shareable without copying strings.
#[derive(Clone)]
pub(super) struct HeaderFacts {
    pub(super) kid: Option<Arc<str>>,
    pub(super) cat: Option<Arc<str>>,
    pub(super) access_token: bool,
}

impl From<&CheckedHeader<'_>> for HeaderFacts {
    fn from(h: &CheckedHeader<'_>) -> Self {
        HeaderFacts {
            kid: h.kid.map(Arc::from),
            cat: h.cat.map(Arc::from),
            access_token: h.access_token,
        }
    }
}

/// The last header that passed the rules, by its exact base64url text. Tokens of one
/// Clerk instance share their header, so most verifications skip decoding it. The
/// facts are shared whole: a hit costs one reference count, not one per string.
#[derive(Default)]
pub(super) struct HeaderCache(RwLock<Option<(Box<str>, Arc<HeaderFacts>)>>);

/// Headers longer than this are not cached.
const MAX_CACHED_HEADER: usize = 512;

impl HeaderCache {
    pub(super) fn get(&self, header: &str) -> Option<Arc<HeaderFacts>> {
        let slot = self.0.read().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some((text, facts)) if **text == *header => Some(Arc::clone(facts)),
            _ => None,
        }
    }

    pub(super) fn put(&self, header: &str, facts: &Arc<HeaderFacts>) {
        if header.len() <= MAX_CACHED_HEADER {
            *self.0.write().unwrap_or_else(PoisonError::into_inner) =
                Some((header.into(), Arc::clone(facts)));
        }
    }
}

/// Tokens that passed every rule, by their exact text, with their claims and the key
/// that verified them. A hit skips the decoding and the signature check (the bytes were
/// verified before) but re-checks time: expired entries are dropped and the token
/// verified again, so it fails with its reason. Every other rule depends only on the
/// bytes and the configuration, except the key: an entry lives no longer than the
/// maximum token lifetime after it was verified, and every entry whose key left the key
/// source is dropped as soon as a refresh retired that key.
pub(super) struct VerifiedCache {
    capacity: usize,
    entries: RwLock<HashMap<Box<str>, Entry>>,
    /// The key source's retirement count the entries were last checked against.
    checked: AtomicU64,
}

struct Entry {
    claims: Arc<SessionClaims>,
    key: VerifyingKey,
    /// Clock seconds after which the entry is not used: the verification time plus the
    /// maximum token lifetime.
    until: i64,
}

impl VerifiedCache {
    pub(super) fn new(capacity: usize) -> Self {
        VerifiedCache {
            capacity,
            entries: RwLock::new(HashMap::new()),
            checked: AtomicU64::new(0),
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(super) fn get(
        &self,
        token: &str,
        now: i64,
        leeway: i64,
        keys: &KeySource,
    ) -> Option<SessionClaims> {
        if self.capacity == 0 {
            return None;
        }
        let retirements = keys.retirements();
        if retirements != self.checked.load(Ordering::Acquire) {
            self.drop_retired(retirements, |key| keys.holds(key));
        }
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(token)?;
        let claims = &entry.claims;
        let fresh = now < entry.until
            && claims.exp > now.saturating_sub(leeway)
            && claims
                .nbf
                .is_none_or(|nbf| nbf <= now.saturating_add(leeway))
            && claims
                .iat
                .is_none_or(|iat| iat <= now.saturating_add(leeway));
        fresh.then(|| SessionClaims::clone(claims))
    }

    /// Drops every entry whose key `holds` no longer accepts, and records that the
    /// entries were checked as of `retirements`.
    fn drop_retired(&self, retirements: u64, holds: impl Fn(&VerifyingKey) -> bool) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, entry| holds(&entry.key));
        self.checked.fetch_max(retirements, Ordering::AcqRel);
    }

    /// Remembers a token verified at `now` with `key`, for at most `max_lifetime`
    /// seconds, unless `keys` no longer holds the key (a refresh retired it while the
    /// token was being verified).
    pub(super) fn put(
        &self,
        token: &str,
        claims: &SessionClaims,
        key: &VerifyingKey,
        now: i64,
        max_lifetime: i64,
        keys: &KeySource,
    ) {
        if self.capacity == 0 {
            return;
        }
        // Built before the lock is taken, and what made room dropped after it is
        // released: other verifications wait for neither.
        let token: Box<str> = token.into();
        let entry = Entry {
            claims: Arc::new(claims.clone()),
            key: key.clone(),
            until: now.saturating_add(max_lifetime),
        };
        let _forgotten = {
            let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
            let forgotten = if entries.len() >= self.capacity {
                make_room(&mut entries, now, self.capacity)
            } else {
                Vec::new()
            };
            // Checked under the write lock: a retirement stored before this check is
            // seen here; one stored after it bumps the count, and the next `get` drops
            // the entry.
            if keys.holds(key) {
                entries.insert(token, entry);
            }
            forgotten
        };
    }
}

impl Entry {
    /// The clock second from which the entry is of no use.
    fn end(&self) -> i64 {
        self.claims.exp.min(self.until)
    }
}

/// Frees room in a full cache: expired entries go; if live ones still fill it, the
/// eighth that ends first goes (the older tokens of sessions that have since rotated to
/// a new one), not all of it: forgetting every entry at once made every client's next
/// request pay a full signature check in the same moment. Returns what it took out,
/// for the caller to drop once it has released the lock: dropping half of a full cache
/// of 10,000 under it (tens of thousands of frees) held every verification of the
/// server for milliseconds, once a second in a storm of new sessions. Costs two passes
/// and one selection over the entries, once per `capacity / 8` new tokens.
fn make_room(
    entries: &mut HashMap<Box<str>, Entry>,
    now: i64,
    capacity: usize,
) -> Vec<(Box<str>, Entry)> {
    let mut forgotten: Vec<(Box<str>, Entry)> = entries.extract_if(|_, e| e.end() <= now).collect();
    if entries.len() < capacity {
        return forgotten;
    }
    let mut ends: Vec<i64> = entries.values().map(Entry::end).collect();
    let to_drop = ends.len() - (capacity - (capacity / 8).max(1));
    let (_, &mut last_dropped, _) = ends.select_nth_unstable(to_drop - 1);
    // Everything ending before `last_dropped` goes; of the entries ending exactly then,
    // only as many as it takes.
    let mut ties = to_drop - ends.iter().filter(|&&end| end < last_dropped).count();
    forgotten.extend(entries.extract_if(|_, e| match e.end().cmp(&last_dropped) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal if ties > 0 => {
            ties -= 1;
            true
        }
        std::cmp::Ordering::Equal => false,
    }));
    forgotten
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::keys::KeySet;
    use crate::testing::TestKey;

    fn claims(exp: i64) -> SessionClaims {
        SessionClaims {
            iss: "https://clerk.example.com".into(),
            sub: "user_1".into(),
            sid: "sess_1".into(),
            azp: None,
            exp,
            iat: None,
            nbf: None,
            jti: None,
            aud: Vec::new(),
            version: 2,
            status: None,
            factor_age: None,
            organization: None,
            features: crate::CommaList::default(),
            plan: None,
            actor: None,
            email: None,
            email_verified: None,
            extra: serde_json::Map::new(),
        }
    }

    #[test]
    fn an_entry_lives_at_most_the_maximum_lifetime_after_it_was_verified() {
        let key = TestKey::generate("ins_a").verifying_key();
        let keys = KeySource::Static(KeySet::from_keys([key.clone()]));
        let cache = VerifiedCache::new(8);
        cache.put("t", &claims(10_000), &key, 100, 60, &keys);
        assert!(cache.get("t", 159, 5, &keys).is_some());
        assert!(cache.get("t", 160, 5, &keys).is_none());
    }

    #[test]
    fn a_full_cache_forgets_the_expired_then_the_eighth_that_ends_first() {
        let key = TestKey::generate("ins_a").verifying_key();
        let keys = KeySource::Static(KeySet::from_keys([key.clone()]));
        let cache = VerifiedCache::new(4);
        // One expired by now (exp 150), three live ending at 300, 400, 500.
        for (token, exp) in [("t150", 150), ("t300", 300), ("t400", 400), ("t500", 500)] {
            cache.put(token, &claims(exp), &key, 100, 3600, &keys);
        }
        cache.put("t600", &claims(600), &key, 200, 3600, &keys);
        // The expired one made room: nothing live was forgotten.
        assert!(cache.get("t150", 200, 0, &keys).is_none());
        for token in ["t300", "t400", "t500", "t600"] {
            assert!(cache.get(token, 200, 0, &keys).is_some(), "{token}");
        }
        // Full of live tokens: an eighth of them (at least one) goes, the one ending
        // first; the rest stay.
        cache.put("t700", &claims(700), &key, 200, 3600, &keys);
        for (token, kept) in [
            ("t300", false),
            ("t400", true),
            ("t500", true),
            ("t600", true),
            ("t700", true),
        ] {
            assert_eq!(cache.get(token, 200, 0, &keys).is_some(), kept, "{token}");
        }
    }

    #[test]
    fn a_full_cache_of_equal_ends_forgets_an_eighth() {
        let key = TestKey::generate("ins_a").verifying_key();
        let keys = KeySource::Static(KeySet::from_keys([key.clone()]));
        let cache = VerifiedCache::new(16);
        let tokens: Vec<String> = (0..17).map(|i| format!("t{i}")).collect();
        for token in &tokens {
            cache.put(token, &claims(1000), &key, 100, 3600, &keys);
        }
        let kept = tokens
            .iter()
            .filter(|t| cache.get(t, 100, 0, &keys).is_some())
            .count();
        // Fourteen of the sixteen kept, and the newest added after the room was made.
        assert_eq!(kept, 15);
        assert!(cache.get("t16", 100, 0, &keys).is_some());
    }

    #[test]
    fn make_room_hands_back_what_it_forgot() {
        let key = TestKey::generate("ins_a").verifying_key();
        let mut entries: HashMap<Box<str>, Entry> = (0..17)
            .map(|i| {
                let entry = Entry {
                    claims: Arc::new(claims(1000 + i)),
                    key: key.clone(),
                    until: 10_000,
                };
                (format!("t{i}").into(), entry)
            })
            .collect();
        if let Some(entry) = entries.get_mut("t5") {
            entry.until = 50;
        }
        let forgotten = make_room(&mut entries, 100, 16);
        // The expired one, then the two ending first (16 / 8 = 2).
        let mut names: Vec<&str> = forgotten.iter().map(|(t, _)| &**t).collect();
        names.sort_unstable();
        assert_eq!(names, ["t0", "t1", "t5"]);
        assert_eq!(entries.len(), 14);
    }

    #[test]
    fn a_retirement_drops_the_tokens_of_the_retired_key_only() {
        let a = TestKey::generate("ins_a").verifying_key();
        let b = TestKey::generate("ins_b").verifying_key();
        let keys = KeySource::Static(KeySet::from_keys([a.clone(), b.clone()]));
        let cache = VerifiedCache::new(8);
        cache.put("ta", &claims(1000), &a, 0, 3600, &keys);
        cache.put("tb", &claims(1000), &b, 0, 3600, &keys);
        cache.drop_retired(1, |key| key.same_key(&b));
        assert!(cache.get("ta", 1, 5, &keys).is_none());
        assert!(cache.get("tb", 1, 5, &keys).is_some());
    }

    #[test]
    fn a_token_whose_key_left_while_it_was_verified_is_not_cached() {
        let a = TestKey::generate("ins_a").verifying_key();
        let b = TestKey::generate("ins_b").verifying_key();
        let only_b = KeySource::Static(KeySet::from_keys([b]));
        let cache = VerifiedCache::new(8);
        cache.put("ta", &claims(1000), &a, 0, 3600, &only_b);
        assert!(cache.get("ta", 1, 5, &only_b).is_none());
    }
}
