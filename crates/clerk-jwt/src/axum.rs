//! An axum extractor for verified Clerk sessions (feature `axum`).
//!
//! Put a [`ClerkAuth`] in your state (directly or through [`FromRef`]) and take a
//! [`ClerkSession`] in any handler: the request's token is found the way Clerk sends it
//! ([`TokenExtractor`]), verified with every rule, and a failure becomes a JSON error
//! (`{"error": {"code", "message"}}`) with 401 for token problems and 503 when keys
//! cannot be loaded.
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use clerk_jwt::axum::{ClerkAuth, ClerkSession};
//! use clerk_jwt::{PublishableKey, Verifier};
//!
//! async fn me(session: ClerkSession) -> Json<serde_json::Value> {
//!     Json(serde_json::json!({ "user": session.claims.sub, "email": session.claims.email }))
//! }
//!
//! # fn main() -> Result<(), clerk_jwt::Error> {
//! let pk: PublishableKey = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k".parse()?;
//! let auth = ClerkAuth::new(Verifier::builder().publishable_key(pk.clone()).build()?, Some(&pk));
//! let app: Router = Router::new().route("/me", get(me)).with_state(auth);
//! # let _ = app;
//! # Ok(()) }
//! ```
//!
//! Note on boundaries: `clerk-jwt` knows no HTTP framework by default. This module is
//! compiled only with the `axum` feature, and only adapts [`Verifier`] and
//! [`TokenExtractor`] to axum's extractor traits.

use std::fmt;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::{
    Error, PublishableKey, Refusal, SessionClaims, TokenExtractor, TokenLocation, Verifier,
};

/// What the extractor needs: a verifier and where to look for the token.
#[derive(Clone, Debug)]
pub struct ClerkAuth {
    verifier: Verifier,
    extractor: TokenExtractor,
}

impl ClerkAuth {
    /// With the publishable key, the suffixed `__session_<suffix>` cookie is read too.
    pub fn new(verifier: Verifier, publishable_key: Option<&PublishableKey>) -> Self {
        ClerkAuth {
            verifier,
            extractor: TokenExtractor::new(publishable_key),
        }
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Finds and verifies the token of a request's headers.
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<ClerkSession, ClerkRejection> {
        let found = self
            .extractor
            .extract(headers)
            .ok_or(ClerkRejection::Missing)?;
        let claims = self
            .verifier
            .verify(found.token)
            .await
            .map_err(ClerkRejection::Invalid)?;
        Ok(ClerkSession {
            claims,
            token: found.token.to_owned(),
            location: found.location,
        })
    }
}

/// A request's verified Clerk session.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClerkSession {
    /// The verified claims.
    pub claims: SessionClaims,
    /// The token itself (to forward it, e.g. to InstantDB). A credential: never log it.
    pub token: String,
    /// Where the token was found.
    pub location: TokenLocation,
}

impl fmt::Debug for ClerkSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClerkSession")
            .field("claims", &self.claims)
            .field("token", &"[redacted]")
            .field("location", &self.location)
            .finish()
    }
}

impl<S> FromRequestParts<S> for ClerkSession
where
    ClerkAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ClerkRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        ClerkAuth::from_ref(state)
            .authenticate(&parts.headers)
            .await
    }
}

/// Why a request has no verified session.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClerkRejection {
    /// No token in the `Authorization` header or the session cookie.
    Missing,
    /// The token was rejected, or could not be checked.
    Invalid(Error),
}

impl ClerkRejection {
    /// The HTTP status: 401 for a missing or rejected token, 503 when the keys could not
    /// be loaded, 500 for a configuration problem.
    pub fn status(&self) -> StatusCode {
        match self {
            ClerkRejection::Missing => StatusCode::UNAUTHORIZED,
            ClerkRejection::Invalid(e) if e.is_token_rejection() => StatusCode::UNAUTHORIZED,
            ClerkRejection::Invalid(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            ClerkRejection::Invalid(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code and client-safe message ([`Refusal`], shared with other HTTP surfaces).
    pub fn refusal(&self) -> Refusal {
        match self {
            ClerkRejection::Missing => Refusal::MISSING,
            ClerkRejection::Invalid(e) => Refusal::of(e),
        }
    }

    /// The error code: `token-missing`, or the verification [`crate::Reason`].
    pub fn code(&self) -> &'static str {
        self.refusal().code
    }

    /// A message safe to send to the client (no token, no secret).
    pub fn message(&self) -> String {
        self.refusal().message.into_owned()
    }
}

impl IntoResponse for ClerkRejection {
    fn into_response(self) -> Response {
        let Refusal { code, message } = self.refusal();
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        let mut response = (self.status(), axum::Json(body)).into_response();
        if self.status() == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
