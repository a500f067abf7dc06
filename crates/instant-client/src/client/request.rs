//! The arguments of the calls: who a call is made as or about, and a sign-in.

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::secret::{IdToken, RefreshToken};

/// Who an admin call is made as: permission rules then apply as that user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Impersonation {
    /// `as-email`: the user with this email (needs the admin token).
    Email(String),
    /// `as-token`: the user owning this refresh token (works without the admin token).
    RefreshToken(RefreshToken),
    /// `as-guest: true`: an anonymous guest (needs the admin token).
    Guest,
}

/// A user an admin call is about: by email, id or refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserRef {
    /// By email address.
    Email(String),
    /// By user id.
    Id(Uuid),
    /// By one of the user's refresh tokens (sent in the query string of
    /// `GET`/`DELETE /admin/users`, as the official SDK does).
    RefreshToken(RefreshToken),
}

impl UserRef {
    pub(super) fn key(&self) -> &'static str {
        match self {
            UserRef::Email(_) => "email",
            UserRef::Id(_) => "id",
            UserRef::RefreshToken(_) => "refresh_token",
        }
    }

    pub(super) fn secret(&self) -> Option<&str> {
        match self {
            UserRef::Email(email) => Some(email),
            UserRef::Id(_) => None,
            UserRef::RefreshToken(token) => Some(token.expose()),
        }
    }
}

impl Serialize for UserRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        match self {
            UserRef::Email(email) => map.serialize_entry("email", email)?,
            UserRef::Id(id) => map.serialize_entry("id", id)?,
            UserRef::RefreshToken(token) => map.serialize_entry("refresh_token", token.expose())?,
        }
        map.end()
    }
}

/// Who a new refresh token is for (the user is created when missing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum TokenSubject {
    /// The user with this email.
    #[serde(rename = "email")]
    Email(String),
    /// The user with this id.
    #[serde(rename = "id")]
    Id(Uuid),
}

/// A sign-in with an id token (a Clerk session token) through an OAuth client
/// configured in the Instant dashboard.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct IdTokenSignIn {
    pub(super) id_token: IdToken,
    pub(super) client_name: String,
    pub(super) refresh_token: Option<RefreshToken>,
    pub(super) extra_fields: Option<Map<String, Value>>,
}

impl IdTokenSignIn {
    /// Signs in with `id_token` through the client named `client_name` (e.g. `clerk`).
    pub fn new(id_token: IdToken, client_name: impl Into<String>) -> Self {
        IdTokenSignIn {
            id_token,
            client_name: client_name.into(),
            refresh_token: None,
            extra_fields: None,
        }
    }

    /// Reuses this refresh token when it belongs to the same user. An unknown or
    /// signed-out token fails the whole sign-in (`record-not-found`).
    pub fn refresh_token(mut self, token: RefreshToken) -> Self {
        self.refresh_token = Some(token);
        self
    }

    /// Custom `$users` attributes, set when the user is created.
    pub fn extra_fields(mut self, fields: Map<String, Value>) -> Self {
        self.extra_fields = Some(fields);
        self
    }
}

/// The id of an applied transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
pub struct TxId(pub i64);

#[derive(serde::Deserialize)]
pub(super) struct Transacted {
    #[serde(rename = "tx-id")]
    pub(super) tx_id: TxId,
}

#[derive(serde::Deserialize)]
pub(super) struct SignedOutUser {
    pub(super) ok: bool,
}
