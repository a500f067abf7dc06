//! Configuration from flags and the usual environment names, checked as a whole: every
//! problem is reported at once, each naming the setting and the fix.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use auth_core::UserDeletedPolicy;
use clap::Parser;
use clerk_webhooks::Secrets;
pub use service_config::Problem;
use service_config::{ServiceArgs, ServiceConfig, StoreArgs, StoreChoice};

/// `clerk-instant-server`: Clerk session in, InstantDB session out.
///
/// With no CLERK_* or INSTANT_* setting at all, it starts a local Clerk and an InstantDB
/// emulator in-process and serves against them (development only; feature
/// `local-stack`, on by default).
#[derive(Clone, Default, Parser)]
#[command(name = "clerk-instant-server", version, about, long_about = None)]
#[cfg_attr(
    not(feature = "local-stack"),
    command(about = "clerk-instant-server: Clerk session in, InstantDB session out, over HTTP")
)]
pub struct ServerArgs {
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
    /// The most sessions kept by the memory store; when it is full, new sign-ins get
    /// 503 store-full (no live session is ever evicted). The Redis store is bounded by
    /// its sessions' lifetimes and Redis's maxmemory instead.
    #[arg(long, env = "MAX_SESSIONS", default_value_t = 100_000)]
    pub max_sessions: usize,
    /// Where sessions are kept: memory (this process) or Redis (shared by replicas).
    #[command(flatten)]
    pub store: StoreArgs,
    /// The longest, in seconds, one sign-in holds its Clerk session's lock (other
    /// sign-ins of that session, on any replica, wait for it); a replica that dies
    /// mid-sign-in blocks the session this long at most.
    #[arg(long, env = "SIGN_IN_LOCK_SECS", default_value_t = 15)]
    pub sign_in_lock: u64,
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
            .field("listen", &self.listen)
            .field("service", &self.service)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("body_limit", &self.body_limit)
            .field("request_timeout", &self.request_timeout)
            .field("session_revalidate", &self.session_revalidate)
            .field("max_sessions", &self.max_sessions)
            .field("store", &self.store)
            .field("sign_in_lock", &self.sign_in_lock)
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

/// The last line of a [`ConfigError`]: the way out.
#[cfg(feature = "local-stack")]
const HOW_ELSE: &str =
    "(unset every CLERK_* and INSTANT_* setting to run on the embedded local stack instead)";
/// The last line of a [`ConfigError`]: why there is no way out without settings.
#[cfg(not(feature = "local-stack"))]
const HOW_ELSE: &str = "(this server is built without the embedded local stack: set at least CLERK_PUBLISHABLE_KEY and INSTANT_APP_ID)";

/// How the server runs.
#[derive(Debug)]
pub enum Mode {
    /// No Clerk or InstantDB setting: run the local stack in-process.
    #[cfg(feature = "local-stack")]
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
    /// Session store bound (memory store).
    pub max_sessions: usize,
    /// Where sessions are kept.
    pub store: StoreChoice,
    /// The longest a sign-in holds its Clerk session's lock.
    pub sign_in_lock: Duration,
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
    /// Checks everything and decides the mode.
    pub fn resolve(&self) -> Result<Mode, ConfigError> {
        let mut problems = Vec::new();
        let store = match self.store.resolve() {
            Ok(store) => store,
            Err(more) => {
                problems.extend(more);
                StoreChoice::Memory
            }
        };
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
        if !(1..=300).contains(&self.sign_in_lock) {
            problem(
                "SIGN_IN_LOCK_SECS (--sign-in-lock)",
                "must be between 1 and 300 seconds (longer than an InstantDB sign-in takes)"
                    .to_owned(),
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
            Err(_) if policy.is_empty() => UserDeletedPolicy::default(),
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
            store,
            sign_in_lock: Duration::from_secs(self.sign_in_lock),
            webhook_secrets,
            user_deleted_policy,
        };

        let raw = &self.service;
        // Without the local stack, no settings at all is one more bad configuration:
        // resolving names each required setting.
        #[cfg(feature = "local-stack")]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(service: ServiceArgs) -> ServerArgs {
        ServerArgs {
            listen: "127.0.0.1:8787".into(),
            service,
            log_format: "text".into(),
            log_level: "info".into(),
            body_limit: 64 * 1024,
            request_timeout: 10,
            session_revalidate: 60,
            max_sessions: 100_000,
            store: StoreArgs::default(),
            sign_in_lock: 15,
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
