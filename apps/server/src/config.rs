//! Configuration from flags and the usual environment names, checked as a whole: every
//! problem is reported at once, each naming the setting and the fix.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use auth_core::Strategy;
use clap::Parser;
use clerk_jwt::{PublishableKey, SecretKey, VerifyingKey};
use instant_client::{AdminToken, Uuid};

/// The default InstantDB API.
pub const DEFAULT_INSTANT_API: &str = "https://api.instantdb.com";

/// `clerk-instant-server`: Clerk session in, InstantDB session out.
///
/// With no CLERK_* or INSTANT_* setting at all, it starts a local Clerk and an InstantDB
/// emulator in-process and serves against them (development only).
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "clerk-instant-server", version, about, long_about = None)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8787")]
    pub listen: String,
    /// Clerk publishable key (pk_test_… / pk_live_…): gives the issuer and JWKS URL.
    #[arg(long, env = "CLERK_PUBLISHABLE_KEY")]
    pub clerk_publishable_key: Option<String>,
    /// Clerk secret key (sk_…): revokes Clerk sessions on sign-out.
    #[arg(long, env = "CLERK_SECRET_KEY", hide_env_values = true)]
    pub clerk_secret_key: Option<String>,
    /// Clerk's PEM public key ("JWT public key"): verify without fetching the JWKS.
    #[arg(long, env = "CLERK_JWT_KEY", hide_env_values = true)]
    pub clerk_jwt_key: Option<String>,
    /// Origins allowed in the token's azp claim (comma-separated). Recommended.
    #[arg(
        long = "clerk-authorized-party",
        env = "CLERK_AUTHORIZED_PARTIES",
        value_delimiter = ','
    )]
    pub clerk_authorized_parties: Vec<String>,
    /// Extra accepted issuers: satellite domains or proxy URLs (comma-separated).
    #[arg(long = "clerk-issuer", env = "CLERK_ISSUERS", value_delimiter = ',')]
    pub clerk_issuers: Vec<String>,
    /// The Clerk Backend API base URL.
    #[arg(long, env = "CLERK_API_URL")]
    pub clerk_api_url: Option<String>,
    /// InstantDB app id.
    #[arg(long, env = "INSTANT_APP_ID")]
    pub instant_app_id: Option<String>,
    /// InstantDB admin token (needed by the admin strategy).
    #[arg(long, env = "INSTANT_APP_ADMIN_TOKEN", hide_env_values = true)]
    pub instant_admin_token: Option<String>,
    /// InstantDB API base URL (self-hosted servers; default https://api.instantdb.com).
    #[arg(long, env = "INSTANT_API_URI")]
    pub instant_api_uri: Option<String>,
    /// The Clerk client's name in the Instant dashboard.
    #[arg(long, env = "INSTANT_CLERK_CLIENT_NAME")]
    pub instant_client_name: Option<String>,
    /// How InstantDB sessions are obtained: id-token (default) or admin.
    #[arg(long, env = "SIGN_IN_STRATEGY")]
    pub strategy: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 64 * 1024)]
    pub body_limit: usize,
    /// Per-request timeout, in seconds.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub request_timeout: u64,
    /// Seconds a stored InstantDB session is reused without asking InstantDB.
    #[arg(long, env = "SESSION_REVALIDATE_SECS", default_value_t = 60)]
    pub session_revalidate: u64,
    /// The most sessions kept in memory.
    #[arg(long, env = "MAX_SESSIONS", default_value_t = 100_000)]
    pub max_sessions: usize,
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The setting, as the environment name and the flag.
    pub setting: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Every problem found, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError(pub Vec<Problem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the configuration is not usable:")?;
        for problem in &self.0 {
            writeln!(f, "  - {}: {}", problem.setting, problem.message)?;
        }
        write!(
            f,
            "(unset every CLERK_* and INSTANT_* setting to run on the embedded local stack instead)"
        )
    }
}

/// How the server runs.
#[derive(Debug)]
pub enum Mode {
    /// No Clerk or InstantDB setting: run the local stack in-process.
    Dev(Options),
    /// Real (or self-hosted) services.
    Configured(Box<Settings>),
}

/// Settings that apply in both modes.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen.
    pub listen: SocketAddr,
    /// JSON logs.
    pub json_logs: bool,
    /// Log level.
    pub log_level: tracing::Level,
    /// Largest request body.
    pub body_limit: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Reuse window for stored sessions.
    pub revalidate_after: Duration,
    /// Session store bound.
    pub max_sessions: usize,
}

/// A checked configuration for real services.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Common options.
    pub options: Options,
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
    /// Clerk Backend API base URL.
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

impl ServerArgs {
    /// Whether any Clerk or InstantDB setting is present.
    fn configures_services(&self) -> bool {
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
        .any(|v| v.as_deref().is_some_and(|s| !s.trim().is_empty()))
            || self.clerk_authorized_parties.iter().any(|p| !p.trim().is_empty())
            || self.clerk_issuers.iter().any(|p| !p.trim().is_empty())
    }

    /// Checks everything and decides the mode.
    pub fn resolve(&self) -> Result<Mode, ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |setting: &'static str, message: String| {
            problems.push(Problem { setting, message });
        };

        let listen = self.listen.trim().parse::<SocketAddr>().map_err(|_| ()).ok();
        if listen.is_none() {
            problem(
                "LISTEN_ADDR (--listen)",
                format!(
                    "{:?} is not an address and port; use e.g. 127.0.0.1:8787",
                    self.listen
                ),
            );
        }
        let json_logs = match self.log_format.trim() {
            "text" => false,
            "json" => true,
            other => {
                problem(
                    "LOG_FORMAT (--log-format)",
                    format!("must be text or json, not {other:?}"),
                );
                false
            }
        };
        let log_level = match self.log_level.trim().parse::<tracing::Level>() {
            Ok(level) => level,
            Err(_) => {
                problem(
                    "LOG_LEVEL (--log-level)",
                    format!(
                        "must be error, warn, info, debug or trace, not {:?}",
                        self.log_level
                    ),
                );
                tracing::Level::INFO
            }
        };
        if self.body_limit < 1024 {
            problem(
                "BODY_LIMIT_BYTES (--body-limit)",
                "must be at least 1024 bytes (a Clerk token alone can be 4 KB)".to_owned(),
            );
        }
        if self.request_timeout == 0 {
            problem(
                "REQUEST_TIMEOUT_SECS (--request-timeout)",
                "must be at least 1 second".to_owned(),
            );
        }
        if self.max_sessions == 0 {
            problem("MAX_SESSIONS (--max-sessions)", "must be at least 1".to_owned());
        }
        let options = Options {
            listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8787))),
            json_logs,
            log_level,
            body_limit: self.body_limit,
            request_timeout: Duration::from_secs(self.request_timeout),
            revalidate_after: Duration::from_secs(self.session_revalidate),
            max_sessions: self.max_sessions,
        };

        if !self.configures_services() {
            return if problems.is_empty() {
                Ok(Mode::Dev(options))
            } else {
                Err(ConfigError(problems))
            };
        }


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
                    format!("{issuer:?} is not a URL; give the issuer as https://clerk.example.com"),
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
        let client_name = text(&self.instant_client_name).unwrap_or("clerk").to_owned();
        let strategy = match text(&self.strategy).unwrap_or("id-token") {
            "id-token" => Some(Strategy::IdToken { client_name }),
            "admin" => {
                if instant_admin_token.is_none() && text(&self.instant_admin_token).is_none() {
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
                Ok(Mode::Configured(Box::new(Settings {
                    options,
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
                })))
            }
            _ => Err(ConfigError(problems)),
        }
    }
}
