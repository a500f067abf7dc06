//! How InstantDB checks an id token from a Clerk client: discovery document from the
//! URL derived from the publishable key, keys by `kid` from its `jwks_uri`, then its
//! own claim rules in its own order, with its own error messages.

use std::sync::Arc;
use std::time::Duration;

use clerk_jwt::{Clock, PublishableKey, Reason, RemoteJwks, RemoteOptions, Verifier};
use serde_json::Value;

use super::error::ApiError;
use crate::util::coerce_email;

/// A Clerk client registered in an app (InstantDB's generic OIDC client).
#[derive(Debug)]
pub(crate) struct ClientRuntime {
    pub(crate) name: String,
    pub(crate) publishable_key: PublishableKey,
    pub(crate) discovery_url: String,
    pub(crate) allow_unverified_email: bool,
    discovered: tokio::sync::Mutex<Option<Arc<Discovered>>>,
}

#[derive(Debug)]
struct Discovered {
    issuer: String,
    algorithms: Vec<String>,
    /// `None` when the document has no `issuer` or `jwks_uri`.
    verifier: Option<Verifier>,
}

/// What a verified id token says about its user.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserInfo {
    pub(crate) email: Option<String>,
    pub(crate) sub: String,
    pub(crate) image_url: Option<String>,
}

const SIGNING_KEY: &str = "Error validating JWT. Could not find signing key.";

impl ClientRuntime {
    pub(crate) fn new(
        name: String,
        publishable_key: PublishableKey,
        allow_unverified_email: bool,
    ) -> Self {
        ClientRuntime {
            name,
            discovery_url: publishable_key.discovery_url(),
            publishable_key,
            allow_unverified_email,
            discovered: tokio::sync::Mutex::new(None),
        }
    }

    /// The discovery document, fetched once and cached (InstantDB caches it too).
    async fn discover(
        &self,
        http: &reqwest::Client,
        clock: &Arc<dyn Clock>,
    ) -> Result<Arc<Discovered>, ApiError> {
        let mut cached = self.discovered.lock().await;
        if let Some(discovered) = cached.as_ref() {
            return Ok(Arc::clone(discovered));
        }
        let failed = |detail: String| {
            tracing::warn!(url = %self.discovery_url, %detail, "discovery fetch failed");
            ApiError::oauth("Unable to fetch OAuth configuration.")
        };
        let response = http
            .get(&self.discovery_url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("HTTP {}", response.status())));
        }
        let document: Value = response.json().await.map_err(|e| failed(e.to_string()))?;
        let text = |key: &str| {
            document
                .get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let issuer = text("issuer");
        let jwks_uri = text("jwks_uri");
        let mut algorithms: Vec<String> = document
            .get("id_token_signing_alg_values_supported")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if algorithms.is_empty() {
            algorithms = vec!["RS256".into(), "HS256".into()];
        }
        let verifier = match (&issuer, &jwks_uri) {
            (Some(issuer), Some(jwks_uri)) => Verifier::builder()
                .issuer(issuer.clone())
                .keys(
                    RemoteJwks::url(jwks_uri.clone(), RemoteOptions::default())
                        .with_client(http.clone()),
                )
                .leeway(Duration::ZERO)
                .require_session_token(false)
                .allow_pending_sessions(true)
                .require_email(false)
                .require_verified_email(false)
                .clock(Arc::clone(clock))
                .build()
                .ok(),
            _ => None,
        };
        let discovered = Arc::new(Discovered {
            issuer: issuer.unwrap_or_default(),
            algorithms,
            verifier,
        });
        *cached = Some(Arc::clone(&discovered));
        Ok(discovered)
    }

    /// Checks an id token as InstantDB does and returns what it says of the user.
    pub(crate) async fn check(
        &self,
        token: &str,
        nonce: Option<&str>,
        http: &reqwest::Client,
        clock: &Arc<dyn Clock>,
    ) -> Result<UserInfo, ApiError> {
        let discovered = self.discover(http, clock).await?;
        let token_value = Value::String(token.to_owned());
        let Some(verifier) = &discovered.verifier else {
            return Err(ApiError::validation_message(
                "id_token",
                token_value,
                "OAuth client does not support id_token.",
            ));
        };
        // Decoding first, as InstantDB's JWT library does.
        let Ok(inspection) = clerk_jwt::inspect(token) else {
            return Err(ApiError::oauth("Invalid JWT."));
        };
        let header = &inspection.header;
        let alg = header.get("alg").and_then(Value::as_str);
        match alg {
            Some("RS256") => {}
            // The emulator verifies RSA only; Clerk never signs with ES256.
            Some("ES256") => return Err(ApiError::oauth(SIGNING_KEY)),
            other => {
                return Err(ApiError::oauth(format!(
                    "Unsupported signing algorithm {}",
                    other.unwrap_or("null")
                )));
            }
        }
        // Key and signature. The verifier's claim rules run too, but InstantDB's own
        // rules decide below, in InstantDB's order: any rejection that comes after the
        // signature check is set aside.
        if let Err(error) = verifier.verify(token).await {
            match error.reason() {
                Some(Reason::TokenInvalid) if !header.contains_key("kid") => {
                    return Err(ApiError::oauth(SIGNING_KEY));
                }
                Some(Reason::TokenInvalid) => return Err(ApiError::oauth("Invalid JWT.")),
                Some(Reason::TokenInvalidAlgorithm) => {
                    return Err(ApiError::oauth("Error validating JWT. Algorithm Mismatch"));
                }
                Some(
                    Reason::JwkKidMismatch
                    | Reason::JwkRemoteFailedToLoad
                    | Reason::JwkFailedToResolve
                    | Reason::SecretKeyInvalid
                    | Reason::JwkLocalMissing,
                ) => return Err(ApiError::oauth(SIGNING_KEY)),
                Some(Reason::TokenInvalidSignature) => {
                    return Err(ApiError::oauth(
                        "Error validating JWT. Signature is invalid.",
                    ));
                }
                Some(reason) if reason.is_token_rejection() => {}
                _ => {
                    tracing::warn!(%error, "unexpected verifier failure");
                    return Err(ApiError::unknown());
                }
            }
        }
        let payload = &inspection.payload;
        let number = |name: &str| -> Result<Option<f64>, ApiError> {
            match payload.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_f64()),
                Some(_) => Err(ApiError::oauth("Invalid JWT.")),
            }
        };
        let text = |name: &str| -> Result<Option<String>, ApiError> {
            match payload.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ApiError::oauth("Invalid JWT.")),
            }
        };
        let exp = number("exp")?;
        let nbf = number("nbf")?;
        let iat = number("iat")?;
        let iss = text("iss")?;
        let sub = text("sub")?;
        #[allow(clippy::cast_precision_loss)]
        let now = clock.now() as f64;
        if exp.is_some_and(|exp| exp.floor() < now) {
            return Err(ApiError::oauth("Error validating JWT. Token is expired."));
        }
        // InstantDB's JWT library throws an exception it does not translate: a 500.
        if nbf.is_some_and(|nbf| nbf.floor() > now) || iat.is_some_and(|iat| iat.floor() > now) {
            return Err(ApiError::unknown());
        }
        let jwt_nonce = payload.get("nonce").and_then(Value::as_str);
        let blank = |s: Option<&str>| s.is_none_or(|s| s.trim().is_empty());
        let hashed = |n: &str| Some(crate::util::sha256_hex(n).as_str()) == jwt_nonce;
        let nonce_error = if jwt_nonce == nonce || nonce.is_some_and(hashed) {
            None
        } else if blank(jwt_nonce) && !blank(nonce) {
            Some("The id_token is missing a nonce.")
        } else if blank(nonce) && !blank(jwt_nonce) {
            Some("The nonce parameter was not provided in the request.")
        } else {
            Some("The nonces do not match.")
        };
        let issuer_error = format!("The id_token wasn't issued by {}.", discovered.issuer);
        let error = if let Some(message) = nonce_error {
            Some(message)
        } else if iss.as_deref() != Some(discovered.issuer.as_str()) {
            Some(issuer_error.as_str())
        } else if !discovered
            .algorithms
            .iter()
            .any(|a| Some(a.as_str()) == alg)
        {
            Some("The id_token used an unsupported algorithm.")
        } else if sub.is_none() {
            Some("The id_token had no subject.")
        } else {
            None
        };
        if let Some(message) = error {
            return Err(ApiError::validation_message(
                "id_token",
                token_value,
                message,
            ));
        }
        let verified = payload.get("email_verified") == Some(&Value::Bool(true));
        let email = payload
            .get("email")
            .and_then(Value::as_str)
            .filter(|_| verified || self.allow_unverified_email)
            .and_then(coerce_email);
        Ok(UserInfo {
            email,
            sub: sub.unwrap_or_default(),
            image_url: payload
                .get("picture")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}
