//! What the Backend API returns: sessions and users, unknown fields kept.

use serde::Deserialize;
use serde_json::{Map, Value};

/// A session's status. Unknown values are kept (new ones appear).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SessionStatus {
    /// `active`.
    Active,
    /// `pending`.
    Pending,
    /// `revoked`.
    Revoked,
    /// `ended`.
    Ended,
    /// `expired`.
    Expired,
    /// `removed`.
    Removed,
    /// `abandoned`.
    Abandoned,
    /// `replaced`.
    Replaced,
    /// Any other value.
    Other(String),
}

impl SessionStatus {
    fn parse(s: String) -> Self {
        match s.as_str() {
            "active" => SessionStatus::Active,
            "pending" => SessionStatus::Pending,
            "revoked" => SessionStatus::Revoked,
            "ended" => SessionStatus::Ended,
            "expired" => SessionStatus::Expired,
            "removed" => SessionStatus::Removed,
            "abandoned" => SessionStatus::Abandoned,
            "replaced" => SessionStatus::Replaced,
            _ => SessionStatus::Other(s),
        }
    }

    /// The status as Clerk writes it.
    pub fn as_str(&self) -> &str {
        match self {
            SessionStatus::Active => "active",
            SessionStatus::Pending => "pending",
            SessionStatus::Revoked => "revoked",
            SessionStatus::Ended => "ended",
            SessionStatus::Expired => "expired",
            SessionStatus::Removed => "removed",
            SessionStatus::Abandoned => "abandoned",
            SessionStatus::Replaced => "replaced",
            SessionStatus::Other(s) => s,
        }
    }

    /// Whether the session can still mint tokens.
    pub fn is_live(&self) -> bool {
        matches!(self, SessionStatus::Active | SessionStatus::Pending)
    }
}

impl<'de> Deserialize<'de> for SessionStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SessionStatus::parse)
    }
}

/// A Clerk session.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Session {
    /// `sess_…`.
    pub id: String,
    /// `user_…`.
    pub user_id: String,
    /// The status.
    pub status: SessionStatus,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One of a user's email addresses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct EmailAddress {
    /// `idn_…`.
    pub id: String,
    /// The address.
    pub email_address: String,
    /// How and whether it was verified.
    #[serde(default)]
    pub verification: Option<Verification>,
}

/// An email address's verification.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Verification {
    /// `verified`, `unverified`, …
    pub status: String,
    /// `email_code`, `oauth_google`, …
    #[serde(default)]
    pub strategy: Option<String>,
}

/// A Clerk user.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct User {
    /// `user_…`.
    pub id: String,
    /// The primary email address's id, if the user has one.
    #[serde(default)]
    pub primary_email_address_id: Option<String>,
    /// Every email address.
    #[serde(default)]
    pub email_addresses: Vec<EmailAddress>,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl User {
    /// The primary email address.
    pub fn primary_email(&self) -> Option<&EmailAddress> {
        let id = self.primary_email_address_id.as_deref()?;
        self.email_addresses.iter().find(|e| e.id == id)
    }

    /// The primary email address, if it is verified.
    pub fn verified_primary_email(&self) -> Option<&str> {
        self.primary_email()
            .filter(|e| {
                e.verification
                    .as_ref()
                    .is_some_and(|v| v.status == "verified")
            })
            .map(|e| e.email_address.as_str())
    }
}
