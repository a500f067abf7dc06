//! The InstantDB and Clerk clients wrapped so that every call's latency is recorded.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use auth_core::{ClerkSessions, InstantAuth};
use instant_client::{Query, RefreshToken, SignedIn, Transaction, TxId, User};
use serde_json::value::RawValue;

use crate::metrics::Metrics;

/// Records the latency of every InstantDB call.
pub(crate) struct TimedInstant {
    pub(crate) inner: instant_client::Client,
    pub(crate) metrics: Arc<Metrics>,
}

impl TimedInstant {
    async fn time<T>(
        &self,
        call: &'static str,
        f: impl Future<Output = Result<T, instant_client::Error>>,
    ) -> Result<T, instant_client::Error> {
        let start = Instant::now();
        let result = f.await;
        self.metrics
            .upstream("instantdb", call, result.is_ok(), start.elapsed());
        result
    }
}

#[async_trait]
impl InstantAuth for TimedInstant {
    async fn sign_in_with_id_token(
        &self,
        id_token: &instant_client::IdToken,
        client_name: &str,
        refresh_token: Option<RefreshToken>,
    ) -> Result<SignedIn, instant_client::Error> {
        self.time(
            "sign-in-with-id-token",
            InstantAuth::sign_in_with_id_token(&self.inner, id_token, client_name, refresh_token),
        )
        .await
    }

    async fn create_token_for_email(&self, email: &str) -> Result<SignedIn, instant_client::Error> {
        self.time(
            "create-token",
            InstantAuth::create_token_for_email(&self.inner, email),
        )
        .await
    }

    async fn sign_out(&self, refresh_token: &RefreshToken) -> Result<(), instant_client::Error> {
        self.time(
            "sign-out",
            InstantAuth::sign_out(&self.inner, refresh_token),
        )
        .await
    }

    async fn sign_out_user(
        &self,
        user_id: instant_client::Uuid,
    ) -> Result<(), instant_client::Error> {
        self.time(
            "sign-out-user",
            InstantAuth::sign_out_user(&self.inner, user_id),
        )
        .await
    }

    async fn delete_user(
        &self,
        user_id: instant_client::Uuid,
    ) -> Result<bool, instant_client::Error> {
        self.time(
            "delete-user",
            InstantAuth::delete_user(&self.inner, user_id),
        )
        .await
    }

    async fn verify_refresh_token(
        &self,
        refresh_token: &RefreshToken,
    ) -> Result<User, instant_client::Error> {
        self.time(
            "verify-refresh-token",
            InstantAuth::verify_refresh_token(&self.inner, refresh_token),
        )
        .await
    }

    async fn query_as(
        &self,
        refresh_token: &RefreshToken,
        query: &Query,
    ) -> Result<Box<RawValue>, instant_client::Error> {
        self.time(
            "query",
            InstantAuth::query_as(&self.inner, refresh_token, query),
        )
        .await
    }

    async fn transact_as(
        &self,
        refresh_token: &RefreshToken,
        transaction: &Transaction,
    ) -> Result<TxId, instant_client::Error> {
        self.time(
            "transact",
            InstantAuth::transact_as(&self.inner, refresh_token, transaction),
        )
        .await
    }
}

/// Records the latency of every Clerk Backend API call.
pub(crate) struct TimedClerk {
    pub(crate) inner: clerk_backend::BackendClient,
    pub(crate) metrics: Arc<Metrics>,
}

#[async_trait]
impl ClerkSessions for TimedClerk {
    async fn revoke_session(&self, session_id: &str) -> Result<(), clerk_backend::Error> {
        let start = Instant::now();
        let result = ClerkSessions::revoke_session(&self.inner, session_id).await;
        self.metrics
            .upstream("clerk", "revoke-session", result.is_ok(), start.elapsed());
        result
    }
}
