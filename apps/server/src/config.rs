//! Configuration from flags and the usual environment names, checked as a whole: every
//! problem is reported at once, each naming the setting and the fix.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use auth_core::UserDeletedPolicy;
use clap::Parser;
use clerk_webhooks::Secrets;
pub use service_config::Problem;
use service_config::{
    AuthorizedParties, ServiceArgs, ServiceConfig, StoreArgs, StoreChoice, resolve_listen_addr,
};

use crate::cors::{CORS_SETTING, CorsOrigins};
use crate::ratelimit::{ForwardedHeader, Quota, RateLimitSettings, TrustedProxies};

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
    /// Address to listen on: host:port, the host an IP address or a name
    /// (localhost:8787). Default: 127.0.0.1:8787, or the PORT below.
    #[arg(
        long = "listen-addr",
        alias = "listen",
        env = "LISTEN_ADDR",
        value_name = "HOST:PORT"
    )]
    pub listen: Option<String>,
    /// The port platforms set (Heroku, Cloud Run, Render…): used when LISTEN_ADDR is
    /// not set, on 0.0.0.0 (every interface), or on 127.0.0.1 with --dev.
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,
    /// A second address serving only /metrics, /readyz and /healthz, so that the
    /// metrics need not be public: with it the main address no longer serves /metrics
    /// (its /readyz and /healthz stay, for load balancers probing the main port).
    #[arg(long, env = "METRICS_LISTEN_ADDR", value_name = "HOST:PORT")]
    pub metrics_listen_addr: Option<String>,
    /// The Clerk and InstantDB settings (shared with the `clerk-instant` CLI).
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Log format: text or json (in any case). Text logs are coloured only when
    /// standard error is a terminal and NO_COLOR is not set.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Log level: error, warn, info, debug or trace (in any case).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Largest accepted request body, in bytes.
    #[arg(long = "body-limit-bytes", alias = "body-limit", env = "BODY_LIMIT_BYTES", value_name = "BYTES", default_value_t = 64 * 1024)]
    pub body_limit: usize,
    /// Per-request timeout, in seconds.
    #[arg(
        long = "request-timeout-secs",
        alias = "request-timeout",
        env = "REQUEST_TIMEOUT_SECS",
        value_name = "SECS",
        default_value_t = 10
    )]
    pub request_timeout: u64,
    /// Seconds a stored InstantDB session is reused without asking InstantDB, at most
    /// (each Clerk session comes due between three quarters of it and all of it, by its
    /// id, so sessions signed in together do not all ask InstantDB in the same second;
    /// a query or transaction that succeeds with the session late in its window counts
    /// as InstantDB's confirmation).
    #[arg(
        long = "session-revalidate-secs",
        alias = "session-revalidate",
        env = "SESSION_REVALIDATE_SECS",
        value_name = "SECS",
        default_value_t = 60
    )]
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
    #[arg(
        long = "sign-in-lock-secs",
        alias = "sign-in-lock",
        env = "SIGN_IN_LOCK_SECS",
        value_name = "SECS",
        default_value_t = 15
    )]
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
    /// Requests per second one client address (an IPv6 client: its /64) may make to
    /// the /v1/* routes, on average (a token bucket; the probes and /metrics are not
    /// limited); 0 turns the limit off. Each replica counts alone. Over the limit: 429 rate-limited with
    /// Retry-After.
    #[arg(long, env = "RATE_LIMIT_PER_IP_PER_SEC", default_value_t = 100)]
    pub rate_limit_per_ip_per_sec: u32,
    /// Requests one client address may make at once, above its average.
    #[arg(long, env = "RATE_LIMIT_PER_IP_BURST", default_value_t = 500)]
    pub rate_limit_per_ip_burst: u32,
    /// Sign-ins (POST /v1/session) per minute one Clerk session may make, on average
    /// (a browser signs in about once a minute); 0 turns the limit off.
    #[arg(long, env = "RATE_LIMIT_PER_SESSION_PER_MIN", default_value_t = 10)]
    pub rate_limit_per_session_per_min: u32,
    /// Sign-ins one Clerk session may make at once.
    #[arg(long, env = "RATE_LIMIT_PER_SESSION_BURST", default_value_t = 5)]
    pub rate_limit_per_session_burst: u32,
    /// Rejected Clerk tokens (401 for a token that failed verification) per minute
    /// one client address may send, on average; past the limit its requests with a
    /// token get 429 before the token is checked. 0 turns the limit off.
    #[arg(long, env = "RATE_LIMIT_BAD_TOKENS_PER_MIN", default_value_t = 60)]
    pub rate_limit_bad_tokens_per_min: u32,
    /// Rejected Clerk tokens one client address may send at once.
    #[arg(long, env = "RATE_LIMIT_BAD_TOKENS_BURST", default_value_t = 100)]
    pub rate_limit_bad_tokens_burst: u32,
    /// The reverse proxies in front of the server, as IP addresses and CIDR blocks
    /// separated by commas (e.g. 10.0.0.0/8,fd00::/8). Only for a peer among them is
    /// the TRUSTED_PROXY_HEADER believed, and the client is its rightmost hop that is
    /// not a trusted proxy. Default: none, so the peer address is the client.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// The header the trusted proxies set: x-forwarded-for or forwarded (RFC 7239).
    /// Name the one your proxy appends to: the other is not read.
    #[arg(long, env = "TRUSTED_PROXY_HEADER", default_value = "x-forwarded-for")]
    pub trusted_proxy_header: String,
    /// Seconds a client has to send a request's headers, from its connection's start
    /// or its first byte after an idle spell; a connection that is slower is closed.
    #[arg(
        long = "header-read-timeout-secs",
        alias = "header-read-timeout",
        env = "HEADER_READ_TIMEOUT_SECS",
        value_name = "SECS",
        default_value_t = 10
    )]
    pub header_read_timeout: u64,
    /// Seconds a keep-alive connection may wait for its next request before it is
    /// closed.
    #[arg(
        long = "idle-timeout-secs",
        alias = "idle-timeout",
        env = "IDLE_TIMEOUT_SECS",
        value_name = "SECS",
        default_value_t = 60
    )]
    pub idle_timeout: u64,
    /// The most connections served at once; past it, new ones wait in the kernel's
    /// listen backlog until one closes.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a graceful shutdown (SIGTERM, Ctrl-C) lets requests in flight finish
    /// before it closes their connections.
    #[arg(
        long = "shutdown-timeout-secs",
        alias = "shutdown-timeout",
        env = "SHUTDOWN_TIMEOUT_SECS",
        value_name = "SECS",
        default_value_t = 15
    )]
    pub shutdown_timeout: u64,
    /// Origins of the browser apps that may call the API cross-origin, with
    /// credentials (comma-separated, e.g. <https://app.example.com>). Default: the
    /// CLERK_AUTHORIZED_PARTIES origins (none when it is unset or *), plus, in dev mode,
    /// <http://localhost:3000> and <http://127.0.0.1:3000>. * is refused: browsers refuse
    /// a wildcard origin with credentials.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
}

impl fmt::Debug for ServerArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerArgs")
            .field("dev", &self.dev)
            .field("listen", &self.listen)
            .field("port", &self.port)
            .field("metrics_listen_addr", &self.metrics_listen_addr)
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
            .field("rate_limit_per_ip_per_sec", &self.rate_limit_per_ip_per_sec)
            .field("rate_limit_per_ip_burst", &self.rate_limit_per_ip_burst)
            .field(
                "rate_limit_per_session_per_min",
                &self.rate_limit_per_session_per_min,
            )
            .field(
                "rate_limit_per_session_burst",
                &self.rate_limit_per_session_burst,
            )
            .field(
                "rate_limit_bad_tokens_per_min",
                &self.rate_limit_bad_tokens_per_min,
            )
            .field(
                "rate_limit_bad_tokens_burst",
                &self.rate_limit_bad_tokens_burst,
            )
            .field("trusted_proxies", &self.trusted_proxies)
            .field("trusted_proxy_header", &self.trusted_proxy_header)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("cors_allowed_origins", &self.cors_allowed_origins)
            .finish()
    }
}

impl ServerArgs {
    /// The rate limit settings, each problem reported to `problem`.
    fn rate_limits(&self, problem: &mut impl FnMut(&'static str, String)) -> RateLimitSettings {
        let minute = Duration::from_secs(60);
        let mut quota = |rate: u32, period: Duration, burst: u32, setting: &'static str| {
            if rate > 0 && burst == 0 {
                problem(
                    setting,
                    "must be at least 1 while the limit is on (set its rate to 0 to turn it off)"
                        .to_owned(),
                );
            }
            Quota::new(rate, period, burst)
        };
        let per_ip = quota(
            self.rate_limit_per_ip_per_sec,
            Duration::from_secs(1),
            self.rate_limit_per_ip_burst,
            "RATE_LIMIT_PER_IP_BURST (--rate-limit-per-ip-burst)",
        );
        let per_session = quota(
            self.rate_limit_per_session_per_min,
            minute,
            self.rate_limit_per_session_burst,
            "RATE_LIMIT_PER_SESSION_BURST (--rate-limit-per-session-burst)",
        );
        let bad_tokens = quota(
            self.rate_limit_bad_tokens_per_min,
            minute,
            self.rate_limit_bad_tokens_burst,
            "RATE_LIMIT_BAD_TOKENS_BURST (--rate-limit-bad-tokens-burst)",
        );
        let trusted_proxies = self.trusted_proxies.parse().unwrap_or_else(|error| {
            problem(
                "TRUSTED_PROXIES (--trusted-proxies)",
                format!(
                    "{error}; list your reverse proxies' addresses separated by commas, or leave it empty when clients connect directly"
                ),
            );
            TrustedProxies::default()
        });
        let header = self.trusted_proxy_header.trim();
        let forwarded_header = if header.is_empty() {
            ForwardedHeader::default()
        } else {
            header.parse().unwrap_or_else(|error| {
                problem(
                    "TRUSTED_PROXY_HEADER (--trusted-proxy-header)",
                    format!("{error}, not {header:?}: the header your proxy appends the client to"),
                );
                ForwardedHeader::default()
            })
        };
        RateLimitSettings {
            per_ip,
            per_session,
            bad_tokens,
            trusted_proxies,
            forwarded_header,
        }
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
// Built once at start-up and moved a few times: its size does not matter, and boxing
// the options would only change every place that builds one.
#[allow(
    clippy::large_enum_variant,
    reason = "built once at start-up; only the dev variant is large"
)]
pub enum Mode {
    /// `--dev`: run the local stack in-process, on loopback.
    #[cfg(feature = "local-stack")]
    Dev(Box<Options>),
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
    /// Where to serve `/metrics`, `/readyz` and `/healthz` alone; with it the main
    /// listener no longer serves `/metrics` (`METRICS_LISTEN_ADDR`).
    pub metrics_listen: Option<SocketAddr>,
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
    /// The rate limits and the trusted proxies (boxed: [`Mode::Dev`] holds options
    /// inline).
    pub rate_limits: Box<RateLimitSettings>,
    /// The timers and the cap of client connections, and the shutdown deadline.
    pub connections: ConnectionLimits,
    /// The origins of the browser apps that may call the API (`CORS_ALLOWED_ORIGINS`).
    pub cors_origins: CorsOrigins,
}

/// How long a client connection may dawdle, how many are served at once, and how long
/// a graceful shutdown waits for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to send a request's headers, counted from the connection's start or, on a
    /// kept-alive connection, from the next request's first byte
    /// (`HEADER_READ_TIMEOUT_SECS`).
    pub header_read_timeout: Duration,
    /// Time a kept-alive connection may wait, with no request in flight, for its next
    /// request (`IDLE_TIMEOUT_SECS`).
    pub idle_timeout: Duration,
    /// Connections served at once (`MAX_CONNECTIONS`); at the cap the server stops
    /// accepting, so newcomers wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// How long a graceful shutdown lets requests in flight finish before it drops
    /// their connections (`SHUTDOWN_TIMEOUT_SECS`).
    pub shutdown_timeout: Duration,
}

impl Default for ConnectionLimits {
    /// The flags' defaults: 10 s, 60 s, 1,024 connections, 15 s.
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            shutdown_timeout: Duration::from_secs(15),
        }
    }
}

/// A checked configuration for real services.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Common options.
    pub options: Options,
    /// Clerk and InstantDB.
    pub service: ServiceConfig,
}

impl Settings {
    /// Logs one record (`message` = `configuration`) that says what the server is
    /// configured for: `mode`, the addresses it listens on (`listen`,
    /// `metrics_listen`: as bound), the Clerk instance, InstantDB, the strategy, which
    /// secrets are set (never their values), the authorized parties, the store (its
    /// URL without the password) and the limits.
    pub fn log_summary(
        &self,
        mode: &'static str,
        listen: SocketAddr,
        metrics_listen: Option<SocketAddr>,
    ) {
        let service = &self.service;
        let options = &self.options;
        let authorized_parties = match &service.authorized_parties {
            AuthorizedParties::Unset => "unset (azp is not checked)".to_owned(),
            AuthorizedParties::Any => "* (azp is not checked)".to_owned(),
            AuthorizedParties::Only(origins) => origins.join(","),
        };
        let (store, store_url, store_prefix, store_encryption_key_set) = match &options.store {
            StoreChoice::Memory => ("memory", None, None, false),
            // The URL's Display drops its password.
            StoreChoice::Redis(redis) => (
                "redis",
                Some(redis.url().to_string()),
                Some(redis.prefix().to_owned()),
                redis.is_encrypted(),
            ),
        };
        let limits = &options.rate_limits;
        tracing::info!(
            mode,
            %listen,
            metrics_listen = metrics_listen.map(tracing::field::display),
            clerk_instance = service.publishable_key.frontend_api(),
            clerk_api_url = service.clerk_api_url.as_deref(),
            instant_app_id = %service.instant_app_id,
            instant_api = %service.instant_api_uri,
            strategy = service.strategy.as_str(),
            clerk_secret_key_set = service.secret_key.is_some(),
            clerk_jwt_key_set = service.jwt_key.is_some(),
            instant_admin_token_set = service.instant_admin_token.is_some(),
            webhook_signing_secret_set = options.webhook_secrets.is_some(),
            authorized_parties,
            cors_origins = options
                .cors_origins
                .allowed(&service.authorized_parties, mode == "dev")
                .join(","),
            store,
            store_url,
            store_prefix,
            store_encryption_key_set,
            max_sessions = options.max_sessions,
            body_limit_bytes = options.body_limit,
            request_timeout_secs = options.request_timeout.as_secs(),
            max_connections = options.connections.max_connections,
            rate_limit_per_ip = %quota(limits.per_ip),
            rate_limit_per_session = %quota(limits.per_session),
            rate_limit_bad_tokens = %quota(limits.bad_tokens),
            trusted_proxies_set = !limits.trusted_proxies.is_empty(),
            "configuration"
        );
    }
}

/// A rate limit as the summary says it: `off`, or `1 per 10ms, burst 500`.
fn quota(quota: Option<Quota>) -> String {
    quota.map_or_else(
        || "off".to_owned(),
        |q| format!("1 per {:?}, burst {}", q.every, q.burst),
    )
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

        let listen = match (&self.listen, self.port) {
            (Some(text), _) => resolve_listen_addr(text)
                .map_err(|error| {
                    problem(
                        LISTEN_SETTING,
                        format!("{error}; use e.g. 127.0.0.1:8787 or localhost:8787"),
                    );
                })
                .ok(),
            // What platforms set: every interface, or loopback for the local stack
            // (which refuses any other address).
            (None, Some(port)) => Some(if self.dev {
                SocketAddr::from(([127, 0, 0, 1], port))
            } else {
                SocketAddr::from(([0, 0, 0, 0], port))
            }),
            (None, None) => Some(DEFAULT_LISTEN),
        };
        let metrics_listen = self.metrics_listen_addr.as_deref().and_then(|text| {
            resolve_listen_addr(text)
                .map_err(|error| {
                    problem(
                        METRICS_LISTEN_SETTING,
                        format!(
                            "{error}; use e.g. 0.0.0.0:9090, a port the metrics scraper reaches, or unset it to serve /metrics on LISTEN_ADDR"
                        ),
                    );
                })
                .ok()
        });
        if let (Some(main), Some(metrics)) = (listen, metrics_listen)
            && main == metrics
            && main.port() != 0
        {
            problem(
                METRICS_LISTEN_SETTING,
                format!(
                    "is {metrics}, the address the server listens on already; give it another port, or unset it"
                ),
            );
        }
        let format = self.log_format.trim();
        let json_logs = match format {
            _ if format.eq_ignore_ascii_case("text") => false,
            _ if format.eq_ignore_ascii_case("json") => true,
            other => {
                problem(
                    "LOG_FORMAT (--log-format)",
                    format!("must be text or json, not {other:?}"),
                );
                false
            }
        };
        // By name only, in any case (`tracing`'s own parser also takes 1 to 5).
        let level = self.log_level.trim();
        let log_level = match [
            tracing::Level::ERROR,
            tracing::Level::WARN,
            tracing::Level::INFO,
            tracing::Level::DEBUG,
            tracing::Level::TRACE,
        ]
        .into_iter()
        .find(|known| known.as_str().eq_ignore_ascii_case(level))
        {
            Some(level) => level,
            None => {
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
                "BODY_LIMIT_BYTES (--body-limit-bytes)",
                "must be at least 1024 bytes (a Clerk token alone can be 4 KB)".to_owned(),
            );
        }
        if self.request_timeout == 0 {
            problem(
                "REQUEST_TIMEOUT_SECS (--request-timeout-secs)",
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
                "SIGN_IN_LOCK_SECS (--sign-in-lock-secs)",
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
        // A day bounds the timers, so a deadline computed from one never overflows.
        const DAY: u64 = 24 * 60 * 60;
        for (setting, value, range, what) in [
            (
                "HEADER_READ_TIMEOUT_SECS (--header-read-timeout-secs)",
                self.header_read_timeout,
                (1, DAY),
                "the seconds a client has to send its request headers; 10 by default",
            ),
            (
                "IDLE_TIMEOUT_SECS (--idle-timeout-secs)",
                self.idle_timeout,
                (1, DAY),
                "the seconds a kept-alive connection may wait for its next request; 60 by default",
            ),
            (
                "MAX_CONNECTIONS (--max-connections)",
                u64::try_from(self.max_connections).unwrap_or(u64::MAX),
                (1, 1_000_000),
                "the connections served at once; 1024 by default, kept below the open-file limit, ulimit -n",
            ),
            (
                "SHUTDOWN_TIMEOUT_SECS (--shutdown-timeout-secs)",
                self.shutdown_timeout,
                (1, DAY),
                "the seconds a shutdown lets requests in flight finish; 15 by default",
            ),
        ] {
            let (least, most) = range;
            if !(least..=most).contains(&value) {
                problem(
                    setting,
                    format!("must be between {least} and {most}, not {value} ({what})"),
                );
            }
        }
        let cors_origins =
            CorsOrigins::parse(&self.cors_allowed_origins).unwrap_or_else(|messages| {
                for message in messages {
                    problem(CORS_SETTING, message);
                }
                CorsOrigins::Default
            });
        let connections = ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_connections: self.max_connections,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
        };
        let options = Options {
            listen: listen.unwrap_or(DEFAULT_LISTEN),
            metrics_listen,
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
            rate_limits: Box::new(self.rate_limits(&mut problem)),
            connections,
            cors_origins,
        };

        let raw = &self.service;
        if self.dev {
            #[cfg(feature = "local-stack")]
            {
                self.check_dev(&options, &mut problems);
                return if problems.is_empty() {
                    Ok(Mode::Dev(Box::new(options)))
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
        if problems.iter().all(|p| p.setting != LISTEN_SETTING)
            && !options.listen.ip().is_loopback()
        {
            problems.push(Problem {
                setting: LISTEN_SETTING,
                message: format!(
                    "{} is not a loopback address, and --dev (development secrets, a token-minting endpoint) listens on loopback only; use 127.0.0.1:{port} or [::1]:{port}",
                    options.listen,
                    port = options.listen.port()
                ),
            });
        }
    }
}

/// Where the server listens when neither LISTEN_ADDR nor PORT is set.
const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8787);

/// How `LISTEN_ADDR` is named in problems.
const LISTEN_SETTING: &str = "LISTEN_ADDR (--listen-addr)";

/// How `METRICS_LISTEN_ADDR` is named in problems.
const METRICS_LISTEN_SETTING: &str = "METRICS_LISTEN_ADDR (--metrics-listen-addr)";

/// How `--dev` is named in problems.
const DEV_SETTING: &str = "CLERK_INSTANT_DEV (--dev)";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(service: ServiceArgs) -> ServerArgs {
        ServerArgs {
            dev: false,
            listen: Some("127.0.0.1:8787".into()),
            port: None,
            metrics_listen_addr: None,
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
            rate_limit_per_ip_per_sec: 100,
            rate_limit_per_ip_burst: 500,
            rate_limit_per_session_per_min: 10,
            rate_limit_per_session_burst: 5,
            rate_limit_bad_tokens_per_min: 60,
            rate_limit_bad_tokens_burst: 100,
            trusted_proxies: String::new(),
            trusted_proxy_header: "x-forwarded-for".into(),
            header_read_timeout: 10,
            idle_timeout: 60,
            max_connections: 1024,
            shutdown_timeout: 15,
            cors_allowed_origins: Vec::new(),
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

    /// Settings for real services, changed by `tweak`.
    fn configured(tweak: impl FnOnce(&mut ServerArgs)) -> ServerArgs {
        let mut args = args(ServiceArgs {
            clerk_publishable_key: Some("pk_test_Y2xlcmsuZXhhbXBsZS5jb20k".into()),
            instant_app_id: Some("11111111-2222-4333-8444-555555555555".into()),
            ..ServiceArgs::default()
        });
        tweak(&mut args);
        args
    }

    /// The options, or the settings named by the problems.
    fn options(args: &ServerArgs) -> Result<Options, Vec<&'static str>> {
        match args.resolve() {
            Ok(Mode::Configured(settings)) => Ok(settings.options),
            #[cfg(feature = "local-stack")]
            Ok(Mode::Dev(_)) => panic!("configured settings"),
            Err(error) => Err(error.0.iter().map(|p| p.setting).collect()),
        }
    }

    #[test]
    fn the_rate_limits_default_on_and_a_rate_of_zero_turns_one_off() {
        let limits = options(&configured(|_| {})).unwrap().rate_limits;
        let second = Duration::from_secs(1);
        let minute = Duration::from_secs(60);
        assert_eq!(limits.per_ip, Quota::new(100, second, 500));
        assert_eq!(limits.per_session, Quota::new(10, minute, 5));
        assert_eq!(limits.bad_tokens, Quota::new(60, minute, 100));
        assert!(limits.trusted_proxies.is_empty());
        assert_eq!(limits.forwarded_header, ForwardedHeader::XForwardedFor);

        let off = configured(|a| {
            a.rate_limit_per_ip_per_sec = 0;
            a.rate_limit_per_session_per_min = 0;
            a.rate_limit_bad_tokens_per_min = 0;
            // A burst of 0 is no problem while the limit is off.
            a.rate_limit_per_ip_burst = 0;
            a.trusted_proxies = "10.0.0.0/8, 192.0.2.1".into();
            a.trusted_proxy_header = "Forwarded".into();
        });
        let limits = options(&off).unwrap().rate_limits;
        assert_eq!(*limits, {
            let mut expected = RateLimitSettings::off();
            expected.trusted_proxies = "10.0.0.0/8,192.0.2.1".parse().unwrap();
            expected.forwarded_header = ForwardedHeader::Forwarded;
            expected
        });
    }

    #[test]
    fn bad_rate_limit_settings_are_named() {
        let bad = configured(|a| {
            a.rate_limit_per_ip_burst = 0;
            a.rate_limit_per_session_burst = 0;
            a.rate_limit_bad_tokens_burst = 0;
            a.trusted_proxies = "10.0.0.0/8, proxy.internal".into();
            a.trusted_proxy_header = "x-real-ip".into();
        });
        assert_eq!(
            options(&bad).unwrap_err(),
            [
                "RATE_LIMIT_PER_IP_BURST (--rate-limit-per-ip-burst)",
                "RATE_LIMIT_PER_SESSION_BURST (--rate-limit-per-session-burst)",
                "RATE_LIMIT_BAD_TOKENS_BURST (--rate-limit-bad-tokens-burst)",
                "TRUSTED_PROXIES (--trusted-proxies)",
                "TRUSTED_PROXY_HEADER (--trusted-proxy-header)",
            ]
        );
        let text = bad.resolve().unwrap_err().to_string();
        assert!(
            text.contains("\"proxy.internal\" is not an IP address"),
            "{text}"
        );
        assert!(
            text.contains("must be x-forwarded-for or forwarded"),
            "{text}"
        );
    }

    #[test]
    fn the_rate_limit_defaults_are_the_flags_defaults() {
        let parsed = ServerArgs::try_parse_from(["clerk-instant-server"]).unwrap();
        let ours = args(ServiceArgs::default());
        assert_eq!(
            parsed.rate_limit_per_ip_per_sec,
            ours.rate_limit_per_ip_per_sec
        );
        assert_eq!(parsed.rate_limit_per_ip_burst, ours.rate_limit_per_ip_burst);
        assert_eq!(
            parsed.rate_limit_per_session_per_min,
            ours.rate_limit_per_session_per_min
        );
        assert_eq!(
            parsed.rate_limit_per_session_burst,
            ours.rate_limit_per_session_burst
        );
        assert_eq!(
            parsed.rate_limit_bad_tokens_per_min,
            ours.rate_limit_bad_tokens_per_min
        );
        assert_eq!(
            parsed.rate_limit_bad_tokens_burst,
            ours.rate_limit_bad_tokens_burst
        );
        assert_eq!(parsed.trusted_proxy_header, ours.trusted_proxy_header);
    }

    #[test]
    fn the_listen_address_takes_host_names_and_port_alone_as_platforms_set_it() {
        let listen = |tweak: fn(&mut ServerArgs)| options(&configured(tweak)).map(|o| o.listen);
        let addr = |text: &str| Ok(text.parse::<SocketAddr>().unwrap());
        assert_eq!(listen(|a| a.listen = None), addr("127.0.0.1:8787"));
        assert_eq!(
            listen(|a| a.listen = Some("localhost:9000".into())),
            addr("127.0.0.1:9000")
        );
        assert_eq!(
            listen(|a| {
                a.listen = None;
                a.port = Some(10000);
            }),
            addr("0.0.0.0:10000")
        );
        // LISTEN_ADDR wins over PORT.
        assert_eq!(listen(|a| a.port = Some(10000)), addr("127.0.0.1:8787"));
        assert_eq!(
            listen(|a| a.listen = Some("localhost".into())),
            Err(vec![LISTEN_SETTING])
        );
        let metrics = |text: &str| {
            let text = text.to_owned();
            options(&configured(move |a| a.metrics_listen_addr = Some(text)))
                .map(|o| o.metrics_listen)
        };
        assert_eq!(
            metrics("localhost:9090"),
            Ok(Some("127.0.0.1:9090".parse().unwrap()))
        );
        assert_eq!(metrics("localhost:8787"), Err(vec![METRICS_LISTEN_SETTING]));
        assert_eq!(metrics("9090"), Err(vec![METRICS_LISTEN_SETTING]));
    }

    #[cfg(feature = "local-stack")]
    #[test]
    fn port_alone_in_dev_mode_is_on_loopback() {
        let args = ServerArgs {
            dev: true,
            listen: None,
            port: Some(10000),
            ..args(ServiceArgs::default())
        };
        let Ok(Mode::Dev(options)) = args.resolve() else {
            panic!("dev mode");
        };
        assert_eq!(options.listen, "127.0.0.1:10000".parse().unwrap());
    }

    #[test]
    fn flags_are_named_as_their_environment_names_and_the_old_names_still_work() {
        let new = ServerArgs::try_parse_from([
            "clerk-instant-server",
            "--listen-addr=localhost:1",
            "--metrics-listen-addr=127.0.0.1:2",
            "--body-limit-bytes=2048",
            "--request-timeout-secs=3",
            "--session-revalidate-secs=4",
            "--sign-in-lock-secs=5",
            "--header-read-timeout-secs=6",
            "--idle-timeout-secs=7",
            "--shutdown-timeout-secs=8",
            "--port=9",
        ])
        .unwrap();
        let old = ServerArgs::try_parse_from([
            "clerk-instant-server",
            "--listen=localhost:1",
            "--metrics-listen-addr=127.0.0.1:2",
            "--body-limit=2048",
            "--request-timeout=3",
            "--session-revalidate=4",
            "--sign-in-lock=5",
            "--header-read-timeout=6",
            "--idle-timeout=7",
            "--shutdown-timeout=8",
            "--port=9",
        ])
        .unwrap();
        assert_eq!(format!("{new:?}"), format!("{old:?}"));
        // Every flag is its environment name in kebab-case, but `--dev`
        // (CLERK_INSTANT_DEV).
        let command = <ServerArgs as clap::CommandFactory>::command();
        for arg in command.get_arguments() {
            let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
                continue;
            };
            if long == "dev" {
                continue;
            }
            let env = env.to_string_lossy().to_ascii_lowercase().replace('_', "-");
            assert_eq!(long, env, "--{long}");
        }
    }

    #[test]
    fn log_format_and_level_are_read_in_any_case() {
        let o = options(&configured(|a| {
            a.log_format = "JSON".into();
            a.log_level = "Warn".into();
        }))
        .unwrap();
        assert!(o.json_logs);
        assert_eq!(o.log_level, tracing::Level::WARN);
        assert!(
            !options(&configured(|a| a.log_format = "Text".into()))
                .unwrap()
                .json_logs
        );
        assert_eq!(
            options(&configured(|a| a.log_level = "3".into())).unwrap_err(),
            ["LOG_LEVEL (--log-level)"]
        );
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
