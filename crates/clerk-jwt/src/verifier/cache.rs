//! The verifier's two caches: the last header that passed the rules, and (when
//! configured) the tokens that passed every rule.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::claims::SessionClaims;
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
/// Clerk instance share their header, so most verifications skip decoding it.
#[derive(Default)]
pub(super) struct HeaderCache(RwLock<Option<(Box<str>, HeaderFacts)>>);

/// Headers longer than this are not cached.
const MAX_CACHED_HEADER: usize = 512;

impl HeaderCache {
    pub(super) fn get(&self, header: &str) -> Option<HeaderFacts> {
        let slot = self.0.read().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some((text, facts)) if **text == *header => Some(facts.clone()),
            _ => None,
        }
    }

    pub(super) fn put(&self, header: &str, facts: &HeaderFacts) {
        if header.len() <= MAX_CACHED_HEADER {
            *self.0.write().unwrap_or_else(PoisonError::into_inner) =
                Some((header.into(), facts.clone()));
        }
    }
}

/// Tokens that passed every rule, by their exact text, with their claims. A hit skips
/// the decoding and the signature check (the bytes were verified before) but re-checks
/// time: expired entries are dropped and the token verified again, so it fails with
/// its reason. Every other rule depends only on the bytes and the configuration.
pub(super) struct VerifiedCache {
    capacity: usize,
    entries: RwLock<HashMap<Box<str>, Arc<SessionClaims>>>,
}

impl VerifiedCache {
    pub(super) fn new(capacity: usize) -> Self {
        VerifiedCache {
            capacity,
            entries: RwLock::new(HashMap::new()),
        }
    }

    pub(super) fn get(&self, token: &str, now: i64, leeway: i64) -> Option<SessionClaims> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let claims = entries.get(token)?;
        let fresh = claims.exp > now.saturating_sub(leeway)
            && claims
                .nbf
                .is_none_or(|nbf| nbf <= now.saturating_add(leeway))
            && claims
                .iat
                .is_none_or(|iat| iat <= now.saturating_add(leeway));
        fresh.then(|| SessionClaims::clone(claims))
    }

    pub(super) fn put(&self, token: &str, claims: &SessionClaims, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            // Expired tokens go first; if that is not enough, start over (bounded, and
            // the next requests simply verify fully again).
            entries.retain(|_, c| c.exp > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(token.into(), Arc::new(claims.clone()));
    }
}
