//! The crate's error type, grouped by what the caller does next.

use crate::Reason;
use crate::keys::KeyError;
use crate::publishable_key::PublishableKeyError;
use crate::remote::FetchError;
use crate::secret::SecretKeyError;

/// A verification or configuration failure. Never contains the token or a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token was rejected: answer the request with 401 and [`Error::reason`].
    #[error("{reason}: {detail}")]
    Rejected {
        /// The machine-readable reason.
        reason: Reason,
        /// What exactly was wrong, safe to show (no token, no secret).
        detail: String,
    },
    /// The keys needed to decide could not be loaded: retry later, or fix the key
    /// source when the reason is `secret-key-invalid`.
    #[error("{reason}: {source}")]
    KeysUnavailable {
        /// `jwk-remote-failed-to-load` or `secret-key-invalid`.
        reason: Reason,
        /// The cause.
        #[source]
        source: FetchError,
    },
    /// The verifier's configuration is invalid: fix it.
    #[error("invalid verifier configuration: {0}")]
    Config(#[from] ConfigError),
}

/// A configuration mistake, found when the verifier is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The publishable key is malformed.
    #[error(transparent)]
    PublishableKey(#[from] PublishableKeyError),
    /// The secret key is malformed.
    #[error(transparent)]
    SecretKey(#[from] SecretKeyError),
    /// A configured key (PEM, JWKS) is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// No key source was configured.
    #[error(
        "no key source: set a publishable key (remote JWKS), a JWKS document, or the PEM public key (CLERK_JWT_KEY)"
    )]
    NoKeySource,
    /// No issuer can be accepted.
    #[error(
        "no accepted issuer: set the publishable key (its Frontend API is the issuer) or at least one issuer"
    )]
    NoIssuer,
    /// An issuer is not an absolute http(s) URL.
    #[error("issuer {0:?} must be an http:// or https:// URL")]
    Issuer(String),
    /// The leeway is larger than allowed.
    #[error(
        "leeway of {0} s exceeds the {max} s maximum (a large leeway extends every token's life; fix the clock instead)",
        max = crate::verifier::MAX_LEEWAY.as_secs()
    )]
    Leeway(u64),
}

impl Error {
    pub(crate) fn rejected(reason: Reason, detail: impl Into<String>) -> Self {
        Error::Rejected {
            reason,
            detail: detail.into(),
        }
    }

    /// The reason code, when there is one (configuration errors about keys map to
    /// `jwk-local-missing` and `jwk-failed-to-resolve`).
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Error::Rejected { reason, .. } | Error::KeysUnavailable { reason, .. } => Some(*reason),
            Error::Config(ConfigError::NoKeySource) => Some(Reason::JwkLocalMissing),
            Error::Config(ConfigError::Key(_)) => Some(Reason::JwkFailedToResolve),
            Error::Config(ConfigError::SecretKey(_)) => Some(Reason::SecretKeyInvalid),
            Error::Config(_) => None,
        }
    }

    /// What to do about it, in one sentence.
    pub fn hint(&self) -> &'static str {
        match (self, self.reason()) {
            (Error::Config(ConfigError::PublishableKey(_)), _) => {
                "copy the publishable key (pk_test_… or pk_live_…) from the Clerk dashboard, API keys"
            }
            (Error::Config(ConfigError::NoIssuer | ConfigError::Issuer(_)), _) => {
                "set the publishable key, or give the issuer as the Frontend API URL, e.g. https://clerk.example.com"
            }
            (Error::Config(ConfigError::Leeway(_)), _) => {
                "use a leeway of a few seconds and keep the server clock in sync with NTP"
            }
            (_, Some(reason)) => reason.hint(),
            (_, None) => "check the verifier configuration",
        }
    }

    /// Whether the token itself was rejected (401), as opposed to the verifier being
    /// unable to decide.
    pub fn is_token_rejection(&self) -> bool {
        matches!(self, Error::Rejected { .. })
    }

    /// Whether the failure is temporary (keys could not be fetched): retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::KeysUnavailable {
                reason: Reason::JwkRemoteFailedToLoad,
                ..
            }
        )
    }

    /// Whether the configuration must be fixed.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Error::Config(_)
                | Error::KeysUnavailable {
                    reason: Reason::SecretKeyInvalid,
                    ..
                }
        )
    }
}

impl From<PublishableKeyError> for Error {
    fn from(e: PublishableKeyError) -> Self {
        Error::Config(e.into())
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::Config(e.into())
    }
}

impl From<SecretKeyError> for Error {
    fn from(e: SecretKeyError) -> Self {
        Error::Config(e.into())
    }
}
