//! A [`Client`] seen as one user: queries and transactions under their permissions.

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::Result;
use crate::query::Query;
use crate::secret::RefreshToken;
use crate::transact::Transaction;

use super::Client;
use super::calls::{raw_result_tree, result_tree};
use super::request::{Impersonation, TxId};

/// A view of a [`Client`] whose queries and transactions run as one user, with that
/// user's permissions. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Impersonated {
    client: Client,
    who: Impersonation,
}

impl Impersonated {
    /// Who the calls are made as.
    pub fn impersonation(&self) -> &Impersonation {
        &self.who
    }

    /// Runs a query as this user.
    pub async fn query(&self, query: &Query) -> Result<Value> {
        self.client
            .query_impl(query, Some(&self.who))
            .await
            .and_then(result_tree)
    }

    /// Runs a query as this user; the result as InstantDB sent it (see
    /// [`Client::query_raw`]).
    pub async fn query_raw(&self, query: &Query) -> Result<Box<RawValue>> {
        self.client
            .query_impl(query, Some(&self.who))
            .await
            .and_then(raw_result_tree)
    }

    /// Runs a query as this user and deserializes the result into `T`.
    pub async fn query_as<T: DeserializeOwned>(&self, query: &Query) -> Result<T> {
        self.client.query_impl(query, Some(&self.who)).await
    }

    /// Applies a transaction as this user.
    pub async fn transact(&self, tx: &Transaction) -> Result<TxId> {
        self.client.transact_impl(tx, Some(&self.who)).await
    }
}

impl Client {
    /// Query and transact as the user with this email (permissions apply). Needs the
    /// admin token.
    pub fn as_email(&self, email: impl Into<String>) -> Impersonated {
        self.impersonate(Impersonation::Email(email.into()))
    }

    /// Query and transact as the user owning this refresh token (permissions apply).
    /// Works without the admin token.
    pub fn as_refresh_token(&self, token: RefreshToken) -> Impersonated {
        self.impersonate(Impersonation::RefreshToken(token))
    }

    /// Query and transact as a guest (permissions apply). Needs the admin token.
    pub fn as_guest(&self) -> Impersonated {
        self.impersonate(Impersonation::Guest)
    }

    /// Query and transact as `who`.
    pub fn impersonate(&self, who: Impersonation) -> Impersonated {
        Impersonated {
            client: self.clone(),
            who,
        }
    }
}
