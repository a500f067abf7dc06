//! Secrets that never show in `Debug` or logs: admin tokens, refresh tokens and webhook
//! signing secrets. (Clerk secret keys use [`clerk_jwt::SecretKey`].)

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::Error;

macro_rules! redacting {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// The secret itself, to send on the wire. Do not log it.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(…)"))
            }
        }
    };
}

redacting!(
    /// An InstantDB app admin token (a UUID), sent as `Authorization: Bearer <token>`.
    ///
    /// ```
    /// let token = devstack::AdminToken::new("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
    /// assert_eq!(format!("{token:?}"), "AdminToken(…)");
    /// ```
    AdminToken
);

redacting!(
    /// An InstantDB refresh token: an end user's Instant session (a UUID).
    RefreshToken
);

redacting!(
    /// A Svix webhook signing secret, `whsec_<base64>`.
    WebhookSecret
);

impl AdminToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        AdminToken(token.into())
    }
}

impl RefreshToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        RefreshToken(token.into())
    }
}

impl WebhookSecret {
    /// A fresh random secret (24 random bytes, as Svix makes them).
    pub fn generate() -> Self {
        WebhookSecret(format!(
            "whsec_{}",
            STANDARD.encode(crate::util::random_bytes(24))
        ))
    }

    /// Validates `whsec_<base64>`.
    pub fn new(secret: impl Into<String>) -> Result<Self, Error> {
        let secret = secret.into().trim().to_owned();
        let valid = secret
            .strip_prefix("whsec_")
            .is_some_and(|b64| !b64.is_empty() && STANDARD.decode(b64).is_ok());
        if valid {
            Ok(WebhookSecret(secret))
        } else {
            Err(Error::invalid(
                "webhook secret",
                "must be whsec_ followed by standard base64",
            ))
        }
    }

    /// The HMAC key: the base64-decoded part after `whsec_`.
    pub(crate) fn key_bytes(&self) -> Vec<u8> {
        self.0
            .strip_prefix("whsec_")
            .and_then(|b64| STANDARD.decode(b64).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_validated() {
        let secret = WebhookSecret::generate();
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(secret.key_bytes().len(), 24);
        assert_eq!(format!("{secret:?}"), "WebhookSecret(…)");
        assert!(WebhookSecret::new("whsec_!!").is_err());
        assert!(WebhookSecret::new("abc").is_err());
        let token = RefreshToken::new("ffffffff-0000-4111-8222-333333333333");
        assert!(!format!("{token:?}").contains("ffff"));
    }
}
