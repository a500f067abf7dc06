//! The seams between the broker and the outside world: small traits, each implemented
//! by one concrete client of the workspace, and by `mockall` doubles in tests.

use async_trait::async_trait;
use clerk_jwt::{SessionClaims, Verifier};
use instant_client::{
    Client, IdToken, IdTokenSignIn, Query, RefreshToken, SignedIn, TokenSubject, Transaction, TxId,
    User, UserRef, Uuid,
};
use serde_json::value::RawValue;

/// Verifies Clerk session tokens.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    /// Verifies a token with every rule and returns its claims.
    async fn verify(&self, token: &str) -> Result<SessionClaims, clerk_jwt::Error>;
}

#[async_trait]
impl TokenVerifier for Verifier {
    async fn verify(&self, token: &str) -> Result<SessionClaims, clerk_jwt::Error> {
        Verifier::verify(self, token).await
    }
}

/// The InstantDB calls the broker makes.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait InstantAuth: Send + Sync {
    /// Signs in with a Clerk token (`POST /runtime/oauth/id_token`), reusing
    /// `refresh_token` when given.
    async fn sign_in_with_id_token(
        &self,
        id_token: &IdToken,
        client_name: &str,
        refresh_token: Option<RefreshToken>,
    ) -> Result<SignedIn, instant_client::Error>;

    /// Creates a refresh token for an email with the admin token.
    async fn create_token_for_email(&self, email: &str) -> Result<SignedIn, instant_client::Error>;

    /// Signs out one refresh token.
    async fn sign_out(&self, refresh_token: &RefreshToken) -> Result<(), instant_client::Error>;

    /// The user of a refresh token; `record-not-found` when it is dead.
    async fn verify_refresh_token(
        &self,
        refresh_token: &RefreshToken,
    ) -> Result<User, instant_client::Error>;

    /// Runs a query as the user of a refresh token (permissions apply); the result tree
    /// as InstantDB sent it, not parsed (a server passes it on unchanged).
    async fn query_as(
        &self,
        refresh_token: &RefreshToken,
        query: &Query,
    ) -> Result<Box<RawValue>, instant_client::Error>;

    /// Runs a transaction as the user of a refresh token (permissions apply).
    async fn transact_as(
        &self,
        refresh_token: &RefreshToken,
        transaction: &Transaction,
    ) -> Result<TxId, instant_client::Error>;

    /// Signs out every refresh token of an InstantDB user, by id (admin
    /// `POST /admin/sign_out {"id"}`).
    async fn sign_out_user(&self, user_id: Uuid) -> Result<(), instant_client::Error>;

    /// Deletes an InstantDB user by id (admin `DELETE /admin/users?id=`); whether a user
    /// was deleted (`false`: there was none, so a retry is harmless).
    async fn delete_user(&self, user_id: Uuid) -> Result<bool, instant_client::Error>;
}

#[async_trait]
impl InstantAuth for Client {
    async fn sign_in_with_id_token(
        &self,
        id_token: &IdToken,
        client_name: &str,
        refresh_token: Option<RefreshToken>,
    ) -> Result<SignedIn, instant_client::Error> {
        let mut sign_in = IdTokenSignIn::new(id_token.clone(), client_name);
        if let Some(token) = refresh_token {
            sign_in = sign_in.refresh_token(token);
        }
        Client::sign_in_with_id_token(self, &sign_in).await
    }

    async fn create_token_for_email(&self, email: &str) -> Result<SignedIn, instant_client::Error> {
        self.create_token(&TokenSubject::Email(email.to_owned()))
            .await
    }

    async fn sign_out(&self, refresh_token: &RefreshToken) -> Result<(), instant_client::Error> {
        Client::sign_out(self, refresh_token).await
    }

    async fn verify_refresh_token(
        &self,
        refresh_token: &RefreshToken,
    ) -> Result<User, instant_client::Error> {
        Client::verify_refresh_token(self, refresh_token).await
    }

    async fn query_as(
        &self,
        refresh_token: &RefreshToken,
        query: &Query,
    ) -> Result<Box<RawValue>, instant_client::Error> {
        self.as_refresh_token(refresh_token.clone())
            .query_raw(query)
            .await
    }

    async fn transact_as(
        &self,
        refresh_token: &RefreshToken,
        transaction: &Transaction,
    ) -> Result<TxId, instant_client::Error> {
        self.as_refresh_token(refresh_token.clone())
            .transact(transaction)
            .await
    }

    async fn sign_out_user(&self, user_id: Uuid) -> Result<(), instant_client::Error> {
        Client::sign_out_user(self, &UserRef::Id(user_id)).await
    }

    async fn delete_user(&self, user_id: Uuid) -> Result<bool, instant_client::Error> {
        Client::delete_user(self, &UserRef::Id(user_id))
            .await
            .map(|deleted| deleted.is_some())
    }
}

/// The Clerk Backend API calls the broker makes.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ClerkSessions: Send + Sync {
    /// Revokes a Clerk session.
    async fn revoke_session(&self, session_id: &str) -> Result<(), clerk_backend::Error>;
}

#[async_trait]
impl ClerkSessions for clerk_backend::BackendClient {
    async fn revoke_session(&self, session_id: &str) -> Result<(), clerk_backend::Error> {
        clerk_backend::BackendClient::revoke_session(self, session_id)
            .await
            .map(|_| ())
    }
}
