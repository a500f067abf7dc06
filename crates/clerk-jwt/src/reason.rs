//! Machine-readable reasons a token or a key source was rejected, and what an HTTP
//! answer tells the client about them.

use std::borrow::Cow;
use std::fmt;

use crate::Error;

/// Why a verification failed, as a stable kebab-case code.
///
/// The first thirteen codes are the ones Clerk's own SDK (`@clerk/backend`) reports, so
/// a client that already understands Clerk's errors understands these. The rest cover
/// rules Clerk's SDK does not apply (issuer, audience, token lifetime, session-only
/// tokens, session status, impersonation, the `email` claim InstantDB needs).
///
/// [`Reason::as_str`] is stable across releases; new variants may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// `exp` is in the past (beyond the leeway).
    TokenExpired,
    /// The token is not a well-formed JWS, or its header breaks a rule.
    TokenInvalid,
    /// `alg` is anything but `RS256`.
    TokenInvalidAlgorithm,
    /// `azp` is missing or not one of the authorized parties.
    TokenInvalidAuthorizedParties,
    /// The signature does not verify with the key named by `kid`.
    TokenInvalidSignature,
    /// `nbf` is in the future (beyond the leeway).
    TokenNotActiveYet,
    /// `iat` is in the future (beyond the leeway).
    TokenIatInTheFuture,
    /// A required claim is missing or has the wrong JSON type.
    TokenVerificationFailed,
    /// The Backend API refused the secret key.
    SecretKeyInvalid,
    /// No local key (PEM or static JWKS) was configured.
    JwkLocalMissing,
    /// The remote JWKS could not be loaded and no usable cached keys exist.
    JwkRemoteFailedToLoad,
    /// A key could not be turned into a usable RSA public key.
    JwkFailedToResolve,
    /// No key with the token's `kid` exists, even after the allowed refresh.
    JwkKidMismatch,
    /// `iss` is not one of the accepted issuers.
    TokenInvalidIssuer,
    /// An audience is configured and `aud` does not contain it.
    TokenInvalidAudience,
    /// The token lives longer than the maximum token lifetime (`exp - iat`).
    TokenLifetimeTooLong,
    /// A valid Clerk token that is not a session token (JWT template, machine or OAuth
    /// access token, no `sid`, or a `sid`/`sub` that is not a Clerk session/user id).
    TokenNotSession,
    /// The session status (`sts`) is one Clerk never issues tokens for (neither
    /// `active` nor `pending`).
    SessionNotActive,
    /// The session is `pending` (the user still has a task to finish, e.g. choose an
    /// organization).
    SessionPending,
    /// The session is an impersonation (`act`) and impersonation is refused.
    SessionImpersonated,
    /// The token has no usable `email` claim.
    EmailMissing,
    /// The token says the email address is not verified.
    EmailUnverified,
}

impl Reason {
    /// Every reason, in declaration order.
    pub const ALL: [Reason; 22] = [
        Reason::TokenExpired,
        Reason::TokenInvalid,
        Reason::TokenInvalidAlgorithm,
        Reason::TokenInvalidAuthorizedParties,
        Reason::TokenInvalidSignature,
        Reason::TokenNotActiveYet,
        Reason::TokenIatInTheFuture,
        Reason::TokenVerificationFailed,
        Reason::SecretKeyInvalid,
        Reason::JwkLocalMissing,
        Reason::JwkRemoteFailedToLoad,
        Reason::JwkFailedToResolve,
        Reason::JwkKidMismatch,
        Reason::TokenInvalidIssuer,
        Reason::TokenInvalidAudience,
        Reason::TokenLifetimeTooLong,
        Reason::TokenNotSession,
        Reason::SessionNotActive,
        Reason::SessionPending,
        Reason::SessionImpersonated,
        Reason::EmailMissing,
        Reason::EmailUnverified,
    ];

    /// The stable kebab-case code, e.g. `token-expired`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::TokenExpired => "token-expired",
            Reason::TokenInvalid => "token-invalid",
            Reason::TokenInvalidAlgorithm => "token-invalid-algorithm",
            Reason::TokenInvalidAuthorizedParties => "token-invalid-authorized-parties",
            Reason::TokenInvalidSignature => "token-invalid-signature",
            Reason::TokenNotActiveYet => "token-not-active-yet",
            Reason::TokenIatInTheFuture => "token-iat-in-the-future",
            Reason::TokenVerificationFailed => "token-verification-failed",
            Reason::SecretKeyInvalid => "secret-key-invalid",
            Reason::JwkLocalMissing => "jwk-local-missing",
            Reason::JwkRemoteFailedToLoad => "jwk-remote-failed-to-load",
            Reason::JwkFailedToResolve => "jwk-failed-to-resolve",
            Reason::JwkKidMismatch => "jwk-kid-mismatch",
            Reason::TokenInvalidIssuer => "token-invalid-issuer",
            Reason::TokenInvalidAudience => "token-invalid-audience",
            Reason::TokenLifetimeTooLong => "token-lifetime-too-long",
            Reason::TokenNotSession => "token-not-session",
            Reason::SessionNotActive => "session-not-active",
            Reason::SessionPending => "session-pending",
            Reason::SessionImpersonated => "session-impersonated",
            Reason::EmailMissing => "email-missing",
            Reason::EmailUnverified => "email-unverified",
        }
    }

    /// Parses a code produced by [`Reason::as_str`].
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == code)
    }

    /// What the person seeing this error should do about it.
    pub const fn hint(self) -> &'static str {
        match self {
            Reason::TokenExpired => {
                "get a fresh token from Clerk (session tokens live 60 s; call getToken() right before the request) and check the server clock"
            }
            Reason::TokenInvalid => {
                "send the raw Clerk session token (the __session cookie or the Bearer token from getToken()), unmodified"
            }
            Reason::TokenInvalidAlgorithm => {
                "Clerk session tokens are signed with RS256; this token was not issued by Clerk"
            }
            Reason::TokenInvalidAuthorizedParties => {
                "add the origin of the page that requested the token to the authorized parties, or call from an allowed origin"
            }
            Reason::TokenInvalidSignature => {
                "the token was not signed by this Clerk instance; check that the publishable key or JWT key belongs to the same instance as the frontend"
            }
            Reason::TokenNotActiveYet | Reason::TokenIatInTheFuture => {
                "check the server clock (it is behind Clerk's); enable NTP or raise the leeway slightly"
            }
            Reason::TokenVerificationFailed => {
                "the token lacks a required claim (sub, exp) or has one of the wrong type; use a Clerk session token"
            }
            Reason::SecretKeyInvalid => {
                "check CLERK_SECRET_KEY: copy the secret key of this instance from the Clerk dashboard (API keys)"
            }
            Reason::JwkLocalMissing => {
                "configure a key source: a publishable key (JWKS URL), a secret key, or the PEM public key from the dashboard (CLERK_JWT_KEY)"
            }
            Reason::JwkRemoteFailedToLoad => {
                "the JWKS could not be fetched; check network access to the Frontend API, or configure the PEM public key (CLERK_JWT_KEY) to verify without network"
            }
            Reason::JwkFailedToResolve => {
                "the configured key is not a usable RSA public key; copy it again from the Clerk dashboard (API keys, JWT public key)"
            }
            Reason::JwkKidMismatch => {
                "the token was signed by another Clerk instance (e.g. development keys against production); use the publishable key of the instance the frontend uses"
            }
            Reason::TokenInvalidIssuer => {
                "the token comes from another Clerk instance or domain; use the matching publishable key, or add the satellite or proxy issuer to the accepted issuers"
            }
            Reason::TokenInvalidAudience => {
                "the token's aud claim does not contain the configured audience; fix the audience setting or the token"
            }
            Reason::TokenLifetimeTooLong => {
                "Clerk session tokens live 60 s; mint a shorter-lived token (expires_in_seconds), or raise the verifier's maximum token lifetime"
            }
            Reason::TokenNotSession => {
                "send a session token (getToken() with no template), not a JWT template, machine or OAuth token"
            }
            Reason::SessionNotActive => {
                "the token's session is not active; sign in again and send a fresh session token"
            }
            Reason::SessionPending => {
                "the user has a pending session task (e.g. choose an organization); finish it in the frontend, or allow pending sessions"
            }
            Reason::SessionImpersonated => {
                "this service refuses impersonated sessions (act claim); sign in as yourself, or allow impersonation"
            }
            Reason::EmailMissing => {
                "add the email claim to the session token in the Clerk dashboard (Sessions, Customize session token: \"email\": \"{{user.primary_email_address}}\"); users without an email address cannot sign in"
            }
            Reason::EmailUnverified => {
                "the user's primary email address is not verified; have them verify it in Clerk"
            }
        }
    }

    /// Whether this reason means the token itself was rejected (HTTP 401), as opposed
    /// to the verifier being unable to decide (keys unavailable or misconfigured).
    pub const fn is_token_rejection(self) -> bool {
        !matches!(
            self,
            Reason::SecretKeyInvalid
                | Reason::JwkLocalMissing
                | Reason::JwkRemoteFailedToLoad
                | Reason::JwkFailedToResolve
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What an HTTP answer tells a client about a token it could not accept: a stable code
/// and a message safe to send (no token, no secret). The one source of these texts for
/// `clerk_jwt::axum` (feature `axum`) and for services that answer over their own HTTP
/// surface.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// `token-missing`, a [`Reason`] code, or `verifier-misconfigured`.
    pub code: &'static str,
    /// What happened, safe to send.
    pub message: Cow<'static, str>,
}

impl Refusal {
    /// The request carries no token.
    pub const MISSING: Refusal = Refusal {
        code: "token-missing",
        message: Cow::Borrowed(
            "no Clerk session token: send Authorization: Bearer <token> or the __session cookie",
        ),
    };

    /// The code of a verifier that cannot decide because of its own configuration.
    pub const MISCONFIGURED_CODE: &'static str = "verifier-misconfigured";

    /// The token was rejected, or could not be checked: the [`Reason`] code and its
    /// detail, or a fixed text when the keys or the configuration are at fault.
    pub fn of(error: &Error) -> Refusal {
        let code = error
            .reason()
            .map_or(Refusal::MISCONFIGURED_CODE, Reason::as_str);
        let message = match error {
            Error::Rejected { detail, .. } => Cow::Owned(detail.clone()),
            e if e.is_unavailable() => {
                Cow::Borrowed("the Clerk signing keys could not be loaded; retry shortly")
            }
            _ => Cow::Borrowed("the token verifier is misconfigured"),
        };
        Refusal { code, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            assert!(seen.insert(reason.as_str()), "duplicate code {reason}");
            assert_eq!(Reason::from_code(reason.as_str()), Some(reason));
            assert!(!reason.hint().is_empty());
            assert!(
                reason
                    .as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-')
            );
        }
        assert_eq!(Reason::from_code("nope"), None);
    }

    #[test]
    fn a_refusal_sends_the_reason_and_its_detail_or_a_fixed_text() {
        let rejected = Error::rejected(Reason::TokenExpired, "the token expired 5 s ago");
        assert_eq!(
            Refusal::of(&rejected),
            Refusal {
                code: "token-expired",
                message: "the token expired 5 s ago".into(),
            }
        );
        let misconfigured = Error::Config(crate::ConfigError::NoIssuer);
        assert_eq!(Refusal::of(&misconfigured).code, "verifier-misconfigured");
        assert_eq!(
            Refusal::of(&misconfigured).message,
            "the token verifier is misconfigured"
        );
        assert_eq!(Refusal::MISSING.code, "token-missing");
    }
}
