//! Configuration from flags and the usual environment names, checked as a whole: every
//! problem is reported at once, each naming the setting and the fix.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use auth_core::UserDeletedPolicy;
use clap::Parser;
use clerk_webhooks::Secrets;
pub use service_config::Problem;
use service_config::{ServiceArgs, ServiceConfig};

/// `clerk-instant-server`: Clerk session in, InstantDB session out.
///
/// With `--dev` (or CLERK_INSTANT_DEV=1) and no Clerk or InstantDB setting, it starts a
/// local Clerk and an InstantDB emulator in-process and serves against them on
/// loopback (development only; feature `local-stack`, on by default).
#[derive(Clone, Default, Parser)]
#[command(name = "clerk-instant-server", version, about, long_about = None)]
#[cfg_attr(
    not(feature = "local-stack"),
    command(about = "clerk-instant-server: Clerk session in, InstantDB session out, over HTTP")
)]
pub struct ServerArgs {
    /// Development mode: run on the embedded local stack (a local Clerk and an
    /// InstantDB emulator, in-process, with the /dev/token endpoint). Loopback
    /// addresses only, and no Clerk or InstantDB setting may be given. Without it, the
    /// server needs at least CLERK_PUBLISHABLE_KEY and INSTANT_APP_ID.
    #[arg(
        long,
        env = DEV_ENV,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub dev: bool,
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8787")]
    pub listen: String,
    /// The Clerk and InstantDB settings (shared with the `clerk-instant` CLI).
    #[command(flatten)]
    pub service: ServiceArgs,
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
    /// Clerk webhook signing secret(s) (`whsec_…`, from the Clerk dashboard's webhook
    /// endpoint); several, separated by whitespace or commas, across a rotation.
    /// Without it `POST /v1/webhooks/clerk` answers 503 `webhooks-not-configured`.
    #[arg(long, env = "CLERK_WEBHOOK_SIGNING_SECRET", hide_env_values = true)]
    pub clerk_webhook_signing_secret: Option<String>,
    /// What a Clerk `user.deleted` does to the InstantDB user once its sessions are
    /// signed out: delete-user, sign-out or ignore.
    #[arg(long, env = "USER_DELETED_POLICY", default_value = "delete-user")]
    pub user_deleted_policy: String,
}

impl fmt::Debug for ServerArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerArgs")
            .field("dev", &self.dev)
            .field("listen", &self.listen)
            .field("service", &self.service)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("body_limit", &self.body_limit)
            .field("request_timeout", &self.request_timeout)
            .field("session_revalidate", &self.session_revalidate)
            .field("max_sessions", &self.max_sessions)
            .field(
                "clerk_webhook_signing_secret",
                &self
                    .clerk_webhook_signing_secret
                    .as_ref()
                    .map(|_| "whsec_…"),
            )
            .field("user_deleted_policy", &self.user_deleted_policy)
            .finish()
    }
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
        f.write_str(HOW_ELSE)
    }
}

/// The environment equivalent of `--dev`.
pub const DEV_ENV: &str = "CLERK_INSTANT_DEV";

/// The last line of a [`ConfigError`]: both ways forward.
#[cfg(feature = "local-stack")]
const HOW_ELSE: &str = "(to serve real Clerk and InstantDB, set at least CLERK_PUBLISHABLE_KEY and INSTANT_APP_ID; to try the server on its embedded local stack instead, pass --dev or set CLERK_INSTANT_DEV=1, with no Clerk or InstantDB setting)";
/// The last line of a [`ConfigError`]: why there is no way out without settings.
#[cfg(not(feature = "local-stack"))]
const HOW_ELSE: &str = "(this server is built without the embedded local stack: set at least CLERK_PUBLISHABLE_KEY and INSTANT_APP_ID)";

/// How the server runs.
#[derive(Debug)]
pub enum Mode {
    /// `--dev`: run the local stack in-process, on loopback.
    #[cfg(feature = "local-stack")]
    Dev(Options),
    /// Real (or self-hosted) services.
    Configured(Box<Settings>),
}

impl Mode {
    /// `dev` or `configured`, as the start-up log and `/readyz` say it.
    pub fn as_str(&self) -> &'static str {
        match self {
            #[cfg(feature = "local-stack")]
            Mode::Dev(_) => "dev",
            Mode::Configured(_) => "configured",
        }
    }

    /// The options of either mode.
    pub fn options(&self) -> &Options {
        match self {
            #[cfg(feature = "local-stack")]
            Mode::Dev(options) => options,
            Mode::Configured(settings) => &settings.options,
        }
    }
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
    /// The Clerk webhook signing secrets; without them the webhook endpoint answers
    /// 503 `webhooks-not-configured`.
    pub webhook_secrets: Option<Secrets>,
    /// What `user.deleted` does to the InstantDB user.
    pub user_deleted_policy: UserDeletedPolicy,
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
    /// Checks everything and decides the mode, with no environment to look for
    /// misnamed settings in (see [`ServerArgs::resolve_in`]).
    pub fn resolve(&self) -> Result<Mode, ConfigError> {
        self.resolve_in(|_| None)
    }

    /// Checks everything and decides the mode: `--dev` runs the local stack (on
    /// loopback, with no Clerk or InstantDB setting given); otherwise the settings must
    /// be complete. A Clerk or InstantDB setting that is not given while a well-known
    /// wrong name for it is set in the environment `lookup` reads
    /// (`NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY`, …) is reported under both names. The
    /// binary passes `std::env::var_os`.
    pub fn resolve_in(
        &self,
        lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Mode, ConfigError> {
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
        let webhook_secrets = match self.clerk_webhook_signing_secret.as_deref() {
            None => None,
            Some(text) => match Secrets::parse(text) {
                Ok(secrets) => Some(secrets),
                Err(error) => {
                    problem(
                        "CLERK_WEBHOOK_SIGNING_SECRET (--clerk-webhook-signing-secret)",
                        format!(
                            "{error}; copy the endpoint's signing secret (whsec_…) from the Clerk dashboard (Webhooks, the endpoint, Signing Secret), or unset it to leave webhooks off"
                        ),
                    );
                    None
                }
            },
        };
        let policy = self.user_deleted_policy.trim();
        let user_deleted_policy = match policy.parse::<UserDeletedPolicy>() {
            Ok(policy) => policy,
            Err(_) => {
                problem(
                    "USER_DELETED_POLICY (--user-deleted-policy)",
                    format!(
                        "must be delete-user, sign-out or ignore, not {:?}",
                        self.user_deleted_policy
                    ),
                );
                UserDeletedPolicy::default()
            }
        };
        let options = Options {
            listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8787))),
            json_logs,
            log_level,
            body_limit: self.body_limit,
            request_timeout: Duration::from_secs(self.request_timeout),
            revalidate_after: Duration::from_secs(self.session_revalidate),
            max_sessions: self.max_sessions,
            webhook_secrets,
            user_deleted_policy,
        };

        let raw = &self.service;
        if self.dev {
            #[cfg(feature = "local-stack")]
            {
                self.check_dev(&options, &mut problems);
                return if problems.is_empty() {
                    Ok(Mode::Dev(options))
                } else {
                    Err(ConfigError(problems))
                };
            }
            #[cfg(not(feature = "local-stack"))]
            problems.push(Problem {
                setting: DEV_SETTING,
                message: "this server is built without the embedded local stack (cargo feature local-stack); give it the Clerk and InstantDB settings instead".to_owned(),
            });
        }
        match raw.resolve_in(lookup) {
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

    /// Dev mode serves development secrets and a token-minting endpoint: on loopback
    /// only, and never with real settings it would silently ignore.
    #[cfg(feature = "local-stack")]
    fn check_dev(&self, options: &Options, problems: &mut Vec<Problem>) {
        let given = self.service.given();
        if !given.is_empty() {
            problems.push(Problem {
                setting: DEV_SETTING,
                message: format!(
                    "runs the embedded local stack, which takes no Clerk or InstantDB setting, but {} {} given; unset {}, or drop --dev (and CLERK_INSTANT_DEV) to serve with the settings",
                    given.join(", "),
                    if given.len() == 1 { "is" } else { "are" },
                    if given.len() == 1 { "it" } else { "them" },
                ),
            });
        }
        if self.listen.trim().parse::<SocketAddr>().is_ok() && !options.listen.ip().is_loopback() {
            problems.push(Problem {
                setting: "LISTEN_ADDR (--listen)",
                message: format!(
                    "{} is not a loopback address, and --dev (development secrets, a token-minting endpoint) listens on loopback only; use 127.0.0.1:{port} or [::1]:{port}",
                    options.listen,
                    port = options.listen.port()
                ),
            });
        }
    }
}

/// How `--dev` is named in problems.
const DEV_SETTING: &str = "CLERK_INSTANT_DEV (--dev)";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(service: ServiceArgs) -> ServerArgs {
        ServerArgs {
            dev: false,
            listen: "127.0.0.1:8787".into(),
            service,
            log_format: "text".into(),
            log_level: "info".into(),
            body_limit: 64 * 1024,
            request_timeout: 10,
            session_revalidate: 60,
            max_sessions: 100_000,
            clerk_webhook_signing_secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            user_deleted_policy: "delete-user".into(),
        }
    }

    #[test]
    fn debug_redacts_the_secrets() {
        let args = args(ServiceArgs {
            clerk_publishable_key: Some("pk_test_Y2xlcmsuZXhhbXBsZS5jb20k".into()),
            clerk_secret_key: Some("sk_test_hunter2hunter2".into()),
            instant_app_id: Some("11111111-2222-4333-8444-555555555555".into()),
            instant_admin_token: Some("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee".into()),
            ..ServiceArgs::default()
        });
        let Ok(Mode::Configured(settings)) = args.resolve() else {
            panic!("valid settings");
        };
        for text in [format!("{args:?}"), format!("{settings:?}")] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("aaaaaaaa-bbbb"), "{text}");
            assert!(!text.contains("MfKQ9r8"), "{text}");
        }
    }

    #[cfg(not(feature = "local-stack"))]
    #[test]
    fn without_the_local_stack_no_settings_names_what_to_set() {
        let error = args(ServiceArgs::default()).resolve().unwrap_err();
        let settings: Vec<_> = error.0.iter().map(|p| p.setting).collect();
        assert_eq!(
            settings,
            [
                "CLERK_PUBLISHABLE_KEY (--clerk-publishable-key)",
                "INSTANT_APP_ID (--instant-app-id)"
            ]
        );
        let text = error.to_string();
        assert!(text.ends_with(HOW_ELSE), "{text}");
        assert!(!text.contains("embedded local stack instead"), "{text}");
    }
}
