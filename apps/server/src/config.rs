//! Configuration from flags and the usual environment names, checked as a whole: every
//! problem is reported at once, each naming the setting and the fix.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

pub use auth_core::config::Problem;
use auth_core::config::{RawServiceConfig, ServiceConfig};
use clap::Parser;

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
    /// InstantDB API base URL, for self-hosted servers (default: the hosted api.instantdb.com).
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
    /// Clerk and InstantDB.
    pub service: ServiceConfig,
}

impl ServerArgs {
    /// The Clerk and InstantDB settings, as given.
    pub fn service(&self) -> RawServiceConfig {
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

    /// Checks everything and decides the mode.
    pub fn resolve(&self) -> Result<Mode, ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |setting: &'static str, message: String| {
            problems.push(Problem { setting, message });
        };

        let listen = self
            .listen
            .trim()
            .parse::<SocketAddr>()
            .map_err(|_| ())
            .ok();
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
            problem(
                "MAX_SESSIONS (--max-sessions)",
                "must be at least 1".to_owned(),
            );
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

        let raw = self.service();
        if raw.is_empty() {
            return if problems.is_empty() {
                Ok(Mode::Dev(options))
            } else {
                Err(ConfigError(problems))
            };
        }
        match raw.resolve() {
            Ok(service) if problems.is_empty() => {
                Ok(Mode::Configured(Box::new(Settings { options, service })))
            }
            Ok(_) => Err(ConfigError(problems)),
            Err(more) => {
                problems.extend(more);
                Err(ConfigError(problems))
            }
        }
    }
}
