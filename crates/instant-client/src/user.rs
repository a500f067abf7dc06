//! The `$users` entity as InstantDB returns it, and the shapes of the auth answers.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::secret::RefreshToken;

/// An app user (`$users`). Only `id` is assumed present; every field InstantDB adds
/// (custom `$users` attributes included) is kept in [`User::extra`].
///
/// Serializing writes every field except the refresh token, which is never
/// serialized (so a user can be sent to a browser without leaking it).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct User {
    /// The user's id.
    pub id: Uuid,
    /// The app the user belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<Uuid>,
    /// When the user was created, as InstantDB sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// The email address, when one is known (Instant stores it only when the token's
    /// `email_verified` is `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `user` or `guest`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub user_type: Option<UserType>,
    /// `imageURL`.
    #[serde(default, rename = "imageURL", skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// `isGuest`.
    #[serde(default, rename = "isGuest", skip_serializing_if = "Option::is_none")]
    pub is_guest: Option<bool>,
    /// `refresh_token`, in answers that carry one. Never serialized.
    #[serde(default, skip_serializing)]
    pub refresh_token: Option<RefreshToken>,
    /// Every other field, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl User {
    /// A user with only an id, for tests and doubles.
    pub fn new(id: Uuid) -> Self {
        User {
            id,
            app_id: None,
            created_at: None,
            email: None,
            user_type: None,
            image_url: None,
            is_guest: None,
            refresh_token: None,
            extra: Map::new(),
        }
    }

    /// Whether InstantDB marks this user a guest (`type: "guest"` or `isGuest: true`).
    pub fn is_guest(&self) -> bool {
        self.is_guest == Some(true) || self.user_type == Some(UserType::Guest)
    }
}

/// `$users.type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum UserType {
    /// A signed-in user.
    User,
    /// A guest.
    Guest,
    /// Anything else, as sent.
    #[serde(untagged)]
    Other(String),
}

/// A timestamp as InstantDB sends it: milliseconds since the epoch, or text (ISO 8601
/// from SQL rows), or anything else, kept as is.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Timestamp {
    /// Milliseconds since the Unix epoch.
    Millis(i64),
    /// Text, e.g. `2026-05-01T12:00:00.123Z`.
    Text(String),
    /// Any other JSON value.
    Other(Value),
}

/// A user with a new (or reused) refresh token: the answer to a sign-in or to
/// creating a token.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SignedIn {
    /// The user; its `refresh_token` is moved to [`SignedIn::refresh_token`].
    pub user: User,
    /// The user's Instant session. Store it and reuse it: a sign-in without it mints a
    /// new one every time, and tokens never expire.
    pub refresh_token: RefreshToken,
    /// Whether the user was created by this call.
    pub created: bool,
}

impl SignedIn {
    /// Builds one, for tests and doubles.
    pub fn new(user: User, refresh_token: RefreshToken, created: bool) -> Self {
        SignedIn {
            user,
            refresh_token,
            created,
        }
    }
}

/// `{"user": {...}, "created": bool}`.
#[derive(Deserialize)]
pub(crate) struct UserCreated {
    pub(crate) user: User,
    pub(crate) created: bool,
}

/// `{"user": {...}}`, the user possibly `null`.
#[derive(Deserialize)]
pub(crate) struct MaybeUser {
    pub(crate) user: Option<User>,
}

/// `{"deleted": {...}}`, possibly `null`.
#[derive(Deserialize)]
pub(crate) struct Deleted {
    pub(crate) deleted: Option<User>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_spec_user_and_keeps_unknown_fields() {
        let user: User = serde_json::from_value(json!({
            "app_id": "11111111-2222-4333-8444-555555555555",
            "id": "99999999-8888-4777-8666-555555555555",
            "created_at": 1_780_000_000_000_i64,
            "email": "alice@example.com",
            "type": "user",
            "imageURL": null,
            "isGuest": false,
            "refresh_token": "ffffffff-0000-4111-8222-333333333333",
            "nickname": "al"
        }))
        .unwrap();
        assert_eq!(user.email.as_deref(), Some("alice@example.com"));
        assert_eq!(user.user_type, Some(UserType::User));
        assert_eq!(user.created_at, Some(Timestamp::Millis(1_780_000_000_000)));
        assert_eq!(user.extra.get("nickname"), Some(&json!("al")));
        assert!(!user.is_guest());
        assert!(user.refresh_token.is_some());
        let back = serde_json::to_value(&user).unwrap();
        assert!(back.get("refresh_token").is_none(), "{back}");
        assert_eq!(back["nickname"], "al");
    }

    #[test]
    fn only_id_is_required() {
        let user: User = serde_json::from_value(
            json!({"id": "99999999-8888-4777-8666-555555555555", "type": "robot", "created_at": "2026-01-01T00:00:00Z"}),
        )
        .unwrap();
        assert_eq!(user.user_type, Some(UserType::Other("robot".into())));
        assert_eq!(
            user.created_at,
            Some(Timestamp::Text("2026-01-01T00:00:00Z".into()))
        );
        assert!(serde_json::from_value::<User>(json!({"email": "a@b.c"})).is_err());
    }
}
