//! The key layout (documented in the crate docs) and the lifetimes given to keys.

use auth_core::Refused;

/// How long a session's hash outlives its `expires_at`, in seconds, so the sweep still
/// finds it (and signs its token out) after it expired. An expired session that no
/// sweep reached within this grace is dropped by Redis, its token not signed out.
pub const SESSION_GRACE_SECS: i64 = 3600;

/// The longest TTL given (a hundred years): Redis refuses TTLs that overflow its clock.
const MAX_TTL_SECS: i64 = 100 * 365 * 86_400;

/// The names of the keys, all under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{p}s:{sid}`: the hash of one session (`exp`, `u`, `v`).
    pub(crate) fn session(&self, session_id: &str) -> String {
        format!("{}s:{session_id}", self.prefix)
    }

    /// `{p}expiry`: every session id, scored by its `expires_at`.
    pub(crate) fn expiry(&self) -> String {
        format!("{}expiry", self.prefix)
    }

    /// `{p}u:{clerk_user_id}`: the session ids of one Clerk user.
    pub(crate) fn user(&self, clerk_user_id: &str) -> String {
        format!("{}u:{clerk_user_id}", self.prefix)
    }

    /// `{p}link:{clerk_user_id}`: the InstantDB user of a Clerk user.
    pub(crate) fn link(&self, clerk_user_id: &str) -> String {
        format!("{}link:{clerk_user_id}", self.prefix)
    }

    /// `{p}refused:session:{sid}` or `{p}refused:user:{sub}`.
    pub(crate) fn refused(&self, who: &Refused) -> String {
        format!("{}refused:{}", self.prefix, who.key())
    }

    /// `{p}msg:{message_id}`: a webhook message claimed or done.
    pub(crate) fn message(&self, message_id: &str) -> String {
        format!("{}msg:{message_id}", self.prefix)
    }

    /// `{p}lock:{sid}`: the sign-in lock of a Clerk session.
    pub(crate) fn lock(&self, session_id: &str) -> String {
        format!("{}lock:{session_id}", self.prefix)
    }
}

/// The TTL of a session's keys, in seconds: until it expires, plus the sweep's grace.
pub(crate) fn session_ttl(expires_at: i64, now: i64) -> i64 {
    expires_at
        .saturating_sub(now)
        .clamp(0, MAX_TTL_SECS)
        .saturating_add(SESSION_GRACE_SECS)
}

/// The TTL of a record live until `until`, in seconds; `None` when it is over already
/// (then it is not written at all).
pub(crate) fn ttl_until(until: i64, now: i64) -> Option<i64> {
    let ttl = until.saturating_sub(now);
    (ttl > 0).then_some(ttl.min(MAX_TTL_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_under_the_prefix_and_named_by_its_kind() {
        let keys = Keys::new("ci:");
        let names = [
            (keys.session("sess_1"), "ci:s:sess_1"),
            (keys.expiry(), "ci:expiry"),
            (keys.user("user_1"), "ci:u:user_1"),
            (keys.link("user_1"), "ci:link:user_1"),
            (
                keys.refused(&Refused::Session("sess_1".into())),
                "ci:refused:session:sess_1",
            ),
            (
                keys.refused(&Refused::User("user_1".into())),
                "ci:refused:user:user_1",
            ),
            (keys.message("msg_1"), "ci:msg:msg_1"),
            (keys.lock("sess_1"), "ci:lock:sess_1"),
        ];
        for (name, expected) in names {
            assert_eq!(name, expected);
        }
        assert_eq!(
            Keys::new("clerk-instant:").session("s"),
            "clerk-instant:s:s"
        );
    }

    #[test]
    fn a_session_lives_until_it_expires_plus_the_grace() {
        assert_eq!(session_ttl(1_000, 400), 600 + SESSION_GRACE_SECS);
        // Already expired: only the grace, so the sweep can still hand it back.
        assert_eq!(session_ttl(1_000, 1_000), SESSION_GRACE_SECS);
        assert_eq!(session_ttl(1_000, 5_000), SESSION_GRACE_SECS);
        assert_eq!(
            session_ttl(i64::MAX, i64::MIN),
            MAX_TTL_SECS + SESSION_GRACE_SECS
        );
    }

    #[test]
    fn a_record_lives_until_its_until_and_a_past_one_is_not_written() {
        assert_eq!(ttl_until(110, 100), Some(10));
        assert_eq!(ttl_until(100, 100), None);
        assert_eq!(ttl_until(90, 100), None);
        assert_eq!(ttl_until(i64::MAX, 0), Some(MAX_TTL_SECS));
    }
}
