//! The Clerk and InstantDB settings both apps take, checked as a whole, and the clients
//! built from them.
//!
//! The apps read these settings from flags and the environment (with the names below:
//! `CLERK_PUBLISHABLE_KEY`, `INSTANT_APP_ID`, …) and hand the raw strings to
//! [`RawServiceConfig::resolve`]; this module only checks them. Every problem is
//! reported at once, each naming the setting and the fix.

use std::sync::Arc;

use clerk_backend::BackendClient;
use clerk_jwt::{
    KeySource, PublishableKey, RemoteJwks, RemoteOptions, SecretKey, Verifier, VerifyingKey,
};
use instant_client::{AdminToken, Uuid};

use crate::broker::Strategy;

/// How many verified tokens the verifier remembers (see
/// `clerk_jwt::VerifierBuilder::verified_token_cache`).
pub const VERIFIED_TOKENS: usize = 10_000;

/// The default InstantDB API.
pub const DEFAULT_INSTANT_API: &str = "https://api.instantdb.com";

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The setting, as its environment name and flag.
    pub setting: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The settings as given: strings, not yet checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RawServiceConfig {
    /// `CLERK_PUBLISHABLE_KEY`.
    pub clerk_publishable_key: Option<String>,
    /// `CLERK_SECRET_KEY`.
    pub clerk_secret_key: Option<String>,
    /// `CLERK_JWT_KEY`.
    pub clerk_jwt_key: Option<String>,
    /// `CLERK_AUTHORIZED_PARTIES`.
    pub clerk_authorized_parties: Vec<String>,
    /// `CLERK_ISSUERS`.
    pub clerk_issuers: Vec<String>,
    /// `CLERK_API_URL`.
    pub clerk_api_url: Option<String>,
    /// `INSTANT_APP_ID`.
    pub instant_app_id: Option<String>,
    /// `INSTANT_APP_ADMIN_TOKEN`.
    pub instant_admin_token: Option<String>,
    /// `INSTANT_API_URI`.
    pub instant_api_uri: Option<String>,
    /// `INSTANT_CLERK_CLIENT_NAME`.
    pub instant_client_name: Option<String>,
    /// `SIGN_IN_STRATEGY`.
    pub strategy: Option<String>,
}

/// Checked settings for real (or self-hosted, or local) services.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// The Clerk instance.
    pub publishable_key: PublishableKey,
    /// Revokes Clerk sessions when set.
    pub secret_key: Option<SecretKey>,
    /// Networkless verification key.
    pub jwt_key: Option<VerifyingKey>,
    /// Required `azp` values.
    pub authorized_parties: Vec<String>,
    /// Extra issuers.
    pub issuers: Vec<String>,
    /// Clerk Backend API base URL (default `https://api.clerk.com`).
    pub clerk_api_url: Option<String>,
    /// InstantDB app.
    pub instant_app_id: Uuid,
    /// InstantDB admin token.
    pub instant_admin_token: Option<AdminToken>,
    /// InstantDB base URL.
    pub instant_api_uri: String,
    /// Sign-in strategy.
    pub strategy: Strategy,
}

/// A set, non-blank setting, trimmed.
fn text(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn is_http_url(text: &str) -> bool {
    text.strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
}

impl RawServiceConfig {
    /// Whether no Clerk or InstantDB setting is given at all.
    pub fn is_empty(&self) -> bool {
        [
            &self.clerk_publishable_key,
            &self.clerk_secret_key,
            &self.clerk_jwt_key,
            &self.clerk_api_url,
            &self.instant_app_id,
            &self.instant_admin_token,
            &self.instant_api_uri,
            &self.instant_client_name,
            &self.strategy,
        ]
        .into_iter()
        .all(|v| text(v).is_none())
            && self
                .clerk_authorized_parties
                .iter()
                .all(|p| p.trim().is_empty())
            && self.clerk_issuers.iter().all(|p| p.trim().is_empty())
    }

    /// Checks every setting; returns every problem found.
    pub fn resolve(&self) -> Result<ServiceConfig, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut problem = |setting: &'static str, message: String| {
            problems.push(Problem { setting, message });
        };

        let publishable_key = match text(&self.clerk_publishable_key) {
            None => {
                problem(
                    "CLERK_PUBLISHABLE_KEY (--clerk-publishable-key)",
                    "is not set; copy the publishable key (pk_test_… or pk_live_…) from the Clerk dashboard, API keys".to_owned(),
                );
                None
            }
            Some(pk) => match PublishableKey::parse(pk) {
                Ok(pk) => Some(pk),
                Err(e) => {
                    problem(
                        "CLERK_PUBLISHABLE_KEY (--clerk-publishable-key)",
                        format!("{e}; copy it again from the Clerk dashboard, API keys"),
                    );
                    None
                }
            },
        };
        let secret_key = match text(&self.clerk_secret_key) {
            None => None,
            Some(sk) => match SecretKey::new(sk) {
                Ok(sk) => Some(sk),
                Err(e) => {
                    problem("CLERK_SECRET_KEY (--clerk-secret-key)", e.to_string());
                    None
                }
            },
        };
        if let (Some(pk), Some(sk)) = (&publishable_key, &secret_key) {
            let live_pk = pk.kind() == clerk_jwt::InstanceKind::Production;
            let live_sk = sk.prefix() == "sk_live_";
            if live_pk != live_sk {
                problem(
                    "CLERK_SECRET_KEY (--clerk-secret-key)",
                    format!(
                        "is a {} key but the publishable key is {}; use both keys of the same instance",
                        if live_sk { "live" } else { "test" },
                        if live_pk { "live" } else { "test" }
                    ),
                );
            }
        }
        let jwt_key = match text(&self.clerk_jwt_key) {
            None => None,
            Some(pem) => match VerifyingKey::from_pem(pem) {
                Ok(key) => Some(key),
                Err(e) => {
                    problem(
                        "CLERK_JWT_KEY (--clerk-jwt-key)",
                        format!(
                            "{e}; copy the PEM public key from the Clerk dashboard (API keys, JWT public key), or unset it to use the JWKS"
                        ),
                    );
                    None
                }
            },
        };
        let authorized_parties: Vec<String> = self
            .clerk_authorized_parties
            .iter()
            .map(|p| p.trim().trim_end_matches('/').to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        for party in &authorized_parties {
            if !is_http_url(party) {
                problem(
                    "CLERK_AUTHORIZED_PARTIES (--clerk-authorized-party)",
                    format!(
                        "{party:?} is not an origin; list origins like https://app.example.com"
                    ),
                );
            }
        }
        let issuers: Vec<String> = self
            .clerk_issuers
            .iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        for issuer in &issuers {
            if !is_http_url(issuer) {
                problem(
                    "CLERK_ISSUERS (--clerk-issuer)",
                    format!(
                        "{issuer:?} is not a URL; give the issuer as https://clerk.example.com"
                    ),
                );
            }
        }
        let clerk_api_url = text(&self.clerk_api_url).map(str::to_owned);
        if let Some(url) = &clerk_api_url
            && !is_http_url(url)
        {
            problem(
                "CLERK_API_URL (--clerk-api-url)",
                format!("{url:?} is not an http(s) URL"),
            );
        }

        let instant_app_id = match text(&self.instant_app_id) {
            None => {
                problem(
                    "INSTANT_APP_ID (--instant-app-id)",
                    "is not set; copy the app id from the Instant dashboard".to_owned(),
                );
                None
            }
            Some(id) => match Uuid::parse_str(id) {
                Ok(id) => Some(id),
                Err(_) => {
                    problem(
                        "INSTANT_APP_ID (--instant-app-id)",
                        format!("{id:?} is not a UUID; copy the app id from the Instant dashboard"),
                    );
                    None
                }
            },
        };
        let instant_admin_token = match text(&self.instant_admin_token) {
            None => None,
            Some(token) => match AdminToken::new(token) {
                Ok(token) => Some(token),
                Err(e) => {
                    problem(
                        "INSTANT_APP_ADMIN_TOKEN (--instant-admin-token)",
                        format!("{e}; copy the admin token from the Instant dashboard"),
                    );
                    None
                }
            },
        };
        let instant_api_uri = text(&self.instant_api_uri)
            .unwrap_or(DEFAULT_INSTANT_API)
            .trim_end_matches('/')
            .to_owned();
        if !is_http_url(&instant_api_uri) {
            problem(
                "INSTANT_API_URI (--instant-api-uri)",
                format!(
                    "{instant_api_uri:?} is not an http(s) URL; unset it for {DEFAULT_INSTANT_API}"
                ),
            );
        }
        let client_name = text(&self.instant_client_name)
            .unwrap_or("clerk")
            .to_owned();
        let strategy = match text(&self.strategy).unwrap_or("id-token") {
            "id-token" => Some(Strategy::IdToken { client_name }),
            "admin" => {
                if text(&self.instant_admin_token).is_none() {
                    problem(
                        "INSTANT_APP_ADMIN_TOKEN (--instant-admin-token)",
                        "is required by SIGN_IN_STRATEGY=admin; copy it from the Instant dashboard, or use the id-token strategy".to_owned(),
                    );
                }
                Some(Strategy::Admin)
            }
            other => {
                problem(
                    "SIGN_IN_STRATEGY (--strategy)",
                    format!("must be id-token or admin, not {other:?}"),
                );
                None
            }
        };

        match (publishable_key, instant_app_id, strategy) {
            (Some(publishable_key), Some(instant_app_id), Some(strategy))
                if problems.is_empty() =>
            {
                Ok(ServiceConfig {
                    publishable_key,
                    secret_key,
                    jwt_key,
                    authorized_parties,
                    issuers,
                    clerk_api_url,
                    instant_app_id,
                    instant_admin_token,
                    instant_api_uri,
                    strategy,
                })
            }
            _ => Err(problems),
        }
    }
}

/// The clients a [`ServiceConfig`] describes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Clients {
    /// The token verifier.
    pub verifier: Verifier,
    /// The remote JWKS the verifier uses, unless a PEM key was configured.
    pub keys: Option<RemoteJwks>,
    /// The InstantDB client (with the admin token when configured).
    pub instant: instant_client::Client,
    /// The Clerk Backend API client, when a secret key is configured.
    pub clerk: Option<BackendClient>,
}

impl ServiceConfig {
    /// Builds the verifier and the clients, sharing one HTTP connection pool.
    pub fn clients(&self, http: &reqwest::Client) -> Result<Clients, BuildError> {
        // Clients resend the same token for up to a minute: remember verified ones.
        let mut verifier = Verifier::builder()
            .publishable_key(self.publishable_key.clone())
            .verified_token_cache(VERIFIED_TOKENS)
            .http_client(http.clone());
        for issuer in &self.issuers {
            verifier = verifier.issuer(issuer);
        }
        for party in &self.authorized_parties {
            verifier = verifier.authorized_party(party);
        }
        let mut keys = None;
        if let Some(pem) = &self.jwt_key {
            verifier = verifier.keys(KeySource::Pem(pem.clone()));
        } else {
            let remote = RemoteJwks::frontend_api(&self.publishable_key, RemoteOptions::default())
                .with_client(http.clone());
            keys = Some(remote.clone());
            verifier = verifier.keys(remote);
        }
        let verifier = verifier.build().map_err(BuildError::Verifier)?;

        let mut instant = instant_client::Client::builder(self.instant_app_id)
            .base_url(&self.instant_api_uri)
            .http_client(http.clone());
        if let Some(token) = &self.instant_admin_token {
            instant = instant.admin_token(token.clone());
        }
        let instant = instant.build().map_err(BuildError::Instant)?;

        let clerk = match &self.secret_key {
            Some(secret) => {
                let mut backend = BackendClient::builder(secret.clone()).http_client(http.clone());
                if let Some(url) = &self.clerk_api_url {
                    backend = backend.base_url(url);
                }
                Some(backend.build().map_err(BuildError::Clerk)?)
            }
            None => None,
        };
        Ok(Clients {
            verifier,
            keys,
            instant,
            clerk,
        })
    }
}

impl Clients {
    /// Shares the clerk client behind the port trait.
    pub fn clerk_port(&self) -> Option<Arc<dyn crate::ClerkSessions>> {
        self.clerk
            .clone()
            .map(|c| Arc::new(c) as Arc<dyn crate::ClerkSessions>)
    }
}

/// Why a client could not be built from settings that passed [`RawServiceConfig::resolve`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The verifier.
    #[error("clerk verifier: {0}")]
    Verifier(#[source] clerk_jwt::Error),
    /// The InstantDB client.
    #[error("InstantDB client: {0}")]
    Instant(#[source] instant_client::Error),
    /// The Clerk Backend API client.
    #[error("Clerk Backend API client: {0}")]
    Clerk(#[source] clerk_backend::Error),
}
