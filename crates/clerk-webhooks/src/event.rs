//! Clerk's event envelope and the payloads of the events this project acts on.
//!
//! Parsing is lenient where Clerk may grow and strict only where an effect needs a
//! value: the ids (and an email address's address) are required, as Clerk's schema
//! has them; every other field is optional, `null` reads as absent, unknown fields are
//! ignored, enum-like strings are open ([`SessionStatus::Other`]), and an event type
//! this crate does not know is kept whole as [`Event::Unknown`].

use std::fmt;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::Error;

/// A Clerk event: the envelope's `type` and its `data`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `user.created`: the full user.
    UserCreated(User),
    /// `user.updated`: the full user as it is now.
    UserUpdated(User),
    /// `user.deleted`: the id only (no email).
    UserDeleted(DeletedUser),
    /// `session.created`.
    SessionCreated(Session),
    /// `session.ended`: the user signed out.
    SessionEnded(Session),
    /// `session.removed`: the session was removed from its client.
    SessionRemoved(Session),
    /// `session.revoked`: revoked by an administrator or through the Backend API.
    SessionRevoked(Session),
    /// Any other type (Clerk adds new ones), kept as sent.
    Unknown {
        /// The envelope's `type`.
        event_type: String,
        /// The envelope's `data`.
        data: Value,
    },
}

/// A parsed envelope: the event and what Clerk says about it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Envelope {
    /// The event.
    pub event: Event,
    /// The Clerk instance (`instance_id`, `ins_…`), when sent.
    pub instance_id: Option<String>,
    /// When Clerk recorded the event (the envelope's `timestamp`), in Unix
    /// milliseconds, when sent.
    pub occurred_at_ms: Option<u64>,
}

impl Envelope {
    /// Reads a Clerk event envelope (`{"type", "data", "object", "timestamp",
    /// "instance_id", …}`) from a body. It does not verify anything: use
    /// [`crate::Verifier`] for deliveries. Errors give the JSON problem's kind and
    /// position, never a value.
    pub fn from_json(body: &[u8]) -> Result<Envelope, Error> {
        #[derive(Deserialize)]
        struct Head {
            #[serde(rename = "type")]
            event_type: String,
            #[allow(dead_code)]
            data: IgnoredAny,
            #[serde(default)]
            instance_id: Value,
            #[serde(default)]
            timestamp: Value,
        }
        #[derive(Deserialize)]
        struct Data<T> {
            data: T,
        }
        fn data<T: for<'de> Deserialize<'de>>(
            body: &[u8],
            event_type: &'static str,
        ) -> Result<T, Error> {
            serde_json::from_slice::<Data<T>>(body)
                .map(|d| d.data)
                .map_err(|e| Error::payload(Some(event_type), &e))
        }

        let head = serde_json::from_slice::<Head>(body).map_err(|e| Error::payload(None, &e))?;
        let event = match head.event_type.as_str() {
            USER_CREATED => Event::UserCreated(data(body, USER_CREATED)?),
            USER_UPDATED => Event::UserUpdated(data(body, USER_UPDATED)?),
            USER_DELETED => Event::UserDeleted(data(body, USER_DELETED)?),
            SESSION_CREATED => Event::SessionCreated(data(body, SESSION_CREATED)?),
            SESSION_ENDED => Event::SessionEnded(data(body, SESSION_ENDED)?),
            SESSION_REMOVED => Event::SessionRemoved(data(body, SESSION_REMOVED)?),
            SESSION_REVOKED => Event::SessionRevoked(data(body, SESSION_REVOKED)?),
            _ => Event::Unknown {
                data: serde_json::from_slice::<Data<Value>>(body)
                    .map_err(|e| Error::payload(None, &e))?
                    .data,
                event_type: head.event_type,
            },
        };
        Ok(Envelope {
            event,
            instance_id: head.instance_id.as_str().map(str::to_owned),
            occurred_at_ms: head.timestamp.as_u64(),
        })
    }
}

const USER_CREATED: &str = "user.created";
const USER_UPDATED: &str = "user.updated";
const USER_DELETED: &str = "user.deleted";
const SESSION_CREATED: &str = "session.created";
const SESSION_ENDED: &str = "session.ended";
const SESSION_REMOVED: &str = "session.removed";
const SESSION_REVOKED: &str = "session.revoked";

impl Event {
    /// The event types this crate parses into typed payloads (every other is
    /// [`Event::Unknown`]); a bounded set, fit for metric labels.
    pub const KNOWN_TYPES: [&'static str; 7] = [
        USER_CREATED,
        USER_UPDATED,
        USER_DELETED,
        SESSION_CREATED,
        SESSION_ENDED,
        SESSION_REMOVED,
        SESSION_REVOKED,
    ];

    /// The event's type as Clerk names it (`session.revoked`, or an unknown one).
    pub fn event_type(&self) -> &str {
        match self {
            Event::UserCreated(_) => USER_CREATED,
            Event::UserUpdated(_) => USER_UPDATED,
            Event::UserDeleted(_) => USER_DELETED,
            Event::SessionCreated(_) => SESSION_CREATED,
            Event::SessionEnded(_) => SESSION_ENDED,
            Event::SessionRemoved(_) => SESSION_REMOVED,
            Event::SessionRevoked(_) => SESSION_REVOKED,
            Event::Unknown { event_type, .. } => event_type,
        }
    }

    /// Whether the type is one this crate does not know.
    pub fn is_unknown(&self) -> bool {
        matches!(self, Event::Unknown { .. })
    }

    /// The Clerk user the event concerns (`user_…`), when it names one.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Event::UserCreated(user) | Event::UserUpdated(user) => Some(&user.id),
            Event::UserDeleted(deleted) => deleted.id.as_deref(),
            Event::SessionCreated(s)
            | Event::SessionEnded(s)
            | Event::SessionRemoved(s)
            | Event::SessionRevoked(s) => Some(&s.user_id),
            Event::Unknown { .. } => None,
        }
    }

    /// The Clerk session the event concerns (`sess_…`), for session events.
    pub fn session_id(&self) -> Option<&str> {
        self.session().map(|s| s.id.as_str())
    }

    /// The session, for session events.
    pub fn session(&self) -> Option<&Session> {
        match self {
            Event::SessionCreated(s)
            | Event::SessionEnded(s)
            | Event::SessionRemoved(s)
            | Event::SessionRevoked(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the event ends a session (`session.ended`, `.removed` or `.revoked`),
    /// after which none of its tokens should be honoured.
    pub fn ends_session(&self) -> bool {
        matches!(
            self,
            Event::SessionEnded(_) | Event::SessionRemoved(_) | Event::SessionRevoked(_)
        )
    }
}

/// A Clerk user, as `user.created` and `user.updated` carry it (the fields this
/// project uses; the rest are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct User {
    /// `user_…`.
    pub id: String,
    /// Every email address, verified or not.
    #[serde(default, deserialize_with = "null_as_default")]
    pub email_addresses: Vec<EmailAddress>,
    /// The id (`idn_…`) of the primary one among [`User::email_addresses`], if any.
    #[serde(default)]
    pub primary_email_address_id: Option<String>,
    /// The username, when the instance uses them.
    #[serde(default)]
    pub username: Option<String>,
    /// The first name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// The last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// The id in the application's own system, when it set one.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Whether the user is banned (they cannot sign in).
    #[serde(default, deserialize_with = "null_as_default")]
    pub banned: bool,
    /// Whether the user is locked out (too many failed attempts).
    #[serde(default, deserialize_with = "null_as_default")]
    pub locked: bool,
    /// Creation time, Unix milliseconds.
    #[serde(default)]
    pub created_at: Option<u64>,
    /// Last update, Unix milliseconds.
    #[serde(default)]
    pub updated_at: Option<u64>,
    /// Last sign-in, Unix milliseconds.
    #[serde(default)]
    pub last_sign_in_at: Option<u64>,
}

impl User {
    /// The primary email address, when the user has one.
    pub fn primary_email(&self) -> Option<&EmailAddress> {
        let id = self.primary_email_address_id.as_deref()?;
        self.email_addresses.iter().find(|e| e.id == id)
    }

    /// The primary email address's text, when the user has one.
    pub fn primary_email_address(&self) -> Option<&str> {
        self.primary_email().map(|e| e.email_address.as_str())
    }
}

/// One of a user's email addresses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct EmailAddress {
    /// `idn_…`.
    pub id: String,
    /// The address.
    pub email_address: String,
    /// How it was verified, when Clerk says.
    #[serde(default)]
    pub verification: Option<Verification>,
}

impl EmailAddress {
    /// Whether Clerk verified it.
    pub fn is_verified(&self) -> bool {
        self.verification
            .as_ref()
            .is_some_and(|v| v.status == Some(VerificationStatus::Verified))
    }
}

/// The verification of an email address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Verification {
    /// `verified`, `unverified`, …
    #[serde(default)]
    pub status: Option<VerificationStatus>,
    /// How: `email_code`, `email_link`, `from_oauth_google`, `ticket`, `admin`, …
    /// (an open list; see [`Verification::is_oauth`]).
    #[serde(default)]
    pub strategy: Option<String>,
}

impl Verification {
    /// Whether it was verified through an OAuth provider (`from_oauth_…`/`oauth_…`).
    pub fn is_oauth(&self) -> bool {
        self.strategy
            .as_deref()
            .is_some_and(|s| s.starts_with("from_oauth_") || s.starts_with("oauth_"))
    }
}

/// The `data` of `user.deleted`: `{object: "user", id, deleted: true}`, no email.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct DeletedUser {
    /// `user_…`; Clerk may leave it out.
    #[serde(default)]
    pub id: Option<String>,
    /// `"user"`.
    #[serde(default)]
    pub object: Option<String>,
    /// `true`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub deleted: bool,
}

/// A Clerk session, as the `session.*` events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Session {
    /// `sess_…`.
    pub id: String,
    /// `user_…`.
    pub user_id: String,
    /// The client (browser, device) it lives on, `client_…`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Its status after the event.
    #[serde(default)]
    pub status: Option<SessionStatus>,
    /// When it expires, Unix milliseconds.
    #[serde(default)]
    pub expire_at: Option<u64>,
    /// When it is abandoned if unused, Unix milliseconds.
    #[serde(default)]
    pub abandon_at: Option<u64>,
    /// Last activity, Unix milliseconds.
    #[serde(default)]
    pub last_active_at: Option<u64>,
    /// Creation time, Unix milliseconds.
    #[serde(default)]
    pub created_at: Option<u64>,
    /// Last update, Unix milliseconds.
    #[serde(default)]
    pub updated_at: Option<u64>,
    /// The organization last active in it.
    #[serde(default)]
    pub last_active_organization_id: Option<String>,
}

/// An enum parsed from an open set of strings: known values get a variant, any
/// other is kept in `Other`.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// Any other value, as sent.
            Other(String),
        }

        impl $name {
            /// Parses Clerk's name; an unknown one is kept as `Other`.
            pub fn parse(name: &str) -> Self {
                match name {
                    $($wire => $name::$variant,)*
                    other => $name::Other(other.to_owned()),
                }
            }

            /// Clerk's name for it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)*
                    $name::Other(name) => name,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Ok($name::parse(&name))
            }
        }
    };
}

open_enum! {
    /// A session's status.
    SessionStatus {
        /// `active`.
        Active = "active",
        /// `pending` (signed in, a task such as choosing an organization is left).
        Pending = "pending",
        /// `ended` (signed out).
        Ended = "ended",
        /// `expired`.
        Expired = "expired",
        /// `removed`.
        Removed = "removed",
        /// `replaced`.
        Replaced = "replaced",
        /// `revoked`.
        Revoked = "revoked",
        /// `abandoned`.
        Abandoned = "abandoned",
    }
}

open_enum! {
    /// An email address's verification status.
    VerificationStatus {
        /// `verified`.
        Verified = "verified",
        /// `unverified`.
        Unverified = "unverified",
        /// `transferable`.
        Transferable = "transferable",
        /// `failed`.
        Failed = "failed",
        /// `expired`.
        Expired = "expired",
    }
}

/// `null` reads as the type's default (Clerk sends `null` for empty lists at times).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_enums_round_trip_and_keep_new_values() {
        for name in ["active", "pending", "revoked", "brand_new"] {
            assert_eq!(SessionStatus::parse(name).as_str(), name);
        }
        assert_eq!(
            SessionStatus::parse("brand_new"),
            SessionStatus::Other("brand_new".into())
        );
        let status: VerificationStatus = serde_json::from_str("\"verified\"").unwrap();
        assert_eq!(status, VerificationStatus::Verified);
    }

    #[test]
    fn known_types_are_the_typed_ones() {
        for event_type in Event::KNOWN_TYPES {
            let data = if event_type.starts_with("session.") {
                r#"{"id":"sess_1","user_id":"user_1"}"#
            } else {
                r#"{"id":"user_1"}"#
            };
            let body = format!(r#"{{"type":"{event_type}","data":{data}}}"#);
            let event = Envelope::from_json(body.as_bytes()).unwrap().event;
            assert!(!event.is_unknown(), "{event_type}");
            assert_eq!(event.event_type(), event_type);
        }
    }
}
