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
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            // Expired tokens go first; if that is not enough, start over (bounded, and
            // the next requests simply verify fully again).
            entries.retain(|_, e| e.claims.exp > now && e.until > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        // Checked under the write lock: a retirement stored before this check is seen
        // here; one stored after it bumps the count, and the next `get` drops the entry.
        if keys.holds(key) {
            entries.insert(
                token.into(),
                Entry {
                    claims: Arc::new(claims.clone()),
                    key: key.clone(),
                    until: now.saturating_add(max_lifetime),
                },
            );
        }
    }
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
