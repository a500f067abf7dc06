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
    /// Signing out every session of a user (admin).
    SignOutUser,
    /// Deleting a user (admin).
    DeleteUser,
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
            InstantOp::SignOutUser => "user sign-out",
            InstantOp::DeleteUser => "user deletion",
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

/// A stable code for a failure: what clients and metrics see.
///
/// [`Code::as_str`] is the kebab-case wire form and is stable across releases; new
/// variants may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// The Clerk token was rejected, for this reason (its own code on the wire).
    Token(clerk_jwt::Reason),
    /// The token verifier itself is misconfigured (`verifier-misconfigured`).
    VerifierMisconfigured,
    /// The admin strategy needs a verified email (`email-unverified`).
    EmailUnverified,
    /// The Clerk session was signed out through this broker (`session-signed-out`).
    SessionSignedOut,
    /// The refresh token belongs to another user (`session-not-owned`).
    SessionNotOwned,
    /// InstantDB refused the request (`instant-rejected`).
    InstantRejected,
    /// InstantDB's permission rules refused the request (`instant-permission-denied`).
    InstantPermissionDenied,
    /// InstantDB refused the server's credentials or configuration
    /// (`instant-misconfigured`).
    InstantMisconfigured,
    /// InstantDB is rate limiting (`instant-rate-limited`).
    InstantRateLimited,
    /// InstantDB is down or unreachable (`instant-unavailable`).
    InstantUnavailable,
    /// InstantDB did not answer in time (`instant-timeout`).
    InstantTimeout,
    /// InstantDB failed with an unexpected status (`instant-failed`).
    InstantFailed,
    /// InstantDB answered something this client cannot read (`instant-bad-response`).
    InstantBadResponse,
    /// The session store could not be reached or did not answer in time
    /// (`store-unavailable`).
    StoreUnavailable,
    /// The session store is full, so no new session is started (`store-full`).
    StoreFull,
}

impl Code {
    /// The kebab-case wire form: the Clerk reason's code for token rejections.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::Token(reason) => reason.as_str(),
            Code::VerifierMisconfigured => clerk_jwt::Refusal::MISCONFIGURED_CODE,
            Code::EmailUnverified => "email-unverified",
            Code::SessionSignedOut => "session-signed-out",
            Code::SessionNotOwned => "session-not-owned",
            Code::InstantRejected => "instant-rejected",
            Code::InstantPermissionDenied => "instant-permission-denied",
            Code::InstantMisconfigured => "instant-misconfigured",
            Code::InstantRateLimited => "instant-rate-limited",
            Code::InstantUnavailable => "instant-unavailable",
            Code::InstantTimeout => "instant-timeout",
            Code::InstantFailed => "instant-failed",
            Code::InstantBadResponse => "instant-bad-response",
            Code::StoreUnavailable => "store-unavailable",
            Code::StoreFull => "store-full",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    #[error("InstantDB {} failed", .op.as_str())]
    Instant {
        /// Which call.
        op: InstantOp,
        /// What happened.
        #[source]
        source: instant_client::Error,
    },
    /// The session store failed (down, slow or full); nothing was started in
    /// InstantDB that the store does not hold.
    #[error("the session store could not be used")]
    Store(#[from] crate::store::StoreError),
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
            Error::Store(_) => ErrorKind::Unavailable,
        }
    }

    /// A stable code for clients and metrics; [`Code::as_str`] gives its wire form.
    pub fn code(&self) -> Code {
        match self {
            Error::Token(e) => e.reason().map_or(Code::VerifierMisconfigured, Code::Token),
            Error::EmailNotVerified => Code::EmailUnverified,
            Error::SessionSignedOut => Code::SessionSignedOut,
            Error::NotYourSession => Code::SessionNotOwned,
            Error::Instant { source, .. } => instant_code(source),
            Error::Store(crate::store::StoreError::Full) => Code::StoreFull,
            Error::Store(_) => Code::StoreUnavailable,
        }
    }

    /// Whether the same call may succeed later unchanged: an upstream was down, rate
    /// limiting or slow ([`ErrorKind::Unavailable`] or [`ErrorKind::Timeout`]). The
    /// webhook operations leave the store so that a retry does the work, so the server
    /// answers 503 and Svix retries.
    pub fn is_retry_later(&self) -> bool {
        matches!(self.kind(), ErrorKind::Unavailable | ErrorKind::Timeout)
    }

    /// How long to wait before retrying, when an upstream said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Instant { source, .. } => source.retry_after(),
            // A store outage is usually a failover or a restart: seconds.
            Error::Store(crate::store::StoreError::Full) => Some(STORE_FULL_RETRY_AFTER),
            Error::Store(_) => Some(STORE_RETRY_AFTER),
            _ => None,
        }
    }

    /// A message safe to send to the client: no token, no secret, no upstream body
    /// (InstantDB's messages are scrubbed by instant-client before they get here).
    pub fn public_message(&self) -> String {
        match self {
            // The same texts as `clerk_jwt::axum` sends: one source.
            Error::Token(e) => clerk_jwt::Refusal::of(e).message.into_owned(),
            Error::Instant { op, source } => match instant_code(source) {
                Code::InstantMisconfigured => format!(
                    "InstantDB refused the server's credentials during {}; the operator must check the app id, admin token and Clerk client name",
                    op.as_str()
                ),
                _ => source.to_string(),
            },
            Error::Store(e) => e.to_string(),
            other => other.to_string(),
        }
    }
}

/// What a client is told to wait when the session store is down.
const STORE_RETRY_AFTER: Duration = Duration::from_secs(2);
/// What a client is told to wait when the memory store is full (sessions expire or
/// sign out over minutes).
const STORE_FULL_RETRY_AFTER: Duration = Duration::from_secs(30);

fn instant_code(source: &instant_client::Error) -> Code {
    use instant_client::Error as E;
    match source {
        E::BadCredentials { .. } | E::Config(_) => Code::InstantMisconfigured,
        E::Rejected { rejection, .. }
            if rejection.is_record_not_found("app-oauth-client")
                || rejection.is_record_not_found("app-admin-token") =>
        {
            Code::InstantMisconfigured
        }
        E::Rejected { rejection, .. } if rejection.error_type == ErrorType::PermissionDenied => {
            Code::InstantPermissionDenied
        }
        E::Rejected { .. } => Code::InstantRejected,
        E::RateLimited { .. } => Code::InstantRateLimited,
        E::Unavailable {
            cause: Outage::Timeout,
            ..
        } => Code::InstantTimeout,
        E::Unavailable {
            cause: Outage::Status { status, .. },
            ..
        } if !matches!(status, 502..=504) => Code::InstantFailed,
        E::Unavailable { .. } => Code::InstantUnavailable,
        _ => Code::InstantBadResponse,
    }
}

fn instant_kind(op: InstantOp, source: &instant_client::Error) -> ErrorKind {
    match instant_code(source) {
        Code::InstantMisconfigured => ErrorKind::Config,
        Code::InstantPermissionDenied => ErrorKind::Forbidden,
        Code::InstantRejected if matches!(op, InstantOp::Query | InstantOp::Transact) => {
            ErrorKind::BadInput
        }
        Code::InstantRateLimited | Code::InstantUnavailable => ErrorKind::Unavailable,
        Code::InstantTimeout => ErrorKind::Timeout,
        Code::InstantRejected | Code::InstantFailed | Code::InstantBadResponse => {
            ErrorKind::Upstream
        }
        // `instant_code` gives only the instant codes above.
        Code::Token(_)
        | Code::VerifierMisconfigured
        | Code::EmailUnverified
        | Code::SessionSignedOut
        | Code::SessionNotOwned
        | Code::StoreUnavailable
        | Code::StoreFull => ErrorKind::Upstream,
    }
}

/// Whether InstantDB said a refresh token is unknown or dead: 400 `record-not-found`
/// naming `app-user`, what it answers for a refresh token it does not know (sign-in
/// with a stale `refresh_token`, `verify_refresh_token`, `as-token` calls). Any other
/// missing record (the app, its OAuth client, the admin token) is not a dead session
/// and must not make the broker drop a stored token and sign in again.
pub(crate) fn is_dead_refresh_token(error: &instant_client::Error) -> bool {
    match error {
        instant_client::Error::Rejected { rejection, .. } => {
            rejection.is_record_not_found(UNKNOWN_REFRESH_TOKEN_RECORD)
        }
        _ => false,
    }
}

/// The record type InstantDB names when a refresh token is unknown.
const UNKNOWN_REFRESH_TOKEN_RECORD: &str = "app-user";

#[cfg(test)]
mod code_tests {
    use instant_client::{Endpoint, ErrorType, Rejection};

    use super::{Code, Error, InstantOp};

    #[test]
    fn each_cause_is_printed_once() {
        let error = Error::Instant {
            op: InstantOp::SignIn,
            source: instant_client::Error::Rejected {
                endpoint: Endpoint::SignInWithIdToken,
                status: 400,
                rejection: Box::new(Rejection::new(
                    ErrorType::RecordNotFound,
                    Some("Record not found: app-oauth-client"),
                )),
            },
        };
        let mut messages = vec![error.to_string()];
        let mut current: &(dyn std::error::Error + 'static) = &error;
        while let Some(cause) = current.source() {
            messages.push(cause.to_string());
            current = cause;
        }
        assert_eq!(messages[0], "InstantDB sign-in failed");
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(!messages[0].contains(&messages[1]), "{messages:?}");
        assert_eq!(error.code(), Code::InstantMisconfigured);
    }

    #[test]
    fn wire_codes_are_the_documented_strings() {
        let codes = [
            (Code::VerifierMisconfigured, "verifier-misconfigured"),
            (Code::EmailUnverified, "email-unverified"),
            (Code::SessionSignedOut, "session-signed-out"),
            (Code::SessionNotOwned, "session-not-owned"),
            (Code::InstantRejected, "instant-rejected"),
            (Code::InstantPermissionDenied, "instant-permission-denied"),
            (Code::InstantMisconfigured, "instant-misconfigured"),
            (Code::InstantRateLimited, "instant-rate-limited"),
            (Code::InstantUnavailable, "instant-unavailable"),
            (Code::InstantTimeout, "instant-timeout"),
            (Code::InstantFailed, "instant-failed"),
            (Code::InstantBadResponse, "instant-bad-response"),
        ];
        for (code, wire) in codes {
            assert_eq!(code.as_str(), wire);
            assert_eq!(code.to_string(), wire);
        }
        for reason in clerk_jwt::Reason::ALL {
            assert_eq!(Code::Token(reason).as_str(), reason.as_str());
        }
    }
}

#[cfg(test)]
mod dead_token_tests {
    use instant_client::{Endpoint, ErrorType, Rejection};

    use super::is_dead_refresh_token;

    fn not_found(message: &str) -> instant_client::Error {
        instant_client::Error::Rejected {
            endpoint: Endpoint::VerifyRefreshToken,
            status: 400,
            rejection: Box::new(Rejection::new(ErrorType::RecordNotFound, Some(message))),
        }
    }

    #[test]
    fn only_an_unknown_user_token_is_a_dead_session() {
        assert!(is_dead_refresh_token(&not_found(
            "Record not found: app-user"
        )));
        for other in [
            "Record not found: app",
            "Record not found: app-oauth-client",
            "Record not found: app-admin-token",
            "Record not found: something-new",
        ] {
            assert!(!is_dead_refresh_token(&not_found(other)), "{other}");
        }
    }
}
