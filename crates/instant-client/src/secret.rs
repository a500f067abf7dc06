//! Credentials that never show in `Debug`, `Display`, logs or errors: the app's admin
//! token, an end user's refresh token, and the Clerk session token signed in with.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// Why a credential was refused before any request was made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// It was empty (after trimming).
    #[error("{0} is empty")]
    Empty(&'static str),
    /// It holds a character that cannot go in an HTTP header (space, control, non-ASCII).
    #[error("{0} holds a character that cannot be sent in an HTTP header")]
    NotHeaderSafe(&'static str),
}

/// Trims, then checks the value can be sent as a header value or query parameter.
fn check(kind: &'static str, value: String) -> Result<String, CredentialError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(CredentialError::Empty(kind));
    }
    if !trimmed.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CredentialError::NotHeaderSafe(kind));
    }
    Ok(if trimmed.len() == value.len() {
        value
    } else {
        trimmed.to_owned()
    })
}

/// A credential type: a checked string that never shows in `Debug` (`Name(…)`) and
/// has no `Display`; `expose()` is the one way to read it.
macro_rules! redacted {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal,
        new: $new_doc:literal,
        expose: $expose_doc:literal $(,)?
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            #[doc = $new_doc]
            pub fn new(token: impl Into<String>) -> Result<Self, CredentialError> {
                check($kind, token.into()).map($name)
            }

            #[doc = $expose_doc]
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

redacted! {
    /// An app's admin token (a UUID, from the Instant dashboard), sent as
    /// `Authorization: Bearer <token>`. It bypasses every permission rule: keep it on the
    /// server.
    ///
    /// ```
    /// use instant_client::AdminToken;
    ///
    /// let token = AdminToken::new("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee")?;
    /// assert_eq!(format!("{token:?}"), "AdminToken(…)");
    /// assert!(AdminToken::new("  ").is_err());
    /// # Ok::<(), instant_client::CredentialError>(())
    /// ```
    AdminToken, "admin token",
    new: "Checks the token is non-empty and header-safe (not that Instant accepts it).",
    expose: "The token itself, for the `Authorization` header. Do not log it.",
}

redacted! {
    /// An end user's Instant session (a random UUID issued by Instant). It never expires:
    /// it lives until it is signed out, so reuse it rather than minting new ones.
    ///
    /// Deserializes from a JSON string; deliberately not `Serialize`, so it cannot leak
    /// into a response body by accident.
    ///
    /// ```
    /// use instant_client::RefreshToken;
    ///
    /// let token = RefreshToken::new("ffffffff-0000-4111-8222-333333333333")?;
    /// assert_eq!(format!("{token:?}"), "RefreshToken(…)");
    /// assert_eq!(token.expose(), "ffffffff-0000-4111-8222-333333333333");
    /// # Ok::<(), instant_client::CredentialError>(())
    /// ```
    RefreshToken, "refresh token",
    new: "Checks the token is non-empty and header-safe (not that Instant knows it).",
    expose: "The token itself, to store or send. Do not log it.",
}

impl<'de> Deserialize<'de> for RefreshToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        // The message names the rule, never the value.
        RefreshToken::new(raw).map_err(serde::de::Error::custom)
    }
}

redacted! {
    /// The identity token signed in with: a Clerk session token (a JWT), forwarded as is.
    /// Instant checks it with zero leeway, so forward it promptly.
    ///
    /// ```
    /// use instant_client::IdToken;
    ///
    /// let token = IdToken::new("eyJhbGciOi.eyJzdWIi.sig")?;
    /// assert_eq!(format!("{token:?}"), "IdToken(…)");
    /// # Ok::<(), instant_client::CredentialError>(())
    /// ```
    IdToken, "id token",
    new: "Checks the token is non-empty and has no whitespace or control characters (not that it is a valid JWT: Instant decides that).",
    expose: "The token itself. Do not log it.",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_refuses_unsendable_values() {
        assert_eq!(AdminToken::new(" abc\n").unwrap().expose(), "abc");
        assert_eq!(
            RefreshToken::new("").unwrap_err(),
            CredentialError::Empty("refresh token")
        );
        assert_eq!(
            IdToken::new("a b").unwrap_err(),
            CredentialError::NotHeaderSafe("id token")
        );
        assert!(AdminToken::new("tok\u{e9}n").is_err());
    }

    #[test]
    fn debug_never_shows_the_value() {
        let secret = "s3cr3t-value-1234";
        let all = format!(
            "{:?} {:?} {:?}",
            AdminToken::new(secret).unwrap(),
            RefreshToken::new(secret).unwrap(),
            IdToken::new(secret).unwrap()
        );
        assert!(!all.contains(secret), "{all}");
        assert_eq!(
            all, "AdminToken(…) RefreshToken(…) IdToken(…)",
            "each type names itself"
        );
    }

    #[test]
    fn refresh_token_deserialization_error_hides_the_value() {
        let err = serde_json::from_str::<RefreshToken>("\"bad token\"").unwrap_err();
        assert!(!err.to_string().contains("bad token"), "{err}");
    }
}
