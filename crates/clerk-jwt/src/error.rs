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
    #[error("{reason}: the signing keys could not be loaded")]
    KeysUnavailable {
        /// `jwk-remote-failed-to-load` or `secret-key-invalid`.
        reason: Reason,
        /// The cause.
        #[source]
        source: FetchError,
    },
    /// The verifier's configuration is invalid: fix it.
    #[error("invalid verifier configuration")]
    Config(#[from] ConfigError),
}

/// A configuration mistake, found when the verifier is built.
#[derive(Debug, Clone, thiserror::Error)]
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
        "no key source: set a publishable key (remote JWKS), a JWKS document, or the PEM public key"
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
    /// The maximum token lifetime is outside the accepted range.
    #[error(
        "maximum token lifetime of {0} s is outside {min}..={max} s",
        min = crate::verifier::MAX_TOKEN_LIFETIME_RANGE.start().as_secs(),
        max = crate::verifier::MAX_TOKEN_LIFETIME_RANGE.end().as_secs()
    )]
    MaxTokenLifetime(u64),
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
            (Error::Config(ConfigError::MaxTokenLifetime(_)), _) => {
                "allow at least Clerk's 60 s session tokens and at most a day; keep it as short as the longest tokens you mint"
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

#[cfg(test)]
mod tests {
    use super::{ConfigError, Error};
    use crate::Reason;
    use crate::keys::{KeyError, KeySet};
    use crate::publishable_key::PublishableKey;
    use crate::remote::FetchError;

    /// The messages of an error and its causes, outermost first.
    fn chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
        let mut messages = vec![error.to_string()];
        let mut current = error;
        while let Some(cause) = current.source() {
            messages.push(cause.to_string());
            current = cause;
        }
        messages
    }

    #[test]
    fn each_cause_is_printed_once() {
        let url = "https://clerk.example.com/.well-known/jwks.json";
        let bad_jwk = br#"{"keys": [{"kty": "RSA", "kid": "k1", "n": "AQAB", "e": "AQAB"}]}"#;
        let Err(unusable) = KeySet::from_jwks_json(bad_jwk) else {
            panic!("a 17-bit key was accepted");
        };
        let Err(not_json) = KeySet::from_jwks_json(b"<html>") else {
            panic!("HTML was accepted");
        };
        let Err(bad_pk) = PublishableKey::parse("pk_test_!!!!") else {
            panic!("a bad publishable key was accepted");
        };
        let cases: Vec<(Error, Vec<&str>)> = vec![
            (
                Error::KeysUnavailable {
                    reason: Reason::JwkRemoteFailedToLoad,
                    source: FetchError::Invalid {
                        url: url.to_owned(),
                        source: unusable,
                    },
                },
                vec![
                    "jwk-remote-failed-to-load: the signing keys could not be loaded",
                    "GET https://clerk.example.com/.well-known/jwks.json returned an unusable JWKS",
                    "JWK \"k1\" is not a usable RSA key",
                    "RSA key of 17 bits is outside the accepted 2048..=8192 bits",
                ],
            ),
            (
                Error::KeysUnavailable {
                    reason: Reason::JwkRemoteFailedToLoad,
                    source: FetchError::Invalid {
                        url: url.to_owned(),
                        source: not_json,
                    },
                },
                vec![
                    "jwk-remote-failed-to-load: the signing keys could not be loaded",
                    "GET https://clerk.example.com/.well-known/jwks.json returned an unusable JWKS",
                    "JWKS document is not JSON of the form {\"keys\": [...]}",
                    "expected value at line 1 column 1",
                ],
            ),
            (
                Error::from(bad_pk),
                vec![
                    "invalid verifier configuration",
                    "publishable key's base64 part does not decode",
                    "Invalid symbol 33, offset 0.",
                ],
            ),
            (
                Error::Config(ConfigError::NoKeySource),
                vec![
                    "invalid verifier configuration",
                    "no key source: set a publishable key (remote JWKS), a JWKS document, or the PEM public key",
                ],
            ),
        ];
        for (error, expected) in cases {
            let messages = chain(&error);
            assert_eq!(messages, expected);
            for pair in messages.windows(2) {
                assert!(
                    !pair[0].contains(&pair[1]),
                    "{:?} repeats its cause {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
        // The PEM's base64 error is kept as the cause.
        let pem = crate::keys::VerifyingKey::from_pem("not a key").unwrap_err();
        assert!(matches!(pem, KeyError::PemBase64(_)));
        assert_eq!(chain(&pem).len(), 2);
    }
}
