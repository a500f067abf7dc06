//! How a [`LocalClerk`](super::LocalClerk) runs: its port, signing key, claims
//! template, token lifetime, clock and webhooks.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clerk_jwt::{Clock, SecretKey, SystemClock};
use serde_json::{Value, json};

use super::{WebhookEndpoint, WebhookOptions};

/// Where the local Clerk's RSA signing key comes from. `Debug` never shows a key.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SigningKeySource {
    /// A fresh RSA-2048 key for this run.
    #[default]
    Generate,
    /// This private key (PKCS#8 `PRIVATE KEY` or `RSA PRIVATE KEY` PEM).
    Pem(String),
    /// The key in this file, created (mode 0600) with a fresh key if it does not exist,
    /// so tokens, `kid` and secret key survive restarts.
    File(PathBuf),
}

impl fmt::Debug for SigningKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigningKeySource::Generate => f.write_str("Generate"),
            SigningKeySource::Pem(_) => f.write_str("Pem(…)"),
            SigningKeySource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// The custom session-token claims of a Clerk instance configured for InstantDB, as in
/// the dashboard's "Customize session token".
pub fn default_session_claims() -> Value {
    json!({
        "email": "{{user.primary_email_address}}",
        "email_verified": "{{user.email_verified}}",
    })
}

/// How to run a [`LocalClerk`](super::LocalClerk).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClerkConfig {
    /// The port on 127.0.0.1; 0 (the default) picks a free one.
    pub port: u16,
    /// The signing key.
    pub signing_key: SigningKeySource,
    /// The Backend API secret key; by default derived from the signing key (stable when
    /// the key is persisted).
    pub secret_key: Option<SecretKey>,
    /// The custom claims template ([`default_session_claims`] by default). A string that
    /// is exactly `{{user.…}}` becomes the typed value; supported shortcodes:
    /// `user.id`, `user.primary_email_address`, `user.email_verified`,
    /// `user.first_name`, `user.last_name`, `user.full_name`, `user.username`,
    /// `user.created_at`, `user.public_metadata[.path]`.
    pub session_claims: Value,
    /// Session token lifetime (Clerk: 60 s).
    pub token_lifetime: Duration,
    /// The clock for `iat`/`exp` and timestamps.
    pub clock: Arc<dyn Clock>,
    /// Webhook endpoints known from the start.
    pub webhooks: Vec<WebhookEndpoint>,
    /// Webhook retry timing.
    pub webhook_options: WebhookOptions,
}

impl Default for ClerkConfig {
    fn default() -> Self {
        ClerkConfig {
            port: 0,
            signing_key: SigningKeySource::Generate,
            secret_key: None,
            session_claims: default_session_claims(),
            token_lifetime: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
            webhooks: Vec::new(),
            webhook_options: WebhookOptions::default(),
        }
    }
}

impl ClerkConfig {
    /// Sets the port (0: any free port).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets where the signing key comes from.
    #[must_use]
    pub fn signing_key(mut self, source: SigningKeySource) -> Self {
        self.signing_key = source;
        self
    }

    /// Sets the secret key.
    #[must_use]
    pub fn secret_key(mut self, key: SecretKey) -> Self {
        self.secret_key = Some(key);
        self
    }

    /// Replaces the custom claims template.
    #[must_use]
    pub fn session_claims(mut self, template: Value) -> Self {
        self.session_claims = template;
        self
    }

    /// Sets the token lifetime.
    #[must_use]
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Sets the clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Adds a webhook endpoint.
    #[must_use]
    pub fn webhook(mut self, endpoint: WebhookEndpoint) -> Self {
        self.webhooks.push(endpoint);
        self
    }

    /// Sets the webhook retry timing.
    #[must_use]
    pub fn webhook_options(mut self, options: WebhookOptions) -> Self {
        self.webhook_options = options;
        self
    }
}

#[cfg(test)]
mod tests {
    use clerk_jwt::testing::TestKey;

    use super::*;

    #[test]
    fn debug_never_shows_a_private_key() {
        let pem = TestKey::generate("k").private_pem();
        let config = ClerkConfig::default().signing_key(SigningKeySource::Pem(pem.clone()));
        let debug = format!("{config:?}");
        assert!(
            debug.contains("Pem(…)") && !debug.contains("PRIVATE"),
            "{debug}"
        );
    }
}
