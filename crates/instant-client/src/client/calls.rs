//! The calls, one method each: runtime auth, admin, and impersonation.

use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::Result;
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::query::Query;
use crate::secret::RefreshToken;
use crate::transact::Transaction;
use crate::user::{Deleted, MaybeUser, SignedIn, User, UserCreated};

use super::Client;
use super::request::{
    IdTokenSignIn, Impersonation, SignedOutUser, TokenSubject, Transacted, TxId, UserRef,
};

impl Client {
    // ---- Runtime auth -------------------------------------------------------------

    /// Signs a user in with an id token (`POST /runtime/oauth/id_token`), creating the
    /// user if neither their email nor their (sub, provider) is known. Never sends a
    /// `nonce` or an `Origin`. Not retried unless [`RetryPolicy::retry_writes`](crate::RetryPolicy::retry_writes).
    pub async fn sign_in_with_id_token(&self, sign_in: &IdTokenSignIn) -> Result<SignedIn> {
        #[derive(Serialize)]
        struct Body<'a> {
            app_id: &'a str,
            id_token: &'a str,
            client_name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            refresh_token: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            extra_fields: Option<&'a Map<String, Value>>,
        }
        let endpoint = Endpoint::SignInWithIdToken;
        if sign_in.client_name.trim().is_empty() {
            return Err(invalid(endpoint, "the client name is empty"));
        }
        let refresh_token = sign_in.refresh_token.as_ref().map(RefreshToken::expose);
        let body = Body {
            app_id: &self.inner.app_id_text,
            id_token: sign_in.id_token.expose(),
            client_name: &sign_in.client_name,
            refresh_token,
            extra_fields: sign_in.extra_fields.as_ref(),
        };
        let mut secrets = vec![sign_in.id_token.expose()];
        secrets.extend(refresh_token);
        let call = self.runtime_call(endpoint, &body, secrets)?;
        let answer: UserCreated = self.execute(call).await?;
        signed_in(endpoint, answer)
    }

    /// Signs a refresh token out (`POST /runtime/signout`): it stops working. An
    /// unknown or already signed-out token counts as signed out (a `record-not-found`
    /// answer is success).
    pub async fn sign_out(&self, refresh_token: &RefreshToken) -> Result<()> {
        #[derive(Serialize)]
        struct Body<'a> {
            app_id: &'a str,
            refresh_token: &'a str,
        }
        let body = Body {
            app_id: &self.inner.app_id_text,
            refresh_token: refresh_token.expose(),
        };
        let call = self.runtime_call(Endpoint::SignOut, &body, vec![refresh_token.expose()])?;
        match self.execute::<IgnoredAny>(call).await {
            // Already signed out (or never issued): the outcome the caller wanted.
            Err(err) if err.is_not_found() => Ok(()),
            Err(err) => Err(err),
            Ok(_) => Ok(()),
        }
    }

    /// The user owning a refresh token (`POST /runtime/auth/verify_refresh_token`);
    /// an unknown or signed-out token is rejected with `record-not-found`
    /// ([`Error::is_not_found`]).
    pub async fn verify_refresh_token(&self, refresh_token: &RefreshToken) -> Result<User> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "app-id")]
            app_id: &'a str,
            #[serde(rename = "refresh-token")]
            refresh_token: &'a str,
        }
        let endpoint = Endpoint::VerifyRefreshToken;
        let body = Body {
            app_id: &self.inner.app_id_text,
            refresh_token: refresh_token.expose(),
        };
        let call = self.runtime_call(endpoint, &body, vec![refresh_token.expose()])?;
        let answer: MaybeUser = self.execute(call).await?;
        answer
            .user
            .ok_or_else(|| missing(endpoint, "the answer has no user"))
    }

    // ---- Admin --------------------------------------------------------------------

    /// Runs an InstaQL query (`POST /admin/query`), bypassing permissions; the result
    /// tree (a JSON object) mirrors the query's shape.
    pub async fn query(&self, query: &Query) -> Result<Value> {
        self.query_impl(query, None).await.and_then(result_tree)
    }

    /// Runs a query and deserializes the result tree into `T`.
    pub async fn query_as<T: DeserializeOwned>(&self, query: &Query) -> Result<T> {
        self.query_impl(query, None).await
    }

    /// Runs a query; the result tree as InstantDB sent it (checked to be a JSON object,
    /// not parsed into a tree): for passing it on unchanged, key order included.
    pub async fn query_raw(&self, query: &Query) -> Result<Box<RawValue>> {
        self.query_impl(query, None).await.and_then(raw_result_tree)
    }

    /// Applies a transaction (`POST /admin/transact`), bypassing permissions. Not
    /// retried unless [`RetryPolicy::retry_writes`](crate::RetryPolicy::retry_writes).
    pub async fn transact(&self, tx: &Transaction) -> Result<TxId> {
        self.transact_impl(tx, None).await
    }

    /// A new refresh token for a user, created when missing (`POST
    /// /admin/refresh_tokens`). Every call mints another token.
    pub async fn create_token(&self, subject: &TokenSubject) -> Result<SignedIn> {
        let endpoint = Endpoint::CreateToken;
        let mut secrets = Vec::new();
        if let TokenSubject::Email(email) = subject {
            secrets.push(email.as_str());
        }
        let call = self.admin_call(endpoint, None, Some(subject), secrets)?;
        let answer: UserCreated = self.execute(call).await?;
        signed_in(endpoint, answer)
    }

    /// Looks a user up (`GET /admin/users`); `None` when there is no such user.
    pub async fn get_user(&self, user: &UserRef) -> Result<Option<User>> {
        let call = self.user_call(Endpoint::GetUser, user)?;
        let answer: MaybeUser = self.execute(call).await?;
        Ok(answer.user)
    }

    /// Deletes a user (`DELETE /admin/users`); the deleted user, or `None` when there
    /// was none.
    pub async fn delete_user(&self, user: &UserRef) -> Result<Option<User>> {
        let call = self.user_call(Endpoint::DeleteUser, user)?;
        let answer: Deleted = self.execute(call).await?;
        Ok(answer.deleted)
    }

    /// Signs a user out (`POST /admin/sign_out`): by id or email, all of their refresh
    /// tokens; by refresh token, that one. An unknown email is rejected.
    pub async fn sign_out_user(&self, user: &UserRef) -> Result<()> {
        let endpoint = Endpoint::SignOutUser;
        let call = self.admin_call(
            endpoint,
            None,
            Some(user),
            user.secret().into_iter().collect(),
        )?;
        let answer: SignedOutUser = self.execute(call).await?;
        if answer.ok {
            Ok(())
        } else {
            Err(missing(endpoint, "the answer says `ok: false`"))
        }
    }

    // ---- Shared with Impersonated --------------------------------------------------

    pub(super) async fn query_impl<T: DeserializeOwned>(
        &self,
        query: &Query,
        who: Option<&Impersonation>,
    ) -> Result<T> {
        let endpoint = Endpoint::Query;
        if !query.is_object() {
            return Err(invalid(endpoint, "the query must be a json object"));
        }
        let call = self.admin_call(endpoint, who, Some(query), Vec::new())?;
        self.execute(call).await
    }

    pub(super) async fn transact_impl(
        &self,
        tx: &Transaction,
        who: Option<&Impersonation>,
    ) -> Result<TxId> {
        let endpoint = Endpoint::Transact;
        if let Some(problem) = tx.invalid_step() {
            return Err(invalid(endpoint, problem));
        }
        let call = self.admin_call(endpoint, who, Some(tx), Vec::new())?;
        let answer: Transacted = self.execute(call).await?;
        Ok(answer.tx_id)
    }
}

/// A query result is an object of namespaces.
pub(super) fn raw_result_tree(tree: Box<RawValue>) -> Result<Box<RawValue>> {
    // Valid JSON without surrounding space (serde_json trims it): an object starts so.
    if tree.get().starts_with('{') {
        Ok(tree)
    } else {
        Err(missing(Endpoint::Query, "the result is not a json object"))
    }
}

pub(super) fn result_tree(tree: Value) -> Result<Value> {
    if tree.is_object() {
        Ok(tree)
    } else {
        Err(missing(Endpoint::Query, "the result is not a json object"))
    }
}

fn signed_in(endpoint: Endpoint, mut answer: UserCreated) -> Result<SignedIn> {
    let refresh_token = answer
        .user
        .refresh_token
        .take()
        .ok_or_else(|| missing(endpoint, "the answer has no user.refresh_token"))?;
    Ok(SignedIn {
        user: answer.user,
        refresh_token,
        created: answer.created,
    })
}

pub(super) fn invalid(endpoint: Endpoint, detail: impl Into<String>) -> Error {
    Error::InvalidInput {
        endpoint,
        detail: detail.into(),
    }
}

pub(super) fn missing(endpoint: Endpoint, detail: &str) -> Error {
    Error::UnexpectedResponse {
        endpoint,
        status: 200,
        detail: detail.to_owned(),
    }
}
