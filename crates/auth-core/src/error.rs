//! The crate's error, grouped by what the caller does next.

use std::time::Duration;

use instant_client::{ErrorType, Outage};

/// Which InstantDB call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InstantOp {
    /// Signing in (with the Clerk token, or creating a token by email).
    SignIn,
    /// Checking a stored refresh token.
    Confirm,
    /// Signing a refresh token out.
    SignOut,
    /// A query as the user.
    Query,
    /// A transaction as the user.
    Transact,
}

impl InstantOp {
    /// A short name for messages and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            InstantOp::SignIn => "sign-in",
            InstantOp::Confirm => "confirm",
            InstantOp::SignOut => "sign-out",
            InstantOp::Query => "query",
            InstantOp::Transact => "transact",
        }
    }
}

/// What the caller should do, the basis for an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The Clerk token is missing something or was rejected (401).
    Unauthorized,
    /// The caller may not do this (403).
    Forbidden,
    /// The request itself is wrong (400).
    BadInput,
    /// An upstream refused us in a way the caller cannot fix (502).
    Upstream,
    /// An upstream is down or rate limiting; retry later (503).
    Unavailable,
    /// An upstream did not answer in time (504).
    Timeout,
    /// The server's configuration is wrong (500).
    Config,
}

/// A failure of the broker. Never contains a token or a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Verifying the Clerk token failed.
    #[error(transparent)]
    Token(#[from] clerk_jwt::Error),
    /// The admin strategy vouches for the email, so it must be present and verified.
    #[error(
        "the admin sign-in strategy needs a verified email in the token (email and email_verified: true)"
    )]
    EmailNotVerified,
    /// The Clerk session was signed out through this broker; tokens minted before that
    /// stay valid at Clerk for up to a minute, but not here.
    #[error("this Clerk session was signed out; sign in again")]
    SessionSignedOut,
    /// A refresh token given for sign-out belongs to another user.
    #[error("the refresh token does not belong to the signed-in user")]
    NotYourSession,
    /// An InstantDB call failed.
    #[error("InstantDB {} failed: {source}", .op.as_str())]
    Instant {
        /// Which call.
        op: InstantOp,
        /// What happened.
        #[source]
        source: instant_client::Error,
    },
}

impl Error {
    pub(crate) fn instant(op: InstantOp) -> impl FnOnce(instant_client::Error) -> Error {
        move |source| Error::Instant { op, source }
    }

    /// What the caller should do.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Token(e) if e.is_token_rejection() => ErrorKind::Unauthorized,
            Error::Token(e) if e.is_unavailable() => ErrorKind::Unavailable,
            Error::Token(_) => ErrorKind::Config,
            Error::EmailNotVerified | Error::SessionSignedOut => ErrorKind::Unauthorized,
            Error::NotYourSession => ErrorKind::Forbidden,
            Error::Instant { op, source } => instant_kind(*op, source),
        }
    }

    /// A stable kebab-case code: the Clerk reason for token problems, else one of
    /// `email-unverified`, `session-signed-out`, `session-not-owned`, `instant-rejected`,
    /// `instant-permission-denied`, `instant-misconfigured`, `instant-rate-limited`,
    /// `instant-unavailable`, `instant-timeout`, `instant-failed`, `instant-bad-response`,
    /// `verifier-misconfigured`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Token(e) => e.reason().map_or("verifier-misconfigured", |r| r.as_str()),
            Error::EmailNotVerified => "email-unverified",
            Error::SessionSignedOut => "session-signed-out",
            Error::NotYourSession => "session-not-owned",
            Error::Instant { source, .. } => instant_code(source),
        }
    }

    /// How long to wait before retrying, when an upstream said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Instant { source, .. } => source.retry_after(),
            _ => None,
        }
    }

    /// A message safe to send to the client: no token, no secret, no upstream body
    /// (InstantDB's messages are scrubbed by instant-client before they get here).
    pub fn public_message(&self) -> String {
        match self {
            Error::Token(clerk_jwt::Error::Rejected { detail, .. }) => detail.clone(),
            Error::Token(e) if e.is_unavailable() => {
                "the Clerk signing keys could not be loaded; retry shortly".to_owned()
            }
            Error::Token(_) => "the token verifier is misconfigured".to_owned(),
            Error::Instant { op, source } => match instant_code(source) {
                "instant-misconfigured" => format!(
                    "InstantDB refused the server's credentials during {}; the operator must check the app id, admin token and Clerk client name",
                    op.as_str()
                ),
                _ => source.to_string(),
            },
            other => other.to_string(),
        }
    }
}

fn instant_code(source: &instant_client::Error) -> &'static str {
    use instant_client::Error as E;
    match source {
        E::BadCredentials { .. } | E::Config(_) => "instant-misconfigured",
        E::Rejected { rejection, .. }
            if rejection.is_record_not_found("app-oauth-client")
                || rejection.is_record_not_found("app-admin-token") =>
        {
            "instant-misconfigured"
        }
        E::Rejected { rejection, .. } if rejection.error_type == ErrorType::PermissionDenied => {
            "instant-permission-denied"
        }
        E::Rejected { .. } => "instant-rejected",
        E::RateLimited { .. } => "instant-rate-limited",
        E::Unavailable {
            cause: Outage::Timeout,
            ..
        } => "instant-timeout",
        E::Unavailable {
            cause: Outage::Status { status, .. },
            ..
        } if !matches!(status, 502..=504) => "instant-failed",
        E::Unavailable { .. } => "instant-unavailable",
        _ => "instant-bad-response",
    }
}

fn instant_kind(op: InstantOp, source: &instant_client::Error) -> ErrorKind {
    match instant_code(source) {
        "instant-misconfigured" => ErrorKind::Config,
        "instant-permission-denied" => ErrorKind::Forbidden,
        "instant-rejected" if matches!(op, InstantOp::Query | InstantOp::Transact) => {
            ErrorKind::BadInput
        }
        "instant-rate-limited" | "instant-unavailable" => ErrorKind::Unavailable,
        "instant-timeout" => ErrorKind::Timeout,
        _ => ErrorKind::Upstream,
    }
}

/// Whether InstantDB said a refresh token is unknown or dead (as opposed to an unknown
/// OAuth client or admin token, which are configuration problems).
pub(crate) fn is_dead_refresh_token(error: &instant_client::Error) -> bool {
    match error {
        instant_client::Error::Rejected { rejection, .. } => {
            rejection.error_type == ErrorType::RecordNotFound
                && !rejection.is_record_not_found("app-oauth-client")
                && !rejection.is_record_not_found("app-admin-token")
        }
        _ => false,
    }
}
