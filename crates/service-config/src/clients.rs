//! The verifier and the InstantDB and Clerk clients a [`ServiceConfig`] describes.

use std::sync::Arc;
use std::time::Duration;

use auth_core::ClerkSessions;
use clerk_backend::BackendClient;
use clerk_jwt::{KeySource, RemoteJwks, RemoteOptions, Verifier};

use crate::ServiceConfig;

/// How many verified tokens the verifier remembers unless `CLERK_VERIFIED_TOKEN_CACHE`
/// says otherwise (see `clerk_jwt::VerifierBuilder::verified_token_cache`).
pub const VERIFIED_TOKENS: usize = 10_000;

/// The overall timeout of every call the shared HTTP client makes.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client both apps share between their clients: one connection pool,
/// [`HTTP_TIMEOUT`] on every call, and no redirect followed (a redirect would carry the
/// Clerk secret key, the InstantDB admin token or a user's token to another host; the
/// caller sees the 3xx as an unexpected response instead).
pub fn http_client() -> Result<reqwest::Client, BuildError> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(BuildError::Http)
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
    /// Builds the verifier and the clients over a new [`http_client`]. No network call
    /// is made.
    pub fn build_clients(&self) -> Result<Clients, BuildError> {
        self.clients(&http_client()?)
    }

    /// Builds the verifier and the clients, sharing `http`'s connection pool. No
    /// network call is made.
    pub fn clients(&self, http: &reqwest::Client) -> Result<Clients, BuildError> {
        // Clients resend the same token for up to a minute: `apply` sets how many
        // verified ones are remembered.
        let mut verifier = self.verifier.apply(
            Verifier::builder()
                .publishable_key(self.publishable_key.clone())
                .http_client(http.clone()),
        );
        for issuer in &self.issuers {
            verifier = verifier.issuer(issuer);
        }
        for party in self.authorized_parties.origins() {
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
    /// Shares the Clerk client behind `auth-core`'s port trait.
    pub fn clerk_port(&self) -> Option<Arc<dyn ClerkSessions>> {
        self.clerk
            .clone()
            .map(|c| Arc::new(c) as Arc<dyn ClerkSessions>)
    }
}

/// Why a client could not be built from settings that passed
/// [`ServiceArgs::resolve`](crate::ServiceArgs::resolve). The cause is the
/// [`source`](std::error::Error::source), printed once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The shared HTTP client.
    #[error("could not build the HTTP client")]
    Http(#[source] reqwest::Error),
    /// The verifier.
    #[error("could not build the Clerk token verifier")]
    Verifier(#[source] clerk_jwt::Error),
    /// The InstantDB client.
    #[error("could not build the InstantDB client")]
    Instant(#[source] instant_client::Error),
    /// The Clerk Backend API client.
    #[error("could not build the Clerk Backend API client")]
    Clerk(#[source] clerk_backend::Error),
}
