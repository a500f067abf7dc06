//! The Clerk secret key (`sk_test_…`, `sk_live_…`), which never shows in `Debug`,
//! `Display` or errors.

use std::fmt;

/// Why a secret key was refused before any request was made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "secret key must start with sk_test_ or sk_live_ and have a non-empty body (copy it from the Clerk dashboard, API keys)"
)]
pub struct SecretKeyError;

/// A Clerk Backend API secret key.
///
/// ```
/// let key = clerk_jwt::SecretKey::new("sk_test_abc123")?;
/// assert_eq!(format!("{key:?}"), "SecretKey(sk_test_…)");
/// assert_eq!(key.expose(), "sk_test_abc123");
/// # Ok::<(), clerk_jwt::SecretKeyError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// Validates the shape of a secret key (not whether Clerk accepts it).
    pub fn new(key: impl Into<String>) -> Result<Self, SecretKeyError> {
        let key = key.into().trim().to_owned();
        let body = key
            .strip_prefix("sk_test_")
            .or_else(|| key.strip_prefix("sk_live_"));
        match body {
            Some(body) if !body.is_empty() && body.bytes().all(|b| b.is_ascii_graphic()) => {
                Ok(SecretKey(key))
            }
            _ => Err(SecretKeyError),
        }
    }

    /// The key itself, for an `Authorization` header. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `sk_test_` or `sk_live_`: the only part safe to show.
    pub fn prefix(&self) -> &str {
        &self.0[..8]
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}…)", self.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_shape_and_redacts() {
        assert!(SecretKey::new("pk_test_abc").is_err());
        assert!(SecretKey::new("sk_test_").is_err());
        assert!(SecretKey::new("sk_live_a b").is_err());
        let key = SecretKey::new(" sk_live_XYZ123\n").unwrap();
        assert_eq!(key.expose(), "sk_live_XYZ123");
        let debug = format!("{key:?}");
        assert!(!debug.contains("XYZ123"), "{debug}");
    }
}
