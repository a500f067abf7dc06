//! Users and sessions of the local Clerk, in the Backend API's JSON shapes.

use serde_json::{Map, Value, json};

/// A user of the local Clerk.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct User {
    /// `user_…`.
    pub id: String,
    /// The primary email address, if any.
    pub email: Option<String>,
    /// Whether the primary email address is verified.
    pub email_verified: bool,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// `public_metadata`, a JSON object.
    pub public_metadata: Value,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Last update, Unix milliseconds.
    pub updated_at: i64,
    pub(crate) email_id: Option<String>,
}

impl User {
    /// The user in the Backend API's JSON shape (`GET /v1/users/{id}`).
    pub fn to_json(&self) -> Value {
        let email_addresses: Vec<Value> = match (&self.email, &self.email_id) {
            (Some(email), Some(id)) => vec![json!({
                "id": id,
                "object": "email_address",
                "email_address": email,
                "reserved": false,
                "verification": if self.email_verified {
                    json!({"status": "verified", "strategy": "admin", "attempts": null, "expire_at": null})
                } else {
                    json!({"status": "unverified", "strategy": "email_code", "attempts": 0, "expire_at": null})
                },
                "linked_to": [],
                "created_at": self.created_at,
                "updated_at": self.updated_at,
            })],
            _ => Vec::new(),
        };
        json!({
            "object": "user",
            "id": self.id,
            "external_id": null,
            "username": self.username,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "image_url": "",
            "has_image": false,
            "primary_email_address_id": self.email_id,
            "primary_phone_number_id": null,
            "primary_web3_wallet_id": null,
            "password_enabled": false,
            "two_factor_enabled": false,
            "totp_enabled": false,
            "backup_code_enabled": false,
            "email_addresses": email_addresses,
            "phone_numbers": [],
            "web3_wallets": [],
            "external_accounts": [],
            "public_metadata": self.public_metadata,
            "private_metadata": {},
            "unsafe_metadata": {},
            "banned": false,
            "locked": false,
            "last_sign_in_at": null,
            "last_active_at": null,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }

    /// The value of a session-token shortcode such as `user.primary_email_address`, or
    /// `None` when it does not resolve (Clerk then writes `null`).
    pub(crate) fn shortcode(&self, code: &str) -> Option<Value> {
        let code = code.trim();
        let text = |s: &Option<String>| s.clone().map(Value::String);
        match code {
            "user.id" => Some(Value::String(self.id.clone())),
            "user.primary_email_address" => text(&self.email),
            "user.email_verified" => self
                .email
                .as_ref()
                .map(|_| Value::Bool(self.email_verified)),
            "user.first_name" => text(&self.first_name),
            "user.last_name" => text(&self.last_name),
            "user.full_name" => match (&self.first_name, &self.last_name) {
                (Some(f), Some(l)) => Some(Value::String(format!("{f} {l}"))),
                (Some(n), None) | (None, Some(n)) => Some(Value::String(n.clone())),
                (None, None) => None,
            },
            "user.username" => text(&self.username),
            "user.created_at" => Some(Value::from(self.created_at / 1000)),
            "user.public_metadata" => Some(self.public_metadata.clone()),
            _ => {
                let path = code.strip_prefix("user.public_metadata.")?;
                let mut value = &self.public_metadata;
                for part in path.split('.') {
                    value = value.get(part)?;
                }
                Some(value.clone())
            }
        }
    }
}

/// What to create a user with.
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct NewUser {
    pub(crate) email: Option<String>,
    pub(crate) email_verified: bool,
    pub(crate) first_name: Option<String>,
    pub(crate) last_name: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) public_metadata: Option<Value>,
}

impl NewUser {
    /// A user with a verified primary email address.
    pub fn with_email(email: impl Into<String>) -> Self {
        NewUser {
            email: Some(email.into()),
            email_verified: true,
            ..NewUser::default()
        }
    }

    /// A user with no email address (a phone-only user: the `email` claim is `null`).
    pub fn without_email() -> Self {
        NewUser::default()
    }

    /// Leaves the email address unverified.
    pub fn unverified(mut self) -> Self {
        self.email_verified = false;
        self
    }

    /// Sets the first name.
    pub fn first_name(mut self, name: impl Into<String>) -> Self {
        self.first_name = Some(name.into());
        self
    }

    /// Sets the last name.
    pub fn last_name(mut self, name: impl Into<String>) -> Self {
        self.last_name = Some(name.into());
        self
    }

    /// Sets the username.
    pub fn username(mut self, name: impl Into<String>) -> Self {
        self.username = Some(name.into());
        self
    }

    /// Sets `public_metadata` (a JSON object).
    pub fn public_metadata(mut self, metadata: Value) -> Self {
        self.public_metadata = Some(metadata);
        self
    }
}

/// Changes to a user; unset fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct UserUpdate {
    pub(crate) email: Option<Option<String>>,
    pub(crate) email_verified: Option<bool>,
    pub(crate) first_name: Option<String>,
    pub(crate) last_name: Option<String>,
    pub(crate) public_metadata: Option<Value>,
}

impl UserUpdate {
    /// No change yet.
    pub fn new() -> Self {
        UserUpdate::default()
    }

    /// Replaces the primary email address (verified unless [`UserUpdate::email_verified`]
    /// says otherwise); `None` removes it.
    pub fn email(mut self, email: Option<String>) -> Self {
        self.email = Some(email);
        self
    }

    /// Marks the primary email address verified or not.
    pub fn email_verified(mut self, verified: bool) -> Self {
        self.email_verified = Some(verified);
        self
    }

    /// Sets the first name.
    pub fn first_name(mut self, name: impl Into<String>) -> Self {
        self.first_name = Some(name.into());
        self
    }

    /// Sets the last name.
    pub fn last_name(mut self, name: impl Into<String>) -> Self {
        self.last_name = Some(name.into());
        self
    }

    /// Replaces `public_metadata`.
    pub fn public_metadata(mut self, metadata: Value) -> Self {
        self.public_metadata = Some(metadata);
        self
    }
}

/// A session's status, as the Backend API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionState {
    /// Signed in; mints tokens.
    Active,
    /// Signed in with a task left (`sts: pending` in its tokens); mints tokens.
    Pending,
    /// Revoked through the Backend API.
    Revoked,
    /// Signed out.
    Ended,
    /// Removed by the user.
    Removed,
}

impl SessionState {
    /// The status string: `active`, `pending`, `revoked`, `ended`, `removed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionState::Active => "active",
            SessionState::Pending => "pending",
            SessionState::Revoked => "revoked",
            SessionState::Ended => "ended",
            SessionState::Removed => "removed",
        }
    }

    /// Whether the session still mints tokens.
    pub const fn mints_tokens(self) -> bool {
        matches!(self, SessionState::Active | SessionState::Pending)
    }

    pub(crate) fn parse(text: &str) -> Option<SessionState> {
        [
            SessionState::Active,
            SessionState::Pending,
            SessionState::Revoked,
            SessionState::Ended,
            SessionState::Removed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A session of the local Clerk.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Session {
    /// `sess_…`.
    pub id: String,
    /// The user, `user_…`.
    pub user_id: String,
    /// `client_…`.
    pub client_id: String,
    /// The status.
    pub status: SessionState,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Last update, Unix milliseconds.
    pub updated_at: i64,
}

impl Session {
    /// The session in the Backend API's JSON shape (`GET /v1/sessions/{id}`).
    pub fn to_json(&self) -> Value {
        json!({
            "object": "session",
            "id": self.id,
            "client_id": self.client_id,
            "user_id": self.user_id,
            "status": self.status.as_str(),
            "last_active_at": self.updated_at,
            "last_active_organization_id": null,
            "actor": null,
            "expire_at": self.created_at + 7 * 86_400_000,
            "abandon_at": self.created_at + 30 * 86_400_000,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

/// Resolves a custom-claims template as Clerk does: a string that is exactly one
/// `{{shortcode}}` becomes the typed value (or `null`); shortcodes inside a longer
/// string are interpolated (unresolved ones as empty text); objects and arrays recurse.
pub(crate) fn resolve_template(template: &Value, user: &User) -> Value {
    match template {
        Value::String(text) => {
            let trimmed = text.trim();
            if let Some(code) = trimmed
                .strip_prefix("{{")
                .and_then(|rest| rest.strip_suffix("}}"))
                .filter(|code| !code.contains("{{"))
            {
                return user.shortcode(code).unwrap_or(Value::Null);
            }
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(start) = rest.find("{{") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let Some(end) = after.find("}}") else {
                    out.push_str(&rest[start..]);
                    rest = "";
                    break;
                };
                match user.shortcode(&after[..end]) {
                    Some(Value::String(s)) => out.push_str(&s),
                    Some(Value::Null) | None => {}
                    Some(other) => out.push_str(&other.to_string()),
                }
                rest = &after[end + 2..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve_template(v, user)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| resolve_template(v, user)).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> User {
        User {
            id: "user_1".into(),
            email: Some("alice@example.com".into()),
            email_verified: true,
            first_name: Some("Alice".into()),
            last_name: None,
            username: None,
            public_metadata: json!({"role": "admin", "team": {"id": 7}}),
            created_at: 1_000,
            updated_at: 1_000,
            email_id: Some("idn_1".into()),
        }
    }

    #[test]
    fn templates_resolve_like_clerk() {
        let template = json!({
            "email": "{{user.primary_email_address}}",
            "email_verified": "{{user.email_verified}}",
            "greeting": "hi {{user.first_name}} {{user.last_name}}!",
            "role": "{{ user.public_metadata.role }}",
            "team": "{{user.public_metadata.team.id}}",
            "missing": "{{user.nope}}",
            "fixed": 3,
        });
        assert_eq!(
            resolve_template(&template, &alice()),
            json!({
                "email": "alice@example.com",
                "email_verified": true,
                "greeting": "hi Alice !",
                "role": "admin",
                "team": 7,
                "missing": null,
                "fixed": 3,
            })
        );
        let mut phone_only = alice();
        phone_only.email = None;
        phone_only.email_id = None;
        assert_eq!(
            resolve_template(&template, &phone_only)["email"],
            Value::Null
        );
        assert_eq!(
            resolve_template(&template, &phone_only)["email_verified"],
            Value::Null
        );
    }
}
