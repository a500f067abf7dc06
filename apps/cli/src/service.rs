//! The Clerk and InstantDB settings, taken exactly as the server takes them (the same
//! flags and environment names), and the clients and broker built from them.

use std::sync::Arc;
use std::time::Duration;

use auth_core::config::{Clients, RawServiceConfig, ServiceConfig};
use auth_core::{BrokerConfig, MemorySessionStore, SessionBroker, StoreLimits};
use clap::Args;

use crate::report::Failure;

/// The server's Clerk and InstantDB settings (`clerk-instant-server --help`), flattened
/// into every command that talks to the two services.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Clerk and InstantDB (the server's settings)")]
pub(crate) struct ServiceArgs {
    /// Clerk publishable key (pk_test_… / pk_live_…): gives the issuer and JWKS URL.
    #[arg(long, env = "CLERK_PUBLISHABLE_KEY")]
    clerk_publishable_key: Option<String>,
    /// Clerk secret key (sk_…): revokes Clerk sessions on sign-out.
    #[arg(long, env = "CLERK_SECRET_KEY", hide_env_values = true)]
    clerk_secret_key: Option<String>,
    /// Clerk's PEM public key ("JWT public key"): verify without fetching the JWKS.
    #[arg(long, env = "CLERK_JWT_KEY", hide_env_values = true)]
    clerk_jwt_key: Option<String>,
    /// Origins allowed in the token's azp claim (comma-separated). Recommended.
    #[arg(
        long = "clerk-authorized-party",
        env = "CLERK_AUTHORIZED_PARTIES",
        value_delimiter = ','
    )]
    clerk_authorized_parties: Vec<String>,
    /// Extra accepted issuers: satellite domains or proxy URLs (comma-separated).
    #[arg(long = "clerk-issuer", env = "CLERK_ISSUERS", value_delimiter = ',')]
    clerk_issuers: Vec<String>,
    /// The Clerk Backend API base URL.
    #[arg(long, env = "CLERK_API_URL")]
    clerk_api_url: Option<String>,
    /// InstantDB app id.
    #[arg(long, env = "INSTANT_APP_ID")]
    instant_app_id: Option<String>,
    /// InstantDB admin token (needed by the admin strategy).
    #[arg(long, env = "INSTANT_APP_ADMIN_TOKEN", hide_env_values = true)]
    instant_admin_token: Option<String>,
    /// InstantDB API base URL, for self-hosted servers (default: the hosted api.instantdb.com).
    #[arg(long, env = "INSTANT_API_URI")]
    instant_api_uri: Option<String>,
    /// The Clerk client's name in the Instant dashboard.
    #[arg(long, env = "INSTANT_CLERK_CLIENT_NAME")]
    instant_client_name: Option<String>,
    /// How InstantDB sessions are obtained: id-token (default) or admin.
    #[arg(long, env = "SIGN_IN_STRATEGY")]
    strategy: Option<String>,
}

/// Checked settings, the clients built from them and a broker over those clients.
pub(crate) struct Service {
    /// The checked settings.
    pub(crate) config: ServiceConfig,
    /// The verifier and the InstantDB and Clerk clients.
    pub(crate) clients: Clients,
    /// The broker, with an in-memory session store that lives as long as the command.
    pub(crate) broker: SessionBroker,
}

impl ServiceArgs {
    /// The settings as given.
    fn raw(&self) -> RawServiceConfig {
        let mut raw = RawServiceConfig::default();
        raw.clerk_publishable_key = self.clerk_publishable_key.clone();
        raw.clerk_secret_key = self.clerk_secret_key.clone();
        raw.clerk_jwt_key = self.clerk_jwt_key.clone();
        raw.clerk_authorized_parties = self.clerk_authorized_parties.clone();
        raw.clerk_issuers = self.clerk_issuers.clone();
        raw.clerk_api_url = self.clerk_api_url.clone();
        raw.instant_app_id = self.instant_app_id.clone();
        raw.instant_admin_token = self.instant_admin_token.clone();
        raw.instant_api_uri = self.instant_api_uri.clone();
        raw.instant_client_name = self.instant_client_name.clone();
        raw.strategy = self.strategy.clone();
        raw
    }

    /// Checks every setting (all problems at once) and builds the clients and broker.
    /// No network call is made.
    pub(crate) fn connect(&self) -> Result<Service, Failure> {
        let config = self.raw().resolve().map_err(Failure::config)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Failure::setup(format!("the HTTP client could not be built: {e}")))?;
        let clients = config
            .clients(&http)
            .map_err(|e| Failure::setup(e.to_string()))?;
        let broker = SessionBroker::new(
            BrokerConfig::new(config.strategy.clone()),
            Arc::new(clients.verifier.clone()),
            Arc::new(clients.instant.clone()),
            clients.clerk_port(),
            Arc::new(MemorySessionStore::new(StoreLimits::default())),
        );
        Ok(Service {
            config,
            clients,
            broker,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        service: ServiceArgs,
    }

    #[test]
    fn flags_fill_the_same_settings_as_the_server() {
        let cli = Cli::try_parse_from([
            "x",
            "--clerk-publishable-key",
            "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k",
            "--clerk-authorized-party",
            "https://a.example.com,https://b.example.com",
            "--clerk-issuer",
            "https://clerk.example.com",
            "--instant-app-id",
            "11111111-2222-4333-8444-555555555555",
            "--instant-client-name",
            "my-clerk",
            "--strategy",
            "id-token",
        ])
        .unwrap();
        let raw = cli.service.raw();
        assert_eq!(
            raw.clerk_authorized_parties,
            ["https://a.example.com", "https://b.example.com"]
        );
        let config = raw.resolve().unwrap();
        assert_eq!(
            config.strategy,
            auth_core::Strategy::IdToken {
                client_name: "my-clerk".into()
            }
        );
        assert_eq!(config.issuers, ["https://clerk.example.com"]);
    }

    /// The names a setting goes by in a source file: environment names of the Clerk,
    /// InstantDB and strategy settings, and the field (flag) names that carry them.
    fn settings_in(source: &str) -> (Vec<String>, Vec<String>) {
        let mut envs = Vec::new();
        let mut fields = Vec::new();
        for line in source.lines().map(str::trim) {
            if let Some(rest) = line.split("env = \"").nth(1) {
                let name = rest.split('"').next().unwrap_or_default();
                if name.starts_with("CLERK_")
                    || name.starts_with("INSTANT_")
                    || name == "SIGN_IN_STRATEGY"
                {
                    envs.push(name.to_owned());
                }
            }
            let field = line
                .trim_start_matches("pub ")
                .split(':')
                .next()
                .unwrap_or_default();
            if line.ends_with(',')
                && (field.starts_with("clerk_")
                    || field.starts_with("instant_")
                    || field == "strategy")
                && field.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                fields.push(field.to_owned());
            }
        }
        envs.sort();
        fields.sort();
        (envs, fields)
    }

    #[test]
    fn the_settings_are_the_servers() {
        // apps/cli may not depend on apps/server, so its flag declarations are a copy:
        // this keeps the copy in step with the original.
        let dir = env!("CARGO_MANIFEST_DIR");
        let server = std::fs::read_to_string(format!("{dir}/../server/src/config.rs")).unwrap();
        let (server_envs, server_fields) = settings_in(&server);
        let (envs, fields) = settings_in(include_str!("service.rs"));
        assert_eq!(server_envs.len(), 11, "{server_envs:?}");
        assert_eq!(envs, server_envs);
        assert_eq!(fields, server_fields);
    }
}
